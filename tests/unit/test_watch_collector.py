"""When gsmon watch runs the collector's full passes (common/watch/collector.py): a pure policy, times given."""

from __future__ import annotations

import gc

from gsmon.common.watch.collector import EVERY_S, LATEST_S, QUIET_S, FullCollections, hand_back, take_over


def test_not_due_before_every_s_even_when_quiet() -> None:
    policy = FullCollections(100.0)
    assert not policy.due(100.0 + EVERY_S - 0.01)
    assert policy.due(100.0 + EVERY_S)


def test_a_recent_key_puts_the_pass_off() -> None:
    policy = FullCollections(0.0)
    policy.key(EVERY_S - 0.2)
    assert not policy.due(EVERY_S)
    assert not policy.due(EVERY_S - 0.2 + QUIET_S - 0.01)
    assert policy.due(EVERY_S - 0.2 + QUIET_S)


def test_keys_that_never_stop_cannot_put_it_off_past_latest_s() -> None:
    policy = FullCollections(0.0)
    now = 0.0
    while now < LATEST_S - 0.25:
        policy.key(now)
        assert not policy.due(now)
        now += 0.25
    policy.key(LATEST_S)
    assert policy.due(LATEST_S)


def test_a_pass_restarts_the_clock() -> None:
    policy = FullCollections(0.0)
    assert policy.due(LATEST_S)
    policy.collected(LATEST_S)
    assert policy.passes == 1
    assert not policy.due(LATEST_S + EVERY_S - 0.01)
    assert policy.due(LATEST_S + EVERY_S)


def test_take_over_keeps_the_young_generations_and_hands_back() -> None:
    before = gc.get_threshold()
    old = take_over()
    try:
        assert old == before
        now = gc.get_threshold()
        assert now[:2] == before[:2]
        assert now[2] > 1_000_000  # never reached by counting: the application runs the full passes
    finally:
        hand_back(old)
    assert gc.get_threshold() == before


def test_right_after_a_keys_redraw_is_as_good_as_a_quiet_second() -> None:
    policy = FullCollections(0.0)
    policy.key(EVERY_S - 0.1)
    assert not policy.due(EVERY_S)
    assert policy.due(EVERY_S, redrawn_after_key=True)
    assert not policy.due(EVERY_S - 0.5, redrawn_after_key=True), "never more often than EVERY_S"
