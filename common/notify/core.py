"""The notifier's pure core: journal entries in, messages out; no I/O, no clock of its own.

::

    core = NotifyCore(settings, state=None, now=now)      # or the state saved by the store
    core.take_entries(entries, now)     # journal entries (ids > the cursor), in id order
    core.tick(now)                      # timers: group flushes, repeats, grace end, rate windows
    for message in core.due(now):       # messages whose (next) delivery attempt is due
        ok, error = deliver(message)
        core.delivered(message.id, ok, error, now)
    core.state()                        # JSON-able: saved with the cursor in one transaction

What is notified (journal kinds, issue 15 §3): ``alarm_raised`` (after the
agent's debounce), ``alarm_escalated``, ``alarm_rtn`` (resolved),
``alarm_cleared`` (resolved, when no ``alarm_rtn`` came first: an admin's
clear), ``ack``/``unack`` (only on routes with ``notify_ack``),
``agent_silent``/``agent_back`` (one message per agent: its points' STALE is
never notified), ``shelf_ended_still_active`` (announced once),
``flapping_start``/``flapping_stop``, and ``forget`` (the forgotten agent's
open problems end, told as such, so they never repeat). Everything else is ignored.

Rules:

* Shelved: an entry carrying a ``shelf_id`` (the hub sets it when a shelf
  covered the alarm at that moment) is not announced, and a problem under a
  shelf (``shelf_created`` .. ``shelf_ended`` for its prefix) does not repeat.
  A resolution is the exception: every problem that was notified gets its
  resolution, shelved or not.
* Routes: the first route whose prefix (segment-aware) and ``min_level``
  match gives the receivers; ``continue = true`` goes on to the next route.
  A problem's resolution, ack and repeats go to exactly the receivers that got
  the problem, whatever the level is by then.
* Grouping: events are buffered per (receiver, group), the group being the
  first ``group_by_depth`` segments of the path. A new group is sent
  ``group_wait_s`` after its first event; a group that sent already sends
  again at most every ``group_interval_s``. A problem raised and resolved
  inside one buffer is never sent (nobody needs to hear of it).
* Repeat: a notified problem still active, unacknowledged and unshelved is
  announced again every ``repeat_s``.
* Start-up grace: for ``startup_grace_s`` after the notifier started or the
  hub came back (:meth:`NotifyCore.hub_started`), new problems are held; at
  the end of the grace only those still open are sent.
* Replays (protocol 1.3): entries marked ``replayed`` (what a hub journaled
  from an agent's outbox after an outage) are never announced one by one,
  however old or recent: each is something that happened while nobody was
  told, and the hub journals them in a burst. The alarms among them
  (``alarm_raised``, ``alarm_escalated``) are gathered per agent, and the
  hub's ``replayed`` entry (one per completed replay, on the agent's mount)
  sends ONE summary to the receivers of the mount's route at the worst level
  gathered: "[gsmon] rack1: 3 alarms between 14:02:10 and 14:20:45 UTC, now
  GREEN" (the body lists each alarm and the ``gsmon alarms`` line to look at
  them; the latched ones wait there as rtn_unacked). A replay without alarms
  sends nothing. Gathered alarms whose ``replayed`` entry never comes (the hub
  stopped mid-replay) are summarised :data:`REPLAY_FLUSH_S` after the last
  one. Summaries are not held by the start-up grace; they count against the
  rate limit.
* Rate limit: at most ``max_per_minute`` messages per receiver in any 60 s;
  what is over the limit is folded into one summary ("and 37 more under
  GS1/") sent when the window allows. The folded problems count as notified,
  so their resolutions follow.
* Retries: a failed delivery is retried after ``retry_initial_s``, doubling up
  to ``retry_max_s``, and given up after ``retry_give_up_s`` (counted in the
  receiver's health as ``dropped``).

Everything the core holds is in :meth:`NotifyCore.state` (plain JSON types),
so the store saves it in the same transaction as the journal cursor: a
restarted notifier neither re-sends nor forgets a message it had not sent yet.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from gsmon.common import json_form
from gsmon.common.alarm_commands import JournalEntryError as EntryError
from gsmon.common.alarm_commands import JournalRecord as Entry  # one reader of the hub's journal entries
from gsmon.common.alerts import STALE_ALERTCODE, alertstr_for
from gsmon.common.names import SEPARATOR, path_in_prefix

__all__ = [
    "EVENT_KINDS",
    "Entry",
    "EntryError",
    "Guidance",
    "Message",
    "NotifyCore",
    "Receiver",
    "Route",
    "Settings",
    "iso_utc",
    "path_in_prefix",
]

WINDOW_S: Final = 60.0
REPLAY_FLUSH_S: Final = 120.0  # replayed alarms without the hub's "replayed" entry are summarised after this
#: Journal kinds the notifier may announce.
EVENT_KINDS: Final = frozenset(
    (
        "alarm_raised",
        "alarm_escalated",
        "alarm_rtn",
        "alarm_cleared",
        "ack",
        "unack",
        "agent_silent",
        "agent_back",
        "shelf_ended_still_active",
        "flapping_start",
        "flapping_stop",
    )
)
_OPENING: Final = frozenset(("alarm_raised", "alarm_escalated", "agent_silent", "shelf_ended_still_active"))
_RESOLVING: Final = frozenset(("alarm_rtn", "alarm_cleared", "agent_back"))
_LABELS: Final = {
    "alarm_raised": "RAISED",
    "alarm_escalated": "ESCALATED",
    "alarm_rtn": "RESOLVED",
    "alarm_cleared": "RESOLVED (cleared)",
    "ack": "ACKNOWLEDGED",
    "unack": "UNACKNOWLEDGED",
    "agent_silent": "AGENT SILENT",
    "agent_back": "AGENT BACK",
    "shelf_ended_still_active": "SHELF ENDED, STILL ACTIVE",
    "flapping_start": "FLAPPING",
    "flapping_stop": "FLAPPING STOPPED",
    "repeat": "STILL ACTIVE",
    "replayed": "REPLAYED",
    "forget": "ENDED (agent forgotten)",
}


def iso_utc(t: float | None) -> str:
    """Wall seconds as ISO 8601 UTC with milliseconds (``2026-12-01T21:49:20.123Z``); none: ``-``, in a line."""
    return json_form.iso_utc(t) or "-"


def level_label(code: int | None) -> str:
    if code is None:
        return "-"
    return alertstr_for(code) or str(code)


@dataclass(frozen=True, slots=True)
class Receiver:
    """Where messages go: apprise URLs and/or a local command (argv; ``{path}``, ``{title}``... filled in)."""

    name: str
    urls: tuple[str, ...] = ()
    command: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str
    min_level: int
    receivers: tuple[str, ...]
    continue_: bool = False
    notify_ack: bool = False
    send_resolved: bool = True


@dataclass(frozen=True, slots=True)
class Guidance:
    """Text and a runbook link for a subtree; the deepest matching prefix wins."""

    prefix: str
    text: str = ""
    runbook_url: str = ""


@dataclass(frozen=True, slots=True)
class Settings:
    receivers: Mapping[str, Receiver]
    routes: Sequence[Route]
    guidance: Sequence[Guidance] = ()
    group_wait_s: float = 5.0
    group_interval_s: float = 10.0
    group_by_depth: int = 2
    repeat_s: float = 4 * 3600.0
    startup_grace_s: float = 30.0
    max_per_minute: int = 20
    retry_initial_s: float = 10.0
    retry_max_s: float = 600.0
    retry_give_up_s: float = 3600.0
    hub: str | None = None  # the query endpoint, for the lines to paste


@dataclass(slots=True)
class Message:
    """One message for one receiver."""

    id: int
    receiver: str
    title: str
    body: str
    kinds: list[str]
    alarm_ids: list[int]
    paths: list[str]
    created_at: float
    next_at: float
    attempts: int = 0
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "receiver": self.receiver,
            "title": self.title,
            "body": self.body,
            "kinds": self.kinds,
            "alarm_ids": self.alarm_ids,
            "paths": self.paths,
            "created_at": self.created_at,
            "next_at": self.next_at,
            "attempts": self.attempts,
            "last_error": self.last_error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Message:
        return cls(**{key: data[key] for key in cls.__slots__})


@dataclass(slots=True)
class _Problem:
    """An alarm (or a silent agent) that was announced, or is waiting in a group to be."""

    key: str  # "alarm:<id>"; "agent:<mount>" when the hub gave no alarm id
    path: str
    level: int
    value: Any
    since: float
    agent: str | None
    receivers: list[str] = field(default_factory=list)  # who was told (resolution goes there)
    notify_ack: list[str] = field(default_factory=list)
    no_resolved: list[str] = field(default_factory=list)
    acked: bool = False
    shelves: list[int] = field(default_factory=list)
    last_sent_at: float = 0.0


@dataclass(slots=True)
class _Item:
    """One event waiting in a group buffer."""

    kind: str
    key: str
    path: str
    level: int | None
    value: Any
    time: float
    agent: str | None
    alarm_id: int | None
    comment: str | None = None
    user: str | None = None


def _item_json(item: _Item) -> dict[str, Any]:
    return {slot: getattr(item, slot) for slot in _Item.__slots__}


@dataclass(slots=True)
class _Group:
    receiver: str
    group: str
    items: list[_Item] = field(default_factory=list)
    flush_at: float | None = None
    last_flush_at: float | None = None


@dataclass(slots=True)
class ReceiverHealth:
    sent: int = 0
    failures: int = 0  # failed attempts, in total
    consecutive_failures: int = 0
    dropped: int = 0  # given up after retry_give_up_s
    suppressed: int = 0  # folded into summaries by the rate limit
    last_error: str | None = None
    last_sent_at: float | None = None


class NotifyCore:
    """Decides what to tell whom and when (see the module docstring). Takes ``now`` everywhere."""

    def __init__(self, settings: Settings, state: Mapping[str, Any] | None, now: float) -> None:
        self.settings = settings
        self._problems: dict[str, _Problem] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._outbox: dict[int, Message] = {}
        self._sent_times: dict[str, list[float]] = {}
        self._folded: dict[str, list[_Item]] = {}
        self._health: dict[str, ReceiverHealth] = {name: ReceiverHealth() for name in settings.receivers}
        self._next_id = 1
        self._grace_until = now + settings.startup_grace_s
        self._held: list[Entry] = []
        self._aliases: dict[str, str] = {}  # a key folded into another problem's (same incident)
        # Replayed alarms gathered per agent until the hub's "replayed" entry (module docstring).
        self._replays: dict[str, dict[str, Any]] = {}
        self.dropped_entries = 0
        if state is not None:
            self._restore(state)
        # A (re)started notifier holds new problems for the grace, like after a hub restart.
        self._grace_until = now + settings.startup_grace_s

    # -- input ----------------------------------------------------------------------------------

    def hub_started(self, now: float) -> None:
        """The hub came back (it answered after failing): hold new problems while it refills."""
        self._grace_until = max(self._grace_until, now + self.settings.startup_grace_s)

    def in_grace(self, now: float) -> bool:
        return now < self._grace_until

    def take_entries(self, entries: Iterable[Entry], now: float) -> None:
        for entry in entries:
            if entry.kind in ("shelf_created", "shelf_ended", "shelf_ended_still_active") and entry.shelf_id:
                self._track_shelf(entry)
            if entry.kind == "forget" and not entry.replayed:
                self._forget(entry, now)
                continue
            if entry.replayed:
                self._gather_replay(entry, now)
                continue
            if entry.kind not in EVENT_KINDS or entry.replayed:
                continue
            if self.in_grace(now) or self._held:
                self._held.append(entry)  # in order; sorted out when the grace ends
                continue
            self._take(entry, now)

    def _gather_replay(self, entry: Entry, now: float) -> None:
        """A replayed entry: its alarms are gathered per agent; the hub's ``replayed`` entry sends the summary."""
        agent = entry.agent or entry.path
        if entry.kind in ("alarm_raised", "alarm_escalated") and entry.shelf_id is None:
            gathered = self._replays.setdefault(agent, {"mount": None, "alarms": [], "last_at": now})
            gathered["alarms"].append([entry.alarm_id, entry.path, entry.new, entry.time, entry.kind])
            gathered["last_at"] = now
        elif entry.kind == "replayed":
            gathered = self._replays.pop(agent, {"alarms": []})
            if gathered["alarms"]:
                self._summarise_replay(agent, entry.path, gathered["alarms"], entry.new, now)

    def _summarise_replay(
        self, agent: str, mount: str | None, alarms: list[list[Any]], level_now: int | None, now: float
    ) -> None:
        ids = sorted({alarm_id for alarm_id, *_ in alarms if alarm_id is not None})
        count = len(ids) or len(alarms)
        worst = max((level or 0) for _, _, level, _, _ in alarms)
        start, end = min(at for *_, at, _ in alarms), max(at for *_, at, _ in alarms)
        paths = sorted({path for _, path, *_ in alarms})
        where = mount or _common_prefix(paths).rstrip(SEPARATOR)
        now_text = f", now {level_label(level_now)}" if level_now is not None else ""
        title = (
            f"[gsmon] {agent}: {count} alarm{'s' if count != 1 else ''} between {_clock(start)} and {_clock(end)}"
            f" UTC{now_text}"
        )
        hub = f" --hub {shlex.quote(self.settings.hub)}" if self.settings.hub else ""
        lines = [f"While the hub did not hear it, agent {agent} had {count} alarm(s) (replayed from its outbox):"]
        for alarm_id, path, level, at, kind in alarms[:50]:
            lines.append(f"  {iso_utc(at)} {_LABELS.get(kind, kind)} {level_label(level)} {path} (alarm {alarm_id})")
        if len(alarms) > 50:
            lines.append(f"  ... and {len(alarms) - 50} more")
        lines.append(f"  look:   gsmon alarms {shlex.quote(where)}{hub}")
        body = "\n".join(lines) + "\n"
        items = [
            _Item("replayed", f"alarm:{alarm_id}", path, level, None, at, agent, alarm_id)
            for alarm_id, path, level, at, _ in alarms
        ]
        for name, _route in self._route(where, worst):
            self._emit(name, title, body, items, now, summary=True)

    def _track_shelf(self, entry: Entry) -> None:
        assert entry.shelf_id is not None
        for problem in self._problems.values():
            if entry.kind == "shelf_created" and path_in_prefix(problem.path, entry.path):
                if entry.shelf_id not in problem.shelves:
                    problem.shelves.append(entry.shelf_id)
            elif entry.shelf_id in problem.shelves:
                problem.shelves.remove(entry.shelf_id)

    def _forget(self, entry: Entry, now: float) -> None:
        """An administrator removed an agent: its open problems end (told as such), so they never repeat."""
        for key, problem in list(self._problems.items()):
            if path_in_prefix(problem.path, entry.path) or (entry.agent and problem.agent == entry.agent):
                for name in problem.receivers:
                    if not self._unsent_raise_dropped(name, key):
                        self._buffer(
                            name,
                            _Item(
                                "forget",
                                key,
                                problem.path,
                                problem.level,
                                None,
                                entry.time,
                                problem.agent,
                                _alarm_id(key),
                                entry.comment,
                                entry.user or entry.by,
                            ),
                            now,
                        )
                self._drop(key)

    def _key(self, entry: Entry) -> str:
        if entry.alarm_id is not None:
            return f"alarm:{entry.alarm_id}"
        return f"agent:{entry.path}" if entry.kind in ("agent_silent", "agent_back") else f"path:{entry.path}"

    def _take(self, entry: Entry, now: float) -> None:
        key = self._key(entry)
        key = self._aliases.get(key, key)
        problem = self._problems.get(key)
        kind = entry.kind
        if kind in _OPENING and problem is None and self._same_incident(key, entry):
            return
        if kind in _OPENING:
            if entry.shelf_id is not None and kind != "shelf_ended_still_active":
                return  # shelved: not announced (its resolution will be, if it had been)
            level = entry.new if entry.new is not None else (STALE_ALERTCODE if kind == "agent_silent" else 0)
            receivers = self._route(entry.path, level)
            if problem is None:
                problem = _Problem(key, entry.path, level, entry.value, entry.time, entry.agent)
                self._problems[key] = problem
            problem.level, problem.value, problem.acked = level, entry.value, False
            problem.shelves = []
            for name, route in receivers:
                if name not in problem.receivers:
                    problem.receivers.append(name)
                if route.notify_ack and name not in problem.notify_ack:
                    problem.notify_ack.append(name)
                if not route.send_resolved and name not in problem.no_resolved:
                    problem.no_resolved.append(name)
                self._buffer(name, self._item(kind, key, entry), now)
            if not problem.receivers:
                del self._problems[key]  # no route wants it
            return
        if problem is None:
            # Not a problem anyone was told of: flapping is announced by route, the rest is dropped.
            if kind in ("flapping_start", "flapping_stop") and entry.shelf_id is None:
                level = entry.new if entry.new is not None else 0
                for name, _route in self._route(entry.path, level):
                    self._buffer(name, self._item(kind, key, entry), now)
            return
        if kind in _RESOLVING:
            for name in problem.receivers:
                if self._unsent_raise_dropped(name, key):
                    continue  # raised and resolved inside one buffer: never tell
                if name not in problem.no_resolved:
                    self._buffer(name, self._item(kind, key, entry), now)
            self._drop(key)
        elif kind in ("ack", "unack"):
            problem.acked = kind == "ack"
            for name in problem.notify_ack:
                self._buffer(name, self._item(kind, key, entry), now)
        elif entry.shelf_id is None:  # flapping of an announced problem
            for name in problem.receivers:
                self._buffer(name, self._item(kind, key, entry), now)

    def _same_incident(self, key: str, entry: Entry) -> bool:
        """A silent agent is one incident: the hub journals ``agent_silent`` and the mount's own alarm
        (``alarm_raised`` at the same path). The second is folded into the first (an alias), so it is
        neither told twice nor left without its resolution."""
        for other in self._problems.values():
            if other.path == entry.path and (other.key.startswith("agent:") or entry.kind == "agent_silent"):
                self._aliases[key] = other.key
                return True
        return False

    def _unsent_raise_dropped(self, receiver: str, key: str) -> bool:
        """A problem never sent to anyone, still waiting in ``receiver``'s buffer: drop it there."""
        problem = self._problems[key]
        if problem.last_sent_at:
            return False  # told already: its resolution must follow
        group = self._groups.get((receiver, self._group_of(problem.path)))
        if group is None or not any(item.key == key for item in group.items):
            return False
        group.items = [item for item in group.items if item.key != key]
        return True

    def _drop(self, key: str) -> None:
        del self._problems[key]
        for alias in [a for a, target in self._aliases.items() if target == key]:
            del self._aliases[alias]

    def _item(self, kind: str, key: str, entry: Entry) -> _Item:
        level = entry.old if kind in _RESOLVING else entry.new
        if kind == "agent_silent" and level is None:
            level = STALE_ALERTCODE
        return _Item(
            kind,
            key,
            entry.path,
            level,
            entry.value,
            entry.time,
            entry.agent,
            entry.alarm_id,
            entry.comment,
            entry.user or entry.by,
        )

    def _route(self, path: str, level: int) -> list[tuple[str, Route]]:
        chosen: list[tuple[str, Route]] = []
        for route in self.settings.routes:
            if path_in_prefix(path, route.prefix) and level >= route.min_level:
                chosen += [(name, route) for name in route.receivers if name not in {n for n, _ in chosen}]
                if not route.continue_:
                    break
        return chosen

    def _group_of(self, path: str) -> str:
        return SEPARATOR.join(path.split(SEPARATOR)[: self.settings.group_by_depth])

    def _buffer(self, receiver: str, item: _Item, now: float) -> None:
        name = self._group_of(item.path)
        group = self._groups.setdefault((receiver, name), _Group(receiver, name))
        group.items.append(item)
        if group.flush_at is None:
            problem = self._problems.get(item.key)
            if group.last_flush_at is None and (problem is None or not problem.last_sent_at):
                # A new group of new problems waits for the rest of its burst; news of a problem
                # people were told of already (a resolution, a repeat) waits only for group_interval_s.
                group.flush_at = now + self.settings.group_wait_s
            elif group.last_flush_at is None:
                group.flush_at = now
            else:
                group.flush_at = max(now, group.last_flush_at + self.settings.group_interval_s)

    # -- timers ---------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        for agent, gathered in list(self._replays.items()):
            if now - gathered["last_at"] >= REPLAY_FLUSH_S:
                del self._replays[agent]  # the hub never said the replay was complete: summarised anyway
                if gathered["alarms"]:
                    self._summarise_replay(agent, gathered["mount"], gathered["alarms"], None, now)
        if self._held and not self.in_grace(now):
            held, self._held = self._held, []
            self._release_held(held, now)
        for problem in self._problems.values():
            if (
                problem.last_sent_at
                and not problem.acked
                and not problem.shelves
                and now - problem.last_sent_at >= self.settings.repeat_s
            ):
                problem.last_sent_at = now  # the next repeat counts from here
                for name in problem.receivers:
                    self._buffer(
                        name,
                        _Item(
                            "repeat",
                            problem.key,
                            problem.path,
                            problem.level,
                            problem.value,
                            problem.since,
                            problem.agent,
                            _alarm_id(problem.key),
                        ),
                        now,
                    )
        for key, group in list(self._groups.items()):
            if group.flush_at is not None and now >= group.flush_at:
                self._flush(group, now)
            quiet = group.last_flush_at is None or now - group.last_flush_at > self.settings.group_interval_s
            if not group.items and group.flush_at is None and quiet:
                del self._groups[key]  # a later event starts a new group (with group_wait_s)
        for receiver, items in list(self._folded.items()):
            if items and self._capacity(receiver, now) > 0:
                del self._folded[receiver]
                self._emit(receiver, _summary_title(items), _summary_body(items), items, now, summary=True)

    def _release_held(self, held: list[Entry], now: float) -> None:
        """End of the grace: take the held entries in order, except openings resolved later in the grace."""
        for index, entry in enumerate(held):
            key = self._key(entry)
            if entry.kind in _OPENING and any(
                later.kind in _RESOLVING and self._key(later) == key for later in held[index + 1 :]
            ):
                continue
            if entry.kind in _RESOLVING and self._aliases.get(key, key) not in self._problems:
                continue
            self._take(entry, now)

    def _flush(self, group: _Group, now: float) -> None:
        group.flush_at = None
        items, group.items = group.items, []
        if not items:
            return
        group.last_flush_at = now
        for item in items:
            problem = self._problems.get(item.key)
            if problem is not None:
                problem.last_sent_at = now
        if self._capacity(group.receiver, now) <= 0:
            self._folded.setdefault(group.receiver, []).extend(items)
            self._health_of(group.receiver).suppressed += len(items)
            return
        self._emit(group.receiver, self._title(group, items), self._body(items), items, now)

    def _capacity(self, receiver: str, now: float) -> int:
        times = [t for t in self._sent_times.get(receiver, []) if now - t < WINDOW_S]
        self._sent_times[receiver] = times
        return self.settings.max_per_minute - len(times)

    def _emit(
        self, receiver: str, title: str, body: str, items: list[_Item], now: float, summary: bool = False
    ) -> None:
        self._sent_times.setdefault(receiver, []).append(now)
        message = Message(
            id=self._next_id,
            receiver=receiver,
            title=title,
            body=body,
            kinds=sorted({item.kind for item in items}) + (["summary"] if summary else []),
            alarm_ids=sorted({item.alarm_id for item in items if item.alarm_id is not None}),
            paths=sorted({item.path for item in items}),
            created_at=now,
            next_at=now,
        )
        self._next_id += 1
        self._outbox[message.id] = message

    # -- delivery -------------------------------------------------------------------------------

    def due(self, now: float) -> list[Message]:
        """Messages whose next delivery attempt is due, oldest first."""
        return sorted((m for m in self._outbox.values() if m.next_at <= now), key=lambda m: m.id)

    def delivered(self, message_id: int, ok: bool, error: str | None, now: float) -> Message | None:
        """Record an attempt. Returns the message when it is finished with (sent or given up)."""
        message = self._outbox.get(message_id)
        if message is None:
            return None
        health = self._health_of(message.receiver)
        message.attempts += 1
        if ok:
            health.sent += 1
            health.consecutive_failures = 0
            health.last_sent_at = now
            return self._outbox.pop(message_id)
        health.failures += 1
        health.consecutive_failures += 1
        health.last_error = message.last_error = error
        if now - message.created_at >= self.settings.retry_give_up_s:
            health.dropped += 1
            return self._outbox.pop(message_id)
        backoff = self.settings.retry_initial_s * 2 ** (message.attempts - 1)
        message.next_at = now + min(backoff, self.settings.retry_max_s)
        return None

    def next_wakeup(self, now: float) -> float:
        """The earliest time at which :meth:`tick` or :meth:`due` has something to do."""
        times = [g.flush_at for g in self._groups.values() if g.flush_at is not None]
        times += [m.next_at for m in self._outbox.values()]
        if self._held:
            times.append(self._grace_until)
        if any(self._folded.values()):
            times += [min(ts) + WINDOW_S for ts in self._sent_times.values() if ts]
        times += [gathered["last_at"] + REPLAY_FLUSH_S for gathered in self._replays.values()]
        times += [p.last_sent_at + self.settings.repeat_s for p in self._problems.values() if p.last_sent_at]
        return min(times, default=now + 3600.0)

    def health(self) -> dict[str, ReceiverHealth]:
        return dict(self._health)

    def queued(self, receiver: str) -> int:
        return sum(1 for m in self._outbox.values() if m.receiver == receiver)

    def open_problems(self) -> int:
        return len(self._problems)

    def _health_of(self, receiver: str) -> ReceiverHealth:
        return self._health.setdefault(receiver, ReceiverHealth())

    # -- test messages --------------------------------------------------------------------------

    def test_message(self, receiver: str, now: float) -> Message:
        """A message for ``gsmon notify --test RECEIVER`` (not queued: sent once, logged)."""
        message = Message(
            0,
            receiver,
            "[gsmon] test notification",
            f"A test from gsmon notify at {iso_utc(now)}: receiver {receiver!r} works.",
            ["test"],
            [],
            [],
            now,
            now,
        )
        return message

    # -- text -----------------------------------------------------------------------------------

    def _title(self, group: _Group, items: list[_Item]) -> str:
        if len(items) == 1:
            item = items[0]
            return f"[gsmon] {_LABELS[item.kind]} {level_label(item.level)} {item.path}"
        counts: dict[str, int] = {}
        for item in items:
            counts[_LABELS[item.kind]] = counts.get(_LABELS[item.kind], 0) + 1
        worst = max((item.level or 0) for item in items)
        parts = ", ".join(f"{n} {label.lower()}" for label, n in counts.items())
        return f"[gsmon] {level_label(worst)} {group.group or '/'}: {parts}"

    def _body(self, items: list[_Item]) -> str:
        blocks = []
        hub = f" --hub {shlex.quote(self.settings.hub)}" if self.settings.hub else ""
        for item in items:
            lines = [f"{_LABELS[item.kind]}: {item.path} {level_label(item.level)}"]
            lines.append(f"  value: {item.value!r}" if item.value is not None else "  value: -")
            lines.append(f"  since: {iso_utc(item.time)}")
            lines.append(f"  agent: {item.agent or '-'}")
            if item.comment:
                lines.append(f"  comment: {item.comment}" + (f" (by {item.user})" if item.user else ""))
            guide = self._guidance(item.path)
            if guide is not None and guide.text:
                lines.append(f"  guidance: {guide.text}")
            if guide is not None and guide.runbook_url:
                lines.append(f"  runbook: {guide.runbook_url}")
            if item.kind in _OPENING or item.kind in ("repeat", "flapping_start", "unack"):
                lines.append(f"  ack:    gsmon ack {shlex.quote(item.path)}{hub} -m 'on it'")
                lines.append(f"  shelve: gsmon shelve {shlex.quote(item.path)}{hub} --for 2h -m 'maintenance'")
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks) + "\n"

    def _guidance(self, path: str) -> Guidance | None:
        matches = [g for g in self.settings.guidance if path_in_prefix(path, g.prefix)]
        return max(matches, key=lambda g: len(g.prefix), default=None)

    # -- state ----------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything the core holds, as plain JSON types."""
        return {
            "version": 1,
            "next_id": self._next_id,
            "problems": [{slot: getattr(p, slot) for slot in _Problem.__slots__} for p in self._problems.values()],
            "groups": [
                {
                    "receiver": g.receiver,
                    "group": g.group,
                    "items": [_item_json(i) for i in g.items],
                    "flush_at": g.flush_at,
                    "last_flush_at": g.last_flush_at,
                }
                for g in self._groups.values()
            ],
            "outbox": [m.to_json() for m in self._outbox.values()],
            "sent_times": self._sent_times,
            "folded": {r: [_item_json(i) for i in items] for r, items in self._folded.items()},
            "held": [_entry_json(e) for e in self._held],
            "aliases": self._aliases,
            "replays": self._replays,
            "health": {
                r: {slot: getattr(h, slot) for slot in ReceiverHealth.__slots__} for r, h in self._health.items()
            },
        }

    def _restore(self, state: Mapping[str, Any]) -> None:
        self._next_id = int(state["next_id"])
        for p in state["problems"]:
            problem = _Problem(**p)
            self._problems[problem.key] = problem
        for g in state["groups"]:
            group = _Group(
                g["receiver"], g["group"], [_Item(**i) for i in g["items"]], g["flush_at"], g["last_flush_at"]
            )
            self._groups[(group.receiver, group.group)] = group
        for m in state["outbox"]:
            message = Message.from_json(m)
            self._outbox[message.id] = message
        self._sent_times = {r: list(ts) for r, ts in state["sent_times"].items()}
        self._folded = {r: [_Item(**i) for i in items] for r, items in state["folded"].items()}
        self._held = [Entry(**e) for e in state["held"]]
        self._aliases = dict(state.get("aliases", {}))
        self._replays = {agent: dict(gathered) for agent, gathered in state.get("replays", {}).items()}
        for r, h in state["health"].items():
            self._health[r] = ReceiverHealth(**h)


