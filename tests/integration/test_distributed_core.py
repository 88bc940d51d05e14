"""The distributed core end to end: hub + agent processes + subscribers on loopback TCP."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import zmq
from harness import Hub, Processes, polled, wait_until

from gsmon.common import protocol as proto
from gsmon.common.alerts import STALE_ALERTCODE, CriticalAlert, GreenAlert, OrangeAlert, RedAlert
from gsmon.common.client import Subscriber

ANTENNA = {
    "parents": {"Drive": None},
    "points": [
        {"name": "Az", "parent": "Drive", "value": 182.5, "alert": "GREEN", "dt": 0.2},
        {"name": "El", "parent": "Drive", "value": -3.0, "alert": "RED", "dt": 0.2},
        {"name": "Ticks", "counter": True, "dt": 0.1},
    ],
}
RACK = {
    "parents": {"Rack": None},
    "points": [{"name": "Inlet temp", "parent": "Rack", "value": 31.5, "alert": "ORANGE", "dt": 0.2}],
}
OTHER = {"points": [{"name": "Feed", "value": "jammed", "alert": "CRITICAL", "dt": 0.2}]}

EXPECTED_LEAVES = {
    "GS1/Antenna1/Drive/Az",
    "GS1/Antenna1/Drive/El",
    "GS1/Antenna1/Ticks",
    "GS1/Antenna1/Rack/Inlet temp",
    "GS1/Antenna2/Feed",
}


def _station(procs: Processes) -> Hub:
    """Three agents: two share the mount GS1/Antenna1, one is GS1/Antenna2."""
    hub = procs.hub()
    procs.agent(hub, "ant1", ANTENNA, mount="GS1/Antenna1")
    procs.agent(hub, "rack1", RACK, mount="GS1/Antenna1")
    procs.agent(hub, "ant2", OTHER, mount="GS1/Antenna2")
    return hub


def _leaves(sub: Subscriber, prefix: str = "GS1/") -> set[str]:
    return {path for path, node in sub.tree.items() if node.kind == "point" and path.startswith(prefix)}


def _full(sub: Subscriber) -> bool:
    sub.poll(0.05)
    return _leaves(sub) == EXPECTED_LEAVES


def test_global_tree_is_the_union_of_the_agents_with_worst_child_rollup(procs: Processes) -> None:
    """Three agents merge into one tree; a parent shared by two agents holds both; parents show the worst child."""
    hub = _station(procs)
    with Subscriber(hub.query, "") as sub:
        wait_until(lambda: _full(sub), what="all five leaves")
        tree = sub.tree
        assert tree["GS1/Antenna1/Drive/Az"].value == 182.5
        assert tree["GS1/Antenna1/Drive/Az"].alertcode == GreenAlert.alertcode
        assert tree["GS1/Antenna1/Drive/Az"].agent == "ant1"
        assert tree["GS1/Antenna1/Rack/Inlet temp"].agent == "rack1"
        assert tree["GS1/Antenna1/Drive"].alertcode == RedAlert.alertcode
        assert tree["GS1/Antenna1/Rack"].alertcode == OrangeAlert.alertcode
        # The shared parent: the worst of ant1's Red and rack1's Orange.
        assert tree["GS1/Antenna1"].kind == "parent"
        assert tree["GS1/Antenna1"].alertcode == RedAlert.alertcode
        assert tree["GS1/Antenna2"].alertcode == CriticalAlert.alertcode
        assert tree["GS1"].alertcode == CriticalAlert.alertcode
        assert not any(node.stale for path, node in tree.items() if path.startswith("GS1"))
        # The hub reports on itself under _hub/.
        wait_until(lambda: polled(sub, 0.05) and sub.tree.get("_hub/agents_live") is not None, what="hub health")
        wait_until(lambda: polled(sub, 0.05) and sub.tree["_hub/agents_live"].value == 3, what="3 live agents")
        assert sub.tree["_hub/agents/rack1"].value == "live"


def test_late_subscriber_gets_the_full_subtree_then_live_changes(procs: Processes) -> None:
    """A subscriber that joins late gets everything at once, then every new value."""
    hub = _station(procs)
    with Subscriber(hub.query, "") as early:
        wait_until(lambda: _full(early), what="the early subscriber's tree")
    with Subscriber(hub.query, "GS1/Antenna1/") as late:
        assert _leaves(late, "GS1/Antenna1/") == {p for p in EXPECTED_LEAVES if p.startswith("GS1/Antenna1/")}
        first = late.tree["GS1/Antenna1/Ticks"].value
        wait_until(
            lambda: polled(late, 0.05) and late.tree["GS1/Antenna1/Ticks"].value >= first + 3,
            what="three new counter values",
        )


def test_prefix_delivers_nothing_outside_it(procs: Processes) -> None:
    """Neither the client nor a raw SUB on the prefix ever sees a path outside the prefix."""
    hub = _station(procs)
    context = zmq.Context()
    raw = context.socket(zmq.SUB)
    raw.setsockopt(zmq.LINGER, 0)
    try:
        with Subscriber(hub.query, "GS1/Antenna2/") as sub:
            raw.connect(sub.endpoints["subscribers"])
            raw.setsockopt(zmq.SUBSCRIBE, b"GS1/Antenna2/")
            seen: set[str] = set(sub.tree)
            for change in sub.changes(timeout_s=1.5):
                seen.add(change.path)
            raw_topics = set()
            while raw.poll(0):
                raw_topics.add(raw.recv_multipart()[0].decode())
        assert seen == {"GS1/Antenna2/Feed"}
        assert raw_topics == {"GS1/Antenna2/Feed"}
    finally:
        raw.close()
        context.term()


def _stale_under(sub: Subscriber, prefix: str) -> bool:
    sub.poll(0.05)
    nodes = [node for path, node in sub.tree.items() if path.startswith(prefix) and node.kind == "point"]
    return bool(nodes) and all(node.stale and node.alertcode >= STALE_ALERTCODE for node in nodes)


def _live_under(sub: Subscriber, prefix: str) -> bool:
    sub.poll(0.05)
    nodes = [node for path, node in sub.tree.items() if path.startswith(prefix) and node.kind == "point"]
    return bool(nodes) and not any(node.stale for node in nodes)


def test_killed_agent_turns_stale_and_its_ancestors_at_least_stale(procs: Processes) -> None:
    """SIGKILL of an agent: its points go STALE within the liveness deadline; others stay live."""
    hub = procs.hub()
    victim = procs.agent(hub, "ant2", OTHER, mount="GS1/Antenna2")
    procs.agent(hub, "ant1", ANTENNA, mount="GS1/Antenna1")
    # Prefix "GS1" (no slash) includes the GS1 node itself.
    with Subscriber(hub.query, "GS1") as sub:
        wait_until(lambda: _live_under(sub, "GS1/Antenna2/") and _live_under(sub, "GS1/Antenna1/"))
        victim.kill()
        # Liveness: 3 heartbeats of 0.2 s; allow generous slack for a loaded CI box.
        wait_until(lambda: _stale_under(sub, "GS1/Antenna2/"), timeout_s=5.0, what="ant2 STALE")
        tree = sub.tree
        # Critical stays Critical (stale never hides something worse); ancestors at least STALE.
        assert tree["GS1/Antenna2/Feed"].alertcode == CriticalAlert.alertcode
        assert tree["GS1/Antenna2"].alertcode >= STALE_ALERTCODE
        assert tree["GS1"].alertcode >= STALE_ALERTCODE
        assert _live_under(sub, "GS1/Antenna1/")


def test_stopped_agent_goes_stale_and_recovers_when_continued(procs: Processes) -> None:
    """SIGSTOP (TCP connection still open) turns the agent STALE; SIGCONT brings it back."""
    hub = procs.hub()
    frozen = procs.agent(hub, "ant1", ANTENNA, mount="GS1/Antenna1")
    with Subscriber(hub.query, "GS1/") as sub:
        wait_until(lambda: _live_under(sub, "GS1/Antenna1/"))
        frozen.signal(signal.SIGSTOP)
        wait_until(lambda: _stale_under(sub, "GS1/Antenna1/"), timeout_s=5.0, what="STALE while stopped")
        assert sub.tree["GS1/Antenna1/Drive"].alertcode >= STALE_ALERTCODE
        frozen.signal(signal.SIGCONT)
        wait_until(lambda: _live_under(sub, "GS1/Antenna1/"), timeout_s=5.0, what="live again after SIGCONT")
        assert sub.tree["GS1/Antenna1/Drive"].alertcode == RedAlert.alertcode


def test_restarted_hub_is_refilled_and_subscribers_resync_by_themselves(procs: Processes) -> None:
    """Kill the hub, start it on the same endpoints: agents refill it, a subscriber follows on its own."""
    hub = _station(procs)
    with Subscriber(hub.query, "GS1", timeout_s=2.0) as sub:
        wait_until(lambda: _full(sub), what="the tree before the restart")
        first_epoch = sub.epoch
        hub.process.kill()
        wait_until(lambda: polled(sub, 0.1) and sub.hub_lost, timeout_s=5.0, what="the subscriber to notice")
        # Same endpoints as the first hub reported (its ports, not ones we picked).
        again = procs.hub(agents=hub.agents, subscribers=hub.subscribers, query=hub.query, name="hub-restarted")
        assert again.agents == hub.agents
        wait_until(
            lambda: polled(sub, 0.1) and sub.epoch != first_epoch and _full(sub) and not sub.hub_lost,
            timeout_s=8.0,
            what="the subscriber's resync with the new hub",
        )
        assert all(not node.stale for path, node in sub.tree.items() if node.kind == "point")
        assert sub.tree["GS1"].alertcode == CriticalAlert.alertcode
    with Subscriber(again.query, "") as fresh:
        assert _leaves(fresh) == EXPECTED_LEAVES


def test_second_agent_claiming_a_leaf_is_refused_and_counted(procs: Processes) -> None:
    """Two agents publishing the same leaf path: the first keeps it, the second is counted as a conflict."""
    hub = procs.hub()
    procs.agent(hub, "ant2", OTHER, mount="GS1/Antenna2")
    with Subscriber(hub.query, "") as sub:
        wait_until(lambda: polled(sub, 0.05) and "GS1/Antenna2/Feed" in sub.tree)
        impostor = {"points": [{"name": "Feed", "value": "fine", "alert": "GREEN", "dt": 0.2}]}
        procs.agent(hub, "impostor", impostor, mount="GS1/Antenna2")
        wait_until(
            lambda: polled(sub, 0.05) and (sub.tree.get("_hub/conflicts") and sub.tree["_hub/conflicts"].value > 0),
            what="a counted conflict",
        )
        sub.poll(0.5)
        assert sub.tree["GS1/Antenna2/Feed"].agent == "ant2"
        assert sub.tree["GS1/Antenna2/Feed"].value == "jammed"


def test_restarted_agent_loses_points_it_no_longer_reports(procs: Processes, tmp_path: Path) -> None:
    """A new incarnation of an agent with fewer points: the missing ones go after the grace period."""
    hub = procs.hub()
    first = procs.agent(hub, "ant1", ANTENNA, mount="GS1/Antenna1")
    with Subscriber(hub.query, "GS1/") as sub:
        wait_until(lambda: _live_under(sub, "GS1/Antenna1/") and "GS1/Antenna1/Ticks" in sub.tree)
        first.stop()
        smaller = {"parents": {"Drive": None}, "points": ANTENNA["points"][:1]}
        procs.agent(hub, "ant1", smaller, mount="GS1/Antenna1")
        wait_until(
            lambda: polled(sub, 0.05) and _leaves(sub) == {"GS1/Antenna1/Drive/Az"},
            timeout_s=6.0,
            what="El and Ticks removed",
        )
        # The parent's own NODE may come a turn after its last removed leaf's.
        wait_until(
            lambda: polled(sub, 0.05) and sub.tree["GS1/Antenna1/Drive"].alertcode == GreenAlert.alertcode,
            timeout_s=6.0,
            what="the parent GREEN again",
        )
        assert not sub.tree["GS1/Antenna1/Drive/Az"].stale


def test_a_point_changed_by_its_agent_is_seen_by_subscribers(procs: Processes, tmp_path: Path) -> None:
    """Changing a point's alert at its source changes it, and its parents, at every subscriber."""
    control = tmp_path / "ctl.json"
    control.write_text(json.dumps([1, "GREEN"]))
    hub = procs.hub()
    procs.agent(hub, "ant1", {"points": [{"name": "Ctl", "file": str(control), "dt": 0.1}]}, mount="GS1/Antenna1")
    with Subscriber(hub.query, "GS1") as sub:
        wait_until(lambda: polled(sub, 0.05) and ("GS1/Antenna1/Ctl" in sub.tree))
        control.write_text(json.dumps([99, "RED"]))
        wait_until(lambda: polled(sub, 0.05) and sub.tree["GS1"].alertcode == RedAlert.alertcode, what="RED at GS1")
        assert sub.tree["GS1/Antenna1/Ctl"].value == 99


