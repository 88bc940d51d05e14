"""The writer thread: batches the core's rows and events into one transaction per commit interval.

::

    writer = Writer(store, commit_interval_s=0.5, max_queue_rows=500_000)
    writer.start()
    writer.submit(rows, events, coverage=(("GS1/",), until_us))   # from the recorder's loop
    ...
    writer.stop()                                                 # commits what is queued, then returns

Each commit holds everything submitted since the last one: new path and
agent names are interned, rows inserted idempotently, gaps and context
intervals stored, and the followed prefixes' coverage moved to the hub time
of the last poll whose rows are in it -- all in ONE transaction, so a
recorder killed at any moment leaves coverage that never claims rows it did
not commit (the next start records a gap from there).

Back-pressure, not loss: when more than ``max_queue_rows`` rows wait (the
database is slow or down), :meth:`Writer.submit` blocks; the recorder's loop
then stops reading, ZeroMQ drops what overflows, the Subscriber notices and
re-snapshots, and the core records that as a gap. A failed commit is retried
with backoff, the batch kept.

Health figures (:class:`WriterStats`): rows committed, commits, the lag of
each committed row (seconds from the NODE's receipt to the end of the commit
that stored it), queued rows, the last error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from gsmon.common.recorder import values
from gsmon.common.recorder.core import ContextEnded, ContextStarted, Event, GapEvent, Row
from gsmon.common.recorder.store import Store

__all__ = ["RollupWatermark", "Writer", "WriterStats"]

log = logging.getLogger(__name__)

_MAX_BACKOFF_S: Final = 10.0


class RollupWatermark:
    """Shared by the writer and the maintenance job: roll-ups are complete below ``rolled_until_us``;
    rows committed below it (late rows: a lagging agent clock, a backlog) move ``dirty_from_us`` back so
    that the slots they fall in are computed again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rolled_until_us: int | None = None
        self.dirty_from_us: int | None = None

    def note_rows(self, oldest_us: int) -> None:
        with self._lock:
            until = self.rolled_until_us
            if (
                until is not None
                and oldest_us < until
                and (self.dirty_from_us is None or oldest_us < self.dirty_from_us)
            ):
                self.dirty_from_us = oldest_us

    def take_dirty(self) -> int | None:
        with self._lock:
            dirty, self.dirty_from_us = self.dirty_from_us, None
            return dirty

    def set_rolled(self, until_us: int) -> None:
        with self._lock:
            self.rolled_until_us = until_us


@dataclass
class WriterStats:
    """What the writer has done (read by the health points)."""

    rows_committed: int = 0
    commits: int = 0
    queued_rows: int = 0
    gaps: int = 0
    errors: int = 0
    last_error: str = ""
    last_commit_mono: float = 0.0
    lag_max_s: float = 0.0  # since the last take_window()
    lag_sum_s: float = 0.0
    lag_rows: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take_window(self) -> tuple[float, float, int]:
        """``(max lag, mean lag, rows)`` over the committed rows since the last call."""
        with self.lock:
            window = (self.lag_max_s, self.lag_sum_s / self.lag_rows if self.lag_rows else 0.0, self.lag_rows)
            self.lag_max_s = self.lag_sum_s = 0.0
            self.lag_rows = 0
            return window


@dataclass
class _Batch:
    rows: list[Row]
    events: list[Event]
    coverage: tuple[tuple[str, ...], int] | None
    submitted: float


