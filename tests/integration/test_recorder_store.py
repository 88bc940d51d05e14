"""The history store on SQLite and on a real PostgreSQL 15 (pgcluster.py): the same tests on both.

Rows go in through the real Writer thread and come out through ``answer``,
the one query path that ``gsmon history`` and the hub-forwarded service use.
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from harness import wait_until

from gsmon.common.recorder.core import RecorderCore
from gsmon.common.recorder.maintenance import Maintenance
from gsmon.common.recorder.policy import Retention, RetentionRule
from gsmon.common.recorder.query import AnswerError, answer
from gsmon.common.recorder.store import SCHEMA_VERSION, Store, StoreError, samples
from gsmon.common.recorder.transfer import export_lines, import_lines
from gsmon.common.recorder.writer import Writer

DAY = 86_400.0


@dataclass
class Node:
    value: Any
    alertcode: int = 0
    stale: bool = False
    kind: str = "point"
    agent: str | None = "ant1"
    polled_at_s: float | None = None
    reported_alert: int | None = None


def write(store: Store, core: RecorderCore, until: float | None = None) -> None:
    writer = Writer(store, commit_interval_s=0.05)
    writer.start()
    rows, events = core.take()
    writer.submit(rows, events, (("",), round((until or time.time()) * 1e6)))
    assert writer.flush(30)
    writer.stop()


def series(core: RecorderCore, path: str, start: float, count: int, step_s: float, value: Any = None) -> None:
    for i in range(count):
        t = start + i * step_s
        core.observe(path, Node(value=float(i) if value is None else value, polled_at_s=t), t, 0.0)


def test_raw_samples_gaps_and_typed_values(history_url: str) -> None:
    store = Store.open(history_url)
    core = RecorderCore()
    t0 = time.time() - 3600
    series(core, "GS1/Ant1/az_deg", t0, 10, 1.0)
    core.observe("GS1/Ant1/mode", Node(value="TRACK", polled_at_s=t0), t0, 0.0)
    core.observe("GS1/Ant1/blob", Node(value=(1, b"\x00", {"k": [math.inf]}), polled_at_s=t0), t0, 0.0)
    core.gap("GS1/", t0 + 20, t0 + 30, "resync")
    core.observe("GS1/Ant1/az_deg", Node(value=99.0, polled_at_s=t0 + 31, alertcode=30), t0 + 31, 0.0)
    write(store, core)
    result = answer(store, "history", {"path": "GS1/Ant1/az_deg", "from": t0 - 1, "to": t0 + 40})
    assert [s["value"] for s in result["samples"]] == [float(i) for i in range(10)] + [99.0]
    assert result["samples"][-1]["level"] == 30
    assert result["gaps"] == [{"from": pytest.approx(t0 + 20), "to": pytest.approx(t0 + 30), "reason": "resync"}]
    blob = answer(store, "history", {"path": "GS1/Ant1/blob", "from": t0 - 1, "to": t0 + 1})["samples"][0]["value"]
    assert blob == (1, b"\x00", {"k": [math.inf]})
    assert type(blob) is tuple
    with pytest.raises(AnswerError) as error:
        answer(store, "history", {"path": "GS1/Ant1/nothing", "from": t0, "to": t0 + 1})
    assert error.value.reason == "unknown-path"
    with pytest.raises(AnswerError, match="from must be before to"):
        answer(store, "history", {"path": "GS1/Ant1/az_deg", "from": t0, "to": t0 - 1})
    store.close()


def test_a_row_written_twice_is_stored_once(history_url: str) -> None:
    store = Store.open(history_url)
    t0 = time.time() - 100
    for _ in range(2):  # a restarted recorder re-reading the same first snapshot
        core = RecorderCore()
        series(core, "GS1/a/x", t0, 5, 1.0)
        write(store, core)
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(samples)).scalar() == 5
    store.close()


def test_a_large_batch_of_every_type_is_stored_once_and_read_back_exactly(history_url: str) -> None:
    """Batches of more than a few hundred rows take PostgreSQL's COPY path: typed values, levels, stale rows
    and a second copy of the same rows (a restarted recorder) must come out as the statement path's do."""
    store = Store.open(history_url)
    t0 = time.time() - 3600
    values: list[Any] = [1.5, 7, True, "text", b"\x00\xff", (1, "a"), {"k": [None]}, None, -(2**62), math.nan]
    for _ in range(2):
        core = RecorderCore()
        for i in range(1_000):
            value = values[i % len(values)]
            node = Node(value=value, alertcode=(10, 20, 30)[i % 3], stale=i % 7 == 0, polled_at_s=t0 + i)
            core.observe(f"GS1/big/p{i % 10}", node, t0 + i, 0.0)
        write(store, core)
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(samples)).scalar() == 1_000
    got = answer(store, "history", {"path": "GS1/big/p3", "from": t0 - 1, "to": t0 + 1_000})["samples"]
    assert len(got) == 100
    assert all(sample["value"] == values[3] for sample in got)
    floats = answer(store, "history", {"path": "GS1/big/p0", "from": t0 - 1, "to": t0 + 1_000})["samples"]
    assert [sample["value"] for sample in floats][:2] == [1.5, 1.5]
    assert {sample["level"] for sample in floats} == {10, 20, 30}
    store.close()


