"""The hub's event loop: poll, decode, call the core, send. One thread.

::

    agents SUB (bind) ----> decode ----> HubState.apply ----+
    subscribers XPUB  ----> (un)subscriptions -> counters   |--> drain --> subscribers XPUB (bind)
    timer (every tick_s) -> HubState.tick -------------------+
    query ROUTER (bind) --> decode ----> QueryCore.request / .work (slices) --> query ROUTER

Time: the core gets the loop's *observed* time (:mod:`gsmon.hub.clock`),
which leaves out the pauses of the loop (SIGSTOP, a VM freeze); after one the
core waits a grace before it judges silence again. Every turn the server
tells the core whether it read the agents' queue to its end
(:meth:`HubState.read_done`): only then has it heard everything.

Budgets keep every turn short, so that no input starves another: at most
:data:`RECV_BUDGET` agent messages and :data:`RECV_POINTS_BUDGET` points,
:data:`QUERY_RECV_BUDGET` queries, and the query core's snapshot slices
(:mod:`gsmon.hub.queries`); while snapshots are pending the loop does not
sleep in poll.

Sockets are only touched from this thread (ZeroMQ sockets are not
thread-safe). A frame that fails to decode, or any error while applying it,
is counted and dropped: nothing a peer sends can stop the loop. The hub
publishes a heartbeat on the reserved topic every ``heartbeat_interval_s`` and
at once when a new subscriber subscribes to it.

The subscribers' XPUB runs in manual mode: the hub sees every subscription
and applies only those within the subscriber's caps and, with keys, its
granted prefixes (:mod:`gsmon.common.allowlist`). Which connection a manual
``setsockopt`` lands on is libzmq's guess, which a peer's junk upstream
message skews: :mod:`gsmon.hub.subscriptions` explains the trap and owns the
alignment guard and the ledger; this loop only feeds it frames, applies what
it answers, and reads the socket monitor *after* the subscriptions of a turn
(the connection count is only a health figure: nothing is cleared on it).

Heartbeats go out per read scope: full access (and every client of a hub
without keys) on :data:`~gsmon.common.protocol.HUB_HEARTBEAT_TOPIC`, each
prefix-limited grant on its own topic, carrying only the counters of prefixes
that grant may read.

The subscribers port is never released while the hub runs: the hub makes
the listening socket itself and hands libzmq a duplicate of it
(``ZMQ_USE_FD``); a rebuilt XPUB gets a fresh duplicate of the same socket,
so no other process can take the port during a grant change. (An endpoint
only libzmq can bind, inproc or an interface name, is rebound as before, and
a failure to rebind is retried every second with ``_hub/subscribers_bound``
CRITICAL, never an exit.)

Handshakes that fail before ZAP is asked (a wrong hub public key, a client
without keys) are seen on the sockets' monitors and counted and logged with
the refused ones (``_hub/auth_denied_handshakes``, rate-limited in total). An
agent whose messages are refused is told why on the NOTICE back-channel
(protocol), at most once per reason every :data:`NOTICE_INTERVAL_S`.

With keys (``keys_dir``), the order is: start the ZAP authenticator, make each
socket a CURVE server, then bind -- a CURVE socket bound without a running
authenticator admits anyone who knows the hub's public key. On top of the
handshake, every message's sender key (``User-Id``) is checked against the
allow-list as it is *now*: an agent key may only publish under its own name
and mounts, a revoked key stops at its next message, and if the authenticator
ever died, messages without a vouched-for key are refused (fail closed).
Revoking or narrowing a subscriber's grant rebuilds the subscribers socket,
which drops every open subscription; the others reconnect and resync at once.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import zmq
from zmq.utils.monitor import recv_monitor_message

from gsmon.common import names, transport
from gsmon.common import protocol as proto
from gsmon.common.alerts import CriticalAlert, GreenAlert
from gsmon.common.allowlist import AllowList, SubscriberGrant
from gsmon.common.errors import BindError
from gsmon.common.gc_tuning import GcTuner
from gsmon.common.keys import KeyFileError, load_public_key
from gsmon.common.transport import fast_get, fast_recv, fast_send
from gsmon.common.version import __version__
from gsmon.hub.alarms import Alarm, AlarmBook, AlarmSettings, JournalEntry, Shelf
from gsmon.hub.auth import HubAuthenticator, sender_key
from gsmon.hub.clock import ObservedClock
from gsmon.hub.config import HubEndpoints, ServerLimits
from gsmon.hub.journal import STATE_FILE, Pruner, Retention, StateStore, StoreError
from gsmon.hub.pair import PairConfig
from gsmon.hub.pair_link import PAIR_FILE, PairLink, PairStore
from gsmon.hub.queries import QueryCore, QuerySettings
from gsmon.hub.relay import RelayGuard, RoutedReply, Router, run_routed
from gsmon.hub.replay import META_PREFIX, ReplayCore
from gsmon.hub.sealed import RouteSealer
from gsmon.hub.state import HubSettings, HubState, nested_mounts
from gsmon.hub.subscriptions import Outcome, SubscriptionLedger
from gsmon.hub.upstream import Upstream, UpstreamCore, UpstreamSettings, default_hub_id

__all__ = ["HubEndpoints", "HubServer", "ServerLimits"]

log = logging.getLogger(__name__)

TICK_S: Final = 0.1
# How often the allow-list file is checked and the authenticator's health.
AUTH_CHECK_S: Final = 0.5
MAX_TOPIC_BYTES: Final = names.MAX_PATH_BYTES
# Largest frame a subscriber may send (a subscription is 1 byte + topic; CURVE
# adds ~40 bytes). In manual mode libzmq itself stores every subscription it
# receives, refused or not, until the connection closes: a bigger frame
# disconnects its sender before it can cost the hub memory.
MAX_SUBSCRIPTION_FRAME_BYTES: Final = 4096
# Work done per socket per loop turn before the others get a go, so that a
# flood on one socket cannot starve the rest.
RECV_BUDGET: Final = 2000
# Points applied from agents before the loop turns (and publishes them): with
# 100-point DELTAs, 2000 messages would be 200,000 updates published in one
# burst, twice the subscribers' high-water mark, and seconds late.
RECV_POINTS_BUDGET: Final = 2000
# Queries read per turn: each is small work (a snapshot becomes a job that the
# query core answers in slices), but 2,000 of them are still milliseconds.
QUERY_RECV_BUDGET: Final = 500
_POINT_MESSAGES: Final = (proto.Delta, proto.State)  # a tuple: an inline union is rebuilt per message
_MARKED: Final = (proto.Delta, proto.State, proto.Heartbeat)  # carry an outbox mark (1.3)
# How long a rebuilt subscribers socket waits for its old port to be released
# (only where libzmq binds it itself; see the module docstring).
REBIND_WAIT_S: Final = 2.0
REBIND_RETRY_S: Final = 1.0
# An agent is told a refusal's reason at most this often (per reason).
NOTICE_INTERVAL_S: Final = 10.0
_MONITORED: Final = (
    zmq.EVENT_ACCEPTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


@dataclass(slots=True)
class _Counters:
    frames_in: int = 0
    decode_errors: int = 0
    apply_errors: int = 0
    unauthorised: int = 0
    queries: int = 0
    last_error_log: float = 0.0
    errors_since_log: int = 0
    subscriber_connections: int = 0
    agent_connections: int = 0
    agent_disconnects: int = 0


def _peer_of_fd(fd: int) -> str | None:
    """The peer address of an accepted connection's socket, for log lines (None if it is gone already)."""
    try:
        dup = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None
    try:
        peer = dup.getpeername()
    except OSError:
        return None
    finally:
        dup.close()
    if isinstance(peer, tuple):
        return f"{peer[0]}:{peer[1]}"
    return str(peer) or None


