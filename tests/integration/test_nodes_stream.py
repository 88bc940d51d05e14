"""(Protocol 1.4) NODES: a real hub publishes a followed prefix's NODEs in batches, and a Subscriber in batches
and one a NODE at a time see the same tree; a hub at its cap of NODES prefixes makes the next client fall
back to the plain stream. Real ``gsmon hub`` and agent processes on loopback; the clients in this process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import zmq
from harness import Processes, polled, wait_until

from gsmon.common import protocol as proto
from gsmon.common.client import Subscriber

COUNTERS = {"parents": {"Rack": None}, "points": [{"name": f"P{i}", "counter": True, "dt": 0.05} for i in range(20)]}
RED = 30


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def levels(sub: Subscriber) -> dict[str, int]:
    return {path: node.alertcode for path, node in sub.tree.items() if path.startswith("GS1/")}


def test_a_subscriber_in_batches_and_one_a_node_at_a_time_follow_the_same_tree(
    procs: Processes, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    """Under 400 updates a second both count every NODE right (no snapshot after the first) and both see a
    point turn RED; a raw SUB on a NODES topic receives arrays of [path, NODE] pairs of that prefix only,
    and heartbeats listing it in ``batched``."""
    hub = procs.hub()
    ctl_file = procs.log_dir / "ctl.json"
    ctl_file.write_text(json.dumps([1, "GREEN"]))
    procs.agent(hub, "ant", COUNTERS, mount="GS1/Ant")
    procs.agent(hub, "ctl", {"points": [{"name": "Ctl", "file": str(ctl_file), "dt": 0.05}]}, mount="GS1/Ctl")
    batched = Subscriber(hub.query, "GS1/").connect()
    plain = Subscriber(hub.query, "GS1/", batches=False).connect()
    raw = context.socket(zmq.SUB)
    raw.connect(hub.subscribers)
    raw.setsockopt(zmq.SUBSCRIBE, proto.nodes_topic("GS1/Ant/"))
    raw.setsockopt(zmq.SUBSCRIBE, proto.HUB_HEARTBEAT_TOPIC)
    try:
        assert batched.batched
        assert not plain.batched
        pairs: list[Any] = []
        listed: list[bool] = []

        def raw_saw_both() -> bool:
            while raw.poll(0):
                topic, payload = raw.recv_multipart()
                if topic == proto.HUB_HEARTBEAT_TOPIC:
                    listed.append("GS1/Ant/" in msgpack.unpackb(payload).get("batched", []))
                else:
                    assert topic == proto.nodes_topic("GS1/Ant/")
                    pairs.extend(msgpack.unpackb(payload))
            return len(pairs) >= 100 and any(listed)

        wait_until(raw_saw_both, what="NODES messages and a heartbeat listing GS1/Ant/ in batched")
        assert all(path.startswith("GS1/Ant/") and node["kind"] in ("point", "parent") for path, node in pairs)
        changes = {"batched": 0, "plain": 0}

        def both_took_many() -> bool:
            changes["batched"] += len(batched.poll(0.02))
            changes["plain"] += len(plain.poll(0.02))
            return min(changes.values()) >= 400

        wait_until(both_took_many, timeout_s=20.0, what="400 changes in each subscriber")
        ctl_file.write_text(json.dumps([2, "RED"]))
        wait_until(
            lambda: polled(batched) and polled(plain) and levels(batched) == levels(plain)
            and levels(batched).get("GS1/Ctl/Ctl") == RED,
            what="GS1/Ctl/Ctl RED in both, every level alike",
        )  # fmt: skip
        assert (batched.resyncs, plain.resyncs) == (1, 1)  # every NODE counted: no gap, no new snapshot
        assert batched.tree["GS1/Ant/P3"].value > 1
    finally:
        raw.close(linger=0)
        batched.close()
        plain.close()


def test_a_hub_at_its_cap_of_nodes_prefixes_makes_the_next_client_follow_plainly(
    procs: Processes, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    """MAX_NODES_PREFIXES distinct prefixes followed in NODES (a raw SUB holding them): a new Subscriber's NODES
    subscription is refused; it gives batches up after 3 rounds and loads its tree on the plain topic."""
    hub = procs.hub()
    procs.agent(hub, "ant", COUNTERS, mount="GS1/Ant")
    hog = context.socket(zmq.SUB)
    hog.connect(hub.subscribers)
    for index in range(proto.MAX_NODES_PREFIXES):
        hog.setsockopt(zmq.SUBSCRIBE, proto.nodes_topic(f"Other{index}/"))
    hog.setsockopt(zmq.SUBSCRIBE, proto.HUB_HEARTBEAT_TOPIC)

    def all_listed() -> bool:
        while hog.poll(0):
            topic, payload = hog.recv_multipart()
            beat = msgpack.unpackb(payload)
            if topic == proto.HUB_HEARTBEAT_TOPIC and len(beat.get("batched", [])) == proto.MAX_NODES_PREFIXES:
                return True
        return False

    wait_until(all_listed, what="a heartbeat listing every NODES prefix")
    sub = Subscriber(hub.query, "GS1/", timeout_s=15.0).connect()
    try:
        assert not sub.batched
        first = sub.tree["GS1/Ant/P1"].value
        wait_until(lambda: polled(sub) and sub.tree["GS1/Ant/P1"].value > first, what="GS1/Ant/P1 to count on")
    finally:
        hog.close(linger=0)
        sub.close()
