"""The processes around the hub in the benchmarks: baseline forwarders, agents, a sink.

Run as ``python -m bench.peers ROLE ...`` by :mod:`bench._support`; each role
prints ``READY ...`` once its sockets are set up, obeys commands on stdin
(``MARK`` starts the measured window, ``END`` prints ``RESULT {json}`` and
exits; a ``fleet`` also takes ``CUT``: the window ends, the load goes on)
and is terminated and reaped by the benchmark that started it.

Roles:

``proxy``
    The bare-ZeroMQ baseline: ``zmq.proxy`` between an XSUB (agents connect)
    and an XPUB (subscribers connect). It forwards each agent message as it
    is, so subscribers get whole batches.
``pyfwd``
    The minimal Python forwarder baseline: decodes each batch, stores every
    point in a flat dict and re-sends one ``[path, payload]`` message per
    point (payload: the point entry, packed by one reused ``msgpack.Packer``).
``sender``
    A few agents in one process, each with its own XPUB socket, name, epoch
    and sequence numbers, speaking the protocol exactly as
    ``agent/publisher.py`` does: STATE when a subscription (or resync request)
    arrives, then DELTA batches. ``blast`` sends as fast as the receiver takes
    them (XPUB_NODROP: back-pressure instead of loss); ``paced`` sends a
    given rate of updates in batches every flush interval.
``fleet``
    Many simulated agents (one XPUB each) polling every ``dt``: one DELTA of
    all their points per ``dt``, at spread-out phases; or, with ``--dt 0``,
    one-shot points and a HEARTBEAT per second.
``sink``
    One subscriber (of everything, or of ``--subscribe PREFIX``) that counts
    updates (``count``), measures latency from the agent's send
    (``latency``), or also counts loss and staleness (``scale``).

Messages are built by :mod:`gsmon.common.protocol`. To keep the sending
processes cheap, a DELTA body is packed once by ``protocol.encode`` and then
sent with a fresh envelope header and a fresh ``polled_at``: both are spliced
into the encoded bytes, and :func:`_check_templates` proves at start-up that
the result is byte for byte what ``protocol.encode`` produces.
"""

from __future__ import annotations

import argparse
import heapq
import math
import queue
import secrets
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, cast

import msgpack
import zmq

from bench._support import LOOPBACK, dumps, percentile
from gsmon.common import protocol as proto
from gsmon.common import transport
from gsmon.common.ready import ready_line

# A poll time no real clock shows: packed once into the templates, replaced by
# the real send time in every message (the send time is what latency counts from).
_PLACEHOLDER_S: Final = 1_111_111_111.0078125
_PLACEHOLDER: Final = b"\xcb" + struct.pack(">d", _PLACEHOLDER_S)
_VARIANTS: Final = 10  # distinct value sets per template, cycled so that values keep changing
_SUBSCRIPTION_POLL_S: Final = 0.02

_HWM: Final = 100_000  # the hub's own high-water marks (ServerLimits defaults)
_GREEN: Final = (10, "GREEN")
_ORANGE: Final = (20, "ORANGE")


# ----------------------------------------------------------------------
# Commands on stdin
# ----------------------------------------------------------------------


class _Commands:
    """Lines from stdin, read by a daemon thread (EOF counts as ``END``)."""

    def __init__(self) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True, name="stdin").start()

    def _read(self) -> None:
        for line in sys.stdin:
            self._lines.put(line.strip())
        self._lines.put("END")

    def take(self) -> str | None:
        try:
            return self._lines.get_nowait()
        except queue.Empty:
            return None


def _ready(**endpoints: str) -> None:
    print(ready_line(**endpoints), flush=True)


def _result(value: dict[str, Any]) -> None:
    print("RESULT " + dumps(value), flush=True)


# ----------------------------------------------------------------------
# Baseline forwarders
# ----------------------------------------------------------------------


