"""The send policy with an outbox (protocol 1.3): marks on every message, REPLAY requests answered in paced batches."""

from __future__ import annotations

from test_send_policy import SETTINGS, T0, WALL0, FakeSource

from gsmon.agent.outbox import Outbox
from gsmon.common import protocol as proto
from gsmon.common.send_policy import REPLAY_RATE_PER_S, Outgoing, SendPolicy

HUBS = ["tcp://a:1", "tcp://b:1"]


def setup(transitions: int) -> tuple[SendPolicy, Outbox, FakeSource]:
    outbox = Outbox(None, HUBS)
    for index in range(transitions):
        outbox.record("P/p0", None if index == 0 else 0, 30 if index % 2 == 0 else 10, "", index, WALL0 + index, WALL0)
    return SendPolicy("ant", 0xABC, "GS1/Ant", 2, SETTINGS, T0, outbox=outbox), outbox, FakeSource()


def replay_of(out: list[Outgoing]) -> list[tuple[int, proto.Transitions]]:
    return [(link, msg) for link, msg in out if isinstance(msg, proto.Transitions)]


def test_every_message_carries_the_mark_read_before_its_points() -> None:
    policy, outbox, source = setup(3)
    policy.upstream(0, b"\x01")  # hub 0 (re)subscribed: a STATE
    out = policy.tick(T0 + 0.05, WALL0, source)
    marks = {msg.kind.name: msg.outbox for _, msg in out}  # type: ignore[attr-defined]
    assert marks == {
        "STATE": proto.OutboxMark(outbox.outbox_id, 1, 2),  # the first record was the point's first level
        "HEARTBEAT": proto.OutboxMark(outbox.outbox_id, 1, 2),
    }
    source.changes = [proto.PointEntry("P/p0", 1, 30, "RED", WALL0, 1.0)]
    assert outbox.record("P/p0", 30, 10, "GREEN", 1, WALL0 + 5, WALL0) == 3  # before the flush takes the change
    (delta, *_), *_ = [(msg, link) for link, msg in policy.tick(T0 + 1.2, WALL0, source) if msg.kind.name == "DELTA"]
    assert delta.outbox == proto.OutboxMark(outbox.outbox_id, 1, 3)  # type: ignore[attr-defined]


def test_a_replay_request_is_answered_in_batches_paced_and_confirms_what_came_before() -> None:
    policy, outbox, source = setup(2501)  # tseq 1..2500
    assert policy.upstream(1, b"\x01" + proto.replay_topic("ant", 11, 2400)) is None
    assert outbox.confirmed(1) == 10
    assert policy.upstream(0, b"\x01" + proto.replay_topic("other", 1, 5)) is None  # another agent's: ignored
    first = replay_of(policy.tick(T0 + 0.05, WALL0, source))
    ((link, batch),) = first
    assert (link, batch.first, batch.last, batch.done, len(batch.transitions)) == (1, 11, 1010, False, 1000)
    assert [t.tseq for t in batch.transitions] == list(range(11, 1011))
    assert replay_of(policy.tick(T0 + 0.10, WALL0, source)) == []  # paced: 1000 entries are 0.2 s at 5000/s
    pace = 1000 / REPLAY_RATE_PER_S
    ((_, second),) = replay_of(policy.tick(T0 + 0.05 + pace, WALL0, source))
    assert (second.first, second.last, second.done) == (1011, 2010, False)
    ((_, third),) = replay_of(policy.tick(T0 + 0.05 + 2 * pace, WALL0, source))
    assert (third.first, third.last, third.done, third.transitions[-1].tseq) == (2011, 2400, True, 2400)
    assert replay_of(policy.tick(T0 + 10, WALL0, source)) == []
    seqs = [msg.seq for msg in (batch, second, third)]
    assert seqs == sorted(seqs)  # they take the link's seq like every message


def test_a_request_below_the_tail_reports_the_lost_range_and_a_confirmation_sends_nothing() -> None:
    policy, outbox, source = setup(21)  # tseq 1..20
    outbox.confirm(0, 12, WALL0)
    outbox.confirm(1, 12, WALL0)  # both hubs had 1..12: dropped
    assert outbox.tail == 13
    policy.upstream(0, b"\x01" + proto.replay_topic("ant", 5, 20))
    ((_, batch),) = replay_of(policy.tick(T0 + 0.05, WALL0, source))
    assert (batch.lost, batch.first, batch.last, batch.done) == ((5, 12), 5, 20, True)
    assert [t.tseq for t in batch.transitions] == list(range(13, 21))
    policy.upstream(1, b"\x01" + proto.replay_topic("ant", 21, 20))  # everything: a confirmation only
    assert replay_of(policy.tick(T0 + 1, WALL0, source)) == []
    assert outbox.confirmed(1) == 20
