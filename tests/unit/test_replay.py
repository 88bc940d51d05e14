"""The hub's replay core (hub/replay.py) with the real alarm book: no sockets, no sleeps, made-up times."""

from __future__ import annotations

import json
from pathlib import Path

from gsmon.common import protocol as proto
from gsmon.hub.alarms import CLEARED, RTN_UNACKED, AlarmBook, JournalEntry
from gsmon.hub.replay import CONFIRM_INTERVAL_S, META_PREFIX, RETRY_S, ReplayCore

AGENT = "rack1"
MOUNT = "GS1/Rack1"
OUTBOX = 0x5EED
T0 = 1_800_000_000.0
GREEN, ORANGE, RED = 10, 20, 30


def mark(head: int, tail: int = 1) -> proto.OutboxMark:
    return proto.OutboxMark(OUTBOX, tail, head)


def transitions(
    first: int,
    last: int,
    items: list[tuple[int, str, int | None, int, float]],
    done: bool = True,
    seq: int = 99,
    **extra: object,
) -> proto.Transitions:
    return proto.Transitions(
        sender=AGENT,
        epoch=7,
        seq=seq,
        sent_ns=0,
        outbox_id=OUTBOX,
        first=first,
        last=last,
        done=done,
        transitions=[
            proto.TransitionItem(tseq, "level", path, at, old, new, 1.0, {GREEN: "GREEN", RED: "RED"}.get(new, ""))
            for tseq, path, old, new, at in items
        ],
        **extra,  # type: ignore[arg-type]
    )


def live_book(level: int = GREEN) -> AlarmBook:
    """A book that knows the point live at ``level`` (the hub's first STATE after its restart)."""
    book = AlarmBook()
    book.point_level(f"{MOUNT}/temp", AGENT, level, "", 20.0, T0 + 100, None, 0.0, T0 + 100)
    book.take_journal()
    return book


def restarted(have: int) -> ReplayCore:
    """A core of a restarted hub that had everything up to ``have`` (from its store)."""
    return ReplayCore({META_PREFIX + AGENT: json.dumps([OUTBOX, have])})


def test_a_red_that_came_and_went_while_the_hub_was_down_is_latched_and_journaled_as_replayed() -> None:
    core, book = restarted(have=4), live_book(GREEN)
    # The resync STATE after the restart: the agent's head is 6, the hub had 4.
    assert core.observe(AGENT, 7, 1, mark(6), True, now=0.0) == []
    assert core.take_requests(0.0) == [(AGENT, 5, 6)]
    assert core.take_requests(1.0) == []  # asked already
    core.apply(
        transitions(5, 6, [(5, "temp", GREEN, RED, T0 + 10), (6, "temp", RED, GREEN, T0 + 20)]),
        MOUNT, GREEN, book, now=1.0, wall=T0 + 101,
    )  # fmt: skip
    journal = book.take_journal()
    assert all(entry.replayed for entry in journal)
    levels = [(e.kind, e.time, e.old, e.new) for e in journal if e.kind == "level"]
    assert levels == [("level", T0 + 10, GREEN, RED), ("level", T0 + 20, RED, GREEN)]
    assert [e.kind for e in journal if e.kind.startswith("alarm")] == ["alarm_raised", "alarm_rtn"]
    (alarm,) = book.alarms()
    assert (alarm.state, alarm.raised_at, alarm.rtn_at, alarm.max_level) == (RTN_UNACKED, T0 + 10, T0 + 20, RED)
    summary = journal[-1]
    assert (summary.kind, summary.path, summary.new, summary.agent) == ("replayed", MOUNT, GREEN, AGENT)
    assert summary.comment is not None
    assert summary.comment.startswith("2 transitions from ")
    assert core.have(AGENT) == 6
    assert core.take_marks() == {META_PREFIX + AGENT: json.dumps([OUTBOX, 6])}
    assert core.take_requests(2.0) == [(AGENT, 7, 6)]  # a confirmation only: the agent may drop them


def test_duplicates_are_ignored_idempotently() -> None:
    core, book = restarted(have=4), live_book(GREEN)
    core.observe(AGENT, 7, 1, mark(6), True, 0.0)
    batch = transitions(5, 6, [(5, "temp", GREEN, RED, T0 + 10), (6, "temp", RED, GREEN, T0 + 20)])
    core.apply(batch, MOUNT, GREEN, book, 1.0, T0 + 101)
    first = book.take_journal()
    core.apply(batch, MOUNT, GREEN, book, 1.5, T0 + 102)  # the same answer again (asked twice)
    assert book.take_journal() == []
    assert core.stats.unsolicited == 1  # nothing was being replayed any more
    assert len([e for e in first if e.kind == "alarm_raised"]) == 1


