"""The Monitor's point table as a pure core: no threads, no sleeps, a made-up ``now``."""

from __future__ import annotations

import logging

import msgpack
import pytest

from gsmon.agent.debounce import DebounceSettings
from gsmon.agent.points import LogLine, PointTable
from gsmon.common import protocol as proto
from gsmon.common.alerts import Alert, GreenAlert, NoAlert, OrangeAlert, RedAlert

WALL = 1_800_000_000.0  # the poll's wall-clock stamp
NOW = 500.0  # monotonic seconds


def table_with(*names: str, parent: str | None = "Rack", track_changes: bool = False, **point: object) -> PointTable:
    table = PointTable(track_changes=track_changes)
    if parent is not None:
        table.add_parent("Site", None)
        table.add_parent(parent, "Site")
    for name in names:
        table.add_point(name, parent, 2.0, **point)  # type: ignore[arg-type]
    return table


def test_apply_stores_value_code_and_times_and_rolls_up() -> None:
    """A poll stores value, code, label, wall and monotonic times; parents carry the worst child."""
    table = table_with("a", "b")
    table.apply(("a", "b"), WALL, NOW, None, (GreenAlert(1), OrangeAlert(2)), notify_all=False)
    assert table.item("a", NOW + 3) == ("a", 1, GreenAlert.alertcode, "Rack", 3.0)
    assert table.item("Rack", NOW) == ("Rack", None, OrangeAlert.alertcode, "Site", None)
    assert table.item("Site", NOW)[2] == OrangeAlert.alertcode
    assert table.worst_code == OrangeAlert.alertcode
    assert table.points["b"].polled_wall == WALL
    table.apply(("b",), WALL + 2, NOW + 2, None, (GreenAlert(3),), notify_all=False)
    assert table.item("Site", NOW)[2] == GreenAlert.alertcode


def test_unknown_name_raises_key_error() -> None:
    with pytest.raises(KeyError, match="no monitor point or parent named 'nope'"):
        table_with("a").item("nope", NOW)


def test_a_failed_run_stores_the_points_error_alert() -> None:
    """results None: every point of the job takes its alert_exc with the error text."""
    table = table_with("a", alert_exc=RedAlert)
    table.apply(("a",), WALL, NOW, TimeoutError("still running after 1 s"), None, notify_all=False)
    assert table.item("a", NOW)[1:3] == ("ERROR TimeoutError: still running after 1 s", RedAlert.alertcode)


def test_unregistered_dependents_are_skipped() -> None:
    table = table_with("a")
    assert table.apply(("a", "later"), WALL, NOW, None, (GreenAlert(1), RedAlert(2)), notify_all=True) is not None
    assert "later" not in table.points
    assert table.worst_code == GreenAlert.alertcode


def test_alert_rule_judges_plain_values_only_and_its_errors_are_collected() -> None:
    """The rule sees NoAlert values by path; an explicit alert wins; a failing rule leaves the value unjudged."""
    table = table_with("plain", "explicit", "broken")

    def rule(path: str, alert: Alert) -> Alert:
        if path.endswith("broken"):
            raise ZeroDivisionError("bad threshold")
        return RedAlert(alert.val) if alert.val > 5 else alert

    table.alert_rule = rule
    table.apply(
        ("plain", "explicit", "broken"), WALL, NOW, None, (NoAlert(9), GreenAlert(9), NoAlert(9)), notify_all=False
    )
    assert table.points["plain"].alertcode == RedAlert.alertcode
    assert table.points["explicit"].alertcode == GreenAlert.alertcode
    assert table.points["broken"].alertcode == NoAlert.alertcode
    errors = table.take_rule_errors()
    assert [(path, type(error)) for path, error in errors] == [("Site/Rack/broken", ZeroDivisionError)]
    assert table.take_rule_errors() == []


