"""The wire protocol: golden bytes, round-trips, what values become, and malformed input."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any
from zoneinfo import ZoneInfo

import msgpack
import msgpack.fallback
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsmon.common import protocol as proto
from gsmon.common.protocol import PointEntry, ProtocolError

EPOCH = 0x1234_5678_9ABC
SENT_NS = 1_700_000_000_000_000_000
HEADER: dict[str, Any] = {"sender": "agent-1", "epoch": EPOCH, "seq": 7, "sent_ns": SENT_NS}
HUB_EPOCH = 0xABCDEF
POLLED = 1_700_000_000.25

# -- golden bytes ---------------------------------------------------------

# A NODE payload of a parent, as a snapshot chunk carries it.
PARENT_PAYLOAD: dict[str, Any] = {
    "v": 1,
    "epoch": HUB_EPOCH,
    "seq": 42,
    "kind": "parent",
    "alert": 30,
    "alertstr": "RED",
    "stale": False,
    "value": None,
    "agent": None,
    "polled_at": None,
    "received_at": None,
    "dt": None,
}
ENDPOINTS = {"agents": "tcp://hub:7761", "subscribers": "tcp://hub:7762", "query": "tcp://hub:7763"}
HOUR = dt.timedelta(hours=1)
OSLO_NOON = dt.datetime(2026, 11, 28, 12, 0, 0, 500000, tzinfo=ZoneInfo("Europe/Oslo"))

# name: (message, golden hex, the envelope as plain msgpack must read, written from the docstring)
GOLDEN: dict[str, tuple[proto.Message, str, list[Any]]] = {
    "STATE": (
        proto.State(
            **HEADER,
            mount="GS1/Antenna2",
            heartbeat_s=1.5,
            points=[
                PointEntry("Azimuth", 12.5, 10, "GREEN", POLLED, 0.5),
                PointEntry("Drive/Mode", "track", 0, "", POLLED, None),
            ],
            parents=["Drive"],
            part=0,
            parts=1,
        ),
        "98010401a76167656e742d31cf0000123456789abc07cf17979cfe362a000086a56d6f756e74ac4753312f416e74656e6e6132"
        "ab6865617274626561745f73cb3ff8000000000000a6706f696e74739296a7417a696d757468cb40290000000000000aa54752"
        "45454ecb41d954fc40100000cb3fe000000000000096aa44726976652f4d6f6465a5747261636b00a0cb41d954fc40100000c0"
        "a7706172656e747391a54472697665a47061727400a5706172747301",
        [
            1,
            4,  # PROTOCOL_MINOR (1.4)
            1,
            "agent-1",
            EPOCH,
            7,
            SENT_NS,
            {
                "mount": "GS1/Antenna2",
                "heartbeat_s": 1.5,
                "points": [
                    ["Azimuth", 12.5, 10, "GREEN", POLLED, 0.5],
                    ["Drive/Mode", "track", 0, "", POLLED, None],
                ],
                "parents": ["Drive"],
                "part": 0,
                "parts": 1,
            },
        ],
    ),
    "DELTA": (
        proto.Delta(**HEADER, points=[PointEntry("Drive/Temp", 41, 20, "ORANGE", 1_700_000_001.0, 2.0)]),
        "98010402a76167656e742d31cf0000123456789abc07cf17979cfe362a000081a6706f696e74739196aa44726976652f54656d"
        "702914a64f52414e4745cb41d954fc40400000cb4000000000000000",
        [1, 4, 2, "agent-1", EPOCH, 7, SENT_NS, {"points": [["Drive/Temp", 41, 20, "ORANGE", 1_700_000_001.0, 2.0]]}],
    ),
    "DELTA_EXT": (
        proto.Delta(**HEADER, points=[PointEntry("Clock", (OSLO_NOON, b"\x01"), 0, "", POLLED, None)]),
        "98010402a76167656e742d31cf0000123456789abc07cf17979cfe362a000081a6706f696e74739196a5436c6f636bc7340292"
        "c72d01323032362d31312d32385431323a30303a30302e3530303030302b30313a30305b4575726f70652f4f736c6f5dc40101"
        "00a0cb41d954fc40100000c0",
        [
            1,
            4,  # PROTOCOL_MINOR (1.4)
            2,
            "agent-1",
            EPOCH,
            7,
            SENT_NS,
            {
                "points": [
                    [
                        "Clock",
                        # ext 2 (tuple) holding a packed array: ext 1 (datetime text) and bin
                        msgpack.ExtType(
                            2,
                            msgpack.packb(
                                [msgpack.ExtType(1, b"2026-11-28T12:00:00.500000+01:00[Europe/Oslo]"), b"\x01"],
                                use_bin_type=True,
                            ),
                        ),
                        0,
                        "",
                        POLLED,
                        None,
                    ]
                ]
            },
        ],
    ),
    "HEARTBEAT": (
        proto.Heartbeat(**HEADER, mount="GS1/Antenna2", heartbeat_s=1.5, point_count=3),
        "98010403a76167656e742d31cf0000123456789abc07cf17979cfe362a000083a56d6f756e74ac4753312f416e74656e6e6132"
        "ab6865617274626561745f73cb3ff8000000000000a6706f696e747303",
        [1, 4, 3, "agent-1", EPOCH, 7, SENT_NS, {"mount": "GS1/Antenna2", "heartbeat_s": 1.5, "points": 3}],
    ),
    "HEARTBEAT_OUTBOX": (
        proto.Heartbeat(
            **HEADER, mount="GS1/Antenna2", heartbeat_s=1.5, point_count=3, outbox=proto.OutboxMark(0x5EED, 3, 9)
        ),
        "98010403a76167656e742d31cf0000123456789abc07cf17979cfe362a000086a56d6f756e74ac4753312f416e74656e6e6132ab"
        "6865617274626561745f73cb3ff8000000000000a6706f696e747303a96f7574626f785f6964cd5eeda9747365715f7461696c03"
        "a9747365715f6865616409",
        [
            1,
            4,  # PROTOCOL_MINOR (1.4)
            3,
            "agent-1",
            EPOCH,
            7,
            SENT_NS,
            {
                "mount": "GS1/Antenna2",
                "heartbeat_s": 1.5,
                "points": 3,
                "outbox_id": 0x5EED,
                "tseq_tail": 3,
                "tseq_head": 9,
            },
        ],
    ),
    "TRANSITIONS": (
        proto.Transitions(
            **HEADER,
            outbox_id=0x5EED,
            first=3,
            last=4,
            done=True,
            transitions=[proto.TransitionItem(4, "level", "Drive/Temp", POLLED, 10, 30, 91.5, "RED")],
            lost=(3, 3),
        ),
        "98010405a76167656e742d31cf0000123456789abc07cf17979cfe362a000086a96f7574626f785f6964cd5eeda5666972737403"
        "a46c61737404a4646f6e65c3ab7472616e736974696f6e73919804a56c6576656caa44726976652f54656d70cb41d954fc401000"
        "000a1ecb4056e00000000000a3524544a46c6f7374920303",
        [
            1,
            4,  # PROTOCOL_MINOR (1.4)
            5,
            "agent-1",
            EPOCH,
            7,
            SENT_NS,
            {
                "outbox_id": 0x5EED,
                "first": 3,
                "last": 4,
                "done": True,
                "transitions": [[4, "level", "Drive/Temp", POLLED, 10, 30, 91.5, "RED"]],
                "lost": [3, 3],
            },
        ],
    ),
    "BYE": (
        proto.Bye(**HEADER),
        "98010404a76167656e742d31cf0000123456789abc07cf17979cfe362a000080",
        [1, 4, 4, "agent-1", EPOCH, 7, SENT_NS, {}],
    ),
    "HELLO": (
        proto.Hello(**HEADER, request_id=1),
        "9801040aa76167656e742d31cf0000123456789abc07cf17979cfe362a000081aa726571756573745f696401",
        [1, 4, 10, "agent-1", EPOCH, 7, SENT_NS, {"request_id": 1}],
    ),
    "SNAPSHOT_REQUEST": (
        proto.SnapshotRequest(**HEADER, request_id=2, prefix="GS1/"),
        "9801040ba76167656e742d31cf0000123456789abc07cf17979cfe362a000082aa726571756573745f696402a6707265666978"
        "a44753312f",
        [1, 4, 11, "agent-1", EPOCH, 7, SENT_NS, {"request_id": 2, "prefix": "GS1/"}],
    ),
    "INFO": (
        proto.Info(**HEADER, request_id=1, endpoints=ENDPOINTS, heartbeat_s=1.0, version="0.1.0"),
        "98010414a76167656e742d31cf0000123456789abc07cf17979cfe362a000084aa726571756573745f696401a9656e64706f69"
        "6e747383a66167656e7473ae7463703a2f2f6875623a37373631ab7375627363726962657273ae7463703a2f2f6875623a3737"
        "3632a57175657279ae7463703a2f2f6875623a37373633ab6865617274626561745f73cb3ff0000000000000a776657273696f"
        "6ea5302e312e30",
        [
            1,
            4,  # PROTOCOL_MINOR (1.4)
            20,
            "agent-1",
            EPOCH,
            7,
            SENT_NS,
            {"request_id": 1, "endpoints": ENDPOINTS, "heartbeat_s": 1.0, "version": "0.1.0"},
        ],
    ),
    "SNAPSHOT_CHUNK": (
        proto.SnapshotChunk(**HEADER, request_id=2, nodes=[("GS1/Antenna2", PARENT_PAYLOAD)]),
        "98010415a76167656e742d31cf0000123456789abc07cf17979cfe362a000082aa726571756573745f696402a56e6f64657391"
        "92ac4753312f416e74656e6e61328ca17601a565706f6368ce00abcdefa37365712aa46b696e64a6706172656e74a5616c6572"
        "741ea8616c657274737472a3524544a57374616c65c2a576616c7565c0a56167656e74c0a9706f6c6c65645f6174c0ab726563"
        "65697665645f6174c0a26474c0",
        [1, 4, 21, "agent-1", EPOCH, 7, SENT_NS, {"request_id": 2, "nodes": [["GS1/Antenna2", PARENT_PAYLOAD]]}],
    ),
    "SNAPSHOT_END": (
        proto.SnapshotEnd(**HEADER, request_id=2, seq_at=42, count=1, published=17),
        "98010416a76167656e742d31cf0000123456789abc07cf17979cfe362a000084aa726571756573745f696402a37365712aa563"
        "6f756e7401a97075626c697368656411",
        [1, 4, 22, "agent-1", EPOCH, 7, SENT_NS, {"request_id": 2, "seq": 42, "count": 1, "published": 17}],
    ),
    "ERROR": (
        proto.Error(**HEADER, request_id=3, message="no such prefix"),
        "98010417a76167656e742d31cf0000123456789abc07cf17979cfe362a000082aa726571756573745f696403a76d6573736167"
        "65ae6e6f207375636820707265666978",
        [1, 4, 23, "agent-1", EPOCH, 7, SENT_NS, {"request_id": 3, "message": "no such prefix"}],
    ),
    "COMMAND": (
        proto.Command(**HEADER, request_id=4, command="forget", args={"agent": "rack1"}, user="ops"),
        "9801040ca76167656e742d31cf0000123456789abc07cf17979cfe362a000084aa726571756573745f696404a7636f6d6d616e"
        "64a6666f72676574a46172677381a56167656e74a57261636b31a475736572a36f7073",
        [
            1,
            4,  # PROTOCOL_MINOR (1.4)
            12,
            "agent-1",
            EPOCH,
            7,
            SENT_NS,
            {"request_id": 4, "command": "forget", "args": {"agent": "rack1"}, "user": "ops"},
        ],
    ),
    "COMMAND_RESULT": (
        proto.CommandResult(
            **HEADER,
            request_id=4,
            ok=True,
            message="forgot agent 'rack1' and its 3 points",
            result={"agent": "rack1", "points": 3},
        ),
        "98010418a76167656e742d31cf0000123456789abc07cf17979cfe362a000084aa726571756573745f696404a26f6bc3a76d65"
        "7373616765d925666f72676f74206167656e7420277261636b312720616e6420697473203320706f696e7473a6726573756c74"
        "82a56167656e74a57261636b31a6706f696e747303",
        [
            1,
            4,  # PROTOCOL_MINOR (1.4)
            24,
            "agent-1",
            EPOCH,
            7,
            SENT_NS,
            {
                "request_id": 4,
                "ok": True,
                "message": "forgot agent 'rack1' and its 3 points",
                "result": {"agent": "rack1", "points": 3},
            },
        ],
    ),
    "PAIR_SYNC": (
        proto.PairSync(
            **HEADER,
            request_id=5,
            hub_id="hub-a",
            head=2,
            seen=1,
            ops=[proto.PairOp("hub-a", 2, "ack", 1_700_000_000.5, {"ids": [4503599627370497], "by": "ops"})],
            digest=(3, 12345),
            notifying=True,
        ),
        "9801041ea76167656e742d31cf0000123456789abc07cf17979cfe362a000088aa726571756573745f696405a66875625f6964"
        "a56875622d61a46865616402a47365656e01a36f70739195a56875622d6102a361636bcb41d954fc4020000082a369647391cf"
        "0010000000000001a26279a36f7073a66469676573749203cd3039a466756c6cc2a96e6f74696679696e67c3",
        [
            1,
            4,  # PROTOCOL_MINOR (1.4)
            30,
            "agent-1",
            EPOCH,
            7,
            SENT_NS,
            {
                "request_id": 5,
                "hub_id": "hub-a",
                "head": 2,
                "seen": 1,
                "ops": [["hub-a", 2, "ack", 1_700_000_000.5, {"ids": [4503599627370497], "by": "ops"}]],
                "digest": [3, 12345],
                "full": False,
                "notifying": True,
            },
        ],
    ),
    "PAIR_SYNC_REPLY": (
        proto.PairSyncReply(**HEADER, request_id=5, hub_id="hub-b", head=1, seen=2),
        "9801041fa76167656e742d31cf0000123456789abc07cf17979cfe362a000088aa726571756573745f696405a66875625f6964"
        "a56875622d62a46865616401a47365656e02a36f707390a6646967657374c0a466756c6cc2a96e6f74696679696e67c2",
        [
            1,
            4,  # PROTOCOL_MINOR (1.4)
            31,
            "agent-1",
            EPOCH,
            7,
            SENT_NS,
            {
                "request_id": 5,
                "hub_id": "hub-b",
                "head": 1,
                "seen": 2,
                "ops": [],
                "digest": None,
                "full": False,
                "notifying": False,
            },
        ],
    ),
}

NODE_UPDATE = proto.NodeUpdate(
    "GS1/Antenna2/Azimuth",
    HUB_EPOCH,
    43,
    "point",
    50,
    "STALE",
    True,
    12.5,
    "agent-1",
    POLLED,
    1_700_000_000.5,
    0.5,
    30,  # reported_alert: it was RED before it went stale
    True,  # liveness_unknown
)
NODE_GOLDEN = (
    "8ea17601a565706f6368ce00abcdefa37365712ba46b696e64a5706f696e74a5616c65727432a8616c657274737472a55354414c"
    "45a57374616c65c3a576616c7565cb4029000000000000a56167656e74a76167656e742d31a9706f6c6c65645f6174cb41d954fc"
    "40100000ab72656365697665645f6174cb41d954fc40200000a26474cb3fe0000000000000ae7265706f727465645f616c657274"
    "1eb06c6976656e6573735f756e6b6e6f776ec3"
)
NODE_PLAIN = {
    "v": 1,
    "epoch": HUB_EPOCH,
    "seq": 43,
    "kind": "point",
    "alert": 50,
    "alertstr": "STALE",
    "stale": True,
    "value": 12.5,
    "agent": "agent-1",
    "polled_at": POLLED,
    "received_at": 1_700_000_000.5,
    "dt": 0.5,
    "reported_alert": 30,
    "liveness_unknown": True,
}
HUB_BEAT = proto.HubHeartbeat(HUB_EPOCH, 43, 1.0, 1_700_000_002.0, {"GS1/": 17, "": 43})
HUB_BEAT_GOLDEN = (
    "86a17601a565706f6368ce00abcdefa37365712baa696e74657276616c5f73cb3ff0000000000000a773656e745f6174cb41d954fc"
    "40800000a97075626c697368656482a44753312f11a02b"
)
HUB_BEAT_PLAIN = {
    "v": 1,
    "epoch": HUB_EPOCH,
    "seq": 43,
    "interval_s": 1.0,
    "sent_at": 1_700_000_002.0,
    "published": {"GS1/": 17, "": 43},
}


def plain(data: bytes) -> Any:
    """What any msgpack reader sees (ext types left as ExtType)."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


