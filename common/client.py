"""Follow a subtree of the hub's live tree: ``Subscriber`` (the Clone pattern).

::

    sub = Subscriber("tcp://hub:7763", prefix="GS1/Antenna1/")
    with sub:
        print(sub.tree)                 # {path: NodeState}, the current subtree
        for change in sub.changes():    # blocks; yields Change(path, old, new)
            print(change)

How it stays correct (see the protocol module for the wire side):

1. HELLO on the hub's query socket tells the client where the hub publishes
   and which heartbeat topic is its key's (its read scope's).
2. Subscribe the prefix, then that heartbeat topic; the hub answers a new
   heartbeat subscription with a heartbeat at once, and since subscriptions
   travel in order, that heartbeat proves the prefix is subscribed too -- if
   its ``published`` lists the prefix. Until such a heartbeat arrives the
   client re-sends both subscriptions (unsubscribe + subscribe) every
   :data:`RESUBSCRIBE_S`: the hub may have set one aside (its alignment guard,
   see ``gsmon.hub.subscriptions``).
3. Ask for a snapshot of the prefix; apply it; from then on apply only
   updates whose ``seq`` is greater than the snapshot's and than the seq of
   the node it holds (the hub may send a snapshot over several loop turns,
   so a node in it can be newer than the snapshot's start).
4. Each hub heartbeat says how many updates the hub published under the
   prefix. If the client did not receive exactly that many since its
   snapshot (it was too slow and ZeroMQ dropped some), or the hub's epoch
   changed (the hub restarted), it takes a new snapshot by itself. A
   heartbeat newer than the snapshot that does not list the prefix at all
   means the hub no longer counts (nor publishes) it: the client subscribes
   again as in 2 and then takes a new snapshot, so no accounting fault on
   the hub's side can freeze it silently. A hub that stops sending
   heartbeats is reported as lost until it is back.
5. A handshake the hub refused is final for that socket in libzmq: the
   client watches both sockets' monitors (:class:`~gsmon.common.transport.LinkWatch`),
   makes a new socket after 1, 2, 4 ... 30 s, and says why it failed.
   ``connect`` raises one of the :class:`HubUnavailableError` subclasses,
   whose message says what is wrong and what to do.

Everything runs in the caller's thread: :meth:`Subscriber.poll` reads what
arrived and returns the changes, :meth:`Subscriber.changes` is a blocking
iterator over them, and callbacks added with :meth:`Subscriber.add_callback`
are called from ``poll``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import zmq
from zmq.utils.monitor import recv_monitor_message

from gsmon.common import protocol as proto
from gsmon.common import transport
from gsmon.common.alerts import Alert
from gsmon.common.errors import UnavailableError
from gsmon.common.keys import ClientKeys

__all__ = [
    "DEFAULT_QUERY_ENDPOINT",
    "Change",
    "HandshakeFailedError",
    "HubKeysRequiredError",
    "HubNotListeningError",
    "HubTimeoutError",
    "HubUnavailableError",
    "NodeState",
    "NotAQueryEndpointError",
    "Subscriber",
]

log = logging.getLogger(__name__)

DEFAULT_QUERY_ENDPOINT: Final = transport.default_endpoint(transport.DEFAULT_QUERY_PORT)
# Heartbeats missed before the hub is reported lost.
HUB_LIVENESS: Final = 3.0
# How often subscriptions are sent again until a heartbeat confirms them.
RESUBSCRIBE_S: Final = 1.0


class HubUnavailableError(UnavailableError, ConnectionError):
    """The hub did not answer (the subclass says why: its message is one line saying what to do)."""


class HubNotListeningError(HubUnavailableError):
    """Nothing listens at the endpoint (connection refused)."""


class HubKeysRequiredError(HubUnavailableError):
    """The hub requires CURVE keys (or, with keys given, uses none)."""


class HandshakeFailedError(HubUnavailableError):
    """The CURVE handshake failed: this key is not granted, or the hub's public key is wrong."""


class NotAQueryEndpointError(HubUnavailableError):
    """The endpoint is some other kind of socket (e.g. the hub's agents port)."""


class HubTimeoutError(HubUnavailableError):
    """Connected, but no answer in time."""


