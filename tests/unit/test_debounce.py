"""The agent's debounce core with a fake clock: polls are (code, time) pairs made up by the test."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsmon.agent.debounce import (
    Debouncer,
    DebounceSettings,
    DebounceSettingsError,
    Flapping,
    Pending,
    Verdict,
)
from gsmon.common.alerts import STALE_ALERTCODE, alertstr_for

NO, GREEN, ORANGE, RED, CRITICAL = 0, 10, 20, 30, 100


def feed(debouncer: Debouncer, polls: Sequence[tuple[float, int]]) -> list[Verdict]:
    return [debouncer.observe(code, alertstr_for(code), at) for at, code in polls]


def kinds(verdict: Verdict) -> list[tuple[str, int]]:
    return [(event.kind, event.new) for event in verdict.events]


def every_second(*codes: int, start: float = 0.0) -> list[tuple[float, int]]:
    return [(start + index, code) for index, code in enumerate(codes)]


# -- off by default -----------------------------------------------------------------------------


def test_settings_are_off_by_default_and_then_effective_is_raw() -> None:
    """No setting: nothing is held, nothing is pending, no events (the seed's behaviour)."""
    off = DebounceSettings()
    assert not off.enabled
    verdicts = feed(Debouncer(off), every_second(GREEN, RED, NO, CRITICAL, ORANGE))
    assert [(v.effective_code, v.effective_str) for v in verdicts] == [
        (GREEN, "GREEN"),
        (RED, "RED"),
        (NO, ""),
        (CRITICAL, "CRITICAL"),
        (ORANGE, "ORANGE"),
    ]
    assert all(v.pending is None and v.flapping is None and v.events == () for v in verdicts)


def test_stale_is_never_debounced_and_leaves_the_state_alone() -> None:
    """A raw STALE code passes straight through; the pending rise it interrupted goes on as before."""
    debouncer = Debouncer(DebounceSettings(for_s=10))
    feed(debouncer, [(0, GREEN), (1, RED)])
    stale = debouncer.observe(STALE_ALERTCODE, "STALE", 2)
    assert (stale.effective_code, stale.pending, stale.events) == (STALE_ALERTCODE, None, ())
    assert debouncer.observe(RED, "RED", 11).effective_code == RED  # RED since 1, held 10 s


# -- for_s ---------------------------------------------------------------------------------------


def test_a_glitch_shorter_than_for_s_is_pending_then_discarded_and_never_raised() -> None:
    debouncer = Debouncer(DebounceSettings(for_s=10))
    first, glitch, held, over = feed(debouncer, [(0, GREEN), (3, RED), (9, RED), (12.9, GREEN)])
    assert first.effective_code == GREEN
    assert glitch.effective_code == GREEN
    assert glitch.pending == Pending(RED, 3)
    assert kinds(glitch) == [("pending", RED)]
    assert glitch.events[0].old == GREEN
    assert glitch.events[0].since_s == 3
    assert (held.effective_code, held.pending, held.events) == (GREEN, Pending(RED, 3), ())
    assert over.effective_code == GREEN
    assert over.pending is None
    assert kinds(over) == [("discarded", RED)]


def test_a_level_held_for_for_s_rises_at_the_first_poll_after_the_hold() -> None:
    """Only polls count: the rise comes with the first poll at or after since + for_s."""
    debouncer = Debouncer(DebounceSettings(for_s=10))
    verdicts = feed(debouncer, [(0, GREEN), (1, RED), (6, RED), (10.5, RED), (11.5, RED)])
    assert [v.effective_code for v in verdicts] == [GREEN, GREEN, GREEN, GREEN, RED]
    assert verdicts[-1].pending is None
    assert verdicts[-1].events == ()  # the raise itself is the level change, not an event


def test_escalating_while_pending_needs_for_s_at_the_new_level() -> None:
    """ORANGE since 0, RED since 4: ORANGE comes at 10 (it held), RED only at 14."""
    debouncer = Debouncer(DebounceSettings(for_s=10))
    polls = [(0, ORANGE), (4, RED), (8, RED), (10, RED), (12, RED), (14, RED)]
    verdicts = feed(debouncer, polls)
    assert [v.effective_code for v in verdicts] == [NO, NO, NO, ORANGE, ORANGE, RED]
    assert verdicts[0].pending == Pending(ORANGE, 0)
    assert verdicts[1].pending == Pending(RED, 4)
    assert kinds(verdicts[1]) == [("pending", RED)]  # the pending level escalated
    assert verdicts[3].pending == Pending(RED, 4)  # ORANGE reached, RED still pending
    assert verdicts[3].events == ()
    assert verdicts[5].pending is None


def test_a_pending_escalation_that_falls_back_keeps_the_lower_levels_timer() -> None:
    """ORANGE since 0, RED from 4 to 6: RED is discarded, ORANGE is pending since 0 and rises at 10."""
    debouncer = Debouncer(DebounceSettings(for_s=10))
    verdicts = feed(debouncer, [(0, ORANGE), (4, RED), (6, ORANGE), (10, ORANGE)])
    assert kinds(verdicts[2]) == [("discarded", RED), ("pending", ORANGE)]
    assert verdicts[2].pending == Pending(ORANGE, 0)
    assert verdicts[3].effective_code == ORANGE


def test_normal_levels_are_never_held_back_and_a_held_point_shows_its_last_normal_level() -> None:
    """NoAlert <-> GREEN moves at once; a point that starts RED shows NoAlert until RED has held."""
    debouncer = Debouncer(DebounceSettings(for_s=10, clear_for_s=10))
    start, green, none, red = feed(debouncer, [(0, RED), (1, GREEN), (2, NO), (3, RED)])
    assert (start.effective_code, start.effective_str, start.pending) == (NO, "", Pending(RED, 0))
    assert (green.effective_code, green.effective_str) == (GREEN, "GREEN")
    assert kinds(green) == [("discarded", RED)]
    assert (none.effective_code, none.events) == (NO, ())
    assert (red.effective_code, red.pending) == (NO, Pending(RED, 3))


def test_time_running_backwards_counts_as_the_last_poll_time() -> None:
    """A poll stamped before the previous one neither shortens nor extends a hold."""
    debouncer = Debouncer(DebounceSettings(for_s=10))
    feed(debouncer, [(100, RED)])
    assert debouncer.observe(RED, "RED", 50).pending == Pending(RED, 100)
    assert debouncer.observe(RED, "RED", 109).effective_code == NO
    assert debouncer.observe(RED, "RED", 110).effective_code == RED


# -- clear_for_s ------------------------------------------------------------------------------------


def test_the_clear_delay_holds_a_lower_level_before_the_level_falls() -> None:
    """RED stays until GREEN has held clear_for_s; the pending fall is shown, and a bounce discards it."""
    debouncer = Debouncer(DebounceSettings(clear_for_s=5))
    polls = [(0, RED), (1, GREEN), (3, GREEN), (4, RED), (5, GREEN), (9, GREEN), (10, GREEN)]
    verdicts = feed(debouncer, polls)
    assert [v.effective_code for v in verdicts] == [RED, RED, RED, RED, RED, RED, GREEN]
    assert verdicts[1].pending == Pending(GREEN, 1)
    assert kinds(verdicts[1]) == [("pending", GREEN)]
    assert kinds(verdicts[3]) == [("discarded", GREEN)]  # RED again: the recovery did not hold
    assert verdicts[4].pending == Pending(GREEN, 5)
    assert verdicts[6].pending is None
    assert verdicts[6].events == ()


def test_the_clear_delay_falls_step_by_step_to_levels_that_held() -> None:
    """CRITICAL, then ORANGE at 0 and GREEN at 3: ORANGE at 5 (held 5 s), GREEN at 8."""
    debouncer = Debouncer(DebounceSettings(clear_for_s=5))
    feed(debouncer, [(-1, CRITICAL)])
    verdicts = feed(debouncer, [(0, ORANGE), (3, GREEN), (5, GREEN), (8, GREEN)])
    assert [v.effective_code for v in verdicts] == [CRITICAL, CRITICAL, ORANGE, GREEN]


def test_rises_are_immediate_when_only_the_clear_delay_is_set() -> None:
    verdicts = feed(Debouncer(DebounceSettings(clear_for_s=60)), every_second(GREEN, RED))
    assert [v.effective_code for v in verdicts] == [GREEN, RED]


# -- m_of_n -----------------------------------------------------------------------------------------


def test_m_bad_polls_of_the_last_n_raise_the_level() -> None:
    """(2, 3): RED, GREEN, RED raises at the third poll; the lone RED was pending all along."""
    debouncer = Debouncer(DebounceSettings(m_of_n=(2, 3)))
    verdicts = feed(debouncer, every_second(GREEN, RED, GREEN, RED))
    assert [v.effective_code for v in verdicts] == [GREEN, GREEN, GREEN, RED]
    assert verdicts[1].pending == Pending(RED, 1)
    assert verdicts[2].pending == Pending(RED, 1)  # still in the window: still pending, not discarded
    assert verdicts[2].events == ()


def test_a_bad_poll_that_ages_out_of_the_window_is_discarded() -> None:
    debouncer = Debouncer(DebounceSettings(m_of_n=(2, 3)))
    verdicts = feed(debouncer, every_second(GREEN, RED, GREEN, GREEN, GREEN))
    assert [v.effective_code for v in verdicts] == [GREEN] * 5
    assert kinds(verdicts[4]) == [("discarded", RED)]
    assert verdicts[4].pending is None


def test_bad_means_at_or_above_the_level_being_raised_to() -> None:
    """(2, 2): ORANGE then RED is two polls at or above ORANGE (raise ORANGE), only one at RED."""
    debouncer = Debouncer(DebounceSettings(m_of_n=(2, 2)))
    verdicts = feed(debouncer, every_second(GREEN, ORANGE, RED, RED))
    assert [v.effective_code for v in verdicts] == [GREEN, GREEN, ORANGE, RED]


def test_a_level_is_left_once_fewer_than_m_of_the_last_n_reach_it() -> None:
    """(3, 5): RED needs 3 RED polls; after that N - M + 1 = 3 good polls bring it down."""
    debouncer = Debouncer(DebounceSettings(m_of_n=(3, 5)))
    verdicts = feed(debouncer, every_second(RED, RED, RED, GREEN, GREEN, GREEN))
    assert [v.effective_code for v in verdicts] == [NO, NO, RED, RED, RED, GREEN]
    assert verdicts[3].pending == Pending(GREEN, 3)  # the recovery is pending while the window still holds RED


def test_m_equal_to_n_means_n_in_a_row() -> None:
    debouncer = Debouncer(DebounceSettings(m_of_n=(3, 3)))
    verdicts = feed(debouncer, every_second(GREEN, RED, RED, GREEN, RED, RED, RED, GREEN))
    assert [v.effective_code for v in verdicts] == [GREEN, GREEN, GREEN, GREEN, GREEN, GREEN, RED, GREEN]


def test_for_s_holds_the_m_of_n_filtered_level_so_a_lone_good_poll_does_not_restart_it() -> None:
    """m_of_n=(2, 3) then for_s=4: RED R G R R ... is RED (filtered) from poll 1; it rises 4 s later."""
    debouncer = Debouncer(DebounceSettings(for_s=4, m_of_n=(2, 3)))
    verdicts = feed(debouncer, every_second(RED, RED, GREEN, RED, RED, RED))
    # Filtered: normal (1 poll), RED (2 of 2), RED (2 of 3), RED, RED, RED -> held from t=1, raised at t=5.
    # Until then the point shows its last normal level: NoAlert, then the GREEN of t=2.
    assert [v.effective_code for v in verdicts] == [NO, NO, GREEN, GREEN, GREEN, RED]
    assert all(v.pending == Pending(RED, 0) for v in verdicts[:5])
    plain = Debouncer(DebounceSettings(for_s=4))  # without M-of-N the good poll at t=2 restarts the timer
    assert [v.effective_code for v in feed(plain, every_second(RED, RED, GREEN, RED, RED, RED))][-1] == GREEN


# -- flap guard --------------------------------------------------------------------------------------


def flapper() -> Debouncer:
    return Debouncer(DebounceSettings(flap_window_s=10, flap_start=3, flap_stop=1))


def test_flapping_holds_the_worst_level_of_the_window_and_starts_above_flap_start() -> None:
    debouncer = flapper()
    verdicts = feed(debouncer, every_second(GREEN, RED, GREEN, RED, GREEN, ORANGE, GREEN))
    # changes: 1 (t1), 2, 3, 4 (t4) -> above 3 at t=4
    assert [v.flapping is not None for v in verdicts] == [False, False, False, False, True, True, True]
    assert [v.effective_code for v in verdicts] == [GREEN, RED, GREEN, RED, RED, RED, RED]
    assert kinds(verdicts[4]) == [("flapping_start", RED)]
    assert verdicts[4].flapping == Flapping(4, 4)
    assert verdicts[6].flapping == Flapping(4, 6)


def test_flapping_stops_at_or_below_flap_stop_and_sends_the_current_level() -> None:
    """Hysteresis: 3 changes in the window is not flapping's end (flap_stop=1); at 1 it ends, GREEN is sent."""
    debouncer = flapper()
    feed(debouncer, every_second(GREEN, RED, GREEN, RED, GREEN))  # flapping since t=4, 4 changes (t=1..4)
    quiet = feed(debouncer, [(11.5, GREEN), (12.5, GREEN), (13.5, GREEN), (14.5, GREEN)])
    # At 11.5 the changes of t=1 lie outside (1.5, 11.5]: 3 left; 12.5: 2 left (still flapping); 13.5: 1 -> stop.
    assert [v.flapping is not None for v in quiet] == [True, True, False, False]
    assert [v.effective_code for v in quiet] == [RED, RED, GREEN, GREEN]
    assert kinds(quiet[2]) == [("flapping_stop", GREEN)]
    assert quiet[2].events[0].old == RED
    assert quiet[3].events == ()


def test_flapping_stop_is_sent_even_when_the_current_level_equals_the_held_one() -> None:
    """nagioscore#91: the point settles on RED, the level held while flapping: the stop still says RED."""
    debouncer = flapper()
    feed(debouncer, every_second(GREEN, RED, GREEN, RED, GREEN, RED))
    settled = [v for v in feed(debouncer, [(20, RED), (21, RED)]) if v.events]
    assert len(settled) == 1
    (stop,) = settled[0].events
    assert (stop.kind, stop.old, stop.new) == ("flapping_stop", RED, RED)
    assert settled[0].effective_code == RED


def test_the_held_level_follows_the_window_as_it_slides() -> None:
    """While flapping, a CRITICAL that leaves the window no longer holds the level up."""
    debouncer = Debouncer(DebounceSettings(flap_window_s=10, flap_start=2, flap_stop=0))
    feed(debouncer, every_second(GREEN, CRITICAL, GREEN, ORANGE))  # 3 changes > 2: flapping at t=3, held CRITICAL
    assert debouncer.effective[0] == CRITICAL
    verdicts = feed(debouncer, [(8, GREEN), (12, GREEN)])  # t=12: window (2, 12] holds GREEN->ORANGE->GREEN
    assert [v.effective_code for v in verdicts] == [CRITICAL, ORANGE]
    assert verdicts[1].flapping is not None


# -- restart -------------------------------------------------------------------------------------------


def test_an_agent_restart_during_pending_resumes_the_timer_from_a_snapshot() -> None:
    config = DebounceSettings(for_s=10, m_of_n=(1, 2), flap_window_s=60)
    debouncer = Debouncer(config)
    feed(debouncer, [(0, GREEN), (2, RED)])
    saved = json.loads(json.dumps(debouncer.snapshot()))  # as the outbox would store it
    resumed = Debouncer.restore(config, saved)
    assert resumed.observe(RED, "RED", 5).pending == Pending(RED, 2)
    assert resumed.observe(RED, "RED", 12).effective_code == RED  # 10 s after the first RED, as if never restarted
    fresh = Debouncer.restore(DebounceSettings(for_s=5), saved)  # other settings: the old timers are dropped
    assert fresh.observe(RED, "RED", 5).pending == Pending(RED, 5)
    assert Debouncer.restore(config, None).observe(RED, "RED", 5).pending == Pending(RED, 5)


# -- settings ---------------------------------------------------------------------------------------


def test_every_bad_setting_gets_its_own_line() -> None:
    with pytest.raises(DebounceSettingsError) as caught:
        DebounceSettings.from_mapping(
            {"for_s": "fast", "clear_for_s": -1, "m_of_n": [3, 2], "flap_window_s": True, "delay": 5}
        )
    assert caught.value.problems == (
        "delay: not a debounce setting (known: for_s, clear_for_s, m_of_n, flap_window_s, flap_start, flap_stop)",
        "for_s: expected a number of seconds >= 0 (0 = off), got 'fast'",
        "clear_for_s: expected a number of seconds >= 0 (0 = off), got -1",
        "flap_window_s: expected a number of seconds >= 0 (0 = off), got True",
        "m_of_n: expected [M, N] with 1 <= M <= N <= 10000, got [3, 2]",
    )
    assert str(caught.value).count("\n") == 4


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"for_s": float("nan")}, "for_s: expected a number of seconds >= 0 (0 = off), got nan"),
        ({"m_of_n": [0, 3]}, "m_of_n: expected [M, N] with 1 <= M <= N <= 10000, got [0, 3]"),
        ({"m_of_n": 3}, "m_of_n: expected [M, N] with 1 <= M <= N <= 10000, got 3"),
        ({"m_of_n": [1.5, 3]}, "m_of_n: expected [M, N] with 1 <= M <= N <= 10000, got [1.5, 3]"),
        ({"flap_window_s": 60, "flap_start": 0}, "flap_start: expected a whole number >= 1, got 0"),
        ({"flap_window_s": 60, "flap_stop": -1}, "flap_stop: expected a whole number >= 0, got -1"),
        (
            {"flap_window_s": 60, "flap_start": 3, "flap_stop": 3},
            "flap_stop: must be below flap_start (3) so that flapping has hysteresis, got 3",
        ),
        ({"flap_start": 8}, "flap_start: needs flap_window_s > 0 (without a window there is no flap guard)"),
    ],
)
def test_one_bad_setting_one_line(values: dict[str, Any], problem: str) -> None:
    with pytest.raises(DebounceSettingsError) as caught:
        DebounceSettings.from_mapping(values)
    assert caught.value.problems == (problem,)