@pytest.mark.parametrize("name", list(GOLDEN))
def test_encoder_output_is_the_committed_golden_bytes(name: str) -> None:
    """Each message kind encodes to exactly the committed bytes (a wire change fails here)."""
    message, golden, _ = GOLDEN[name]
    assert proto.encode(message).hex() == golden


@pytest.mark.parametrize("name", list(GOLDEN))
def test_golden_bytes_follow_the_documented_envelope(name: str) -> None:
    """A plain msgpack reader sees [major, minor, kind, sender, epoch, seq, sent_ns, body] with the spec's keys."""
    _, golden, expected = GOLDEN[name]
    unpacked = plain(bytes.fromhex(golden))
    assert unpacked == expected
    assert list(unpacked[7]) == list(expected[7])  # key order too: the golden bytes fix it


@pytest.mark.parametrize("name", list(GOLDEN))
def test_golden_bytes_decode_to_the_message(name: str) -> None:
    """Decoding the golden bytes gives back the message that was encoded."""
    message, golden, _ = GOLDEN[name]
    assert proto.decode(bytes.fromhex(golden)) == message


def test_golden_kind_numbers_are_the_documented_ones() -> None:
    """Kind ids on the wire are the ones the docstring's tables give."""
    assert {kind.name: int(kind) for kind in proto.MsgKind} == {
        "STATE": 1,
        "DELTA": 2,
        "HEARTBEAT": 3,
        "BYE": 4,
        "TRANSITIONS": 5,
        "UPSTREAM_RESULT": 7,
        "HELLO": 10,
        "SNAPSHOT_REQUEST": 11,
        "COMMAND": 12,
        "INFO": 20,
        "SNAPSHOT_CHUNK": 21,
        "SNAPSHOT_END": 22,
        "ERROR": 23,
        "COMMAND_RESULT": 24,
        "PAIR_SYNC": 30,
        "PAIR_SYNC_REPLY": 31,
    }


