"""The lean read path's NODE decoder and batches are the classic ones, only cheaper.

:func:`protocol.decode_lean_node` must accept exactly the frames :func:`protocol.decode_node_message`
accepts, give the same node (``to_update``) and refuse the rest with the same error; and
:meth:`CloneCore.receive_nodes` (the batches the lean read loop hands over) must do what
:meth:`CloneCore.receive_node` does one NODE at a time. No sockets, no clock.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from clone_support import CLIENT_EPOCH, GREEN, HUB_EPOCH, NOW, RED, WALL, Frames, beat, load, node, removed, update
from hypothesis import event, given, settings
from hypothesis import strategies as st

from gsmon.common import protocol as proto
from gsmon.common.clone import CloneCore, NodeState

# A NODE as a hub with its alarm layer sends it; each example changes, drops or adds a few keys of it.
BASE: dict[str, Any] = {
    "v": 1,
    "epoch": HUB_EPOCH,
    "seq": 12,
    "kind": "point",
    "alert": RED,
    "alertstr": "RED",
    "stale": False,
    "value": 2.5,
    "agent": "ant",
    "polled_at": 1_700_000_000.0,
    "received_at": 1_700_000_000.5,
    "dt": 1.0,
    "since": 1_699_990_000.0,
}
KEYS = (
    *BASE,
    "reported_alert",
    "liveness_unknown",
    *proto.NODE_OPERATOR_KEYS,
    "via",  # 1.3, not read by either decoder
    "path",  # not a NODE key: the LeanNode's path comes from the topic
    "extra",
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.sampled_from(["point", "parent", "removed", "GREEN"]),
    st.binary(max_size=3),
    st.just(msgpack.ExtType(99, b"x")),  # an ext type no gsmon decoder knows
    st.just(msgpack.ExtType(proto.EXT_TUPLE, msgpack.packb([1, {"a": 2}]))),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=3), inner, max_size=3),
        st.dictionaries(st.integers(0, 3), inner, min_size=1, max_size=2),  # a map key that is not a str
    ),
    max_leaves=6,
)
_edits = st.dictionaries(st.sampled_from(KEYS), st.one_of(st.just("drop"), _values), max_size=4)


def _payload(edits: dict[str, Any]) -> bytes:
    payload = dict(BASE)
    for key, value in edits.items():
        if isinstance(value, str) and value == "drop":
            payload.pop(key, None)
        else:
            payload[key] = value
    return msgpack.packb(payload)


def _outcome(decode: Any, topic: bytes, payload: Any, max_bytes: int = proto.MAX_FRAME_BYTES) -> tuple[str, str]:
    """("ok", the node as a NodeUpdate's repr: NaN equals NaN) or ("refused", the error)."""
    try:
        found = decode(topic, payload, max_bytes)
    except proto.ProtocolError as error:
        return "refused", str(error)
    update = found.to_update() if isinstance(found, proto.LeanNode) else found
    assert type(update) is proto.NodeUpdate
    return "ok", repr(update)


@given(edits=_edits, topic=st.sampled_from([b"GS1/a", "GS1/ä".encode(), b"\xff\xfe", b""]))
@settings(max_examples=600, deadline=None)
def test_the_lean_decoder_accepts_and_refuses_what_decode_node_message_does(
    edits: dict[str, Any], topic: bytes
) -> None:
    payload = _payload(edits)
    found = _outcome(proto.decode_lean_node, topic, payload)
    assert found == _outcome(proto.decode_node_message, topic, payload)
    event(found[0])  # both outcomes come up (hypothesis --hypothesis-show-statistics)


@pytest.mark.parametrize(
    "frame",
    [b"", b"\xc1", b"\x92\x01\x02", bytearray(_payload({})), memoryview(_payload({})), "text"],
    ids=["empty", "not-msgpack", "an-array", "bytearray", "memoryview", "str"],
)
def test_frames_that_are_not_plain_bytes_or_not_a_map_get_decode_node_messages_answer(frame: Any) -> None:
    assert _outcome(proto.decode_lean_node, b"GS1/a", frame) == _outcome(proto.decode_node_message, b"GS1/a", frame)


def test_a_frame_over_the_limit_is_refused_as_decode_node_message_refuses_it() -> None:
    payload = _payload({})
    small = len(payload) - 1
    found = _outcome(proto.decode_lean_node, b"GS1/a", payload, small)
    assert found == _outcome(proto.decode_node_message, b"GS1/a", payload, small)
    assert found[0] == "refused"


@pytest.mark.parametrize(
    "edits",
    [
        {},
        {"since": "drop"},
        {"agent": 7},  # not a str: read as nil
        {"value": {"a": [1, {"b": 2}]}, "alarm": {"id": 3, "state": "unacked"}, "attention": 30},
        {"pending": {"level": 30, "since": 1.0}, "raw_alert": 30, "reported_alert": 10, "liveness_unknown": True},
        {"path": msgpack.ExtType(99, b"x")},  # an unknown key, whatever it holds, is not read
    ],
    ids=["usual", "no-since", "agent-not-str", "operator-maps", "debounce-keys", "unknown-path-key"],
)
def test_the_lean_node_is_the_node_decode_node_message_makes(edits: dict[str, Any]) -> None:
    payload = _payload(edits)
    lean = proto.decode_lean_node(b"GS1/a", payload)
    classic = proto.decode_node_message(b"GS1/a", payload)
    assert lean.to_update() == classic
    assert lean.operator == classic.operator
    assert NodeState.from_update(lean) == NodeState.from_update(classic)
    assert proto.LeanNode.from_update(classic).to_update() == classic
    for name in ("path", "kind", "alertcode", "stale", "value", "agent", "polled_at_s", "received_at_s", "seq"):
        assert getattr(lean, name) == getattr(classic, name)


def test_a_lean_node_holds_no_garbage_collector_entry() -> None:
    """gc=False: 100,000 held nodes add nothing to a collection's walk (what a decode makes holds no cycle)."""
    import gc

    lean = proto.decode_lean_node(b"GS1/a", _payload({"value": [1.0, {"a": 2}]}))
    assert not gc.is_tracked(lean)


# -- receive_nodes: batches, as read_updates hands them over ---------------------------------------------

PATHS = ("GS1/a", "GS1/b", "GS10/x")
OTHER_EPOCH = 0xBEEF
_step = st.one_of(
    st.tuples(st.just("node"), st.sampled_from(PATHS), st.integers(1, 40), st.sampled_from([HUB_EPOCH, OTHER_EPOCH])),
    st.tuples(st.just("removed"), st.sampled_from(PATHS), st.integers(1, 40), st.just(HUB_EPOCH)),
    st.tuples(st.just("beat"), st.just(""), st.integers(0, 40), st.integers(0, 30)),
    st.tuples(st.just("garbage"), st.sampled_from(PATHS), st.just(0), st.just(0)),
)


def _frames(step: tuple[str, str, int, int]) -> Frames:
    kind, path, seq, extra = step
    if kind == "node":
        return node(path, seq, GREEN if seq % 2 else RED, float(seq), epoch=extra)
    if kind == "removed":
        return removed(path, seq)
    if kind == "beat":
        return beat(seq, {"GS1": extra})
    return (path.encode(), b"\x92\x01")


def _synced() -> CloneCore:
    core = CloneCore("GS1", "client-test", CLIENT_EPOCH, lean=True)
    load(core, seq=8, published=0, nodes=[update("GS1/a", 5), update("GS1/b", 9)])
    return core


def _state(core: CloneCore) -> tuple[Any, ...]:
    view = {path: repr(node) for path, node in core.lean_nodes.items()}
    return view, core.wants_snapshot, core.confirmed, core.epoch, core.last_heartbeat


@given(steps=st.lists(_step, max_size=40), batch=st.integers(1, 8))
@settings(max_examples=200, deadline=None)
def test_batches_of_nodes_between_heartbeats_do_what_one_by_one_does(
    steps: list[tuple[str, str, int, int]], batch: int
) -> None:
    """Any mix of NODEs (old, new, other epoch, outside the prefix), removals, heartbeats and garbage."""
    one_by_one, batched = _synced(), _synced()
    expected: list[proto.LeanNode] = []
    found: list[proto.LeanNode] = []
    pending: list[Frames] = []

    def flush() -> None:
        for start in range(0, len(pending), batch):
            batched.receive_nodes(pending[start : start + batch], found)
        pending.clear()

    for step in steps:
        topic, payload = _frames(step)
        if proto.is_heartbeat_topic(topic):
            one_by_one.receive(topic, payload, NOW, WALL)
            flush()
            batched.receive(topic, payload, NOW, WALL)
            assert _state(batched) == _state(one_by_one)
        else:
            one_by_one.receive_node(topic, payload, expected)
            pending.append((topic, payload))
    flush()
    assert [repr(item) for item in found] == [repr(item) for item in expected]
    assert _state(batched) == _state(one_by_one)


def test_a_batch_counts_every_node_above_the_snapshot_even_when_one_is_garbage() -> None:
    core = _synced()
    accepted: list[proto.LeanNode] = []
    core.receive_nodes([node("GS1/a", 10), (b"GS1/a", b"\xc1"), node("GS10/x", 11), node("GS1/b", 12)], accepted)
    assert [(item.path, item.seq) for item in accepted] == [("GS1/a", 10), ("GS1/b", 12)]
    core.receive(*beat(12, {"GS1": 3}), NOW, WALL)  # three NODEs counted (GS10/x too: the topic matched bytes)
    assert not core.wants_snapshot
    assert {path: item.seq for path, item in core.lean_nodes.items()} == {"GS1/a": 10, "GS1/b": 12}
