"""The pure heap scheduler, driven with made-up times: no clock, no threads, no sleeps."""

from __future__ import annotations

import itertools
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsmon.agent.scheduler import Event, Job, Schedule

T0 = 1000.0


def job(period_s: float | None = 1.0, timeout_s: float = 1e9, name: str = "p") -> Job:
    return Job((name,), lambda: None, period_s, timeout_s)


def dues(actions: list[tuple[Event, Job]]) -> list[Job]:
    return [j for event, j in actions if event is Event.DUE]


def timeouts(actions: list[tuple[Event, Job]]) -> list[Job]:
    return [j for event, j in actions if event is Event.TIMEOUT]


def test_empty_schedule() -> None:
    """Nothing booked: no wakeup and nothing due."""
    sched = Schedule()
    assert sched.next_wakeup() is None
    assert sched.pop_due(T0) == []
    assert len(sched) == 0


def test_first_run_at_first_due() -> None:
    """A job is not due before its first due time and is started (marked running) at it."""
    sched = Schedule(slack_s=0)
    j = job()
    sched.add(j, T0)
    assert sched.next_wakeup() == T0
    assert sched.pop_due(T0 - 0.001) == []
    assert sched.pop_due(T0) == [(Event.DUE, j)]
    assert j.running
    assert j.run_id == 1
    assert j.started_at == T0


def test_periodic_due_times_follow_schedule_not_completion() -> None:
    """Next due is the previous slot + period, whatever the run took or how late it was popped."""
    sched = Schedule(slack_s=0)
    j = job(period_s=1.0)
    sched.add(j, T0)
    for k in range(1000):
        now = T0 + k + 0.3 * (k % 3) / 3  # popped up to 0.2 s late
        assert dues(sched.pop_due(now)) == [j]
        sched.finished(j)  # completion time is irrelevant to the next slot
        assert sched.next_wakeup() == pytest.approx(T0 + k + 1, abs=1e-9)
    assert j.skipped_slots == 0
    assert j.run_id == 1000


def test_missed_slots_are_skipped_not_bunched() -> None:
    """After a long stall the job runs once, the missed slots are counted, and the phase is kept."""
    sched = Schedule(slack_s=0)
    j = job(period_s=1.0)
    sched.add(j, T0)
    sched.pop_due(T0)
    sched.finished(j)
    actions = sched.pop_due(T0 + 5.5)  # slots 1..5 fell due while we were away
    assert dues(actions) == [j]
    sched.finished(j)
    assert j.skipped_slots == 4  # slot 1 ran (late); 2, 3, 4, 5 are skipped
    assert sched.next_wakeup() == pytest.approx(T0 + 6)
    assert sched.pop_due(T0 + 5.9) == []
    assert dues(sched.pop_due(T0 + 6)) == [j]


def test_running_job_is_not_started_twice() -> None:
    """A slot that falls due while the job still runs is skipped and counted."""
    sched = Schedule(slack_s=0)
    j = job(period_s=1.0)
    sched.add(j, T0)
    assert dues(sched.pop_due(T0)) == [j]
    assert dues(sched.pop_due(T0 + 1)) == []
    assert j.skipped_slots == 1
    assert j.run_id == 1
    sched.finished(j)
    assert dues(sched.pop_due(T0 + 2)) == [j]
    assert j.run_id == 2


def test_timeout_reported_once_per_run() -> None:
    """An overrunning run is reported once at started_at + timeout, never again, and not restarted."""
    sched = Schedule(slack_s=0)
    j = job(period_s=1.0, timeout_s=2.5)
    sched.add(j, T0)
    sched.pop_due(T0)
    assert timeouts(sched.pop_due(T0 + 2.4)) == []
    assert sched.pop_due(T0 + 2.5) == [(Event.TIMEOUT, j)]
    seen: list[tuple[Event, Job]] = []
    for k in range(3, 20):
        seen += sched.pop_due(T0 + k)
    assert seen == []  # neither a second timeout nor a second start while it hangs
    assert j.running
    sched.finished(j)
    assert dues(sched.pop_due(T0 + 20)) == [j]
    assert j.run_id == 2
    assert sched.pop_due(T0 + 22.5) == [(Event.TIMEOUT, j)]


def test_no_timeout_when_run_finishes_in_time() -> None:
    """A run that returned before its timeout is never reported."""
    sched = Schedule(slack_s=0)
    j = job(period_s=None, timeout_s=2.0)
    sched.add(j, T0)
    sched.pop_due(T0)
    sched.finished(j)
    assert sched.pop_due(T0 + 100) == []


