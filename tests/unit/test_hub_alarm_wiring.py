"""HubState driving the AlarmBook (issue 13 wiring): no sockets, no sleeps, times as arguments."""

from __future__ import annotations

from typing import Any

import msgpack
from test_hub_state import SETTINGS, WALL0, Agent, pt, send

from gsmon.common.alerts import STALE_ALERTCODE
from gsmon.hub.alarms import ACTIVE_ACKED, ACTIVE_UNACKED, AGENT_SILENT, CLEARED, OVERDUE, RTN_UNACKED, AlarmBook
from gsmon.hub.state import HubState

GREEN, ORANGE, RED = 10, 20, 30


def make() -> tuple[HubState, AlarmBook]:
    book = AlarmBook()
    hub = HubState(SETTINGS, 0x5EED, now=0.0, alarms=book)
    hub.subscriptions.follow(b"", subscribed=True)
    return hub, book


def payloads(hub: HubState, now: float) -> dict[str, dict[str, Any]]:
    return {topic.decode(): msgpack.unpackb(payload) for topic, payload in hub.drain(WALL0 + now)}


def test_a_red_point_opens_one_alarm_and_its_nodes_carry_attention_until_acked() -> None:
    hub, book = make()
    ant = Agent("ant1", "GS1/Ant1")
    send(hub, ant.state(pt("Power", RED), pt("Fan", GREEN)))
    [alarm] = book.alarms()
    assert (alarm.path, alarm.state, alarm.level, alarm.latch) == ("GS1/Ant1/Power", ACTIVE_UNACKED, RED, True)
    out = payloads(hub, 0.0)
    assert out["GS1/Ant1/Power"]["attention"] == RED
    assert out["GS1/Ant1/Power"]["alarm"]["id"] == alarm.id
    assert out["GS1"]["attention"] == RED
    assert out["GS1"]["unacked_below"] == 1
    assert "attention" not in out["GS1/Ant1/Fan"]
    assert book.ack([alarm.id], "ops", "ann", None, None, "operator", 1.0, WALL0 + 1).ok
    out = payloads(hub, 1.0)
    assert "attention" not in out["GS1"]  # acknowledged: republished with attention 0
    assert out["GS1/Ant1/Power"]["alarm"]["state"] == ACTIVE_ACKED
    # The second RED under the acknowledged parent raises attention again.
    send(hub, ant.delta(pt("Fan", RED)), 2.0)
    out = payloads(hub, 2.0)
    assert out["GS1"]["attention"] == RED
    assert len(book.alarms(unacked_only=True)) == 1


def test_return_to_normal_of_an_unacked_latched_alarm_keeps_it_rtn_unacked() -> None:
    hub, book = make()
    ant = Agent("ant1", "GS1/Ant1")
    send(hub, ant.state(pt("Power", RED)))
    send(hub, ant.delta(pt("Power", GREEN, polled=6.0)), 1.0)
    [alarm] = book.alarms()
    assert (alarm.state, alarm.rtn_at) == (RTN_UNACKED, WALL0 + 6.0)  # the poll's time, not the hub's
    assert book.ack([alarm.id], "ops", None, None, None, "operator", 2.0, WALL0 + 2).ok
    assert book.alarm(alarm.id).state == CLEARED  # type: ignore[union-attr]


def test_an_overdue_point_of_a_live_agent_opens_an_overdue_alarm() -> None:
    hub, book = make()
    ant = Agent("ant1", "GS1/Ant1", heartbeat_s=100.0)
    send(hub, ant.state(pt("Temp", GREEN, dt=1.0)))
    send(hub, ant.heartbeat(), 3.9)
    hub.tick(3.9, WALL0 + 3.9)
    assert book.alarms() == []
    send(hub, ant.heartbeat(), 4.5)
    hub.tick(4.5, WALL0 + 4.5)  # past 3 x dt + 1 s
    [alarm] = book.alarms()
    assert (alarm.path, alarm.reason, alarm.level) == ("GS1/Ant1/Temp", OVERDUE, STALE_ALERTCODE)


def test_a_silent_agent_opens_one_alarm_on_its_mount_and_it_returns_when_heard() -> None:
    hub, book = make()
    ant = Agent("ant1", "GS1/Ant1", heartbeat_s=1.0)
    send(hub, ant.state(*(pt(f"P{i}", GREEN) for i in range(5))))
    hub.tick(10.0, WALL0 + 10.0)
    [alarm] = book.alarms()
    assert (alarm.path, alarm.reason) == ("GS1/Ant1", AGENT_SILENT)
    out = payloads(hub, 10.0)
    assert out["GS1/Ant1"]["alarm"]["id"] == alarm.id
    assert out["GS1/Ant1/P0"]["stale"] is True
    send(hub, ant.heartbeat(), 11.0)
    assert book.alarm(alarm.id).state == RTN_UNACKED  # type: ignore[union-attr]  # STALE latches


def test_forgetting_a_silent_agent_clears_its_points_unlatched_alarms() -> None:
    hub, book = make()
    ant = Agent("ant1", "GS1/Ant1", heartbeat_s=1.0)
    send(hub, ant.state(pt("Power", ORANGE), pt("Fan", GREEN)))
    [alarm] = book.alarms()
    assert alarm.latch is False
    hub.tick(10.0, WALL0 + 10.0)  # silent: its points' STALE opens no alarm of their own
    assert [a.reason for a in book.alarms()] == ["level", AGENT_SILENT]
    assert book.alarm(alarm.id).state == ACTIVE_UNACKED  # type: ignore[union-attr]
    done, _, _ = hub.forget("ant1", 11.0, WALL0 + 11.0)
    assert done
    assert book.alarm(alarm.id).state == CLEARED  # type: ignore[union-attr]
