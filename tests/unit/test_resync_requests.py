"""When the hub asks an agent for a STATE (protocol: resync back-channel), and when it does not.

A request reaches every agent connected to the hub (a SUB sends each subscription to all), so a request the
agent's own message already answers costs N frames for nothing: a STATE refills the agent by itself. (A site
hub restarted under 750 simulated agents asked each of them, 2,075 requests: 1.7 million frames at the agents,
see bench/RESULTS.md, 2026-12-03.) No sockets, no sleeps: the core of tests/unit/test_hub_state.py.
"""

from __future__ import annotations

from test_hub_state import WALL0, Agent, code, drain, make_hub, pt, send

from gsmon.hub.state import HubState

GREEN = 10


def _silent(agent: Agent) -> tuple[HubState, Agent]:
    hub = make_hub()
    send(hub, agent.state(pt("x", GREEN), pt("y", GREEN)))
    hub.tick(5.0, WALL0 + 5.0)  # 3 x its 1 s heartbeat: silent
    drain(hub, 5.0)
    assert hub.agents[agent.name].silent
    assert hub.take_resync_requests() == []
    return hub, agent


def test_a_state_from_a_silent_agent_refreshes_it_without_asking_for_another() -> None:
    hub, agent = _silent(Agent("ant", "M", heartbeat_s=1.0))
    send(hub, agent.state(pt("x", GREEN, polled=6.0), pt("y", GREEN, polled=6.0)), now=6.0)
    nodes = {update.path: update for update in drain(hub, 6.0)}
    assert not nodes["M/x"].stale
    assert not hub.agents["ant"].silent
    assert hub.take_resync_requests() == []


def test_a_heartbeat_from_a_silent_agent_still_asks_for_a_state() -> None:
    hub, agent = _silent(Agent("ant", "M", heartbeat_s=1.0))
    send(hub, agent.heartbeat(2), now=6.0)
    assert hub.take_resync_requests() == ["ant"]


def test_a_state_after_a_seq_gap_counts_the_gap_and_asks_for_nothing() -> None:
    hub = make_hub()
    agent = Agent("ant", "M")
    send(hub, agent.state(pt("x", GREEN)))
    agent.skip(3)
    send(hub, agent.state(pt("x", GREEN, value=2, polled=6.0)), now=1.0)
    assert hub.stats.seq_gaps == 3
    assert hub.take_resync_requests() == []
    assert hub.tree["M/x"].data.value == 2
    assert code(hub, "M/x") == GREEN


def test_a_gap_before_a_later_part_of_a_state_asks_for_the_whole_state() -> None:
    hub = make_hub()
    agent = Agent("ant", "M")
    send(hub, agent.state(pt("x", GREEN)))
    agent.skip(1)  # the first part lost
    second = agent.state(pt("y", GREEN), part=1, parts=2)
    send(hub, second, now=1.0)
    assert hub.stats.seq_gaps == 1
    assert hub.take_resync_requests() == ["ant"]


def test_a_delta_after_a_seq_gap_still_asks_for_a_state() -> None:
    hub = make_hub()
    agent = Agent("ant", "M")
    send(hub, agent.state(pt("x", GREEN)))
    agent.skip(2)
    send(hub, agent.delta(pt("x", GREEN, value=3)), now=1.0)
    assert hub.take_resync_requests() == ["ant"]
