"""The hub's alarm book: alarm instances, shelves, the attention rollup and operator commands. No I/O.

Like :class:`~gsmon.hub.state.HubState`, the book is a pure core: every input
takes the time as arguments (``now`` = ``time.monotonic()``, ``wall`` =
``time.time()``), and every output is taken by the caller. Every time the
book records or compares is a *wall* time, because all of them are persisted
and must mean the same after a restart (shelf ends, scheduled starts); ``now``
is accepted for the uniform call shape of the hub's cores.

How the hub drives it (integration is a later step)::

    HubState, per point whose EFFECTIVE level changes (a new point's first level
    included, and STALE/overdue on and off):
        book.point_level(path, agent, level, level_str, value, source_time, stale_reason, now, wall)
        book.point_debounce(path, agent, pending, flapping, source_time, now, wall)  # after point_level
    HubState, per agent going silent / coming back (or heard for the first time after a restart):
        book.agent_silent(agent, mount, now, wall) / book.agent_back(agent, mount, now, wall)
    HubState, per point removed:              book.point_removed(path, now, wall)
    HubState, per relayed entry (1.3):        book.set_relayed(path, attention, shelved)
    HubState, per site's orphaned alarm (1.3): book.set_relayed_orphan((site, site_id), path, attention)
    server, per COMMAND:                      outcome = book.ack(...) / unack / shelve / unshelve / clear
    server, every loop turn (~ every 0.2 s):  book.tick(now, wall)
    server, at the end of every loop turn, in this order:
        journal = book.take_journal()
        alarms, shelves, next_id = book.take_records()
        store.write_turn(journal, alarms, shelves, next_id)     # one transaction, BEFORE publishing
        for path, view in book.take_node_changes().items(): ...  # republish these NODEs
        notifier gets book.take_events()                        # or reads the journal by cursor
    start-up:
        stored = store.load()
        book = AlarmBook.restore(settings, stored.alarms, stored.shelves, stored.next_id, now, wall)

Alarm rules (issue 13 and the design note ALARMS.md):

* An alarm opens on a point when its effective level reaches the path's
  ``min_level`` (``alarm_min_level``, default ORANGE), or when the point turns
  STALE while its agent is live (``stale_reason="overdue"``). When an agent
  goes silent, ONE alarm opens on its mount (reason ``agent silent``); its
  points turn STALE (``stale_reason="agent silent"``), which is journaled but
  opens, escalates or resolves nothing: a point alarm open before the silence
  stays as it was until the agent is back and reports again. Likewise a point
  its agent's latest complete STATE did not list (``stale_reason="unlisted"``:
  a restarted agent no longer has it) is STALE until the hub removes it; that
  is journaled (``stale``, comment ``unlisted``) and opens, escalates or
  resolves nothing, and its removal then follows the rule below.
* One open alarm per point (and per silent agent). A point that comes back in
  the same condition after a hub restart continues the same open alarm.
* States: ``active_unacked`` -> ack -> ``active_acked``. Return to normal from
  an active state gives ``rtn_unacked`` when the alarm latches and is unacked,
  else ``cleared``. ``rtn_unacked`` -> ack -> ``cleared``; back in alarm from
  ``rtn_unacked`` -> ``active_unacked`` (same id). A level above ``max_level``
  (the worst since it was raised; an ack covers it) makes the same alarm
  ``active_unacked`` again (``alarm_escalated``). Unack: ``active_acked`` ->
  ``active_unacked``. Clear (admin): any open alarm -> ``cleared``; a point
  still in alarm opens a new alarm at its next level change.
* Latch: per ``[[alarms]]`` rule, else RED and above (STALE included) latch and
  ORANGE does not. An alarm that escalates into a latching level latches.
* A removed point: a latched unacked alarm stays (``rtn_unacked``: it still
  needs an ack, so a latched alarm never disappears unacknowledged); other
  alarms are cleared.
* Ids: one counter for alarms and shelves, so an id names one thing forever;
  it is persisted (``next_id``) and never reused. A hub of a pair (1.3,
  :attr:`AlarmBook.derived_ids`) derives them instead, so that both hubs name
  the same alarm alike: :func:`derived_id` of (path, reason, the source time
  of the raise; for an agent-silent alarm the agent's last level change the
  book saw) for an alarm, of (prefix, by, wall time) for a shelf made here (a
  replicated shelf keeps its origin's id), in ``[2**52, 2**53)`` (above any
  counter, below JavaScript's exact integers); a taken id moves to the next
  free one. Counter ids already stored stay as they are.
* Ack by ids only (the ids the operator was shown). Optionally with the
  ``max_level`` each id had when shown (``seen``): an alarm that escalated
  since is not acked, and the refusal says so.

Attention (every node, incremental, no rescans): the worst ``max_level`` among
the unacknowledged (``active_unacked``, ``rtn_unacked``), unshelved alarms at
or below the node, 0 if none. An unacked alarm counts at its ``max_level``:
for ``rtn_unacked`` the issue says so, and for ``active_unacked`` it keeps
attention from rising when the point recovers. An agent-silent alarm counts
at its mount node. Each node keeps a histogram ``{level: alarms}`` of what
counts at or below it; a change updates the histograms of the alarm's node
and its ancestors (depth <= 16), nothing else. ``unacked_below`` is the
histogram's total, ``shelved_below`` the number of shelved points at or below
(parents). (1.3) A relayed point (a site's, :meth:`AlarmBook.set_relayed`)
counts the same way, as its site judges it; the book holds no alarm for it.
(1.3) So does a site's orphaned alarm (:meth:`AlarmBook.set_relayed_orphan`):
at its path's ancestors, as an alarm of a removed point counts here.

Orphans (1.3): the open alarms no point of the tree carries -- a point alarm
whose point the book no longer has (a latched alarm outlives its point), kept
in a small set, and an agent-silent alarm while its agent is heard again
(latched and unacked: its points carry it only while the agent is silent) --
so that a site hub relays them (hub/upstream.py) without a scan of every
alarm: :meth:`AlarmBook.orphaned_alarms`, and
:attr:`AlarmBook.orphans_version`, which moves whenever one of them changes.

Shelves: a rule on a path prefix (segment-aware: ``GS1/A`` covers ``GS1/A``
and ``GS1/A/...``, never ``GS1/AB``), with a required comment, in one of three
modes: ``timed`` (from now to ``ends_at``), ``until_normal`` (ends when no
alarm it covers is active any more, or at its cap ``ends_at``; refused when
nothing under the prefix is in alarm, as it would end at once) and
``scheduled`` (``starts_at`` to ``ends_at``, possibly in the future). A shelf
covers the points and alarms under its prefix now and later. A shelved alarm
is recorded and listed (``shelved``, ``shelf_id``: the oldest shelf in force
covering it) but counts for no attention and is not notified. When its last
covering shelf ends while it is still active, it becomes ``active_unacked``
and is announced once (journal ``shelf_ended_still_active``, "shelf 12 ended;
still RED since ..."). End reasons: ``expired``, ``normal``, ``unshelved``,
``expired_during_downtime`` (found expired by :meth:`AlarmBook.restore`).

Roles: ``viewer`` reads only; ``operator`` acks, unacks, shelves up to
``max_shelve_s`` (24 h; ``until_normal`` is capped at it) and unshelves;
``admin`` also shelves without limit and clears. Without keys the hub passes
``role="admin"``. Every refusal is an :class:`Outcome` with ``ok=False`` and
one line saying what is wrong and what to do. Comments: at most 500
characters; required for shelves.

Journal (``take_journal``, in order; ``time`` is the source time, the agent's
``polled_at`` for level changes, ``hub_time`` the hub's wall clock): kinds
``level``, ``stale``, ``fresh``, ``removed``, ``agent_silent``,
``agent_back``, ``alarm_raised``, ``alarm_escalated``, ``alarm_rtn``,
``alarm_cleared``, ``ack``, ``unack``, ``shelf_created``, ``shelf_ended``,
``shelf_ended_still_active``, ``forget``, ``flapping_start``,
``flapping_stop``, ``pending``, ``discarded``. A point's first report is not
a transition and is not journaled (its alarm, if any, is). Events
(``take_events``) are the journal entries a notifier acts on: kinds in
:data:`EVENT_KINDS` that happened outside any shelf.

Hand-written: nothing on PyPI models latching alarms with shelves and a
segment-aware rollup; the structures are dicts and small histograms.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import operator
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from gsmon.common import names as naming
from gsmon.common.alerts import STALE_ALERTCODE, OrangeAlert, RedAlert, alertstr_for
from gsmon.common.names import PathPattern, path_in_prefix

__all__ = [
    "ACTIVE_ACKED",
    "ACTIVE_UNACKED",
    "ADMIN",
    "AGENT_SILENT",
    "CLEARED",
    "EVENT_KINDS",
    "JOURNAL_KINDS",
    "MODES",
    "OPERATOR",
    "OVERDUE",
    "ROLES",
    "RTN_UNACKED",
    "SCHEDULED",
    "STATES",
    "TIMED",
    "UNLISTED",
    "UNTIL_NORMAL",
    "VIEWER",
    "Alarm",
    "AlarmBook",
    "AlarmRule",
    "AlarmSettings",
    "AlarmSettingsError",
    "JournalEntry",
    "NodeAlarmView",
    "Outcome",
    "PathPattern",
    "Shelf",
    "iso_utc",
    "jsonable",
    "path_in_prefix",
    "who",
]

# -- vocabulary ---------------------------------------------------------------------------------

ACTIVE_UNACKED: Final = "active_unacked"
ACTIVE_ACKED: Final = "active_acked"
RTN_UNACKED: Final = "rtn_unacked"
CLEARED: Final = "cleared"
STATES: Final = (ACTIVE_UNACKED, ACTIVE_ACKED, RTN_UNACKED, CLEARED)
_ACTIVE: Final = frozenset((ACTIVE_UNACKED, ACTIVE_ACKED))
_UNACKED: Final = frozenset((ACTIVE_UNACKED, RTN_UNACKED))

TIMED: Final = "timed"
UNTIL_NORMAL: Final = "until_normal"
SCHEDULED: Final = "scheduled"
MODES: Final = (TIMED, UNTIL_NORMAL, SCHEDULED)

VIEWER: Final = "viewer"
OPERATOR: Final = "operator"
ADMIN: Final = "admin"
ROLES: Final = (VIEWER, OPERATOR, ADMIN)

#: ``stale_reason`` values of :meth:`AlarmBook.point_level`.
OVERDUE: Final = "overdue"
AGENT_SILENT: Final = "agent silent"
# Not listed by its agent's latest complete STATE (a new incarnation no longer has it): STALE until
# removal_grace_s removes it, but not overdue -- the agent says it has no such point, nobody need ack that.
UNLISTED: Final = "unlisted"
_STALE_REASONS: Final = (OVERDUE, AGENT_SILENT, UNLISTED)
# Stale reasons that open, escalate and resolve nothing (an alarm the point had stays as it was).
_QUIET_STALE: Final = frozenset((AGENT_SILENT, UNLISTED))

REASON_LEVEL: Final = "level"

JOURNAL_KINDS: Final = (
    "level",
    "stale",
    "fresh",
    "removed",
    "agent_silent",
    "agent_back",
    "alarm_raised",
    "alarm_escalated",
    "alarm_rtn",
    "alarm_cleared",
    "ack",
    "unack",
    "shelf_created",
    "shelf_ended",
    "shelf_ended_still_active",
    "forget",
    "context_start",
    "context_stop",
    "flapping_start",
    "flapping_stop",
    "pending",
    "discarded",
    "lost_transitions",  # 1.3: outbox entries an agent dropped before the hub had them (hub/replay.py)
    "replayed",  # 1.3: a replay from an agent's outbox is complete (one per replay, on the mount)
)
#: Journal kinds a notifier acts on (when not shelved): raised, escalated, resolved, acked, unacked, ...
EVENT_KINDS: Final = frozenset(
    (
        "alarm_raised",
        "alarm_escalated",
        "alarm_rtn",
        "ack",
        "unack",
        "agent_silent",
        "agent_back",
        "shelf_ended_still_active",
        "flapping_start",
        "flapping_stop",
    )
)

_RED: Final = RedAlert.alertcode
_SEP: Final = naming.SEPARATOR


# -- helpers ------------------------------------------------------------------------------------


#: Derived ids (a hub of a pair) are in [DERIVED_ID_BASE, 2 * DERIVED_ID_BASE).
DERIVED_ID_BASE: Final = 1 << 52


def derived_id(key: str) -> int:
    """The id both hubs of a pair give the thing named by ``key`` (blake2b: any language can compute it)."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return DERIVED_ID_BASE + int.from_bytes(digest, "big") % DERIVED_ID_BASE


