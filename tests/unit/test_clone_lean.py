"""The clone core's lean mode (the recorder's read path) keeps exactly the classic mode's rules.

No sockets, no clock: the same frames go to a classic :class:`CloneCore` (``receive``, Changes) and a
lean one (``receive_node`` for NODEs, ``receive`` for heartbeats, as :meth:`Subscriber.poll_updates`
routes them); what the lean one accepts, its view and its sync state must be what the classic one
reports. The recorder's :meth:`RecorderCore.observe_updates` is checked against ``observe`` the same way.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import msgspec
import pytest
from clone_support import (
    CLIENT_EPOCH,
    GREEN,
    HUB_EPOCH,
    NOW,
    ORANGE,
    PREFIX,
    RED,
    WALL,
    Frames,
    beat,
    feed,
    load,
    node,
    removed,
    update,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from gsmon.common import protocol as proto
from gsmon.common.clone import Change, CloneCore, NodeState
from gsmon.common.recorder.core import RecorderCore, Row
from gsmon.common.recorder.policy import PathPattern, Policy, PolicyTable

OTHER_EPOCH = 0xBEEF


def lean_core(prefix: str = PREFIX) -> CloneCore:
    return CloneCore(prefix, "client-test", CLIENT_EPOCH, lean=True)


def classic_core(prefix: str = PREFIX) -> CloneCore:
    return CloneCore(prefix, "client-test", CLIENT_EPOCH)


def lean_feed(core: CloneCore, *messages: Frames) -> list[proto.NodeUpdate]:
    """Frames as Subscriber.poll_updates routes them: heartbeats to receive (with clocks), the rest to receive_node."""
    accepted: list[proto.NodeUpdate] = []
    for topic, payload in messages:
        if proto.is_heartbeat_topic(topic):
            assert core.receive(topic, payload, NOW, WALL) == []
        else:
            core.receive_node(topic, payload, accepted)
    return accepted


def as_pairs(updates: list[proto.NodeUpdate]) -> list[tuple[str, NodeState | None]]:
    return [(u.path, None if u.kind == proto.NODE_REMOVED else NodeState.from_update(u)) for u in updates]


def view(core: CloneCore) -> dict[str, tuple[int, Any, int]]:
    return {path: (state.alertcode, state.value, state.seq) for path, state in core.tree.items()}


@pytest.fixture
def synced() -> CloneCore:
    """A lean core following GS1/ with a snapshot at seq 10, publish counter 5, holding GS1/a and GS1/b."""
    core = lean_core()
    load(core, seq=10, published=5, nodes=[update("GS1/a", 3, GREEN, "a0"), update("GS1/b", 7, RED, "b0")])
    return core


def test_the_lean_view_holds_the_updates_and_its_tree_is_nodestates(synced: CloneCore) -> None:
    assert view(synced) == {"GS1/a": (GREEN, "a0", 3), "GS1/b": (RED, "b0", 7)}
    held = synced.updates
    assert all(type(item) is proto.NodeUpdate for item in held.values())
    assert {path: NodeState.from_update(item) for path, item in held.items()} == synced.tree


def test_updates_at_or_below_the_snapshot_seq_are_not_accepted_nor_counted(synced: CloneCore) -> None:
    """Rule 3: a NODE whose seq is at or below SNAPSHOT_END's is already in the snapshot."""
    assert lean_feed(synced, node("GS1/a", 9, RED, "old"), node("GS1/b", 10, GREEN, "old"), removed("GS1/a", 8)) == []
    assert view(synced) == {"GS1/a": (GREEN, "a0", 3), "GS1/b": (RED, "b0", 7)}
    lean_feed(synced, beat(10, {PREFIX: 5}))  # none of them counted: the count agrees
    assert not synced.wants_snapshot


def test_an_update_not_newer_than_the_node_held_is_counted_but_not_accepted() -> None:
    """Rule 3: the seq of the node held (here newer than the snapshot's) wins over a later-arriving older NODE."""
    core = lean_core()
    load(core, seq=10, published=0, nodes=[update("GS1/a", 20, GREEN, "held")])
    assert lean_feed(core, node("GS1/a", 15, RED, "older"), node("GS1/a", 20, RED, "same")) == []
    assert view(core) == {"GS1/a": (GREEN, "held", 20)}
    lean_feed(core, beat(20, {PREFIX: 2}))
    assert not core.wants_snapshot  # both counted (seq above the snapshot's)


