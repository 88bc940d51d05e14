"""Protocol 1.3, the agent's outbox: marks on STATE/DELTA/HEARTBEAT, TRANSITIONS, the REPLAY topic."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from gsmon.common import protocol as proto

HEADER: dict[str, Any] = {"sender": "rack1", "epoch": 5, "seq": 2, "sent_ns": 1}
MARK = proto.OutboxMark(0x5EED, 4, 9)


def envelope(kind: int, body: dict[str, Any]) -> bytes:
    return msgpack.packb([1, 3, kind, "rack1", 5, 2, 1, body], use_bin_type=True)


@pytest.mark.parametrize(
    "message",
    [
        proto.State(**HEADER, mount="GS1/Rack1", heartbeat_s=1.0, points=[], outbox=MARK),
        proto.Delta(**HEADER, points=[proto.PointEntry("temp", 20.5, 10, "GREEN", 1.5, 1.0)], outbox=MARK),
        proto.Heartbeat(**HEADER, mount="GS1/Rack1", heartbeat_s=1.0, point_count=1, outbox=MARK),
        proto.Transitions(
            **HEADER,
            outbox_id=1,
            first=1,
            last=3,
            done=False,
            transitions=[
                proto.TransitionItem(1, "level", "temp", 1.5, 10, 30, {"t": (1, 2)}, "RED"),
                proto.TransitionItem(3, "pending", "fan", 2.5, 10, 20, None, ""),
            ],
        ),
    ],
    ids=["state", "delta", "heartbeat", "transitions"],
)
def test_round_trips(message: proto.Message) -> None:
    assert proto.decode(proto.encode(message)) == message


def test_messages_without_a_mark_keep_their_1_2_bytes() -> None:
    beat = proto.Heartbeat(**HEADER, mount="GS1/Rack1", heartbeat_s=1.0, point_count=1)
    assert b"tseq_head" not in proto.encode(beat)
    assert proto.decode(proto.encode(beat)).outbox is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"mount": "M", "heartbeat_s": 1.0, "points": 1, "tseq_head": 3}, "go together"),
        ({"mount": "M", "heartbeat_s": 1.0, "points": 1, "outbox_id": 1, "tseq_tail": 9, "tseq_head": 3}, "at most"),
        ({"mount": "M", "heartbeat_s": 1.0, "points": 1, "outbox_id": 1, "tseq_tail": 1, "tseq_head": -3}, "tseq_head"),
    ],
)
def test_bad_marks_are_refused(body: dict[str, Any], words: str) -> None:
    with pytest.raises(proto.ProtocolError, match=words):
        proto.decode(envelope(3, body))


def _transitions(items: list[Any], **changes: Any) -> bytes:
    body = {"outbox_id": 1, "first": 1, "last": 5, "done": True, "transitions": items, **changes}
    return envelope(5, body)


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (_transitions([[1, "level", "a", 1.0, 10, 30, 1, "RED"]], first=3), "must increase within"),
        (_transitions([[2, "level", "a", 1.0, 10, 30, 1, "RED"], [2, "level", "a", 1.0, 30, 10, 1, "G"]]), "increase"),
        (_transitions([[1, "flap", "a", 1.0, 10, 30, 1, "RED"]]), r"transitions\[0\]\[1\]: Invalid enum value"),
        (_transitions([[1, "level", "a", float("nan"), 10, 30, 1, "RED"]]), "finite"),
        (_transitions([[1, "level", "a", 1.0, 10, True, 1, "RED"]]), "Expected `int`"),
        (_transitions([], first=7), "at most body.last"),
        (_transitions([], lost=[4, 2]), "from <= to"),
        (_transitions([[1, "level", "a", 1.0, 10, 30, {1: 2}, "RED"]]), "not a str"),
        (_transitions([[1, "level", "a", 1.0, 10, 30, 1, "RED"]] * 1001, last=2000), "more than the limit"),
    ],
    ids=["below-first", "repeated", "kind", "nan", "bool", "first", "lost", "key", "too-many"],
)
def test_bad_transitions_are_refused_with_one_line(frame: bytes, words: str) -> None:
    with pytest.raises(proto.ProtocolError, match=words):
        proto.decode(frame)


def test_the_replay_topic_names_the_agent_and_the_range() -> None:
    topic = proto.replay_topic("rack1", 5, 9)
    assert topic == b"\x00replay/rack1\x005-9"
    assert proto.parse_replay("rack1", b"\x01" + topic) == (5, 9)
    assert proto.parse_replay("rack", b"\x01" + topic) is None  # another agent's (a prefix of its name)
    assert proto.parse_replay("rack1", b"\x00" + topic) is None  # a cancellation
    assert proto.parse_replay("rack1", b"\x01\x00replay/rack1\x005") is None
    assert proto.parse_replay("rack1", b"\x01\x00replay/rack1\x000-3") is None  # tseqs start at 1
    assert proto.parse_replay("rack1", b"\x01" + proto.replay_topic("rack1", 4, 3)) == (4, 3)  # confirms only
