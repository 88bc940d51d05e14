"""The one place the view reads the operator layer's node fields (issue 13, ``ALARMS.md``).

The hub's alarm core adds these keys to NODE payloads (minor 2; the decoder
hands them over as ``NodeUpdate.operator``); the client carries them on its
nodes (attributes of the same name on :class:`~gsmon.common.client.NodeState`,
or keys of a mapping node)::

    attention      int        worst unacked, unshelved alarm level at or below the node (0: none)
    alarm          map|nil    the alarm summary: id, state, level, max_level, latch, reason,
                              raised_at, rtn_at, acked_by, acked_at, ack_comment, shelf_id
    since          float      wall seconds: when the node's current level began
    raw_alert      int|nil    the level before debounce (points)
    pending        map|nil    {"level": code, "since": t}: a level waiting out its for_s
    flapping       map|nil    {"since": t, "changes": n}
    shelf_id       int|nil    on shelved points
    shelved_below  int        on parents: shelved points below
    unacked_below  int        on parents: unacked alarms below

Every field is read defensively: missing, ``None`` or of the wrong type reads
as "not known" (``None``), never as an error, so that the view works the same
on a hub of today (none of them) and on one that sends them all. Until a hub
sends ``attention``, a node's attention is its own display level (its alert
level, STALE for a stale point): the attention tree then expands every node
at ORANGE or worse.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from gsmon.common.alerts import STALE_ALERTCODE

__all__ = [
    "FIELDS",
    "UNACKED_STATES",
    "AlarmSummary",
    "NodeExtras",
    "display_level",
    "field_of",
    "read_extras",
]

#: The node fields this adapter reads (the integrator's checklist).
FIELDS: Final = (
    "attention",
    "alarm",
    "since",
    "raw_alert",
    "pending",
    "flapping",
    "shelf_id",
    "shelved_below",
    "unacked_below",
)
#: Alarm states that still need an operator's acknowledgement.
UNACKED_STATES: Final = frozenset({"active_unacked", "rtn_unacked"})


def field_of(node: object, name: str) -> Any:
    """The node's field ``name``: an attribute, else a mapping key; ``None`` when absent."""
    if isinstance(node, Mapping):
        return node.get(name)
    return getattr(node, name, None)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _time(value: object) -> float | None:
    """A time as wall seconds: a number, an aware datetime or ISO 8601 text (``...Z`` included)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.timestamp() if value.tzinfo is not None else value.replace(tzinfo=dt.UTC).timestamp()
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return _time(parsed)
    return None


@dataclass(frozen=True, slots=True)
class AlarmSummary:
    """A node's ``alarm`` map, typed (fields the hub did not send are ``None``)."""

    id: int
    state: str
    level: int | None = None
    max_level: int | None = None
    latch: bool | None = None
    reason: str | None = None
    raised_at: float | None = None
    rtn_at: float | None = None
    acked_by: str | None = None
    acked_at: float | None = None
    ack_comment: str | None = None
    shelf_id: int | None = None

    @property
    def unacked(self) -> bool:
        return self.state in UNACKED_STATES

    @classmethod
    def parse(cls, value: object) -> AlarmSummary | None:
        """The summary from the wire's map; ``None`` unless it has at least an int ``id`` and a ``state``."""
        if not isinstance(value, Mapping):
            return None
        alarm_id, state = _int(value.get("id")), _text(value.get("state"))
        if alarm_id is None or state is None:
            return None
        return cls(
            alarm_id,
            state,
            level=_int(value.get("level")),
            max_level=_int(value.get("max_level")),
            latch=_bool(value.get("latch")),
            reason=_text(value.get("reason")),
            raised_at=_time(value.get("raised_at")),
            rtn_at=_time(value.get("rtn_at")),
            acked_by=_text(value.get("acked_by")),
            acked_at=_time(value.get("acked_at")),
            ack_comment=_text(value.get("ack_comment")),
            shelf_id=_int(value.get("shelf_id")),
        )


@dataclass(frozen=True, slots=True)
class Pending:
    """A level the debounce is holding back until it has lasted long enough."""

    level: int
    since: float | None


