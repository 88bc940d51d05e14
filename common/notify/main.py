"""``gsmon notify``: the process around :class:`~gsmon.common.notify.core.NotifyCore`.

::

    gsmon notify --hub tcp://gs1-hub:7763 [--config notify.toml] [--state-dir DIR]
                 [--route PREFIX:LEVEL:URL ...] [--group-wait-s S] [--group-interval-s S] [--repeat-s S]
    gsmon notify --test RECEIVER [--config ...]     # send one test message, exit 0 if it was delivered
    gsmon notify --log [--since 1d] [--json]         # what was sent (from the state file)
    gsmon notify --status                            # each receiver's saved health (JSON)

One loop turn: ask the hub's journal for entries after the cursor (COMMAND
``journal``; a full page is followed at once by the next), feed them to the
core, commit cursor + core state in one transaction; run the core's timers;
deliver what is due (apprise or a command), recording each finished message
in the sent-log with the state that no longer holds it; log the health of
every receiver once a minute and whenever it changes; sleep until the core's
next timer or ``poll_s``. The hub's NODE stream is not needed: the journal is
the source of truth, read every ``poll_s`` (1 s); a live subscription to the
hub's NODEs (``Subscriber``, nodes at ORANGE and above) only ends a sleep early,
so a change is read at once. Without it (the hub refused, or it failed) the
notifier polls, and loses nothing.

Ready line on stdout, once the state file is open and the first journal page
was asked for: ``READY notify=<state file> hub=<endpoint> cursor=<id>``. Health lines on
stdout: ``HEALTH <json>`` ({receiver: {sent, failures, consecutive_failures,
dropped, suppressed, queued, last_error}}), also logged, and every
:data:`HEALTH_REPORT_S` sent to the hub (COMMAND ``report_health``), which
shows it in its live tree as ``_hub/clients/notify/`` (with keys: the key's
name): ``hub_up``, ``open_problems``, and per receiver
``receivers/<name>/consecutive_failures`` (ORANGE from one failed attempt in
a row, RED from five: an alarm, so that a notifier that cannot reach people
is itself noticed), ``failures``, ``dropped``, ``queued``, ``sent``. A clean
stop removes them; a notifier that dies leaves ``reporting`` RED.

A hub pair (1.3, ``--hub A,B``): the journal client asks the hub it uses;
when that one misses a request's deadline it goes to the other at once
(:class:`~gsmon.common.failover.HubChoice`). Journal ids are each hub's own,
so the cursor is kept per hub: on a hub it has not read yet the notifier
starts from the entries whose source time is at or after the newest entry
it took from the other (less a few seconds), skips those it took
already (same kind, path, source time and level), and holds new problems for
the start-up grace, as when a hub comes back: the rule is the pure
:class:`~gsmon.common.notify.cursors.JournalCursors`.

Exit status (gsmon.common.errors): 0 after SIGTERM/SIGINT, 1 when ``--test``
failed, 2 for bad configuration or usage (one line on stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import logging
import secrets
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import zmq

from gsmon.common import logs, transport
from gsmon.common import protocol as proto
from gsmon.common.alerts import GreenAlert, NoAlert, OrangeAlert
from gsmon.common.client import HubUnavailableError, Subscriber
from gsmon.common.clone import ClientEnvelope
from gsmon.common.commands import wait_reply
from gsmon.common.config import add_key_flag, flag_overrides
from gsmon.common.errors import EXIT_OK, UnavailableError, UsageError
from gsmon.common.failover import HubChoice
from gsmon.common.health_report import final_args, report_args, rising_level
from gsmon.common.keys import ClientKeys
from gsmon.common.notify.config import NotifyConfig, read_notify_config
from gsmon.common.notify.core import Entry, EntryError, NotifyCore, iso_utc
from gsmon.common.notify.cursors import JournalCursors
from gsmon.common.notify.pair import message_keys, sent_by_peer
from gsmon.common.notify.store import STATE_FILE, NotifyStore
from gsmon.common.ready import ready_line

__all__ = ["JournalClient", "JournalError", "add_parser", "run"]

log = logging.getLogger(__name__)
ORANGE_ALERTCODE: Final = OrangeAlert.alertcode
PAGE_LIMIT: Final = 500
PAIR_CHECK_LIMIT: Final = 1000  # keys in one pair_status / pair_mark (the hub's limit)
REQUEST_TIMEOUT_S: Final = 3.0
HEALTH_EVERY_S: Final = 60.0
#: How often the notifier's health goes to the hub's tree (report_health); each report lasts 3x as long.
HEALTH_REPORT_S: Final = 5.0
#: The name the health is shown under, ``_hub/clients/notify/...``, without keys (with keys: the key's name).
CLIENT_NAME: Final = "notify"
#: Consecutive failed attempts to one receiver that make its point ORANGE, and RED.
FAILURES_ORANGE: Final = 1
FAILURES_RED: Final = 5


class JournalError(ConnectionError):
    """The hub did not answer the journal command, or refused it (the message says which)."""


class JournalClient:
    """A DEALER to the hub's query socket that asks COMMAND ``journal`` pages."""

    def __init__(self, hub: str, curve: ClientKeys | None, user: str | None) -> None:
        self.choice = HubChoice(hub)  # one endpoint, or a pair "A,B" (1.3)
        self._curve = curve
        self._user = user
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._envelope = ClientEnvelope(f"notify-{secrets.token_hex(4)}")
        self._dealer: zmq.Socket[bytes] | None = None

    @property
    def hub(self) -> str:
        """The hub asked now (of a pair: the one that answered last)."""
        return self.choice.current

    def _socket(self) -> zmq.Socket[bytes]:
        if self._dealer is None:
            dealer = transport.make_socket(self._context, zmq.DEALER, transport.SocketOptions())
            if self._curve is not None:
                self._curve.apply(dealer)
            dealer.connect(self.hub)
            self._dealer = dealer
            self._envelope.new_connection()
        return self._dealer

    def report_health(self, args: dict[str, Any]) -> None:
        """Send COMMAND ``report_health`` without waiting: its answer is skipped by :meth:`page`, and a
        lost report only lets the hub's ``reporting`` point turn RED, which is what it is for."""
        with contextlib.suppress(zmq.Again):  # not connected: the next report follows
            dealer = self._socket()  # first: a new connection starts the header seq again
            dealer.send(proto.encode(self._envelope.command("report_health", args, self._user)), zmq.DONTWAIT)

    def _reset(self) -> None:
        # A request queued for a hub that is down would be answered late, in a burst: start afresh.
        if self._dealer is not None:
            self._dealer.close(linger=0)
            self._dealer = None

    def fail_over(self) -> str | None:
        """The hub asked missed its deadline: move to the next of the pair (None: there is none)."""
        now = time.monotonic()
        self.choice.query_failed(now)
        candidate = self.choice.due(now)
        if candidate is None:
            return None
        self._reset()
        self.choice.connected(candidate, now)  # judged by the next request's answer in its turn
        return candidate

    def page(
        self,
        after_id: int,
        prefix: str,
        limit: int,
        timeout_s: float = REQUEST_TIMEOUT_S,
        since: float | None = None,
    ) -> tuple[list[Any], int]:
        """(raw entries, last_id) after ``after_id``; :class:`JournalError` when no usable answer came."""
        args: dict[str, Any] = {"after_id": after_id, "prefix": prefix, "limit": limit}
        if since is not None:
            args["since"] = since
        reply = self.ask("journal", args, timeout_s, what="the journal request")
        if not reply.ok:
            raise JournalError(f"the hub at {self.hub} refused the journal command: {reply.message}")
        result = reply.result
        if not isinstance(result, dict) or not isinstance(result.get("entries"), list):
            raise JournalError(f"the hub at {self.hub} answered the journal command without an entries list")
        last_id = result.get("last_id")
        if not isinstance(last_id, int) or isinstance(last_id, bool):
            last_id = after_id
        return result["entries"], last_id

    def ask(
        self, command: str, args: dict[str, Any], timeout_s: float = REQUEST_TIMEOUT_S, *, what: str | None = None
    ) -> proto.CommandResult:
        """One COMMAND and its COMMAND_RESULT (ok or not); :class:`JournalError` when no answer came or the
        hub refused the request itself (``what`` names it in that line; default: the command)."""
        dealer = self._socket()
        message = self._envelope.command(command, args, self._user)
        try:
            dealer.send(proto.encode(message), zmq.DONTWAIT)
        except zmq.Again:
            self._reset()
            raise JournalError(f"the hub at {self.hub} is not reachable") from None
        reply = wait_reply(dealer, message.request_id, timeout_s)
        if isinstance(reply, proto.Error):
            raise JournalError(f"the hub at {self.hub} refused {what or command}: {reply.message}")
        if reply is None:
            self._reset()
            raise JournalError(f"no answer from the hub at {self.hub} within {timeout_s:g} s")
        return reply

    def close(self) -> None:
        if self._dealer is not None:
            self._dealer.close(linger=500)  # the final health report may still be on its way
            self._dealer = None
        self._context.term()


