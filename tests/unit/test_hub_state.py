"""The hub's I/O-free core: merging, rollup, liveness, staleness, removal, limits, publishing.

Every time is made up (``now`` in seconds from 0, ``wall`` = WALL0 + now): no sockets, no sleeps.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from gsmon.common import protocol as proto
from gsmon.common.alerts import STALE_ALERTCODE, alertstr_for
from gsmon.common.protocol import PointEntry
from gsmon.hub import state as hub_state
from gsmon.hub.alert_log import MAX_LINES_PER_S
from gsmon.hub.clock import ObservedClock
from gsmon.hub.state import HubSettings, HubState

HUB_EPOCH = 0x5EED
WALL0 = 1_700_000_000.0
GREEN, ORANGE, RED, CRITICAL = 10, 20, 30, 100

SETTINGS = HubSettings(
    heartbeat_interval_s=1.0,
    agent_liveness=3.0,
    stale_factor=3.0,
    stale_slack_s=1.0,
    removal_grace_s=10.0,
    agent_retention_s=100.0,
    resync_interval_s=1.0,
)


def make_hub(follow_all: bool = True, **changes: Any) -> HubState:
    """A hub core; ``follow_all``: with a subscriber of the whole tree, so every change is published."""
    hub = HubState(dataclasses.replace(SETTINGS, **changes), HUB_EPOCH, now=0.0)
    if follow_all:
        hub.subscriptions.follow(b"", subscribed=True)
    return hub


def pt(path: str, code: int = GREEN, value: Any = 1.0, dt: float | None = None, polled: float = 5.0) -> PointEntry:
    """A point entry; by default one-shot (``dt`` None) so it never goes overdue by itself."""
    return PointEntry(path, value, code, alertstr_for(code), WALL0 + polled, dt)


class Agent:
    """Builds one agent's messages with consecutive seqs (``skip`` makes a gap, ``restart`` a new epoch)."""

    def __init__(self, name: str, mount: str, epoch: int = 1, heartbeat_s: float = 10.0) -> None:
        self.name, self.mount, self.epoch, self.heartbeat_s = name, mount, epoch, heartbeat_s
        self.seq = -1

    def _head(self) -> dict[str, Any]:
        self.seq += 1
        return {"sender": self.name, "epoch": self.epoch, "seq": self.seq, "sent_ns": 0}

    def state(
        self,
        *points: PointEntry,
        parents: Iterable[str] = (),
        part: int = 0,
        parts: int = 1,
        unpolled: Iterable[str] = (),
    ) -> proto.State:
        return proto.State(
            **self._head(),
            mount=self.mount,
            heartbeat_s=self.heartbeat_s,
            points=list(points),
            parents=list(parents),
            part=part,
            parts=parts,
            unpolled=list(unpolled),
        )

    def delta(self, *points: PointEntry) -> proto.Delta:
        return proto.Delta(**self._head(), points=list(points))

    def heartbeat(self, count: int = 0) -> proto.Heartbeat:
        return proto.Heartbeat(**self._head(), mount=self.mount, heartbeat_s=self.heartbeat_s, point_count=count)

    def bye(self) -> proto.Bye:
        return proto.Bye(**self._head())

    def skip(self, count: int) -> None:
        self.seq += count

    def restart(self, epoch: int) -> None:
        self.epoch, self.seq = epoch, -1


def send(hub: HubState, msg: proto.Message, now: float = 0.0) -> None:
    hub.apply(msg, now, WALL0 + now)


def drain(hub: HubState, now: float = 0.0) -> list[proto.NodeUpdate]:
    """Drain and decode; check the seqs continue the hub's seq one by one."""
    first = hub.seq + 1
    updates = []
    for topic, payload in hub.drain(WALL0 + now):
        update = proto.decode_hub_message(topic, payload)
        assert isinstance(update, proto.NodeUpdate)
        assert update.epoch == HUB_EPOCH
        updates.append(update)
    assert [u.seq for u in updates] == list(range(first, first + len(updates)))
    assert hub.seq == first + len(updates) - 1
    return updates


def latest(updates: list[proto.NodeUpdate]) -> dict[str, proto.NodeUpdate]:
    return {u.path: u for u in updates}


def code(hub: HubState, path: str) -> int:
    return hub.tree[path].code


def agent_paths(hub: HubState) -> set[str]:
    """Every node path outside the hub's own ``_hub`` subtree."""
    return {path for path, _ in hub.tree.items() if not path.startswith("_hub")}


# -- merging ----------------------------------------------------------------


def test_an_agent_is_merged_at_its_mount() -> None:
    """Points land under the agent's mount, with every parent created and shown as its worst child."""
    hub = make_hub()
    send(hub, Agent("ant", "GS1/Antenna2").state(pt("Azimuth", GREEN), pt("Drive/Temp", ORANGE)))
    nodes = latest(drain(hub))
    assert (
        set(nodes)
        == agent_paths(hub)
        == {
            "GS1",
            "GS1/Antenna2",
            "GS1/Antenna2/Azimuth",
            "GS1/Antenna2/Drive",
            "GS1/Antenna2/Drive/Temp",
        }
    )
    assert nodes["GS1/Antenna2/Azimuth"].kind == proto.NODE_POINT
    assert nodes["GS1/Antenna2/Azimuth"].agent == "ant"
    assert nodes["GS1/Antenna2/Drive"].kind == proto.NODE_PARENT
    assert [nodes[p].alertcode for p in ("GS1", "GS1/Antenna2", "GS1/Antenna2/Drive")] == [ORANGE] * 3
    assert nodes["GS1"].alertstr == "ORANGE"


def test_two_agents_under_one_parent_give_the_union_of_their_children() -> None:
    """Two agents mounting at the same parent share it: its children are both agents' points."""
    hub = make_hub()
    send(hub, Agent("ctl", "GS1/Antenna2").state(pt("Azimuth", GREEN)))
    send(hub, Agent("rack", "GS1/Antenna2").state(pt("Rack/Temp", RED)))
    send(hub, Agent("site", "GS1").state(pt("Antenna2/Power", ORANGE)))
    nodes = latest(drain(hub))
    assert set(hub.tree["GS1/Antenna2"].children) == {
        "GS1/Antenna2/Azimuth",
        "GS1/Antenna2/Rack",
        "GS1/Antenna2/Power",
    }
    assert nodes["GS1/Antenna2/Azimuth"].agent == "ctl"
    assert nodes["GS1/Antenna2/Rack/Temp"].agent == "rack"
    assert nodes["GS1/Antenna2/Power"].agent == "site"
    assert code(hub, "GS1/Antenna2") == code(hub, "GS1") == RED


@pytest.mark.parametrize("first", ["a", "b"])
def test_a_leaf_claimed_by_a_second_agent_is_refused_and_counted(first: str) -> None:
    """The first agent keeps the leaf; the second's claim is refused and counted each time, never applied."""
    hub = make_hub()
    agents = {name: Agent(name, "GS1") for name in "ab"}
    second = "b" if first == "a" else "a"
    send(hub, agents[first].state(pt("x", GREEN, value="mine")))
    send(hub, agents[second].state(pt("x", CRITICAL, value="theirs"), pt("y", ORANGE)))
    assert hub.stats.conflicts == 1
    send(hub, agents[second].delta(pt("x", CRITICAL, value="again")))
    assert hub.stats.conflicts == 2
    nodes = latest(drain(hub))
    assert (nodes["GS1/x"].agent, nodes["GS1/x"].value, nodes["GS1/x"].alertcode) == (first, "mine", GREEN)
    assert nodes["GS1/y"].agent == second  # the rest of the message still applies
    assert code(hub, "GS1") == ORANGE


def test_a_leaf_of_one_agent_cannot_be_a_parent_for_another() -> None:
    """An existing leaf refuses another agent's points below it, and declared parents at it."""
    hub = make_hub()
    send(hub, Agent("a", "M").state(pt("x", GREEN)))
    send(hub, Agent("b", "M").state(pt("x/y", RED), parents=["x", "x/z"]))
    assert hub.stats.conflicts == 3
    assert agent_paths(hub) == {"M", "M/x"}
    assert hub.tree["M/x"].is_leaf
    assert code(hub, "M") == GREEN


def test_a_parent_of_one_agent_cannot_be_a_leaf_of_another() -> None:
    """An existing parent refuses another agent's point at its path."""
    hub = make_hub()
    send(hub, Agent("b", "M").state(pt("x/y", RED)))
    send(hub, Agent("a", "M").state(pt("x", GREEN)))
    assert hub.stats.conflicts == 1
    assert not hub.tree["M/x"].is_leaf
    assert code(hub, "M/x") == RED


def test_an_agent_mounted_on_another_agents_leaf_is_refused() -> None:
    """A mount path that is someone's leaf cannot take points."""
    hub = make_hub()
    send(hub, Agent("a", "M").state(pt("x", GREEN)))
    send(hub, Agent("b", "M/x").state(pt("y", RED)))
    assert hub.stats.conflicts == 1
    assert "M/x/y" not in hub.tree


# -- rollup -------------------------------------------------------------------


def test_parents_follow_every_update_incrementally() -> None:
    """After each DELTA every parent shows its worst child, and only changed parents are re-published."""
    hub = make_hub()
    agent = Agent("a", "M")
    send(hub, agent.state(pt("G/a", GREEN), pt("G/b", ORANGE), pt("H/c", 0)))
    drain(hub)
    steps: list[tuple[str, int, dict[str, int]]] = [
        ("G/a", RED, {"M/G": RED, "M": RED}),
        ("G/b", CRITICAL, {"M/G": CRITICAL, "M": CRITICAL}),
        ("G/b", GREEN, {"M/G": RED, "M": RED}),
        ("G/b", ORANGE, {}),  # G's worst is still a's RED: no parent changes
        ("G/a", GREEN, {"M/G": ORANGE, "M": ORANGE}),
        ("H/c", CRITICAL, {"M/H": CRITICAL, "M": CRITICAL}),
        ("H/c", -5, {"M/H": 0, "M": ORANGE}),  # user codes below NoAlert: a parent never reads below 0
    ]
    for path, new_code, changed in steps:
        send(hub, agent.delta(pt(path, new_code)))
        nodes = latest(drain(hub))
        parents = {p: n.alertcode for p, n in nodes.items() if n.kind == proto.NODE_PARENT}
        assert parents == changed, (path, new_code)
        assert nodes[f"M/{path}"].alertcode == new_code
        for parent in ("M/G", "M/H", "M"):
            children = hub.tree[parent].children.values()
            assert code(hub, parent) == max(0, *(child.code for child in children))


