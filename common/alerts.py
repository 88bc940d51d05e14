"""The alert ladder shared by every gsmon process.

A monitor function reports a level by returning an :class:`Alert` instance
wrapping its value (``return RedAlert(42.0)``); a plain value means
:class:`NoAlert`. Levels are ordered by ``alertcode`` and a parent always
shows the worst (highest) code among its children.

=============  =====  ==========================================
class          code   meaning
=============  =====  ==========================================
NoAlert           0   a value with no judgement attached
GreenAlert       10   checked and fine
OrangeAlert      20   needs attention
RedAlert         30   broken
(STALE)          50   hub-assigned: not refreshed in time
CriticalAlert   100   stop everything and look
=============  =====  ==========================================

Users may subclass :class:`Alert` with their own ``alertcode`` and
``alertstr``; such classes travel over the wire as (code, string) pairs and
roll up like the built-in ones.

STALE has no class a monitor function could return: only the hub decides that
a point is stale. It sits above Red so that a vanished agent never reads as
healthy, and below Critical so that a real emergency is not hidden by a
network hiccup.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

__all__ = [
    "STALE_ALERTCODE",
    "STALE_ALERTSTR",
    "Alert",
    "CriticalAlert",
    "GreenAlert",
    "NoAlert",
    "OrangeAlert",
    "RedAlert",
    "alertstr_for",
    "as_alert",
    "transition_line",
]

STALE_ALERTCODE: Final = 50
STALE_ALERTSTR: Final = "STALE"


class Alert:
    """A value together with an alert level.

    Subclasses set the class attributes ``alertcode`` (an int; higher is
    worse) and ``alertstr`` (a short upper-case label, or ``None`` for "no
    alert"). The wrapped value is ``val``.

    Example::

        class MaintenanceAlert(Alert):
            alertstr = "MAINT"
            alertcode = 15
    """

    alertstr: ClassVar[str | None] = None
    alertcode: ClassVar[int] = 0

    __slots__ = ("val",)

    def __init__(self, val: Any) -> None:
        self.val = val

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Alert):
            return NotImplemented
        return (
            type(self).alertcode == type(other).alertcode
            and type(self).alertstr == type(other).alertstr
            and self.val == other.val
        )

    def __hash__(self) -> int:
        return hash((type(self).alertcode, type(self).alertstr))

    def __str__(self) -> str:
        label = self.alertstr if self.alertstr else "NO"
        return f"'{self.val}' ( {label} alert<{self.alertcode}> )"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.val!r})"


class NoAlert(Alert):
    """A plain value: nothing to judge."""

    __slots__ = ()
    alertstr = None
    alertcode = 0


class GreenAlert(Alert):
    """Checked and fine."""

    __slots__ = ()
    alertstr = "GREEN"
    alertcode = 10


class OrangeAlert(Alert):
    """Degraded: needs attention soon."""

    __slots__ = ()
    alertstr = "ORANGE"
    alertcode = 20


class RedAlert(Alert):
    """Broken: needs attention now."""

    __slots__ = ()
    alertstr = "RED"
    alertcode = 30


class CriticalAlert(Alert):
    """Stop everything and look."""

    __slots__ = ()
    alertstr = "CRITICAL"
    alertcode = 100


_BUILTIN_ALERTSTRS: Final[dict[int, str]] = {
    GreenAlert.alertcode: "GREEN",
    OrangeAlert.alertcode: "ORANGE",
    RedAlert.alertcode: "RED",
    STALE_ALERTCODE: STALE_ALERTSTR,
    CriticalAlert.alertcode: "CRITICAL",
}


def alertstr_for(alertcode: int, known: dict[int, str] | None = None) -> str:
    """Return the label for ``alertcode``: from ``known`` (labels learnt from
    user subclasses), else the built-in ladder, else ``""``."""
    if known is not None:
        label = known.get(alertcode)
        if label is not None:
            return label
    return _BUILTIN_ALERTSTRS.get(alertcode, "")


def as_alert(result: Any) -> Alert:
    """Wrap a monitor function's return value: an :class:`Alert` stays as it
    is, anything else becomes ``NoAlert(result)``."""
    return result if isinstance(result, Alert) else NoAlert(result)


def transition_line(
    path: str, old: tuple[int | None, str], new: tuple[int, str], value: Any, agent: str | None = None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """One alert transition as the agent's and the hub's logs write it: the format with its arguments,
    and the same as structured fields (``point``, ``old_alert``, ``new_alert``, ``old_alertstr``,
    ``new_alertstr``, ``value``; the hub adds ``agent``). ``old``/``new``: (code, label); an old code None
    is a new point (label ``unset``, field ``old_alertstr`` None)."""
    (old_code, old_label), (new_code, new_label) = old, new
    extra: dict[str, Any] = {
        "point": path,
        "old_alert": old_code,
        "new_alert": new_code,
        "old_alertstr": None if old_code is None else old_label,
        "new_alertstr": new_label,
        "value": value,
    }
    if agent is None:
        return ('alert "%s" %s --> %s (value %s)', path, old_label, new_label, value), extra
    extra["agent"] = agent
    return ('alert "%s" %s --> %s (value %s, agent %s)', path, old_label, new_label, value, agent), extra
