"""Threshold rules: levels, hysteresis, matching, odd values, and the Monitor hook."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gsmon.agent import Monitor
from gsmon.agent.thresholds import Threshold, ThresholdRule
from gsmon.common.alerts import Alert, CriticalAlert, GreenAlert, NoAlert, OrangeAlert, RedAlert

CPU = "CPU/cpu_total_percent"


def levels(rule: ThresholdRule, path: str, values: Sequence[Any]) -> list[str]:
    """The label of each value's level, fed in order ("NONE" for NoAlert)."""
    return [rule.apply(path, value).alertstr or "NONE" for value in values]


def cpu_rule(**kwargs: Any) -> ThresholdRule:
    settings: dict[str, Any] = {"orange": 70.0, "red": 90.0, "hysteresis": 2.0} | kwargs
    return ThresholdRule([Threshold(CPU, **settings)])


class TestLevels:
    def test_each_band_gets_its_level(self) -> None:
        """Below orange is Green; at a threshold the level is that threshold's."""
        rule = cpu_rule(critical=99.0, hysteresis=0.0)
        assert levels(rule, CPU, [10.0, 70.0, 89.9, 90.0, 99.0]) == ["GREEN", "ORANGE", "ORANGE", "RED", "CRITICAL"]

    def test_rises_at_once_even_skipping_levels(self) -> None:
        """A jump from Green straight past red is Red immediately."""
        assert levels(cpu_rule(), CPU, [5.0, 95.0]) == ["GREEN", "RED"]

    def test_below_direction_is_the_mirror_image(self) -> None:
        """For free space, low values are bad."""
        rule = ThresholdRule([Threshold("Disk/root_free_percent", orange=20, red=10, direction="below")])
        assert levels(rule, "Disk/root_free_percent", [50, 20, 15, 10, 3, 30]) == [
            "GREEN",
            "ORANGE",
            "ORANGE",
            "RED",
            "RED",
            "GREEN",
        ]

    def test_only_red(self) -> None:
        """Any one level may be used alone."""
        rule = ThresholdRule([Threshold("x", red=5)])
        assert levels(rule, "x", [4, 5, 6, 4]) == ["GREEN", "RED", "RED", "GREEN"]

    def test_ints_are_numbers(self) -> None:
        """Integer values (bytes, counts) are judged like floats."""
        rule = ThresholdRule([Threshold("rss_bytes", orange=1_000_000, red=2_000_000)])
        assert levels(rule, "rss_bytes", [999_999, 1_000_000, 3_000_000]) == ["GREEN", "ORANGE", "RED"]

    def test_infinities_are_extremes(self) -> None:
        """+inf is past every threshold, -inf below every one."""
        assert levels(cpu_rule(), CPU, [math.inf, -math.inf]) == ["RED", "GREEN"]


class TestHysteresis:
    def test_hovering_at_a_threshold_does_not_flap(self) -> None:
        """A value jittering around red within the hysteresis band stays Red."""
        hovering = [90.1, 89.5, 90.0, 88.3, 89.9, 88.01, 90.2, 88.0]
        assert levels(cpu_rule(), CPU, hovering) == ["RED"] * len(hovering)

    def test_without_hysteresis_the_same_sequence_flaps(self) -> None:
        """The control experiment: hysteresis 0 follows every crossing."""
        assert levels(cpu_rule(hysteresis=0.0), CPU, [90.1, 89.5, 90.0, 88.3]) == ["RED", "ORANGE", "RED", "ORANGE"]

    def test_leaving_needs_the_full_margin(self) -> None:
        """Red is left just past red - hysteresis, Orange just past orange - hysteresis."""
        assert levels(cpu_rule(), CPU, [91, 88.0, 87.99, 68.0, 67.99]) == ["RED", "RED", "ORANGE", "ORANGE", "GREEN"]

    def test_big_drop_falls_to_the_right_level(self) -> None:
        """From Critical straight to a mid value lands on that value's level."""
        rule = cpu_rule(critical=99.0)
        assert levels(rule, CPU, [99.5, 80.0, 10.0]) == ["CRITICAL", "ORANGE", "GREEN"]

    def test_below_direction_hysteresis(self) -> None:
        """For "below", the value must rise past the threshold plus the margin."""
        rule = ThresholdRule([Threshold("free", orange=20, red=10, direction="below", hysteresis=2)])
        assert levels(rule, "free", [9, 11, 12, 12.01, 21, 22.01]) == ["RED", "RED", "RED", "ORANGE", "ORANGE", "GREEN"]

    def test_state_is_per_point(self) -> None:
        """Two points matched by one pattern keep separate levels."""
        rule = ThresholdRule([Threshold("CPU/cpu*_percent", orange=70, red=90, hysteresis=5)])
        assert rule.apply("CPU/cpu0_percent", 95) is RedAlert
        assert rule.apply("CPU/cpu1_percent", 88) is OrangeAlert
        assert rule.apply("CPU/cpu0_percent", 88) is RedAlert

    def test_reset_forgets_levels(self) -> None:
        """After reset a point is judged afresh."""
        rule = cpu_rule()
        rule.apply(CPU, 95)
        rule.reset(CPU)
        assert rule.apply(CPU, 89) is OrangeAlert
        rule.apply(CPU, 95)
        rule.reset()
        assert rule.apply(CPU, 89) is OrangeAlert

    @given(st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=50))
    def test_level_never_more_than_one_margin_off(self, values: list[float]) -> None:
        """Whatever the history, the level is between the plain level of the
        value and the plain level of the value plus the hysteresis."""
        rule = cpu_rule()
        for value in values:
            got = rule.apply(CPU, value).alertcode
            assert _plain_code(value) <= got <= _plain_code(value + 2.0)


