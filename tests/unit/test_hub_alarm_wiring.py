"""HubState driving the AlarmBook (issue 13 wiring): no sockets, no sleeps, times as arguments."""

from __future__ import annotations

from typing import Any

import msgpack
from notify_support import JournalNotifier
from test_hub_state import SETTINGS, WALL0, Agent, pt, send

from gsmon.common import protocol as proto
from gsmon.common.alerts import STALE_ALERTCODE
from gsmon.common.client import NodeState
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


def debounced(path: str, code: int, raw: int, pending: tuple[int, float] | None = None, **kw: Any) -> proto.PointEntry:
    """A point entry of a debounced point: effective ``code``, raw level ``raw`` (the agent's 7th item)."""
    flapping = kw.pop("flapping", None)
    return proto.debounced_entry(pt(path, code, **kw), proto.point_debounce_map(raw, "", pending, flapping))


def test_a_debounced_entry_puts_raw_alert_pending_and_flapping_in_the_nodes_and_the_book_journals_them() -> None:
    """Issue 13 §3: NODEs carry the raw level beside the effective one, and the pending/flapping state."""
    hub, book = make()
    ant = Agent("ant1", "GS1/Ant1")
    send(hub, ant.state(pt("Power", GREEN)))
    payloads(hub, 0.0)
    book.take_journal()
    # One RED poll that for_s holds back: effective GREEN, raw RED, pending RED since that poll.
    send(hub, ant.delta(debounced("Power", GREEN, RED, (RED, WALL0 + 6.0), polled=6.0)), 1.0)
    out = payloads(hub, 1.0)["GS1/Ant1/Power"]
    assert (out["alert"], out["raw_alert"], out["pending"]) == (GREEN, RED, {"level": RED, "since": WALL0 + 6.0})
    assert "flapping" not in out
    assert book.alarms() == []  # the effective level opens alarms, not the raw one
    assert [(e.kind, e.old, e.new) for e in book.take_journal()] == [("pending", GREEN, RED)]
    # The glitch ends: raw GREEN again, the pending move is discarded (journaled), raw_alert stays GREEN.
    send(hub, ant.delta(debounced("Power", GREEN, GREEN, polled=7.0)), 2.0)
    out = payloads(hub, 2.0)["GS1/Ant1/Power"]
    assert (out["alert"], out["raw_alert"]) == (GREEN, GREEN)
    assert "pending" not in out
    assert [(e.kind, e.new) for e in book.take_journal()] == [("discarded", RED)]
    # A flap guard holding the level shows as flapping, and its start is journaled once.
    send(hub, ant.delta(debounced("Power", RED, GREEN, flapping=(WALL0 + 5.0, 6), polled=8.0)), 3.0)
    out = payloads(hub, 3.0)["GS1/Ant1/Power"]
    assert (out["alert"], out["raw_alert"], out["flapping"]) == (RED, GREEN, {"since": WALL0 + 5.0, "changes": 6})
    kinds = [e.kind for e in book.take_journal()]
    assert "flapping_start" in kinds
    assert "alarm_raised" in kinds
    send(hub, ant.delta(debounced("Power", RED, GREEN, flapping=(WALL0 + 5.0, 6), polled=9.0)), 4.0)
    assert "flapping_start" not in [e.kind for e in book.take_journal()]
    # Debounce switched off at the agent (a plain entry again): the keys go, flapping stops.
    send(hub, ant.delta(pt("Power", GREEN, polled=10.0)), 5.0)
    out = payloads(hub, 5.0)["GS1/Ant1/Power"]
    assert not {"raw_alert", "pending", "flapping"} & set(out)
    assert "flapping_stop" in [e.kind for e in book.take_journal()]


def test_a_hub_without_an_alarm_book_relays_the_debounce_keys_too() -> None:
    hub = HubState(SETTINGS, 0x5EED, now=0.0)
    hub.subscriptions.follow(b"", subscribed=True)
    send(hub, Agent("ant1", "GS1/Ant1").state(debounced("Power", GREEN, RED, (RED, WALL0 + 5.0))))
    published = payloads(hub, 0.0)
    out = published["GS1/Ant1/Power"]
    assert (out["alert"], out["raw_alert"], out["pending"]["level"]) == (GREEN, RED, RED)
    # Without the alarm layer no node carries since or attention (an absent attention is then "not judged").
    for path in ("GS1", "GS1/Ant1", "GS1/Ant1/Power"):
        assert not {"since", "attention"} & set(published[path]), published[path]
    state = NodeState.from_update(proto.decode_node_payload("GS1/Ant1/Power", out))
    assert (state.raw_alert, state.attention) == (RED, None)