def test_notes_only_when_logging_or_a_callback_could_act() -> None:
    """A steady point without logging makes no note; notify_all (a callback) notes every poll;
    loglvl_alerts notes a change of level only."""
    quiet = table_with("a")
    assert quiet.apply(("a",), WALL, NOW, None, (GreenAlert(1),), notify_all=False) is None
    notes = quiet.apply(("a",), WALL, NOW, None, (GreenAlert(1),), notify_all=True)
    assert notes is not None
    assert [(n.path, n.old_value, n.old_code, n.alert.val) for n in notes] == [("Site/Rack/a", 1, 10, 1)]

    watched = table_with("a", loglvl_alerts=logging.WARNING, logthr_alerts=RedAlert.alertcode)
    assert watched.apply(("a",), WALL, NOW, None, (GreenAlert(1),), notify_all=False) is not None  # unset -> GREEN
    assert watched.apply(("a",), WALL, NOW, None, (GreenAlert(2),), notify_all=False) is None


def test_log_lines_follow_the_threshold_and_carry_extra_fields() -> None:
    """Alert changes are logged when the old or the new level reaches logthr_alerts; values when loglvl_values."""
    table = table_with("a", loglvl_alerts=logging.WARNING, logthr_alerts=RedAlert.alertcode, loglvl_values=logging.INFO)
    lines: list[LogLine] = []
    for alert in (GreenAlert(1), OrangeAlert(2), RedAlert(3), RedAlert(3), GreenAlert(4)):
        for note in table.apply(("a",), WALL, NOW, None, (alert,), notify_all=False) or []:
            lines += table.log_lines(note)
    alert_lines = [line for line in lines if line.level == logging.WARNING]
    assert [line.message % line.args for line in alert_lines] == [
        'alert "Site/Rack/a" ORANGE --> RED (value 3)',
        'alert "Site/Rack/a" RED --> GREEN (value 4)',
    ]
    assert alert_lines[0].extra == {
        "point": "Site/Rack/a",
        "old_alert": OrangeAlert.alertcode,
        "new_alert": RedAlert.alertcode,
        "old_alertstr": "ORANGE",
        "new_alertstr": "RED",
        "value": 3,
    }
    value_lines = [line.message % line.args for line in lines if line.level == logging.INFO]
    assert value_lines == [f'value "Site/Rack/a" --> {n}' for n in (1, 2, 3, 4)]  # 3 twice: logged once


def test_first_alert_logs_as_unset() -> None:
    table = table_with("a", loglvl_alerts=logging.WARNING, logthr_alerts=RedAlert.alertcode)
    notes = table.apply(("a",), WALL, NOW, None, (RedAlert(1),), notify_all=False)
    assert notes is not None
    assert [line.message % line.args for line in table.log_lines(notes[0])] == [
        'alert "Site/Rack/a" unset --> RED (value 1)'
    ]


def test_changes_are_tracked_for_the_publisher_latest_poll_per_point() -> None:
    """take_changes gives each polled point once with its latest poll, then nothing; full_state leaves the set."""
    table = table_with("a", "b", track_changes=True)
    table.apply(("a",), WALL, NOW, None, (GreenAlert(1),), notify_all=False)
    table.apply(("a",), WALL + 1, NOW + 1, None, (RedAlert(2),), notify_all=False)
    entries, parents = table.full_state()
    assert [(e.path, e.value, e.alertcode, e.alertstr, e.polled_at_s, e.dt_s) for e in entries] == [
        ("Site/Rack/a", 2, RedAlert.alertcode, "RED", WALL + 1, 2.0)
    ]
    assert parents == ["Site", "Site/Rack"]
    assert [e.value for e in table.take_changes()] == [2]
    assert table.take_changes() == []


def test_no_change_set_without_a_publisher() -> None:
    table = table_with("a")
    table.apply(("a",), WALL, NOW, None, (GreenAlert(1),), notify_all=False)
    assert table.changed is None
    assert table.take_changes() == []


