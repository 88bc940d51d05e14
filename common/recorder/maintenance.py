"""Roll-ups and retention, in the background and in small steps.

:class:`Maintenance` runs :meth:`Maintenance.step` every
``maintenance_interval_s`` in a thread of its own:

1. each path's retention (``paths.raw_days``/``rollup_days``) is set from the
   configuration: for new paths, and for all of them once at start (the
   configuration may have changed);
2. roll-ups: the slots (``rollup_s``, default one minute) between
   ``meta.rolled_until_us`` and ``now - max(120 s, 2 slots)`` are computed
   from the samples, at most :data:`ROLLUP_CHUNK_S` of data per transaction;
   slots holding rows committed late (the writer notes them, see
   :class:`~gsmon.common.recorder.writer.RollupWatermark`) are computed again;
3. raw rows older than their path's ``raw_days`` and roll-ups older than its
   ``rollup_days`` are deleted, :data:`PRUNE_BATCH` rows per transaction, so
   the writer never waits for more than one small batch; on PostgreSQL a
   whole monthly partition past the longest retention is dropped instead;
4. gaps and ended context intervals older than the longest roll-up
   retention go too.

The same steps run once, to completion, after ``gsmon history import``
(:func:`rollup_range`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import Final

import sqlalchemy as sa

from gsmon.common.recorder.policy import Retention
from gsmon.common.recorder.store import Store, rollups, samples
from gsmon.common.recorder.writer import RollupWatermark

__all__ = ["PRUNE_BATCH", "ROLLUP_CHUNK_S", "Maintenance", "rollup_range"]

log = logging.getLogger(__name__)

PRUNE_BATCH: Final = 5000
ROLLUP_CHUNK_S: Final = 600
_DAY_US: Final = 86_400 * 1_000_000
ROLLED_UNTIL_KEY: Final = "rolled_until_us"


def rollup_range(store: Store, start_us: int, end_us: int, slot_s: int) -> int:
    """Compute the roll-ups of every slot touching ``[start_us, end_us)`` (in chunks); rows written."""
    slot_us = slot_s * 1_000_000
    low = (start_us // slot_us) * slot_us
    high = -(-end_us // slot_us) * slot_us
    chunk = max(slot_us, (ROLLUP_CHUNK_S * 1_000_000 // slot_us) * slot_us)
    written = 0
    while low < high:
        upper = min(high, low + chunk)
        with store.begin(immediate=True) as conn:
            written += store.rollup(conn, low, upper, slot_us)
        low = upper
    return written


class Maintenance:
    """The background job (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        retention: Retention,
        watermark: RollupWatermark | None = None,
        *,
        interval_s: float = 10.0,
        time_budget_s: float = 2.0,
    ) -> None:
        self.store = store
        self.retention = retention
        self.watermark = watermark if watermark is not None else RollupWatermark()
        self.interval_s = interval_s
        self.time_budget_s = time_budget_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._all_paths_done = False
        self.pruned_rows = 0
        self.rolled_rows = 0
        self.errors = 0
        with store.read() as conn:
            value = store.get_meta(conn, ROLLED_UNTIL_KEY)
        if value is not None:
            self.watermark.set_rolled(int(value))

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gsmon-recorder-maintenance", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.step(time.time())
            except sa.exc.SQLAlchemyError as error:
                self.errors += 1
                log.warning("history maintenance failed (will retry): %s", " ".join(str(error).split())[:300])

    # -- one step -----------------------------------------------------------------------------

    def step(self, now: float) -> None:
        """One round of everything (see the module docstring), bounded by ``time_budget_s`` for pruning."""
        now_us = round(now * 1_000_000)
        self.assign_retention()
        self.roll(now_us)
        self.prune(now_us)

    def assign_retention(self) -> None:
        """Set each path's retention from the configuration: every path at the first step (the
        configuration may have changed since the last run), then only the new ones."""
        store = self.store
        with store.read() as conn:
            known = store.retention_of_paths(conn, only_new=self._all_paths_done)
        groups: dict[tuple[float, float], list[int]] = defaultdict(list)
        for ident, path, raw_days, rollup_days in known:
            rule = self.retention.rule_for(path)
            wanted = (rule.raw_days, rule.rollup_days)
            if (raw_days, rollup_days) != wanted:
                groups[wanted].append(ident)
        if groups:
            with store.begin(immediate=True) as conn:
                for (raw_days, rollup_days), ids in groups.items():
                    store.set_retention(conn, ids, raw_days, rollup_days)
        self._all_paths_done = True

    def roll(self, now_us: int) -> None:
        store = self.store
        slot_us = self.retention.rollup_s * 1_000_000
        horizon = ((now_us - max(120 * 1_000_000, 2 * slot_us)) // slot_us) * slot_us
        until = self.watermark.rolled_until_us
        if until is None:
            with store.read() as conn:
                oldest = store.oldest_sample_us(conn)
            if oldest is None:
                return
            until = (oldest // slot_us) * slot_us
        dirty = self.watermark.take_dirty()
        if dirty is not None and dirty < until:
            self.rolled_rows += rollup_range(store, dirty, until, self.retention.rollup_s)
        if horizon <= until:
            return
        self.rolled_rows += rollup_range(store, until, horizon, self.retention.rollup_s)
        with store.begin(immediate=True) as conn:
            store.set_meta(conn, ROLLED_UNTIL_KEY, str(horizon))
        self.watermark.set_rolled(horizon)

    def prune(self, now_us: int) -> None:
        store = self.store
        deadline = time.monotonic() + self.time_budget_s
        retention = self.retention
        if store.dialect == "postgresql":
            self._drop_partitions(now_us)
        classes = {(rule.raw_days, rule.rollup_days) for rule in retention.overrides}
        classes.add((retention.raw_days, retention.rollup_days))
        for table, column, index in ((samples, "raw_days", 0), (rollups, "rollup_days", 1)):
            for days in sorted({item[index] for item in classes}):
                cutoff = now_us - round(days * _DAY_US)
                while time.monotonic() < deadline:
                    with store.begin(immediate=True) as conn:
                        deleted = store.prune(conn, table, column, days, cutoff, PRUNE_BATCH)
                    self.pruned_rows += deleted
                    if deleted < PRUNE_BATCH:
                        break
        cutoff = now_us - round(retention.longest_rollup_days * _DAY_US)
        with store.begin(immediate=True) as conn:
            store.prune_gaps(conn, cutoff)
            store.prune_contexts(conn, cutoff)

    def _drop_partitions(self, now_us: int) -> None:
        store = self.store
        for table, days in (
            ("samples", self.retention.longest_raw_days),
            ("rollups", self.retention.longest_rollup_days),
        ):
            cutoff = now_us - round(days * _DAY_US)
            with store.begin() as conn:
                for name, _low, high in store.partitions(conn, table):
                    if high <= cutoff:
                        log.info("history store: dropping partition %s (all of it past its retention)", name)
                        store.drop_partition(conn, name)