def test_a_silent_agent_coming_back_raises_and_escalates_nothing_for_its_points() -> None:
    """Issue 13 §1/§5: an agent's silence is ONE alarm on its mount; when it comes back, its points (overdue
    by then: their deadlines passed during the silence) are not raised as overdue one by one, nor do the RED
    ones escalate to STALE, and no level 50 -> 50 is journaled. A point that comes back in the same condition
    keeps its alarm."""
    hub, book = make()
    ant = Agent("ant1", "GS1/Ant1", heartbeat_s=1.0)
    send(hub, ant.state(pt("Power", RED, dt=1.0), pt("Fan", GREEN, dt=1.0)))
    [red] = book.alarms()
    hub.tick(10.0, WALL0 + 10.0)  # silent (3 heartbeats); the points' deadlines (4 s) have passed too
    hub.tick(20.0, WALL0 + 20.0)
    [silent] = [a for a in book.alarms() if a.reason == AGENT_SILENT]
    book.take_journal()
    book.take_events()
    send(hub, ant.heartbeat(), 21.0)  # back: the hub asks for a STATE
    hub.tick(21.0, WALL0 + 21.0)
    send(hub, ant.state(pt("Power", RED, dt=1.0, polled=21.5), pt("Fan", GREEN, dt=1.0, polled=21.5)), 21.5)
    hub.tick(22.0, WALL0 + 22.0)
    journal = [(e.kind, e.path, e.old, e.new) for e in book.take_journal()]
    assert [k for k, *_ in journal if k.startswith("alarm_") and k != "alarm_rtn"] == [], journal
    assert ("level", "GS1/Ant1/Power", STALE_ALERTCODE, STALE_ALERTCODE) not in journal
    assert ("fresh", "GS1/Ant1/Power", STALE_ALERTCODE, RED) in journal
    # The mount's alarm returns to normal with the agent (one incident: the notifier folds the two).
    assert [e.kind for e in book.take_events()] == ["agent_back", "alarm_rtn"]
    assert {a.id for a in book.alarms()} == {red.id, silent.id}
    assert book.alarm(red.id).level == RED  # type: ignore[union-attr]
    assert book.alarm(red.id).max_level == RED  # type: ignore[union-attr]


def test_a_point_its_agent_does_not_refresh_after_a_silence_is_overdue_one_period_later() -> None:
    """The silence hold lasts until the point is refreshed or its next deadline, counted from the return."""
    hub, book = make()
    ant = Agent("ant1", "GS1/Ant1", heartbeat_s=1.0)
    send(hub, ant.state(pt("Temp", GREEN, dt=1.0), pt("Fan", GREEN, dt=1.0)))
    hub.tick(20.0, WALL0 + 20.0)
    send(hub, ant.delta(pt("Fan", GREEN, dt=1.0, polled=21.0)), 21.0)  # back, but Temp never comes
    hub.tick(21.0, WALL0 + 21.0)
    for now in (22.5, 24.0, 24.9):  # heartbeats keep the agent live
        send(hub, ant.heartbeat(), now)
        hub.tick(now, WALL0 + now)
    assert [a.reason for a in book.alarms()] == [AGENT_SILENT]  # Fan refreshed once at 21: overdue at 25
    send(hub, ant.heartbeat(), 25.5)
    hub.tick(25.5, WALL0 + 25.5)
    overdue = sorted(a.path for a in book.alarms() if a.reason == OVERDUE)
    assert overdue == ["GS1/Ant1/Fan", "GS1/Ant1/Temp"]


def test_the_notifier_tells_a_silence_and_its_end_once_and_nothing_about_the_points() -> None:
    """common/notify reading the journal of a silence and a return: AGENT SILENT, AGENT BACK, nothing else."""
    hub, book = make()
    notify = JournalNotifier(book, WALL0)
    sent = notify.sent

    ant = Agent("ant1", "GS1/Ant1", heartbeat_s=1.0)
    send(hub, ant.state(pt("Power", RED, dt=1.0), pt("Fan", GREEN, dt=1.0)))
    notify(0.0)
    assert sent == ["[gsmon] RAISED RED GS1/Ant1/Power"]
    for now in (10.0, 20.0):
        hub.tick(now, WALL0 + now)
        notify(now)
    send(hub, ant.heartbeat(), 21.0)
    hub.tick(21.0, WALL0 + 21.0)
    notify(21.0)
    send(hub, ant.state(pt("Power", RED, dt=1.0, polled=21.5), pt("Fan", GREEN, dt=1.0, polled=21.5)), 21.5)
    for now in (22.0, 23.0):
        hub.tick(now, WALL0 + now)
        notify(now)
    assert sent[1:] == ["[gsmon] AGENT SILENT STALE GS1/Ant1", "[gsmon] AGENT BACK STALE GS1/Ant1"]