def test_moving_a_parent_renames_paths_and_resends_every_point() -> None:
    table = table_with("a", track_changes=True)
    table.apply(("a",), WALL, NOW, None, (GreenAlert(1),), notify_all=False)
    table.take_changes()
    table.add_parent("Other", None)
    table.move_parent("Rack", "Other")
    assert table.paths["a"] == "Other/Rack/a"
    assert [e.path for e in table.take_changes()] == ["Other/Rack/a"]
    assert table.depth_chain("Rack") == ["Rack", "Other"]


def test_rows_and_iter_points_give_ages_from_now() -> None:
    table = table_with("a", "b")
    table.apply(("a",), WALL, NOW, None, (OrangeAlert(7),), notify_all=False)
    assert list(table.iter_points(NOW + 4)) == [("a", 7, OrangeAlert.alertcode, 4.0), ("b", None, None, None)]
    rows = table.rows(NOW + 1)
    assert [(r.depth, r.name, r.value, r.alertcode, r.alertstr, r.age_s) for r in rows] == [
        (0, "Site", None, OrangeAlert.alertcode, "ORANGE", None),
        (1, "Rack", None, OrangeAlert.alertcode, "ORANGE", None),
        (2, "a", 7, OrangeAlert.alertcode, "ORANGE", 1.0),
        (2, "b", None, None, "", None),
    ]


# --- Debounce (issue 13 §3): the effective level is what is stored, rolled up, published, logged ---


def test_a_one_poll_glitch_under_for_s_stays_green_and_the_raw_level_is_sent() -> None:
    """for_s=10: a RED poll between GREEN ones never becomes the point's level; the entry carries raw and pending."""
    table = table_with("temp", track_changes=True, debounce=DebounceSettings(for_s=10.0))
    table.apply(("temp",), WALL, NOW, None, (GreenAlert(20.0),), notify_all=False)
    table.apply(("temp",), WALL + 2, NOW + 2, None, (RedAlert(95.0),), notify_all=False)
    assert table.item("temp", NOW + 2)[1:3] == (95.0, GreenAlert.alertcode)  # the value, at the effective level
    assert table.item("Site", NOW)[2] == GreenAlert.alertcode  # rolled up: effective
    (entry,) = table.take_changes()
    assert (entry.alertcode, entry.alertstr) == (GreenAlert.alertcode, "GREEN")
    assert isinstance(entry, proto.DebouncedEntry)
    assert entry.debounce == {
        "raw": RedAlert.alertcode,
        "raw_str": "RED",
        "pending": {"level": RedAlert.alertcode, "since": WALL + 2},
        "flapping": None,
    }
    table.apply(("temp",), WALL + 4, NOW + 4, None, (GreenAlert(21.0),), notify_all=False)
    (entry,) = table.take_changes()
    assert entry.alertcode == GreenAlert.alertcode
    assert entry.debounce == {"raw": GreenAlert.alertcode, "raw_str": "GREEN", "pending": None, "flapping": None}


def test_a_level_that_holds_for_s_is_raised_at_for_s_on_poll_times() -> None:
    """Poll times decide (not ``now``): RED from WALL+2 shows from the first poll at WALL+12."""
    table = table_with("temp", debounce=DebounceSettings(for_s=10.0))
    for k in range(0, 16, 2):
        alert: Alert = GreenAlert(k) if k == 0 else RedAlert(k)
        table.apply(("temp",), WALL + k, NOW, None, (alert,), notify_all=False)
        expected = RedAlert.alertcode if k >= 12 else GreenAlert.alertcode
        assert table.points["temp"].alertcode == expected, k
    assert table.worst_code == RedAlert.alertcode
    assert table.points["temp"].alertstr == "RED"