@dataclass(frozen=True, slots=True)
class Flapping:
    """The flap guard holds the level at the worst of its window."""

    since: float | None
    changes: int | None


@dataclass(frozen=True, slots=True)
class NodeExtras:
    """Everything of the operator layer one node carries; ``None``: not sent (or not understood)."""

    attention: int | None = None
    alarm: AlarmSummary | None = None
    since: float | None = None
    raw_alert: int | None = None
    pending: Pending | None = None
    flapping: Flapping | None = None
    shelf_id: int | None = None
    shelved_below: int | None = None
    unacked_below: int | None = None

    @property
    def known(self) -> bool:
        """Whether the hub sends any of the fields at all."""
        return any(getattr(self, name) is not None for name in FIELDS)


_NOTHING: Final = NodeExtras()


def _pending(value: object) -> Pending | None:
    if not isinstance(value, Mapping):
        return None
    level = _int(value.get("level"))
    return None if level is None else Pending(level, _time(value.get("since")))


def _flapping(value: object) -> Flapping | None:
    if not isinstance(value, Mapping):
        return None
    return Flapping(_time(value.get("since")), _int(value.get("changes")))


# Node types known to carry none of the fields (a slotted class without them; NodeState has them since
# the hub sends them), so that 1,000 updates a second do not each ask nine times for attributes that
# cannot exist.
_WITHOUT_FIELDS: dict[type, bool] = {}


def _lacks_fields(node: object) -> bool:
    kind = type(node)
    known = _WITHOUT_FIELDS.get(kind)
    if known is None:
        # Instances that can hold any attribute (a __dict__, a __getattr__, a mapping) are always asked.
        dynamic = isinstance(node, Mapping) or hasattr(kind, "__getattr__") or hasattr(node, "__dict__")
        known = not dynamic and not any(hasattr(kind, name) for name in FIELDS)
        _WITHOUT_FIELDS[kind] = known
    return known


# Node types that hold every field as a class-level attribute (slots: NodeState), read with one attrgetter
# call: nine field_of calls (each an isinstance against the Mapping ABC) were 40 us a node, a third of what
# the view spent per update at 1,000 updates a second.
_ALL_FIELDS: Final = operator.attrgetter(*FIELDS)
_SLOTTED: dict[type, bool] = {}


def _has_all_fields(node: object) -> bool:
    kind = type(node)
    known = _SLOTTED.get(kind)
    if known is None:
        dynamic = isinstance(node, Mapping) or hasattr(kind, "__getattr__") or hasattr(node, "__dict__")
        known = not dynamic and all(hasattr(kind, name) for name in FIELDS)
        _SLOTTED[kind] = known
    return known


def _values(node: object) -> tuple[Any, ...]:
    if _has_all_fields(node):
        try:
            return tuple(_ALL_FIELDS(node))
        except AttributeError:  # a slot left unset: asked one by one below
            pass
    return tuple(field_of(node, name) for name in FIELDS)


def read_extras(node: object) -> NodeExtras:
    """The operator-layer fields of ``node`` (any object or mapping), each checked on its own."""
    if _lacks_fields(node):
        return _NOTHING
    values = _values(node)
    if all(value is None for value in values):
        return _NOTHING  # today's hubs: one shared empty answer, no allocation per node
    attention, alarm, since, raw_alert, pending, flapping, shelf_id, shelved_below, unacked_below = values
    return NodeExtras(
        attention=_int(attention),
        alarm=AlarmSummary.parse(alarm),
        since=_time(since),
        raw_alert=_int(raw_alert),
        pending=_pending(pending),
        flapping=_flapping(flapping),
        shelf_id=_int(shelf_id),
        shelved_below=_int(shelved_below),
        unacked_below=_int(unacked_below),
    )


def display_level(alertcode: int, stale: bool) -> int:
    """The level a node is shown at: its alert code, at least STALE when it is stale."""
    return max(alertcode, STALE_ALERTCODE) if stale else alertcode


def attention_of(extras: NodeExtras, level: int) -> int:
    """What the attention tree sorts and expands by: the hub's ``attention`` when it sends it,
    else the node's display ``level`` (so, before the alarm core, every ORANGE-or-worse node)."""
    return level if extras.attention is None else extras.attention
