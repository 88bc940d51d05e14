"""Issue 17 §1 and §2: live transitions (protocol 1.3) at the agent's send policy and the hub's replay core.

A blip between two flushes (RED and back within 50 ms) reaches the hub at once, latched and journaled with its
original time; after a seq break, what the hub journaled live is not journaled again by the replay that closes
it. Pure cores, the real alarm book, made-up times: no sockets, no sleeps.
"""

from __future__ import annotations

from test_send_policy import SETTINGS, T0, WALL0, FakeSource

from gsmon.agent.outbox import Outbox
from gsmon.common import protocol as proto
from gsmon.common.send_policy import SendPolicy, folded
from gsmon.hub.alarms import RTN_UNACKED, AlarmBook
from gsmon.hub.replay import ReplayCore

AGENT = "rack1"
MOUNT = "GS1/Rack1"
OUTBOX = 0x5EED
GREEN, ORANGE, RED = 10, 20, 30
LABEL = {GREEN: "GREEN", ORANGE: "ORANGE", RED: "RED"}


def item(tseq: int, path: str, old: int, new: int, at: float, kind: str = "level") -> proto.TransitionItem:
    return proto.TransitionItem(tseq, kind, path, at, old, new, float(new), LABEL[new] if kind == "level" else "")


# -- the agent: what a flush's DELTA cannot show ---------------------------------------------------------


def test_folded_lists_what_the_latest_poll_per_point_hides() -> None:
    window = [
        item(1, "a", GREEN, RED, WALL0),  # a: one move, the DELTA shows it
        item(2, "b", GREEN, RED, WALL0),  # b: RED and back, the DELTA shows no change: both folded
        item(3, "c", GREEN, RED, WALL0),  # c: GREEN -> RED -> ORANGE, the DELTA shows GREEN -> ORANGE
        item(4, "b", RED, GREEN, WALL0),
        item(5, "c", RED, ORANGE, WALL0),
        item(6, "d", GREEN, ORANGE, WALL0, kind="pending"),  # d: two debounce events, the map shows the last
        item(7, "d", GREEN, ORANGE, WALL0, kind="discarded"),
        item(8, "e", GREEN, RED, WALL0, kind="pending"),  # e: one event, seen in its map
    ]
    assert [t.tseq for t in folded(window)] == [2, 3, 4, 6]
    assert folded([]) == []


def test_a_live_link_gets_the_flushs_window_after_its_delta_listing_the_blip() -> None:
    outbox = Outbox(None, ["tcp://a:1", "tcp://b:1"])
    policy = SendPolicy(AGENT, 0xABC, MOUNT, 2, SETTINGS, T0, outbox=outbox)
    source = FakeSource()
    outbox.record("temp", None, GREEN, "GREEN", 20.0, WALL0, WALL0)  # its first level: no entry
    policy.tick(T0 + 0.05, WALL0, source)
    assert policy.upstream(0, b"\x01" + proto.LIVE_TOPIC) is None  # hub 0 asks for live transitions
    # Between two flushes: RED and back to GREEN. The DELTA carries the latest poll (GREEN) only.
    assert outbox.record("temp", GREEN, RED, "RED", 90.0, WALL0 + 1.00, WALL0) == 1
    assert outbox.record("temp", RED, GREEN, "GREEN", 21.0, WALL0 + 1.02, WALL0) == 2
    source.changes = [proto.PointEntry("temp", 21.0, GREEN, "GREEN", WALL0 + 1.02, 0.01)]
    out = policy.tick(T0 + 1.2, WALL0, source)
    kinds = [(link, msg.kind.name) for link, msg in out]  # type: ignore[attr-defined]
    assert kinds == [(0, "DELTA"), (1, "DELTA"), (0, "TRANSITIONS")]  # hub 1 did not ask: nothing more
    delta, live = out[0][1], out[2][1]
    assert isinstance(live, proto.Transitions)
    assert (live.first, live.last, live.done, live.live) == (1, 2, True, delta.seq)
    assert [(t.tseq, t.new, t.time) for t in live.transitions] == [(1, RED, WALL0 + 1.00), (2, GREEN, WALL0 + 1.02)]
    assert live.seq == delta.seq + 1
    assert proto.decode(proto.encode(live)) == live  # `live` travels (and a replay leaves it out)
    # A flush without transitions sends none; unsubscribing stops them.
    source.changes = [proto.PointEntry("temp", 21.5, GREEN, "GREEN", WALL0 + 2, 0.01)]
    assert [m.kind.name for _, m in policy.tick(T0 + 2.2, WALL0, source)] == ["DELTA", "DELTA"]  # type: ignore[attr-defined]
    policy.upstream(0, b"\x00" + proto.LIVE_TOPIC)
    outbox.record("temp", GREEN, RED, "RED", 90.0, WALL0 + 3, WALL0)
    source.changes = [proto.PointEntry("temp", 90.0, RED, "RED", WALL0 + 3, 0.01)]
    assert [m.kind.name for _, m in policy.tick(T0 + 3.2, WALL0, source)] == ["DELTA", "DELTA"]  # type: ignore[attr-defined]