def test_batches_advance_have_and_an_overlap_is_applied_once() -> None:
    core, book = restarted(have=0), live_book(GREEN)
    core.observe(AGENT, 7, 1, mark(4), True, 0.0)
    core.take_requests(0.0)
    core.apply(transitions(1, 2, [(1, "temp", GREEN, RED, T0 + 1), (2, "temp", RED, GREEN, T0 + 2)], done=False),
               MOUNT, GREEN, book, 0.1, T0 + 101)  # fmt: skip
    assert core.replaying(AGENT)
    assert core.have(AGENT) == 2
    # A retry answered from 1 again (the request crossed the first answer): 1 and 2 are duplicates.
    core.apply(transitions(1, 4, [(1, "temp", GREEN, RED, T0 + 1), (2, "temp", RED, GREEN, T0 + 2),
                                  (3, "temp", GREEN, RED, T0 + 3), (4, "temp", RED, GREEN, T0 + 4)]),
               MOUNT, GREEN, book, 0.2, T0 + 101)  # fmt: skip
    assert core.stats.duplicates == 2
    assert core.stats.replayed == 4
    levels = [e.time for e in book.take_journal() if e.kind == "level"]
    assert levels == [T0 + 1, T0 + 2, T0 + 3, T0 + 4]
    (alarm,) = book.alarms()
    assert alarm.state == RTN_UNACKED  # one alarm: back in alarm before anyone acked, the same id


def test_in_order_heads_advance_have_and_a_break_waits_for_the_resync_state() -> None:
    core = ReplayCore()
    core.observe(AGENT, 7, 1, mark(10), True, 0.0)  # never heard of: followed from its head, no replay
    assert core.have(AGENT) == 10
    assert core.take_requests(0.0) == [(AGENT, 11, 10)]
    core.observe(AGENT, 7, 2, mark(12), False, 0.1, delta=True)  # a DELTA in order
    assert core.have(AGENT) == 10  # its head counts from the next message in order (its live TRANSITIONS)
    core.observe(AGENT, 7, 3, mark(12), False, 0.1, delta=True)  # another part of the same flush: still held
    assert core.have(AGENT) == 10
    core.observe(AGENT, 7, 4, mark(12), False, 0.15)  # a HEARTBEAT in order
    assert core.have(AGENT) == 12
    core.observe(AGENT, 7, 5, mark(13), False, 0.15, delta=True)  # held: 13 ...
    core.observe(AGENT, 7, 8, mark(15), False, 0.2, delta=True)  # ... but seq 6 and 7 were lost: not trusted
    assert core.have(AGENT) == 12
    assert core.take_requests(0.2) == []
    core.observe(AGENT, 7, 9, mark(16), True, 0.3)  # the resync STATE
    assert core.take_requests(0.3) == [(AGENT, 13, 16)]
    core.observe(AGENT, 7, 10, mark(17), False, 0.4, delta=True)  # live, while the replay runs: not yet have
    assert core.have(AGENT) == 12
    assert core.take_requests(0.3 + RETRY_S) == [(AGENT, 13, 16)]  # no answer: asked again
    core.apply(transitions(13, 16, [], seq=11), MOUNT, GREEN, None, 0.5, T0)
    assert core.have(AGENT) == 17  # the replayed range, then what came live in order
    core.observe(AGENT, 7, 12, mark(18), False, 0.6, delta=True)  # the answer took seq 11: in order after it
    core.observe(AGENT, 7, 13, mark(18), False, 0.7)
    assert core.have(AGENT) == 18


def test_lost_entries_are_journaled_once_as_a_range() -> None:
    core, book = restarted(have=4), live_book(GREEN)
    lost = core.observe(AGENT, 7, 1, mark(head=20, tail=11), True, 0.0)
    assert lost == [(5, 10)]
    core.journal_lost(AGENT, MOUNT, lost, book, T0)
    (entry,) = book.take_journal()
    assert (entry.kind, entry.path, entry.value, entry.replayed) == ("lost_transitions", MOUNT, [5, 10], True)
    assert core.take_requests(0.0) == [(AGENT, 11, 20)]
    # The agent's answer reports its own lost range too (its bound moved on meanwhile): only the new part counts.
    core.apply(transitions(11, 20, [(15, "temp", GREEN, RED, T0 + 15)], lost=(11, 14)), MOUNT, RED, book, 0.1, T0)
    kinds = [(e.kind, e.value) for e in book.take_journal() if e.kind == "lost_transitions"]
    assert kinds == [("lost_transitions", [11, 14])]
    assert core.stats.lost == 10


