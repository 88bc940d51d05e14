"""The subscriber's clone-pattern sync logic, driven without a hub or sockets.

A ``Subscriber`` opens no socket until ``connect()``. Its snapshot is loaded by
``_resync()`` with ``_request`` replaced by a stand-in that answers with encoded
SNAPSHOT_CHUNK / SNAPSHOT_END replies, and hub messages are fed to ``_handle``
as the ``[topic, payload]`` frames the hub would publish.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsmon.common import protocol as proto
from gsmon.common.alerts import STALE_ALERTCODE, RedAlert, alertstr_for
from gsmon.common.client import Change, NodeState, Subscriber

HUB_EPOCH = 0xC10E
PREFIX = "GS1/"
GREEN, ORANGE, RED, CRITICAL = 10, 20, 30, 100
Frames = tuple[bytes, bytes]


def update(
    path: str, seq: int, code: int = GREEN, value: Any = 1.0, kind: str = proto.NODE_POINT, epoch: int = HUB_EPOCH
) -> proto.NodeUpdate:
    if kind == proto.NODE_REMOVED:
        return proto.NodeUpdate(path, epoch, seq, kind, 0, "", False)
    is_point = kind == proto.NODE_POINT
    return proto.NodeUpdate(
        path,
        epoch,
        seq,
        kind,
        code,
        alertstr_for(code),
        code == STALE_ALERTCODE,
        value if is_point else None,
        "ant" if is_point else None,
        1_700_000_000.0 if is_point else None,
        1_700_000_000.5 if is_point else None,
        1.0 if is_point else None,
    )


def node(path: str, seq: int, code: int = GREEN, value: Any = 1.0, epoch: int = HUB_EPOCH) -> Frames:
    """The frames of a NODE (a point) as the hub publishes it."""
    return proto.encode_node(update(path, seq, code, value, epoch=epoch))


def removed(path: str, seq: int) -> Frames:
    return proto.encode_node(update(path, seq, kind=proto.NODE_REMOVED))


def beat(seq: int, published: dict[str, int], epoch: int = HUB_EPOCH, sent_at: float | None = None) -> Frames:
    sent = time.time() if sent_at is None else sent_at
    return proto.encode_hub_heartbeat(proto.HubHeartbeat(epoch, seq, 1.0, sent, published))


def make_subscriber(prefix: str = PREFIX, min_alert: Any = None) -> Subscriber:
    return Subscriber("tcp://127.0.0.1:9", prefix, min_alert)


def load(
    sub: Subscriber,
    monkeypatch: pytest.MonkeyPatch,
    *,
    seq: int,
    published: int,
    nodes: list[proto.NodeUpdate],
    epoch: int = HUB_EPOCH,
    extra_items: list[tuple[str, Any]] | None = None,
) -> list[Change]:
    """Take a snapshot whose replies are ``nodes`` (one chunk) and the given seq and publish counter."""

    def request(msg: Any) -> Iterator[proto.Message]:
        head = {"sender": "hub", "epoch": epoch, "sent_ns": 0, "request_id": msg.request_id}
        items = [(n.path, msgpack.unpackb(proto.encode_node(n)[1])) for n in nodes] + (extra_items or [])
        replies: list[proto.Message] = [
            proto.SnapshotChunk(**head, seq=1, nodes=items),
            proto.SnapshotEnd(**head, seq=2, seq_at=seq, count=len(items), published=published),
        ]
        for reply in replies:
            yield proto.decode(proto.encode(reply))  # through the wire format, as the client gets it

    monkeypatch.setattr(sub, "_request", request)
    return sub._resync()


def feed(sub: Subscriber, *messages: Frames) -> list[Change]:
    changes: list[Change] = []
    for topic, payload in messages:
        sub._handle(topic, payload, changes)
    return changes


def view(sub: Subscriber) -> dict[str, tuple[int, Any]]:
    return {path: (state.alertcode, state.value) for path, state in sub.tree.items()}


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> Subscriber:
    """A subscriber to GS1/ with a snapshot at seq 10, publish counter 5, holding GS1/a and GS1/b."""
    sub = make_subscriber()
    load(
        sub,
        monkeypatch,
        seq=10,
        published=5,
        nodes=[update("GS1/a", 3, GREEN, "a0"), update("GS1/b", 7, RED, "b0")],
    )
    return sub


# -- the snapshot ----------------------------------------------------------------


def test_a_snapshot_becomes_the_view_and_reports_every_node(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a snapshot fills the tree, sets the hub epoch and reports each node as appeared."""
    sub = make_subscriber()
    changes = load(
        sub,
        monkeypatch,
        seq=10,
        published=5,
        nodes=[update("GS1/Ant", 4, RED, kind=proto.NODE_PARENT), update("GS1/Ant/x", 4, RED, "v")],
    )
    assert sub.epoch == HUB_EPOCH
    assert sub.resyncs == 1
    assert sorted(sub.tree) == ["GS1/Ant", "GS1/Ant/x"]
    assert sub.tree["GS1/Ant/x"] == NodeState.from_update(update("GS1/Ant/x", 4, RED, "v"))
    assert sub.tree["GS1/Ant/x"].name == "x"
    assert sorted((c.path, c.old, c.new is not None) for c in changes) == [
        ("GS1/Ant", None, True),
        ("GS1/Ant/x", None, True),
    ]