def test_good_settings_from_a_toml_table_or_keyword_arguments() -> None:
    config = DebounceSettings.from_mapping({"for_s": 30, "m_of_n": [3, 5], "flap_window_s": 600, "flap_stop": 1})
    assert config == DebounceSettings(for_s=30.0, m_of_n=(3, 5), flap_window_s=600.0, flap_start=6, flap_stop=1)
    assert config.enabled
    with pytest.raises(DebounceSettingsError, match=r"^for_s: expected"):
        DebounceSettings(for_s=-3)  # the constructor checks too


def test_the_wire_map_names_raw_pending_and_flapping() -> None:
    verdict = Verdict(GREEN, "GREEN", Pending(RED, 12.5), Flapping(3.0, 7), ())
    assert verdict.wire_map(RED, "RED") == {
        "raw": RED,
        "raw_str": "RED",
        "pending": {"level": RED, "since": 12.5},
        "flapping": {"since": 3.0, "changes": 7},
    }
    assert Verdict(RED, "RED", None, None, ()).wire_map(RED, "RED")["pending"] is None


# -- properties -------------------------------------------------------------------------------------

CODES = st.sampled_from([NO, 5, GREEN, 15, ORANGE, RED, CRITICAL])
POLLS = st.lists(st.tuples(st.floats(0.0, 4.0), CODES), min_size=1, max_size=60).map(
    lambda steps: [(sum(step for step, _ in steps[: index + 1]), code) for index, (_, code) in enumerate(steps)]
)
SETTINGS = st.builds(
    DebounceSettings,
    for_s=st.sampled_from([0.0, 0.5, 3.0, 10.0]),
    clear_for_s=st.sampled_from([0.0, 2.0, 7.0]),
    m_of_n=st.sampled_from([None, (1, 1), (1, 3), (2, 3), (3, 5), (4, 4)]),
    flap_window_s=st.sampled_from([0.0, 5.0, 20.0]),
    flap_start=st.sampled_from([2, 4]),
    flap_stop=st.sampled_from([0, 1]),
)