def test_hub_rejects_garbage_and_keeps_serving(procs: Processes) -> None:
    """Malformed frames on the agents socket are counted and dropped; the next good agent is applied."""
    hub = procs.hub()
    context = zmq.Context()
    rogue = context.socket(zmq.PUB)
    rogue.setsockopt(zmq.LINGER, 0)
    try:
        rogue.connect(hub.agents)
        with Subscriber(hub.query, "") as sub:

            def rejected() -> int:
                node = sub.tree.get("_hub/messages_rejected")
                return 0 if node is None else int(node.value)

            # PUB drops until connected: keep sending until the hub has counted some.
            def flood() -> bool:
                for data in (
                    b"\xc1",
                    b"",
                    b"\x98\x01",
                    proto.encode(proto.Hello(sender="x", epoch=1, seq=1, sent_ns=0, request_id=1)),
                ):
                    rogue.send(data)
                sub.poll(0.1)
                return rejected() > 0

            wait_until(flood, what="garbage to be counted")
            procs.agent(hub, "ant2", OTHER, mount="GS1/Antenna2")
            wait_until(lambda: polled(sub, 0.05) and "GS1/Antenna2/Feed" in sub.tree, what="the good agent")
    finally:
        rogue.close()
        context.term()


def test_for_s_holds_back_a_one_poll_glitch_the_hub_stays_green(procs: Processes, tmp_path: Path) -> None:
    """Issue 13 §3: a real agent whose point turns RED for a poll under for_s=30 keeps it GREEN at the hub
    (every NODE the hub publishes for it is GREEN), while the agent saw the raw RED (pending, then discarded)."""
    control = tmp_path / "temp.json"
    control.write_text(json.dumps([40.0, "GREEN"]))
    hub = procs.hub()
    spec = {"points": [{"name": "Temp", "file": str(control), "dt": 0.1, "for_s": 30, "log_alerts": True}]}
    agent = procs.agent(hub, "sensor1", spec, mount="GS1/Sensor")
    seen: list[int] = []
    with Subscriber(hub.query, "GS1/") as sub:

        def record(change: Any) -> None:
            if change.path == "GS1/Sensor/Temp" and change.new is not None:
                seen.append(change.new.alertcode)

        sub.add_callback(record)
        wait_until(lambda: polled(sub, 0.05) and GreenAlert.alertcode in seen, what="Temp GREEN at the hub")
        control.write_text(json.dumps([95.0, "RED"]))
        wait_until(lambda: polled(sub, 0.05) and "pending RED" in agent.stderr(), what="the agent polled RED")
        control.write_text(json.dumps([41.0, "GREEN"]))
        wait_until(lambda: polled(sub, 0.05) and "pending RED discarded" in agent.stderr(), what="glitch discarded")
        # The RED poll's DELTA and the GREEN one after it are through once the value 41.0 is at the hub.
        wait_until(lambda: polled(sub, 0.05) and sub.tree["GS1/Sensor/Temp"].value == 41.0, what="value 41.0")
        assert set(seen) == {GreenAlert.alertcode}
        assert sub.tree["GS1/Sensor"].alertcode == GreenAlert.alertcode
