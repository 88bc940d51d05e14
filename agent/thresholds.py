"""Threshold rules: turn numeric point values into alert levels, with hysteresis.

A :class:`Threshold` says at which values a point turns Orange, Red and
(optionally) Critical, whether the bad side is ``"above"`` (CPU load,
temperature) or ``"below"`` (free space), and by how much the value must come
back past a threshold before the level drops again (``hysteresis``, in the
point's own units). Without hysteresis a value hovering at 90.0 % would flap
Red/Orange on every poll and flood the log and the subscribers.

A :class:`ThresholdRule` holds a list of thresholds and the level each point
is at; it does no I/O and knows no clock, so it is tested with plain
sequences. Plug it into a Monitor::

    rule = ThresholdRule(config.thresholds)
    mon.set_alert_rule(rule)

The Monitor calls it only for values returned as plain values: a function
that returns ``RedAlert(x)`` keeps its Red whatever the thresholds say.

Rules, for ``direction = "above"`` (``"below"`` is the mirror image):

* a value at or above a threshold is at that threshold's level; below every
  threshold it is Green (the value was judged and found fine);
* the level rises at once when the value reaches a higher threshold;
* the level drops only when the value is below the threshold it was at minus
  ``hysteresis`` (it drops to the highest level whose threshold minus
  ``hysteresis`` the value still reaches);
* only ints and floats are judged. ``bool`` is not a number here (``True``
  is not 1 %), and neither are ``None``, strings or NaN: such values get no
  alert (NoAlert) and leave the point's remembered level untouched, so one
  missing reading does not reset the hysteresis.

A threshold's ``point`` selects points by their path inside the agent
(``"CPU/cpu_total_percent"``), with :mod:`fnmatch` wildcards
(``"Disk/*_used_percent"``; ``*`` also crosses ``/``). A pattern without ``/``
is matched against the point's own name instead (``"*_temp_c"``). The first
threshold that matches a point is the one used, so list specific rules before
general ones.

A threshold that matches no point at all is almost always a typo (``CPU/cpu_total``
for ``CPU/cpu_total_percent``) that would silently judge nothing:
:func:`unmatched_thresholds` finds them once the agent's points are known, and
``gsmon agent`` logs a WARNING for each.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Final, Literal

from gsmon.common import names as naming
from gsmon.common.alerts import Alert, CriticalAlert, GreenAlert, NoAlert, OrangeAlert, RedAlert

__all__ = ["Direction", "Threshold", "ThresholdRule", "unmatched_thresholds"]

Direction = Literal["above", "below"]

_LEVELS: Final[tuple[tuple[str, type[Alert]], ...]] = (
    ("orange", OrangeAlert),
    ("red", RedAlert),
    ("critical", CriticalAlert),
)
_GREEN: Final = -1  # level index for "below every threshold"


@dataclass(frozen=True, slots=True)
class Threshold:
    """When one point (or every point matching a pattern) is Orange, Red or Critical.

    Args:
        point: Path inside the agent, an :mod:`fnmatch` pattern, or a bare
            point name / name pattern (no ``/``).
        orange, red, critical: Threshold values; any may be left out, but
            not all of them. They must be strictly ordered in the bad
            direction (``orange < red < critical`` for ``"above"``).
        direction: ``"above"`` when high values are bad, ``"below"`` when
            low values are.
        hysteresis: How far (in the point's units, ``>= 0``) a value must come
            back past a threshold before its level is left.

    Raises ``ValueError`` with an ``expected ..., got ...`` message when the
    values do not make sense.
    """

    point: str
    orange: float | None = None
    red: float | None = None
    critical: float | None = None
    direction: Direction = "above"
    hysteresis: float = 0.0

    def __post_init__(self) -> None:
        naming.check_path(self.point, "point pattern")  # also refuses non-strings from untyped callers
        if self.direction not in ("above", "below"):
            raise ValueError(f"expected direction 'above' or 'below', got {self.direction!r}")
        if not _is_real(self.hysteresis) or self.hysteresis < 0:
            raise ValueError(f"expected a hysteresis of at least 0, got {self.hysteresis!r}")
        present: list[tuple[str, float]] = [(label, value) for label, value in self.values() if value is not None]
        if not present:
            raise ValueError("expected at least one of orange, red or critical, got none")
        for label, value in present:
            if not _is_real(value):
                raise ValueError(f"expected {label} to be a finite number, got {value!r}")
        for (low_label, low), (high_label, high) in itertools.pairwise(present):
            ordered = low < high if self.direction == "above" else low > high
            if not ordered:
                relation = "below" if self.direction == "above" else "above"
                raise ValueError(
                    f"expected {low_label} {relation} {high_label} (direction {self.direction!r}), "
                    f"got {low_label}={low:g}, {high_label}={high:g}"
                )

    def values(self) -> tuple[tuple[str, float | None], ...]:
        """``(level name, threshold)`` from the mildest level to the worst."""
        return (("orange", self.orange), ("red", self.red), ("critical", self.critical))

    def matches(self, path: str) -> bool:
        """Whether this threshold applies to the point at ``path`` (inside the agent)."""
        if naming.SEPARATOR in self.point:
            return fnmatchcase(path, self.point)
        return fnmatchcase(naming.split(path)[-1], self.point)

    def level(self, value: float, current: int) -> int:
        """The level index for ``value`` given the ``current`` one (pure).

        Indexes: -1 Green, then 0, 1, 2 for orange, red, critical (only the
        thresholds that are set take part).
        """
        sign = 1.0 if self.direction == "above" else -1.0
        reached = _GREEN
        kept = _GREEN
        for index, (_, threshold) in enumerate(self.values()):
            if threshold is None:
                continue
            # Work on the "above" scale: for "below", -value >= -threshold.
            if sign * value >= sign * threshold:
                reached = index
            if sign * value >= sign * threshold - self.hysteresis:
                kept = index
        if reached >= current:
            return reached
        return min(current, kept)


def unmatched_thresholds(thresholds: Sequence[Threshold], paths: Iterable[str]) -> list[int]:
    """The indexes of the ``thresholds`` that match none of ``paths`` (points' paths inside the agent)."""
    known = list(paths)
    return [index for index, threshold in enumerate(thresholds) if not any(threshold.matches(p) for p in known)]


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class ThresholdRule:
    """Alert levels for many points from a list of :class:`Threshold`, with
    per-point hysteresis state.

    Call :meth:`apply` with a point path and a value to get the alert class;
    use the instance itself as a Monitor alert rule (``rule(path, alert)``).
    Thread-safe: the state is behind a lock.
    """

    def __init__(self, thresholds: Iterable[Threshold] = ()) -> None:
        self.thresholds: tuple[Threshold, ...] = tuple(thresholds)
        self._levels: dict[str, int] = {}
        self._matched: dict[str, Threshold | None] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<ThresholdRule {len(self.thresholds)} thresholds, {len(self._levels)} points judged>"

    def threshold_for(self, path: str) -> Threshold | None:
        """The first threshold that matches ``path``, or ``None``."""
        with self._lock:
            return self._lookup(path)

    def _lookup(self, path: str) -> Threshold | None:
        if path not in self._matched:
            # Patterns are matched once per path, not on every poll.
            self._matched[path] = next((t for t in self.thresholds if t.matches(path)), None)
        return self._matched[path]

    def apply(self, path: str, value: Any) -> type[Alert]:
        """The alert class for ``value`` of the point at ``path``.

        ``NoAlert`` when no threshold matches or the value is not a real
        number (bools, NaN, ``None``, text...); otherwise Green, Orange, Red
        or Critical, taking the point's previous level into account.
        """
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            return NoAlert
        with self._lock:
            threshold = self._lookup(path)
            if threshold is None:
                return NoAlert
            level = threshold.level(value, self._levels.get(path, _GREEN))
            self._levels[path] = level
        return GreenAlert if level == _GREEN else _LEVELS[level][1]

    def alert_for(self, path: str, value: Any) -> Alert:
        """``value`` wrapped in the alert class :meth:`apply` picks."""
        return self.apply(path, value)(value)

    def __call__(self, path: str, alert: Alert) -> Alert:
        """The Monitor alert-rule hook: judge ``alert.val`` of the point at ``path``."""
        judged = self.apply(path, alert.val)
        return alert if judged is NoAlert else judged(alert.val)

    def reset(self, path: str | None = None) -> None:
        """Forget the remembered level of one point (or of every point)."""
        with self._lock:
            if path is None:
                self._levels.clear()
            else:
                self._levels.pop(path, None)
