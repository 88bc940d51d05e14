"""Issue 17 section 4: many agents over site hubs under one central hub, against the same load on one hub.

::

    python -m bench.scale_bench                      # 10,000 agents over 4 site hubs, 60 s windows (~6 minutes)
    python -m bench.scale_bench --agents 4000 --window 30
    python -m bench.scale_bench --quick --json       # tiny load, short windows (the smoke test)
    python -m bench.scale_bench --markdown           # the tables for bench/RESULTS.md

Two setups, one after the other in the same run, with the same load:

one hub (the baseline)
    every simulated agent connects to ONE real ``gsmon hub``.
federated
    ``--sites`` site hubs (real ``gsmon hub`` processes, each with its own
    ``--state-dir`` in a temporary folder), each fed by its own agents, each
    relaying its tree upstream to ONE central hub (``gsmon hub --upstream
    <central agents endpoint> --upstream-mount SITE<n>``). Agents are split
    between sites in contiguous blocks: with 10,000 agents and 4 sites,
    ``sim-0000``-``sim-2499`` are under ``SITE0``, and so on.

How the load is generated: :mod:`bench.peers` ``fleet`` processes (at most
:data:`AGENTS_PER_FLEET` simulated agents each, one process per site at the
default sizes). Each simulated agent has its own XPUB socket, name, epoch and
sequence numbers and speaks the protocol as ``agent/publisher.py`` does (a
STATE when the hub subscribes, then DELTAs): 100 points under 10 parents, all
polled every dt = 10 s (0.1 Hz) and sent as ONE DELTA of 100 points per dt,
the agents' phases spread evenly over the 10 s across every fleet process, so
that N agents offer N x 10 updates/s at a steady rate (10,000 agents:
100,000 updates/s, 1,000 DELTAs/s). Between DELTAs each agent sends a
HEARTBEAT whenever it sent nothing for 1 s, as ``common/send_policy.py`` does
with its default ``heartbeat_interval_s`` (10,000 agents: 9,000 HEARTBEATs/s
more). Every value changes at every poll; every
point stays GREEN (``--steady``), so that the only alarms are the ones the
failover opens. The poll time in each update is the agent's send time. The
agents connect over a ramp (:func:`ramp_s`) as a fleet coming up would; the
window starts a warm-up of one dt and a half after the hub(s) hold every point.

What is measured, in each setup, over ``--window`` seconds:

* one subscriber (a :mod:`bench.peers` ``sink``) at the central hub (or the
  one hub) following :data:`FOLLOW` below the centre's mount of the first site
  (agents ``sim-0000``-``sim-0999`` at the default size: a tenth of the load,
  as a control-room view follows part of the tree; a Python subscriber of all
  100,000 updates/s would take half a core from the hubs it measures): the
  latency from the agent's send to its receipt (the relayed NODE keeps the
  agent's poll time), p50/p99/p99.9; end-to-end loss as missed polls (each
  followed point must arrive every dt: successive updates k dt apart lost
  k - 1); hub-to-subscriber loss the protocol's way (NODEs received against
  the heartbeat's ``published`` counter); STALE updates;
* the central hub's (and each site hub's) CPU in cores and RSS;
* updates/s arriving at the centre: the subscriber's rate scaled by all agents
  over followed agents (the hubs have no per-point input counter), with the
  centre's DELTA messages/s (``_hub/messages_in``) beside it;
* agent-side drops, the hubs' ``seq_gaps`` and rejects.

Then, in the federated setup with the load still on, the last site hub is
SIGKILLed: the time until its subtree is STALE at the centre (sampled leaves
of that site's first, middle and last agents, each followed by a real
``gsmon.common.client.Subscriber`` at the centre), the alarms the centre
opened for it (expected: one), and, after it restarts on the same endpoints
and state directory, the time until those leaves are fresh again at the centre
(which includes libzmq's reconnect back-off of up to 5 s in the agents and the
site's refill).

Children bind port 0 and print READY lines, except the restarted site hub,
which binds the ports its first run was given (its agents reconnect there).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

if __package__ in (None, ""):  # run as a script: python bench/scale_bench.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._support import (
    LOOPBACK,
    REPO,
    Child,
    Children,
    HubLoad,
    hub_sample,
    hub_value,
    machine_details,
    measure_window,
)
from gsmon.common import children as child_processes
from gsmon.common.alarm_commands import AlarmRecord, OperatorClient
from gsmon.common.client import Subscriber
from gsmon.common.commands import send_command
from gsmon.common.errors import UnavailableError

__all__ = [
    "AGENTS_PER_FLEET",
    "DT_S",
    "FOLLOW",
    "FailoverResult",
    "HubLoad",
    "ScaleRun",
    "SetupResult",
    "federation_available",
    "main",
    "ramp_s",
    "run",
]

DT_S: Final = 10.0  # every point's poll interval (0.1 Hz)
HEARTBEAT_S: Final = 1.0  # an agent that sent nothing for this long sends a HEARTBEAT (the agent's default)
POINTS: Final = 100  # per agent
GROUPS: Final = 10  # parents per agent
AGENTS_PER_FLEET: Final = 2500  # simulated agents per fleet process (one XPUB socket, two fds each)
FOLLOW: Final = "sim/sim-0"  # below the first site's mount: agents sim-0000 to sim-0999
FLEET_MIN_SLEEP_S: Final = 0.005  # a fleet's sends go in batches of at most 5 ms (stamped when sent)
SUBSCRIPTION_POLL_S: Final = 0.2  # a fleet looks for STATE requests this often (2,500 sockets: ~3 ms a look)
_WAIT_S: Final = 60.0
_DEATH_LINES: Final = 5  # stderr lines kept of a fleet process that died


def ramp_s(agents: int) -> float:
    """Seconds over which the agents connect: 100 a second (measured: a hub with thousands of agents
    takes in fewer than 100 new ones a second on this machine, see bench/RESULTS.md)."""
    return max(2.0, agents / 100)


def federation_available() -> bool:
    """Whether this tree's hub has ``--upstream`` (issue 17 section 1)."""
    return "--upstream" in (REPO / "hub" / "main.py").read_text(encoding="utf-8")


