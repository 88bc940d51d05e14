"""The garbage collector's cost with a hub-sized tree: CPython's defaults against :mod:`gsmon.common.gc_tuning`.

::

    python -m bench.gc_bench                  # 1,500 agents x 100 points at a site and its centre, 20 simulated s
    python -m bench.gc_bench --repeat 3       # three rounds of every configuration, interleaved
    python -m bench.gc_bench --quick          # 40 agents, 2 simulated s (the smoke test)
    python -m bench.gc_bench --configs default,tuned

The scenario is ``bench/relay_core_bench.py``'s, in process and on a simulated clock: a site hub applying
its agents' DELTAs (every point new every 10 s), its upstream core relaying them, a centre applying the
relayed entries, and at the end the periodic STATE (every point again, encoded at the site, applied at the
centre). Both trees live in one process (2 x agents x 110 nodes, with their leaves, the alarm books, the
relay state), as a hub holds them. Once they are built, the configuration is applied the way the hub applies
it after start-up (``GcTuner.start``), then the timed turns run.

Each configuration runs in a fresh interpreter (the collector's state is the process's), and the rounds
interleave them (the order rotates every round) so that a change in the shared machine's load falls on all
of them alike; the load average is printed before and after. Figures per configuration, the median over the
rounds: CPU microseconds per point update at the site hub (decode+apply+drain), per relayed entry at the
centre, per entry of the periodic STATE at the centre, the CPU share in the collector, the full collections,
and the longest single collection (a pause of the loop).

Configurations: ``default`` (CPython's thresholds 700/10/10, nothing frozen), ``freeze`` (frozen after
start-up, thresholds kept), ``tuned`` (frozen, generation 0 at ``gc_tuning.GEN0_THRESHOLD``: what the hub
runs), ``t0-<N>`` (frozen, generation 0 at N).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from bench import relay_core_bench
from gsmon.common.gc_tuning import GEN0_THRESHOLD, GcStats, GcTuner

DEFAULT_CONFIGS = ("default", "freeze", "t0-10000", "tuned", "t0-50000")


def tuner_for(config: str) -> GcTuner:
    """The GcTuner a configuration name stands for (ValueError names the accepted ones)."""
    if config == "default":
        return GcTuner(enabled=False)
    if config == "freeze":
        return GcTuner(thresholds=(700, 10, 10))
    if config == "tuned":
        return GcTuner()
    if config.startswith("t0-") and config[3:].isdigit():
        return GcTuner(thresholds=(int(config[3:]), 10, 10))
    raise ValueError(f"unknown configuration {config!r}: use default, freeze, tuned or t0-<N> (e.g. t0-50000)")


def run_one(config: str, agents: int, seconds: float) -> dict[str, Any]:
    """One configuration in this process: the figures as a dict (printed as JSON by ``--one``)."""
    tuner = tuner_for(config)
    tuner.hook()
    # The tuner's own figures are wall time (a pause of the loop, as the hub reports it); on a shared machine
    # that includes being descheduled, so the collections' CPU time (this thread's) is kept beside them.
    cpu = GcStats(clock=time.thread_time)
    gc.callbacks.append(cpu.hook)
    sizes: list[int] = []

    def settled(size: int) -> None:
        sizes.append(size)
        tuner.start(size)
        for stats in (tuner.stats, cpu):  # from here on: the timed turns
            stats.collections = [0, 0, 0]
            stats.seconds = stats.full_seconds = 0.0
            stats.pause_max_s = stats.full_pause_max_s = 0.0

    started = time.process_time()
    result = relay_core_bench.run(agents, seconds, settled=settled)
    stats = tuner.stats
    sides = {
        name: {
            "us_per_item": getattr(result, name).us_per_item,
            "gc_us_per_item": 1e6 * getattr(result, name).gc_s / max(getattr(result, name).items, 1),
            "items": getattr(result, name).items,
        }
        for name in ("hub", "site", "centre", "state_site", "state_centre")
    }
    timed_cpu_s = sum(getattr(result, name).cpu_s for name in sides)
    return {
        "config": config,
        "nodes": sizes[0] if sizes else 0,
        "sides": sides,
        "timed_cpu_s": timed_cpu_s,
        "gc_s": stats.seconds,
        "full_collections": stats.full_collections,
        "collections": sum(stats.collections),
        "pause_max_ms": 1000 * stats.pause_max_s,
        "full_pause_max_ms": 1000 * stats.full_pause_max_s,
        "gc_cpu_s": cpu.seconds,
        "pause_max_cpu_ms": 1000 * cpu.pause_max_s,
        "full_pause_max_cpu_ms": 1000 * cpu.full_pause_max_s,
        "frozen": tuner.freezes,
        "process_cpu_s": time.process_time() - started,
    }


def _child(config: str, agents: int, seconds: float) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.gc_bench", "--one", config, "--agents", str(agents), "--seconds", str(seconds)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{config}: exit {done.returncode}: {done.stderr.strip()[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 agents for 2 simulated seconds, one round")
    parser.add_argument("--agents", type=int, default=None, help="agents of the site (default 1500)")
    parser.add_argument("--seconds", type=float, default=None, help="simulated seconds (default 20)")
    parser.add_argument("--repeat", type=int, default=None, help="rounds of every configuration (default 3)")
    parser.add_argument(
        "--configs", default=",".join(DEFAULT_CONFIGS), help=f"comma-separated (default {','.join(DEFAULT_CONFIGS)})"
    )
    parser.add_argument("--one", metavar="CONFIG", help=argparse.SUPPRESS)  # a child: one run, JSON on stdout
    args = parser.parse_args(argv)
    agents = args.agents or (40 if args.quick else 1500)
    seconds = args.seconds or (2.0 if args.quick else 20.0)
    if args.one is not None:
        print(json.dumps(run_one(args.one, agents, seconds)))
        return 0
    configs = [name.strip() for name in args.configs.split(",") if name.strip()]
    try:
        for config in configs:
            tuner_for(config)
    except ValueError as error:
        parser.error(str(error))
    rounds = args.repeat or (1 if args.quick else 3)
    print(f"load average before: {_load()} ({os.cpu_count()} CPUs); gc_tuning.GEN0_THRESHOLD = {GEN0_THRESHOLD:,}")
    runs: dict[str, list[dict[str, Any]]] = {config: [] for config in configs}
    for round_index in range(rounds):
        shift = round_index % len(configs)
        for config in configs[shift:] + configs[:shift]:
            runs[config].append(_child(config, agents, seconds))
    print(f"load average after: {_load()}")
    nodes = runs[configs[0]][0]["nodes"]
    print(
        f"site of {agents:,} agents x {relay_core_bench.POINTS_PER_AGENT} points and its centre "
        f"({nodes:,} nodes in the process), {seconds:g} simulated s, {rounds} interleaved round(s); medians"
    )
    print(
        "| configuration | hub us/update | centre us/entry | centre STATE us/entry | timed CPU s | of which GC CPU s "
        "| collections (full) | longest collection, CPU ms (wall) | longest full, CPU ms (wall) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")

    def median(config: str, pick: Any) -> float:
        return statistics.median(pick(run) for run in runs[config])

    for config in configs:
        print(
            f"| {config} | {median(config, lambda r: r['sides']['hub']['us_per_item']):.2f} "
            f"| {median(config, lambda r: r['sides']['centre']['us_per_item']):.2f} "
            f"| {median(config, lambda r: r['sides']['state_centre']['us_per_item']):.2f} "
            f"| {median(config, lambda r: r['timed_cpu_s']):.2f} "
            f"| {median(config, lambda r: r['gc_cpu_s']):.3f} "
            f"| {median(config, lambda r: r['collections']):.0f} "
            f"({median(config, lambda r: r['full_collections']):.0f}) "
            f"| {median(config, lambda r: r['pause_max_cpu_ms']):.1f} "
            f"({median(config, lambda r: r['pause_max_ms']):.1f}) "
            f"| {median(config, lambda r: r['full_pause_max_cpu_ms']):.1f} "
            f"({median(config, lambda r: r['full_pause_max_ms']):.1f}) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
