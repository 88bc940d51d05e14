"""The Monitor: declare monitor points with a decorator, poll them in the background.

This is the ``libgs.monitoring`` API (UNSW, 2017) made correct for Python 3,
thread-safe and fast::

    mon = Monitor()

    @mon.monitor(dt=2, parent="Antenna")
    def azimuth():
        return GreenAlert(read_azimuth())

    mon.start()
    print(mon)

How it runs::

    scheduler thread --- heap of due times (scheduler.Schedule) --- sleeps until the next one
          | due jobs
          v
    worker threads (``workers`` of them) --- call the monitor function
          | results, under the Monitor's lock
          v
    PointTable (agent/points.py, the pure core: values, RollupTree, change set;
          |      returns the notes to act on)
          v
    this facade performs them: log lines, callbacks; the publisher reads the change set

Differences from the original that fix its defects: duplicate names raise
``ValueError``; parents really carry their worst child's alert; due times
follow the schedule (no drift); a function that hangs is reported as an error
after ``timeout`` seconds and is not started again until it returns; reads
while polling are safe; ``stop()`` returns promptly; the decorated function
stays callable.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from gsmon.agent.debounce import DebounceSettings
from gsmon.agent.points import AlertRule, PointTable
from gsmon.agent.scheduler import Event, Job, Schedule
from gsmon.common import names as naming
from gsmon.common import protocol as proto
from gsmon.common.alerts import Alert, NoAlert, RedAlert, alertstr_for, as_alert
from gsmon.common.render import Row, render_table

if TYPE_CHECKING:
    # Only a Monitor given a hub publishes: the publisher (and ZeroMQ with it) and the
    # key files are imported where they are used, so the in-process API needs neither.
    from pathlib import Path

    from gsmon.agent.outbox import Outbox, OutboxSettings
    from gsmon.agent.publisher import Publisher, PublisherSettings
    from gsmon.common.keys import ClientKeys

__all__ = ["DEFAULT_TIMEOUT_S", "Monitor", "MonitorItem"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S: Final = 10.0
# dt=None means "poll once"; the original stored 1e11 s for it.
_ONE_SHOT: Final = None
# A plain name for the member the scheduler loop tests on every due job (an
# Enum attribute lookup costs ~0.1 us).
_TIMEOUT: Final = Event.TIMEOUT


class _Inherit(enum.Enum):
    """Type of :data:`_FROM_MONITOR` (an enum so that mypy can narrow it)."""

    FROM_MONITOR = enum.auto()


#: Default of ``loglvl_alerts``/``logthr_alerts`` per point: the Monitor's own setting.
_FROM_MONITOR: Final = _Inherit.FROM_MONITOR

Callback = Callable[[str, float, BaseException | None, Alert], Any]


class MonitorItem(NamedTuple):
    """A read-only copy of one point or parent, as ``mon[name]`` returns it.

    Fields can be read by attribute (``item.alert``), by position, or by
    name (``item["alert"]``) as in the original. ``alert`` is the alert code
    (a parent's is its worst child's); ``age`` is seconds since the last poll.
    """

    name: str
    value: Any
    alert: int | None
    parent: str | None
    age: float | None

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            if key not in MonitorItem._fields:
                raise KeyError(key)
            return getattr(self, key)
        return tuple.__getitem__(self, key)

    def keys(self) -> tuple[str, ...]:
        return MonitorItem._fields

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(zip(MonitorItem._fields, self, strict=True))


class _ExecutorGenerator:
    """What :meth:`Monitor.to_gen_in_executor` returns.

    It honours the original generator contract when iterated by hand (each
    ``next()`` returns ``None`` until the call finished, then
    ``(tstamp, exc, ret)``), but :meth:`Monitor.register_monitor` recognises it
    and runs the wrapped function directly in the worker pool instead, which
    is what makes timeouts and exact scheduling possible.
    """

    def __init__(self, monitor: Monitor, fn: Callable[..., Any], point_names: tuple[str, ...], args: Any, kwargs: Any):
        self.monitor = monitor
        self.fn = fn
        self.point_names = point_names
        self.args = args
        self.kwargs = kwargs
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._result: tuple[float, BaseException | None, Any] | None = None

    def call(self) -> Any:
        return self.fn(*self.args, **self.kwargs)

    def __iter__(self) -> _ExecutorGenerator:
        return self

    def __next__(self) -> tuple[float, BaseException | None, Any] | None:
        if self._thread is None:
            self._done.clear()
            self._thread = threading.Thread(target=self._run_once, daemon=True, name="gsmon-gen")
            self._thread.start()
        if not self._done.is_set():
            return None
        self._thread = None
        result = self._result
        assert result is not None
        return result

    def _run_once(self) -> None:
        exc: BaseException | None = None
        ret: Any = None
        try:
            alerts = self.monitor._split_result(self.point_names, self.call())
            ret = alerts if len(alerts) > 1 else alerts[0]
        except Exception as error:
            exc = error
        self._result = (time.time(), exc, ret)
        self._done.set()


class Monitor:
    """Polls monitor functions in a thread pool and keeps their latest values.

    Args:
        workers: Worker threads that run monitor functions (a slow function
            holds one worker; the others keep going).
        tick: Seconds between runs of a ``dt=0`` point, and between calls of
            ``tick_cb``.
        tick_cb: Called with the monitor every ``tick`` seconds from the
            scheduler thread; it must return quickly.
        default_dt: Poll interval in seconds for points registered without one.
        default_timeout: Seconds after which a still-running monitor function
            is reported as an error (per point: ``timeout=``).
        loglvl_alerts: Level at which alert changes are logged for points
            registered without their own ``loglvl_alerts`` (``None``: never).
            The seed's ``logging.DEBUG`` by default; ``gsmon agent`` sets it
            from its ``[logging] alerts`` setting.
        logthr_alerts: ...when the old or the new alert code is at least this
            (for points registered without their own ``logthr_alerts``).
        state_dir: Where a publishing Monitor keeps its outbox (protocol 1.3,
            :mod:`gsmon.agent.outbox`: every effective-level transition, numbered,
            so a hub that was down can ask for what it missed), as
            ``outbox-<agent>.db``. None: the outbox is kept in memory (it covers
            hub outages while this process runs; ``gsmon agent`` always gives one).
        outbox: The outbox's bounds (:class:`~gsmon.agent.outbox.OutboxSettings`),
            or False for none at all (the agent then sends no ``tseq`` and is never
            replayed). Only a Monitor given a hub has an outbox.
    """

    def __init__(
        self,
        workers: int = 10,
        tick: float = 0.5,
        tick_cb: Callable[[Monitor], Any] | None = None,
        default_dt: float = 10,
        *,
        default_timeout: float = DEFAULT_TIMEOUT_S,
        hub: str | Sequence[str] | None = None,
        agent: str | None = None,
        mount: str | None = None,
        publisher: PublisherSettings | None = None,
        curve: ClientKeys | None = None,
        loglvl_alerts: int | None = logging.DEBUG,
        logthr_alerts: int = RedAlert.alertcode,
        state_dir: str | Path | None = None,
        outbox: OutboxSettings | bool = True,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if tick <= 0:
            raise ValueError(f"tick must be positive, got {tick}")
        if not default_dt or default_dt <= 0:
            raise ValueError(f"default_dt must be positive, got {default_dt}")
        if default_timeout <= 0:
            raise ValueError(f"default_timeout must be positive, got {default_timeout}")
        self.workers = workers
        self.default_dt = default_dt
        self.default_timeout = default_timeout
        self.tick_cb = tick_cb
        self.loglvl_alerts = loglvl_alerts
        self.logthr_alerts = logthr_alerts
        self._tick = tick
        self._callbacks: list[Callback] = []

        # All point/parent state: the pure core, guarded by _lock. Its change
        # set is kept only when a publisher reads it (hub= below).
        self._lock = threading.RLock()
        self._table = PointTable()
        # Names fed by a job registered with `dependents=`, not yet registered themselves.
        self._pending_dependents: dict[str, Job] = {}

        # Scheduling, guarded by _sched_lock.
        self._sched_lock = threading.Lock()
        self._schedule = Schedule()
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._scheduler_thread: threading.Thread | None = None
        self._worker_threads: list[threading.Thread] = []
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()

        # Publishing to hubs (optional), with the outbox of transitions (protocol 1.3).
        self._publisher: Publisher | None = None
        self._outbox: Outbox | None = None
        if hub is None:
            # Monitor() in an application the operator points at a hub from outside:
            # GSMON_AGENT_HUB (and GSMON_KEY/GSMON_HUB_KEY), see gsmon.common.client_settings.
            hub, curve = _hub_from_environment(curve)
        if hub is not None:
            from gsmon.agent.publisher import Publisher

            hubs = [hub] if isinstance(hub, str) else list(hub)
            agent_name = naming.check_agent_name(agent if agent is not None else naming.default_agent_name())
            mount_path = naming.check_mount(mount if mount is not None else agent_name)
            self._table.changed = {}
            if outbox is not False:
                from pathlib import Path

                from gsmon.agent.outbox import Outbox, OutboxError, OutboxSettings, outbox_file

                where = None if state_dir is None else outbox_file(Path(state_dir), agent_name)
                try:
                    self._outbox = Outbox(where, hubs, outbox if isinstance(outbox, OutboxSettings) else None)
                except OutboxError as error:
                    raise ValueError(str(error)) from error
                self._table.transitions = []
            self._publisher = Publisher(
                hubs, agent_name, mount_path, _MonitorSource(self), publisher, curve, outbox=self._outbox
            )

    # ------------------------------------------------------------------
    # Registration
    # ------------------------------------------------------------------

    def register_parent(self, name: str, parent: str | None = None) -> None:
        """Declare a parent: a grouping node whose alert is its worst child's.

        An unknown ``parent`` is created at the top level. Registering an
        existing parent again moves it under the new ``parent``.
        """
        naming.check_name(name, "parent name")
        if parent is not None:
            naming.check_name(parent, "parent name")
        if parent == name:
            raise ValueError(f"{name!r} cannot be its own parent (that would make a cycle)")
        with self._lock:
            if name in self._table.points or name in self._pending_dependents:
                raise ValueError(f"{name!r} is already a monitor point; names must be unique")
            if parent is not None and parent in self._table.points:
                raise ValueError(f"{parent!r} is a monitor point and cannot be a parent")
            moving = name in self._table.parents and self._table.parents[name] != parent
            if moving:  # the whole subtree moves: its deepest node must stay within the cap
                below = max(
                    (depth + 1 for depth, _ in self._table.tree.walk(self._table.tree[name], sort=False)), default=0
                )
                self._check_depth(name, parent, "parent name", below)
            elif name not in self._table.parents:
                self._check_depth(name, parent, "parent name")
            if parent is not None and parent not in self._table.parents:
                self.register_parent(parent)
            if name in self._table.parents:
                if moving:
                    self._table.move_parent(name, parent)
                return
            self._table.add_parent(name, parent)

    def register_monitor(
        self,
        name: str,
        gen: Any,
        dt: float | None = -1,
        parent: str | None = None,
        loglvl_values: int | None = None,
        loglvl_alerts: int | _Inherit | None = _FROM_MONITOR,
        logthr_alerts: int | _Inherit = _FROM_MONITOR,
        dependents: tuple[str, ...] = (),
        alert_exc: type[Alert] = NoAlert,
        timeout: float | None = None,
        *,
        for_s: float | None = None,
        clear_for_s: float | None = None,
        m_of_n: tuple[int, int] | None = None,
        flap_window_s: float | None = None,
        flap_start: int | None = None,
        flap_stop: int | None = None,
    ) -> None:
        """Register one monitor point (low level; prefer :meth:`monitor`).

        Args:
            name: The point's name, unique in this monitor.
            gen: What produces the value: a generator made by
                :meth:`to_gen_in_executor`, any iterator that yields ``None``
                until it has ``(tstamp, exc, ret)``, or ``None`` for a point
                fed by another point's function (see ``dependents``).
            dt: Poll interval in seconds; ``None`` polls once, ``0`` every
                tick, unset or negative means ``default_dt``.
            parent: The parent to group it under (created if unknown).
            loglvl_values: Log every change of value at this level (``None``: never).
            loglvl_alerts: Log alert changes at this level (``None``: never)...
            logthr_alerts: ...when the old or the new alert code is at least this.
                Both default to the Monitor's own (``logging.DEBUG`` and Red,
                as in the seed, unless the Monitor was made with others).
            dependents: Further point names fed by the same function, which
                returns a tuple with one value per point (``name`` first).
            alert_exc: Alert class for the error value when the function
                raises or times out.
            timeout: Seconds after which a running function is reported as an
                error (default: the monitor's ``default_timeout``).
            for_s, clear_for_s, m_of_n, flap_window_s, flap_start, flap_stop:
                Debounce and flap guard of the point(s), all off by default
                (see :mod:`gsmon.agent.debounce`): ``for_s`` seconds a higher
                level must hold before the point shows it, ``clear_for_s`` a
                lower one, ``m_of_n=(M, N)`` M bad polls of the last N, a flap
                guard over ``flap_window_s`` seconds (starts above ``flap_start``
                changes, stops at ``flap_stop`` or fewer). Unset: the settings
                :meth:`set_debounce_rule` gives for the point's path, if any.
                A bad value raises ``ValueError`` with one line per problem.
        """
        self._register(
            (name, *dependents),
            gen,
            dt=dt,
            parent=parent,
            loglvl_values=loglvl_values,
            loglvl_alerts=loglvl_alerts,
            logthr_alerts=logthr_alerts,
            alert_exc=alert_exc,
            timeout=timeout,
            register_dependents=False,
            for_s=for_s,
            clear_for_s=clear_for_s,
            m_of_n=m_of_n,
            flap_window_s=flap_window_s,
            flap_start=flap_start,
            flap_stop=flap_stop,
        )

    def monitor(self, point: str | tuple[str, ...] | None = None, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        """Decorator that registers a function as the source of one or more points.

        ``point`` is the point's name (default: the function's name) or a
        tuple of names, in which case the function returns a tuple with one
        value per name. Every other argument is passed to
        :meth:`register_monitor` (``dt``, ``parent``, ``timeout``, the debounce
        settings ``for_s``, ``clear_for_s``, ``m_of_n``, ``flap_window_s``...).
        The function itself is returned unchanged and stays callable::

            @mon.monitor(point=("Point 1", "Point 2", "Point 3"), dt=10, parent="Test")
            def three_values():
                return random.random(), random.random(), random.random()
        """
        for banned in ("name", "gen", "dependents"):
            if banned in kwargs:
                raise TypeError(f"monitor() does not take {banned!r}: it is derived from the decorated function")

        def decorator(fn: Callable[[], Any]) -> Callable[[], Any]:
            if point is None:
                point_names: tuple[str, ...] = (fn.__name__,)
            elif isinstance(point, tuple):
                point_names = point
            else:
                point_names = (point,)
            generator = self.to_gen_in_executor(fn, point_names)
            self._register(point_names, generator, *args, register_dependents=True, **kwargs)
            return fn

        return decorator

    def to_gen_in_executor(
        self, fn: Callable[..., Any], point_names: tuple[str, ...], *args: Any, **kwargs: Any
    ) -> Any:
        """Wrap ``fn`` (called with ``*args, **kwargs``) as a monitor generator
        for :meth:`register_monitor`."""
        given: object = point_names  # callers from untyped code pass a bare str
        if not isinstance(given, tuple) or not given:
            raise TypeError(f"point_names must be a non-empty tuple of names, got {given!r}")
        return _ExecutorGenerator(self, fn, point_names, args, kwargs)

    def add_callback(self, callable: Callback) -> None:  # noqa: A002 -- the original's argument name
        """Call ``callable(point_name, tstamp, exc, ret)`` after every poll of
        every point, in the worker thread that polled it. ``ret`` is an
        :class:`Alert`; ``exc`` the exception the function raised, or ``None``."""
        self._callbacks.append(callable)

    def set_alert_rule(self, rule: AlertRule | None) -> None:
        """Judge plain values with ``rule(path, alert) -> alert`` before they are stored.

        ``path`` is the point's path inside this monitor (``"CPU/cpu_total_percent"``)
        and ``alert`` is ``NoAlert(value)``. The rule is applied only when the
        function returned a plain value (or ``NoAlert(value)``, which is the
        same thing): an explicit alert returned by the function wins, and so
        do the error values of functions that raised or timed out. The rule
        runs under the monitor's lock, so it must be quick and must not call
        back into the monitor; if it raises, the error is logged and the value
        is stored unjudged. ``None`` removes the rule. See
        :class:`gsmon.agent.thresholds.ThresholdRule`.
        """
        self._table.alert_rule = rule

    def set_debounce_rule(self, rule: Callable[[str], DebounceSettings | None] | None) -> None:
        """Debounce settings by path for points registered without their own (``rule(path) -> settings``).

        ``path`` is the point's path inside this monitor. Applied at once to
        the points there are (a point that already debounces keeps its
        settings and timers) and to points registered later. See
        :class:`gsmon.agent.config.DebounceRule` for the agent's TOML tables.
        """
        with self._lock:
            self._table.set_debounce_rule(rule)

    def callback(self) -> Callable[[Callback], Callback]:
        """Decorator form of :meth:`add_callback`."""

        def decorator(fn: Callback) -> Callback:
            self.add_callback(fn)
            return fn

        return decorator

    def _register(
        self,
        point_names: tuple[str, ...],
        gen: Any,
        dt: float | None = -1,
        parent: str | None = None,
        loglvl_values: int | None = None,
        loglvl_alerts: int | _Inherit | None = _FROM_MONITOR,
        logthr_alerts: int | _Inherit = _FROM_MONITOR,
        alert_exc: type[Alert] = NoAlert,
        timeout: float | None = None,
        *,
        register_dependents: bool,
        for_s: float | None = None,
        clear_for_s: float | None = None,
        m_of_n: tuple[int, int] | None = None,
        flap_window_s: float | None = None,
        flap_start: int | None = None,
        flap_stop: int | None = None,
    ) -> None:
        """Validate everything first, then register all of ``point_names`` at once."""
        debounce_given = {
            "for_s": for_s,
            "clear_for_s": clear_for_s,
            "m_of_n": m_of_n,
            "flap_window_s": flap_window_s,
            "flap_start": flap_start,
            "flap_stop": flap_stop,
        }
        debounce = {key: value for key, value in debounce_given.items() if value is not None}
        # One line per bad setting (DebounceSettingsError is a ValueError).
        debounce_settings = DebounceSettings.from_mapping(debounce) if debounce else None
        for point_name in point_names:
            naming.check_name(point_name, "point name")
        if len(set(point_names)) != len(point_names):
            raise ValueError(f"point names {point_names!r} repeat a name; names must be unique")
        if parent is not None:
            naming.check_name(parent, "parent name")
        given: object = alert_exc  # untyped callers may pass an instance
        if not (isinstance(given, type) and issubclass(given, Alert)):
            raise TypeError(f"alert_exc must be an Alert subclass, got {alert_exc!r}")
        period_s = self._period_for(dt)
        timeout_s = self.default_timeout if timeout is None else float(timeout)
        if timeout_s <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        dt_s = None if period_s is None else period_s
        alerts_level = self.loglvl_alerts if loglvl_alerts is _FROM_MONITOR else loglvl_alerts
        alerts_threshold = self.logthr_alerts if logthr_alerts is _FROM_MONITOR else logthr_alerts

        with self._lock:
            first, *dependents = point_names
            fed_by = self._pending_dependents.get(first) if gen is None else None
            for point_name in point_names if register_dependents else (first,):
                if point_name in self._table.points or point_name in self._table.parents:
                    raise ValueError(f"{point_name!r} already exists; names must be unique")
                if point_name in self._pending_dependents and fed_by is None:
                    raise ValueError(f"{point_name!r} is already fed by another function; names must be unique")
            for point_name in dependents:
                if (
                    point_name in self._table.points
                    or point_name in self._table.parents
                    or point_name in self._pending_dependents
                ):
                    raise ValueError(f"{point_name!r} already exists; names must be unique")
            if parent is not None and parent in self._table.points:
                raise ValueError(f"{parent!r} is a monitor point and cannot be a parent")
            self._check_depth(first, parent, "point name")
            job = None
            if gen is not None:
                job = self._make_job(point_names, gen, period_s, timeout_s)
            # Only now that nothing can fail: create the parent if it is new.
            if parent is not None and parent not in self._table.parents:
                self.register_parent(parent)
            to_register = point_names if register_dependents else (first,)
            for point_name in to_register:
                self._table.add_point(
                    point_name,
                    parent,
                    fed_by.period_s if fed_by is not None else dt_s,  # a dependent polls at its feeder's rate
                    loglvl_values=loglvl_values,
                    loglvl_alerts=alerts_level,
                    logthr_alerts=alerts_threshold,
                    alert_exc=alert_exc,
                    job=job if job is not None else fed_by,
                    debounce=debounce_settings,
                )
                self._pending_dependents.pop(point_name, None)
            if job is not None and not register_dependents:
                for point_name in dependents:
                    self._pending_dependents[point_name] = job
            log.debug("registered monitor point(s) %s", ", ".join(point_names))

        if job is not None:
            with self._sched_lock:
                self._schedule.add(job, time.monotonic())
            self._wakeup.set()

    def _make_job(self, point_names: tuple[str, ...], gen: Any, period_s: float | None, timeout_s: float) -> Job:
        if isinstance(gen, _ExecutorGenerator):
            # No arguments to bind (the decorator's case): run the function
            # itself, one Python frame less on every poll.
            run = gen.fn if not gen.args and not gen.kwargs else gen.call
            return Job(point_names, run, period_s, timeout_s)
        if not hasattr(gen, "__next__"):
            raise TypeError(f"gen must be a generator (see to_gen_in_executor) or None, got {type(gen).__name__}")
        # A hand-made generator following the original contract: polled from the
        # scheduler thread, `tick` seconds apart, until it yields a result.
        return Job(point_names, _never_called, period_s, timeout_s, extra=gen)

    def _period_for(self, dt: float | None) -> float | None:
        """The original's dt rules: None once, 0 every tick, negative default."""
        if dt is _ONE_SHOT:
            return None
        if isinstance(dt, bool) or not isinstance(dt, int | float):
            raise TypeError(f"dt must be a number of seconds or None, got {dt!r}")
        if dt != dt:  # NaN would corrupt the ordering of the schedule's heap
            raise ValueError(f"dt must be a number of seconds or None, got {dt!r}")
        if dt < 0:
            return float(self.default_dt)
        if dt == 0:
            return self._tick
        return float(dt)

    def _check_depth(self, name: str, parent: str | None, what: str, below: int = 0) -> None:
        """Refuse to put ``name`` (with ``below`` levels under it) under ``parent``
        (an unknown parent counts as top level) deeper than the cap."""
        ancestors = self._table.depth_chain(parent)
        depth = 1 + below + len(ancestors)
        segments = [name, *ancestors]
        if self._publisher is not None:
            segments.append(self._publisher.mount)  # the hub prefixes it
        if depth > naming.MAX_DEPTH:
            raise naming.InvalidNameError(
                f"invalid {what} {name!r} under {parent!r}: too deep, the tree would be {depth} levels deep"
                f" and at most {naming.MAX_DEPTH} are allowed"
            )
        path = naming.join(*reversed(segments))
        if len(path.encode()) > naming.MAX_PATH_BYTES:
            raise naming.InvalidNameError(
                f"invalid {what} {name!r} under {parent!r}: its path {path[:60]!r}... would be longer than "
                f"{naming.MAX_PATH_BYTES} bytes of UTF-8"
            )

    # ------------------------------------------------------------------
    # Running
    # ------------------------------------------------------------------

    def start(self, subprocess: bool = False) -> None:
        """Start polling in background threads. Calling it again is harmless."""
        if subprocess:
            raise ValueError(
                "start(subprocess=True) is not supported: points polled in another process would not be "
                "visible here. Run a standalone `gsmon agent` for a separate process."
            )
        with self._sched_lock:
            if self._scheduler_thread is not None:
                return
            if self._outbox is not None and self._outbox.closed:
                self._reopen_outbox()
            self._stopping.clear()
            self._jobs = queue.SimpleQueue()
            self._worker_threads = [
                threading.Thread(target=self._worker, args=(self._jobs,), daemon=True, name=f"gsmon-worker-{i}")
                for i in range(self.workers)
            ]
            self._scheduler_thread = threading.Thread(target=self._scheduler, daemon=True, name="gsmon-scheduler")
        for thread in self._worker_threads:
            thread.start()
        self._scheduler_thread.start()
        if self._publisher is not None:
            self._publisher.start()

    def stop(self) -> None:
        """Stop polling and publishing, and close the outbox (its pending entries written, its file
        released; :meth:`start` opens it again). Returns promptly, without waiting for functions still
        running (their results are still recorded in the tree, no longer in the outbox). Calling it again
        is harmless."""
        with self._sched_lock:
            thread = self._scheduler_thread
            self._scheduler_thread = None
        if thread is not None:
            self._stopping.set()
            self._wakeup.set()
            thread.join()
            for _ in self._worker_threads:
                self._jobs.put(None)
            self._worker_threads = []
        if self._publisher is not None:
            self._publisher.stop()
        if self._outbox is not None:
            # After the publisher's last flush: what is pending is written, the file is closed (and its
            # exclusive lock released). Results of functions still running are not recorded in it.
            self._outbox.close()

    def _reopen_outbox(self) -> None:
        """Start after stop: the same outbox file again (in memory: a new outbox, the hubs follow it afresh)."""
        assert self._outbox is not None
        from gsmon.agent.outbox import OutboxError

        try:
            outbox = self._outbox.reopen()
        except OutboxError as error:
            raise ValueError(str(error)) from error
        with self._lock:
            self._outbox = outbox
        if self._publisher is not None:
            self._publisher.outbox = outbox

    @property
    def running(self) -> bool:
        return self._scheduler_thread is not None

    def __enter__(self) -> Monitor:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _scheduler(self) -> None:
        next_tick = time.monotonic() + self._tick
        while not self._stopping.is_set():
            self._wakeup.clear()
            now = time.monotonic()
            with self._sched_lock:
                actions = self._schedule.pop_due(now)
            put = self._jobs.put  # once per wake-up, not once per due job
            for event, job in actions:
                if event is _TIMEOUT:
                    # Only this thread starts runs, so run_id is still the
                    # overrunning run's here.
                    self._report_timeout(job, job.run_id)
                elif job.extra is None:
                    put(job)
                else:
                    self._poll_generator(job, now)
            if self.tick_cb is not None and now >= next_tick:
                next_tick += self._tick * max(1, int((now - next_tick) // self._tick) + 1)
                try:
                    self.tick_cb(self)
                except Exception as error:
                    log.error("tick callback failed: %s: %s", type(error).__name__, error)
            with self._sched_lock:
                wake_at = self._schedule.next_wakeup()
            if self.tick_cb is not None:
                wake_at = next_tick if wake_at is None else min(wake_at, next_tick)
            timeout = None if wake_at is None else max(0.0, wake_at - time.monotonic())
            self._wakeup.wait(timeout)

    def _worker(self, jobs: queue.SimpleQueue[Job | None]) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            try:
                alerts: tuple[Alert, ...] | None = self._split_result(job.names, job.run())
                exc: BaseException | None = None
            except Exception as error:
                alerts, exc = None, error
            self._complete(job, time.time(), exc, alerts)

    def _poll_generator(self, job: Job, now: float) -> None:
        """Advance a hand-made generator (original contract) one step."""
        try:
            step = next(job.extra)
            if step is not None:
                tstamp, exc, ret = step
                alerts = None if exc is not None else self._split_result(job.names, ret)
        except StopIteration:
            log.warning("monitor generator for %s is exhausted; it will not be polled again", job.names[0])
            job.retired = True
            return
        except Exception as error:
            self._complete(job, time.time(), error, None)
            return
        if step is None:
            with self._sched_lock:
                self._schedule.retry(job, now + self._tick)
            return
        self._complete(job, tstamp, exc, alerts)

    def _report_timeout(self, job: Job, run_id: int) -> None:
        overrun = TimeoutError(f"still running after {job.timeout_s:g} s")
        self._apply(job, time.time(), overrun, None, overrun_run=run_id)

    # ------------------------------------------------------------------
    # Results
    # ------------------------------------------------------------------

    def _split_result(self, point_names: tuple[str, ...], result: Any) -> tuple[Alert, ...]:
        """One Alert per point; raises ValueError when a multi-point function
        returned the wrong shape."""
        count = len(point_names)
        if count == 1:
            return (as_alert(result),)
        if not isinstance(result, tuple | list):
            raise ValueError(
                f"expected a tuple of {count} values for points {point_names!r}, got a {type(result).__name__}"
            )
        if len(result) != count:
            raise ValueError(f"expected {count} values for points {point_names!r}, got {len(result)}")
        return tuple(as_alert(item) for item in result)

    def _complete(self, job: Job, tstamp: float, exc: BaseException | None, alerts: tuple[Alert, ...] | None) -> None:
        """A run of ``job`` ended: record it and let the job run again."""
        self._apply(job, tstamp, exc, alerts, finished=True)

    def _apply(
        self,
        job: Job,
        tstamp: float,
        exc: BaseException | None,
        results: tuple[Alert, ...] | None,
        *,
        finished: bool = False,
        overrun_run: int | None = None,
    ) -> None:
        """Store one poll's outcome for every point of ``job`` (in the core); then log and call back.

        ``finished``: the run ended (the job may be started again). ``overrun_run``:
        this is the timeout error of that run, to be dropped if the run has
        ended meanwhile -- checked under the same lock that records a finished
        run, so a late timeout can never overwrite the real result.
        """
        callbacks = self._callbacks
        table = self._table
        with self._lock:
            if overrun_run is not None and not (job.running and job.run_id == overrun_run):
                return
            if finished:
                # Under the point lock (see overrun_run); the scheduler only
                # reads this flag, and a stale True merely skips one slot.
                self._schedule.finished(job)
            notes = table.apply(job.names, tstamp, time.monotonic(), exc, results, notify_all=bool(callbacks))
            outbox = self._outbox
            if outbox is not None and table.transitions:
                # Under the lock: an entry is in the outbox exactly when its point is in the change set, so
                # the tseq_head the publisher reads before taking the changes is covered by what it sends.
                wall = time.time()
                for kind, path, old, new, label, value, polled_at in table.take_transitions():
                    if kind == "level":
                        outbox.record(path, old, new, label, value, polled_at, wall)
                    elif old is not None:
                        outbox.record_event(kind, path, old, new, polled_at, wall)
            rule_errors = table.take_rule_errors()
            # Log lines are decided under the lock (they read the label table), made after it.
            actions = [(note, table.log_lines(note)) for note in notes] if notes else ()
        for path, error in rule_errors:
            log.error("alert rule failed for %s: %s: %s", path, type(error).__name__, error)
        for note, lines in actions:
            for line in lines:
                log.log(line.level, line.message, *line.args, extra=line.extra)
            for callback in callbacks:
                try:
                    callback(note.point.name, tstamp, exc, note.alert)
                except Exception as error:
                    name = getattr(callback, "__name__", repr(callback))
                    log.error("monitor callback %s failed: %s: %s", name, type(error).__name__, error)

    # ------------------------------------------------------------------
    # Reading
    # ------------------------------------------------------------------

    @property
    def alertcode(self) -> int:
        """The worst alert code over all points (0 when there are none)."""
        with self._lock:
            return self._table.worst_code

    def __getitem__(self, name: str) -> MonitorItem:
        """A copy of a point or parent; ``KeyError`` when there is no such name."""
        with self._lock:
            return MonitorItem(*self._table.item(name, time.monotonic()))

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._table.points or name in self._table.parents

    def __len__(self) -> int:
        with self._lock:
            return len(self._table.points)

    def __iter__(self) -> Iterator[tuple[str, Any, int | None, float | None]]:
        """``(name, value, alert, age)`` for every point, in registration order."""
        with self._lock:
            rows = list(self._table.iter_points(time.monotonic()))
        return iter(rows)

    def itertree(self, parent: str | None = None) -> Iterator[MonitorItem]:
        """Every point and parent, depth first, sorted by name at each level;
        only the branch below ``parent`` when it is given."""
        with self._lock:
            now = time.monotonic()
            if parent is None:
                start = None
            elif parent in self._table.parents:
                start = self._table.tree[parent]
            else:
                raise KeyError(f"no parent named {parent!r}")
            items = [MonitorItem(*self._table.item(node.key, now)) for _, node in self._table.tree.walk(start)]
        return iter(items)

    def keys(self) -> list[str]:
        """The names of all monitor points (not parents), in registration order."""
        with self._lock:
            return list(self._table.points)

    def names(self) -> list[str]:
        """Same as :meth:`keys`."""
        return self.keys()

    def alertstr(self, alertcode: int | None) -> str:
        """The label for an alert code, including ones from user subclasses."""
        if alertcode is None:
            return ""
        with self._lock:
            return alertstr_for(alertcode, self._table.alertstrs)

    def rows(self) -> list[Row]:
        """The tree as table rows (what ``print(mon)`` shows)."""
        with self._lock:
            return self._table.rows(time.monotonic())

    def __str__(self) -> str:
        worst = self.alertcode
        label = self.alertstr(worst) if worst > 0 else ""
        state = "running" if self.running else "not running"
        title = f"Monitor ({label}) --- {state}" if label else f"Monitor --- {state}"
        return render_table(title, self.rows())

    def __repr__(self) -> str:
        return f"<Monitor {len(self)} points, {'running' if self.running else 'not running'}>"

    # ------------------------------------------------------------------
    # For publishers
    # ------------------------------------------------------------------

    @property
    def outbox(self) -> Outbox | None:
        """The outbox of transitions (protocol 1.3), when the Monitor publishes and keeps one."""
        return self._outbox

    @property
    def publisher(self) -> Publisher | None:
        """The link to the hub(s), when the Monitor was given ``hub=``."""
        return self._publisher

    @property
    def point_table(self) -> PointTable:
        """The pure core that holds every point (:class:`gsmon.agent.points.PointTable`).

        Read it only while the Monitor is stopped, or under :meth:`locked`:
        the worker threads change it while polling.
        """
        return self._table

    def locked(self) -> threading.RLock:
        """The lock that guards :attr:`point_table` (``with mon.locked(): ...``)."""
        return self._lock

    def _take_changes(self) -> list[proto.PointEntry]:
        with self._lock:
            if self._outbox is not None:
                self._outbox.cut()  # the live window is the transitions of exactly these points
            return self._table.take_changes()

    def _full_state(self) -> tuple[list[proto.PointEntry], list[str]]:
        with self._lock:
            if self._outbox is not None:
                self._outbox.note_head()  # the STATE's tseq_head: exactly what these points reflect
            return self._table.full_state()


def _hub_from_environment(curve: ClientKeys | None) -> tuple[str | None, ClientKeys | None]:
    """The hub (and keys, unless ``curve`` is given) named by GSMON_AGENT_HUB, GSMON_KEY and GSMON_HUB_KEY.

    Nothing when GSMON_AGENT_HUB is unset. Raises ``ValueError`` naming the
    variable for a bad value or an unusable key file.
    """
    from gsmon.common.client_settings import AGENT_HUB_VARIABLE, KEY_VARIABLE, agent_environment
    from gsmon.common.config import ConfigError

    try:
        env = agent_environment()
    except ConfigError as error:
        raise ValueError(str(error)) from error
    if env.hub is None:
        return None, curve
    if curve is None and env.key is not None and env.hub_key is not None:
        from gsmon.common.keys import ClientKeys, KeyFileError

        try:
            curve = ClientKeys.load(env.key, env.hub_key)
        except KeyFileError as error:
            raise ValueError(f"{KEY_VARIABLE}: {error}") from error
    log.info("publishing to %s (from %s)", env.hub, AGENT_HUB_VARIABLE)
    return env.hub, curve


class _MonitorSource:
    """Adapts a Monitor to what its Publisher reads (``PointSource``)."""

    __slots__ = ("_monitor",)

    def __init__(self, monitor: Monitor) -> None:
        self._monitor = monitor

    def take_changes(self) -> list[proto.PointEntry]:
        return self._monitor._take_changes()

    def full_state(self) -> tuple[list[proto.PointEntry], list[str]]:
        return self._monitor._full_state()

    def unpolled_paths(self) -> list[str]:
        with self._monitor._lock:
            return self._monitor._table.unpolled_paths()

    def point_count(self) -> int:
        return len(self._monitor)


def _never_called() -> Any:  # pragma: no cover - placeholder run() for generator jobs
    raise AssertionError("generator jobs are polled by the scheduler, not run by a worker")
