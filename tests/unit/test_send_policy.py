"""The agent's send policy (common/send_policy.py) on a made-up clock: which message goes to which hub, and when.

No sockets, no threads, no sleeps: ``now`` starts at T0 and moves by hand; the
points come from a fake source.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from gsmon.common import protocol as proto
from gsmon.common.send_policy import Outgoing, PublisherSettings, SendPolicy

T0 = 500.0
WALL0 = 1_700_000_000.0
SETTINGS = PublisherSettings(flush_interval_s=0.05, heartbeat_interval_s=1.0, state_interval_s=30.0)
SIZE = proto.MAX_POINTS_PER_MESSAGE


def entry(index: int) -> proto.PointEntry:
    return proto.PointEntry(f"P/p{index}", index, 0, "", WALL0, 1.0)


class FakeSource:
    """A Monitor stand-in: ``changes`` are taken once, ``points``/``parents`` make the full state."""

    def __init__(self, points: int = 2, parents: int = 1) -> None:
        self.points = [entry(index) for index in range(points)]
        self.parents = [f"P{index}" for index in range(parents)]
        self.changes: list[proto.PointEntry] = []
        self.full_states = 0
        self.unpolled: list[str] = []

    def take_changes(self) -> list[proto.PointEntry]:
        changes, self.changes = self.changes, []
        return changes

    def full_state(self) -> tuple[list[proto.PointEntry], list[str]]:
        self.full_states += 1
        return list(self.points), list(self.parents)

    def unpolled_paths(self) -> list[str]:
        return list(self.unpolled)

    def point_count(self) -> int:
        return len(self.points)


def policy(links: int = 2, settings: PublisherSettings = SETTINGS) -> SendPolicy:
    return SendPolicy("ant", 0xABC, "GS1/Ant", links, settings, T0)


def tick(p: SendPolicy, source: FakeSource, after_s: float) -> list[Outgoing]:
    return p.tick(T0 + after_s, WALL0 + after_s, source)


def kinds(out: list[Outgoing]) -> list[tuple[int, str]]:
    return [(link, message.kind.name) for link, message in out]


def test_nothing_is_due_before_the_first_flush() -> None:
    """Until the first flush interval has passed, nothing is sent; next_due says when the flush is."""
    p, source = policy(), FakeSource()
    assert p.next_due() == pytest.approx(T0 + 0.05)
    assert tick(p, source, 0.01) == []
    assert source.full_states == 0


def test_the_first_flush_sends_a_heartbeat_to_every_link() -> None:
    """A link never sent anything is owed a heartbeat at the first flush, with the mount and point count."""
    p, source = policy(), FakeSource(points=3)
    out = tick(p, source, 0.05)
    assert kinds(out) == [(0, "HEARTBEAT"), (1, "HEARTBEAT")]
    beat = out[0][1]
    assert isinstance(beat, proto.Heartbeat)
    assert (beat.sender, beat.epoch, beat.seq, beat.mount, beat.point_count) == ("ant", 0xABC, 1, "GS1/Ant", 3)
    assert beat.heartbeat_s == 1.0
    assert beat.sent_ns == int((WALL0 + 0.05) * 1e9)
    assert p.next_due() == pytest.approx(T0 + 0.1)


@pytest.mark.parametrize("topic", [b"", proto.RESYNC_TOPIC_PREFIX + b"ant"])
def test_a_hub_subscription_gets_that_link_a_state_and_only_that_link(topic: bytes) -> None:
    """A subscription to everything (a hub (re)connected) or to our resync topic: a STATE to that link alone."""
    p, source = policy(), FakeSource(points=2, parents=1)
    assert p.upstream(1, b"\x01" + topic) is None
    assert p.wants_state(1)
    assert not p.wants_state(0)
    out = tick(p, source, 0.01)
    assert kinds(out) == [(1, "STATE")]
    state = out[0][1]
    assert isinstance(state, proto.State)
    assert (state.seq, state.part, state.parts, state.mount, state.heartbeat_s) == (1, 0, 1, "GS1/Ant", 1.0)
    assert state.points == source.points
    assert state.parents == ["P0"]
    assert not p.wants_state(1)
    assert p.points_sent == 2


@pytest.mark.parametrize(
    "frame",
    [b"\x00", b"\x01other", proto.RESYNC_TOPIC_PREFIX + b"ant", b"\x01" + proto.RESYNC_TOPIC_PREFIX + b"another"],
)
def test_other_upstream_frames_ask_for_nothing(frame: bytes) -> None:
    """Cancellations, other topics, another agent's resync topic: no STATE."""
    p = policy()
    assert p.upstream(0, frame) is None
    assert not p.wants_state(0)
    assert tick(p, FakeSource(), 0.01) == []