def test_updates_after_the_snapshot_are_accepted_in_order_and_removals_only_of_held_nodes(synced: CloneCore) -> None:
    accepted = lean_feed(
        synced,
        node("GS1/a", 11, ORANGE, "a1"),
        node("GS1/new", 12, GREEN, "n"),
        removed("GS1/b", 13),
        removed("GS1/never-seen", 14),
    )
    assert [(u.path, u.seq, u.kind) for u in accepted] == [
        ("GS1/a", 11, proto.NODE_POINT),
        ("GS1/new", 12, proto.NODE_POINT),
        ("GS1/b", 13, proto.NODE_REMOVED),
    ]
    assert view(synced) == {"GS1/a": (ORANGE, "a1", 11), "GS1/new": (GREEN, "n", 12)}
    lean_feed(synced, beat(14, {PREFIX: 9}))
    assert not synced.wants_snapshot


def test_a_new_hub_epoch_in_a_node_is_not_accepted_and_flags_a_resync(synced: CloneCore) -> None:
    assert lean_feed(synced, node("GS1/a", 50, RED, "other hub", epoch=OTHER_EPOCH)) == []
    assert synced.tree["GS1/a"].value == "a0"
    assert synced.wants_snapshot


def test_a_heartbeat_count_that_disagrees_flags_a_resync(synced: CloneCore) -> None:
    lean_feed(synced, node("GS1/a", 11), beat(12, {PREFIX: 7}))  # two published, one received
    assert synced.wants_snapshot


def test_a_new_hub_epoch_in_a_heartbeat_flags_a_resync(synced: CloneCore) -> None:
    lean_feed(synced, beat(12, {PREFIX: 5}, epoch=OTHER_EPOCH))
    assert synced.wants_snapshot


def test_the_prefix_rule_is_by_segment_and_left_out_nodes_count() -> None:
    core = lean_core("GS1/Antenna1")
    load(core, seq=10, published=0, nodes=[update("GS1/Antenna1/x", 3)])
    accepted = lean_feed(core, node("GS1/Antenna10/y", 11), node("GS1/Antenna1/x", 12, RED))
    assert [u.path for u in accepted] == ["GS1/Antenna1/x"]
    assert sorted(core.tree) == ["GS1/Antenna1/x"]
    lean_feed(core, beat(12, {"GS1/Antenna1": 2}))
    assert not core.wants_snapshot


def test_garbage_is_dropped_and_the_loop_goes_on(synced: CloneCore) -> None:
    accepted = lean_feed(synced, (b"GS1/a", b"\xc1"), (b"GS1/a", b""), (b"\xff\xfe", node("GS1/a", 11)[1]))
    assert accepted == []
    assert lean_feed(synced, node("GS1/a", 12, RED)) != []


def test_receive_in_the_lean_mode_applies_a_node_and_reports_it_as_a_change(synced: CloneCore) -> None:
    """What Subscriber's connect reads with receive() (before the first snapshot, any frame) follows the same rules."""
    before = synced.tree["GS1/b"]
    assert feed(synced, node("GS1/b", 5, GREEN)) == []  # below the snapshot's seq
    (change,) = feed(synced, removed("GS1/b", 11))
    assert change == Change("GS1/b", before, None)
    assert "GS1/b" not in synced.updates


def test_a_new_snapshot_reports_what_differs_as_nodestates_and_not_the_epoch(synced: CloneCore) -> None:
    """Two hubs' equal nodes are no change (their NodeUpdates differ by the hub's epoch, NodeStates do not)."""
    classic = classic_core()
    load(classic, seq=10, published=5, nodes=[update("GS1/a", 3, GREEN, "a0"), update("GS1/b", 7, RED, "b0")])
    fresh = [update("GS1/a", 3, GREEN, "a0", epoch=OTHER_EPOCH), update("GS1/c", 4, ORANGE, "c", epoch=OTHER_EPOCH)]
    lean_changes = load(synced, seq=30, published=0, nodes=fresh, epoch=OTHER_EPOCH)
    classic_changes = load(classic, seq=30, published=0, nodes=fresh, epoch=OTHER_EPOCH)
    assert lean_changes == classic_changes
    assert sorted((c.path, c.new is None) for c in lean_changes) == [("GS1/b", True), ("GS1/c", False)]
    assert synced.epoch == OTHER_EPOCH
    assert synced.tree == classic.tree


def test_a_fork_keeps_the_lean_view_and_none_of_the_sync_state(synced: CloneCore) -> None:
    other = synced.fork()
    assert other.lean
    assert other.tree == synced.tree
    assert lean_feed(other, node("GS1/a", 11, RED)) == []  # no NODE before its own snapshot
    assert other.wants_snapshot


