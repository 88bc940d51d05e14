"""``gsmon recorder``: the process loop around :class:`~gsmon.common.recorder.core.RecorderCore`.

::

    gsmon recorder --hub tcp://gs1-hub:7763 [--state-dir DIR | --db URL] [--config recorder.toml] [PREFIX...]

One :class:`~gsmon.common.client.Subscriber` per followed prefix (default:
the whole tree), lean (``poll_updates``: the NODEs applied come as the
LeanNodes their payloads were decoded into, fed to ``RecorderCore.observe_updates``;
no NodeUpdate, NodeState nor Change per update: the read path's cost at 100,000
updates/s, bench/recorder_bench.py read), and one for the hub's contexts
(``_hub/contexts/``); each turn of the loop feeds what they report
to the core with the hub's clock as ``now``, ticks it, and hands its
rows to the writer thread. The loop detects
what it missed and says so as gaps (never hidden):

* at start, from the time the store's coverage for a prefix ends (the last
  commit of the previous run) until the first snapshot: "recorder down";
* when a Subscriber takes a new snapshot (it missed updates, the hub
  restarted, or its socket was replaced), from the last turn when it was
  known complete (minus ``resync_gap_margin_s``, the heartbeat that detects a
  loss comes after it) until the snapshot: "resync";
* while the hub is lost (no heartbeats) nothing is claimed as covered and no
  heartbeat row is written; the resync that follows records the whole outage
  (a hub heard again whose counts show nothing missed needs no resync: the
  recording resumes, with no gap and no point written again).

The store's coverage is moved only in the transaction that holds the rows
up to that time, so a SIGKILL leaves no claim the next run cannot keep.

Health: every ``HEALTH_S`` the recorder saves its own figures as rows of its
history under ``<health mount>/`` (``lag_s``, ``lag_max_s``, ``behind_s``,
``rows_per_s``, ``queued_rows``, ``gaps``, ``errors``) and answers
``gsmon history --hub Q --status`` with them (the ``status`` query of the
history service); they are also logged once a minute, and reported to the
hub (COMMAND ``report_health``, :mod:`gsmon.common.recorder.service`), which
shows them in its live tree as ``_hub/clients/recorder/...`` (with keys: the
recorder key's name): ``lag_s`` and ``behind_s`` ORANGE from 10 s behind, RED
from 60 s, and ``reporting`` RED when the reports stop.

``lag_s``/``lag_max_s`` (mean and max over the window) run from a row's
receipt by this process to the end of the commit that stored it: they do not
see updates still waiting in the SUB socket. ``behind_s`` does: the largest,
over the window, of how long before a batch was read the hub had received its
newest update (``received_at_s``), on the hub's clock. The clock offset is the
largest the heartbeats have shown (decaying by :data:`_OFFSET_DECAY` s per s),
because a heartbeat read late from a backlog makes the current offset hide
exactly that backlog (so it is a lower bound for a recorder never yet caught up).
It includes the hub's own delay before publishing.

Ready line (stdout), once every Subscriber has its first snapshot::

    READY recorder=<store url without password> prefixes=<p1,p2> contexts=<prefix> service=history|off

(built by :func:`gsmon.common.ready.ready_line`, like every process's).

Exit status: 0 on SIGTERM/SIGINT (after committing what is queued), 1 when
the store is not available at start (a hub that is not is waited for), 2
bad usage or configuration.
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from gsmon.common import logs
from gsmon.common.client import DEFAULT_QUERY_ENDPOINT, HubUnavailableError, Subscriber
from gsmon.common.config import ConfigError, add_key_flag, flag_overrides
from gsmon.common.errors import UnavailableError, UsageError
from gsmon.common.gc_tuning import GcTuner
from gsmon.common.keys import ClientKeys, KeyFileError
from gsmon.common.protocol import NODE_REMOVED, LeanNode
from gsmon.common.ready import ready_line
from gsmon.common.recorder.core import RecorderCore, Row, Why, context_id, parse_context_path, to_us
from gsmon.common.recorder.policy import RecorderConfig, read_recorder_config
from gsmon.common.stopping import StopFlag

if TYPE_CHECKING:
    from gsmon.common.recorder.store import Store

__all__ = ["HEALTH_S", "Recorder", "add_parser", "run", "store_url"]

log = logging.getLogger(__name__)

HEALTH_S: Final = 5.0
#: How fast the best hub clock offset (``behind_s``) forgets a value (s per s): clocks drift and step.
_OFFSET_DECAY: Final = 0.001
_LOG_HEALTH_S: Final = 60.0
#: How often a recorder started before its hub tries again (the Subscriber itself waits ~10 s per try).
HUB_RETRY_S: Final = 2.0


def store_url(db: str | None, state_dir: Path | None) -> str:
    """The store's URL: ``--db`` as given, else ``history.db`` in the state directory (default one if None)."""
    from gsmon.common.recorder.store import HISTORY_FILE, default_state_dir, sqlite_url

    if db:
        return db
    folder = state_dir if state_dir is not None else default_state_dir()
    return sqlite_url(folder / HISTORY_FILE)


