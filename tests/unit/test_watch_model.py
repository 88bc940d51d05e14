"""The pure core of gsmon watch: the view model, the layout, the alarm-field adapter, the prompts' parsing.

No terminal, no sockets, no sleeps: nodes are made up, ``now`` is passed in.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from gsmon.common.client import NodeState
from gsmon.common.watch.adapter import AlarmSummary, read_extras
from gsmon.common.watch.commands import (
    MAX_COMMENT_CHARS,
    CommandError,
    NullCommands,
    ShelveRequest,
    check_comment,
    parse_duration,
    parse_shelve_window,
)
from gsmon.common.watch.layout import (
    cells_for,
    columns_for,
    counts_text,
    detail_lines,
    ellipsis_end,
    ellipsis_middle,
    line_text,
    status_text,
    summary_text,
    title_text,
)
from gsmon.common.watch.model import GROUP_SUFFIX, RowKind, ViewModel, covers

NOW = 1_800_000_000.0
LABELS = {0: "", 10: "GREEN", 20: "ORANGE", 30: "RED", 50: "STALE", 100: "CRITICAL"}


@dataclass(frozen=True)
class FakeNode:
    """A node as a hub with the alarm core would send it (the extra fields are optional)."""

    path: str
    kind: str = "point"
    alertcode: int = 10
    alertstr: str = "GREEN"
    stale: bool = False
    value: Any = 1.0
    agent: str | None = "ag"
    polled_at_s: float | None = NOW - 2.0
    received_at_s: float | None = NOW - 1.0
    dt_s: float | None = 1.0
    seq: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        # The operator layer's fields: present only when the test gives them.
        extra = object.__getattribute__(self, "extra")
        if name in extra:
            return extra[name]
        raise AttributeError(name)


def point(path: str, code: int = 10, value: Any = 1.0, **extra: Any) -> FakeNode:
    return FakeNode(path, "point", code, LABELS.get(code, "MAINT"), code == 50, value, extra=extra)


def parent(path: str, code: int = 10, **extra: Any) -> FakeNode:
    return FakeNode(path, "parent", code, LABELS.get(code, ""), False, None, extra=extra)


def station() -> dict[str, FakeNode | None]:
    """GS1 with a CRITICAL disk deep in Rack1, a RED lock in Antenna1, a healthy Rack2 of 35 points."""
    nodes: dict[str, FakeNode | None] = {}
    for path, code in (
        ("GS1", 100),
        ("GS1/Rack1", 100),
        ("GS1/Rack1/Disk", 100),
        ("GS1/Rack2", 10),
        ("GS1/Antenna1", 30),
        ("GS1/Antenna1/RF", 30),
        ("_hub", 10),
    ):
        nodes[path] = parent(path, code)
    nodes["GS1/Rack1/Disk/root_used_percent"] = point("GS1/Rack1/Disk/root_used_percent", 100, 99.5)
    nodes["GS1/Rack1/Disk/root_free_bytes"] = point("GS1/Rack1/Disk/root_free_bytes", 10, 1024**3)
    nodes["GS1/Rack1/Disk/root_total_bytes"] = point("GS1/Rack1/Disk/root_total_bytes", 10, 200 * 1024**3)
    nodes["GS1/Antenna1/RF/lock"] = point("GS1/Antenna1/RF/lock", 30, "ERROR ConnectionError: no reply")
    nodes["GS1/Antenna1/RF/gain_db"] = point("GS1/Antenna1/RF/gain_db", 10, 30.0)
    for index in range(35):
        path = f"GS1/Rack2/p{index:02d}_percent"
        nodes[path] = point(path, 10, float(index))
    nodes["_hub/uptime_s"] = point("_hub/uptime_s", 10, 3600.0)
    return nodes


def model_of(nodes: dict[str, FakeNode | None], mode: str = "attention") -> ViewModel:
    model = ViewModel("attention" if mode == "attention" else "full")
    model.apply(nodes, reset=True)
    return model


def keys(model: ViewModel) -> list[str]:
    return [row.key for row in model.rows]


def selected_key(model: ViewModel) -> str | None:
    row = model.selected
    return None if row is None else row.key


# ----------------------------------------------------------------------
# Order, expansion, grouping
# ----------------------------------------------------------------------


def test_attention_tree_puts_problems_first_and_collapses_the_healthy() -> None:
    """Worst first; problems expanded down to the point; Rack2 one line; healthy points folded; _hub last."""
    model = model_of(station())
    assert keys(model) == [
        "GS1",
        "GS1/Rack1",
        "GS1/Rack1/Disk",
        "GS1/Rack1/Disk/root_used_percent",
        "GS1/Rack1/Disk" + GROUP_SUFFIX,
        "GS1/Antenna1",
        "GS1/Antenna1/RF",
        "GS1/Antenna1/RF/lock",
        "GS1/Antenna1/RF/gain_db",  # one healthy point beside a problem is not folded
        "GS1/Rack2",
        "_hub",
    ]
    rack2 = model.rows[model.index_of("GS1/Rack2") or 0]
    assert rack2.kind is RowKind.PARENT
    assert not rack2.expanded
    assert rack2.expandable
    group = model.rows[4]
    assert group.kind is RowKind.GROUP
    assert group.members == ("GS1/Rack1/Disk/root_free_bytes", "GS1/Rack1/Disk/root_total_bytes")
    assert not model.rows[model.index_of("_hub") or 0].expanded


def test_full_tree_in_path_order_with_the_hubs_own_subtree_collapsed() -> None:
    model = model_of(station(), "full")
    found = keys(model)
    assert found[:4] == ["GS1", "GS1/Antenna1", "GS1/Antenna1/RF", "GS1/Antenna1/RF/gain_db"]
    assert "GS1/Rack2/p34_percent" in found
    assert found[-1] == "_hub"
    assert len(found) == len(station()) - 1  # everything but _hub's point
    assert model.toggle_mode() == "attention"
    assert keys(model)[0:2] == ["GS1", "GS1/Rack1"]


def test_expand_and_collapse_by_hand_stick_per_order() -> None:
    model = model_of(station())
    assert model.select("GS1/Rack2")
    model.expand()
    assert "GS1/Rack2/p00_percent" in keys(model)
    model.expand()  # on an open node: to its first child
    assert selected_key(model) == "GS1/Rack2/p00_percent"
    model.collapse()  # on a point: to its parent
    assert selected_key(model) == "GS1/Rack2"
    model.collapse()
    assert "GS1/Rack2/p00_percent" not in keys(model)
    assert model.select("GS1/Rack1")
    model.toggle()
    assert "GS1/Rack1/Disk" not in keys(model)
    model.set_mode("full")
    assert "GS1/Rack1/Disk" in keys(model)  # choices are per order
    model.set_mode("attention")
    assert "GS1/Rack1/Disk" not in keys(model)


def test_opening_a_group_shows_its_points_and_lands_on_the_first() -> None:
    model = model_of(station())
    assert model.select("GS1/Rack1/Disk" + GROUP_SUFFIX)
    model.toggle()
    assert "GS1/Rack1/Disk/root_free_bytes" in keys(model)
    assert selected_key(model) == "GS1/Rack1/Disk/root_free_bytes"
    model.collapse()
    assert selected_key(model) == "GS1/Rack1/Disk"


def test_cursor_stays_on_its_node_when_rows_come_and_go() -> None:
    model = model_of(station())
    assert model.select("GS1/Rack2")
    before = model.cursor
    model.apply(
        {"GS1/Rack2/p00_percent": point("GS1/Rack2/p00_percent", 100, 99.0), "GS1/Rack2": parent("GS1/Rack2", 100)}
    )
    # Rack2 is a problem now: it moved up, expanded, and the cursor moved with it.
    assert selected_key(model) == "GS1/Rack2"
    assert model.cursor != before
    assert "GS1/Rack2/p00_percent" in keys(model)
    model.apply({"GS1/Rack2": None})
    assert model.selected is not None
    model.move(-1000)
    assert model.cursor == 0
    model.move(1000)
    assert model.cursor == len(model.rows) - 1


def test_a_selected_point_that_folds_away_leaves_the_cursor_on_the_row_that_holds_it() -> None:
    """An ack (or a recovery) folds the selected point into a collapsed subtree or an ``(N ok)`` group: the
    selection follows it there, not onto whatever row now has its index (``s`` would shelve that)."""
    nodes = station()
    for name in ("a_percent", "b_percent"):
        nodes[f"GS1/Antenna1/RF/{name}"] = point(f"GS1/Antenna1/RF/{name}", 10, 1.0)
    nodes["GS1/Antenna1/RF/gain_db"] = point("GS1/Antenna1/RF/gain_db", 30, 30.0)
    model = model_of(nodes)
    assert model.select("GS1/Antenna1/RF/gain_db")
    # gain_db recovers: it folds into RF's group of healthy points, beside the RED lock.
    model.apply({"GS1/Antenna1/RF/gain_db": point("GS1/Antenna1/RF/gain_db", 10, 30.0)})
    group = model.selected
    assert group is not None
    assert group.kind is RowKind.GROUP, keys(model)
    assert "GS1/Antenna1/RF/gain_db" in group.members
    # The lock recovers too (the whole Antenna1 healthy): Antenna1 collapses around the selection.
    assert model.select("GS1/Antenna1/RF/lock")
    model.apply(
        {
            "GS1/Antenna1/RF/lock": point("GS1/Antenna1/RF/lock", 10, "ok"),
            "GS1/Antenna1/RF": parent("GS1/Antenna1/RF", 10),
            "GS1/Antenna1": parent("GS1/Antenna1", 10),
        }
    )
    assert "GS1/Antenna1/RF/lock" not in keys(model)
    assert selected_key(model) == "GS1/Antenna1", keys(model)


def test_value_changes_do_not_rebuild_the_rows() -> None:
    """Only structure (nodes, levels, attention, expansion) rebuilds the row list; values redraw."""
    model = model_of(station())
    model.rows  # noqa: B018
    built = model.rows_version
    content = model.content_version
    model.apply({"GS1/Rack2/p00_percent": point("GS1/Rack2/p00_percent", 10, 55.0)})
    model.rows  # noqa: B018
    assert model.rows_version == built
    assert model.content_version == content + 1
    model.apply({"GS1/Rack2/p00_percent": point("GS1/Rack2/p00_percent", 20, 85.0)})
    model.rows  # noqa: B018
    assert model.rows_version == built + 1


def test_counts_follow_every_change() -> None:
    model = model_of(station())
    assert model.counts_below("GS1/Rack2") == Counter({10: 35})
    assert model.point_counts() == Counter({10: 39, 30: 1, 100: 1})
    model.apply({"GS1/Rack2/p01_percent": point("GS1/Rack2/p01_percent", 30)})
    assert model.counts_below("GS1/Rack2") == Counter({10: 34, 30: 1})
    assert model.counts_below("GS1") == Counter({10: 37, 30: 2, 100: 1})
    model.apply({"GS1/Rack2/p01_percent": None, "GS1/Rack2/p02_percent": None})
    assert model.counts_below("GS1/Rack2") == Counter({10: 33})
    assert model.points_under("GS1/Rack2") == 33
    assert model.points_under("GS1/Rack2/p03_percent") == 1


def test_nodes_whose_parent_is_not_followed_are_roots() -> None:
    """A prefix subscription (GS1/Rack1/) has no GS1/Rack1 node: its children are the roots."""
    model = ViewModel()
    model.apply({"GS1/Rack1/CPU/load_1min": point("GS1/Rack1/CPU/load_1min", 30)})
    assert keys(model) == ["GS1/Rack1/CPU/load_1min"]
    model.apply({"GS1/Rack1/CPU": parent("GS1/Rack1/CPU", 30)})
    assert keys(model) == ["GS1/Rack1/CPU", "GS1/Rack1/CPU/load_1min"]
    assert [row.depth for row in model.rows] == [0, 1]
    model.apply({"GS1/Rack1/CPU": None})
    assert keys(model) == ["GS1/Rack1/CPU/load_1min"]


def test_reset_replaces_everything() -> None:
    model = model_of(station())
    model.apply({"Lab": parent("Lab"), "Lab/x": point("Lab/x")}, reset=True)
    assert len(model) == 2
    assert model.point_counts() == Counter({10: 1})


# ----------------------------------------------------------------------
# Filter
# ----------------------------------------------------------------------


def test_covers_is_segment_aware() -> None:
    assert covers("GS1/A", "GS1/A")
    assert covers("GS1/A", "GS1/A/x")
    assert covers("GS1/A/", "GS1/A/x")
    assert not covers("GS1/A", "GS1/AB")
    assert not covers("GS1/A", "GS1")
    assert covers("", "anything")


def test_filter_by_path_shows_exactly_the_matches_with_their_ancestors() -> None:
    nodes = station()
    nodes["GS1/Rack20"] = parent("GS1/Rack20")
    nodes["GS1/Rack20/x"] = point("GS1/Rack20/x")
    model = model_of(nodes)
    assert model.set_filter("GS1/Rack2") == 36  # Rack2 and its 35 points, never Rack20
    found = keys(model)
    assert found[:2] == ["GS1", "GS1/Rack2"]
    assert len(found) == 37
    assert not any(path.startswith("GS1/Rack20") for path in found)
    assert model.set_filter("GS1/Rack2/") == 36
    assert model.set_filter(None) == len(nodes)
    assert "GS1/Rack2/p00_percent" not in keys(model)


def test_filter_by_name_matches_whole_segments() -> None:
    model = model_of(station())
    assert model.set_filter("lock") == 1
    assert keys(model) == ["GS1", "GS1/Antenna1", "GS1/Antenna1/RF", "GS1/Antenna1/RF/lock"]
    assert model.set_filter("loc") == 0
    assert keys(model) == []
    assert model.set_filter("RF") == 3  # a parent's name: it and its subtree
    assert model.filter_text == "RF"
    model.set_filter("  ")
    assert model.filter_text is None


def test_a_new_node_under_the_filter_appears() -> None:
    model = model_of(station())
    model.set_filter("GS1/Antenna1")
    model.apply({"GS1/Antenna1/RF/temp_c": point("GS1/Antenna1/RF/temp_c")})
    assert "GS1/Antenna1/RF/temp_c" in keys(model)


# ----------------------------------------------------------------------
# Layout: cells, columns, summary, status, title, detail
# ----------------------------------------------------------------------


def test_collapsed_lines_read_n_ok_or_n_unknown_when_lost() -> None:
    model = model_of(station())
    columns = columns_for(80, model_rows_need := 30)
    assert model_rows_need == 30
    rack2 = model.rows[model.index_of("GS1/Rack2") or 0]
    cells = cells_for(rack2, model, columns, NOW)
    assert cells.value == "✓ 35 ok"
    assert cells.level == "✓ GREEN"
    model.set_lost(True)
    lost = cells_for(rack2, model, columns, NOW)
    assert lost.value == "? 35 unknown"
    assert lost.level == "? UNKNOWN"
    assert lost.tier == "unknown"
    assert all(cells_for(row, model, columns, NOW).level == "? UNKNOWN" for row in model.rows), (
        "every row shows the unknown level when the hub is lost"
    )
    assert "ok" not in " ".join(cells_for(row, model, columns, NOW).value for row in model.rows)


def test_point_cells_have_units_and_ellipsis() -> None:
    model = model_of(station())
    columns = columns_for(80, 40)
    lock = model.rows[model.index_of("GS1/Antenna1/RF/lock") or 0]
    cells = cells_for(lock, model, columns, NOW)
    assert cells.level == "✗ RED"
    assert cells.tier == "red"
    assert cells.problem
    assert cells.age == "1.0s"
    disk = model.rows[model.index_of("GS1/Rack1/Disk/root_used_percent") or 0]
    assert cells_for(disk, model, columns, NOW).value == "99.5%"
    model.apply({"GS1/Antenna1/RF/lock": point("GS1/Antenna1/RF/lock", 30, "ERROR " + "x" * 200)})
    cut = cells_for(lock, model, columns, NOW).value
    assert cut.endswith("…")
    assert len(cut) == columns.value
    text = line_text(cells_for(lock, model, columns, NOW), columns)
    assert len(text) == 80


@pytest.mark.parametrize("width", [20, 40, 80, 120, 160, 300])
def test_columns_fit_any_width(width: int) -> None:
    columns = columns_for(width, 60)
    assert 1 + columns.name + 1 + columns.level + 1 + columns.value + 1 + columns.age <= max(width, 20)
    assert columns.name <= max(12, int(width * 0.45))
    assert columns.value >= 1


def test_ellipses() -> None:
    assert ellipsis_end("abcdef", 4) == "abc…"
    assert ellipsis_end("abc", 4) == "abc"
    assert ellipsis_middle("short", 16) == "short"
    middle = ellipsis_middle("coretemp_Package_id_0_temp_c", 16)
    assert len(middle) == 16
    assert middle == "coretemp…_temp_c"
    assert "…" in middle


def test_summary_and_counts_texts() -> None:
    assert summary_text(Counter({10: 35}), False) == "35 ok"
    assert summary_text(Counter({10: 32, 30: 1, 20: 2, 0: 1}), False) == "1 red, 2 orange, 33 ok"
    assert summary_text(Counter({100: 1}), False) == "1 critical"
    assert summary_text(Counter({10: 3, 50: 2}), True) == "5 unknown"
    assert counts_text(Counter({10: 38, 30: 1, 100: 1}), False, 80) == "‼ 1 critical ✗ 1 red ✓ 38 ok"
    assert counts_text(Counter({10: 38, 30: 1, 100: 1}), False, 20) == "‼1 ✗1 ✓38"
    assert counts_text(Counter({10: 38}), True, 80) == "? 38 unknown"


def test_status_bar_says_where_what_and_when() -> None:
    counts = Counter({10: 38, 30: 1})
    wide = status_text("tcp://hub:7763", "connected", counts, None, NOW, 120, zone=dt.UTC)
    assert wide == " tcp://hub:7763 │ connected │ ✗ 1 red ✓ 38 ok │ updated 08:00:00"
    alarms = status_text("tcp://hub:7763", "connected", counts, 2, NOW, 120, zone=dt.UTC)
    assert "│ 2 unacked │" in alarms
    lost = status_text("tcp://hub:7763", "hub lost", counts, 2, NOW, 120, zone=dt.UTC)
    assert "│ hub lost │ ? 39 unknown" in lost
    assert "unacked" not in lost
    narrow = status_text("tcp://a-very-long-hub-name.example:7763", "connected", counts, 2, NOW, 50, zone=dt.UTC)
    assert len(narrow) <= 50
    assert "connected" in narrow


def test_title_says_hub_lost_or_waiting() -> None:
    model = model_of(station())
    assert "HUB LOST" in title_text("tcp://h:1", "GS1/", model, "hub lost", "", 200)
    assert "UNKNOWN" in title_text("tcp://h:1", "GS1/", model, "hub lost", "", 200)
    assert title_text("tcp://h:1", "", model, "waiting", "no answer", 200).startswith(
        " waiting for the hub at tcp://h:1: no answer"
    )
    connected = title_text("tcp://h:1", "", model, "connected", "", 200)
    assert "‼ CRITICAL" in connected
    assert "attention tree" in connected
    model.set_filter("lock")
    assert "filter 'lock'" in title_text("tcp://h:1", "", model, "connected", "", 200)


def test_detail_pane_has_everything_and_cuts_nothing() -> None:
    long_error = "ERROR Traceback (most recent call last):\n" + "  frame\n" * 40 + "RuntimeError: " + "x" * 300
    nodes = station()
    nodes["GS1/Antenna1/RF/lock"] = point("GS1/Antenna1/RF/lock", 30, long_error)
    model = model_of(nodes)
    row = model.rows[model.index_of("GS1/Antenna1/RF/lock") or 0]
    lines = dict(detail_lines(row, model, NOW))
    assert lines["Path"] == "GS1/Antenna1/RF/lock"
    assert lines["Value"] == long_error
    assert lines["Level"] == "✗ RED (30)"
    assert lines["Agent"] == "ag"
    assert lines["Poll interval"] == "1 s"
    assert lines["Age at the hub"] == "1 s"
    assert lines["Polled at"].endswith("(2 s ago)")
    assert lines["Since"] == "not sent by this hub"
    model.set_lost(True)
    assert dict(detail_lines(row, model, NOW))["Level"].startswith("? UNKNOWN")
    group = model.rows[model.index_of("GS1/Rack1/Disk" + GROUP_SUFFIX) or 0]
    assert detail_lines(group, model, NOW)[0] == ("Group", "2 healthy points of GS1/Rack1/Disk")


# ----------------------------------------------------------------------
# The adapter: alarm fields, read defensively (synthetic nodes from a hub with the alarm core)
# ----------------------------------------------------------------------

ALARM = {
    "id": 17,
    "state": "active_unacked",
    "level": 30,
    "max_level": 100,
    "latch": True,
    "reason": "level RED",
    "raised_at": NOW - 60,
    "rtn_at": None,
    "acked_by": None,
    "acked_at": None,
    "ack_comment": None,
    "shelf_id": None,
}


def test_read_extras_of_a_node_with_every_field() -> None:
    node = point(
        "GS1/a",
        30,
        attention=30,
        alarm=ALARM,
        since=NOW - 60,
        raw_alert=20,
        pending={"level": 30, "since": NOW - 5},
        flapping={"since": NOW - 100, "changes": 7},
        shelf_id=None,
    )
    extras = read_extras(node)
    assert extras.known
    assert extras.attention == 30
    assert extras.alarm == AlarmSummary(17, "active_unacked", 30, 100, True, "level RED", NOW - 60)
    assert extras.alarm is not None
    assert extras.alarm.unacked
    assert extras.since == NOW - 60
    assert extras.raw_alert == 20
    assert extras.pending is not None
    assert extras.pending.level == 30
    assert extras.flapping is not None
    assert extras.flapping.changes == 7


def test_read_extras_tolerates_absent_and_malformed_fields() -> None:
    """Today's NodeState has none of them; a garbled one is "not known", never an error."""
    today = NodeState("GS1/a", "point", 10, "GREEN", False, 1, "ag", NOW, NOW, 1.0, 1)
    assert not read_extras(today).known
    odd = point(
        "GS1/a",
        attention="high",
        alarm={"id": "x"},
        since="not a time",
        raw_alert=True,
        pending=[1],
        flapping=5,
        shelf_id=2.5,
        shelved_below=-1,
    )
    extras = read_extras(odd)
    assert (extras.attention, extras.alarm, extras.since, extras.raw_alert, extras.pending, extras.flapping) == (
        None,
        None,
        None,
        None,
        None,
        None,
    )
    assert extras.shelf_id is None
    assert extras.shelved_below == -1
    iso = read_extras({"since": "2026-12-01T21:49:20.123Z", "alarm": {"id": 3, "state": "cleared"}})
    assert iso.since == dt.datetime(2026, 12, 1, 21, 49, 20, 123000, tzinfo=dt.UTC).timestamp()
    assert iso.alarm is not None
    assert not iso.alarm.unacked