def test_a_snapshot_skips_removed_and_malformed_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshot items that are removals or invalid payloads are left out, the rest still loads."""
    sub = make_subscriber()
    load(
        sub,
        monkeypatch,
        seq=10,
        published=0,
        nodes=[update("GS1/ok", 1), update("GS1/gone", 2, kind=proto.NODE_REMOVED)],
        extra_items=[("GS1/bad", {"kind": "point", "seq": "x"})],
    )
    assert sorted(sub.tree) == ["GS1/ok"]


def test_a_new_snapshot_reports_only_what_differs(synced: Subscriber, monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-snapshot reports changed, vanished and new nodes, not unchanged ones, and clears the resync flag."""
    feed(synced, beat(11, {PREFIX: 99}))
    assert synced._needs_resync
    a_now = update("GS1/a", 3, GREEN, "a0")  # unchanged
    changes = load(
        synced,
        monkeypatch,
        seq=20,
        published=9,
        nodes=[a_now, update("GS1/c", 15, ORANGE, "c0")],
    )
    assert not synced._needs_resync
    assert synced.resyncs == 2
    assert sorted((c.path, c.old is not None, c.new is not None) for c in changes) == [
        ("GS1/b", True, False),
        ("GS1/c", False, True),
    ]
    assert [c.path for c in feed(synced, node("GS1/c", 21, RED, "c1"))] == ["GS1/c"]
    feed(synced, beat(21, {PREFIX: 10}))
    assert not synced._needs_resync  # counting restarted from the new snapshot's counter


# -- updates --------------------------------------------------------------------------


def test_updates_up_to_the_snapshot_seq_are_skipped(synced: Subscriber) -> None:
    """A NODE whose seq is at or below the snapshot's is already in it: ignored and not counted."""
    before = view(synced)
    assert feed(synced, node("GS1/a", 9, CRITICAL, "old"), node("GS1/b", 10, GREEN, "old"), removed("GS1/a", 8)) == []
    assert view(synced) == before
    feed(synced, beat(10, {PREFIX: 5}))
    assert not synced._needs_resync


def test_updates_after_the_snapshot_are_applied_and_reported(synced: Subscriber) -> None:
    """Newer NODEs change, add and remove nodes, each reported once as (old, new)."""
    old_a = synced.tree["GS1/a"]
    changes = feed(
        synced,
        node("GS1/a", 11, ORANGE, "a1"),
        node("GS1/new", 12, GREEN, "n"),
        removed("GS1/b", 13),
        removed("GS1/never-seen", 14),
    )
    assert [(c.path, c.old, c.new) for c in changes] == [
        ("GS1/a", old_a, synced.tree["GS1/a"]),
        ("GS1/new", None, synced.tree["GS1/new"]),
        ("GS1/b", NodeState.from_update(update("GS1/b", 7, RED, "b0")), None),
    ]
    assert view(synced) == {"GS1/a": (ORANGE, "a1"), "GS1/new": (GREEN, "n")}
    assert synced.tree["GS1/a"].seq == 11