def test_a_notice_for_this_agent_returns_the_hubs_reason() -> None:
    """A NOTICE naming this agent gives the hub's words (to log); one for another agent gives nothing."""
    p = policy()
    assert p.upstream(0, b"\x01" + proto.notice_topic("ant", "mount refused: bad")) == "mount refused: bad"
    assert p.upstream(0, b"\x01" + proto.notice_topic("other", "nope")) is None
    assert not p.wants_state(0)


def test_every_state_interval_every_link_gets_a_state() -> None:
    """state_interval_s after the start (and after each round), a STATE goes to every link."""
    p, source = policy(), FakeSource()
    assert p.next_due() < T0 + 30
    out = tick(p, source, 30.0)
    assert [k for k in kinds(out) if k[1] == "STATE"] == [(0, "STATE"), (1, "STATE")]
    assert source.full_states == 1  # one full state read for every link
    assert [k for k in kinds(tick(p, source, 59.9)) if k[1] == "STATE"] == []
    assert [k for k in kinds(tick(p, source, 60.0)) if k[1] == "STATE"] == [(0, "STATE"), (1, "STATE")]


def test_changes_go_to_every_link_as_one_delta_each_at_the_flush() -> None:
    """Points polled since the last flush go out as the same DELTA to every link, each with its own seq."""
    p, source = policy(), FakeSource()
    p.upstream(0, b"\x01")  # link 0 has had a STATE: its seq is one ahead
    tick(p, source, 0.01)
    source.changes = [entry(7), entry(8)]
    assert tick(p, source, 0.04) == []  # not yet the flush
    out = tick(p, source, 0.05)
    deltas = [(link, msg) for link, msg in out if isinstance(msg, proto.Delta)]
    assert [(link, msg.seq, msg.points) for link, msg in deltas] == [
        (0, 2, [entry(7), entry(8)]),
        (1, 1, [entry(7), entry(8)]),
    ]
    assert p.points_sent == 2 + 2  # the STATE's two points, then two changed points (once for all links)


def test_no_heartbeat_to_a_link_sent_something_within_the_interval() -> None:
    """A heartbeat goes only to a link that was sent nothing for heartbeat_interval_s."""
    p, source = policy(), FakeSource()
    tick(p, source, 0.05)  # heartbeats to both at T0 + 0.05
    p.upstream(1, b"\x01")
    tick(p, source, 0.5)  # a STATE to link 1 at T0 + 0.5
    assert kinds(tick(p, source, 1.05)) == [(0, "HEARTBEAT")]  # link 1 was sent its STATE 0.55 s ago
    assert kinds(tick(p, source, 1.5)) == [(1, "HEARTBEAT")]
    source.changes = [entry(1)]
    assert kinds(tick(p, source, 2.5)) == [(0, "DELTA"), (1, "DELTA")]  # a DELTA is a heartbeat too
    assert kinds(tick(p, source, 3.45)) == []
    assert kinds(tick(p, source, 3.5)) == [(0, "HEARTBEAT"), (1, "HEARTBEAT")]