def test_node_payload_golden_bytes_and_keys() -> None:
    """A NODE is [path topic, payload map] with exactly the documented keys, byte for byte."""
    topic, payload = proto.encode_node(NODE_UPDATE)
    assert topic == b"GS1/Antenna2/Azimuth"
    assert payload.hex() == NODE_GOLDEN
    assert plain(payload) == NODE_PLAIN
    assert list(plain(payload)) == list(NODE_PLAIN)
    assert proto.decode_hub_message(topic, payload) == NODE_UPDATE


def test_hub_heartbeat_golden_bytes_and_keys() -> None:
    """A HUB_HEARTBEAT goes on the NUL-led topic with v, epoch, seq, interval_s, sent_at, published."""
    topic, payload = proto.encode_hub_heartbeat(HUB_BEAT)
    assert topic == proto.HUB_HEARTBEAT_TOPIC == b"\x00hub/heartbeat"
    assert payload.hex() == HUB_BEAT_GOLDEN
    assert plain(payload) == HUB_BEAT_PLAIN
    assert proto.decode_hub_message(topic, payload) == HUB_BEAT


def test_packed_nodes_encode_like_nodes() -> None:
    """A chunk of already-packed [path, payload] items is byte-identical to one built from nodes."""
    payload = msgpack.packb(PARENT_PAYLOAD)
    item = msgpack.packb(["GS1/Antenna2", PARENT_PAYLOAD])
    assert proto.snapshot_item("GS1/Antenna2", payload) == item
    chunk = proto.encode_snapshot_chunk(**HEADER, request_id=2, items=[item])
    assert chunk.hex() == GOLDEN["SNAPSHOT_CHUNK"][1]
    assert payload in item


# -- round-trips ----------------------------------------------------------


def entry(value: Any, path: str = "P") -> PointEntry:
    return PointEntry(path, value, 0, "", POLLED, 1.0)


def round_trip(value: Any) -> Any:
    """Send a value in a DELTA and return what the decoder makes of it."""
    frame = proto.encode(proto.Delta(**HEADER, points=[entry(value)]))
    message = proto.decode(frame)
    assert isinstance(message, proto.Delta)
    return message.points[0].value


def _zone_key(value: dt.datetime) -> str | None:
    key = getattr(value.tzinfo, "key", None)
    return key if isinstance(key, str) else None


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (NaN equals NaN, -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1.0, a) == math.copysign(1.0, b))
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[key], b[key]) for key in a)
    if isinstance(a, dt.datetime):
        return (
            a.replace(tzinfo=None) == b.replace(tzinfo=None)
            and a.utcoffset() == b.utcoffset()
            and _zone_key(a) == _zone_key(b)
        )
    return bool(a == b)


# CPython 3.11's fromisoformat reads an offset below one second ("+00:00:00.000001") as UTC: not ours to fix.
OFFSETS = (
    st.timedeltas(
        min_value=-dt.timedelta(hours=23, minutes=59, seconds=59, microseconds=999999),
        max_value=dt.timedelta(hours=23, minutes=59, seconds=59, microseconds=999999),
    )
    .filter(lambda offset: not dt.timedelta(0) < abs(offset) < dt.timedelta(seconds=1))
    .map(dt.timezone)
)
# Away from the ends of the calendar, where moving an instant into another zone overflows.
DATE_MIN, DATE_MAX = dt.datetime(2, 1, 1), dt.datetime(9998, 12, 31)  # noqa: DTZ001
DATETIMES = st.one_of(
    st.datetimes(),
    st.datetimes(min_value=DATE_MIN, max_value=DATE_MAX, timezones=OFFSETS),
    st.datetimes(min_value=DATE_MIN, max_value=DATE_MAX, timezones=st.timezones(), allow_imaginary=False),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(),
    st.text(),
    st.binary(),
    DATETIMES,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)


@given(VALUES)
@settings(max_examples=200, deadline=None)
def test_values_keep_their_types_end_to_end(value: Any) -> None:
    """Every carriable value (nestings included) comes back equal and of the same type."""
    assert same(round_trip(value), value)


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        2**64 - 1,
        -(2**63),
        math.nan,
        math.inf,
        -math.inf,
        -0.0,
        True,
        False,
        None,
        "",
        "Point 1 ✓",
        b"\x00\xff",
        [],
        (),
        {},
        (1, (2, (3,))),
        {"a": [1, (2.5, None)], "b": {"c": b"x"}},
        dt.datetime(2026, 11, 28, 12, 0),  # noqa: DTZ001
        dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 28, 12, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=-3, minutes=-30))),
        dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=1, seconds=1, microseconds=1))),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone(-dt.timedelta(hours=23, microseconds=1))),
        OSLO_NOON,
        dt.datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Oslo")),  # the second 02:30
        dt.datetime(1900, 1, 1, tzinfo=ZoneInfo("Europe/Amsterdam")),  # an offset with seconds (LMT)
    ],
    ids=repr,
)
def test_edge_values_round_trip(value: Any) -> None:
    """Extremes of every carriable type round-trip exactly."""
    assert same(round_trip(value), value)


