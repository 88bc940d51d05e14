"""The subscriber's clone logic (:class:`CloneCore`), driven without a hub, sockets or a clock.

Snapshots are the SNAPSHOT_CHUNK / SNAPSHOT_END replies a hub would send, encoded and decoded
through the wire format; hub messages are the ``[topic, payload]`` frames the hub would publish;
time is a number passed in.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from clone_support import (
    CLIENT_EPOCH,
    CRITICAL,
    GREEN,
    HUB_EPOCH,
    NOW,
    ORANGE,
    PREFIX,
    RED,
    WALL,
    beat,
    feed,
    load,
    node,
    removed,
    replies_to,
    update,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from gsmon.common import protocol as proto
from gsmon.common.alerts import RedAlert
from gsmon.common.client import Subscriber
from gsmon.common.clone import (
    HUB_LIVENESS,
    RESUBSCRIBE_S,
    ClientEnvelope,
    CloneCore,
    NodeState,
    new_client_epoch,
)


def make_core(prefix: str = PREFIX, min_alert: Any = None) -> CloneCore:
    return CloneCore(prefix, "client-test", CLIENT_EPOCH, min_alert)


def view(core: CloneCore) -> dict[str, tuple[int, Any]]:
    return {path: (state.alertcode, state.value) for path, state in core.tree.items()}


@pytest.fixture
def synced() -> CloneCore:
    """A core following GS1/ with a snapshot at seq 10, publish counter 5, holding GS1/a and GS1/b."""
    core = make_core()
    load(core, seq=10, published=5, nodes=[update("GS1/a", 3, GREEN, "a0"), update("GS1/b", 7, RED, "b0")])
    return core


# -- the snapshot ----------------------------------------------------------------


def test_a_snapshot_becomes_the_view_and_reports_every_node() -> None:
    """Loading a snapshot fills the tree, sets the hub epoch and reports each node as appeared."""
    core = make_core()
    changes = load(
        core,
        seq=10,
        published=5,
        nodes=[update("GS1/Ant", 4, RED, kind=proto.NODE_PARENT), update("GS1/Ant/x", 4, RED, "v")],
    )
    assert core.epoch == HUB_EPOCH
    assert core.resyncs == 1
    assert sorted(core.tree) == ["GS1/Ant", "GS1/Ant/x"]
    assert core.tree["GS1/Ant/x"] == NodeState.from_update(update("GS1/Ant/x", 4, RED, "v"))
    assert core.tree["GS1/Ant/x"].name == "x"
    assert sorted((c.path, c.old, c.new is not None) for c in changes) == [
        ("GS1/Ant", None, True),
        ("GS1/Ant/x", None, True),
    ]


def test_a_snapshot_skips_removed_and_malformed_nodes() -> None:
    """Snapshot items that are removals or invalid payloads are left out, the rest still loads."""
    core = make_core()
    load(
        core,
        seq=10,
        published=0,
        nodes=[update("GS1/ok", 1), update("GS1/gone", 2, kind=proto.NODE_REMOVED)],
        extra_items=[("GS1/bad", {"kind": "point", "seq": "x"})],
    )
    assert sorted(core.tree) == ["GS1/ok"]
    assert not core.wants_snapshot  # every item the hub counted arrived, kept or not


def test_a_new_snapshot_reports_only_what_differs(synced: CloneCore) -> None:
    """A re-snapshot reports changed, vanished and new nodes, not unchanged ones, and clears the resync flag."""
    feed(synced, beat(11, {PREFIX: 99}))
    assert synced.wants_snapshot
    a_now = update("GS1/a", 3, GREEN, "a0")  # unchanged
    changes = load(synced, seq=20, published=9, nodes=[a_now, update("GS1/c", 15, ORANGE, "c0")])
    assert not synced.wants_snapshot
    assert synced.resyncs == 2
    assert sorted((c.path, c.old is not None, c.new is not None) for c in changes) == [
        ("GS1/b", True, False),
        ("GS1/c", False, True),
    ]
    assert [c.path for c in feed(synced, node("GS1/c", 21, RED, "c1"))] == ["GS1/c"]
    feed(synced, beat(21, {PREFIX: 10}))
    assert not synced.wants_snapshot  # counting restarted from the new snapshot's counter


def test_a_snapshot_whose_count_does_not_match_is_thrown_away_and_asked_for_again(synced: CloneCore) -> None:
    """Protocol, Snapshot framing: the hub drops a chunk when the client's queue is full; SNAPSHOT_END's
    count then exceeds what arrived, and the client asks again instead of loading a partial view."""
    feed(synced, beat(11, {PREFIX: 99}))
    before = view(synced)
    request = synced.snapshot_request(WALL)
    *_, end = replies_to(request, seq=20, published=9, nodes=[update("GS1/c", 15)], count=3)
    assert synced.snapshot_reply(end) == []  # the chunk was lost on the way: only the END arrives
    assert not synced.snapshot_outstanding
    assert synced.wants_snapshot
    assert (view(synced), synced.resyncs, synced.epoch) == (before, 1, HUB_EPOCH)
    feed(synced, beat(20, {PREFIX: 9}))  # the view is still the old snapshot's
    again = synced.tick(NOW, WALL).snapshot
    assert again is not None
    assert again.request_id != request.request_id
    for reply in replies_to(again, seq=20, published=9, nodes=[update("GS1/c", 15)]):
        synced.snapshot_reply(reply)
    assert not synced.wants_snapshot
    assert sorted(synced.tree) == ["GS1/c"]


def test_replies_to_an_earlier_request_are_ignored_and_an_error_ends_the_attempt() -> None:
    core = make_core()
    first = core.snapshot_request(WALL)
    second = core.snapshot_request(WALL)
    for reply in replies_to(first, seq=10, published=0, nodes=[update("GS1/late", 1)]):
        assert core.snapshot_reply(reply) == []
    assert core.snapshot_outstanding  # still waiting for the second
    assert core.tree == {}
    refused = proto.Error(sender="hub", epoch=HUB_EPOCH, seq=3, sent_ns=0, request_id=second.request_id, message="x")
    assert core.snapshot_reply(refused) == []
    assert not core.snapshot_outstanding
    assert core.wants_snapshot


# -- updates --------------------------------------------------------------------------


def test_updates_up_to_the_snapshot_seq_are_skipped(synced: CloneCore) -> None:
    """A NODE whose seq is at or below the snapshot's is already in it: ignored and not counted."""
    before = view(synced)
    assert feed(synced, node("GS1/a", 9, CRITICAL, "old"), node("GS1/b", 10, GREEN, "old"), removed("GS1/a", 8)) == []
    assert view(synced) == before
    feed(synced, beat(10, {PREFIX: 5}))
    assert not synced.wants_snapshot


