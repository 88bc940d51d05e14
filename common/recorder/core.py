"""The recorder's pure core: which updates of the followed tree become rows.

:class:`RecorderCore` takes what the Subscriber saw (a node's new state, or
its removal), the active contexts and the time, and returns rows and events
for the writer. It does no I/O and reads no clock: every method takes
``now`` (the hub's wall clock in seconds, :meth:`Subscriber.hub_time`) and
``received`` (a monotonic time of receipt, for the lag figure).

Per point (parents are not recorded: a parent's level is its worst child's,
derivable from the points), a row is written

* on first sight, and on the first update after a gap (``Why.FIRST``);
* when its level changes (``Why.LEVEL``) or it turns stale or fresh
  (``Why.STALE``), at once, whatever the throttle;
* when its value moves beyond the deadband of its policy relative to the
  last *saved* value (``Why.VALUE``), at most once per ``min_interval_s``:
  a change inside the throttle is remembered and its latest value written
  when the interval has passed;
* at least every ``save_dt_s`` (``Why.HEARTBEAT``: the latest value again);
* when a context starts or ends for it (``Why.CONTEXT``), so a pass begins
  and ends with a row;
* when the node goes away (``Why.REMOVED``: a marker, no value).

While a context is active for a point its policy's context rules apply
(faster heartbeat, throttle, deadbands; see :mod:`~gsmon.common.recorder.policy`).

Row times (``t_us``, integer microseconds since the Unix epoch, UTC): the
agent's poll time when the update carries a poll newer than the last row,
else ``now`` (a point turning stale, a heartbeat without a new poll); a row
time never repeats or goes back for one path within a run, so ``(path,
t_us)`` is the stores' unique key and a restarted recorder re-writing the
same poll is a no-op (idempotent insert).

Contexts: :meth:`set_context` (kind, prefix, id or None); a row carries the
id of the context whose prefix is the most specific one selecting its path
(equal prefixes: the kind that sorts first). :func:`parse_context_path`
reads the tree's context points (``<kind>/<prefix path>``, value the id).

Gaps: :meth:`gap` records that updates under a prefix were missed between
two times (the Subscriber re-snapshotted, or the recorder was down); every
point under it is written again on its next update (:meth:`observe_all`
after a snapshot), so a query can tell a gap from a flat line.

A lost hub: :meth:`suspend` holds the heartbeats (and only them) of every
point under a prefix, so that no row repeats an old value over an outage;
updates that still arrive are real and saved by the usual rules. Then either
a snapshot follows (:meth:`gap`: the points are written again) or the hub is
heard again with nothing missed (the Subscriber's counts agree), and
:meth:`resume` lets the held heartbeats fall due: no point is written again,
nothing was lost. (A recorder reading a backlog sees its heartbeats late and
the hub "lost" while its NODEs keep coming: writing every point again then
doubled the rows of the scale scenario, bench/RESULTS.md.)
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final, NamedTuple, Protocol

from gsmon.common import names as naming
from gsmon.common.recorder.policy import PolicyTable

__all__ = [
    "ContextEnded",
    "ContextStarted",
    "Event",
    "GapEvent",
    "NodeLike",
    "RecorderCore",
    "Row",
    "UpdateLike",
    "Why",
    "parse_context_path",
    "to_us",
]

_POINT: Final = "point"
_REMOVED: Final = "removed"  # protocol.NODE_REMOVED (the core imports no wire module)
_NEVER: Final = float("inf")
_NUMBER_TYPES: Final = (int, float)


class Why(IntEnum):
    """Why a row was written (stored with it)."""

    FIRST = 0
    LEVEL = 1
    STALE = 2
    VALUE = 3
    HEARTBEAT = 4
    CONTEXT = 5
    REMOVED = 6


class NodeLike(Protocol):
    """What the core reads of a node (:class:`gsmon.common.client.NodeState` has it)."""

    @property
    def kind(self) -> str: ...
    @property
    def alertcode(self) -> int: ...
    @property
    def stale(self) -> bool: ...
    @property
    def value(self) -> Any: ...
    @property
    def agent(self) -> str | None: ...
    @property
    def polled_at_s(self) -> float | None: ...
    @property
    def reported_alert(self) -> int | None: ...


class UpdateLike(NodeLike, Protocol):
    """A node with its path, as :meth:`RecorderCore.observe_updates` reads it (a
    :class:`gsmon.common.protocol.LeanNode` and NodeUpdate have it; kind ``removed``: the node went away)."""

    @property
    def path(self) -> str: ...


class Row(NamedTuple):
    """One sample to store."""

    path: str
    t_us: int
    level: int
    raw_level: int | None
    stale: bool
    value: Any
    agent: str | None
    context: str | None
    why: int
    received: float  # monotonic time of receipt (the writer measures lag from it)


@dataclass(frozen=True, slots=True)
class GapEvent:
    """Updates under ``prefix`` were missed from ``start_us`` to ``end_us``."""

    prefix: str
    start_us: int
    end_us: int
    reason: str


@dataclass(frozen=True, slots=True)
class ContextStarted:
    kind: str
    prefix: str
    context: str
    t_us: int


@dataclass(frozen=True, slots=True)
class ContextEnded:
    kind: str
    prefix: str
    context: str
    t_us: int


Event = GapEvent | ContextStarted | ContextEnded


def to_us(seconds: float) -> int:
    """Seconds since the epoch as integer microseconds (the stores' time unit)."""
    return round(seconds * 1_000_000)


def parse_context_path(relative: str) -> tuple[str, str] | None:
    """``(kind, prefix)`` from a context point's path below the contexts root (``pass/GS1/Antenna1``), or None."""
    kind, sep, prefix = relative.partition("/")
    if not sep or not kind or not prefix:
        return None
    return kind, prefix


def context_id(value: Any) -> str | None:
    """A context point's value as a context id: text (or a number) that is not empty; else no context."""
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


class _Point:
    """What the core keeps per point (latest state, last saved row, schedule)."""

    __slots__ = (
        "agent",
        "context",
        "ctx_gen",
        "due",
        "fresh",
        "held",
        "level",
        "path",
        "pending",
        "policy_rules",
        "polled_s",
        "queued",
        "raw",
        "saved_at",
        "saved_level",
        "saved_stale",
        "saved_t_us",
        "saved_value",
        "stale",
        "value",
    )

    def __init__(self, path: str) -> None:
        self.path = path
        self.agent: str | None = None
        self.context: str | None = None
        self.ctx_gen = -1
        self.due = 0.0
        self.fresh = True
        self.held = False  # heartbeats held while the hub is lost (suspend/resume)
        self.level = 0
        self.pending = False
        self.policy_rules: tuple[float | None, float | None, float, float] = (None, None, 0.0, 900.0)
        self.polled_s: float | None = None  # the latest update's poll time (made a row time by _save)
        self.queued = _NEVER  # the due time of this point's entry in the heap (one at a time)
        self.raw: int | None = None
        self.saved_at = 0.0
        self.saved_level = -1
        self.saved_stale = False
        self.saved_t_us = 0
        self.saved_value: Any = None
        self.stale = False
        self.value: Any = None


def _moved(old: Any, new: Any, deadband_abs: float | None, deadband_rel: float | None) -> bool:
    """Whether ``new`` differs from the saved ``old`` enough to be saved."""
    kind = type(new)
    if kind is not type(old):
        return True
    if kind is float or kind is int:
        if new != new or old != old:  # NaN: a change only into or out of it
            return bool((new != new) != (old != old))
        if deadband_abs is None and deadband_rel is None:
            return bool(new != old)
        difference = abs(new - old)
        if difference != difference:  # inf - inf
            return bool(new != old)
        if deadband_abs is not None and difference > deadband_abs:
            return True
        return deadband_rel is not None and difference > deadband_rel * abs(old)
    try:
        return bool(new != old)
    except Exception:  # a value whose comparison fails: count it as a change
        return True


class RecorderCore:
    """Decides rows and events (see the module docstring). Not thread-safe: one loop drives it."""

    def __init__(self, policies: PolicyTable | None = None) -> None:
        self.policies = policies if policies is not None else PolicyTable()
        self._points: dict[str, _Point] = {}
        self._contexts: dict[tuple[str, str], str] = {}
        self._ctx_gen = 0
        self._heap: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self._rows: list[Row] = []
        self._events: list[Event] = []
        self.observed = 0  # point updates seen

    # -- results -----------------------------------------------------------

    def take(self) -> tuple[list[Row], list[Event]]:
        """The rows and events decided since the last call (the writer stores them in this order)."""
        rows, events = self._rows, self._events
        self._rows, self._events = [], []
        return rows, events

    @property
    def points(self) -> int:
        return len(self._points)

    @property
    def contexts(self) -> dict[tuple[str, str], str]:
        """Active contexts: ``{(kind, prefix): id}`` (a copy)."""
        return dict(self._contexts)

    def record(self, row: Row) -> None:
        """A row decided outside the core (the recorder's own health figures), stored with the next batch."""
        self._rows.append(row)

    # -- input -------------------------------------------------------------

    def observe(self, path: str, node: NodeLike | None, now: float, received: float) -> None:
        """A node appeared or changed (``node``), or went away (``None``)."""
        if node is None:
            self._removed(path, now, received)
            return
        if node.kind != _POINT:
            return
        self.observed += 1
        point = self._points.get(path)
        if point is None:
            point = self._points[path] = _Point(path)
        level = node.alertcode
        stale = node.stale
        value = node.value
        point.level = level
        point.stale = stale
        point.value = value
        point.agent = node.agent
        point.raw = node.reported_alert
        point.polled_s = node.polled_at_s
        if point.ctx_gen != self._ctx_gen:
            self._refresh_context(point)
        if point.fresh:
            why = Why.FIRST
        elif level != point.saved_level:
            why = Why.LEVEL
        elif stale != point.saved_stale:
            why = Why.STALE
        else:
            deadband_abs, deadband_rel, min_interval_s, _ = point.policy_rules
            if not _moved(point.saved_value, value, deadband_abs, deadband_rel):
                return
            if now - point.saved_at < min_interval_s:
                if not point.pending:
                    point.pending = True
                    self._schedule(point, min(point.due, point.saved_at + min_interval_s))
                return
            why = Why.VALUE
        self._save(point, why, now, received)

    def observe_updates(self, updates: Iterable[UpdateLike], now: float, received: float) -> None:
        """Updates as the lean Subscriber hands them (:meth:`Subscriber.poll_updates`), in stream order:
        each is :meth:`observe` of its path (a removal: kind ``removed``). The same decisions; the common
        case of a scale run -- a value moved inside the throttle, nothing to save -- is written out here
        rather than through observe() and _moved() (a fifth of the recorder's per-update cost)."""
        points = self._points
        observe = self.observe
        for node in updates:
            kind = node.kind
            if kind != _POINT:
                if kind == _REMOVED:
                    self._removed(node.path, now, received)
                continue
            point = points.get(node.path)
            if point is None or point.fresh or point.ctx_gen != self._ctx_gen:
                observe(node.path, node, now, received)  # first sight, after a gap, or a context changed
                continue
            level = node.alertcode
            stale = node.stale
            value = node.value
            saved_value = point.saved_value
            deadband_abs, deadband_rel, min_interval_s, _ = point.policy_rules
            if (
                level != point.saved_level
                or stale != point.saved_stale
                or type(value) is not float
                or type(saved_value) is not float
                or deadband_abs is not None
                or deadband_rel is not None
                or saved_value != saved_value  # NaN saved: NaN again is no move (a NaN new value moves anyway)
            ):
                observe(node.path, node, now, received)  # every other case: observe()'s own rules
                continue
            self.observed += 1
            point.level = level
            point.stale = stale
            point.value = value
            point.agent = node.agent
            point.raw = node.reported_alert
            point.polled_s = node.polled_at_s
            if value == saved_value:
                continue  # not moved (_moved: floats without deadbands, neither NaN)
            if now - point.saved_at < min_interval_s:
                if not point.pending:
                    point.pending = True
                    self._schedule(point, min(point.due, point.saved_at + min_interval_s))
                continue
            self._save(point, Why.VALUE, now, received)

    def observe_all(self, nodes: Iterable[tuple[str, NodeLike]], now: float, received: float) -> None:
        """Every node of a fresh snapshot: points not yet written since a gap get their first row."""
        for path, node in nodes:
            point = self._points.get(path)
            if point is None or point.fresh:
                self.observe(path, node, now, received)

    def set_context(self, kind: str, prefix: str, context: str | None, now: float) -> None:
        """Context ``kind`` for ``prefix`` is now ``context`` (None: ended)."""
        key = (kind, prefix)
        old = self._contexts.get(key)
        if old == context:
            return
        t_us = to_us(now)
        if old is not None:
            self._events.append(ContextEnded(kind, prefix, old, t_us))
        if context is None:
            del self._contexts[key]
        else:
            self._contexts[key] = context
            self._events.append(ContextStarted(kind, prefix, context, t_us))
        self._ctx_gen += 1
        for point in self._points.values():
            if not naming.path_in_prefix(point.path, prefix):
                continue
            before = point.context
            self._refresh_context(point)
            if point.context != before and not point.fresh:
                self._save(point, Why.CONTEXT, now, None)
            else:
                self._schedule(point, self._due_of(point))

    def gap(self, prefix: str, start: float, end: float, reason: str) -> None:
        """Updates under ``prefix`` were missed from ``start`` to ``end``; rewrite each point on its next update."""
        start_us, end_us = to_us(start), to_us(end)
        if end_us <= start_us:
            return
        self._events.append(GapEvent(prefix, start_us, end_us, reason))
        for point in self._points.values():
            if naming.path_in_prefix(point.path, prefix):
                point.fresh = True
                point.pending = False
                point.held = False

    def suspend(self, prefix: str) -> None:
        """The hub is lost for ``prefix``: no heartbeat repeats an old value under it (that would draw a flat
        line over an outage) until :meth:`resume`, or :meth:`gap` when a snapshot follows."""
        for point in self._points.values():
            if naming.path_in_prefix(point.path, prefix):
                point.held = True

    def resume(self, prefix: str) -> None:
        """The hub is heard again for ``prefix`` and nothing was missed: the held heartbeats fall due."""
        for point in self._points.values():
            if point.held and naming.path_in_prefix(point.path, prefix):
                point.held = False
                if not point.fresh:
                    self._schedule(point, self._due_of(point))

    def tick(self, now: float) -> None:
        """Write the heartbeats and throttled changes that are due at ``now``."""
        heap = self._heap
        points = self._points
        while heap and heap[0][0] <= now:
            queued, _, path = heapq.heappop(heap)
            point = points.get(path)
            if point is None or point.queued != queued:
                continue  # removed, or an entry that an earlier one replaced
            point.queued = _NEVER
            if point.fresh:
                continue  # waiting for its first update after a gap (which schedules it again)
            if point.due > now:
                self._schedule(point, point.due)  # saved since it was queued: due later
                continue
            _, _, min_interval_s, save_dt_s = point.policy_rules
            if point.pending and now - point.saved_at >= min_interval_s:
                self._save(point, Why.VALUE, now, None)  # a value that was seen: written held or not
            elif point.held:
                continue  # no heartbeat while the hub is lost: resume() schedules it again
            elif now - point.saved_at >= save_dt_s:
                self._save(point, Why.HEARTBEAT, now, None)
            else:
                self._schedule(point, self._due_of(point))

    # -- internals ---------------------------------------------------------

    def _removed(self, path: str, now: float, received: float) -> None:
        point = self._points.pop(path, None)
        if point is None:
            return
        t_us = max(to_us(now), point.saved_t_us + 1)
        self._rows.append(Row(path, t_us, 0, None, False, None, point.agent, point.context, Why.REMOVED, received))

    def _refresh_context(self, point: _Point) -> None:
        point.ctx_gen = self._ctx_gen
        best: tuple[int, str] | None = None
        context = None
        for (kind, prefix), value in self._contexts.items():
            if naming.path_in_prefix(point.path, prefix):
                rank = (-len(prefix), kind)
                if best is None or rank < best:
                    best, context = rank, value
        point.context = context
        point.policy_rules = self.policies.policy_for(point.path).rules(context is not None)

    def _save(self, point: _Point, why: Why, now: float, received: float | None) -> None:
        polled = point.polled_s
        # A poll time outside 1970..2198 is a broken agent clock: its rows are stamped with `now` instead.
        polled_us = to_us(polled) if polled is not None and 0 < polled < 7.2e9 else 0
        t_us = polled_us if polled_us > point.saved_t_us else max(to_us(now), point.saved_t_us + 1)
        self._rows.append(
            Row(
                point.path,
                t_us,
                point.level,
                point.raw,
                point.stale,
                point.value,
                point.agent,
                point.context,
                why,
                received if received is not None else -1.0,
            )
        )
        point.saved_t_us = t_us
        point.saved_at = now
        point.saved_level = point.level
        point.saved_stale = point.stale
        point.saved_value = point.value
        point.pending = False
        point.fresh = False
        self._schedule(point, now + point.policy_rules[3])

    def _due_of(self, point: _Point) -> float:
        _, _, min_interval_s, save_dt_s = point.policy_rules
        due = point.saved_at + save_dt_s
        return min(due, point.saved_at + min_interval_s) if point.pending else due

    def _schedule(self, point: _Point, due: float) -> None:
        """Make ``due`` the point's next check; the heap holds one entry per point, moved only
        when it must come earlier (a later due is found when the entry pops), so a save costs
        no heap work."""
        point.due = due
        if due < point.queued:
            point.queued = due
            heapq.heappush(self._heap, (due, next(self._order), point.path))
