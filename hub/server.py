"""The hub's event loop: poll, decode, call the core, send. One thread.

::

    agents SUB (bind) ----> decode ----> HubState.apply ----+
    query ROUTER (bind) --> decode ----> snapshot / info    |--> drain --> subscribers XPUB (bind)
    subscribers XPUB  ----> (un)subscriptions -> counters   |
    timer (every tick_s) -> HubState.tick -------------------+

Sockets are only touched from this thread (ZeroMQ sockets are not
thread-safe). A frame that fails to decode, or any error while applying it,
is counted and dropped: nothing a peer sends can stop the loop. The hub
publishes a heartbeat on the reserved topic every ``heartbeat_interval_s`` and
at once when a new subscriber subscribes to it.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import zmq
from zmq.utils.monitor import recv_monitor_message

from gsmon.common import protocol as proto
from gsmon.common import transport
from gsmon.common.version import __version__
from gsmon.hub.state import HubSettings, HubState

__all__ = ["HubEndpoints", "HubServer", "ServerLimits"]

log = logging.getLogger("gsmon.hub")

TICK_S: Final = 0.1
# Work done per socket per loop turn before the others get a go, so that a
# flood on one socket cannot starve the rest.
RECV_BUDGET: Final = 2000
SNAPSHOT_CHUNK_NODES: Final = 2000


@dataclass(frozen=True, slots=True)
class HubEndpoints:
    """Where the hub binds (port 0 picks a free port)."""

    agents: str = transport.default_endpoint(transport.DEFAULT_AGENTS_PORT)
    subscribers: str = transport.default_endpoint(transport.DEFAULT_SUBSCRIBERS_PORT)
    query: str = transport.default_endpoint(transport.DEFAULT_QUERY_PORT)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Socket-level limits (the core has its own in HubSettings)."""

    max_frame_bytes: int = proto.MAX_FRAME_BYTES
    max_points_per_message: int = proto.MAX_POINTS_PER_MESSAGE
    max_query_frame_bytes: int = 64 * 1024
    agents_rcvhwm: int = 100_000
    subscribers_sndhwm: int = 100_000
    query_sndhwm: int = 10_000


@dataclass(slots=True)
class _Counters:
    frames_in: int = 0
    decode_errors: int = 0
    apply_errors: int = 0
    queries: int = 0
    last_error_log: float = 0.0
    errors_since_log: int = 0
    subscriber_connections: int = 0


