"""The hub's scenarios: throughput, latency, scale and snapshot, each against baselines.

Every scenario starts real processes (see :mod:`bench.peers`): a forwarder
-- a real ``gsmon hub``, or one of the baselines, ``zmq.proxy`` (``proxy``) and
a minimal Python forwarder (``pyfwd``) -- agents that speak the protocol, and
one subscriber. Each function runs ONE measurement and returns its figures;
:mod:`bench.run_all` repeats them, interleaving the forwarders so that the
machine's changing load hits them alike, and prints the table.

Forwarder names: ``hub`` (this tree), ``hub@REF`` (the hub of git revision REF,
for before/after figures from the same run), ``proxy``, ``pyfwd``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Final

import zmq

from bench._support import Child, Children, hub_sample, hub_value, measure_window
from gsmon.common import protocol as proto
from gsmon.common.client import Subscriber

__all__ = [
    "BASELINES",
    "LatencyResult",
    "ScaleResult",
    "SnapshotResult",
    "ThroughputResult",
    "run_latency",
    "run_scale",
    "run_snapshot",
    "run_throughput",
]

BASELINES: Final = ("proxy", "pyfwd")
_SETTLE_S: Final = 0.3  # let subscriptions travel before agents start
_SNAPSHOT_TIMEOUT_S: Final = 30.0
THROUGHPUT_HWM: Final = 1000  # agent -> forwarder queue depth (messages) in the throughput runs


def _forwarder(
    children: Children, impl: str, pythonpaths: dict[str, str], rcvhwm: int | None = None
) -> tuple[Child, dict[str, str]]:
    """Start ``impl`` and return it with its endpoints; ``rcvhwm`` replaces
    the receive high-water mark of its agents socket (default: the hub's)."""
    if impl == "hub" or impl.startswith("hub@"):
        children.hub_pythonpath = pythonpaths.get(impl)
        return children.hub(f"[limits]\nagents_rcvhwm = {rcvhwm}\n" if rcvhwm else "")
    if impl in BASELINES:
        child = children.peer(impl, *(("--rcvhwm", str(rcvhwm)) if rcvhwm else ()))
        return child, child.ready()
    raise ValueError(f"unknown forwarder {impl!r}")


def _sink_and_sender(
    children: Children,
    impl: str,
    endpoints: dict[str, str],
    batch: int,
    sink_args: tuple[str, ...],
    sender_args: tuple[str, ...],
    warmup_s: float,
) -> tuple[Child, Child]:
    """A subscriber of everything, then (once its subscription has travelled) a sender of DELTAs of ``batch``
    points; returns them after ``warmup_s`` of load, ready for MARK."""
    sink = children.peer(
        "sink",
        *("--endpoint", endpoints["subscribers"], "--batch", str(batch)),
        *("--frames", "1" if impl == "proxy" else "2", *sink_args),
    )
    sink.ready()
    time.sleep(_SETTLE_S)
    sender = children.peer("sender", "--endpoint", endpoints["agents"], "--batch", str(batch), *sender_args)
    sender.ready()
    time.sleep(warmup_s)
    return sink, sender


@dataclass(frozen=True, slots=True)
class ThroughputResult:
    """Point updates per second delivered to one subscriber of everything."""

    impl: str
    batch: int
    window_s: float
    delivered_per_s: float  # updates the subscriber received
    sent_per_s: float  # updates the agents sent (back-pressure paces them)
    forwarder_cores: float
    sink_cores: float


def run_throughput(
    impl: str,
    batch: int,
    *,
    agents: int = 4,
    points: int = 5000,
    warmup_s: float = 1.0,
    window_s: float = 3.0,
    pythonpaths: dict[str, str] | None = None,
) -> ThroughputResult:
    """Agents send DELTAs of ``batch`` points as fast as ``impl`` takes them
    (XPUB_NODROP: no loss, back-pressure instead); one subscriber counts what
    arrives over ``window_s`` after ``warmup_s``. Each agent cycles through
    its ``points`` points, so a point comes round again only after
    ``agents x points`` updates: the hub publishes the latest state of each
    point changed since its last publish, and with fewer distinct points it
    would coalesce updates that the baselines all forward.

    The queues between agents and forwarder are :data:`THROUGHPUT_HWM`
    messages deep on both sides, for every forwarder alike: with the hub's
    default of 100,000 messages (10 M updates at 100 per message) the
    back-pressure would reach the agents only after many seconds of queueing.
    Queue depth changes how long messages wait, not how fast they are processed.
    """
    with Children() as children:
        forwarder, endpoints = _forwarder(children, impl, pythonpaths or {}, THROUGHPUT_HWM)
        sink, sender = _sink_and_sender(
            children,
            impl,
            endpoints,
            batch,
            ("--mode", "count"),
            ("--mode", "blast", "--agents", str(agents), "--points", str(points), "--sndhwm", str(THROUGHPUT_HWM)),
            warmup_s,
        )
        cpu = forwarder.cpu_s(), sink.cpu_s()
        started = time.monotonic()
        sink.command("MARK")
        sender.command("MARK")
        time.sleep(window_s)
        sink.command("END")
        sender.command("END")
        elapsed = time.monotonic() - started
        cpu_end = forwarder.cpu_s(), sink.cpu_s()
        received = sink.result()
        sent = sender.result()
    return ThroughputResult(
        impl=impl,
        batch=batch,
        window_s=received["seconds"],
        delivered_per_s=received["rate"],
        sent_per_s=sent["window"]["points"] / elapsed,
        forwarder_cores=(cpu_end[0] - cpu[0]) / elapsed,
        sink_cores=(cpu_end[1] - cpu[1]) / elapsed,
    )


@dataclass(frozen=True, slots=True)
class LatencyResult:
    """Latency from the agent's send to the subscriber's receipt, per update."""

    impl: str
    rate: float  # updates per second offered
    batch: int  # points per DELTA
    samples: int
    p50_us: float
    p99_us: float
    p999_us: float
    max_us: float
    forwarder_cores: float


def run_latency(
    impl: str,
    rate: float,
    *,
    agents: int = 10,
    flush_s: float = 0.05,
    warmup_s: float = 1.0,
    window_s: float = 4.0,
    pythonpaths: dict[str, str] | None = None,
) -> LatencyResult:
    """``agents`` agents each send one DELTA every ``flush_s`` (staggered), as
    the publisher does, together ``rate`` updates per second; the subscriber
    takes ``receipt - polled_at`` of every update (``polled_at`` is stamped
    just before the send)."""
    batch = max(1, round(rate * flush_s / agents))
    with Children() as children:
        forwarder, endpoints = _forwarder(children, impl, pythonpaths or {})
        sink, sender = _sink_and_sender(
            children,
            impl,
            endpoints,
            batch,
            ("--mode", "latency"),
            ("--mode", "paced", "--agents", str(agents), "--points", str(max(100, batch)), "--flush", str(flush_s)),
            warmup_s,
        )
        cpu = forwarder.cpu_s()
        started = time.monotonic()
        sink.command("MARK")
        time.sleep(window_s)
        sink.command("END")
        elapsed = time.monotonic() - started
        cores = (forwarder.cpu_s() - cpu) / elapsed
        received = sink.result()
        sender.command("END")
        sender.result()
    return LatencyResult(
        impl=impl,
        rate=agents * batch / flush_s,
        batch=batch,
        samples=received["latency_samples"],
        p50_us=received["p50_us"],
        p99_us=received["p99_us"],
        p999_us=received["p999_us"],
        max_us=received["max_us"],
        forwarder_cores=cores,
    )


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    """One late subscriber's snapshot of the whole tree."""

    nodes: int
    arrived_s: float  # request sent -> SNAPSHOT_END received (raw DEALER, nothing decoded)
    bytes: int
    client_ready_s: float  # gsmon.common.client.Subscriber(prefix="").connect(), tree applied
    stale_nodes: int = 0  # nodes the snapshot shows STALE


def _raw_snapshot(query: str) -> tuple[float, int, int]:
    """Ask for the whole tree on a bare DEALER; time until SNAPSHOT_END arrives."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RCVHWM, 0)
    try:
        dealer.connect(query)
        request = proto.SnapshotRequest(sender="bench", epoch=0, seq=1, sent_ns=time.time_ns(), request_id=1, prefix="")
        size = 0
        started = time.monotonic()
        dealer.send(proto.encode(request))
        while True:
            if not dealer.poll(int(_SNAPSHOT_TIMEOUT_S * 1000)):
                raise RuntimeError("no snapshot from the hub")
            data = dealer.recv()
            size += len(data)
            if data[3] == proto.MsgKind.SNAPSHOT_END:
                elapsed = time.monotonic() - started
                end = proto.decode(data)
                assert isinstance(end, proto.SnapshotEnd)
                return elapsed, end.count, size
    finally:
        dealer.close()
        context.term()


def measure_snapshot(query: str) -> SnapshotResult:
    """A raw snapshot, then a real client's connect, of the whole tree."""
    arrived, nodes, size = _raw_snapshot(query)
    started = time.monotonic()
    with Subscriber(query, "", timeout_s=_SNAPSHOT_TIMEOUT_S) as client:
        ready = time.monotonic() - started
        stale = sum(node.stale for node in client.tree.values())
    return SnapshotResult(nodes=nodes, arrived_s=arrived, bytes=size, client_ready_s=ready, stale_nodes=stale)


def _wait_for_agents(watch: Subscriber, agents: int, timeout_s: float, strict: bool = True) -> int:
    """Wait until the hub reports ``agents`` live agents; return how many are.
    A hub that does not get there raises, or with ``strict=False`` is measured as it is."""
    deadline = time.monotonic() + timeout_s
    while (live := hub_value(watch, "agents_live") or 0) != agents:
        if time.monotonic() > deadline:
            if strict:
                raise RuntimeError(f"only {live} of {agents} agents live after {timeout_s} s")
            return int(live)
        watch.poll(0.1)
    return agents


def _fleet(
    children: Children,
    endpoint: str,
    agents: int,
    processes: int,
    points: int,
    groups: int,
    dt_s: float,
    ramp_s: float = 0.0,
) -> list[Child]:
    fleets = []
    per_process = -(-agents // processes)
    for first in range(0, agents, per_process):
        count = min(per_process, agents - first)
        fleet = children.peer(
            "fleet",
            *("--endpoint", endpoint, "--first", str(first), "--agents", str(count)),
            *("--total-agents", str(agents), "--points", str(points), "--groups", str(groups), "--dt", str(dt_s)),
            *("--mount-prefix", "sim", "--ramp", str(ramp_s)),
        )
        fleets.append(fleet)
    for fleet in fleets:
        fleet.ready()
    return fleets


@dataclass(frozen=True, slots=True)
class ScaleResult:
    """Many agents at ``dt`` = 1 s against one hub, for a long window."""

    impl: str
    agents: int
    points_per_agent: int
    live_at_start: int  # agents the hub reported live when the window began ...
    live_at_end: int  # ... and when it ended
    window_s: float
    offered_per_s: float  # updates the agents sent in the window
    processed_per_s: float  # updates the hub applied: its messages_in x points per message, per second of its clock
    followed: str  # the subscriber's prefix
    followed_offered_per_s: float  # updates sent by the agents under it
    delivered_per_s: float  # point updates the subscriber received
    hub_cores: float  # the whole hub process ...
    hub_loop_cores: float  # ... of which its loop thread (the rest: ZeroMQ's I/O thread)
    rss_start_mb: float
    rss_end_mb: float
    rss_max_mb: float
    p50_us: float
    p99_us: float
    p999_us: float
    stale_points: int  # STALE point updates published in the window (all false: every agent is alive)
    stale_parents: int
    lost_subscriber: int  # NODEs published (heartbeat counter) but not received: hub -> subscriber loss
    seq_gaps_hub: int  # agent seqs the hub never saw (agent -> hub loss), from _hub/seq_gaps
    dropped_by_agents: int  # sends refused at the agents' high-water mark
    rejected: int  # messages and points the hub rejected, and conflicts
    nodes: int
    busy_snapshots: list[SnapshotResult] = field(default_factory=list)


def run_scale(
    impl: str = "hub",
    *,
    agents: int = 1000,
    points: int = 100,
    processes: int = 4,
    warmup_s: float = 3.0,
    window_s: float = 30.0,
    ramp_s: float = 10.0,
    follow: str = "sim/sim-00",
    snapshots: int = 1,
    pythonpaths: dict[str, str] | None = None,
) -> ScaleResult:
    """``agents`` simulated agents (``processes`` processes) x ``points`` points
    at dt = 1 s into one hub for ``window_s``; one subscriber follows
    ``follow`` (by default agents sim-0000 to sim-0099: a tenth of the load).
    Then ``snapshots`` late subscribers take the whole tree while the load goes
    on, and count what it shows STALE.

    Why not a subscriber of everything here: on a 2-core machine a Python
    subscriber of 100,000 updates a second needs about half a core by itself
    (measured: 4.4 us per update), taken from the hub it measures. The hub
    still packs and sends every update; ZeroMQ drops the ones nobody follows.
    The throughput scenario measures a subscriber of everything.

    The agents connect one after the other over ``ramp_s`` (a fleet coming
    up); the window starts ``warmup_s`` after the last one is live."""
    with Children() as children:
        hub, endpoints = _forwarder(children, impl, pythonpaths or {})
        sink = children.peer(
            "sink",
            *("--endpoint", endpoints["subscribers"], "--mode", "scale", "--prefix", follow, "--subscribe", follow),
        )
        sink.ready()
        time.sleep(_SETTLE_S)
        fleets = _fleet(children, endpoints["agents"], agents, processes, points, 10, 1.0, ramp_s)
        with Subscriber(endpoints["query"], "_hub/", timeout_s=_SNAPSHOT_TIMEOUT_S) as watch:
            # A hub that cannot keep up is measured all the same: the table shows how it fails.
            _wait_for_agents(watch, agents, timeout_s=ramp_s + 30.0, strict=False)
            settle = time.monotonic() + warmup_s
            while time.monotonic() < settle:
                watch.poll(0.1)
            live_at_start = int(hub_value(watch, "agents_live") or 0)
            counters = ("seq_gaps", "messages_rejected", "points_rejected", "conflicts", "messages_in")
            before = {name: hub_value(watch, name) or 0 for name in counters}
            applied_before = hub_sample(watch, "messages_in")
            elapsed, loads = measure_window(window_s, {"hub": hub}, sink, fleets, watch.poll)
            load = loads["hub"]
            # The hub's counters are published once a second: read them as the window closes.
            after = {name: hub_value(watch, name) or 0 for name in counters}
            applied_after = hub_sample(watch, "messages_in")
            received = sink.result(timeout_s=60.0)
            nodes = hub_value(watch, "nodes") or 0
            live_at_end = int(hub_value(watch, "agents_live") or 0)
        # Late subscribers while the agents keep sending: a snapshot of a busy hub.
        busy = [measure_snapshot(endpoints["query"]) for _ in range(snapshots)]
        for fleet in fleets:
            fleet.command("END")
        sent = [fleet.result() for fleet in fleets]
    offered = sum(result["window"]["points"] for result in sent)
    followed_agents = sum(f"sim/sim-{index:04d}/".startswith(follow) for index in range(agents))
    return ScaleResult(
        impl=impl,
        agents=agents,
        points_per_agent=points,
        live_at_start=live_at_start,
        live_at_end=live_at_end,
        window_s=elapsed,
        offered_per_s=offered / elapsed,
        processed_per_s=(applied_after[0] - applied_before[0])
        * points
        / max(1e-9, applied_after[1] - applied_before[1]),
        followed=follow,
        followed_offered_per_s=offered / elapsed * followed_agents / agents,
        delivered_per_s=received["rate"],
        hub_cores=load.cores,
        hub_loop_cores=load.loop_cores,
        rss_start_mb=load.rss_start_mb,
        rss_end_mb=load.rss_end_mb,
        rss_max_mb=load.rss_max_mb,
        p50_us=received["p50_us"],
        p99_us=received["p99_us"],
        p999_us=received["p999_us"],
        stale_points=received["stale_points"],
        stale_parents=received["stale_parents"],
        lost_subscriber=received["lost"],
        seq_gaps_hub=after["seq_gaps"] - before["seq_gaps"],
        dropped_by_agents=sum(result["window"]["dropped"] for result in sent),
        rejected=sum(after[name] - before[name] for name in counters if name not in ("seq_gaps", "messages_in")),
        nodes=nodes,
        busy_snapshots=busy,
    )


def run_snapshot(
    impl: str = "hub",
    *,
    agents: int = 20,
    points: int = 5000,
    repeats: int = 3,
    pythonpaths: dict[str, str] | None = None,
) -> list[SnapshotResult]:
    """A quiet hub holding ``agents`` x ``points`` one-shot points (agents send
    heartbeats only); ``repeats`` late subscribers each take the whole tree."""
    with Children() as children:
        _, endpoints = _forwarder(children, impl, pythonpaths or {})
        fleets = _fleet(children, endpoints["agents"], agents, min(agents, 2), points, 50, 0.0)
        expected = agents * points
        with Subscriber(endpoints["query"], "_hub/", timeout_s=_SNAPSHOT_TIMEOUT_S) as watch:
            _wait_for_agents(watch, agents, timeout_s=60.0)
            deadline = time.monotonic() + 60.0
            while (hub_value(watch, "nodes") or 0) < expected:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the hub holds {hub_value(watch, 'nodes')} nodes, expected {expected}+")
                watch.poll(0.1)
        results = [measure_snapshot(endpoints["query"]) for _ in range(repeats)]
        for fleet in fleets:
            fleet.command("END")
            fleet.result()
    return results
