"""Follow a subtree of the hub's live tree: ``Subscriber`` (the Clone pattern).

::

    sub = Subscriber("tcp://hub:7763", prefix="GS1/Antenna1/")
    with sub:
        print(sub.tree)                 # {path: NodeState}, the current subtree
        for change in sub.changes():    # blocks; yields Change(path, old, new)
            print(change)

How it stays correct (see the protocol module for the wire side):

1. HELLO on the hub's query socket tells the client where the hub publishes.
2. Subscribe the prefix, then the hub's heartbeat topic; the hub answers a new
   heartbeat subscription with a heartbeat at once, and since subscriptions
   travel in order, that heartbeat proves the prefix is subscribed too.
3. Ask for a snapshot of the prefix; apply it; from then on apply only
   updates whose ``seq`` is greater than the snapshot's and than the seq of
   the node it holds (the hub may send a snapshot over several loop turns,
   so a node in it can be newer than the snapshot's start).
4. Each hub heartbeat says how many updates the hub published under the
   prefix. If the client did not receive exactly that many since its
   snapshot (it was too slow and ZeroMQ dropped some), or the hub's epoch
   changed (the hub restarted), it takes a new snapshot by itself. A hub
   that stops sending heartbeats is reported as lost until it is back.

Everything runs in the caller's thread: :meth:`Subscriber.poll` reads what
arrived and returns the changes, :meth:`Subscriber.changes` is a blocking
iterator over them, and callbacks added with :meth:`Subscriber.add_callback`
are called from ``poll``.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import zmq

from gsmon.common import protocol as proto
from gsmon.common import transport
from gsmon.common.alerts import Alert
from gsmon.common.keys import ClientKeys

__all__ = ["DEFAULT_QUERY_ENDPOINT", "Change", "HubUnavailableError", "NodeState", "Subscriber"]

log = logging.getLogger("gsmon.client")

DEFAULT_QUERY_ENDPOINT: Final = transport.default_endpoint(transport.DEFAULT_QUERY_PORT)
# Heartbeats missed before the hub is reported lost.
HUB_LIVENESS: Final = 3.0


class HubUnavailableError(ConnectionError):
    """The hub did not answer in time (wrong endpoint, hub down, or keys refused)."""


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
        self._sub: zmq.Socket[bytes] | None = None
        self._dealer: zmq.Socket[bytes] | None = None
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
            self._dealer = self._socket(zmq.DEALER)
            self._dealer.connect(self.hub)
            info = self._hello()
            self._heartbeat_s = info.heartbeat_s
            host = transport.host_of(self.hub)
            self.endpoints = {key: transport.with_host(value, host) for key, value in info.endpoints.items()}
            self._sub = self._socket(zmq.SUB, rcvhwm=self._rcvhwm)
            self._sub.connect(self.endpoints["subscribers"])
            # Order matters: the heartbeat that answers the second subscription
            # proves the first is in place at the hub.
            self._sub.setsockopt(zmq.SUBSCRIBE, self.prefix.encode())
            self._sub.setsockopt(zmq.SUBSCRIBE, proto.HUB_HEARTBEAT_TOPIC)
            self._await_heartbeat()
            self._resync()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for sock in (self._sub, self._dealer):
            if sock is not None:
                sock.close(linger=0)
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
        sub = self._sub
        if sub is None:
            raise RuntimeError("connect() first")
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
        if self._needs_resync and not lost:
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

    def _socket(self, socket_type: int, rcvhwm: int = 1000) -> zmq.Socket[bytes]:
        assert self._context is not None
        sock = transport.make_socket(self._context, socket_type, transport.SocketOptions(rcvhwm=rcvhwm))
        if self._curve is not None:
            self._curve.apply(sock)
        return sock

    def _header(self) -> dict[str, Any]:
        return {"sender": self._client_id, "epoch": 0, "seq": next(self._requests), "sent_ns": time.time_ns()}

    def _request(self, msg: proto.Hello | proto.SnapshotRequest) -> Iterator[proto.Message]:
        """Send a request; yield its replies until the caller stops or time runs out."""
        dealer = self._dealer
        assert dealer is not None
        dealer.send(proto.encode(msg), zmq.DONTWAIT)
        deadline = time.monotonic() + self.timeout_s
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0 or not dealer.poll(remaining_ms):
                raise HubUnavailableError(f"no answer from the hub at {self.hub} within {self.timeout_s:g} s")
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
        sub = self._sub
        assert sub is not None
        deadline = time.monotonic() + self.timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            if not sub.poll(int(remaining * 1000)):
                break
            try:
                topic, payload = _two_frames(sub.recv_multipart())
                message = proto.decode_hub_message(topic, payload)
            except proto.ProtocolError:
                continue
            if isinstance(message, proto.HubHeartbeat):
                self._note_heartbeat(message)
                return
        raise HubUnavailableError(f"no heartbeat from the hub's publisher {self.endpoints.get('subscribers')}")

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
            self._note_heartbeat(message)
            if message.epoch != self.epoch:
                self._needs_resync = True
                return
            published = message.published.get(self.prefix)
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
