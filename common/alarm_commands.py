"""The client side of the hub's operator commands: alarms, ack, unack, clear, shelve, shelves, unshelve, journal.

::

    gsmon alarms / ack / unack / clear / shelve / shelves / unshelve / log   (alarms_cli.py)
    gsmon watch: a, s, u, A, L   (watch/commands.py HubCommands)
                     |
                     v
    OperatorClient(send) -- typed requests, checked answers, records -- send(command, args)
                                                                          |
                                   commands.send_command: one COMMAND on the hub's query socket,
                                   its COMMAND_RESULT back (hub_sender)

The hub's command contract (protocol module, and the session's COORD.md):
``alarms`` {prefix, states, limit} -> {"alarms": [alarm]}; ``ack``/``unack``
{ids, comment} -> {"acked": [id], "skipped": [{id, reason}]}; ``clear`` (admins)
{ids, comment} -> {"cleared": [id], "skipped": [{id, reason}]}; ``shelve``
{prefix, mode, duration_s | ends_at, starts_at, comment} -> {"shelf": shelf};
``unshelve`` {id}; ``shelves`` {prefix} -> {"shelves": [shelf]}; ``journal``
{after_id, prefix, limit} -> {"entries": [entry], "last_id": n}. Times on
the wire are float wall seconds; the records' ``to_json`` render them as ISO
8601 UTC (``2026-12-01T21:49:20.123Z``), the views' exact form.

Everything here but :func:`hub_sender` is pure: the client is given a send
function (a fake one in tests) and the time where it needs it. A refusal
(``ok`` false) raises :class:`CommandRefusedError` with the hub's own line and its
reason; an answer whose shape is not the contract's raises
:class:`BadAnswerError`; a hub that does not answer raises
:class:`~gsmon.common.client.HubUnavailableError` from the send function.

Ack by ids only: :meth:`OperatorClient.ack` sends the ids the operator was
shown (``gsmon ack PREFIX`` lists them first), never a prefix, so an alarm
raised after the operator looked is never acknowledged. With each id goes
the ``max_level`` it was shown at (``seen``): a hub that knows the argument
does not ack an alarm that rose since; one that refuses the argument as
``bad-args`` is asked again without it.

Reading the journal since a time (:meth:`OperatorClient.first_cursor_since`):
the journal's cursor ids increase with the hub's time, so the first cursor at
or after a time is found by an exponential then a binary search over
``journal {after_id: n, limit: 1}`` probes (about 2 log2(entries) round trips,
each a primary-key lookup at the hub), and the entries are then read forward
by cursor like ``--follow`` does. This needs nothing beyond the contract.

Role discovery (:meth:`OperatorClient.role`): the ``whoami`` command when the
hub knows it; else an ``ack`` of no ids, which changes nothing and which the
hub refuses (``forbidden``) exactly when the key may not act.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gsmon.common import protocol as proto
from gsmon.common.alerts import alertstr_for
from gsmon.common.errors import UnavailableError
from gsmon.common.json_form import iso_utc, jsonable

__all__ = [
    "ALARM_STATES",
    "MAX_COMMENT_CHARS",
    "OPEN_STATES",
    "UNACKED_STATES",
    "AckOutcome",
    "AlarmRecord",
    "BadAnswerError",
    "CommandRefusedError",
    "JournalEntryError",
    "JournalPage",
    "JournalRecord",
    "Listing",
    "OperatorClient",
    "Role",
    "Send",
    "ShelfRecord",
    "check_comment",
    "hub_sender",
    "iso_utc",
    "parse_duration",
    "parse_moment",
]

Role = Literal["viewer", "operator", "admin"]
Send = Callable[[str, dict[str, Any]], proto.CommandResult]

ALARM_STATES: Final = ("active_unacked", "active_acked", "rtn_unacked", "cleared")
OPEN_STATES: Final = ("active_unacked", "active_acked", "rtn_unacked")
UNACKED_STATES: Final = ("active_unacked", "rtn_unacked")
MAX_COMMENT_CHARS: Final = 500
#: Entries asked per journal page.
JOURNAL_PAGE: Final = 500


class CommandRefusedError(UnavailableError):
    """The hub said no (``ok`` false): ``hub_message`` is its line, ``reason`` its machine word.

    The message reads ``the hub refused: <its line>`` (``gsmon`` exits 1).
    """

    def __init__(self, command: str, message: str, reason: str | None, result: Any = None) -> None:
        super().__init__(f"the hub refused: {message}")
        self.command = command
        self.hub_message = message
        self.reason = reason
        self.result = result  # the refusal's whole result map (1.3: an ack's id ``groups``)


class BadAnswerError(UnavailableError):
    """The hub's answer does not have the contract's shape (a hub of another version, or a bug)."""


# -- time -----------------------------------------------------------------------------------------


def check_comment(text: str, *, required: bool = True) -> str:
    """The comment, stripped; raises :class:`ValueError` (one line) when missing (if ``required``) or too long."""
    comment = text.strip()
    if not comment and required:
        raise ValueError("a comment is required: say why (it goes into the journal with your name)")
    if len(comment) > MAX_COMMENT_CHARS:
        raise ValueError(f"a comment is at most {MAX_COMMENT_CHARS} characters, this one has {len(comment)}")
    return comment


_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])", re.IGNORECASE)
_UNIT_S: Final = {"d": 86_400.0, "h": 3_600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> float:
    """``2h``, ``90m``, ``1h30m``, ``1d``, ``45s`` or plain seconds (``3600``) -> seconds.

    Raises :class:`ValueError` (one line) for anything else or a span that is not positive.
    """
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned:
        raise ValueError("expected a duration such as 2h, 30m or 1h30m, got nothing")
    try:
        seconds = float(cleaned)
    except ValueError:
        parts = _DURATION_PART.findall(cleaned)
        if not parts or "".join(f"{number}{unit}" for number, unit in parts) != cleaned:
            raise ValueError(f"expected a duration such as 2h, 30m or 1h30m, got {text.strip()!r}") from None
        seconds = sum(float(number) * _UNIT_S[unit.lower()] for number, unit in parts)
    if not math.isfinite(seconds) or not seconds > 0:
        raise ValueError(f"expected a duration longer than zero, got {text.strip()!r}")
    return seconds


_CLOCK: Final = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_OFFSET: Final = re.compile(r"(?:z|utc|gmt|[+-]\d{2}(?::?\d{2})?)", re.IGNORECASE)


def _zone_of(text: str) -> dt.tzinfo:
    """``Z``/``UTC``, ``+02:00``/``-0530``/``+02``, or an IANA name (``Europe/Oslo``)."""
    lowered = text.lower()
    if lowered in ("z", "utc", "gmt"):
        return dt.UTC
    match = re.fullmatch(r"([+-])(\d{2}):?(\d{2})?", text)
    if match:
        hours, minutes = int(match.group(2)), int(match.group(3) or 0)
        if hours > 23 or minutes > 59:
            raise ValueError(f"expected a UTC offset such as +02:00, got {text!r}")
        sign = 1 if match.group(1) == "+" else -1
        return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {text!r} (use Z, +02:00 or a name such as Europe/Oslo)") from None


def parse_moment(
    text: str,
    now: float,
    *,
    direction: Literal["future", "past"],
    zone: dt.tzinfo | None = None,
) -> float:
    """A time the operator typed -> wall seconds.

    * a time of day, ``18:00`` or ``18:00:30``: the next one (``direction``
      ``"future"``: today, or tomorrow once past) or the last one (``"past"``:
      today, or yesterday when still to come);
    * with a zone: ``18:00Z``, ``18:00 UTC``, ``18:00+02:00``, ``18:00 Europe/Oslo``;
    * an ISO 8601 date and time, ``2026-12-02T18:00``, ``2026-12-02 18:00+01:00``,
      ``2026-12-02T17:00:00Z``, or a date alone (midnight);
    * ``direction`` ``"past"`` also takes a duration back from now: ``1h``, ``30m``, ``2d``.

    A time without a zone is in ``zone`` (default: this machine's local zone).
    Raises :class:`ValueError` (one line) for anything else.
    """
    value = " ".join(text.strip().split())
    if not value:
        raise ValueError("expected a time such as 18:00, 18:00Z or 2026-12-02T18:00+01:00, got nothing")
    if direction == "past":
        try:
            return now - parse_duration(value)
        except ValueError:
            pass
    local_zone = zone if zone is not None else dt.datetime.fromtimestamp(now).astimezone().tzinfo
    assert local_zone is not None
    # A time of day, with an optional zone after it (glued, or after a space).
    match = re.fullmatch(r"(\d{1,2}:\d{2}(?::\d{2})?)\s*(\S+)?", value)
    if match:
        clock = _CLOCK.fullmatch(match.group(1))
        assert clock is not None
        hour, minute, second = int(clock.group(1)), int(clock.group(2)), int(clock.group(3) or 0)
        if hour > 23 or minute > 59 or second > 59:
            raise ValueError(f"expected a time of day such as 18:00, got {value!r}")
        where = _zone_of(match.group(2)) if match.group(2) else local_zone
        today = dt.datetime.fromtimestamp(now, where)
        moment = today.replace(hour=hour, minute=minute, second=second, microsecond=0)
        if direction == "future" and moment.timestamp() <= now:
            moment = (moment + dt.timedelta(days=1)).replace(hour=hour, minute=minute)
        elif direction == "past" and moment.timestamp() > now:
            moment = (moment - dt.timedelta(days=1)).replace(hour=hour, minute=minute)
        return _wall(moment)
    # An ISO 8601 date and time, the zone maybe an IANA name after a space.
    iso, _, zone_name = value.partition(" ")
    if not zone_name or re.fullmatch(r"[\d+-].*", zone_name):
        iso, zone_name = value, ""  # "2026-12-02 18:00+01:00": the space is the date/time separator
    try:
        moment = dt.datetime.fromisoformat(re.sub(r"[zZ]$", "+00:00", iso))
    except ValueError:
        raise ValueError(
            f"expected a time such as 18:00, 18:00Z, '18:00 Europe/Oslo' or 2026-12-02T18:00+01:00, got {value!r}"
        ) from None
    if zone_name and moment.tzinfo is not None:
        raise ValueError(f"two zones in {value!r}: give an offset or a zone name, not both")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_zone_of(zone_name) if zone_name else local_zone)
    return _wall(moment)


def _wall(moment: dt.datetime) -> float:
    # A wall time that does not exist (a DST gap) or exists twice: zoneinfo's fold=0 reading, as cron does.
    return moment.timestamp()


# -- records --------------------------------------------------------------------------------------


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _need(item: Mapping[str, Any], key: str, kind: Callable[[object], Any], what: str) -> Any:
    found = kind(item.get(key))
    if found is None:
        raise BadAnswerError(f"the hub sent {what} without a valid {key!r} ({item.get(key)!r})")
    return found


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    """An alarm as ``gsmon alarms`` lists it (times: wall seconds)."""

    id: int
    path: str
    state: str
    level: int
    max_level: int | None = None
    agent: str | None = None
    reason: str | None = None
    latch: bool | None = None
    raised_at: float | None = None
    rtn_at: float | None = None
    acked: bool = False
    acked_by: str | None = None
    acked_at: float | None = None
    ack_comment: str | None = None
    shelved: bool = False
    shelf_id: int | None = None
    level_str: str | None = None
    max_level_str: str | None = None
    acked_user: str | None = None
    value: Any = None
    # (1.3) A site hub's alarm the central hub could not ask for now: as it last knew it, as of that wall time.
    last_known: bool = False
    as_of: float | None = None

    @property
    def unacked(self) -> bool:
        return self.state in UNACKED_STATES

    @property
    def level_label(self) -> str:
        # Code 0 is "no level" (an agent-silent alarm whose agent is back has nothing left to judge):
        # a dash, as for an unknown time, never a bare "0" that reads like a count.
        if self.level == 0 and not self.level_str:
            return "-"
        return self.level_str or alertstr_for(self.level) or str(self.level)

    @property
    def max_level_label(self) -> str:
        if self.max_level is None:
            return ""
        return self.max_level_str or alertstr_for(self.max_level) or str(self.max_level)

    @property
    def who_acked(self) -> str | None:
        """The forwarded user and the key it came through: ``alice (ops-console)``."""
        if not self.acked_user or self.acked_user == self.acked_by:
            return self.acked_by
        return self.acked_user if not self.acked_by else f"{self.acked_user} ({self.acked_by})"

    @classmethod
    def from_wire(cls, item: object) -> AlarmRecord:
        if not isinstance(item, Mapping):
            raise BadAnswerError(f"the hub sent an alarm that is not a map: {item!r:.80}")
        state = _need(item, "state", _str, "an alarm")
        if state not in ALARM_STATES:
            raise BadAnswerError(f"the hub sent an alarm in an unknown state {state!r}")
        acked_at = _float(item.get("acked_at"))
        shelf_id = _int(item.get("shelf_id"))
        latch = item.get("latch")
        return cls(
            id=_need(item, "id", _int, "an alarm"),
            path=_need(item, "path", _str, "an alarm"),
            state=state,
            level=_need(item, "level", _int, "an alarm"),
            max_level=_int(item.get("max_level")),
            agent=_str(item.get("agent")),
            reason=_str(item.get("reason")),
            latch=latch if isinstance(latch, bool) else None,
            raised_at=_float(item.get("raised_at")),
            rtn_at=_float(item.get("rtn_at")),
            # acked: this instance was acknowledged (and not unacked since).
            acked=state == "active_acked" or (state == "cleared" and acked_at is not None),
            acked_by=_str(item.get("acked_by")),
            acked_at=acked_at,
            ack_comment=_str(item.get("ack_comment")),
            shelved=shelf_id is not None,
            shelf_id=shelf_id,
            level_str=_str(item.get("level_str")),
            max_level_str=_str(item.get("max_level_str")),
            acked_user=_str(item.get("acked_user")),
            value=item.get("value"),
            last_known=item.get("last_known") is True,
            as_of=_float(item.get("as_of")) if item.get("last_known") is True else None,
        )

    def to_json(self) -> dict[str, Any]:
        """Issue 13 §4's fields (times ISO 8601 UTC), then the labels, the forwarded user and the value;
        (1.3) ``last_known`` and ``as_of`` for a site's alarm as the central hub last knew it (only then)."""
        out: dict[str, Any] = {
            "id": self.id,
            "path": self.path,
            "agent": self.agent,
            "reason": self.reason,
            "state": self.state,
            "level": self.level,
            "max_level": self.max_level,
            "latch": self.latch,
            "raised_at": iso_utc(self.raised_at),
            "rtn_at": iso_utc(self.rtn_at),
            "acked": self.acked,
            # Who acknowledged: the person -- the user the client forwarded (the web page's, the terminal's
            # login) -- else the key; the key it came through is acked_key (the web bridge's, say).
            "acked_by": self.acked_user or self.acked_by,
            "acked_at": iso_utc(self.acked_at),
            "ack_comment": self.ack_comment,
            "shelved": self.shelved,
            "shelf_id": self.shelf_id,
            "level_str": self.level_label,
            "max_level_str": self.max_level_label or None,
            "acked_user": self.acked_user,
            "acked_key": self.acked_by,
            "value": jsonable(self.value),
        }
        if self.last_known:
            out.update(last_known=True, as_of=iso_utc(self.as_of))
        return out


@dataclass(frozen=True, slots=True)
class ShelfRecord:
    """A shelf as ``gsmon shelves`` lists it (times: wall seconds)."""

    id: int
    prefix: str
    mode: str
    comment: str
    by: str | None = None
    created_at: float | None = None
    ends_at: float | None = None
    starts_at: float | None = None
    user: str | None = None
    ended_at: float | None = None
    end_reason: str | None = None

    @classmethod
    def from_wire(cls, item: object) -> ShelfRecord:
        if not isinstance(item, Mapping):
            raise BadAnswerError(f"the hub sent a shelf that is not a map: {item!r:.80}")
        return cls(
            id=_need(item, "id", _int, "a shelf"),
            prefix=_need(item, "prefix", _str, "a shelf"),
            mode=_need(item, "mode", _str, "a shelf"),
            comment=_str(item.get("comment")) or "",
            by=_str(item.get("by")),
            created_at=_float(item.get("created_at")),
            ends_at=_float(item.get("ends_at")),
            starts_at=_float(item.get("starts_at")),
            user=_str(item.get("user")),
            ended_at=_float(item.get("ended_at")),
            end_reason=_str(item.get("end_reason")),
        )

    def to_json(self) -> dict[str, Any]:
        """Issue 13 §4's fields (times ISO 8601 UTC), then its start, the forwarded user and how it ended."""
        return {
            "id": self.id,
            "prefix": self.prefix,
            "mode": self.mode,
            "comment": self.comment,
            "by": self.by,
            "created_at": iso_utc(self.created_at),
            "ends_at": iso_utc(self.ends_at),
            "starts_at": iso_utc(self.starts_at),
            "user": self.user,
            "ended_at": iso_utc(self.ended_at),
            "end_reason": self.end_reason,
        }


class JournalEntryError(BadAnswerError):
    """One journal entry from the hub is not usable: the message says which key is wrong and how.
    (``gsmon log`` stops on it; the notifier counts it and drops the entry.)"""


@dataclass(frozen=True, slots=True, kw_only=True)  # 15 fields, two orders in its past: by name only
class JournalRecord:
    """A journal entry as the hub's ``journal`` command returns it (common/protocol.py): the one reader,
    for ``gsmon log``, ``gsmon watch`` and ``gsmon notify`` (its ``Entry``).

    ``time``: wall seconds, source time (the hub's when the entry has none); ``id``: the cursor
    (0 only for a row made here, not read from a hub). Fields in the order ``gsmon log --json`` prints."""

    time: float
    path: str
    kind: str
    old: int | None = None
    new: int | None = None
    value: Any = None
    agent: str | None = None
    user: str | None = None
    comment: str | None = None
    alarm_id: int | None = None
    id: int = 0
    hub_time: float | None = None
    by: str | None = None
    replayed: bool = False
    shelf_id: int | None = None  # the shelf covering it then

    @classmethod
    def from_wire(cls, item: object) -> JournalRecord:
        """Check one entry map: a key of the wrong type is an error, not read as absent (a hub that sends one
        has a bug worth a line); unknown keys are ignored (a newer hub). Raises :class:`JournalEntryError`."""
        if not isinstance(item, Mapping):
            raise JournalEntryError(f"a journal entry must be a map, got {type(item).__name__}")

        def typed(key: str, kinds: tuple[type, ...], required: bool = False) -> Any:
            value = item.get(key)
            if value is None:
                if required:
                    raise JournalEntryError(f"journal entry without {key!r}")
                return None
            if isinstance(value, bool) and bool not in kinds:
                raise JournalEntryError(f"journal entry {key!r} must not be a boolean")
            if not isinstance(value, kinds):
                raise JournalEntryError(f"journal entry {key!r} has the wrong type ({type(value).__name__})")
            if isinstance(value, float) and not math.isfinite(value):
                raise JournalEntryError(f"journal entry {key!r} is not finite")
            return value

        entry_id = typed("id", (int,), required=True)
        hub_time = typed("hub_time", (int, float))
        time_s = typed("time", (int, float), required=hub_time is None)
        return cls(
            time=float(hub_time if time_s is None else time_s),
            path=typed("path", (str,), required=True),
            kind=typed("kind", (str,), required=True),
            old=typed("old", (int,)),
            new=typed("new", (int,)),
            value=item.get("value"),
            agent=typed("agent", (str,)),
            user=typed("user", (str,)),
            comment=typed("comment", (str,)),
            alarm_id=typed("alarm_id", (int,)),
            id=entry_id,
            hub_time=None if hub_time is None else float(hub_time),
            by=typed("by", (str,)),
            replayed=bool(typed("replayed", (bool,))),
            shelf_id=typed("shelf_id", (int,)),
        )

    def to_json(self) -> dict[str, Any]:
        """Issue 13 §4's fields (times ISO 8601 UTC), then the cursor ``id``, ``hub_time`` and ``by``."""
        return {
            "time": iso_utc(self.time),
            "path": self.path,
            "kind": self.kind,
            "old": self.old,
            "new": self.new,
            "value": jsonable(self.value),
            "agent": self.agent,
            "user": self.user,
            "comment": self.comment,
            "alarm_id": self.alarm_id,
            "id": self.id,
            "hub_time": iso_utc(self.hub_time),
            "by": self.by,
            "replayed": self.replayed,  # 1.3: from an agent's outbox, after the hub missed it
        }


@dataclass(frozen=True, slots=True)
class AckOutcome:
    """What an ack or unack did: the ids it changed, the ids it skipped and why, the hub's line."""

    done: tuple[int, ...]
    skipped: tuple[tuple[int, str], ...] = ()
    message: str = ""


@dataclass(frozen=True, slots=True)
class JournalPage:
    entries: list[JournalRecord] = field(default_factory=list)
    last_id: int = 0


# -- the client -----------------------------------------------------------------------------------


def _id_groups(refusal: CommandRefusedError, ids: Sequence[int]) -> list[list[int]] | None:
    """(1.3) The id groups a central hub's ``bad-args`` refusal of mixed ids gives (``groups``: its own
    ids, then each site's), when they are exactly ``ids`` in two groups or more; else None."""
    result = refusal.result
    groups = result.get("groups") if refusal.reason == "bad-args" and isinstance(result, Mapping) else None
    if not isinstance(groups, list) or len(groups) < 2:
        return None
    parsed = [[int(item) for item in group if _int(item) is not None] for group in groups if isinstance(group, list)]
    if sorted(item for group in parsed for item in group) != sorted(int(item) for item in ids):
        return None
    return [group for group in parsed if group]


@dataclass(frozen=True, slots=True)
class Listing:
    """(1.3) Where a listing at a central hub came from: the site hubs' mounts whose alarms it holds
    (``merged``), and the ones it could not ask, each with the reason (``unreached``: (mount, why))."""

    merged: tuple[str, ...] = ()
    unreached: tuple[tuple[str, str], ...] = ()


class OperatorClient:
    """Typed operator commands over ``send`` (see the module docstring)."""

    def __init__(self, send: Send) -> None:
        self._send = send

    def request(self, command: str, args: dict[str, Any]) -> proto.CommandResult:
        """Send one command; its COMMAND_RESULT when ok, else :class:`CommandRefusedError` with the hub's line."""
        reply = self._send(command, args)
        if not reply.ok:
            reason = reply.result.get("reason") if isinstance(reply.result, Mapping) else None
            message = " ".join(str(reply.message).split()) or f"{command} refused"
            raise CommandRefusedError(command, message, reason if isinstance(reason, str) else None, reply.result)
        return reply

    def call(self, command: str, args: dict[str, Any]) -> Any:
        """Send one command; its ``result`` when ok, else :class:`CommandRefusedError` with the hub's line."""
        return self.request(command, args).result

    def _request_optional(self, command: str, args: dict[str, Any], optional: Sequence[str]) -> proto.CommandResult:
        """``request``, asked again without the ``optional`` arguments when the hub refuses them as bad-args."""
        try:
            return self.request(command, args)
        except CommandRefusedError as refusal:
            if refusal.reason != "bad-args" or not any(key in args for key in optional):
                raise
            return self.request(command, {key: value for key, value in args.items() if key not in optional})

    @staticmethod
    def _list(result: Any, key: str, command: str) -> list[Any]:
        items = result.get(key) if isinstance(result, Mapping) else None
        if not isinstance(items, list):
            raise BadAnswerError(f"the hub's answer to {command} has no {key!r} list: {result!r:.80}")
        return items

    def alarms(self, prefix: str, states: Sequence[str] = OPEN_STATES, limit: int | None = None) -> list[AlarmRecord]:
        return self.alarm_listing(prefix, states, limit)[0]

    def alarm_listing(
        self, prefix: str, states: Sequence[str] = OPEN_STATES, limit: int | None = None
    ) -> tuple[list[AlarmRecord], Listing]:
        """:meth:`alarms`, and (1.3) at a hub with site hubs below ``prefix``, whose lists are merged in and
        which could not be asked (:class:`Listing`; a hub before 1.3, or without sites, names none)."""
        args: dict[str, Any] = {"prefix": prefix, "states": list(states)}
        if limit is not None:
            args["limit"] = limit
        result = self.call("alarms", args)
        records = [AlarmRecord.from_wire(item) for item in self._list(result, "alarms", "alarms")]
        merged = result.get("merged") if isinstance(result, Mapping) else None
        unreached = result.get("unreached") if isinstance(result, Mapping) else None
        listing = Listing(
            tuple(item for item in merged if isinstance(item, str)) if isinstance(merged, list) else (),
            tuple(
                (str(item.get("path")), " ".join(str(item.get("reason") or "not reached").split()))
                for item in unreached
                if isinstance(item, Mapping)
            )
            if isinstance(unreached, list)
            else (),
        )
        return sorted(records, key=lambda alarm: alarm.id), listing

    def _ack_like(
        self,
        command: str,
        ids: Sequence[int],
        comment: str | None,
        extra: dict[str, Any],
        key: str = "acked",
        split: bool = True,
    ) -> AckOutcome:
        args: dict[str, Any] = {"ids": [int(alarm_id) for alarm_id in ids], **extra}
        if comment:
            args["comment"] = comment
        try:
            reply = self._request_optional(command, args, tuple(extra))
        except CommandRefusedError as refusal:
            groups = _id_groups(refusal, ids) if split else None
            if groups is None:
                raise
            return self._ack_groups(command, groups, comment, extra, key, refusal)
        reply_result = reply.result
        done = reply_result.get(key) if isinstance(reply_result, Mapping) else None
        if not isinstance(done, list) or not all(_int(item) is not None for item in done):
            raise BadAnswerError(f"the hub's answer to {command} has no {key!r} list of ids: {reply_result!r:.80}")
        skipped = [
            (int(item["id"]), str(item.get("reason") or "skipped"))
            for item in reply_result.get("skipped") or []
            if isinstance(item, Mapping) and _int(item.get("id")) is not None
        ]
        return AckOutcome(tuple(done), tuple(skipped), " ".join(reply.message.split()))

    def _ack_groups(
        self,
        command: str,
        groups: list[list[int]],
        comment: str | None,
        extra: dict[str, Any],
        key: str,
        refusal: CommandRefusedError,
    ) -> AckOutcome:
        """(1.3) A central hub acks the ids of ONE site per command, and said how the ids group (its own,
        each site's): one command per group, the outcomes put together. A group refused (its site is
        unreachable...) is skipped with the hub's line; a refusal of the key ends it."""
        done: list[int] = []
        skipped: list[tuple[int, str]] = []
        messages: list[str] = []
        refused_first: CommandRefusedError | None = None
        for group in groups:
            seen = extra.get("seen")
            part = dict(extra)
            if isinstance(seen, Mapping):
                part["seen"] = {name: level for name, level in seen.items() if _int(name) in group}
            try:
                outcome = self._ack_like(command, group, comment, part, key, split=False)
            except CommandRefusedError as refused:
                if refused.reason == "forbidden":
                    raise
                refused_first = refused_first or refused
                skipped += [(alarm_id, refused.hub_message) for alarm_id in group]
                continue
            done += outcome.done
            skipped += outcome.skipped
            messages.append(outcome.message)
        if not messages:  # every group refused: as one refusal (the first), as before the split
            raise refused_first or refusal
        return AckOutcome(tuple(done), tuple(skipped), "; ".join(messages))

    def ack(self, ids: Sequence[int], comment: str | None, seen: Mapping[int, int] | None = None) -> AckOutcome:
        """Acknowledge exactly ``ids``; ``seen``: the max_level each was shown at (see the module docstring)."""
        extra = {"seen": {str(key): level for key, level in seen.items()}} if seen else {}
        return self._ack_like("ack", ids, comment, extra)

    def unack(self, ids: Sequence[int], comment: str | None) -> AckOutcome:
        return self._ack_like("unack", ids, comment, {})

    def clear(self, ids: Sequence[int], comment: str | None) -> AckOutcome:
        """Clear exactly ``ids`` whatever their state (admins; the hub refuses others as ``forbidden``)."""
        return self._ack_like("clear", ids, comment, {}, key="cleared")

    def shelve(
        self,
        prefix: str,
        mode: str,
        comment: str,
        *,
        duration_s: float | None = None,
        starts_at: float | None = None,
        ends_at: float | None = None,
    ) -> ShelfRecord:
        args: dict[str, Any] = {"prefix": prefix, "mode": mode, "comment": comment}
        for key, value in (("duration_s", duration_s), ("starts_at", starts_at), ("ends_at", ends_at)):
            if value is not None:
                args[key] = float(value)
        result = self.call("shelve", args)
        return ShelfRecord.from_wire(result.get("shelf") if isinstance(result, Mapping) else result)

    def unshelve(self, shelf_id: int, comment: str | None = None) -> str:
        """End a shelf now; returns the hub's line."""
        args: dict[str, Any] = {"id": int(shelf_id)}
        if comment:
            args["comment"] = comment
        reply = self.request("unshelve", args)
        return " ".join(reply.message.split()) or f"shelf {shelf_id} ended"

    def shelves(self, prefix: str = "", *, include_ended: bool = False) -> list[ShelfRecord]:
        args: dict[str, Any] = {"prefix": prefix} if prefix else {}
        if include_ended:
            args["all"] = True
        items = self._list(self.call("shelves", args), "shelves", "shelves")
        return sorted((ShelfRecord.from_wire(item) for item in items), key=lambda shelf: shelf.id)

    def journal(self, after_id: int, prefix: str = "", limit: int = JOURNAL_PAGE) -> JournalPage:
        """Entries under ``prefix`` with cursor ids above ``after_id``, oldest first."""
        args: dict[str, Any] = {"after_id": int(after_id), "limit": int(limit)}
        if prefix:
            args["prefix"] = prefix
        result = self.call("journal", args)
        entries = sorted(
            (JournalRecord.from_wire(item) for item in self._list(result, "entries", "journal")),
            key=lambda entry: entry.id or 0,
        )
        last = _int(result.get("last_id")) if isinstance(result, Mapping) else None
        newest = max((entry.id or 0 for entry in entries), default=after_id)
        return JournalPage(entries, max(newest, after_id) if last is None else max(last, newest, after_id))

    def first_cursor_since(self, since: float) -> int:
        """The cursor to read from so that the first entry read is the first whose hub time is >= ``since``.

        (An exponential then a binary search over one-entry probes; see the module docstring.)
        """

        def first_after(cursor: int) -> JournalRecord | None:
            page = self.journal(cursor, limit=1)
            return page.entries[0] if page.entries else None

        def at_or_after(entry: JournalRecord) -> bool:
            moment = entry.hub_time if entry.hub_time is not None else entry.time
            return moment >= since

        first = first_after(0)
        if first is None or at_or_after(first):
            return 0
        low = first.id or 0  # the entry with this id is before `since`: reading after it is safe
        step = 1
        while True:
            probe = first_after(low + step)
            if probe is None or at_or_after(probe):
                high = low + step
                break
            low = max(low + step, probe.id or 0)
            step *= 2
        # Invariant: every entry with id <= low is before `since`; the first entry after `high` is not.
        while high - low > 1:
            middle = (low + high) // 2
            probe = first_after(middle)
            if probe is None or at_or_after(probe):
                high = middle
            else:
                low = max(middle, probe.id or middle)
                if low >= high:
                    return high
        return low

    def read_journal(self, after_id: int, prefix: str = "", limit: int | None = None) -> Iterator[JournalRecord]:
        """Every entry under ``prefix`` after cursor ``after_id``, page by page, up to the newest one."""
        cursor, given = after_id, 0
        while True:
            page = self.journal(cursor, prefix, JOURNAL_PAGE)
            for entry in page.entries:
                yield entry
                given += 1
                if limit is not None and given >= limit:
                    return
            if not page.entries or page.last_id <= cursor:
                return
            cursor = page.last_id

    def role(self) -> Role:
        """What this client's key may do (``whoami``, else a probe that changes nothing)."""
        try:
            result = self.call("whoami", {})
        except CommandRefusedError as refusal:
            if refusal.reason != "unknown-command":
                raise
        else:
            role = result.get("role") if isinstance(result, Mapping) else None
            if role in ("viewer", "operator", "admin"):
                return role  # type: ignore[no-any-return]
        try:
            self.call("ack", {"ids": []})
        except CommandRefusedError as refusal:
            if refusal.reason == "forbidden":
                return "viewer"
            raise
        return "operator"


def hub_sender(
    hub: Any,
    curve: Any,
    *,
    timeout_s: float,
    user: str | None,
    via: str | None = None,
) -> Send:
    """A send function over the hub's query socket (:func:`gsmon.common.commands.send_command`).

    ``hub``: an endpoint, a pair (``"A,B"``), or a view's shared
    :class:`~gsmon.common.failover.HubChoice`, so commands go to the hub the view reads (1.3)."""
    from gsmon.common.commands import send_command

    def send(command: str, args: dict[str, Any]) -> proto.CommandResult:
        if via is not None:
            args = {**args, "via": via}
        return send_command(hub, command, args, curve=curve, timeout_s=timeout_s, user=user)

    return send