class _SocketMonitor:
    """One bound socket's monitor: connection counts, and handshakes that fail before ZAP.

    libzmq names only the bound endpoint in a failure event, so the peer is
    taken from the connection's socket when it is accepted, and a failure is
    attributed to the next connection that closes (its own, in practice).
    """

    def __init__(self, sock: zmq.Socket[bytes], role: str) -> None:
        self.socket = transport.monitor_socket(sock, _MONITORED)
        self.role = role
        self._peers: dict[int, str | None] = {}
        self._failures: list[str] = []

    def read(self, on_failure: Callable[[str, str | None, str], None] | None) -> Iterator[int]:
        """+1 for each connection accepted, -1 for each one closed; failures go to ``on_failure``."""
        while True:
            try:
                event = recv_monitor_message(self.socket, zmq.DONTWAIT)
            except zmq.Again:
                return
            kind, value = event["event"], int(event["value"])
            if kind == zmq.EVENT_ACCEPTED:
                if on_failure is not None and len(self._peers) < 10_000:
                    self._peers[value] = _peer_of_fd(value)
                yield 1
            elif kind == zmq.EVENT_DISCONNECTED:
                peer = self._peers.pop(value, None)
                if self._failures and on_failure is not None:
                    on_failure(self.role, peer, self._failures.pop(0))
                yield -1
            elif len(self._failures) < 1000:
                self._failures.append(_handshake_failure(kind, value))

    def close(self) -> None:
        self.socket.close(linger=0)


def _handshake_failure(kind: int, value: int) -> str:
    if kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return "the client does not use CURVE keys (mechanism mismatch)"
    if kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        return "the client's HELLO cannot be opened: it holds another hub's public key"
    if kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return f"protocol error 0x{value:x} during the handshake"
    return "the handshake failed without detail"