def test_the_unacked_count_is_the_badges_a_removed_points_latched_alarm_included() -> None:
    """From a hub with its alarm layer (``since`` on every node) the status bar counts what the roots'
    unacked_below count: the latched alarm of a point since removed is in it (the alarm list shows it) though
    no node of the tree carries it; an absent unacked_below is 0 there."""
    nodes: dict[str, FakeNode | None] = {
        "GS1": parent("GS1", 10, since=NOW, attention=50, unacked_below=2),
        "GS1/Rack1": parent(
            "GS1/Rack1", 10, since=NOW, attention=50, unacked_below=2, alarm={**ALARM, "id": 8, "state": "rtn_unacked"}
        ),
        "GS1/Rack1/spare": point("GS1/Rack1/spare", 10, since=NOW),
        "_hub": parent("_hub", 10, since=NOW),
    }
    model = model_of(nodes)
    assert model.unacked_count() == 2  # (one node carries an alarm: the other is the removed point's)
    model.apply({"GS1": parent("GS1", 10, since=NOW), "GS1/Rack1": parent("GS1/Rack1", 10, since=NOW)})
    assert model.unacked_count() == 0


def test_attention_drives_order_and_expansion_once_the_hub_sends_it() -> None:
    """An acknowledged RED parent (attention 0) stays collapsed; a second RED under it (unacked) shows."""
    nodes: dict[str, FakeNode | None] = {
        "GS1": parent("GS1", 30, attention=30, unacked_below=1),
        "GS1/Acked": parent("GS1/Acked", 30, attention=0, shelved_below=0),
        "GS1/Acked/a": point("GS1/Acked/a", 30, attention=0, alarm={**ALARM, "id": 1, "state": "active_acked"}),
        "GS1/Second": parent("GS1/Second", 30, attention=30),
        "GS1/Second/b": point("GS1/Second/b", 30, attention=30, alarm={**ALARM, "id": 2}),
        "GS1/Ok": parent("GS1/Ok", 10, attention=0),
        "GS1/Ok/c": point("GS1/Ok/c", 10, attention=0),
    }
    model = model_of(nodes)
    assert keys(model) == ["GS1", "GS1/Second", "GS1/Second/b", "GS1/Acked", "GS1/Ok"]
    assert model.unacked_count() == 1
    assert model.unacked_ids("GS1") == [2]
    assert model.unacked_ids("GS1/Acked") == []
    columns = columns_for(100, 30)
    acked = cells_for(model.rows[3], model, columns, NOW)
    assert acked.level == "✗ RED"  # the level is still shown...
    assert acked.tier == "none"  # ...but not loud: nobody needs to look (coloured by attention)
    assert acked.value == "✗ 1 red"
    second = cells_for(model.rows[2], model, columns, NOW)
    assert second.tier == "red"
    assert second.problem


