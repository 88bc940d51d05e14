"""When ``gsmon watch`` lets the garbage collector make its full passes: while the keys are quiet.

Measured with ``bench/watch_bench.py --trace`` (10,000 nodes, 1,000 updates/s, 2 cores): after the
snapshot is frozen (``gc.freeze()``), the oldest generation still grows by ~100,000 objects (nodes
replaced by updates, the rows, Textual's own), and Textual's Strips are cyclic garbage (a Strip keeps
itself in its own caches: ~1,500 objects a second of redraws), so CPython's automatic full pass came
every ~3 s and held the event loop 40-80 ms each time: the slowest key presses were the ones that
landed on it. Fewer passes are not cheaper ones: a pass after 10-20 s collected 20,000-40,000 objects
in 60-90 ms of CPU (the redraws' garbage, ~2,000 objects a second), so they stay about as frequent,
and their timing is what changes. The young generations stay automatic (passes of 0.1-5 ms); the
full pass is taken over and made at most every :data:`EVERY_S`, at a moment when it delays nothing: right after a key's
redraw has been painted (the person is reading it), or from the timer once no key has come for
:data:`QUIET_S`; and at the latest every :data:`LATEST_S` whatever the keys do (so garbage is
bounded: what ~15 s of redraws leave). Pure: the times are arguments.
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["EVERY_S", "LATEST_S", "QUIET_S", "FullCollections", "hand_back", "take_over"]

#: No key for this long: a full pass will not delay one (a person reads for longer than that).
QUIET_S: Final = 1.0
#: Full passes no more often than this (each one then collects ~10,000 objects in ~40 ms).
EVERY_S: Final = 5.0
#: A full pass at the latest this long after the last one, even while keys keep coming.
LATEST_S: Final = 15.0
#: The third threshold when the application runs the full passes (never reached by counting).
_MANUAL: Final = 1 << 30


class FullCollections:
    """Whether a full collection is due, from the times of the last key and the last full pass."""

    def __init__(self, now: float, *, quiet_s: float = QUIET_S, every_s: float = EVERY_S, latest_s: float = LATEST_S):
        self.quiet_s = quiet_s
        self.every_s = every_s
        self.latest_s = latest_s
        self._key_at = now
        self._collected_at = now
        self.passes = 0

    def key(self, now: float) -> None:
        """A key (or a click) came at ``now``."""
        self._key_at = now

    def due(self, now: float, *, redrawn_after_key: bool = False) -> bool:
        """Whether to make a full pass now; ``redrawn_after_key``: a key's redraw has just been painted
        (the person now reads it: the best moment, as good as a quiet second)."""
        since = now - self._collected_at
        if since >= self.latest_s:
            return True
        return since >= self.every_s and (redrawn_after_key or now - self._key_at >= self.quiet_s)

    def collected(self, now: float) -> None:
        self._collected_at = now
        self.passes += 1


def take_over() -> tuple[int, int, int]:
    """Stop CPython's automatic full passes (the young generations stay automatic); the old thresholds."""
    old = gc.get_threshold()
    gc.set_threshold(old[0], old[1], _MANUAL)
    return old


def hand_back(old: tuple[int, int, int]) -> None:
    gc.set_threshold(*old)