def test_a_lean_core_keeps_the_whole_view() -> None:
    with pytest.raises(ValueError, match="min_alert"):
        CloneCore(PREFIX, "client-test", CLIENT_EPOCH, RED, lean=True)


# -- the two modes side by side, on any sequence -------------------------------------------------------

PATHS = ("GS1/a", "GS1/b", "GS1/c", "GS10/x")
_step = st.one_of(
    st.tuples(st.just("node"), st.sampled_from(PATHS), st.integers(1, 40), st.sampled_from([HUB_EPOCH, OTHER_EPOCH])),
    st.tuples(st.just("removed"), st.sampled_from(PATHS), st.integers(1, 40), st.just(HUB_EPOCH)),
    st.tuples(st.just("beat"), st.just(""), st.integers(0, 40), st.integers(0, 30)),
    st.tuples(st.just("garbage"), st.sampled_from(PATHS), st.just(0), st.just(0)),
    st.tuples(st.just("snapshot"), st.just(""), st.integers(0, 40), st.integers(0, 30)),
)


def _frames(step: tuple[str, str, int, int]) -> Frames:
    kind, path, seq, extra = step
    if kind == "node":
        return node(path, seq, GREEN if seq % 2 else RED, float(seq), epoch=extra)
    if kind == "removed":
        return removed(path, seq)
    if kind == "beat":
        return beat(seq, {"GS1": extra})
    return (path.encode(), b"\x92\x01")  # garbage: a msgpack array, not a NODE map


@given(steps=st.lists(_step, max_size=40))
@settings(max_examples=150, deadline=None)
def test_the_lean_mode_accepts_exactly_what_the_classic_mode_reports(steps: list[tuple[str, str, int, int]]) -> None:
    """Any mix of NODEs (old, new, other epoch, outside the prefix), removals, heartbeats, garbage, snapshots."""
    classic, lean = classic_core("GS1"), lean_core("GS1")
    nodes = [update("GS1/a", 5), update("GS1/b", 9)]
    for core in (classic, lean):
        load(core, seq=8, published=0, nodes=nodes)
    for step in steps:
        if step[0] == "snapshot":
            held = [update(path, step[2] + 1 + index) for index, path in enumerate(("GS1/a", "GS1/c"))]
            assert load(lean, seq=step[2], published=step[3], nodes=held) == load(
                classic, seq=step[2], published=step[3], nodes=held
            )
            continue
        frames = _frames(step)
        expected = [(c.path, c.new) for c in feed(classic, frames)]
        assert as_pairs(lean_feed(lean, frames)) == expected
        assert lean.tree == classic.tree
        assert (lean.wants_snapshot, lean.confirmed, lean.epoch) == (
            classic.wants_snapshot,
            classic.confirmed,
            classic.epoch,
        )


# -- the recorder: observe_updates decides what observe decides ---------------------------------------

# Mostly floats a little apart (the deadband is 0.5), NaN twice in a row now and then, an int, a text.
_values = st.sampled_from([1.0, 1.2, 1.7, 3.0, 3.0, math.nan, math.nan, 2, "x"])
_observation = st.tuples(
    st.sampled_from(("GS1/a", "GS2/c")),  # path
    st.sampled_from((proto.NODE_POINT,) * 8 + (proto.NODE_PARENT, proto.NODE_REMOVED)),
    _values,
    st.sampled_from((GREEN, GREEN, GREEN, RED)),
    st.floats(0, 30),  # seconds on
)
POLICIES = {
    "seed": PolicyTable([(PathPattern("**"), Policy(min_interval_s=900, save_dt_s=900))]),
    "deadband": PolicyTable([(PathPattern("GS1/**"), Policy(deadband_abs=0.5, min_interval_s=2, save_dt_s=10))]),
    "none": PolicyTable(),
}


def _update(path: str, kind: str, value: Any, code: int, stale: bool, polled: float) -> proto.NodeUpdate:
    if kind == proto.NODE_REMOVED:
        return proto.NodeUpdate(path, HUB_EPOCH, 1, kind, 0, "", False)
    return proto.NodeUpdate(path, HUB_EPOCH, 1, kind, code, "", stale, value, "ant", polled, polled, 1.0)