class Notifier:
    """The loop: journal -> core -> deliveries, with the store in between."""

    def __init__(
        self,
        config: NotifyConfig,
        store: NotifyStore,
        journal: JournalClient,
        deliver: Callable[[Any, Any], tuple[bool, str | None]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.journal = journal
        self.deliver = deliver
        self.clock = clock
        self.cursor, state = store.load()
        self.core = NotifyCore(config.settings, state, clock())
        self.hub_up: bool | None = None
        self.bad_entries = 0
        self._last_health: str | None = None
        self._health_at = 0.0
        self._reported_at = -HEALTH_REPORT_S  # the hub's copy (report_health): the first turn sends it
        self.stopping = False
        self._saved: str | None = None
        self.wake: Subscriber | None = None  # NODE changes end a sleep early; never a source of truth
        # A hub pair (1.3): each hub's own cursor; the stored one is the hub's read at start.
        self.cursors = JournalCursors(journal.hub, self.cursor)
        # Whether the hub is one of a pair (None: not asked yet; False: a single hub, send everything).
        self.paired: bool | None = None
        self.held = 0  # messages due but held: the peer hub's notifier sends (pair standby)
        self.sent_by_peer = 0

    def read_journal(self) -> None:
        """Take in every page the hub has after the cursor."""
        moved = False
        while not self.stopping:
            now = self.clock()
            try:
                raw, last_id = self.journal.page(self.cursor, self.config.prefix, PAGE_LIMIT, since=self.cursors.since)
            except JournalError as error:
                # At most one move per turn: with both hubs gone, the turn ends (deliveries, health go on).
                moved_to = None if moved else self.journal.fail_over()
                if moved_to is not None:
                    moved = True
                    log.warning("%s; asking the other hub of the pair, %s", error, moved_to)
                    self.cursors.switch(moved_to)
                    self.cursor = self.cursors.cursor
                    self.core.hub_started(now)  # as when a hub comes back: new problems held while it is read
                    continue
                if self.hub_up is not False:
                    log.warning(
                        "%s; retrying every %g s (no notification is lost: the cursor is kept)",
                        error,
                        self.config.poll_s,
                    )
                self.hub_up = False
                return
            if self.hub_up is False:
                log.info(
                    "the hub at %s answers again; start-up grace of %g s",
                    self.journal.hub,
                    self.config.settings.startup_grace_s,
                )
                self.core.hub_started(now)
            self.hub_up = True
            decoded = []
            for item in raw:
                try:
                    entry = Entry.from_wire(item)
                except EntryError as error:
                    self.bad_entries += 1
                    log.warning("dropped a journal entry from the hub (%d so far): %s", self.bad_entries, error)
                    continue
                decoded.append(entry)
            entries = self.cursors.take(decoded)  # after the cursor, and not taken from the other hub already
            newest = max([self.cursor, *(e.id for e in entries)])
            if last_id < self.cursor:
                log.warning(
                    "the hub's journal ends at id %d, before this notifier's cursor %d: a new hub state"
                    " store? Following it from there",
                    last_id,
                    self.cursor,
                )
                newest = last_id
            else:
                newest = max(newest, last_id)
            self.core.take_entries(entries, now)
            self.cursor = newest
            self.cursors.advance(newest)
            self._save()
            if len(raw) < PAGE_LIMIT:
                return

    def turn(self) -> float:
        """One loop turn; returns how long to sleep."""
        self.read_journal()
        now = self.clock()
        self.core.tick(now)
        due = self.core.due(now)
        gate = self._pair_gate(due) if due else None
        held = 0
        for message in due:
            keys = message_keys(message)
            if gate is not None:
                sender, marked = gate
                if sent_by_peer(keys, marked.get(message.id, [])):
                    done = self.core.delivered(message.id, True, None, self.clock())
                    if done is not None:
                        self.sent_by_peer += 1
                        self.store.record(done, "sent_by_peer", self.clock(), self.core.state())
                        log.info("message %d to %s was sent by the peer hub's notifier", done.id, done.receiver)
                    continue
                if not sender:
                    held += 1
                    continue
            receiver = self.config.settings.receivers.get(message.receiver)
            error: str | None
            if receiver is None:
                ok, error = False, f"receiver {message.receiver!r} is no longer configured"
            else:
                ok, error = self.deliver(receiver, message)
            finished = self.core.delivered(message.id, ok, error, self.clock())
            if ok and gate is not None:
                self._mark(keys)
            if finished is not None:
                status = "sent" if ok else "failed"
                self.store.record(finished, status, self.clock(), self.core.state())
                if ok:
                    log.info("sent message %d to %s: %s", finished.id, finished.receiver, finished.title)
                else:
                    log.error(
                        "gave up message %d to %s after %d attempts: %s",
                        finished.id,
                        finished.receiver,
                        finished.attempts,
                        error,
                    )
            else:
                log.warning(
                    "delivery to %s failed (attempt %d, will retry): %s", message.receiver, message.attempts, error
                )
        self._save()
        self.report_health(now)
        if held and not self.held:
            log.info("holding %d message(s): the peer hub's notifier sends while both hubs are up", held)
        self.held = held
        if held:  # due but held: look again after a poll, not at once
            return max(0.0, now + self.config.poll_s - self.clock())
        return max(0.0, min(self.core.next_wakeup(now), now + self.config.poll_s) - self.clock())

    def _pair_gate(self, due: list[Any]) -> tuple[bool, dict[int, list[bool]]] | None:
        """(this notifier sends, {message id: marked per key}) from the hub, or None for a single hub.

        A pair's hub that does not answer: hold everything (``(False, {})``); its peer's notifier sends.
        """
        if self.paired is False:
            return None
        keys = {message.id: message_keys(message) for message in due}
        flat = [key for listed in keys.values() for key in listed][:PAIR_CHECK_LIMIT]
        try:
            reply = self.journal.ask("pair_status", {"check": flat})
        except JournalError:
            return (False, {}) if self.paired else None
        if not reply.ok:
            reason = reply.result.get("reason") if isinstance(reply.result, dict) else None
            if reason == "unknown-command":
                self.paired = False  # a single hub (or one before 1.3): send everything, as before
                return None
            return False, {}
        self.paired = True
        result = reply.result if isinstance(reply.result, dict) else {}
        answers = [bool(item) for item in result.get("delivered") or []]
        marked: dict[int, list[bool]] = {}
        start = 0
        for message_id, listed in keys.items():
            marked[message_id] = answers[start : start + len(listed)]
            start += len(listed)
        return bool(result.get("sender")), marked

    def _mark(self, keys: list[list[Any]]) -> None:
        """Tell the hub (and through it the peer) that these were delivered; a lost mark means one repeat."""
        try:
            reply = self.journal.ask("pair_mark", {"keys": keys[:PAIR_CHECK_LIMIT]})
        except JournalError as error:
            log.warning("could not mark a delivery at the hub (the peer hub may send it again): %s", error)
            return
        if not reply.ok:
            log.warning("the hub refused the delivery mark (the peer hub may send it again): %s", reply.message)

    def _save(self) -> None:
        """Commit cursor + core state when either changed (an idle notifier does not write every second)."""
        state = self.core.state()
        text = json.dumps([self.cursor, state], sort_keys=True)
        if text != self._saved:
            self.store.save(self.cursor, state)
            self._saved = text

    def sleep_until(self, deadline: float) -> None:
        """Sleep until ``deadline`` (monotonic), in short steps so that SIGTERM is seen quickly; a NODE
        change from the hub (the wake-up subscription, when there is one) ends the sleep at once."""
        while not self.stopping and (left := deadline - time.monotonic()) > 0:
            if self.wake is None:
                time.sleep(min(left, 0.1))
                continue
            try:
                if self.wake.poll(min(left, 0.1)):
                    return  # the hub published a change: its journal entry is committed already
            except Exception as error:  # an optimisation must never stop the loop
                log.info(
                    "the wake-up subscription failed (%s); polling the journal every %g s", error, self.config.poll_s
                )
                self.close_wake()

    def close_wake(self) -> None:
        if self.wake is not None:
            self.wake.close()
            self.wake = None

    def health(self) -> dict[str, Any]:
        return {
            "hub_up": self.hub_up,
            "hub": self.journal.hub,  # the hub read now (of a pair, 1.3)
            "cursor": self.cursor,
            "bad_entries": self.bad_entries,
            **self.health_of(self.core),
        }

    @staticmethod
    def health_of(core: NotifyCore) -> dict[str, Any]:
        """Open problems and, per receiver, sent/failures/dropped/suppressed/queued and the last error."""
        receivers = {}
        for name, health in core.health().items():
            receivers[name] = {
                "sent": health.sent,
                "failures": health.failures,
                "consecutive_failures": health.consecutive_failures,
                "dropped": health.dropped,
                "suppressed": health.suppressed,
                "queued": core.queued(name),
                "last_error": health.last_error,
                "last_sent_at": iso_utc(health.last_sent_at) if health.last_sent_at else None,
            }
        return {"open_problems": core.open_problems(), "receivers": receivers}

    def report_health(self, now: float) -> None:
        health = self.health()
        text = json.dumps(health, sort_keys=True)
        if text != self._last_health or now - self._health_at >= HEALTH_EVERY_S:
            self._last_health, self._health_at = text, now
            print(f"HEALTH {text}", flush=True)
            log.debug("health %s", text)
        if now - self._reported_at >= HEALTH_REPORT_S or now < self._reported_at:
            self._reported_at = now
            self.journal.report_health(self.health_report(health))

    @staticmethod
    def health_report(health: dict[str, Any]) -> dict[str, Any]:
        """``report_health`` args: ``hub_up``, ``open_problems``, and per receiver
        ``receivers/<name>/{failures, consecutive_failures, dropped, queued, sent}``; a receiver that
        keeps failing is ORANGE from one failed attempt in a row and RED from five (an alarm: the
        people it should reach are not being told)."""
        points: dict[str, list[Any]] = {
            "hub_up": [bool(health["hub_up"]), GreenAlert.alertcode if health["hub_up"] else NoAlert.alertcode],
            "open_problems": [int(health["open_problems"]), NoAlert.alertcode],
        }
        for name, receiver in sorted(health["receivers"].items()):
            if len(points) + 5 > 64:  # report_health takes 64 points: the first receivers, by name
                break
            base = f"receivers/{name}"
            streak = receiver["consecutive_failures"]
            level = rising_level(streak, FAILURES_ORANGE, FAILURES_RED)
            points[f"{base}/consecutive_failures"] = [streak, level]
            for figure in ("failures", "dropped", "queued", "sent"):
                points[f"{base}/{figure}"] = [receiver[figure], NoAlert.alertcode]
        return report_args(CLIENT_NAME, points, HEALTH_REPORT_S)


# -- command line ---------------------------------------------------------------------------------


def add_parser(subparsers: Any, name: str, summary: str) -> None:
    """Register ``gsmon notify`` on the ``gsmon`` command's subparsers."""
    parser = subparsers.add_parser(name, help=summary, description=summary + ".")
    parser.add_argument("--config", metavar="FILE", help="notify.toml (receivers, routes, guidance, timings)")
    add_key_flag(parser, "--hub", key="notify.hub", metavar="QUERY_ENDPOINT", help="the hub's query endpoint")
    add_key_flag(parser, "--state-dir", key="notify.state_dir", metavar="DIR", help="where notify.db is kept")
    add_key_flag(parser, "--prefix", key="notify.prefix", metavar="PREFIX", help="follow only this subtree")
    for flag, key in (
        ("--group-wait-s", "group_wait_s"),
        ("--group-interval-s", "group_interval_s"),
        ("--repeat-s", "repeat_s"),
        ("--startup-grace-s", "startup_grace_s"),
        ("--poll-s", "poll_s"),
        ("--retry-initial-s", "retry_initial_s"),
    ):
        add_key_flag(parser, flag, key=f"notify.{key}", type=float, metavar="S", help=f"TOML key notify.{key}")
    add_key_flag(
        parser,
        "--max-per-minute",
        key="notify.max_per_minute",
        type=int,
        metavar="N",
        help="messages per minute per receiver; the rest becomes one summary",
    )
    parser.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="PREFIX:LEVEL:URL",
        help="a quick route to one apprise URL (repeatable), e.g. GS1/:RED:json://host/hook",
    )
    parser.add_argument("--test", metavar="RECEIVER", help="send one test message to RECEIVER and exit")
    parser.add_argument("--log", action="store_true", help="print what was sent (the sent-log) and exit")
    parser.add_argument(
        "--status", action="store_true", help="print the saved health of every receiver (JSON) and exit"
    )
    parser.add_argument("--since", metavar="DURATION", default="1d", help="with --log: how far back (e.g. 1h, 2d)")
    parser.add_argument("--json", action="store_true", help="with --log: JSON lines")
    parser.add_argument("--key", metavar="FILE", help="this notifier's secret key file (CURVE; with --hub-key)")
    parser.add_argument("--hub-key", metavar="FILE", help="the hub's public key file")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    parser.set_defaults(handler=run)


_UNITS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _duration_s(text: str) -> float:
    number, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "s")
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"--since: expected a duration such as 30m, 6h or 2d, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"--since: expected a positive duration, got {text!r}")
    return value


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def run(args: argparse.Namespace) -> int:
    """``gsmon notify``; errors are :class:`~gsmon.common.errors.GsmonError` (one line, shown by the CLI)."""
    from gsmon.common.notify.deliver import deliver, url_problem

    try:
        logs.configure(args.log_level)
        since_s = _duration_s(args.since)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if (args.key is None) != (args.hub_key is None):
        raise UsageError("--key and --hub-key go together (your secret key and the hub's public key)")
    config = read_notify_config(args.config, flag_overrides(args), args.route, check_url=url_problem)
    curve = ClientKeys.load(args.key, args.hub_key) if args.key is not None else None
    store = NotifyStore(Path(config.state_dir) / STATE_FILE)
    try:
        if args.log:
            for row in store.sent(since=time.time() - since_s):
                if args.json:
                    print(json.dumps(row.to_json(), ensure_ascii=False))
                else:
                    print(f"{iso_utc(row.at)}  {row.status:6}  {row.receiver:12}  {row.title}")
            return EXIT_OK
        if args.status:
            cursor, state = store.load()
            saved = Notifier.health_of(NotifyCore(config.settings, state, time.time()))
            print(json.dumps({"cursor": cursor, **saved}, indent=2, sort_keys=True))
            return EXIT_OK
        if args.test is not None:
            return _test(config, store, args.test, deliver)
        return _serve(config, store, curve, deliver)
    finally:
        store.close()