def iso_utc(wall: float | None) -> str | None:
    """``wall`` seconds as ISO 8601 UTC with milliseconds (``2026-12-01T21:49:20.123Z``)."""
    if wall is None:
        return None
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def who(by: str | None, user: str | None) -> str | None:
    """One line naming who acted: the forwarded user and the key it came through (``alice (web)``)."""
    if not user or user == by:
        return by
    if not by:
        return user
    return f"{user} ({by})"


def jsonable(value: Any) -> Any:
    """A point value as JSON can carry it (bytes and other msgpack-only values become text)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


def _ancestry(path: str) -> Iterator[str]:
    """``path`` and every ancestor path, nearest first (``A/B/c``, ``A/B``, ``A``)."""
    yield path
    end = path.rfind(_SEP)
    while end > 0:
        yield path[:end]
        end = path.rfind(_SEP, 0, end)


# -- settings -----------------------------------------------------------------------------------


class AlarmSettingsError(ValueError):
    """Alarm settings that cannot be used; ``problems`` holds one line per bad value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(problems))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class AlarmRule:
    """One ``[[alarms]]`` table: ``path`` (a :class:`PathPattern`) and what it sets.

    ``latch``: whether alarms under the pattern latch (None: the default, RED
    and above). ``min_level``: the level from which they open (None:
    ``alarm_min_level``). The first rule whose pattern matches a path is the
    one used, so list specific rules before general ones.
    """

    path: str
    latch: bool | None = None
    min_level: int | None = None

    def problems(self, where: str) -> list[str]:
        found = []
        try:
            PathPattern(self.path)
        except ValueError as error:
            found.append(f"{where}.path: {error}")
        latch: object = self.latch  # from TOML: anything
        if latch is not None and not isinstance(latch, bool):
            found.append(f"{where}.latch: expected true or false, got {latch!r}")
        if self.min_level is not None and (not _is_int(self.min_level) or self.min_level <= 0):
            found.append(f"{where}.min_level: expected an alert code > 0 (ORANGE is 20), got {self.min_level!r}")
        if self.latch is None and self.min_level is None:
            found.append(f"{where}: sets nothing (give latch and/or min_level)")
        return found


@dataclass(frozen=True, slots=True)
class AlarmSettings:
    """The book's rules and limits (documented defaults)."""

    alarm_min_level: int = OrangeAlert.alertcode
    max_shelve_s: float = 24 * 3600.0  # operators' limit; until_normal shelves are capped at it
    rules: tuple[AlarmRule, ...] = ()
    max_comment_chars: int = 500
    max_shelves: int = 1000  # shelves in force or scheduled at once
    kept_cleared: int = 10_000  # cleared alarms kept in memory for listings (all are in the store)
    kept_ended_shelves: int = 1000  # likewise for ended shelves
    _patterns: tuple[PathPattern, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not _is_int(self.alarm_min_level) or self.alarm_min_level <= 0:
            problems.append(f"alarm_min_level: expected an alert code > 0 (ORANGE is 20), got {self.alarm_min_level!r}")
        for key in ("max_shelve_s",):
            value = getattr(self, key)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0 or math.isinf(value):
                problems.append(f"{key}: expected a positive number of seconds, got {value!r}")
        for key in ("max_comment_chars", "max_shelves", "kept_cleared", "kept_ended_shelves"):
            value = getattr(self, key)
            if not _is_int(value) or value < 1:
                problems.append(f"{key}: expected a whole number >= 1, got {value!r}")
        rules: tuple[object, ...] = tuple(self.rules)  # from TOML: anything
        for index, rule in enumerate(rules):
            if not isinstance(rule, AlarmRule):
                problems.append(f"alarms[{index}]: expected a rule with path, latch, min_level, got {rule!r}")
            else:
                problems += rule.problems(f"alarms[{index}]")
        if problems:
            raise AlarmSettingsError(problems)
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "_patterns", tuple(PathPattern(rule.path) for rule in self.rules))

    def rule_for(self, path: str) -> AlarmRule | None:
        """The first rule whose pattern matches ``path``."""
        for rule, pattern in zip(self.rules, self._patterns, strict=True):
            if pattern.matches(path):
                return rule
        return None


# -- records ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm instance as stored, listed and shown (times are wall seconds)."""

    id: int
    path: str
    agent: str
    reason: str  # "level", "overdue" or "agent silent"
    state: str
    level: int  # now
    level_str: str
    max_level: int  # the worst since it was raised
    max_level_str: str
    latch: bool
    raised_at: float
    raise_level: int
    raise_value: Any
    value: Any  # now
    level_since: float  # when the current level began
    rtn_at: float | None = None
    acked_by: str | None = None  # key name
    acked_user: str | None = None  # user name the client forwarded
    acked_via: str | None = None
    acked_at: float | None = None
    ack_comment: str | None = None
    shelf_id: int | None = None
    cleared_at: float | None = None
    cleared_by: str | None = None
    cleared_user: str | None = None
    cleared_reason: str | None = None

    @property
    def acked(self) -> bool:
        return self.state == ACTIVE_ACKED or (self.state == CLEARED and self.acked_at is not None)

    @property
    def shelved(self) -> bool:
        return self.shelf_id is not None

    @property
    def is_open(self) -> bool:
        return self.state != CLEARED

    @property
    def is_agent_alarm(self) -> bool:
        return self.reason == AGENT_SILENT

    def to_json(self) -> dict[str, Any]:
        """The alarm as ``gsmon alarms --json`` and the web API show it (issue 13 §4, plus ``*_str`` labels)."""
        return {
            "id": self.id,
            "path": self.path,
            "agent": self.agent,
            "reason": self.reason,
            "state": self.state,
            "level": self.level,
            "level_str": self.level_str,
            "max_level": self.max_level,
            "max_level_str": self.max_level_str,
            "latch": self.latch,
            "raised_at": iso_utc(self.raised_at),
            "rtn_at": iso_utc(self.rtn_at),
            "acked": self.acked,
            "acked_by": who(self.acked_by, self.acked_user),
            "acked_at": iso_utc(self.acked_at),
            "ack_comment": self.ack_comment,
            "shelved": self.shelved,
            "shelf_id": self.shelf_id,
        }

    def to_wire(self) -> dict[str, Any]:
        """The NODE payload's ``alarm`` map (design note ALARMS.md; times as wall seconds like every wire time)."""
        return {
            "id": self.id,
            "state": self.state,
            "level": self.level,
            "max_level": self.max_level,
            "latch": self.latch,
            "reason": self.reason,
            "raised_at": self.raised_at,
            "rtn_at": self.rtn_at,
            "acked_by": who(self.acked_by, self.acked_user),
            "acked_at": self.acked_at,
            "ack_comment": self.ack_comment,
            "shelf_id": self.shelf_id,
        }