def test_updates_after_the_snapshot_are_applied_and_reported(synced: CloneCore) -> None:
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


def test_nodes_the_prefix_rule_does_not_select_are_counted_but_not_applied() -> None:
    """Protocol, Prefixes: the topic GS1/Antenna1 also delivers GS1/Antenna10/...; the client drops it from
    the view after counting it, since the hub's counter counts by bytes, as ZeroMQ delivers."""
    core = make_core("GS1/Antenna1")
    load(core, seq=10, published=0, nodes=[update("GS1/Antenna1/x", 3)])
    assert feed(core, node("GS1/Antenna10/y", 11), node("GS1/Antenna1/x", 12, RED)) != []
    assert sorted(core.tree) == ["GS1/Antenna1/x"]
    feed(core, beat(12, {"GS1/Antenna1": 2}))
    assert not core.wants_snapshot


# -- gap detection ------------------------------------------------------------------------


def test_a_heartbeat_that_matches_the_count_received_keeps_the_view(synced: CloneCore) -> None:
    """published[prefix] - snapshot published == NODEs received since: in sync (removals count too)."""
    feed(synced, node("GS1/a", 11), removed("GS1/x", 12), beat(12, {PREFIX: 7, "other/": 100}))
    assert not synced.wants_snapshot


def test_a_heartbeat_that_disagrees_with_the_count_received_flags_a_resync(synced: CloneCore) -> None:
    """A NODE lost on the way (count lower than published) means a re-snapshot."""
    feed(synced, node("GS1/a", 11), beat(13, {PREFIX: 7}))  # the NODE with seq 12 never arrived
    assert synced.wants_snapshot


