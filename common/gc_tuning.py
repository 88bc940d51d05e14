"""Python's cyclic garbage collector, tuned for a process that holds a big long-lived tree.

Why: the hub, the recorder and the web bridge each keep 100,000-1,000,000 objects for as long as they run
(the tree's nodes, the alarm book, relay state). CPython's collector runs a full (generation 2) collection
whenever enough objects have survived the younger ones, and a full collection walks *every* tracked object:
with a hub-sized tree that is tens to hundreds of milliseconds of one core, again and again, while nothing
in that tree is ever garbage. A periodic STATE (a full relay, a snapshot refill) allocates enough to trigger
them at both ends of a link (``bench/gc_bench.py`` measures it; figures in ``bench/RESULTS.md``).

What :class:`GcTuner` does:

* :meth:`GcTuner.start`, once start-up is done (state restored, the first snapshot taken): one
  ``gc.collect()`` so that start-up's own garbage is not kept, then ``gc.freeze()``: every object that
  exists moves to the permanent generation, which no collection ever scans again; and
  ``gc.set_threshold(*THRESHOLDS)``: generation 0 is collected every :data:`GEN0_THRESHOLD` allocations
  instead of 700, so that the objects of one turn's messages are mostly gone (freed by reference counting)
  before a collection could promote them.
* :meth:`GcTuner.observe`, every turn with the size of the process's tree: when it has grown by
  :data:`REFREEZE_GROWTH` since the last freeze (agents arrived, a snapshot refilled it), ``gc.freeze()``
  again, so that the new nodes join the permanent generation too. A freeze only splices lists: cheap.

A frozen object is still freed by reference counting when its last reference goes (a removed node is);
only a reference cycle among frozen objects is never collected once it becomes garbage. Freezing at start
and on growth (a few times, logarithmically many in the tree's final size) bounds what can be kept so.

:class:`GcStats` times every collection through ``gc.callbacks`` (counts, seconds, the longest pause),
tuned or not, so that the health points (the hub's ``_hub/gc_*``) say what the collector costs either way.

The off switch, for a comparison or a suspected leak: ``[process] gc_tuning = false`` in the hub's and the
recorder's configuration files, ``gsmon web --no-gc-tuning``: CPython's defaults, nothing frozen.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, MutableSequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

__all__ = [
    "GEN0_THRESHOLD",
    "REFREEZE_GROWTH",
    "THRESHOLDS",
    "GcApi",
    "GcStats",
    "GcTuner",
]

log = logging.getLogger(__name__)

#: Allocations (minus deallocations) between two generation-0 collections; CPython's default is 700.
#: bench/gc_bench.py: see bench/RESULTS.md (2026-12-03) for the figures behind this value.
GEN0_THRESHOLD: Final = 20_000
#: (generation 0, generation 1, generation 2); 1 and 2 keep CPython's 10: a collection of generation 1
#: after ten of generation 0, a full one after ten of generation 1 (and only once the objects waiting for
#: it are a quarter of the last full collection's survivors, CPython's own rule).
THRESHOLDS: Final = (GEN0_THRESHOLD, 10, 10)
#: The tree's growth since the last freeze (a fraction of its size then) that makes :meth:`GcTuner.observe`
#: freeze again.
REFREEZE_GROWTH: Final = 0.25
#: ... and at least this many entries, so that a small tree filling up does not freeze at every turn.
REFREEZE_MIN_ENTRIES: Final = 10_000

GcCallback = Callable[[str, dict[str, Any]], object]


class GcApi(Protocol):
    """What :class:`GcTuner` uses of the :mod:`gc` module (a unit test passes a recording stand-in)."""

    @property
    def callbacks(self) -> MutableSequence[Any]: ...

    def collect(self, generation: int = 2) -> int: ...

    def freeze(self) -> None: ...

    def get_freeze_count(self) -> int: ...

    def get_threshold(self) -> tuple[int, int, int]: ...

    def set_threshold(self, threshold0: int, threshold1: int = ..., threshold2: int = ...) -> None: ...


@dataclass
class GcStats:
    """Every collection the process made, timed by a ``gc.callbacks`` hook (:meth:`hook`).

    A collection cannot start inside another (CPython holds a flag), so one start time is enough.
    ``pause_max_s`` and ``full_pause_max_s`` leave out :meth:`GcTuner.start`'s own ``gc.collect()``.
    """

    clock: Callable[[], float] = time.perf_counter
    collections: list[int] = field(default_factory=lambda: [0, 0, 0])  # per generation
    seconds: float = 0.0  # in every collection
    full_seconds: float = 0.0  # in generation-2 collections
    pause_max_s: float = 0.0  # the longest single collection, any generation
    full_pause_max_s: float = 0.0
    last_full_s: float = 0.0
    paused: bool = False  # while GcTuner.start collects on purpose
    _started: float = 0.0

    def hook(self, phase: str, info: dict[str, Any]) -> None:
        """The ``gc.callbacks`` entry: ``phase`` "start" or "stop", ``info["generation"]``."""
        if phase == "start":
            self._started = self.clock()
            return
        elapsed = self.clock() - self._started
        generation = int(info.get("generation", 2))
        self.collections[generation] += 1
        self.seconds += elapsed
        if generation == 2:
            self.full_seconds += elapsed
            self.last_full_s = elapsed
        if self.paused:
            return
        self.pause_max_s = max(self.pause_max_s, elapsed)
        if generation == 2:
            self.full_pause_max_s = max(self.full_pause_max_s, elapsed)

    @property
    def full_collections(self) -> int:
        return self.collections[2]

    def health_points(self) -> dict[str, tuple[Any, int]]:
        """Figures for a health report, ``name -> (value, alert code)`` (no level: they inform)."""
        return {
            "gc_collections": (sum(self.collections), 0),
            "gc_full_collections": (self.collections[2], 0),
            "gc_seconds": (round(self.seconds, 3), 0),
            "gc_full_seconds": (round(self.full_seconds, 3), 0),
            # Seconds, as every duration point (Prometheus, through gsmon web, wants base units).
            "gc_pause_max_s": (round(self.pause_max_s, 6), 0),
            "gc_full_last_s": (round(self.last_full_s, 6), 0),
        }


class GcTuner:
    """Freezes what start-up built and raises the collector's thresholds (see the module docstring).

    ``enabled=False`` changes nothing in the collector; the statistics are kept all the same.
    """

    def __init__(
        self,
        enabled: bool = True,
        *,
        thresholds: tuple[int, int, int] = THRESHOLDS,
        refreeze_growth: float = REFREEZE_GROWTH,
        refreeze_min_entries: int = REFREEZE_MIN_ENTRIES,
        gc_api: GcApi | None = None,
    ) -> None:
        self.enabled = enabled
        self.thresholds = thresholds
        self.refreeze_growth = refreeze_growth
        self.refreeze_min_entries = refreeze_min_entries
        self._gc: GcApi = gc_api if gc_api is not None else gc
        self.stats = GcStats()
        self.started = False
        self.freezes = 0
        self.frozen_at_size = 0  # the tree's size at the last freeze
        # Counted once per freeze: gc.get_freeze_count() walks the whole permanent generation (millions of
        # objects in a hub), so asking it at every health report took nine tenths of a loaded hub's CPU.
        self.frozen_objects = 0
        self._hooked = False

    def hook(self) -> None:
        """Start timing collections (idempotent; :meth:`start` calls it)."""
        if not self._hooked:
            self._gc.callbacks.append(self.stats.hook)
            self._hooked = True

    def unhook(self) -> None:
        """Stop timing collections (a process that ends, a test)."""
        if self._hooked:
            self._gc.callbacks.remove(self.stats.hook)
            self._hooked = False

    def start(self, size: int = 0) -> None:
        """Start-up is done and the tree holds ``size`` entries: collect once, freeze, raise the thresholds."""
        self.hook()
        if self.started:
            return
        self.started = True
        if not self.enabled:
            log.info("garbage collector: CPython's defaults (gc_tuning off), thresholds %s", self._gc.get_threshold())
            return
        self.stats.paused = True
        try:
            self._gc.collect()
        finally:
            self.stats.paused = False
        self._freeze(size)
        self._gc.set_threshold(*self.thresholds)
        log.info(
            "garbage collector: %d objects frozen, thresholds %s (gc_tuning = false restores the defaults)",
            self.frozen_objects,
            self.thresholds,
        )

    def observe(self, size: int) -> bool:
        """The tree holds ``size`` entries now: freeze again when it grew enough since the last freeze.
        True when it froze. Call it every turn (one comparison when nothing is due)."""
        if not self.enabled or not self.started:
            return False
        grown = size - self.frozen_at_size
        if grown < self.refreeze_min_entries or grown < self.refreeze_growth * self.frozen_at_size:
            return False
        self._freeze(size)
        log.debug("garbage collector: tree at %d entries, %d objects frozen", size, self.frozen_objects)
        return True

    def _freeze(self, size: int) -> None:
        self._gc.freeze()
        self.freezes += 1
        self.frozen_at_size = size
        self.frozen_objects = self._gc.get_freeze_count()  # (a walk of the frozen objects: once, here)

    def health_points(self) -> dict[str, tuple[Any, int]]:
        """:meth:`GcStats.health_points`, with the objects frozen (0 with tuning off)."""
        points = self.stats.health_points()
        points["gc_frozen_objects"] = (self.frozen_objects, 0)  # as of the last freeze (0: tuning off)
        return points
