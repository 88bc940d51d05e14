"""The notifier's pure core: journal entries and a fake clock in, messages out (no sockets, no sleeps)."""

from __future__ import annotations

import json

import pytest
from notify_support import GREEN, ORANGE, RED, STALE, T0, entry, run, settings

from gsmon.common.alarm_commands import BadAnswerError, JournalRecord
from gsmon.common.notify.core import Entry, EntryError, NotifyCore, Route


def test_raise_is_grouped_routed_and_resolved() -> None:
    core = NotifyCore(settings(), None, T0)
    core.take_entries([entry("alarm_raised", "GS1/ups/on_battery", 7, new=RED, value=True, agent="ups")], T0)
    assert run(core, T0 + 4.9) == []  # group_wait_s not over
    sent = run(core, T0 + 5)
    assert [m.receiver for m in sent] == ["ops"]  # first match wins: not "all"
    message = sent[0]
    assert message.title == "[gsmon] RAISED RED GS1/ups/on_battery"
    assert "value: True" in message.body
    assert "agent: ups" in message.body
    assert "guidance: Check the breaker." in message.body
    assert "runbook: https://wiki/ups" in message.body
    assert "gsmon ack GS1/ups/on_battery --hub tcp://hub:7763 -m" in message.body
    assert "gsmon shelve GS1/ups/on_battery --hub tcp://hub:7763 --for 2h" in message.body
    assert message.alarm_ids == [7]
    core.take_entries([entry("alarm_rtn", "GS1/ups/on_battery", 7, old=RED, new=GREEN)], T0 + 6)
    assert run(core, T0 + 14.9) == []  # group_interval_s after the last send
    resolved = run(core, T0 + 15)
    assert [m.title for m in resolved] == ["[gsmon] RESOLVED RED GS1/ups/on_battery"]
    assert run(core, T0 + 10_000) == []  # resolved: no repeat, nothing else


def test_continue_sends_to_the_next_route_too() -> None:
    core = NotifyCore(settings(routes=[Route("GS1", RED, ("ops",), continue_=True), Route("", ORANGE, ("all",))]),
                      None, T0)  # fmt: skip
    core.take_entries([entry("alarm_raised", "GS1/a/b", 1, new=RED)], T0)
    assert sorted(m.receiver for m in run(core, T0 + 5)) == ["all", "ops"]


def test_below_every_route_nothing_is_sent() -> None:
    core = NotifyCore(settings(), None, T0)
    core.take_entries([entry("alarm_raised", "GS1/a/b", 1, new=GREEN)], T0)
    core.take_entries([entry("alarm_rtn", "GS1/a/b", 1, old=GREEN)], T0)
    assert run(core, T0 + 100) == []


def test_raised_and_resolved_within_the_group_wait_is_never_sent() -> None:
    core = NotifyCore(settings(), None, T0)
    core.take_entries([entry("alarm_raised", "GS1/a/b", 1, new=RED)], T0)
    core.take_entries([entry("alarm_rtn", "GS1/a/b", 1, old=RED, new=GREEN)], T0 + 2)
    assert run(core, T0 + 100) == []


def test_a_burst_under_one_subtree_is_one_message() -> None:
    core = NotifyCore(settings(), None, T0)
    core.take_entries([entry("alarm_raised", f"GS1/rack/p{i}", 10 + i, new=RED) for i in range(5)], T0)
    core.take_entries([entry("alarm_raised", "GS1/other/p", 99, new=RED)], T0 + 1)
    sent = run(core, T0 + 6)
    titles = sorted(m.title for m in sent)
    assert titles == ["[gsmon] RAISED RED GS1/other/p", "[gsmon] RED GS1/rack: 5 raised"]
    burst = next(m for m in sent if "5 raised" in m.title)
    assert burst.alarm_ids == [10, 11, 12, 13, 14]


def test_silent_agent_is_one_message_and_its_return_resolves_it() -> None:
    core = NotifyCore(settings(), None, T0)
    core.take_entries([entry("agent_silent", "GS1/rack7", 3, new=STALE, agent="rack7")], T0)
    sent = run(core, T0 + 5)
    assert [m.title for m in sent] == ["[gsmon] AGENT SILENT STALE GS1/rack7"]
    core.take_entries([entry("agent_back", "GS1/rack7", 3, old=STALE, agent="rack7")], T0 + 30)
    assert [m.title for m in run(core, T0 + 30)] == ["[gsmon] AGENT BACK STALE GS1/rack7"]