# -- gap detection ------------------------------------------------------------------------


def test_a_heartbeat_that_matches_the_count_received_keeps_the_view(synced: Subscriber) -> None:
    """published[prefix] - snapshot published == NODEs received since: in sync (removals count too)."""
    feed(synced, node("GS1/a", 11), removed("GS1/x", 12), beat(12, {PREFIX: 7, "other/": 100}))
    assert not synced._needs_resync


def test_a_heartbeat_that_disagrees_with_the_count_received_flags_a_resync(synced: Subscriber) -> None:
    """A NODE lost on the way (count lower than published) means a re-snapshot."""
    feed(synced, node("GS1/a", 11), beat(13, {PREFIX: 7}))  # the NODE with seq 12 never arrived
    assert synced._needs_resync


def test_a_restarted_publish_counter_flags_a_resync(synced: Subscriber) -> None:
    """A counter below the snapshot's (every subscriber left and came back) also means a re-snapshot."""
    feed(synced, beat(11, {PREFIX: 0}))
    assert synced._needs_resync


def test_a_heartbeat_sent_before_the_snapshot_is_not_a_gap(synced: Subscriber) -> None:
    """A heartbeat whose seq is below the snapshot's counts NODEs the snapshot already holds: ignored."""
    feed(synced, beat(9, {PREFIX: 3}))
    assert not synced._needs_resync
    feed(synced, beat(9, {PREFIX: 2}), node("GS1/a", 11), beat(11, {PREFIX: 6}))
    assert not synced._needs_resync


def test_a_heartbeat_without_our_prefix_makes_the_client_subscribe_again_then_resnapshot(
    synced: Subscriber,
) -> None:
    """Issue 11.9: a heartbeat newer than the snapshot that does not list our prefix means the hub neither
    counts nor publishes it (an accounting fault there must not freeze us): the client subscribes again
    and, once a heartbeat lists the prefix, takes a new snapshot. An older heartbeat, or one from a hub
    that says its counters are incomplete, proves nothing."""
    feed(synced, beat(5, {"GS2/": 40}))  # older than the snapshot (seq 10)
    feed(synced, _incomplete_beat(20))
    assert synced._confirmed
    assert not synced._needs_resync
    feed(synced, node("GS1/a", 11), beat(20, {"GS2/": 40}))
    assert not synced._confirmed  # subscribed again, awaiting confirmation
    assert not synced._needs_resync
    feed(synced, beat(21, {"GS2/": 40}))  # still not listed: keep waiting (re-sent every second)
    assert not synced._confirmed
    feed(synced, beat(22, {PREFIX: 0, "GS2/": 41}))
    assert synced._confirmed
    assert synced._needs_resync


def _incomplete_beat(seq: int) -> Frames:
    return proto.encode_hub_heartbeat(proto.HubHeartbeat(HUB_EPOCH, seq, 1.0, time.time(), {}, complete=False))


@pytest.mark.parametrize("frames", ["heartbeat", "node"])
def test_a_new_hub_epoch_flags_a_resync(synced: Subscriber, frames: str) -> None:
    """A heartbeat or NODE from another hub incarnation triggers a re-snapshot; the NODE is not applied."""
    before = view(synced)
    if frames == "heartbeat":
        feed(synced, beat(1, {PREFIX: 0}, epoch=HUB_EPOCH + 1))
    else:
        assert feed(synced, node("GS1/a", 500, CRITICAL, epoch=HUB_EPOCH + 1)) == []
    assert synced._needs_resync
    assert view(synced) == before


def test_garbage_from_the_hub_is_dropped(synced: Subscriber) -> None:
    """Undecodable frames change nothing and raise nothing."""
    before = view(synced)
    changes = feed(
        synced,
        (b"GS1/a", b"\xc1"),
        (b"GS1/\xff", node("GS1/a", 11)[1]),
        (proto.HUB_HEARTBEAT_TOPIC, msgpack.packb({"v": 1})),
        (b"GS1/a", msgpack.packb({"kind": "point"})),
    )
    assert changes == []
    assert view(synced) == before
    assert not synced._needs_resync