class HubServer:
    """Binds the three sockets and runs the loop until :meth:`stop`."""

    def __init__(
        self,
        endpoints: HubEndpoints,
        settings: HubSettings | None = None,
        limits: ServerLimits | None = None,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        keys_dir: Path | None = None,
    ) -> None:
        self.settings = settings or HubSettings()
        self.limits = limits or ServerLimits()
        self.epoch = secrets.randbits(63)
        self.state = HubState(self.settings, self.epoch, time.monotonic())
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
        self._monitor: zmq.Socket[bytes] | None = None
        self._seq_out = 0
        self.keys_dir = keys_dir

    # ------------------------------------------------------------------

    def bind(self) -> HubEndpoints:
        """Create and bind the sockets; return the real endpoints."""
        limits = self.limits
        agents = transport.make_socket(
            self.context,
            zmq.SUB,
            transport.SocketOptions(rcvhwm=limits.agents_rcvhwm, max_msg_bytes=limits.max_frame_bytes),
        )
        subscribers = transport.make_socket(
            self.context,
            zmq.XPUB,
            transport.SocketOptions(sndhwm=limits.subscribers_sndhwm, xpub_verbose=True),
        )
        query = transport.make_socket(
            self.context,
            zmq.ROUTER,
            transport.SocketOptions(sndhwm=limits.query_sndhwm, max_msg_bytes=limits.max_query_frame_bytes),
        )
        self._agents, self._subscribers, self._query = agents, subscribers, query
        try:
            agents.setsockopt(zmq.SUBSCRIBE, b"")
            requested = self._requested_endpoints
            self.endpoints = HubEndpoints(
                agents=transport.bind(agents, requested.agents),
                subscribers=transport.bind(subscribers, requested.subscribers),
                query=transport.bind(query, requested.query),
            )
            self._monitor = subscribers.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        except Exception:
            self.close()
            raise
        return self.endpoints

    def stop(self) -> None:
        """Ask the loop to end (safe from a signal handler or another thread)."""
        self._stop.set()

    def close(self) -> None:
        for sock in (self._monitor, self._agents, self._subscribers, self._query):
            if sock is not None:
                sock.close(linger=0)
        self._monitor = self._agents = self._subscribers = self._query = None
        if self._own_context:
            self.context.term()

    # ------------------------------------------------------------------

    def run(self, on_tick: Callable[[HubServer], None] | None = None) -> None:
        """Run until :meth:`stop`; always closes the sockets."""
        if self.endpoints is None:
            self.bind()
        agents, subscribers, query, monitor = self._agents, self._subscribers, self._query, self._monitor
        assert agents is not None
        assert subscribers is not None
        assert query is not None
        assert monitor is not None
        poller = zmq.Poller()
        for sock in (agents, subscribers, query, monitor):
            poller.register(sock, zmq.POLLIN)
        state = self.state
        next_tick = time.monotonic()
        next_heartbeat = next_tick
        try:
            while not self._stop.is_set():
                timeout_ms = max(0.0, min(next_tick, next_heartbeat) - time.monotonic()) * 1000
                ready = dict(poller.poll(int(timeout_ms)))
                now, wall = time.monotonic(), time.time()
                if agents in ready:
                    self._read_agents(agents, now, wall)
                send_heartbeat = False
                if subscribers in ready:
                    send_heartbeat = self._read_subscriptions(subscribers)
                if monitor in ready:
                    self._read_monitor(monitor)
                if now >= next_tick:
                    state.stats.subscribers = self._counters.subscriber_connections
                    state.tick(now, wall)
                    next_tick = now + TICK_S
                    if on_tick is not None:
                        on_tick(self)
                self._publish(subscribers, state.drain(wall))
                for name in state.take_resync_requests():
                    topic = proto.RESYNC_TOPIC_PREFIX + name.encode()
                    agents.setsockopt(zmq.SUBSCRIBE, topic)
                    agents.setsockopt(zmq.UNSUBSCRIBE, topic)
                if query in ready:
                    # After drain: every cached payload a snapshot serves is current.
                    self._read_queries(query)
                if send_heartbeat or now >= next_heartbeat:
                    topic, payload = state.heartbeat(wall)
                    self._send(subscribers, topic, payload)
                    next_heartbeat = now + self.settings.heartbeat_interval_s
        finally:
            self.close()

    # ------------------------------------------------------------------

    def _read_agents(self, agents: zmq.Socket[bytes], now: float, wall: float) -> None:
        state = self.state
        counters = self._counters
        for _ in range(RECV_BUDGET):
            try:
                frames = agents.recv_multipart(zmq.DONTWAIT)
            except zmq.Again:
                return
            counters.frames_in += 1
            if len(frames) != 1:
                self._reject(f"{len(frames)} frames in one agent message (expected 1)", decode=True)
                continue
            try:
                msg = proto.decode(frames[0], self._decode_limits)
            except proto.ProtocolError as error:
                self._reject(str(error), decode=True)
                continue
            try:
                state.apply(msg, now, wall)
            except Exception as error:  # a bug must not take the hub down: count, log, carry on
                self._reject(f"{type(error).__name__}: {error}", decode=False)

    def _reject(self, why: str, decode: bool) -> None:
        counters = self._counters
        self.state.stats.messages_rejected += 1
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

    def _read_subscriptions(self, subscribers: zmq.Socket[bytes]) -> bool:
        """Track subscriptions; return whether a heartbeat should go out now."""
        heartbeat_wanted = False
        for _ in range(RECV_BUDGET):
            try:
                frame = subscribers.recv(zmq.DONTWAIT)
            except zmq.Again:
                break
            if not frame or frame[0] not in (0, 1):
                continue
            subscribed = frame[0] == 1
            topic = frame[1:]
            if subscribed and topic == proto.HUB_HEARTBEAT_TOPIC:
                heartbeat_wanted = True
            self.state.subscription(topic, subscribed)
        return heartbeat_wanted

    def _read_monitor(self, monitor: zmq.Socket[bytes]) -> None:
        while True:
            try:
                event = recv_monitor_message(monitor, zmq.DONTWAIT)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_ACCEPTED:
                self._counters.subscriber_connections += 1
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                self._counters.subscriber_connections = max(0, self._counters.subscriber_connections - 1)

    def _publish(self, subscribers: zmq.Socket[bytes], frames: list[tuple[bytes, bytes]]) -> None:
        for topic, payload in frames:
            self._send(subscribers, topic, payload)

    @staticmethod
    def _send(sock: zmq.Socket[bytes], topic: bytes, payload: bytes) -> None:
        # XPUB drops at the high-water mark instead of blocking; DONTWAIT makes
        # sure no option change ever turns that into a stall of the hub.
        try:
            sock.send(topic, zmq.SNDMORE | zmq.DONTWAIT)
            sock.send(payload, zmq.DONTWAIT)
        except zmq.Again:
            pass

    def _read_queries(self, query: zmq.Socket[bytes]) -> None:
        for _ in range(RECV_BUDGET):
            try:
                frames = query.recv_multipart(zmq.DONTWAIT)
            except zmq.Again:
                return
            self._counters.queries += 1
            if len(frames) != 2:
                self._reject(f"{len(frames)} frames in one query (expected identity + 1)", decode=True)
                continue
            identity, data = frames
            try:
                request = proto.decode(data, self._query_limits)
            except proto.ProtocolError as error:
                self._reject(str(error), decode=True)
                continue
            try:
                self._answer(query, identity, request)
            except Exception as error:
                self._reject(f"{type(error).__name__}: {error}", decode=False)

    def _reply(self, query: zmq.Socket[bytes], identity: bytes, msg: proto.Message) -> None:
        # DONTWAIT: a client that stopped reading times out and asks again;
        # it never stalls the hub.
        with contextlib.suppress(zmq.Again):
            query.send_multipart([identity, proto.encode(msg)], zmq.DONTWAIT)

    def _header(self) -> dict[str, Any]:
        self._seq_out += 1
        return {"sender": "hub", "epoch": self.epoch, "seq": self._seq_out, "sent_ns": time.time_ns()}

    def _answer(self, query: zmq.Socket[bytes], identity: bytes, request: proto.Message) -> None:
        if isinstance(request, proto.Hello):
            endpoints = self.endpoints
            assert endpoints is not None
            self._reply(
                query,
                identity,
                proto.Info(
                    **self._header(),
                    request_id=request.request_id,
                    endpoints={
                        "agents": endpoints.agents,
                        "subscribers": endpoints.subscribers,
                        "query": endpoints.query,
                    },
                    heartbeat_s=self.settings.heartbeat_interval_s,
                    version=__version__,
                ),
            )
        elif isinstance(request, proto.SnapshotRequest):
            items, seq_at, published = self.state.snapshot(request.prefix)
            for start in range(0, len(items), SNAPSHOT_CHUNK_NODES):
                chunk = items[start : start + SNAPSHOT_CHUNK_NODES]
                self._reply(
                    query,
                    identity,
                    proto.SnapshotChunk(
                        **self._header(),
                        request_id=request.request_id,
                        nodes=[],
                        packed_nodes=chunk,
                    ),
                )
            self._reply(
                query,
                identity,
                proto.SnapshotEnd(
                    **self._header(),
                    request_id=request.request_id,
                    seq_at=seq_at,
                    count=len(items),
                    published=published,
                ),
            )
        else:
            self._reject(f"{request.kind.name} is not a query", decode=True)
            self._reply(
                query,
                identity,
                proto.Error(
                    **self._header(),
                    request_id=getattr(request, "request_id", 0),
                    message=f"{request.kind.name} is not a request the query socket answers",
                ),
            )


def ready_line(endpoints: HubEndpoints, warnings: list[str]) -> str:
    """The single line a hub prints once it is bound (tests and scripts parse it)."""
    line = f"READY agents={endpoints.agents} subscribers={endpoints.subscribers} query={endpoints.query}"
    if warnings:
        line += " WARNING=" + ",".join(warnings)
    return line