def run_proxy(args: argparse.Namespace) -> None:
    """``zmq.proxy`` XSUB -> XPUB; runs until the process is terminated."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    front = transport.make_socket(context, zmq.XSUB, transport.SocketOptions(rcvhwm=args.rcvhwm))
    back = transport.make_socket(context, zmq.XPUB, transport.SocketOptions(sndhwm=_HWM))
    _ready(agents=transport.bind(front, LOOPBACK), subscribers=transport.bind(back, LOOPBACK), query="-")
    zmq.proxy(front, back)


def run_pyfwd(args: argparse.Namespace) -> None:
    """Decode each batch, store its points in a dict, send one message per point."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = transport.make_socket(context, zmq.SUB, transport.SocketOptions(rcvhwm=args.rcvhwm))
    pub = transport.make_socket(context, zmq.XPUB, transport.SocketOptions(sndhwm=_HWM))
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    _ready(agents=transport.bind(sub, LOOPBACK), subscribers=transport.bind(pub, LOOPBACK), query="-")
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    poller.register(pub, zmq.POLLIN)
    packer = msgpack.Packer(use_bin_type=True)
    store: dict[str, Any] = {}
    mounts: dict[str, str] = {}
    more, nowait = zmq.SNDMORE | zmq.DONTWAIT, zmq.DONTWAIT
    send, recv, pack, unpackb = pub.send, sub.recv, packer.pack, msgpack.unpackb
    while True:
        ready = dict(poller.poll())
        if pub in ready:
            while True:  # subscriptions: read and ignore
                try:
                    pub.recv(zmq.DONTWAIT)
                except zmq.Again:
                    break
        if sub not in ready:
            continue
        for _ in range(2000):
            try:
                data = recv(zmq.DONTWAIT)
            except zmq.Again:
                break
            envelope = unpackb(data, raw=False)
            kind, sender, body = envelope[2], envelope[3], envelope[7]
            if kind == proto.MsgKind.STATE:
                mounts[sender] = body["mount"]
            elif kind != proto.MsgKind.DELTA:
                continue
            prefix = mounts.get(sender, sender) + "/"
            for entry in body["points"]:
                path = prefix + entry[0]
                store[path] = entry
                try:
                    send(path.encode(), more)
                    send(pack(entry), nowait)
                except zmq.Again:
                    pass  # at the high-water mark: drop, as the hub does


# ----------------------------------------------------------------------
# Agents
# ----------------------------------------------------------------------


def _header(sender: str, epoch: int, kind: int, seq: int, sent_ns: int) -> bytes:
    """The envelope's first seven items, as ``protocol.encode`` packs them,
    with the 8-item array marker."""
    head = msgpack.packb([proto.PROTOCOL_MAJOR, proto.PROTOCOL_MINOR, kind, sender, epoch, seq, sent_ns])
    return b"\x98" + head[1:]


class _Template:
    """A DELTA whose body was packed once by ``protocol.encode``."""

    __slots__ = ("body", "points")

    def __init__(self, sender: str, epoch: int, entries: list[proto.PointEntry]) -> None:
        encoded = proto.encode(proto.Delta(sender=sender, epoch=epoch, seq=1, sent_ns=1, points=entries))
        head = _header(sender, epoch, proto.MsgKind.DELTA, 1, 1)
        assert encoded.startswith(head)
        self.body = encoded[len(head) :]
        self.points = len(entries)

    def envelope(self, sender: str, epoch: int, seq: int, polled_at_s: float | None) -> bytes:
        """The DELTA envelope with ``seq``, sent now; every ``polled_at`` set to
        ``polled_at_s`` when given."""
        body = self.body
        if polled_at_s is not None:
            body = body.replace(_PLACEHOLDER, b"\xcb" + struct.pack(">d", polled_at_s))
        return _header(sender, epoch, proto.MsgKind.DELTA, seq, time.time_ns()) + body


def _entries(
    names: Sequence[str], variant: int, dt_s: float | None, toggle_first: bool = False
) -> list[proto.PointEntry]:
    entries = []
    for index, name in enumerate(names):
        code, label = _GREEN
        if toggle_first and index == 0 and variant >= _VARIANTS // 2:
            code, label = _ORANGE  # one point per agent flips every few seconds: rollup at work
        entries.append(proto.PointEntry(name, index * 1000 + variant, code, label, _PLACEHOLDER_S, dt_s))
    return entries


