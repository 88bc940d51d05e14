"""Follow a subtree of the hub's live tree: ``Subscriber`` (the Clone pattern).

::

    sub = Subscriber("tcp://hub:7763", prefix="GS1/Antenna1/")
    with sub:
        print(sub.tree)                 # {path: NodeState}, the current subtree
        for change in sub.changes():    # blocks; yields Change(path, old, new)
            print(change)

The rules that keep the copy correct -- subscribe then confirm by a
heartbeat, snapshot with its ``count`` checked, the per-node ``seq`` rule,
gap detection by the hub's publish counters, a new hub epoch, a prefix
missing from a heartbeat, heartbeats that stop -- are the pure core
:class:`~gsmon.common.clone.CloneCore` (see the protocol module for the wire
side). This module is the sockets around it:

1. HELLO on the hub's query socket (a DEALER) tells the client where the hub
   publishes and which heartbeat topic is its key's (its read scope's).
2. A SUB socket sends the subscriptions the core asks for, and hands it
   every ``[topic, payload]`` it receives; the core's snapshot requests go
   out on the DEALER and their replies come back to it.
3. A handshake the hub refused is final for that socket in libzmq: the
   client watches both sockets' monitors (:class:`~gsmon.common.transport.LinkWatch`),
   makes a new socket after 1, 2, 4 ... 30 s, and says why it failed.
   ``connect`` raises one of the :class:`HubUnavailableError` subclasses,
   whose message says what is wrong and what to do.

A hub pair (1.3): ``Subscriber("tcp://a:7763,tcp://b:7763")`` (or a list)
connects to the first that answers and, when the one it uses is lost (no
heartbeat for 3 of its intervals, or a snapshot request that misses its
deadline), connects to the other and takes a fresh snapshot from it: the
decision is :class:`~gsmon.common.failover.HubChoice`'s, this module only
makes the new sockets. The view carries over; the changes reported are what
differs between the two hubs' trees. :attr:`Subscriber.hub` is the hub used
now, :attr:`Subscriber.hub_lost` is true only when every hub is gone.

The lean mode (``Subscriber(..., lean=True)``, the recorder's) follows the same rules but is read
with :meth:`Subscriber.poll_updates`, which returns the NODEs applied as the
:class:`~gsmon.common.protocol.LeanNode` s their payloads were decoded into (and a snapshot's changes
apart), with no NodeUpdate, NodeState nor Change built per update.

Everything runs in the caller's thread: :meth:`Subscriber.poll` reads what
arrived and returns the changes, :meth:`Subscriber.changes` is a blocking
iterator over them, and callbacks added with :meth:`Subscriber.add_callback`
are called from ``poll``. (:class:`~gsmon.common.watch.feed.HubFeed` runs one
on a thread of its own.)
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import zmq
from zmq.utils.monitor import recv_monitor_message

from gsmon.common import protocol as proto
from gsmon.common import transport
from gsmon.common.alerts import Alert
from gsmon.common.clone import Change, CloneCore, NodeState, Subscriptions, new_client_epoch
from gsmon.common.errors import UnavailableError
from gsmon.common.failover import HubChoice
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
    "read_changes",
    "read_updates",
]

log = logging.getLogger(__name__)

DEFAULT_QUERY_ENDPOINT: Final = transport.default_endpoint(transport.DEFAULT_QUERY_PORT)


#: The most messages one poll reads before it ticks the core (so a flood cannot starve the heartbeat checks).
MAX_READ_PER_POLL: Final = 100_000


def read_changes(sub: zmq.Socket[bytes], core: CloneCore, limit: int = MAX_READ_PER_POLL) -> list[Change]:
    """:meth:`Subscriber.poll`'s read: up to ``limit`` messages waiting on the SUB socket, each handed to
    ``core.receive`` with the clocks; the changes they made (bench/recorder_bench.py times it too)."""
    # transport.fast_recv/fast_get: pyzmq's recv_multipart is a Python loop around the Cython recv;
    # a NODE is [topic, payload], read frame by frame (a fifth of the recorder's read cost).
    changes: list[Change] = []
    receive, monotonic, wall = core.receive, time.monotonic, time.time
    recv, more, rcvmore = transport.fast_recv, transport.fast_get, zmq.RCVMORE
    for _ in range(limit):
        try:
            frames = [recv(sub, zmq.DONTWAIT)]
            while more(sub, rcvmore):
                frames.append(recv(sub, zmq.DONTWAIT))
        except zmq.Again:
            break
        if len(frames) != 2:
            log.debug("dropped a message from the hub: expected [topic, payload], got %d frames", len(frames))
            continue
        found = receive(frames[0], frames[1], monotonic(), wall())
        if found:
            changes += found
    return changes


def read_updates(
    sub: zmq.Socket[bytes], core: CloneCore, accepted: list[proto.LeanNode], limit: int = MAX_READ_PER_POLL
) -> None:
    """:meth:`Subscriber.poll_updates`'s read (a lean ``core``): as :func:`read_changes`, but the clocks are
    read only for a heartbeat (a NODE does not use them), the NODEs go to ``core.receive_nodes`` in batches
    (no NodeState, no Change, no call per message; a heartbeat ends a batch, so the core sees the stream in
    its order) and the NODEs applied are appended to ``accepted``."""
    receive, receive_nodes, monotonic, wall = core.receive, core.receive_nodes, time.monotonic, time.time
    receive_batch, nodes_prefix = core.receive_batch, proto.NODES_TOPIC_PREFIX
    is_heartbeat = proto.is_heartbeat_topic
    # Frames, not bytes: a frame's `more` is libzmq's own flag, where asking the socket for RCVMORE costs
    # more than the frame (transport.fast_recv_frame); the bytes are taken from the frames, as recv copies them.
    recv_frame, dontwait = transport.fast_recv_frame, zmq.DONTWAIT
    batch: list[tuple[bytes, bytes]] = []
    add = batch.append
    seen = False  # NODEs handed on since the last heartbeat (which marks the hub heard by itself)
    for _ in range(limit):
        try:
            first = recv_frame(sub, dontwait)
            if not first.more:
                log.debug("dropped a message from the hub: expected [topic, payload], got 1 frame")
                continue
            second = recv_frame(sub, dontwait)
            if second.more:
                frames, more = 2, True
                while more:  # the rest of a message that is not [topic, payload]: read and dropped
                    more = recv_frame(sub, dontwait).more
                    frames += 1
                log.debug("dropped a message from the hub: expected [topic, payload], got %d frames", frames)
                continue
        except zmq.Again:
            break
        topic = first.bytes
        # Every heartbeat and NODES topic starts with NUL (no path can): a topic that does not is a NODE's.
        if topic[:1] == b"\x00":
            if batch:
                receive_nodes(batch, accepted)
                batch.clear()
                seen = True
            if topic.startswith(nodes_prefix):  # (1.4) a NODES batch: one message per hub turn
                receive_batch(topic, second.bytes, accepted)
                seen = True
            elif is_heartbeat(topic):
                receive(topic, second.bytes, monotonic(), wall())
            continue
        add((topic, second.bytes))
        if len(batch) >= _BATCH:
            receive_nodes(batch, accepted)
            batch.clear()
            seen = True
    if batch:
        receive_nodes(batch, accepted)
        seen = True
    if seen:
        core.heard(monotonic())  # (rule 5: a NODE is a sign of life too; one clock read per read, not per NODE)


#: NODEs handed to the core at once by read_updates: few enough that their frames are still in cache.
_BATCH: Final = 256


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
    """Connected, but no answer in time (to a request, or not even a handshake: a hub too busy, or stopped)."""


_ERRORS: Final[dict[transport.LinkProblem, type[HubUnavailableError]]] = {
    transport.LinkProblem.NOTHING_LISTENING: HubNotListeningError,
    transport.LinkProblem.KEYS_REQUIRED: HubKeysRequiredError,
    transport.LinkProblem.KEYS_NOT_USED: HubKeysRequiredError,
    transport.LinkProblem.KEY_REFUSED: HandshakeFailedError,
    transport.LinkProblem.HUB_KEY_MISMATCH: HandshakeFailedError,
    transport.LinkProblem.WRONG_SOCKET_TYPE: NotAQueryEndpointError,
    transport.LinkProblem.HANDSHAKE_TIMEOUT: HubTimeoutError,
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


class Subscriber:
    """A live, self-healing copy of the subtree under ``prefix``: the sockets around a :class:`CloneCore`.

    Args:
        hub: The hub's *query* endpoint (it tells the client the rest); for a hub pair both, as a
            sequence or one string joined by ``,`` (``"tcp://a:7763,tcp://b:7763"``), or a
            :class:`~gsmon.common.failover.HubChoice` shared with the caller's command sender.
        prefix: Path prefix to follow; ``"GS1/"`` is everything under GS1,
            ``""`` the whole tree.
        min_alert: Only report nodes whose alert code is at least this (an
            int or an Alert class); a node dropping below it is reported
            once, as removed from the view.
        timeout_s: How long to wait for the hub when connecting or resyncing (with a pair, the whole
            wait of :meth:`connect`, shared among the hubs; each failover attempt waits its share).
        curve: CURVE keys, when the hub requires them.
        lean: Read with :meth:`poll_updates`: the NODEs applied come back as the decoded
            :class:`~gsmon.common.protocol.LeanNode` s, with no NodeState nor Change built per
            update (the recorder's read path; :class:`~gsmon.common.clone.CloneCore`'s lean mode).
            The whole view only (``min_alert`` None); :meth:`poll`, :meth:`changes` and callbacks
            are not for this mode.
        batches: Follow the prefix in NODES batches when the hub publishes them (protocol 1.4; one
            message per hub turn instead of one per NODE: about half a fast stream's read cost,
            bench/nodes_bench.py);
            False: the plain topic, a message per NODE, as a 1.3 client does.
    """

    def __init__(
        self,
        hub: str | Sequence[str] | HubChoice = DEFAULT_QUERY_ENDPOINT,
        prefix: str = "",
        min_alert: int | type[Alert] | None = None,
        *,
        timeout_s: float = 5.0,
        curve: ClientKeys | None = None,
        rcvhwm: int = 1_000_000,
        lean: bool = False,
        batches: bool = True,
    ) -> None:
        # A HubChoice given is shared (a view's feed and its command sender: commands go where it reads).
        self._choice = hub if isinstance(hub, HubChoice) else HubChoice(hub)
        for endpoint in self._choice.endpoints:
            transport.parse_endpoint(endpoint, connect=True)
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        self._endpoint = self._choice.current  # the hub the sockets are connected to (or being tried)
        self.timeout_s = timeout_s
        self._wait_s = timeout_s  # one wait for an answer: timeout_s, or an attempt's share with a pair
        self._curve = curve
        self._rcvhwm = rcvhwm
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._sub: _Watched | None = None
        self._dealer: _Watched | None = None
        self._core = CloneCore(
            prefix, f"client-{secrets.token_hex(4)}", new_client_epoch(), min_alert, lean=lean, batches=batches
        )
        self._callbacks: list[Callable[[Change], Any]] = []
        self.endpoints: dict[str, str] = {}

    # ------------------------------------------------------------------

    def connect(self) -> Subscriber:
        """Find the hub (the first of a pair that answers), subscribe, and load the first snapshot.

        Raises :class:`HubUnavailableError` if no hub answers in time.
        """
        if self._context is not None:
            return self
        self._context = zmq.Context()
        choice = self._choice
        errors: list[HubUnavailableError] = []
        try:
            for endpoint in choice.order():
                try:
                    self._attach(endpoint, self._attempt_s())
                except HubUnavailableError as error:
                    errors.append(error)
                    self._close_sockets()
                    continue
                choice.connected(endpoint, time.monotonic())
                return self
        except BaseException:
            self.close()
            raise
        self.close()
        if len(errors) == 1:
            raise errors[0]
        raise type(errors[0])("no hub of the pair answered: " + "; ".join(str(error) for error in errors))

    def _attempt_s(self) -> float:
        """How long one hub may take to answer: all of ``timeout_s`` alone, its share in a pair (>= 1 s)."""
        return max(1.0, self.timeout_s / len(self._choice.endpoints)) if self._choice.pair else self.timeout_s

    def _attach(self, endpoint: str, wait_s: float) -> list[Change]:
        """Connect both sockets to the hub at ``endpoint``, subscribe and load a snapshot into the core.
        Returns the changes the snapshot makes to the view the core held."""
        self._endpoint, self._wait_s = endpoint, wait_s
        try:
            self._dealer = self._watched(zmq.DEALER, endpoint)
            info = self._hello()
            self._core.info(info)
            host = transport.host_of(endpoint)
            self.endpoints = {key: transport.with_host(value, host) for key, value in info.endpoints.items()}
            self._sub = self._watched(zmq.SUB, self.endpoints["subscribers"], rcvhwm=self._rcvhwm)
            self._send_subscriptions(self._core.subscribe(time.monotonic()))
            self._await_heartbeat()
            return self._first_snapshot()
        finally:
            self._wait_s = self.timeout_s

    def _close_sockets(self) -> None:
        for watched in (self._sub, self._dealer):
            if watched is not None:
                watched.close()
        self._sub = self._dealer = None

    def _fail_over(self, endpoint: str) -> list[Change]:
        """Try the other hub ``endpoint``: on an answer, use it (fresh sockets, a fresh snapshot into a
        forked core) and return the changes to the view; else keep the current sockets (ZeroMQ goes on
        reconnecting them) and tell the choice, which says when to try again."""
        choice = self._choice
        saved = (self._core, self._sub, self._dealer, self._endpoint, self.endpoints)
        self._core, self._sub, self._dealer = saved[0].fork(), None, None
        if not choice.all_lost:  # once per loss, not every second while both are gone
            log.warning("no answer from the hub at %s; trying %s", saved[3], endpoint)
        try:
            changes = self._attach(endpoint, self._attempt_s())
        except HubUnavailableError as error:
            self._close_sockets()
            self._core, self._sub, self._dealer, self._endpoint, self.endpoints = saved
            choice.attempt_failed(endpoint, time.monotonic())
            if choice.all_lost:
                log.warning("no hub of the pair answers (%s): retrying", error)
            return []
        for watched in (saved[1], saved[2]):
            if watched is not None:
                watched.close()
        choice.connected(endpoint, time.monotonic())
        log.warning("now following the hub at %s (fresh snapshot, %d changes)", endpoint, len(changes))
        return changes

    def close(self) -> None:
        self._close_sockets()
        if self._context is not None:
            self._context.term()
            self._context = None

    def __enter__(self) -> Subscriber:
        return self.connect()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------

    @property
    def hub(self) -> str:
        """The query endpoint of the hub used now (of a pair: the one that answered)."""
        return self._endpoint

    @property
    def hubs(self) -> tuple[str, ...]:
        """Every endpoint given (one, or the pair), in the order given."""
        return self._choice.endpoints

    @property
    def choice(self) -> HubChoice:
        """The failover core: which hub is used, moves so far, the latest failover time."""
        return self._choice

    @property
    def prefix(self) -> str:
        """The followed prefix."""
        return self._core.prefix

    @property
    def min_alert(self) -> int | None:
        """The alert code below which nodes are left out of the view (None: none are)."""
        return self._core.min_alert

    @property
    def tree(self) -> dict[str, NodeState]:
        """The current subtree: path -> NodeState (a copy, filtered by ``min_alert``)."""
        return self._core.tree

    @property
    def updates(self) -> dict[str, proto.NodeUpdate]:
        """The lean mode's view: path -> the node applied last as a NodeUpdate (a copy; empty when not lean)."""
        return self._core.updates

    @property
    def lean_nodes(self) -> dict[str, proto.LeanNode]:
        """The lean mode's view as kept: path -> the LeanNode applied last (read-only; empty when not lean)."""
        return self._core.lean_nodes

    @property
    def heartbeat_topic(self) -> bytes:
        """The heartbeat topic this client follows: its key's read scope's, as INFO said."""
        return self._core.heartbeat_topic

    @property
    def epoch(self) -> int | None:
        """The hub's epoch as of the snapshot held (None before the first)."""
        return self._core.epoch

    @property
    def hub_lost(self) -> bool:
        """Whether the hub's heartbeats stopped (as of the latest :meth:`poll`); with a pair, whether
        every hub is gone (the one used is lost and the other did not answer either)."""
        choice = self._choice
        return self._core.hub_lost and (not choice.pair or choice.all_lost)

    @property
    def wants_snapshot(self) -> bool:
        """Whether the view is known to have missed something: a new snapshot is due (or its attempt failed)."""
        return self._core.wants_snapshot

    @property
    def resyncs(self) -> int:
        """Snapshots loaded so far (the first one included)."""
        return self._core.resyncs

    @property
    def batched(self) -> bool:
        """Whether the prefix is followed in NODES batches now (protocol 1.4), not a NODE at a time."""
        return self._core.batched

    def hub_time(self) -> float:
        """The hub's wall clock now, as its heartbeats tell it (ages use this,
        so a skewed clock on this machine does not distort them)."""
        return self._core.hub_time(time.time())

    def age_s(self, node: NodeState) -> float | None:
        """Seconds since the hub received the node's latest value."""
        return self._core.age_s(node, time.time())

    def add_callback(self, callback: Callable[[Change], Any]) -> None:
        """Call ``callback(change)`` for every change, from :meth:`poll`."""
        if self._core.lean:
            raise RuntimeError("a lean Subscriber reports through poll_updates(), not callbacks")
        self._callbacks.append(callback)

    def poll(self, timeout_s: float = 0.0) -> list[Change]:
        """Wait up to ``timeout_s`` for news; apply what arrived; return the changes."""
        if self._sub is None:
            raise RuntimeError("connect() first")
        if self._core.lean:
            raise RuntimeError("a lean Subscriber is read with poll_updates()")
        self._look_after_sockets()  # may replace a socket
        assert self._sub is not None
        sub = self._sub.socket
        core = self._core
        changes: list[Change] = []
        if sub.poll(int(timeout_s * 1000)):
            changes = read_changes(sub, core)
        changes += self._housekeeping()
        for change in changes:
            for callback in self._callbacks:
                callback(change)
        return changes

    def poll_updates(self, timeout_s: float = 0.0) -> tuple[list[proto.LeanNode], list[Change]]:
        """The lean mode's :meth:`poll`: wait up to ``timeout_s``, apply what arrived (the same rules);
        return the NODEs applied, in stream order (a removal as the LeanNode of kind ``removed``), and
        then the changes a snapshot or a failover made to the view (they came after those NODEs)."""
        if self._sub is None:
            raise RuntimeError("connect() first")
        core = self._core
        if not core.lean:
            raise RuntimeError("poll_updates() is the lean mode's: make the Subscriber with lean=True")
        self._look_after_sockets()  # may replace a socket
        assert self._sub is not None
        sub = self._sub.socket
        accepted: list[proto.LeanNode] = []
        if sub.poll(int(timeout_s * 1000)):
            read_updates(sub, core, accepted)
        return accepted, self._housekeeping()

    def _housekeeping(self) -> list[Change]:
        """After a read: the core's tick (subscriptions again, a snapshot), the failover; their changes."""
        core = self._core
        changes: list[Change] = []
        now = time.monotonic()
        todo = core.tick(now, time.time())
        choice = self._choice
        if todo.subscriptions is not None:
            self._send_subscriptions(todo.subscriptions)
        if todo.snapshot is not None:
            try:
                changes.extend(self._resync(todo.snapshot))
            except HubUnavailableError as error:
                log.warning("resync failed, will retry: %s", error)
                choice.query_failed(time.monotonic())
        choice.tick(now, core.alive_at, core.heartbeat_s)  # (rule 5: a slow reader does not fail over)
        candidate = choice.due(time.monotonic())
        if candidate is not None:
            changes.extend(self._fail_over(candidate))
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

    def _send_subscriptions(self, subscriptions: Subscriptions) -> None:
        """Send what the core asks for, in its order (``again``: each cancelled first)."""
        watched = self._sub
        if watched is None:
            return
        sub = watched.socket
        for topic in subscriptions.cancel:
            sub.setsockopt(zmq.UNSUBSCRIBE, topic)
        for topic in subscriptions.topics:
            if subscriptions.again:
                sub.setsockopt(zmq.UNSUBSCRIBE, topic)
            sub.setsockopt(zmq.SUBSCRIBE, topic)

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
            # A new socket holds no subscription: subscribe, and once confirmed take a new snapshot.
            self._send_subscriptions(self._core.subscribe(time.monotonic()))
        else:
            self._core.new_query_socket()

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
            f"no answer from the hub at {self.hub} within {self._wait_s:g} s ({waited}): "
            "it may be overloaded or stopped; try again, or a longer --timeout"
        )

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
        deadline = time.monotonic() + self._wait_s
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
            deadline = time.monotonic() + self._wait_s  # each reply renews the wait
            yield reply

    def _hello(self) -> proto.Info:
        for reply in self._request(self._core.hello(time.time())):
            if isinstance(reply, proto.Info):
                return reply
        raise AssertionError("unreachable")  # pragma: no cover

    def _await_heartbeat(self) -> None:
        """Wait for a heartbeat that confirms the subscriptions, re-sending them when the core says."""
        watched = self._sub
        assert watched is not None
        sub = watched.socket
        core = self._core
        deadline = time.monotonic() + self._wait_s
        while (remaining := deadline - time.monotonic()) > 0:
            resend = core.resubscriptions(time.monotonic())
            if resend is not None:
                self._send_subscriptions(resend)
            due = core.next_due()
            wait_s = remaining if due is None else min(remaining, due - time.monotonic())
            if not sub.poll(int(max(0.0, wait_s) * 1000) + 1):
                continue
            frames = sub.recv_multipart()
            if len(frames) != 2:
                continue
            core.receive(frames[0], frames[1], time.monotonic(), time.time())
            if core.confirmed:
                return
        for problem in watched.read():
            raise _ERRORS[problem](self._describe(problem, watched))
        if core.last_heartbeat is not None:
            raise HubTimeoutError(
                f"the hub at {self.hub} did not take the subscription to {self.prefix!r} within {self._wait_s:g} s "
                "(is it outside this key's grant?)"
            )
        raise HubTimeoutError(
            f"no heartbeat from the hub's publisher {self.endpoints.get('subscribers')} within {self._wait_s:g} s: "
            "is its subscribers port reachable from here?"
        )

    def _first_snapshot(self) -> list[Change]:
        """Load the first snapshot, asking again while one arrives incomplete (within the wait); return
        its changes to the view the core held (none on a first connection: nobody listens yet)."""
        core = self._core
        deadline = time.monotonic() + self._wait_s
        changes = self._resync(core.snapshot_request(time.time()))
        while core.wants_snapshot:
            if time.monotonic() >= deadline:
                raise HubTimeoutError(
                    f"every snapshot of {self.prefix!r} from the hub at {self.hub} arrived incomplete within "
                    f"{self._wait_s:g} s (its queue to this client overflowed): try again, or a longer --timeout"
                )
            changes = self._resync(core.snapshot_request(time.time()))
        return changes

    def _resync(self, request: proto.SnapshotRequest) -> list[Change]:
        """Send the core's snapshot request and feed it the replies; return what changed in the view."""
        core = self._core
        try:
            for reply in self._request(request):
                changes = core.snapshot_reply(reply)
                if not core.snapshot_outstanding:
                    return changes
        except BaseException:
            core.snapshot_failed()  # asked again at the next tick
            raise
        raise AssertionError("unreachable")  # pragma: no cover