def test_a_big_state_is_split_in_numbered_parts() -> None:
    """More points (or parents) than one message holds: parts of at most MAX_POINTS_PER_MESSAGE, numbered."""
    p, source = policy(links=1), FakeSource(points=2 * SIZE + 1, parents=3 * SIZE)
    p.upstream(0, b"\x01")
    out = tick(p, source, 0.01)
    states = [msg for _, msg in out]
    assert all(isinstance(msg, proto.State) for msg in states)
    assert [(m.part, m.parts, len(m.points), len(m.parents)) for m in states if isinstance(m, proto.State)] == [
        (0, 3, SIZE, SIZE),
        (1, 3, SIZE, SIZE),
        (2, 3, 1, SIZE),
    ]
    assert [m.seq for m in states] == [1, 2, 3]
    assert p.points_sent == 2 * SIZE + 1


def test_an_agent_without_points_still_sends_a_one_part_state() -> None:
    """An empty state is one part: the hub learns the mount."""
    p, source = policy(links=1), FakeSource(points=0, parents=0)
    p.upstream(0, b"\x01")
    (only,) = tick(p, source, 0.01)
    assert isinstance(only[1], proto.State)
    assert (only[1].part, only[1].parts, only[1].points, only[1].parents) == (0, 1, [], [])


def test_a_state_names_the_points_not_polled_yet_and_encodes_them_only_when_there_are_some() -> None:
    """A restarted agent's slow point has no entry yet: the STATE names it so the hub keeps it."""
    p, source = policy(links=1), FakeSource(points=1, parents=0)
    source.unpolled = ["Rack/Slow"]
    p.upstream(0, b"\x01")
    ((_, state),) = tick(p, source, 0.01)
    assert isinstance(state, proto.State)
    assert state.unpolled == ["Rack/Slow"]
    decoded = proto.decode(proto.encode(state))
    assert isinstance(decoded, proto.State)
    assert decoded.unpolled == ["Rack/Slow"]
    plain = replace(state, unpolled=[])
    assert b"unpolled" in proto.encode(state)
    assert b"unpolled" not in proto.encode(plain)


def test_a_big_delta_is_split_and_each_batch_goes_to_every_link() -> None:
    """Changes beyond one message make several DELTAs, batch by batch, each batch to every link in turn."""
    p, source = policy(), FakeSource()
    source.changes = [entry(index) for index in range(SIZE + 5)]
    out = [(link, msg) for link, msg in tick(p, source, 0.05) if isinstance(msg, proto.Delta)]
    assert [(link, msg.seq, len(msg.points)) for link, msg in out] == [(0, 1, SIZE), (1, 1, SIZE), (0, 2, 5), (1, 2, 5)]


def test_bye_goes_to_every_link_with_its_next_seq() -> None:
    """On stop each link gets a BYE that continues its own numbering."""
    p, source = policy(), FakeSource()
    p.upstream(0, b"\x01")
    tick(p, source, 0.05)  # link 0: its STATE (seq 1), which also spares it a heartbeat; link 1: a heartbeat (1)
    out = p.bye(T0 + 1, WALL0 + 1)
    assert kinds(out) == [(0, "BYE"), (1, "BYE")]
    assert [msg.seq for _, msg in out] == [2, 2]


def test_seqs_are_per_link_and_consecutive_from_one() -> None:
    """Whatever is sent, each link's seqs are 1, 2, 3 ... with no gap and no repeat."""
    p, source = policy(links=3), FakeSource(points=SIZE + 1)
    seen: dict[int, list[int]] = {0: [], 1: [], 2: []}
    for step in range(1, 400):
        if step % 37 == 0:
            p.upstream(step % 3, b"\x01")
        if step % 5 == 0:
            source.changes = [entry(step)]
        for link, msg in tick(p, source, step * 0.05):
            seen[link].append(msg.seq)
    for link, msg in p.bye(T0 + 100, WALL0 + 100):
        seen[link].append(msg.seq)
    for seqs in seen.values():
        assert seqs == list(range(1, len(seqs) + 1))


def test_a_policy_needs_a_link() -> None:
    with pytest.raises(ValueError, match="link"):
        policy(links=0)