def test_a_zoned_datetime_keeps_its_zone() -> None:
    """A datetime with a ZoneInfo comes back in that zone (RFC 9557 bracket), not just its offset."""
    back = round_trip(OSLO_NOON)
    assert isinstance(back.tzinfo, ZoneInfo)
    assert back.tzinfo.key == "Europe/Oslo"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T12:00:00.5+01:00[Europe/Oslo]", OSLO_NOON),  # the docstring's own example
        ("2026-11-28T11:00:00Z", dt.datetime(2026, 11, 28, 11, tzinfo=dt.UTC)),  # ISO 8601's UTC designator
        ("2026-11-28T12:00:00+01:00[No/Such_Zone]", OSLO_NOON.replace(microsecond=0, tzinfo=dt.timezone(HOUR))),
        ("2026-11-28T12:00:00[Europe/Oslo]", dt.datetime(2026, 11, 28, 12)),  # noqa: DTZ001  (naive: zone ignored)
    ],
)
def test_foreign_datetime_texts_decode(text: str, expected: dt.datetime) -> None:
    """ISO 8601 text from another sender decodes; an unknown zone keeps the offset."""
    frame = proto.encode(proto.Delta(**HEADER, points=[entry(msgpack.ExtType(proto.EXT_DATETIME, text.encode()))]))
    value = proto.decode(frame).points[0].value  # type: ignore[union-attr]
    assert value == expected
    assert value.utcoffset() == expected.utcoffset()


def test_msgpack_timestamp_decodes_as_aware_utc() -> None:
    """A msgpack timestamp (ext -1) from a foreign sender becomes an aware UTC datetime."""
    stamp = msgpack.Timestamp.from_unix(1_700_000_000.5)
    data = msgpack.packb(
        [1, 0, 2, "x", 1, 1, 0, {"points": [["P", stamp, 0, "", 1.0, None]]}], use_bin_type=True, datetime=False
    )
    value = proto.decode(data).points[0].value  # type: ignore[union-attr]
    assert value == dt.datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=dt.UTC)
    assert value.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    "envelope",
    [
        {"sender": "x", "epoch": 0, "seq": 0, "sent_ns": 0},
        {"sender": "é" * 256, "epoch": 2**63 - 1, "seq": 2**64 - 1, "sent_ns": -(2**63), "minor": 9},
    ],
)
def test_envelope_extremes_round_trip(envelope: dict[str, Any]) -> None:
    """Envelope fields round-trip at the ends of their documented ranges."""
    message = proto.Heartbeat(**envelope, mount="M", heartbeat_s=0.001, point_count=2**32)
    assert proto.decode(proto.encode(message)) == message


@given(
    sender=st.text(min_size=1, max_size=40),
    epoch=st.integers(0, 2**63 - 1),
    seq=st.integers(0, 2**64 - 1),
    points=st.lists(
        st.builds(
            PointEntry,
            st.text(max_size=20),
            VALUES,
            st.integers(-(2**63), 2**63 - 1),
            st.text(max_size=10),
            st.floats(allow_nan=False),
            st.none() | st.floats(min_value=0.001, max_value=1e6),
        ),
        max_size=5,
    ),
    parents=st.lists(st.text(max_size=20), max_size=5),
)
@settings(max_examples=60, deadline=None)
def test_state_round_trips(sender: str, epoch: int, seq: int, points: list[PointEntry], parents: list[str]) -> None:
    """Any STATE made of carriable parts decodes to what was sent."""
    message = proto.State(
        sender=sender, epoch=epoch, seq=seq, sent_ns=1, mount="M", heartbeat_s=2.0, points=points, parents=parents
    )
    back = proto.decode(proto.encode(message))
    assert isinstance(back, proto.State)
    assert (back.sender, back.epoch, back.seq, back.parents) == (sender, epoch, seq, parents)
    assert same([list(p) for p in back.points], [list(p) for p in points])


# -- values msgpack cannot carry -------------------------------------------


class Opaque:
    def __str__(self) -> str:
        return "<opaque thing>"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


def nested_lists(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_an_object_is_sent_as_its_str() -> None:
    """An arbitrary object becomes its str()."""
    assert round_trip(Opaque()) == "<opaque thing>"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({1, 2}, "{1, 2}"),
        (frozenset({"a"}), "frozenset({'a'})"),
        (2**64, str(2**64)),
        (-(2**63) - 1, str(-(2**63) - 1)),
        ({1: "a"}, "{1: 'a'}"),
        ({"k": 1, 2: "v"}, "{'k': 1, 2: 'v'}"),
        ("a\ud800b", "a?b"),
        (Unprintable(), "<unprintable Unprintable: RuntimeError>"),
        # Inside containers only the part that cannot be carried becomes text.
        ([1, {2}], [1, "{2}"]),
        ((1, 2**70), (1, str(2**70))),
        ({"big": 2**65, "ok": [1.5]}, {"big": str(2**65), "ok": [1.5]}),
        ({"s": "\udcff"}, {"s": "?"}),
        ([{1: 2}], ["{1: 2}"]),
        ((Opaque(),), ("<opaque thing>",)),
    ],
    # Without the objects' addresses: test ids must be the same in every process (pytest-xdist's workers).
    ids=lambda value: re.sub(r" at 0x[0-9a-f]+", "", repr(value)),
)
def test_uncarriable_values_become_text(value: Any, expected: Any) -> None:
    """Sets, huge ints, non-str keys, lone surrogates, broken __str__: their text, never an error."""
    assert same(round_trip(value), expected)


def test_nesting_deeper_than_the_limit_becomes_text() -> None:
    """Levels beyond MAX_VALUE_DEPTH are sent as the str() of what is left."""
    depth = proto.MAX_VALUE_DEPTH
    assert same(round_trip(nested_lists(depth)), nested_lists(depth))  # exactly the limit: kept
    back = round_trip(nested_lists(depth + 4))
    for _ in range(depth):
        assert isinstance(back, list)
        assert len(back) == 1
        back = back[0]
    assert back == str(nested_lists(4))


def test_nested_tuples_at_the_limit_round_trip() -> None:
    """Tuples nested exactly MAX_VALUE_DEPTH deep survive the decoder's ext depth bound."""
    value: tuple[Any, ...] = ()
    for _ in range(proto.MAX_VALUE_DEPTH - 1):
        value = (value,)
    assert same(round_trip(value), value)


def test_self_referencing_containers_do_not_break_the_encoder() -> None:
    """A list or dict that contains itself is cut off at the depth limit, not a RecursionError."""
    loop: list[Any] = [1]
    loop.append(loop)
    ring: dict[str, Any] = {}
    ring["me"] = ring
    for value in (loop, ring):
        back = round_trip(value)
        assert isinstance(back, list | dict)


def test_a_very_deep_value_does_not_blow_the_stack() -> None:
    """Thousands of nested lists are sanitised iteratively and sent as text."""
    back = round_trip(nested_lists(5000))
    assert isinstance(back, list)


@pytest.mark.parametrize("char", ["x", "é", "😀"])
def test_a_huge_value_is_truncated_within_the_entry_limit(char: str) -> None:
    """A value whose entry exceeds MAX_ENTRY_BYTES becomes the start of its text plus a mark, and fits."""
    value = char * proto.MAX_ENTRY_BYTES
    packed = proto.pack_entry(entry(value))
    assert len(packed) <= proto.MAX_ENTRY_BYTES
    back = round_trip(value)
    assert back.endswith("…[truncated]")
    body = back.removesuffix("…[truncated]")
    assert body
    assert value.startswith(body)


def test_a_huge_list_is_truncated_as_text() -> None:
    """A big container that does not fit an entry becomes the start of its str()."""
    value = list(range(100_000))
    back = round_trip(value)
    assert isinstance(back, str)
    assert back.startswith("[0, 1, 2, ")
    assert back.endswith("…[truncated]")


WEIRD = st.recursive(
    st.one_of(
        SCALARS,
        st.integers(),
        st.sets(st.integers(), max_size=3),
        st.builds(Opaque),
        st.builds(Unprintable),
        st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),
        st.binary().map(bytearray),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers(), st.none()), inner, max_size=3),
    ),
    max_leaves=12,
)


