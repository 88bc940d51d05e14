"""The hub loop's observed time: pauses of the loop are detected and left out. Made-up readings, no sleeps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gsmon.hub.clock import MAX_TURN_S, MIN_PAUSE_S, MIN_THRESHOLD_S, ObservedClock


def test_a_loop_that_runs_on_time_observes_the_monotonic_clock() -> None:
    """Polls that return within their timeout and short turns: observed time is monotonic time."""
    clock = ObservedClock()
    assert clock.observe(100.0, 100.1, 0.1) == (100.1, 0.0)
    assert clock.observe(100.102, 100.2, 0.1) == (100.2, 0.0)
    assert clock.observe(100.21, 100.21, 0.0) == (100.21, 0.0)  # data was waiting: no wait at all
    assert clock.pauses == 0


def test_a_poll_that_returns_seconds_late_is_a_pause_left_out_of_observed_time() -> None:
    """SIGSTOP during the poll: the poll (timeout 0.1 s) returns 10 s later; those 9.9 s are not observed."""
    clock = ObservedClock()
    clock.observe(0.0, 0.1, 0.1)
    now, paused = clock.observe(0.1, 10.2, 0.1)
    assert paused == pytest.approx(10.0)
    assert now == pytest.approx(0.2)
    assert clock.observe(10.2, 10.3, 0.1) == pytest.approx((0.3, 0.0))  # and it goes on from there
    assert (clock.pauses, clock.paused_total_s) == (1, pytest.approx(10.0))


def test_a_turn_whose_work_takes_seconds_held_a_pause() -> None:
    """SIGSTOP while the loop works (between two polls): that turn's time is left out too."""
    clock = ObservedClock()
    clock.observe(0.0, 0.1, 0.1)
    now, paused = clock.observe(8.1, 8.1, 0.0)  # the previous poll returned at 0.1, this one starts at 8.1
    assert paused == pytest.approx(8.0)
    assert now == pytest.approx(0.1)


def test_jitter_and_ordinary_work_are_not_pauses() -> None:
    """A poll late by less than MIN_PAUSE_S and a turn shorter than MAX_TURN_S are time the hub observed."""
    clock = ObservedClock()
    clock.observe(0.0, 0.1, 0.1)
    late = 0.1 + 0.1 + MIN_PAUSE_S * 0.9
    assert clock.observe(0.1, late, 0.1) == (late, 0.0)
    start = late + MAX_TURN_S * 0.9
    assert clock.observe(start, start, 0.0) == (start, 0.0)
    assert clock.pauses == 0


def test_a_short_blind_tolerance_lowers_both_thresholds_to_half_of_it() -> None:
    """Told the core may go unobserved 0.4 s at most (0.2 s heartbeats), a poll 0.3 s late and a 0.3 s
    turn are pauses; 0.15 s of either is still time observed."""
    clock = ObservedClock(blind_tolerance_s=0.4)
    clock.observe(0.0, 0.1, 0.1)
    assert clock.observe(0.1, 0.5, 0.1)[1] == pytest.approx(0.3)  # late by 0.3 s
    assert clock.observe(0.8, 0.8, 0.0)[1] == pytest.approx(0.3)  # worked 0.3 s
    assert clock.observe(0.95, 1.1, 0.0)[1] == 0.0  # 0.15 s work, then a poll 0.15 s "late"
    assert clock.pauses == 2


def test_a_long_tolerance_keeps_the_fixed_limits_and_a_tiny_one_stops_at_the_floor() -> None:
    """The tolerance only ever tightens MIN_PAUSE_S and MAX_TURN_S; and jitter under MIN_THRESHOLD_S is
    never a pause, however short the tolerance."""
    relaxed = ObservedClock(blind_tolerance_s=100.0)
    relaxed.observe(0.0, 0.1, 0.1)
    assert relaxed.observe(0.1, 0.2 + MIN_PAUSE_S * 0.9, 0.1)[1] == 0.0
    tight = ObservedClock(blind_tolerance_s=0.0)
    tight.observe(0.0, 0.1, 0.1)
    assert tight.observe(0.1 + MIN_THRESHOLD_S * 0.9, 0.1 + MIN_THRESHOLD_S * 0.9, 0.0)[1] == 0.0
    assert tight.observe(0.2, 0.2, 0.0)[1] > 0.0


@given(
    st.lists(
        st.tuples(st.floats(0.0, 20.0), st.floats(0.0, 20.0), st.floats(0.0, 1.0)),
        min_size=1,
        max_size=30,
    )
)
def test_observed_time_never_goes_backwards(turns: list[tuple[float, float, float]]) -> None:
    """Whatever the readings (work, poll duration, timeout), observed time only moves forward,
    and never faster than the monotonic clock."""
    clock = ObservedClock()
    mono, last_observed = 0.0, None
    for work, poll, timeout in turns:
        before = mono + work
        mono = before + poll
        observed, _ = clock.observe(before, mono, timeout)
        if last_observed is not None:
            assert observed >= last_observed - 1e-9
        assert observed <= mono + 1e-9
        last_observed = observed