def test_the_monitor_cuts_the_window_as_it_hands_the_publisher_its_changes() -> None:
    from gsmon.agent.monitor import Monitor, _MonitorSource

    mon = Monitor(hub="tcp://127.0.0.1:1", agent=AGENT)
    outbox = mon.outbox
    assert outbox is not None
    try:
        outbox.record("temp", GREEN, RED, "RED", 90.0, WALL0, WALL0)
        _MonitorSource(mon).take_changes()  # the publisher's flush takes the points: the window is cut with them
        outbox.record("temp", RED, GREEN, "GREEN", 21.0, WALL0 + 1, WALL0)  # after it: the next window's
        assert [t.tseq for t in outbox.take_window()] == [1]
    finally:
        mon.stop()


def test_the_monitor_notes_the_head_as_it_hands_the_publisher_its_full_state() -> None:
    """A STATE's head is read with its points, under the Monitor's lock (protocol: exact marks)."""
    from gsmon.agent.monitor import Monitor, _MonitorSource

    mon = Monitor(hub="tcp://127.0.0.1:1", agent=AGENT)
    outbox = mon.outbox
    assert outbox is not None
    try:
        outbox.record("temp", GREEN, RED, "RED", 90.0, WALL0, WALL0)
        _MonitorSource(mon).full_state()
        outbox.record("temp", RED, GREEN, "GREEN", 21.0, WALL0 + 1, WALL0)  # after it: not in that STATE
        assert outbox.take_noted_head() == 1
        assert outbox.take_noted_head() is None  # taken once
    finally:
        mon.stop()


# -- the hub: journaled once, blips latched -------------------------------------------------------------


def delta(seq: int, head: int) -> tuple[int, proto.OutboxMark]:
    return seq, proto.OutboxMark(OUTBOX, 1, head)


def live(seq: int, flush_from: int, first: int, last: int, items: list[proto.TransitionItem]) -> proto.Transitions:
    return proto.Transitions(
        sender=AGENT, epoch=7, seq=seq, sent_ns=0, outbox_id=OUTBOX, first=first, last=last, done=True,
        transitions=items, live=flush_from,
    )  # fmt: skip


def replayed(seq: int, first: int, last: int, items: list[proto.TransitionItem]) -> proto.Transitions:
    return proto.Transitions(
        sender=AGENT, epoch=7, seq=seq, sent_ns=0, outbox_id=OUTBOX, first=first, last=last, done=True,
        transitions=items,
    )  # fmt: skip


def book_with(*paths: str) -> AlarmBook:
    book = AlarmBook()
    for path in paths:
        book.point_level(f"{MOUNT}/{path}", AGENT, GREEN, "GREEN", 1.0, WALL0, None, 0.0, WALL0)
    book.take_journal()
    return book