@dataclass(frozen=True, slots=True)
class Shelf:
    """One shelf (times are wall seconds; ``ends_at`` None only for an admin's uncapped until_normal)."""

    id: int
    prefix: str
    mode: str
    starts_at: float
    ends_at: float | None
    comment: str
    by: str
    user: str | None
    via: str | None
    created_at: float
    ended_at: float | None = None
    end_reason: str | None = None
    ended_by: str | None = None
    ended_user: str | None = None

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def in_force(self, wall: float) -> bool:
        return self.ended_at is None and self.starts_at <= wall

    def to_json(self) -> dict[str, Any]:
        """The shelf as ``gsmon shelves --json`` shows it (issue 13 §4, plus when it starts and how it ended)."""
        return {
            "id": self.id,
            "prefix": self.prefix,
            "mode": self.mode,
            "comment": self.comment,
            "by": who(self.by, self.user),
            "created_at": iso_utc(self.created_at),
            "starts_at": iso_utc(self.starts_at),
            "ends_at": iso_utc(self.ends_at),
            "ended_at": iso_utc(self.ended_at),
            "end_reason": self.end_reason,
        }


class JournalEntry(NamedTuple):
    """One journal line. ``id`` is given by the store (the cursor); ``time`` is the source
    time, ``hub_time`` the hub's wall clock; ``old``/``new`` are level codes.

    A NamedTuple (immutable like the frozen dataclass it was): a storm makes one per transition,
    100,000 in one turn, and a tuple is made 3-4 times faster; its fields are in the store's column
    order, so the store's row is the tuple itself with the value encoded (hub/journal.py)."""

    time: float
    hub_time: float
    path: str
    kind: str
    old: int | None = None
    new: int | None = None
    value: Any = None
    agent: str | None = None
    user: str | None = None
    by: str | None = None
    via: str | None = None
    comment: str | None = None
    alarm_id: int | None = None
    shelf_id: int | None = None  # the shelf covering it when it happened (not notified then)
    replayed: bool = False
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry as ``gsmon log --json`` shows it (issue 13 §4, plus the cursor ``id`` and ``by``)."""
        return {
            "id": self.id,
            "time": iso_utc(self.time),
            "path": self.path,
            "kind": self.kind,
            "old": self.old,
            "new": self.new,
            "value": jsonable(self.value),
            "agent": self.agent,
            "user": self.user,
            "by": self.by,
            "comment": self.comment,
            "alarm_id": self.alarm_id,
        }


class NodeAlarmView(NamedTuple):
    """What one node's NODE payload must carry from the book (design note ALARMS.md).

    ``alarm``: the open alarm of a point, or the agent-silent alarm of a mount.
    ``shelf_id``: points only. ``shelved_below``/``unacked_below``: counts at or
    below the node (meant for parents). ``since``: points only, when their
    current level began (HubState knows parents' since). A NamedTuple: one is made
    and compared per changed node and turn (a storm: every point), tuples do both in C.
    """

    attention: int = 0
    unacked_below: int = 0
    shelved_below: int = 0
    shelf_id: int | None = None
    alarm: Alarm | None = None
    since: float | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "attention": self.attention,
            "alarm": None if self.alarm is None else self.alarm.to_wire(),
            "shelf_id": self.shelf_id,
            "shelved_below": self.shelved_below,
            "unacked_below": self.unacked_below,
            "since": self.since,
        }


_EMPTY_VIEW: Final = NodeAlarmView()
_NOT_RELAYED: Final[tuple[int | None, bool]] = (None, False)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of a command: ``ok`` (False: refused, CLI exit status 1), one line, and the ids it concerns."""

    ok: bool
    message: str
    ids: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "ids": list(self.ids)}


# -- internal state -----------------------------------------------------------------------------

_ALARM_FIELDS: Final = tuple(item.name for item in fields(Alarm))
_alarm_values: Final = operator.attrgetter(*_ALARM_FIELDS)  # Alarm's fields in order, in one C call
_SHELF_FIELDS: Final = tuple(item.name for item in fields(Shelf))


class _AlarmState:
    """A mutable alarm with the fields of :class:`Alarm`; :meth:`freeze` makes the record (cached until the next
    change, which resets ``frozen``)."""

    __slots__ = (*_ALARM_FIELDS, "frozen")

    id: int
    path: str
    agent: str
    reason: str
    state: str
    level: int
    level_str: str
    max_level: int
    max_level_str: str
    latch: bool
    raised_at: float
    raise_level: int
    raise_value: Any
    value: Any
    level_since: float
    rtn_at: float | None
    acked_by: str | None
    acked_user: str | None
    acked_via: str | None
    acked_at: float | None
    ack_comment: str | None
    shelf_id: int | None
    cleared_at: float | None
    cleared_by: str | None
    cleared_user: str | None
    cleared_reason: str | None

    def __init__(self, record: Alarm) -> None:
        for name, value in zip(_ALARM_FIELDS, _alarm_values(record), strict=True):
            setattr(self, name, value)
        self.frozen: Alarm | None = record

    def freeze(self) -> Alarm:
        if self.frozen is None:
            self.frozen = Alarm(*_alarm_values(self))  # a storm freezes one per alarm and turn
        return self.frozen

    def clear_ack(self) -> None:
        self.acked_by = self.acked_user = self.acked_via = self.ack_comment = None
        self.acked_at = None


class _Point:
    __slots__ = ("agent", "level", "level_str", "shelf_id", "since", "stale", "value")

    def __init__(self, agent: str, level: int | None, level_str: str, since: float | None) -> None:
        self.agent = agent
        self.level = level  # None: not reported since the book learnt of it (after a restart)
        self.level_str = level_str
        self.value: Any = None
        self.since = since
        self.stale: str | None = None
        self.shelf_id: int | None = None


class _Node:
    """A node of the book's own path tree (points, alarm paths and their ancestors)."""

    __slots__ = ("active", "alarms", "attention", "children", "parent", "path", "point", "shelved")

    def __init__(self, path: str, parent: _Node | None) -> None:
        self.path = path
        self.parent = parent
        self.children: dict[str, _Node] = {}
        self.point: _Point | None = None
        self.alarms: set[int] = set()  # open alarms whose path is this node
        self.attention: dict[int, int] = {}  # level -> unacked unshelved alarms at or below
        self.active = 0  # active alarms at or below (until_normal shelves end at 0)
        self.shelved = 0  # shelved points at or below


# -- the book -----------------------------------------------------------------------------------