# -- liveness and staleness -----------------------------------------------------


def test_a_state_re_sending_the_poll_the_hub_has_publishes_nothing_and_refreshes_no_deadline() -> None:
    """An agent's periodic STATE (or a site hub's) repeats polls the hub has: no NODE for them; a point
    whose poll does not advance (a stuck monitor function) goes STALE however often it is re-sent."""
    hub = make_hub(stale_factor=3.0, stale_slack_s=1.0)
    agent = Agent("ant", "GS1/Ant", heartbeat_s=100.0)
    send(hub, agent.state(pt("x", GREEN, dt=1.0, polled=1.0), pt("y", GREEN, dt=1.0, polled=1.0)), now=1.0)
    drain(hub, 1.0)
    # y is polled again; x is stuck at its poll of t=1 (re-sent as it is).
    send(hub, agent.state(pt("x", GREEN, dt=1.0, polled=1.0), pt("y", GREEN, dt=1.0, polled=3.0)), now=3.0)
    assert set(latest(drain(hub, 3.0))) == {"GS1/Ant/y"}
    send(hub, agent.state(pt("x", GREEN, dt=1.0, polled=1.0), pt("y", GREEN, dt=1.0, polled=4.5)), now=4.5)
    hub.tick(5.5, WALL0 + 5.5)  # x's deadline from its one real poll: 1 + 3 x 1 + 1 = 5
    nodes = latest(drain(hub, 5.5))
    assert nodes["GS1/Ant/x"].stale
    assert not nodes["GS1/Ant/y"].stale


def test_an_agent_goes_silent_after_liveness_times_its_heartbeat_and_not_before() -> None:
    """Silent after agent_liveness x heartbeat_s: its points and their parents read STALE."""
    hub = make_hub()
    agent = Agent("ant", "GS1/Ant", heartbeat_s=2.0)
    send(hub, agent.state(pt("x", GREEN), pt("y", 0)), now=1.0)
    hub.tick(7.0, WALL0 + 7.0)  # exactly 3 x 2 s: still live
    nodes = latest(drain(hub, 7.0))
    assert not nodes["GS1/Ant/x"].stale
    assert nodes["GS1/Ant/x"].alertcode == GREEN
    hub.tick(7.001, WALL0 + 7.001)
    nodes = latest(drain(hub, 7.001))
    for path in ("GS1/Ant/x", "GS1/Ant/y"):
        assert nodes[path].stale
        assert (nodes[path].alertcode, nodes[path].alertstr) == (STALE_ALERTCODE, "STALE")
    assert nodes["GS1/Ant"].alertcode == nodes["GS1"].alertcode == STALE_ALERTCODE
    assert nodes["GS1"].stale
    hub.tick(8.1, WALL0 + 8.1)  # the next health update (once per heartbeat_interval_s)
    nodes = latest(drain(hub, 8.1))
    assert nodes["_hub/agents/ant"].value == "silent"
    assert nodes["_hub/agents/ant"].alertcode == STALE_ALERTCODE


def test_a_silent_agent_is_live_again_on_its_next_message_and_asked_for_a_state() -> None:
    """Any message from a silent agent clears STALE and queues one resync request."""
    hub = make_hub()
    agent = Agent("ant", "M", heartbeat_s=1.0)
    send(hub, agent.state(pt("x", GREEN)))
    hub.tick(5.0, WALL0 + 5.0)
    drain(hub, 5.0)
    assert hub.take_resync_requests() == []
    send(hub, agent.heartbeat(1), now=6.0)
    nodes = latest(drain(hub, 6.0))
    assert not nodes["M/x"].stale
    assert nodes["M/x"].alertcode == code(hub, "M") == GREEN
    assert hub.take_resync_requests() == ["ant"]


def test_bye_makes_the_agent_silent_at_once() -> None:
    """After BYE the agent's points are STALE without waiting for the liveness timeout."""
    hub = make_hub()
    agent = Agent("ant", "M")
    send(hub, agent.state(pt("x", GREEN)))
    send(hub, agent.bye(), now=0.5)
    nodes = latest(drain(hub, 0.5))
    assert nodes["M/x"].stale
    assert nodes["M/x"].alertcode == STALE_ALERTCODE


def test_a_hub_behind_its_queue_judges_silence_only_up_to_what_it_has_heard() -> None:
    """While messages may still wait in the hub's own queue (heard_all_until < now), neither
    silence nor overdue points are declared for that lag; the backlog is a health point."""
    hub = make_hub()
    agent = Agent("ant", "GS1/Ant", heartbeat_s=1.0)
    send(hub, agent.state(pt("x", GREEN, dt=1.0)), now=1.0)
    drain(hub, 1.0)
    hub.tick(20.0, WALL0 + 20.0, heard_all_until=3.9)  # 2.9 s of silence heard: within 3 x 1 s
    nodes = latest(drain(hub, 20.0))
    # Neither silent nor overdue (deadline 1 + 3 x 1 + 1 = 5 s); but the hub cannot vouch for it, and says so.
    assert (nodes["GS1/Ant/x"].stale, nodes["GS1/Ant/x"].alertcode) == (False, GREEN)
    assert nodes["GS1/Ant/x"].liveness_unknown
    assert nodes["GS1/Ant"].liveness_unknown
    assert nodes["GS1"].liveness_unknown
    assert (nodes["_hub/agents/ant"].value, nodes["_hub/agents_backlog_s"].value) == ("live", 16.1)
    assert nodes["_hub/agents_backlog_s"].alertcode == ORANGE
    hub.tick(20.5, WALL0 + 20.5, heard_all_until=20.5)  # caught up: now the silence is real
    nodes = latest(drain(hub, 20.5))
    assert nodes["GS1/Ant/x"].stale
    assert nodes["GS1/Ant/x"].alertcode == STALE_ALERTCODE
    hub.tick(21.5, WALL0 + 21.5, heard_all_until=21.5)
    assert latest(drain(hub, 21.5))["_hub/agents_backlog_s"].alertcode == 0


def test_a_point_goes_overdue_only_by_the_time_the_hub_has_heard_all() -> None:
    """A live agent's point not refreshed in time: overdue is judged at heard_all_until, not now."""
    hub = make_hub()
    agent = Agent("ant", "M", heartbeat_s=10.0)  # silent only after 30 s: not what is tested
    send(hub, agent.state(pt("fast", GREEN, dt=1.0)), now=0.0)  # overdue after 3 x 1 s + 1 s = 4 s
    drain(hub, 0.0)
    hub.tick(8.0, WALL0 + 8.0, heard_all_until=3.9)
    held = latest(drain(hub, 8.0))["M/fast"]  # not overdue; but it says the hub cannot vouch for it
    assert (held.stale, held.liveness_unknown) == (False, True)
    hub.tick(8.5, WALL0 + 8.5, heard_all_until=4.1)
    assert latest(drain(hub, 8.5))["M/fast"].stale


def test_a_point_is_overdue_after_stale_factor_dt_plus_slack() -> None:
    """A point not refreshed within 3 x dt + 1 s is STALE (heartbeats do not refresh it); a DELTA clears it."""
    hub = make_hub()
    agent = Agent("ant", "M", heartbeat_s=10.0)
    send(hub, agent.state(pt("fast", GREEN, dt=2.0), pt("once", GREEN)), now=1.0)
    send(hub, agent.heartbeat(2), now=5.0)
    hub.tick(7.999, WALL0 + 7.999)
    assert not latest(drain(hub, 7.999))["M/fast"].stale
    hub.tick(8.0, WALL0 + 8.0)  # 1 + 3 x 2 + 1
    nodes = latest(drain(hub, 8.0))
    assert nodes["M/fast"].stale
    assert nodes["M/fast"].alertcode == code(hub, "M") == STALE_ALERTCODE
    assert "M/once" not in nodes  # one-shot points are never overdue
    send(hub, agent.delta(pt("fast", GREEN, dt=2.0)), now=9.0)
    nodes = latest(drain(hub, 9.0))
    assert not nodes["M/fast"].stale
    assert code(hub, "M") == GREEN
    hub.tick(15.999, WALL0 + 15.999)
    assert "M/fast" not in latest(drain(hub, 15.999))
    hub.tick(16.0, WALL0 + 16.0)
    assert latest(drain(hub, 16.0))["M/fast"].stale


def test_a_shorter_dt_shortens_the_deadline() -> None:
    """A point re-polled with a shorter dt (agent reconfigured) is overdue on the new, earlier deadline."""
    hub = make_hub()
    agent = Agent("ant", "M", heartbeat_s=100.0)
    send(hub, agent.state(pt("x", GREEN, dt=100.0)))
    send(hub, agent.delta(pt("x", GREEN, dt=1.0)), now=1.0)
    hub.tick(4.999, WALL0 + 4.999)
    assert code(hub, "M/x") == GREEN
    hub.tick(5.0, WALL0 + 5.0)  # 1 + 3 x 1 + 1
    assert latest(drain(hub, 5.0))["M/x"].stale
    send(hub, agent.delta(pt("x", GREEN, dt=100.0)), now=6.0)
    hub.tick(100.0, WALL0 + 100.0)  # the old short deadline must not fire any more
    assert code(hub, "M/x") == GREEN


@pytest.mark.parametrize("bad_dt", [math.nan, math.inf, -1.0, 0.0])
def test_a_nonsense_dt_never_goes_overdue_and_does_not_block_other_deadlines(bad_dt: float) -> None:
    """A point with dt NaN, inf, 0 or negative is treated as one-shot; other points still go overdue."""
    hub = make_hub()
    send(hub, Agent("odd", "A", heartbeat_s=100.0).state(pt("x", GREEN, dt=bad_dt)))
    send(hub, Agent("ok", "B", heartbeat_s=100.0).state(pt("y", GREEN, dt=1.0)))
    hub.tick(10.0, WALL0 + 10.0)
    assert code(hub, "A/x") == GREEN
    assert code(hub, "B/y") == STALE_ALERTCODE


def test_a_stale_critical_point_stays_critical() -> None:
    """Staleness never lowers an alert: a silent agent's Critical point still reads Critical (and stale)."""
    hub = make_hub()
    send(hub, Agent("ant", "M", heartbeat_s=1.0).state(pt("x", CRITICAL), pt("y", GREEN)))
    hub.tick(10.0, WALL0 + 10.0)
    nodes = latest(drain(hub, 10.0))
    assert nodes["M/x"].stale
    assert (nodes["M/x"].alertcode, nodes["M/x"].alertstr) == (CRITICAL, "CRITICAL")
    assert nodes["M/y"].alertcode == STALE_ALERTCODE
    assert nodes["M"].alertcode == CRITICAL


