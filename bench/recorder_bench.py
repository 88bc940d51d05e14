"""The recorder's write rate, its core under the scale scenario, and a 30-day query, against baselines.

::

    python bench/recorder_bench.py                    # ~1 min on 2 cores (SQLite)
    python bench/recorder_bench.py --postgres         # the same against a throwaway PostgreSQL 15 cluster
    python bench/recorder_bench.py --quick            # seconds (the smoke test)

Scenarios, each with a baseline measured in the same run:

writes (``--rows``, default 300,000; every change saved)
    Point updates (1,000 paths, a new float each) go through
    :class:`~gsmon.common.recorder.core.RecorderCore` and the real
    :class:`~gsmon.common.recorder.writer.Writer` thread into a fresh store, end to end
    (core decisions, value encoding, name interning, idempotent inserts, commits every 0.5 s).
    Baseline: the same tuples inserted with the bare driver (``sqlite3`` / psycopg
    ``executemany``) into a table of the same shape and key, in batches of 50,000, with
    no core and no encoding: the floor the recorder is compared with.
scale (``--points``, default 100,000 = 1,000 agents x 100 points, at 1 Hz for ``--seconds`` s)
    The seed's policy (a heartbeat every 900 s, every 5 s in a pass; every level change)
    over points whose values change every second inside a 0.5 deadband: how many updates per
    second the core decides (it must take 100,000/s), and how many rows it writes.
    Baseline: a dict update per update (the cheapest loop that touches each update).
read (``--points`` NODE messages, ``--rounds`` rounds, default three; ``--only read`` runs it alone)
    What the recorder's loop does per update before any row exists, old and new in the same run:
    the old path (``Subscriber.poll``'s: :class:`~gsmon.common.clone.CloneCore` ``receive`` --
    decode, checks, the view's NodeState, the Change -- then ``RecorderCore.observe``) and the
    lean one the recorder uses (``Subscriber.poll_updates``': ``receive_nodes`` keeps the
    LeanNode decoded, then ``RecorderCore.observe_updates``), seed policy; each without a socket, and
    read from a real ZeroMQ SUB socket (a PUB->SUB pair on ``inproc://``, a round queued before
    it is read, by the Subscriber's own read loops ``client.read_changes``/``read_updates``; a
    tcp link adds the I/O thread's decoding of the stream, on another core's time). The lean
    figure with the socket's inverse is how many cores the loop needs at 100,000 updates/s.
    Baseline: the bare decode (``protocol.decode_hub_message``), the part no subscriber can skip.
    ``--recorder-gc``: the collector tuned after round 0 as the recorder tunes it after its first snapshot.
first commit (``--points`` new paths and one row each, in one transaction)
    The scale scenario's first commit: every path of the first snapshot interned, its row
    inserted. Baseline: the same with the names interned in chunks of 500 through SQLAlchemy
    (the code before array parameters; on SQLite that is the only path, so the two are equal).
query
    30 days of one point saved once a minute (43,200 rows), rolled up, then ``answer`` for 500
    buckets (median of 5 runs). Baseline: the same 500 buckets computed from the raw rows
    (``source`` "raw"), the path a store without roll-ups must take.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# The seed's policy (libgs MonitorDb): each point at most every 900 s, every 5 s in a pass; level changes at once.
SEED_POLICY = """
[[policy]]
path = "**"
min_interval_s = 900
save_dt_s = 900
context_min_interval_s = 5
context_save_dt_s = 5
"""
T0 = 1_800_000_000.0
#: --e2e: the steady-state lag (commit lag and lag behind the hub) under which the recorder "keeps up".
KEEPS_UP_S = 5.0
#: --e2e: how old the newest stored level change may be at the window's end when everything keeps up: one
#: flip period of the simulated agents (5 polls at 1 Hz) plus the recorder's own KEEPS_UP_S.
STORED_TRAIL_MAX_S = 10.0


@dataclass
class Node:
    value: Any
    alertcode: int = 0
    stale: bool = False
    kind: str = "point"
    agent: str | None = "agent1"
    polled_at_s: float | None = None
    reported_alert: int | None = None


def _pg_cluster() -> Any:
    spec = importlib.util.spec_from_file_location("gsmon_pgcluster", REPO / "tests" / "integration" / "pgcluster.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    why = module.unavailable()
    if why is not None:
        raise SystemExit(f"recorder_bench: no PostgreSQL: {why}")
    return module.PgCluster.start()


def bench_writes(url: str, rows: int, baseline_url: str | None) -> dict[str, float]:
    from gsmon.common.recorder.core import RecorderCore
    from gsmon.common.recorder.store import Store
    from gsmon.common.recorder.writer import Writer

    store = Store.open(url)
    core = RecorderCore()
    writer = Writer(store, commit_interval_s=0.5, max_queue_rows=200_000)
    writer.start()
    paths = [f"GS{n % 10}/Agent{n // 10}/point_{n}" for n in range(1000)]
    nodes = [Node(0.0) for _ in paths]
    begun = time.perf_counter()
    done = 0
    step = 0
    while done < rows:
        now = T0 + step * 0.001
        for index, path in enumerate(paths):
            node = nodes[index]
            node.value = float(step) + index * 1e-3
            node.polled_at_s = now
            core.observe(path, node, now, 0.0)  # type: ignore[arg-type]
        done += len(paths)
        step += 1
        if step % 20 == 0:
            batch, events = core.take()
            writer.submit(batch, events)
    batch, events = core.take()
    writer.submit(batch, events)
    writer.flush(300)
    elapsed = time.perf_counter() - begun
    writer.stop()
    committed = writer.stats.rows_committed
    store.close()
    # Baseline: the bare driver, same tuples, same key.
    tuples = [
        (i % 1000, round((T0 + (i // 1000) * 0.001) * 1e6), 0, None, False, float(i), None, 1, None, 3)
        for i in range(rows)
    ]
    ddl = (
        "CREATE TABLE s (path_id INTEGER, t_us BIGINT, level SMALLINT, raw_level SMALLINT, stale BOOLEAN, "
        "num DOUBLE PRECISION, val BYTEA, agent_id INTEGER, context TEXT, why SMALLINT, PRIMARY KEY (path_id, t_us))"
    )
    if baseline_url is None:
        folder = Path(tempfile.mkdtemp(prefix="gsmon-bench-"))
        conn = sqlite3.connect(folder / "baseline.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(ddl.replace("BYTEA", "BLOB").replace("DOUBLE PRECISION", "REAL"))
        begun = time.perf_counter()
        for start in range(0, rows, 50_000):
            conn.execute("BEGIN")
            conn.executemany("INSERT OR IGNORE INTO s VALUES (?,?,?,?,?,?,?,?,?,?)", tuples[start : start + 50_000])
            conn.execute("COMMIT")
        base_elapsed = time.perf_counter() - begun
        conn.close()
    else:
        import psycopg

        with psycopg.connect(baseline_url.replace("postgresql+psycopg", "postgresql")) as conn:
            conn.execute(ddl)
            conn.commit()
            begun = time.perf_counter()
            with conn.cursor() as cursor:
                for start in range(0, rows, 50_000):
                    cursor.executemany(
                        "INSERT INTO s VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                        tuples[start : start + 50_000],
                    )
                    conn.commit()
            base_elapsed = time.perf_counter() - begun
    return {
        "rows": committed,
        "rows_per_s": committed / elapsed,
        "baseline_rows_per_s": rows / base_elapsed,
    }


def bench_scale(points: int, seconds: int) -> dict[str, float]:
    from gsmon.common.recorder.core import RecorderCore
    from gsmon.common.recorder.policy import PathPattern, Policy, PolicyTable

    seed = PolicyTable([(PathPattern("**"), Policy(deadband_abs=0.5, save_dt_s=900, context_save_dt_s=5))])
    core = RecorderCore(seed)
    paths = [f"GS{n // 100_000}/Agent{n // 100}/point_{n % 100}" for n in range(points)]
    nodes = [Node(20.0) for _ in paths]
    rows = 0
    begun = time.perf_counter()
    for second in range(seconds):
        now = T0 + second
        wobble = 0.1 * (second % 3)
        for index, path in enumerate(paths):
            node = nodes[index]
            node.value = 20.0 + wobble
            node.polled_at_s = now
            core.observe(path, node, now, 0.0)  # type: ignore[arg-type]
        core.tick(now)
        rows += len(core.take()[0])
    elapsed = time.perf_counter() - begun
    updates = points * seconds
    table: dict[int, float] = {}
    begun = time.perf_counter()
    for second in range(seconds):
        for index in range(points):
            table[index] = second + 0.1
    base_elapsed = time.perf_counter() - begun
    return {
        "updates": updates,
        "updates_per_s": updates / elapsed,
        "rows": rows,
        "baseline_updates_per_s": updates / base_elapsed,
    }


def _read_messages(points: int, round_: int) -> list[tuple[bytes, bytes]]:
    """One round of the scale scenario's NODEs as the hub publishes them (every point a new value), with the
    alarm layer's ``since`` on each, as a hub with its state store (the end-to-end scenario's) sends them."""
    from gsmon.common import protocol as proto

    return [
        proto.encode_node(
            proto.NodeUpdate(
                path=path,
                epoch=7,
                seq=round_ * points + index + 1,
                kind="point",
                alertcode=10,
                alertstr="GREEN",
                stale=False,
                value=20.0 + 0.1 * round_,
                agent=path.split("/")[1],
                polled_at_s=T0 + round_,
                received_at_s=T0 + round_,
                dt_s=1.0,
                operator={"since": T0 - 3600.0},
            )
        )
        for index, path in enumerate(f"sim/sim-{n // 100:04d}/g{n % 10}/p{n % 100:04d}" for n in range(points))
    ]


class _Inproc:
    """A PUB->SUB pair on ``inproc://`` (no I/O thread, no port): what is sent is queued in the SUB's pipe at
    once, so a round can be sent first and its reading timed alone."""

    def __init__(self) -> None:
        import zmq

        self.context = zmq.Context()
        self.pub = self.context.socket(zmq.PUB)
        self.sub = self.context.socket(zmq.SUB)
        for sock in (self.pub, self.sub):
            sock.setsockopt(zmq.SNDHWM, 0)  # no limit: a whole round is queued
            sock.setsockopt(zmq.RCVHWM, 0)
        self.pub.bind("inproc://recorder-bench")
        self.sub.connect("inproc://recorder-bench")
        self.sub.setsockopt(zmq.SUBSCRIBE, b"sim/")
        self.sub.setsockopt(zmq.SUBSCRIBE, b"\x00nodes/sim/\x00")  # (1.4) NODES batches of sim/ too
        # The subscription reaches the PUB on a later send: probe until one arrives (a deadline, no sleep).
        deadline = time.monotonic() + 10.0
        while not self.sub.poll(0):
            if time.monotonic() > deadline:
                raise RuntimeError("the inproc subscription never took")
            self.pub.send_multipart([b"sim/probe", b"\x80"])
        while self.sub.poll(0):
            self.sub.recv_multipart()

    def fill(self, messages: list[tuple[bytes, bytes]]) -> None:
        send = self.pub.send_multipart
        for topic, payload in messages:
            send([topic, payload])

    def close(self) -> None:
        self.pub.close(linger=0)
        self.sub.close(linger=0)
        self.context.term()


def bench_read(points: int, rounds: int = 3, recorder_gc: bool = False) -> dict[str, float]:
    """The read path per update, old (Subscriber.poll's: CloneCore.receive, a NodeState and a Change each,
    RecorderCore.observe) and new (poll_updates': the lean CloneCore.receive_nodes, observe_updates), in
    one process, first without a socket, then read from a real ZeroMQ SUB socket (inproc) as the
    Subscriber's loops read it; baseline the bare decode. Medians of ``rounds`` rounds (round 0: every point
    seen first, so with 3 rounds the median is the slower of the two others; more rounds, a steadier median).
    ``recorder_gc``: after round 0 the collector is tuned as ``gsmon recorder`` tunes it after its first
    snapshot (gc_tuning.GcTuner.start: collect, freeze, thresholds), and restored at the end.
    Timed in CPU time of this process (``process_time``: inproc has no I/O thread, so that is the loop's work),
    so that time the loop waits for a core on a shared machine does not count as its cost."""
    import gc

    from gsmon.common import client
    from gsmon.common import protocol as proto
    from gsmon.common.client import read_changes, read_updates
    from gsmon.common.clone import CloneCore
    from gsmon.common.recorder.core import RecorderCore
    from gsmon.common.recorder.policy import PathPattern, Policy, PolicyTable

    seed = PolicyTable([(PathPattern("**"), Policy(min_interval_s=900, save_dt_s=900))])

    def pair(lean: bool, batched: bool = False) -> tuple[CloneCore, RecorderCore]:
        clone = CloneCore("sim/", "bench", 1, None, lean=lean)
        clone.epoch = 7  # as after a snapshot at seq 0
        clone.batched = batched  # as after an INFO saying ``nodes``
        return clone, RecorderCore(seed)

    variants = ("old", "new", "old_socket", "new_socket", "batch_socket")
    batch = getattr(client, "_BATCH", 1)
    cores = {name: pair(name != "old" and not name.startswith("old"), name == "batch_socket") for name in variants}
    timings: dict[str, list[float]] = {name: [] for name in (*variants, "decode")}
    link = _Inproc()
    threshold, tuner = gc.get_threshold(), None
    try:
        for round_ in range(rounds):
            if round_ == 1 and recorder_gc:
                from gsmon.common.gc_tuning import GcTuner

                tuner = GcTuner()
                tuner.start(sum(core.points for _, core in cores.values()))
            messages = _read_messages(points, round_)
            # (1.4) The same NODEs as the hub's drain sends them to a batch follower of sim/.
            most = proto.MAX_NODES_PER_BATCH
            batches = [
                (proto.nodes_topic("sim/"), proto.encode_nodes(messages[start : start + most]))
                for start in range(0, len(messages), most)
            ]
            now = T0 + round_
            for name in variants:
                clone, core = cores[name]
                socket = name.endswith("socket")
                if socket:
                    link.fill(batches if name == "batch_socket" else messages)
                begun = time.process_time()
                if name == "old":
                    receive, observe = clone.receive, core.observe
                    for topic, payload in messages:
                        for change in receive(topic, payload, time.monotonic(), time.time()):
                            observe(change.path, change.new, now, 0.0)
                elif name == "new":
                    # As read_updates hands them over: the NODEs (no heartbeat here) in batches of its size
                    # (a tree from before receive_nodes: one by one, as its read_updates did).
                    accepted: list[Any] = []
                    receive_nodes = getattr(clone, "receive_nodes", None)
                    if receive_nodes is None:
                        for topic, payload in messages:
                            clone.receive_node(topic, payload, accepted)
                    else:
                        for start in range(0, len(messages), batch):
                            receive_nodes(messages[start : start + batch], accepted)
                    core.observe_updates(accepted, now, 0.0)
                elif name == "old_socket":
                    seen = 0
                    while seen < points:
                        changes = read_changes(link.sub, clone)
                        seen += len(changes)
                        for change in changes:
                            core.observe(change.path, change.new, now, 0.0)
                else:
                    seen = 0
                    while seen < points:
                        accepted = []
                        read_updates(link.sub, clone, accepted)
                        seen += len(accepted)
                        core.observe_updates(accepted, now, 0.0)
                timings[name].append(time.process_time() - begun)
                core.take()
            begun = time.process_time()
            decode = proto.decode_hub_message
            for topic, payload in messages:
                decode(topic, payload)
            timings["decode"].append(time.process_time() - begun)
    finally:
        link.close()
        if tuner is not None:
            tuner.unhook()
            gc.unfreeze()
            gc.set_threshold(*threshold)
    us = {name: statistics.median(values) / points * 1e6 for name, values in timings.items()}
    return {
        "us_per_update": us["new_socket"],
        "updates_per_s": 1e6 / us["new_socket"],
        "cores_at_100k": us["new_socket"] / 10,
        "old_us": us["old"],
        "new_us": us["new"],
        "old_socket_us": us["old_socket"],
        "new_socket_us": us["new_socket"],
        "batch_socket_us": us["batch_socket"],
        "baseline_us_per_update": us["decode"],
        "rounds": rounds,
    }


def bench_first_commit(new_url: Any, points: int) -> dict[str, float]:
    """``new_url()``: a fresh store's URL per round (two rounds each way, interleaved; medians)."""
    from gsmon.common.recorder import store as store_module
    from gsmon.common.recorder.store import Store

    names = [f"sim/sim-{n // 100:04d}/g{n % 10}/p{n % 100:04d}" for n in range(points)]
    timings: dict[bool, list[float]] = {True: [], False: []}
    configured = store_module._INTERN_ARRAYS_FROM
    try:
        for arrays in (False, True, False, True):
            store_module._INTERN_ARRAYS_FROM = configured if arrays else 1 << 62  # type: ignore[misc]
            store = Store.open(new_url())
            begun = time.perf_counter()
            with store.begin(immediate=True) as conn:
                ids = store.path_ids(conn, names)
                agent = store.agent_ids(conn, {"sim-0000"})["sim-0000"]
                t_us = round(T0 * 1e6)
                store.insert_samples(
                    conn, [(ids[name], t_us, 10, None, False, 20.0, None, agent, None, 0) for name in names]
                )
            timings[arrays].append(time.perf_counter() - begun)
            store.close()
    finally:
        store_module._INTERN_ARRAYS_FROM = configured  # type: ignore[misc]
    return {"first_commit_s": statistics.median(timings[True]), "baseline_s": statistics.median(timings[False])}


def bench_query(url: str) -> dict[str, float]:
    from gsmon.common.recorder.core import RecorderCore
    from gsmon.common.recorder.maintenance import Maintenance
    from gsmon.common.recorder.policy import Retention
    from gsmon.common.recorder.query import answer
    from gsmon.common.recorder.store import Store
    from gsmon.common.recorder.writer import Writer

    store = Store.open(url)
    now = time.time()
    start = now - 30 * 86_400
    core = RecorderCore()
    writer = Writer(store, commit_interval_s=0.2)
    writer.start()
    for minute in range(30 * 24 * 60):
        t = start + minute * 60
        core.observe("GS1/Ant1/LNA/temp_celsius", Node(20.0 + (minute % 17) * 0.1, polled_at_s=t), t, 0.0)  # type: ignore[arg-type]
        if minute % 5000 == 0:
            writer.submit(*core.take())
    writer.submit(*core.take())
    writer.flush(300)
    writer.stop()
    Maintenance(store, Retention()).step(now)
    query = {"path": "GS1/Ant1/LNA/temp_celsius", "from": start, "to": now, "buckets": 500}
    timings, raw_timings = [], []
    for _ in range(5):
        begun = time.perf_counter()
        result = answer(store, "history", query)
        timings.append(time.perf_counter() - begun)
        assert result["source"] == "rollups"
        assert len(result["buckets"]) == 500
    # Baseline: the same buckets from raw rows (no roll-ups known to the planner).
    from gsmon.common.recorder import query as query_module

    original = query_module.ROLLED_UNTIL_KEY
    query_module.ROLLED_UNTIL_KEY = "no-such-key"  # type: ignore[misc]
    try:
        for _ in range(5):
            begun = time.perf_counter()
            result = answer(store, "history", query)
            raw_timings.append(time.perf_counter() - begun)
            assert result["source"] == "raw"
    finally:
        query_module.ROLLED_UNTIL_KEY = original  # type: ignore[misc]
    store.close()
    return {"query_ms": statistics.median(timings) * 1000, "baseline_raw_ms": statistics.median(raw_timings) * 1000}


def bench_end_to_end(agents: int, points: int, window_s: float, url: str, agents_nice: int = 0) -> dict[str, Any]:
    """A real hub, simulated agents at 1 Hz (bench.peers fleet) and ``gsmon recorder`` with its default
    policy (:data:`SEED_POLICY`): updates offered, rows written (by ``why``, and any written twice),
    gaps recorded, and the recorder's own health reports as a time series (see :func:`_verdict`).

    ``agents_nice``: the simulated agents' processes run at this nice value. They stand in for 1,000 other
    machines; on one 2-core machine they compete with the hub and the recorder for CPU, which no station
    does. At a lower priority they take what is left over: if that is not enough their offered rate falls
    below 1 Hz, which the figures show (updates/s offered), so the scenario cannot pass by starving them."""
    sys.path.insert(0, str(REPO))
    import sqlalchemy as sa

    from bench._support import Children
    from bench.hub_bench import _fleet
    from gsmon.common.recorder.store import Store, gaps, paths, samples

    seed_config = Path(tempfile.mkdtemp(prefix="gsmon-recbench-")) / "seed.toml"
    seed_config.write_text(SEED_POLICY, encoding="utf-8")
    load: list[float] = []
    with Children() as children:
        hub, endpoints = children.hub()
        fleets = _fleet(children, endpoints["agents"], agents, 2, points, 10, 1.0, 2.0)
        for fleet in fleets:
            if agents_nice:
                os.setpriority(os.PRIO_PROCESS, fleet.popen.pid, agents_nice)
        started_wall = time.time()
        recorder = children.start(
            "recorder",
            [
                *(sys.executable, "-m", "gsmon.common.cli", "recorder", "--hub", endpoints["query"], "--db", url),
                *("--config", str(seed_config), "sim/"),
            ],
        )
        recorder.wait_for_line("READY recorder", 120)
        ready_wall = time.time()
        for fleet in fleets:
            fleet.command("MARK")
        started = time.monotonic()
        marked_wall = time.time()
        cpu = recorder.cpu_s()
        hub_cpu, fleets_cpu = hub.cpu_s(), sum(fleet.cpu_s() for fleet in fleets)
        load.append(_load_average())
        time.sleep(window_s)  # the load runs for the window; the figures are read afterwards
        load.append(_load_average())
        elapsed = time.monotonic() - started
        cores = (recorder.cpu_s() - cpu) / elapsed
        hub_cores = (hub.cpu_s() - hub_cpu) / elapsed
        fleets_cores = (sum(fleet.cpu_s() for fleet in fleets) - fleets_cpu) / elapsed
        # How current the stored stream is: the newest level change stored (one point per agent flips
        # every 5 polls) against now. The recorder's behind_s sees only its own socket; this also sees a
        # hub that fell behind its agents (its NODEs then carry ever older poll times).
        trail_s = _stored_trail_s(url, time.time())
        for fleet in fleets:
            fleet.command("END")
        offered = sum(fleet.result()["window"]["points"] for fleet in fleets)
        recorder.stop(grace_s=60.0)  # a recorder behind its socket finishes its turn and commits its queue
        killed = recorder.killed_after_grace
        log_lines = [line for line in recorder.stderr().splitlines() if " WARNING " in line or " ERROR " in line]
    store = Store.open(url)
    first_us = round(started_wall * 1e6)
    with store.read() as conn:
        rows = int(conn.execute(sa.select(sa.func.count()).select_from(samples)).scalar() or 0)
        gap_rows = [
            (str(r), (b - a) / 1e6)
            for r, a, b in conn.execute(sa.select(gaps.c.reason, gaps.c.start_us, gaps.c.end_us))
        ]
        by_why = {
            int(why): int(n)
            for why, n in conn.execute(sa.select(samples.c.why, sa.func.count()).group_by(samples.c.why))
        }
        # Rows of one path at one time (the key forbids it; counted, not assumed), and paths written
        # with more than one FIRST row (the policy started again for them).
        same_key = int(
            conn.execute(
                sa.select(sa.func.count()).select_from(
                    sa.select(paths.c.path, samples.c.t_us)
                    .join(paths, paths.c.id == samples.c.path_id)
                    .group_by(paths.c.path, samples.c.t_us)
                    .having(sa.func.count() > 1)
                    .subquery()
                )
            ).scalar()
            or 0
        )
        refirst = int(
            conn.execute(
                sa.select(sa.func.count()).select_from(
                    sa.select(samples.c.path_id)
                    .where(samples.c.why == 0)
                    .group_by(samples.c.path_id)
                    .having(sa.func.count() > 1)
                    .subquery()
                )
            ).scalar()
            or 0
        )
        # Rows by 5 s of poll time since the recorder started, and why.
        slot = sa.cast((samples.c.t_us - first_us) / 5_000_000, sa.Integer)
        timeline: dict[int, dict[int, int]] = {}
        for when, why, n in conn.execute(
            sa.select(slot, samples.c.why, sa.func.count())
            .where(samples.c.t_us >= first_us)
            .group_by(slot, samples.c.why)
        ):
            timeline.setdefault(int(when), {})[int(why)] = int(n)
        health: dict[float, dict[str, float]] = {}
        for path, t_us, num in conn.execute(
            sa.select(paths.c.path, samples.c.t_us, samples.c.num)
            .join(paths, paths.c.id == samples.c.path_id)
            .where(paths.c.path.like("Recorder/%"))
        ):
            health.setdefault(t_us / 1e6 - marked_wall, {})[str(path).rpartition("/")[2]] = float(num or 0.0)
    store.close()
    reports = [{"t_s": t, **figures} for t, figures in sorted(health.items())]
    return {
        "offered_per_s": offered / window_s,
        "rows": rows,
        "by_why": by_why,
        "same_key": same_key,
        "refirst_paths": refirst,
        "timeline": timeline,
        "ready_after_s": ready_wall - started_wall,
        "gaps": len(gap_rows),
        "gap_reasons": ", ".join(sorted({r for r, _ in gap_rows})) or "none",
        "reports": reports,
        "window_s": window_s,
        "lag_max_s": max((r["lag_max_s"] for r in reports), default=float("nan")),
        "cores": cores,
        "hub_cores": hub_cores,
        "fleets_cores": fleets_cores,
        "stored_trail_s": trail_s,
        "load": load,
        "killed": killed,
        "log": log_lines,
        **_verdict(reports, window_s, points * agents),
    }


def _stored_trail_s(url: str, wall: float) -> float:
    """Seconds from the poll time of the newest level-change row of a simulated point in the store to
    ``wall`` (``inf`` when there is none): under 5 s (one flip period) plus the commit interval when the
    agents, the hub and the recorder all keep up."""
    import sqlalchemy as sa

    from gsmon.common.recorder.core import Why
    from gsmon.common.recorder.store import Store, samples

    store = Store.open(url)
    try:
        with store.read() as conn:
            level_rows = sa.select(sa.func.max(samples.c.t_us)).where(samples.c.why == int(Why.LEVEL))
            newest = conn.execute(level_rows).scalar()
    finally:
        store.close()
    return math.inf if newest is None else wall - int(newest) / 1e6


def _verdict(reports: list[dict[str, float]], window_s: float, points: int) -> dict[str, Any]:
    """Steady state and "keeps up", from the recorder's 5 s health reports (``t_s`` since MARK).

    The first burst is the first snapshot's rows (one per point, all at once): steady state starts at
    the first report after MARK whose queue is empty. The recorder keeps up only if every report of
    the window came (none missing: a loop that stalls writes none), and in the steady state neither the
    commit lag (``lag_max_s``) nor how far behind the hub it reads (``behind_s``) exceeds
    :data:`KEEPS_UP_S`, and neither grows (the last third's maximum at most twice the first third's
    plus one commit interval).
    """
    from gsmon.common.recorder.main import HEALTH_S

    in_window = [r for r in reports if 0 <= r["t_s"] <= window_s + HEALTH_S]
    expected = int(window_s // HEALTH_S)
    steady_from = next((i for i, r in enumerate(in_window) if r.get("queued_rows", 1) == 0), None)
    steady = in_window[steady_from + 1 :] if steady_from is not None else []
    figure = {
        name: max((r.get(name, float("nan")) for r in steady), default=float("nan"))
        for name in ("lag_max_s", "behind_s")
    }
    why_not = []
    if len(in_window) < expected - 1:
        why_not.append(f"{len(in_window)} of ~{expected} health reports in the window (the loop stalled)")
    if len(steady) < 3:
        why_not.append("no steady state (fewer than 3 reports after the queue emptied)")
    for name, value in figure.items():
        if not value <= KEEPS_UP_S:
            why_not.append(f"steady {name} {value:.1f} s > {KEEPS_UP_S:g} s")
        third = max(1, len(steady) // 3)
        early = max((r.get(name, 0.0) for r in steady[:third]), default=0.0)
        late = max((r.get(name, 0.0) for r in steady[-third:]), default=0.0)
        if len(steady) >= 3 and late > 2 * early + 0.5:
            why_not.append(f"{name} grows ({early:.1f} s -> {late:.1f} s)")
    return {
        "steady_lag_max_s": figure["lag_max_s"],
        "steady_behind_s": figure["behind_s"],
        "steady_reports": len(steady),
        "keeps_up": not why_not,
        "why_not": "; ".join(why_not),
        "points_total": points,
    }


def _load_average() -> float:
    import os

    return os.getloadavg()[0]


def _print_e2e(e2e: dict[str, Any], agents: int, backend: str) -> None:
    why_names = {int(why): why.name for why in _why()}
    by_why = ", ".join(f"{why_names.get(k, k)} {n:,}" for k, n in sorted(e2e["by_why"].items()))
    print(
        f"end to end ({agents:,} agents x 100 points at 1 Hz, seed policy, {backend}, window {e2e['window_s']:g} s, "
        f"load average {e2e['load'][0]:.1f} -> {e2e['load'][-1]:.1f}): "
        f"{e2e['offered_per_s']:,.0f} updates/s offered, {e2e['rows']:,} rows ({by_why}), "
        f"{e2e['same_key']} (path, t) written twice, {e2e['refirst_paths']:,} paths with a second FIRST row, "
        f"{e2e['gaps']} gaps ({e2e['gap_reasons']}), ready {e2e['ready_after_s']:.1f} s after start, "
        f"{e2e['cores']:.2f} cores{', SIGKILLed at stop' if e2e['killed'] else ''} (the hub {e2e['hub_cores']:.2f}, "
        f"the simulated agents {e2e['fleets_cores']:.2f}); the newest level change stored was polled "
        f"{e2e['stored_trail_s']:.1f} s before the window's end"
    )
    print(
        "  health reports (t: s since MARK on the recorder's hub clock, which trails by about behind_s; "
        "lag_s / lag_max_s / behind_s / rows_per_s / queued_rows):"
    )
    for report in e2e["reports"]:
        print(
            f"    {report['t_s']:7.1f}: {report.get('lag_s', float('nan')):7.3f} / "
            f"{report.get('lag_max_s', float('nan')):7.3f} / {report.get('behind_s', float('nan')):7.3f} / "
            f"{report.get('rows_per_s', 0):9,.0f} / {report.get('queued_rows', 0):7,.0f}"
        )
    print("  rows by 5 s of row time since the recorder started:")
    for slot, counts in sorted(e2e["timeline"].items()):
        print(f"    {slot * 5:4d} s: " + ", ".join(f"{why_names.get(k, k)} {n:,}" for k, n in sorted(counts.items())))
    for line in e2e["log"][-15:]:
        print(f"  recorder log: {line[:200]}")
    verdict = "keeps up" if e2e["keeps_up"] else f"does NOT keep up ({e2e['why_not']})"
    print(
        f"  steady state ({e2e['steady_reports']} reports after the first burst): lag max "
        f"{e2e['steady_lag_max_s']:.3f} s, behind the hub max {e2e['steady_behind_s']:.3f} s "
        f"(whole run lag max {e2e['lag_max_s']:.3f} s): the recorder {verdict} with its hub"
    )
    trail = e2e["stored_trail_s"]
    whole = (
        "current"
        if trail <= STORED_TRAIL_MAX_S
        else f"NOT current: the hub fell behind its agents (the stream it published trailed them by ~{trail:.0f} s)"
    )
    print(
        f"  end to end (agents -> hub -> recorder -> store): the newest level change stored was polled {trail:.1f} s "
        f"before the window's end (current: <= {STORED_TRAIL_MAX_S:g} s): {whole}"
    )


def _print_read(read: dict[str, float], points: int) -> None:
    print(
        f"read path (seed policy, {points:,} NODEs x {read['rounds']:.0f}, from an inproc SUB socket): lean "
        f"{read['new_socket_us']:.2f} us/update = {read['updates_per_s']:,.0f} updates/s per core, "
        f"{read['cores_at_100k']:.2f} cores at 100,000/s (old path {read['old_socket_us']:.2f} us); "
        f"in NODES batches (1.4) {read['batch_socket_us']:.2f} us/update = "
        f"{read['batch_socket_us'] / 10:.2f} cores at 100,000/s; "
        f"no socket: lean {read['new_us']:.2f} us, old {read['old_us']:.2f} us "
        f"(bare decode baseline {read['baseline_us_per_update']:.2f} us); load average {_load_average():.2f}"
    )


def _why() -> Any:
    from gsmon.common.recorder.core import Why

    return Why


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--postgres", action="store_true", help="against a throwaway PostgreSQL 15 cluster")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test)")
    parser.add_argument(
        "--e2e", type=int, metavar="AGENTS", help="also: AGENTS x 100 points at 1 Hz through a real hub and recorder"
    )
    parser.add_argument("--window-s", type=float, default=20.0, help="--e2e: the measured window")
    parser.add_argument(
        "--only", choices=("read",), help="run only this scenario (read: the in-process read path, no store)"
    )
    parser.add_argument(
        "--agents-nice",
        type=int,
        default=0,
        help="e2e: the simulated agents' nice value (they stand in for other machines; default 0: equal share)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="read: rounds (medians; round 0 is every point's first)")
    parser.add_argument(
        "--recorder-gc", action="store_true", help="read: the collector tuned after round 0 as gsmon recorder tunes it"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.points, args.seconds = 5000, 2000, 2
    if args.only == "read":
        _print_read(bench_read(args.points, args.rounds, args.recorder_gc), args.points)
        return 0
    cluster = _pg_cluster() if args.postgres else None
    try:
        folder = Path(tempfile.mkdtemp(prefix="gsmon-recbench-"))
        url = cluster.new_database() if cluster else f"sqlite:///{folder / 'writes.db'}"
        base = cluster.new_database() if cluster else None
        writes = bench_writes(url, args.rows, base)
        backend = "PostgreSQL 15" if cluster else "SQLite"
        print(
            f"writes ({backend}, every change): {writes['rows_per_s']:,.0f} rows/s "
            f"(bare driver baseline {writes['baseline_rows_per_s']:,.0f} rows/s, "
            f"ratio {writes['rows_per_s'] / writes['baseline_rows_per_s']:.2f}); {writes['rows']:,} rows"
        )
        scale = bench_scale(args.points, args.seconds)
        print(
            f"scale core ({args.points:,} points at 1 Hz, seed policy): {scale['updates_per_s']:,.0f} updates/s "
            f"(needs {args.points:,}/s; dict-update baseline {scale['baseline_updates_per_s']:,.0f}/s); "
            f"{scale['rows']:,} rows in {args.seconds} s"
        )
        _print_read(bench_read(args.points, args.rounds, args.recorder_gc), args.points)
        first = bench_first_commit(
            cluster.new_database if cluster else lambda: f"sqlite:///{tempfile.mkdtemp(prefix='gsmon-recbench-')}/f.db",
            args.points,
        )
        print(
            f"first commit ({backend}, {args.points:,} new paths and a row each): {first['first_commit_s']:.2f} s "
            f"(names in chunks of 500 baseline {first['baseline_s']:.2f} s)"
        )
        if not args.quick:
            query = bench_query(cluster.new_database() if cluster else f"sqlite:///{folder / 'query.db'}")
            print(
                f"query ({backend}): 30 days of one point in 500 buckets: {query['query_ms']:.1f} ms from roll-ups "
                f"(baseline from raw rows {query['baseline_raw_ms']:.1f} ms)"
            )
        if args.e2e:
            e2e = bench_end_to_end(
                args.e2e,
                100,
                args.window_s,
                cluster.new_database() if cluster else f"sqlite:///{folder / 'e2e.db'}",
                args.agents_nice,
            )
            if args.agents_nice:
                print(f"(the simulated agents ran at nice {args.agents_nice}: they stand in for other machines)")
            _print_e2e(e2e, args.e2e, backend)
    finally:
        if cluster is not None:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
