"""Bytes per second on a site hub's upstream link (issue 17 §1, WAN economy).

::

    python -m bench.federation_bench            # a 10,000-point site, 10 simulated seconds per scenario
    python -m bench.federation_bench --quick    # 1,000 points, 2 s (seconds; the smoke test)

A site hub core (HubState with its alarm book) is fed its agents' DELTAs (10 agents x 1,000
points, each polled every 0.2 s with a new value; 1 % of the points ORANGE, and every 100th point
flips GREEN <-> RED every 2 s), turn by turn on a simulated clock of 0.1 s turns, exactly as the
server loop drives it: apply, drain, then the upstream core's tick (``hub/upstream.py``). What
the link sends is counted as ``proto.encode`` makes it -- the bytes ``UpstreamLink.send`` hands
to ZeroMQ (ZMTP adds 2 to 9 bytes of framing per message, CURVE 16 more plus 33 per frame of
the box; neither is counted here). The clock is simulated so that the figures are the policy's,
not this shared machine's load; the CPU the upstream core took is reported beside them
(``time.process_time`` of its ticks over the simulated seconds: cores).

Scenarios: every change relayed (``upstream_coalesce_ms = 0``); coalesced (the default 1,000 ms);
coalesced with ``upstream_min_level = ORANGE``; coalesced with one prefix (one agent of ten).
Baseline, same run: the agents' own DELTA bytes into the site hub.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace

from gsmon.common import protocol as proto
from gsmon.hub.alarms import AlarmBook
from gsmon.hub.state import HubSettings, HubState
from gsmon.hub.upstream import UpstreamCore, UpstreamSettings

GREEN, ORANGE, RED = 10, 20, 30
WALL0 = 1_700_000_000.0
TURN_S = 0.1
DT_S = 0.2
AGENTS = 10


@dataclass(frozen=True)
class Result:
    scenario: str
    upstream_bytes_per_s: float
    entries_per_s: float
    messages_per_s: float
    agents_bytes_per_s: float  # the baseline: what the agents sent the site hub
    core_cpu_cores: float


def _label(code: int) -> str:
    return {GREEN: "GREEN", ORANGE: "ORANGE", RED: "RED"}[code]


def run(scenario: str, settings: UpstreamSettings, points: int, seconds: float) -> Result:
    per_agent = points // AGENTS
    state = HubState(HubSettings(alert_log_level=None), 1, now=0.0, alarms=AlarmBook())
    seqs = [0] * AGENTS

    def send(index: int, entries: list[proto.PointEntry], now: float, full: bool) -> int:
        seqs[index] += 1
        head = {"sender": f"rack{index}", "epoch": 1, "seq": seqs[index], "sent_ns": 0}
        msg: proto.Message
        if full:
            msg = proto.State(**head, mount=f"rack{index}", heartbeat_s=10.0, points=entries)
        else:
            msg = proto.Delta(**head, points=entries)
        data = proto.encode(msg)
        state.apply(proto.decode(data), now, WALL0 + now)
        return len(data)

    def entry(index: int, point: int, turn: int, now: float) -> proto.PointEntry:
        code = GREEN
        if point % 100 == 1:
            code = ORANGE
        elif point % 100 == 0 and (turn // 20) % 2 == 1:
            code = RED  # flips every 2 s
        value = (turn * 7919 + point * 104729) % 10_000 / 100.0
        return proto.PointEntry(f"p{point // 100}/v{point}", value, code, _label(code), WALL0 + now, DT_S)

    for index in range(AGENTS):
        send(index, [entry(index, point, 0, 0.0) for point in range(per_agent)], 0.0, full=True)
    state.drain(WALL0)
    core = UpstreamCore(settings, state, "site1", epoch=7, now=0.0)
    core.upstream(b"\x01")  # the central hub subscribed: the first STATE goes at the first tick
    core.tick(0.0, WALL0)
    turns = round(seconds / TURN_S)
    upstream_bytes = agents_bytes = messages = 0
    entries_before = core.entries_sent
    cpu_s = 0.0
    for turn in range(1, turns + 1):
        now = turn * TURN_S
        polled_every = round(DT_S / TURN_S)
        for index in range(AGENTS):
            due = [entry(index, point, turn, now) for point in range(per_agent) if (point + turn) % polled_every == 0]
            agents_bytes += send(index, due, now, full=False)
        state.tick(now, WALL0 + now)
        state.drain(WALL0 + now)
        started = time.process_time()
        sent = core.tick(now, WALL0 + now)
        upstream_bytes += sum(len(proto.encode(msg)) for msg in sent)
        cpu_s += time.process_time() - started
        messages += len(sent)
    simulated_s = turns * TURN_S
    return Result(
        scenario,
        upstream_bytes / simulated_s,
        (core.entries_sent - entries_before) / simulated_s,
        messages / simulated_s,
        agents_bytes / simulated_s,
        cpu_s / simulated_s,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 points for 2 simulated seconds")
    parser.add_argument("--points", type=int, default=None, help="points of the site (default 10,000)")
    parser.add_argument("--seconds", type=float, default=None, help="simulated seconds per scenario (default 10)")
    args = parser.parse_args(argv)
    points = args.points or (1_000 if args.quick else 10_000)
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    base = UpstreamSettings(endpoint="tcp://central:7761", mount="GS1", heartbeat_interval_s=1.0)
    scenarios = [
        ("every change (coalesce 0)", replace(base, coalesce_s=0.0)),
        ("coalesce 1000 ms (default)", base),
        ("coalesce 1000 ms, min level ORANGE", replace(base, min_level=ORANGE)),
        ("coalesce 1000 ms, prefix rack0 (1 of 10)", replace(base, prefixes=("rack0",))),
    ]
    print(f"site of {points:,} points (10 agents, dt {DT_S} s, new value every poll), {seconds:g} simulated s each")
    print(
        "| scenario | upstream bytes/s | entries/s | messages/s | agents' bytes/s into the site (baseline) "
        "| ratio | upstream core CPU |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, settings in scenarios:
        result = run(name, settings, points, seconds)
        ratio = result.upstream_bytes_per_s / result.agents_bytes_per_s
        print(
            f"| {name} | {result.upstream_bytes_per_s:,.0f} | {result.entries_per_s:,.0f} | "
            f"{result.messages_per_s:,.1f} | {result.agents_bytes_per_s:,.0f} | {ratio:.3f} | "
            f"{result.core_cpu_cores:.3f} cores |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