class HubServer:
    """Binds the three sockets and runs the loop until :meth:`stop`."""

    def __init__(
        self,
        endpoints: HubEndpoints,
        settings: HubSettings | None = None,
        limits: ServerLimits | None = None,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        keys_dir: Path | None = None,
        state_dir: Path | None = None,
        alarm_settings: AlarmSettings | None = None,
        journal_retention: Retention | None = None,
        upstream: UpstreamSettings | None = None,
        hub_id: str | None = None,
        pair: PairConfig | None = None,
        gc_tuner: GcTuner | None = None,
    ) -> None:
        self.settings = settings or HubSettings()
        # The garbage collector, tuned for the tree (gsmon.common.gc_tuning): given by `gsmon hub` only, as
        # the collector is the whole process's (an in-process server in a test or a bench leaves it alone).
        self.gc_tuner = gc_tuner
        # Hub-of-hubs (1.3): this hub's id in the federation, its link to a central hub (a site hub),
        # and, for sites below it, the loop guard and the router of commands (made at bind).
        self.upstream_settings = upstream
        self.hub_id = hub_id
        self.upstream: Upstream | None = None  # one link per central hub (a central pair: two)
        self.relay_guard: RelayGuard | None = None
        self.router: Router | None = None
        # A hub of a pair (issue 17 section 2): the peer link, made at bind (hub/pair_link.py).
        self.pair_config = pair
        self.pair: PairLink | None = None
        # The operator layer (issue 13): None runs without a state store, hence without alarms.
        self.state_dir = state_dir
        self.alarm_settings = alarm_settings or AlarmSettings()
        self.journal_retention = journal_retention or Retention()
        self.store: StateStore | None = None
        self.pruner: Pruner | None = None
        # What the book gave and the store has not taken yet (a failed write is retried next turn).
        self._unsaved_journal: list[JournalEntry] = []
        self._unsaved_alarms: dict[int, Alarm] = {}
        self._unsaved_shelves: dict[int, Shelf] = {}
        self._unsaved_next_id = 0
        self._unsaved_meta: dict[str, str] = {}
        # The agents' outboxes (protocol 1.3): only with a state store (it keeps what the hub has of each).
        self.replay: ReplayCore | None = None
        self._live_asked = False  # LIVE_TOPIC subscribed on the agents socket
        self._store_errors = 0
        self._store_error_logged = -math.inf
        self.journal_written = 0  # journal entries committed (a health point, and for the bench)
        self.limits = limits or ServerLimits()
        self.epoch = secrets.randbits(63)
        # The core owns the subscriptions and the publish counters (one ledger); the loop feeds it frames.
        self.state = HubState(
            self.settings,
            self.epoch,
            time.monotonic(),
            subscriptions=SubscriptionLedger(
                max_per_subscriber=self.limits.max_subscriptions_per_subscriber,
                max_total=self.limits.max_subscriptions,
                max_published_prefixes=self.settings.max_published_prefixes,
            ),
        )
        self._decode_limits = proto.Limits(
            max_frame_bytes=self.limits.max_frame_bytes,
            max_points_per_message=self.limits.max_points_per_message,
            max_parents_per_message=self.limits.max_points_per_message,
        )
        self._query_limits = proto.Limits(max_frame_bytes=self.limits.max_query_frame_bytes)
        self._own_context = context is None
        self.context = context or zmq.Context()
        self._stop = threading.Event()
        self._counters = _Counters()
        self._requested_endpoints = endpoints
        self.endpoints: HubEndpoints | None = None
        self._agents: zmq.Socket[bytes] | None = None
        self._subscribers: zmq.Socket[bytes] | None = None
        self._query: zmq.Socket[bytes] | None = None
        self._monitor: _SocketMonitor | None = None  # the subscribers socket's
        self._agents_monitor: _SocketMonitor | None = None
        self._query_monitor: _SocketMonitor | None = None
        # The subscribers port's listening socket, held for the hub's lifetime (None: libzmq binds it).
        self._subscribers_listener: socket.socket | None = None
        self._rebind_due: float | None = None  # a rebuild failed: try again then
        self._notices_sent: dict[tuple[str, str], float] = {}
        self._scopes: dict[bytes, SubscriberGrant] = {}  # heartbeat topic -> its limited grant
        self.keys_dir = keys_dir
        self.auth: HubAuthenticator | None = None
        self._poller = zmq.Poller()
        self._next_auth_check = 0.0
        self._auth_dead_logged = False
        self.clock = ObservedClock()
        self.query_settings = QuerySettings()
        self.queries: QueryCore | None = None  # made once the endpoints are known (bind)
        self._grants_checked: AllowList | None = None
        self._nested_warned: set[tuple[str, str, str, str]] = set()

    # ------------------------------------------------------------------

    def bind(self) -> HubEndpoints:
        """Create and bind the sockets (authenticator first, with keys); return the real endpoints."""
        limits = self.limits
        try:
            if self.keys_dir is not None:
                self.auth = HubAuthenticator.from_keys_dir(self.context, self.keys_dir)
                self.auth.start()
            agents = self._agents = transport.make_socket(
                self.context,
                zmq.SUB,
                transport.SocketOptions(rcvhwm=limits.agents_rcvhwm, max_msg_bytes=limits.max_frame_bytes),
            )
            query = self._query = transport.make_socket(
                self.context,
                zmq.ROUTER,
                transport.SocketOptions(sndhwm=limits.query_sndhwm, max_msg_bytes=limits.max_query_frame_bytes),
            )
            if self.auth is not None:
                self.auth.server_socket_options(agents, "agents")
                self.auth.server_socket_options(query, "subscribers")
                self._scopes = _scopes_of(self.auth.allow_list)
            agents.setsockopt(zmq.SUBSCRIBE, b"")
            requested = self._requested_endpoints
            with _binding("agents", requested.agents):
                bound_agents = transport.bind(agents, requested.agents)
            with _binding("subscribers", requested.subscribers):
                self._subscribers_listener = transport.listen(requested.subscribers)
                bound_subscribers = self._make_subscribers(requested.subscribers)
            with _binding("query", requested.query):
                bound_query = transport.bind(query, requested.query)
            self.endpoints = HubEndpoints(agents=bound_agents, subscribers=bound_subscribers, query=bound_query)
        except BaseException:
            self.close()
            raise
        self._poller.register(agents, zmq.POLLIN)
        self._poller.register(query, zmq.POLLIN)
        # libzmq closes the connection of an agent that sends a frame over
        # max_frame_bytes and says only "disconnected": counted, so that it shows.
        self._agents_monitor = _SocketMonitor(agents, "agents")
        self._poller.register(self._agents_monitor.socket, zmq.POLLIN)
        if self.auth is not None:
            self._query_monitor = _SocketMonitor(query, "query")
            self._poller.register(self._query_monitor.socket, zmq.POLLIN)
        endpoints = self.endpoints
        self.queries = QueryCore(
            self.state,
            {"agents": endpoints.agents, "subscribers": endpoints.subscribers, "query": endpoints.query},
            self.settings.heartbeat_interval_s,
            __version__,
            self.query_settings,
        )
        self._check_grants()
        self._open_state()
        hub_id = self.hub_id = self.hub_id or default_hub_id(endpoints.agents)
        self.relay_guard = RelayGuard(hub_id)
        # A hub of a pair derives its proxy ids, so that both centres show a site's alarm under one id.
        self.router = self.queries.router = Router(self.state, hub_id, derived_ids=self.pair_config is not None)
        if self.auth is not None:
            self.router.sealer = RouteSealer(self.auth.server_pair.secret)  # routes only the site can read
        if self.upstream_settings is not None:
            core = UpstreamCore(self.upstream_settings, self.state, hub_id, self.epoch, time.monotonic())
            self.upstream = Upstream(core, self.context)
            centres = self.upstream_settings.endpoints
            log.info(
                "hub id %s: publishing to the central hub%s at %s as %s under %s",
                hub_id,
                "s" if len(centres) > 1 else "",
                ", ".join(centres),
                self.upstream_settings.sender,
                self.upstream_settings.mount,
            )
        if self.store is not None and self.router is not None:
            # (1.3) The proxy ids shown before a restart name the same sites' alarms after it.
            restored = self.router.restore(self.store.load_meta(Router.META_PREFIX))
            log.info("state store: %d proxy id(s) of sites' alarms restored", restored)
        self._open_pair()
        if self.upstream is not None and self.pair is not None:
            # (1.3) A site hub of a pair says so upstream (its pair ids, the peer's once learnt), so the centre
            # follows one site hub of the two and keeps the other as its standby (protocol: A site that is a pair).
            pair_core = self.pair.core
            self.upstream.core.pair = lambda: proto.SitePair(pair_core.hub_id, pair_core.peer_id)
        return endpoints

    def _open_pair(self) -> None:
        """Link with the peer hub (the op log lives beside state.db; a pair needs a state directory)."""
        config = self.pair_config
        if config is None:
            return
        if self.state_dir is None:
            raise StoreError("a hub of a pair (--peer) needs a state directory: its op log is kept there")
        assert self.queries is not None
        own = self.auth.server_pair if self.auth is not None else None
        peer_key = None
        if own is not None:
            if config.peer_key_file is None:
                raise KeyFileError("a hub with keys needs its peer's public key to link with it: --peer-key FILE")
            peer_key = load_public_key(config.peer_key_file)
        store = PairStore(self.state_dir / PAIR_FILE)
        self.pair = PairLink(
            config, store, self.queries, self.context, own, peer_key, self.epoch, time.monotonic(), self._persist
        )
        if self.state.alarms is not None:
            self.state.alarms.derived_ids = True  # both hubs name an alarm alike
        self._poller.register(self.pair.dealer, zmq.POLLIN)

    def _open_state(self) -> None:
        """Open the state store and restore the alarm book from it (StoreError: one line, the hub stops)."""
        if self.state_dir is None or self.store is not None:
            return
        store = self.store = StateStore(self.state_dir / STATE_FILE, check_same_thread=False)
        stored = store.load(self.alarm_settings.kept_cleared, self.alarm_settings.kept_ended_shelves)
        book = AlarmBook.restore(
            self.alarm_settings, stored.alarms, stored.shelves, stored.next_id, time.monotonic(), time.time()
        )
        self.state.alarms = book
        self.replay = ReplayCore(store.load_meta(META_PREFIX))
        queries = self.queries
        assert queries is not None
        queries.use_store(store, store.load_contexts())
        open_alarms = sum(1 for alarm in stored.alarms if alarm.state != "cleared")
        log.info(
            "state store %s: %d open alarm(s), %d shelf/shelves, next id %d, journal at %d",
            store.path,
            open_alarms,
            sum(1 for shelf in stored.shelves if shelf.ended_at is None),
            book.next_id,
            stored.last_journal_id,
        )
        if not self._persist():  # what the restore itself journaled (shelves expired during downtime)
            raise StoreError(f"cannot write the state store {store.path}: see the log")
        self.pruner = Pruner(store.path, self.journal_retention)
        self.pruner.start()

    def _persist(self) -> bool:
        """Store what the alarm book changed, in ONE transaction; True when nothing is left unsaved.

        Called before a turn's NODEs are published and before command replies are sent: nothing is
        said that the store does not hold. A failed write keeps the batch for the next turn.
        """
        book, store = self.state.alarms, self.store
        if book is None or store is None:
            return True
        self._unsaved_journal += book.take_journal()
        alarms, shelves, next_id = book.take_records()
        for alarm in alarms:
            self._unsaved_alarms[alarm.id] = alarm
        for shelf in shelves:
            self._unsaved_shelves[shelf.id] = shelf
        self._unsaved_next_id = next_id
        if self.replay is not None:
            self._unsaved_meta.update(self.replay.take_marks())
        if self.router is not None:
            self._unsaved_meta.update(self.router.take_marks())
        try:  # (a turn with nothing to store costs no transaction: write_turn returns at once)
            store.write_turn(
                self._unsaved_journal,
                list(self._unsaved_alarms.values()),
                list(self._unsaved_shelves.values()),
                self._unsaved_next_id,
                meta=self._unsaved_meta,
            )
        except StoreError as error:
            self._store_errors += 1
            now = time.monotonic()
            if now - self._store_error_logged >= 5.0:
                self._store_error_logged = now
                log.critical("%s: holding %d journal entries and this turn's NODEs", error, len(self._unsaved_journal))
            return False
        self.journal_written += len(self._unsaved_journal)
        self._unsaved_journal = []
        self._unsaved_alarms.clear()
        self._unsaved_shelves.clear()
        self._unsaved_meta.clear()
        return True

    def _make_subscribers(self, endpoint: str) -> str:
        """(Re)create the subscribers XPUB and its monitor, bind it, register them."""
        sock = transport.make_socket(
            self.context,
            zmq.XPUB,
            transport.SocketOptions(
                sndhwm=self.limits.subscribers_sndhwm,
                xpub_verbose=True,
                max_msg_bytes=MAX_SUBSCRIPTION_FRAME_BYTES,
            ),
        )
        self._subscribers = sock
        if self.auth is not None:
            self.auth.server_socket_options(sock, "subscribers")
        # Manual: a subscription takes effect only when the hub applies it.
        sock.setsockopt(zmq.XPUB_MANUAL, 1)
        if self._subscribers_listener is not None:
            try:
                bound = transport.bind(sock, endpoint, self._subscribers_listener)
            except BaseException:
                sock.close(linger=0)
                self._subscribers = None
                raise
        else:
            bound = _bind_when_free(sock, endpoint, REBIND_WAIT_S if self.endpoints is not None else 0.0)
        self._monitor = _SocketMonitor(sock, "subscribers")
        self._poller.register(sock, zmq.POLLIN)
        self._poller.register(self._monitor.socket, zmq.POLLIN)
        return bound

    def _rebuild_subscribers(self) -> None:
        """Close the subscribers socket and bind a new one at the same endpoint.

        The only way to take back subscriptions already granted to open
        connections (ZeroMQ cannot unsubscribe one peer from the outside).
        """
        assert self.endpoints is not None
        if self._monitor is not None:
            self._poller.unregister(self._monitor.socket)
            self._monitor.close()
            self._monitor = None
        if self._subscribers is not None:
            self._poller.unregister(self._subscribers)
            self._subscribers.close(linger=0)
            self._subscribers = None
        # A new socket holds no subscription: the ledger starts over exactly (the only reset).
        self.state.subscriptions.reset()
        self._counters.subscriber_connections = 0
        try:
            self._make_subscribers(self.endpoints.subscribers)
        except (zmq.ZMQError, OSError) as error:
            self._subscribers = None
            self._rebind_due = time.monotonic() + REBIND_RETRY_S
            log.critical(
                "cannot rebind the subscribers socket at %s (%s); retrying every %g s",
                self.endpoints.subscribers,
                error,
                REBIND_RETRY_S,
            )
            return
        if self._rebind_due is not None:
            log.warning("the subscribers socket is bound again at %s", self.endpoints.subscribers)
        self._rebind_due = None
        log.info("subscriber grants changed: subscribers socket rebuilt, open subscriptions dropped")

    def stop(self) -> None:
        """Ask the loop to end (safe from a signal handler or another thread)."""
        self._stop.set()

    def close(self) -> None:
        """Close the sockets, then stop the authenticator, then end the context (this order)."""
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
        for monitor in (self._monitor, self._agents_monitor, self._query_monitor):
            if monitor is not None:
                monitor.close()
        self._monitor = self._agents_monitor = self._query_monitor = None
        for sock in (self._agents, self._subscribers, self._query):
            if sock is not None:
                sock.close(linger=0)
        self._agents = self._subscribers = self._query = None
        if self.pair is not None:
            self.pair.close()
            self.pair = None
        if self._subscribers_listener is not None:
            _close_listener(self._subscribers_listener)
            self._subscribers_listener = None
        if self.auth is not None:
            self.auth.stop()
        if self.pruner is not None:
            self.pruner.stop()
            self.pruner = None
        if self.store is not None:
            with contextlib.suppress(StoreError):
                self._persist()
            self.store.close()
            self.store = None
        if self._own_context:
            self.context.term()

    # ------------------------------------------------------------------

    def run(self, on_tick: Callable[[HubServer], None] | None = None) -> None:
        """Run until :meth:`stop`; always closes the sockets."""
        if self.endpoints is None:
            self.bind()
        state, queries, clock = self.state, self.queries, self.clock
        assert queries is not None
        next_tick = time.monotonic()
        next_heartbeat = next_tick
        gc_tuner = self.gc_tuner
        if gc_tuner is not None:  # bound, the state store restored: what exists now lives as long as the hub
            gc_tuner.start(len(state.tree))
        try:
            while not self._stop.is_set():
                agents, subscribers, query = self._agents, self._subscribers, self._query
                monitor, agents_monitor = self._monitor, self._agents_monitor
                assert agents is not None
                assert query is not None
                assert agents_monitor is not None
                before = time.monotonic()
                # Pending snapshot slices: no sleeping in poll.
                timeout_ms = 0 if queries.busy else int(max(0.0, min(next_tick, next_heartbeat) - before) * 1000)
                ready = dict(self._poller.poll(timeout_ms))
                mono = time.monotonic()
                # The core's time leaves out the loop's own pauses: it cannot judge a time it did not run.
                now, paused_s = clock.observe(before, mono, timeout_ms / 1000)
                wall = time.time()
                if paused_s:
                    state.pause(now, paused_s)
                # Read to the end of the queue (or nothing was waiting): whatever
                # arrived before `now` has been heard, so silence can be judged.
                emptied = agents not in ready or self._read_agents(agents, now, wall)
                state.read_done(now, emptied)
                self._federate(query, now, wall)
                if self.pair is not None:
                    self.pair.turn(now, wall)
                beats_wanted: set[bytes] = set()
                if subscribers is not None and subscribers in ready:
                    beats_wanted = self._read_subscriptions(subscribers)
                # After the subscriptions: every connection whose frames were just read has had its
                # ACCEPTED event emitted before (libzmq emits it before the handshake begins).
                if monitor is not None and (monitor.socket in ready or subscribers in ready):
                    self._read_monitor(monitor)
                if agents_monitor.socket in ready:
                    self._read_agents_monitor(agents_monitor)
                if self._query_monitor is not None and self._query_monitor.socket in ready:
                    for _ in self._query_monitor.read(self._handshake_failed):
                        pass
                if self._rebind_due is not None and mono >= self._rebind_due:
                    self._rebuild_subscribers()
                if mono >= next_tick:
                    self._check_auth(mono)
                    self._check_grants()
                    state.set_subscribers(self._counters.subscriber_connections)
                    if gc_tuner is not None:
                        gc_tuner.observe(len(state.tree))  # agents arrived: their nodes are frozen too
                    self._report_health(now)
                    state.tick(now, wall)
                    clock.blind_tolerance_s = state.blind_tolerance_s  # pauses that short would misjudge
                    if state.alarms is not None:
                        state.alarms.tick(now, wall)
                    for identity, frame in queries.expire_forwarded(now, wall):
                        self._reply(query, identity, frame)
                    if self.router is not None:
                        for routed in self.router.expire(now):
                            self._deliver(query, routed, now, wall)
                    next_tick = mono + TICK_S
                    if on_tick is not None:
                        on_tick(self)
                subscribers = self._subscribers  # _check_auth may have rebuilt it
                # Stored before published (issue 13): a turn the store could not take is held back.
                frames = state.drain(wall) if self._persist() else []
                if self.router is not None and self.router.marks_waiting:
                    self._persist()  # (1.3) proxy ids made while packing these NODEs: stored before shown
                if subscribers is not None:
                    self._publish(subscribers, frames)
                for name in state.take_resync_requests():
                    topic = proto.RESYNC_TOPIC_PREFIX + name.encode()
                    agents.setsockopt(zmq.SUBSCRIBE, topic)
                    agents.setsockopt(zmq.UNSUBSCRIBE, topic)
                if self.replay is not None:
                    if not self._live_asked:  # (1.3) standing: agents send this hub their live transitions
                        agents.setsockopt(zmq.SUBSCRIBE, proto.LIVE_TOPIC)
                        self._live_asked = True
                    for name, first, last in self.replay.take_requests(now):
                        topic = proto.replay_topic(name, first, last)
                        agents.setsockopt(zmq.SUBSCRIBE, topic)
                        agents.setsockopt(zmq.UNSUBSCRIBE, topic)
                for name, reason in state.take_notices():
                    self._notify_agent(name, reason, mono)
                if self.router is not None:
                    # Commands for sites below (1.3): on the back-channel, as RESYNC and NOTICE.
                    for topic in self.router.take_topics():
                        agents.setsockopt(zmq.SUBSCRIBE, topic)
                        agents.setsockopt(zmq.UNSUBSCRIBE, topic)
                if self.upstream is not None:
                    self.upstream.tick(now, wall)  # after drain: the changes of this turn are known
                # After drain: every cached payload a snapshot serves is current.
                if query in ready:
                    self._read_queries(query, now, wall)
                replies = queries.work(now, wall)
                if replies and self.router is not None and self.router.marks_waiting:
                    self._persist()  # (1.3) a snapshot's proxy ids: stored before shown
                for identity, frame in replies:
                    self._reply(query, identity, frame)
                if subscribers is not None and mono >= next_heartbeat:
                    self._send_heartbeats(subscribers, wall, None)
                    next_heartbeat = mono + self.settings.heartbeat_interval_s
                elif subscribers is not None and beats_wanted:
                    self._send_heartbeats(subscribers, wall, beats_wanted)
        finally:
            self.close()

    def _federate(self, query: zmq.Socket[bytes], now: float, wall: float) -> None:
        """Hub-of-hubs (1.3): sites' answers to routed commands; commands routed down from upstream."""
        router = self.router
        if router is None:
            return
        for site, result in self.state.take_upstream_results():
            routed = router.answer(site, result)
            if isinstance(routed, RoutedReply):
                self._deliver(query, routed, now, wall)
            elif not routed:  # late (already failed "unreachable"), or from an agent that was asked nothing
                self.state.count_rejected()
            # (True: a site's part of a merged alarm listing that waits for other sites)
        upstream = self.upstream
        if upstream is not None and self.queries is not None:
            for link, command in upstream.read():
                try:
                    answer = run_routed(self.queries, router, command, now, wall, link)
                except Exception as error:  # a bug must not take the hub down: answer it, log it
                    log.exception("a command routed from upstream failed")
                    answer = RoutedReply(
                        ("upstream", command["route_id"], link), False, f"{type(error).__name__}: {error}", None
                    )
                if answer is not None:
                    self._deliver(query, answer, now, wall)

    def _deliver(self, query: zmq.Socket[bytes], routed: RoutedReply, now: float, wall: float) -> None:
        """The answer of a routed command to whoever asked: a query client, or the hub upstream (a chain)."""
        to = routed.to
        if to[0] == "query" and self.queries is not None:
            # Stored before answered, as for every command (the site stored its own; here the proxy ids
            # the answer shows, 1.3).
            if self.router is not None and self.router.marks_waiting:
                self._persist()
            frame = self.queries.command_result(to[1], to[2], wall, routed.ok, routed.message, routed.result)
            self._reply(query, to[1], frame)
        elif to[0] == "upstream" and self.upstream is not None:
            self._persist()  # the site's own effects are stored before it says ok (issue 13's rule)
            # On the link of the central hub that asked, only (each centre numbers its routes itself).
            self.upstream.answer(to[2], now, wall, to[1], routed.ok, routed.message, routed.result)

    def _check_auth(self, now: float) -> None:
        auth = self.auth
        if auth is None or now < self._next_auth_check:
            return
        self._next_auth_check = now + AUTH_CHECK_S
        if not auth.is_alive() and not self._auth_dead_logged:
            # Fail closed: without ZAP, libzmq would admit any client that knows
            # our public key, but such connections carry no User-Id, and every
            # message without a granted key is refused below. The allow-list is
            # still reloaded (revocations keep applying to open connections).
            log.critical("the ZAP authenticator is not running: refusing every message without a known key")
            self._auth_dead_logged = True
        auth.denials.flush(now)
        before = auth.allow_list
        if auth.reload_if_changed(now):
            self._scopes = _scopes_of(auth.allow_list)
            if _subscriber_grants_narrowed(before, auth.allow_list):
                self._rebuild_subscribers()

    def _report_health(self, now: float) -> None:
        counters = self._counters
        ledger = self.state.subscriptions
        extra: dict[str, tuple[Any, int]] = {
            "decode_errors": (counters.decode_errors, 0),
            "agent_connections": (counters.agent_connections, 0),
            # Every closed agent connection: restarts, lost links, refused CURVE
            # handshakes, and senders of a frame over max_frame_bytes.
            "agent_disconnects": (counters.agent_disconnects, 0),
            "subscriptions": (ledger.total, 0),
            "subscriptions_refused": (ledger.refused, 0),
            # (Un)subscriptions read after a peer's junk frame, not applied (hub/subscriptions.py).
            "subscriptions_skipped": (ledger.skipped, 0),
            # Snapshot requests answered "busy, retry" (a client over its share, or too many at once).
            "snapshots_busy": (self.queries.stats.busy if self.queries is not None else 0, 0),
        }
        if self.relay_guard is not None and self.router is not None:
            # Hub-of-hubs (1.3): relayed entries dropped by the loop guard, commands routed to sites.
            extra["relay_loops_dropped"] = (self.relay_guard.loops_dropped, 0)
            extra["relay_too_deep"] = (self.relay_guard.too_deep, 0)
            extra["routed_commands"] = (self.router.routed, 0)
            extra["routed_unreachable"] = (self.router.unreachable, 0)
        if self.upstream is not None:
            extra.update(self.upstream.health_points())
        if self._rebind_due is not None:
            extra["subscribers_bound"] = (False, CriticalAlert.alertcode)
        if self.store is not None:
            ok = self._store_errors == 0 or not self._unsaved_journal
            extra["state_store_write_errors"] = (self._store_errors, 0 if ok else CriticalAlert.alertcode)
            extra["journal_written"] = (self.journal_written, 0)
        if self.replay is not None:  # the agents' outboxes (1.3): entries replayed, lost, and stray answers
            stats = self.replay.stats
            extra["outbox_replayed"] = (stats.replayed, 0)
            extra["outbox_lost"] = (stats.lost, 0)
            extra["outbox_unsolicited"] = (stats.unsolicited, 0)
            extra["outbox_live"] = (stats.live, 0)  # blips between two DELTAs, journaled from live transitions
        if self.queries is not None:
            # Active contexts (a pass) as points: _hub/contexts/<kind>/<prefix path> = the context id.
            for key, record in self.queries.contexts.items():
                extra[f"contexts/{key}"] = (record.get("id"), 0)
            # The clients' own health (the recorder's lag, the notifier's deliveries): _hub/clients/...
            extra.update(self.queries.client_health.points(now))
        if self.pair is not None:
            extra.update(self.pair.health_points(now))
        if self.gc_tuner is not None:
            # The collector's collections, seconds, longest pause and frozen objects: _hub/gc_*.
            extra.update(self.gc_tuner.health_points())
        auth = self.auth
        if auth is not None:
            alive = auth.is_alive()
            extra["auth_alive"] = (alive, GreenAlert.alertcode if alive else CriticalAlert.alertcode)
            extra["auth_unauthorised_messages"] = (counters.unauthorised, 0)
            extra["auth_denied_handshakes"] = (auth.denied_handshakes, 0)
        self.state.set_server_health(extra)

    def _read_agents(self, agents: zmq.Socket[bytes], now: float, wall: float) -> bool:
        """Read and apply agent messages up to this turn's budget; True if the queue was emptied."""
        state = self.state
        counters = self._counters
        auth = self.auth
        # The peers' addresses only while the core waits for them (two processes claim one
        # name): reading frames costs a microsecond a message more than plain bytes.
        want_peers = state.peers_wanted
        guard = self.relay_guard
        plain = auth is None and not want_peers
        points = 0
        for _ in range(RECV_BUDGET):
            if points >= RECV_POINTS_BUDGET:
                return False
            try:
                if plain:
                    # pyzmq's recv_multipart is Python; its Cython recv directly
                    # saves a fifth of a small message's cost (transport.fast_recv).
                    frames: list[Any] = [fast_recv(agents, zmq.DONTWAIT)]
                    if fast_get(agents, zmq.RCVMORE):
                        frames += agents.recv_multipart(zmq.DONTWAIT)  # the rest of this message
                else:
                    # With keys the frame object is needed for its User-Id (and for the peer's address).
                    frames = agents.recv_multipart(zmq.DONTWAIT, copy=False)
            except zmq.Again:
                return True
            counters.frames_in += 1
            if len(frames) != 1:
                self._reject(f"{len(frames)} frames in one agent message (expected 1)", decode=True)
                continue
            frame = frames[0]
            data = frame.bytes if isinstance(frame, zmq.Frame) else frame
            try:
                msg = proto.decode(data, self._decode_limits)
            except proto.ProtocolError as error:
                self._reject(str(error), decode=True)
                continue
            if auth is not None and not self._agent_may_send(auth, frame, msg):
                # Still a read from some connection: counted (by its key) for the fair-queue rule.
                # (Without a key it could be any connection's: not counted.)
                key = sender_key(frame) if isinstance(frame, zmq.Frame) else None
                if key is not None:
                    state.note_read(key, now)
                continue
            if isinstance(msg, _POINT_MESSAGES):
                points += len(msg.points)
            peer = _peer_of(frame) if want_peers and isinstance(frame, zmq.Frame) else None
            try:
                if guard is not None:
                    msg = guard.filter(msg)  # relayed entries that looped or went too deep (1.3)
                replay, book = self.replay, state.alarms
                # (1.3) In a break, what the book journals live is noted, so the replay that closes it does
                # not journal the same changes again (hub/replay.py).
                noting = (
                    replay is not None
                    and book is not None
                    and isinstance(msg, proto.State | proto.Delta)
                    and replay.follows(msg.sender)
                )
                in_break = noting and replay is not None and replay.in_break(msg.sender, msg.epoch, msg.seq)
                mark = book.journal_mark() if noting and book is not None else 0
                state.apply(msg, now, wall, peer)
                if replay is not None and state.applied(msg):
                    if noting and book is not None:
                        replay.note_live(msg.sender, book.journal_since(mark), None if in_break else msg.seq)
                    self._outbox(msg, now, wall)
            except Exception as error:  # a bug must not take the hub down: count, log, carry on
                self._reject(f"{type(error).__name__}: {error}", decode=False)
        return False  # the message budget ran out first

    def _outbox(self, msg: proto.Message, now: float, wall: float) -> None:
        """Hand an applied agent message's outbox mark, or a TRANSITIONS, to the replay core (hub/replay.py)."""
        replay, state = self.replay, self.state
        assert replay is not None
        if isinstance(msg, proto.Transitions):
            mount = state.mount_of(msg.sender)
            node = state.tree.get(mount) if mount is not None else None
            if msg.live is not None:  # (1.3) live transitions: the blips the DELTAs could not show
                replay.apply_live(msg, mount, state.alarms, now, wall)
            else:
                replay.apply(msg, mount, None if node is None else node.code, state.alarms, now, wall)
        elif isinstance(msg, _MARKED) and msg.outbox is not None:
            state_end = isinstance(msg, proto.State) and msg.part == msg.parts - 1
            delta = isinstance(msg, proto.Delta)
            mount = state.mount_of(msg.sender)
            lost = replay.observe(
                msg.sender, msg.epoch, msg.seq, msg.outbox, state_end, now, delta=delta,
                mount=mount, book=state.alarms, wall=wall,
            )  # fmt: skip
            if lost:
                replay.journal_lost(msg.sender, mount, lost, state.alarms, wall)

    def _agent_may_send(self, auth: HubAuthenticator, frame: zmq.Frame | bytes, msg: proto.Message) -> bool:
        """Whether the key this message came with may speak for ``msg.sender`` at its mount."""
        key = sender_key(frame) if isinstance(frame, zmq.Frame) else None
        grant = auth.allow_list.agent_for_key(key)
        if grant is None or grant.name != msg.sender:
            why = "its key is not (or no longer) granted" if grant is None else f"its key is agent {grant.name!r}'s"
            self._notify_agent(msg.sender, f"unauthorised: {why}", time.monotonic())
            return self._unauthorised(f"key {key} may not publish as agent {msg.sender!r}")
        if isinstance(msg, proto.State | proto.Heartbeat):
            mount: str | None = msg.mount
        else:
            mount = self.state.mount_of(msg.sender)
        if mount is not None and not grant.covers(mount):
            self._notify_agent(
                msg.sender,
                f"unauthorised: mount {mount} is outside this key's mounts {', '.join(grant.mounts)}",
                time.monotonic(),
            )
            return self._unauthorised(f"agent {msg.sender!r} may not publish under {mount!r}")
        router = self.router
        if key is not None and router is not None:
            router.site_keys[msg.sender] = key  # a site's routes are sealed to it (hub/sealed.py)
        return True

    def _unauthorised(self, why: str) -> bool:
        self._counters.unauthorised += 1
        self._reject(why, decode=True)
        return False

    def _reject(self, why: str, decode: bool) -> None:
        counters = self._counters
        self.state.count_rejected()
        if decode:
            counters.decode_errors += 1
        else:
            counters.apply_errors += 1
            log.exception("error applying a message: %s", why)
        # Rate-limited: a flood of garbage must not turn into a flood of log lines.
        counters.errors_since_log += 1
        now = time.monotonic()
        if now - counters.last_error_log >= 5.0:
            log.warning("rejected %d message(s) in the last %.0f s; latest: %s", counters.errors_since_log, 5.0, why)
            counters.last_error_log = now
            counters.errors_since_log = 0

    def _read_subscriptions(self, subscribers: zmq.Socket[bytes]) -> set[bytes]:
        """Feed (un)subscriptions to the ledger and apply what it answers; return the heartbeat topics to send now."""
        heartbeats: set[bytes] = set()
        ledger = self.state.subscriptions
        may_subscribe = self._may_subscribe
        for _ in range(RECV_BUDGET):
            try:
                frame = subscribers.recv(zmq.DONTWAIT, copy=False)
            except zmq.Again:
                ledger.drained()  # the queue was empty: libzmq's data and pipe queues are aligned again
                break
            data = frame.bytes
            identity, has_metadata = _sender(frame)
            outcome = ledger.read(data, identity, has_metadata, may_subscribe)
            if outcome.applies:
                topic = data[1:]
                # In manual mode this applies to the pipe of the frame just read (see the ledger).
                subscribers.setsockopt(zmq.UNSUBSCRIBE if outcome is Outcome.UNSUBSCRIBE else zmq.SUBSCRIBE, topic)
                if outcome is not Outcome.UNSUBSCRIBE and proto.is_heartbeat_topic(topic):
                    heartbeats.add(topic)
            elif outcome is Outcome.REFUSED_GRANT:
                self._unauthorised(f"subscription to {data[1:61]!r} refused")
        return heartbeats

    def _may_subscribe(self, identity: str | None, topic: bytes) -> bool:
        """Whether ``identity`` may follow ``topic``: its read grant, and for control topics its own heartbeat."""
        if len(topic) > MAX_TOPIC_BYTES:
            return False
        allow = self.auth.allow_list if self.auth is not None else None
        if topic.startswith(proto.NODES_TOPIC_PREFIX):
            # (1.4) A prefix's NODEs in batches: the read grant of that prefix, as for its plain topic.
            prefix = proto.nodes_prefix(topic)
            return prefix is not None and (allow is None or allow.may_subscribe(identity, prefix))
        if topic[:1] == b"\x00":
            if allow is None:
                return topic == proto.HUB_HEARTBEAT_TOPIC
            grant = allow.subscriber_for_key(identity)
            return grant is not None and topic == _heartbeat_topic_of(grant)
        return allow is None or allow.may_subscribe(identity, topic)

    def _send_heartbeats(self, subscribers: zmq.Socket[bytes], wall: float, topics: set[bytes] | None) -> None:
        """The full heartbeat and each followed scope's (or only ``topics``), each with its scope's counters."""
        if topics is None:
            topics = {proto.HUB_HEARTBEAT_TOPIC, *self.state.subscriptions.held_topics(proto.SCOPE_HEARTBEAT_PREFIX)}
        for topic in topics:
            if topic == proto.HUB_HEARTBEAT_TOPIC:
                readable = None
            else:
                grant = self._scopes.get(topic)
                if grant is None:
                    continue  # the grant went (its subscribers are dropped with the socket rebuild)
                readable = grant.allows_prefix
            beat_topic, payload = self.state.heartbeat(wall, topic, readable)
            self._send(subscribers, beat_topic, payload)

    def _read_monitor(self, monitor: _SocketMonitor) -> None:
        counters = self._counters
        for change in monitor.read(self._handshake_failed if self.auth is not None else None):
            counters.subscriber_connections = max(0, counters.subscriber_connections + change)

    def _read_agents_monitor(self, monitor: _SocketMonitor) -> None:
        counters = self._counters
        for change in monitor.read(self._handshake_failed if self.auth is not None else None):
            counters.agent_connections = max(0, counters.agent_connections + change)
            if change < 0:
                counters.agent_disconnects += 1

    def _handshake_failed(self, role: str, peer: str | None, why: str) -> None:
        if self.auth is not None:
            self.auth.handshake_failed(role, peer, why)

    def _notify_agent(self, agent: str, reason: str, now: float) -> None:
        """Tell ``agent`` why its messages are refused (protocol: NOTICE), once per reason per interval."""
        memo = (agent, reason)
        if now - self._notices_sent.get(memo, -NOTICE_INTERVAL_S) < NOTICE_INTERVAL_S:
            return
        if len(self._notices_sent) >= 10_000:
            self._notices_sent.clear()
        self._notices_sent[memo] = now
        agents = self._agents
        if agents is None:
            return
        topic = proto.notice_topic(agent, reason)
        agents.setsockopt(zmq.SUBSCRIBE, topic)
        agents.setsockopt(zmq.UNSUBSCRIBE, topic)

    def _publish(self, subscribers: zmq.Socket[bytes], frames: list[tuple[bytes, bytes]]) -> None:
        # This loop runs once per published update: _send inlined, and the
        # Cython send called directly (transport.fast_send): 2.5 -> 1.0 µs an update.
        send, more, last = fast_send, zmq.SNDMORE | zmq.DONTWAIT, zmq.DONTWAIT
        for topic, payload in frames:
            try:
                send(subscribers, topic, more)
                send(subscribers, payload, last)
            except zmq.Again:
                pass

    @staticmethod
    def _send(sock: zmq.Socket[bytes], topic: bytes, payload: bytes) -> None:
        # XPUB drops at the high-water mark instead of blocking; DONTWAIT makes
        # sure no option change ever turns that into a stall of the hub.
        try:
            sock.send(topic, zmq.SNDMORE | zmq.DONTWAIT)
            sock.send(payload, zmq.DONTWAIT)
        except zmq.Again:
            pass

    def _read_queries(self, query: zmq.Socket[bytes], now: float, wall: float) -> None:
        """Read up to this turn's budget of queries; answer them through the query core."""
        queries = self.queries
        assert queries is not None
        auth = self.auth
        allow = auth.allow_list if auth is not None else None
        hub_key = auth.server_public_key.decode("ascii") if auth is not None else None
        replies: list[tuple[bytes, bytes]] = []
        try:
            self._read_query_frames(query, now, wall, allow, hub_key, replies)
        finally:
            # Operator commands changed the book: stored before any reply says "done".
            self._persist()
            for to, frame in replies:
                self._reply(query, to, frame)

    def _read_query_frames(
        self,
        query: zmq.Socket[bytes],
        now: float,
        wall: float,
        allow: AllowList | None,
        hub_key: str | None,
        replies: list[tuple[bytes, bytes]],
    ) -> None:
        queries = self.queries
        assert queries is not None
        auth = self.auth
        for _ in range(QUERY_RECV_BUDGET):
            try:
                frames = query.recv_multipart(zmq.DONTWAIT, copy=False)
            except zmq.Again:
                return
            self._counters.queries += 1
            if len(frames) == 3 and not frames[1].bytes:  # a REQ socket's delimiter: answered, in its framing
                bad = queries.malformed(
                    frames[0].bytes,
                    proto.salvage_request_id(frames[2].bytes, self._query_limits.max_frame_bytes),
                    "a leading empty frame (a REQ socket?): send the envelope as the only frame, from a DEALER",
                    wall,
                )
                self._reject(bad.invalid or "", decode=True)
                for to, frame in bad.replies:
                    with contextlib.suppress(zmq.Again):
                        query.send_multipart([to, b"", frame], zmq.DONTWAIT)
                continue
            if len(frames) != 2:
                self._reject(f"{len(frames)} frames in one query (expected identity + 1)", decode=True)
                continue
            identity, data = frames[0].bytes, frames[1]
            try:
                request = proto.decode(data.bytes, self._query_limits)
            except proto.ProtocolError as error:
                bad = queries.malformed(
                    identity, proto.salvage_request_id(data.bytes, self._query_limits.max_frame_bytes), str(error), wall
                )
                self._reject(str(error), decode=True)
                for to, frame in bad.replies:
                    self._reply(query, to, frame)
                continue
            try:
                outcome = queries.request(
                    request,
                    identity,
                    now,
                    wall,
                    key=sender_key(data) if auth is not None else None,
                    allow=allow,
                    hub_key=hub_key,
                    peer=_address_of(data) if isinstance(request, proto.Command) else None,
                )
            except Exception as error:  # a bug must not take the hub down: count, log, carry on
                self._reject(f"{type(error).__name__}: {error}", decode=False)
                continue
            if outcome.refused is not None:
                self._unauthorised(outcome.refused)
            if outcome.invalid is not None:
                self._reject(outcome.invalid, decode=True)
            replies.extend(outcome.replies)

    @staticmethod
    def _reply(query: zmq.Socket[bytes], identity: bytes, frame: bytes) -> None:
        # DONTWAIT: a client that stopped reading times out and asks again;
        # it never stalls the hub.
        with contextlib.suppress(zmq.Again):
            query.send_multipart([identity, frame], zmq.DONTWAIT)

    def _check_grants(self) -> None:
        """One WARNING per pair of agent grants whose mounts nest (at start-up, and when the allow-list changes)."""
        auth = self.auth
        if auth is None or auth.allow_list is self._grants_checked:
            return
        allow = self._grants_checked = auth.allow_list
        for pair in nested_mounts((grant.name, mount) for grant in allow.agents.values() for mount in grant.mounts):
            if pair in self._nested_warned:
                continue
            self._nested_warned.add(pair)
            outer, outer_mount, inner, inner_mount = pair
            log.warning(
                "%s: agent %s may publish at %s, which holds agent %s's mount %s: nested mounts, so %s can "
                "publish into %s's subtree and a point both claim stays with whichever sent it first. "
                "Grant disjoint mounts (or one mount to share its parent)",
                allow.source,
                outer,
                outer_mount,
                inner,
                inner_mount,
                outer,
                inner,
            )


