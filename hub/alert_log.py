"""The ``gsmon.hub.alerts`` channel: point alert transitions, one line each, rate limited; returns summed up.

:class:`~gsmon.hub.state.HubState` hands every transition at or above ``alert_log_threshold`` (old or new
code) to :meth:`AlertLog.transition`; a line says the point, old -> new, its value and its agent, with the
same as structured fields (``point``, ``old_alert``, ``new_alert``, ``old_alertstr``, ``new_alertstr``,
``value``, ``agent``), at ``alert_log_level``. At most :data:`MAX_LINES_PER_S` lines a second; past that a
count of what was left out.

Why returns are summed up: an agent that restarts, or comes back from a silence, brings every one of its
points from STALE back to its own level at once -- a hundred lines of ``STALE --> GREEN`` per agent, which
said nothing the one line "agent ... is back" did not. So a point going from STALE to a level below the
threshold is not logged by itself; what a turn brought back is said when the hub publishes it
(:meth:`AlertLog.flush`, from ``HubState.drain``), one line per agent::

    rack1: 100 points fresh again after 12.3 s

(``12.3 s``: the longest any of them had gone without news; fields ``agent``, ``points``, ``quiet_s``,
``old_alert`` = STALE, and ``point``, ``new_alert``... None: no one point). A single point fresh again
keeps its own line, as before. A point coming back from STALE at or above the threshold (STALE --> RED) is
logged by itself: it still needs a look. (What comes back first is the hub's own judgement: a STATE from a
silent agent ends the silence, then sets the new levels, so a point back at RED reads GREEN --> RED.)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Final

from gsmon.common.alerts import STALE_ALERTCODE, STALE_ALERTSTR, transition_line

__all__ = ["MAX_LINES_PER_S", "AlertLog"]

MAX_LINES_PER_S: Final = 200
# A summary line has every field a transition's line has (readers index them), of no one point.
_SUMMARY_FIELDS: Final = {
    "point": None,
    "old_alert": STALE_ALERTCODE,
    "new_alert": None,
    "old_alertstr": STALE_ALERTSTR,
    "new_alertstr": None,
    "value": None,
}
# Not a module logger but a documented channel (hub/state.py's docstring): operators route or filter
# the merged tree's alert transitions by this name, whichever module writes them.
alert_log = logging.getLogger("gsmon.hub.alerts")


@dataclass(slots=True)
class _Returns:
    """One agent's points fresh again since the last flush."""

    points: int = 0
    quiet_s: float = 0.0  # the longest time one of them had gone without news
    first: tuple[tuple[Any, ...], dict[str, Any]] | None = None  # its own line, if it stays the only one


@dataclass(slots=True)
class AlertLog:
    """Writes the alert transitions the hub core hands it (pure but for the logger; takes ``now``)."""

    level: int
    threshold: int
    _window_start: float = -math.inf
    _lines: int = 0
    _suppressed: int = 0
    _returns: dict[str, _Returns] = field(default_factory=dict)

    def transition(
        self,
        now: float,
        path: str,
        agent: str,
        old: tuple[int | None, str],
        new: tuple[int, str],
        value: Any,
        quiet_s: float,
    ) -> None:
        """Point ``path`` of ``agent`` went from ``old`` to ``new`` (code, label; an old code None: a new point).
        ``quiet_s``: how long the point had gone without news (0: unknown)."""
        old_code, new_code = old[0], new[0]
        if old_code == STALE_ALERTCODE and new_code < self.threshold:
            returns = self._returns.setdefault(agent, _Returns())
            returns.points += 1
            returns.quiet_s = max(returns.quiet_s, quiet_s)
            returns.first = transition_line(path, old, new, value, agent) if returns.points == 1 else None
        elif self._admit(now):  # (before the line is made: a storm is mostly left out)
            args, extra = transition_line(path, old, new, value, agent)
            alert_log.log(self.level, *args, extra=extra)

    def flush(self, now: float) -> None:
        """Say what came back since the last call: one line per agent."""
        returns, self._returns = self._returns, {}
        for agent, back in returns.items():
            if not self._admit(now):
                continue
            if back.first is not None:
                alert_log.log(self.level, *back.first[0], extra=back.first[1])
                continue
            alert_log.log(
                self.level,
                "%s: %d points fresh again after %.1f s",
                agent,
                back.points,
                back.quiet_s,
                extra={**_SUMMARY_FIELDS, "agent": agent, "points": back.points, "quiet_s": back.quiet_s},
            )

    def _admit(self, now: float) -> bool:
        """Whether one more line fits in this second (the first of a new second says what the last left out)."""
        if now - self._window_start >= 1.0:
            if self._suppressed:
                alert_log.warning(
                    "%d more alert transition(s) in %.0f s not logged (more than %d a second)",
                    self._suppressed,
                    now - self._window_start,
                    MAX_LINES_PER_S,
                )
            self._window_start, self._lines, self._suppressed = now, 0, 0
        if self._lines >= MAX_LINES_PER_S:
            self._suppressed += 1
            return False
        self._lines += 1
        return True
