"""The notifier's journal cursors for a hub pair (gsmon.common.notify.cursors): pure, no sockets."""

from __future__ import annotations

from gsmon.common.notify.core import Entry
from gsmon.common.notify.cursors import JournalCursors

A = "tcp://10.0.0.1:7763"
B = "tcp://10.0.0.2:7763"


def entry(entry_id: int, kind: str, time: float, new: int | None = 30, path: str = "GS1/ups/Power") -> Entry:
    return Entry.from_wire({"id": entry_id, "time": time, "hub_time": time, "path": path, "kind": kind, "new": new})


def test_the_other_hub_is_read_from_a_time_and_what_was_taken_is_dropped() -> None:
    cursors = JournalCursors(A, 0, overlap_s=5.0)
    taken = cursors.take([entry(1, "level", 100.0), entry(2, "alarm_raised", 100.0)])
    assert [e.id for e in taken] == [1, 2]
    cursors.advance(2)
    cursors.switch(B)
    assert (cursors.hub, cursors.cursor, cursors.since) == (B, 0, 95.0)
    # B journaled the same transitions under its own ids, then the return to GREEN.
    fresh = cursors.take([entry(7, "level", 100.0), entry(8, "alarm_raised", 100.0), entry(9, "alarm_rtn", 104.0, 10)])
    assert [e.id for e in fresh] == [9]
    cursors.advance(9)
    assert cursors.since is None  # read by id from now on


def test_a_hub_read_before_keeps_its_own_cursor() -> None:
    cursors = JournalCursors(A, 40)
    cursors.take([entry(41, "level", 10.0)])
    cursors.advance(41)
    cursors.switch(B)
    cursors.take([entry(3, "alarm_rtn", 12.0, 10)])
    cursors.advance(3)
    cursors.switch(A)
    assert (cursors.cursor, cursors.since) == (41, None)
    assert cursors.take([entry(41, "level", 10.0), entry(42, "ack", 13.0, None)])[0].id == 42


def test_a_hub_never_read_with_nothing_taken_is_read_from_the_start() -> None:
    cursors = JournalCursors(A, 0)
    cursors.switch(B)
    assert (cursors.cursor, cursors.since) == (0, None)


def test_the_memory_of_taken_entries_is_bounded() -> None:
    cursors = JournalCursors(A, 0, remember=2)
    cursors.take([entry(1, "level", 1.0), entry(2, "level", 2.0), entry(3, "level", 3.0)])
    cursors.switch(B)
    assert cursors.take([entry(2, "level", 2.0), entry(3, "level", 3.0)]) == []  # the newest two: remembered
    assert [e.id for e in cursors.take([entry(1, "level", 1.0)])] == [1]  # the oldest beyond the bound: forgotten
