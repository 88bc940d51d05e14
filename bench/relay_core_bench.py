"""CPU per relayed entry on both ends of a hub-of-hubs link, in process (issue 17 §4, "Scale, measured").

::

    python -m bench.relay_core_bench             # a site of 250 agents x 100 points, 20 simulated s
    python -m bench.relay_core_bench --quick     # 20 agents, 4 simulated s (the smoke test)
    python -m bench.relay_core_bench --repeat 5  # five runs, each side's best (the machine is shared)
    python -m bench.relay_core_bench --profile site|centre|hub   # cProfile of one side, top 25 by tottime

No sockets, a simulated clock (as ``bench/federation_bench.py``). The load is the scale bench's
(``bench/scale_bench.py``) share of one site: each agent has 100 points under 10 parents, all GREEN,
every value new at every poll, one DELTA of all its points every dt = 10 s, the agents' phases spread
evenly over the 10 s, on turns of 0.1 s. The agents announce a heartbeat interval of dt (their DELTAs
are their heartbeats: no HEARTBEAT messages, so that the baseline is DELTAs only). Per turn, exactly as
the server loop drives a hub:

hub (the baseline)
    the site hub (HubState with its AlarmBook) decodes and applies the agents' DELTA bytes
    (``proto.decode`` + ``HubState.apply``), then ``tick`` and ``drain``: microseconds per point update.
site
    the site's ``UpstreamCore.tick`` (coalescing 1 s, flush 0.1 s, the defaults) and ``proto.encode`` of
    every message it returns: microseconds per relayed entry.
centre
    a central HubState (AlarmBook, a Router for proxy ids) decodes those exact bytes
    (``proto.decode``, ``RelayGuard.filter``, ``HubState.apply``), then ``tick`` and ``drain``:
    microseconds per relayed entry.

Times are ``time.process_time`` of those calls only. A last row: the periodic STATE the site sends
every ``upstream_state_ms`` (30 s by default), every point again, encoded at the site and applied at
the centre (the centre publishes nothing for an entry it already has): microseconds per entry.
The target (issue 17 §4): centre within ~1.5 x the one-hub figure per update.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gsmon.common import protocol as proto
from gsmon.hub.alarms import AlarmBook
from gsmon.hub.relay import RelayGuard, Router
from gsmon.hub.state import HubSettings, HubState
from gsmon.hub.upstream import UpstreamCore, UpstreamSettings

WALL0 = 1_700_000_000.0
TURN_S = 0.1
DT_S = 10.0
POINTS_PER_AGENT = 100
PARENTS_PER_AGENT = 10
GREEN = 10


class _Collector:
    """CPU seconds in Python's cyclic garbage collector (gc.callbacks), to tell its share apart: it runs on
    allocations, whichever side makes them, and its full collections scan the whole heap."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.full = 0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.cpu_s += time.process_time() - self._started
            self.full += info["generation"] == 2


COLLECTOR = _Collector()


@dataclass
class Side:
    """CPU seconds and the work done, one side of the link."""

    cpu_s: float = 0.0
    gc_s: float = 0.0  # of cpu_s, in the garbage collector
    full_collections: int = 0
    items: int = 0  # point updates (hub) or relayed entries (site, centre)
    profile: cProfile.Profile | None = None

    def timed(self, call: Callable[[], int]) -> None:
        profile = self.profile
        gc_before, full_before = COLLECTOR.cpu_s, COLLECTOR.full
        started = time.process_time()
        if profile is not None:
            profile.enable()
        self.items += call()
        if profile is not None:
            profile.disable()
        self.cpu_s += time.process_time() - started
        self.gc_s += COLLECTOR.cpu_s - gc_before
        self.full_collections += COLLECTOR.full - full_before

    @property
    def us_per_item(self) -> float:
        return 1e6 * self.cpu_s / self.items if self.items else float("nan")


