"""The hub's state store under an alarm storm: one transaction per loop turn against one per entry.

::

    python bench/journal_bench.py              # 10,000 transitions per turn, 5 turns per scenario (~1 min)
    python bench/journal_bench.py --quick      # 500 per turn, 2 turns (seconds; the smoke test)
    python bench/journal_bench.py --markdown   # the table as bench/RESULTS.md shows it

Scenarios (every write through :meth:`gsmon.hub.journal.StateStore.write_turn`, on a real file in
``--dir``, default the system temporary folder: check that it is a real disk, not tmpfs):

levels
    ``N`` point level transitions (journal kind ``level``): a turn of pure transitions, committed
    with ``synchronous=NORMAL``.
storm
    ``N`` level transitions, and for each an ``alarm_raised`` entry and its alarm record (upsert):
    ``2 N`` journal rows and ``N`` alarm rows, committed with ``synchronous=FULL``.

Baseline, measured in the same run on a fresh file: the same writes with one ``write_turn`` (one
transaction, and for the storm one fsync) per transition. It is run on ``--baseline-rows``
transitions (default 1,000: at one fsync each, 10,000 would take minutes) and compared by rate.
Figures: ms per turn and rows per second (journal + alarm rows) for the batched writes (median of
the turns), rows per second for the baseline, and the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gsmon.hub.alarms import ACTIVE_UNACKED, Alarm, JournalEntry
from gsmon.hub.journal import StateStore

WALL0 = 1_800_000_000.0


@dataclass(frozen=True)
class Result:
    scenario: str
    transitions: int  # per turn
    rows_per_turn: int
    turn_ms: float  # median over the turns
    rows_per_s: float
    baseline_transitions: int
    baseline_rows_per_s: float

    @property
    def ratio(self) -> float:
        return self.rows_per_s / self.baseline_rows_per_s if self.baseline_rows_per_s else float("inf")


def _turn(scenario: str, turn: int, start: int, count: int) -> tuple[list[JournalEntry], list[Alarm]]:
    at = WALL0 + turn
    entries: list[JournalEntry] = []
    alarms: list[Alarm] = []
    for n in range(start, start + count):
        path = f"GS{n % 10}/Agent{n // 100 % 100}/Point{n % 100}"
        entries.append(JournalEntry(at, at, path, "level", 10, 30, n * 0.5, f"Agent{n // 100 % 100}"))
        if scenario == "storm":
            alarm_id = turn * 1_000_000 + n + 1
            entries.append(JournalEntry(at, at, path, "alarm_raised", None, 30, n * 0.5, "a", alarm_id=alarm_id))
            alarms.append(
                Alarm(
                    id=alarm_id,
                    path=path,
                    agent="a",
                    reason="level",
                    state=ACTIVE_UNACKED,
                    level=30,
                    level_str="RED",
                    max_level=30,
                    max_level_str="RED",
                    latch=True,
                    raised_at=at,
                    raise_level=30,
                    raise_value=n * 0.5,
                    value=n * 0.5,
                    level_since=at,
                )
            )
    return entries, alarms


def run_scenario(scenario: str, transitions: int, turns: int, baseline_transitions: int, folder: Path) -> Result:
    batched_dir = Path(tempfile.mkdtemp(prefix=f"journal-{scenario}-", dir=folder))
    baseline_dir = Path(tempfile.mkdtemp(prefix=f"journal-{scenario}-base-", dir=folder))
    try:
        times: list[float] = []
        rows = 0
        with StateStore(batched_dir / "state.db") as store:
            for turn in range(turns):
                entries, alarms = _turn(scenario, turn, 0, transitions)
                next_id = (turn + 1) * 1_000_000 if scenario == "storm" else 1
                started = time.perf_counter()
                store.write_turn(entries, alarms, [], next_id)
                times.append(time.perf_counter() - started)
                rows = len(entries) + len(alarms)
        turn_s = statistics.median(times)
        baseline_rows = 0
        with StateStore(baseline_dir / "state.db") as store:
            started = time.perf_counter()
            for n in range(baseline_transitions):
                entries, alarms = _turn(scenario, 0, n, 1)
                next_id = n + 2 if scenario == "storm" else 1
                store.write_turn(entries, alarms, [], next_id)
                baseline_rows += len(entries) + len(alarms)
            baseline_s = time.perf_counter() - started
        return Result(
            scenario,
            transitions,
            rows,
            turn_s * 1000.0,
            rows / turn_s,
            baseline_transitions,
            baseline_rows / baseline_s,
        )
    finally:
        shutil.rmtree(batched_dir, ignore_errors=True)
        shutil.rmtree(baseline_dir, ignore_errors=True)


def filesystem(folder: Path) -> str:
    try:
        out = subprocess.run(["df", "-T", str(folder)], capture_output=True, text=True, check=True, timeout=10).stdout
        return out.splitlines()[-1].split()[1]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def format_table(results: Sequence[Result], markdown: bool = False) -> str:
    header = [
        "scenario",
        "transitions/turn",
        "rows/turn",
        "ms/turn",
        "rows/s (1 txn/turn)",
        "baseline rows/s (1 txn/entry)",
        "x",
    ]
    rows = [
        [
            result.scenario,
            f"{result.transitions:,}",
            f"{result.rows_per_turn:,}",
            f"{result.turn_ms:.1f}",
            f"{result.rows_per_s:,.0f}",
            f"{result.baseline_rows_per_s:,.0f}",
            f"{result.ratio:,.0f}",
        ]
        for result in results
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    out = ["  ".join(cell.rjust(width) for cell, width in zip(header, widths, strict=True))]
    out.append("  ".join("-" * width for width in widths))
    out += ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transitions", type=int, default=10_000, help="transitions per turn (default 10,000)")
    parser.add_argument("--turns", type=int, default=5, help="turns per scenario (default 5; the median counts)")
    parser.add_argument("--baseline-rows", type=int, default=1000, help="transitions in the baseline (default 1,000)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the files go")
    parser.add_argument("--quick", action="store_true", help="500 transitions, 2 turns, baseline 100")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.transitions, args.turns, args.baseline_rows = 500, 2, 100
    results = [
        run_scenario(scenario, args.transitions, args.turns, args.baseline_rows, args.dir)
        for scenario in ("levels", "storm")
    ]
    print(
        f"# {args.dir} ({filesystem(args.dir)}), CPython {sys.version.split()[0]}, SQLite "
        f"{sqlite3.sqlite_version}, {os.cpu_count()} cores"
    )
    print(format_table(results, markdown=args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