def test_a_point_whose_alarm_waits_for_an_ack_is_marked_in_monochrome_too() -> None:
    """Back to GREEN but unacked: the level word says GREEN, the colour (attention) says RED; a monochrome
    terminal shows no colour, so the line also carries ``!`` before the name. Acked, or the hub lost: none."""
    rtn = {**ALARM, "state": "rtn_unacked"}
    nodes: dict[str, FakeNode | None] = {
        "GS1": parent("GS1", 10, attention=30, unacked_below=1),
        "GS1/lock": point("GS1/lock", 10, attention=30, alarm=rtn),
        "GS1/gain_db": point("GS1/gain_db", 30, attention=0, alarm={**ALARM, "id": 2, "state": "active_acked"}),
        "GS1/temp_c": point("GS1/temp_c", 10, attention=0),
        # Unacked but shelved: silenced (attention 0), so no mark either.
        "GS1/fan_rpm": point("GS1/fan_rpm", 30, attention=0, alarm={**ALARM, "id": 3, "shelf_id": 4}, shelf_id=4),
    }
    model = model_of(nodes)
    columns = columns_for(100, 30)

    def cells(path: str) -> Any:
        index = model.index_of(path)
        assert index is not None, keys(model)
        return cells_for(model.rows[index], model, columns, NOW)

    lock = cells("GS1/lock")
    assert (lock.name, lock.level, lock.tier) == ("  ! lock", "✓ GREEN", "red")
    assert cells("GS1/gain_db").name == "    gain_db"
    assert cells("GS1/fan_rpm").name == "    fan_rpm"
    assert cells("GS1").name.startswith("▾ GS1")
    model.set_lost(True)
    assert cells("GS1/lock").name == "    lock"


