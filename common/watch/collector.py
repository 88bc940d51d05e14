"""When ``gsmon watch`` lets the garbage collector make its full passes: while the keys are quiet.

Measured with ``bench/watch_bench.py --trace`` (10,000 nodes, 1,000 updates/s, 2 cores): after the
snapshot is frozen (``gc.freeze()``), the oldest generation still grows by ~100,000 objects (nodes
replaced by updates, the rows, Textual's own), and Textual's Strips are cyclic garbage (a Strip keeps
itself in its own caches: ~1,500 objects a second of redraws), so CPython's automatic full pass came
every ~3 s and held the event loop 40-80 ms each time: the slowest key presses were the ones that
landed on it. The young generations stay automatic (passes of 0.1-5 ms); the full pass is taken over:
the application runs it from its timer once no key has come for :data:`QUIET_S`, at most every
:data:`EVERY_S`, and at the latest every :data:`LATEST_S` whatever the keys do (so garbage is
bounded: what ~30 s of redraws leave). Pure: the times are arguments.
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["EVERY_S", "LATEST_S", "QUIET_S", "FullCollections", "hand_back", "take_over"]

#: No key for this long: a full pass will not delay one (a person reads for longer than that).
QUIET_S: Final = 1.0
#: Full passes no more often than this (garbage kept meanwhile: a few MB).
EVERY_S: Final = 10.0
#: A full pass at the latest this long after the last one, even while keys keep coming.
LATEST_S: Final = 30.0
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

    def due(self, now: float) -> bool:
        since = now - self._collected_at
        if since >= self.latest_s:
            return True
        return since >= self.every_s and now - self._key_at >= self.quiet_s

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