@given(WEIRD)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_encoder_never_raises_for_any_value(value: Any) -> None:
    """Whatever a monitor function returns, entries, NODE payloads and messages encode and decode."""
    round_trip(value)
    payload = proto.node_payload(
        epoch=1, seq=1, kind=proto.NODE_POINT, alertcode=0, alertstr="", stale=False, value=value
    )
    proto.decode_hub_message(b"P", payload)


# -- malformed input -------------------------------------------------------


@contextmanager
def msgpack_implementation(name: str) -> Iterator[None]:
    """Run the block with msgpack's C extension ("c") or its pure-Python fallback ("pure")."""
    if name == "c":
        yield
        return
    saved = msgpack.unpackb, msgpack.Packer
    msgpack.unpackb, msgpack.Packer = msgpack.fallback.unpackb, msgpack.fallback.Packer  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        msgpack.unpackb, msgpack.Packer = saved  # type: ignore[misc]


IMPLEMENTATIONS = pytest.mark.parametrize("impl", ["c", "pure"])


def frame(*items: Any) -> bytes:
    return msgpack.packb(list(items), use_bin_type=True)


def envelope(kind: int, body: Any, **fields: Any) -> bytes:
    head: dict[str, Any] = {"major": 1, "minor": 0, "sender": "a", "epoch": 1, "seq": 1, "sent_ns": 0}
    head.update(fields)
    return frame(head["major"], head["minor"], kind, head["sender"], head["epoch"], head["seq"], head["sent_ns"], body)


def tuple_bomb(depth: int) -> bytes:
    data = msgpack.packb([])
    for _ in range(depth):
        data = msgpack.packb(msgpack.ExtType(proto.EXT_TUPLE, data))
    return data


def in_delta(packed_value: bytes) -> bytes:
    """A DELTA whose one point carries ``packed_value`` (raw msgpack) as its value."""
    entry_bytes = b"\x96\xa1P" + packed_value + b"\x00\xa0\xcb" + b"\x3f\xf0" + b"\x00" * 6 + b"\xc0"
    head = frame(1, 0, 2, "a", 1, 1, 0)[1:]
    return b"\x98" + head + b"\x81\xa6points\x91" + entry_bytes


GOOD_STATE_BODY: dict[str, Any] = {"mount": "M", "heartbeat_s": 1.0, "points": [], "parents": [], "part": 0, "parts": 1}

MALFORMED: dict[str, tuple[bytes, str]] = {
    "empty frame": (b"", "empty frame"),
    "nil": (b"\xc0", "array of 8"),
    "short array": (frame(1, 0, 4, "a", 1, 1, 0), "array of 8"),
    "huge array header": (b"\xdd\xff\xff\xff\xff", "not valid msgpack"),
    "huge map header": (b"\xdf\xff\xff\xff\xff", "not valid msgpack"),
    "huge str header": (b"\xdb\xff\xff\xff\xff", "not valid msgpack"),
    "huge bin header": (b"\xc6\xff\xff\xff\xff", "not valid msgpack"),
    "huge ext header": (b"\xc9\xff\xff\xff\xff\x02", "not valid msgpack"),
    "deep nesting": (b"\x91" * 5000 + b"\xc0", "not valid msgpack"),
    "deep map nesting": (b"\x81\xa1k" * 3000 + b"\xc0", "not valid msgpack"),
    "trailing bytes": (bytes.fromhex(GOLDEN["BYE"][1]) + b"\xc0", "not valid msgpack"),
    "reserved byte": (b"\xc1", "not valid msgpack"),
    "int map key": (envelope(4, {1: 2}), "not valid msgpack"),
    "nil map key in a value": (in_delta(b"\x81\xc0\x01"), "not valid msgpack"),
    "invalid UTF-8 sender": (b"\x98\x01\x00\x04\xa2\xff\xfe\x01\x01\x00\x80", "not valid msgpack"),
    "invalid UTF-8 value": (in_delta(b"\xa3a\xc3\x28"), "not valid msgpack"),
    "unknown ext type": (in_delta(msgpack.packb(msgpack.ExtType(5, b"x"))), "unknown msgpack ext type 5"),
    "tuple ext bomb": (in_delta(tuple_bomb(200)), "nested too deep"),
    "tuple ext of a non-array": (in_delta(msgpack.packb(msgpack.ExtType(2, msgpack.packb(1)))), "array"),
    "tuple ext of garbage": (in_delta(msgpack.packb(msgpack.ExtType(2, b"\xc1"))), "not valid msgpack"),
    "datetime ext of garbage": (in_delta(msgpack.packb(msgpack.ExtType(1, b"yesterday at noon"))), "datetime"),
    "datetime ext non-ascii": (
        in_delta(msgpack.packb(msgpack.ExtType(1, "2026-11-28T12:00:00+01:00[Øslo]".encode()))),
        "msgpack",
    ),
    "datetime ext too long": (
        in_delta(msgpack.packb(msgpack.ExtType(1, b"2026-11-28T12:00:00" + b"0" * 200))),
        "too long",
    ),
    "datetime ext bad date": (in_delta(msgpack.packb(msgpack.ExtType(1, b"2026-13-45T12:00:00"))), "msgpack"),
    "timestamp ext of bad size": (in_delta(b"\xc7\x03\xff\x01\x02\x03"), "msgpack"),
    "major 2": (envelope(4, {}, major=2), "major version 2"),
    "major 0": (envelope(4, {}, major=0), "major version"),
    "major -1": (envelope(4, {}, major=-1), "major version"),
    "major True": (envelope(4, {}, major=True), "major version"),
    "major 1.0": (envelope(4, {}, major=1.0), "major version"),
    "major '1'": (envelope(4, {}, major="1"), "major version"),
    "kind 99": (envelope(99, {}), "unknown message kind"),
    "kind 0": (envelope(0, {}), "unknown message kind"),
    "kind 6": (envelope(6, {}), "unknown message kind"),  # 5 is TRANSITIONS (1.3); 6-9 are reserved
    "kind True": (envelope(True, GOOD_STATE_BODY), "unknown message kind"),
    "kind 1.0": (envelope(1.0, GOOD_STATE_BODY), "unknown message kind"),  # type: ignore[arg-type]
    "kind '1'": (envelope("1", GOOD_STATE_BODY), "unknown message kind"),  # type: ignore[arg-type]
    "kind nil": (envelope(None, {}), "unknown message kind"),  # type: ignore[arg-type]
    "minor -1": (envelope(4, {}, minor=-1), "envelope minor"),
    "minor True": (envelope(4, {}, minor=True), "envelope minor"),
    "minor 0.5": (envelope(4, {}, minor=0.5), "envelope minor"),
    "minor '0'": (envelope(4, {}, minor="0"), "envelope minor"),
    "epoch -1": (envelope(4, {}, epoch=-1), "envelope epoch"),
    "epoch True": (envelope(4, {}, epoch=True), "envelope epoch"),
    "epoch 1.0": (envelope(4, {}, epoch=1.0), "envelope epoch"),
    "epoch nil": (envelope(4, {}, epoch=None), "envelope epoch"),
    "seq -1": (envelope(4, {}, seq=-1), "envelope seq"),
    "seq False": (envelope(4, {}, seq=False), "envelope seq"),
    "seq '1'": (envelope(4, {}, seq="1"), "envelope seq"),
    "sent_ns 1.5": (envelope(4, {}, sent_ns=1.5), "envelope sent_ns"),
    "sent_ns True": (envelope(4, {}, sent_ns=True), "envelope sent_ns"),
    "sent_ns nil": (envelope(4, {}, sent_ns=None), "envelope sent_ns"),
    "sender empty": (envelope(4, {}, sender=""), "envelope sender"),
    "sender int": (envelope(4, {}, sender=5), "envelope sender"),
    "sender bytes": (envelope(4, {}, sender=b"a"), "envelope sender"),
    "sender nil": (envelope(4, {}, sender=None), "envelope sender"),
    "sender too long": (envelope(4, {}, sender="x" * 257), "envelope sender"),
    "body nil": (envelope(4, None), "envelope body"),
    "body array": (envelope(4, []), "envelope body"),
    "body str": (envelope(4, "x"), "envelope body"),
}