@dataclass
class _Followed:
    """One Subscriber and what the loop knows about it."""

    prefix: str
    subscriber: Subscriber
    is_contexts: bool
    resyncs: int = 0
    complete_at: float = 0.0  # hub time of the last turn when this view was known complete
    snapshot_at: float = 0.0
    suspended: bool = False
    epoch: int | None = None


class Recorder:
    """The running recorder (see the module docstring); :meth:`run` until :meth:`stop`."""

    def __init__(
        self, config: RecorderConfig, store: Store, *, curve: ClientKeys | None = None, gc_tuner: GcTuner | None = None
    ) -> None:
        from gsmon.common.recorder.maintenance import Maintenance
        from gsmon.common.recorder.writer import Writer

        self.config = config
        self.store = store
        self.curve = curve
        # The garbage collector (gsmon.common.gc_tuning): given by `gsmon recorder` only, as the collector is
        # the whole process's; started once the first snapshots are in the core.
        self.gc_tuner = gc_tuner
        self.core = RecorderCore(config.policies)
        self.writer = Writer(store, commit_interval_s=config.commit_interval_s, max_queue_rows=config.max_queue_rows)
        self.maintenance = Maintenance(
            store, config.retention, self.writer.watermark, interval_s=config.maintenance_interval_s
        )
        self.service: Any = None
        self._stop = StopFlag()  # set by the SIGTERM handler while this thread may wait on it: no Event
        self._followed: list[_Followed] = []
        self._health_at = 0.0
        self._log_at = 0.0
        self._rows_at_health = 0
        self._health_wall = 0.0
        self._status: dict[str, Any] = {}
        self._behind_max_s = 0.0  # since the last health report
        self._offset_best: float | None = None  # the hub's clock minus ours, the least delayed seen
        self._offset_mono = 0.0

    def stop(self) -> None:
        self._stop.set()

    # -- start ---------------------------------------------------------------------------------

    def wait_for_hub(self, retry_s: float = HUB_RETRY_S) -> str | None:
        """:meth:`connect`, retried every ``retry_s`` while the hub does not answer; the ready line,
        or ``None`` when the recorder was stopped first.

        A recorder started before its hub (a boot order, a hub being upgraded) waits for it like the
        notifier does, instead of exiting: the time until the hub answers becomes a gap at connect.
        """
        warned = False
        while True:
            try:
                return self.connect()
            except HubUnavailableError as error:
                for followed in self._followed:  # the prefixes that did connect start again next time
                    followed.subscriber.close()
                self._followed = []
                if not warned:
                    log.warning("%s: waiting for the hub (trying again every %g s)", error, retry_s)
                    warned = True
            if self._stop.wait(retry_s):
                return None

    def connect(self) -> str:
        """Follow the prefixes and the contexts, record the downtime gaps; the ready line."""
        hub = self.config.hub or DEFAULT_QUERY_ENDPOINT
        with self.store.read() as conn:
            coverage = self.store.coverage(conn)
            # A gap starts after the newest row committed under the prefix: coverage is the hub's time as
            # this recorder estimated it (heartbeat offsets), which may trail a poll time by the latency.
            for prefix, (start_us, until_us) in list(coverage.items()):
                newest = self.store.newest_under(conn, prefix)
                if newest is not None and newest >= until_us:
                    coverage[prefix] = (start_us, newest + 1)
        for prefix in self.config.prefixes:
            # Lean: NODEs come as the decoded LeanNodes, with no NodeState nor Change each (the read path
            # has to keep up with 100,000 updates/s); the contexts' Subscriber below reports Changes.
            sub = Subscriber(hub, prefix, curve=self.curve, timeout_s=10.0, lean=True).connect()
            self._followed.append(_Followed(prefix, sub, False))
        contexts_from = self.config.contexts_from
        if contexts_from:
            sub = Subscriber(hub, contexts_from, curve=self.curve, timeout_s=10.0).connect()
            self._followed.append(_Followed(contexts_from, sub, True))
        now = self._followed[0].subscriber.hub_time()
        received = time.monotonic()
        for followed in self._followed:
            followed.resyncs = followed.subscriber.resyncs
            followed.epoch = followed.subscriber.epoch
            followed.complete_at = followed.snapshot_at = now
        # Contexts first, so the first rows carry them.
        for followed in self._followed:
            if followed.is_contexts:
                self._apply_contexts(followed, now)
        for followed in self._followed:
            if followed.is_contexts:
                continue
            known = coverage.get(followed.prefix)
            if known is not None and known[1] < to_us(now):
                self.core.gap(followed.prefix, known[1] / 1e6, now, "recorder down")
            self.core.observe_all(followed.subscriber.lean_nodes.items(), now, received)
        self._submit(now)
        if self.gc_tuner is not None:  # the first snapshots are in: what exists now lives as long as we do
            self.gc_tuner.start(self.core.points)
        self.writer.start()
        self.maintenance.start()
        from gsmon.common.recorder.service import HistoryService

        # The hub link: the history service (unless --no-serve-history) and the health reports.
        first = self._followed[0].subscriber
        self.service = HistoryService(
            lambda: first.choice.current,  # the hub the subscribers use now: of a pair, the one that answered
            self.store,
            curve=self.curve,
            status=self.status,
            rollup_s=self.config.retention.rollup_s,
            serve=self.config.serve_history,
        )
        self.service.start()
        prefixes = ",".join(prefix or '""' for prefix in self.config.prefixes)
        return ready_line(
            recorder=self.store.describe(),
            prefixes=prefixes,
            contexts=contexts_from or "off",
            service="history" if self.config.serve_history else "off",
        )

    # -- the loop --------------------------------------------------------------------------------

    def run(self) -> None:
        tick_s = self.config.tick_s
        try:
            while not self._stop.is_set():
                self.turn(tick_s / max(1, len(self._followed)))
        finally:
            self.close()

    def turn(self, poll_s: float) -> None:
        """One turn: read every Subscriber, feed the core, tick it, submit its rows."""
        core = self.core
        for followed in self._followed:
            sub = followed.subscriber
            updates: list[LeanNode] = []
            if followed.is_contexts:
                changes = sub.poll(poll_s)
            else:
                updates, changes = sub.poll_updates(poll_s)  # the NODEs applied, then a snapshot's changes
            if changes or updates:
                poll_s = 0.0  # work is waiting: no wait on the next (quiet) socket of this turn
            now = sub.hub_time()
            received = time.monotonic()
            if sub.resyncs != followed.resyncs:
                followed.resyncs = sub.resyncs
                if followed.is_contexts:
                    self._apply_contexts(followed, now)
                else:
                    start = max(followed.snapshot_at, followed.complete_at - self.config.resync_gap_margin_s)
                    if followed.suspended or sub.epoch != followed.epoch:
                        reason = "hub restarted" if sub.epoch != followed.epoch else "hub lost"
                    else:
                        reason = "resync"  # missed updates (this recorder was too slow, or the network)
                    core.gap(followed.prefix, start, now, reason)
                    core.observe_updates(updates, now, received)  # read before the snapshot, as they came
                    for change in changes:  # the snapshot's differences: removals are recorded too
                        core.observe(change.path, change.new, now, received)
                    core.observe_all(sub.lean_nodes.items(), now, received)
                followed.epoch = sub.epoch
                followed.snapshot_at = now
                followed.complete_at = now
                followed.suspended = False
                continue
            if followed.is_contexts:
                for change in changes:
                    self._context_change(followed.prefix, change.path, change.new, now)
            else:
                core.observe_updates(updates, now, received)
                for change in changes:  # (none: a failover loads a snapshot, whose changes take the branch above)
                    core.observe(change.path, change.new, now, received)
                if updates:
                    self._note_behind(updates, now, received)
            if not sub.hub_lost:
                if followed.suspended and not sub.wants_snapshot:
                    # Heard again and its counts agree: nothing was missed (the loss was a late heartbeat,
                    # e.g. read from a backlog). No gap, and no point is written again.
                    followed.suspended = False
                    core.resume(followed.prefix)
                    log.info("the hub is heard again with nothing missed: recording of %r resumed", followed.prefix)
                if not followed.suspended:
                    followed.complete_at = now
            elif not followed.suspended and not followed.is_contexts:
                followed.suspended = True
                core.suspend(followed.prefix)
                log.warning(
                    "the hub is lost: recording of %r paused (a gap follows if anything was missed)", followed.prefix
                )
        now = self._followed[0].subscriber.hub_time()
        core.tick(now)
        if self.gc_tuner is not None:
            self.gc_tuner.observe(core.points)  # a snapshot refill, new points: frozen too
        self._health(now)
        self._submit(now)

    def _note_behind(self, updates: list[LeanNode], hub_now: float, received: float) -> None:
        """How far behind the hub the batch just read is (``behind_s``, see the module docstring)."""
        offset = hub_now - time.time()
        best = self._offset_best
        if best is None or offset > best - _OFFSET_DECAY * (received - self._offset_mono):
            self._offset_best, self._offset_mono = offset, received
        else:
            offset = best - _OFFSET_DECAY * (received - self._offset_mono)
        for update in reversed(updates[-8:]):  # stream order: the last update is the newest the hub had
            hub_received = update.received_at_s if update.kind != NODE_REMOVED else None
            if hub_received is not None:
                behind = time.time() + offset - hub_received
                if behind > self._behind_max_s:
                    self._behind_max_s = behind
                return

    def _submit(self, now: float) -> None:
        rows, events = self.core.take()
        # Coverage: the prefixes whose views are complete, up to the oldest of their last complete turns
        # (a lost hub's prefix claims nothing; its resync records the outage as a gap).
        healthy = [f for f in self._followed if not f.is_contexts and not f.subscriber.hub_lost]
        coverage = None
        if healthy:
            coverage = (tuple(f.prefix for f in healthy), to_us(min(min(f.complete_at for f in healthy), now)))
        while not self.writer.submit(rows, events, coverage, timeout_s=1.0):
            if self._stop.is_set():
                log.warning("stopping with %d rows not queued (the store is not keeping up)", len(rows))
                return
            log.warning("the history store is not keeping up: the recorder waits (updates may be missed)")

    # -- contexts --------------------------------------------------------------------------------

    def _context_change(self, root: str, path: str, node: Any, now: float) -> None:
        relative = path[len(root) :] if path.startswith(root) else None
        if relative is None:
            return
        parsed = parse_context_path(relative)
        if parsed is None:
            return
        if node is not None and node.kind != "point":
            return
        kind, prefix = parsed
        self.core.set_context(kind, prefix, context_id(node.value) if node is not None else None, now)

    def _apply_contexts(self, followed: _Followed, now: float) -> None:
        """The contexts in the tree now (after a snapshot): start the new ones, end the ones gone."""
        seen: dict[tuple[str, str], str | None] = {}
        for path, node in followed.subscriber.tree.items():
            parsed = parse_context_path(path[len(followed.prefix) :])
            if parsed is not None and node.kind == "point":
                seen[parsed] = context_id(node.value)
        for key in self.core.contexts:
            if key not in seen:
                self.core.set_context(key[0], key[1], None, now)
        for (kind, prefix), ident in seen.items():
            self.core.set_context(kind, prefix, ident, now)

    # -- health ----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The recorder's figures (the history service's ``status`` query)."""
        return dict(self._status)

    def _health(self, now: float) -> None:
        if now - self._health_at < HEALTH_S:
            return
        stats = self.writer.stats
        lag_max, lag_mean, _ = stats.take_window()
        elapsed = now - self._health_wall if self._health_wall else HEALTH_S
        rows_per_s = (stats.rows_committed - self._rows_at_health) / max(elapsed, 1e-3)
        self._rows_at_health = stats.rows_committed
        self._health_at = self._health_wall = now
        behind, self._behind_max_s = self._behind_max_s, 0.0
        figures: dict[str, Any] = {
            "lag_s": round(lag_mean, 6),
            "lag_max_s": round(lag_max, 6),
            "behind_s": round(behind, 6),
            "rows_per_s": round(rows_per_s, 3),
            "queued_rows": stats.queued_rows,
            "rows_committed": stats.rows_committed,
            "gaps": stats.gaps,
            "errors": stats.errors,
            "points": self.core.points,
        }
        self._status = {**figures, "contexts": [[*key, value] for key, value in self.core.contexts.items()]}
        if self.config.health:
            mount = self.config.health_mount
            t_us = to_us(now)
            received = time.monotonic()
            for name in ("lag_s", "lag_max_s", "behind_s", "rows_per_s", "queued_rows", "gaps", "errors"):
                self.core.record(
                    Row(f"{mount}/{name}", t_us, 0, None, False, figures[name], None, None, Why.HEARTBEAT, received)
                )
        if now - self._log_at >= _LOG_HEALTH_S:
            self._log_at = now
            log.info(
                "recorder: %d points, %.0f rows/s, lag %.3f s (max %.3f s), behind the hub %.3f s, %d queued, "
                "%d gaps, %d errors",
                self.core.points,
                rows_per_s,
                lag_mean,
                lag_max,
                behind,
                stats.queued_rows,
                stats.gaps,
                stats.errors,
            )

    # -- stop ------------------------------------------------------------------------------------

    def close(self) -> None:
        if self.service is not None:
            self.service.stop()
        if self._followed:
            self._submit(self._followed[0].subscriber.hub_time())
        self.maintenance.stop()
        self.writer.stop()
        for followed in self._followed:
            followed.subscriber.close()
        self._followed = []