def _restarted_hub(book: AlarmBook, now: float) -> tuple[HubState, AlarmBook]:
    """A hub started afresh from what ``book`` would have stored (the store's records)."""
    restored = AlarmBook.restore(None, book.alarms(include_cleared=True), [], book.next_id, now, WALL0 + now)
    hub = HubState(SETTINGS, 0x5EED + 1, now=now, alarms=restored)
    hub.subscriptions.follow(b"", subscribed=True)
    return hub, restored


def test_a_restored_alarm_waits_for_a_point_its_restarted_agent_has_not_polled_yet() -> None:
    hub, book = make()
    ant = Agent("ant1", "GS1/Ant1")
    send(hub, ant.state(pt("Power", RED), pt("Fan", GREEN)))
    [alarm] = book.alarms()
    assert book.ack([alarm.id], "ops", "ann", "seen", None, "operator", 1.0, WALL0 + 1).ok
    hub2, book2 = _restarted_hub(book, 5.0)
    ant.restart(2)
    # The new incarnation's first STATE comes before Power's first poll: it names Power as unpolled.
    send(hub2, ant.state(pt("Fan", GREEN, polled=6.0), unpolled=["Power"]), 6.0)
    assert book2.alarm(alarm.id).state == ACTIVE_ACKED  # type: ignore[union-attr]
    send(hub2, ant.delta(pt("Power", RED, polled=7.0)), 7.0)
    assert [(a.id, a.state, a.ack_comment) for a in book2.alarms()] == [(alarm.id, ACTIVE_ACKED, "seen")]


def test_a_restored_alarm_of_a_point_its_agent_no_longer_has_closes() -> None:
    hub, book = make()
    ant = Agent("ant1", "GS1/Ant1")
    send(hub, ant.state(pt("Power", RED), pt("Fan", GREEN)))
    [alarm] = book.alarms()
    assert book.ack([alarm.id], "ops", "ann", None, None, "operator", 1.0, WALL0 + 1).ok
    hub2, book2 = _restarted_hub(book, 5.0)
    ant.restart(2)
    send(hub2, ant.state(pt("Fan", GREEN, polled=6.0)), 6.0)  # Power is gone from this incarnation
    assert book2.alarm(alarm.id).state == CLEARED  # type: ignore[union-attr]


def test_an_unpolled_point_of_a_restarted_agent_is_kept_past_the_removal_grace() -> None:
    hub, book = make()
    ant = Agent("ant1", "GS1/Ant1")
    send(hub, ant.state(pt("Power", RED, dt=100.0), pt("Fan", GREEN)))
    [alarm] = book.alarms()
    ant.restart(2)
    send(hub, ant.state(pt("Fan", GREEN, polled=2.0), unpolled=["Power"]), 2.0)
    hub.tick(2.0 + SETTINGS.removal_grace_s + 1, WALL0 + 2.0 + SETTINGS.removal_grace_s + 1)
    out = payloads(hub, 2.0 + SETTINGS.removal_grace_s + 1)
    assert "removed" not in out.get("GS1/Ant1/Power", {})
    assert book.alarm(alarm.id).state == ACTIVE_UNACKED  # type: ignore[union-attr]