@dataclass
class Result:
    agents: int
    simulated_s: float
    hub: Side = field(default_factory=Side)
    site: Side = field(default_factory=Side)
    centre: Side = field(default_factory=Side)
    state_site: Side = field(default_factory=Side)
    state_centre: Side = field(default_factory=Side)
    relay_bytes: int = 0
    agent_bytes: int = 0
    centre_points: int = 0


def _agent_entries(agent: int, poll: int, wall: float) -> list[proto.PointEntry]:
    return [
        proto.PointEntry(
            f"p{point // PARENTS_PER_AGENT}/v{point}",
            (poll * 7919 + agent * 131 + point * 104729) % 10_000 / 100.0,
            GREEN,
            "GREEN",
            wall,
            DT_S,
        )
        for point in range(POINTS_PER_AGENT)
    ]


def run(
    agents: int, seconds: float, profile: str | None = None, settled: Callable[[int], object] | None = None
) -> Result:
    """``settled``: called with the points held (site and centre) once both trees are built, before the timed
    turns (bench/gc_bench.py tunes the garbage collector there, as the hub does after start-up)."""
    result = Result(agents, seconds)
    if profile is not None:
        getattr(result, profile).profile = cProfile.Profile()
    site = HubState(HubSettings(alert_log_level=None), 1, now=0.0, alarms=AlarmBook())
    centre = HubState(HubSettings(alert_log_level=None), 2, now=0.0, alarms=AlarmBook())
    Router(centre, "centre:7761")
    guard = RelayGuard("centre:7761")
    seqs = [0] * agents

    def agent_message(index: int, entries: list[proto.PointEntry], full: bool) -> bytes:
        seqs[index] += 1
        head = {"sender": f"sim-{index:04d}", "epoch": 1000 + index, "seq": seqs[index], "sent_ns": 0}
        if full:
            return proto.encode(proto.State(**head, mount=f"sim/sim-{index}", heartbeat_s=DT_S, points=entries))
        return proto.encode(proto.Delta(**head, points=entries))

    # Every agent's first STATE, then the site's first STATE to the centre (neither timed).
    for index in range(agents):
        site.apply(proto.decode(agent_message(index, _agent_entries(index, 0, WALL0), True)), 0.0, WALL0)
    site.drain(WALL0)
    settings = UpstreamSettings(endpoint="tcp://central:7761", mount="SITE0", heartbeat_interval_s=1.0)
    core = UpstreamCore(settings, site, "site0:7761", epoch=7, now=0.0)
    core.upstream(b"\x01")  # the central hub subscribed: the first STATE goes at the first tick
    for msg in core.tick(0.0, WALL0):
        centre.apply(guard.filter(proto.decode(proto.encode(msg))), 0.0, WALL0)
    centre.tick(0.0, WALL0)
    centre.drain(WALL0)
    if settled is not None:
        settled(len(site.tree) + len(centre.tree))

    turns = round(seconds / TURN_S)
    per_turn = DT_S / TURN_S
    polls = [0] * agents
    for turn in range(1, turns + 1):
        now = turn * TURN_S
        wall = WALL0 + now
        # The agents due this turn (phases spread evenly over dt), each one DELTA of all its points.
        due = [index for index in range(agents) if int(index * per_turn / agents) == turn % int(per_turn)]
        frames: list[bytes] = []
        for index in due:
            polls[index] += 1
            frames.append(agent_message(index, _agent_entries(index, polls[index], wall), False))
            result.agent_bytes += len(frames[-1])

        def hub_turn(frames: list[bytes] = frames, now: float = now, wall: float = wall) -> int:
            updates = 0
            for data in frames:
                msg = proto.decode(data)
                site.apply(msg, now, wall)
                updates += len(msg.points) if isinstance(msg, proto.Delta) else 0
            site.tick(now, wall)
            site.drain(wall)
            return updates

        result.hub.timed(hub_turn)
        relayed: list[bytes] = []

        def site_turn(now: float = now, wall: float = wall, relayed: list[bytes] = relayed) -> int:
            before = core.entries_sent
            relayed.extend(proto.encode(msg) for msg in core.tick(now, wall))
            return core.entries_sent - before

        result.site.timed(site_turn)
        result.relay_bytes += sum(map(len, relayed))

        def centre_turn(relayed: list[bytes] = relayed, now: float = now, wall: float = wall) -> int:
            return _centre_turn(centre, guard, relayed, now, wall)

        result.centre.timed(centre_turn)

    # The periodic STATE: every point again, nothing new in it.
    now = turns * TURN_S + TURN_S / 2
    wall = WALL0 + now
    core.upstream(b"\x01")  # as the periodic one: every point again (booked the way a subscription books it)
    sent: list[bytes] = []

    def state_site() -> int:
        before = core.entries_sent
        sent.extend(proto.encode(msg) for msg in core.tick(now, wall))
        return core.entries_sent - before

    result.state_site.timed(state_site)
    result.state_centre.timed(lambda: _centre_turn(centre, guard, sent, now, wall))
    result.centre_points = sum(len(agent.leaves) for agent in centre.agents.values())
    return result