def test_debounce_events_are_logged_and_the_effective_change_too() -> None:
    """Pending and discarded become log lines at the alert level; alert lines show the effective levels."""
    table = table_with(
        "temp", debounce=DebounceSettings(for_s=10.0), loglvl_alerts=logging.WARNING, logthr_alerts=RedAlert.alertcode
    )
    lines: list[str] = []
    for k, alert in ((0, GreenAlert(1)), (2, RedAlert(2)), (4, GreenAlert(3)), (6, RedAlert(4)), (16, RedAlert(5))):
        for note in table.apply(("temp",), WALL + k, NOW, None, (alert,), notify_all=False) or []:
            lines += [line.message % line.args for line in table.log_lines(note)]
    assert lines == [
        'alert "Site/Rack/temp" GREEN, pending RED (held back by debounce)',
        'alert "Site/Rack/temp" pending RED discarded (did not hold)',
        'alert "Site/Rack/temp" GREEN, pending RED (held back by debounce)',
        'alert "Site/Rack/temp" GREEN --> RED (value 5)',
    ]


def test_flap_guard_holds_the_worst_level_and_says_so_on_the_wire() -> None:
    table = table_with(
        "link", track_changes=True, debounce=DebounceSettings(flap_window_s=60.0, flap_start=2, flap_stop=0)
    )
    for k in range(7):  # GREEN, RED, GREEN ... GREEN: six changes in six seconds
        alert: Alert = RedAlert(k) if k % 2 else GreenAlert(k)
        table.apply(("link",), WALL + k, NOW, None, (alert,), notify_all=False)
    assert table.points["link"].alertcode == RedAlert.alertcode  # raw GREEN now, held at the window's worst
    (entry,) = table.take_changes()
    assert isinstance(entry, proto.DebouncedEntry)
    assert entry.debounce["raw"] == GreenAlert.alertcode
    assert entry.debounce["flapping"] is not None
    assert entry.debounce["flapping"]["changes"] > 2


def test_plain_points_keep_their_exact_six_item_bytes() -> None:
    """A point without debounce sends a plain PointEntry; a debounced one the same 6 items plus the map."""
    table = table_with("plain", track_changes=True)
    table.add_point("slow", "Rack", 2.0, debounce=DebounceSettings(for_s=5.0))
    table.add_point("off", "Rack", 2.0, debounce=DebounceSettings())  # all off: no debouncer at all
    table.apply(("plain", "slow", "off"), WALL, NOW, None, (RedAlert(1), RedAlert(1), RedAlert(1)), notify_all=False)
    entries = {e.path.rsplit("/", 1)[1]: e for e in table.take_changes()}
    assert type(entries["plain"]) is proto.PointEntry
    assert type(entries["off"]) is proto.PointEntry
    assert entries["off"].alertcode == RedAlert.alertcode
    plain_bytes = proto.pack_entry(entries["plain"])
    assert msgpack.unpackb(plain_bytes) == ["Site/Rack/plain", 1, RedAlert.alertcode, "RED", WALL, 2.0]
    slow = msgpack.unpackb(proto.pack_entry(entries["slow"]))
    assert slow[:6] == ["Site/Rack/slow", 1, NoAlert.alertcode, "", WALL, 2.0]  # RED pending from the first poll
    assert slow[6] == {"raw": 30, "raw_str": "RED", "pending": {"level": 30, "since": WALL}, "flapping": None}


def test_debounce_rule_by_path_applies_to_existing_and_later_points_own_settings_win() -> None:
    table = table_with("cpu", "temp_c")
    table.add_point("own", "Rack", 2.0, debounce=DebounceSettings(for_s=99.0))

    def rule(path: str) -> DebounceSettings | None:
        return DebounceSettings(for_s=5.0) if path.startswith("Site/Rack/") else None

    table.set_debounce_rule(rule)
    table.add_point("later", "Rack", 2.0)
    table.add_parent("Elsewhere", None)
    table.add_point("outside", "Elsewhere", 2.0)
    debouncers = {name: point.debouncer for name, point in table.points.items()}
    assert debouncers["outside"] is None
    assert {name: d.settings.for_s for name, d in debouncers.items() if d is not None} == {
        "cpu": 5.0,
        "temp_c": 5.0,
        "own": 99.0,
        "later": 5.0,
    }