def site_mount(site: int) -> str:
    return f"SITE{site}"


def agent_name(index: int) -> str:
    return f"sim-{index:04d}"


def leaf_path(index: int) -> str:
    """The first point of agent ``index`` below its hub's root (as bench.peers names it)."""
    return f"sim/{agent_name(index)}/g00/p0000"


@dataclass(frozen=True, slots=True)
class SetupResult:
    """One setup's window: the load, what the subscriber at the centre saw, what the hubs cost."""

    setup: str  # "one hub" or "federated"
    agents: int
    sites: int  # 0 for one hub
    window_s: float
    live_agents_start: int  # agents the hub(s) with agents reported live at the window's start ...
    live_agents_end: int  # ... and at its end
    offered_per_s: float  # updates the agents sent in the window
    centre_messages_per_s: float  # DELTA/STATE messages the central hub (or the one hub) took in
    centre_updates_per_s: float  # estimated: delivered_per_s x agents / followed_agents
    followed: str
    followed_agents: int
    followed_offered_per_s: float
    delivered_per_s: float
    latency_samples: int
    p50_us: float
    p99_us: float
    p999_us: float
    max_us: float
    missed_polls: int  # followed point updates that never reached the subscriber (end to end)
    repeats: int  # NODEs of a followed point whose poll time did not advance (not counted as updates)
    points_seen: int  # distinct followed points that arrived in the window
    lost_subscriber: int  # NODEs the centre published but the subscriber did not get
    stale_points: int
    stale_parents: int
    seq_gaps: int  # over every hub (agent -> site, site -> centre)
    dropped_by_agents: int
    rejected: int
    centre_nodes: int
    centre: HubLoad
    site_hubs: list[HubLoad] = field(default_factory=list)
    fleet_cores: float = 0.0
    sink_cores: float = 0.0
    came_up: str = "yes"  # or what fell short when the window began anyway
    centre_resyncs: int = 0  # STATEs the centre asked for in the window (_hub/resyncs_requested)
    centre_backlog_max_s: float = 0.0  # the most the centre's loop was behind its agents socket (_hub/agents_backlog_s)
    dead_fleets: list[str] = field(default_factory=list)  # each dead fleet: exit status, last stderr lines

    @property
    def held(self) -> bool:
        """Sustained without loss: every agent live, every followed update delivered, nothing dropped or STALE."""
        return (
            self.live_agents_start == self.live_agents_end == self.agents
            and self.missed_polls == 0
            and self.lost_subscriber == 0
            and self.seq_gaps == 0
            and self.dropped_by_agents == 0
            and self.stale_points == 0
            and self.delivered_per_s >= 0.97 * self.followed_offered_per_s
        )