def test_old_runs_timeout_does_not_hit_the_next_run() -> None:
    """The timeout entry of a finished run is ignored even if a newer run is going."""
    sched = Schedule(slack_s=0)
    j = job(period_s=1.0, timeout_s=1.5)
    sched.add(j, T0)
    sched.pop_due(T0)  # run 1, timeout at +1.5
    sched.finished(j)
    assert dues(sched.pop_due(T0 + 1)) == [j]  # run 2, timeout at +2.5
    assert timeouts(sched.pop_due(T0 + 1.5)) == []
    assert timeouts(sched.pop_due(T0 + 2.5)) == [j]


def test_one_shot_runs_once() -> None:
    """A job with period None runs once and books nothing more."""
    sched = Schedule(slack_s=0)
    j = job(period_s=None, timeout_s=1.0)
    sched.add(j, T0)
    assert dues(sched.pop_due(T0)) == [j]
    sched.finished(j)
    assert sched.pop_due(T0 + 1e6) == []
    assert sched.next_wakeup() is None
    assert j.run_id == 1


def test_slack_batches_nearly_simultaneous_jobs() -> None:
    """Entries due within slack_s of now are popped together; later ones wait."""
    sched = Schedule(slack_s=0.002)
    a, b, c = job(name="a"), job(name="b"), job(name="c")
    sched.add(a, T0)
    sched.add(b, T0 + 0.0015)
    sched.add(c, T0 + 0.003)
    assert dues(sched.pop_due(T0)) == [a, b]
    assert sched.next_wakeup() == pytest.approx(T0 + 0.003)
    assert dues(sched.pop_due(T0 + 0.0015)) == [c]


def test_zero_slack_pops_only_what_is_due() -> None:
    """With slack 0 a job due a microsecond later is not popped."""
    sched = Schedule(slack_s=0)
    a, b = job(name="a"), job(name="b")
    sched.add(a, T0)
    sched.add(b, T0 + 1e-6)
    assert dues(sched.pop_due(T0)) == [a]


def test_due_jobs_come_out_in_time_order() -> None:
    """Several due jobs are returned earliest first, ties in booking order."""
    sched = Schedule(slack_s=0)
    jobs = [job(name=str(i)) for i in range(5)]
    for i, j in enumerate(jobs):
        sched.add(j, T0 + [3, 1, 4, 1, 5][i])
    assert dues(sched.pop_due(T0 + 10)) == [jobs[1], jobs[3], jobs[0], jobs[2], jobs[4]]


def test_retired_jobs_never_run_again() -> None:
    """A retired job's entries are dropped, whatever their kind."""
    sched = Schedule(slack_s=0)
    j = job(period_s=1.0, timeout_s=0.5)
    sched.add(j, T0)
    sched.pop_due(T0)
    sched.retry(j, T0 + 0.1)
    j.retired = True
    assert sched.pop_due(T0 + 100) == []
    assert len(sched) == 0
    assert sched.next_wakeup() is None


def test_retry_polls_a_running_job_without_booking_a_slot() -> None:
    """retry() yields (RETRY, job) while that run goes on, and books no extra periodic slot."""
    sched = Schedule(slack_s=0)
    j = job(period_s=10.0)
    sched.add(j, T0)
    sched.pop_due(T0)
    sched.retry(j, T0 + 0.5)
    assert sched.pop_due(T0 + 0.5) == [(Event.RETRY, j)]
    assert j.run_id == 1
    sched.retry(j, T0 + 1)
    sched.finished(j)
    assert sched.pop_due(T0 + 1) == []  # the run it was for is over
    assert sched.next_wakeup() == T0 + 10


def test_non_positive_period_is_refused() -> None:
    """A periodic job needs a positive period."""
    sched = Schedule(slack_s=0)
    sched.add(job(period_s=0.0), T0)
    with pytest.raises(ValueError, match="period must be positive"):
        sched.pop_due(T0)


def test_event_kinds() -> None:
    """The three heap entry kinds are distinct."""
    assert len({Event.DUE, Event.TIMEOUT, Event.RETRY}) == 3


