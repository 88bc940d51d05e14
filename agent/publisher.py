"""The agent's link to its hub(s): one thread, one XPUB socket per hub.

::

    Monitor (workers record polls in a dict: latest poll per point)
        | every flush_interval_s: take what changed
        v
    publisher thread --DELTA--> XPUB --connect--> hub SUB     (one socket per hub)
                     <--subscription-- (a hub (re)subscribed, or asked to resync)
                     --STATE--> that hub only
                     --HEARTBEAT--> when nothing else was sent for heartbeat_interval_s

A hub that is down or slow costs the Monitor nothing: workers only put the
latest poll of each point in a dict, so changes made while the publisher is
busy collapse to the latest value per point; XPUB drops at its high-water
mark rather than block; and every send is non-blocking.

Each hub gets its own socket (its own sequence numbers, its own CURVE server
key), so a STATE sent to one hub because it asked does not look like a gap to
another.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Final, Protocol

import zmq

from gsmon.common import protocol as proto
from gsmon.common import transport
from gsmon.common.keys import ClientKeys

__all__ = ["PointSource", "Publisher", "PublisherSettings"]

log = logging.getLogger("gsmon.agent")

_BYE_LINGER_MS: Final = 200


@dataclass(frozen=True, slots=True)
class PublisherSettings:
    """Timings of the agent's link (seconds)."""

    flush_interval_s: float = 0.05
    heartbeat_interval_s: float = 1.0
    state_interval_s: float = 30.0
    sndhwm: int = 10_000


class _Link:
    """One hub: its socket and sequence counter."""

    __slots__ = ("endpoint", "last_sent", "needs_state", "seq", "socket")

    def __init__(self, endpoint: str, sock: zmq.Socket[bytes]) -> None:
        self.endpoint = endpoint
        self.socket = sock
        self.seq = 0
        self.last_sent = -float("inf")
        self.needs_state = False


class PointSource(Protocol):
    """What the publisher needs from a Monitor (a fake will do in tests)."""

    def take_changes(self) -> list[proto.PointEntry]:
        """Points polled since the last call, latest poll per point."""
        ...

    def full_state(self) -> tuple[list[proto.PointEntry], list[str]]:
        """Every polled point, and every parent's path."""
        ...

    def point_count(self) -> int:
        """How many points there are."""
        ...


class Publisher:
    """Publishes one Monitor's points to one or more hubs."""

    def __init__(
        self,
        hubs: list[str],
        agent: str,
        mount: str,
        source: PointSource,
        settings: PublisherSettings | None = None,
        curve: ClientKeys | None = None,
    ) -> None:
        if not hubs:
            raise ValueError("at least one hub endpoint is needed")
        for endpoint in hubs:
            transport.parse_endpoint(endpoint, connect=True)
        self.hubs = list(hubs)
        self.agent = agent
        self.mount = mount
        self.settings = settings or PublisherSettings()
        self.epoch = secrets.randbits(63)
        self._source = source
        self._curve = curve
        self._resync_topic = proto.RESYNC_TOPIC_PREFIX + agent.encode()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.messages_sent = 0
        self.messages_dropped = 0
        self.points_sent = 0

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, daemon=True, name="gsmon-publisher")
            self._thread.start()

    def stop(self) -> None:
        """Send BYE, close the sockets and end the thread (idempotent)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join()

    # ------------------------------------------------------------------

    def _run(self) -> None:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        links = []
        try:
            for endpoint in self.hubs:
                sock = transport.make_socket(
                    context, zmq.XPUB, transport.SocketOptions(sndhwm=self.settings.sndhwm, xpub_verbose=True)
                )
                if self._curve is not None:
                    self._curve.apply(sock)
                sock.connect(endpoint)
                links.append(_Link(endpoint, sock))
            self._loop(links)
        except Exception:
            log.exception("the publisher failed; points are no longer published")
        finally:
            for link in links:
                link.socket.close(linger=_BYE_LINGER_MS)
            context.term()

    def _loop(self, links: list[_Link]) -> None:
        settings = self.settings
        poller = zmq.Poller()
        for link in links:
            poller.register(link.socket, zmq.POLLIN)
        by_socket = {link.socket: link for link in links}
        now = time.monotonic()
        next_flush = now + settings.flush_interval_s
        next_state = now + settings.state_interval_s
        while not self._stop.is_set():
            timeout_s = max(0.0, min(next_flush, next_state) - time.monotonic())
            for sock, _ in poller.poll(int(timeout_s * 1000)):
                self._read_subscriptions(by_socket[sock])
            now = time.monotonic()
            if now >= next_state:
                next_state = now + settings.state_interval_s
                for link in links:
                    link.needs_state = True
            if any(link.needs_state for link in links):
                entries, parents = self._source.full_state()
                for link in links:
                    if link.needs_state:
                        link.needs_state = False
                        self._send_state(link, entries, parents)
            if now >= next_flush:
                next_flush = now + settings.flush_interval_s
                changes = self._source.take_changes()
                if changes:
                    self._send_delta(links, changes)
                for link in links:
                    if now - link.last_sent >= settings.heartbeat_interval_s:
                        self._send(
                            link,
                            proto.Heartbeat(
                                **self._header(link),
                                mount=self.mount,
                                heartbeat_s=settings.heartbeat_interval_s,
                                point_count=self._source.point_count(),
                            ),
                        )
        for link in links:
            self._send(link, proto.Bye(**self._header(link)))

    def _read_subscriptions(self, link: _Link) -> None:
        while True:
            try:
                frame = link.socket.recv(zmq.DONTWAIT)
            except zmq.Again:
                return
            # A subscription is b"\x01" + topic. The hub subscribes to
            # everything when it (re)connects, and to our resync topic when
            # it saw a gap: either way it wants our whole state.
            if frame[:1] == b"\x01" and frame[1:] in (b"", self._resync_topic):
                link.needs_state = True

    def _header(self, link: _Link) -> dict[str, Any]:
        link.seq += 1
        return {"sender": self.agent, "epoch": self.epoch, "seq": link.seq, "sent_ns": time.time_ns()}

    def _send(self, link: _Link, msg: proto.Message) -> None:
        self._send_bytes(link, proto.encode(msg))

    def _send_bytes(self, link: _Link, data: bytes) -> None:
        try:
            link.socket.send(data, zmq.DONTWAIT)
            self.messages_sent += 1
        except zmq.Again:
            self.messages_dropped += 1
        link.last_sent = time.monotonic()

    def _send_state(self, link: _Link, entries: list[proto.PointEntry], parents: list[str]) -> None:
        size = proto.MAX_POINTS_PER_MESSAGE
        parts = max(1, -(-len(entries) // size), -(-len(parents) // size))
        for part in range(parts):
            self._send(
                link,
                proto.State(
                    **self._header(link),
                    mount=self.mount,
                    heartbeat_s=self.settings.heartbeat_interval_s,
                    points=entries[part * size : (part + 1) * size],
                    parents=parents[part * size : (part + 1) * size],
                    part=part,
                    parts=parts,
                ),
            )
        self.points_sent += len(entries)

    def _send_delta(self, links: list[_Link], changes: list[proto.PointEntry]) -> None:
        size = proto.MAX_POINTS_PER_MESSAGE
        for start in range(0, len(changes), size):
            batch = changes[start : start + size]
            for link in links:
                self._send(link, proto.Delta(**self._header(link), points=batch))
        self.points_sent += len(changes)
