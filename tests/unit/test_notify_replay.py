"""The notifier's summary of a replay (protocol 1.3): one message per agent, never one per transition."""

from __future__ import annotations

from notify_support import GREEN, ORANGE, RED, T0, entry, run, settings

from gsmon.common.notify.core import REPLAY_FLUSH_S, Entry, NotifyCore


def replay(agent: str = "rack1", mount: str = "GS1/Rack1") -> list[Entry]:
    """What a hub journals for a replay with three alarms that came and went (and their level rows)."""
    entries = []
    for index, (point, level) in enumerate((("temp", RED), ("fan", ORANGE), ("psu", RED))):
        at = T0 + 130 + index * 300
        path = f"{mount}/{point}"
        entries += [
            entry("level", path, 10 + index, old=GREEN, new=level, time=at, agent=agent, replayed=True),
            entry("alarm_raised", path, 10 + index, new=level, time=at, agent=agent, replayed=True),
            entry("alarm_rtn", path, 10 + index, old=level, new=GREEN, time=at + 60, agent=agent, replayed=True),
        ]
    entries.append(entry("replayed", mount, new=GREEN, time=T0 + 900, agent=agent, replayed=True, comment="9 ..."))
    return entries


def test_a_replay_is_one_summary_per_agent_not_held_by_the_grace() -> None:
    core = NotifyCore(settings(startup_grace_s=30.0), None, T0 + 1000)  # just started: in its grace
    core.take_entries(replay(), T0 + 1000)
    sent = run(core, T0 + 1000)
    assert [m.receiver for m in sent] == ["ops"]  # the mount's route at the worst level (RED)
    (summary,) = sent
    assert summary.title == "[gsmon] rack1: 3 alarms between 08:02:10 and 08:12:10 UTC, now GREEN"
    assert "summary" in summary.kinds
    assert summary.alarm_ids == [10, 11, 12]
    assert "2027-01-15T08:02:10.000Z RAISED RED GS1/Rack1/temp (alarm 10)" in summary.body
    assert "gsmon alarms GS1/Rack1 --hub tcp://hub:7763" in summary.body
    assert run(core, T0 + 100_000) == []  # nothing one by one, no repeat, no resolution


def test_two_agents_two_summaries_and_a_replay_without_alarms_says_nothing() -> None:
    core = NotifyCore(settings(startup_grace_s=0.0), None, T0)
    core.take_entries([*replay("rack1", "GS1/Rack1"), *replay("rack2", "Lab/Rack2")], T0 + 1000)
    quiet = [entry("level", "GS1/Rack3/t", None, old=GREEN, new=ORANGE, agent="rack3", replayed=True)]
    core.take_entries([*quiet, entry("replayed", "GS1/Rack3", new=GREEN, agent="rack3", replayed=True)], T0 + 1000)
    sent = run(core, T0 + 1000)
    assert sorted((m.receiver, m.title.split(":")[0]) for m in sent) == [
        ("all", "[gsmon] rack2"),  # Lab/ is not under the GS1 route
        ("ops", "[gsmon] rack1"),
    ]


def test_alarms_without_the_replayed_entry_are_summarised_after_a_while_and_survive_a_restart() -> None:
    core = NotifyCore(settings(startup_grace_s=0.0), None, T0)
    core.take_entries(replay()[:-1], T0 + 1000)  # the hub stopped before its "replayed" entry
    assert run(core, T0 + 1000 + REPLAY_FLUSH_S - 1) == []
    again = NotifyCore(settings(startup_grace_s=0.0), core.state(), T0 + 1000 + REPLAY_FLUSH_S - 1)
    (summary,) = run(again, T0 + 1000 + REPLAY_FLUSH_S)
    assert summary.title == "[gsmon] rack1: 3 alarms between 08:02:10 and 08:12:10 UTC"
    assert "gsmon alarms GS1/Rack1 --hub" in summary.body  # the common prefix of its alarms
    assert run(again, T0 + 100_000) == []


def test_shelved_replayed_alarms_are_left_out() -> None:
    core = NotifyCore(settings(startup_grace_s=0.0), None, T0)
    shelved = entry("alarm_raised", "GS1/Rack1/temp", 3, new=RED, agent="rack1", replayed=True, shelf_id=2)
    core.take_entries([shelved, entry("replayed", "GS1/Rack1", new=GREEN, agent="rack1", replayed=True)], T0)
    assert run(core, T0 + 10) == []