def test_a_point_the_restarted_agent_no_longer_lists_opens_no_alarm_and_leaves_no_attention() -> None:
    """Issue 13 §1: a point a new incarnation does not list is STALE until removal_grace_s removes it, but
    it is not overdue (the agent says it has no such point): no alarm needing an ack, and once it is gone
    nothing of it keeps its parents' attention up."""
    hub, book = make()
    ant = Agent("ant1", "GS1/Ant1")
    send(hub, ant.state(pt("Old/a", GREEN), pt("Old/b", GREEN), pt("Keep", GREEN)))
    payloads(hub, 0.0)
    ant.restart(2)
    send(hub, ant.state(pt("Keep", GREEN)), 1.0)
    hub.tick(1.0, WALL0 + 1.0)
    out = payloads(hub, 1.0)
    assert out["GS1/Ant1/Old/a"]["stale"] is True  # this incarnation does not vouch for it
    assert book.alarms() == []
    assert "attention" not in out["GS1/Ant1/Old"]
    journal = [(e.kind, e.path, e.comment) for e in book.take_journal()]
    assert ("stale", "GS1/Ant1/Old/a", "unlisted") in journal
    hub.tick(11.5, WALL0 + 11.5)  # past removal_grace_s: removed
    out = payloads(hub, 11.5)
    assert "GS1/Ant1/Old" not in hub.tree
    assert "attention" not in out["GS1/Ant1"]
    assert "unacked_below" not in out["GS1/Ant1"]
    assert out["GS1/Ant1"]["alert"] == GREEN
    assert book.attention_of("GS1") == 0
    assert book.unacked_below("GS1") == 0
    assert [(e.kind, e.path, e.comment) for e in book.take_journal()] == [
        ("removed", "GS1/Ant1/Old/a", "removed"),
        ("removed", "GS1/Ant1/Old/b", "removed"),
    ]


def test_an_alarm_open_before_the_restart_on_a_dropped_point_follows_the_removal_rules() -> None:
    """An unlatched alarm of a point the new incarnation drops closes (``removed``) when the point goes; a
    latched unacked one stays ``rtn_unacked`` (a latched alarm never disappears unacknowledged) and is
    not raised again, nor escalated to STALE, by the drop."""
    hub, book = make()
    ant = Agent("ant1", "GS1/Ant1")
    send(hub, ant.state(pt("Red", RED), pt("Orange", ORANGE), pt("Keep", GREEN)))
    red, orange = sorted(book.alarms(), key=lambda a: a.path, reverse=True)
    ant.restart(2)
    send(hub, ant.state(pt("Keep", GREEN)), 1.0)
    hub.tick(1.0, WALL0 + 1.0)
    assert {(a.id, a.max_level, a.reason) for a in book.alarms()} == {
        (red.id, RED, "level"),
        (orange.id, ORANGE, "level"),
    }
    book.take_journal()
    hub.tick(11.5, WALL0 + 11.5)
    assert book.alarm(orange.id).state == CLEARED  # type: ignore[union-attr]
    assert book.alarm(orange.id).cleared_reason == "removed"  # type: ignore[union-attr]
    assert book.alarm(red.id).state == RTN_UNACKED  # type: ignore[union-attr]
    assert book.attention_of("GS1") == RED
    kinds = [(e.kind, e.path) for e in book.take_journal()]
    assert ("alarm_cleared", "GS1/Ant1/Orange") in kinds


def test_the_hubs_own_points_carry_since_and_their_level_as_attention() -> None:
    """Every point has ``since`` (issue 13 §1), the hub's ``_hub/...`` ones too (1.3): when their current
    level began, kept while only the value moves. They open no alarms, so their attention is their level."""
    hub, book = make()
    ant = Agent("ant1", "GS1/Ant1", heartbeat_s=1.0)
    send(hub, ant.state(pt("Fan", GREEN)))
    hub.tick(0.0, WALL0)
    out = payloads(hub, 0.0)
    live = out["_hub/agents/ant1"]
    assert (live["alert"], live["since"], live["attention"]) == (GREEN, WALL0, GREEN)
    assert out["_hub/uptime_s"]["since"] == WALL0
    assert "attention" not in out["_hub/uptime_s"]  # level 0
    assert "alarm" not in live
    hub.tick(1.5, WALL0 + 1.5)  # a new uptime value, same level: same since
    out = payloads(hub, 1.5)
    assert out["_hub/uptime_s"]["since"] == WALL0
    assert "_hub/agents/ant1" not in out
    hub.tick(5.0, WALL0 + 5.0)  # silent: its _hub point turns STALE now
    out = payloads(hub, 5.0)
    silent = out["_hub/agents/ant1"]
    assert (silent["alert"], silent["since"], silent["attention"]) == (STALE_ALERTCODE, WALL0 + 5.0, STALE_ALERTCODE)
    state = NodeState.from_update(proto.decode_node_payload("_hub/agents/ant1", silent))
    assert (state.since, state.attention, state.alarm) == (WALL0 + 5.0, STALE_ALERTCODE, None)
    assert [a.path for a in book.alarms()] == ["GS1/Ant1"]  # the agent's own alarm, none on _hub
    done, _, _ = hub.forget("ant1", 6.0, WALL0 + 6.0)
    assert done
    assert "_hub/agents/ant1" not in hub._own_since  # forgotten with its point
