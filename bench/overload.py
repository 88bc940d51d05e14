"""Overload: 1,000 agents connecting at once to a hub on a machine kept busy.

The scale scenario ramps its agents up over 10 s on an otherwise idle
machine. Here they all connect at once while ``--busy`` processes spin on
the same cores, so the hub falls behind its own input queue for a while. A
hub must then neither declare agents silent whose messages wait in that
queue (false STALE) nor fall into the spiral that follows: restyles, resyncs
and full STATEs that add work to a hub that is already behind.

Each hub (this tree, and ``--before REV`` in the same run) gets one
scale-scenario window; the table shows whether it held. Run from the
repository root::

    python -m bench.overload --before 6672104     # about 5 minutes
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from bench import hub_bench
from bench.run_all import hub_pythonpaths


@contextmanager
def _busy_processes(count: int) -> Iterator[None]:
    """``count`` processes that spin on the CPU until the block ends."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overload", description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=int, default=2, help="processes spinning on the CPU meanwhile (default 2)")
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured (default 20)")
    parser.add_argument("--before", metavar="GIT_REV", help="also measure the hub of this revision")
    args = parser.parse_args(argv)
    if args.busy < 0:
        parser.error("--busy must be 0 or more")
    rows = []
    with hub_pythonpaths(args.before) as pythonpaths:
        for impl in ["hub", *pythonpaths]:
            print(f"overload: {impl}, 1,000 agents at once, {args.busy} busy process(es)", file=sys.stderr)
            with _busy_processes(args.busy):
                result = hub_bench.run_scale(impl, ramp_s=0.0, window_s=args.window, pythonpaths=pythonpaths)
            rows.append(result)
    columns = ["hub", "live agents start / end", "applied/s of offered", "STALE points / parents"]
    columns += ["hub RSS start→end MB", "p50 / p99 ms"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for r in rows:
        print(
            f"| {r.impl} | {r.live_at_start} / {r.live_at_end} | {r.processed_per_s:,.0f} of {r.offered_per_s:,.0f} "
            f"| {r.stale_points:,} / {r.stale_parents:,} | {r.rss_start_mb:.0f}→{r.rss_end_mb:.0f} "
            f"| {r.p50_us / 1000:,.0f} / {r.p99_us / 1000:,.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
