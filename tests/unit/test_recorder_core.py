"""RecorderCore, policies and value encoding: pure, with `now` as an argument (no sockets, no sleeps)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gsmon.common.config import ConfigError
from gsmon.common.recorder import values
from gsmon.common.recorder.core import ContextEnded, ContextStarted, GapEvent, RecorderCore, Row, Why, to_us
from gsmon.common.recorder.policy import PathPattern, Policy, PolicyTable, read_recorder_config
from gsmon.common.recorder.times import iso, iso_us, parse_duration, parse_moment

T0 = 1_800_000_000.0


@dataclass
class Node:
    value: Any = 0.0
    alertcode: int = 0
    stale: bool = False
    kind: str = "point"
    agent: str | None = "ant1"
    polled_at_s: float | None = None
    reported_alert: int | None = None


def feed(core: RecorderCore, path: str, value: Any, now: float, **fields: Any) -> list[Row]:
    core.observe(path, Node(value=value, polled_at_s=fields.pop("polled", now), **fields), now, 0.0)
    rows, _ = core.take()
    return rows


def test_first_sight_level_change_and_every_value_change_by_default() -> None:
    core = RecorderCore()
    assert [r.why for r in feed(core, "GS1/a/x", 1.0, T0)] == [Why.FIRST]
    assert [r.why for r in feed(core, "GS1/a/x", 2.0, T0 + 1)] == [Why.VALUE]
    assert feed(core, "GS1/a/x", 2.0, T0 + 2) == []  # same value, same level: nothing
    rows = feed(core, "GS1/a/x", 2.0, T0 + 3, alertcode=30)
    assert [(r.why, r.level) for r in rows] == [(Why.LEVEL, 30)]
    assert [r.why for r in feed(core, "GS1/a/x", 2.0, T0 + 4, alertcode=30, stale=True)] == [Why.STALE]


def test_parents_are_not_recorded_and_a_removal_is_a_marker() -> None:
    core = RecorderCore()
    assert feed(core, "GS1/a", None, T0, kind="parent") == []
    feed(core, "GS1/a/x", 1.0, T0)
    core.observe("GS1/a/x", None, T0 + 5, 0.0)
    rows, _ = core.take()
    assert [(r.why, r.value) for r in rows] == [(Why.REMOVED, None)]
    assert core.points == 0


def test_deadbands_absolute_and_relative_against_the_last_saved_value() -> None:
    table = PolicyTable([(PathPattern("GS1/**"), Policy(deadband_abs=0.5, deadband_rel=0.1))])
    core = RecorderCore(table)
    feed(core, "GS1/a/x", 100.0, T0)
    assert feed(core, "GS1/a/x", 100.4, T0 + 1) == []  # inside both
    assert feed(core, "GS1/a/x", 100.8, T0 + 2) != []  # beyond the absolute 0.5 from 100.0
    assert feed(core, "GS1/a/x", 101.2, T0 + 3) == []  # 0.4 from the saved 100.8
    core2 = RecorderCore(PolicyTable([(PathPattern("**"), Policy(deadband_rel=0.1))]))
    feed(core2, "p/x", 10.0, T0)
    assert feed(core2, "p/x", 10.9, T0 + 1) == []
    assert feed(core2, "p/x", 11.5, T0 + 2) != []
    # A type change or a text change always counts.
    assert feed(core2, "p/x", "text", T0 + 3) != []


def test_throttle_keeps_the_latest_value_and_writes_it_when_the_interval_has_passed() -> None:
    core = RecorderCore(PolicyTable([(PathPattern("**"), Policy(min_interval_s=10))]))
    feed(core, "p/x", 1.0, T0)
    assert feed(core, "p/x", 2.0, T0 + 1) == []
    assert feed(core, "p/x", 3.0, T0 + 2) == []
    core.tick(T0 + 9.9)
    assert core.take()[0] == []
    core.tick(T0 + 10)
    rows, _ = core.take()
    assert [(r.why, r.value) for r in rows] == [(Why.VALUE, 3.0)]
    # A level change is written at once, whatever the throttle.
    assert [r.why for r in feed(core, "p/x", 3.0, T0 + 11, alertcode=30)] == [Why.LEVEL]


def test_heartbeat_every_save_dt_and_faster_in_a_context_whose_id_every_row_carries() -> None:
    core = RecorderCore(PolicyTable([(PathPattern("**"), Policy(save_dt_s=900, context_save_dt_s=5))]))
    feed(core, "GS1/a/x", 1.0, T0)
    core.tick(T0 + 899)
    assert core.take()[0] == []
    core.tick(T0 + 900)
    rows, _ = core.take()
    assert [(r.why, r.value, r.context) for r in rows] == [(Why.HEARTBEAT, 1.0, None)]
    core.set_context("pass", "GS1", "P123", T0 + 1000)
    rows, events = core.take()
    assert [(r.why, r.context) for r in rows] == [(Why.CONTEXT, "P123")]
    assert events == [ContextStarted("pass", "GS1", "P123", to_us(T0 + 1000))]
    core.tick(T0 + 1005)
    rows, _ = core.take()
    assert [(r.why, r.context) for r in rows] == [(Why.HEARTBEAT, "P123")]
    core.set_context("pass", "GS1", None, T0 + 1007)
    rows, events = core.take()
    assert [(r.why, r.context) for r in rows] == [(Why.CONTEXT, None)]
    assert events == [ContextEnded("pass", "GS1", "P123", to_us(T0 + 1007))]
    core.tick(T0 + 1013)
    assert core.take()[0] == []  # back to 900 s


def test_a_context_applies_only_under_its_prefix_and_the_most_specific_wins() -> None:
    core = RecorderCore()
    feed(core, "GS1/a/x", 1.0, T0)
    feed(core, "GS10/a/x", 1.0, T0)
    core.set_context("pass", "GS1", "P1", T0 + 1)
    core.set_context("maint", "GS1/a", "M7", T0 + 2)
    core.take()
    assert feed(core, "GS1/a/x", 2.0, T0 + 3)[0].context == "M7"
    assert feed(core, "GS10/a/x", 2.0, T0 + 3)[0].context is None


def test_a_gap_is_an_event_and_every_point_under_it_is_written_again() -> None:
    core = RecorderCore()
    feed(core, "GS1/a/x", 1.0, T0)
    feed(core, "GS2/a/x", 1.0, T0)
    core.gap("GS1/", T0 + 10, T0 + 20, "resync")
    _, events = core.take()
    assert events == [GapEvent("GS1/", to_us(T0 + 10), to_us(T0 + 20), "resync")]
    assert [r.why for r in feed(core, "GS1/a/x", 1.0, T0 + 21)] == [Why.FIRST]  # same value, after a gap
    assert feed(core, "GS2/a/x", 1.0, T0 + 21) == []
    core.gap("GS1/", T0 + 30, T0 + 30, "empty")
    assert core.take()[1] == []


def seed_like() -> RecorderCore:
    """Heartbeats every 10 s, value changes at most every 5 s (the seed's shape, shorter)."""
    return RecorderCore(PolicyTable([(PathPattern("**"), Policy(min_interval_s=5, save_dt_s=10))]))


def test_a_lost_hub_holds_the_heartbeats_and_a_hub_heard_again_writes_no_point_again() -> None:
    core = seed_like()
    feed(core, "GS1/a/x", 1.0, T0)
    feed(core, "GS2/a/x", 1.0, T0)
    core.suspend("GS1/")
    core.tick(T0 + 10)
    assert [r.path for r in core.take()[0]] == ["GS2/a/x"]  # no heartbeat repeats GS1's value over the outage
    # Updates still arriving are real: saved by the usual rules (a level change), never as a new FIRST.
    assert [r.why for r in feed(core, "GS1/a/x", 1.0, T0 + 11, alertcode=30)] == [Why.LEVEL]
    assert feed(core, "GS1/a/x", 1.0, T0 + 12, alertcode=30) == []
    core.tick(T0 + 25)
    assert [r.path for r in core.take()[0]] == ["GS2/a/x"]
    core.resume("GS1/")  # heard again, nothing missed: no gap, and the heartbeat that is due comes now
    core.tick(T0 + 25)
    rows, events = core.take()
    assert [(r.path, r.why) for r in rows] == [("GS1/a/x", Why.HEARTBEAT)]
    assert events == []
    assert feed(core, "GS1/a/x", 1.0, T0 + 26, alertcode=30) == []  # not written again


def test_a_throttled_change_seen_while_the_hub_is_lost_is_still_written() -> None:
    core = seed_like()
    feed(core, "GS1/a/x", 1.0, T0)
    core.suspend("GS1/")
    assert feed(core, "GS1/a/x", 2.0, T0 + 1) == []  # inside the 5 s throttle: kept
    core.tick(T0 + 6)
    assert [(r.why, r.value) for r in core.take()[0]] == [(Why.VALUE, 2.0)]


def test_a_snapshot_after_a_lost_hub_writes_every_point_again() -> None:
    core = seed_like()
    feed(core, "GS1/a/x", 1.0, T0)
    core.suspend("GS1/")
    core.gap("GS1/", T0 + 1, T0 + 30, "hub lost")
    assert [r.why for r in feed(core, "GS1/a/x", 1.0, T0 + 31)] == [Why.FIRST]
    core.tick(T0 + 41)  # held no longer: the gap released it
    assert [r.why for r in core.take()[0]] == [Why.HEARTBEAT]


def test_row_times_are_the_poll_times_and_never_repeat_for_a_path() -> None:
    core = RecorderCore()
    first = feed(core, "p/x", 1.0, T0 + 5, polled=T0)[0]
    assert first.t_us == to_us(T0)
    again = feed(core, "p/x", 1.0, T0 + 6, polled=T0, alertcode=30)[0]  # no new poll: the hub's time
    assert again.t_us == to_us(T0 + 6)
    older = feed(core, "p/x", 2.0, T0 + 7, polled=T0 + 1)[0]  # a poll older than the last row
    assert older.t_us == to_us(T0 + 7)  # no later than the hub saw it; never before the last row
    broken = feed(core, "p/y", 2.0, T0 + 8, polled=1e12)[0]  # a broken agent clock
    assert broken.t_us == to_us(T0 + 8)


def test_seed_policy_as_a_configuration_file(tmp_path: Path) -> None:
    config = tmp_path / "recorder.toml"
    config.write_text(
        """
[recorder]
prefixes = ["GS1/", "GS1/Ant1/", "GS2"]

[[policy]]
path = "GS1/*/Power/**"
deadband_abs = 0.5
min_interval_s = 1

[[policy]]
path = "**"
min_interval_s = 5          # the seed: at most every 5 s in a pass...
context_min_interval_s = 5
context_save_dt_s = 5
save_dt_s = 900             # ...and every 900 s otherwise

[retention]
raw_days = 7

[[retention.override]]
prefix = "GS1/Rack1/"
raw_days = 2
"""
    )
    settings = read_recorder_config(config)
    assert settings.prefixes == ("GS2", "GS1/")  # GS1/Ant1/ is inside GS1/
    power = settings.policies.policy_for("GS1/Ant1/Power/volts")
    assert (power.deadband_abs, power.min_interval_s) == (0.5, 1)
    seed = settings.policies.policy_for("GS1/Ant1/Drive/az_deg")
    assert seed.rules(False) == (None, None, 5, 900)
    assert seed.rules(True) == (None, None, 5, 5)
    assert settings.retention.rule_for("GS1/Rack1/t").raw_days == 2
    assert settings.retention.rule_for("GS1/Rack10/t").raw_days == 7


def test_a_bad_configuration_gets_one_line_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "recorder.toml"
    config.write_text('[[policy]]\npath = "GS1/**"\nsave_dt_s = -1\n')
    with pytest.raises(ConfigError, match=r"save_dt_s.*positive"):
        read_recorder_config(config)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        2**63 - 1,
        -5,
        1.5,
        math.inf,
        -math.inf,
        "text ✓",
        b"\x00\xff",
        [1, "a", None],
        (1, 2.5),
        {"a": [1, {"b": b"x"}]},
        dt.datetime(2026, 12, 1, 21, 49, 20, 123456, tzinfo=ZoneInfo("Europe/Berlin")),
        dt.datetime(2026, 12, 1, 21, 49, 20),  # noqa: DTZ001 -- a naive datetime is a value a point may hold
    ],
)
def test_values_are_kept_exactly_with_a_number_column_for_numbers(value: Any) -> None:
    num, val = values.split(value)
    back = values.join(num, val)
    assert back == value
    assert type(back) is type(value)
    if isinstance(value, dt.datetime):
        assert back.tzinfo == value.tzinfo if value.tzinfo is None else str(back.tzinfo) == str(value.tzinfo)
    if isinstance(value, bool | int | float):
        assert num == float(value)
    else:
        assert num is None


def test_nan_is_kept_but_not_a_number_for_aggregates() -> None:
    num, val = values.split(math.nan)
    assert num is None
    assert math.isnan(values.join(num, val))


def test_times_as_operators_type_them() -> None:
    assert parse_duration("1h30m") == 5400
    assert parse_duration("90") == 90
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration("soon")
    assert parse_moment("6h", T0) == T0 - 6 * 3600
    assert parse_moment("2026-12-01T21:49:20Z", T0) == parse_moment("2026-12-01T22:49:20+01:00", T0)
    assert parse_moment("2026-12-01 21:49:20", T0) == dt.datetime(2026, 12, 1, 21, 49, 20, tzinfo=dt.UTC).timestamp()
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_moment("yesterday-ish", T0)
    assert iso(1_796_000_000.123) == "2026-11-30T00:53:20.123Z"
    assert iso_us(1_796_000_000_123_456) == "2026-11-30T00:53:20.123456Z"