# -- the command line ---------------------------------------------------------------------------


def add_parser(subparsers: Any, name: str, summary: str) -> None:
    """Register ``gsmon recorder`` on the ``gsmon`` command's subparsers."""
    parser = subparsers.add_parser(name, help=summary, description=summary + ".")
    parser.add_argument("prefixes", nargs="*", metavar="PREFIX", help="prefixes to record (default: the whole tree)")
    parser.add_argument("--config", metavar="FILE", help="the recorder's TOML file ([recorder], [[policy]], ...)")
    add_key_flag(parser, "--hub", key="recorder.hub", metavar="QUERY_ENDPOINT", help="the hub's query endpoint")
    add_key_flag(parser, "--state-dir", key="recorder.state_dir", metavar="DIR", help="folder of history.db")
    add_key_flag(
        parser, "--db", key="recorder.db", metavar="URL", help="a database URL instead (postgresql+psycopg://...)"
    )
    add_key_flag(
        parser,
        "--commit-interval-s",
        key="recorder.commit_interval_s",
        type=float,
        metavar="SECONDS",
        help="how often rows are committed (default 0.5)",
    )
    add_key_flag(
        parser,
        "--maintenance-interval-s",
        key="recorder.maintenance_interval_s",
        type=float,
        metavar="SECONDS",
        help="how often roll-ups and pruning run (default 10)",
    )
    parser.add_argument(
        "--no-serve-history",
        action="store_true",
        help="do not register as the hub's history service (gsmon history --hub then has no answer)",
    )
    parser.add_argument("--key", metavar="FILE", help="this recorder's secret key file (CURVE, with --hub-key)")
    parser.add_argument("--hub-key", metavar="FILE", help="the hub's public key file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """``gsmon recorder``; the errors that end it are GsmonErrors, printed by :func:`gsmon.common.cli.main`
    (one line; 2 usage or configuration, 1 the store or the hub not available)."""
    overrides = flag_overrides(args)
    if args.prefixes:
        overrides["recorder.prefixes"] = (list(args.prefixes), "PREFIX")
    overrides["recorder.serve_history"] = (not args.no_serve_history, "--no-serve-history")
    if (args.key is None) != (args.hub_key is None):
        raise UsageError("--key and --hub-key go together (your secret key and the hub's public key)")
    try:
        config = read_recorder_config(args.config, overrides)
        curve = ClientKeys.load(args.key, args.hub_key) if args.key is not None else None
    except (ConfigError, KeyFileError, ValueError) as error:
        raise UsageError(str(error)) from error
    if config.db and config.state_dir is not None:
        raise UsageError("give --db or --state-dir, not both")
    logs.configure(config.log_level, config.log_format)
    from gsmon.common.recorder.store import Store, StoreError

    try:
        store = Store.open(store_url(config.db, config.state_dir))
    except StoreError as error:
        raise UnavailableError(str(error)) from error
    recorder = Recorder(config, store, curve=curve, gc_tuner=GcTuner(config.gc_tuning))

    def on_signal(signum: int, frame: object) -> None:
        recorder.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ready = recorder.wait_for_hub()
    if ready is None:  # stopped while waiting for the hub
        recorder.close()
        store.close()
        return 0
    print(ready, flush=True)
    try:
        recorder.run()
    finally:
        store.close()
    return 0