def test_unacked_repeats_acked_does_not() -> None:
    core = NotifyCore(settings(), None, T0)
    core.take_entries([entry("alarm_raised", "GS1/a/b", 1, new=RED)], T0)
    run(core, T0 + 5)
    assert run(core, T0 + 5 + 3599) == []
    core.tick(T0 + 5 + 3600)  # queues the repeat (its group sends it at once: the interval is over)
    repeat = run(core, T0 + 5 + 3600)
    assert [m.title for m in repeat] == ["[gsmon] STILL ACTIVE RED GS1/a/b"]
    core.take_entries([entry("ack", "GS1/a/b", 1, new=RED, user="ann")], T0 + 4000)
    assert run(core, T0 + 4000 + 10 * 3600) == []  # acked: no repeat, and no ack message (notify_ack off)
    core.take_entries([entry("unack", "GS1/a/b", 1, new=RED)], T0 + 50_000)
    run(core, T0 + 50_000)  # the unack itself is not announced (notify_ack off)...
    assert [m.title for m in run(core, T0 + 60_000)] == ["[gsmon] STILL ACTIVE RED GS1/a/b"]  # ...but repeats resume


def test_notify_ack_route_announces_acks() -> None:
    core = NotifyCore(settings(routes=[Route("", ORANGE, ("ops",), notify_ack=True)]), None, T0)
    core.take_entries([entry("alarm_raised", "GS1/a/b", 1, new=RED)], T0)
    run(core, T0 + 5)
    core.take_entries([entry("ack", "GS1/a/b", 1, new=RED, user="ann", comment="on it")], T0 + 6)
    [ack] = run(core, T0 + 16)
    assert ack.title == "[gsmon] ACKNOWLEDGED RED GS1/a/b"
    assert "comment: on it (by ann)" in ack.body


def test_shelved_is_not_announced_but_a_notified_problem_still_gets_its_resolution() -> None:
    core = NotifyCore(settings(), None, T0)
    core.take_entries([entry("alarm_raised", "GS1/x/y", 5, new=RED, shelf_id=2)], T0)
    assert run(core, T0 + 100) == []  # raised under a shelf: silent
    core.take_entries([entry("alarm_raised", "GS1/a/b", 1, new=RED)], T0 + 100)
    run(core, T0 + 105)
    core.take_entries([entry("shelf_created", "GS1/a", shelf_id=3, comment="maintenance")], T0 + 110)
    assert run(core, T0 + 105 + 3600 * 5) == []  # shelved: no repeats
    core.take_entries([entry("alarm_rtn", "GS1/a/b", 1, old=RED, new=GREEN, shelf_id=3)], T0 + 20_000)
    assert [m.title for m in run(core, T0 + 20_000)] == ["[gsmon] RESOLVED RED GS1/a/b"]


def test_shelf_ended_still_active_is_announced_once() -> None:
    core = NotifyCore(settings(), None, T0)
    core.take_entries([entry("alarm_raised", "GS1/a/b", 1, new=RED, shelf_id=4)], T0)
    core.take_entries([entry("shelf_ended_still_active", "GS1/a/b", 1, new=RED, shelf_id=4)], T0 + 60)
    sent = run(core, T0 + 65)
    assert [m.title for m in sent] == ["[gsmon] SHELF ENDED, STILL ACTIVE RED GS1/a/b"]
    assert run(core, T0 + 100) == []
    core.take_entries([entry("alarm_rtn", "GS1/a/b", 1, old=RED, new=GREEN)], T0 + 200)
    assert [m.title for m in run(core, T0 + 200)] == ["[gsmon] RESOLVED RED GS1/a/b"]


def test_escalation_of_a_sent_problem_then_resolution() -> None:
    core = NotifyCore(settings(routes=[Route("", ORANGE, ("ops",))]), None, T0)
    core.take_entries([entry("alarm_raised", "GS1/a/b", 1, new=ORANGE)], T0)
    run(core, T0 + 5)
    core.take_entries([entry("alarm_escalated", "GS1/a/b", 1, old=ORANGE, new=RED)], T0 + 20)
    assert [m.title for m in run(core, T0 + 20)] == ["[gsmon] ESCALATED RED GS1/a/b"]
    core.take_entries([entry("alarm_rtn", "GS1/a/b", 1, old=RED, new=GREEN)], T0 + 21)
    assert [m.title for m in run(core, T0 + 30)] == ["[gsmon] RESOLVED RED GS1/a/b"]


