"""gsmon.common.gc_tuning: what the tuner asks of the collector, when it freezes again, the off switch,
the collection timings, and the configuration keys that turn it off (hub, recorder, web)."""

from __future__ import annotations

import argparse
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from gsmon.common.config import ConfigError
from gsmon.common.gc_tuning import REFREEZE_MIN_ENTRIES, THRESHOLDS, GcStats, GcTuner
from gsmon.common.recorder.policy import read_recorder_config
from gsmon.common.web.main import add_parser as add_web_parser
from gsmon.hub.config import parse_hub_config


class RecordingGc:
    """A stand-in for the gc module: records every call, changes nothing in the real collector."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.callbacks: list[Any] = []
        self.threshold = (700, 10, 10)
        self.frozen = 0

    def collect(self, generation: int = 2) -> int:
        self.calls.append(("collect", generation))
        return 0

    def freeze(self) -> None:
        self.calls.append(("freeze",))
        self.frozen += 1000

    def get_freeze_count(self) -> int:
        self.calls.append(("get_freeze_count",))
        return self.frozen

    def get_threshold(self) -> tuple[int, int, int]:
        return self.threshold

    def set_threshold(self, threshold0: int, threshold1: int = 10, threshold2: int = 10) -> None:
        self.calls.append(("set_threshold", threshold0, threshold1, threshold2))
        self.threshold = (threshold0, threshold1, threshold2)


def test_start_collects_once_then_freezes_then_raises_the_thresholds() -> None:
    fake = RecordingGc()
    tuner = GcTuner(gc_api=fake)
    tuner.start(size=50_000)
    assert fake.calls == [("collect", 2), ("freeze",), ("get_freeze_count",), ("set_threshold", *THRESHOLDS)]
    assert fake.callbacks == [tuner.stats.hook]
    assert (tuner.started, tuner.freezes, tuner.frozen_at_size) == (True, 1, 50_000)
    tuner.start(size=90_000)  # a second start changes nothing
    assert len(fake.calls) == 4
    assert fake.callbacks == [tuner.stats.hook]


def test_health_points_do_not_count_the_frozen_objects_again() -> None:
    # gc.get_freeze_count() walks every frozen object: asked at each health report, it took nine tenths of
    # a hub with 3,000 agents (py-spy). It is counted once per freeze, and the points report that count.
    fake = RecordingGc()
    tuner = GcTuner(gc_api=fake)
    tuner.start(size=50_000)
    fake.calls.clear()
    for _ in range(100):
        assert tuner.health_points()["gc_frozen_objects"] == (1000, 0)
    assert ("get_freeze_count",) not in fake.calls


def test_the_default_thresholds_raise_generation_0_and_keep_the_others() -> None:
    assert THRESHOLDS[0] >= 10_000
    assert THRESHOLDS[1:] == (10, 10)


def test_off_changes_nothing_in_the_collector_but_still_times_it() -> None:
    fake = RecordingGc()
    tuner = GcTuner(enabled=False, gc_api=fake)
    tuner.start(size=50_000)
    assert fake.calls == []
    assert fake.threshold == (700, 10, 10)
    assert fake.callbacks == [tuner.stats.hook]  # the health points are there, tuned or not
    assert tuner.observe(10_000_000) is False
    assert fake.calls == []
    assert tuner.health_points()["gc_frozen_objects"] == (0, 0)


def test_observe_freezes_again_only_after_a_quarter_more_and_at_least_the_minimum() -> None:
    fake = RecordingGc()
    tuner = GcTuner(gc_api=fake)
    assert tuner.observe(1_000_000) is False  # not started: start-up is not done
    tuner.start(size=100_000)
    fake.calls.clear()
    assert tuner.observe(124_999) is False  # under a quarter more
    assert tuner.observe(125_000) is True
    assert fake.calls == [("freeze",), ("get_freeze_count",)]
    assert tuner.frozen_at_size == 125_000
    assert tuner.observe(125_000 * 5 // 4 - 1) is False  # measured from the last freeze, not the first

    small = GcTuner(gc_api=RecordingGc())
    small.start(size=0)
    assert small.observe(REFREEZE_MIN_ENTRIES - 1) is False  # an empty tree filling: not at every turn
    assert small.observe(REFREEZE_MIN_ENTRIES) is True


def test_unhook_removes_the_timer() -> None:
    fake = RecordingGc()
    tuner = GcTuner(gc_api=fake)
    tuner.start()
    tuner.unhook()
    assert fake.callbacks == []
    tuner.unhook()  # twice: no error


class StepClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_stats_count_per_generation_and_keep_the_longest_pause() -> None:
    clock = StepClock()
    stats = GcStats(clock=clock)

    def collection(generation: int, seconds: float) -> None:
        stats.hook("start", {"generation": generation})
        clock.now += seconds
        stats.hook("stop", {"generation": generation, "collected": 0, "uncollectable": 0})

    collection(0, 0.001)
    collection(1, 0.004)
    collection(2, 0.250)
    collection(0, 0.002)
    assert stats.collections == [2, 1, 1]
    assert stats.full_collections == 1
    assert stats.seconds == pytest.approx(0.257)
    assert stats.full_seconds == pytest.approx(0.250)
    assert stats.pause_max_s == pytest.approx(0.250)
    assert stats.full_pause_max_s == pytest.approx(0.250)
    stats.paused = True  # the tuner's own gc.collect() at start: counted, not a pause of the loop
    collection(2, 2.0)
    assert stats.full_collections == 2
    assert stats.pause_max_s == pytest.approx(0.250)
    assert stats.last_full_s == pytest.approx(2.0)
    points = stats.health_points()
    assert points["gc_full_collections"] == (2, 0)
    assert points["gc_collections"] == (5, 0)
    assert points["gc_pause_max_s"] == (0.25, 0)
    assert points["gc_full_last_s"] == (2.0, 0)


@pytest.fixture
def real_gc() -> Iterator[None]:
    """The real collector, put back as it was: thresholds, and nothing left frozen by the test."""
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("real_gc")
def test_the_real_collector_is_frozen_tuned_and_timed() -> None:
    tuner = GcTuner()
    try:
        tuner.start()
        assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > 0
        before = tuner.stats.collections[0]
        gc.collect(0)
        assert tuner.stats.collections[0] == before + 1
        assert tuner.health_points()["gc_frozen_objects"][0] == gc.get_freeze_count()
    finally:
        tuner.unhook()
    assert tuner.stats.hook not in gc.callbacks


def test_the_hub_configuration_turns_it_off_in_process() -> None:
    assert parse_hub_config("").gc_tuning is True
    assert parse_hub_config("[process]\ngc_tuning = false\n").gc_tuning is False
    with pytest.raises(ConfigError, match="gc_tuning"):
        parse_hub_config('[process]\ngc_tuning = "no"\n')
    with pytest.raises(ConfigError, match="allowed keys here: gc_tuning"):
        parse_hub_config("[process]\ngc_threshold = 5\n")


def test_the_recorder_configuration_turns_it_off_in_process(tmp_path: Any) -> None:
    assert read_recorder_config(None).gc_tuning is True
    config = tmp_path / "recorder.toml"
    config.write_text("[process]\ngc_tuning = false\n", encoding="utf-8")
    assert read_recorder_config(config).gc_tuning is False


def test_the_web_bridge_has_a_flag_to_turn_it_off() -> None:
    parser = argparse.ArgumentParser()
    add_web_parser(parser.add_subparsers())
    assert parser.parse_args(["web"]).no_gc_tuning is False
    assert parser.parse_args(["web", "--no-gc-tuning"]).no_gc_tuning is True