@given(
    batches=st.lists(st.lists(_observation, max_size=6), max_size=10),
    policy=st.sampled_from(sorted(POLICIES)),
    context_at=st.integers(0, 8),
    stale_at=st.integers(0, 30),
)
@settings(max_examples=300, deadline=None)
def test_observe_updates_writes_the_rows_observe_writes(
    batches: list[list[tuple[str, str, Any, int, float]]], policy: str, context_at: int, stale_at: int
) -> None:
    """Batch by batch, with ticks, a context starting, a gap, a stale update: the same rows in the same order."""
    one_by_one, batched = RecorderCore(POLICIES[policy]), RecorderCore(POLICIES[policy])
    now = 1_700_000_000.0
    for index, batch in enumerate(batches):
        now += 3.0
        updates = [
            _update(path, kind, value, code, index * 7 + n == stale_at, now + on)  # one update turns stale
            for n, (path, kind, value, code, on) in enumerate(batch)
        ]
        if index == context_at:
            for core in (one_by_one, batched):
                core.set_context("pass", "GS1/", "p-1", now)
        if index == context_at + 2:
            for core in (one_by_one, batched):
                core.gap("GS1/", now - 2, now, "resync")
        for item in updates:
            one_by_one.observe(item.path, None if item.kind == proto.NODE_REMOVED else item, now, 7.0)
        batched.observe_updates(updates, now, 7.0)
        for core in (one_by_one, batched):
            core.tick(now + 1.0)
        expected: tuple[list[Row], list[Any]] = one_by_one.take()
        assert _same(batched.take(), expected)
    assert batched.observed == one_by_one.observed


def _same(found: tuple[list[Row], list[Any]], expected: tuple[list[Row], list[Any]]) -> bool:
    """Equal rows and events (a NaN value is equal to itself here)."""
    rows, events = found
    rows_expected, events_expected = expected
    key = [tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in row) for row in rows]
    key_expected = [tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in row) for row in rows_expected]
    return key == key_expected and events == events_expected


def test_observe_updates_under_the_seed_policy_saves_a_first_row_then_holds_moved_values() -> None:
    """The common case it writes out: a value moving inside the 900 s throttle is no row, and is written when due."""
    core = RecorderCore(POLICIES["seed"])
    t0 = 1_700_000_000.0
    core.observe_updates([_update("GS1/a", proto.NODE_POINT, 1.0, GREEN, False, t0)], t0, 0.0)
    assert [row.value for row in core.take()[0]] == [1.0]
    for step in range(1, 5):
        core.observe_updates([_update("GS1/a", proto.NODE_POINT, 1.0 + step, GREEN, False, t0 + step)], t0 + step, 0.0)
    core.tick(t0 + 10)
    assert core.take() == ([], [])
    core.tick(t0 + 900)
    (row,), _ = core.take()
    assert row.value == 5.0
    assert row.t_us == round((t0 + 4) * 1e6)
    core.observe_updates([_update("GS1/a", proto.NODE_REMOVED, None, 0, False, 0.0)], t0 + 901, 0.0)
    (marker,), _ = core.take()
    assert marker.value is None
    assert marker.level == 0


# -- the NODE decoder the lean path uses -----------------------------------------------------------------


@pytest.mark.parametrize(
    "operator",
    [None, {"since": 1_700_000_000.0}, {"since": 1.0, "attention": 2}, {"alarm": {"state": "unacked"}}, {"pending": 1}],
)
def test_decode_node_message_reads_a_node_as_decode_hub_message_does(operator: dict[str, Any] | None) -> None:
    """No operator key, the alarm layer's ``since`` alone (the hub's usual payload), and other keys."""
    sent = proto.NodeUpdate("GS1/a", HUB_EPOCH, 4, "point", RED, "RED", False, 2.5, "ant", 1.0, 2.0, 1.0, None, False)
    frames = proto.encode_node(msgspec.structs.replace(sent, operator=operator))
    assert proto.decode_node_message(*frames) == proto.decode_hub_message(*frames)
    assert proto.decode_node_message(*frames).operator == operator


def test_an_operator_key_holding_a_map_with_a_non_str_key_is_refused_by_both_decoders() -> None:
    payload = msgpack.packb(
        {"v": 1, "epoch": 1, "seq": 2, "kind": "point", "alert": 10, "alertstr": "GREEN", "stale": False, "since": 1.0}
        | {"alarm": {1: "x"}}
    )
    for decode in (proto.decode_node_message, proto.decode_hub_message):
        with pytest.raises(proto.ProtocolError, match=r"a map key in the alarm of 'GS1/a' is not a str"):
            decode(b"GS1/a", payload)