def _centre_turn(centre: HubState, guard: RelayGuard, frames: list[bytes], now: float, wall: float) -> int:
    entries = 0
    for data in frames:
        msg = guard.filter(proto.decode(data))
        centre.apply(msg, now, wall)
        if isinstance(msg, proto.State | proto.Delta):
            entries += len(msg.points)
    centre.tick(now, wall)
    centre.drain(wall)
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 agents for 4 simulated seconds")
    parser.add_argument("--agents", type=int, default=None, help="agents of the site (default 250)")
    parser.add_argument("--seconds", type=float, default=None, help="simulated seconds (default 20)")
    parser.add_argument("--profile", choices=("hub", "site", "centre"), default=None, help="cProfile one side")
    parser.add_argument("--repeat", type=int, default=1, help="runs; each side's best (least CPU) is shown")
    args = parser.parse_args(argv)
    agents = args.agents or (20 if args.quick else 250)
    seconds = args.seconds or (4.0 if args.quick else 20.0)
    runs = [run(agents, seconds, args.profile) for _ in range(max(1, args.repeat))]
    result = runs[0]
    for name in ("hub", "site", "centre", "state_site", "state_centre"):
        setattr(result, name, min((getattr(each, name) for each in runs), key=lambda side: side.cpu_s))
    updates_per_s = agents * POINTS_PER_AGENT / DT_S
    print(
        f"site of {agents:,} agents x {POINTS_PER_AGENT} points, dt {DT_S:g} s ({updates_per_s:,.0f} updates/s), "
        f"{seconds:g} simulated s; the centre holds {result.centre_points:,} relayed points"
    )
    hub_us = result.hub.us_per_item
    print("| side | items | CPU s | us per item | / one hub | of which GC, us per item (full collections) |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = [
        ("one hub: decode+apply+drain of agents' DELTAs (per update)", result.hub),
        ("site: upstream tick + encode (per relayed entry)", result.site),
        ("centre: decode+apply+drain of relayed DELTAs (per entry)", result.centre),
        ("site: periodic STATE, tick + encode (per entry)", result.state_site),
        ("centre: periodic STATE, decode+apply+drain (per entry)", result.state_centre),
    ]
    for name, side in rows:
        print(
            f"| {name} | {side.items:,} | {side.cpu_s:.3f} | {side.us_per_item:.2f} "
            f"| {side.us_per_item / hub_us:.2f} x "
            f"| {1e6 * side.gc_s / max(side.items, 1):.2f} ({side.full_collections}) |"
        )
    relay_per_entry = result.relay_bytes / result.site.items if result.site.items else float("nan")
    agent_per_update = result.agent_bytes / result.hub.items if result.hub.items else float("nan")
    print(f"bytes per relayed entry {relay_per_entry:.1f}; per agent update {agent_per_update:.1f}")
    if args.profile is not None:
        profiled = getattr(result, args.profile).profile
        assert profiled is not None
        pstats.Stats(profiled, stream=sys.stdout).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
