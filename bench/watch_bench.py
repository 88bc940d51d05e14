"""``gsmon watch`` under load: a headless run of the application against a real hub.

::

    python bench/watch_bench.py                  # 10 agents x 1,000 points, 1,000 updates/s, 20 s windows
    python bench/watch_bench.py --quick          # tiny and short (the smoke test)
    python bench/watch_bench.py --markdown       # also print the table as Markdown
    python bench/watch_bench.py --trace          # also what the slowest presses waited for (bench/watch_trace.py)

What runs: a real ``gsmon hub`` on loopback; a load generator (``python -m
bench.watch_bench load``: simulated agents speaking the protocol as
:mod:`bench.peers` does) sending ``--rate`` point updates per second in
DELTAs of ``--batch`` points, about 3 % of them changing level (GREEN,
ORANGE, RED) on every pass, so the attention tree keeps changing shape; and,
in this process, the application itself (:class:`~gsmon.common.watch.app.WatchApp`)
driven by Textual's pilot at 160x50, fed by the real
:class:`~gsmon.common.watch.feed.HubFeed` (the Subscriber on its thread).

Measured, per view (the attention tree, then the full tree with all rows):

* CPU of this whole process (the feed thread's decoding, the view model,
  Textual's redraws) over the window, in cores; target < 0.2;
* key press to redraw: ``j``/``k`` pressed every 0.25 s; the time from the
  press until the tree has first drawn the row under the moved cursor (not a
  later redraw of it: the pilot returns late); p50, p99, max; target < 100 ms;
* updates the feed received per second, and rows in the view.

Baseline, same run, same load: a bare Subscriber on a thread in this
process, receiving and applying everything and doing nothing else. The
ratio *app CPU / baseline CPU* says what the view costs on top of merely
following the tree.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

if __package__ in (None, ""):  # run as a script: python bench/watch_bench.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil
import zmq

from bench._support import Children, machine_details, percentile
from bench.watch_trace import Tracer
from gsmon.common import protocol as proto
from gsmon.common.ready import ready_line

__all__ = ["WatchResult", "baseline", "format_table", "main", "measure", "run_load"]

TARGET_CORES: Final = 0.2
TARGET_KEY_MS: Final = 100.0
_VARIANTS: Final = 10


def _process_cpu_s() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


# ----------------------------------------------------------------------
# The load generator (a child process)
# ----------------------------------------------------------------------


def _levels(index: int, variant: int) -> tuple[int, str]:
    if (index * 7 + variant) % 97 == 0:
        return 30, "RED"
    if (index * 13 + variant) % 53 == 0:
        return 20, "ORANGE"
    return 10, "GREEN"


def run_load(args: argparse.Namespace) -> None:
    """Simulated agents: each sends one DELTA of ``batch`` points every ``flush`` seconds, staggered."""
    from bench import peers

    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    names = [f"w{index:03d}" for index in range(args.agents)]
    agents = peers._make_agents(context, args.endpoint, names, "bench", args.points, args.groups, False, 100_000)
    first = agents[0]
    chunks = [list(range(start, min(start + args.batch, args.points))) for start in range(0, args.points, args.batch)]
    templates = [
        [
            peers._Template(
                first.name,
                first.epoch,
                [
                    proto.PointEntry(
                        first.points[i], float(i * 1000 + variant), *_levels(i, variant), peers._PLACEHOLDER_S, args.dt
                    )
                    for i in chunk
                ],
            )
            for variant in range(_VARIANTS)
        ]
        for chunk in chunks
    ]
    flush_s = args.agents * args.batch / args.rate
    print(ready_line(agents=str(len(agents)), flush_s=f"{flush_s:.3f}"), flush=True)
    commands = peers._Commands()
    start = time.monotonic()
    due = [start + flush_s * index / len(agents) for index in range(len(agents))]
    cursor = [0] * len(agents)
    variant = [0] * len(agents)
    sent = 0
    while True:
        command = commands.take()
        if command == "END":
            break
        index = min(range(len(agents)), key=due.__getitem__)
        delay = due[index] - time.monotonic()
        if delay > 0:
            time.sleep(min(delay, 0.05))
            continue
        due[index] += flush_s
        agent = agents[index]
        if peers._wants_state(agent):
            for part in agent.state(args.dt):
                peers._send(agent, part)
        if agent.seq == 0:
            continue  # no hub has asked for a STATE yet
        template = templates[cursor[index]][variant[index]]
        cursor[index] = (cursor[index] + 1) % len(templates)
        if cursor[index] == 0:
            variant[index] = (variant[index] + 1) % _VARIANTS
        if peers._send(agent, template.envelope(agent.name, agent.epoch, agent.next_seq(), time.time())):
            sent += template.points
    print(f'RESULT {{"sent": {sent}}}', flush=True)


# ----------------------------------------------------------------------
# The measurements (this process)
# ----------------------------------------------------------------------


@dataclass(frozen=True)
class WatchResult:
    view: str
    nodes: int
    rows: int
    updates_per_s: float
    cores: float
    key_ms: list[float]

    def key_stats(self) -> tuple[float, float, float]:
        ordered = sorted(self.key_ms)
        if not ordered:
            return (float("nan"),) * 3
        return statistics.median(ordered), percentile(ordered, 0.99), ordered[-1]


def baseline(query: str, window_s: float, warmup_s: float) -> tuple[float, float]:
    """(cores, updates/s) of a bare Subscriber following everything, on a thread here."""
    from gsmon.common.client import Subscriber

    stop = threading.Event()
    received = [0]

    def follow() -> None:
        with Subscriber(query, "", timeout_s=30.0) as sub:
            while not stop.is_set():
                received[0] += len(sub.poll(0.05))

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    time.sleep(warmup_s)
    cpu0, wall0, seen0 = _process_cpu_s(), time.monotonic(), received[0]
    time.sleep(window_s)
    cpu1, wall1, seen1 = _process_cpu_s(), time.monotonic(), received[0]
    stop.set()
    thread.join(10)
    wall = wall1 - wall0
    return (cpu1 - cpu0) / wall, (seen1 - seen0) / wall


def measure(
    query: str, window_s: float, warmup_s: float, min_nodes: int, tracer: Tracer | None = None
) -> list[WatchResult]:
    """The application, headless at 160x50, on the real feed: one result per view (``tracer``: and what it did)."""
    from textual.pilot import Pilot

    from gsmon.common.client import Subscriber
    from gsmon.common.watch.app import WatchApp
    from gsmon.common.watch.feed import HubFeed

    factory = tracer.subscriber_factory() if tracer is not None else Subscriber
    feed = HubFeed(query, "", timeout_s=30.0, subscriber_factory=factory).start()
    app = WatchApp(feed.take, hub=query, freeze_gc=True)  # as run_app makes it
    if tracer is not None:
        tracer.attach(app)  # before the mount: the redraw timer takes the (timed) tick then
    results: list[WatchResult] = []

    async def window(pilot: Pilot[int], view: str) -> None:
        tree = app.tree_view
        received0 = app.received
        cpu0, wall0 = _process_cpu_s(), time.monotonic()
        latencies: list[float] = []
        direction = "j"
        while time.monotonic() - wall0 < window_s:
            before = app.model.cursor
            pressed = time.perf_counter()
            await pilot.press(direction)
            # The pilot returns once the process looks idle (Textual's wait_for_idle: up to 1 s while the
            # feed keeps it busy), often after the next tick has redrawn the row again: the press is timed
            # to the FIRST draw of the moved cursor's row, which the tree notes per move.
            move = tree.moves
            deadline = pressed + 2.0
            while time.perf_counter() < deadline:
                drawn_move, drawn_at = tree.cursor_drawn
                if drawn_move == move and app.model.cursor != before:
                    latencies.append((drawn_at - pressed) * 1000)
                    if tracer is not None:
                        tracer.presses.append((pressed, drawn_at))
                    break
                await asyncio.sleep(0.001)
            direction = "k" if direction == "j" else "j"
            await asyncio.sleep(0.25)
        wall = time.monotonic() - wall0
        cpu = _process_cpu_s() - cpu0
        if tracer is not None:
            tracer.window(view, time.perf_counter() - wall, time.perf_counter())
        results.append(
            WatchResult(
                view, len(app.model), len(app.model.rows), (app.received - received0) / wall, cpu / wall, latencies
            )
        )

    async def run() -> None:
        async with app.run_test(size=(160, 50)) as pilot:
            watcher = None
            if tracer is not None:
                tracer.attach_screen(app.screen)
                watcher = asyncio.create_task(tracer.watch_loop())
            deadline = time.monotonic() + 60
            while len(app.model) < min_nodes and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            if len(app.model) < min_nodes:
                raise RuntimeError(f"the view has {len(app.model)} nodes after 60 s, wanted {min_nodes}")
            await asyncio.sleep(warmup_s)
            await pilot.press("j")  # the cursor off the first row, so that j and k both move it
            await window(pilot, "attention tree")
            await pilot.press("t")
            await asyncio.sleep(warmup_s)
            await window(pilot, "full tree")
            if tracer is not None and watcher is not None:
                print(await tracer.cyclic_garbage(2.0))
                tracer.detach()
                await watcher
            await pilot.press("q")

    try:
        asyncio.run(run())
    finally:
        feed.stop()
    return results


def format_table(results: Sequence[WatchResult], base_cores: float, base_rate: float, markdown: bool) -> str:
    head = [
        "view",
        "nodes",
        "rows",
        "updates/s",
        "app cores",
        "base cores",
        "x base",
        "key p50 ms",
        "key p99 ms",
        "key max ms",
        "target",
    ]
    rows = []
    for result in results:
        p50, p99, worst = result.key_stats()
        met = result.cores < TARGET_CORES and worst < TARGET_KEY_MS
        rows.append(
            [
                result.view,
                f"{result.nodes:,}",
                f"{result.rows:,}",
                f"{result.updates_per_s:,.0f}",
                f"{result.cores:.3f}",
                f"{base_cores:.3f}",
                f"{result.cores / base_cores:.1f}" if base_cores > 0 else "-",
                f"{p50:.1f}",
                f"{p99:.1f}",
                f"{worst:.1f}",
                ("met" if met else "MISSED") + f" (< {TARGET_CORES} core, < {TARGET_KEY_MS:.0f} ms)",
            ]
        )
    rows.append(
        ["(baseline: bare Subscriber)", "", "", f"{base_rate:,.0f}", "", f"{base_cores:.3f}", "", "", "", "", ""]
    )
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)) for row in [head, *rows]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="role")
    load = sub.add_parser("load", help="(internal) the load generator")
    load.add_argument("--endpoint", required=True)
    for target in (parser, load):
        target.add_argument("--agents", type=int, default=10)
        target.add_argument("--points", type=int, default=1000, help="points per agent")
        target.add_argument("--groups", type=int, default=10, help="parents per agent")
        target.add_argument("--batch", type=int, default=100, help="points per DELTA")
        target.add_argument("--rate", type=float, default=1000.0, help="point updates per second, all agents")
        target.add_argument("--dt", type=float, default=30.0, help="the points' declared poll interval, s")
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured per view")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, short windows (the smoke test)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument(
        "--trace", action="store_true", help="also say what the slowest key presses waited for (bench/watch_trace.py)"
    )
    args = parser.parse_args(argv)
    if args.role == "load":
        run_load(args)
        return 0
    if args.quick:
        args.agents, args.points, args.groups, args.rate, args.window, args.warmup = 2, 50, 5, 100.0, 2.0, 0.5
        args.batch = 25
    with Children() as children:
        _, hub = children.hub()
        generator = children.start(
            "load",
            [
                sys.executable,
                "-m",
                "bench.watch_bench",
                "load",
                "--endpoint",
                hub["agents"],
                "--agents",
                str(args.agents),
                "--points",
                str(args.points),
                "--groups",
                str(args.groups),
                "--batch",
                str(args.batch),
                "--rate",
                str(args.rate),
                "--dt",
                str(args.dt),
            ],
        )
        generator.ready()
        nodes = args.agents * args.points
        base_cores, base_rate = baseline(hub["query"], args.window, args.warmup)
        tracer = Tracer() if args.trace else None
        results = measure(hub["query"], args.window, args.warmup, min_nodes=nodes, tracer=tracer)
        generator.command("END")
    details = machine_details()
    print(
        f"{nodes:,} points, {args.rate:,.0f} updates/s offered, {args.window:g} s windows; "
        + ", ".join(f"{key} {value}" for key, value in details.items())
    )
    print(format_table(results, base_cores, base_rate, markdown=False))
    if args.markdown:
        print()
        print(format_table(results, base_cores, base_rate, markdown=True))
    if tracer is not None:
        print()
        print(tracer.summary())
        print(tracer.slow_presses())
    return 0


if __name__ == "__main__":
    sys.exit(main())