def _check_templates() -> None:
    """The spliced envelopes are byte for byte what ``protocol.encode`` makes."""
    entries = _entries(["g0/p0000", "g0/p0001"], 3, 1.0)
    template = _Template("check", 12345, entries)
    for seq in (1, 200, 70_000, 2**40):
        now = time.time()
        spliced = template.envelope("check", 12345, seq, now)
        sent_ns = msgpack.unpackb(spliced)[6]
        real = [entry._replace(polled_at_s=now) for entry in entries]
        expected = proto.encode(proto.Delta(sender="check", epoch=12345, seq=seq, sent_ns=sent_ns, points=real))
        if spliced != expected:
            raise AssertionError("a spliced DELTA differs from protocol.encode's bytes")
    agent = _Agent(cast(Any, None), "check", "bench/check", ["g0/p0000"], ["g0"])
    agent.heartbeat_s = 2.5
    for _ in range(3):
        spliced = agent.spliced_heartbeat()
        sent_ns = msgpack.unpackb(spliced)[6]
        beat = proto.Heartbeat(
            sender="check",
            epoch=agent.epoch,
            seq=agent.seq,
            sent_ns=sent_ns,
            mount="bench/check",
            heartbeat_s=2.5,
            point_count=1,
        )
        if spliced != proto.encode(beat):
            raise AssertionError("a spliced HEARTBEAT differs from protocol.encode's bytes")