def test_a_restarted_publish_counter_flags_a_resync(synced: CloneCore) -> None:
    """A counter below the snapshot's (every subscriber left and came back) also means a re-snapshot."""
    feed(synced, beat(11, {PREFIX: 0}))
    assert synced.wants_snapshot


def test_a_heartbeat_sent_before_the_snapshot_is_not_a_gap(synced: CloneCore) -> None:
    """A heartbeat whose seq is below the snapshot's counts NODEs the snapshot already holds: ignored."""
    feed(synced, beat(9, {PREFIX: 3}))
    assert not synced.wants_snapshot
    feed(synced, beat(9, {PREFIX: 2}), node("GS1/a", 11), beat(11, {PREFIX: 6}))
    assert not synced.wants_snapshot


def test_a_heartbeat_without_our_prefix_makes_the_client_subscribe_again_then_resnapshot(
    synced: CloneCore,
) -> None:
    """Issue 11.9: a heartbeat newer than the snapshot that does not list our prefix means the hub neither
    counts nor publishes it (an accounting fault there must not freeze us): the client subscribes again
    and, once a heartbeat lists the prefix, takes a new snapshot. An older heartbeat, or one from a hub
    that says its counters are incomplete, proves nothing."""
    feed(synced, beat(5, {"GS2/": 40}))  # older than the snapshot (seq 10)
    feed(synced, beat(20, {}, complete=False))
    assert synced.confirmed
    assert not synced.wants_snapshot
    feed(synced, node("GS1/a", 11), beat(20, {"GS2/": 40}))
    assert not synced.confirmed  # subscribed again, awaiting confirmation
    assert not synced.wants_snapshot
    todo = synced.tick(NOW, WALL)
    assert todo.subscriptions is not None  # at once, each cancelled first
    assert (todo.subscriptions.topics, todo.subscriptions.again) == ((b"GS1/", proto.HUB_HEARTBEAT_TOPIC), True)
    assert todo.snapshot is None  # not before the subscriptions are confirmed
    feed(synced, beat(21, {"GS2/": 40}))  # still not listed: keep waiting (re-sent every second)
    assert not synced.confirmed
    assert synced.tick(NOW + 0.5, WALL).subscriptions is None
    assert synced.tick(NOW + RESUBSCRIBE_S, WALL).subscriptions is not None
    feed(synced, beat(22, {PREFIX: 0, "GS2/": 41}))
    assert synced.confirmed
    assert synced.wants_snapshot
    again = synced.tick(NOW + RESUBSCRIBE_S, WALL)
    assert again.subscriptions is None
    assert again.snapshot is not None


@pytest.mark.parametrize("frames", ["heartbeat", "node"])
def test_a_new_hub_epoch_flags_a_resync(synced: CloneCore, frames: str) -> None:
    """A heartbeat or NODE from another hub incarnation triggers a re-snapshot; the NODE is not applied."""
    before = view(synced)
    if frames == "heartbeat":
        feed(synced, beat(1, {PREFIX: 0}, epoch=HUB_EPOCH + 1))
    else:
        assert feed(synced, node("GS1/a", 500, CRITICAL, epoch=HUB_EPOCH + 1)) == []
    assert synced.wants_snapshot
    assert view(synced) == before


def test_garbage_from_the_hub_is_dropped(synced: CloneCore) -> None:
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
    assert not synced.wants_snapshot


def test_a_heartbeat_tells_the_hub_clock(synced: CloneCore) -> None:
    """hub_time() follows the hub's wall clock from its heartbeats, and ages use it."""
    feed(synced, beat(10, {PREFIX: 5}, sent_at=WALL + 1000.0))
    assert abs(synced.hub_time(WALL) - WALL - 1000.0) < 5.0
    age = synced.age_s(synced.tree["GS1/a"], WALL)
    assert age is not None
    assert age > 1000.0