@contextlib.contextmanager
def _binding(role: str, endpoint: str) -> Iterator[None]:
    """Turn a failure to listen at ``endpoint`` into a :class:`BindError` naming ``role`` and the endpoint."""
    try:
        yield
    except zmq.ZMQError as error:  # from the errno: pyzmq's text also carries "(addr=...)"
        code = error.errno
        reason = zmq.strerror(code) if code is not None else None
        raise BindError(role, endpoint, errno_value=code, reason=reason) from error
    except OSError as error:  # our own listener (transport.listen)
        raise BindError(role, endpoint, errno_value=error.errno or errno.EADDRINUSE) from error


def _bind_when_free(sock: zmq.Socket[bytes], endpoint: str, wait_s: float) -> str:
    """Bind, retrying for up to ``wait_s`` while the port is still taken.

    A rebuilt socket rebinds the port its predecessor just closed, and libzmq
    releases that port asynchronously (its I/O thread closes the listener a
    moment after ``close()`` returns): an immediate bind can fail with
    EADDRINUSE. On failure the socket is closed and the error raised.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return transport.bind(sock, endpoint)
        except zmq.ZMQError as error:
            if error.errno != zmq.EADDRINUSE or time.monotonic() >= deadline:
                sock.close(linger=0)
                raise
        time.sleep(0.01)


def _peer_of(frame: zmq.Frame) -> str | None:
    """The sender's address for a log line: ``ip:port`` of its TCP connection
    when libzmq names the connection's socket (ZMQ_SRCFD), else its IP
    (``Peer-Address``), else None. Two processes on one host differ by port."""
    address = None
    with contextlib.suppress(zmq.ZMQError):
        value = frame.get("Peer-Address")
        address = value if isinstance(value, str) and value else None
    try:
        fd: Any = frame.get(zmq.SRCFD)  # an int: typed as a union of every property's type
        if fd < 0:
            return address
        conn = socket.socket(fileno=fd)  # only to ask getpeername(); libzmq keeps the descriptor
        try:
            name = conn.getpeername()
        finally:
            conn.detach()
    except (zmq.ZMQError, OSError, ValueError, TypeError):
        return address
    if isinstance(name, tuple) and len(name) >= 2:
        host = str(name[0])
        return f"[{host}]:{name[1]}" if ":" in host else f"{host}:{name[1]}"
    return address


def _address_of(frame: zmq.Frame) -> str | None:
    """The sender's IP address (``Peer-Address``), for naming an anonymous caller."""
    try:
        value = frame.get("Peer-Address")
    except zmq.ZMQError:
        return None
    return value if isinstance(value, str) and value else None


