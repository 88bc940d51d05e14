"""CPU probe: total and per-core busy percentages, and load averages.

Points (parent ``CPU``):

=====================  =======  ==============================================
name                   unit     meaning
=====================  =======  ==============================================
cpu_total_percent      percent  busy time of all cores over the last interval
cpu<N>_percent         percent  busy time of core N (``per_core = true``)
load_1min              --       load average over 1 minute (``[probes.load]``)
load_5min              --       ... over 5 minutes
load_15min             --       ... over 15 minutes
=====================  =======  ==============================================

Why not ``psutil.cpu_percent(interval=None)``: it keeps its previous sample
*per calling thread*, and monitor functions run on whichever pool worker is
free, so each call would measure since that worker's last call (or return the
meaningless 0.0 of a first call). :class:`CpuUsage` keeps its own previous
``cpu_times(percpu=True)`` sample instead: one baseline, primed once at
registration, never blocking (no ``interval=``). The arithmetic is psutil's:
busy = total - idle - iowait, where total leaves out guest time that Linux
already counts in user time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Final

import psutil

from gsmon.agent.config import CpuProbe, LoadProbe
from gsmon.agent.probes.base import RegisteredProbes
from gsmon.agent.probes.rates import DEFAULT_MIN_INTERVAL_S
from gsmon.agent.thresholds import Threshold

__all__ = ["PARENT", "CpuUsage", "busy_and_total", "default_load_threshold", "register_cpu", "register_load"]

PARENT: Final = "CPU"
#: Offered as a default threshold (an operator's own [[thresholds]] for the point win).
CPU_THRESHOLD: Final = Threshold(f"{PARENT}/cpu_total_percent", orange=85.0, red=95.0, hysteresis=5.0)

CpuTimes = tuple[float, ...]  # a psutil scputimes named tuple


def busy_and_total(times: CpuTimes) -> tuple[float, float]:
    """Busy and total CPU seconds of one ``cpu_times()`` sample."""
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = getattr(times, "idle", 0.0) + getattr(times, "iowait", 0.0)
    return total - idle, total


def _percent(busy: float, total: float) -> float | None:
    if total <= 0:
        return None
    # Counters from different cores are read at slightly different moments; clamp.
    return round(min(100.0, max(0.0, 100.0 * busy / total)), 1)


class CpuUsage:
    """Busy percentages from successive ``cpu_times(percpu=True)`` samples (pure: takes ``now``)."""

    __slots__ = ("_last", "_last_at", "cores", "min_interval_s")

    def __init__(self, cores: int, min_interval_s: float = DEFAULT_MIN_INTERVAL_S) -> None:
        self.cores = cores
        self.min_interval_s = min_interval_s
        self._last: list[tuple[float, float]] | None = None
        self._last_at = 0.0

    def sample(self, per_cpu: Sequence[CpuTimes], now: float) -> tuple[float | None, list[float | None]]:
        """``(total percent, [percent per core])`` since the previous sample;
        ``None`` where there is no meaningful value yet (first sample, samples
        too close together, cores appearing or disappearing)."""
        current = [busy_and_total(times) for times in per_cpu]
        nothing: tuple[float | None, list[float | None]] = (None, [None] * self.cores)
        if self._last is None or len(current) != len(self._last) or now < self._last_at:
            self._last, self._last_at = current, now
            return nothing
        if now - self._last_at < self.min_interval_s:
            return nothing  # keep the older baseline: the next window will be long enough
        deltas = [(b2 - b1, t2 - t1) for (b1, t1), (b2, t2) in zip(self._last, current, strict=True)]
        self._last, self._last_at = current, now
        per_core = [_percent(busy, total) for busy, total in deltas]
        per_core = (per_core + [None] * self.cores)[: self.cores]
        total = _percent(sum(busy for busy, _ in deltas), sum(total for _, total in deltas))
        return total, per_core


def register_cpu(
    probes: RegisteredProbes,
    config: CpuProbe,
    *,
    read: Callable[[], Sequence[CpuTimes]] | None = None,
    clock: Callable[[], float] | None = None,
) -> None:
    """Declare ``cpu_total_percent`` (and ``cpu<N>_percent`` per core) under ``CPU``.

    ``read`` and ``clock`` replace ``psutil.cpu_times(percpu=True)`` and
    ``time.monotonic`` (tests use them to feed made-up samples).
    """
    read_times: Callable[[], Sequence[CpuTimes]] = read or (lambda: psutil.cpu_times(percpu=True))
    now: Callable[[], float] = clock or time.monotonic
    first = read_times()
    usage = CpuUsage(len(first))
    usage.sample(first, now())  # prime: the first poll then already has a baseline
    probes.primed(now())
    probes.default_thresholds.append(CPU_THRESHOLD)

    names = ["cpu_total_percent"]
    if config.per_core:
        names += [f"cpu{index}_percent" for index in range(usage.cores)]

    def cpu_percent() -> float | tuple[float | None, ...] | None:
        total, per_core = usage.sample(read_times(), now())
        return (total, *per_core) if config.per_core else total

    probes.add(tuple(names), cpu_percent, dt_s=config.dt_s, parent=PARENT)


def default_load_threshold(cores: int) -> Threshold:
    """The 5-minute load average against the core count: ORANGE at 2 per core, RED at 4 per core."""
    cores = max(1, cores)
    return Threshold(f"{PARENT}/load_5min", orange=2.0 * cores, red=4.0 * cores, hysteresis=0.25 * cores)


def register_load(probes: RegisteredProbes, config: LoadProbe) -> None:
    """Declare ``load_1min``, ``load_5min`` and ``load_15min`` under ``CPU``."""
    probes.default_thresholds.append(default_load_threshold(psutil.cpu_count() or 1))
    # On Windows psutil emulates the load average from a background thread
    # started by the first call; call it now so it has started by the first poll.
    psutil.getloadavg()

    def load_average() -> tuple[float, float, float]:
        one, five, fifteen = psutil.getloadavg()
        return round(one, 2), round(five, 2), round(fifteen, 2)

    probes.add(("load_1min", "load_5min", "load_15min"), load_average, dt_s=config.dt_s, parent=PARENT)