_ERRORS: Final[dict[transport.LinkProblem, type[HubUnavailableError]]] = {
    transport.LinkProblem.NOTHING_LISTENING: HubNotListeningError,
    transport.LinkProblem.KEYS_REQUIRED: HubKeysRequiredError,
    transport.LinkProblem.KEYS_NOT_USED: HubKeysRequiredError,
    transport.LinkProblem.KEY_REFUSED: HandshakeFailedError,
    transport.LinkProblem.HUB_KEY_MISMATCH: HandshakeFailedError,
    transport.LinkProblem.WRONG_SOCKET_TYPE: NotAQueryEndpointError,
}


class _Watched:
    """A socket with its monitor and the :class:`~gsmon.common.transport.LinkWatch` reading it."""

    __slots__ = ("backoff", "monitor", "retry_at", "socket", "watch")

    def __init__(self, sock: zmq.Socket[bytes], uses_keys: bool) -> None:
        self.socket = sock
        self.monitor = transport.monitor_socket(sock, transport.MONITOR_EVENTS)
        self.watch = transport.LinkWatch(uses_keys)
        self.backoff = transport.Backoff()
        self.retry_at: float | None = None

    def read(self) -> list[transport.LinkProblem]:
        found: list[transport.LinkProblem] = []
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.DONTWAIT)
            except zmq.Again:
                return found
            problem = self.watch.feed(event["event"], int(event["value"]))
            if problem is not None:
                found.append(problem)

    def given_up(self) -> bool:
        """Whether libzmq will not retry this socket's connection (a refused handshake)."""
        return self.watch.needs_new_socket

    def close(self) -> None:
        self.monitor.close(linger=0)
        self.socket.close(linger=0)


def _operator_fields(keys: dict[str, Any] | None) -> tuple[Any, ...]:
    """NodeState's operator fields from a NODE's operator keys. A node with ``since`` comes from a hub with
    the alarm layer, which leaves out the counts at 0 (attention, shelved_below, unacked_below): those read 0;
    without ``since`` they are not judged (None), e.g. a hub without a state store relaying debounce keys."""
    if not keys:
        return _NO_OPERATOR_FIELDS
    judged: int | None = 0 if "since" in keys else None
    return (
        keys.get("since"),
        keys.get("attention", judged),
        keys.get("alarm"),
        keys.get("shelf_id"),
        keys.get("shelved_below", judged),
        keys.get("unacked_below", judged),
        keys.get("raw_alert"),
        keys.get("pending"),
        keys.get("flapping"),
    )


_NO_OPERATOR_FIELDS: Final[tuple[Any, ...]] = (None,) * 9


@dataclass(frozen=True, slots=True)
class NodeState:
    """One node of the followed subtree, as the hub last published it."""

    path: str
    kind: str  # "point" or "parent"
    alertcode: int
    alertstr: str
    stale: bool
    value: Any
    agent: str | None
    polled_at_s: float | None
    received_at_s: float | None
    dt_s: float | None
    seq: int
    reported_alert: int | None = None  # points: the agent's own last code, when not alertcode (a STALE point's "was")
    liveness_unknown: bool = False  # the hub cannot vouch for its freshness now (it is behind, or was paused)
    # The operator layer (NODE keys of minor 2; None: not sent): read by gsmon.common.watch.adapter.
    since: float | None = None
    attention: int | None = None
    alarm: Any = None
    shelf_id: int | None = None
    shelved_below: int | None = None
    unacked_below: int | None = None
    raw_alert: int | None = None
    pending: Any = None
    flapping: Any = None

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]

    @classmethod
    def from_update(cls, update: proto.NodeUpdate) -> NodeState:
        return cls(
            update.path,
            update.kind,
            update.alertcode,
            update.alertstr,
            update.stale,
            update.value,
            update.agent,
            update.polled_at_s,
            update.received_at_s,
            update.dt_s,
            update.seq,
            update.reported_alert,
            update.liveness_unknown,
            *_operator_fields(update.operator),
        )


@dataclass(frozen=True, slots=True)
class Change:
    """A node appeared (``old`` is None), changed, or went away (``new`` is None)."""

    path: str
    old: NodeState | None
    new: NodeState | None


