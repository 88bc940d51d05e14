"""The hub loop's observed time: its monotonic clock with the loop's own pauses left out. No I/O.

A hub that was not running cannot judge the time it was not running. When
its process is stopped (SIGSTOP), its virtual machine frozen or its CPU
starved, agents keep sending; the hub, resumed, would otherwise count those
seconds as their silence and turn live agents STALE. So the loop measures
each turn and leaves out of its clock what it could not have observed:

* a poll that returned much later than its timeout allowed (the usual place
  for a pause to land: the hub mostly waits in poll), and
* a turn's work that took far longer than any turn should (the budgets in
  :mod:`gsmon.hub.server` keep a turn to milliseconds).

How long is too long depends on what the hub judges: a pause of ``p``
seconds turns an agent that heartbeats every ``h`` seconds falsely silent
once ``p + h`` exceeds its window ``agent_liveness x h``, so the pause must
be caught when it is shorter than the window's slack ``(agent_liveness - 1)
x h`` (0.4 s for heartbeats every 0.2 s, 2 s at the default 1 s). The core
tells the clock the shortest slack it has to keep
(:attr:`gsmon.hub.state.HubState.blind_tolerance_s`) and the clock counts
as a pause whatever exceeds half of it, or the fixed limits below when they
are shorter.

:class:`ObservedClock` gives the loop that time for its core; when it
detects a pause, the server tells the core (:meth:`gsmon.hub.state.HubState.pause`),
which then waits a grace before it judges anything again. Observed time
never goes backwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_TURN_S", "MIN_PAUSE_S", "MIN_THRESHOLD_S", "ObservedClock"]

# A poll later than its timeout by more than this was a pause (at most: a
# shorter blind tolerance lowers it). Scheduling jitter on a busy machine is
# tens of milliseconds; a pause shorter than this is absorbed by the liveness
# factor (3 heartbeats) and the stale slack at the default timings.
MIN_PAUSE_S: Final = 0.5
# A turn's work longer than this held a pause (or was itself a blind spot).
MAX_TURN_S: Final = 1.0
# Never below this, however short the tolerance: ordinary scheduling jitter
# is not a pause (each pause holds judgment for a grace).
MIN_THRESHOLD_S: Final = 0.05


@dataclass(slots=True)
class ObservedClock:
    """Monotonic time minus the pauses detected so far."""

    min_pause_s: float = MIN_PAUSE_S
    max_turn_s: float = MAX_TURN_S
    # The shortest time the hub may go unobserved without misjudging anything
    # (module docstring); infinite: no such limit, the two above hold.
    blind_tolerance_s: float = float("inf")
    paused_total_s: float = 0.0
    pauses: int = 0
    _last_return: float | None = None

    def observe(self, before_poll: float, after_poll: float, timeout_s: float) -> tuple[float, float]:
        """The observed time once a poll with ``timeout_s`` returned, and the pause found in this turn (0.0: none).

        ``before_poll`` and ``after_poll`` are monotonic readings taken just
        before and just after the poll; the turn's work is the time from the
        previous poll's return to this poll's start.
        """
        pause = 0.0
        limit = max(MIN_THRESHOLD_S, self.blind_tolerance_s / 2)
        late = after_poll - before_poll - max(0.0, timeout_s)
        if late > min(self.min_pause_s, limit):
            pause += late
        if self._last_return is not None:
            work = before_poll - self._last_return
            if work > min(self.max_turn_s, limit):
                pause += work
        self._last_return = after_poll
        if pause:
            self.paused_total_s += pause
            self.pauses += 1
        return after_poll - self.paused_total_s, pause