def _test(config: NotifyConfig, store: NotifyStore, name: str, deliver: Any) -> int:
    receiver = config.settings.receivers.get(name)
    if receiver is None:
        known = ", ".join(config.settings.receivers) or "none configured"
        raise UsageError(f"no receiver {name!r} (known: {known}); receivers are [[receiver]] tables or --route flags")
    now = time.time()
    message = NotifyCore(config.settings, None, now).test_message(name, now)
    ok, error = deliver(receiver, message)
    message.attempts, message.last_error = 1, error
    store.record(message, "test" if ok else "failed", time.time(), None)
    if not ok:
        raise UnavailableError(f"the test message to {name!r} failed: {error}")
    print(f"sent a test message to {name!r}")
    return EXIT_OK


def _serve(config: NotifyConfig, store: NotifyStore, curve: ClientKeys | None, deliver: Any) -> int:
    journal = JournalClient(config.hub, curve, _user())
    notifier = Notifier(config, store, journal, deliver)

    def stop(signum: int, frame: object) -> None:
        notifier.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not config.settings.routes:
        log.warning("no routes configured: nothing will be notified (add [[route]] tables or --route)")
    try:
        # The hub journals a change before it publishes the NODE, so a NODE is a cue to read the journal
        # now instead of at the next poll_s. Only problems matter: nodes at ORANGE and above (and their
        # return below it, which the subscriber reports as a removal).
        wake = Subscriber(config.hub, config.prefix, min_alert=ORANGE_ALERTCODE, timeout_s=3.0, curve=curve)
        notifier.wake = wake
        wake.connect()
    except (HubUnavailableError, OSError, zmq.ZMQError) as error:
        notifier.close_wake()
        log.info("no wake-up subscription (%s): polling the journal every %g s", error, config.poll_s)
    try:
        notifier.read_journal()
        print(ready_line(notify=str(store.path), hub=config.hub, cursor=str(notifier.cursor)), flush=True)
        while not notifier.stopping:
            sleep_s = notifier.turn()
            deadline = time.monotonic() + sleep_s
            notifier.sleep_until(deadline)
    finally:
        store.save(notifier.cursor, notifier.core.state())
        notifier.close_wake()
        journal.report_health(final_args(CLIENT_NAME))  # a clean stop: the figures go
        journal.close()
    return EXIT_OK