@settings(max_examples=200, deadline=None)
@given(
    period=st.floats(0.01, 10),
    steps=st.lists(st.tuples(st.floats(0, 3.5), st.booleans()), min_size=1, max_size=60),
)
def test_every_slot_is_run_or_skipped_exactly_once(period: float, steps: list[tuple[float, bool]]) -> None:
    """Whatever the pop times and run lengths, each slot is run or skipped once and the phase never drifts."""
    sched = Schedule(slack_s=0)
    j = job(period_s=period)
    sched.add(j, T0)
    now = T0
    runs = 0
    for advance, finish in steps:
        now += advance * period
        started = dues(sched.pop_due(now))
        assert len(started) <= 1  # never bunched
        runs += len(started)
        if finish:
            sched.finished(j)
        wakeup = sched.next_wakeup()
        assert wakeup is not None
        assert wakeup > now
        slots_ahead = (wakeup - T0) / period
        assert slots_ahead == pytest.approx(round(slots_ahead), abs=1e-6)  # phase-locked to T0
    # Every slot before the next booked one was dealt with: run, or skipped and counted.
    next_slot = sched.next_wakeup()
    assert next_slot is not None
    assert runs + j.skipped_slots == round((next_slot - T0) / period)


# --- Timing rules, moved here from test_monitor.py (issue 12 §6): the same assertions on a fake clock ---


def test_no_drift_poll_times_stay_phase_locked() -> None:
    """A period-0.1 job whose runs take a variable 45-50 ms still starts on a 0.1 s grid
    (moved from test_monitor.py: there it ran on real threads and the wall clock).

    The fake clock wakes the way the Monitor's scheduler thread does: at
    ``next_wakeup()``, up to 3 ms late, and each run ends (``finished``) after
    its duration.
    """
    sched = Schedule()
    j = job(period_s=0.1, timeout_s=10.0)
    durations = [0.045, 0.05]
    lateness = [0.0, 0.001, 0.003, 0.002]
    sched.add(j, T0)
    starts: list[float] = []
    ends_at: float | None = None
    now = T0
    while len(starts) < 12:
        wake = sched.next_wakeup()
        assert wake is not None
        wake += lateness[len(starts) % len(lateness)]
        if ends_at is not None and ends_at <= wake:
            now, ends_at = ends_at, None
            sched.finished(j)
            continue
        now = max(now, wake)
        for event, due in sched.pop_due(now):
            if event is Event.DUE:
                starts.append(now)
                ends_at = now + durations[len(starts) % 2]
                assert due is j
    starts = starts[1:12]

    def phase_error(t: float, anchor: float) -> float:
        offset = (t - anchor) % 0.1
        return min(offset, 0.1 - offset)

    # With drift every start would slip by the run time (45-50 ms): about half would be off-grid.
    best = max(sum(phase_error(t, anchor) < 0.02 for t in starts) for anchor in starts)
    assert best >= len(starts) - 2, [round(t - starts[0], 3) for t in starts]
    intervals = [b - a for a, b in itertools.pairwise(starts)]
    assert statistics.median(intervals) == pytest.approx(0.1, abs=0.02)
    assert j.skipped_slots == 0


def test_a_hanging_job_times_out_once_while_others_keep_their_cadence() -> None:
    """A period-0.02 job that hangs (timeout 0.1 s) is started once and reported once, and a
    period-0.01 job beside it keeps its 10 ms cadence (moved from test_monitor.py's timeout test)."""
    sched = Schedule()
    hang = job(period_s=0.02, timeout_s=0.1, name="hang")
    ticker = job(period_s=0.01, timeout_s=10.0, name="ticker")
    sched.add(hang, T0)
    sched.add(ticker, T0)
    hang_starts: list[float] = []
    ticker_starts: list[float] = []
    reported: list[float] = []
    now = T0
    while len(ticker_starts) < 60:  # 0.6 s: six timeouts' worth
        wake = sched.next_wakeup()
        assert wake is not None
        now = max(now, wake + 0.001)  # the thread wakes 1 ms late
        for event, due in sched.pop_due(now):
            if event is Event.TIMEOUT:
                reported.append(now)
            elif due is hang:
                hang_starts.append(now)  # never returns
            else:
                ticker_starts.append(now)
                sched.finished(due)  # returns at once
    assert len(hang_starts) == 1  # never started again while it hangs
    assert len(reported) == 1  # reported once for this run
    assert reported[0] == pytest.approx(T0 + 0.1, abs=0.005)
    gaps = [b - a for a, b in itertools.pairwise(ticker_starts)]
    assert statistics.median(gaps) < 0.03  # the other point kept its 10 ms cadence
    assert hang.skipped_slots >= 25
