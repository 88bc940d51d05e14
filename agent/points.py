"""The Monitor's point table as a pure core: apply poll results, roll up, decide logging and callbacks.

Shaped like ``hub/state.py`` ``HubState``: no threads, no locks, no clock of its
own -- every call that needs the time takes ``now`` (monotonic seconds) and the
poll's wall-clock stamp as arguments, and returns what the caller must do
(:class:`Note` for each callback/log to make, :class:`LogLine` for each line to
log). :class:`gsmon.agent.monitor.Monitor` is the facade plus threads around it:
it holds the lock, runs the jobs and performs the returned actions.

Pipeline of one poll (:meth:`PointTable.apply`)::

    result/exception --> Alert per point --> alert rule (NoAlert only)
        --> effective_alert() (debounced points only: raw -> effective level)
        --> store value/code --> RollupTree (parents = worst child)
        --> changed set (publisher) --> Notes (logging, callbacks)

Debounce: :meth:`PointTable.effective_alert` is the one place where a
point's stored/published level is decided from the judged alert. A point with
debounce or a flap guard configured (``add_point(debounce=...)``, or
:meth:`PointTable.set_debounce_rule` for the agent's TOML by path pattern)
keeps a :class:`gsmon.agent.debounce.Debouncer`, fed there with the judged
code and the poll's wall-clock time; the verdict's effective level is what is
stored, rolled up, published and logged, its events become log lines, and the
point's entry carries the optional 7th item (raw level, pending, flapping;
:func:`gsmon.common.protocol.point_debounce_map`). Points without one are
untouched: their entries keep their exact bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from gsmon.agent.debounce import DebounceEvent, Debouncer, DebounceSettings, Verdict
from gsmon.agent.scheduler import Job
from gsmon.common import names as naming
from gsmon.common import protocol as proto
from gsmon.common.alerts import Alert, NoAlert, alertstr_for, transition_line
from gsmon.common.render import Row
from gsmon.common.tree import RollupTree, TreeNode

__all__ = ["AlertRule", "LogLine", "Note", "Point", "PointTable"]

#: (path inside the monitor, alert of a plain returned value) -> the alert to store.
AlertRule = Callable[[str, Alert], Alert]


class Point:
    """Mutable per-point state, owned by a :class:`PointTable`."""

    __slots__ = (
        "alert_exc",
        "alertcode",
        "alertstr",
        "debouncer",
        "dt_s",
        "job",
        "loglvl_alerts",
        "loglvl_values",
        "logthr_alerts",
        "name",
        "node",
        "polled_mono",
        "polled_wall",
        "raw_code",
        "raw_str",
        "value",
        "verdict",
    )

    def __init__(
        self,
        name: str,
        node: TreeNode,
        dt_s: float | None,
        loglvl_values: int | None,
        loglvl_alerts: int | None,
        logthr_alerts: int,
        alert_exc: type[Alert],
    ) -> None:
        self.name = name
        self.node = node
        self.dt_s = dt_s
        self.loglvl_values = loglvl_values
        self.loglvl_alerts = loglvl_alerts
        self.logthr_alerts = logthr_alerts
        self.alert_exc = alert_exc
        self.job: Job | None = None
        self.value: Any = None
        self.alertcode: int | None = None
        self.alertstr = ""
        self.polled_wall: float | None = None
        self.polled_mono: float | None = None
        # Debounce (None: not configured, the point shows its judged level as is).
        self.debouncer: Debouncer | None = None
        self.verdict: Verdict | None = None  # of the last poll, while a debouncer is set
        self.raw_code = 0  # the judged level of the last poll, before debounce
        self.raw_str = ""


class Note(NamedTuple):
    """One poll of one point that logging or a callback may act on.

    ``alert`` is the effective alert (after debounce); ``events`` the debounce
    events of this poll (pending, discarded, flapping_start, flapping_stop).
    """

    point: Point
    path: str
    old_value: Any
    old_code: int | None
    alert: Alert
    events: tuple[DebounceEvent, ...] = ()


class LogLine(NamedTuple):
    """A line to log: ``logger.log(level, message, *args, extra=extra)``."""

    level: int
    message: str
    args: tuple[Any, ...]
    extra: dict[str, Any] | None


class PointTable:
    """Points, parents, their paths and rollup, and what changed since the publisher last looked.

    ``track_changes``: keep the set of points polled since :meth:`take_changes`
    (only when a publisher reads it).
    """

    def __init__(self, *, track_changes: bool = False) -> None:
        self.tree = RollupTree()
        self.points: dict[str, Point] = {}
        self.parents: dict[str, str | None] = {}
        self.alertstrs: dict[int, str] = {}
        self.paths: dict[str, str] = {}
        # Points polled since a publisher last took them (None: nobody publishes).
        self.changed: dict[str, Point] | None = {} if track_changes else None
        self.alert_rule: AlertRule | None = None
        # Errors of the alert rule: (path, error), for the facade to log.
        self.rule_errors: list[tuple[str, BaseException]] = []
        # Per path pattern debounce settings (the agent's TOML), for points registered without their own.
        self.debounce_rule: Callable[[str], DebounceSettings | None] | None = None
        # The Alert class seen for each code: a debounced point shows one of the levels it had.
        self.alert_classes: dict[int, type[Alert]] = {NoAlert.alertcode: NoAlert}
        # The agent's outbox (agent/outbox.py) reads these: None, nobody does. Each poll that moved a
        # point's effective level (its first too), and each pending/discarded debounce event, as
        # (kind, path, old, new, alertstr, value, polled_at); taken with take_transitions().
        self.transitions: list[tuple[str, str, int | None, int, str, Any, float]] | None = None

    # ------------------------------------------------------------------
    # Tree
    # ------------------------------------------------------------------

    def add_parent(self, name: str, parent: str | None) -> None:
        """A new parent under ``parent`` (which must exist, or be None: top level)."""
        self.tree.add(name, parent, is_leaf=False)
        self.parents[name] = parent
        self.paths[name] = self.path_of(name)

    def move_parent(self, name: str, parent: str | None) -> None:
        """Move an existing parent (and its subtree) under ``parent``."""
        self.tree.reparent(name, parent)
        self.parents[name] = parent
        self.refresh_paths()

    def add_point(
        self,
        name: str,
        parent: str | None,
        dt_s: float | None,
        *,
        loglvl_values: int | None = None,
        loglvl_alerts: int | None = None,
        logthr_alerts: int = 0,
        alert_exc: type[Alert] = NoAlert,
        job: Job | None = None,
        debounce: DebounceSettings | None = None,
    ) -> Point:
        """A new point under ``parent`` (which must exist, or be None); names are checked by the caller.

        ``debounce``: the point's own settings (decorator keywords); None: those
        of :attr:`debounce_rule` for its path, if any.
        """
        node = self.tree.add(name, parent, is_leaf=True)
        point = Point(name, node, dt_s, loglvl_values, loglvl_alerts, logthr_alerts, alert_exc)
        point.job = job
        node.data = point
        self.points[name] = point
        self.paths[name] = self.path_of(name)
        if debounce is None and self.debounce_rule is not None:
            debounce = self.debounce_rule(self.paths[name])
        if debounce is not None and debounce.enabled:
            point.debouncer = Debouncer(debounce)
        return point

    def set_debounce_rule(self, rule: Callable[[str], DebounceSettings | None] | None) -> None:
        """Per path settings for points without their own; applied to the points there are and to later ones.

        A point that has a debouncer keeps it (and its timers).
        """
        self.debounce_rule = rule
        if rule is None:
            return
        for name, point in self.points.items():
            if point.debouncer is None:
                settings = rule(self.paths[name])
                if settings is not None and settings.enabled:
                    point.debouncer = Debouncer(settings)

    def depth_chain(self, parent: str | None) -> list[str]:
        """``parent`` and its ancestors, nearest first (an unknown parent counts as top level)."""
        chain = []
        ancestor = parent
        while ancestor is not None:
            chain.append(ancestor)
            ancestor = self.parents.get(ancestor)
        return chain

    @property
    def worst_code(self) -> int:
        """The worst alert code over all points (0 when there are none)."""
        return self.tree.worst_code()

    def path_of(self, name: str) -> str:
        parts = []
        node: TreeNode | None = self.tree[name]
        while node is not None:
            parts.append(node.key)
            node = node.parent
        return naming.join(*reversed(parts))

    def refresh_paths(self) -> None:
        for name in self.paths:
            self.paths[name] = self.path_of(name)
        if self.changed is not None:
            # Every path below a moved parent changed: let the publisher resend all.
            self.changed.update(self.points)

    # ------------------------------------------------------------------
    # Results
    # ------------------------------------------------------------------

    def apply(
        self,
        names: tuple[str, ...],
        tstamp: float,
        now: float,
        exc: BaseException | None,
        results: tuple[Alert, ...] | None,
        *,
        notify_all: bool,
    ) -> list[Note] | None:
        """Store one poll's outcome for every point of ``names``.

        ``tstamp``: the poll's wall-clock time; ``now``: monotonic seconds (for ages).
        ``results`` is None when the run failed with ``exc``. ``notify_all``: a
        callback is registered, so every poll is a note; otherwise only polls
        that logging could act on. Returns the notes (None: nothing to do).
        """
        notes: list[Note] | None = None
        for index, point_name in enumerate(names):
            point = self.points.get(point_name)
            if point is None:  # a dependent not registered (yet)
                continue
            if results is None:
                assert exc is not None
                alert = point.alert_exc(f"ERROR {type(exc).__name__}: {exc}")
            else:
                alert = results[index]
                if self.alert_rule is not None and type(alert) is NoAlert:
                    alert = self._judge(self.paths[point_name], alert)
            if point.debouncer is not None:
                alert = self.effective_alert(point, alert, tstamp)
            code = alert.alertcode
            if code not in self.alertstrs:
                self.alertstrs[code] = alert.alertstr or ""
            old_value, old_code = point.value, point.alertcode
            point.value = alert.val
            point.alertcode = code
            point.alertstr = alert.alertstr or ""
            point.polled_wall = tstamp
            point.polled_mono = now
            if point.node.code != code:  # roll up only when the alert moved
                self.tree.set_code(point.node, code)
            if self.changed is not None:
                self.changed[point_name] = point
            transitions = self.transitions
            if transitions is not None:
                if old_code != code:
                    path = self.paths[point_name]
                    transitions.append(("level", path, old_code, code, point.alertstr, point.value, tstamp))
                if point.verdict is not None:
                    for event in point.verdict.events:
                        if event.kind in ("pending", "discarded"):
                            transitions.append(
                                (event.kind, self.paths[point_name], event.old, event.new, "", None, event.polled_at_s)
                            )
            # Note the poll only when a callback or logging could act on it
            # (most polls of a steady point would be noted for nothing).
            events = point.verdict.events if point.verdict is not None else ()
            if (
                notify_all
                or point.loglvl_values is not None
                or (point.loglvl_alerts is not None and (old_code != code or events))
            ):
                if notes is None:
                    notes = []
                notes.append(Note(point, self.paths[point_name], old_value, old_code, alert, events))
        return notes

    def effective_alert(self, point: Point, alert: Alert, polled_at_s: float) -> Alert:
        """The alert a debounced point takes (stores, rolls up, publishes, logs) for a judged poll.

        The judged level goes to the point's :class:`~gsmon.agent.debounce.Debouncer`
        on the poll's time; the verdict (kept on the point for the wire map and
        the notes) says the effective level, shown with the same value. A
        point without a debouncer is not passed here: it takes the judged alert.
        """
        debouncer = point.debouncer
        if debouncer is None:
            return alert
        code = alert.alertcode
        label = alert.alertstr or ""
        classes = self.alert_classes
        if code not in classes:
            classes[code] = type(alert)
        verdict = debouncer.observe(code, label, polled_at_s)
        point.verdict = verdict
        point.raw_code, point.raw_str = code, label
        if verdict.effective_code == code:
            return alert
        # One of the levels this point (or another) had: its class gives the label.
        return classes.get(verdict.effective_code, NoAlert)(alert.val)

    def _judge(self, path: str, alert: Alert) -> Alert:
        rule = self.alert_rule
        assert rule is not None
        try:
            judged: Alert = rule(path, alert)
            return judged
        except Exception as error:
            self.rule_errors.append((path, error))
            return alert

    def take_transitions(self) -> list[tuple[str, str, int | None, int, str, Any, float]]:
        """What :attr:`transitions` gathered since the last call (empty when nobody reads them)."""
        found = self.transitions
        if not found:
            return []
        self.transitions = []
        return found

    def take_rule_errors(self) -> list[tuple[str, BaseException]]:
        """The alert rule's errors since the last call, ``(path, error)``: for the caller to log."""
        errors = self.rule_errors
        if errors:
            self.rule_errors = []
        return errors if errors else []

    def log_lines(self, note: Note) -> list[LogLine]:
        """What to log for one note: value changes and alert changes past the threshold."""
        point, path, old_value, old_code, alert, _ = note
        lines: list[LogLine] = []
        if point.loglvl_values is not None:
            try:
                changed = bool(old_value != alert.val)
            except Exception:  # values whose comparison is ambiguous (arrays...)
                changed = old_value is not alert.val
            if changed:
                lines.append(LogLine(point.loglvl_values, 'value "%s" --> %s', (path, alert.val), None))
        if point.loglvl_alerts is not None:
            lines += [self._event_line(point.loglvl_alerts, path, event) for event in note.events]
        new_code = alert.alertcode
        if point.loglvl_alerts is None or old_code == new_code:
            return lines
        threshold = point.logthr_alerts
        if new_code >= threshold or (old_code is not None and old_code >= threshold):
            old_label = "unset" if old_code is None else (alertstr_for(old_code, self.alertstrs) or "NONE")
            new_label = alert.alertstr or "NONE"
            (message, *args), extra = transition_line(path, (old_code, old_label), (new_code, new_label), alert.val)
            lines.append(LogLine(point.loglvl_alerts, message, tuple(args), extra))
        return lines

    def _event_line(self, level: int, path: str, event: DebounceEvent) -> LogLine:
        """A debounce event as a log line (the raw level was held back, or the flap guard acted)."""
        old_label = alertstr_for(event.old, self.alertstrs) or "NONE"
        new_label = alertstr_for(event.new, self.alertstrs) or "NONE"
        extra: dict[str, Any] = {
            "point": path,
            "debounce": event.kind,
            "old_alert": event.old,
            "new_alert": event.new,
            "polled_at": event.polled_at_s,
        }
        if event.kind == "pending":
            return LogLine(
                level, 'alert "%s" %s, pending %s (held back by debounce)', (path, old_label, new_label), extra
            )
        if event.kind == "discarded":
            return LogLine(level, 'alert "%s" pending %s discarded (did not hold)', (path, new_label), extra)
        if event.kind == "flapping_start":
            extra["changes"] = event.changes
            return LogLine(
                level, 'alert "%s" flapping (%s changes), held at %s', (path, event.changes, new_label), extra
            )
        return LogLine(level, 'alert "%s" stopped flapping: %s --> %s', (path, old_label, new_label), extra)

    # ------------------------------------------------------------------
    # Reading
    # ------------------------------------------------------------------

    def item(self, name: str, now: float) -> tuple[str, Any, int | None, str | None, float | None]:
        """``(name, value, alert, parent, age)``; ``KeyError`` when there is no such name."""
        point = self.points.get(name)
        if point is not None:
            parent = point.node.parent
            age = None if point.polled_mono is None else now - point.polled_mono
            return (name, point.value, point.alertcode, parent.key if parent else None, age)
        if name in self.parents:
            return (name, None, self.tree[name].code, self.parents[name], None)
        raise KeyError(f"no monitor point or parent named {name!r}")

    def iter_points(self, now: float) -> Iterator[tuple[str, Any, int | None, float | None]]:
        for p in self.points.values():
            yield (p.name, p.value, p.alertcode, None if p.polled_mono is None else now - p.polled_mono)

    def rows(self, now: float) -> list[Row]:
        rows = []
        for depth, node in self.tree.walk():
            point = self.points.get(node.key)
            if point is None:
                code: int | None = node.code
                value, age = None, None
            else:
                code, value = point.alertcode, point.value
                age = None if point.polled_mono is None else now - point.polled_mono
            label = "" if code is None else alertstr_for(code, self.alertstrs)
            rows.append(Row(depth, node.key, value, code, label, age))
        return rows

    # ------------------------------------------------------------------
    # For publishers
    # ------------------------------------------------------------------

    def entry(self, point: Point) -> proto.PointEntry:
        polled_at = point.polled_wall
        code = point.alertcode
        assert polled_at is not None
        assert code is not None
        path = self.paths[point.name]
        verdict = point.verdict
        if verdict is None:  # plain points keep their exact bytes
            return proto.PointEntry(path, point.value, code, point.alertstr, polled_at, point.dt_s)
        pending, flapping = verdict.pending, verdict.flapping
        return proto.debounced_entry(
            proto.PointEntry(path, point.value, code, point.alertstr, polled_at, point.dt_s),
            proto.point_debounce_map(
                point.raw_code,
                point.raw_str,
                None if pending is None else (pending.level, pending.since_s),
                None if flapping is None else (flapping.since_s, flapping.changes),
            ),
        )

    def take_changes(self) -> list[proto.PointEntry]:
        changed = self.changed
        if not changed:
            return []
        entries = [self.entry(point) for point in changed.values()]
        changed.clear()
        return entries

    def unpolled_paths(self) -> list[str]:
        return [self.paths[name] for name, point in self.points.items() if point.polled_wall is None]

    def full_state(self) -> tuple[list[proto.PointEntry], list[str]]:
        entries = [self.entry(point) for point in self.points.values() if point.polled_wall is not None]
        # `changed` is left alone: a STATE may go to one hub only, and the
        # others still need those points in their next DELTA.
        parents = [self.paths[name] for name in self.parents]
        return entries, parents