def test_a_heartbeat_tells_the_hub_clock(synced: Subscriber) -> None:
    """hub_time() follows the hub's wall clock from its heartbeats, and ages use it."""
    feed(synced, beat(10, {PREFIX: 5}, sent_at=time.time() + 1000.0))
    assert abs(synced.hub_time() - time.time() - 1000.0) < 5.0
    age = synced.age_s(synced.tree["GS1/a"])
    assert age is not None
    assert age > 1000.0


@given(
    count=st.integers(0, 30),
    lost=st.sets(st.integers(0, 29)),
    stale_beats=st.lists(st.integers(0, 10), max_size=3),
)
@settings(max_examples=100, deadline=None)
def test_a_resync_is_flagged_exactly_when_nodes_were_lost(count: int, lost: set[int], stale_beats: list[int]) -> None:
    """After any sequence of NODEs, a heartbeat flags a resync iff one of them did not arrive."""
    sub = make_subscriber()
    with pytest.MonkeyPatch.context() as monkeypatch:
        load(sub, monkeypatch, seq=100, published=40, nodes=[])
    lost = {index for index in lost if index < count}
    # Heartbeats from before the snapshot, then NODEs after it, each one delivered unless lost.
    frames = [beat(100 - back, {PREFIX: 40 - back}) for back in stale_beats]
    frames += [node(f"GS1/p{index}", 101 + index) for index in range(count) if index not in lost]
    frames.append(beat(100 + count, {PREFIX: 40 + count}))
    feed(sub, *frames)
    assert sub._needs_resync == bool(lost)


# -- min_alert ---------------------------------------------------------------------------------


def test_min_alert_filters_the_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    """tree only holds nodes whose alert is at least min_alert (an int or an Alert class)."""
    for min_alert in (RED, RedAlert):
        sub = make_subscriber(min_alert=min_alert)
        changes = load(
            sub,
            monkeypatch,
            seq=10,
            published=0,
            nodes=[update("GS1/ok", 1, GREEN), update("GS1/bad", 2, RED), update("GS1/worse", 3, CRITICAL)],
        )
        assert sub.min_alert == RED
        assert sorted(sub.tree) == ["GS1/bad", "GS1/worse"]
        assert sorted(c.path for c in changes) == ["GS1/bad", "GS1/worse"]


def test_min_alert_reports_crossings_as_appearing_and_going_away(monkeypatch: pytest.MonkeyPatch) -> None:
    """A node rising to min_alert appears (old None); dropping below it goes away (new None), once."""
    sub = make_subscriber(min_alert=RED)
    load(sub, monkeypatch, seq=10, published=0, nodes=[update("GS1/x", 1, GREEN)])
    assert feed(sub, node("GS1/x", 11, ORANGE)) == []  # still below: not in the view
    (rise,) = feed(sub, node("GS1/x", 12, CRITICAL))
    assert rise.old is None
    assert rise.new is not None
    assert rise.new.alertcode == CRITICAL
    (change,) = feed(sub, node("GS1/x", 13, RED))
    assert change.old is not None
    assert change.new is not None
    assert (change.old.alertcode, change.new.alertcode) == (CRITICAL, RED)
    (drop,) = feed(sub, node("GS1/x", 14, GREEN))
    assert drop.old is not None
    assert drop.old.alertcode == RED
    assert drop.new is None
    assert feed(sub, node("GS1/x", 15, ORANGE), removed("GS1/x", 16)) == []
    assert sub.tree == {}


def test_min_alert_applies_to_resync_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-snapshot reports a node that fell below min_alert as gone, one that rose above as new."""
    sub = make_subscriber(min_alert=RED)
    load(sub, monkeypatch, seq=10, published=0, nodes=[update("GS1/up", 1, GREEN), update("GS1/down", 2, RED)])
    changes = load(sub, monkeypatch, seq=20, published=0, nodes=[update("GS1/up", 15, RED), update("GS1/down", 16, 0)])
    by_path = {c.path: c for c in changes}
    assert set(by_path) == {"GS1/up", "GS1/down"}
    assert by_path["GS1/up"].old is None
    assert by_path["GS1/up"].new is not None
    assert by_path["GS1/down"].old is not None
    assert by_path["GS1/down"].new is None