@dataclass(frozen=True, slots=True)
class FailoverResult:
    """A site hub SIGKILLed under load, then restarted on the same endpoints and state directory."""

    site: str
    leaves: int  # sampled leaves of that site followed at the centre
    stale_first_s: float  # kill -> the first sampled leaf STALE at the centre
    stale_all_s: float  # kill -> every sampled leaf STALE
    alarms_opened: int  # alarms the centre opened between the kill and the restart
    alarm_paths: list[str]
    restart_ready_s: float  # restart -> the site hub's READY line
    heal_first_s: float  # restart -> the first sampled leaf fresh again at the centre
    heal_all_s: float  # restart -> every sampled leaf fresh
    states_after_heal: list[str]  # the states of those alarms after the heal (e.g. rtn_unacked: latched)


@dataclass(slots=True)
class ScaleRun:
    agents: int
    sites: int
    window_s: float
    single: SetupResult
    federated: SetupResult | None
    failover: FailoverResult | None
    federation_note: str  # why the federated part did not run ("" when it did)
    machine: dict[str, str]
    minutes: float


# ----------------------------------------------------------------------
# Processes
# ----------------------------------------------------------------------


def _hub(
    children: Children,
    name: str,
    state_dir: Path,
    endpoints: dict[str, str] | None = None,
    extra: Sequence[str] = (),
) -> tuple[Child, dict[str, str]]:
    """A real ``gsmon hub`` with its own state directory; on ``endpoints`` when given
    (a restart: its agents reconnect to the ports they knew), else on port 0."""
    where = endpoints or {"agents": LOOPBACK, "subscribers": LOOPBACK, "query": LOOPBACK}
    argv = child_processes.gsmon_argv(
        "hub", "--agents", where["agents"], "--subscribers", where["subscribers"], "--query", where["query"]
    )
    argv += ["--log-level", "WARNING", "--state-dir", str(state_dir), *extra]
    child = children.start(name, argv)
    return child, child.ready(timeout_s=_WAIT_S)


def _upstream(central_agents: str, site: int) -> list[str]:
    return ["--upstream", central_agents, "--upstream-mount", site_mount(site)]


def _fleets(children: Children, endpoint: str, first: int, count: int, total: int, ramp: float) -> list[Child]:
    """Fleet processes for agents ``first`` .. ``first + count - 1`` (of ``total``) into ``endpoint``."""
    fleets = []
    for start in range(first, first + count, AGENTS_PER_FLEET):
        agents = min(AGENTS_PER_FLEET, first + count - start)
        fleets.append(
            children.peer(
                "fleet",
                *("--endpoint", endpoint, "--first", str(start), "--agents", str(agents)),
                *("--total-agents", str(total), "--points", str(POINTS), "--groups", str(GROUPS)),
                *("--dt", str(DT_S), "--mount-prefix", "sim", "--ramp", str(ramp), "--steady"),
                *("--subscription-poll", str(SUBSCRIPTION_POLL_S), "--heartbeat", str(HEARTBEAT_S)),
                *("--min-sleep", str(FLEET_MIN_SLEEP_S)),
            )
        )
    for fleet in fleets:
        fleet.ready(timeout_s=_WAIT_S)
    return fleets


class _Watches:
    """``_hub/`` followers of several hubs, polled in turn (their counters come once a second)."""

    def __init__(self, queries: dict[str, str]) -> None:
        self.watch = {name: Subscriber(query, "_hub/", timeout_s=_WAIT_S).connect() for name, query in queries.items()}

    def poll(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            for watch in self.watch.values():
                watch.poll(0)
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(0.05, remaining))

    def value(self, hub: str, name: str) -> Any:
        return hub_value(self.watch[hub], name) or 0

    def close(self) -> None:
        for watch in self.watch.values():
            watch.close()


def _wait(watches: _Watches, ready: dict[str, tuple[str, int]], timeout_s: float) -> str:
    """Until each hub's ``_hub/<counter>`` reaches its target (``hub -> (counter, target)``); "" then,
    else (after ``timeout_s``) what fell short: a setup that cannot take the load is measured as it is."""
    deadline = time.monotonic() + timeout_s
    while True:
        short = {
            hub: watches.value(hub, name) for hub, (name, target) in ready.items() if watches.value(hub, name) < target
        }
        if not short:
            return ""
        if time.monotonic() > deadline:
            wanted = ", ".join(f"{hub} {ready[hub][0]} {value} of {ready[hub][1]}" for hub, value in short.items())
            print(f"the load did not come up within {timeout_s:.0f} s: {wanted}; measured as it is", file=sys.stderr)
            return f"not up within {timeout_s:.0f} s: {wanted}"
        watches.poll(0.5)