def test_a_blip_between_two_deltas_is_journaled_with_its_times_and_latched_at_once() -> None:
    core, book = ReplayCore(), book_with("temp")
    core.observe(AGENT, 7, 1, proto.OutboxMark(OUTBOX, 1, 0), True, 0.0)  # first heard: followed from 0
    core.observe(AGENT, 7, *delta(2, 0), False, 0.1)  # the DELTA shows temp GREEN: the hub sees no change
    blip = [item(1, "temp", GREEN, RED, WALL0 + 1.00), item(2, "temp", RED, GREEN, WALL0 + 1.02)]
    core.apply_live(live(3, 2, 1, 2, blip), MOUNT, book, 0.1, WALL0 + 1.1)
    journal = book.take_journal()
    levels = [(e.kind, e.time, e.old, e.new, e.replayed) for e in journal if e.kind == "level"]
    assert levels == [("level", WALL0 + 1.00, GREEN, RED, False), ("level", WALL0 + 1.02, RED, GREEN, False)]
    (alarm,) = book.alarms()
    assert (alarm.state, alarm.raised_at, alarm.max_level) == (RTN_UNACKED, WALL0 + 1.00, RED)  # latched
    assert core.have(AGENT) == 2
    assert core.stats.live == 2
    core.observe(AGENT, 7, *delta(4, 2), False, 0.2)  # in order after the TRANSITIONS: nothing to ask
    assert core.take_requests(0.2) == [(AGENT, 3, 2)]  # a confirmation only, no replay
    assert not core.replaying(AGENT)


def test_what_the_hub_journaled_live_after_a_gap_is_not_journaled_again_by_the_replay() -> None:
    core, book = ReplayCore(), book_with("temp", "fan", "door")
    core.observe(AGENT, 7, 1, proto.OutboxMark(OUTBOX, 1, 10), True, 0.0)  # followed from tseq 10
    # seq 2 (a DELTA: temp GREEN -> RED, tseq 11) and seq 3 (its live TRANSITIONS) are lost.
    # A DELTA after the gap: fan GREEN -> ORANGE, tseq 12, journaled live in the break (noted, as the server does).
    assert core.in_break(AGENT, 7, 4)
    mark = book.journal_mark()
    book.point_level(f"{MOUNT}/fan", AGENT, ORANGE, "ORANGE", 2.0, WALL0 + 12, None, 0.1, WALL0 + 12)
    core.note_live(AGENT, book.journal_since(mark))
    core.observe(AGENT, 7, *delta(4, 11), False, 0.1)
    core.apply_live(live(5, 4, 12, 12, []), MOUNT, book, 0.1, WALL0 + 12)  # tseq 12: reflected in seq 4
    core.observe(AGENT, 7, *delta(6, 12), False, 0.2)  # door RED and back between two flushes
    blip = [item(13, "door", GREEN, RED, WALL0 + 13), item(14, "door", RED, GREEN, WALL0 + 13.01)]
    core.apply_live(live(7, 6, 13, 14, blip), MOUNT, book, 0.2, WALL0 + 13)
    assert core.have(AGENT) == 10  # a break: have waits for the resync STATE
    core.observe(AGENT, 7, 8, proto.OutboxMark(OUTBOX, 1, 14), True, 0.3)  # the resync STATE
    assert core.take_requests(0.3) == [(AGENT, 11, 14)]
    everything = [
        item(11, "temp", GREEN, RED, WALL0 + 11),
        item(12, "fan", GREEN, ORANGE, WALL0 + 12),
        *blip,
    ]
    core.apply(replayed(9, 11, 14, everything), MOUNT, ORANGE, book, 0.4, WALL0 + 20)
    journal = book.take_journal()
    by_point = {path: [(e.time, e.new) for e in journal if e.kind == "level" and e.path == f"{MOUNT}/{path}"]
                for path in ("temp", "fan", "door")}  # fmt: skip
    assert by_point == {
        "temp": [(WALL0 + 11, RED)],  # lost with seq 2: replayed
        "fan": [(WALL0 + 12, ORANGE)],  # journaled live once, not again
        "door": [(WALL0 + 13, RED), (WALL0 + 13.01, GREEN)],  # the blip, live, once
    }
    assert core.stats.duplicates == 3
    assert core.have(AGENT) == 14
    assert not core.replaying(AGENT)


