"""A child that writes state-store turns as fast as it can until it is killed (the durability test).

Usage: python journal_writer.py DB_PATH --entries N

Turn k holds N journal entries (comment "turn k"), one alarm record (id k + 1)
and next_alarm_id k + 2, all in one write_turn. It prints ``READY`` and then,
for every turn, ``writing k`` just before the write and ``committed k`` once
write_turn has returned. A restarted writer continues after the last turn the
store holds.
"""

from __future__ import annotations

import argparse
import sys

from gsmon.common.ready import ready_line
from gsmon.hub.alarms import ACTIVE_UNACKED, Alarm, JournalEntry
from gsmon.hub.journal import StateStore

WALL0 = 1_800_000_000.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--turns", type=int, default=10_000)
    args = parser.parse_args()
    store = StateStore(args.db)
    first = store.load().next_id - 1
    print(ready_line(first=str(first)), flush=True)
    for turn in range(first, first + args.turns):
        at = WALL0 + turn
        entries = [
            JournalEntry(at, at, f"GS1/{n % 100}/p{n}", "level", 10, 30, n, "writer", comment=f"turn {turn}")
            for n in range(args.entries)
        ]
        alarm = Alarm(
            id=turn + 1,
            path=f"GS1/{turn}",
            agent="writer",
            reason="level",
            state=ACTIVE_UNACKED,
            level=30,
            level_str="RED",
            max_level=30,
            max_level_str="RED",
            latch=True,
            raised_at=at,
            raise_level=30,
            raise_value=turn,
            value=turn,
            level_since=at,
        )
        print("writing", turn, flush=True)
        store.write_turn(entries, [alarm], [], turn + 2)
        print("committed", turn, flush=True)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