@settings(max_examples=200, deadline=None)
@given(polls=POLLS)
def test_with_every_setting_off_effective_is_raw_for_any_sequence(polls: list[tuple[float, int]]) -> None:
    for (at, code), verdict in zip(polls, feed(Debouncer(), polls), strict=True):
        assert (verdict.effective_code, verdict.effective_str) == (code, alertstr_for(code)), at
        assert verdict.pending is None
        assert verdict.flapping is None
        assert verdict.events == ()


def _reference(config: DebounceSettings, polls: list[tuple[float, int]]) -> list[int]:
    """The same rules, recomputed from the whole history at every poll (slow, obvious)."""
    times = [at for at, _ in polls]
    clipped = [max(code, GREEN) for _, code in polls]
    filtered = []
    for index in range(len(polls)):
        if config.m_of_n is None:
            filtered.append(clipped[index])
            continue
        needed, size = config.m_of_n
        window = sorted(clipped[max(0, index - size + 1) : index + 1], reverse=True)
        filtered.append(window[needed - 1] if len(window) >= needed else GREEN)

    def held_since(index: int, level: int, rising: bool) -> float:
        start = index
        while start > 0 and (filtered[start - 1] >= level if rising else filtered[start - 1] <= level):
            start -= 1
        return times[start]

    debounced, level = [], GREEN
    for index, value in enumerate(filtered):
        if value > level:
            held = [c for c in set(filtered[: index + 1]) if level < c <= value]
            ok = [c for c in held if times[index] - held_since(index, c, True) >= config.for_s]
            level = max(ok, default=level)
        elif value < level:
            held = [c for c in set(filtered[: index + 1]) if value <= c < level]
            ok = [c for c in held if times[index] - held_since(index, c, False) >= config.clear_for_s]
            level = min(ok, default=level)
        debounced.append(level)
    if not config.flap_window_s:
        return debounced
    effective, flapping = [], False
    for index in range(len(polls)):
        cutoff = times[index] - config.flap_window_s
        changes = sum(
            1
            for j in range(len(polls[: index + 1]))
            if times[j] > cutoff and debounced[j] != (debounced[j - 1] if j else GREEN)
        )
        before = [debounced[j] for j in range(index + 1) if times[j] <= cutoff]
        in_force = before[-1] if before else GREEN
        seen = [in_force, *(debounced[j] for j in range(index + 1) if times[j] > cutoff)]
        if not flapping and changes > config.flap_start:
            flapping = True
        elif flapping and changes <= config.flap_stop:
            flapping = False
        effective.append(max(seen) if flapping else debounced[index])
    return effective


