"""What every probe family uses to declare its points on a Monitor."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gsmon.agent.monitor import Monitor
from gsmon.agent.probes.labels import label, unique
from gsmon.agent.probes.rates import DEFAULT_MIN_INTERVAL_S, CounterRates
from gsmon.agent.thresholds import Threshold
from gsmon.common import names as naming

__all__ = ["PollFunction", "RegisteredProbes", "log"]

log = logging.getLogger(__name__)

PollFunction = Callable[[], Any]


class RegisteredProbes:
    """What :func:`~gsmon.agent.probes.register_probes` declared on a Monitor.

    Attributes:
        functions: Each monitor function, keyed by the point names it feeds
            (a function feeding several points returns a tuple in that order).
            They stay plain callables: calling one polls it once, right now.
        parents: The parent of every point.
        dt_s: The poll interval of every point, in seconds.
        default_thresholds: Thresholds the probes suggest from what the
            hardware reports (a sensor's own "high" and "critical"
            temperatures). Put them after the configured ones, so that an
            operator's rule for the same point wins::

                rule = ThresholdRule([*config.thresholds, *probes.default_thresholds])

        primed_at: The monotonic time the last rate counters were primed
            (``None``: no family has rates). A poll at least
            ``DEFAULT_MIN_INTERVAL_S`` later gives every rate a value, which
            :meth:`wait_for_first_rates` waits for before the Monitor starts.
    """

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.functions: dict[tuple[str, ...], PollFunction] = {}
        self.parents: dict[str, str] = {}
        self.dt_s: dict[str, float] = {}
        self.default_thresholds: list[Threshold] = []
        self.primed_at: float | None = None

    def __repr__(self) -> str:
        return f"<RegisteredProbes {len(self.parents)} points in {len(self.functions)} functions>"

    def add_counter_rates(
        self,
        devices: Sequence[str],
        fields: Mapping[str, str],
        read_counters: Callable[[], Mapping[str, Any] | None],
        first: Mapping[str, Any],
        now: Callable[[], float],
        *,
        dt_s: float,
        parent: str,
    ) -> None:
        """Declare per-second rates of psutil's per-device counters (network interfaces, disks): one point
        per device and field (``<device label>_<field>``), fed by one function that reads every counter.

        ``first``: the counters just read (they chose ``devices``); they prime the rates now, so that the
        first poll after :data:`DEFAULT_MIN_INTERVAL_S` has a value. ``read_counters`` may return None
        (an OS that stopped keeping them): no rate then, never an error."""
        rates = CounterRates(devices, fields)
        rates.sample(first, now())
        self.primed(now())

        def counter_rates() -> tuple[float | None, ...]:
            return rates.sample(read_counters() or {}, now())

        self.add(rates.point_names(unique(label(name) for name in devices)), counter_rates, dt_s=dt_s, parent=parent)

    def primed(self, now: float) -> None:
        """A family primed its counters at monotonic time ``now``."""
        self.primed_at = now if self.primed_at is None else max(self.primed_at, now)

    def first_rates_in_s(self, now: float) -> float:
        """Seconds from monotonic ``now`` until a first poll gives every rate a value (0: already)."""
        if self.primed_at is None:
            return 0.0
        # A little past the minimum, so that clock granularity never makes it just too soon.
        return max(0.0, self.primed_at + DEFAULT_MIN_INTERVAL_S * 1.1 - now)

    def wait_for_first_rates(self) -> None:
        """Sleep (at most ~0.3 s, once, before the Monitor starts) so that the first poll of every rate
        probe already has a long enough window: rates filled from the first frame, not one poll later."""
        time.sleep(self.first_rates_in_s(time.monotonic()))

    @property
    def points(self) -> list[str]:
        """The names of every registered point, in registration order."""
        return list(self.parents)

    def path(self, point: str) -> str:
        """The point's path inside the monitor (``"CPU/cpu_total_percent"``)."""
        return naming.join(self.parents[point], point)

    def add(self, points: tuple[str, ...], function: PollFunction, *, dt_s: float, parent: str) -> None:
        """Declare ``function`` as the source of ``points`` under ``parent``,
        polled every ``dt_s`` seconds, with the Monitor's usual decorator."""
        point: str | tuple[str, ...] = points if len(points) > 1 else points[0]
        self.monitor.monitor(point=point, dt=dt_s, parent=parent)(function)
        self.functions[points] = function
        for name in points:
            self.parents[name] = parent
            self.dt_s[name] = dt_s