# -- sequence numbers and epochs ----------------------------------------------------


def test_a_seq_gap_is_counted_and_a_resync_requested_at_most_once_per_interval() -> None:
    """Missing seqs are counted; the hub asks for a STATE, no more than once per resync_interval_s."""
    hub = make_hub()
    agent = Agent("ant", "M")
    send(hub, agent.state(pt("x", GREEN)))
    agent.skip(2)
    send(hub, agent.delta(pt("x", RED)), now=5.0)
    assert hub.stats.seq_gaps == 2
    assert code(hub, "M/x") == RED  # the message itself still applies
    assert hub.take_resync_requests() == ["ant"]
    agent.skip(1)
    send(hub, agent.delta(pt("x", RED)), now=5.999)
    assert hub.stats.seq_gaps == 3
    assert hub.take_resync_requests() == []
    agent.skip(1)
    send(hub, agent.delta(pt("x", RED)), now=6.0)
    assert hub.take_resync_requests() == ["ant"]
    assert hub.stats.resyncs_requested == 2


def test_replayed_or_old_seqs_are_dropped() -> None:
    """A message whose seq is not above the last one is dropped: old news never overwrites new."""
    hub = make_hub()
    agent = Agent("ant", "M")
    send(hub, agent.state(pt("x", GREEN, value=1)))
    newer = agent.delta(pt("x", RED, value=2))
    send(hub, newer)
    rejected = hub.stats.messages_rejected
    send(hub, dataclasses.replace(newer, points=[pt("x", CRITICAL, value=3)]))
    send(hub, dataclasses.replace(newer, seq=0, points=[pt("x", CRITICAL, value=4)]))
    assert hub.stats.messages_rejected == rejected + 2
    node = latest(drain(hub))["M/x"]
    assert (node.value, node.alertcode) == (2, RED)


@pytest.mark.parametrize("known", [False, True])
def test_a_delta_from_an_unknown_epoch_is_dropped_and_a_state_requested(known: bool) -> None:
    """Without the STATE of its epoch a DELTA (or HEARTBEAT) is not applied; the hub asks for a STATE."""
    hub = make_hub()
    agent = Agent("ant", "M")
    if known:
        send(hub, agent.state(pt("x", GREEN)))
        hub.take_resync_requests()
    agent.restart(epoch=2)
    send(hub, agent.delta(pt("x", RED), pt("new", RED)), now=3.0)
    assert "M/new" not in hub.tree
    assert ("M/x" in hub.tree) is known
    if known:
        assert code(hub, "M/x") == GREEN
    assert hub.take_resync_requests() == ["ant"]


def test_points_a_new_epoch_no_longer_reports_are_removed_after_the_grace() -> None:
    """A restarted agent's complete STATE without some points removes them after removal_grace_s."""
    hub = make_hub()
    agent = Agent("ant", "M")
    send(hub, agent.state(pt("keep", GREEN), pt("Old/gone", RED), pt("Old/back", GREEN)))
    drain(hub)
    agent.restart(epoch=2)
    send(hub, agent.state(pt("keep", GREEN)), now=1.0)
    send(hub, agent.delta(pt("Old/back", ORANGE)), now=2.0)  # reported again within the grace: stays
    hub.tick(10.999, WALL0 + 10.999)
    assert "M/Old/gone" in hub.tree
    drain(hub, 10.999)
    hub.tick(11.0, WALL0 + 11.0)
    updates = drain(hub, 11.0)
    removed = [u.path for u in updates if u.kind == proto.NODE_REMOVED]
    assert removed == ["M/Old/gone"]
    assert agent_paths(hub) == {"M", "M/keep", "M/Old", "M/Old/back"}
    assert code(hub, "M/Old") == code(hub, "M") == ORANGE


def test_an_incomplete_multipart_state_removes_nothing() -> None:
    """Only a complete STATE (every part) says what the agent has; a lost part removes nothing."""
    hub = make_hub()
    agent = Agent("ant", "M")
    send(hub, agent.state(pt("a", GREEN), pt("b", GREEN)))
    send(hub, agent.state(pt("a", GREEN), part=0, parts=2), now=1.0)
    agent.skip(1)  # part 1 is lost
    send(hub, agent.state(pt("a", GREEN), part=0, parts=2), now=2.0)
    hub.tick(30.0, WALL0 + 30.0)
    assert "M/b" in hub.tree
    send(hub, agent.state(pt("a", GREEN), part=0, parts=2), now=31.0)
    send(hub, agent.state(part=1, parts=2), now=31.0)
    hub.tick(41.0, WALL0 + 41.0)
    assert "M/b" not in hub.tree
    assert "M/a" in hub.tree


def test_declared_childless_parents_stay_while_declared() -> None:
    """Parents a STATE lists exist without children; dropped from the list, they go after the grace."""
    hub = make_hub()
    agent = Agent("ant", "M")
    send(hub, agent.state(parents=["Empty", "Sub/Deep"]))
    nodes = latest(drain(hub))
    assert {p for p, n in nodes.items() if n.kind == proto.NODE_PARENT} == {"M", "M/Empty", "M/Sub", "M/Sub/Deep"}
    hub.tick(50.0, WALL0 + 50.0)
    send(hub, agent.heartbeat(), now=50.0)
    assert {"M/Empty", "M/Sub/Deep"} <= agent_paths(hub)
    send(hub, agent.state(parents=["Sub/Deep"]), now=51.0)
    hub.tick(61.0, WALL0 + 61.0)
    assert agent_paths(hub) == {"M", "M/Sub", "M/Sub/Deep"}
    assert [u.path for u in drain(hub, 61.0) if u.kind == proto.NODE_REMOVED] == ["M/Empty"]


def test_a_parent_declared_by_two_agents_stays_while_one_declares_it() -> None:
    """A shared declared parent is kept as long as any agent still lists it."""
    hub = make_hub()
    a, b = Agent("a", "M"), Agent("b", "M")
    send(hub, a.state(parents=["Shared"]))
    send(hub, b.state(parents=["Shared"]))
    send(hub, a.state(), now=1.0)
    hub.tick(20.0, WALL0 + 20.0)
    assert "M/Shared" in hub.tree
    send(hub, b.state(), now=21.0)
    hub.tick(32.0, WALL0 + 32.0)
    assert agent_paths(hub) == set()


def test_empty_undeclared_parents_are_pruned_with_their_last_leaf() -> None:
    """Removing a leaf removes the parents it leaves empty, unless declared or holding other children."""
    hub = make_hub()
    a, b = Agent("a", "M"), Agent("b", "M")
    send(hub, a.state(pt("A/B/x", GREEN), pt("A/y", GREEN)))
    send(hub, b.state(pt("Other", GREEN)))
    a.restart(epoch=2)
    send(hub, a.state(pt("A/y", GREEN)), now=1.0)
    hub.tick(11.0, WALL0 + 11.0)
    assert agent_paths(hub) == {"M", "M/A", "M/A/y", "M/Other"}
    a.restart(epoch=3)
    send(hub, a.state(), now=12.0)
    hub.tick(22.0, WALL0 + 22.0)
    assert agent_paths(hub) == {"M", "M/Other"}


def test_a_mount_change_moves_the_points_and_prunes_the_old_mount() -> None:
    """A STATE at a new mount creates the points there; the old ones go after the grace."""
    hub = make_hub()
    agent = Agent("ant", "Old/Place")
    send(hub, agent.state(pt("x", RED)))
    agent.mount = "New"
    send(hub, agent.state(pt("x", GREEN)), now=1.0)
    nodes = latest(drain(hub, 1.0))
    assert nodes["New/x"].agent == "ant"
    assert nodes["New/x"].alertcode == GREEN
    hub.tick(11.0, WALL0 + 11.0)
    assert agent_paths(hub) == {"New", "New/x"}
    send(hub, agent.delta(pt("x", ORANGE)), now=12.0)
    assert code(hub, "New") == ORANGE


def test_a_silent_agent_is_forgotten_after_the_retention() -> None:
    """After agent_retention_s of silence an agent and all its points are gone."""
    hub = make_hub()
    send(hub, Agent("ant", "M", heartbeat_s=1.0).state(pt("x", GREEN), parents=["P"]), now=1.0)
    send(hub, Agent("other", "N", heartbeat_s=1000.0).state(pt("y", GREEN)), now=1.0)
    hub.tick(101.0, WALL0 + 101.0)
    assert "ant" in hub.agents
    assert "M/x" in hub.tree
    hub.tick(101.001, WALL0 + 101.001)
    hub.tick(102.5, WALL0 + 102.5)  # the next health update
    assert "ant" not in hub.agents
    assert agent_paths(hub) == {"N", "N/y"}
    assert "_hub/agents/ant" not in hub.tree
    assert "_hub/agents/other" in hub.tree
    removed = {u.path for u in drain(hub, 102.5) if u.kind == proto.NODE_REMOVED}
    assert {"M", "M/x", "M/P", "_hub/agents/ant"} <= removed


# -- limits and invalid input ----------------------------------------------------------


def test_agents_beyond_max_agents_are_refused() -> None:
    """A new agent over max_agents is refused and counted; known agents keep working."""
    hub = make_hub(max_agents=2)
    agents = [Agent(name, name) for name in ("a", "b", "c")]
    for agent in agents:
        send(hub, agent.state(pt("x")))
    assert set(hub.agents) == {"a", "b"}
    assert "c/x" not in hub.tree
    assert hub.stats.messages_rejected == 1
    send(hub, agents[0].delta(pt("x", RED)))
    assert code(hub, "a") == RED


def test_points_beyond_max_points_per_agent_are_refused() -> None:
    """An agent's points over max_points_per_agent are refused and counted."""
    hub = make_hub(max_points_per_agent=2)
    send(hub, Agent("a", "M").state(pt("x"), pt("y"), pt("z")))
    send(hub, Agent("b", "N").state(pt("x")))
    assert agent_paths(hub) == {"M", "M/x", "M/y", "N", "N/x"}
    assert hub.stats.points_rejected == 1


def test_new_points_beyond_max_nodes_are_refused() -> None:
    """Once the tree holds max_nodes nodes new points are refused; existing ones still update."""
    hub = make_hub(max_nodes=4)
    agent = Agent("a", "M")
    send(hub, agent.state(pt("x"), pt("y"), pt("z"), pt("w")))
    assert len(hub.tree) == 4
    assert hub.stats.points_rejected == 1
    send(hub, agent.delta(pt("x", RED)))
    assert code(hub, "M") == RED


