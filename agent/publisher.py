"""The agent's link to its hub(s): one thread, one XPUB socket per hub.

::

    Monitor (workers record polls in a dict: latest poll per point)
        | every flush_interval_s: take what changed
        v
    publisher thread --DELTA--> XPUB --connect--> hub SUB     (one socket per hub)
                     <--subscription-- (a hub (re)subscribed, or asked to resync)
                     --STATE--> that hub only
                     --HEARTBEAT--> when nothing else was sent for heartbeat_interval_s

What to send to which hub, and when (STATE, DELTA, HEARTBEAT, BYE, their
sequence numbers and splitting) is the pure :class:`~gsmon.common.send_policy.SendPolicy`;
this module is its shell: the thread, the sockets, their monitors and backoff.

A hub that is down or slow costs the Monitor nothing: workers only put the
latest poll of each point in a dict, so changes made while the publisher is
busy collapse to the latest value per point; XPUB drops at its high-water
mark rather than block; and every send is non-blocking.

Each hub gets its own socket (its own sequence numbers, its own CURVE server
key), so a STATE sent to one hub because it asked does not look like a gap to
another.

Each link is watched through its socket monitor
(:class:`~gsmon.common.transport.LinkWatch`, shared with the client): INFO
``connected to the hub at ...`` when a handshake succeeds; WARNING ``no hub at
... for N s`` first after :data:`NO_HUB_FIRST_WARNING_S`, then at doubling
intervals (never per attempt); a refused or failed handshake once, at WARNING,
with what it most likely means (``the hub refused this agent's key``, ``the
hub's public key does not match``, keys required or not used, another kind of
socket). libzmq gives up on a connection whose handshake the hub refused, so
such a link gets a new socket after 1, 2, 4 ... 30 s (an agent started before
its key was registered gets in once it is). The hub's reasons for refusing
messages arrive on the NOTICE back-channel (protocol) and are logged at
WARNING with the hub's words.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from typing import Final

import zmq
from zmq.utils.monitor import recv_monitor_message

from gsmon.agent.outbox import Outbox
from gsmon.common import protocol as proto
from gsmon.common import transport
from gsmon.common.keys import ClientKeys
from gsmon.common.send_policy import PointSource, PublisherSettings, SendPolicy

__all__ = ["PointSource", "Publisher", "PublisherSettings"]  # the last two from send_policy, where they live

log = logging.getLogger(__name__)

_BYE_LINGER_MS: Final = 200
NO_HUB_FIRST_WARNING_S: Final = 5.0  # then 10, 20, 40 ... up to NO_HUB_MAX_WARNING_S apart
NO_HUB_MAX_WARNING_S: Final = 600.0
# The longest the loop sleeps in poll with nothing due (stop() is seen within this).
_MAX_WAIT_S: Final = 0.5


class _Link:
    """One hub: its socket and its monitor (its sequence numbers are the send policy's, and outlive a socket)."""

    __slots__ = (
        "backoff",
        "down_since",
        "endpoint",
        "monitor",
        "next_no_hub_warning",
        "no_hub_interval_s",
        "reported",
        "retry_at",
        "socket",
        "watch",
    )

    def __init__(self, endpoint: str, sock: zmq.Socket[bytes], uses_keys: bool, now: float) -> None:
        self.endpoint = endpoint
        self.socket = sock
        self.monitor: zmq.Socket[bytes] | None = None
        self.watch = transport.LinkWatch(uses_keys)
        self.backoff = transport.Backoff()
        self.retry_at: float | None = None
        self.down_since = now  # not handshaken since then
        self.no_hub_interval_s = NO_HUB_FIRST_WARNING_S
        self.next_no_hub_warning = now + NO_HUB_FIRST_WARNING_S
        self.reported: transport.LinkProblem | None = None  # the problem last logged


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
        outbox: Outbox | None = None,
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
        self.outbox = outbox
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._policy: SendPolicy | None = None
        self.messages_sent = 0
        self.messages_dropped = 0
        self._points_sent_before = 0  # by the policies of earlier runs (start after stop)

    @property
    def points_sent(self) -> int:
        """Point entries sent so far (in STATEs, per hub, and DELTAs)."""
        policy = self._policy
        return self._points_sent_before + (policy.points_sent if policy is not None else 0)

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
        self._context = context
        links: list[_Link] = []
        now = time.monotonic()
        if self._policy is not None:
            self._points_sent_before += self._policy.points_sent
        # A new policy per run, on the same epoch: its seqs start at 1 again, and the hub,
        # which checks seqs per agent and epoch, resyncs (as after any lost message).
        policy = self._policy = SendPolicy(
            self.agent, self.epoch, self.mount, len(self.hubs), self.settings, now, outbox=self.outbox
        )
        try:
            for endpoint in self.hubs:
                link = _Link(endpoint, self._new_socket(endpoint), self._curve is not None, now)
                self._watch(link)
                links.append(link)
            self._loop(links, policy)
        except Exception:
            log.exception("the publisher failed; points are no longer published")
        finally:
            for link in links:
                if link.monitor is not None:
                    link.monitor.close(linger=0)
                link.socket.close(linger=_BYE_LINGER_MS)
            context.term()

    def _new_socket(self, endpoint: str) -> zmq.Socket[bytes]:
        sock = transport.make_socket(self._context, zmq.XPUB, transport.publisher_options(self.settings.sndhwm))
        if self._curve is not None:
            self._curve.apply(sock)
        return sock

    def _watch(self, link: _Link) -> None:
        """Attach a monitor to the link's socket (before its connect, so no event is missed), then connect."""
        link.monitor = transport.monitor_socket(link.socket, transport.MONITOR_EVENTS)
        link.socket.connect(link.endpoint)

    def _loop(self, links: list[_Link], policy: SendPolicy) -> None:
        source = self._source
        while not self._stop.is_set():
            poller = zmq.Poller()  # rebuilt each turn: a link's socket may have been replaced
            by_socket: dict[zmq.Socket[bytes], tuple[int, bool]] = {}
            for index, link in enumerate(links):
                poller.register(link.socket, zmq.POLLIN)
                by_socket[link.socket] = (index, False)
                if link.monitor is not None:
                    poller.register(link.monitor, zmq.POLLIN)
                    by_socket[link.monitor] = (index, True)
            now = time.monotonic()
            # Until the policy's next flush or STATE (an absolute time), at most _MAX_WAIT_S.
            timeout_s = max(0.0, min(policy.next_due(), now + _MAX_WAIT_S) - now)
            for sock, _ in poller.poll(math.ceil(timeout_s * 1000)):
                index, is_monitor = by_socket[sock]
                if is_monitor:
                    self._read_monitor(links[index])
                else:
                    self._read_upstream(index, links[index], policy)
            now = time.monotonic()
            for link in links:
                self._look_after(link, now)
            for index, message in policy.tick(now, time.time(), source):
                self._send(links[index], message)
        for index, message in policy.bye(time.monotonic(), time.time()):
            self._send(links[index], message)

    def _read_upstream(self, index: int, link: _Link, policy: SendPolicy) -> None:
        """Hand the link's upstream frames (the hub's subscriptions, NOTICEs) to the policy."""
        while True:
            try:
                frame = link.socket.recv(zmq.DONTWAIT)
            except zmq.Again:
                return
            reason = policy.upstream(index, frame)
            if reason is not None:
                log.warning("the hub at %s refuses this agent's messages: %s", link.endpoint, reason)

    def _read_monitor(self, link: _Link) -> None:
        monitor = link.monitor
        assert monitor is not None
        while True:
            try:
                event = recv_monitor_message(monitor, zmq.DONTWAIT)
            except zmq.Again:
                return
            was_handshaken = link.watch.handshaken
            problem = link.watch.feed(event["event"], int(event["value"]))
            now = time.monotonic()
            if link.watch.handshaken and not was_handshaken:
                log.info("connected to the hub at %s", link.endpoint)
                link.backoff.reset()
                link.reported = None
                link.no_hub_interval_s = NO_HUB_FIRST_WARNING_S
            elif was_handshaken and not link.watch.handshaken:
                link.down_since = now
                link.next_no_hub_warning = now + NO_HUB_FIRST_WARNING_S
                log.info("lost the connection to the hub at %s", link.endpoint)
            if problem is not None and problem is not link.reported:
                link.reported = problem
                log.warning("%s", _agent_words(problem, link.endpoint))

    def _look_after(self, link: _Link, now: float) -> None:
        """Say when no hub was reached for a while; give a refused link a new socket when its time comes."""
        watch = link.watch
        if not watch.handshaken and now >= link.next_no_hub_warning:
            likely = f" ({_agent_words(link.reported, link.endpoint)})" if link.reported is not None else ""
            log.warning("no hub at %s for %.0f s%s", link.endpoint, now - link.down_since, likely)
            link.no_hub_interval_s = min(NO_HUB_MAX_WARNING_S, link.no_hub_interval_s * 2)
            link.next_no_hub_warning = now + link.no_hub_interval_s
        if watch.needs_new_socket and link.retry_at is None:
            delay = link.backoff.next_delay()
            link.retry_at = now + delay
            log.info("the hub at %s will not be retried by ZeroMQ; new connection in %g s", link.endpoint, delay)
        if link.retry_at is not None and now >= link.retry_at:
            link.retry_at = None
            if link.monitor is not None:
                link.monitor.close(linger=0)
            link.socket.close(linger=0)
            link.socket = self._new_socket(link.endpoint)
            watch.new_socket()
            self._watch(link)

    _context: zmq.Context[zmq.Socket[bytes]]

    def _send(self, link: _Link, msg: proto.Message) -> None:
        # XPUB drops at its high-water mark; DONTWAIT makes sure it never blocks.
        try:
            link.socket.send(proto.encode(msg), zmq.DONTWAIT)
            self.messages_sent += 1
        except zmq.Again:
            self.messages_dropped += 1


def _agent_words(problem: transport.LinkProblem, endpoint: str) -> str:
    """The agent's line for a link problem (the shared words, in an agent's terms)."""
    if problem is transport.LinkProblem.KEY_REFUSED:
        return (
            f"the hub refused this agent's key (at {endpoint}): it is not (or no longer) in the hub's "
            "allow-list; register it there (gsmon keys agent NAME --public-key ...), this agent retries"
        )
    return transport.describe_problem(problem, endpoint, who="this agent", what="hub's agents")