def _body_cases() -> dict[str, tuple[int, dict[str, Any], str]]:
    state = GOOD_STATE_BODY
    point = ["P", 1, 0, "", 1.0, 1.0]

    def with_point(**changes: Any) -> dict[str, Any]:
        item = list(point)
        for index, value in changes.items():
            item[int(index[1:])] = value
        return {**state, "points": [item]}

    return {
        "STATE mount missing": (1, {k: v for k, v in state.items() if k != "mount"}, "body.mount"),
        "STATE mount int": (1, {**state, "mount": 5}, "body.mount"),
        "STATE heartbeat_s missing": (1, {k: v for k, v in state.items() if k != "heartbeat_s"}, "body.heartbeat_s"),
        "STATE heartbeat_s 0": (1, {**state, "heartbeat_s": 0}, "body.heartbeat_s"),
        "STATE heartbeat_s -1": (1, {**state, "heartbeat_s": -1.0}, "body.heartbeat_s"),
        "STATE heartbeat_s NaN": (1, {**state, "heartbeat_s": math.nan}, "body.heartbeat_s"),
        "STATE heartbeat_s inf": (1, {**state, "heartbeat_s": math.inf}, "body.heartbeat_s"),
        "STATE heartbeat_s True": (1, {**state, "heartbeat_s": True}, "body.heartbeat_s"),
        "STATE heartbeat_s str": (1, {**state, "heartbeat_s": "1"}, "body.heartbeat_s"),
        "STATE points missing": (1, {k: v for k, v in state.items() if k != "points"}, "body.points"),
        "STATE points map": (1, {**state, "points": {}}, "body.points"),
        "STATE entry not array": (1, {**state, "points": ["P"]}, "body.points[0]"),
        "STATE entry 5 items": (1, {**state, "points": [point[:5]]}, "body.points[0]"),
        "STATE entry path int": (1, with_point(i0=3), "body.points[0]"),
        "STATE entry path nil": (1, with_point(i0=None), "body.points[0]"),
        "STATE entry alertcode bool": (1, with_point(i2=True), "body.points[0]"),
        "STATE entry alertcode float": (1, with_point(i2=1.0), "body.points[0]"),
        "STATE entry alertstr nil": (1, with_point(i3=None), "body.points[0]"),
        "STATE entry polled_at bool": (1, with_point(i4=False), "body.points[0]"),
        "STATE entry polled_at str": (1, with_point(i4="now"), "body.points[0]"),
        "STATE entry polled_at nil": (1, with_point(i4=None), "body.points[0]"),
        "STATE entry dt str": (1, with_point(i5="1"), "body.points[0]"),
        "STATE entry dt bool": (1, with_point(i5=True), "body.points[0]"),
        "STATE parents str": (1, {**state, "parents": "A"}, "body.parents"),
        "STATE parents of ints": (1, {**state, "parents": ["A", 1]}, "body.parents[1]"),
        "STATE part -1": (1, {**state, "part": -1}, "body.part"),
        "STATE part True": (1, {**state, "part": True}, "body.part"),
        "STATE part == parts": (1, {**state, "part": 2, "parts": 2}, "body.part"),
        "STATE parts 0": (1, {**state, "part": 0, "parts": 0}, "body.part"),
        "STATE parts float": (1, {**state, "parts": 1.0}, "body.parts"),
        "DELTA points missing": (2, {}, "body.points"),
        "DELTA points nil": (2, {"points": None}, "body.points"),
        "DELTA entry map": (2, {"points": [{"path": "P"}]}, "body.points[0]"),
        "HEARTBEAT points -1": (3, {"mount": "M", "heartbeat_s": 1.0, "points": -1}, "body.points"),
        "HEARTBEAT points True": (3, {"mount": "M", "heartbeat_s": 1.0, "points": True}, "body.points"),
        "HEARTBEAT points 1.5": (3, {"mount": "M", "heartbeat_s": 1.0, "points": 1.5}, "body.points"),
        "HEARTBEAT mount nil": (3, {"mount": None, "heartbeat_s": 1.0, "points": 1}, "body.mount"),
        "HEARTBEAT heartbeat_s missing": (3, {"mount": "M", "points": 1}, "body.heartbeat_s"),
        "HELLO request_id missing": (10, {}, "body.request_id"),
        "HELLO request_id -1": (10, {"request_id": -1}, "body.request_id"),
        "HELLO request_id True": (10, {"request_id": True}, "body.request_id"),
        "SNAPSHOT_REQUEST prefix missing": (11, {"request_id": 1}, "body.prefix"),
        "SNAPSHOT_REQUEST prefix bytes": (11, {"request_id": 1, "prefix": b"GS1"}, "body.prefix"),
        "INFO endpoints list": (
            20,
            {"request_id": 1, "endpoints": [], "heartbeat_s": 1.0, "version": "1"},
            "body.endpoints",
        ),
        "INFO endpoint int": (
            20,
            {"request_id": 1, "endpoints": {"query": 1}, "heartbeat_s": 1.0, "version": "1"},
            "body.endpoints",
        ),
        "INFO heartbeat_s 0": (
            20,
            {"request_id": 1, "endpoints": ENDPOINTS, "heartbeat_s": 0, "version": "1"},
            "body.heartbeat_s",
        ),
        "INFO version int": (
            20,
            {"request_id": 1, "endpoints": ENDPOINTS, "heartbeat_s": 1.0, "version": 1},
            "body.version",
        ),
        "SNAPSHOT_CHUNK nodes missing": (21, {"request_id": 1}, "body.nodes"),
        "SNAPSHOT_CHUNK node short": (21, {"request_id": 1, "nodes": [["P"]]}, "body.nodes[0]"),
        "SNAPSHOT_CHUNK node path int": (21, {"request_id": 1, "nodes": [[1, {}]]}, "body.nodes[0]"),
        "SNAPSHOT_CHUNK node payload list": (21, {"request_id": 1, "nodes": [["P", []]]}, "body.nodes[0]"),
        "SNAPSHOT_END seq -1": (22, {"request_id": 1, "seq": -1, "count": 0, "published": 0}, "body.seq"),
        "SNAPSHOT_END seq True": (22, {"request_id": 1, "seq": True, "count": 0, "published": 0}, "body.seq"),
        "SNAPSHOT_END count missing": (22, {"request_id": 1, "seq": 1, "published": 0}, "body.count"),
        "SNAPSHOT_END published str": (22, {"request_id": 1, "seq": 1, "count": 0, "published": "0"}, "body.published"),
        "ERROR message nil": (23, {"request_id": 1, "message": None}, "body.message"),
        "ERROR request_id str": (23, {"request_id": "1", "message": "m"}, "body.request_id"),
    }


BODY_CASES = _body_cases()


@IMPLEMENTATIONS
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_frames_raise_protocol_error(case: str, impl: str) -> None:
    """Every malformed frame raises exactly ProtocolError with a message saying what was wrong."""
    data, fragment = MALFORMED[case]
    with msgpack_implementation(impl), pytest.raises(ProtocolError) as caught:
        proto.decode(data)
    assert type(caught.value) is ProtocolError
    assert fragment in str(caught.value)


@IMPLEMENTATIONS
@pytest.mark.parametrize("case", list(BODY_CASES))
def test_wrong_body_fields_raise_protocol_error(case: str, impl: str) -> None:
    """A body key of the wrong type (or missing) for its kind raises ProtocolError naming the key."""
    kind, body, fragment = BODY_CASES[case]
    with msgpack_implementation(impl), pytest.raises(ProtocolError) as caught:
        proto.decode(envelope(kind, body))
    assert type(caught.value) is ProtocolError
    assert fragment in str(caught.value)