def test_declared_parents_beyond_max_nodes_are_refused() -> None:
    """Declared parents count against max_nodes like points (the tree's memory bound)."""
    hub = make_hub(max_nodes=10)
    send(hub, Agent("a", "M").state(parents=[f"P{i}" for i in range(50)]))
    assert len(hub.tree) <= 10
    assert hub.stats.points_rejected > 0


@pytest.mark.parametrize("mount", ["_hub", "_other", "", "a//b", "/lead", "tab\there", "x" * 129, "/".join("d" * 17)])
def test_an_invalid_mount_is_refused_without_registering_the_agent(mount: str) -> None:
    """A STATE or HEARTBEAT with an invalid or reserved mount is counted and dropped; no agent is created."""
    hub = make_hub()
    agent = Agent("ant", mount)
    send(hub, agent.state(pt("x", RED)))
    send(hub, agent.heartbeat())
    hub.tick(1.0, WALL0 + 1.0)
    assert hub.stats.messages_rejected == 2
    assert hub.agents == {}
    assert agent_paths(hub) == set()
    assert code(hub, "_hub") == 0  # no phantom silent agent in the hub's health


@pytest.mark.parametrize("name", ["_hub", "_x", "a/b", "x" * 129, "bell\x07"])
def test_an_invalid_agent_name_is_refused(name: str) -> None:
    """Senders whose name is reserved or not a valid name are refused and counted."""
    hub = make_hub()
    send(hub, Agent(name, "M").state(pt("x")))
    assert hub.agents == {}
    assert hub.stats.messages_rejected == 1
    assert agent_paths(hub) == set()


@pytest.mark.parametrize(
    "path",
    ["", "a//b", "/lead", "trail/", "nul\x00", "x" * 129, "/".join("d" * 16), "sur\ud800"],
    ids=repr,
)
def test_an_invalid_point_path_is_refused_and_the_rest_applies(path: str) -> None:
    """A point with an invalid path is counted and skipped; valid points of the same message apply."""
    hub = make_hub()
    send(hub, Agent("ant", "M").state(pt(path, RED), pt("ok", GREEN)))
    assert agent_paths(hub) == {"M", "M/ok"}
    assert hub.stats.points_rejected == 1
    assert code(hub, "M") == GREEN


@pytest.mark.parametrize("parent", ["a//b", "/lead", "bad\nname", "/".join("d" * 16)], ids=repr)
def test_an_invalid_declared_parent_is_refused(parent: str) -> None:
    """An invalid declared parent path is counted and skipped without an exception."""
    hub = make_hub()
    send(hub, Agent("ant", "M").state(pt("ok"), parents=[parent, "Fine"]))
    assert "M/Fine" in hub.tree
    assert all(path.count("/") < 16 and "\n" not in path and "//" not in path for path in agent_paths(hub))


def test_query_messages_on_the_agent_socket_are_rejected() -> None:
    """Only STATE, DELTA, HEARTBEAT and BYE are applied; anything else is counted and dropped."""
    hub = make_hub()
    send(hub, proto.Hello(sender="ant", epoch=1, seq=0, sent_ns=0, request_id=1))
    assert hub.stats.messages_rejected == 1
    assert hub.agents == {}


# -- publishing ---------------------------------------------------------------------------


def test_drain_publishes_points_parents_and_removals_with_their_fields() -> None:
    """drain gives strictly increasing seqs and the documented payload fields for each kind of node."""
    hub = make_hub()
    agent = Agent("ant", "M", heartbeat_s=10.0)
    send(hub, agent.state(pt("G/x", ORANGE, value=[1, "two"], dt=2.5, polled=3.0), pt("y", GREEN)), now=4.0)
    nodes = latest(drain(hub))
    point = nodes["M/G/x"]
    assert point == proto.NodeUpdate(
        "M/G/x",
        HUB_EPOCH,
        point.seq,
        "point",
        ORANGE,
        "ORANGE",
        False,
        [1, "two"],
        "ant",
        WALL0 + 3.0,
        WALL0 + 4.0,
        2.5,
        reported_alert=None,  # the shown level is the reported one: not repeated
    )
    parent = nodes["M/G"]
    assert (parent.kind, parent.alertcode, parent.alertstr, parent.stale) == ("parent", ORANGE, "ORANGE", False)
    assert (parent.value, parent.agent, parent.polled_at_s, parent.received_at_s, parent.dt_s) == (None,) * 5
    assert drain(hub) == []
    agent.restart(epoch=2)
    send(hub, agent.state(pt("y", GREEN)), now=5.0)
    hub.tick(15.0, WALL0 + 15.0)
    updates = drain(hub, 15.0)
    removals = [u for u in updates if u.kind == proto.NODE_REMOVED]
    assert [u.path for u in removals] == ["M/G/x", "M/G"]
    assert all((u.alertcode, u.stale, u.value) == (0, False, None) for u in removals)


def test_a_user_alert_label_is_published_for_parents_too() -> None:
    """A user Alert subclass's (code, label) travels to the parents that show it."""
    hub = make_hub()
    send(hub, Agent("ant", "M").state(PointEntry("x", 1, 15, "MAINT", WALL0, None)))
    nodes = latest(drain(hub))
    assert (nodes["M/x"].alertstr, nodes["M"].alertstr, nodes["M"].alertcode) == ("MAINT", "MAINT", 15)


def test_a_node_removed_and_recreated_between_drains_is_published_in_order() -> None:
    """Removal goes out before the new node, so a subscriber ends with the node present."""
    hub = make_hub()
    a = Agent("a", "M")
    send(hub, a.state(pt("x", GREEN)))
    drain(hub)
    a.restart(epoch=2)
    send(hub, a.state(), now=1.0)
    hub.tick(11.0, WALL0 + 11.0)
    send(hub, Agent("b", "M").state(pt("x", RED)), now=11.0)
    updates = [u for u in drain(hub, 11.0) if u.path == "M/x"]
    assert [u.kind for u in updates] == ["removed", "point"]
    assert updates[-1].agent == "b"


def unpack_items(items: list[bytes]) -> dict[str, dict[str, Any]]:
    result = {}
    for item in items:
        path, payload = msgpack.unpackb(item)
        result[path] = payload
    return result


def test_snapshot_returns_exactly_the_nodes_under_the_prefix_with_the_current_seq() -> None:
    """snapshot(prefix) holds every node whose path starts with prefix, as last published, and hub.seq."""
    hub = make_hub()
    send(hub, Agent("a", "GS1/Ant").state(pt("x", RED), pt("y/z", GREEN)))
    send(hub, Agent("b", "GS10").state(pt("w")))
    send(hub, Agent("c", "GS2").state(pt("v")))
    hub.subscriptions.follow(b"GS1/", subscribed=True)
    published = latest(drain(hub))
    send(hub, Agent("d", "GS1").state(pt("late", ORANGE)), now=1.0)
    published.update(latest(drain(hub, 1.0)))
    items, seq, count = hub.snapshot("GS1/")
    snap = unpack_items(items)
    assert set(snap) == {"GS1/Ant", "GS1/Ant/x", "GS1/Ant/y", "GS1/Ant/y/z", "GS1/late"}
    assert seq == hub.seq
    assert count == hub.published("GS1/") == 5  # GS1 itself is not under "GS1/"
    for path, payload in snap.items():
        assert proto.decode_node_payload(path, payload) == published[path]
    # Whole segments: "GS1" is GS1 and its subtree, never GS10.
    assert set(unpack_items(hub.snapshot("GS1")[0])) == {"GS1", *snap}
    assert not any(path.startswith("GS10") for path in unpack_items(hub.snapshot("GS1")[0]))
    assert set(unpack_items(hub.snapshot("")[0])) == {path for path, _ in hub.tree.items()}
    assert hub.snapshot("nothing/")[0] == []


