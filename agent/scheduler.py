"""When each monitor job runs: a heap of due times, with no clock and no threads.

The Monitor's scheduler thread asks :meth:`Schedule.pop_due` what is due *now*
and sleeps until :meth:`Schedule.next_wakeup`; tests drive the same object
with made-up times.

Rules:

* A periodic job's next due time follows the schedule, not the completion
  time: ``due += period``. A job that fell behind (it ran longer than its
  period, or the machine was suspended) skips the slots it missed instead of
  running them back to back.
* A job still running when it falls due again is not started twice; that slot
  is skipped and counted.
* A job still running ``timeout_s`` after it started is reported once as timed
  out; it is started again only after it returns.
* A one-shot job (``period_s is None``) runs once.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final

__all__ = ["Event", "Job", "Schedule"]


class Event(IntEnum):
    """What a heap entry asks for."""

    DUE = 0  # start the job (and book its next periodic slot)
    TIMEOUT = 1  # check whether this run of the job is still going
    RETRY = 2  # poll a not-yet-finished legacy generator again (no new slot)


# Plain names for the members pop_due tests on every entry (an Enum attribute
# lookup costs ~0.1 us, several times per poll).
_DUE: Final = Event.DUE
_TIMEOUT: Final = Event.TIMEOUT


@dataclass(eq=False, slots=True)
class Job:
    """One monitor function and the points it feeds."""

    names: tuple[str, ...]
    run: Callable[[], Any]
    period_s: float | None
    timeout_s: float
    # Runtime state, owned by the Monitor (under its schedule lock).
    running: bool = False
    run_id: int = 0
    started_at: float = 0.0
    skipped_slots: int = 0
    retired: bool = False  # never run again (an exhausted generator)
    timeout_booked: bool = False  # a TIMEOUT entry for this job is in the heap
    timed_out_run: int = 0  # the run_id whose timeout was reported (once per run)
    extra: Any = field(default=None, repr=False)


class Schedule:
    """A heap of ``(when, order, event, job, run_id)`` entries."""

    __slots__ = ("_heap", "_order", "slack_s")

    def __init__(self, slack_s: float = 0.002) -> None:
        # Entries due within `slack_s` of now are popped together: waking the
        # thread once for a burst of nearly simultaneous points is far cheaper
        # than once per point, and 2 ms early is harmless for monitoring.
        self.slack_s = slack_s
        self._heap: list[tuple[float, int, Event, Job, int]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, job: Job, first_due: float) -> None:
        """Book the first run of ``job`` at ``first_due``."""
        self._push(first_due, Event.DUE, job, 0)

    def retry(self, job: Job, when: float) -> None:
        """Poll ``job`` again at ``when`` without booking a new periodic slot."""
        self._push(when, Event.RETRY, job, job.run_id)

    def next_wakeup(self) -> float | None:
        """When the earliest entry falls due, or ``None`` if nothing is booked."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[tuple[Event, Job]]:
        """Pop everything due by ``now`` and return what to do about it.

        ``(DUE, job)``: start ``job`` now (it is marked running).
        ``(TIMEOUT, job)``: the current run of ``job`` has overrun its timeout.
        ``(RETRY, job)``: poll ``job`` again.
        """
        actions: list[tuple[Event, Job]] = []
        heap = self._heap
        horizon = now + self.slack_s
        order = self._order
        while heap and heap[0][0] <= horizon:
            when, _, event, job, run_id = heap[0]
            if event is _DUE and not job.retired:
                period = job.period_s
                if period is not None and period > 0:
                    next_due = when + period
                    if next_due <= now:
                        next_due = self._catch_up(job, when, period, now)
                    # The next slot takes this entry's place: one sift of the
                    # heap instead of a pop and a push, on every periodic run.
                    heapq.heapreplace(heap, (next_due, next(order), _DUE, job, 0))
                else:
                    heapq.heappop(heap)
                    if period is not None:
                        raise ValueError(f"period must be positive, got {period}")
                if job.running:
                    job.skipped_slots += 1
                    if not job.timeout_booked and job.timed_out_run != job.run_id:
                        # Still running one period later: now its deadline is worth booking (see below).
                        job.timeout_booked = True
                        self._push(job.started_at + job.timeout_s, _TIMEOUT, job, 0)
                    continue
                job.running = True
                job.run_id += 1
                job.started_at = now
                # TIMEOUT entries are booked lazily, at most one per job. A job
                # whose period is shorter than its timeout (dt=1 s, timeout 10 s)
                # comes up as DUE again before its deadline, and is booked only
                # if it is still running then (above): a run that ends in time,
                # nearly every run, costs no heap entry. One entry per run would
                # keep ten stale entries per job in the heap and deepen every sift.
                if not job.timeout_booked and (period is None or job.timeout_s <= period):
                    job.timeout_booked = True
                    self._push(now + job.timeout_s, _TIMEOUT, job, 0)
                actions.append((_DUE, job))
                continue
            heapq.heappop(heap)
            if job.retired:
                continue
            if event is _TIMEOUT:
                job.timeout_booked = False
                if not job.running or job.timed_out_run == job.run_id:
                    continue  # the run it was booked for ended in time
                deadline = job.started_at + job.timeout_s
                if deadline > horizon:
                    # A later run than the one it was booked for: wait for *its* deadline.
                    job.timeout_booked = True
                    self._push(deadline, _TIMEOUT, job, 0)
                    continue
                job.timed_out_run = job.run_id  # reported once per run
                actions.append((_TIMEOUT, job))
            elif job.running and job.run_id == run_id:
                actions.append((event, job))
        return actions

    def finished(self, job: Job) -> None:
        """The current run of ``job`` returned; it may be started again."""
        job.running = False

    @staticmethod
    def _catch_up(job: Job, when: float, period: float, now: float) -> float:
        """Behind schedule (``when + period <= now``): the first slot after
        ``now``, keeping the phase; the slots jumped over count as skipped."""
        missed = math.floor((now - when) / period)
        job.skipped_slots += missed
        return when + (missed + 1) * period

    def _push(self, when: float, event: Event, job: Job, run_id: int) -> None:
        heapq.heappush(self._heap, (when, next(self._order), event, job, run_id))
