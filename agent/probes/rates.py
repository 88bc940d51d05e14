"""Counters to rates: the one place that turns cumulative counters into per-second values.

psutil reports network and disk traffic, and process CPU time, as counters
that only grow. A rate is the difference between two samples divided by the
time between them, measured with ``time.monotonic()`` (a wall clock can jump).
:class:`RateTracker` is pure: it is handed ``now`` and never reads a clock,
so tests feed it made-up counters and times.

Rules:

* the first sample of a key has no rate (``None``): there is nothing to
  compare it with;
* a counter that went down (a 32-bit counter wrapped, a driver was reloaded,
  a process restarted under a reused key) has no rate this time either; it
  becomes the new baseline, so the next sample has a proper rate. A negative
  rate is never reported;
* samples closer together than ``min_interval_s`` give no rate and do not
  replace the previous sample: a rate over a few milliseconds is mostly
  noise (counters advance in ticks), and keeping the older sample makes the
  next rate cover a useful window.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Final

__all__ = ["DEFAULT_MIN_INTERVAL_S", "CounterRates", "RateTracker"]

#: Shortest time between two samples that gives a rate.
DEFAULT_MIN_INTERVAL_S: Final = 0.25


class RateTracker:
    """Per-key counter samples, and the rate since the previous one.

    Example::

        rates = RateTracker()
        rates.rate("eth0.rx", 1_000, now=10.0)   # None: first sample
        rates.rate("eth0.rx", 3_000, now=12.0)   # 1000.0 (bytes per second)
    """

    __slots__ = ("_samples", "min_interval_s")

    def __init__(self, min_interval_s: float = DEFAULT_MIN_INTERVAL_S) -> None:
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s must be at least 0, got {min_interval_s}")
        self.min_interval_s = min_interval_s
        self._samples: dict[Hashable, tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self._samples)

    def rate(self, key: Hashable, counter: float, now: float) -> float | None:
        """Record ``counter`` for ``key`` at monotonic time ``now``; return the
        increase per second since the previous sample, or ``None`` when there
        is no meaningful rate (see the module rules)."""
        previous = self._samples.get(key)
        if previous is None:
            self._samples[key] = (counter, now)
            return None
        last_counter, last_now = previous
        elapsed = now - last_now
        if elapsed < 0:
            # Only a caller mixing clocks can do this; start again from here.
            self._samples[key] = (counter, now)
            return None
        if elapsed < self.min_interval_s or elapsed == 0:
            return None
        self._samples[key] = (counter, now)
        increase = counter - last_counter
        if increase < 0:
            return None
        return increase / elapsed

    def forget(self, key: Hashable) -> None:
        """Drop the sample of ``key`` (its next sample is a first sample)."""
        self._samples.pop(key, None)

    def retain(self, keys: Iterable[Hashable]) -> None:
        """Drop every sample whose key is not in ``keys`` (processes that
        ended, interfaces that vanished), so the tracker does not grow forever."""
        keep = set(keys)
        for key in [key for key in self._samples if key not in keep]:
            del self._samples[key]


class CounterRates:
    """Per-second rates of chosen counter fields for a fixed list of devices.

    ``fields`` maps a counter attribute (``"bytes_recv"``) to the suffix of
    its point (``"rx_bytes_per_s"``). :meth:`sample` takes what psutil
    returned (``{device: named tuple}``) and gives one value per device and
    field, devices first: ``None`` for a first sample, a device that is gone,
    or a counter that went backwards.
    """

    __slots__ = ("devices", "fields", "tracker")

    def __init__(self, devices: Sequence[str], fields: Mapping[str, str], tracker: RateTracker | None = None) -> None:
        self.devices = tuple(devices)
        self.fields = dict(fields)
        self.tracker = tracker if tracker is not None else RateTracker()

    def point_names(self, prefixes: Sequence[str]) -> tuple[str, ...]:
        """``<prefix>_<suffix>`` for each device's prefix and each field, in :meth:`sample` order."""
        return tuple(f"{prefix}_{suffix}" for prefix in prefixes for suffix in self.fields.values())

    def sample(self, counters: Mapping[str, Any], now: float) -> tuple[float | None, ...]:
        """The rates since the previous sample (see the class docstring)."""
        values: list[float | None] = []
        for device in self.devices:
            sample = counters.get(device)
            for field in self.fields:
                key = (device, field)
                if sample is None:
                    self.tracker.forget(key)  # if it comes back, its counters may have restarted
                    values.append(None)
                    continue
                rate = self.tracker.rate(key, getattr(sample, field), now)
                values.append(None if rate is None else round(rate, 2))
        return tuple(values)
