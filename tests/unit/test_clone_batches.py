"""(Protocol 1.4) The clone core follows its prefix in NODES batches: subscribed, confirmed, applied and
counted by the same rules as a NODE at a time; given up for the plain topic when the hub does not take
it. Frames through the wire format, time a number passed in (tests/unit/clone_support.py)."""

from __future__ import annotations

import pytest
from clone_support import CLIENT_EPOCH, GREEN, HUB_EPOCH, NOW, PREFIX, RED, WALL, beat, feed, load, node, nodes, update

from gsmon.common import protocol as proto
from gsmon.common.clone import BATCHES_FALLBACK_ROUNDS, RESUBSCRIBE_S, CloneCore


def info(batches: bool) -> proto.Info:
    return proto.Info(
        sender="hub",
        epoch=HUB_EPOCH,
        seq=1,
        sent_ns=0,
        request_id=1,
        endpoints={},
        heartbeat_s=1.0,
        version="9",
        nodes=batches,
    )


def make_core(*, lean: bool = False, hub_batches: bool = True, wanted: bool = True) -> CloneCore:
    core = CloneCore(PREFIX, "client-test", CLIENT_EPOCH, lean=lean, batches=wanted)
    core.info(info(hub_batches))
    return core


def synced(*, lean: bool = False) -> CloneCore:
    """Subscribed in batches, confirmed, a snapshot at seq 10 (publish counter 5) holding GS1/a and GS1/b."""
    core = make_core(lean=lean)
    core.subscribe(NOW)
    feed(core, beat(3, {PREFIX: 5}, batched=(PREFIX,)))
    assert core.confirmed
    load(core, seq=10, published=5, nodes=[update("GS1/a", 3, GREEN, "a0"), update("GS1/b", 7, RED, "b0")])
    return core


def values(core: CloneCore) -> dict[str, object]:
    return {path: state.value for path, state in core.tree.items()}


def test_a_hub_that_publishes_batches_is_followed_on_the_prefixs_nodes_topic() -> None:
    """INFO ``nodes``: the first subscription is the NODES topic, then the heartbeat topic; a 1.3 hub's INFO
    (no ``nodes``), or a client that asks for the plain stream, subscribes the prefix itself."""
    core = make_core()
    assert core.subscribe(NOW).topics == (b"\x00nodes/GS1/\x00", proto.HUB_HEARTBEAT_TOPIC)
    assert make_core(hub_batches=False).subscribe(NOW).topics == (b"GS1/", proto.HUB_HEARTBEAT_TOPIC)
    assert make_core(wanted=False).subscribe(NOW).topics == (b"GS1/", proto.HUB_HEARTBEAT_TOPIC)


def test_only_a_heartbeat_listing_the_prefix_in_batched_confirms_a_batch_subscription() -> None:
    """The prefix's counter may exist for another client's plain subscription: that proves nothing of ours."""
    core = make_core()
    core.subscribe(NOW)
    feed(core, beat(3, {PREFIX: 5}))  # counted, but not batched: someone follows it plainly
    assert not core.confirmed
    feed(core, beat(4, {PREFIX: 5}, batched=("GS2/",)))
    assert not core.confirmed
    feed(core, beat(5, {PREFIX: 5}, batched=(PREFIX, "GS2/")))
    assert core.confirmed


@pytest.mark.parametrize("lean", [False, True], ids=["full", "lean"])
def test_a_batchs_nodes_are_applied_and_counted_as_nodes_one_at_a_time(lean: bool) -> None:
    """Rules 3-4 per node of a batch: old seqs skipped, the prefix rule applied (counted all the same),
    the heartbeat's count matched -- exactly what the same NODEs one at a time do to a plain core."""
    batched, plain = synced(lean=lean), CloneCore(PREFIX, "client-test", CLIENT_EPOCH, lean=lean)
    load(plain, seq=10, published=5, nodes=[update("GS1/a", 3, GREEN, "a0"), update("GS1/b", 7, RED, "b0")])
    stream = [
        update("GS1/a", 9, GREEN, "old"),  # in the snapshot already
        update("GS1/a", 11, RED, "a1"),
        update("GS1b/x", 12, GREEN, "not ours"),  # matched bytes, not the prefix rule: counted, not applied
        update("GS1/c", 13, GREEN, "c1"),
        update("GS1/b", 14, kind=proto.NODE_REMOVED),
    ]
    changes = feed(batched, nodes(PREFIX, *stream))
    plain_changes = feed(plain, *(proto.encode_node(item) for item in stream))
    assert [(c.path, c.old, c.new) for c in changes] == [(c.path, c.old, c.new) for c in plain_changes]
    assert values(batched) == values(plain) == {"GS1/a": "a1", "GS1/c": "c1"}
    feed(batched, beat(20, {PREFIX: 5 + 4}, batched=(PREFIX,)))  # 4 NODEs after the snapshot's seq
    assert not batched.wants_snapshot
    feed(batched, nodes(PREFIX, update("GS1/a", 21, GREEN, "a2")))
    feed(batched, beat(22, {PREFIX: 5 + 4 + 2}, batched=(PREFIX,)))  # one of two lost on the way
    assert batched.wants_snapshot