def _plain_code(value: float) -> int:
    """The level with no history and no hysteresis (orange 70, red 90)."""
    if value >= 90:
        return RedAlert.alertcode
    if value >= 70:
        return OrangeAlert.alertcode
    return GreenAlert.alertcode


class TestValuesThatAreNotJudged:
    @pytest.mark.parametrize("value", [True, False, None, "95", math.nan, [95], b"9"])
    def test_non_numbers_get_no_alert(self, value: Any) -> None:
        """bool is not a number here, nor are NaN, None, text or lists."""
        assert cpu_rule().apply(CPU, value) is NoAlert

    def test_nan_keeps_the_remembered_level(self) -> None:
        """A missing reading does not reset the hysteresis."""
        assert levels(cpu_rule(), CPU, [95, math.nan, None, True, 89]) == ["RED", "NONE", "NONE", "NONE", "RED"]

    def test_unmatched_points_get_no_alert(self) -> None:
        """Points no threshold names are left alone."""
        assert cpu_rule().apply("Memory/memory_used_percent", 99.0) is NoAlert


class TestMatching:
    @pytest.mark.parametrize(
        ("pattern", "path", "expected"),
        [
            ("CPU/cpu_total_percent", "CPU/cpu_total_percent", True),
            ("CPU/cpu_total_percent", "Other/cpu_total_percent", False),
            ("cpu_total_percent", "CPU/cpu_total_percent", True),  # bare name: any parent
            ("*_temp_c", "Sensors/coretemp_Core_0_temp_c", True),
            ("Disk/*_used_percent", "Disk/var_log_used_percent", True),
            ("Disk/*_used_percent", "Disk/root_free_bytes", False),
            ("cpu?_percent", "CPU/cpu3_percent", True),
            ("cpu?_percent", "CPU/cpu12_percent", False),
            ("CPU/cpu[0-1]_percent", "CPU/cpu1_percent", True),
            ("cpu", "CPU/cpu_total_percent", False),  # whole names only
            ("CPU/*", "CPU/cpu_total_percent", True),
            ("cpu_total_percent", "cpu_total_percent", True),  # a top-level point
        ],
    )
    def test_patterns(self, pattern: str, path: str, expected: bool) -> None:
        """Paths use fnmatch on the whole path; bare names on the last segment; case matters."""
        assert Threshold(pattern, red=1).matches(path) is expected

    def test_first_match_wins(self) -> None:
        """A specific rule listed first overrides a general one."""
        rule = ThresholdRule([Threshold("CPU/cpu0_percent", red=99), Threshold("CPU/*", red=50)])
        assert rule.apply("CPU/cpu0_percent", 60) is GreenAlert
        assert rule.apply("CPU/cpu1_percent", 60) is RedAlert
        assert rule.threshold_for("CPU/cpu0_percent") == Threshold("CPU/cpu0_percent", red=99)
        assert rule.threshold_for("Memory/x") is None