@pytest.mark.parametrize("size", [0, 1, 31, 32, 255, 256, 1000])
def test_snapshot_items_are_plain_msgpack_pairs(size: int) -> None:
    """The packed [path, payload] items equal what msgpack packs, for every str header size."""
    path = "é" * (size // 2) + "x" * (size % 2)
    payload = proto.node_payload(epoch=1, seq=2, kind="parent", alertcode=0, alertstr="", stale=False)
    item = proto.snapshot_item(path, payload)
    assert item == msgpack.packb([path, msgpack.unpackb(payload)])


def test_publish_counters_follow_subscription_refcounts_and_count_only_matching_paths() -> None:
    """published[prefix] counts NODEs under prefix while at least one subscriber follows it."""
    hub = make_hub()
    hub.subscriptions.follow(b"GS1/", subscribed=True)
    hub.subscriptions.follow(b"GS1/", subscribed=True)
    hub.subscriptions.follow(b"", subscribed=True)
    hub.subscriptions.follow(proto.HUB_HEARTBEAT_TOPIC, subscribed=True)  # control topic: not counted
    hub.subscriptions.follow(b"\xff\xfe", subscribed=True)  # not UTF-8: matches no path, ignored
    a = Agent("a", "GS1")
    send(hub, a.state(pt("x"), pt("y")))
    send(hub, Agent("b", "GS2").state(pt("z")))
    updates = drain(hub)
    assert hub.published("GS1/") == 2
    assert hub.published("") == len(updates) == 5
    hub.subscriptions.follow(b"GS1/", subscribed=False)
    send(hub, a.delta(pt("x", RED)))
    drain(hub)  # GS1/x and GS1
    assert hub.published("GS1/") == 3
    beat = proto.decode_hub_message(*hub.heartbeat(WALL0))
    assert isinstance(beat, proto.HubHeartbeat)
    assert beat.published == {"GS1/": 3, "": 7}
    assert (beat.epoch, beat.seq, beat.interval_s, beat.sent_at_s) == (HUB_EPOCH, hub.seq, 1.0, WALL0)
    hub.subscriptions.follow(b"GS1/", subscribed=False)
    assert hub.published("GS1/") == 0
    assert "GS1/" not in proto.decode_hub_message(*hub.heartbeat(WALL0)).published  # type: ignore[union-attr]
    hub.subscriptions.follow(b"GS1/", subscribed=True)  # a fresh counter
    send(hub, a.delta(pt("y", RED)))
    drain(hub)
    assert hub.published("GS1/") == 1


def test_unsubscribing_an_unknown_prefix_is_harmless_and_prefixes_are_capped() -> None:
    """An unmatched unsubscribe changes nothing; prefixes beyond max_published_prefixes are not counted."""
    hub = make_hub(follow_all=False, max_published_prefixes=2)
    hub.subscriptions.follow(b"never/", subscribed=False)
    for prefix in (b"a", b"b", b"c"):
        hub.subscriptions.follow(prefix, subscribed=True)
    send(hub, Agent("c", "c").state(pt("x")))
    send(hub, Agent("a", "a").state(pt("x")))
    drain(hub)
    assert (hub.published("a"), hub.published("c"), hub.published("never/")) == (2, 0, 0)


def test_the_server_reports_through_calls_not_by_writing_the_counters() -> None:
    """count_rejected, set_subscribers and set_server_health show as _hub/ points at the next health
    refresh; a server figure left out of the next set_server_health is removed."""
    hub = make_hub()
    hub.count_rejected()
    hub.count_rejected(2)
    hub.set_subscribers(4)
    hub.set_server_health({"decode_errors": (3, 0), "auth_alive": (False, CRITICAL)})
    hub.tick(0.0, WALL0)
    nodes = latest(drain(hub))
    assert nodes["_hub/messages_rejected"].value == 3
    assert nodes["_hub/subscribers"].value == 4
    assert nodes["_hub/decode_errors"].value == 3
    assert (nodes["_hub/auth_alive"].value, nodes["_hub/auth_alive"].alertcode) == (False, CRITICAL)
    assert nodes["_hub"].alertcode == CRITICAL
    hub.set_server_health({"decode_errors": (5, 0)})
    hub.tick(1.0, WALL0 + 1.0)
    nodes = latest(drain(hub, 1.0))
    assert nodes["_hub/decode_errors"].value == 5
    assert nodes["_hub/auth_alive"].kind == proto.NODE_REMOVED
    assert "_hub/auth_alive" not in hub.tree


def test_hub_health_points_appear_and_update() -> None:
    """tick publishes _hub/ points: counters, and agents/<name> live (Green) or silent (STALE)."""
    hub = make_hub()
    hub.tick(0.0, WALL0)
    nodes = latest(drain(hub))
    assert nodes["_hub/messages_in"].value == 0
    assert nodes["_hub/messages_in"].agent == hub_state.HUB_AGENT
    assert nodes["_hub"].kind == proto.NODE_PARENT
    send(hub, Agent("ant", "M", heartbeat_s=1.0).state(pt("x")), now=0.5)
    drain(hub, 0.5)
    hub.tick(0.9, WALL0 + 0.9)  # less than heartbeat_interval_s since the last update: no health change
    assert "_hub/messages_in" not in latest(drain(hub, 0.9))
    hub.tick(1.0, WALL0 + 1.0)
    nodes = latest(drain(hub, 1.0))
    assert nodes["_hub/messages_in"].value == 1
    assert nodes["_hub/agents_live"].value == 1
    assert (nodes["_hub/agents/ant"].value, nodes["_hub/agents/ant"].alertcode) == ("live", GREEN)
    assert nodes["_hub"].alertcode == GREEN
    hub.tick(4.0, WALL0 + 4.0)
    nodes = latest(drain(hub, 4.0))
    assert (nodes["_hub/agents/ant"].value, nodes["_hub/agents/ant"].alertcode) == ("silent", STALE_ALERTCODE)
    assert nodes["_hub/agents_silent"].value == 1
    assert not nodes["_hub/agents/ant"].stale  # the hub's own points are never stale themselves
    hub.tick(200.0, WALL0 + 200.0)
    assert "_hub/agents/ant" not in hub.tree
    assert not any(u.stale for u in latest(drain(hub, 200.0)).values())


# -- random sequences ---------------------------------------------------------------------

NAMES = ("a", "b", "c")
MOUNTS = ("GS1", "GS1/Ant", "GS2")
RELS = ("x", "Ant", "Ant/x", "Ant/y", "y/z")
CODES = (0, GREEN, ORANGE, RED, CRITICAL)
DTS = (None, 0.5, 2.0, 10.0, math.nan)


class HubMachine(RuleBasedStateMachine):
    """Random STATE/DELTA/HEARTBEAT/BYE from three agents that fight over paths, and ticks."""

    @initialize()
    def start(self) -> None:
        self.hub = HubState(
            dataclasses.replace(SETTINGS, agent_retention_s=60.0, removal_grace_s=5.0), HUB_EPOCH, now=0.0
        )
        self.hub.subscriptions.follow(b"", subscribed=True)  # the model's view follows the whole tree
        self.now = 0.0
        self.agents = {
            name: Agent(name, MOUNTS[0], epoch=1, heartbeat_s=1.0 + index) for index, name in enumerate(NAMES)
        }
        self.last_message: dict[str, float] = {}
        self.silent: dict[str, bool] = {}  # our model of who is silent after the last tick or message
        self.known_epoch: dict[str, int] = {}  # the epoch whose STATE the hub has (it ignores others)
        self.known_heartbeat: dict[str, float] = {}  # the heartbeat_s the hub uses for liveness
        self.view: dict[str, proto.NodeUpdate] = {}  # what a subscriber to everything holds
        self.last_tick = 0.0
        self.last_seq = 0

    def _apply(self, name: str, msg: proto.Message) -> None:
        self.hub.apply(msg, self.now, WALL0 + self.now)
        if isinstance(msg, proto.State):
            self.known_epoch[name] = msg.epoch
        applied = self.known_epoch.get(name) == msg.epoch  # else the hub only notes it heard the agent
        if isinstance(msg, proto.Bye) and not applied:
            self._drain()  # an unknown incarnation's goodbye changes nothing, not even "heard"
            return
        self.last_message[name] = self.now
        if applied and isinstance(msg, proto.State | proto.Heartbeat):
            self.known_heartbeat[name] = msg.heartbeat_s
        self.silent[name] = applied and isinstance(msg, proto.Bye)
        self._drain()

    def _drain(self) -> None:
        for topic, payload in self.hub.drain(WALL0 + self.now):
            update = proto.decode_hub_message(topic, payload)
            assert isinstance(update, proto.NodeUpdate)
            assert update.seq > self.last_seq
            self.last_seq = update.seq
            if update.kind == proto.NODE_REMOVED:
                self.view.pop(update.path, None)
            else:
                self.view[update.path] = update

    @rule(
        name=st.sampled_from(NAMES),
        points=st.dictionaries(st.sampled_from(RELS), st.tuples(st.sampled_from(CODES), st.sampled_from(DTS))),
        parents=st.lists(st.sampled_from(RELS), max_size=2),
        mount=st.sampled_from(MOUNTS),
        restart=st.booleans(),
    )
    def state(
        self, name: str, points: dict[str, tuple[int, float | None]], parents: list[str], mount: str, restart: bool
    ) -> None:
        agent = self.agents[name]
        if restart:
            agent.restart(agent.epoch + 1)
        agent.mount = mount
        entries = [pt(rel, c, dt=dt, value=self.now) for rel, (c, dt) in points.items()]
        self._apply(name, agent.state(*entries, parents=parents))

    @rule(
        name=st.sampled_from(NAMES),
        points=st.dictionaries(st.sampled_from(RELS), st.tuples(st.sampled_from(CODES), st.sampled_from(DTS))),
    )
    def delta(self, name: str, points: dict[str, tuple[int, float | None]]) -> None:
        entries = [pt(rel, c, dt=dt, value=self.now) for rel, (c, dt) in points.items()]
        self._apply(name, self.agents[name].delta(*entries))

    @rule(name=st.sampled_from(NAMES))
    def heartbeat(self, name: str) -> None:
        self._apply(name, self.agents[name].heartbeat())

    @rule(name=st.sampled_from(NAMES))
    def bye(self, name: str) -> None:
        self._apply(name, self.agents[name].bye())

    @rule(name=st.sampled_from(NAMES), count=st.integers(1, 3))
    def lose_messages(self, name: str, count: int) -> None:
        self.agents[name].skip(count)

    @rule(seconds=st.sampled_from([0.1, 0.5, 1.0, 2.5, 4.0, 7.0, 30.0]))
    def tick(self, seconds: float) -> None:
        self.now += seconds
        self.hub.tick(self.now, WALL0 + self.now)
        self.last_tick = self.now
        for name, heard in self.last_message.items():
            if self.now - heard > SETTINGS.agent_liveness * self.known_heartbeat.get(name, 1.0):
                self.silent[name] = True
            if name not in self.hub.agents:  # forgotten after the retention: the hub starts afresh
                self.known_epoch.pop(name, None)
                self.known_heartbeat.pop(name, None)
        self._drain()

    @invariant()
    def every_parent_shows_its_worst_child(self) -> None:
        for path, node in self.hub.tree.items():
            if not node.is_leaf:
                expected = max([0, *(child.code for child in node.children.values())])
                assert node.code == expected, path

    @invariant()
    def the_published_view_is_the_tree(self) -> None:
        tree = dict(self.hub.tree.items())
        assert set(self.view) == set(tree)
        for path, update in self.view.items():
            assert update.alertcode == tree[path].code, path
            assert (update.kind == proto.NODE_POINT) == tree[path].is_leaf, path

    @invariant()
    def a_silent_agents_points_read_at_least_stale(self) -> None:
        for name, silent in self.silent.items():
            agent = self.hub.agents.get(name)
            if agent is None:
                continue
            assert agent.silent == silent, name
            if silent:
                for path in agent.leaves:
                    assert self.view[path].alertcode >= STALE_ALERTCODE, path
                    assert self.view[path].stale, path

    @invariant()
    def points_past_their_deadline_read_at_least_stale(self) -> None:
        for agent in self.hub.agents.values():
            for path, leaf in agent.leaves.items():
                if leaf.deadline <= self.last_tick:
                    assert self.view[path].stale, path
                    assert self.view[path].alertcode >= STALE_ALERTCODE, path

    @invariant()
    def no_two_agents_own_the_same_leaf(self) -> None:
        owners: dict[str, str] = {}
        for name, agent in self.hub.agents.items():
            for path, leaf in agent.leaves.items():
                assert path not in owners, (path, owners.get(path), name)
                owners[path] = name
                assert leaf.agent is agent
                assert self.hub.tree[path].data is leaf
                assert self.view[path].agent == name
        hub_leaves = {path for path, node in self.hub.tree.items() if node.is_leaf and not path.startswith("_hub/")}
        assert hub_leaves == set(owners)


HubMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_hub_state_machine = HubMachine.TestCase


def test_changes_nobody_follows_are_not_published_but_snapshots_hold_them_byte_for_byte() -> None:
    """Without a subscriber for a path its changes are not packed or sent; a snapshot packs them on demand,
    with the same bytes and seqs a hub followed by everyone would have published."""
    quiet, followed = make_hub(follow_all=False), make_hub()
    quiet.subscriptions.follow(b"GS2/", subscribed=True)
    for hub in (quiet, followed):
        send(hub, Agent("a", "GS1/Ant").state(pt("x", RED), pt("y/z", GREEN)))
        send(hub, Agent("b", "GS2").state(pt("w", ORANGE)))
    sent = [proto.decode_hub_message(*frame) for frame in quiet.drain(WALL0)]
    everything = dict(followed.drain(WALL0))
    assert {update.path for update in sent} == {"GS2/w"}  # type: ignore[union-attr]
    assert quiet.seq == followed.seq  # every change still took its seq
    assert quiet.stats.messages_out == 1
    snap = dict(msgpack.unpackb(item) for item in quiet.snapshot("")[0])
    assert set(snap) == {path.decode() for path in everything}
    for path, payload in everything.items():
        assert msgpack.packb(snap[path.decode()]) == payload


def test_every_change_is_published_once_a_followed_prefix_cannot_be_tracked() -> None:
    """Past max_published_prefixes the hub no longer knows all that is followed, so it publishes everything."""
    hub = make_hub(follow_all=False, max_published_prefixes=1)

    def published_paths() -> set[str]:
        return {topic.decode() for topic, _ in hub.drain(WALL0)}

    hub.subscriptions.follow(b"a/", subscribed=True)
    send(hub, Agent("c", "c").state(pt("x")))
    assert published_paths() == set()
    hub.subscriptions.follow(b"b/", subscribed=True)  # not tracked
    send(hub, Agent("c2", "c2").state(pt("x")))
    assert published_paths() == {"c2", "c2/x"}
    hub.subscriptions.reset()
    send(hub, Agent("c3", "c3").state(pt("x")))
    assert published_paths() == set()


def test_a_topic_cut_inside_a_character_is_followed_as_its_whole_character_prefix() -> None:
    """XPUB matches bytes: a raw subscriber's topic that ends inside a multi-byte
    character still receives the paths it matches, so they must be published."""
    hub = make_hub(follow_all=False)
    cut = "GS1/Ant\u00e9".encode()[:-1]  # b"GS1/Ant\xc3"
    hub.subscriptions.follow(cut, subscribed=True)
    hub.subscriptions.follow(b"\xffGS1", subscribed=True)  # invalid bytes first: matches nothing, follows nothing
    send(hub, Agent("a", "GS1/Ant\u00e9").state(pt("x")))
    send(hub, Agent("b", "GS2").state(pt("y")))
    published = {topic for topic, _ in hub.drain(WALL0)}
    assert published == {"GS1/Ant\u00e9".encode(), "GS1/Ant\u00e9/x".encode()}
    assert all(topic.startswith(cut) for topic in published)
    hub.subscriptions.follow(cut, subscribed=False)
    send(hub, Agent("a", "GS1/Ant\u00e9").delta(pt("x", RED)))
    assert hub.drain(WALL0) == []


# -- labels ---------------------------------------------------------------------------------------


def test_a_built_in_code_keeps_its_built_in_label_whatever_an_agent_sends() -> None:
    """Agent A sends code 100 labelled "GREEN": its point, B's CRITICAL parent and the root all read CRITICAL."""
    hub = make_hub()
    send(hub, Agent("a", "GS1/A").state(PointEntry("x", 1, CRITICAL, "GREEN", WALL0, None)))
    send(hub, Agent("b", "GS1/B").state(pt("y", CRITICAL)))
    nodes = latest(drain(hub))
    for path in ("GS1/A/x", "GS1/A", "GS1/B", "GS1"):
        assert (nodes[path].alertcode, nodes[path].alertstr) == (CRITICAL, "CRITICAL"), path
    other = Agent("c", "GS2")
    send(hub, other.state(PointEntry("z", 1, GREEN, "FINE", WALL0, None), pt("w", ORANGE)))
    assert latest(drain(hub))["GS2/z"].alertstr == "GREEN"
    send(hub, other.delta(PointEntry("z", 1, STALE_ALERTCODE, "OK", WALL0, None)), now=0.1)
    assert latest(drain(hub))["GS2/z"].alertstr == "STALE"  # even the hub's own level


def test_a_user_label_belongs_to_its_point_and_parents_take_the_label_they_roll_up_from() -> None:
    """Two agents use code 15 with different labels: each point keeps its own; a parent shows its child's;
    no agent's label reaches a parent that does not roll up from it."""
    hub = make_hub()
    a, b = Agent("a", "GS1/A"), Agent("b", "GS1/B")
    send(hub, a.state(PointEntry("Deep/x", 1, 15, "MAINT", WALL0, None)))
    send(hub, b.state(PointEntry("y", 1, 15, "FOO", WALL0, None)))
    nodes = latest(drain(hub))
    assert [nodes[p].alertstr for p in ("GS1/A/Deep/x", "GS1/A/Deep", "GS1/A")] == ["MAINT"] * 3
    assert [nodes[p].alertstr for p in ("GS1/B/y", "GS1/B")] == ["FOO", "FOO"]
    assert nodes["GS1"].alertstr in {"MAINT", "FOO"}  # either child it rolls up from
    send(hub, b.delta(PointEntry("y", 1, 16, "BAR", WALL0, None)), now=1.0)
    nodes = latest(drain(hub, 1.0))
    assert (nodes["GS1"].alertcode, nodes["GS1"].alertstr) == (16, "BAR")
    send(hub, b.delta(pt("y", GREEN)), now=2.0)
    nodes = latest(drain(hub, 2.0))
    assert (nodes["GS1"].alertcode, nodes["GS1"].alertstr) == (15, "MAINT")  # back to A's, its only source
    assert nodes["GS1/B"].alertstr == "GREEN"


# -- reported_alert and liveness_unknown -----------------------------------------------------------------


def test_a_stale_point_keeps_its_reported_alert() -> None:
    """A RED point of a silent agent reads STALE with reported_alert RED; parents carry none."""
    hub = make_hub()
    send(hub, Agent("ant", "M", heartbeat_s=1.0).state(pt("x", RED), pt("y", GREEN)))
    hub.tick(10.0, WALL0 + 10.0)
    nodes = latest(drain(hub, 10.0))
    assert (nodes["M/y"].alertcode, nodes["M/y"].stale, nodes["M/y"].reported_alert) == (STALE_ALERTCODE, True, GREEN)
    assert (nodes["M/x"].alertcode, nodes["M/x"].reported_alert) == (STALE_ALERTCODE, RED)
    assert nodes["M"].reported_alert is None


class Reads:
    """Drives a hub as the server does: messages applied as read, then read_done and tick."""

    def __init__(self, hub: HubState) -> None:
        self.hub = hub

    def turn(self, now: float, *messages: proto.Message, emptied: bool) -> dict[str, proto.NodeUpdate]:
        for msg in messages:
            self.hub.apply(msg, now, WALL0 + now)
        self.hub.read_done(now, emptied)
        self.hub.tick(now, WALL0 + now)
        return latest(drain(self.hub, now))


def test_one_agents_flood_does_not_blind_the_hub_to_the_others() -> None:
    """While a flooder keeps the queue from emptying, the fair-queue rule proves the other agents heard:
    a killed agent turns silent on time, a live one stays live, and only the flooder's points carry
    liveness_unknown (rolled up to its parents), its overdue judgments held until it is caught up."""
    hub = make_hub()
    reads = Reads(hub)
    flood = Agent("flood", "GS1/F", heartbeat_s=1.0)
    victim = Agent("victim", "GS1/V", heartbeat_s=0.2)
    quiet = Agent("quiet", "GS1/Q", heartbeat_s=1.0)
    seen = reads.turn(0.0, flood.state(pt("p", dt=0.05)), victim.state(pt("v")), quiet.state(pt("q")), emptied=True)
    now = 0.0
    while now < 3.0:  # the victim is dead; the queue never empties, the flooder is read many times per turn
        now = round(now + 0.05, 2)
        batch = [flood.delta(pt("p", GREEN, dt=0.05)) for _ in range(5)]
        if int(now * 20) % 10 == 0:
            batch.insert(2, quiet.heartbeat(1))
        seen.update(reads.turn(now, *batch, emptied=False))
    assert seen["GS1/V/v"].stale  # 0.6 s of silence, judged while the flood goes on
    assert "GS1/Q/q" not in seen or not seen["GS1/Q/q"].stale
    assert not hub.agents["quiet"].silent
    assert not hub.agents["flood"].silent
    flooded = latest(drain(hub, now)) | seen
    assert flooded["GS1/F/p"].liveness_unknown
    assert flooded["GS1/F"].liveness_unknown
    assert flooded["GS1"].liveness_unknown  # a parent is unknown while any child is
    assert not flooded["GS1/F/p"].stale  # its refresh may wait in the queue: not judged
    assert "GS1/Q/q" not in seen or not seen["GS1/Q/q"].liveness_unknown
    # The flood stops: the queue empties, the flooder is heard again, its flags clear.
    nodes = reads.turn(now + 0.05, flood.delta(pt("p", GREEN, dt=0.05)), emptied=True)
    assert (nodes["GS1/F/p"].liveness_unknown, nodes["GS1/F"].liveness_unknown) == (False, False)
    assert not nodes["GS1/F/p"].stale
    assert nodes["GS1"].liveness_unknown is False


def test_held_points_are_judged_once_their_agent_is_heard() -> None:
    """A point that went past its deadline while the hub was behind its agent goes STALE once the
    hub has heard that agent up to the deadline (if nothing refreshed it)."""
    hub = make_hub()
    reads = Reads(hub)
    flood, other = Agent("flood", "F", heartbeat_s=100.0), Agent("other", "O", heartbeat_s=100.0)
    reads.turn(0.0, flood.state(pt("fast", GREEN, dt=0.1), pt("p")), other.state(pt("o")), emptied=True)
    for step in range(1, 21):  # 2 s of flood that never refreshes "fast"
        seen = reads.turn(step / 10, flood.delta(pt("p")), flood.delta(pt("p")), emptied=False)
        assert "F/fast" not in seen or not seen["F/fast"].stale
    nodes = reads.turn(2.1, emptied=True)
    assert nodes["F/fast"].stale


def test_after_a_pause_nothing_is_judged_until_the_grace_has_passed() -> None:
    """The hub resumes from a pause (observed time left it out): an empty queue right after it does not
    count as "heard everything", so live agents whose backlog is still on its way stay live; their
    points carry liveness_unknown until the grace ends; an agent that really died is judged after it."""
    hub = make_hub(heartbeat_interval_s=0.2, pause_grace_s=1.0)
    reads = Reads(hub)
    live, dead = Agent("live", "L", heartbeat_s=0.2), Agent("dead", "D", heartbeat_s=0.2)
    reads.turn(1.0, live.state(pt("x", GREEN)), dead.state(pt("y", GREEN)), emptied=True)
    hub.pause(1.05, 10.0)
    nodes = reads.turn(1.1, emptied=True)  # nothing readable yet: ZeroMQ is still moving the backlog
    assert nodes["L/x"].liveness_unknown
    assert not nodes["L/x"].stale
    for now in (1.5, 1.9):  # the live agent's backlog and new messages arrive; the dead one's never do
        nodes = reads.turn(now, live.heartbeat(1), emptied=True)
        assert "D/y" not in nodes or not nodes["D/y"].stale  # still within the grace: not judged
    assert not hub.agents["dead"].silent
    nodes = reads.turn(2.1, live.heartbeat(1), emptied=True)  # the grace is over
    assert nodes["D/y"].stale
    assert not nodes["L/x"].liveness_unknown
    assert "L/x" not in nodes or not nodes["L/x"].stale
    assert not hub.agents["live"].silent


def test_a_pause_left_out_of_the_clock_does_not_make_live_agents_silent() -> None:
    """Through a pause the observed clock barely moves, so a 10 s pause is not 10 s of silence."""
    hub = make_hub()
    reads = Reads(hub)
    agent = Agent("ant", "M", heartbeat_s=0.2)
    reads.turn(0.0, agent.state(pt("x", GREEN)), emptied=True)
    hub.pause(0.1, 10.0)
    seen = reads.turn(0.15, emptied=True)
    for step in range(3, 30):
        seen |= reads.turn(step / 10, agent.heartbeat(1), emptied=True)
    assert not seen["M/x"].stale
    assert not hub.agents["ant"].silent


def test_the_core_names_the_shortest_slack_a_pause_may_not_exceed() -> None:
    """blind_tolerance_s: the least of (agent_liveness - 1) x heartbeat over live agents and the stale slack."""
    hub = make_hub(agent_liveness=3.0, stale_slack_s=1.0)
    reads = Reads(hub)
    reads.turn(0.0, Agent("slow", "S", heartbeat_s=5.0).state(pt("x")), emptied=True)
    assert hub.blind_tolerance_s == pytest.approx(1.0)  # the stale slack is the shorter
    fast = Agent("fast", "F", heartbeat_s=0.2)
    reads.turn(0.1, fast.state(pt("y")), emptied=True)
    assert hub.blind_tolerance_s == pytest.approx(0.4)  # 2 x 0.2 s
    reads.turn(1.0, emptied=True)  # the fast agent went silent: its window no longer binds
    assert hub.agents["fast"].silent
    assert hub.blind_tolerance_s == pytest.approx(1.0)


@pytest.mark.parametrize("stop_s", [0.65, 0.8, 0.95])
def test_a_stop_under_a_second_during_a_turn_is_no_silence_with_fast_heartbeats(stop_s: float) -> None:
    """The hub, at 0.2 s heartbeats (window 0.6 s), is stopped for under a second while a turn works
    (not in its poll). The clock, told the core's tolerance, calls it a pause: the agent, which kept
    heartbeating meanwhile, is not made silent. Without the tolerance (the fixed 1 s turn limit) the
    same readings made it silent -- the false STALE a recorder test once stored."""
    for fitted in (True, False):
        hub = make_hub(heartbeat_interval_s=0.2, stale_slack_s=0.5, pause_grace_s=1.0)
        reads, clock = Reads(hub), ObservedClock()
        agent = Agent("ant", "M", heartbeat_s=0.2)
        now, _ = clock.observe(0.0, 0.1, 0.1)
        reads.turn(now, agent.state(pt("x", GREEN)), emptied=True)
        if fitted:
            clock.blind_tolerance_s = hub.blind_tolerance_s
        # The poll returned at 0.1; the turn's work is stopped until 0.1 + stop_s; the next poll finds the
        # socket still empty (ZeroMQ's I/O thread has not yet moved the heartbeats sent meanwhile).
        now, paused_s = clock.observe(0.1 + stop_s, 0.1 + stop_s, 0.0)
        if paused_s:
            hub.pause(now, paused_s)
        nodes = reads.turn(now, emptied=True)
        if fitted:
            assert paused_s == pytest.approx(stop_s)
            assert not hub.agents["ant"].silent
            assert "M/x" not in nodes or not nodes["M/x"].stale
            assert nodes["M/x"].liveness_unknown  # honest: judged again after the grace
        else:
            assert paused_s == 0.0
            assert hub.agents["ant"].silent  # the defect the tolerance removes


# -- points a new incarnation does not list ----------------------------------------------------------------


def test_a_point_the_new_incarnations_state_does_not_list_stays_stale_until_removed() -> None:
    """An agent restarts with a changed point set: its old one-shot point never reads live again."""
    hub = make_hub()
    agent = Agent("ant", "M", heartbeat_s=0.2)
    send(hub, agent.state(pt("once", RED, value="old"), pt("keep", GREEN, dt=1.0)))
    hub.tick(1.0, WALL0 + 1.0)  # the old process died: silent, everything STALE
    assert latest(drain(hub, 1.0))["M/once"].stale
    agent.restart(epoch=2)
    send(hub, agent.state(pt("keep", GREEN, dt=1.0), pt("new", GREEN)), now=1.5)
    nodes = latest(drain(hub, 1.5))
    assert not nodes["M/keep"].stale
    assert nodes["M/once"].stale
    assert (nodes["M/once"].alertcode, nodes["M/once"].reported_alert) == (STALE_ALERTCODE, RED)
    for now in (2.0, 5.0, 11.0):
        send(hub, agent.heartbeat(2), now=now)
        hub.tick(now, WALL0 + now)
        assert code(hub, "M/once") >= STALE_ALERTCODE
        assert all(u.stale for u in drain(hub, now) if u.path == "M/once")
    hub.tick(11.5, WALL0 + 11.5)
    assert "M/once" not in hub.tree


# -- two processes, one name ----------------------------------------------------------------------------------


def timed(agent: Agent, msg: proto.Message, sent_s: float) -> proto.Message:
    return dataclasses.replace(msg, sent_ns=int(sent_s * 1e9))


def test_two_processes_with_one_name_are_one_conflict_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Epochs A, B, A, B...: one conflict counted, one WARNING naming both peers, _hub/agents/<name>
    ORANGE; only the followed incarnation is applied; no "restarted" line per alternation."""
    caplog.set_level("INFO", logger="gsmon.hub")
    hub = make_hub()
    first, second = Agent("rack", "R", epoch=0xA, heartbeat_s=1.0), Agent("rack", "R", epoch=0xB, heartbeat_s=1.0)
    hub.apply(timed(first, first.state(pt("x", GREEN, value="a")), 100.0), 0.0, WALL0, "10.0.0.1:4001")
    hub.apply(timed(second, second.state(pt("x", GREEN, value="b")), 105.0), 0.5, WALL0, "10.0.0.2:4002")
    for step in range(1, 11):  # both keep sending, each after the other started
        sender = first if step % 2 else second
        peer = "10.0.0.1:4001" if sender is first else "10.0.0.2:4002"
        point = pt("x", GREEN, value=sender.epoch)
        msg = sender.state(point) if step % 3 == 0 else sender.delta(point)
        hub.apply(timed(sender, msg, 105.0 + step), 0.5 + step / 10, WALL0, peer)
    hub.tick(1.6, WALL0 + 1.6)
    nodes = latest(drain(hub, 1.6))
    assert hub.stats.conflicts == 1
    assert hub.agents["rack"].epoch == 0xB
    assert nodes["R/x"].value == 0xB  # only the followed incarnation's messages apply
    assert (nodes["_hub/agents/rack"].value, nodes["_hub/agents/rack"].alertcode) == (
        "conflict: two processes",
        ORANGE,
    )
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "two processes" in r.getMessage()]
    assert len(warnings) == 1
    assert "10.0.0.1:4001" in warnings[0].getMessage()
    assert "10.0.0.2:4002" in warnings[0].getMessage()
    assert sum("restarted" in r.getMessage() for r in caplog.records) == 1  # the one switch before it showed
    # The other process stops: the conflict is over.
    for now in (2.0, 3.0, 4.0, 5.0):
        hub.apply(timed(second, second.heartbeat(), 110.0 + now), now, WALL0 + now)
        hub.tick(now, WALL0 + now)
    assert latest(drain(hub, 5.0))["_hub/agents/rack"].value == "live"
    assert hub.stats.conflicts == 1


def test_a_real_restart_is_one_info_line_and_no_conflict(caplog: pytest.LogCaptureFixture) -> None:
    """The old incarnation's last words (sent before the new one started) arriving late are no conflict."""
    caplog.set_level("INFO", logger="gsmon.hub")
    hub = make_hub()
    old, new = Agent("rack", "R", epoch=0xA), Agent("rack", "R", epoch=0xB)
    send(hub, timed(old, old.state(pt("x")), 100.0))
    last_words = timed(old, old.delta(pt("x", RED)), 101.0)
    send(hub, timed(new, new.state(pt("x")), 103.0), now=1.0)
    send(hub, last_words, now=1.1)  # read after the new STATE (another connection), sent before it
    send(hub, timed(new, new.delta(pt("x")), 104.0), now=1.2)
    hub.tick(2.0, WALL0 + 2.0)
    assert hub.stats.conflicts == 0
    assert latest(drain(hub, 2.0))["_hub/agents/rack"].value == "live"
    assert [r.getMessage() for r in caplog.records if "restarted" in r.getMessage()] == [
        "agent rack restarted (epoch a -> b)"
    ]
    assert not [r for r in caplog.records if r.levelno >= 30 and "rack" in r.getMessage()]


def test_a_conflict_warning_waits_briefly_for_the_peers_addresses(caplog: pytest.LogCaptureFixture) -> None:
    """Detected from plain reads (no addresses), the core asks for peers, logs once both are known."""
    hub = make_hub()
    first, second = Agent("rack", "R", epoch=1), Agent("rack", "R", epoch=2)
    hub.apply(timed(first, first.state(pt("x")), 100.0), 0.0, WALL0)
    hub.apply(timed(second, second.state(pt("x")), 105.0), 0.1, WALL0)
    hub.apply(timed(first, first.delta(pt("x")), 107.0), 0.2, WALL0)
    assert hub.stats.conflicts == 1
    assert hub.peers_wanted
    assert not [r for r in caplog.records if "two processes" in r.getMessage()]
    hub.apply(timed(first, first.delta(pt("x")), 107.1), 0.3, WALL0, "127.0.0.1:5001")
    hub.apply(timed(second, second.delta(pt("x")), 107.2), 0.4, WALL0, "127.0.0.1:5002")
    assert not hub.peers_wanted
    (warning,) = [r.getMessage() for r in caplog.records if "two processes" in r.getMessage()]
    assert "127.0.0.1:5001" in warning
    assert "127.0.0.1:5002" in warning


# -- nested mounts --------------------------------------------------------------------------------------------


def test_nested_mounts_are_warned_about_once_equal_ones_not_at_all(caplog: pytest.LogCaptureFixture) -> None:
    """GS1 and GS1/Ant nest (one can publish into the other's subtree); two agents at GS1/Ant share."""
    hub = make_hub()
    send(hub, Agent("ctl", "GS1/Ant").state(pt("a")))
    send(hub, Agent("rack", "GS1/Ant").state(pt("b")))
    assert not [r for r in caplog.records if "nested" in r.getMessage()]
    site = Agent("site", "GS1")
    send(hub, site.state(pt("c")))
    send(hub, site.state(pt("c")), now=1.0)
    nested = [r.getMessage() for r in caplog.records if "nested" in r.getMessage()]
    assert len(nested) == 2
    assert all("site (mount GS1)" in line for line in nested)
    assert {"ctl", "rack"} == {line.split(" and ")[1].split(" ")[0] for line in nested}


def test_nesting_follows_a_mount_change_and_a_forget(caplog: pytest.LogCaptureFixture) -> None:
    """The mount index the warning walks (never every agent) is kept when a mount changes or an agent goes."""
    hub = make_hub()
    site = Agent("site", "GS1")
    send(hub, site.state(pt("c")))
    site.mount = "GS9"
    send(hub, site.state(pt("c")), now=1.0)  # moved away: GS1 is free
    send(hub, Agent("ant", "GS1/Ant").state(pt("a")), now=2.0)
    assert not [r for r in caplog.records if "nested" in r.getMessage()]
    send(hub, Agent("deep", "GS9/x/y").state(pt("d")), now=3.0)
    assert any("site (mount GS9)" in r.getMessage() and "deep" in r.getMessage() for r in caplog.records)


def test_nested_mounts_lists_strictly_nested_pairs_of_different_agents() -> None:
    """The pure rule the server applies to the allow-list's grants."""
    grants = [("a", "GS1"), ("b", "GS1/Ant"), ("c", "GS1/Ant"), ("d", "GS10"), ("a", "GS1/Own"), ("e", "GS1/Ant/x")]
    assert sorted(hub_state.nested_mounts(grants)) == [
        ("a", "GS1", "b", "GS1/Ant"),
        ("a", "GS1", "c", "GS1/Ant"),
        ("a", "GS1", "e", "GS1/Ant/x"),
        ("b", "GS1/Ant", "e", "GS1/Ant/x"),
        ("c", "GS1/Ant", "e", "GS1/Ant/x"),
    ]


# -- forget ----------------------------------------------------------------------------------------------------


def test_forget_removes_a_silent_agent_and_refuses_a_live_one() -> None:
    """A silent agent and all its points go at once (removals published); a live one is refused, unless its
    key was revoked; an unknown name is refused."""
    hub = make_hub()
    send(hub, Agent("dead", "GS1/Dead", heartbeat_s=0.2).state(pt("x"), pt("y/z"), parents=["P"]))
    send(hub, Agent("live", "GS1/Live", heartbeat_s=100.0).state(pt("x")))
    hub.tick(1.0, WALL0 + 1.0)
    drain(hub, 1.0)
    done, message, result = hub.forget("live", 1.0, WALL0 + 1.0)
    assert (done, result) == (False, {"reason": "live"})
    assert "live" in message
    assert hub.forget("nobody", 1.0, WALL0 + 1.0)[2] == {"reason": "unknown"}
    done, message, result = hub.forget("dead", 1.0, WALL0 + 1.0)
    assert (done, result) == (True, {"agent": "dead", "points": 2})
    removed = {u.path for u in drain(hub, 1.0) if u.kind == proto.NODE_REMOVED}
    assert removed == {"GS1/Dead", "GS1/Dead/x", "GS1/Dead/y", "GS1/Dead/y/z", "GS1/Dead/P", "_hub/agents/dead"}
    assert "dead" not in hub.agents
    done, _, _ = hub.forget("live", 1.0, WALL0 + 1.0, granted=False)
    assert done
    assert agent_paths(hub) == set()


# -- logs ------------------------------------------------------------------------------------------------------


def test_silent_is_a_warning_and_back_an_info_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="gsmon.hub")
    hub = make_hub()
    agent = Agent("ant", "M", heartbeat_s=1.0)
    send(hub, agent.state(pt("x")))
    hub.tick(5.0, WALL0 + 5.0)
    send(hub, agent.heartbeat(), now=7.0)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "gsmon.hub.state"]
    assert ("WARNING", "agent ant is silent: nothing heard for 5.0 s; its 1 point(s) are STALE") in lines
    assert ("INFO", "agent ant is back after 2.0 s of silence") in lines


