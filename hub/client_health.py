"""Health points that the hub's clients report (the recorder's lag, the notifier's failed deliveries). No I/O.

::

    client DEALER --COMMAND report_health {client?, points, ttl_s, final?}--> QueryCore
        --> ClientHealth.report(name, points, ttl_s, now)
    every health refresh: ClientHealth.points(now) --> _hub/clients/<name>/<point> in the tree

A subscriber process has no agent socket and no tree of its own, yet an
operator must see when the recorder falls behind or the notifier cannot
deliver -- in the same tree, with the same alarms, as everything else. So
such a client reports a few figures over the query socket it already holds,
and the hub shows them as its own health points under
``_hub/clients/<name>/``. ``name`` is the caller's key name with keys (a
client cannot report under another key's name), else the ``client`` the
args give.

STALE never lies here either: a report lasts ``ttl_s``; when a client stops
reporting, its figures go (a last good lag would be a lie) and
``_hub/clients/<name>/reporting`` turns RED with the value ``false`` -- an
alarm, like an agent gone silent. A client that stops cleanly sends
``final: true`` and its subtree is removed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from gsmon.common.alerts import CriticalAlert, GreenAlert, NoAlert, OrangeAlert, RedAlert
from gsmon.common.names import InvalidNameError, check_name

__all__ = ["CLIENTS_MOUNT", "MAX_POINTS", "MAX_TTL_S", "ClientHealth"]

#: Where the reports appear, under the hub's own ``_hub`` subtree.
CLIENTS_MOUNT: Final = "clients"
MAX_POINTS: Final = 64
MAX_DEPTH: Final = 3  # a point's name: up to this many segments (e.g. receivers/ops/failures)
MAX_TTL_S: Final = 3600.0
MAX_CLIENTS: Final = 256
_MAX_TEXT: Final = 200
_LEVELS: Final = frozenset(
    (NoAlert.alertcode, GreenAlert.alertcode, OrangeAlert.alertcode, RedAlert.alertcode, CriticalAlert.alertcode)
)


@dataclass(slots=True)
class _Report:
    points: dict[str, tuple[Any, int]]
    expires_at: float  # hub monotonic seconds


class ClientHealth:
    """The latest report of each client, and what it shows in the tree."""

    def __init__(self) -> None:
        self._reports: dict[str, _Report] = {}

    def report(self, name: object, points: object, ttl_s: object, final: bool, now: float) -> str | None:
        """Take one report; ``None``, or what is wrong with it (one line, nothing is kept)."""
        try:
            name = check_name(name, "client name")
        except InvalidNameError as error:
            return str(error)
        if final:
            self._reports.pop(name, None)
            return None
        if type(ttl_s) not in (int, float) or not 0 < float(ttl_s) <= MAX_TTL_S:  # type: ignore[arg-type]
            return f"ttl_s must be a number of seconds in (0, {MAX_TTL_S:g}]"
        if not isinstance(points, dict) or not 0 < len(points) <= MAX_POINTS:
            return f"points must be a map of 1 to {MAX_POINTS} names to [value, level]"
        taken: dict[str, tuple[Any, int]] = {}
        for point, item in points.items():
            if not isinstance(point, str) or not 0 < len(segments := point.split("/")) <= MAX_DEPTH:
                return f"a health point name is 1 to {MAX_DEPTH} path segments, not {point!r}"
            try:
                for segment in segments:
                    check_name(segment, "health point name")
            except InvalidNameError as error:
                return str(error)
            if segments[0] == "reporting":
                return "'reporting' is the hub's own point: choose another name"
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                return f"point {point!r}: give [value, level]"
            value, level = item
            if level not in _LEVELS or type(level) is not int:
                return f"point {point!r}: level must be one of {sorted(_LEVELS)}"
            if not _plain(value):
                return f"point {point!r}: the value must be a number, a boolean or text of <= {_MAX_TEXT} characters"
            taken[point] = (value, level)
        if name not in self._reports and len(self._reports) >= MAX_CLIENTS:
            return f"this hub already shows {MAX_CLIENTS} clients' health"
        self._reports[name] = _Report(taken, now + float(ttl_s))  # type: ignore[arg-type]
        return None

    def points(self, now: float) -> dict[str, tuple[Any, int]]:
        """``clients/<name>/<point> -> (value, alert code)`` for the hub's health points."""
        shown: dict[str, tuple[Any, int]] = {}
        for name, report in self._reports.items():
            base = f"{CLIENTS_MOUNT}/{name}"
            if now <= report.expires_at:
                shown[f"{base}/reporting"] = (True, GreenAlert.alertcode)
                for point, entry in report.points.items():
                    shown[f"{base}/{point}"] = entry
            else:
                shown[f"{base}/reporting"] = (False, RedAlert.alertcode)
        return shown

    def __len__(self) -> int:
        return len(self._reports)


def _plain(value: object) -> bool:
    if isinstance(value, bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= _MAX_TEXT