def test_startup_grace_holds_and_drops_what_resolved_meanwhile() -> None:
    core = NotifyCore(settings(startup_grace_s=30.0), None, T0)
    core.take_entries([entry("alarm_raised", "GS1/a/b", 1, new=RED), entry("alarm_raised", "GS1/c/d", 2, new=RED)], T0)
    core.take_entries([entry("alarm_rtn", "GS1/a/b", 1, old=RED, new=GREEN)], T0 + 3)
    assert run(core, T0 + 29) == []
    core.tick(T0 + 30)
    assert [m.title for m in run(core, T0 + 35)] == ["[gsmon] RAISED RED GS1/c/d"]


def test_hub_restart_starts_a_grace() -> None:
    core = NotifyCore(settings(startup_grace_s=20.0), None, T0)
    core.hub_started(T0 + 100)
    core.take_entries([entry("alarm_raised", "GS1/a/b", 1, new=RED)], T0 + 101)
    assert run(core, T0 + 119) == []
    core.tick(T0 + 120)
    assert len(run(core, T0 + 125)) == 1


def test_replayed_entries_are_never_announced() -> None:
    core = NotifyCore(settings(), None, T0)
    core.take_entries([entry("alarm_raised", "GS1/a/b", 1, new=RED, replayed=True)], T0)
    assert run(core, T0 + 100) == []


def test_rate_limit_folds_the_rest_into_one_summary() -> None:
    core = NotifyCore(settings(max_per_minute=2, group_by_depth=3), None, T0)
    core.take_entries([entry("alarm_raised", f"GS1/r/p{i}", i + 1, new=RED) for i in range(6)], T0)
    sent = run(core, T0 + 5)
    assert len(sent) == 2
    assert run(core, T0 + 64) == []  # the window is full until T0 + 65
    [summary] = run(core, T0 + 65)
    assert summary.title == "[gsmon] and 4 more under GS1/r/"
    assert "summary" in summary.kinds
    assert core.health()["ops"].suppressed == 4
    # The folded problems count as notified: their resolutions follow.
    core.take_entries([entry("alarm_rtn", f"GS1/r/p{i}", i + 1, old=RED) for i in range(6)], T0 + 200)
    resolved = run(core, T0 + 200) + run(core, T0 + 260)  # two now, the rest summarised a minute later
    assert len(resolved) == 3
    assert sum(len(m.alarm_ids) for m in resolved) == 6


def test_failed_delivery_backs_off_and_is_given_up_after_the_limit() -> None:
    core = NotifyCore(settings(retry_initial_s=10.0, retry_max_s=40.0, retry_give_up_s=200.0), None, T0)
    core.take_entries([entry("alarm_raised", "GS1/a/b", 1, new=RED)], T0)
    core.tick(T0 + 5)
    attempts = []
    now = T0 + 5
    while now < T0 + 400:
        for message in core.due(now):
            attempts.append(now - T0)
            assert core.delivered(message.id, False, "connection refused", now) is None or now - T0 >= 200
        now += 1
    assert attempts[:5] == [5, 15, 35, 75, 115]  # 10, 20, 40, then capped at 40
    health = core.health()["ops"]
    assert health.dropped == 1
    assert health.consecutive_failures == len(attempts)
    assert health.last_error == "connection refused"
    assert core.due(T0 + 10_000) == []


def test_state_round_trip_keeps_everything_and_never_resends() -> None:
    core = NotifyCore(settings(), None, T0)
    core.take_entries([entry("alarm_raised", "GS1/a/b", 1, new=RED)], T0)
    core.take_entries([entry("alarm_raised", "GS1/c/d", 2, new=RED)], T0)
    run(core, T0 + 5)  # both sent
    core.take_entries([entry("alarm_raised", "GS1/e/f", 3, new=RED)], T0 + 6)  # waiting in a group
    saved = json.loads(json.dumps(core.state()))
    again = NotifyCore(settings(), saved, T0 + 7)
    assert [m.title for m in run(again, T0 + 11)] == ["[gsmon] RAISED RED GS1/e/f"]  # not lost, and only it
    again.take_entries([entry("alarm_rtn", "GS1/a/b", 1, old=RED)], T0 + 12)
    assert [m.title for m in run(again, T0 + 20)] == ["[gsmon] RESOLVED RED GS1/a/b"]  # remembered it was told