def test_a_new_outbox_or_one_that_went_back_is_followed_from_its_head() -> None:
    core = restarted(have=50)
    core.observe(AGENT, 7, 1, proto.OutboxMark(0xBEEF, 1, 3), True, 0.0)  # the agent's state was reset
    assert core.have(AGENT) == 3
    assert core.take_requests(0.0) == [(AGENT, 4, 3)]
    core.observe(AGENT, 8, 1, proto.OutboxMark(0xBEEF, 1, 2), True, 1.0)  # and went back
    assert core.have(AGENT) == 2
    assert core.take_requests(1.0) == []


def test_confirmations_are_rare() -> None:
    core = ReplayCore()
    core.observe(AGENT, 7, 1, mark(1), True, 0.0)
    core.observe(AGENT, 7, 2, mark(5), False, 0.0)
    core.observe(AGENT, 7, 3, mark(5), False, 0.0)
    assert core.take_requests(0.0) == [(AGENT, 6, 5)]  # a new agent is confirmed at once
    core.observe(AGENT, 7, 4, mark(9), False, 1.0)
    core.observe(AGENT, 7, 5, mark(9), False, 1.0)
    assert core.take_requests(1.0) == []
    assert core.take_requests(CONFIRM_INTERVAL_S) == [(AGENT, 10, 9)]


def test_a_replayed_red_that_is_still_red_live_keeps_one_active_alarm() -> None:
    core, book = restarted(have=0), live_book(RED)  # the first STATE raised the alarm live
    core.observe(AGENT, 7, 1, mark(1), True, 0.0)
    core.apply(transitions(1, 1, [(1, "temp", GREEN, RED, T0 + 10)]), MOUNT, RED, book, 0.1, T0 + 101)
    (alarm,) = book.alarms()
    assert alarm.state == "active_unacked"
    journal = book.take_journal()
    assert [(e.kind, e.time, e.replayed) for e in journal if e.kind == "level"] == [("level", T0 + 10, True)]


def test_a_replayed_orange_that_came_and_went_does_not_latch() -> None:
    core, book = restarted(have=0), live_book(GREEN)
    core.observe(AGENT, 7, 1, mark(2), True, 0.0)
    core.apply(
        transitions(1, 2, [(1, "temp", GREEN, ORANGE, T0 + 1), (2, "temp", ORANGE, GREEN, T0 + 2)]),
        MOUNT, GREEN, book, 0.1, T0 + 101,
    )  # fmt: skip
    assert book.alarms() == []
    (cleared,) = book.alarms(include_cleared=True)
    assert cleared.state == CLEARED


def test_transitions_of_a_point_the_book_does_not_know_are_journaled_only() -> None:
    core, book = restarted(have=0), live_book(GREEN)
    core.observe(AGENT, 7, 1, mark(1), True, 0.0)
    core.apply(transitions(1, 1, [(1, "gone", GREEN, RED, T0 + 1)]), MOUNT, GREEN, book, 0.1, T0 + 101)
    entries: list[JournalEntry] = book.take_journal()
    assert [e.kind for e in entries] == ["level", "replayed"]
    assert book.alarms() == []


def test_transitions_take_their_place_in_the_agents_seq_at_the_hub_core() -> None:
    """HubState counts TRANSITIONS for seq and liveness (no false gap, no resync loop) and applies nothing of them."""
    import dataclasses

    from gsmon.hub.state import HubSettings, HubState

    hub = HubState(dataclasses.replace(HubSettings()), 0x42, now=0.0)
    head = {"sender": AGENT, "epoch": 7, "sent_ns": 0}
    state = proto.State(**head, seq=1, mount=MOUNT, heartbeat_s=1.0, points=[], outbox=mark(0))
    hub.apply(state, 0.0, T0)
    replayed = dataclasses.replace(transitions(1, 0, []), seq=2, epoch=7)
    hub.apply(replayed, 0.1, T0)
    assert hub.applied(replayed)
    beat = proto.Heartbeat(**head, seq=3, mount=MOUNT, heartbeat_s=1.0, point_count=0, outbox=mark(0))
    hub.apply(beat, 0.2, T0)
    assert hub.stats.seq_gaps == 0
    assert hub.take_resync_requests() == []
    stranger = dataclasses.replace(replayed, sender="nobody")
    hub.apply(stranger, 0.3, T0)  # a replay from an agent the hub never heard of: nothing recorded
    assert "nobody" not in hub.agents


