"""The agent's outbox (issue 17): what recording every transition costs a Monitor.

::

    python bench/outbox_bench.py              # 1,000 and 10,000 flipping points, 10 s windows (~1 min)
    python bench/outbox_bench.py --quick      # 200 and 2,000 points, 3 s windows (seconds)
    python bench/outbox_bench.py --markdown   # the table as bench/RESULTS.md shows it

Each scenario runs a real :class:`~gsmon.agent.monitor.Monitor` with ``N`` points polled every
second, each of which flips between GREEN and RED at *every* poll: ``N`` effective-level
transitions a second, all of them falling due in the same instant (the 10,000-point run is the
issue's storm: 10,000 points flip at once, every second). The Monitor publishes (flushing every
50 ms as usual) to a sink in another process: a SUB socket that reads and drops every message, so
the figures are the agent's own (this process's CPU).

Measured over a window after a warm-up, in the same run, alternating:

* ``outbox``: the outbox on disk (``state_dir`` a temporary folder: check it is a real disk);
* ``live``: the same, and the sink, like a hub with a state store, keeps
  :data:`~gsmon.common.protocol.LIVE_TOPIC` subscribed: the agent also sends every flush's live
  TRANSITIONS;
* ``none``: ``outbox=False`` (the baseline: the Monitor before issue 17).

Figures: transitions recorded per second (the outbox's ``head`` over the window; for the
baseline the flips polled), polls kept against polls due, the process's CPU in cores, and the
ratio of the two CPUs. ``--per-record`` also runs the outbox with one SQLite commit per
transition (the first version's way), for comparison.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

if __package__ in (None, ""):  # run as a script: python bench/outbox_bench.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._support import machine_details
from gsmon.agent.monitor import Monitor
from gsmon.common.alerts import Alert, GreenAlert, RedAlert

_SINK = """
import sys, zmq
sub = zmq.Context().socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, b"")
if sys.argv[1] == "live":
    from gsmon.common.protocol import LIVE_TOPIC
    sub.setsockopt(zmq.SUBSCRIBE, LIVE_TOPIC)
sub.bind("tcp://127.0.0.1:0")
print(sub.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
while True:
    sub.recv()
"""
POINTS_PER_PARENT = 100


@dataclass(frozen=True)
class Result:
    mode: str  # "outbox", "per-record" or "none"
    points: int
    window_s: float
    polls_per_s: float
    transitions_per_s: float
    cpu_cores: float

    @property
    def schedule_pct(self) -> float:
        return 100.0 * self.polls_per_s / self.points


def _flipper(counts: list[int], index: int) -> Callable[[], Alert]:
    """A point that is RED at every other poll: each poll is a transition."""

    def poll() -> Alert:
        counts[index] += 1
        return RedAlert(counts[index]) if counts[index] % 2 else GreenAlert(counts[index])

    return poll


def run(mode: str, points: int, duration_s: float, warmup_s: float, folder: Path) -> Result:
    """One scenario (module docstring); ``folder`` holds the outbox file (removed after)."""
    counts = [0] * points
    state_dir = folder / f"{mode}-{points}"
    sink = subprocess.Popen([sys.executable, "-c", _SINK, mode], stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    hub = sink.stdout.readline().strip()
    mon = Monitor(
        workers=10,
        hub=hub,
        agent=f"bench-{mode}-{points}",
        state_dir=state_dir if mode != "none" else None,
        outbox=mode != "none",
    )
    outbox = mon.outbox
    if mode == "per-record" and outbox is not None:
        outbox.batch = False  # one commit per transition (the first version)
    for index in range(points):
        mon.monitor(point=f"p{index:05d}", dt=1.0, parent=f"g{index // POINTS_PER_PARENT:03d}")(_flipper(counts, index))
    gc.collect()
    process = psutil.Process()
    mon.start()
    try:
        time.sleep(warmup_s)
        cpu0, t0, polls0 = process.cpu_times(), time.monotonic(), sum(counts)
        head0 = outbox.head if outbox is not None else 0
        time.sleep(duration_s)
        cpu1, t1, polls1 = process.cpu_times(), time.monotonic(), sum(counts)
        head1 = outbox.head if outbox is not None else 0
        policy = mon.publisher._policy if mon.publisher is not None else None  # the bench reads its counter
        live_sent = policy.live_messages if policy is not None else 0
    finally:
        mon.stop()
        sink.kill()
        sink.wait()
    if mode == "live" and live_sent == 0 and head1 > head0:
        raise RuntimeError("the live scenario sent no live transitions: the agent never saw the subscription")
    window = t1 - t0
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    polls = (polls1 - polls0) / window
    transitions = (head1 - head0) / window if outbox is not None else polls
    return Result(mode, points, window, polls, transitions, cpu / window)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, short windows")
    parser.add_argument("--sizes", type=int, nargs="+", help="points per scenario")
    parser.add_argument("--duration", type=float, help="seconds measured per scenario")
    parser.add_argument("--per-record", action="store_true", help="also one commit per transition")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--dir", type=Path, default=None, help="where the outbox files go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    sizes = args.sizes or ([200, 2_000] if args.quick else [1_000, 10_000])
    duration = args.duration or (3.0 if args.quick else 10.0)
    warmup = 1.5 if args.quick else 3.0
    modes = ["none", "outbox", "live", *(["per-record"] if args.per_record else [])]
    load = os.getloadavg()
    rows: list[tuple[Result, Result]] = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="gsmon-outbox-bench-") as tmp:
        for points in sizes:
            by_mode = {mode: run(mode, points, duration, warmup, Path(tmp)) for mode in modes}
            base = by_mode["none"]
            rows.extend((by_mode[mode], base) for mode in modes)
    details = machine_details()
    head = "| points | outbox | transitions/s | schedule kept | agent CPU (cores) | CPU vs none |"
    lines = [head, "|---:|---|---:|---:|---:|---:|"]
    for result, base in rows:
        ratio = result.cpu_cores / base.cpu_cores if base.cpu_cores else float("inf")
        lines.append(
            f"| {result.points:,} | {result.mode} | {result.transitions_per_s:,.0f} | {result.schedule_pct:.1f} % "
            f"| {result.cpu_cores:.3f} | {ratio:.2f} x |"
        )
    print(f"machine: {details}; load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("\n".join(lines) if args.markdown else "\n".join(line.replace("|", " ") for line in lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