def _sender(frame: zmq.Frame) -> tuple[str | None, bool]:
    """Who sent a frame -- its CURVE key, else its IP address -- and whether it has metadata at all
    (libzmq's own unsubscriptions of a closed connection have none)."""
    key = sender_key(frame)
    if key is not None:
        return key, True
    try:
        address = frame.get("Peer-Address")
    except zmq.ZMQError:
        return None, False
    return (address if isinstance(address, str) and address else None), True


def _heartbeat_topic_of(grant: SubscriberGrant) -> bytes:
    return proto.HUB_HEARTBEAT_TOPIC if grant.prefixes is None else proto.scope_heartbeat_topic(grant.name)


def _scopes_of(allow: AllowList) -> dict[bytes, SubscriberGrant]:
    """Heartbeat topic -> grant, for every prefix-limited subscriber grant."""
    return {
        proto.scope_heartbeat_topic(grant.name): grant
        for grant in allow.subscribers.values()
        if grant.prefixes is not None
    }


def _close_listener(listener: socket.socket) -> None:
    """Close the hub's own listening socket (and remove an ipc socket file, which libzmq leaves to us)."""
    with contextlib.suppress(OSError):
        if listener.family == socket.AF_UNIX:
            name = listener.getsockname()
            if isinstance(name, str) and name and not name.startswith("\0"):
                os.unlink(name)
    listener.close()


def _subscriber_grants_narrowed(before: AllowList, after: AllowList) -> bool:
    """Whether some subscriber key lost access it had (revoked, or fewer prefixes)."""
    for grant in before.subscribers.values():
        now = after.subscriber_for_key(grant.public_key)
        if now is None:
            return True
        if grant.prefixes is None and now.prefixes is not None:
            return True
        if grant.prefixes is not None and now.prefixes is not None and not set(now.prefixes) >= set(grant.prefixes):
            return True
    return False