def test_entries_of_a_flush_the_hub_did_not_hear_in_full_are_left_to_the_replay() -> None:
    core, book = ReplayCore(), book_with("fan")
    core.observe(AGENT, 7, 1, proto.OutboxMark(OUTBOX, 1, 10), True, 0.0)
    # The flush's first DELTA (seq 2) is lost; its second (seq 3) and the live TRANSITIONS (seq 4) arrive.
    core.observe(AGENT, 7, *delta(3, 10), False, 0.1)
    core.apply_live(live(4, 2, 11, 12, []), MOUNT, book, 0.1, WALL0)  # 11..12 reflected, but seq 2 was lost
    core.observe(AGENT, 7, 5, proto.OutboxMark(OUTBOX, 1, 12), True, 0.2)
    assert core.take_requests(0.2) == [(AGENT, 11, 12)]
    core.apply(replayed(6, 11, 12, [item(11, "fan", GREEN, RED, WALL0), item(12, "fan", RED, GREEN, WALL0)]),
               MOUNT, GREEN, book, 0.3, WALL0)  # fmt: skip
    assert core.stats.replayed == 2  # not taken as journaled: the replay brought them


def test_live_transitions_of_an_agent_the_hub_does_not_follow_are_dropped() -> None:
    core, book = ReplayCore(), book_with("temp")
    core.apply_live(live(3, 2, 1, 2, [item(1, "temp", GREEN, RED, WALL0)]), MOUNT, book, 0.1, WALL0)
    assert core.stats.unsolicited == 1
    assert book.take_journal() == []


def test_the_live_key_is_left_out_of_a_replay_and_must_be_a_seq() -> None:
    import msgspec
    import pytest

    answer = replayed(9, 1, 1, [item(1, "temp", GREEN, RED, WALL0)])
    assert b"live" not in proto.encode(answer)  # a replay's bytes are as before (1.3 hubs before this read it)
    assert proto.decode(proto.encode(answer)).live is None  # type: ignore[union-attr]
    envelope = msgspec.msgpack.decode(proto.encode(live(3, 2, 1, 2, [])))
    envelope[7]["live"] = -1
    with pytest.raises(proto.ProtocolError):
        proto.decode(msgspec.msgpack.encode(envelope))


def test_a_big_window_goes_in_parts_by_count_and_by_bytes() -> None:
    outbox = Outbox(None, ["tcp://a:1"])
    policy = SendPolicy(AGENT, 0xABC, MOUNT, 1, SETTINGS, T0, outbox=outbox)
    policy.upstream(0, b"\x01" + proto.LIVE_TOPIC)
    source = FakeSource()
    for index in range(2500):  # 2,500 points flip once: nothing folded, three parts by count
        outbox.record(f"p{index}", GREEN, RED, "RED", 1.0, WALL0, WALL0)
    outbox.record("big", GREEN, RED, "RED", "x" * 600_000, WALL0, WALL0)  # and back: both folded, 1.2 MB
    outbox.record("big", RED, GREEN, "GREEN", "y" * 600_000, WALL0, WALL0)
    source.changes = [proto.PointEntry("p0", 1.0, RED, "RED", WALL0, 1.0)]
    parts = [m for _, m in policy.tick(T0 + 0.05, WALL0, source) if isinstance(m, proto.Transitions)]
    assert [(m.first, m.last, len(m.transitions)) for m in parts] == [
        (1, 1000, 0), (1001, 2000, 0), (2001, 2501, 1), (2502, 2502, 1),
    ]  # fmt: skip
    assert all(len(proto.encode(m)) < proto.MAX_FRAME_BYTES for m in parts)