def test_the_lean_read_paths_batch_entry_appends_what_it_applied() -> None:
    """receive_batch (read_updates' path): the LeanNodes applied, in order; another prefix's batch is not ours."""
    core = synced(lean=True)
    accepted: list[proto.LeanNode] = []
    topic, payload = nodes(PREFIX, update("GS1/a", 11, RED, "a1"), update("GS1/c", 12, GREEN, "c1"))
    core.receive_batch(topic, payload, accepted)
    assert [(n.path, n.value) for n in accepted] == [("GS1/a", "a1"), ("GS1/c", "c1")]
    other_topic, other_payload = nodes("GS2/", update("GS2/z", 13))
    core.receive_batch(other_topic, other_payload, accepted)
    assert len(accepted) == 2
    feed(core, beat(14, {PREFIX: 7}, batched=(PREFIX, "GS2/")))
    assert not core.wants_snapshot  # 2 counted: the other prefix's batch was neither applied nor counted


def test_another_prefixs_batches_and_plain_nodes_on_a_batch_core_are_told_apart() -> None:
    """A subscription to "" receives every topic: a core never applies another prefix's NODES; a core
    following plainly ignores NODES altogether."""
    core = synced()
    assert feed(core, nodes("", update("GS1/a", 11, RED, "a1"))) == []
    assert values(core)["GS1/a"] == "a0"
    plain = CloneCore(PREFIX, "client-test", CLIENT_EPOCH)
    load(plain, seq=10, published=5, nodes=[update("GS1/a", 3, GREEN, "a0")])
    assert feed(plain, nodes(PREFIX, update("GS1/a", 11, RED, "a1"))) == []
    assert feed(plain, node("GS1/a", 12, RED, "a2")) != []


def test_a_malformed_batch_is_dropped_and_a_bad_item_costs_only_itself() -> None:
    core = synced()
    topic = proto.nodes_topic(PREFIX)
    assert feed(core, (topic, b"\x93\x01\x02")) == []  # not [path, payload] items
    assert feed(core, (topic, b"\xc1")) == []  # not msgpack
    good = proto.encode_node(update("GS1/a", 11, RED, "a1"))
    payload = proto.encode_nodes([(b"GS1/bad", b"\x81\xa1v\x01"), good])  # the first lacks every NODE key
    changes = feed(core, (topic, payload))
    assert [c.path for c in changes] == ["GS1/a"]
    feed(core, beat(12, {PREFIX: 5 + 1}, batched=(PREFIX,)))
    assert not core.wants_snapshot  # the bad item was not counted: the hub counted 1, as we did


def test_a_heartbeat_that_stops_listing_our_batches_makes_the_core_subscribe_again() -> None:
    """Rule 4 for batches: the hub no longer makes them (its subscriptions socket was rebuilt, say)."""
    core = synced()
    feed(core, beat(11, {PREFIX: 5}, batched=()), now=NOW + 1)
    assert not core.confirmed
    again = core.tick(NOW + 1, WALL).subscriptions
    assert again is not None
    assert again.topics[0] == proto.nodes_topic(PREFIX)
    feed(core, beat(12, {PREFIX: 5}, batched=(PREFIX,)), now=NOW + 2)
    assert core.confirmed
    assert core.wants_snapshot


def test_a_batch_subscription_the_hub_never_confirms_is_given_up_for_the_plain_topic() -> None:
    """After BATCHES_FALLBACK_ROUNDS heartbeats that did not list it (a hub at its cap of NODES prefixes): the
    NODES topic is cancelled, the plain topic subscribed, confirmed as a plain subscription is; for good."""
    core = make_core()
    now = NOW
    core.subscribe(now)
    for seq in range(BATCHES_FALLBACK_ROUNDS):
        feed(core, beat(3 + seq, {PREFIX: 5}), now=now)  # counted (someone else's plain one), not batched
        assert not core.confirmed
        now += RESUBSCRIBE_S
        sent = core.tick(now, WALL).subscriptions
        assert sent is not None
        if seq < BATCHES_FALLBACK_ROUNDS - 1:
            assert sent.topics[0] == proto.nodes_topic(PREFIX)
            assert sent.cancel == ()
    assert sent.cancel == (proto.nodes_topic(PREFIX),)
    assert (sent.topics, sent.again) == ((b"GS1/", core.heartbeat_topic), True)
    assert not core.batched
    feed(core, beat(9, {PREFIX: 5}), now=now)
    assert core.confirmed
    core.info(info(True))  # a reconnection's INFO: still plain
    assert core.subscribe(now).topics[0] == b"GS1/"


def test_a_client_waiting_for_a_silent_hub_keeps_asking_for_batches() -> None:
    """No heartbeat at all (the hub is down, or moving to its pair): rounds go by, batches are not given up."""
    core = make_core()
    now = NOW
    core.subscribe(now)
    for _ in range(10 * BATCHES_FALLBACK_ROUNDS):
        now += RESUBSCRIBE_S
        sent = core.tick(now, WALL).subscriptions
        assert sent is not None
        assert sent.topics[0] == proto.nodes_topic(PREFIX)
    assert core.batched