def test_alert_transitions_of_points_are_logged_centrally_above_the_threshold(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Path, old -> new, value and agent, with structured fields; below the threshold nothing; OFF nothing."""
    caplog.set_level("DEBUG", logger="gsmon.hub.alerts")
    hub = make_hub(alert_log_threshold=RED)
    agent = Agent("ant", "M", heartbeat_s=1.0)
    send(hub, agent.state(pt("x", GREEN, value=1), pt("y", ORANGE)))
    send(hub, agent.delta(pt("x", RED, value=42)), now=1.0)
    send(hub, agent.delta(pt("y", GREEN)), now=1.0)  # below the threshold both ways
    hub.tick(10.0, WALL0 + 10.0)  # silent: RED -> (still RED, >= STALE? no: RED < STALE) STALE
    records = [r for r in caplog.records if r.name == "gsmon.hub.alerts"]
    messages = [r.getMessage() for r in records]
    assert messages[0] == 'alert "M/x" GREEN --> RED (value 42, agent ant)'
    assert records[0].levelname == "WARNING"
    assert {k: getattr(records[0], k) for k in ("point", "old_alert", "new_alert", "value", "agent")} == {
        "point": "M/x",
        "old_alert": GREEN,
        "new_alert": RED,
        "value": 42,
        "agent": "ant",
    }
    assert 'alert "M/x" RED --> STALE (value 42, agent ant)' in messages
    assert 'alert "M/y" GREEN --> STALE (value 1.0, agent ant)' in messages
    assert not any("ORANGE" in m for m in messages)
    quiet = make_hub(alert_log_level=None)
    caplog.clear()
    send(quiet, Agent("ant", "M").state(pt("x", CRITICAL)))
    assert not [r for r in caplog.records if r.name == "gsmon.hub.alerts"]


def test_the_alert_log_is_rate_limited_with_a_count_of_what_it_left_out(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="gsmon.hub.alerts")
    hub = make_hub()
    send(hub, Agent("ant", "M").state(*(pt(f"p{i}", RED) for i in range(250))))
    send(hub, Agent("ant2", "N").state(pt("q", RED)), now=1.5)
    messages = [r.getMessage() for r in caplog.records if r.name == "gsmon.hub.alerts"]
    assert len([m for m in messages if m.startswith("alert ")]) == MAX_LINES_PER_S + 1
    assert "50 more alert transition(s) in 2 s not logged (more than 200 a second)" in messages


# -- snapshots walk only the subtree -----------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    points=st.lists(st.sampled_from(["A/x", "A/xy", "A/x/y", "Ab/c", "B/A/x", "A", "Z"]), min_size=1, unique=True),
    prefix=st.sampled_from(["", "GS1", "GS1/", "GS1/A", "GS1/A/", "GS1/A/x", "GS1/Ab", "GS1/A/x/", "GS", "/", "GS1/Q"]),
)
def test_a_snapshot_selects_exactly_the_prefix_segments(points: list[str], prefix: str) -> None:
    """nodes_under(prefix) is the tree filtered by names.path_in_prefix, found by a walk from the prefix's node."""
    from gsmon.common.names import path_in_prefix

    hub = make_hub()
    agent = Agent("a", "GS1")
    for path in points:  # one per message: a later path may be refused (a point cannot be a parent)
        send(hub, agent.delta(pt(path)) if agent.seq >= 0 else agent.state(pt(path)))
    drain(hub)
    expected = {path for path, _ in hub.tree.items() if path_in_prefix(path, prefix)}
    assert {node.key for node in hub.nodes_under(prefix)} == expected
    assert set(unpack_items(hub.snapshot(prefix)[0])) == expected


def test_a_snapshot_walk_survives_changes_between_its_steps() -> None:
    """Resumed across turns while nodes are removed and added: removed ones are skipped, never an error."""
    hub = make_hub()
    agent = Agent("a", "GS1")
    send(hub, agent.state(*(pt(f"G{g}/p{i}") for g in range(5) for i in range(5))))
    drain(hub)
    walk = hub.nodes_under("GS1/")
    first = [next(walk).key for _ in range(3)]
    agent.restart(epoch=2)
    send(hub, agent.state(pt("G0/p0"), pt("New/x")), now=1.0)
    hub.tick(11.0, WALL0 + 11.0)  # the grace has passed: everything else removed
    drain(hub, 11.0)
    rest = [node.key for node in walk]
    assert all(key in hub.tree for key in rest)  # removed nodes are skipped
    assert {"GS1/G0", "GS1/G0/p0"} <= set(first) | set(rest)  # what was there and stayed is yielded
    assert len(first) + len(rest) == len(set(first) | set(rest))  # once each


@settings(max_examples=50, deadline=None)
@given(
    points=st.lists(st.sampled_from(["A/x", "A/xy", "A/x/y", "Ab/c", "B/A/x", "A", "Z"]), min_size=1, unique=True),
    prefix=st.sampled_from(["", "GS1", "GS1/", "GS1/A", "GS1/A/", "GS1/A/x", "GS1/Ab", "/", "GS1/Q"]),
    step=st.integers(1, 4),
)
def test_the_stepwise_walk_gives_the_same_items_as_the_snapshot(points: list[str], prefix: str, step: int) -> None:
    """walk_start/walk_step (the query core's slices) visit what nodes_under yields, packed alike."""
    hub = make_hub()
    agent = Agent("a", "GS1")
    for path in points:
        send(hub, agent.delta(pt(path)) if agent.seq >= 0 else agent.state(pt(path)))
    drain(hub)
    stack, out = hub.walk_start(prefix), []
    while hub.walk_step(stack, step, out) == step:
        pass
    assert sorted(out) == sorted(hub.snapshot(prefix)[0])