def test_another_scopes_heartbeat_is_not_ours(synced: CloneCore) -> None:
    """A subscription to "" receives every scope's heartbeat: only INFO's topic counts (and keeps the hub alive)."""
    other = proto.scope_heartbeat_topic("limited")
    feed(synced, (other, beat(11, {PREFIX: 99})[1]))
    assert not synced.wants_snapshot
    assert synced.last_heartbeat is None


@given(
    count=st.integers(0, 30),
    lost=st.sets(st.integers(0, 29)),
    stale_beats=st.lists(st.integers(0, 10), max_size=3),
)
@settings(max_examples=100, deadline=None)
def test_a_resync_is_flagged_exactly_when_nodes_were_lost(count: int, lost: set[int], stale_beats: list[int]) -> None:
    """After any sequence of NODEs, a heartbeat flags a resync iff one of them did not arrive."""
    core = make_core()
    load(core, seq=100, published=40, nodes=[])
    lost = {index for index in lost if index < count}
    # Heartbeats from before the snapshot, then NODEs after it, each one delivered unless lost.
    frames = [beat(100 - back, {PREFIX: 40 - back}) for back in stale_beats]
    frames += [node(f"GS1/p{index}", 101 + index) for index in range(count) if index not in lost]
    frames.append(beat(100 + count, {PREFIX: 40 + count}))
    feed(core, *frames)
    assert core.wants_snapshot == bool(lost)


# -- subscribing, the heartbeat timeout -------------------------------------------------------------


def test_subscriptions_are_sent_again_every_second_until_a_heartbeat_lists_the_prefix() -> None:
    """Protocol, Subscribing 1-3: prefix then heartbeat topic; re-sent (cancelled first) each second until
    a heartbeat on INFO's topic lists the prefix; only then the snapshot is asked for."""
    core = make_core()
    scope = proto.scope_heartbeat_topic("ops")
    core.info(
        proto.Info(
            sender="hub", epoch=HUB_EPOCH, seq=1, sent_ns=0, request_id=1, endpoints={}, heartbeat_s=2.0, version="9"
        )
    )
    assert core.heartbeat_topic == proto.HUB_HEARTBEAT_TOPIC  # INFO without one: the hub's own
    core.info(
        proto.Info(
            sender="hub",
            epoch=HUB_EPOCH,
            seq=1,
            sent_ns=0,
            request_id=1,
            endpoints={},
            heartbeat_s=2.0,
            version="9",
            heartbeat_topic=scope,
        )
    )
    first = core.subscribe(NOW)
    assert (first.topics, first.again) == ((b"GS1/", scope), False)
    assert core.next_due() == NOW + RESUBSCRIBE_S
    assert core.tick(NOW + 0.5, WALL).subscriptions is None
    assert core.tick(NOW + 0.9, WALL).subscriptions is None
    resent = core.tick(NOW + RESUBSCRIBE_S, WALL).subscriptions
    assert resent is not None
    assert (resent.topics, resent.again) == ((b"GS1/", scope), True)
    feed(core, (scope, beat(3, {"GS2/": 1})[1]), now=NOW + 1.5)  # does not list GS1/: not yet
    assert not core.confirmed
    feed(core, (scope, beat(4, {PREFIX: 0})[1]), now=NOW + 1.6)
    assert core.confirmed
    assert core.next_due() is None
    assert core.heartbeat_s == 1.0  # the heartbeat's interval_s
    todo = core.tick(NOW + 1.7, WALL)
    assert todo.subscriptions is None
    assert todo.snapshot is not None
    assert todo.snapshot.prefix == PREFIX
    assert core.tick(NOW + 1.8, WALL).snapshot is None  # one at a time


