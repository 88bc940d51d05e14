"""(Protocol 1.4) NODES on the hub's side: the wire form, the ledger's NODES subscriptions (one counter per
prefix, a cap) and drain's batches (each NODE packed once for both streams). No sockets, time passed in."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gsmon.common import protocol as proto
from gsmon.common.protocol import PointEntry
from gsmon.hub.state import HubSettings, HubState
from gsmon.hub.subscriptions import MAX_NODES_PREFIXES, Outcome, SubscriptionLedger

SUB, UNSUB = b"\x01", b"\x00"
EPOCH, AGENT_EPOCH, WALL0 = 0xAB, 7, 1_700_000_000.0


# -- the wire form -----------------------------------------------------------------------------------------


@given(st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40))
def test_a_nodes_topic_names_its_prefix_and_no_other(prefix: str) -> None:
    topic = proto.nodes_topic(prefix)
    assert proto.nodes_prefix(topic) == prefix
    assert proto.nodes_prefix(topic[:-1]) is None  # not NUL-ended: a byte-prefix of other prefixes' topics
    assert not proto.is_heartbeat_topic(topic)


@pytest.mark.parametrize(
    "topic", [b"GS1/", b"\x00hub/heartbeat", b"\x00nodes/", b"\x00nodes/a\x00b\x00", b"\x00nodes/\xff\x00"]
)
def test_what_is_no_nodes_topic_names_no_prefix(topic: bytes) -> None:
    assert proto.nodes_prefix(topic) is None


@pytest.mark.parametrize("path_bytes", [1, 31, 32, 255, 256, 70_000], ids=lambda n: f"path{n}")
def test_a_nodes_payload_is_the_array_of_path_and_node_payload_pairs(path_bytes: int) -> None:
    """Spliced payloads, str headers of every msgpack width: any msgpack reader reads the pairs."""
    encoder = proto.NodeEncoder(EPOCH)
    items = [
        (("p" * path_bytes).encode(), encoder.point(1, 10, "GREEN", False, 1.5, "a", 1.0, 2.0, 1.0)),
        (b"GS1/x", encoder.removed(2)),
    ]
    payload = proto.encode_nodes(items)
    assert msgpack.unpackb(payload) == [[path.decode(), msgpack.unpackb(body)] for path, body in items]
    decoded, dropped = proto.decode_nodes(payload)
    assert dropped == []
    assert decoded == [proto.decode_node_message(path, body) for path, body in items]
    lean, dropped = proto.decode_lean_nodes(payload)
    assert dropped == []
    assert [node.to_update() for node in lean] == decoded


def test_an_array_of_twenty_items_has_the_array16_header() -> None:
    encoder = proto.NodeEncoder(EPOCH)
    items = [(f"GS1/{i}".encode(), encoder.removed(i + 1)) for i in range(20)]
    payload = proto.encode_nodes(items)
    assert payload[:3] == b"\xdc\x00\x14"
    assert len(proto.decode_nodes(payload)[0]) == 20


def test_info_and_heartbeats_say_nodes_and_batched_and_old_bytes_stay_old() -> None:
    """INFO ``nodes`` and HUB_HEARTBEAT ``batched`` round-trip; left at their defaults they are absent."""
    head: dict[str, Any] = {"sender": "hub", "epoch": EPOCH, "seq": 1, "sent_ns": 0}
    info = proto.Info(**head, request_id=1, endpoints={"agents": "a", "subscribers": "s", "query": "q"},
                      heartbeat_s=1.0, version="9", nodes=True)  # fmt: skip
    back = proto.decode(proto.encode(info))
    assert isinstance(back, proto.Info)
    assert back.nodes is True
    plain = dataclasses.replace(info, nodes=False)
    assert b"nodes" not in proto.encode(plain)
    beat = proto.HubHeartbeat(EPOCH, 4, 1.0, WALL0, {"GS1/": 3}, batched=("GS1/", ""))
    topic, payload = proto.encode_hub_heartbeat(beat)
    assert proto.decode_hub_message(topic, payload) == beat
    assert b"batched" not in proto.encode_hub_heartbeat(dataclasses.replace(beat, batched=()))[1]


# -- the ledger ------------------------------------------------------------------------------------------


def test_a_nodes_subscription_follows_its_prefix_under_the_prefixs_one_counter() -> None:
    """Plain and batch followers of one prefix share its counter; drain publishes plain frames only for
    the plain ones; the counter goes when the last follower of either kind does."""
    ledger = SubscriptionLedger()
    assert ledger.read(SUB + proto.nodes_topic("GS1/"), "rec", True) is Outcome.SUBSCRIBE
    assert ledger.nodes_followed() == ("GS1/",)
    assert ledger.followed() == ()  # nobody follows GS1/ plainly: no plain frames
    assert ledger.published_for() == {"GS1/": 0}
    assert ledger.read(SUB + b"GS1/", "watch", True) is Outcome.SUBSCRIBE
    assert ledger.followed() == ("GS1/",)
    ledger.count_published([], ["GS1/a", "GS2/b"], 2)
    assert ledger.published_for() == {"GS1/": 1}
    ledger.read(UNSUB + b"GS1/", "watch", True)
    assert (ledger.followed(), ledger.nodes_followed(), ledger.published_for()) == ((), ("GS1/",), {"GS1/": 1})
    ledger.read(UNSUB + proto.nodes_topic("GS1/"), "rec", True)
    assert (ledger.nodes_followed(), ledger.published_for()) == ((), {})
    assert ledger.nodes_followed_for(lambda prefix: True) == ()


def test_a_whole_tree_batch_follower_does_not_make_every_change_a_plain_frame() -> None:
    ledger = SubscriptionLedger()
    ledger.read(SUB + proto.nodes_topic(""), "rec", True)
    assert ledger.followed() == ()
    assert ledger.nodes_followed() == ("",)
    ledger.read(SUB + b"", "raw", True)
    assert ledger.followed() is None  # a plain whole-tree follower: every change


def test_past_the_cap_a_new_nodes_prefix_is_refused_and_a_followed_one_still_taken() -> None:
    ledger = SubscriptionLedger(max_per_subscriber=1000)
    for index in range(MAX_NODES_PREFIXES):
        assert ledger.read(SUB + proto.nodes_topic(f"P{index}/"), "many", True) is Outcome.SUBSCRIBE
    assert ledger.read(SUB + proto.nodes_topic("new/"), "other", True) is Outcome.REFUSED_CAP
    assert ledger.read(SUB + proto.nodes_topic("P0/"), "other", True) is Outcome.SUBSCRIBE
    assert ledger.read(SUB + b"new/", "other", True) is Outcome.SUBSCRIBE  # plain: no such cap
    assert len(ledger.nodes_followed()) == MAX_NODES_PREFIXES


def test_a_scopes_heartbeat_lists_only_the_batched_prefixes_it_may_read() -> None:
    ledger = SubscriptionLedger()
    for prefix in ("GS1/", "GS2/"):
        ledger.read(SUB + proto.nodes_topic(prefix), prefix, True)
    assert ledger.nodes_followed_for(lambda prefix: prefix.startswith("GS1/")) == ("GS1/",)


# -- drain -----------------------------------------------------------------------------------------------


def make_hub() -> HubState:
    return HubState(HubSettings(heartbeat_interval_s=1.0), EPOCH, now=0.0)


def state_of(paths: list[str]) -> proto.State:
    points = [PointEntry(path, float(index), 10, "GREEN", WALL0, None) for index, path in enumerate(paths)]
    return proto.State(sender="ant", epoch=AGENT_EPOCH, seq=1, sent_ns=0, mount="M", heartbeat_s=1.0, points=points)


def subscribe(hub: HubState, topic: bytes, who: str) -> None:
    assert hub.subscriptions.read(SUB + topic, who, True) is Outcome.SUBSCRIBE


def test_drain_gives_one_nodes_message_holding_every_node_the_plain_stream_has() -> None:
    """Both streams carry the same NODE payloads, in seq order; the counter counts each NODE once."""
    hub = make_hub()
    subscribe(hub, b"M/", "watch")
    subscribe(hub, proto.nodes_topic("M/"), "rec")
    hub.apply(state_of(["a", "b", "c"]), 0.0, WALL0)
    frames = hub.drain(WALL0)
    plain = [(topic, payload) for topic, payload in frames if not topic.startswith(b"\x00")]
    batches = [payload for topic, payload in frames if topic == proto.nodes_topic("M/")]
    assert [topic for topic, _ in plain] == [b"M/a", b"M/b", b"M/c"]
    assert len(batches) == 1
    assert msgpack.unpackb(batches[0]) == [[topic.decode(), msgpack.unpackb(body)] for topic, body in plain]
    assert hub.subscriptions.published_for() == {"M/": 3}


def test_with_only_batch_followers_drain_sends_no_plain_frame_and_cuts_long_batches() -> None:
    """Batches of at most MAX_NODES_BATCH_BYTES of payloads, every NODE once, in seq order."""
    hub = make_hub()
    subscribe(hub, proto.nodes_topic(""), "rec")
    count = 1005
    hub.apply(state_of([f"p{index}" for index in range(count)]), 0.0, WALL0)
    frames = hub.drain(WALL0)
    assert {topic for topic, _ in frames} == {proto.nodes_topic("")}
    batches = [proto.decode_nodes(payload)[0] for _, payload in frames]
    assert len(batches) > 1
    for _, payload in frames:
        items = msgpack.unpackb(payload)
        assert len(items) <= proto.MAX_NODES_PER_BATCH
        assert sum(len(msgpack.packb(node)) for _, node in items) <= proto.MAX_NODES_BATCH_BYTES
    assert sum(len(batch) for batch in batches) == count + 1  # the points and their mount
    seqs = [node.seq for batch in batches for node in batch]
    assert seqs == sorted(seqs)
    assert hub.subscriptions.published_for() == {"": count + 1}


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([1] * 2500, [1000, 1000, 500]),  # the node cap
        ([6000, 6000, 6000, 100], [2, 2]),  # the byte budget (16 KiB): a third 6,000 would pass it
        ([40_000, 10], [1, 1]),  # one node bigger than the budget goes alone
        ([], []),
    ],
    ids=["count", "bytes", "big-node", "none"],
)
def test_a_turns_nodes_are_cut_by_count_and_by_bytes(sizes: list[int], expected: list[int]) -> None:
    """encode_nodes_batches: whole batches that any msgpack reader reads, every node once, in order."""
    items = [(f"p{index}".encode(), msgpack.packb(b"x" * size)) for index, size in enumerate(sizes)]
    batches = proto.encode_nodes_batches(items)
    assert [len(msgpack.unpackb(batch)) for batch in batches] == expected
    assert [pair[0] for batch in batches for pair in msgpack.unpackb(batch)] == [f"p{i}" for i in range(len(sizes))]