class TestValidation:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({}, "expected at least one of orange, red or critical, got none"),
            ({"orange": 90, "red": 70}, "expected orange below red (direction 'above'), got orange=90, red=70"),
            ({"orange": 10, "red": 20, "direction": "below"}, "expected orange above red (direction 'below')"),
            ({"red": 90, "critical": 90}, "expected red below critical"),
            ({"red": 1, "hysteresis": -1}, "expected a hysteresis of at least 0, got -1"),
            ({"red": 1, "direction": "up"}, "expected direction 'above' or 'below', got 'up'"),
            ({"red": math.nan}, "expected red to be a finite number, got nan"),
            ({"red": True}, "expected red to be a finite number, got True"),
        ],
    )
    def test_bad_thresholds_say_what_was_expected(self, kwargs: dict[str, Any], message: str) -> None:
        """Nonsense thresholds are refused with an explanation."""
        with pytest.raises(ValueError, match="^" + re.escape(message)):
            Threshold("x", **kwargs)

    def test_bad_pattern(self) -> None:
        """A pattern must be a valid path (no empty segments, no control characters)."""
        with pytest.raises(ValueError, match="point pattern"):
            Threshold("CPU//x", red=1)


class TestMonitorHook:
    def _poll_all(self, mon: Monitor) -> dict[str, Alert]:
        """Start the monitor, wait (with a deadline) until every point was polled once, stop it."""
        seen: dict[str, Alert] = {}
        done = threading.Event()

        def record(name: str, tstamp: float, exc: BaseException | None, alert: Alert) -> None:
            seen[name] = alert
            if len(seen) == len(mon):
                done.set()

        mon.add_callback(record)
        with mon:
            assert done.wait(10), f"only {sorted(seen)} were polled"
        return seen

    def test_rule_judges_plain_values_only(self) -> None:
        """Plain values get thresholded; explicit alerts and errors are kept as returned."""
        mon = Monitor()
        mon.set_alert_rule(ThresholdRule([Threshold("CPU/*", orange=70, red=90)]))

        @mon.monitor(point="plain", dt=None, parent="CPU")
        def plain() -> float:
            return 95.0

        @mon.monitor(point="explicit", dt=None, parent="CPU")
        def explicit() -> Alert:
            return GreenAlert(95.0)

        @mon.monitor(point="wrapped", dt=None, parent="CPU")
        def wrapped() -> Alert:
            return NoAlert(75.0)

        @mon.monitor(point="fails", dt=None, parent="CPU")
        def fails() -> float:
            raise OSError("sensor unplugged")

        @mon.monitor(point="outside", dt=None)
        def outside() -> float:
            return 95.0

        seen = self._poll_all(mon)
        assert seen["plain"] == RedAlert(95.0)
        assert seen["explicit"] == GreenAlert(95.0)
        assert seen["wrapped"] == OrangeAlert(75.0)
        assert type(seen["fails"]) is NoAlert
        assert seen["outside"] == NoAlert(95.0)
        assert mon["plain"].alert == RedAlert.alertcode
        assert mon["CPU"].alert == RedAlert.alertcode  # the parent rolls up the judged level

    def test_failing_rule_stores_the_value_unjudged(self, caplog: pytest.LogCaptureFixture) -> None:
        """A rule that raises is logged, and the poll is still recorded."""
        mon = Monitor()

        def broken(path: str, alert: Alert) -> Alert:
            raise RuntimeError("rule bug")

        mon.set_alert_rule(broken)

        @mon.monitor(point="value", dt=None)
        def value() -> int:
            return 3

        seen = self._poll_all(mon)
        assert seen["value"] == NoAlert(3)
        assert "alert rule failed for value: RuntimeError: rule bug" in caplog.text

    def test_rule_can_be_removed(self) -> None:
        """set_alert_rule(None) turns judging off."""
        mon = Monitor()
        mon.set_alert_rule(ThresholdRule([Threshold("v", red=1)]))
        mon.set_alert_rule(None)

        @mon.monitor(point="v", dt=None)
        def v() -> int:
            return 5

        assert self._poll_all(mon)["v"] == NoAlert(5)

    def test_rule_is_a_callable_alert_rule(self) -> None:
        """Called directly, the rule wraps the value in the judged class."""
        rule = ThresholdRule([Threshold("x", orange=1, red=2, critical=3)])
        assert rule("x", NoAlert(3)) == CriticalAlert(3)
        assert rule("y", NoAlert(3)) == NoAlert(3)
        assert rule.alert_for("x", 1.5) == OrangeAlert(1.5)