class Writer:
    """Writes submitted rows and events in a thread of its own (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        commit_interval_s: float = 0.5,
        max_queue_rows: int = 500_000,
        watermark: RollupWatermark | None = None,
    ) -> None:
        self.store = store
        self.commit_interval_s = commit_interval_s
        self.max_queue_rows = max_queue_rows
        self.watermark = watermark if watermark is not None else RollupWatermark()
        self.stats = WriterStats()
        self._queue: list[_Batch] = []
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._coverage_start: dict[str, int] = {}

    # -- the recorder's side ------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gsmon-recorder-writer", daemon=True)
            self._thread.start()

    def submit(
        self,
        rows: list[Row],
        events: Sequence[Event] = (),
        coverage: tuple[tuple[str, ...], int] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> bool:
        """Queue rows and events (and the coverage they complete); blocks while the queue is full.

        Returns False when ``timeout_s`` passed first or the writer is stopping (nothing was queued).
        """
        if not rows and not events and coverage is None:
            return True
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while self._queued_rows >= self.max_queue_rows and not self._stopping:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(0.5 if remaining is None else min(0.5, remaining))
            if self._stopping and self._thread is None:
                return False
            self._queue.append(_Batch(rows, list(events), coverage, time.monotonic()))
            self._queued_rows += len(rows)
            self.stats.queued_rows = self._queued_rows
            if self._queued_rows >= 50_000:
                self._cond.notify_all()  # a big backlog: commit now rather than at the interval
        return True

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until everything submitted so far is committed; whether it was within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._cond.notify_all()
            while (self._queue or self._busy) and time.monotonic() < deadline:
                self._cond.wait(0.05)
            return not self._queue and not self._busy

    def stop(self, timeout_s: float = 30.0) -> None:
        """Commit what is queued (for up to ``timeout_s``), then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    # -- the thread ---------------------------------------------------------------------------

    _busy = False

    def _run(self) -> None:
        backoff = 0.5
        pending: list[_Batch] = []
        while True:
            with self._cond:
                if not pending:
                    deadline = time.monotonic() + self.commit_interval_s
                    while not self._stopping and (remaining := deadline - time.monotonic()) > 0:
                        if self._queued_rows >= 50_000:
                            break
                        self._cond.wait(remaining)
                    pending, self._queue = self._queue, []
                stopping = self._stopping
                self._busy = bool(pending)
            if pending:
                try:
                    self._commit(pending)
                except Exception as error:  # the database, or a row it refuses: logged, retried, never a dead thread
                    self.store.forget_names()
                    text = " ".join(str(getattr(error, "orig", None) or error).split())[:300]
                    self.stats.errors += 1
                    if text != self.stats.last_error:
                        log.error("history store %s: the commit failed (retrying): %s", self.store.describe(), text)
                    self.stats.last_error = text
                    if stopping and backoff >= _MAX_BACKOFF_S:
                        log.error("giving up on %d queued rows at shutdown", sum(len(b.rows) for b in pending))
                        return
                    time.sleep(backoff)
                    backoff = min(_MAX_BACKOFF_S, backoff * 2)
                    continue
                backoff = 0.5
                done = sum(len(batch.rows) for batch in pending)
                pending = []
                with self._cond:
                    self._queued_rows -= done
                    self.stats.queued_rows = self._queued_rows
                    self._busy = False
                    self._cond.notify_all()
            elif stopping:
                return

    def _commit(self, batches: list[_Batch]) -> None:
        store = self.store
        rows = [row for batch in batches for row in batch.rows]
        events = [event for batch in batches for event in batch.events]
        coverage: dict[str, int] = {}
        for batch in batches:
            if batch.coverage is not None:
                prefixes, until_us = batch.coverage
                for prefix in prefixes:
                    coverage[prefix] = max(until_us, coverage.get(prefix, until_us))
        with store.begin(immediate=True) as conn:
            if rows:
                path_ids = store.path_ids(conn, {row.path for row in rows})
                agent_names = {row.agent for row in rows if row.agent is not None}
                agent_ids = store.agent_ids(conn, agent_names) if agent_names else {}
                split = values.split
                tuples = []
                oldest = rows[0].t_us
                for row in rows:
                    num, val = split(row.value)
                    t_us = row.t_us
                    if t_us < oldest:
                        oldest = t_us
                    tuples.append(
                        (
                            path_ids[row.path],
                            t_us,
                            row.level,
                            row.raw_level,
                            row.stale,
                            num,
                            val,
                            agent_ids.get(row.agent) if row.agent is not None else None,
                            row.context,
                            int(row.why),
                        )
                    )
                store.insert_samples(conn, tuples)
            for event in events:
                if isinstance(event, GapEvent):
                    store.add_gap(conn, event.prefix, event.start_us, event.end_us, event.reason)
                elif isinstance(event, ContextStarted):
                    store.start_context(conn, event.kind, event.prefix, event.context, event.t_us, "tree")
                elif isinstance(event, ContextEnded):
                    store.end_context(conn, event.kind, event.prefix, event.t_us)
            for prefix, until_us in coverage.items():
                start = self._coverage_start.setdefault(prefix, until_us)
                store.set_coverage(conn, prefix, start, until_us)
        committed = time.monotonic()
        if rows:
            self.watermark.note_rows(oldest)
        stats = self.stats
        with stats.lock:
            stats.rows_committed += len(rows)
            stats.commits += 1
            stats.gaps += sum(isinstance(event, GapEvent) for event in events)
            stats.last_commit_mono = committed
            lag_max, lag_sum = stats.lag_max_s, 0.0
            for batch in batches:
                if not batch.rows:
                    continue
                for row in batch.rows:
                    received = row.received if row.received >= 0 else batch.submitted
                    lag = committed - received
                    lag_sum += lag
                    if lag > lag_max:
                        lag_max = lag
            stats.lag_max_s = lag_max
            stats.lag_sum_s += lag_sum
            stats.lag_rows += len(rows)
