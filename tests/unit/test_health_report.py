"""The report_health args the recorder and the notifier build (common/health_report.py)."""

from __future__ import annotations

import pytest

from gsmon.common.health_report import TTL_REPORTS, final_args, report_args, rising_level
from gsmon.common.notify.main import FAILURES_ORANGE, FAILURES_RED, Notifier
from gsmon.common.recorder.service import HEALTH_REPORT_S, LAG_ORANGE_S, LAG_RED_S, HistoryService

GREEN, ORANGE, RED = 10, 20, 30


@pytest.mark.parametrize(
    ("value", "level"), [(0.0, GREEN), (4.99, GREEN), (5.0, ORANGE), (59.9, ORANGE), (60.0, RED), (1e9, RED)]
)
def test_a_rising_figure_is_orange_from_its_first_threshold_and_red_from_its_second(value: float, level: int) -> None:
    assert rising_level(value, 5.0, 60.0) == level


def test_the_args_carry_a_ttl_of_a_few_report_periods_and_a_final_report_says_only_final() -> None:
    assert report_args("rec", {"lag_s": [1.0, GREEN]}, 5.0) == {
        "client": "rec",
        "points": {"lag_s": [1.0, GREEN]},
        "ttl_s": TTL_REPORTS * 5.0,
    }
    assert final_args("rec") == {"client": "rec", "final": True}


def test_the_recorder_and_the_notifier_judge_their_figures_by_their_own_thresholds() -> None:
    lag = {"lag_s": 1.0, "lag_max_s": LAG_RED_S}
    service = HistoryService("tcp://127.0.0.1:1", None, status=lambda: lag)  # type: ignore[arg-type]
    args = service.health_args()
    assert args is not None
    assert args["points"]["lag_max_s"] == [LAG_RED_S, RED]
    assert args["ttl_s"] == TTL_REPORTS * HEALTH_REPORT_S
    lag["lag_max_s"] = LAG_ORANGE_S
    assert service.health_args()["points"]["lag_s"] == [1.0, ORANGE]  # type: ignore[index]
    lag["lag_max_s"], lag["behind_s"] = 0.5, LAG_RED_S  # quick commits of rows read a minute late: RED
    assert service.health_args()["points"]["lag_s"] == [1.0, GREEN]  # type: ignore[index]
    assert service.health_args()["points"]["behind_s"] == [LAG_RED_S, RED]  # type: ignore[index]
    assert service.health_args(final=True) == final_args("recorder")
    receiver = {"failures": 1, "dropped": 0, "queued": 0, "sent": 0}
    for streak, level in ((0, GREEN), (FAILURES_ORANGE, ORANGE), (FAILURES_RED, RED)):
        health = {
            "hub_up": True,
            "open_problems": 0,
            "receivers": {"ops": {**receiver, "consecutive_failures": streak}},
        }
        points = Notifier.health_report(health)["points"]
        assert points["receivers/ops/consecutive_failures"] == [streak, level]
