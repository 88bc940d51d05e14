"""Protocol 1.4's NODES against the plain stream: the hub's and a reader's CPU per update, real processes.

::

    python bench/nodes_bench.py                  # 1,000 agents x 100 points at 1 Hz, 2 x 2 windows of 10 s
    python bench/nodes_bench.py --quick          # 50 agents, 2 windows of 3 s (the smoke test)

What runs: a real ``gsmon hub`` on loopback (its state store, so its operator layer, as installed), the
scale scenario's simulated agents (:mod:`bench.peers` fleet: ``--agents`` x 100 points, every point a
new value every second), and one reader process at a time, ``python -m bench.nodes_bench reader``: the
recorder's read loop (a lean :class:`~gsmon.common.client.Subscriber` and its ``poll_updates``) following
``sim/`` either

* **plain** (the baseline, protocol 1.3: ``batches=False``): a ``[topic, payload]`` message per NODE; or
* **NODES** (1.4, the default): each hub turn's NODEs in batches.

The two kinds of window alternate (plain, NODES, plain, NODES) on the same hub and agents, so the
machine's load hits both alike. Figures per window: the NODEs the reader applied per second, and CPU
microseconds per NODE of the hub process (its loop and ZeroMQ's I/O thread: every byte it sends) and of
the reader process, from psutil's CPU times over the window; then the medians per stream and the ratios
NODES / plain.
"""

from __future__ import annotations

import argparse
import json
import select
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: python bench/nodes_bench.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

__all__ = ["Window", "main", "run"]

POINTS = 100
PREFIX = "sim/"


@dataclass(frozen=True, slots=True)
class Window:
    stream: str  # "plain" or "nodes"
    updates_per_s: float  # NODEs the reader applied per second
    hub_us: float  # hub process CPU per NODE applied by the reader
    reader_us: float  # reader process CPU per NODE
    batched: bool  # the reader really followed in batches (NODES) or not (plain)
    resyncs: int  # snapshots the reader took (1: none after its first)


def reader(hub: str, plain: bool) -> int:
    """The reader child: follow ``sim/`` as the recorder does; MARK (stdin) starts counting, END prints RESULT."""
    from gsmon.common import protocol as proto
    from gsmon.common.client import Subscriber

    sub = Subscriber(hub, PREFIX, timeout_s=60.0, lean=True, batches=not plain).connect()
    print("READY reader", flush=True)
    counted, started = 0, time.monotonic()
    try:
        while True:
            accepted: list[proto.LeanNode] = sub.poll_updates(0.05)[0]
            counted += len(accepted)
            if select.select([sys.stdin], [], [], 0)[0]:
                command = sys.stdin.readline().strip()
                if command == "MARK":
                    counted, started = 0, time.monotonic()
                elif command == "END":
                    result = {
                        "updates": counted,
                        "seconds": time.monotonic() - started,
                        "batched": sub.batched,
                        "resyncs": sub.resyncs,
                    }
                    print(f"RESULT {json.dumps(result)}", flush=True)
                elif not command:  # EOF: the bench is done with us
                    return 0
    finally:
        sub.close()


def run(agents: int, windows: int, window_s: float, warmup_s: float) -> list[Window]:
    """Alternating plain and NODES windows against one hub and one fleet (module docstring)."""
    from bench._support import Children
    from bench.hub_bench import _fleet

    results: list[Window] = []
    with Children() as children:
        hub, endpoints = children.hub()
        _fleet(children, endpoints["agents"], agents, 2, POINTS, 10, 1.0, 2.0)
        for index in range(windows):
            stream = ("plain", "nodes")[index % 2]
            argv = [sys.executable, "-m", "bench.nodes_bench", "reader", "--hub", endpoints["query"]]
            child = children.start(f"reader-{stream}", [*argv, *(("--plain",) if stream == "plain" else ())])
            child.wait_for_line("READY reader", 120)
            time.sleep(warmup_s)  # past the snapshot and the first burst: the steady stream is measured
            child.command("MARK")
            hub_cpu, reader_cpu, begun = hub.cpu_s(), child.cpu_s(), time.monotonic()
            time.sleep(window_s)  # the load runs for the window; the figures are read afterwards
            child.command("END")
            elapsed = time.monotonic() - begun
            hub_used, reader_used = hub.cpu_s() - hub_cpu, child.cpu_s() - reader_cpu
            got: dict[str, Any] = child.result()
            updates = max(1, int(got["updates"]))
            results.append(
                Window(
                    stream,
                    updates / elapsed,
                    hub_used / updates * 1e6,
                    reader_used / updates * 1e6,
                    bool(got["batched"]),
                    int(got["resyncs"]),
                )
            )
            child.stop()  # SIGTERM (the reader also ends on the EOF of its stdin)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="role")
    read = sub.add_parser("reader", help="(a child of this bench) follow sim/ as the recorder does")
    read.add_argument("--hub", required=True)
    read.add_argument("--plain", action="store_true")
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--windows", type=int, default=4, help="alternating plain / NODES windows")
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="50 agents, 2 windows of 3 s (the smoke test)")
    args = parser.parse_args(argv)
    if args.role == "reader":
        return reader(args.hub, args.plain)
    agents, windows, window_s, warmup_s = (
        (50, 2, 3.0, 2.0) if args.quick else (args.agents, args.windows, args.window_s, 5.0)
    )
    with open("/proc/loadavg") as loadavg:
        load_before = loadavg.read().split()[0]
    results = run(agents, windows, window_s, warmup_s)
    with open("/proc/loadavg") as loadavg:
        load_after = loadavg.read().split()[0]
    print(
        f"{agents:,} agents x {POINTS} points at 1 Hz, windows of {window_s:g} s; "
        f"load average {load_before} -> {load_after}"
    )
    print("stream  NODEs/s   hub us/NODE  reader us/NODE  batched  resyncs")
    for window in results:
        print(
            f"{window.stream:<7} {window.updates_per_s:9,.0f} {window.hub_us:12.2f} {window.reader_us:15.2f}"
            f"  {window.batched!s:<7}  {window.resyncs}"
        )
    medians = {
        stream: (
            statistics.median(w.hub_us for w in results if w.stream == stream),
            statistics.median(w.reader_us for w in results if w.stream == stream),
        )
        for stream in ("plain", "nodes")
        if any(w.stream == stream for w in results)
    }
    if len(medians) == 2:
        (plain_hub, plain_reader), (nodes_hub, nodes_reader) = medians["plain"], medians["nodes"]
        print(
            f"NODES / plain (medians): hub {nodes_hub / plain_hub:.2f}, reader {nodes_reader / plain_reader:.2f}; "
            f"at 100,000 NODEs/s the hub {plain_hub / 10:.2f} -> {nodes_hub / 10:.2f} core, "
            f"the reader {plain_reader / 10:.2f} -> {nodes_reader / 10:.2f} core"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