def test_a_lost_live_transitions_is_asked_again_by_the_replay_that_closes_the_gap() -> None:
    core, book = ReplayCore(), book_with("temp")
    core.observe(AGENT, 7, 1, proto.OutboxMark(OUTBOX, 1, 0), True, 0.0)
    core.observe(AGENT, 7, 2, proto.OutboxMark(OUTBOX, 1, 2), False, 0.1, delta=True)  # its flush held a blip
    assert core.have(AGENT) == 0  # the DELTA's head waits for the next message: its live TRANSITIONS
    # seq 3, the live TRANSITIONS listing the blip, is lost; the next flush's DELTA shows the gap.
    core.observe(AGENT, 7, 4, proto.OutboxMark(OUTBOX, 1, 2), False, 0.2, delta=True)
    core.observe(AGENT, 7, 5, proto.OutboxMark(OUTBOX, 1, 2), True, 0.3)  # the resync STATE
    assert core.take_requests(0.3) == [(AGENT, 1, 2)]  # the blip is asked for, not skipped
    blip = [item(1, "temp", GREEN, RED, WALL0 + 1.00), item(2, "temp", RED, GREEN, WALL0 + 1.02)]
    core.apply(replayed(6, 1, 2, blip), MOUNT, GREEN, book, 0.4, WALL0 + 2)
    assert [e.time for e in book.take_journal() if e.kind == "level"] == [WALL0 + 1.00, WALL0 + 1.02]
    (alarm,) = book.alarms()
    assert alarm.state == RTN_UNACKED


def test_changes_a_delta_or_the_resync_state_journaled_after_a_gap_are_not_journaled_again() -> None:
    """Issue 17 §1 without live transitions (an agent before them, or their flush not heard in full): the hub
    notes what the book journals live in a break, as the server does, and the replay skips the same change."""
    core, book = ReplayCore(), book_with("temp", "fan")

    def applied(seq: int, head: int, state_end: bool, changes: list[tuple[str, int, float]]) -> None:
        noting = core.in_break(AGENT, 7, seq)
        mark = book.journal_mark()
        for path, level, at in changes:  # what HubState.apply does with the message's points
            book.point_level(f"{MOUNT}/{path}", AGENT, level, LABEL[level], 1.0, at, None, 0.0, at)
        if noting:
            core.note_live(AGENT, book.journal_since(mark))
        core.observe(AGENT, 7, seq, proto.OutboxMark(OUTBOX, 1, head), state_end, 0.0, delta=not state_end)

    applied(1, 10, True, [])  # followed from tseq 10
    applied(2, 10, False, [])
    applied(3, 10, False, [])  # have 10
    # seq 4 (temp GREEN -> RED, RED -> GREEN, GREEN -> RED: tseq 11..13) is lost.
    applied(5, 13, False, [("fan", ORANGE, WALL0 + 14)])  # after the gap: fan GREEN -> ORANGE, tseq 14
    applied(6, 14, True, [("temp", RED, WALL0 + 13)])  # the resync STATE shows temp RED
    assert core.take_requests(0.0) == [(AGENT, 11, 14)]
    answer = [
        item(11, "temp", GREEN, RED, WALL0 + 11),
        item(12, "temp", RED, GREEN, WALL0 + 12),
        item(13, "temp", GREEN, RED, WALL0 + 13),
        item(14, "fan", GREEN, ORANGE, WALL0 + 14),
    ]
    core.apply(replayed(7, 11, 14, answer), MOUNT, ORANGE, book, 0.1, WALL0 + 20)
    journal = book.take_journal()
    levels = [(e.path.rsplit("/", 1)[1], e.time, e.new, e.replayed) for e in journal if e.kind == "level"]
    assert levels == [
        ("fan", WALL0 + 14, ORANGE, False),  # live, from the DELTA after the gap
        ("temp", WALL0 + 13, RED, False),  # live, from the STATE: tseq 13
        ("temp", WALL0 + 11, RED, True),  # replayed: 11 and 12 only
        ("temp", WALL0 + 12, GREEN, True),
    ]
    assert core.have(AGENT) == 14
    assert not core.replaying(AGENT)
