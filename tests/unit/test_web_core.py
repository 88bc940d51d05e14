"""The web bridge's pure core (common/web/core.py), node JSON (nodes.py), metrics (metrics.py).

No sockets, no sleeps."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from web_support import NOW, Node

from gsmon.common.web.app import iso_times
from gsmon.common.web.core import STATUS_EVERY_S, BridgeCore, tier_of
from gsmon.common.web.metrics import BridgeFacts, render_metrics
from gsmon.common.web.nodes import iso_utc, jsonable, node_json, parse_level, wall_of_iso


def messages(out: dict[int, list[str]], client: int) -> list[dict[str, Any]]:
    return [json.loads(text) for text in out.get(client, [])]


def test_snapshot_then_coalesced_deltas_with_epoch_and_seq() -> None:
    core = BridgeCore("tcp://hub:7763")
    core.apply({"GS1": Node("GS1", kind="parent", value=None), "GS1/a": Node("GS1/a")}, reset=True)
    snapshot = json.loads(core.subscribe(1, "", None, NOW))
    assert snapshot["type"] == "snapshot"
    assert snapshot["seq"] == 0
    assert [node["path"] for node in snapshot["nodes"]] == ["GS1", "GS1/a"]
    core.flush(NOW)  # the status that follows any snapshot's counts
    # Three updates of one point between two flushes: one delta holding the latest.
    for value in (2.0, 3.0, 4.0):
        core.apply({"GS1/a": Node("GS1/a", value=value)})
    (delta,) = [m for m in messages(core.flush(NOW + 0.1), 1) if m["type"] == "delta"]
    assert delta["epoch"] == snapshot["epoch"]
    assert [node["value"] for node in delta["nodes"]] == [4.0]
    assert delta["removed"] == []
    # Removal is a delta too, with the next seq.
    core.apply({"GS1/a": None})
    (removal,) = [m for m in messages(core.flush(NOW + 0.2), 1) if m["type"] == "delta"]
    assert removal["removed"] == ["GS1/a"]
    assert removal["seq"] == delta["seq"] + 1


def test_an_unchanged_update_sends_nothing_but_status_comes_every_second() -> None:
    core = BridgeCore()
    core.apply({"a": Node("a")}, reset=True)
    core.subscribe(1, "", None, NOW)
    core.flush(NOW)
    core.apply({"a": Node("a")})  # the same node again
    assert core.flush(NOW + 0.1) == {}
    status = messages(core.flush(NOW + STATUS_EVERY_S + 0.1), 1)
    assert [m["type"] for m in status] == ["status"]


def test_prefix_is_segment_aware_and_min_level_moves_nodes_in_and_out() -> None:
    core = BridgeCore()
    core.apply({"GS1/Ant1/x": Node("GS1/Ant1/x"), "GS1/Ant10/x": Node("GS1/Ant10/x")}, reset=True)
    snapshot = json.loads(core.subscribe(1, "GS1/Ant1", 20, NOW))
    assert snapshot["nodes"] == []  # GREEN is below ORANGE; Ant10 is not under Ant1
    core.flush(NOW)
    core.apply({"GS1/Ant1/x": Node("GS1/Ant1/x", alertcode=30, alertstr="RED")})
    core.apply({"GS1/Ant10/x": Node("GS1/Ant10/x", alertcode=30, alertstr="RED")})
    (delta,) = [m for m in messages(core.flush(NOW + 0.1), 1) if m["type"] == "delta"]
    assert [node["path"] for node in delta["nodes"]] == ["GS1/Ant1/x"]
    core.apply({"GS1/Ant1/x": Node("GS1/Ant1/x")})  # back to GREEN: leaves the view
    (delta,) = [m for m in messages(core.flush(NOW + 0.2), 1) if m["type"] == "delta"]
    assert delta["nodes"] == []
    assert delta["removed"] == ["GS1/Ant1/x"]


def test_reset_removes_what_the_new_tree_lacks() -> None:
    core = BridgeCore()
    core.apply({"a": Node("a"), "b": Node("b")}, reset=True)
    core.apply({"b": Node("b")}, reset=True)
    assert core.entry("a") is None
    assert core.entry("b") is not None


def test_a_gap_skips_a_seq_so_the_client_resnapshots() -> None:
    core = BridgeCore()
    core.apply({"a": Node("a")}, reset=True)
    core.subscribe(1, "", None, NOW)
    before = core.subscription(1)
    assert before is not None
    seq = before.seq
    core.gap(1)
    core.apply({"a": Node("a", value=9)})
    delta = next(m for m in messages(core.flush(NOW), 1) if m["type"] == "delta")
    assert delta["seq"] == seq + 2  # the page sees seq jump by two and subscribes again
    again = json.loads(core.subscribe(1, "", None, NOW))
    assert again["epoch"] != delta["epoch"]
    assert again["seq"] == 0


def test_status_counts_levels_unacked_and_the_hub_link() -> None:
    core = BridgeCore("tcp://hub:7763")
    alarm = {"id": 7, "state": "active_unacked", "level": 30, "raised_at": NOW - 60}
    core.apply(
        {
            "r": Node("r", alertcode=30, alertstr="RED", extra={"alarm": alarm, "attention": 30}),
            "s": Node("s", stale=True, alertcode=50, alertstr="STALE", extra={"shelf_id": 3}),
            "g": Node("g"),
        },
        reset=True,
    )
    core.set_hub("hub lost", "no heartbeat", clock_offset_s=2.0)
    status = core.status(NOW)
    assert status["state"] == "hub lost"
    assert status["points"] == 3
    assert status["by_tier"] == {"green": 1, "red": 1, "stale": 1}
    assert status["unacked"] == 1
    assert status["shelved"] == 1
    assert status["now"] == iso_utc(NOW + 2.0)


def test_status_unacked_counts_what_the_trees_badges_count_a_removed_points_alarm_included() -> None:
    """The hub's unacked_below on each top-level node counts every unacknowledged, unshelved alarm at or below
    it, a removed point's latched one too (the alarm table lists it; no node of the tree carries it): the
    status bar says the same number (it said 1 beside a table of 2)."""
    core = BridgeCore()
    silent = {"id": 8, "state": "rtn_unacked", "level": 0, "max_level": 50, "raised_at": NOW - 9}
    core.apply(
        {
            "GS1": Node("GS1", kind="parent", value=None, extra={"since": NOW, "unacked_below": 2}),
            "GS1/Rack1": Node(
                "GS1/Rack1", kind="parent", value=None, extra={"since": NOW, "alarm": silent, "unacked_below": 2}
            ),
            "GS1/Rack1/spare": Node("GS1/Rack1/spare", extra={"since": NOW}),
            "_hub": Node("_hub", kind="parent", value=None, extra={"since": NOW}),
        },
        reset=True,
    )
    assert core.status(NOW)["unacked"] == 2
    core.apply(  # both acked (and so cleared): an absent unacked_below is 0 from a hub that sends since
        {
            "GS1": Node("GS1", kind="parent", value=None, extra={"since": NOW}),
            "GS1/Rack1": Node("GS1/Rack1", kind="parent", value=None, extra={"since": NOW}),
        }
    )
    assert core.status(NOW)["unacked"] == 0


def test_node_json_is_exact_with_iso_times_and_human_text() -> None:
    node = Node("GS1/Rack1/temp_c", value=41.5, extra={"since": NOW - 30, "pending": {"level": 20, "since": NOW}})
    body = node_json(node)
    assert body["value"] == 41.5
    assert body["text"].startswith("41.5")
    assert body["polled_at"] == iso_utc(NOW - 1)
    assert body["polled_at"].endswith("Z")
    assert body["since"] == iso_utc(NOW - 30)
    assert body["pending"] == {"level": 20, "level_str": "ORANGE", "since": iso_utc(NOW)}
    assert body["word"] == "GREEN"
    assert body["level"] == 10
    stale = node_json(Node("x", stale=True, alertcode=50, alertstr="STALE"))
    assert stale["word"] == "STALE"
    assert stale["level"] == 50
    json.dumps(body, allow_nan=False)


def test_jsonable_and_times() -> None:
    assert jsonable(math.nan) == "NaN"
    assert jsonable(-math.inf) == "-Infinity"
    assert jsonable(b"\x00\x01") == "AAE="
    assert iso_utc(0.0) == "1970-01-01T00:00:00.000Z"
    assert wall_of_iso("2026-12-01T21:49:20.123Z") == pytest.approx(wall_of_iso("2026-12-01T22:49:20.123+01:00"))
    with pytest.raises(ValueError, match="ISO 8601"):
        wall_of_iso("yesterday")
    assert iso_times({"entries": [{"time": 0, "value": 3, "acked": True}]}) == {
        "entries": [{"time": "1970-01-01T00:00:00.000Z", "value": 3, "acked": True}]
    }


def test_every_time_of_the_hubs_alarms_shelves_and_journal_is_rendered_iso() -> None:
    """The hub's records hold their times as epoch seconds (float fields): the bridge renders each as ISO 8601
    (``level_since`` once went out as a bare number)."""
    import dataclasses

    from gsmon.common.web.app import TIME_KEYS
    from gsmon.hub.alarms import Alarm, JournalEntry, Shelf

    fields = [(field.name, str(field.type)) for record in (Alarm, Shelf) for field in dataclasses.fields(record)]
    # (a NamedTuple's annotations are ForwardRefs under `from __future__ import annotations`)
    fields += [
        (name, getattr(kind, "__forward_arg__", str(kind))) for name, kind in JournalEntry.__annotations__.items()
    ]
    times = {name for name, kind in fields if kind in ("float", "float | None")}
    assert {"level_since", "raised_at", "created_at", "hub_time"} <= times
    assert times <= TIME_KEYS, times - TIME_KEYS
    assert iso_times({"level_since": 0.0}) == {"level_since": "1970-01-01T00:00:00.000Z"}


def test_levels() -> None:
    assert parse_level("orange") == 20
    assert parse_level("30") == 30
    assert parse_level(None) is None
    with pytest.raises(ValueError, match="min_level must be"):
        parse_level("purple")
    assert [tier_of(code) for code in (0, 10, 20, 30, 50, 100)] == [
        "none",
        "green",
        "orange",
        "red",
        "stale",
        "critical",
    ]


def _facts() -> BridgeFacts:
    return BridgeFacts(hub_time_s=NOW, hub_connected=True, clients=2, updates_total=10)


def test_metrics_families_labels_and_no_timestamps() -> None:
    core = BridgeCore()
    weird = 'GS1/a "quoted"\\path'
    core.apply(
        {
            weird: Node(weird, alertcode=30, alertstr="RED", value=True),
            "GS1/text": Node("GS1/text", value="hello"),
            "_hub/agents/rack1": Node("_hub/agents/rack1", agent="_hub", value="live"),
            "_hub/uptime_s": Node("_hub/uptime_s", agent="_hub", value=12.5, alertcode=0),
            "GS1/st": Node(
                "GS1/st",
                stale=True,
                alertcode=50,
                alertstr="STALE",
                extra={"alarm": {"id": 1, "state": "active_acked"}},
            ),
        },
        reset=True,
    )
    text = render_metrics(core.entries(), _facts()).decode()
    assert 'gsmon_alert_level{agent="rack1",kind="point",path="GS1/a \\"quoted\\"\\\\path"} 30.0' in text
    assert 'gsmon_value{agent="rack1",path="GS1/a \\"quoted\\"\\\\path"} 1.0' in text
    assert 'path="GS1/text"' in text
    assert 'gsmon_value{agent="rack1",path="GS1/text"}' not in text
    assert 'gsmon_agent_up{agent="rack1"} 1.0' in text
    assert "gsmon_hub_uptime_seconds 12.5" in text
    assert 'gsmon_stale{path="GS1/st"} 1.0' in text
    assert 'gsmon_alarm_open{path="GS1/st",shelved="false",state="active_acked"} 1.0' in text
    assert 'gsmon_age_seconds{path="GS1/text"} 0.5' in text
    assert "gsmon_metrics_truncated 0.0" in text
    for line in text.splitlines():
        if line and not line.startswith("#"):
            sample = line.rsplit("}", 1)[1].strip() if "{" in line else line.split(" ", 1)[1]
            assert " " not in sample, f"a timestamp after the value: {line}"


def test_metrics_series_cap_and_prefix() -> None:
    core = BridgeCore()
    core.apply({f"GS1/p{i}": Node(f"GS1/p{i}") for i in range(100)} | {"GS2/q": Node("GS2/q")}, reset=True)
    capped = render_metrics(core.entries(), _facts(), max_series=50).decode()
    assert "gsmon_metrics_truncated 1.0" in capped
    assert capped.count("gsmon_alert_level{") < 100
    only = render_metrics(core.entries("GS2/", None), _facts()).decode()
    assert 'path="GS2/q"' in only
    assert "GS1/p1" not in only