def _clock(t: float) -> str:
    """Wall seconds as ``14:02:10`` (UTC): the summary's title names a span of one outage."""
    if not math.isfinite(t):
        return "-"
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def _alarm_id(key: str) -> int | None:
    return int(key.split(":", 1)[1]) if key.startswith("alarm:") else None


def _entry_json(entry: Entry) -> dict[str, Any]:
    return {slot: getattr(entry, slot) for slot in Entry.__slots__}


def _summary_title(items: list[_Item]) -> str:
    return f"[gsmon] and {len(items)} more under {_common_prefix([i.path for i in items]) or '/'}"


def _summary_body(items: list[_Item]) -> str:
    lines = [f"{len(items)} events were over this receiver's rate limit:"]
    lines += [f"  {_LABELS[i.kind]}: {i.path} {level_label(i.level)} at {iso_utc(i.time)}" for i in items[:20]]
    if len(items) > 20:
        lines.append(f"  ... and {len(items) - 20} more (gsmon alarms shows them all)")
    return "\n".join(lines) + "\n"


def _common_prefix(paths: list[str]) -> str:
    split = [p.split(SEPARATOR) for p in paths]
    common: list[str] = []
    for parts in zip(*split, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return SEPARATOR.join(common) + (SEPARATOR if common else "")
