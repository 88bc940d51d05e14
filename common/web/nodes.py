"""A node of the tree as the web API and the page see it: one JSON object. Pure functions.

Exact values, as everywhere in gsmon's JSON (``gsmon get --json``): the
``value`` keeps its type (bytes become base64 text, datetimes ISO 8601 text,
NaN and the infinities the strings ``"NaN"``, ``"Infinity"``,
``"-Infinity"``), times are ISO 8601 UTC (``"2026-12-01T21:49:20.123Z"``).
Beside it, ``text`` is the value as people read it, with its unit, formatted
by :func:`gsmon.common.units.format_point` -- the terminal view's formatter,
so the page shows exactly the units ``gsmon watch`` shows -- and ``word`` the
level word a row shows (``RED``, ``STALE``, a user level's own label).

The operator layer's fields (``ALARMS.md``: attention, alarm, since,
raw_alert, pending, flapping, shelf_id, shelved_below, unacked_below) are
read through :func:`gsmon.common.watch.adapter.read_extras`, the one place
the views read them, so that every field is read defensively: absent or
malformed means ``null`` here, never an error. ``attention`` is ``null``
while the hub does not send it (the page then sorts and colours by the
node's own ``level``, as the terminal view does).

Object keys (all always present)::

    path name kind level alert alertstr word stale value text agent
    polled_at received_at dt reported_alert liveness_unknown
    attention alarm since raw_alert pending flapping shelf_id shelved_below unacked_below
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from gsmon.common.alerts import STALE_ALERTCODE, STALE_ALERTSTR, alertstr_for
from gsmon.common.json_form import iso_utc, jsonable
from gsmon.common.units import format_point
from gsmon.common.watch.adapter import AlarmSummary, NodeExtras, display_level, read_extras
from gsmon.common.watch.model import Node

__all__ = [
    "LEVEL_NAMES",
    "WebNodeSource",
    "effective_attention",
    "iso_utc",
    "jsonable",
    "level_word",
    "node_json",
    "parse_level",
    "wall_of_iso",
]

#: Level names accepted wherever a level is asked for (``min_level=ORANGE``), besides codes.
LEVEL_NAMES: Final[dict[str, int]] = {
    "NONE": 0,
    "GREEN": 10,
    "ORANGE": 20,
    "RED": 30,
    "STALE": STALE_ALERTCODE,
    "CRITICAL": 100,
}


# What a node must have: the terminal view's protocol (the Subscriber's NodeState is one); one
# definition, so the page and the terminal read the same fields.
WebNodeSource = Node


def parse_level(text: str | int | None) -> int | None:
    """``"ORANGE"``, ``"orange"``, ``"20"`` or 20 -> 20; ``None``/``""`` -> None.

    Raises :class:`ValueError` with one line saying what is accepted.
    """
    if text is None:
        return None
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    cleaned = str(text).strip()
    if not cleaned:
        return None
    named = LEVEL_NAMES.get(cleaned.upper())
    if named is not None:
        return named
    try:
        return int(cleaned)
    except ValueError:
        raise ValueError(
            f"min_level must be a level code or one of {', '.join(LEVEL_NAMES)}, got {cleaned!r:.40}"
        ) from None


def wall_of_iso(text: str) -> float:
    """ISO 8601 text (``...Z`` or with an offset; a naive time is taken as UTC) -> wall seconds.

    Raises :class:`ValueError` with one line.
    """
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected an ISO 8601 time such as 2026-12-01T18:00:00Z, got {text!r:.40}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def level_word(alertcode: int, alertstr: str, stale: bool) -> str:
    """The word a row shows: STALE for a stale node, else the hub's label, else the built-in one."""
    if stale and alertcode <= STALE_ALERTCODE:
        return STALE_ALERTSTR
    return alertstr or alertstr_for(alertcode)


def effective_attention(extras: NodeExtras, level: int) -> int:
    """What the page sorts, colours and expands by: the hub's ``attention``, else the node's level."""
    return level if extras.attention is None else extras.attention


def _alarm_json(alarm: AlarmSummary) -> dict[str, Any]:
    return {
        "id": alarm.id,
        "state": alarm.state,
        "level": alarm.level,
        "level_str": None if alarm.level is None else alertstr_for(alarm.level),
        "max_level": alarm.max_level,
        "max_level_str": None if alarm.max_level is None else alertstr_for(alarm.max_level),
        "latch": alarm.latch,
        "reason": alarm.reason,
        "raised_at": iso_utc(alarm.raised_at),
        "rtn_at": iso_utc(alarm.rtn_at),
        "acked": alarm.state == "active_acked" or alarm.acked_at is not None,
        "acked_by": alarm.acked_by,
        "acked_at": iso_utc(alarm.acked_at),
        "ack_comment": alarm.ack_comment,
        "shelf_id": alarm.shelf_id,
    }


def extras_json(extras: NodeExtras) -> dict[str, Any]:
    """The operator-layer keys of a node's JSON (``null`` where the hub sent nothing usable)."""
    pending = extras.pending
    flapping = extras.flapping
    return {
        "attention": extras.attention,
        "alarm": None if extras.alarm is None else _alarm_json(extras.alarm),
        "since": iso_utc(extras.since),
        "raw_alert": extras.raw_alert,
        "pending": None
        if pending is None
        else {"level": pending.level, "level_str": alertstr_for(pending.level), "since": iso_utc(pending.since)},
        "flapping": None if flapping is None else {"since": iso_utc(flapping.since), "changes": flapping.changes},
        "shelf_id": extras.shelf_id,
        "shelved_below": extras.shelved_below,
        "unacked_below": extras.unacked_below,
    }


def node_json(node: WebNodeSource, extras: NodeExtras | None = None) -> dict[str, Any]:
    """The JSON object of one node (``extras``: already read, else read here)."""
    if extras is None:
        extras = read_extras(node)
    name = node.path.rpartition("/")[2]
    point = node.kind == "point"
    result: dict[str, Any] = {
        "path": node.path,
        "name": name,
        "kind": node.kind,
        "level": display_level(node.alertcode, node.stale),
        "alert": node.alertcode,
        "alertstr": node.alertstr,
        "word": level_word(node.alertcode, node.alertstr, node.stale),
        "stale": node.stale,
        "value": jsonable(node.value) if point else None,
        "text": format_point(name, node.value) if point else "",
        "agent": node.agent,
        "polled_at": iso_utc(node.polled_at_s),
        "received_at": iso_utc(node.received_at_s),
        "dt": node.dt_s,
        "reported_alert": getattr(node, "reported_alert", None),
        "liveness_unknown": bool(getattr(node, "liveness_unknown", False)),
    }
    result.update(extras_json(extras))
    return result