def test_the_body_cases_are_valid_once_fixed() -> None:
    """The malformed-body fixtures differ from valid messages only in the broken field."""
    proto.decode(envelope(1, GOOD_STATE_BODY))
    proto.decode(envelope(1, {**GOOD_STATE_BODY, "points": [["P", 1, 0, "", 1.0, 1.0]]}))
    proto.decode(envelope(3, {"mount": "M", "heartbeat_s": 1.0, "points": 1}))
    proto.decode(envelope(22, {"request_id": 1, "seq": 1, "count": 0, "published": 0}))


def test_decode_refuses_what_is_not_bytes() -> None:
    """A str or None handed to decode is a ProtocolError, not a TypeError."""
    for value in ("\x98", None, 12):
        with pytest.raises(ProtocolError, match="expected bytes"):
            proto.decode(value)  # type: ignore[arg-type]


@IMPLEMENTATIONS
@pytest.mark.parametrize("name", list(GOLDEN))
def test_every_truncation_of_a_valid_frame_raises_protocol_error(name: str, impl: str) -> None:
    """Each proper prefix of a valid frame, down to the empty one, raises ProtocolError."""
    data = bytes.fromhex(GOLDEN[name][1])
    with msgpack_implementation(impl):
        for end in range(len(data)):
            with pytest.raises(ProtocolError):
                proto.decode(data[:end])


@IMPLEMENTATIONS
@given(data=st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_random_bytes_decode_or_raise_protocol_error(data: bytes, impl: str) -> None:
    """Random bytes either decode or raise ProtocolError, nothing else."""
    with msgpack_implementation(impl), suppress(ProtocolError):
        proto.decode(data)


@IMPLEMENTATIONS
@given(
    name=st.sampled_from(sorted(GOLDEN)),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
)
@settings(max_examples=300, deadline=None)
def test_corrupted_valid_frames_decode_or_raise_protocol_error(
    name: str, flips: list[tuple[int, int]], impl: str
) -> None:
    """Valid frames with a few bytes overwritten either decode or raise ProtocolError."""
    data = bytearray.fromhex(GOLDEN[name][1])
    for position, byte in flips:
        data[position % len(data)] = byte
    with msgpack_implementation(impl), suppress(ProtocolError):
        proto.decode(bytes(data))


PLAIN = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(), st.binary()),
    lambda inner: st.lists(inner, max_size=7) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


@given(
    items=st.lists(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(2**63), 2**64 - 1),
            st.floats(),
            st.text(max_size=5),
            st.dictionaries(st.sampled_from(["points", "mount", "heartbeat_s", "request_id", "parts"]), PLAIN),
            st.lists(PLAIN, max_size=3),
        ),
        min_size=8,
        max_size=9,
    ),
    major=st.sampled_from([1, 1, 2]),
    kind=st.sampled_from([*map(int, proto.MsgKind), 7]),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_envelopes_decode_or_raise_protocol_error(items: list[Any], major: int, kind: int) -> None:
    """Random well-formed msgpack with plausible headers decodes or raises ProtocolError."""
    items[0], items[2] = major, kind
    with suppress(ProtocolError):
        proto.decode(frame(*items))


def test_too_many_points_is_refused() -> None:
    """A message with more points than Limits.max_points_per_message raises ProtocolError."""
    points = [["P", 1, 0, "", 1.0, None]] * 3
    data = envelope(2, {"points": points})
    assert len(proto.decode(data, proto.Limits(max_points_per_message=3)).points) == 3  # type: ignore[union-attr]
    with pytest.raises(ProtocolError, match="more than the limit of 2"):
        proto.decode(data, proto.Limits(max_points_per_message=2))


def test_too_many_parents_is_refused() -> None:
    """A STATE listing more parents than Limits.max_parents_per_message raises ProtocolError."""
    data = envelope(1, {**GOOD_STATE_BODY, "parents": ["A", "B", "C"]})
    with pytest.raises(ProtocolError, match=r"body\.parents"):
        proto.decode(data, proto.Limits(max_parents_per_message=2))


def test_the_default_points_limit_is_the_documented_one() -> None:
    """By default MAX_POINTS_PER_MESSAGE points pass and one more is refused."""
    point = msgpack.packb(["P", 1, 0, "", 1.0, None])
    limit = proto.MAX_POINTS_PER_MESSAGE
    for count, ok in ((limit, True), (limit + 1, False)):
        head = frame(1, 0, 2, "a", 1, 1, 0)[1:]
        data = b"\x98" + head + b"\x81\xa6points\xdc" + count.to_bytes(2, "big") + point * count
        if ok:
            proto.decode(data)
        else:
            with pytest.raises(ProtocolError, match="more than the limit"):
                proto.decode(data)


def test_an_oversize_frame_is_refused_before_unpacking() -> None:
    """A frame longer than Limits.max_frame_bytes raises ProtocolError, even a valid one."""
    data = bytes.fromhex(GOLDEN["STATE"][1])
    proto.decode(data, proto.Limits(max_frame_bytes=len(data)))
    with pytest.raises(ProtocolError, match=f"{len(data)} bytes exceeds the limit of {len(data) - 1}"):
        proto.decode(data, proto.Limits(max_frame_bytes=len(data) - 1))


def test_a_higher_minor_with_extra_keys_and_items_is_accepted() -> None:
    """Minor 7 with unknown body keys, a 9th envelope item and 7-item entries decodes (fields ignored)."""
    body = {**GOOD_STATE_BODY, "points": [["P", 1, 10, "GREEN", 2.0, None, "extra"]], "future": {"x": 1}}
    data = frame(1, 7, 1, "a", 5, 6, 0, body, "ninth item")
    message = proto.decode(data)
    assert isinstance(message, proto.State)
    assert message.minor == 7
    assert message.points == [PointEntry("P", 1, 10, "GREEN", 2.0, None)]


# -- hub -> subscriber messages ---------------------------------------------


def node_map(**changes: Any) -> dict[str, Any]:
    payload = dict(NODE_PLAIN)
    payload.update(changes)
    return {key: value for key, value in payload.items() if value is not _MISSING}


_MISSING: Any = object()


HUB_MALFORMED: dict[str, tuple[bytes, bytes, str]] = {
    "topic not UTF-8": (b"GS1/\xff", msgpack.packb(NODE_PLAIN), "topic is not UTF-8"),
    "empty payload": (b"P", b"", "empty frame"),
    "payload garbage": (b"P", b"\xc1", "not valid msgpack"),
    "payload a list": (b"P", msgpack.packb([1]), "must be a map"),
    "node kind unknown": (b"P", msgpack.packb(node_map(kind="leaf")), "kind"),
    "node kind missing": (b"P", msgpack.packb(node_map(kind=_MISSING)), "kind"),
    "node seq missing": (b"P", msgpack.packb(node_map(seq=_MISSING)), "seq"),
    "node seq bool": (b"P", msgpack.packb(node_map(seq=True)), "seq"),
    "node epoch str": (b"P", msgpack.packb(node_map(epoch="1")), "epoch"),
    "node alert float": (b"P", msgpack.packb(node_map(alert=1.5)), "alert"),
    "node alertstr int": (b"P", msgpack.packb(node_map(alertstr=3)), "alertstr"),
    "node stale int": (b"P", msgpack.packb(node_map(stale=1)), "stale"),
    "node dt str": (b"P", msgpack.packb(node_map(dt="1")), "times"),
    "node polled_at bool": (b"P", msgpack.packb(node_map(polled_at=True)), "times"),
    "heartbeat a list": (proto.HUB_HEARTBEAT_TOPIC, msgpack.packb([]), "must be a map"),
    "heartbeat published missing": (
        proto.HUB_HEARTBEAT_TOPIC,
        msgpack.packb({**HUB_BEAT_PLAIN, "published": None}),
        "published",
    ),
    "heartbeat published count str": (
        proto.HUB_HEARTBEAT_TOPIC,
        msgpack.packb({**HUB_BEAT_PLAIN, "published": {"GS1/": "1"}}),
        "published",
    ),
    "heartbeat published count bool": (
        proto.HUB_HEARTBEAT_TOPIC,
        msgpack.packb({**HUB_BEAT_PLAIN, "published": {"GS1/": True}}),
        "published",
    ),
    "heartbeat epoch missing": (
        proto.HUB_HEARTBEAT_TOPIC,
        msgpack.packb({k: v for k, v in HUB_BEAT_PLAIN.items() if k != "epoch"}),
        "epoch",
    ),
    "heartbeat seq bool": (proto.HUB_HEARTBEAT_TOPIC, msgpack.packb({**HUB_BEAT_PLAIN, "seq": True}), "seq"),
    "heartbeat interval str": (
        proto.HUB_HEARTBEAT_TOPIC,
        msgpack.packb({**HUB_BEAT_PLAIN, "interval_s": "1"}),
        "interval_s",
    ),
    "heartbeat interval 0": (
        proto.HUB_HEARTBEAT_TOPIC,
        msgpack.packb({**HUB_BEAT_PLAIN, "interval_s": 0}),
        "interval_s",
    ),
    "heartbeat interval NaN": (
        proto.HUB_HEARTBEAT_TOPIC,
        msgpack.packb({**HUB_BEAT_PLAIN, "interval_s": math.nan}),
        "interval_s",
    ),
    "heartbeat sent_at nil": (proto.HUB_HEARTBEAT_TOPIC, msgpack.packb({**HUB_BEAT_PLAIN, "sent_at": None}), "sent_at"),
}