class AlarmBook:
    """Alarm instances, shelves and attention (see the module docstring for every rule)."""

    def __init__(self, settings: AlarmSettings | None = None, next_id: int = 1) -> None:
        self.settings = settings if settings is not None else AlarmSettings()
        self.next_id = next_id
        # A hub of a pair derives ids from what both hubs see (module docstring: Ids).
        self.derived_ids = False
        self._agent_changed: dict[str, float] = {}  # agent -> source time of its last level change seen
        self._alarms: dict[int, _AlarmState] = {}
        self._point_alarm: dict[str, int] = {}  # path -> open point alarm
        self._agent_alarm: dict[str, int] = {}  # agent -> open agent-silent alarm
        self._cleared: deque[int] = deque()  # cleared alarms kept for listings, oldest first
        self._silent: dict[str, str] = {}  # silent agent -> the mount its alarm is on
        self._points: dict[str, _Point] = {}
        # Points restore() brought back, by agent: the only ones HubState may not know.
        self._restored_points: dict[str, list[str]] = {}
        self._nodes: dict[str, _Node] = {}
        self._shelves: dict[int, Shelf] = {}
        self._ended: deque[int] = deque()
        self._in_force: dict[str, set[int]] = {}  # prefix -> shelves in force there
        self._starts: list[tuple[float, int]] = []  # heap: scheduled shelves not started yet
        self._ends: list[tuple[float, int]] = []  # heap: shelves in force with an end time
        self._debounce: dict[str, tuple[tuple[int, float] | None, tuple[float, int] | None, bool]] = {}
        self._rules: dict[str, tuple[int, bool | None]] = {}  # path -> (min_level, latch rule), cached
        self._journal: list[JournalEntry] = []
        self._events: list[JournalEntry] = []
        self._dirty_nodes: set[str] = set()
        self._dirty_alarms: set[int] = set()
        self._dirty_shelves: set[int] = set()
        self._published: dict[str, NodeAlarmView] = {}
        self._normal_due: list[str] = []  # prefixes whose active count fell to 0 (until_normal shelves)
        self._replaying = False  # journal entries made now are marked replayed (replayed_level)
        # (1.3) Relayed points (a site's, gsmon.hub.relay): path -> (the level its site's alarm counts at for
        # attention or None, shelved at the site). No alarm of this book's: they only count in the rollup.
        self._relayed: dict[str, tuple[int | None, bool]] = {}
        # (1.3) A site's orphaned alarms (no point of theirs relayed): (site, the site's id) -> (path, the level
        # it counts at). Only their counted ones are held; _relayed_orphan_paths counts them per path (_prune).
        self._relayed_orphans: dict[tuple[str, int], tuple[str, int]] = {}
        self._relayed_orphan_paths: dict[str, int] = {}
        # (1.3) This book's own orphans: open point alarms whose point is gone (module docstring: Orphans).
        self._orphaned: dict[int, None] = {}
        self.orphans_version = 0

    # ------------------------------------------------------------------
    # Restore
    # ------------------------------------------------------------------

    @classmethod
    def restore(
        cls,
        settings: AlarmSettings | None,
        alarms: Iterable[Alarm],
        shelves: Iterable[Shelf],
        next_id: int,
        now: float,
        wall: float,
    ) -> AlarmBook:
        """A book continuing from what the store holds.

        Open alarms come back with every flag; their points are known at the
        alarm's level, so a point that reports the same again is neither
        journaled nor raised again. Agents with an active agent-silent alarm
        are silent until :meth:`agent_back`. Shelves in force are back; a
        shelf whose end passed while the hub was down ends now with reason
        ``expired_during_downtime`` (and its still-active alarms are
        announced); a scheduled shelf whose start passed begins. Ids continue
        after the highest seen.
        """
        book = cls(settings, next_id)
        restored = sorted(alarms, key=lambda alarm: alarm.id)
        shelf_list = sorted(shelves, key=lambda shelf: shelf.id)
        counted = [*(a.id + 1 for a in restored), *(s.id + 1 for s in shelf_list)]
        book.next_id = max([next_id, *(made for made in counted if made <= DERIVED_ID_BASE)])
        expired: list[Shelf] = []
        for shelf in shelf_list:
            book._shelves[shelf.id] = shelf
            if shelf.ended:
                book._ended.append(shelf.id)
            elif shelf.starts_at > wall:
                heapq.heappush(book._starts, (shelf.starts_at, shelf.id))
            elif shelf.ends_at is not None and shelf.ends_at <= wall:
                expired.append(shelf)
            else:
                book._in_force.setdefault(shelf.prefix, set()).add(shelf.id)
                if shelf.ends_at is not None:
                    heapq.heappush(book._ends, (shelf.ends_at, shelf.id))
        for record in restored:
            alarm = _AlarmState(record)
            book._alarms[alarm.id] = alarm
            if alarm.state == CLEARED:
                book._cleared.append(alarm.id)
                continue
            if alarm.reason == AGENT_SILENT:
                book._agent_alarm[alarm.agent] = alarm.id
                if alarm.state in _ACTIVE:
                    book._silent[alarm.agent] = alarm.path
            else:
                book._point_alarm[alarm.path] = alarm.id
                point = _Point(alarm.agent, alarm.level, alarm.level_str, alarm.level_since)
                point.value = alarm.value
                book._add_point(alarm.path, point)
                book._restored_points.setdefault(alarm.agent, []).append(alarm.path)
            book._attach(alarm)  # as it was stored, shelf included
        for shelf in expired:
            book._end_shelf(shelf, "expired_during_downtime", wall)
        # The shelves in force now may differ from those stored with an alarm: one that ended while the
        # hub was down leaves its still-active alarms unshelved, and announced, as any shelf end does.
        for alarm_id in sorted(book._point_alarm.values()) + sorted(book._agent_alarm.values()):
            book._rescope(book._alarms[alarm_id], wall, announce=True)
        for prefix, ids in list(book._in_force.items()):
            node = book._nodes.get(prefix)
            if (node is None or not node.active) and any(book._shelves[i].mode == UNTIL_NORMAL for i in ids):
                book._normal_due.append(prefix)  # nothing it covers is in alarm any more
        book._settle(wall)
        return book

    # ------------------------------------------------------------------
    # Inputs from HubState
    # ------------------------------------------------------------------

    def point_level(
        self,
        path: str,
        agent: str,
        level: int,
        level_str: str,
        value: Any,
        source_time: float | None,
        stale_reason: str | None,
        now: float,
        wall: float,
    ) -> None:
        """A point's effective level (or its staleness) changed; also its first level.

        ``level`` is the level the hub shows (at least STALE while stale);
        ``stale_reason`` is None, ``"overdue"``, ``"agent silent"`` or ``"unlisted"``;
        ``source_time`` the agent's ``polled_at`` of the change (None: ``wall``;
        pass ``wall`` for the hub's own stale judgements).
        """
        if stale_reason is not None and stale_reason not in _STALE_REASONS:
            raise ValueError(f"stale_reason must be None or one of {_STALE_REASONS!r}, not {stale_reason!r}")
        at = wall if source_time is None else source_time
        point = self._points.get(path)
        if point is None:
            point = _Point(agent, None, level_str, at)
            self._add_point(path, point)
        old_level, old_stale = point.level, point.stale
        alarm_id = self._point_alarm.get(path)
        changed = old_level != level or old_stale != stale_reason
        # An overdue alarm is the hub's own judgement (its wall clock): a pair keys it by the source time
        # of the level it interrupts, which both hubs got from the agent.
        id_at = point.since if stale_reason == OVERDUE and point.since is not None else at
        point.agent = agent
        point.value = value
        if changed:
            point.since = at
            self._dirty_nodes.add(path)
        point.level, point.level_str, point.stale = level, level_str, stale_reason
        if changed and stale_reason is None:
            self._agent_changed[agent] = max(at, self._agent_changed.get(agent, at))
        if stale_reason in _QUIET_STALE:
            # Silent: the mount's alarm stands for these points. Unlisted: the agent has no such point any
            # more, and its removal follows. Either way an alarm they had stays as it was.
            if changed and old_level is not None:
                kind = "stale" if old_stale is None else "level"
                comment = UNLISTED if stale_reason == UNLISTED else None
                self._log_point(kind, path, point, at, wall, old_level, level, comment=comment)
            return
        min_level, _ = self._rule(path)
        alarming = level >= min_level  # overdue points are at least STALE
        if changed and old_level is not None:
            kind = "stale" if stale_reason and not old_stale else "fresh" if old_stale and not stale_reason else "level"
            # The entry names the alarm this change raises, too: it takes the next id just below.
            raising = alarm_id is None and alarming
            reason = OVERDUE if stale_reason == OVERDUE else REASON_LEVEL
            upcoming = self._new_alarm_id(path, reason, id_at) if raising else None
            self._log_point(kind, path, point, at, wall, old_level, level, alarm_id=upcoming)
        if alarm_id is None:
            if alarming:
                reason = OVERDUE if stale_reason == OVERDUE else REASON_LEVEL
                self._raise(path, agent, reason, level, level_str, value, at, wall, id_at=id_at)
        else:
            self._follow(self._alarms[alarm_id], alarming, level, level_str, value, at, wall)
        self._settle(wall)

    def point_debounce(
        self,
        path: str,
        agent: str,
        pending: tuple[int, float] | None,
        flapping: tuple[float, int] | None,
        source_time: float | None,
        now: float,
        wall: float,
    ) -> None:
        """The agent's ``pending`` ``(level, since)`` and ``flapping`` ``(since, changes)`` of a point, as
        its point entry carries them; their changes are journaled (pending, discarded, flapping_start/stop).
        Call after :meth:`point_level` for the same entry, so that a pending level that was reached
        reads as reached, not discarded."""
        at = wall if source_time is None else source_time
        point = self._points.get(path)
        current = point.level if point is not None and point.level is not None else 0
        shelf_id = point.shelf_id if point is not None else None
        before, was_flapping, rising = self._debounce.get(path, (None, None, True))
        new_rising = pending is not None and pending[0] > current
        if before is not None and (pending is None or pending[0] != before[0]):
            # Given up, unless it escalated (a higher rise, a deeper fall) or was reached.
            escalated = (
                pending is not None
                and new_rising == rising
                and (pending[0] > before[0] if rising else pending[0] < before[0])
            )
            reached = current >= before[0] if rising else current <= before[0]
            if not escalated and not reached:
                self._log("discarded", path, at, wall, old=current, new=before[0], agent=agent, shelf_id=shelf_id)
        if pending is not None and (before is None or pending[0] != before[0]):
            rising = new_rising
            self._log("pending", path, at, wall, old=current, new=pending[0], agent=agent, shelf_id=shelf_id)
        if was_flapping is None and flapping is not None:
            self._log("flapping_start", path, at, wall, new=current, agent=agent, shelf_id=shelf_id)
        elif was_flapping is not None and flapping is None:
            self._log("flapping_stop", path, at, wall, new=current, agent=agent, shelf_id=shelf_id)
        if pending is None and flapping is None:
            self._debounce.pop(path, None)
        else:
            self._debounce[path] = (pending, flapping, rising)

    def agent_silent(self, agent: str, mount: str, now: float, wall: float) -> None:
        """``agent`` went silent: one alarm on its ``mount`` (its points' STALE opens none)."""
        if agent in self._silent:
            return
        self._silent[agent] = mount
        alarm_id = self._agent_alarm.get(agent)
        shelf_id = self._covering(mount)
        self._log(
            "agent_silent", mount, wall, wall, new=STALE_ALERTCODE, agent=agent, alarm_id=alarm_id, shelf_id=shelf_id
        )
        min_level, _ = self._rule(mount)
        alarming = min_level <= STALE_ALERTCODE
        if alarm_id is not None:
            self._follow(self._alarms[alarm_id], alarming, STALE_ALERTCODE, "STALE", None, wall, wall)
        elif alarming:
            self._raise(mount, agent, AGENT_SILENT, STALE_ALERTCODE, "STALE", None, wall, wall)
        self._settle(wall)

    def agent_back(self, agent: str, mount: str, now: float, wall: float) -> None:
        """``agent`` is heard again: its agent-silent alarm returns to normal. Safe to call for any
        agent heard for the first time (after a restart too): it does nothing unless the book
        thinks the agent silent."""
        silent_mount = self._silent.pop(agent, None)
        if silent_mount is None:
            return
        alarm_id = self._agent_alarm.get(agent)
        shelf_id = self._covering(silent_mount)
        self._log(
            "agent_back",
            silent_mount,
            wall,
            wall,
            old=STALE_ALERTCODE,
            agent=agent,
            alarm_id=alarm_id,
            shelf_id=shelf_id,
        )
        if alarm_id is not None:
            self._follow(self._alarms[alarm_id], False, 0, "", None, wall, wall)
        self._settle(wall)

    def set_relayed(self, path: str, attention: int | None, shelved: bool) -> None:
        """(1.3) What the relayed point at ``path`` counts for in the rollup (protocol: Hub-of-hubs): its
        site's alarm needs attention at level ``attention`` (None: it needs none -- no alarm, acked or
        shelved at the site), ``shelved``: a site's shelf covers it. Parents count it in ``attention``,
        ``unacked_below`` and ``shelved_below`` like an alarm of their own, at the cost of one walk up the
        ancestry when it changes. ``(None, False)`` takes it away (the point is gone, its site is silent).
        Nothing is journaled and no alarm opens: alarm state stays with the site."""
        before = self._relayed.get(path, _NOT_RELAYED)
        if (attention, shelved) == before:
            return
        node = self._ensure(path)
        if attention != before[0]:
            self._apply(node, (before[0], False), (attention, False))  # never active: no shelf of ours covers it
        if shelved != before[1]:
            self._count_shelved(node, 1 if shelved else -1)
        self._dirty_nodes.add(path)
        if attention is None and not shelved:
            del self._relayed[path]
            self._prune(node)
        else:
            self._relayed[path] = (attention, shelved)

    def set_relayed_orphan(self, key: tuple[str, int], path: str, attention: int | None) -> None:
        """(1.3) A site's orphaned alarm ``key`` = (site, the site's id) at ``path`` (protocol: Orphaned alarms)
        needs attention at level ``attention`` (None: it needs none, or it is gone, or it is not counted now).
        The ancestors of ``path`` count it as an alarm of a removed point of this book's own counts there."""
        before = self._relayed_orphans.get(key)
        if before == (path, attention):
            return
        if before is not None:
            old_path, old_level = before
            del self._relayed_orphans[key]
            node = self._nodes.get(old_path)
            self._apply(node, (old_level, False), (None, False))
            left = self._relayed_orphan_paths[old_path] - 1
            if left:
                self._relayed_orphan_paths[old_path] = left
            else:
                del self._relayed_orphan_paths[old_path]
                self._prune(node)
        if attention is not None:
            self._relayed_orphans[key] = (path, attention)
            self._relayed_orphan_paths[path] = self._relayed_orphan_paths.get(path, 0) + 1
            node = self._ensure(path)
            self._apply(node, (None, False), (attention, False))
            self._dirty_nodes.add(path)

    def orphaned_alarms(self) -> list[Alarm]:
        """(1.3) The open alarms no point carries, by id (module docstring: Orphans): those of points this book
        no longer has, and the agent-silent alarms of agents heard again."""
        alarms = self._alarms
        found = list(self._orphaned)
        found += (alarm_id for agent, alarm_id in self._agent_alarm.items() if agent not in self._silent)
        return [alarms[alarm_id].freeze() for alarm_id in sorted(found) if alarms[alarm_id].state != CLEARED]

    def point_removed(self, path: str, now: float, wall: float, reason: str = "removed") -> None:
        """The point at ``path`` is gone from the hub's tree (its agent no longer reports it, forget, ...)."""
        if path in self._relayed:
            self.set_relayed(path, None, False)
        point = self._points.get(path)
        alarm_id = self._point_alarm.get(path)
        if point is not None and point.level is not None:
            self._log_point("removed", path, point, wall, wall, point.level, None, comment=reason)
        if alarm_id is not None:
            alarm = self._alarms[alarm_id]
            before = self._contribution(alarm)
            if alarm.state in _ACTIVE:
                alarm.rtn_at = wall
                self._log_alarm("alarm_rtn", alarm, wall, wall, old=alarm.level, comment=reason)
            if alarm.latch and alarm.state in _UNACKED:
                alarm.state = RTN_UNACKED  # a latched alarm never disappears unacknowledged
                self._orphaned[alarm.id] = None  # (1.3) it outlives its point: an orphan
                self.orphans_version += 1
                self._changed(alarm, before)
            else:
                self._clear(alarm, before, wall, None, None, reason)
        self._debounce.pop(path, None)
        if point is not None:
            self._remove_point(path)
        self._settle(wall)

    def record(self, kind: str, path: str, wall: float, at: float | None = None, **fields: Any) -> None:
        """Journal something the hub did outside the book (``context_start``/``context_stop``, replay
        entries); ``at``: its source time (default ``wall``)."""
        self._log(kind, path, wall if at is None else at, wall, **fields)

    def replayed_level(
        self,
        path: str,
        agent: str,
        old: int | None,
        new: int,
        level_str: str,
        value: Any,
        at: float,
        wall: float,
        replayed: bool = True,
    ) -> None:
        """A transition of a point's effective level at ``at`` that the hub missed, replayed from its agent's
        outbox (protocol 1.3, hub/replay.py): journaled ``replayed`` with its original time, and fed to the
        point's alarm as it would have been live (raised, escalated, returned to normal: a latched RED that
        came and went is ``rtn_unacked``). The point's own level stays the live one; :meth:`replay_done`
        brings its alarm back in line with it. A point the book does not know is journaled only.
        ``replayed`` False: a live transition its DELTA could not show (a blip between two flushes, 1.3),
        journaled as live."""
        self._replaying = replayed
        try:
            point = self._points.get(path)
            alarm_id = self._point_alarm.get(path)
            min_level, _ = self._rule(path)
            alarming = new >= min_level
            raising = point is not None and alarm_id is None and alarming
            self._log(
                "level", path, at, wall, old=old, new=new, value=value, agent=agent,
                alarm_id=self.next_id if raising else alarm_id, shelf_id=self._covering(path),
            )  # fmt: skip
            if point is None:
                return
            if alarm_id is None:
                if alarming:
                    self._raise(path, agent, REASON_LEVEL, new, level_str, value, at, wall)
            else:
                self._follow(self._alarms[alarm_id], alarming, new, level_str, value, at, wall)
            self._settle(wall)
        finally:
            self._replaying = False

    def replay_done(self, path: str, wall: float, replayed: bool = True) -> None:
        """After :meth:`replayed_level` calls for ``path``: its open alarm follows the point's live level again."""
        point = self._points.get(path)
        alarm_id = self._point_alarm.get(path)
        if point is None or point.level is None or point.stale is not None or alarm_id is None:
            return
        alarm = self._alarms[alarm_id]
        if alarm.level == point.level:
            return
        min_level, _ = self._rule(path)
        at = max(point.since if point.since is not None else wall, alarm.level_since)
        self._replaying = replayed
        try:
            self._follow(alarm, point.level >= min_level, point.level, point.level_str, point.value, at, wall)
            self._settle(wall)
        finally:
            self._replaying = False

    def record_forget(
        self, prefix: str, by: str, user: str | None, comment: str | None, via: str | None, now: float, wall: float
    ) -> None:
        """Journal an admin's ``forget`` of ``prefix`` (the hub then removes the points: :meth:`point_removed`)."""
        self._log("forget", prefix, wall, wall, user=user, by=by, via=via, comment=comment)

    # ------------------------------------------------------------------
    # Commands
    # ------------------------------------------------------------------

    def ack(
        self,
        ids: Iterable[int],
        by: str,
        user: str | None,
        comment: str | None,
        via: str | None,
        role: str,
        now: float,
        wall: float,
        seen: Mapping[int, int] | None = None,
    ) -> Outcome:
        """Acknowledge the alarms ``ids`` (the ids the operator was shown, never "everything under a prefix").

        ``seen``: the ``max_level`` each id had when it was shown; an alarm
        that escalated since is not acknowledged. Already acknowledged or
        cleared ids are skipped and said so; unknown ids are refused.
        """
        refusal = self._refuse(role, OPERATOR, "acknowledge alarms") or self._bad_comment(comment, required=False)
        if refusal:
            return refusal
        acked: list[int] = []
        notes: list[str] = []
        problems: list[str] = []
        for alarm_id in dict.fromkeys(ids):
            alarm = self._alarms.get(alarm_id)
            if alarm is None:
                problems.append(self._unknown(alarm_id, "alarm"))
            elif alarm.state == CLEARED:
                notes.append(f"{alarm_id} is already cleared")
            elif alarm.state == ACTIVE_ACKED:
                notes.append(f"{alarm_id} is already acknowledged")
            elif seen is not None and alarm_id in seen and alarm.max_level > seen[alarm_id]:
                problems.append(
                    f"{alarm_id} rose to {alarm.max_level_str or alarm.max_level} after it was listed: look again"
                )
            else:
                before = self._contribution(alarm)
                alarm.acked_by, alarm.acked_user, alarm.acked_via = by, user, via
                alarm.acked_at, alarm.ack_comment = wall, comment
                rtn = alarm.state == RTN_UNACKED
                alarm.state = ACTIVE_ACKED
                self._log_alarm("ack", alarm, wall, wall, new=alarm.max_level, comment=comment, actor=(by, user, via))
                if rtn:
                    self._clear(alarm, before, wall, by, user, "acknowledged after return to normal")
                else:
                    self._changed(alarm, before)
                acked.append(alarm_id)
        self._settle(wall)
        parts = [f"acknowledged {len(acked)} alarm{'s' if len(acked) != 1 else ''}"]
        if acked:
            parts[0] += ": " + ", ".join(map(str, acked))
        parts += notes + problems
        return Outcome(not problems, "; ".join(parts), tuple(acked))

    def unack(
        self,
        alarm_id: int,
        by: str,
        user: str | None,
        comment: str | None,
        via: str | None,
        role: str,
        now: float,
        wall: float,
    ) -> Outcome:
        """Take an acknowledgement back: ``active_acked`` -> ``active_unacked``."""
        alarm = self._one_alarm(alarm_id, role, OPERATOR, "unacknowledge alarms", comment)
        if isinstance(alarm, Outcome):
            return alarm
        if alarm.state != ACTIVE_ACKED:
            return Outcome(
                False, f"alarm {alarm_id} is {alarm.state}: only an acknowledged, still active alarm can be unacked"
            )
        before = self._contribution(alarm)
        alarm.state = ACTIVE_UNACKED
        alarm.clear_ack()
        self._log_alarm("unack", alarm, wall, wall, new=alarm.max_level, comment=comment, actor=(by, user, via))
        self._changed(alarm, before)
        self._settle(wall)
        return Outcome(True, f"alarm {alarm_id} is unacknowledged again", (alarm_id,))

    def clear(
        self,
        alarm_id: int,
        by: str,
        user: str | None,
        comment: str | None,
        via: str | None,
        role: str,
        now: float,
        wall: float,
    ) -> Outcome:
        """Clear an open alarm whatever its state (admins only)."""
        alarm = self._one_alarm(alarm_id, role, ADMIN, "clear alarms", comment)
        if isinstance(alarm, Outcome):
            return alarm
        if alarm.state == CLEARED:
            return Outcome(False, f"alarm {alarm_id} is already cleared")
        self._clear(
            alarm,
            self._contribution(alarm),
            wall,
            by,
            user,
            comment or "cleared by an admin",
            via=via,
            journal_comment=comment,
        )
        self._settle(wall)
        return Outcome(True, f"alarm {alarm_id} cleared", (alarm_id,))

    def shelve(
        self,
        prefix: str,
        mode: str,
        starts_at: float | None,
        ends_at: float | None,
        comment: str | None,
        by: str,
        user: str | None,
        via: str | None,
        role: str,
        now: float,
        wall: float,
        shelf_id: int | None = None,
    ) -> Outcome:
        """Shelve ``prefix``: ``timed`` (now to ``ends_at``), ``until_normal`` (``ends_at``: an optional cap;
        operators get at most ``max_shelve_s``) or ``scheduled`` (``starts_at`` to ``ends_at``). ``shelf_id``:
        the id the peer hub of a pair gave it (a replicated shelf)."""
        refusal = self._refuse(role, OPERATOR, "shelve") or self._bad_comment(comment, required=True)
        if refusal:
            return refusal
        assert comment is not None
        given: object = prefix  # checked again: commands come from the network
        prefix = prefix.rstrip(_SEP) if isinstance(given, str) else prefix
        try:
            naming.check_path(prefix, "shelf prefix")
        except naming.InvalidNameError as error:
            return Outcome(False, f"{error} (shelve a subtree such as GS1/Antenna2)")
        if mode not in MODES:
            return Outcome(False, f"unknown shelf mode {mode!r}: use one of {', '.join(MODES)}")
        limit = self.settings.max_shelve_s
        if mode == SCHEDULED:
            if starts_at is None or ends_at is None:
                return Outcome(False, "a scheduled shelf needs both a start and an end (--from T --to T)")
            start = starts_at
        else:
            if starts_at is not None and starts_at > wall:
                return Outcome(False, f"a {mode} shelf starts now: use a scheduled shelf for a later start")
            start = wall
        if mode == TIMED and ends_at is None:
            return Outcome(False, "a timed shelf needs an end (--for 2h)")
        if mode == UNTIL_NORMAL and role != ADMIN:
            ends_at = wall + limit if ends_at is None else min(ends_at, wall + limit)
        if ends_at is not None and not math.isfinite(ends_at):
            return Outcome(False, f"the end of a shelf must be a time, got {ends_at!r}")
        if ends_at is not None and ends_at <= max(start, wall):
            return Outcome(False, f"the shelf would end at {iso_utc(ends_at)}, which is not after its start")
        if role != ADMIN and ends_at is not None and ends_at - max(start, wall) > limit:
            return Outcome(
                False,
                f"operators may shelve for at most {_duration(limit)} (asked: {_duration(ends_at - max(start, wall))});"
                " ask an admin for longer",
            )
        if sum(1 for shelf in self._shelves.values() if not shelf.ended) >= self.settings.max_shelves:
            return Outcome(
                False, f"{self.settings.max_shelves} shelves are already in force or scheduled: end some first"
            )
        if mode == UNTIL_NORMAL:
            node = self._nodes.get(prefix)
            if node is None or node.active == 0:
                return Outcome(
                    False,
                    f"nothing under {prefix} is in alarm, so an until-normal shelf would end at once:"
                    " shelve for a time",
                )
        if shelf_id is not None and shelf_id in self._shelves:
            return Outcome(False, f"shelf {shelf_id} exists already")
        if shelf_id is None:
            shelf_id = self._derive(f"shelf\0{prefix}\0{by}\0{wall!r}") if self.derived_ids else self._take_id()
        shelf = Shelf(shelf_id, prefix, mode, start, ends_at, comment, by, user, via, wall)
        self._shelves[shelf.id] = shelf
        self._dirty_shelves.add(shelf.id)
        self._log("shelf_created", prefix, wall, wall, user=user, by=by, via=via, comment=comment, shelf_id=shelf.id)
        if start <= wall:
            self._start_shelf(shelf)
        else:
            heapq.heappush(self._starts, (start, shelf.id))
        self._settle(wall)
        until = "until normal" if mode == UNTIL_NORMAL else ""
        if ends_at is not None:
            until = f"{until} (at most until {iso_utc(ends_at)})" if until else f"until {iso_utc(ends_at)}"
        begins = "" if start <= wall else f" from {iso_utc(start)}"
        return Outcome(True, f"shelf {shelf.id} on {prefix}{begins} {until}".rstrip(), (shelf.id,))

    def unshelve(
        self,
        shelf_id: int,
        by: str,
        user: str | None,
        comment: str | None,
        via: str | None,
        role: str,
        now: float,
        wall: float,
    ) -> Outcome:
        """End a shelf now (or cancel a scheduled one)."""
        refusal = self._refuse(role, OPERATOR, "unshelve") or self._bad_comment(comment, required=False)
        if refusal:
            return refusal
        shelf = self._shelves.get(shelf_id)
        if shelf is None:
            return Outcome(False, self._unknown(shelf_id, "shelf"))
        if shelf.ended:
            return Outcome(False, f"shelf {shelf_id} already ended ({shelf.end_reason})")
        self._end_shelf(shelf, "unshelved", wall, by=by, user=user, via=via, comment=comment)
        self._settle(wall)
        return Outcome(True, f"shelf {shelf_id} ended", (shelf_id,))

    # ------------------------------------------------------------------
    # Time
    # ------------------------------------------------------------------

    def tick(self, now: float, wall: float) -> None:
        """Start scheduled shelves whose time came, end shelves whose time is up."""
        while self._starts and self._starts[0][0] <= wall:
            _, shelf_id = heapq.heappop(self._starts)
            shelf = self._shelves.get(shelf_id)
            if shelf is None or shelf.ended:
                continue
            if shelf.ends_at is not None and shelf.ends_at <= wall:
                self._end_shelf(shelf, "expired", wall)  # its whole window passed between two ticks: never in force
            else:
                self._start_shelf(shelf)
        while self._ends and self._ends[0][0] <= wall:
            _, shelf_id = heapq.heappop(self._ends)
            shelf = self._shelves.get(shelf_id)
            if shelf is not None and not shelf.ended:
                self._end_shelf(shelf, "expired", wall)
        self._settle(wall)

    # ------------------------------------------------------------------
    # Outputs
    # ------------------------------------------------------------------

    def take_journal(self) -> list[JournalEntry]:
        """Everything to persist since the last call, in order."""
        entries, self._journal = self._journal, []
        return entries

    def journal_mark(self) -> int:
        """Where the journal not yet taken ends now (for :meth:`journal_since`, within one loop turn)."""
        return len(self._journal)

    def journal_since(self, mark: int) -> list[JournalEntry]:
        """The entries journaled since :meth:`journal_mark` gave ``mark`` (none taken in between)."""
        return self._journal[mark:]

    def take_events(self) -> list[JournalEntry]:
        """The journal entries since the last call that a notifier acts on (:data:`EVENT_KINDS`, unshelved)."""
        events, self._events = self._events, []
        return events

    def take_records(self) -> tuple[list[Alarm], list[Shelf], int]:
        """Alarms and shelves changed since the last call (to upsert), and the next id (to store)."""
        alarms = [
            self._alarms[alarm_id].freeze() for alarm_id in sorted(self._dirty_alarms) if alarm_id in self._alarms
        ]
        shelves = [self._shelves[shelf_id] for shelf_id in sorted(self._dirty_shelves) if shelf_id in self._shelves]
        self._dirty_alarms.clear()
        self._dirty_shelves.clear()
        # Only now may old cleared alarms and ended shelves leave memory: their last change is in this batch.
        while len(self._cleared) > self.settings.kept_cleared:
            self._alarms.pop(self._cleared.popleft(), None)
        while len(self._ended) > self.settings.kept_ended_shelves:
            self._shelves.pop(self._ended.popleft(), None)
        return alarms, shelves, self.next_id

    def take_node_changes(self) -> dict[str, NodeAlarmView]:
        """Nodes whose attention, alarm, shelf or counts changed since the last call (an all-zero view: reset)."""
        changes: dict[str, NodeAlarmView] = {}
        published = self._published
        for path in self._dirty_nodes:
            view = self.view_of(path)
            if view != published.get(path, _EMPTY_VIEW):
                changes[path] = view
                if view == _EMPTY_VIEW:
                    published.pop(path, None)
                else:
                    published[path] = view
        self._dirty_nodes.clear()
        return changes

    # ------------------------------------------------------------------
    # Queries
    # ------------------------------------------------------------------

    def alarms(self, prefix: str = "", unacked_only: bool = False, include_cleared: bool = False) -> list[Alarm]:
        """Alarms under ``prefix`` by id: every open one (shelved included), cleared ones on request."""
        return [
            alarm.freeze()
            for alarm_id, alarm in sorted(self._alarms.items())
            if (include_cleared or alarm.state != CLEARED)
            and (not unacked_only or alarm.state in _UNACKED)
            and path_in_prefix(alarm.path, prefix)
        ]

    def alarm(self, alarm_id: int) -> Alarm | None:
        alarm = self._alarms.get(alarm_id)
        return None if alarm is None else alarm.freeze()

    def shelves(self, active_only: bool = True) -> list[Shelf]:
        """Shelves by id: those in force or scheduled (``active_only``), or every one kept."""
        return [shelf for _, shelf in sorted(self._shelves.items()) if not (active_only and shelf.ended)]

    def shelf(self, shelf_id: int) -> Shelf | None:
        return self._shelves.get(shelf_id)

    def current_view(self, path: str) -> NodeAlarmView:
        """:meth:`view_of`, read from the last :meth:`take_node_changes` when ``path`` has not changed since.

        Every change to a node's view marks it dirty (that is what makes take_node_changes complete), so
        the published view of a clean node IS its view; the hub's drain packs every changed node right
        after taking the changes, and computing each view twice was a fifth of a storm turn.
        """
        if path in self._dirty_nodes:
            return self.view_of(path)
        return self._published.get(path, _EMPTY_VIEW)

    def view_of(self, path: str) -> NodeAlarmView:
        node = self._nodes.get(path)
        if node is None:
            return _EMPTY_VIEW
        point = node.point
        alarm: _AlarmState | None = None
        if node.alarms:
            # A point's own alarm; on a mount, the agent-silent alarm needing most attention.
            alarm = max(
                (self._alarms[alarm_id] for alarm_id in node.alarms),
                key=lambda a: (a.state in _UNACKED and a.shelf_id is None, a.max_level, a.id),
            )
        counts = node.attention
        return NodeAlarmView(
            attention=max(counts) if counts else 0,
            unacked_below=sum(counts.values()),
            shelved_below=node.shelved,
            shelf_id=point.shelf_id if point is not None else None,
            alarm=None if alarm is None else alarm.freeze(),
            since=point.since if point is not None else None,
        )

    def attention_of(self, path: str) -> int:
        """The worst level among unacked, unshelved alarms at or below ``path`` (0: none)."""
        node = self._nodes.get(path)
        return max(node.attention) if node is not None and node.attention else 0

    def unacked_below(self, path: str) -> int:
        node = self._nodes.get(path)
        return sum(node.attention.values()) if node is not None else 0

    def shelved_below(self, path: str) -> int:
        node = self._nodes.get(path)
        return node.shelved if node is not None else 0

    def shelf_of(self, path: str) -> int | None:
        """The shelf covering ``path`` now (the oldest in force), or None."""
        return self._covering(path)

    def is_silent(self, agent: str) -> bool:
        return agent in self._silent

    def agent_alarm(self, agent: str) -> Alarm | None:
        """The open agent-silent alarm of ``agent`` (None: none, or cleared)."""
        alarm_id = self._agent_alarm.get(agent)
        if alarm_id is None:
            return None
        alarm = self._alarms[alarm_id]
        return None if alarm.state == CLEARED else alarm.freeze()

    def point_paths_of(self, agent: str) -> list[str]:
        """Every point the book knows for ``agent`` (a scan of all points: for views and tests)."""
        return sorted(path for path, point in self._points.items() if point.agent == agent)

    def restored_point_paths_of(self, agent: str) -> list[str]:
        """The points :meth:`restore` brought back for ``agent`` that it still has: after a restart, those
        its first complete STATE does not list should be passed to :meth:`point_removed`, as HubState never
        knew them. (Only the restored ones: a point the book learnt since is one HubState knows; a scan of
        every point per agent made a fleet's admission quadratic -- 4,000 agents at 24 a second.)"""
        paths = self._restored_points.get(agent, ())
        return sorted(path for path in paths if (point := self._points.get(path)) is not None and point.agent == agent)

    # ------------------------------------------------------------------
    # Alarm lifecycle
    # ------------------------------------------------------------------

    def _raise(
        self,
        path: str,
        agent: str,
        reason: str,
        level: int,
        level_str: str,
        value: Any,
        at: float,
        wall: float,
        id_at: float | None = None,
    ) -> None:
        _, latch_rule = self._rule(path)
        if reason == AGENT_SILENT:
            at_key = self._agent_changed.get(agent, at)
            alarm_id = self._new_alarm_id(path, f"{reason}\0{agent}", at_key)
        else:
            alarm_id = self._new_alarm_id(path, reason, at if id_at is None else id_at)
        if not self.derived_ids:
            self.next_id += 1
        record = Alarm(
            id=alarm_id,
            path=path,
            agent=agent,
            reason=reason,
            state=ACTIVE_UNACKED,
            level=level,
            level_str=level_str,
            max_level=level,
            max_level_str=level_str,
            latch=_latches(latch_rule, level),
            raised_at=at,
            raise_level=level,
            raise_value=value,
            value=value,
            level_since=at,
            shelf_id=self._covering(path),
        )
        alarm = _AlarmState(record)
        self._alarms[alarm.id] = alarm
        if reason == AGENT_SILENT:
            self._agent_alarm[agent] = alarm.id
        else:
            self._point_alarm[path] = alarm.id
        self._attach(alarm)
        self._dirty_alarms.add(alarm.id)
        self._log_alarm("alarm_raised", alarm, at, wall, new=level, comment=None if reason == REASON_LEVEL else reason)

    def _follow(
        self, alarm: _AlarmState, alarming: bool, level: int, level_str: str, value: Any, at: float, wall: float
    ) -> None:
        """An open alarm's point (or agent) is at ``level`` now; ``alarming``: at or above its min level."""
        before = self._contribution(alarm)
        previous = alarm.level
        if level != alarm.level:
            alarm.level_since = at
        alarm.level, alarm.level_str, alarm.value = level, level_str, value
        if alarming:
            if level > alarm.max_level:
                old = alarm.max_level
                alarm.max_level, alarm.max_level_str = level, level_str
                alarm.latch = alarm.latch or _latches(self._rule(alarm.path)[1], level)
                alarm.state = ACTIVE_UNACKED  # above what anyone acknowledged: attention again
                alarm.rtn_at = None
                alarm.clear_ack()
                self._log_alarm("alarm_escalated", alarm, at, wall, old=old, new=level)
            elif alarm.state == RTN_UNACKED:
                alarm.state = ACTIVE_UNACKED  # back in alarm before anyone acknowledged the first time
                alarm.rtn_at = None
            self._changed(alarm, before)
            return
        if alarm.state not in _ACTIVE:
            self._changed(alarm, before)  # rtn_unacked: only the current level moved
            return
        alarm.rtn_at = at
        self._log_alarm("alarm_rtn", alarm, at, wall, old=previous, new=level)
        if alarm.state == ACTIVE_UNACKED and alarm.latch:
            alarm.state = RTN_UNACKED
            self._changed(alarm, before)
        else:
            self._clear(alarm, before, wall, None, None, "returned to normal")

    def _clear(
        self,
        alarm: _AlarmState,
        before: tuple[int | None, bool],
        wall: float,
        by: str | None,
        user: str | None,
        reason: str,
        via: str | None = None,
        journal_comment: str | None = None,
    ) -> None:
        alarm.state = CLEARED
        alarm.cleared_at, alarm.cleared_by, alarm.cleared_user, alarm.cleared_reason = wall, by, user, reason
        self._changed(alarm, before)
        comment = journal_comment if journal_comment is not None else reason
        self._log_alarm("alarm_cleared", alarm, wall, wall, comment=comment, actor=(by, user, via))
        node = self._nodes.get(alarm.path)
        if node is not None:
            node.alarms.discard(alarm.id)
            self._dirty_nodes.add(alarm.path)
        if alarm.reason == AGENT_SILENT:
            if self._agent_alarm.get(alarm.agent) == alarm.id:
                del self._agent_alarm[alarm.agent]
        elif self._point_alarm.get(alarm.path) == alarm.id:
            del self._point_alarm[alarm.path]
        self._cleared.append(alarm.id)
        if node is not None:
            self._prune(node)

    # ------------------------------------------------------------------
    # Rollup
    # ------------------------------------------------------------------

    @staticmethod
    def _contribution(alarm: _AlarmState) -> tuple[int | None, bool]:
        """(the level it counts at for attention or None, whether it is active)."""
        counted = alarm.state in _UNACKED and alarm.shelf_id is None
        return (alarm.max_level if counted else None), alarm.state in _ACTIVE

    def _attach(self, alarm: _AlarmState) -> None:
        node = self._ensure(alarm.path)
        node.alarms.add(alarm.id)
        self._dirty_nodes.add(alarm.path)
        self._apply(node, (None, False), self._contribution(alarm))

    def _changed(self, alarm: _AlarmState, before: tuple[int | None, bool]) -> None:
        """``alarm`` changed (it was counted as ``before``): record it, roll the difference up."""
        alarm.frozen = None
        self._dirty_alarms.add(alarm.id)
        self._dirty_nodes.add(alarm.path)
        if alarm.id in self._orphaned:  # (1.3) an orphan changed: a site relays its orphans again
            self.orphans_version += 1
            if alarm.state == CLEARED:
                del self._orphaned[alarm.id]
        elif alarm.reason == AGENT_SILENT:  # (1.3) silent (its points carry it) or back (an orphan), or acked
            self.orphans_version += 1
        after = self._contribution(alarm)
        if after != before:
            node = self._nodes.get(alarm.path)
            if node is not None:
                self._apply(node, before, after)

    def _apply(self, node: _Node | None, before: tuple[int | None, bool], after: tuple[int | None, bool]) -> None:
        old_level, old_active = before
        new_level, new_active = after
        active_delta = int(new_active) - int(old_active)
        while node is not None:
            if old_level != new_level:
                counts = node.attention
                if old_level is not None:
                    left = counts[old_level] - 1
                    if left:
                        counts[old_level] = left
                    else:
                        del counts[old_level]
                if new_level is not None:
                    counts[new_level] = counts.get(new_level, 0) + 1
                self._dirty_nodes.add(node.path)
            if active_delta:
                node.active += active_delta
                if node.active == 0 and node.path in self._in_force:
                    self._normal_due.append(node.path)
            node = node.parent

    def _ensure(self, path: str) -> _Node:
        node = self._nodes.get(path)
        if node is not None:
            return node
        cut = path.rfind(_SEP)
        parent = self._ensure(path[:cut]) if cut > 0 else None
        node = self._nodes[path] = _Node(path, parent)
        if parent is not None:
            parent.children[path] = node
        return node

    def _prune(self, node: _Node | None) -> None:
        """Drop ``node`` and then its ancestors while they hold nothing."""
        while (
            node is not None
            and not node.children
            and node.point is None
            and not node.alarms
            and node.path not in self._relayed
            and node.path not in self._relayed_orphan_paths
        ):
            assert not node.attention
            assert not node.active
            assert not node.shelved
            del self._nodes[node.path]
            self._dirty_nodes.add(node.path)  # its view is now the empty one
            parent = node.parent
            if parent is not None:
                del parent.children[node.path]
            node = parent

    def _add_point(self, path: str, point: _Point) -> None:
        if self._orphaned:
            alarm_id = self._point_alarm.get(path)
            if alarm_id is not None and alarm_id in self._orphaned:  # (1.3) its point is back: no orphan now
                del self._orphaned[alarm_id]
                self.orphans_version += 1
        node = self._ensure(path)
        node.point = point
        self._points[path] = point
        point.shelf_id = self._covering(path)
        if point.shelf_id is not None:
            self._count_shelved(node, 1)
        self._dirty_nodes.add(path)

    def _remove_point(self, path: str) -> None:
        point = self._points.pop(path)
        self._rules.pop(path, None)
        node = self._nodes[path]
        if point.shelf_id is not None:
            self._count_shelved(node, -1)
        node.point = None
        self._dirty_nodes.add(path)
        self._prune(node)

    def _count_shelved(self, node: _Node | None, delta: int) -> None:
        while node is not None:
            node.shelved += delta
            self._dirty_nodes.add(node.path)
            node = node.parent

    # ------------------------------------------------------------------
    # Shelves
    # ------------------------------------------------------------------

    def _covering(self, path: str) -> int | None:
        """The oldest shelf in force whose prefix covers ``path``."""
        if not self._in_force:
            return None
        found: int | None = None
        for prefix in _ancestry(path):
            ids = self._in_force.get(prefix)
            if ids:
                oldest = min(ids)
                found = oldest if found is None else min(found, oldest)
        return found

    def _start_shelf(self, shelf: Shelf) -> None:
        self._in_force.setdefault(shelf.prefix, set()).add(shelf.id)
        if shelf.ends_at is not None:
            heapq.heappush(self._ends, (shelf.ends_at, shelf.id))
        self._reshelve(shelf.prefix, 0.0, announce=False)

    def _end_shelf(
        self,
        shelf: Shelf,
        reason: str,
        wall: float,
        by: str | None = None,
        user: str | None = None,
        via: str | None = None,
        comment: str | None = None,
    ) -> None:
        ended = Shelf(**{**_fields(shelf), "ended_at": wall, "end_reason": reason, "ended_by": by, "ended_user": user})
        self._shelves[shelf.id] = ended
        self._ended.append(shelf.id)
        self._dirty_shelves.add(shelf.id)
        ids = self._in_force.get(shelf.prefix)
        was_in_force = ids is not None and shelf.id in ids
        if ids is not None:
            ids.discard(shelf.id)
            if not ids:
                del self._in_force[shelf.prefix]
        text = reason if comment is None else f"{reason}: {comment}"
        self._log("shelf_ended", shelf.prefix, wall, wall, user=user, by=by, via=via, comment=text, shelf_id=shelf.id)
        if was_in_force:
            self._reshelve(shelf.prefix, wall, announce=True)

    def _reshelve(self, prefix: str, wall: float, announce: bool) -> None:
        """The shelves in force over ``prefix`` changed: recompute the shelf of every point and alarm under it.
        ``announce``: alarms left unshelved while still active become active_unacked, announced once."""
        top = self._nodes.get(prefix)
        if top is None:
            return
        stack = [top]
        while stack:
            node = stack.pop()
            stack.extend(node.children.values())
            point = node.point
            if point is not None:
                shelf_id = self._covering(node.path)
                if shelf_id != point.shelf_id:
                    if (shelf_id is None) != (point.shelf_id is None):
                        self._count_shelved(node, 1 if shelf_id is not None else -1)
                    point.shelf_id = shelf_id
                    self._dirty_nodes.add(node.path)
            for alarm_id in sorted(node.alarms):
                self._rescope(self._alarms[alarm_id], wall, announce)

    def _rescope(self, alarm: _AlarmState, wall: float, announce: bool) -> None:
        """Give ``alarm`` the shelf now covering it. ``announce``: left unshelved while still active,
        it becomes active_unacked and is announced (``shelf_ended_still_active``), once."""
        shelf_id = self._covering(alarm.path)
        if shelf_id == alarm.shelf_id:
            return
        before = self._contribution(alarm)
        ended = alarm.shelf_id
        alarm.shelf_id = shelf_id
        if announce and ended is not None and shelf_id is None and alarm.state in _ACTIVE:
            alarm.state = ACTIVE_UNACKED
            alarm.clear_ack()
            point = self._points.get(alarm.path) if alarm.reason != AGENT_SILENT else None
            since = point.since if point is not None and point.since is not None else alarm.level_since
            label = alarm.level_str or alertstr_for(alarm.level) or str(alarm.level)
            text = f"shelf {ended} ended; still {label} since {iso_utc(since)}"
            self._log_alarm("shelf_ended_still_active", alarm, wall, wall, new=alarm.level, comment=text)
        self._changed(alarm, before)

    def _settle(self, wall: float) -> None:
        """End the until-normal shelves whose prefix has no active alarm left."""
        while self._normal_due:
            prefix = self._normal_due.pop()
            node = self._nodes.get(prefix)
            if node is not None and node.active:
                continue
            for shelf_id in sorted(self._in_force.get(prefix, ())):
                shelf = self._shelves[shelf_id]
                if shelf.mode == UNTIL_NORMAL and not shelf.ended:
                    self._end_shelf(shelf, "normal", wall)

    # ------------------------------------------------------------------
    # Small things
    # ------------------------------------------------------------------

    def _rule(self, path: str) -> tuple[int, bool | None]:
        cached = self._rules.get(path)
        if cached is None:
            rule = self.settings.rule_for(path) if self.settings.rules else None
            min_level = self.settings.alarm_min_level
            if rule is not None and rule.min_level is not None:
                min_level = rule.min_level
            cached = self._rules[path] = (min_level, None if rule is None else rule.latch)
        return cached

    def _take_id(self) -> int:
        taken = self.next_id
        self.next_id += 1
        return taken

    def _new_alarm_id(self, path: str, reason: str, at: float) -> int:
        """The id the next alarm raised on ``path`` gets (nothing taken yet: the journal entry before it names it)."""
        if not self.derived_ids:
            return self.next_id
        return self._derive(f"alarm\0{path}\0{reason}\0{at!r}")

    def _derive(self, key: str) -> int:
        made = derived_id(key)
        while made in self._alarms or made in self._shelves:
            made = DERIVED_ID_BASE + (made + 1 - DERIVED_ID_BASE) % DERIVED_ID_BASE
        return made

    def _log(self, kind: str, path: str, at: float, wall: float, **fields: Any) -> None:
        if self._replaying:
            fields["replayed"] = True
        entry = JournalEntry(at, wall, path, kind, **fields)
        self._journal.append(entry)
        if kind in EVENT_KINDS and entry.shelf_id is None:
            self._events.append(entry)

    def _log_point(
        self,
        kind: str,
        path: str,
        point: _Point,
        at: float,
        wall: float,
        old: int | None,
        new: int | None,
        comment: str | None = None,
        alarm_id: int | None = None,
    ) -> None:
        if alarm_id is None:
            alarm_id = self._point_alarm.get(path)
        # Positional, without _log's keyword dict: a storm logs one of these per point (100,000 in one turn).
        shelf_id = point.shelf_id
        entry = JournalEntry(
            at, wall, path, kind, old, new, point.value, point.agent, None, None, None, comment, alarm_id, shelf_id
        )
        self._journal.append(entry)
        if shelf_id is None and kind in EVENT_KINDS:
            self._events.append(entry)

    def _log_alarm(
        self,
        kind: str,
        alarm: _AlarmState,
        at: float,
        wall: float,
        old: int | None = None,
        new: int | None = None,
        comment: str | None = None,
        actor: tuple[str | None, str | None, str | None] = (None, None, None),
    ) -> None:
        by, user, via = actor
        self._log(
            kind,
            alarm.path,
            at,
            wall,
            old=old,
            new=new,
            value=alarm.value,
            agent=alarm.agent,
            user=user,
            by=by,
            via=via,
            comment=comment,
            alarm_id=alarm.id,
            shelf_id=alarm.shelf_id,
        )

    def _one_alarm(
        self, alarm_id: int, role: str, needed: str, action: str, comment: str | None
    ) -> _AlarmState | Outcome:
        """The alarm a one-alarm command (unack, clear) acts on, or its refusal: the role, the comment, the id."""
        refusal = self._refuse(role, needed, action) or self._bad_comment(comment, required=False)
        if refusal:
            return refusal
        alarm = self._alarms.get(alarm_id)
        return Outcome(False, self._unknown(alarm_id, "alarm")) if alarm is None else alarm

    def _refuse(self, role: str, needed: str, action: str) -> Outcome | None:
        if role not in ROLES:
            return Outcome(False, f"unknown role {role!r}: the hub knows {', '.join(ROLES)}")
        if ROLES.index(role) < ROLES.index(needed):
            return Outcome(
                False,
                f"a {role} key may not {action}: it needs an {needed} key (gsmon keys subscriber NAME --role {needed})",
            )
        return None

    def _bad_comment(self, comment: str | None, required: bool) -> Outcome | None:
        given: object = comment  # checked again: commands come from the network
        if given is not None and not isinstance(given, str):
            return Outcome(False, f"a comment must be text, got {type(given).__name__}")
        if required and (comment is None or not comment.strip()):
            return Outcome(False, "a shelf needs a comment saying why (-m TEXT)")
        limit = self.settings.max_comment_chars
        if comment is not None and len(comment) > limit:
            return Outcome(False, f"a comment is at most {limit} characters, this one has {len(comment)}")
        return None

    def _unknown(self, some_id: int, what: str) -> str:
        if what == "alarm" and some_id in self._shelves:
            return f"{some_id} is a shelf, not an alarm"
        if what == "shelf" and some_id in self._alarms:
            return f"{some_id} is an alarm, not a shelf"
        return f"no {what} {some_id} (gsmon {'alarms' if what == 'alarm' else 'shelves'} lists them)"


def _latches(rule: bool | None, level: int) -> bool:
    """The latch of an alarm at ``level``: the rule's, else RED and above (STALE included)."""
    return rule if rule is not None else level >= _RED


def _fields(shelf: Shelf) -> dict[str, Any]:
    return {name: getattr(shelf, name) for name in _SHELF_FIELDS}


def _duration(seconds: float) -> str:
    """``90061`` -> ``1 d 1 h 1 min``: a human view of a length of time."""
    seconds = max(0, round(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    return " ".join(parts[:2]) or "0 s"