class Subscriber:
    """A live, self-healing copy of the subtree under ``prefix``.

    Args:
        hub: The hub's *query* endpoint (it tells the client the rest).
        prefix: Path prefix to follow; ``"GS1/"`` is everything under GS1,
            ``""`` the whole tree.
        min_alert: Only report nodes whose alert code is at least this (an
            int or an Alert class); a node dropping below it is reported
            once, as removed from the view.
        timeout_s: How long to wait for the hub when connecting or resyncing.
        curve: CURVE keys, when the hub requires them.
    """

    def __init__(
        self,
        hub: str = DEFAULT_QUERY_ENDPOINT,
        prefix: str = "",
        min_alert: int | type[Alert] | None = None,
        *,
        timeout_s: float = 5.0,
        curve: ClientKeys | None = None,
        rcvhwm: int = 1_000_000,
    ) -> None:
        transport.parse_endpoint(hub, connect=True)
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        self.hub = hub
        self.prefix = prefix
        if isinstance(min_alert, type) and issubclass(min_alert, Alert):
            self.min_alert: int | None = min_alert.alertcode
        else:
            self.min_alert = min_alert
        self.timeout_s = timeout_s
        self._curve = curve
        self._rcvhwm = rcvhwm
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._sub: _Watched | None = None
        self._dealer: _Watched | None = None
        self._heartbeat_topic = proto.HUB_HEARTBEAT_TOPIC
        # Subscriptions not yet confirmed by a heartbeat listing the prefix: re-sent at this time.
        self._confirm_at: float | None = None
        self._confirmed = True  # until _subscribe: nothing awaits confirmation
        self._client_id = f"client-{secrets.token_hex(4)}"
        self._requests = itertools.count(1)
        self._nodes: dict[str, NodeState] = {}
        self._callbacks: list[Callable[[Change], Any]] = []
        # Sync state (see the module docstring).
        self.epoch: int | None = None
        self._snapshot_seq = 0
        self._base_published = 0
        self._received = 0
        self._last_heartbeat = 0.0
        self._heartbeat_s = 1.0
        self._hub_clock_offset_s = 0.0
        self._needs_resync = False
        self.hub_lost = False
        self.resyncs = 0
        self.endpoints: dict[str, str] = {}

    # ------------------------------------------------------------------

    def connect(self) -> Subscriber:
        """Find the hub, subscribe, and load the first snapshot.

        Raises :class:`HubUnavailableError` if the hub does not answer in time.
        """
        if self._context is not None:
            return self
        self._context = zmq.Context()
        try:
            self._dealer = self._watched(zmq.DEALER, self.hub)
            info = self._hello()
            self._heartbeat_s = info.heartbeat_s
            self._heartbeat_topic = info.heartbeat_topic or proto.HUB_HEARTBEAT_TOPIC
            host = transport.host_of(self.hub)
            self.endpoints = {key: transport.with_host(value, host) for key, value in info.endpoints.items()}
            self._sub = self._watched(zmq.SUB, self.endpoints["subscribers"], rcvhwm=self._rcvhwm)
            self._subscribe()
            self._await_heartbeat()
            self._resync()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for watched in (self._sub, self._dealer):
            if watched is not None:
                watched.close()
        self._sub = self._dealer = None
        if self._context is not None:
            self._context.term()
            self._context = None

    def __enter__(self) -> Subscriber:
        return self.connect()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------

    @property
    def tree(self) -> dict[str, NodeState]:
        """The current subtree: path -> NodeState (a copy, filtered by ``min_alert``)."""
        return {path: node for path, node in self._nodes.items() if self._visible(node)}

    def hub_time(self) -> float:
        """The hub's wall clock now, as its heartbeats tell it (ages use this,
        so a skewed clock on this machine does not distort them)."""
        return time.time() + self._hub_clock_offset_s

    def age_s(self, node: NodeState) -> float | None:
        """Seconds since the hub received the node's latest value."""
        return None if node.received_at_s is None else max(0.0, self.hub_time() - node.received_at_s)

    def add_callback(self, callback: Callable[[Change], Any]) -> None:
        """Call ``callback(change)`` for every change, from :meth:`poll`."""
        self._callbacks.append(callback)

    def poll(self, timeout_s: float = 0.0) -> list[Change]:
        """Wait up to ``timeout_s`` for news; apply what arrived; return the changes."""
        if self._sub is None:
            raise RuntimeError("connect() first")
        self._look_after_sockets()  # may replace a socket
        assert self._sub is not None
        sub = self._sub.socket
        changes: list[Change] = []
        if sub.poll(int(timeout_s * 1000)):
            for _ in range(100_000):
                try:
                    topic, payload = _two_frames(sub.recv_multipart(zmq.DONTWAIT))
                except zmq.Again:
                    break
                except proto.ProtocolError as error:
                    log.debug("dropped a message from the hub: %s", error)
                    continue
                self._handle(topic, payload, changes)
        now = time.monotonic()
        lost = now - self._last_heartbeat > HUB_LIVENESS * self._heartbeat_s
        if lost and not self.hub_lost:
            log.warning("no heartbeat from the hub for %.1f s", now - self._last_heartbeat)
        self.hub_lost = lost
        if self._confirm_at is not None and now >= self._confirm_at:
            self._subscribe(again=True)
        if self._needs_resync and not lost and self._confirmed:
            try:
                changes.extend(self._resync())
            except HubUnavailableError as error:
                log.warning("resync failed, will retry: %s", error)
        for change in changes:
            for callback in self._callbacks:
                callback(change)
        return changes

    def changes(self, timeout_s: float | None = None) -> Iterator[Change]:
        """Yield changes as they come (forever, or until ``timeout_s`` passes)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while deadline is None or time.monotonic() < deadline:
            remaining = 0.25 if deadline is None else min(0.25, max(0.0, deadline - time.monotonic()))
            yield from self.poll(remaining)

    def __iter__(self) -> Iterator[Change]:
        return self.changes()

    # ------------------------------------------------------------------

    def _watched(self, socket_type: int, endpoint: str, rcvhwm: int = 1000) -> _Watched:
        """A socket connected to ``endpoint``, with its monitor (attached before the connect)."""
        assert self._context is not None
        sock = transport.make_socket(self._context, socket_type, transport.SocketOptions(rcvhwm=rcvhwm))
        if self._curve is not None:
            self._curve.apply(sock)
        watched = _Watched(sock, self._curve is not None)
        sock.connect(endpoint)
        return watched

    def _subscribe(self, again: bool = False) -> None:
        """Subscribe the prefix, then the heartbeat topic (``again``: cancel and re-send both)."""
        watched = self._sub
        if watched is not None:
            sub = watched.socket
            # Order matters: the heartbeat that answers the second subscription
            # proves the first is in place at the hub.
            for topic in (self.prefix.encode(), self._heartbeat_topic):
                if again:
                    sub.setsockopt(zmq.UNSUBSCRIBE, topic)
                sub.setsockopt(zmq.SUBSCRIBE, topic)
        self._confirmed = False
        self._confirm_at = time.monotonic() + RESUBSCRIBE_S

    def _look_after_sockets(self) -> None:
        """Read both monitors; replace a socket whose handshake libzmq will not retry (with backoff)."""
        now = time.monotonic()
        for name in ("_sub", "_dealer"):
            watched: _Watched | None = getattr(self, name)
            if watched is None:
                continue
            for problem in watched.read():
                log.warning("%s", self._describe(problem, watched))
            if watched.watch.handshaken:
                watched.backoff.reset()
            if watched.watch.needs_new_socket and watched.retry_at is None:
                watched.retry_at = now + watched.backoff.next_delay()
            if watched.retry_at is not None and now >= watched.retry_at:
                self._replace(name, watched)

    def _replace(self, name: str, old: _Watched) -> None:
        endpoint = self.hub if name == "_dealer" else self.endpoints["subscribers"]
        kind = zmq.DEALER if name == "_dealer" else zmq.SUB
        log.info("retrying the hub at %s with a new socket", endpoint)
        new = self._watched(kind, endpoint, rcvhwm=self._rcvhwm if kind == zmq.SUB else 1000)
        new.backoff, new.watch = old.backoff, old.watch
        new.watch.new_socket()
        old.close()
        setattr(self, name, new)
        if name == "_sub":
            self._subscribe()
            self._needs_resync = True

    def _describe(self, problem: transport.LinkProblem, watched: _Watched) -> str:
        endpoint = self.hub if watched is self._dealer else self.endpoints.get("subscribers", self.hub)
        return transport.describe_problem(problem, endpoint, who="this client", what="hub's query")

    def _unavailable(self, waited: str) -> HubUnavailableError:
        """The error to raise after waiting in vain, typed by what the query socket's monitor saw."""
        watched = self._dealer
        if watched is not None:
            watched.read()
            problem = watched.watch.problem
            if problem is not None:
                return _ERRORS[problem](self._describe(problem, watched))
        return HubTimeoutError(
            f"no answer from the hub at {self.hub} within {self.timeout_s:g} s ({waited}): "
            "it may be overloaded or stopped; try again, or a longer --timeout"
        )

    def _header(self) -> dict[str, Any]:
        return {"sender": self._client_id, "epoch": 0, "seq": next(self._requests), "sent_ns": time.time_ns()}

    def _request(self, msg: proto.Hello | proto.SnapshotRequest) -> Iterator[proto.Message]:
        """Send a request; yield its replies until the caller stops or time runs out."""
        watched = self._dealer
        assert watched is not None
        if watched.given_up():
            # libzmq gave up on it; poll() makes a new one when its backoff has passed.
            raise self._unavailable(msg.kind.name)
        dealer = watched.socket
        with contextlib.suppress(zmq.Again):  # not connected yet: nothing queued, and the wait below says why
            dealer.send(proto.encode(msg), zmq.DONTWAIT)
        deadline = time.monotonic() + self.timeout_s
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0 or not dealer.poll(min(remaining_ms, 100)):
                if remaining_ms <= 0:
                    raise self._unavailable(msg.kind.name)
                watched.read()
                if watched.given_up() and watched.watch.problem is not None:
                    raise self._unavailable(msg.kind.name)  # refused for good: no use waiting
                continue
            try:
                reply = proto.decode(dealer.recv())
            except proto.ProtocolError as error:
                log.debug("dropped a reply from the hub: %s", error)
                continue
            if getattr(reply, "request_id", None) != msg.request_id:
                continue  # a late reply to an earlier request
            if isinstance(reply, proto.Error):
                raise HubUnavailableError(f"the hub refused: {reply.message}")
            deadline = time.monotonic() + self.timeout_s  # each reply renews the wait
            yield reply

    def _hello(self) -> proto.Info:
        for reply in self._request(proto.Hello(**self._header(), request_id=next(self._requests))):
            if isinstance(reply, proto.Info):
                return reply
        raise AssertionError("unreachable")  # pragma: no cover

    def _await_heartbeat(self) -> None:
        """Wait for a heartbeat that confirms the subscriptions, re-sending them every RESUBSCRIBE_S."""
        watched = self._sub
        assert watched is not None
        sub = watched.socket
        deadline = time.monotonic() + self.timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            confirm_at = self._confirm_at or deadline
            if time.monotonic() >= confirm_at:
                self._subscribe(again=True)
                continue
            if not sub.poll(int(max(0.0, min(remaining, confirm_at - time.monotonic())) * 1000) + 1):
                continue
            try:
                topic, payload = _two_frames(sub.recv_multipart())
                message = proto.decode_hub_message(topic, payload)
            except proto.ProtocolError:
                continue
            if isinstance(message, proto.HubHeartbeat) and topic == self._heartbeat_topic:
                self._note_heartbeat(message)
                if self._confirms(message):
                    return
        for problem in watched.read():
            raise _ERRORS[problem](self._describe(problem, watched))
        if self._last_heartbeat:
            raise HubTimeoutError(
                f"the hub at {self.hub} did not take the subscription to {self.prefix!r} within {self.timeout_s:g} s "
                "(is it outside this key's grant?)"
            )
        raise HubTimeoutError(
            f"no heartbeat from the hub's publisher {self.endpoints.get('subscribers')} within {self.timeout_s:g} s: "
            "is its subscribers port reachable from here?"
        )

    def _confirms(self, beat: proto.HubHeartbeat) -> bool:
        """Whether ``beat`` shows our subscriptions in place (it lists the prefix, or cannot tell)."""
        if self.prefix in beat.published or not beat.complete:
            self._confirmed = True
            self._confirm_at = None
        return self._confirmed

    def _note_heartbeat(self, beat: proto.HubHeartbeat) -> None:
        self._last_heartbeat = time.monotonic()
        self._heartbeat_s = beat.interval_s
        self._hub_clock_offset_s = beat.sent_at_s - time.time()

    def _resync(self) -> list[Change]:
        """Replace the view with a fresh snapshot; return what changed."""
        request = proto.SnapshotRequest(**self._header(), request_id=next(self._requests), prefix=self.prefix)
        fresh: dict[str, NodeState] = {}
        epoch = None
        for reply in self._request(request):
            epoch = reply.epoch
            if isinstance(reply, proto.SnapshotChunk):
                for path, payload in reply.nodes:
                    try:
                        update = proto.decode_node_payload(path, payload)
                    except proto.ProtocolError as error:
                        log.debug("dropped a snapshot node: %s", error)
                        continue
                    if update.kind != proto.NODE_REMOVED:
                        fresh[path] = NodeState.from_update(update)
            elif isinstance(reply, proto.SnapshotEnd):
                self._snapshot_seq = reply.seq_at
                self._base_published = reply.published
                break
        self.epoch = epoch
        self._received = 0
        self._needs_resync = False
        self.resyncs += 1
        old, self._nodes = self._nodes, fresh
        changes = [Change(path, node, fresh.get(path)) for path, node in old.items() if fresh.get(path) != node]
        changes += [Change(path, None, node) for path, node in fresh.items() if path not in old]
        return [seen for change in changes if (seen := self._as_seen(change)) is not None]

    def _handle(self, topic: bytes, payload: bytes, changes: list[Change]) -> None:
        try:
            message = proto.decode_hub_message(topic, payload)
        except proto.ProtocolError as error:
            log.debug("dropped a message from the hub: %s", error)
            return
        if isinstance(message, proto.HubHeartbeat):
            if topic != self._heartbeat_topic:
                return  # another scope's (a subscription to "" receives them all)
            self._note_heartbeat(message)
            if not self._confirmed:
                if self._confirms(message):
                    self._needs_resync = True  # subscribed again: a fresh snapshot
                return
            if message.epoch != self.epoch:
                self._needs_resync = True
                return
            published = message.published.get(self.prefix)
            if published is None and message.complete and message.seq >= self._snapshot_seq:
                # The hub does not count (nor publish) our prefix: subscribe again, then re-snapshot.
                log.info("the hub no longer lists %r as followed; subscribing again", self.prefix)
                self._subscribe(again=True)
                return
            # A heartbeat sent before our snapshot was taken (seq below the
            # snapshot's) counts updates the snapshot already holds: skip it.
            if (
                published is not None
                and message.seq >= self._snapshot_seq
                and published - self._base_published != self._received
            ):
                log.info(
                    "missed %d update(s) from the hub; taking a new snapshot",
                    published - self._base_published - self._received,
                )
                self._needs_resync = True
            return
        if message.epoch != self.epoch:
            self._needs_resync = True
            return
        if message.seq <= self._snapshot_seq:
            return  # already in the snapshot
        self._received += 1
        old = self._nodes.get(message.path)
        if old is not None and message.seq <= old.seq:
            return  # the snapshot already held this node at that change or a later one
        if message.kind == proto.NODE_REMOVED:
            if old is None:
                return
            del self._nodes[message.path]
            new = None
        else:
            new = self._nodes[message.path] = NodeState.from_update(message)
        seen = self._as_seen(Change(message.path, old, new))
        if seen is not None:
            changes.append(seen)

    def _visible(self, node: NodeState | None) -> bool:
        return node is not None and (self.min_alert is None or node.alertcode >= self.min_alert)

    def _as_seen(self, change: Change) -> Change | None:
        """The change as the ``min_alert`` view sees it: a node rising to the
        threshold appears (``old`` None), one dropping below it goes away (``new``
        None); None when it stays out of view."""
        old = change.old if self._visible(change.old) else None
        new = change.new if self._visible(change.new) else None
        return None if old is None and new is None else Change(change.path, old, new)


def _two_frames(frames: list[bytes]) -> tuple[bytes, bytes]:
    if len(frames) != 2:
        raise proto.ProtocolError(f"expected [topic, payload], got {len(frames)} frames")
    return frames[0], frames[1]