@IMPLEMENTATIONS
@pytest.mark.parametrize("case", list(HUB_MALFORMED))
def test_malformed_hub_messages_raise_protocol_error(case: str, impl: str) -> None:
    """Bad topics and bad NODE / HUB_HEARTBEAT payloads raise exactly ProtocolError."""
    topic, payload, fragment = HUB_MALFORMED[case]
    with msgpack_implementation(impl), pytest.raises(ProtocolError) as caught:
        proto.decode_hub_message(topic, payload)
    assert type(caught.value) is ProtocolError
    assert fragment in str(caught.value)


def test_hub_message_size_limit() -> None:
    """A hub payload over max_bytes is refused."""
    topic, payload = proto.encode_node(NODE_UPDATE)
    proto.decode_hub_message(topic, payload, max_bytes=len(payload))
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        proto.decode_hub_message(topic, payload, max_bytes=len(payload) - 1)


def test_hub_messages_tolerate_unknown_keys() -> None:
    """NODE and heartbeat payloads from a newer hub with extra keys still decode."""
    node = proto.decode_hub_message(b"GS1/Antenna2/Azimuth", msgpack.packb({**NODE_PLAIN, "future": [1]}))
    assert node == NODE_UPDATE
    beat = proto.decode_hub_message(proto.HUB_HEARTBEAT_TOPIC, msgpack.packb({**HUB_BEAT_PLAIN, "x": 1}))
    assert beat == HUB_BEAT


@given(topic=st.binary(max_size=20), payload=st.binary(min_size=0, max_size=200))
@settings(max_examples=200, deadline=None)
def test_random_hub_messages_decode_or_raise_protocol_error(topic: bytes, payload: bytes) -> None:
    """Random hub frames either decode or raise ProtocolError."""
    with suppress(ProtocolError):
        proto.decode_hub_message(topic, payload)


@pytest.mark.parametrize("kind", [["point"], {"k": 1}, 7, None])
def test_node_payload_with_an_unhashable_or_foreign_kind_is_a_protocol_error(kind: object) -> None:
    """A list or map where the kind should be is refused like any bad kind (not a TypeError)."""
    payload = msgpack.unpackb(proto.node_payload(epoch=1, seq=2, kind="point", alertcode=0, alertstr="", stale=False))
    payload["kind"] = kind
    with pytest.raises(proto.ProtocolError, match="kind"):
        proto.decode_node_payload("a/b", payload)


def test_debounced_entry_adds_the_seventh_item_and_a_hub_reads_the_first_six() -> None:
    """Spec "Point entry": the optional 7th item (raw, raw_str, pending, flapping) only for debounced points;
    the plain entry's bytes are unchanged and a decoder that ignores trailing items reads the same entry."""
    plain = PointEntry("Rack/Temp", 41.0, 10, "GREEN", 1_700_000_001.0, 2.0)
    debounce = proto.point_debounce_map(30, "RED", (30, 1_700_000_001.0), None)
    assert debounce == {
        "raw": 30,
        "raw_str": "RED",
        "pending": {"level": 30, "since": 1_700_000_001.0},
        "flapping": None,
    }
    assert proto.point_debounce_map(10, "GREEN", None, (1_699_999_990.0, 7))["flapping"] == {
        "since": 1_699_999_990.0,
        "changes": 7,
    }
    debounced = proto.debounced_entry(plain, debounce)
    assert debounced == plain  # the same six items
    packed = proto.pack_entry(debounced)
    assert packed == proto.pack_entry(plain)[:1].replace(b"\x96", b"\x97") + proto.pack_entry(plain)[
        1:
    ] + msgpack.packb(debounce)
    assert msgpack.unpackb(packed)[6] == debounce
    frame = proto.encode(proto.Delta(**HEADER, points=[debounced]))
    decoded = proto.decode(frame)
    assert isinstance(decoded, proto.Delta)
    assert decoded.points == [plain]
    # The hub keeps the 7th item: the decoded entry is a DebouncedEntry carrying the same map.
    [entry] = decoded.points
    assert type(entry) is proto.DebouncedEntry
    assert entry.debounce == debounce
    assert type(proto.decode(proto.encode(proto.Delta(**HEADER, points=[plain]))).points[0]) is PointEntry


def test_a_seventh_item_with_unknown_keys_is_reduced_to_the_known_ones_and_a_bad_one_is_refused() -> None:
    plain = ["Rack/Temp", 41.0, 10, "GREEN", 1_700_000_001.0, 2.0]

    def delta(*extra: object) -> bytes:
        body = {"points": [plain + list(extra)]}
        return msgpack.packb([1, 2, int(proto.MsgKind.DELTA), "a", 1, 1, 0, body])

    known = {"raw": 30, "raw_str": "RED", "pending": {"level": 30, "since": 5, "x": 1}, "flapping": None}
    [entry] = proto.decode(delta({**known, "later": True}, "trailing")).points  # type: ignore[attr-defined]
    assert entry.debounce == proto.point_debounce_map(30, "RED", (30, 5.0), None)
    [entry] = proto.decode(delta("not a map")).points  # type: ignore[attr-defined]
    assert type(entry) is PointEntry
    for bad in ({"raw": "RED"}, {**known, "pending": {"level": 30}}, {**known, "flapping": {"since": 1.0}}):
        with pytest.raises(proto.ProtocolError, match=r"points\[0\]\[6\]"):
            proto.decode(delta(bad))


@pytest.mark.parametrize("extra", [None, {}, {"since": 1_700_000_000.25}])
@pytest.mark.parametrize("value", [1.5, 7, "x", True, None])
def test_the_encoders_usual_payloads_are_the_general_paths_bytes(extra: dict[str, Any] | None, value: Any) -> None:
    """point()/parent() pack the usual payloads (no operator keys, or ``since`` alone) themselves; the bytes
    must be those of payload(), which packs the map of every key (same fixmap header, same order)."""
    encoder = proto.NodeEncoder(12345)
    for reported, unknown in ((None, False), (20, True)):
        point = encoder.point(9, 30, "RED", False, value, "ag", 1.7e9, 1.7e9 + 1, 1.0, reported, unknown, extra)
        general = encoder.payload(
            9, proto.NODE_POINT, 30, "RED", False, value, "ag", 1.7e9, 1.7e9 + 1, 1.0, reported, unknown, extra
        )
        assert point == general
        parent = encoder.parent(9, 30, "RED", False, unknown, extra)
        assert parent == encoder.payload(
            9, proto.NODE_PARENT, 30, "RED", False, None, None, None, None, None, None, unknown, extra
        )