def _lookback_bound(config: DebounceSettings, polls: list[tuple[float, int]], index: int) -> int:
    """The worst raw level among the polls that can have produced the effective level at ``index``:
    the flap window, then the clear delay, then the M-of-N window, each with the poll in force before it."""
    times = [at for at, _ in polls]

    def back(indices: set[int], span_s: float) -> set[int]:
        if not span_s:
            return indices
        out: set[int] = set()
        for i in indices:
            inside = [j for j in range(i + 1) if times[j] > times[i] - span_s]
            first = min(inside)
            out.update(range(max(0, first - 1), i + 1))
        return out

    indices = back(back({index}, config.flap_window_s), config.clear_for_s)
    if config.m_of_n is not None:
        indices = {j for i in indices for j in range(max(0, i - config.m_of_n[1] + 1), i + 1)}
    return max(polls[j][1] for j in indices)


@settings(max_examples=300, deadline=None)
@given(config=SETTINGS, polls=POLLS)
def test_effective_levels_follow_the_rules_and_never_exceed_the_window_that_produced_them(
    config: DebounceSettings, polls: list[tuple[float, int]]
) -> None:
    """Against a from-scratch recomputation; and every effective level is bounded by its lookback window."""
    debouncer = Debouncer(config)
    verdicts = feed(debouncer, polls)
    expected = _reference(config, polls)
    for index, verdict in enumerate(verdicts):
        assert max(verdict.effective_code, GREEN) == expected[index], index
        if verdict.effective_code <= GREEN:  # normal: the raw normal level last seen (NoAlert before any)
            normals = [code for _, code in polls[: index + 1] if code <= GREEN]
            assert verdict.effective_code == (normals[-1] if normals else NO)
        assert verdict.effective_code <= _lookback_bound(config, polls, index), index
        assert verdict.effective_str == alertstr_for(verdict.effective_code)


