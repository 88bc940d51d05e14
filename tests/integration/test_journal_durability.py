"""The state store keeps whole turns only when its writer is killed (SIGKILL) in the middle of one."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from harness import HERE, Processes

from gsmon.hub.journal import StateStore

WRITER = HERE / "journal_writer.py"
ENTRIES = 20_000  # a turn of this size takes long enough to be killed inside it, most of the time
ROUNDS = 4


def whole_turns(db: Path) -> list[int]:
    """The turns the store holds, after checking that each one is all there: its entries, alarm and id."""
    raw = sqlite3.connect(db)
    try:
        counts = dict(raw.execute("SELECT comment, count(*) FROM journal GROUP BY comment").fetchall())
        alarm_ids = [row[0] for row in raw.execute("SELECT id FROM alarms ORDER BY id")]
        next_id = raw.execute("SELECT value FROM meta WHERE key = 'next_alarm_id'").fetchone()
    finally:
        raw.close()
    turns = sorted(int(comment.split()[1]) for comment in counts)
    assert all(count == ENTRIES for count in counts.values()), f"a torn turn: {counts}"
    assert turns == list(range(len(turns))), "turns must be contiguous from 0"
    assert alarm_ids == [turn + 1 for turn in turns], "each turn's alarm record came with it"
    assert int(next_id[0]) == len(turns) + 1
    return turns


def test_a_writer_killed_mid_turn_leaves_whole_turns_only(procs: Processes, tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    killed_inside = 0
    for round_number in range(ROUNDS):
        writer = procs.start(
            f"writer-{round_number}", [sys.executable, str(WRITER), str(db), "--entries", str(ENTRIES)]
        )
        first = int(writer.ready()["first"])
        target = first + 1 + round_number % 2  # a committed turn or two first, then die inside the next one
        writer.wait_for_line(f"writing {target}", timeout_s=60)
        writer.kill()
        last = writer.latest("committed ")
        committed = int(last.split()[1]) if last is not None else first - 1
        turns = whole_turns(db)
        assert turns[-1] >= committed, "a turn reported committed was lost"
        assert turns[-1] <= target
        if turns[-1] == target - 1:
            killed_inside += 1  # the kill landed while turn `target` was being written: it is gone whole
        with StateStore(db) as store:  # it opens cleanly after every crash and says where to go on
            assert store.load().next_id == turns[-1] + 2
    assert killed_inside >= 1, "no kill landed inside a write: make the turns bigger"