def test_no_heartbeat_for_three_intervals_is_a_lost_hub_and_no_snapshot_is_asked_meanwhile(
    synced: CloneCore,
) -> None:
    """Protocol, HUB_HEARTBEAT: heartbeats stop -> hub lost, subscriptions kept; when they come back, a new
    epoch or a wrong count means a new snapshot, and a matching one none."""
    synced.tick(NOW, WALL)
    assert synced.hub_lost  # never heard
    feed(synced, beat(10, {PREFIX: 5}), now=NOW)
    synced.tick(NOW + HUB_LIVENESS * 1.0, WALL)
    assert not synced.hub_lost
    feed(synced, beat(10, {PREFIX: 99}), now=NOW)  # a gap, but the hub goes quiet before the snapshot
    lost = synced.tick(NOW + HUB_LIVENESS * 1.0 + 0.1, WALL)
    assert synced.hub_lost
    assert lost.snapshot is None
    assert lost.subscriptions is None  # kept as they are: ZeroMQ reconnects by itself
    feed(synced, beat(11, {PREFIX: 5}, epoch=HUB_EPOCH + 1), now=NOW + 10.0)  # back, restarted
    back = synced.tick(NOW + 10.0, WALL)
    assert not synced.hub_lost
    assert back.snapshot is not None


def test_nodes_read_behind_the_stream_keep_the_hub_alive_and_only_silence_loses_it(synced: CloneCore) -> None:
    """Rule 5: once a heartbeat was heard, a NODE is a sign of life too: a subscriber reading behind the
    stream (whose next heartbeat waits behind the NODEs) does not take its own slowness for a lost hub."""
    feed(synced, beat(10, {PREFIX: 5}), now=NOW)
    for second in (2.0, 4.0, 6.0):  # NODEs only, read late: no heartbeat for 6 s
        feed(synced, node("GS1/a", 10 + int(second)), now=NOW + second)
        synced.tick(NOW + second + 0.5, WALL)
        assert not synced.hub_lost, second
    assert synced.alive_at == NOW + 6.0
    synced.tick(NOW + 6.0 + HUB_LIVENESS * 1.0 + 0.1, WALL)  # then nothing at all
    assert synced.hub_lost


def test_nodes_before_any_heartbeat_do_not_make_a_hub_heard() -> None:
    core = make_core()
    feed(core, node("GS1/a", 3), now=NOW)
    core.tick(NOW, WALL)
    assert core.alive_at is None
    assert core.hub_lost  # connecting: the first heartbeat says the hub is there


def test_a_hub_back_with_a_matching_count_needs_no_snapshot(synced: CloneCore) -> None:
    feed(synced, beat(10, {PREFIX: 5}), now=NOW)
    synced.tick(NOW + 10.0, WALL)
    assert synced.hub_lost
    feed(synced, node("GS1/a", 11), beat(11, {PREFIX: 6}), now=NOW + 10.0)
    back = synced.tick(NOW + 10.0, WALL)
    assert not synced.hub_lost
    assert back.snapshot is None


# -- the client's own requests (protocol: Envelope) -----------------------------------------------------------


def test_requests_carry_the_clients_epoch_a_seq_per_connection_and_request_ids_of_their_own() -> None:
    """seq 1, 2, 3 ... per query connection (+1 per message), request_id from its own counter, the
    client's random non-zero epoch in every request."""
    core = make_core()
    hello = core.hello(WALL)
    first = core.snapshot_request(WALL + 1.0)
    second = core.snapshot_request(WALL + 2.0)
    assert [(m.seq, m.request_id) for m in (hello, first, second)] == [(1, 1), (2, 2), (3, 3)]
    assert {(m.sender, m.epoch) for m in (hello, first, second)} == {("client-test", CLIENT_EPOCH)}
    assert first.sent_ns == int((WALL + 1.0) * 1e9)
    core.new_query_socket()  # a new connection: its seq starts again, request ids go on
    again = core.hello(WALL)
    assert (again.seq, again.request_id) == (1, 4)
    decoded = proto.decode(proto.encode(again))
    assert isinstance(decoded, proto.Hello)
    assert (decoded.epoch, decoded.seq) == (CLIENT_EPOCH, 1)