@settings(max_examples=300, deadline=None)
@given(config=SETTINGS, polls=POLLS)
def test_every_pending_ends_in_a_raise_or_a_discard(config: DebounceSettings, polls: list[tuple[float, int]]) -> None:
    """A pending level is given up only by reaching it, by a ``discarded`` event, or by escalating past it;
    each new pending level is announced once."""
    debouncer = Debouncer(config)
    pending: Pending | None = None
    before = debouncer.debounced[0]
    for at, code in polls:
        verdict = debouncer.observe(code, alertstr_for(code), at)
        now = debouncer.debounced[0]
        discarded = [event.new for event in verdict.events if event.kind == "discarded"]
        announced = [event.new for event in verdict.events if event.kind == "pending"]
        new = verdict.pending
        # A fall to normal is relabelled when the normal level it falls to changes: still the same pending.
        relabelled = new is not None and pending is not None and max(new.level, GREEN) == max(pending.level, GREEN)
        if pending is not None and not relabelled:
            rising = pending.level > before
            # Compared as the debounce does: every normal level is one.
            level, reached_level = max(pending.level, GREEN), max(now, GREEN)
            escalated = new is not None and (new.level > level if rising else max(new.level, GREEN) < level)
            reached = reached_level >= level if rising else reached_level <= level
            assert escalated or reached or discarded == [pending.level], (at, pending, verdict)
        if new is not None and (pending is None or new.level != pending.level):
            assert announced == [new.level], (at, pending, verdict)
        else:
            assert announced == [], (at, pending, verdict)
        if relabelled:
            assert new is not None
            assert pending is not None
            assert new.since_s == pending.since_s  # the same pending level keeps its since
        pending, before = new, now
