"""The hub's alarm book with a fake clock: no sockets, no sleeps, every time made up by the test."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gsmon.common.alerts import STALE_ALERTCODE, alertstr_for
from gsmon.hub import alarms as alarms_module
from gsmon.hub.alarms import (
    ACTIVE_ACKED,
    ACTIVE_UNACKED,
    ADMIN,
    AGENT_SILENT,
    CLEARED,
    EVENT_KINDS,
    OPERATOR,
    OVERDUE,
    RTN_UNACKED,
    SCHEDULED,
    TIMED,
    UNTIL_NORMAL,
    VIEWER,
    Alarm,
    AlarmBook,
    AlarmRule,
    AlarmSettings,
    AlarmSettingsError,
    JournalEntry,
    NodeAlarmView,
    PathPattern,
    Shelf,
    path_in_prefix,
)
from gsmon.hub.journal import STATE_FILE, StateStore

WALL0 = 1_800_000_000.0
NO, GREEN, ORANGE, RED, CRITICAL = 0, 10, 20, 30, 100
STALE = STALE_ALERTCODE
HOUR = 3600.0


class Hub:
    """An AlarmBook and a clock, with the calls HubState and the server would make."""

    def __init__(self, book: AlarmBook | None = None, settings: AlarmSettings | None = None) -> None:
        self.book = book if book is not None else AlarmBook(settings)
        self.t = 0.0
        self.journal: list[JournalEntry] = []
        self.events: list[JournalEntry] = []
        self.views: dict[str, NodeAlarmView] = {}

    @property
    def wall(self) -> float:
        return WALL0 + self.t

    def at(self, t: float) -> Hub:
        self.t = t
        self.book.tick(t, self.wall)
        return self

    def level(self, path: str, code: int, agent: str = "ant", stale: str | None = None, value: Any = 1.0) -> None:
        label = alertstr_for(max(code, STALE) if stale else code)
        self.book.point_level(
            path, agent, max(code, STALE) if stale else code, label, value, self.wall, stale, self.t, self.wall
        )

    def take(self) -> list[JournalEntry]:
        """The journal since the last take (also collects events and node changes)."""
        entries = self.book.take_journal()
        self.journal += entries
        self.events += self.book.take_events()
        self.views.update(self.book.take_node_changes())
        return entries

    def kinds(self) -> list[tuple[str, str]]:
        return [(entry.kind, entry.path) for entry in self.take()]

    def ack(self, *ids: int, role: str = OPERATOR, **kwargs: Any) -> alarms_module.Outcome:
        return self.book.ack(
            ids, "ops-key", "alice", kwargs.pop("comment", "on it"), "cli", role, self.t, self.wall, **kwargs
        )

    def shelve(
        self,
        prefix: str,
        mode: str = TIMED,
        for_s: float | None = HOUR,
        role: str = OPERATOR,
        starts_at: float | None = None,
        comment: str | None = "maintenance",
    ) -> alarms_module.Outcome:
        ends_at = None if for_s is None else (starts_at if starts_at is not None else self.wall) + for_s
        return self.book.shelve(
            prefix, mode, starts_at, ends_at, comment, "ops-key", "alice", "cli", role, self.t, self.wall
        )

    def only(self, path: str) -> Alarm:
        (alarm,) = [alarm for alarm in self.book.alarms() if alarm.path == path]
        return alarm

    def restart(self) -> Hub:
        """Serialize what the store would hold, and restore a new book from it at the same time."""
        store = Store()
        store.apply(self.book)
        restored = AlarmBook.restore(
            self.book.settings, store.alarms.values(), store.shelves.values(), store.next_id, self.t, self.wall
        )
        fresh = Hub(restored)
        fresh.t = self.t
        return fresh


class Store:
    """What the journal store would hold: the latest record of every alarm and shelf, the next id."""

    def __init__(self) -> None:
        self.alarms: dict[int, Alarm] = {}
        self.shelves: dict[int, Shelf] = {}
        self.next_id = 1

    def apply(self, book: AlarmBook) -> None:
        alarms, shelves, next_id = book.take_records()
        self.alarms.update((alarm.id, alarm) for alarm in alarms)
        self.shelves.update((shelf.id, shelf) for shelf in shelves)
        self.next_id = next_id


def entry_kinds(entries: Iterable[JournalEntry]) -> list[str]:
    return [entry.kind for entry in entries]


# -- raising and the state machine of one alarm -------------------------------------------------


def test_an_alarm_opens_at_the_min_level_and_a_first_report_is_not_journaled() -> None:
    hub = Hub()
    hub.level("GS1/A/x", GREEN)
    hub.level("GS1/A/y", ORANGE, value=71.5)
    assert hub.kinds() == [("alarm_raised", "GS1/A/y")]
    alarm = hub.only("GS1/A/y")
    assert (alarm.state, alarm.level, alarm.max_level, alarm.latch, alarm.reason) == (
        ACTIVE_UNACKED,
        ORANGE,
        ORANGE,
        False,
        "level",
    )
    assert (alarm.raised_at, alarm.raise_value, alarm.agent) == (WALL0, 71.5, "ant")
    hub.at(5).level("GS1/A/x", RED)
    assert hub.kinds() == [("level", "GS1/A/x"), ("alarm_raised", "GS1/A/x")]
    assert hub.only("GS1/A/x").id == alarm.id + 1
    level_entry = hub.journal[-2]
    assert (level_entry.old, level_entry.new, level_entry.alarm_id, level_entry.time) == (
        GREEN,
        RED,
        alarm.id + 1,
        WALL0 + 5,
    )


def test_orange_does_not_latch_and_clears_when_it_returns_to_normal() -> None:
    hub = Hub()
    hub.level("GS1/x", ORANGE)
    hub.take()
    hub.at(1).level("GS1/x", GREEN)
    assert hub.kinds() == [("level", "GS1/x"), ("alarm_rtn", "GS1/x"), ("alarm_cleared", "GS1/x")]
    assert hub.book.alarms() == []
    assert hub.book.alarms(include_cleared=True)[0].state == CLEARED
    assert hub.book.attention_of("GS1") == 0


def test_red_latches_and_still_needs_attention_at_its_max_level_after_returning_to_normal() -> None:
    hub = Hub()
    hub.level("GS1/x", RED)
    hub.at(1).level("GS1/x", ORANGE)
    assert hub.book.attention_of("GS1") == RED  # an unacked alarm counts at its worst
    hub.at(2).level("GS1/x", GREEN)
    alarm = hub.only("GS1/x")
    assert (alarm.state, alarm.latch, alarm.level, alarm.max_level, alarm.rtn_at) == (
        RTN_UNACKED,
        True,
        GREEN,
        RED,
        WALL0 + 2,
    )
    assert hub.book.attention_of("GS1") == RED
    assert hub.book.attention_of("GS1/x") == RED
    outcome = hub.ack(alarm.id)
    assert outcome.ok
    assert outcome.ids == (alarm.id,)
    assert hub.book.alarm(alarm.id).state == CLEARED  # type: ignore[union-attr]
    assert hub.book.attention_of("GS1") == 0
    assert entry_kinds(hub.take())[-2:] == ["ack", "alarm_cleared"]


def test_back_in_alarm_before_anyone_acked_continues_the_same_alarm() -> None:
    hub = Hub()
    hub.level("GS1/x", RED)
    hub.level("GS1/x", GREEN)
    hub.level("GS1/x", RED)
    alarm = hub.only("GS1/x")
    assert (alarm.state, alarm.rtn_at) == (ACTIVE_UNACKED, None)
    assert entry_kinds(hub.take()).count("alarm_raised") == 1


def test_an_ack_covers_the_level_acked_and_only_a_higher_one_raises_attention_again() -> None:
    hub = Hub()
    hub.level("GS1/x", RED)
    alarm = hub.only("GS1/x")
    hub.ack(alarm.id)
    assert hub.only("GS1/x").state == ACTIVE_ACKED
    assert hub.book.attention_of("GS1") == 0
    hub.level("GS1/x", ORANGE)
    hub.level("GS1/x", RED)  # not above what was acknowledged
    assert hub.only("GS1/x").state == ACTIVE_ACKED
    hub.take()
    hub.level("GS1/x", CRITICAL)
    again = hub.only("GS1/x")
    assert (again.id, again.state, again.max_level, again.acked_by) == (alarm.id, ACTIVE_UNACKED, CRITICAL, None)
    assert entry_kinds(hub.take()) == ["level", "alarm_escalated"]
    assert hub.book.attention_of("GS1") == CRITICAL
    hub.ack(alarm.id)
    hub.level("GS1/x", GREEN)  # acknowledged and back to normal: done
    assert hub.book.alarms() == []


def test_an_alarm_escalating_into_a_latching_level_latches() -> None:
    hub = Hub()
    hub.level("GS1/x", ORANGE)
    hub.level("GS1/x", RED)
    hub.level("GS1/x", GREEN)
    assert (hub.only("GS1/x").latch, hub.only("GS1/x").state) == (True, RTN_UNACKED)


def test_unack_puts_an_acked_alarm_back_and_refuses_anything_else() -> None:
    hub = Hub()
    hub.level("GS1/x", RED)
    alarm_id = hub.only("GS1/x").id
    refused = hub.book.unack(alarm_id, "k", None, None, "cli", OPERATOR, 0, WALL0)
    assert not refused.ok
    assert (
        refused.message
        == f"alarm {alarm_id} is active_unacked: only an acknowledged, still active alarm can be unacked"
    )
    hub.ack(alarm_id)
    done = hub.book.unack(alarm_id, "k", "bob", "not fixed after all", "cli", OPERATOR, 0, WALL0)
    assert done.ok
    assert hub.only("GS1/x").state == ACTIVE_UNACKED
    assert hub.book.attention_of("GS1") == RED
    unack = hub.take()[-1]
    assert (unack.kind, unack.by, unack.user, unack.comment, unack.alarm_id) == (
        "unack",
        "k",
        "bob",
        "not fixed after all",
        alarm_id,
    )


def test_the_second_red_under_an_acknowledged_parent_raises_attention() -> None:
    hub = Hub()
    hub.level("GS1/Ant1/Drive/Temp", RED)
    first = hub.only("GS1/Ant1/Drive/Temp")
    hub.ack(first.id)
    assert hub.book.attention_of("GS1/Ant1") == 0
    hub.level("GS1/Ant1/Power/Volts", RED)
    for parent in ("GS1", "GS1/Ant1"):
        assert hub.book.attention_of(parent) == RED
        assert hub.book.unacked_below(parent) == 1
    assert hub.book.attention_of("GS1/Ant1/Drive") == 0
    hub.take()
    assert hub.views["GS1/Ant1"].attention == RED
    assert hub.views["GS1/Ant1/Power/Volts"].alarm is not None


def test_an_overdue_point_opens_a_latched_alarm_and_fresh_data_resolves_it() -> None:
    hub = Hub()
    hub.level("GS1/x", GREEN)
    hub.at(10).level("GS1/x", GREEN, stale=OVERDUE)
    alarm = hub.only("GS1/x")
    assert (alarm.reason, alarm.level, alarm.latch) == (OVERDUE, STALE, True)
    assert hub.kinds() == [("stale", "GS1/x"), ("alarm_raised", "GS1/x")]
    hub.at(11).level("GS1/x", GREEN)
    assert hub.kinds() == [("fresh", "GS1/x"), ("alarm_rtn", "GS1/x")]
    assert hub.only("GS1/x").state == RTN_UNACKED


def test_a_silent_agent_opens_one_alarm_on_its_mount_and_none_for_its_points() -> None:
    hub = Hub()
    for rel in ("x", "y", "z/w"):
        hub.level(f"GS1/Ant/{rel}", GREEN)
    hub.level("GS1/Ant/r", RED)
    red = hub.only("GS1/Ant/r")
    hub.take()
    hub.at(5).book.agent_silent("ant", "GS1/Ant", hub.t, hub.wall)
    for rel in ("x", "y", "z/w", "r"):
        hub.level(f"GS1/Ant/{rel}", GREEN if rel != "r" else RED, stale=AGENT_SILENT)
    kinds = hub.kinds()
    assert kinds[:2] == [("agent_silent", "GS1/Ant"), ("alarm_raised", "GS1/Ant")]
    assert sorted(kinds[2:]) == [("stale", f"GS1/Ant/{rel}") for rel in ("r", "x", "y", "z/w")]
    mount = hub.only("GS1/Ant")
    assert (mount.reason, mount.level, mount.latch, mount.agent) == (AGENT_SILENT, STALE, True, "ant")
    assert hub.only("GS1/Ant/r") == red  # frozen as it was, not escalated to STALE
    assert hub.book.attention_of("GS1/Ant") == STALE
    assert hub.book.attention_of("GS1/Ant/x") == 0
    assert hub.views["GS1/Ant"].alarm == mount
    hub.book.agent_silent("ant", "GS1/Ant", hub.t, hub.wall)  # once is enough
    assert hub.take() == []
    hub.at(9).book.agent_back("ant", "GS1/Ant", hub.t, hub.wall)
    assert hub.kinds() == [("agent_back", "GS1/Ant"), ("alarm_rtn", "GS1/Ant")]
    assert hub.only("GS1/Ant").state == RTN_UNACKED
    hub.book.agent_back("someone", "GS9", hub.t, hub.wall)  # never silent: nothing to say
    assert hub.take() == []


def test_a_removed_point_keeps_its_latched_unacked_alarm_and_clears_the_others() -> None:
    hub = Hub()
    hub.level("GS1/red", RED)
    hub.level("GS1/orange", ORANGE)
    hub.level("GS1/acked", RED)
    hub.ack(hub.only("GS1/acked").id)
    hub.take()
    for path in ("GS1/red", "GS1/orange", "GS1/acked"):
        hub.book.point_removed(path, hub.t, hub.wall)
    assert [(a.path, a.state) for a in hub.book.alarms()] == [("GS1/red", RTN_UNACKED)]
    assert hub.book.attention_of("GS1") == RED
    assert hub.book.point_paths_of("ant") == []
    kinds = entry_kinds(hub.take())
    assert kinds.count("removed") == 3
    assert kinds.count("alarm_cleared") == 2


def test_latch_and_min_level_follow_the_first_matching_path_rule() -> None:
    settings = AlarmSettings(
        rules=(
            AlarmRule("GS1/*/Power/**", latch=True),
            AlarmRule("GS1/**/Temp*", latch=False, min_level=RED),
            AlarmRule("**/Quiet", min_level=CRITICAL),
        )
    )
    hub = Hub(settings=settings)
    hub.level("GS1/Ant1/Power/Supply/Volts", ORANGE)
    hub.level("GS1/Ant1/Drive/Temp2", ORANGE)
    hub.level("GS1/Ant1/Drive/Temp3", RED)
    hub.level("GS2/deep/Quiet", RED)
    assert {a.path: a.latch for a in hub.book.alarms()} == {
        "GS1/Ant1/Power/Supply/Volts": True,
        "GS1/Ant1/Drive/Temp3": False,
    }


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("GS1/*/Power/**", "GS1/Ant1/Power", True),
        ("GS1/*/Power/**", "GS1/Ant1/Power/Supply/Volts", True),
        ("GS1/*/Power/**", "GS1/Ant1/Drive/Power", False),
        ("GS1/*/Power/**", "GS1/Ant1/Sub/Power", False),
        ("GS1/*", "GS1/a/b", False),
        ("**", "anything/at/all", True),
        ("**/Temp", "Temp", True),
        ("**/Temp", "a/b/Temp", True),
        ("**/Temp", "a/b/Temp2", False),
        ("GS?/x", "GS1/x", True),
        ("GS?/x", "GS10/x", False),
        ("a/**/z", "a/z", True),
        ("a/**/z", "a/b/c/z", True),
        ("a.b/c", "aXb/c", False),
    ],
)
def test_path_patterns_match_segment_by_segment(pattern: str, path: str, matches: bool) -> None:
    assert PathPattern(pattern).matches(path) is matches


@pytest.mark.parametrize(
    ("path", "prefix", "selected"),
    [
        ("GS1/A", "GS1/A", True),
        ("GS1/A/x", "GS1/A", True),
        ("GS1/AB", "GS1/A", False),
        ("GS1/A", "GS1/A/", False),
        ("GS1/A/x", "GS1/A/", True),
        ("anything", "", True),
    ],
)
def test_prefixes_select_whole_segments(path: str, prefix: str, selected: bool) -> None:
    assert path_in_prefix(path, prefix) is selected


def test_bad_settings_get_one_line_each() -> None:
    with pytest.raises(AlarmSettingsError) as caught:
        AlarmSettings(
            alarm_min_level=0,
            max_shelve_s=-1,
            rules=(AlarmRule("GS1//x", latch=True), AlarmRule("GS1/*", min_level="red"), AlarmRule("x")),  # type: ignore[arg-type]
        )
    assert caught.value.problems == (
        "alarm_min_level: expected an alert code > 0 (ORANGE is 20), got 0",
        "max_shelve_s: expected a positive number of seconds, got -1",
        "alarms[0].path: empty segment in path pattern 'GS1//x'",
        "alarms[1].min_level: expected an alert code > 0 (ORANGE is 20), got 'red'",
        "alarms[2]: sets nothing (give latch and/or min_level)",
    )


# -- commands ------------------------------------------------------------------------------------


def test_an_ack_acks_only_the_ids_listed_never_an_alarm_raised_after_the_operator_looked() -> None:
    hub = Hub()
    hub.level("GS1/a", RED)
    hub.level("GS1/b", RED)
    listed = [alarm.id for alarm in hub.book.alarms("GS1", unacked_only=True)]
    hub.level("GS1/c", RED)  # raised after the list was shown
    outcome = hub.ack(*listed)
    assert outcome.ok
    assert outcome.ids == tuple(listed)
    assert outcome.message == f"acknowledged 2 alarms: {listed[0]}, {listed[1]}"
    assert hub.only("GS1/c").state == ACTIVE_UNACKED
    assert hub.book.attention_of("GS1") == RED


def test_an_ack_skips_what_changed_since_the_listing_and_refuses_what_it_cannot_know() -> None:
    hub = Hub()
    hub.level("GS1/a", ORANGE)
    hub.level("GS1/b", RED)
    hub.level("GS1/c", RED)
    hub.shelve("GS1/zzz")
    a, b, c = (hub.only(path) for path in ("GS1/a", "GS1/b", "GS1/c"))
    seen = {alarm.id: alarm.max_level for alarm in (a, b, c)}
    hub.level("GS1/a", GREEN)  # cleared in the meantime (ORANGE does not latch)
    hub.level("GS1/c", CRITICAL)  # escalated in the meantime
    hub.ack(b.id)  # someone else was quicker
    outcome = hub.ack(a.id, b.id, c.id, 999, 4, seen=seen)
    assert not outcome.ok
    assert outcome.ids == ()
    assert outcome.message == (
        f"acknowledged 0 alarms; {a.id} is already cleared; {b.id} is already acknowledged; "
        f"{c.id} rose to CRITICAL after it was listed: look again; no alarm 999 (gsmon alarms lists them); "
        "4 is a shelf, not an alarm"
    )
    assert hub.only("GS1/c").state == ACTIVE_UNACKED


@pytest.mark.parametrize(
    ("command", "role", "needed"),
    [
        ("ack", VIEWER, OPERATOR),
        ("unack", VIEWER, OPERATOR),
        ("shelve", VIEWER, OPERATOR),
        ("unshelve", VIEWER, OPERATOR),
        ("clear", VIEWER, ADMIN),
        ("clear", OPERATOR, ADMIN),
    ],
)
def test_roles_are_checked_and_a_refusal_says_what_key_is_needed(command: str, role: str, needed: str) -> None:
    hub = Hub()
    hub.level("GS1/x", RED)
    alarm_id = hub.only("GS1/x").id
    hub.shelve("GS2")
    hub.take()
    calls: dict[str, Callable[[], alarms_module.Outcome]] = {
        "ack": lambda: hub.ack(alarm_id, role=role),
        "unack": lambda: hub.book.unack(alarm_id, "k", None, None, "cli", role, 0, WALL0),
        "shelve": lambda: hub.shelve("GS1", role=role),
        "unshelve": lambda: hub.book.unshelve(alarm_id + 1, "k", None, None, "cli", role, 0, WALL0),
        "clear": lambda: hub.book.clear(alarm_id, "k", None, None, "cli", role, 0, WALL0),
    }
    outcome = calls[command]()
    assert not outcome.ok
    assert outcome.message.startswith(f"a {role} key may not ")
    assert outcome.message.endswith(f"it needs an {needed} key (gsmon keys subscriber NAME --role {needed})")
    assert hub.take() == []  # nothing happened
    assert not hub.ack(alarm_id, role="root").ok


def test_comments_are_at_most_500_characters_and_shelves_need_one() -> None:
    hub = Hub()
    hub.level("GS1/x", RED)
    alarm_id = hub.only("GS1/x").id
    too_long = "x" * 501
    assert hub.ack(alarm_id, comment=too_long).message == "a comment is at most 500 characters, this one has 501"
    assert hub.shelve("GS1", comment=None).message == "a shelf needs a comment saying why (-m TEXT)"
    assert hub.shelve("GS1", comment="  ").message == "a shelf needs a comment saying why (-m TEXT)"
    assert not hub.shelve("GS1", comment=too_long).ok
    assert hub.ack(alarm_id, comment="x" * 500).ok


def test_an_admin_clears_any_open_alarm_and_a_point_still_in_alarm_raises_anew_when_it_changes() -> None:
    hub = Hub()
    hub.level("GS1/x", RED)
    first = hub.only("GS1/x")
    outcome = hub.book.clear(first.id, "root-key", "carol", "stuck sensor", "cli", ADMIN, 0, WALL0)
    assert outcome.ok
    cleared = hub.book.alarm(first.id)
    assert cleared is not None
    assert (cleared.state, cleared.cleared_by, cleared.cleared_user, cleared.cleared_reason) == (
        CLEARED,
        "root-key",
        "carol",
        "stuck sensor",
    )
    assert hub.book.attention_of("GS1") == 0
    assert not hub.book.clear(first.id, "root-key", None, None, "cli", ADMIN, 0, WALL0).ok
    hub.level("GS1/x", CRITICAL)
    assert hub.only("GS1/x").id == first.id + 1


# -- shelves ---------------------------------------------------------------------------------------


def test_a_shelf_covers_existing_and_later_points_which_stay_shown_but_need_no_attention() -> None:
    hub = Hub()
    hub.level("GS1/Ant/x", RED)
    hub.level("GS1/Ant/y", GREEN)
    hub.level("GS1/AntB/x", RED)  # not under GS1/Ant: segment-aware
    outcome = hub.shelve("GS1/Ant/")  # a trailing / is the same prefix
    assert outcome.ok
    (shelf_id,) = outcome.ids
    assert outcome.message == f"shelf {shelf_id} on GS1/Ant until 2027-01-15T09:00:00.000Z"
    hub.level("GS1/Ant/late", CRITICAL)
    late = hub.only("GS1/Ant/late")
    assert (late.shelved, late.shelf_id) == (True, shelf_id)
    assert hub.only("GS1/Ant/x").shelf_id == shelf_id
    assert hub.only("GS1/AntB/x").shelf_id is None
    assert hub.book.attention_of("GS1/Ant") == 0
    assert hub.book.attention_of("GS1") == RED  # GS1/AntB/x
    assert hub.book.shelved_below("GS1/Ant") == 3
    assert hub.book.shelved_below("GS1") == 3
    assert len(hub.book.alarms("GS1/Ant")) == 2  # listed, shelved ones included
    hub.take()
    assert hub.views["GS1/Ant/y"].shelf_id == shelf_id
    assert hub.views["GS1"].shelved_below == 3
    assert [e.kind for e in hub.events] == ["alarm_raised", "alarm_raised"]  # the shelved ones are not notified
    assert {e.path for e in hub.events} == {"GS1/Ant/x", "GS1/AntB/x"}


def test_a_shelf_ending_with_its_alarm_still_active_reannounces_it_once() -> None:
    hub = Hub()
    hub.level("GS1/Ant/x", RED)
    hub.level("GS1/Ant/y", RED)
    hub.at(10).shelve("GS1/Ant", for_s=HOUR)
    hub.at(20).level("GS1/Ant/y", GREEN)  # latched: rtn_unacked, not active
    hub.ack(hub.only("GS1/Ant/x").id)  # acknowledged during the shelf: unacked again at its end
    hub.take()
    hub.events.clear()
    hub.at(10 + HOUR)
    entries = hub.take()
    assert entry_kinds(entries) == ["shelf_ended", "shelf_ended_still_active"]
    still = entries[1]
    assert still.path == "GS1/Ant/x"
    assert still.comment == "shelf 3 ended; still RED since 2027-01-15T08:00:00.000Z"
    assert [e.kind for e in hub.events] == ["shelf_ended_still_active"]
    assert hub.only("GS1/Ant/x").state == ACTIVE_UNACKED
    assert hub.book.attention_of("GS1") == RED
    hub.at(20 + HOUR)
    assert hub.take() == []  # announced once
    assert hub.book.shelves() == []
    assert hub.book.shelves(active_only=False)[0].end_reason == "expired"


def test_overlapping_shelves_announce_only_when_the_last_one_ends() -> None:
    hub = Hub()
    hub.level("GS1/A/x", RED)
    hub.shelve("GS1", for_s=HOUR)
    hub.shelve("GS1/A", for_s=2 * HOUR)
    hub.take()
    hub.at(HOUR)
    assert entry_kinds(hub.take()) == ["shelf_ended"]
    assert hub.only("GS1/A/x").shelf_id == 3
    hub.at(2 * HOUR)
    assert entry_kinds(hub.take()) == ["shelf_ended", "shelf_ended_still_active"]


def test_an_until_normal_shelf_ends_when_everything_it_covers_recovers() -> None:
    hub = Hub()
    assert hub.shelve("GS1", mode=UNTIL_NORMAL, for_s=None).message == (
        "nothing under GS1 is in alarm, so an until-normal shelf would end at once: shelve for a time"
    )
    hub.level("GS1/a", RED)
    hub.level("GS1/b", ORANGE)
    outcome = hub.shelve("GS1", mode=UNTIL_NORMAL, for_s=None)
    assert outcome.ok
    shelf = hub.book.shelf(outcome.ids[0])
    assert shelf is not None
    assert shelf.ends_at == WALL0 + 24 * HOUR  # an operator's until-normal is capped at max_shelve_s
    hub.level("GS1/a", GREEN)
    assert hub.book.shelves() != []
    hub.take()
    hub.level("GS1/b", GREEN)
    assert entry_kinds(hub.take())[-1] == "shelf_ended"
    assert hub.book.shelf(shelf.id).end_reason == "normal"  # type: ignore[union-attr]
    assert hub.book.attention_of("GS1") == RED  # GS1/a latched and unacked, unshelved now
    admin = hub.shelve("GS1", mode=UNTIL_NORMAL, for_s=None, role=ADMIN)
    assert not admin.ok  # still nothing active
    hub.level("GS1/c", RED)
    admin = hub.shelve("GS1", mode=UNTIL_NORMAL, for_s=None, role=ADMIN)
    assert hub.book.shelf(admin.ids[0]).ends_at is None  # type: ignore[union-attr]


def test_an_until_normal_shelf_ends_at_its_cap_with_the_alarm_still_active() -> None:
    hub = Hub()
    hub.level("GS1/a", RED)
    hub.shelve("GS1", mode=UNTIL_NORMAL, for_s=None)
    hub.take()
    hub.at(24 * HOUR)
    assert entry_kinds(hub.take()) == ["shelf_ended", "shelf_ended_still_active"]


def test_operators_shelve_up_to_the_limit_and_admins_beyond() -> None:
    hub = Hub()
    refused = hub.shelve("GS1", for_s=25 * HOUR)
    assert refused.message == "operators may shelve for at most 1 d (asked: 1 d 1 h); ask an admin for longer"
    assert hub.shelve("GS1", for_s=24 * HOUR).ok
    assert hub.shelve("GS1", for_s=30 * 24 * HOUR, role=ADMIN).ok
    assert hub.shelve("GS1", for_s=-5).message.startswith("the shelf would end at ")
    assert hub.shelve("GS1", for_s=None).message == "a timed shelf needs an end (--for 2h)"
    assert hub.shelve("", for_s=HOUR).message.startswith("invalid shelf prefix ''")
    assert (
        hub.shelve("GS1", mode="forever").message
        == "unknown shelf mode 'forever': use one of timed, until_normal, scheduled"
    )


def test_a_scheduled_shelf_starts_and_ends_on_time_and_can_be_cancelled() -> None:
    hub = Hub()
    hub.level("GS1/x", RED)
    start = hub.wall + 2 * HOUR
    outcome = hub.shelve("GS1", mode=SCHEDULED, starts_at=start, for_s=HOUR)
    assert outcome.ok
    assert "from 2027-01-15T10:00:00.000Z" in outcome.message
    hub.at(2 * HOUR - 1)
    assert hub.only("GS1/x").shelf_id is None
    hub.at(2 * HOUR)
    assert hub.only("GS1/x").shelf_id == outcome.ids[0]
    hub.at(3 * HOUR)
    assert hub.only("GS1/x").shelf_id is None
    later = hub.shelve("GS1", mode=SCHEDULED, starts_at=hub.wall + HOUR, for_s=HOUR)
    cancelled = hub.book.unshelve(later.ids[0], "k", "bob", "not needed", "cli", OPERATOR, 0, hub.wall)
    assert cancelled.ok
    hub.at(4 * HOUR + 1)
    assert hub.only("GS1/x").shelf_id is None
    assert hub.book.unshelve(later.ids[0], "k", None, None, "cli", OPERATOR, 0, hub.wall).message == (
        f"shelf {later.ids[0]} already ended (unshelved)"
    )
    assert hub.shelve("GS1", mode=SCHEDULED, for_s=HOUR).message.startswith("a scheduled shelf needs both")
    assert not hub.shelve("GS1", mode=TIMED, starts_at=hub.wall + HOUR).ok


def test_a_scheduled_window_that_passed_between_two_ticks_was_never_in_force() -> None:
    """A hub that did not tick through a whole window (blocked, or a window of a second) ends it unannounced."""
    hub = Hub()
    hub.level("GS1/x", RED)
    hub.shelve("GS1", mode=SCHEDULED, starts_at=hub.wall + 60, for_s=60)
    hub.take()
    hub.at(600)
    assert entry_kinds(hub.take()) == ["shelf_ended"]
    assert hub.book.shelves(active_only=False)[0].end_reason == "expired"
    assert hub.only("GS1/x").state == ACTIVE_UNACKED


def test_an_agent_silent_alarm_is_shelved_only_by_a_shelf_over_its_mount() -> None:
    hub = Hub()
    hub.level("GS1/Ant/x", GREEN)
    hub.shelve("GS1/Ant/x")
    hub.book.agent_silent("ant", "GS1/Ant", 0, WALL0)
    assert hub.only("GS1/Ant").shelf_id is None
    hub.shelve("GS1")
    assert hub.only("GS1/Ant").shelf_id is not None
    assert hub.book.attention_of("GS1") == 0


# -- restarts --------------------------------------------------------------------------------------


def test_after_a_restart_every_alarm_ack_and_shelf_is_back_and_ids_continue() -> None:
    hub = Hub()
    hub.level("GS1/a", RED)
    hub.level("GS1/b", RED)
    hub.level("GS1/c", ORANGE)
    hub.ack(hub.only("GS1/a").id)
    hub.shelve("GS1/c")
    hub.book.agent_silent("gone", "GS2", 0, WALL0)
    before = {alarm.id: alarm for alarm in hub.book.alarms()}
    hub = hub.restart()
    assert {alarm.id: alarm for alarm in hub.book.alarms()} == before
    assert hub.book.attention_of("GS1") == RED
    assert hub.book.attention_of("GS2") == STALE
    assert hub.book.is_silent("gone")
    # The points come back in the same condition: same alarms, nothing raised or journaled again.
    hub.level("GS1/a", RED)
    hub.level("GS1/b", RED)
    hub.level("GS1/c", ORANGE)
    assert hub.take() == []
    hub.level("GS1/d", RED)
    assert hub.only("GS1/d").id == 6  # ids continue: alarms 1-3, the shelf 4, the agent alarm 5
    hub.take()
    hub.level("GS1/b", GREEN)
    assert entry_kinds(hub.take()) == ["level", "alarm_rtn"]  # the old level was known from the alarm
    hub.book.agent_back("gone", "GS2", 0, WALL0)
    assert entry_kinds(hub.take()) == ["agent_back", "alarm_rtn"]


def test_a_shelf_that_expired_while_the_hub_was_down_ends_at_start_up_and_announces() -> None:
    hub = Hub()
    hub.level("GS1/a", RED)
    hub.level("GS1/b", GREEN)
    hub.shelve("GS1", for_s=HOUR)
    future = hub.shelve("GS2", mode=SCHEDULED, starts_at=hub.wall + 2 * HOUR, for_s=HOUR)
    hub.t = 3 * HOUR - 10  # the hub was down from 0 to here
    hub = hub.restart()
    entries = hub.take()
    assert entry_kinds(entries) == ["shelf_ended", "shelf_ended_still_active"]
    assert entries[0].comment == "expired_during_downtime"
    assert hub.book.shelves(active_only=False)[0].end_reason == "expired_during_downtime"
    assert hub.only("GS1/a").state == ACTIVE_UNACKED
    assert hub.book.shelf_of("GS2/x") == future.ids[0]  # its start passed while down: in force now
    hub.at(3 * HOUR)
    assert entry_kinds(hub.take()) == ["shelf_ended"]


# -- outputs ---------------------------------------------------------------------------------------


def test_node_changes_carry_what_changed_once_and_an_empty_view_when_nothing_is_left() -> None:
    hub = Hub()
    hub.level("GS1/A/x", RED)
    changes = hub.book.take_node_changes()
    assert set(changes) == {"GS1", "GS1/A", "GS1/A/x"}
    assert changes["GS1"].attention == RED
    assert changes["GS1"].unacked_below == 1
    assert changes["GS1/A/x"].alarm is not None
    assert changes["GS1/A/x"].since == WALL0
    assert hub.book.take_node_changes() == {}
    hub.level("GS1/A/x", RED)  # no change at all
    assert hub.book.take_node_changes() == {}
    hub.ack(hub.only("GS1/A/x").id)
    hub.level("GS1/A/x", GREEN)
    hub.book.point_removed("GS1/A/x", 0, WALL0)
    changes = hub.book.take_node_changes()
    assert changes == {"GS1": NodeAlarmView(), "GS1/A": NodeAlarmView(), "GS1/A/x": NodeAlarmView()}


def test_events_are_the_unshelved_journal_entries_a_notifier_acts_on() -> None:
    hub = Hub()
    hub.level("GS1/x", GREEN)
    hub.level("GS1/x", RED)
    hub.ack(hub.only("GS1/x").id)
    hub.take()
    assert [e.kind for e in hub.events] == ["alarm_raised", "ack"]
    assert all(e.kind in EVENT_KINDS and e.shelf_id is None for e in hub.events)
    assert [e.kind for e in hub.journal] == ["level", "alarm_raised", "ack"]


def test_debounce_state_changes_are_journaled_as_the_hub_sees_them() -> None:
    hub = Hub()
    hub.level("GS1/x", GREEN)
    book = hub.book
    book.point_debounce("GS1/x", "ant", (RED, WALL0 + 1), None, WALL0 + 1, 0, WALL0)
    book.point_debounce("GS1/x", "ant", (CRITICAL, WALL0 + 2), None, WALL0 + 2, 0, WALL0)  # escalated: not discarded
    book.point_debounce("GS1/x", "ant", None, None, WALL0 + 3, 0, WALL0)  # fell back before the hold: discarded
    assert [(e.kind, e.old, e.new) for e in hub.take()] == [
        ("pending", GREEN, RED),
        ("pending", GREEN, CRITICAL),
        ("discarded", GREEN, CRITICAL),
    ]
    book.point_debounce("GS1/x", "ant", (RED, WALL0 + 4), None, WALL0 + 4, 0, WALL0)
    hub.level("GS1/x", RED)
    book.point_debounce("GS1/x", "ant", None, (WALL0 + 5, 7), WALL0 + 5, 0, WALL0)  # reached, then flapping
    book.point_debounce("GS1/x", "ant", None, None, WALL0 + 9, 0, WALL0)
    assert [e.kind for e in hub.take()] == ["pending", "level", "alarm_raised", "flapping_start", "flapping_stop"]
    assert [e.kind for e in hub.events][-2:] == ["flapping_start", "flapping_stop"]


def test_json_views_use_the_issue_field_names_and_iso_utc_times() -> None:
    hub = Hub()
    hub.level("GS1/x", RED)
    hub.ack(hub.only("GS1/x").id)
    hub.shelve("GS1")
    alarm = hub.only("GS1/x")
    assert alarm.to_json() == {
        "id": 1,
        "path": "GS1/x",
        "agent": "ant",
        "reason": "level",
        "state": ACTIVE_ACKED,
        "level": RED,
        "level_str": "RED",
        "max_level": RED,
        "max_level_str": "RED",
        "latch": True,
        "raised_at": "2027-01-15T08:00:00.000Z",
        "rtn_at": None,
        "acked": True,
        "acked_by": "alice (ops-key)",
        "acked_at": "2027-01-15T08:00:00.000Z",
        "ack_comment": "on it",
        "shelved": True,
        "shelf_id": 2,
    }
    shelf = hub.book.shelves()[0].to_json()
    assert {key: shelf[key] for key in ("id", "prefix", "mode", "comment", "by", "created_at", "ends_at")} == {
        "id": 2,
        "prefix": "GS1",
        "mode": TIMED,
        "comment": "maintenance",
        "by": "alice (ops-key)",
        "created_at": "2027-01-15T08:00:00.000Z",
        "ends_at": "2027-01-15T09:00:00.000Z",
    }
    entry = hub.take()[0].to_json()
    assert set(entry) >= {"time", "path", "kind", "old", "new", "value", "agent", "user", "comment", "alarm_id"}
    assert entry["time"] == "2027-01-15T08:00:00.000Z"
    assert JournalEntry(0.0, 0.0, "p", "level", value=b"\xff\x00").to_json()["value"] == "\ufffd\x00"
    wire = alarm.to_wire()
    assert wire["raised_at"] == WALL0
    assert wire["acked_by"] == "alice (ops-key)"


# -- random sequences ---------------------------------------------------------------------------------

AGENTS = {"a": "GS1/A", "b": "GS1/AB", "c": "GS2"}
RELS = ("x", "y/z", "y/w")
CODES = (NO, GREEN, ORANGE, RED, CRITICAL)
PREFIXES = ("GS1", "GS1/A", "GS1/AB", "GS1/A/y", "GS2", "GS2/x", "GS1/A/x", "GS3")
MACHINE_SETTINGS = AlarmSettings(rules=(AlarmRule("GS1/*/y/**", latch=False), AlarmRule("GS2/y/**", latch=True)))


# The machine's state store: a real SQLite file (WAL), on tmpfs where there is one: a turn with an alarm
# record commits with synchronous=FULL, and thousands of fsyncs on a shared disk would only measure the disk.
_MACHINE_TMP = "/dev/shm" if Path("/dev/shm").is_dir() else None


class AlarmMachine(RuleBasedStateMachine):
    """Levels (STALE included), silent agents, acks of listed ids, unacks, shelves of every mode,
    clears, time and restarts, driven like HubState and the server would: every step's journal and
    records are written to a real :class:`StateStore`, and a restart reopens it and restores from it."""

    @initialize()
    def start(self) -> None:
        self.book = AlarmBook(MACHINE_SETTINGS)
        self.dir = Path(tempfile.mkdtemp(prefix="gsmon-alarm-machine-", dir=_MACHINE_TMP))
        self.store = StateStore(self.dir / STATE_FILE)
        self.written: list[tuple[str, str, int | None, int | None]] = []  # every journal entry stored, in order
        self.t = 0.0
        self.raw: dict[tuple[str, str], int] = {}
        self.exists: set[tuple[str, str]] = set()
        self.overdue: set[tuple[str, str]] = set()
        self.silent: set[str] = set()
        self.shown: dict[tuple[str, str], tuple[int, str | None]] = {}  # what the book was told last
        self.listings: list[dict[int, int]] = []  # ids (-> max_level) shown to an operator at some moment
        self.listed_at: list[float] = []  # when each listing was shown (wall)
        self.published: dict[str, NodeAlarmView] = {}
        self.ids: dict[int, tuple[str, str]] = {}  # every id ever seen -> (what, path)
        self.high_water = 0
        self.before: dict[int, Alarm] = {}

    def teardown(self) -> None:
        if hasattr(self, "store"):
            self.store.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def wall(self) -> float:
        return WALL0 + self.t

    # -- the model hub --------------------------------------------------------------------------

    def _report(self, agent: str, rel: str) -> None:
        key = (agent, rel)
        if key not in self.exists:
            return
        code = self.raw[key]
        if agent in self.silent:
            wanted: tuple[int, str | None] = (max(code, STALE), AGENT_SILENT)
        elif key in self.overdue:
            wanted = (max(code, STALE), OVERDUE)
        else:
            wanted = (code, None)
        if self.shown.get(key) != wanted:
            self.shown[key] = wanted
            level, reason = wanted
            self.book.point_level(
                f"{AGENTS[agent]}/{rel}",
                agent,
                level,
                alertstr_for(level),
                self.t,
                self.wall,
                reason,
                self.t,
                self.wall,
            )

    def _step(self, action: Callable[[], Any]) -> Any:
        """Run one input, then drain the book as the server would and check what the step did."""
        self.before = {alarm.id: alarm for alarm in self.book.alarms(include_cleared=True)}
        self.before_shelves = {shelf.id: shelf for shelf in self.book.shelves(active_only=False)}
        result = action()
        self.entries = self.book.take_journal()
        events = self.book.take_events()
        assert events == [e for e in self.entries if e.kind in EVENT_KINDS and e.shelf_id is None]
        alarms, shelves, next_id = self.book.take_records()
        ids = self.store.write_turn(self.entries, alarms, shelves, next_id)  # one transaction, as the server does
        assert list(ids) == list(range(len(self.written) + 1, len(self.written) + 1 + len(self.entries)))
        self.written += [(e.kind, e.path, e.alarm_id, e.shelf_id) for e in self.entries]
        self.published.update(self.book.take_node_changes())
        self.published = {path: view for path, view in self.published.items() if view != NodeAlarmView()}
        self._check_step()
        return result

    def _check_step(self) -> None:
        after = {alarm.id: alarm for alarm in self.book.alarms(include_cleared=True)}
        announced = [e.alarm_id for e in self.entries if e.kind == "shelf_ended_still_active"]
        active = (ACTIVE_UNACKED, ACTIVE_ACKED)
        for alarm_id, old in self.before.items():
            new = after.get(alarm_id)
            if old.state != CLEARED:
                assert new is not None, f"open alarm {alarm_id} vanished"
            if new is None:
                continue
            # A shelf end with a covered alarm still active re-announces it, exactly once.
            unshelved = old.shelf_id is not None and new.shelf_id is None
            expected = 1 if unshelved and old.state in active and new.state in active else 0
            assert announced.count(alarm_id) == expected, (alarm_id, old, new)
        for alarm_id in announced:
            assert after[alarm_id].state == ACTIVE_UNACKED
            assert after[alarm_id].shelf_id is None

    def _check_latched(self, acked: set[int], cleared: set[int]) -> None:
        after = {alarm.id: alarm for alarm in self.book.alarms(include_cleared=True)}
        for alarm_id, old in self.before.items():
            new = after.get(alarm_id)
            if old.latch and old.state in (ACTIVE_UNACKED, RTN_UNACKED) and (new is None or new.state == CLEARED):
                assert alarm_id in acked | cleared, f"latched alarm {alarm_id} disappeared unacknowledged"

    # -- rules ------------------------------------------------------------------------------------

    @rule(agent=st.sampled_from(sorted(AGENTS)), rel=st.sampled_from(RELS), code=st.sampled_from(CODES))
    def level(self, agent: str, rel: str, code: int) -> None:
        key = (agent, rel)
        self.raw[key] = code
        self.exists.add(key)
        self.overdue.discard(key)
        self._step(lambda: self._report(agent, rel))
        self._check_latched(set(), set())

    @rule(agent=st.sampled_from(sorted(AGENTS)), rel=st.sampled_from(RELS))
    def overdue_point(self, agent: str, rel: str) -> None:
        if (agent, rel) in self.exists:
            self.overdue.add((agent, rel))
            self._step(lambda: self._report(agent, rel))

    @rule(agent=st.sampled_from(sorted(AGENTS)))
    def go_silent(self, agent: str) -> None:
        if agent in self.silent:
            return
        self.silent.add(agent)

        def action() -> None:
            self.book.agent_silent(agent, AGENTS[agent], self.t, self.wall)
            for rel in RELS:
                self._report(agent, rel)

        self._step(action)
        self._check_latched(set(), set())

    @rule(agent=st.sampled_from(sorted(AGENTS)))
    def come_back(self, agent: str) -> None:
        if agent not in self.silent:
            return
        self.silent.discard(agent)

        def action() -> None:
            self.book.agent_back(agent, AGENTS[agent], self.t, self.wall)
            for rel in RELS:
                self.overdue.discard((agent, rel))
                self._report(agent, rel)

        self._step(action)
        self._check_latched(set(), set())

    @rule(agent=st.sampled_from(sorted(AGENTS)), rel=st.sampled_from(RELS))
    def remove(self, agent: str, rel: str) -> None:
        key = (agent, rel)
        if key not in self.exists:
            return
        self.exists.discard(key)
        self.overdue.discard(key)
        if self.shown.pop(key, None) is not None:
            self._step(lambda: self.book.point_removed(f"{AGENTS[agent]}/{rel}", self.t, self.wall))
            self._check_latched(set(), set())

    @rule(prefix=st.sampled_from(PREFIXES))
    def list_unacked(self, prefix: str) -> None:
        self.listings.append({alarm.id: alarm.max_level for alarm in self.book.alarms(prefix, unacked_only=True)})
        self.listed_at.append(self.wall)

    @precondition(lambda self: bool(self.listings))
    @rule(pick=st.integers(0, 50), with_seen=st.booleans(), role=st.sampled_from([OPERATOR, OPERATOR, VIEWER]))
    def ack_listed(self, pick: int, with_seen: bool, role: str) -> None:
        listing = self.listings[pick % len(self.listings)]
        listed_at = self.listed_at[pick % len(self.listings)]
        outcome = self._step(
            lambda: self.book.ack(
                list(listing), "k", "u", "c", "cli", role, self.t, self.wall, seen=listing if with_seen else None
            )
        )
        assert set(outcome.ids) <= set(listing)  # never an alarm raised after the ids were listed
        for alarm_id in outcome.ids:  # (a listing may be from before a restart: the ids name the same alarms)
            assert self.before[alarm_id].raised_at <= listed_at
        after = {alarm.id: alarm for alarm in self.book.alarms(include_cleared=True)}
        for alarm_id, old in self.before.items():
            if alarm_id not in outcome.ids:
                assert after[alarm_id] == old, "an ack changed an alarm it was not given"
            elif with_seen:
                assert old.max_level <= listing[alarm_id]
        if role == VIEWER:
            assert not outcome.ok
            assert outcome.ids == ()
        self._check_latched(set(outcome.ids), set())

    @rule(alarm_id=st.integers(1, 40), role=st.sampled_from([OPERATOR, VIEWER]))
    def unack(self, alarm_id: int, role: str) -> None:
        outcome = self._step(lambda: self.book.unack(alarm_id, "k", "u", None, "cli", role, self.t, self.wall))
        if outcome.ok:
            assert self.before[alarm_id].state == ACTIVE_ACKED
            assert self.book.alarm(alarm_id).state == ACTIVE_UNACKED  # type: ignore[union-attr]
        self._check_latched(set(), set())

    @rule(alarm_id=st.integers(1, 40), role=st.sampled_from([ADMIN, OPERATOR]))
    def clear(self, alarm_id: int, role: str) -> None:
        outcome = self._step(lambda: self.book.clear(alarm_id, "k", "u", "stuck", "cli", role, self.t, self.wall))
        assert outcome.ok == (role == ADMIN and alarm_id in self.before and self.before[alarm_id].state != CLEARED)
        self._check_latched(set(), {alarm_id} if outcome.ok else set())

    @rule(
        prefix=st.sampled_from(PREFIXES),
        mode=st.sampled_from([TIMED, UNTIL_NORMAL, SCHEDULED]),
        length_s=st.sampled_from([60.0, HOUR, 24 * HOUR, 30 * HOUR]),
        delay_s=st.sampled_from([-HOUR, 0.0, 600.0, 2 * HOUR]),
        role=st.sampled_from([OPERATOR, ADMIN, VIEWER]),
    )
    def shelve(self, prefix: str, mode: str, length_s: float, delay_s: float, role: str) -> None:
        starts_at = self.wall + delay_s if mode == SCHEDULED else None
        ends_at = (starts_at or self.wall) + length_s if mode != UNTIL_NORMAL or length_s < HOUR else None
        outcome = self._step(
            lambda: self.book.shelve(prefix, mode, starts_at, ends_at, "work", "k", "u", "cli", role, self.t, self.wall)
        )
        self._check_latched(set(), set())
        if role == VIEWER:
            assert not outcome.ok
        if outcome.ok:
            shelf = self.book.shelf(outcome.ids[0])
            assert shelf is not None
            if role == OPERATOR:
                assert shelf.ends_at is not None
                assert shelf.ends_at - max(shelf.starts_at, self.wall) <= 24 * HOUR

    @rule(shelf_id=st.integers(1, 40), role=st.sampled_from([OPERATOR, VIEWER]))
    def unshelve(self, shelf_id: int, role: str) -> None:
        self._step(lambda: self.book.unshelve(shelf_id, "k", "u", None, "cli", role, self.t, self.wall))
        self._check_latched(set(), set())

    @rule(seconds=st.sampled_from([1.0, 60.0, 600.0, HOUR, 6 * HOUR, 30 * HOUR]))
    def tick(self, seconds: float) -> None:
        self.t += seconds
        self._step(lambda: self.book.tick(self.t, self.wall))
        self._check_latched(set(), set())

    @rule(pruned=st.booleans())
    def restart(self, pruned: bool) -> None:
        """A new hub process: the state store is reopened, loaded and the book restored from it; the
        agents then report their points again. ``pruned``: as if retention had pruned the history (only
        open alarms and shelves not ended come back)."""
        open_before = {alarm.id: alarm for alarm in self.book.alarms()}

        def action() -> None:
            self.store.close()
            self.store = StateStore(self.dir / STATE_FILE)
            stored = self.store.load()
            # The journal came through whole, in order, with its cursor where it was.
            assert stored.last_journal_id == len(self.written)
            journal = self.store.query_journal(limit=len(self.written) + 1)
            assert [(e.kind, e.path, e.alarm_id, e.shelf_id) for e in journal] == self.written
            alarms, shelves = stored.alarms, stored.shelves
            if pruned:
                alarms = [alarm for alarm in alarms if alarm.state != CLEARED]
                shelves = [shelf for shelf in shelves if not shelf.ended]
            self.book = AlarmBook.restore(MACHINE_SETTINGS, alarms, shelves, stored.next_id, self.t, self.wall)

        self.published = {}  # a new hub publishes its nodes from scratch
        self._step(action)
        for alarm_id, old in open_before.items():
            new = self.book.alarm(alarm_id)
            assert new is not None, f"alarm {alarm_id} lost in the restart"
            if new.shelf_id == old.shelf_id:
                assert new == old, "a restart changed an alarm"
        # A new HubState knows nothing: every point of a live agent is reported again (silent ones when back).
        self.shown.clear()
        self.overdue.clear()

        def report_all() -> None:
            for agent, rel in sorted(self.exists):
                if agent not in self.silent:
                    self._report(agent, rel)

        self._step(report_all)
        raised = [e for e in self.entries if e.kind == "alarm_raised"]
        for entry in raised:
            assert entry.path not in {alarm.path for alarm in open_before.values() if alarm.reason != AGENT_SILENT}, (
                "a point back in the same condition was raised again"
            )

    # -- invariants ---------------------------------------------------------------------------------

    def _in_force(self) -> list[Shelf]:
        return [shelf for shelf in self.book.shelves() if shelf.starts_at <= self.wall]

    def _covering(self, path: str) -> int | None:
        ids = [shelf.id for shelf in self._in_force() if path_in_prefix(path, shelf.prefix)]
        return min(ids) if ids else None

    @invariant()
    def attention_is_the_worst_unacked_unshelved_alarm_at_or_below_each_node(self) -> None:
        open_alarms = self.book.alarms()
        points = [path for agent in AGENTS for path in self.book.point_paths_of(agent)]
        nodes = set(PREFIXES) | {
            prefix
            for path in [*points, *(alarm.path for alarm in open_alarms)]
            for prefix in ("/".join(path.split("/")[:n]) for n in range(1, path.count("/") + 2))
        }
        for alarm in open_alarms:
            assert alarm.shelf_id == self._covering(alarm.path), alarm
        for node in nodes:
            counted = [
                alarm.max_level
                for alarm in open_alarms
                if alarm.state in (ACTIVE_UNACKED, RTN_UNACKED)
                and alarm.shelf_id is None
                and path_in_prefix(alarm.path, node)
            ]
            assert self.book.attention_of(node) == max(counted, default=0), node
            assert self.book.unacked_below(node) == len(counted), node
            shelved = [path for path in points if path_in_prefix(path, node) and self._covering(path) is not None]
            assert self.book.shelved_below(node) == len(shelved), node
            assert self.published.get(node, NodeAlarmView()) == self.book.view_of(node), node

    @invariant()
    def an_until_normal_shelf_in_force_covers_an_active_alarm(self) -> None:
        active = [alarm.path for alarm in self.book.alarms() if alarm.state in (ACTIVE_UNACKED, ACTIVE_ACKED)]
        for shelf in self._in_force():
            if shelf.mode == UNTIL_NORMAL:
                assert any(path_in_prefix(path, shelf.prefix) for path in active), shelf

    @invariant()
    def ids_never_repeat(self) -> None:
        everything = [("alarm", a.id, a.path) for a in self.book.alarms(include_cleared=True)] + [
            ("shelf", s.id, s.prefix) for s in self.book.shelves(active_only=False)
        ]
        for what, some_id, path in everything:
            if some_id > self.high_water:
                assert some_id not in self.ids
            assert self.ids.setdefault(some_id, (what, path)) == (what, path)
        self.high_water = max([self.high_water, *self.ids])
        assert self.book.next_id > self.high_water

    @invariant()
    def the_store_holds_every_open_alarm_and_shelf_as_the_book_has_it(self) -> None:
        """Written before publishing: what a hub killed now would restore is what it shows now."""
        if not hasattr(self, "store"):
            return
        stored = self.store.load()
        assert [alarm for alarm in stored.alarms if alarm.state != CLEARED] == self.book.alarms()
        assert [shelf for shelf in stored.shelves if not shelf.ended] == self.book.shelves()
        assert stored.next_id == self.book.next_id

    @invariant()
    def one_open_alarm_per_point_and_per_silent_agent(self) -> None:
        keys = [(a.reason == AGENT_SILENT, a.agent if a.reason == AGENT_SILENT else a.path) for a in self.book.alarms()]
        assert len(keys) == len(set(keys))


AlarmMachine.TestCase.settings = settings(
    max_examples=120, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_alarm_state_machine = AlarmMachine.TestCase
