"""The recorder's link to the hub's query socket: the history service, and the recorder's health.

::

    gsmon history --hub Q --COMMAND "history" {query, ...}--> hub query ROUTER --forwards--> recorder DEALER
                  <-----------COMMAND_RESULT (relayed)------            <---COMMAND_RESULT (same request_id)--

Remote operators never hold database credentials and need no second
endpoint: the hub is the one place for keys and roles (see the protocol
docstring, command ``history``, and ``register_service``). The recorder
connects a DEALER to the hub's query socket (with its CURVE keys when the hub
uses them), sends COMMAND ``register_service`` ``{"service": "history"}``,
and from then on receives COMMAND ``history`` messages on that socket. It
answers each with a COMMAND_RESULT carrying the forwarded ``request_id``;
the result is :func:`~gsmon.common.recorder.query.answer` of the store
(``args["query"]``: ``"history"``, the default, or ``"contexts"``, or
``"status"``: the recorder's own figures).

Registration is repeated when the hub's epoch changes (it restarted and
forgot) and every :data:`REREGISTER_S` seconds (a registration lost any
other way comes back by itself); the hub keeps one registration per service
and replaces it, so repeating is harmless.

Health: every :data:`HEALTH_REPORT_S` the link sends COMMAND
``report_health`` with the recorder's figures (``lag_s``, ``lag_max_s``, ``behind_s``,
``rows_per_s``, ``queued_rows``, ``gaps``, ``errors``), so that they are in
the hub's live tree as ``_hub/clients/<name>/...`` (``name``: the key's name
with keys, else :data:`CLIENT_NAME`) and a recorder that falls behind, or
stops, raises an alarm like anything else; a clean stop sends ``final``. It
reports even when it does not serve history (``--no-serve-history``).

Envelopes follow the spec for a client: a random non-zero epoch per run,
seq 1, 2, 3... per message, request ids from their own counter.

It runs in a thread of its own, so that a slow query never holds up
recording.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import zmq

from gsmon.common import protocol as proto
from gsmon.common import transport
from gsmon.common.alerts import NoAlert
from gsmon.common.clone import ClientEnvelope
from gsmon.common.health_report import final_args, report_args, rising_level
from gsmon.common.keys import ClientKeys
from gsmon.common.recorder.query import AnswerError, answer
from gsmon.common.recorder.store import Store

__all__ = ["CLIENT_NAME", "HEALTH_REPORT_S", "REREGISTER_S", "SERVICE_NAME", "HistoryService", "answer_forwarded"]

log = logging.getLogger(__name__)

SERVICE_NAME: Final = "history"
REREGISTER_S: Final = 30.0
#: How often the recorder's health goes to the hub; each report lasts three times as long.
HEALTH_REPORT_S: Final = 5.0
#: The name the health is shown under without keys (with keys: the key's name).
CLIENT_NAME: Final = "recorder"
#: Lag levels: a recorder this far behind the hub's tree is degraded (ORANGE), broken (RED).
LAG_ORANGE_S: Final = 10.0
LAG_RED_S: Final = 60.0


def answer_forwarded(
    store: Store, command: str, args: Any, *, status: Callable[[], dict[str, Any]] | None = None, rollup_s: int = 60
) -> tuple[bool, str, Any]:
    """``(ok, message, result)`` for one forwarded COMMAND (pure apart from reading the store)."""
    if command != SERVICE_NAME:
        return (
            False,
            f"the history service answers only {SERVICE_NAME!r}, not {command!r}",
            {"reason": "unknown-command"},
        )
    if not isinstance(args, dict):
        return False, "history: args must be a map", {"reason": "bad-args"}
    query = args.get("query", "history")
    if query == "status":
        return True, "recorder status", status() if status is not None else {}
    try:
        result = answer(store, str(query), args, rollup_s=rollup_s)
    except AnswerError as error:
        return False, str(error), {"reason": error.reason}
    except Exception as error:  # a database failure must not end the service: one line back, logged here
        log.warning("history query failed: %s: %s", type(error).__name__, error)
        return False, f"the history store failed: {type(error).__name__}: {error}", {"reason": "store-error"}
    return True, "ok", result


class HistoryService:
    """The service thread (see the module docstring)."""

    def __init__(
        self,
        hub: str | Callable[[], str],
        store: Store,
        *,
        curve: ClientKeys | None = None,
        status: Callable[[], dict[str, Any]] | None = None,
        rollup_s: int = 60,
        serve: bool = True,
    ) -> None:
        # A callable: the hub the recorder's subscribers use now (of a pair, 1.3): the service follows it.
        self._hub = hub
        self.hub = hub if isinstance(hub, str) else hub()
        self.store = store
        self.curve = curve
        self.status = status
        self.rollup_s = rollup_s
        self.serve = serve
        self.answered = 0
        self.registered = False
        self.last_refusal = ""
        self.health_reports = 0  # accepted by the hub
        self.hub_epoch: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # This run's envelope: one DEALER (one connection) for the thread's life.
        self._envelope = ClientEnvelope(f"recorder-{secrets.token_hex(4)}")
        self._register_id = 0
        self._health_id = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gsmon-recorder-service", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)
            self._thread = None

    def health_args(self, final: bool = False) -> dict[str, Any] | None:
        """The ``report_health`` args of the recorder's figures now (``None``: nothing to report yet)."""
        if final:
            return final_args(CLIENT_NAME)
        figures = self.status() if self.status is not None else {}
        if "lag_s" not in figures:
            return None
        lag_max = float(figures.get("lag_max_s", 0.0))
        lag_level = rising_level(lag_max, LAG_ORANGE_S, LAG_RED_S)
        points: dict[str, list[Any]] = {
            "lag_s": [float(figures["lag_s"]), lag_level],
            "lag_max_s": [lag_max, lag_level],
        }
        if "behind_s" in figures:  # what waits in its socket, which lag_s cannot see: the same thresholds
            behind = float(figures["behind_s"])
            points["behind_s"] = [behind, rising_level(behind, LAG_ORANGE_S, LAG_RED_S)]
        for name in ("rows_per_s", "queued_rows", "gaps", "errors"):
            if name in figures:
                points[name] = [figures[name], NoAlert.alertcode]
        return report_args(CLIENT_NAME, points, HEALTH_REPORT_S)

    def _report_health(self, dealer: zmq.Socket[bytes], final: bool = False) -> None:
        args = self.health_args(final)
        if args is None:
            return
        message = self._envelope.command("report_health", args)
        self._health_id = message.request_id
        with contextlib.suppress(zmq.Again):  # not connected: the next report follows
            dealer.send(proto.encode(message), zmq.DONTWAIT)

    def _register(self, dealer: zmq.Socket[bytes]) -> None:
        message = self._envelope.command("register_service", {"service": SERVICE_NAME})
        self._register_id = message.request_id
        with contextlib.suppress(zmq.Again):  # not connected yet: the next attempt follows
            dealer.send(proto.encode(message), zmq.DONTWAIT)

    def _dealer(self, context: zmq.Context[zmq.Socket[bytes]]) -> zmq.Socket[bytes]:
        """A DEALER connected to the hub used now (a new connection: its header seq starts at 1)."""
        dealer = transport.make_socket(context, zmq.DEALER, transport.SocketOptions())
        if self.curve is not None:
            self.curve.apply(dealer)
        dealer.connect(self.hub)
        self._envelope.new_connection()
        return dealer

    def _run(self) -> None:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            dealer = self._dealer(context)
            next_register = 0.0 if self.serve else float("inf")
            next_health = time.monotonic() + 1.0  # the recorder's first figures come within a turn or two
            while not self._stop.is_set():
                now = time.monotonic()
                target = self._hub if isinstance(self._hub, str) else self._hub()
                if target != self.hub:
                    # The subscribers moved to the other hub of the pair: serve and report there (1.3).
                    log.info("the recorder follows the hub at %s now; registering there", target)
                    dealer.close(linger=0)
                    self.hub = target
                    dealer = self._dealer(context)
                    self.registered = False
                    self.hub_epoch = None
                    next_register = 0.0 if self.serve else float("inf")
                    next_health = 0.0
                if now >= next_register:
                    self._register(dealer)
                    # Until the hub confirms, ask again soon; then every REREGISTER_S.
                    next_register = now + (REREGISTER_S if self.registered else 1.0)
                if now >= next_health:
                    self._report_health(dealer)
                    next_health = now + HEALTH_REPORT_S
                if not dealer.poll(200):
                    continue
                try:
                    message = proto.decode(dealer.recv())
                except proto.ProtocolError as error:
                    log.debug("dropped a message from the hub: %s", error)
                    continue
                if self.hub_epoch is not None and message.epoch != self.hub_epoch and message.epoch:
                    self.registered = False  # the hub restarted: register again now, report at once
                    next_register = 0.0 if self.serve else float("inf")
                    next_health = 0.0
                if message.epoch:
                    self.hub_epoch = message.epoch
                if isinstance(message, proto.CommandResult) and message.request_id == self._register_id:
                    if message.ok:
                        if not self.registered:
                            log.info("registered as the hub's %r service", SERVICE_NAME)
                        self.registered = True
                        next_register = time.monotonic() + REREGISTER_S
                    elif message.message != self.last_refusal:
                        self.last_refusal = message.message
                        log.warning("the hub refused the history service registration: %s", message.message)
                elif isinstance(message, proto.CommandResult) and message.request_id == self._health_id:
                    if message.ok:
                        self.health_reports += 1
                    else:
                        log.warning("the hub refused the recorder's health report: %s", message.message)
                elif isinstance(message, proto.Error):
                    log.warning("the hub answered the history service with an error: %s", message.message)
                elif isinstance(message, proto.Command):
                    ok, text, result = answer_forwarded(
                        self.store, message.command, message.args, status=self.status, rollup_s=self.rollup_s
                    )
                    reply = proto.CommandResult(
                        **self._envelope.header(), request_id=message.request_id, ok=ok, message=text, result=result
                    )
                    try:
                        dealer.send(proto.encode(reply), zmq.DONTWAIT)
                    except zmq.Again:
                        log.warning("could not send a history answer to the hub (not connected)")
                    self.answered += 1
            self._report_health(dealer, final=True)  # a clean stop: the hub removes the figures
            dealer.close(linger=500)
        finally:
            context.destroy(linger=0)