# ----------------------------------------------------------------------
# One setup
# ----------------------------------------------------------------------


def _measure(
    setup: str,
    children: Children,
    *,
    agents: int,
    sites: int,
    centre: tuple[Child, dict[str, str]],
    site_hubs: list[tuple[Child, dict[str, str]]],
    fleets: list[Child],
    follow: str,
    followed_agents: int,
    window_s: float,
    warmup_s: float,
) -> tuple[SetupResult, _Watches, Child]:
    """Wait for the load, measure one window; returns the figures and the (still open) watchers and sink."""
    centre_hub, centre_ends = centre
    queries = {"centre": centre_ends["query"]} | {
        f"site{index}": ends["query"] for index, (_, ends) in enumerate(site_hubs)
    }
    watches = _Watches(queries)
    agent_hubs = [f"site{index}" for index in range(len(site_hubs))] or ["centre"]
    per_hub = [agents // len(agent_hubs) + (index < agents % len(agent_hubs)) for index in range(len(agent_hubs))]
    targets = {hub: ("agents_live", count) for hub, count in zip(agent_hubs, per_hub, strict=True)}
    if site_hubs:
        targets["centre"] = ("nodes", agents * POINTS)
    short = _wait(watches, targets, ramp_s(agents) + _WAIT_S)
    watches.poll(warmup_s)
    sink = children.peer(
        "sink",
        *("--endpoint", centre_ends["subscribers"], "--mode", "scale", "--prefix", follow, "--subscribe", follow),
        *("--dt", str(DT_S)),
    )
    sink.ready()
    watches.poll(DT_S + 1.0)  # every followed point has arrived once: missed polls count from there
    hubs = {"centre": centre_hub} | {f"site{index}": child for index, (child, _) in enumerate(site_hubs)}
    counters = ("seq_gaps", "messages_rejected", "points_rejected", "conflicts", "resyncs_requested")
    before = {(hub, name): watches.value(hub, name) for hub in hubs for name in counters}
    live_start = sum(int(watches.value(hub, "agents_live")) for hub in agent_hubs)
    messages_before = hub_sample(watches.watch["centre"], "messages_in")
    side_cpu = [child.cpu_s() for child in fleets], sink.cpu_s()
    backlog_max_s = 0.0

    def poll(seconds: float) -> None:
        nonlocal backlog_max_s
        watches.poll(seconds)
        backlog_max_s = max(backlog_max_s, float(watches.value("centre", "agents_backlog_s")))

    # The window ends with the fleets CUT: the load goes on (the failover runs under it).
    elapsed, loads = measure_window(window_s, hubs, sink, fleets, poll)
    fleet_cores = sum(child.cpu_s() - was for child, was in zip(fleets, side_cpu[0], strict=True)) / elapsed
    sink_cores = (sink.cpu_s() - side_cpu[1]) / elapsed
    after = {(hub, name): watches.value(hub, name) for hub in hubs for name in counters}
    messages_after = hub_sample(watches.watch["centre"], "messages_in")
    live_end = sum(int(watches.value(hub, "agents_live")) for hub in agent_hubs)
    received = sink.result(timeout_s=_WAIT_S)
    delivered = float(received["rate"])
    result = SetupResult(
        setup=setup,
        agents=agents,
        sites=sites,
        window_s=elapsed,
        live_agents_start=live_start,
        live_agents_end=live_end,
        offered_per_s=math.nan,  # filled in from the fleets' RESULT lines at the end of the setup
        centre_messages_per_s=(messages_after[0] - messages_before[0])
        / max(1e-9, messages_after[1] - messages_before[1]),
        centre_updates_per_s=delivered * agents / max(1, followed_agents),
        followed=follow,
        followed_agents=followed_agents,
        followed_offered_per_s=followed_agents * POINTS / DT_S,
        delivered_per_s=delivered,
        latency_samples=received["latency_samples"],
        p50_us=received["p50_us"],
        p99_us=received["p99_us"],
        p999_us=received["p999_us"],
        max_us=received["max_us"],
        missed_polls=received["missed_polls"],
        repeats=received["repeats"],
        points_seen=received["points_seen"],
        lost_subscriber=received["lost"],
        stale_points=received["stale_points"],
        stale_parents=received["stale_parents"],
        seq_gaps=sum(after[hub, "seq_gaps"] - before[hub, "seq_gaps"] for hub in hubs),
        dropped_by_agents=0,  # filled in from the fleets' RESULT lines too
        rejected=sum(after[key] - before[key] for key in after if key[1] not in ("seq_gaps", "resyncs_requested")),
        centre_resyncs=after["centre", "resyncs_requested"] - before["centre", "resyncs_requested"],
        centre_backlog_max_s=backlog_max_s,
        centre_nodes=int(watches.value("centre", "nodes")),
        centre=loads["centre"],
        site_hubs=[loads[f"site{index}"] for index in range(len(site_hubs))],
        fleet_cores=fleet_cores,
        sink_cores=sink_cores,
        came_up=short or "yes",
    )
    return result, watches, sink


def _fleet_death(fleet: Child) -> str:
    """How a fleet process that ended without its RESULT line ended: its exit status and its last stderr
    lines (the log folder goes with the run: this is all that is left of it)."""
    lines = child_processes.tail(fleet.stderr(), _DEATH_LINES)
    said = " | ".join(lines) if lines else "nothing on stderr"
    first, count = (int(fleet.argv[fleet.argv.index(flag) + 1]) for flag in ("--first", "--agents"))
    agents = f"{agent_name(first)}..{agent_name(first + count - 1)}"
    return f"fleet of {agents} ({child_processes.describe_status(fleet.status)}): {said}"


def _end_fleets(fleets: list[Child], result: SetupResult) -> SetupResult:
    """End the fleets; the offered rate and agent-side drops come from their RESULT lines. A fleet that
    died is measured without, and said: its exit status and last stderr lines (``dead_fleets``)."""
    windows = []
    dead = []
    for fleet in fleets:
        try:
            fleet.command("END")
            windows.append(fleet.result(timeout_s=_WAIT_S)["window"])
        except (OSError, child_processes.ChildFailedError):  # gone, or ended without its RESULT line
            fleet.stop()  # reaped, so that its status is known
            dead.append(_fleet_death(fleet))
    for death in dead:
        print(f"a fleet process died: {death}", file=sys.stderr)
    return dataclasses.replace(
        result,
        offered_per_s=sum(window["points"] for window in windows) / result.window_s,
        dropped_by_agents=sum(window["dropped"] for window in windows),
        came_up=result.came_up if not dead else f"{result.came_up}; {len(dead)} fleet process(es) died (not counted)",
        dead_fleets=dead,
    )


def _followed(indices: range) -> int:
    """How many of these agents (all at one hub) :data:`FOLLOW` takes in."""
    return sum(f"sim/{agent_name(index)}/".startswith(FOLLOW) for index in indices)


def run_single(agents: int, window_s: float, warmup_s: float) -> SetupResult:
    """The baseline: every agent into one hub."""
    with Children() as children, tempfile.TemporaryDirectory(prefix="gsmon-scale-") as folder:
        centre = _hub(children, "hub", Path(folder) / "hub")
        fleets = _fleets(children, centre[1]["agents"], 0, agents, agents, ramp_s(agents))
        result, watches, _ = _measure(
            "one hub",
            children,
            agents=agents,
            sites=0,
            centre=centre,
            site_hubs=[],
            fleets=fleets,
            follow=FOLLOW,
            followed_agents=_followed(range(agents)),
            window_s=window_s,
            warmup_s=warmup_s,
        )
        watches.close()
        return _end_fleets(fleets, result)


def run_federated(
    agents: int, sites: int, window_s: float, warmup_s: float
) -> tuple[SetupResult, FailoverResult | None, str]:
    """``sites`` site hubs under one central hub, the same load; then a site hub's SIGKILL and restart."""
    with Children() as children, tempfile.TemporaryDirectory(prefix="gsmon-scale-") as folder:
        centre = _hub(children, "central", Path(folder) / "central")
        site_hubs = [
            _hub(children, f"site{site}", Path(folder) / f"site{site}", extra=_upstream(centre[1]["agents"], site))
            for site in range(sites)
        ]
        blocks = [agents // sites + (site < agents % sites) for site in range(sites)]
        firsts = [sum(blocks[:site]) for site in range(sites)]
        fleets = [
            fleet
            for site, (_, ends) in enumerate(site_hubs)
            for fleet in _fleets(children, ends["agents"], firsts[site], blocks[site], agents, ramp_s(agents))
        ]
        result, watches, _ = _measure(
            "federated",
            children,
            agents=agents,
            sites=sites,
            centre=centre,
            site_hubs=site_hubs,
            fleets=fleets,
            follow=f"{site_mount(0)}/{FOLLOW}",
            followed_agents=_followed(range(blocks[0])),
            window_s=window_s,
            warmup_s=warmup_s,
        )
        watches.close()
        victim = sites - 1
        failover: FailoverResult | None = None
        note = ""
        try:
            failover = _failover(
                children,
                centre[1]["query"],
                site_hubs[victim],
                victim,
                Path(folder) / f"site{victim}",
                centre[1]["agents"],
                [firsts[victim], firsts[victim] + blocks[victim] // 2, firsts[victim] + blocks[victim] - 1],
            )
        except (RuntimeError, UnavailableError) as error:  # measured as far as it went: the table says why not
            # further (an overloaded centre may not answer its alarm queries within their timeout)
            note = f"failover not measured: {error}"
        return _end_fleets(fleets, result), failover, note


# ----------------------------------------------------------------------
# Failover
# ----------------------------------------------------------------------


def _alarms(query: str) -> dict[int, AlarmRecord]:
    """The centre's open alarms by id (a latched alarm that returned to normal is still open)."""
    client = OperatorClient(lambda command, args: send_command(query, command, args, timeout_s=10.0))
    return {alarm.id: alarm for alarm in client.alarms("")}


def _until(followers: list[Subscriber], paths: list[str], test: Any, started: float, timeout_s: float) -> list[float]:
    """Seconds from ``started`` until ``test(node)`` held for each path (NaN: not within ``timeout_s``)."""
    times = [math.nan] * len(paths)
    deadline = started + timeout_s
    while any(math.isnan(value) for value in times) and time.monotonic() < deadline:
        time.sleep(0.01)
        for index, (follower, path) in enumerate(zip(followers, paths, strict=True)):
            follower.poll(0)
            node = follower.tree.get(path)
            if math.isnan(times[index]) and node is not None and test(node):
                times[index] = time.monotonic() - started
    return times


def _failover(
    children: Children,
    centre_query: str,
    site: tuple[Child, dict[str, str]],
    index: int,
    state_dir: Path,
    central_agents: str,
    sampled_agents: list[int],
) -> FailoverResult:
    child, ends = site
    mount = site_mount(index)
    paths = [f"{mount}/{leaf_path(agent)}" for agent in sampled_agents]
    followers = [Subscriber(centre_query, path, timeout_s=_WAIT_S).connect() for path in paths]
    try:
        fresh = _until(followers, paths, lambda node: not node.stale, time.monotonic(), 2 * DT_S)
        if any(math.isnan(value) for value in fresh):
            missing = [path for path, value in zip(paths, fresh, strict=True) if math.isnan(value)]
            raise RuntimeError(f"sampled leaves not fresh at the centre before the kill: {missing}")
        open_before = _alarms(centre_query)
        killed = time.monotonic()
        child.kill()
        stale = _until(followers, paths, lambda node: node.stale, killed, _WAIT_S)
        for follower in followers:
            follower.poll(0)
        time.sleep(1.0)  # let the alarm be stored; then read the centre's open alarms
        opened = {alarm: record.path for alarm, record in _alarms(centre_query).items() if alarm not in open_before}
        restarted = time.monotonic()
        restart_wall = time.time()
        _hub(children, f"site{index}-restarted", state_dir, endpoints=ends, extra=_upstream(central_agents, index))
        ready_s = time.monotonic() - restarted
        heal = _until(
            followers,
            paths,
            lambda node: not node.stale and (node.polled_at_s or 0) >= restart_wall,
            restarted,
            _WAIT_S + ramp_s(len(sampled_agents)),
        )
        time.sleep(1.0)
        after = _alarms(centre_query)
        states = [after[alarm].state if alarm in after else "closed" for alarm in sorted(opened)]
    finally:
        for follower in followers:
            follower.close()
    return FailoverResult(
        site=mount,
        leaves=len(paths),
        stale_first_s=min(stale),
        stale_all_s=max(stale),
        alarms_opened=len(opened),
        alarm_paths=sorted(opened.values())[:5],
        restart_ready_s=ready_s,
        heal_first_s=min(heal),
        heal_all_s=max(heal),
        states_after_heal=states,
    )


# ----------------------------------------------------------------------
# The run and its tables
# ----------------------------------------------------------------------


def run(agents: int, sites: int, window_s: float, warmup_s: float | None = None) -> ScaleRun:
    """Both setups, the baseline first; the federated part only when this tree's hub has ``--upstream``."""
    started = time.monotonic()
    warmup = warmup_s if warmup_s is not None else 1.5 * DT_S
    details = machine_details()
    single = run_single(agents, window_s, warmup)
    federated: SetupResult | None = None
    failover: FailoverResult | None = None
    note = ""
    if federation_available():
        federated, failover, note = run_federated(agents, sites, window_s, warmup)
    else:
        note = "this tree's hub has no --upstream (issue 17 section 1 not merged): federated part not run"
    details["load average after"] = machine_details().get("load average", "unknown")
    return ScaleRun(
        agents=agents,
        sites=sites,
        window_s=window_s,
        single=single,
        federated=federated,
        failover=failover,
        federation_note=note,
        machine=details,
        minutes=(time.monotonic() - started) / 60,
    )


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f} x" if base and not math.isnan(base) and not math.isnan(value) else "-"


def render_markdown(result: ScaleRun) -> str:
    single, fed = result.single, result.federated
    lines = [
        f"{result.agents:,} agents x {POINTS} points at dt {DT_S:g} s "
        f"({result.agents * POINTS / DT_S:,.0f} updates/s), "
        f"{result.window_s:g} s windows, {result.minutes:.1f} minutes in all.",
        "",
        "Machine: " + "; ".join(f"{key} {value}" for key, value in result.machine.items()) + ".",
        "",
    ]
    if result.federation_note:
        lines += [f"**Federated part incomplete:** {result.federation_note}.", ""]
    header = "| measure | one hub (baseline) |" + (
        f" {result.sites} sites under one centre | centre / one hub |" if fed else ""
    )
    lines += [header, "|---|---:|" + ("---:|---:|" if fed else "")]

    def get(setup: SetupResult, attr: str) -> Any:
        cells = _cells(setup)
        return cells[attr] if attr in cells else getattr(setup, attr)

    def row(name: str, fmt: str, attr: str, ratio: bool = True) -> None:
        base = get(single, attr)
        cells = f"| {name} | {format(base, fmt)} |"
        if fed is not None:
            value = get(fed, attr)
            cells += f" {format(value, fmt)} | {_ratio(value, base) if ratio else '-'} |"
        lines.append(cells)

    def hub_row(name: str, fmt: str, attr: str) -> None:
        base = getattr(single.centre, attr)
        cells = f"| {name} | {format(base, fmt)} |"
        if fed is not None:
            value = getattr(fed.centre, attr)
            cells += f" {format(value, fmt)} | {_ratio(value, base)} |"
        lines.append(cells)

    row("updates/s offered by the agents", ",.0f", "offered_per_s")
    row("updates/s arriving at the centre (followed rate x agents / followed)", ",.0f", "centre_updates_per_s")
    row("messages/s into the centre (`_hub/messages_in`)", ",.0f", "centre_messages_per_s")
    hub_row("centre hub CPU, cores (process)", ".2f", "cores")
    hub_row("centre hub CPU, cores (loop thread)", ".2f", "loop_cores")
    hub_row("centre hub RSS at the end, MB", ",.0f", "rss_end_mb")
    hub_row("centre hub RSS growth over the window, MB", "+.1f", "rss_growth_mb")
    row("p50 latency agent -> subscriber, ms", ".1f", "p50_ms")
    row("p99 latency, ms", ".1f", "p99_ms")
    row("p99.9 latency, ms", ".1f", "p999_ms")
    row("latency samples", ",.0f", "latency_samples", ratio=False)
    row("followed updates delivered / offered, %", ".1f", "delivered_pct", ratio=False)
    for name, attr in (
        ("missed polls (end to end)", "missed_polls"),
        ("repeated NODEs, poll time not advanced (not in the figures above)", "repeats"),
        ("lost hub -> subscriber", "lost_subscriber"),
        ("seq gaps (every hub)", "seq_gaps"),
        ("agent-side drops", "dropped_by_agents"),
        ("STALE updates (points / parents)", "stale"),
        ("rejected", "rejected"),
        ("resyncs the centre asked for", "centre_resyncs"),
        ("centre behind its agents socket, most, s", "centre_backlog_max_s"),
    ):
        row(name, "", attr, ratio=False)
    row("live agents start / end", "", "live", ratio=False)
    row("the load came up before the window", "", "came_up", ratio=False)
    row("sustained without loss", "", "held_text", ratio=False)
    row("load generators: fleets / sink, cores", "", "side_cores", ratio=False)
    for setup in (single, fed):
        if setup is not None and setup.dead_fleets:
            lines += ["", f"Fleet processes that died ({setup.setup}):"]
            lines += [f"* `{death}`" for death in setup.dead_fleets]
    if fed is not None:
        lines += ["", "| site hub | cores (loop) | RSS end MB (max) |", "|---|---|---|"]
        lines += [
            f"| {hub.name} | {hub.cores:.2f} ({hub.loop_cores:.2f}) | {hub.rss_end_mb:,.0f} ({hub.rss_max_mb:,.0f}) |"
            for hub in fed.site_hubs
        ]
        total = fed.centre.cores + sum(hub.cores for hub in fed.site_hubs)
        lines += [
            "",
            f"All hubs of the federated setup together: {total:.2f} cores "
            f"against {single.centre.cores:.2f} for the one hub.",
        ]
    failover = result.failover
    if failover is not None:
        f = failover
        lines += [
            "",
            f"| failover of {failover.site} (SIGKILL under load, then restart) | seconds |",
            "|---|---:|",
            f"| kill -> first / every sampled leaf ({f.leaves}) STALE at the centre "
            f"| {f.stale_first_s:.2f} / {f.stale_all_s:.2f} |",
            f"| alarms the centre opened for it | {f.alarms_opened} ({', '.join(f.alarm_paths) or '-'}) |",
            f"| restart -> site hub READY | {failover.restart_ready_s:.2f} |",
            f"| restart -> first / every sampled leaf fresh at the centre "
            f"| {f.heal_first_s:.2f} / {f.heal_all_s:.2f} |",
            f"| their states after the heal | {', '.join(f.states_after_heal) or '-'} |",
        ]
    return "\n".join(lines)


def _cells(setup: SetupResult) -> dict[str, Any]:
    """Derived figures the tables show (kept out of the dataclass: JSON has the raw ones)."""
    return {
        "p50_ms": setup.p50_us / 1000,
        "p99_ms": setup.p99_us / 1000,
        "p999_ms": setup.p999_us / 1000,
        "delivered_pct": 100 * setup.delivered_per_s / max(1e-9, setup.followed_offered_per_s),
        "stale": f"{setup.stale_points} / {setup.stale_parents}",
        "live": f"{setup.live_agents_start} / {setup.live_agents_end}",
        "held_text": "yes" if setup.held else "NO",
        "side_cores": f"{setup.fleet_cores:.2f} / {setup.sink_cores:.2f}",
    }


def to_json(result: ScaleRun) -> dict[str, Any]:
    value = dataclasses.asdict(result)
    for name in ("single", "federated"):
        setup = getattr(result, name)
        if setup is not None:
            value[name]["held"] = setup.held
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=10_000, help="simulated agents, 100 points each at dt 10 s")
    parser.add_argument("--sites", type=int, default=4, help="site hubs under the central hub")
    parser.add_argument("--window", type=float, default=60.0, help="measured window of each setup, s")
    parser.add_argument("--warmup", type=float, default=None, help="s after the hubs hold every point (1.5 dt)")
    parser.add_argument("--quick", action="store_true", help="tiny load, short windows (the smoke test)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--markdown", action="store_true", help="print the tables for bench/RESULTS.md (the default)")
    parser.add_argument("--json-out", metavar="FILE", help="also write the figures as JSON to FILE")
    args = parser.parse_args(argv)
    if args.agents < 1 or args.sites < 1 or args.window <= 0:
        parser.error("--agents and --sites must be at least 1 and --window positive")
    if args.agents > 10_000:
        parser.error("--agents: at most 10,000 (agent names have four digits, and FOLLOW is a tenth of 10,000)")
    if args.quick:
        args.agents, args.sites, args.window = min(args.agents, 40), min(args.sites, 2), min(args.window, DT_S)
        args.warmup = 1.0 if args.warmup is None else args.warmup
    result = run(args.agents, args.sites, args.window, args.warmup)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(to_json(result), indent=1), encoding="utf-8")
    if args.json:
        print(json.dumps(to_json(result), indent=1))
    else:
        print(render_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