def test_without_alarm_fields_attention_falls_back_to_the_level() -> None:
    model = model_of(station())
    assert model.unacked_count() is None
    assert model.unacked_ids("") == []
    assert model.is_problem("GS1/Antenna1")
    assert not model.is_problem("GS1/Rack2")


def test_detail_pane_shows_alarm_shelf_pending_flapping() -> None:
    alarm = {**ALARM, "state": "active_acked", "acked_by": "ops", "acked_at": NOW - 30, "ack_comment": "on it"}
    nodes = {
        "GS1": parent("GS1", 30, attention=0, shelved_below=1, unacked_below=0),
        "GS1/a": point(
            "GS1/a",
            30,
            attention=0,
            alarm=alarm,
            since=NOW - 60,
            raw_alert=20,
            pending={"level": 30, "since": NOW - 5},
            flapping={"since": NOW - 100, "changes": 7},
            shelf_id=4,
        ),
    }
    model = model_of(nodes)
    model.select("GS1")
    model.expand()
    lines = dict(detail_lines(model.rows[model.index_of("GS1/a") or 0], model, NOW))
    assert lines["Raw level"] == "▲ ORANGE (20)"
    assert lines["Attention"] == "none"
    assert lines["Since"].endswith("(1m 0s ago)")
    assert lines["Alarm"].startswith("#17 active acked, ✗ RED (30), worst ‼ CRITICAL (100), latched")
    assert "acknowledged by ops" in lines["Alarm"]
    assert lines["Alarm"].endswith(": on it")
    assert lines["Shelf"] == "shelved by shelf #4"
    assert lines["Pending"].startswith("✗ RED (30) since")
    assert lines["Flapping"].endswith(", 7 changes")
    parent_lines = dict(detail_lines(model.rows[0], model, NOW))
    assert parent_lines["Shelved below"] == "1"
    assert parent_lines["Unacked below"] == "0"