def test_the_marks_are_stored_with_the_journal_and_read_back_by_a_restarted_hub(tmp_path: Path) -> None:
    from gsmon.hub.journal import StateStore

    core = ReplayCore()
    core.observe(AGENT, 7, 1, mark(12), True, 0.0)
    with StateStore(tmp_path / "state.db") as store:
        store.write_turn([], [], [], 1, meta=core.take_marks())
        assert core.take_marks() == {}  # nothing changed since
    with StateStore(tmp_path / "state.db") as store:
        again = ReplayCore(store.load_meta(META_PREFIX))
    assert again.have(AGENT) == 12
    again.observe(AGENT, 9, 1, mark(15), True, 0.0)  # the restarted hub: a break, closed by this STATE
    assert again.take_requests(0.0) == [(AGENT, 13, 15)]


def test_an_unreadable_stored_mark_is_ignored() -> None:
    core = ReplayCore({META_PREFIX + AGENT: "not json", META_PREFIX + "b": json.dumps([1, 2])})
    assert core.have(AGENT) is None
    assert core.have("b") == 2


def test_entries_held_by_a_replay_under_way_are_asked_again_by_a_hub_restarted_meanwhile() -> None:
    """A point the STATE showed RED (journaled live) blipped in the outage: its replayed entries wait for
    the end of the replay to be matched. A hub that restarts before that end must not have stored a
    ``have`` past them: it asks for them again (journaling some twice rather than losing them)."""
    book = live_book(GREEN)
    core = restarted(10)
    core.observe(AGENT, 7, 1, mark(13), False, 0.0)  # in the hub's break (its own restart)
    mark_at = book.journal_mark()
    book.point_level(f"{MOUNT}/temp", AGENT, RED, "RED", 1.0, T0 + 13, None, 0.0, T0 + 200)
    core.note_live(AGENT, book.journal_since(mark_at))  # the resync STATE shows temp RED: journaled live
    core.observe(AGENT, 7, 2, mark(13), True, 0.0)
    assert core.take_requests(0.0) == [(AGENT, 11, 13)]
    blip = [(11, "temp", GREEN, RED, T0 + 11), (12, "temp", RED, GREEN, T0 + 12)]
    core.apply(transitions(11, 12, blip, done=False, seq=3), MOUNT, RED, book, 0.1, T0 + 201)  # 13 still to come
    assert not [e for e in book.take_journal() if e.replayed]  # held until the replay is complete
    stored = core.take_marks()
    again = ReplayCore(stored)  # the hub restarts now
    assert again.have(AGENT) == 10


def test_an_outbox_started_afresh_in_the_middle_of_a_replay_leaves_what_was_held_journaled_and_the_rest_lost() -> None:
    """An agent with its outbox in memory restarts while its replay is under way: the entries the hub
    held for matching are journaled (not dropped with the old outbox), what it never got is lost_transitions."""
    book = live_book(GREEN)
    core = restarted(10)
    core.observe(AGENT, 7, 1, mark(13), False, 0.0)
    mark_at = book.journal_mark()
    book.point_level(f"{MOUNT}/temp", AGENT, RED, "RED", 1.0, T0 + 13, None, 0.0, T0 + 200)
    core.note_live(AGENT, book.journal_since(mark_at))  # the resync STATE shows temp RED: journaled live
    core.observe(AGENT, 7, 2, mark(13), True, 0.0)
    blip = [(11, "temp", GREEN, RED, T0 + 11), (12, "temp", RED, GREEN, T0 + 12)]
    core.apply(transitions(11, 12, blip, done=False, seq=3), MOUNT, RED, book, 0.1, T0 + 201)
    book.take_journal()
    fresh = proto.OutboxMark(OUTBOX + 1, 1, 0)
    lost = core.observe(AGENT, 8, 1, fresh, True, 0.2, mount=MOUNT, book=book, wall=T0 + 202)
    assert lost == [(13, 13)]
    # The live RED stands for the entry to RED; the return to GREEN is journaled, replayed.
    assert [(e.time, e.new, e.replayed) for e in book.take_journal() if e.kind == "level"] == [(T0 + 12, GREEN, True)]
    assert core.have(AGENT) == 0  # followed from the new outbox's head