def test_a_client_epoch_is_random_non_zero_and_uint63() -> None:
    epochs = {new_client_epoch() for _ in range(50)}
    assert len(epochs) > 1
    assert all(0 < epoch < 2**63 for epoch in epochs)


# -- min_alert ---------------------------------------------------------------------------------


def test_min_alert_filters_the_tree() -> None:
    """tree only holds nodes whose alert is at least min_alert (an int or an Alert class)."""
    for min_alert in (RED, RedAlert):
        core = make_core(min_alert=min_alert)
        changes = load(
            core,
            seq=10,
            published=0,
            nodes=[update("GS1/ok", 1, GREEN), update("GS1/bad", 2, RED), update("GS1/worse", 3, CRITICAL)],
        )
        assert core.min_alert == RED
        assert Subscriber("tcp://127.0.0.1:9", PREFIX, min_alert).min_alert == RED  # no socket before connect()
        assert sorted(core.tree) == ["GS1/bad", "GS1/worse"]
        assert sorted(c.path for c in changes) == ["GS1/bad", "GS1/worse"]


def test_min_alert_reports_crossings_as_appearing_and_going_away() -> None:
    """A node rising to min_alert appears (old None); dropping below it goes away (new None), once."""
    core = make_core(min_alert=RED)
    load(core, seq=10, published=0, nodes=[update("GS1/x", 1, GREEN)])
    assert feed(core, node("GS1/x", 11, ORANGE)) == []  # still below: not in the view
    (rise,) = feed(core, node("GS1/x", 12, CRITICAL))
    assert rise.old is None
    assert rise.new is not None
    assert rise.new.alertcode == CRITICAL
    (change,) = feed(core, node("GS1/x", 13, RED))
    assert change.old is not None
    assert change.new is not None
    assert (change.old.alertcode, change.new.alertcode) == (CRITICAL, RED)
    (drop,) = feed(core, node("GS1/x", 14, GREEN))
    assert drop.old is not None
    assert drop.old.alertcode == RED
    assert drop.new is None
    assert feed(core, node("GS1/x", 15, ORANGE), removed("GS1/x", 16)) == []
    assert core.tree == {}


def test_min_alert_applies_to_resync_changes() -> None:
    """A re-snapshot reports a node that fell below min_alert as gone, one that rose above as new."""
    core = make_core(min_alert=RED)
    load(core, seq=10, published=0, nodes=[update("GS1/up", 1, GREEN), update("GS1/down", 2, RED)])
    changes = load(core, seq=20, published=0, nodes=[update("GS1/up", 15, RED), update("GS1/down", 16, 0)])
    by_path = {c.path: c for c in changes}
    assert set(by_path) == {"GS1/up", "GS1/down"}
    assert by_path["GS1/up"].old is None
    assert by_path["GS1/up"].new is not None
    assert by_path["GS1/down"].old is not None
    assert by_path["GS1/down"].new is None


def test_the_client_envelope_counts_seq_per_connection_and_request_ids_across_connections() -> None:
    """protocol: Envelope -- one random non-zero epoch per incarnation, header seq 1, 2, 3 ... per query
    connection, request ids of their own that go on across connections; the encoded COMMAND decodes."""
    envelope = ClientEnvelope("client-x")
    assert 0 < envelope.epoch < 2**63
    first = envelope.command("alarms", {"prefix": "GS1"}, "ann")
    assert (first.sender, first.seq, first.request_id, first.user) == ("client-x", 1, 1, "ann")
    assert envelope.header(123)["seq"] == 2
    envelope.new_connection()
    second = proto.decode(proto.encode(envelope.command("journal", {"after_id": 0})))
    assert isinstance(second, proto.Command)
    assert (second.epoch, second.seq, second.request_id, second.command) == (envelope.epoch, 1, 2, "journal")
    assert second.args == {"after_id": 0}
    assert envelope.next_request_id() == 3
    assert ClientEnvelope("c", epoch=CLIENT_EPOCH).header(5) == {
        "sender": "c",
        "epoch": CLIENT_EPOCH,
        "seq": 1,
        "sent_ns": 5,
    }