# ----------------------------------------------------------------------
# Commands: the null implementation and the prompts' parsing
# ----------------------------------------------------------------------


def test_null_commands_are_a_viewer_and_say_not_available() -> None:
    commands = NullCommands()
    assert commands.role == "viewer"
    for call in (
        lambda: commands.ack([1], "x"),
        lambda: commands.shelve(ShelveRequest("GS1", "timed", "x", duration_s=60)),
        lambda: commands.alarms("GS1"),
        lambda: commands.journal("GS1", NOW),
    ):
        with pytest.raises(CommandError, match="not available on this hub"):
            call()


def test_comment_rule() -> None:
    assert check_comment("  on it ") == "on it"
    with pytest.raises(ValueError, match="comment is required"):
        check_comment("   ")
    with pytest.raises(ValueError, match=f"at most {MAX_COMMENT_CHARS}"):
        check_comment("x" * (MAX_COMMENT_CHARS + 1))


@pytest.mark.parametrize(("text", "seconds"), [("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("1d", 86400), ("45", 45)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5m", "0", "2x", "h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(text)


def test_parse_shelve_window() -> None:
    zone = dt.UTC
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=zone).timestamp()
    at = lambda hour, day=1: dt.datetime(2026, 12, day, hour, 0, tzinfo=zone).timestamp()  # noqa: E731
    assert parse_shelve_window("2h", now, zone) == ("timed", 7200.0, None, None)
    assert parse_shelve_window("normal", now, zone) == ("until_normal", None, None, None)
    assert parse_shelve_window("Until Normal", now, zone) == ("until_normal", None, None, None)
    assert parse_shelve_window("until 18:00", now, zone) == ("timed", None, None, at(18))
    assert parse_shelve_window("until 08:00", now, zone) == ("timed", None, None, at(8, 2))  # tomorrow
    assert parse_shelve_window("18:00-20:00", now, zone) == ("scheduled", None, at(18), at(20))
    assert parse_shelve_window("22:00-02:00", now, zone) == ("scheduled", None, at(22), at(2, 2))
    assert parse_shelve_window("from 2026-12-02T06:00 to 2026-12-02T07:00", now, zone) == (
        "scheduled",
        None,
        at(6, 2),
        at(7, 2),
    )
    for bad in ("later", "until 25:00", "from 2026-12-02T07:00 to 2026-12-02T06:00"):
        with pytest.raises(ValueError, match="expected"):
            parse_shelve_window(bad, now, zone)


def test_a_slotted_node_type_with_the_fields_is_read() -> None:
    """The integrator adds the fields to NodeState (a slotted dataclass): the adapter reads them."""

    @dataclass(frozen=True, slots=True)
    class NodeWithAlarms:
        path: str
        attention: int | None = None
        alarm: dict[str, Any] | None = None

    extras = read_extras(NodeWithAlarms("GS1/a", 30, {"id": 5, "state": "rtn_unacked"}))
    assert extras.attention == 30
    assert extras.alarm is not None
    assert extras.alarm.unacked
    today = NodeState("GS1/a", "point", 10, "GREEN", False, 1, "ag", NOW, NOW, 1.0, 1)
    assert read_extras(today) is read_extras(today)  # the shared empty answer: no work per update


def test_read_extras_of_slotted_nodes_one_read_or_field_by_field() -> None:
    """A NodeState is read in one go; a slotted node with a slot left unset is read field by field."""
    from gsmon.common.watch.adapter import FIELDS

    full = NodeState("GS1/a", "point", 30, "RED", False, 1, "ag", NOW, NOW, 1.0, 1, attention=30, since=NOW - 5)
    assert read_extras(full).attention == 30
    assert read_extras(full).since == NOW - 5

    class Partial:
        __slots__ = ("path", "kind", "alertcode", "alertstr", "stale", *FIELDS)

    node = Partial()
    node.attention = 20  # the other fields' slots are never set: reading them raises AttributeError
    extras = read_extras(node)
    assert extras.attention == 20
    assert extras.alarm is None


def test_take_changed_names_the_changed_lines_and_their_counting_parents() -> None:
    from gsmon.common.clone import NodeState

    def state(path: str, code: int, value: object = 1, kind: str = "point") -> NodeState:
        return NodeState(path, kind, code, "", False, value, "ag", NOW, NOW, 1.0, 1)

    model = ViewModel()
    model.apply({"A": state("A", 10, None, "parent"), "A/b": state("A/b", 10), "A/c": state("A/c", 10)}, reset=True)
    assert model.take_changed() is None, "a reset: every line"
    assert model.take_changed() == set()
    model.apply({"A/b": state("A/b", 10, 2)})
    assert model.take_changed() == {"A/b"}, "a value: its own line only"
    model.apply({"A/c": state("A/c", 30)})
    assert model.take_changed() == {"A/c", "A", ""}, "a level: the parents' counts too"
    model.set_lost(True)
    assert model.take_changed() is None
