"""Client failover of a hub pair (issue 17 §2): SIGKILL the hub a Subscriber uses, time until it resumes on the other.

::

    python -m bench.failover_bench               # 5 rounds, hubs beating at 1 s (the default interval)
    python -m bench.failover_bench --rounds 2 --heartbeat-s 0.5 --markdown

Each round: two real ``gsmon hub`` processes on loopback (port 0, not linked
to each other), one in-process agent (a :class:`~gsmon.agent.Monitor`
publishing 100 points to both, ``hub=[A, B]``), a :class:`~gsmon.common.client.Subscriber`
given both query endpoints. Once it follows A, A is SIGKILLed; the *failover
time* is from the kill until the Subscriber follows B with a fresh snapshot
(B's epoch, not lost, every point in its tree). Target: at most 5 s.

Baseline, same round: the failover is the detection (3 missed heartbeats:
``3 x interval``, the protocol's bound) plus a connection to B. The round
also times a fresh ``Subscriber(B).connect()`` (HELLO, subscription,
snapshot) on the live B, and reports *failover / (3 x interval + connect)*:
1.0 means the client loses nothing beyond the rule it follows.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from typing import Final

from bench._support import Children, machine_details, summarise
from gsmon.agent import GreenAlert, Monitor
from gsmon.common.client import Subscriber

TARGET_S: Final = 5.0
POINTS: Final = 100
PREFIX: Final = "Bench/"


def _agent(hubs: Sequence[str]) -> Monitor:
    mon = Monitor(hub=list(hubs), agent="failover-bench", mount="Bench/Rack")
    for index in range(POINTS):
        mon.monitor(point=f"p{index:03d}", dt=0.5)(lambda: GreenAlert(1))
    return mon


def one_round(heartbeat_s: float) -> dict[str, float]:
    config = f"[liveness]\nheartbeat_interval_s = {heartbeat_s}\n"
    with Children() as children:
        hub_a, ready_a = children.hub(config)
        _hub_b, ready_b = children.hub(config)
        mon = _agent((ready_a["agents"], ready_b["agents"]))
        mon.start()
        try:
            pair = f"{ready_a['query']},{ready_b['query']}"
            with Subscriber(pair, PREFIX, timeout_s=5.0) as sub:
                deadline = time.monotonic() + 30
                while len([p for p in sub.tree if "/p" in p]) < POINTS:
                    sub.poll(0.05)
                    if time.monotonic() > deadline:
                        raise RuntimeError("the agent's points never reached hub A")
                assert sub.hub == ready_a["query"]
                epoch_a = sub.epoch
                hub_a.popen.send_signal(signal.SIGKILL)
                hub_a.expect_exit(signal.SIGKILL)
                killed = time.monotonic()
                while not (sub.hub == ready_b["query"] and not sub.hub_lost and sub.epoch != epoch_a):
                    sub.poll(0.01)
                    if time.monotonic() - killed > 30:
                        raise RuntimeError("the subscriber never resumed on hub B")
                failover_s = time.monotonic() - killed
                points_b = len([p for p in sub.tree if "/p" in p])
            started = time.monotonic()
            with Subscriber(ready_b["query"], PREFIX, timeout_s=5.0):
                connect_s = time.monotonic() - started
        finally:
            mon.stop()
    bound_s = 3 * heartbeat_s + connect_s
    return {
        "failover_s": failover_s,
        "connect_s": connect_s,
        "bound_s": bound_s,
        "ratio": failover_s / bound_s,
        "points_b": float(points_b),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--heartbeat-s", type=float, default=1.0, help="the hubs' heartbeat interval (default 1)")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = parser.parse_args(argv)
    rounds = [one_round(args.heartbeat_s) for _ in range(args.rounds)]
    failover = summarise([r["failover_s"] for r in rounds])
    connect = summarise([r["connect_s"] for r in rounds])
    ratio = summarise([r["ratio"] for r in rounds])
    worst = max(r["failover_s"] for r in rounds)
    print(f"machine: {machine_details()}")
    for index, r in enumerate(rounds, 1):
        print(
            f"round {index}: failover {r['failover_s']:.2f} s (bound 3 x {args.heartbeat_s:g} s + connect "
            f"{r['connect_s'] * 1000:.0f} ms = {r['bound_s']:.2f} s; ratio {r['ratio']:.2f}); "
            f"{r['points_b']:.0f} points from B"
        )
    verdict = "within" if worst <= TARGET_S else "OVER"
    print(
        f"failover median {failover.median:.2f} s, max {worst:.2f} s ({verdict} the {TARGET_S:g} s target); "
        f"connect median {connect.median * 1000:.0f} ms; ratio median {ratio.median:.2f}"
    )
    if args.markdown:
        print("\n| heartbeat | rounds | failover median | failover max | connect median | ratio median | target |")
        print("|---|---|---|---|---|---|---|")
        print(
            f"| {args.heartbeat_s:g} s | {args.rounds} | {failover.median:.2f} s | {worst:.2f} s | "
            f"{connect.median * 1000:.0f} ms | {ratio.median:.2f} | <= {TARGET_S:g} s: {verdict} |"
        )
    return 0 if worst <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