def test_many_new_names_at_once_get_their_own_ids_and_known_ones_keep_theirs(history_url: str) -> None:
    """A first snapshot's names in one commit (PostgreSQL: as array parameters, above a few hundred)."""
    from gsmon.common.recorder.store import paths

    first = [f"GS1/a{n // 10}/p{n % 10}" for n in range(600)]
    with Store.open(history_url) as store:
        with store.begin(immediate=True) as conn:
            ids = store.path_ids(conn, first[:100])
        store.forget_names()  # as after a failed commit: every name is looked up again
        with store.begin(immediate=True) as conn:
            more = store.path_ids(conn, [*first, *first[:50]])
        with store.read() as conn:
            stored = {str(path): int(ident) for path, ident in conn.execute(sa.select(paths.c.path, paths.c.id))}
    assert more == stored
    assert len(stored) == 600
    assert all(more[name] == ident for name, ident in ids.items())  # known names keep their ids
    assert max(stored.values()) == 600  # and use up none (ids 1..600, none skipped)


def test_buckets_hold_min_max_avg_count_and_show_gaps_as_gaps(history_url: str) -> None:
    store = Store.open(history_url)
    core = RecorderCore()
    t0 = (time.time() // 60) * 60 - 3600
    series(core, "GS1/a/x", t0, 60, 1.0)  # 0..59 in the first minute
    core.gap("GS1/", t0 + 120, t0 + 180, "recorder down")
    write(store, core)
    result = answer(store, "history", {"path": "GS1/a/x", "from": t0, "to": t0 + 240, "every": 60})
    first, held, gap, after = result["buckets"]
    assert (first["min"], first["max"], first["avg"], first["count"]) == (0.0, 59.0, 29.5, 60)
    assert (first["first"], first["last"]) == (0.0, 59.0)
    assert held["count"] == 0
    assert held["last"] == 59.0  # nothing changed: the value held
    assert gap["count"] == 0
    assert gap["last"] is None
    assert gap["avg"] is None  # a gap is never a flat line
    assert after["last"] is None  # after a gap nothing is known until the next row
    assert result["gaps"][0]["reason"] == "recorder down"
    store.close()


def test_after_the_last_commit_of_a_stopped_recorder_nothing_is_claimed(history_url: str) -> None:
    store = Store.open(history_url)
    core = RecorderCore()
    now = time.time()
    series(core, "GS1/a/x", now - 120, 10, 1.0)
    write(store, core, until=now - 100)  # the recorder stopped 100 s ago
    result = answer(store, "history", {"path": "GS1/a/x", "from": now - 130, "to": now, "every": 30})
    assert result["gaps"][-1]["from"] == pytest.approx(now - 100)
    assert result["gaps"][-1]["reason"].startswith("not recorded")
    assert result["buckets"][-1]["last"] is None  # no flat line to now
    store.close()


def test_thirty_days_in_500_buckets_from_rollups(history_url: str) -> None:
    store = Store.open(history_url)
    core = RecorderCore()
    now = time.time()
    start = now - 30 * DAY
    series(core, "GS1/a/temp_celsius", start, 30 * 24, 3600.0)  # one row an hour for 30 days
    write(store, core)
    maintenance = Maintenance(store, Retention())
    maintenance.step(now)
    assert maintenance.rolled_rows >= 30 * 24
    begun = time.monotonic()
    result = answer(store, "history", {"path": "GS1/a/temp_celsius", "from": start, "to": now, "buckets": 500})
    elapsed = time.monotonic() - begun
    assert result["source"] == "rollups"
    assert len(result["buckets"]) == 500
    assert sum(b["count"] for b in result["buckets"]) == 30 * 24
    assert elapsed < 5  # the 200 ms target is measured in bench/recorder_bench.py, not here
    store.close()


def test_retention_prunes_raw_rows_per_prefix_and_keeps_rollups(history_url: str) -> None:
    store = Store.open(history_url)
    core = RecorderCore()
    now = time.time()
    old = now - 10 * DAY
    series(core, "GS1/Rack1/t", old, 5, 60.0)
    series(core, "GS1/Ant1/t", old, 5, 60.0)
    write(store, core)
    retention = Retention(raw_days=30, overrides=(RetentionRule("GS1/Rack1/", 7, 400),))
    Maintenance(store, retention).step(now)
    rack = answer(store, "history", {"path": "GS1/Rack1/t", "from": old - 60, "to": old + 600})
    ant = answer(store, "history", {"path": "GS1/Ant1/t", "from": old - 60, "to": old + 600})
    assert rack["samples"] == []
    assert len(ant["samples"]) == 5
    buckets = answer(store, "history", {"path": "GS1/Rack1/t", "from": old - 60, "to": old + 600, "buckets": 2})
    assert sum(b["count"] for b in buckets["buckets"]) == 5  # the roll-ups outlive the raw rows
    store.close()


def test_tree_at_a_moment_and_contexts(history_url: str) -> None:
    store = Store.open(history_url)
    core = RecorderCore()
    t0 = time.time() - 600
    series(core, "GS1/a/x", t0, 1, 10.0)
    core.set_context("pass", "GS1", "P123", t0 + 15)
    series(core, "GS1/a/y", t0 + 16, 1, 1.0, value="on")
    core.observe("GS1/a/x", Node(value=5.0, polled_at_s=t0 + 20), t0 + 20, 0.0)
    core.set_context("pass", "GS1", None, t0 + 40)
    core.observe("GS1/a/y", None, t0 + 50, 0.0)
    write(store, core)
    at = answer(store, "history", {"path": "GS1/", "at": t0 + 30})
    assert set(at["points"]) == {"GS1/a/x", "GS1/a/y"}
    assert at["points"]["GS1/a/y"]["context"] == "P123"
    assert set(answer(store, "history", {"path": "GS1/", "at": t0 + 60})["points"]) == {"GS1/a/x"}  # removed
    during = answer(store, "history", {"path": "GS1/a/x", "context": "P123"})
    assert during["from"] == pytest.approx(t0 + 15)
    assert during["to"] == pytest.approx(t0 + 40, abs=1e-5)
    # The context's first row (written when it started), the change at t0+20; the end's row is after it.
    assert [(s["value"], s["context"]) for s in during["samples"]] == [(0.0, "P123"), (5.0, "P123")]
    listed = answer(store, "contexts", {"from": t0, "to": t0 + 100})["contexts"]
    assert [(c["kind"], c["prefix"], c["context"], c["source"]) for c in listed] == [("pass", "GS1", "P123", "tree")]
    store.close()


def test_export_from_one_backend_and_import_into_sqlite_answer_the_same(history_url: str, tmp_path: Any) -> None:
    source = Store.open(history_url)
    core = RecorderCore()
    t0 = time.time() - 600
    series(core, "GS1/a/x", t0, 20, 1.0)
    core.observe("GS1/a/s", Node(value={"b": b"\x01", "n": None}, polled_at_s=t0), t0, 0.0)
    core.gap("GS1/a/", t0 + 100, t0 + 110, "resync")
    core.set_context("pass", "GS1", "P9", t0 + 5)
    write(source, core)
    text = "\n".join(export_lines(source)) + "\n"
    target = Store.open(f"sqlite:///{tmp_path / 'copy.db'}")
    counts = import_lines(target, io.StringIO(text))
    assert counts == {"samples": 21, "gaps": 1, "contexts": 1}  # the gap left GS1/a/ without context rows
    import_lines(target, io.StringIO(text))  # twice: nothing doubles
    for path in ("GS1/a/x", "GS1/a/s"):
        query = {"path": path, "from": t0 - 1, "to": t0 + 200}
        assert answer(target, "history", query) == answer(source, "history", query)
    assert json.loads(text.splitlines()[0])["format"] == "gsmon-history"
    source.close()
    target.close()


def test_a_store_of_a_newer_schema_is_refused_with_one_line(history_url: str) -> None:
    store = Store.open(history_url)
    with store.begin() as conn:
        store.set_meta(conn, "schema_version", str(SCHEMA_VERSION + 1))
    store.close()
    with pytest.raises(StoreError, match="newer gsmon"):
        Store.open(history_url)


def test_postgresql_partitions_by_month(pg_cluster: Any) -> None:
    store = Store.open(pg_cluster.new_database())
    core = RecorderCore()
    series(core, "GS1/a/x", time.time() - 80 * DAY, 3, 30 * DAY)
    write(store, core)
    with store.read() as conn:
        names = [name for name, _, _ in store.partitions(conn, "samples")]
    assert len(names) >= 4
    assert all(name.startswith("samples_p") for name in names)
    store.close()


def test_an_unreachable_store_gets_one_line(tmp_path: Any) -> None:
    with pytest.raises(StoreError, match="cannot open the history store") as error:
        Store.open(f"postgresql+psycopg://gsmon@/none?host={tmp_path}")
    assert "\n" not in str(error.value)
    with pytest.raises(StoreError, match="not a database URL"):
        Store.open("not a url")
    wait_until(lambda: True)
