"""``gsmon demo``: the whole system on one machine, with nothing to configure.

For now a local Monitor with a few real psutil points, its tree redrawn in
place every second until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="run a live demo on this machine (no setup needed)")
    parser.add_argument("--refresh", type=float, default=1.0, help="seconds between redraws (default 1)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import psutil

    from gsmon.agent import GreenAlert, Monitor, OrangeAlert, RedAlert

    mon = Monitor(default_dt=1)
    psutil.cpu_percent()  # the first non-blocking call only primes the counter

    @mon.monitor(point="cpu_percent", parent="Host")
    def cpu() -> Any:
        usage = psutil.cpu_percent()
        return RedAlert(usage) if usage > 90 else OrangeAlert(usage) if usage > 70 else GreenAlert(usage)

    @mon.monitor(point="memory_used_percent", parent="Host")
    def memory() -> Any:
        used = psutil.virtual_memory().percent
        return RedAlert(used) if used > 95 else OrangeAlert(used) if used > 85 else GreenAlert(used)

    @mon.monitor(point=("load_1min", "load_5min", "load_15min"), parent="Load", dt=5)
    def load() -> tuple[float, float, float]:
        return os.getloadavg()

    @mon.monitor(point="uptime_s", parent="Host", dt=10)
    def uptime() -> float:
        return time.time() - psutil.boot_time()

    mon.start()
    deadline = None if args.duration is None else time.monotonic() + args.duration
    try:
        while deadline is None or time.monotonic() < deadline:
            # Home the cursor and clear below: redraw in place.
            sys.stdout.write("\x1b[H\x1b[J" + str(mon))
            sys.stdout.flush()
            time.sleep(args.refresh)
    except KeyboardInterrupt:
        pass
    finally:
        mon.stop()
    return 0