class _Agent:
    """One simulated agent: its socket, identity, points and templates."""

    __slots__ = (
        "epoch",
        "heartbeat_body",
        "heartbeat_s",
        "mount",
        "name",
        "parents",
        "points",
        "seq",
        "sock",
        "templates",
        "variant",
    )

    def __init__(self, sock: zmq.Socket[bytes], name: str, mount: str, points: list[str], parents: list[str]) -> None:
        self.sock = sock
        self.name = name
        self.mount = mount
        self.epoch = secrets.randbits(63)
        self.seq = 0
        self.points = points
        self.parents = parents
        self.templates: list[list[_Template]] = []  # [chunk][variant]
        self.variant = 0
        self.heartbeat_s = 1.0
        self.heartbeat_body: bytes | None = None

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def state(self, dt_s: float | None) -> list[bytes]:
        """The agent's full STATE, in parts of at most MAX_POINTS_PER_MESSAGE, as the publisher splits it."""
        entries = [entry._replace(polled_at_s=time.time()) for entry in _entries(self.points, 0, dt_s)]
        size = proto.MAX_POINTS_PER_MESSAGE
        parts = max(1, -(-len(entries) // size), -(-len(self.parents) // size))
        return [
            proto.encode(
                proto.State(
                    sender=self.name,
                    epoch=self.epoch,
                    seq=self.next_seq(),
                    sent_ns=time.time_ns(),
                    mount=self.mount,
                    heartbeat_s=self.heartbeat_s,
                    points=entries[part * size : (part + 1) * size],
                    parents=self.parents[part * size : (part + 1) * size],
                    part=part,
                    parts=parts,
                )
            )
            for part in range(parts)
        ]

    def heartbeat(self) -> bytes:
        return proto.encode(
            proto.Heartbeat(
                sender=self.name,
                epoch=self.epoch,
                seq=self.next_seq(),
                sent_ns=time.time_ns(),
                mount=self.mount,
                heartbeat_s=self.heartbeat_s,
                point_count=len(self.points),
            )
        )

    def spliced_heartbeat(self) -> bytes:
        """:meth:`heartbeat`'s bytes, its body packed once (thousands of agents send one a second)."""
        if self.heartbeat_body is None:
            encoded = proto.encode(
                proto.Heartbeat(
                    sender=self.name,
                    epoch=self.epoch,
                    seq=1,
                    sent_ns=1,
                    mount=self.mount,
                    heartbeat_s=self.heartbeat_s,
                    point_count=len(self.points),
                )
            )
            head = _header(self.name, self.epoch, proto.MsgKind.HEARTBEAT, 1, 1)
            assert encoded.startswith(head)
            self.heartbeat_body = encoded[len(head) :]
        return _header(self.name, self.epoch, proto.MsgKind.HEARTBEAT, self.next_seq(), time.time_ns()) + (
            self.heartbeat_body
        )


def _make_agents(
    context: zmq.Context[zmq.Socket[bytes]],
    endpoint: str,
    names: list[str],
    mount_prefix: str,
    points: int,
    groups: int,
    nodrop: bool,
    sndhwm: int,
    connect: bool = True,
) -> list[_Agent]:
    per_group = max(1, -(-points // groups))
    point_names = [f"g{index // per_group:02d}/p{index:04d}" for index in range(points)]
    parents = sorted({name.rpartition("/")[0] for name in point_names})
    agents = []
    for name in names:
        # No receive limit on what the hub sends an agent (its subscriptions): a hub's resync request for one
        # agent reaches every agent, so a restarted site hub asking 750 agents sent each of them thousands of
        # frames, the inbound pipe hit the default limit of 1,000 and libzmq 4.3.5 aborted the whole fleet
        # ("Assertion failed: _input_stopped (src/stream_engine_base.cpp:396)", libzmq issue 3937: an engine
        # made after a reconnect is asked to restart input it never stopped). See bench/RESULTS.md.
        options = transport.SocketOptions(sndhwm=sndhwm, rcvhwm=0, xpub_verbose=True)
        sock = transport.make_socket(context, zmq.XPUB, options)
        if nodrop:
            sock.setsockopt(zmq.XPUB_NODROP, 1)
            sock.setsockopt(zmq.SNDTIMEO, 200)
        if connect:
            sock.connect(endpoint)
        agents.append(_Agent(sock, name, f"{mount_prefix}/{name}", point_names, parents))
    return agents


def _wants_state(agent: _Agent) -> bool:
    """Read the agent's subscription frames; whether a hub asked for a STATE."""
    resync = proto.RESYNC_TOPIC_PREFIX + agent.name.encode()
    wanted = False
    while True:
        try:
            frame = agent.sock.recv(zmq.DONTWAIT)
        except zmq.Again:
            return wanted
        if frame[:1] == b"\x01" and frame[1:] in (b"", resync):
            wanted = True


def _send(agent: _Agent, data: bytes, stop: Callable[[], bool] | None = None) -> bool:
    """Send; with XPUB_NODROP wait (in SNDTIMEO steps) until the peer takes it."""
    while True:
        try:
            agent.sock.send(data, 0 if stop is not None else zmq.DONTWAIT)
            return True
        except zmq.Again:
            if stop is None or stop():
                return False


def run_sender(args: argparse.Namespace) -> None:
    """A few agents sending DELTA batches, as fast as taken (blast) or at a rate (paced)."""
    _check_templates()
    commands = _Commands()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    blast = args.mode == "blast"
    names = [f"a{index:03d}" for index in range(args.agents)]
    agents = _make_agents(
        context, args.endpoint, names, args.mount_prefix, args.points, args.groups, blast, args.sndhwm
    )
    batch = args.batch
    first = agents[0]
    chunks = [first.points[start : start + batch] for start in range(0, len(first.points), batch)]
    # Values change every time round the points; fewer variants when there are many chunks (start-up time).
    variants = _VARIANTS if len(chunks) <= 100 else 2
    # A DELTA's body holds no sender: every agent (same point names) shares the templates.
    shared = [
        [_Template(first.name, first.epoch, _entries(chunk, variant, args.dt)) for variant in range(variants)]
        for chunk in chunks
    ]
    for agent in agents:
        agent.templates = shared
    _ready(agents=str(len(agents)))
    ended = False
    stats = {"points": 0, "messages": 0, "states": 0, "dropped": 0}
    marked: dict[str, int] = {}

    def handle_commands() -> bool:
        nonlocal ended, marked
        while (command := commands.take()) is not None:
            if command == "MARK":
                marked = dict(stats)
            elif command == "END":
                ended = True
        return ended

    def serve_subscriptions(agent: _Agent) -> None:
        if _wants_state(agent):
            for part in agent.state(args.dt):
                if _send(agent, part, handle_commands if blast else None):
                    stats["states"] += 1

    # Nothing is sent before the receiver subscribed: wait for every agent's STATE request.
    waiting = list(agents)
    while waiting and not handle_commands():
        for agent in list(waiting):
            if agent.sock.poll(10, zmq.POLLIN):
                serve_subscriptions(agent)
                waiting.remove(agent)
    per_message = [len(agent.templates) for agent in agents]
    cursor = [0] * len(agents)
    if blast:
        turn = 0
        while not handle_commands():
            for index, agent in enumerate(agents):
                chunk = agent.templates[cursor[index]]
                cursor[index] = (cursor[index] + 1) % per_message[index]
                if cursor[index] == 0:
                    agent.variant = (agent.variant + 1) % len(chunk)
                template = chunk[agent.variant % len(chunk)]
                if _send(agent, template.envelope(agent.name, agent.epoch, agent.next_seq(), None), handle_commands):
                    stats["points"] += template.points
                    stats["messages"] += 1
            turn += 1
            if turn % 64 == 0:
                for agent in agents:
                    serve_subscriptions(agent)
    else:
        # Each agent flushes one DELTA of `batch` points every flush_s, the agents staggered.
        start = time.monotonic()
        due = [(start + args.flush * index / len(agents), index) for index in range(len(agents))]
        heapq.heapify(due)
        while not handle_commands():
            at, index = due[0]
            delay = at - time.monotonic()
            if delay > 0:
                time.sleep(min(delay, 0.05))
                continue
            heapq.heapreplace(due, (at + args.flush, index))
            agent = agents[index]
            serve_subscriptions(agent)
            template = agent.templates[cursor[index]][agent.variant]
            cursor[index] = (cursor[index] + 1) % per_message[index]
            if cursor[index] == 0:
                agent.variant = (agent.variant + 1) % _VARIANTS
            if _send(agent, template.envelope(agent.name, agent.epoch, agent.next_seq(), time.time())):
                stats["points"] += template.points
                stats["messages"] += 1
            else:
                stats["dropped"] += 1
    _result({"total": stats, "marked": marked, "window": {key: stats[key] - marked.get(key, 0) for key in stats}})


def run_fleet(args: argparse.Namespace) -> None:
    """Many agents, each sending all its points once per ``dt`` (or only heartbeats)."""
    _check_templates()
    commands = _Commands()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    # One socket per simulated agent: more than libzmq's default of 1,023 sockets per context.
    context.set(zmq.MAX_SOCKETS, args.agents + 64)
    names = [f"sim-{index:04d}" for index in range(args.first, args.first + args.agents)]
    agents = _make_agents(
        context, args.endpoint, names, args.mount_prefix, args.points, args.groups, False, args.sndhwm, connect=False
    )
    dt_s = args.dt if args.dt > 0 else None
    if dt_s is not None:
        # A DELTA's body holds no sender: every agent (same point names) shares the templates.
        shared = [
            [
                _Template(agents[0].name, agents[0].epoch, _entries(agents[0].points, v, dt_s, not args.steady))
                for v in range(_VARIANTS)
            ]
        ]
        for agent in agents:
            agent.templates = shared
    poller = zmq.Poller()
    by_socket = {}
    for agent in agents:
        poller.register(agent.sock, zmq.POLLIN)
        by_socket[agent.sock] = agent
    _ready(agents=str(len(agents)))
    stats = {"points": 0, "messages": 0, "states": 0, "dropped": 0, "heartbeats": 0}
    marked: dict[str, int] = {}
    period = dt_s or 1.0
    start = time.monotonic()
    # Phases spread over the period across every fleet process (global index / total agents).
    due = [(start + period * (args.first + index) / max(1, args.total_agents), index) for index in range(len(agents))]
    heapq.heapify(due)
    # With --heartbeat, an agent that sent nothing for that long sends a HEARTBEAT,
    # as common/send_policy.py does (its STATE announces the same interval).
    beat_s = args.heartbeat if dt_s is not None else 0.0
    last_sent = [0.0] * len(agents)
    beats = [(at + beat_s, index) for at, index in due] if beat_s > 0 else []
    heapq.heapify(beats)
    for agent in agents:
        agent.heartbeat_s = beat_s or agent.heartbeat_s
    # Agents connect one after the other over --ramp seconds (every fleet process together).
    connect_at = [start + args.ramp * (args.first + index) / max(1, args.total_agents) for index in range(len(agents))]
    connected = 0
    cut: dict[str, int] | None = None
    next_poll = start
    while True:
        command = commands.take()
        if command == "MARK":
            marked = dict(stats)
        elif command == "CUT":
            cut = dict(stats)  # the window ends here; keep sending until END
        elif command == "END":
            break
        while connected < len(agents) and connect_at[connected] <= time.monotonic():
            agents[connected].sock.connect(args.endpoint)
            connected += 1
        wait = min(due[0][0], next_poll, beats[0][0] if beats else math.inf) - time.monotonic()
        if wait > 0:
            # At least a few ms: thousands of agents' sends go in batches, not one wake-up each
            # (the poll time is stamped at the send, so latency figures do not include this).
            time.sleep(max(wait, args.min_sleep))
        now = time.monotonic()
        if now >= next_poll:
            # Polling hundreds of sockets costs a lot more than sending: look for
            # subscriptions (STATE requests) every 20 ms, not before every send.
            next_poll = now + args.subscription_poll
            for sock, _ in poller.poll(0):
                agent = by_socket[sock]
                if _wants_state(agent):
                    for part in agent.state(dt_s):
                        stats["states"] += 1
                        if not _send(agent, part):
                            stats["dropped"] += 1
        while due[0][0] <= now:
            at, index = due[0]
            heapq.heapreplace(due, (at + period, index))
            agent = agents[index]
            if agent.seq == 0:
                continue  # no hub has subscribed yet: the publisher would not send either
            if dt_s is None:
                data = agent.heartbeat()
                points = 0
            else:
                template = agent.templates[0][agent.variant]
                agent.variant = (agent.variant + 1) % _VARIANTS
                data = template.envelope(agent.name, agent.epoch, agent.next_seq(), time.time())
                points = template.points
            if _send(agent, data):
                stats["messages"] += 1
                stats["points"] += points
                last_sent[index] = now
            else:
                stats["dropped"] += 1
        while beats and beats[0][0] <= now:
            at, index = beats[0]
            agent = agents[index]
            if now - last_sent[index] < beat_s or agent.seq == 0:
                heapq.heapreplace(beats, (max(last_sent[index], at) + beat_s, index))
                continue
            heapq.heapreplace(beats, (now + beat_s, index))
            if _send(agent, agent.spliced_heartbeat()):
                stats["heartbeats"] += 1
                last_sent[index] = now
            else:
                stats["dropped"] += 1
    last = cut if cut is not None else stats
    _result({"total": stats, "marked": marked, "window": {key: last[key] - marked.get(key, 0) for key in stats}})


# ----------------------------------------------------------------------
# The subscriber
# ----------------------------------------------------------------------


class _Window:
    """What the sink measured between MARK and END."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.updates = 0
        self.latencies_us: list[float] = []
        self.seq_gaps = 0
        self.stale_points = 0
        self.stale_parents = 0
        # Loss as the protocol detects it: NODEs received between two hub
        # heartbeats against the growth of the heartbeat's published[""].
        self.nodes = 0
        self.published_base: int | None = None
        self.published_last = 0
        self.nodes_at_last = 0
        # End-to-end loss, agent to this subscriber: a point polled every dt whose
        # successive updates are k dt apart lost k - 1 polls on the way.
        self.last_polled: dict[bytes, float] = {}
        self.missed_polls = 0
        self.repeats = 0  # with dt: NODEs of a point whose poll time did not advance

    def report(self, hub_values: dict[str, Any]) -> dict[str, Any]:
        seconds = time.monotonic() - self.started
        ordered = sorted(self.latencies_us)
        return {
            "seconds": seconds,
            "updates": self.updates,
            "rate": self.updates / seconds if seconds > 0 else 0.0,
            "latency_samples": len(ordered),
            "p50_us": percentile(ordered, 0.50),
            "p99_us": percentile(ordered, 0.99),
            "p999_us": percentile(ordered, 0.999),
            "max_us": ordered[-1] if ordered else math.nan,
            "seq_gaps": self.seq_gaps,
            "published": self.published_last - (self.published_base or 0),
            "lost": (self.published_last - (self.published_base or 0)) - self.nodes_at_last,
            "stale_points": self.stale_points,
            "stale_parents": self.stale_parents,
            "missed_polls": self.missed_polls,
            "repeats": self.repeats,
            "points_seen": len(self.last_polled),
            "hub": hub_values,
        }


def run_sink(args: argparse.Namespace) -> None:
    """Subscribe to everything; count (and in latency/scale modes decode) what arrives."""
    commands = _Commands()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = transport.make_socket(context, zmq.SUB, transport.SocketOptions(rcvhwm=1_000_000))
    sub.setsockopt(zmq.SUBSCRIBE, args.subscribe.encode())
    if args.subscribe:
        sub.setsockopt(zmq.SUBSCRIBE, proto.HUB_HEARTBEAT_TOPIC)
    sub.connect(args.endpoint)
    _ready(endpoint=args.endpoint)
    prefix = args.prefix.encode()
    size = len(prefix)
    batch = args.batch
    mode = args.mode
    dt_s = args.dt
    window = _Window()
    hub_values: dict[str, Any] = {}
    last_seq: int | None = None
    last_epoch: int | None = None
    # recv_into preallocated buffers costs a third of recv_multipart: the sink
    # must not be what limits the forwarders it measures.
    topic, payload = bytearray(64 * 1024), bytearray(16 * 1024 * 1024)
    topic_view, payload_view = memoryview(topic), memoryview(payload)
    recv_into, unpackb, clock = sub.recv_into, msgpack.unpackb, time.time
    while True:
        command = commands.take()
        if command == "MARK":
            window = _Window()
        elif command == "END":
            break
        if not sub.poll(50):
            continue
        for _ in range(10_000):
            try:
                topic_size = recv_into(topic, flags=zmq.DONTWAIT)
            except zmq.Again:
                break
            if args.frames == 1:  # a whole agent envelope (the zmq.proxy baseline)
                received = clock()
                if topic[3] != proto.MsgKind.DELTA:
                    continue
                window.updates += batch
                if mode != "count":
                    envelope = unpackb(topic_view[:topic_size], raw=False)
                    window.latencies_us += [1e6 * (received - entry[4]) for entry in envelope[7]["points"]]
                continue
            payload_size = recv_into(payload)
            received = clock()
            ours = topic_size >= size and topic.startswith(prefix)
            if mode == "count":
                window.updates += ours
                continue
            if mode == "scale":
                # Following one prefix: loss is counted the protocol's way, NODEs
                # received between two hub heartbeats against the growth of the
                # heartbeat's published[prefix].
                node = unpackb(payload_view[:payload_size], raw=False)
                if topic[0] == 0:
                    published = node["published"].get(args.subscribe)
                    if published is not None:
                        if window.published_base is None:
                            window.published_base, window.nodes = published, 0
                        window.published_last, window.nodes_at_last = published, window.nodes
                    continue
                window.nodes += 1
                if not ours:
                    continue
                if node["kind"] == proto.NODE_POINT:
                    polled_at = node["polled_at"]
                    if dt_s > 0:
                        path = bytes(topic_view[:topic_size])
                        last = window.last_polled.get(path)
                        if last is not None and polled_at <= last and not node["stale"]:
                            # The same poll again (a site hub's periodic STATE relays every point):
                            # not a new update, and no latency from the agent's send.
                            window.repeats += 1
                            continue
                        if last is not None and polled_at - last > 1.5 * dt_s:
                            window.missed_polls += round((polled_at - last) / dt_s) - 1
                        window.last_polled[path] = polled_at
                    window.updates += 1
                    window.stale_points += node["stale"]
                    window.latencies_us.append(1e6 * (received - polled_at))
                else:
                    window.stale_parents += node["stale"]
                continue
            node = unpackb(payload_view[:payload_size], raw=False)
            if isinstance(node, list):  # the Python forwarder: the point entry itself
                if ours:
                    window.updates += 1
                    window.latencies_us.append(1e6 * (received - node[4]))
                continue
            if topic[0] == 0:
                continue  # the hub's heartbeat
            seq, epoch = node["seq"], node["epoch"]
            if epoch == last_epoch and last_seq is not None and seq != last_seq + 1:
                window.seq_gaps += seq - last_seq - 1
            last_seq, last_epoch = seq, epoch
            if not ours:
                if topic.startswith(b"_hub/") and node["kind"] == proto.NODE_POINT:
                    hub_values[bytes(topic_view[5:topic_size]).decode()] = node["value"]
                continue
            if node["kind"] == proto.NODE_POINT:
                window.updates += 1
                window.latencies_us.append(1e6 * (received - node["polled_at"]))
                window.stale_points += node["stale"]
            elif node["stale"]:
                window.stale_parents += 1
    _result(window.report(hub_values))


# ----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n\n")[0])
    roles = parser.add_subparsers(dest="role", required=True)
    for name, run in (("proxy", run_proxy), ("pyfwd", run_pyfwd)):
        role = roles.add_parser(name)
        role.set_defaults(run=run)
        role.add_argument("--rcvhwm", type=int, default=_HWM, help="receive high-water mark on the agents side")
    for name, run in (("sender", run_sender), ("fleet", run_fleet)):
        role = roles.add_parser(name)
        role.set_defaults(run=run)
        role.add_argument("--endpoint", required=True, help="where agents connect")
        role.add_argument("--agents", type=int, default=4)
        role.add_argument("--points", type=int, default=100, help="points per agent")
        role.add_argument("--groups", type=int, default=10, help="parents per agent")
        role.add_argument("--dt", type=float, default=1.0, help="poll interval of every point, s (fleet: 0 = none)")
        role.add_argument("--mount-prefix", default="bench")
        role.add_argument("--sndhwm", type=int, default=10_000, help="each agent socket's (the publisher's: 10,000)")
    sender = roles.choices["sender"]
    sender.add_argument("--mode", choices=["blast", "paced"], default="blast")
    sender.add_argument("--batch", type=int, default=100, help="points per DELTA")
    sender.add_argument("--flush", type=float, default=0.05, help="paced: each agent's DELTA interval, s")
    fleet = roles.choices["fleet"]
    fleet.add_argument("--first", type=int, default=0, help="index of this process's first agent")
    fleet.add_argument("--total-agents", type=int, default=0, help="agents over every fleet process")
    fleet.add_argument("--ramp", type=float, default=0.0, help="seconds over which the agents connect")
    fleet.add_argument(
        "--subscription-poll",
        type=float,
        default=_SUBSCRIPTION_POLL_S,
        help="seconds between looks for STATE requests (a look at thousands of sockets costs milliseconds)",
    )
    fleet.add_argument("--min-sleep", type=float, default=0.0, help="shortest sleep between sends, s")
    fleet.add_argument("--steady", action="store_true", help="every point GREEN (no ORANGE flip: no alarms)")
    fleet.add_argument(
        "--heartbeat",
        type=float,
        default=0.0,
        help="with --dt > 0: a HEARTBEAT from an agent that sent nothing for this long, s (the agent's 1.0)",
    )
    sink = roles.add_parser("sink")
    sink.set_defaults(run=run_sink)
    sink.add_argument("--endpoint", required=True, help="the forwarder's subscribers endpoint")
    sink.add_argument("--mode", choices=["count", "latency", "scale"], default="count")
    sink.add_argument("--prefix", default="bench/", help="count only updates under this path")
    sink.add_argument("--subscribe", default="", help="the subscription (default: everything)")
    sink.add_argument("--batch", type=int, default=100, help="points per forwarded envelope (proxy)")
    sink.add_argument("--frames", type=int, choices=[1, 2], default=2, help="frames per message (proxy: 1)")
    sink.add_argument(
        "--dt", type=float, default=0.0, help="scale: the points' poll interval, s; > 0 counts missed polls per point"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