def test_flapping_is_announced_by_route() -> None:
    core = NotifyCore(settings(), None, T0)
    core.take_entries([entry("flapping_start", "GS1/a/b", new=RED)], T0)
    assert [m.title for m in run(core, T0 + 5)] == ["[gsmon] FLAPPING RED GS1/a/b"]


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ([], "must be a map"),
        ({"time": 1.0, "path": "a", "kind": "level"}, "without 'id'"),
        ({"id": True, "time": 1.0, "path": "a", "kind": "level"}, "'id' must not be a boolean"),
        ({"id": 1, "time": "x", "path": "a", "kind": "level"}, "'time' has the wrong type"),
        ({"id": 1, "time": float("nan"), "path": "a", "kind": "level"}, "not finite"),
        ({"id": 1, "time": 1.0, "path": "a", "kind": "level", "alarm_id": "7"}, "'alarm_id' has the wrong type"),
    ],
)
def test_bad_entries_say_what_is_wrong(item: object, problem: str) -> None:
    with pytest.raises(EntryError, match=problem):
        Entry.from_wire(item)


def test_an_entry_with_unknown_keys_is_read() -> None:
    read = Entry.from_wire({"id": 3, "time": 1, "path": "a/b", "kind": "alarm_raised", "new": 30, "future": 1})
    assert read.id == 3
    assert read.new == 30
    assert read.time == 1.0


def test_one_reader_for_the_notifier_and_gsmon_log() -> None:
    """The notifier reads entries with the operator commands' JournalRecord (one reader, one set of rules)."""
    assert Entry is JournalRecord
    assert issubclass(EntryError, BadAnswerError)  # gsmon log says it like any other bad answer
    read = Entry.from_wire({"id": 4, "hub_time": 7.5, "path": "a", "kind": "ack", "shelf_id": 2, "replayed": True})
    assert (read.time, read.hub_time, read.shelf_id, read.replayed) == (7.5, 7.5, 2, True)  # no source time: the hub's
    with pytest.raises(EntryError, match="'hub_time' is not finite"):
        Entry.from_wire({"id": 4, "time": 1.0, "hub_time": float("inf"), "path": "a", "kind": "ack"})
    with pytest.raises(EntryError, match="without 'path'"):
        Entry.from_wire({"id": 4, "time": 1.0, "kind": "ack"})


def test_a_forgotten_agent_ends_its_problems_and_they_never_repeat() -> None:
    core = NotifyCore(settings(), None, T0)
    core.take_entries([entry("agent_silent", "GS1/rack7", 3, new=STALE, agent="rack7")], T0)
    run(core, T0 + 5)
    core.take_entries([entry("forget", "GS1/rack7", agent="rack7", by="admin")], T0 + 100)
    assert [m.title for m in run(core, T0 + 100)] == ["[gsmon] ENDED (agent forgotten) STALE GS1/rack7"]
    assert run(core, T0 + 10 * 3600) == []


def test_the_mounts_own_alarm_for_a_silent_agent_is_the_same_incident() -> None:
    """What the hub journals for a dead agent: agent_silent, then alarm_raised on the mount (its alarm id);
    agent_back with that id, then alarm_rtn. One message each way."""
    core = NotifyCore(settings(), None, T0)
    core.take_entries([entry("agent_silent", "GS1/rack7", new=STALE, agent="rack7")], T0)
    core.take_entries([entry("alarm_raised", "GS1/rack7", 3, new=STALE, agent="rack7")], T0)
    assert [m.title for m in run(core, T0 + 5)] == ["[gsmon] AGENT SILENT STALE GS1/rack7"]
    core.take_entries([entry("agent_back", "GS1/rack7", 3, old=STALE, agent="rack7")], T0 + 30)
    core.take_entries([entry("alarm_rtn", "GS1/rack7", 3, old=STALE, new=0, agent="rack7")], T0 + 30)
    assert [m.title for m in run(core, T0 + 30)] == ["[gsmon] AGENT BACK STALE GS1/rack7"]
    assert core.open_problems() == 0
    assert core.state()["aliases"] == {}


def test_a_resolution_held_by_the_grace_still_reaches_an_aliased_incident() -> None:
    core = NotifyCore(settings(startup_grace_s=10.0), None, T0 - 100)
    core.tick(T0)
    core.take_entries([entry("agent_silent", "GS1/rack7", new=STALE, agent="rack7")], T0)
    core.take_entries([entry("alarm_raised", "GS1/rack7", 3, new=STALE, agent="rack7")], T0)
    assert len(run(core, T0 + 5)) == 1
    core.hub_started(T0 + 50)
    core.take_entries([entry("agent_back", "GS1/rack7", 3, old=STALE, agent="rack7")], T0 + 51)
    assert run(core, T0 + 55) == []  # held by the grace
    assert [m.title for m in run(core, T0 + 61)] == ["[gsmon] AGENT BACK STALE GS1/rack7"]
