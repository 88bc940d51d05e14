"""The hub's loop work under an alarm storm, with the operator layer against without it.

::

    python bench/alarm_storm_bench.py              # 100 agents x 1,000 points, 2 flip rounds (~1 min)
    python bench/alarm_storm_bench.py --quick      # 10 agents x 100 points (seconds)

What one hub loop turn does, in process, without sockets (the sockets cost the same with and
without alarms, and are measured by bench/hub_bench.py): apply agent DELTAs up to the server's
per-turn budget (``RECV_POINTS_BUDGET`` points), then -- with the operator layer -- store the
turn (``HubServer._persist``: the book's journal and records in ONE ``StateStore.write_turn``),
then pack the turn's NODEs (``HubState.drain``, everything followed). Scenarios:

flip
    every point of every agent flips GREEN -> RED, then back (two rounds): each point opens an
    alarm (RED latches), then returns to normal (rtn_unacked): journal ``level``,
    ``alarm_raised``, ``alarm_rtn`` entries and alarm upserts, attention rollups.
die
    all agents go silent at once (one tick): one agent-silent alarm per agent, every point STALE.

Baseline, measured in the same run: the same turns with ``HubState(alarms=None)`` and no store
(``state_dir = ""``). Figures: CPU seconds for the whole scenario (``time.process_time``), the
ratio with/without, the median and worst turn (wall ms), the worst time from a turn's start until
its journal was stored (``write_turn`` returned: the issue's "the journal holds every transition
within 2 s"; the NODEs are packed after that), and the journal rows written.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gsmon.common import protocol as proto
from gsmon.hub.alarms import AlarmBook
from gsmon.hub.journal import STATE_FILE, StateStore
from gsmon.hub.server import RECV_POINTS_BUDGET
from gsmon.hub.state import HubSettings, HubState

GREEN, RED = 10, 30
WALL0 = 1_700_000_000.0


@dataclass
class Run:
    cpu_s: float
    turns_ms: list[float]
    journal_rows: int
    stored_ms: list[float]  # per turn: from its start until write_turn returned (the journal holds it)


class Turns:
    """A hub core (and optionally book + store) driven turn by turn like the server loop."""

    def __init__(self, with_alarms: bool, folder: Path) -> None:
        self.book = AlarmBook() if with_alarms else None
        settings = HubSettings(heartbeat_interval_s=1.0, agent_liveness=3.0, alert_log_level=None)
        self.hub = HubState(settings, 1, now=0.0, alarms=self.book)
        self.hub.subscriptions.follow(b"", subscribed=True)
        self.store = StateStore(folder / STATE_FILE) if with_alarms else None
        self.rows = 0
        self.turns_ms: list[float] = []
        self.stored_ms: list[float] = []

    def turn(self, work: Callable[[], None], now: float) -> None:
        start = time.perf_counter()
        work()
        if self.book is not None and self.store is not None:
            journal = self.book.take_journal()
            alarms, shelves, next_id = self.book.take_records()
            self.store.write_turn(journal, alarms, shelves, next_id)
            self.rows += len(journal)
        self.stored_ms.append((time.perf_counter() - start) * 1000)
        self.hub.drain(WALL0 + now)
        self.turns_ms.append((time.perf_counter() - start) * 1000)


def _agent_messages(agents: int, points: int, code: int, seq: int, polled: float) -> list[proto.Message]:
    return [
        proto.Delta(
            sender=f"a{index}",
            epoch=1,
            seq=seq,
            sent_ns=0,
            points=[proto.PointEntry(f"P{p}", p, code, "", WALL0 + polled, None) for p in range(points)],
        )
        for index in range(agents)
    ]


def scenario(name: str, agents: int, points: int, with_alarms: bool, folder: Path) -> Run:
    turns = Turns(with_alarms, folder)
    hub = turns.hub
    states = [
        proto.State(
            sender=f"a{index}",
            epoch=1,
            seq=0,
            sent_ns=0,
            mount=f"GS{index // 10}/Ant{index}",
            heartbeat_s=1.0,
            points=[proto.PointEntry(f"P{p}", p, GREEN, "", WALL0, None) for p in range(points)],
            parents=[],
            part=0,
            parts=1,
        )
        for index in range(agents)
    ]
    for msg in states:
        hub.apply(msg, 0.0, WALL0)
    turns.turn(lambda: None, 0.0)
    turns.turns_ms.clear()
    turns.stored_ms.clear()
    turns.rows = 0
    per_turn = max(1, RECV_POINTS_BUDGET // points)
    cpu0 = time.process_time()
    if name == "flip":
        for round_index, code in enumerate((RED, GREEN), start=1):
            now = float(round_index)
            batch = _agent_messages(agents, points, code, round_index, now)
            for start in range(0, len(batch), per_turn):
                chunk = batch[start : start + per_turn]
                turns.turn(lambda chunk=chunk, now=now: [hub.apply(m, now, WALL0 + now) for m in chunk] and None, now)
    else:
        turns.turn(lambda: hub.tick(100.0, WALL0 + 100.0), 100.0)
    cpu = time.process_time() - cpu0
    if turns.store is not None:
        turns.store.close()
    return Run(cpu, turns.turns_ms, turns.rows, turns.stored_ms)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="10 agents x 100 points")
    parser.add_argument("--dir", type=Path, default=None, help="where the state store goes (a real disk)")
    parser.add_argument("--only", choices=("flip", "die"), default=None, help="run one scenario")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # 100 "agent is silent" lines are not the measurement
    agents, points = (10, 100) if args.quick else (args.agents, args.points)
    print(f"alarm storm: {agents} agents x {points} points, one turn = {RECV_POINTS_BUDGET} points")
    print(
        "| scenario | CPU without alarms | CPU with alarms + store | ratio | turn median / worst (with)"
        " | journal stored, worst turn | journal rows |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in (args.only,) if args.only else ("flip", "die"):
        with tempfile.TemporaryDirectory(dir=args.dir) as base, tempfile.TemporaryDirectory(dir=args.dir) as other:
            without = scenario(name, agents, points, False, Path(base))
            with_ = scenario(name, agents, points, True, Path(other))
        median = statistics.median(with_.turns_ms)
        print(
            f"| {name} | {without.cpu_s:.2f} s | {with_.cpu_s:.2f} s | {with_.cpu_s / max(without.cpu_s, 1e-9):.1f} x "
            f"| {median:.1f} / {max(with_.turns_ms):.1f} ms | {max(with_.stored_ms):.1f} ms | {with_.journal_rows:,} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
