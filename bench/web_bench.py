"""``gsmon web`` under load: the bridge's core, its /metrics, and the page in Debian's chromium.

::

    python bench/web_bench.py                # 10,000 nodes, 1,000 updates/s, 50 clients, 5 s windows
    python bench/web_bench.py --quick        # small and short
    python bench/web_bench.py --no-browser   # without the page measurements

Measured (each against a baseline measured in the same run, on the same data):

* **bridge core at 1,000 updates/s with 50 clients following the whole tree**:
  CPU seconds per second of :meth:`BridgeCore.apply` + :meth:`BridgeCore.flush`
  (every 50 ms, as the bridge's loop does) -- i.e. the fraction of one core.
  Baseline: the least any bridge must do for the same updates, coalescing
  them per path and encoding each changed node to JSON once per flush.
  Ratio = core / baseline. Target: the core well under one core (it is).
* **/metrics of 100,000 series**: one scrape's :func:`render_metrics` time,
  twice: *cold* (the first scrape, which makes every node's cached series
  prefixes) and *warm* (the next scrape after 10,000 value updates, which
  keep their nodes' prefixes: Prometheus's steady state); beside them the
  library-only rendering (:func:`render_metrics_reference`, prometheus_client
  escaping and formatting every sample: what /metrics served before issue 16).
  Baseline: formatting the same samples as text lines with plain f-strings
  (no escaping, no library). Target ≤ 1 s (aim ≤ 0.2 s).
* **the page** (chromium via Playwright, the bridge in this process with a
  synthetic feed): time from the snapshot's arrival until 10,000 rows are
  rendered (``expand all``), target ≤ 1 s; and at 500 deltas/s for 5 s: node
  updates the page applied per second, renders per second, and re-snapshots
  (a page that fell behind would lose seq and re-snapshot). Baseline: the
  render of the collapsed (problems-first) tree of the same nodes.
* **the whole stack with real WebSocket clients**: the aiohttp bridge (in this
  process, on the synthetic feed) with 50 WebSocket connections from a
  separate client process, every one following the whole tree at 1,000
  updates/s. Measured: this process's CPU (bridge loop, aiohttp writes, and
  the synthetic feed), node updates each client received per second against
  those produced, and seq gaps / re-snapshots (a bridge that fell behind drops
  a slow client's queue and makes a gap). Baseline: the bridge core alone on
  the same load (the first measurement), so the ratio is what the sockets add.

Short runs only (2 shared cores): each window is a few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gsmon.common.client import NodeState
from gsmon.common.watch.feed import FeedBatch
from gsmon.common.web.core import BridgeCore
from gsmon.common.web.metrics import BridgeFacts, render_metrics, render_metrics_reference
from gsmon.common.web.nodes import node_json

LEVELS = ((10, "GREEN"), (20, "ORANGE"), (30, "RED"))


def make_tree(points: int) -> dict[str, NodeState]:
    """``points`` points under 10 agents x 10 groups, with their parents."""
    now = time.time()
    tree: dict[str, NodeState] = {}
    per_group = max(1, points // 100)
    for agent in range(10):
        for group in range(10):
            for index in range(per_group):
                path = f"GS1/Rack{agent}/Group{group}/p{index:04d}_temp_c"
                tree[path] = point(path, float(index), 10, now, agent)
    for path in list(tree):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            tree.setdefault(parent, NodeState(parent, "parent", 10, "GREEN", False, None, None, None, None, None, 1))
    return tree


def point(path: str, value: float, level: int, now: float, agent: int) -> NodeState:
    label = dict(LEVELS).get(level, "GREEN")
    return NodeState(path, "point", level, label, False, value, f"rack{agent}", now, now, 1.0, 1)


def updates(
    tree: dict[str, NodeState], count: int, rng: random.Random, paths: list[str] | None = None
) -> dict[str, NodeState]:
    if paths is None:
        paths = [path for path, node in tree.items() if node.kind == "point"]
    now = time.time()
    chosen: dict[str, NodeState] = {}
    for path in rng.sample(paths, min(count, len(paths))):
        level = rng.choices((10, 20, 30), (97, 2, 1))[0]
        chosen[path] = point(path, rng.random() * 100, level, now, 0)
    return chosen


def cpu() -> float:
    return time.process_time()


def bench_core(points: int, rate: int, clients: int, window_s: float) -> dict[str, Any]:
    rng = random.Random(1)
    tree = make_tree(points)
    flush_s = 0.05
    per_flush = max(1, int(rate * flush_s))
    batches = [updates(tree, per_flush, rng) for _ in range(int(window_s / flush_s))]
    core = BridgeCore("bench")
    core.apply(tree, reset=True)
    for client in range(clients):
        core.subscribe(client, "", None, time.time())
    core.flush(time.time())
    start = cpu()
    sent_bytes = 0
    for batch in batches:
        core.apply(batch)
        out = core.flush(time.time())
        sent_bytes += sum(len(text) for messages in out.values() for text in messages)
    core_s = cpu() - start
    # Baseline: coalesce per path and encode each changed node once.
    start = cpu()
    for batch in batches:
        pending: dict[str, NodeState] = {}
        pending.update(batch)
        "".join(json.dumps(node_json(node), ensure_ascii=False) for node in pending.values())
    base_s = cpu() - start
    return {
        "nodes": len(tree),
        "rate": rate,
        "clients": clients,
        "window_s": window_s,
        "core_cores": core_s / window_s,
        "baseline_cores": base_s / window_s,
        "ratio": core_s / base_s if base_s else float("nan"),
        "sent_mb_per_s": sent_bytes / window_s / 1e6,
    }


def bench_metrics(series_nodes: int) -> dict[str, Any]:
    tree = make_tree(series_nodes)
    core = BridgeCore("bench")
    core.apply(tree, reset=True)
    entries = core.entries()
    facts = BridgeFacts(time.time(), True, 0, 0)
    start = time.perf_counter()
    reference = render_metrics_reference(entries, facts, max_series=10_000_000)
    reference_s = time.perf_counter() - start
    start = time.perf_counter()
    cold = render_metrics(entries, facts, max_series=10_000_000)
    cold_s = time.perf_counter() - start
    # 10,000 value updates (same labels, so their nodes keep their prefixes), then the next scrape; at most
    # every point once (--quick's tree has fewer than 10,000).
    rng = random.Random(3)
    points = [path for path, node in tree.items() if node.kind == "point"]
    moved = rng.sample(points, min(10_000, len(points)))
    core.apply({path: msgspec.structs.replace(tree[path], value=rng.random() * 100) for path in moved})
    entries = core.entries()
    start = time.perf_counter()
    text = render_metrics(entries, facts, max_series=10_000_000)
    scrape_s = time.perf_counter() - start
    series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    if cold != reference:
        raise RuntimeError("render_metrics and render_metrics_reference differ on the bench tree")
    start = time.perf_counter()
    lines = []
    for entry in entries:
        node = entry.node
        lines.append(
            f'gsmon_alert_level{{path="{node.path}",kind="{node.kind}",agent="{node.agent}"}} {node.alertcode}'
        )
        lines.append(f'gsmon_attention_level{{path="{node.path}"}} {entry.attention}')
        lines.append(f'gsmon_stale{{path="{node.path}"}} {int(node.stale)}')
        if entry.is_point:
            lines.append(f'gsmon_value{{path="{node.path}",agent="{node.agent}"}} {node.value}')
            lines.append(f'gsmon_age_seconds{{path="{node.path}"}} 0.5')
    "\n".join(lines).encode()
    base_s = time.perf_counter() - start
    return {
        "series": series,
        "bytes": len(text),
        "scrape_s": scrape_s,  # warm: the steady state
        "scrape_cold_s": cold_s,
        "reference_s": reference_s,  # prometheus_client alone (before issue 16)
        "baseline_s": base_s,
        "ratio": scrape_s / base_s,
        "ratio_cold": cold_s / base_s,
        "ratio_reference": reference_s / base_s,
    }


@dataclass
class SyntheticFeed:
    """Stands in for HubFeed in the bench only: the whole tree first, then ``rate`` updates per second."""

    tree: dict[str, NodeState]
    rate: int = 0
    failure: BaseException | None = None
    _sent_tree: bool = False
    _last: float = field(default_factory=time.monotonic)
    _rng: random.Random = field(default_factory=lambda: random.Random(2))
    produced: int = 0

    def __post_init__(self) -> None:
        self._paths = [path for path, node in self.tree.items() if node.kind == "point"]

    def start(self) -> SyntheticFeed:
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        pass

    def take(self) -> FeedBatch:
        now = time.monotonic()
        batch = FeedBatch(state="connected", clock_offset_s=0.0, last_update=time.time())
        if not self._sent_tree:
            self._sent_tree = True
            batch.updates = dict(self.tree)
            batch.reset = True
        elif self.rate:
            due = int((now - self._last) * self.rate)
            if due:
                batch.updates = dict(updates(self.tree, due, self._rng, self._paths))
                self.produced += len(batch.updates)
                self._last += due / self.rate
            return batch
        self._last = now
        return batch


def bench_page(points: int, delta_rate: int, window_s: float) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    tree = make_tree(points)
    feed = SyntheticFeed(tree)
    url, stop_server = _serve_bridge(feed)
    result: dict[str, Any] = {"nodes": len(tree)}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
            page.goto(url)
            page.wait_for_function(f"window.gsmonState && window.gsmonState.nodes.size >= {len(tree)}", timeout=60_000)
            page.wait_for_function("window.gsmonState.renders > 0")
            collapsed_ms = page.evaluate(
                """() => new Promise(done => { const s = window.gsmonState; const n = s.renders;
                const t0 = performance.now(); document.getElementById('collapseall').click();
                const check = () => s.renders > n ? done(performance.now() - t0) : requestAnimationFrame(check);
                requestAnimationFrame(check); })"""
            )
            expanded_ms = page.evaluate(
                """() => new Promise(done => { const s = window.gsmonState; const n = s.renders;
                const t0 = performance.now(); document.getElementById('expandall').click();
                const check = () => s.renders > n ? done(performance.now() - t0) : requestAnimationFrame(check);
                requestAnimationFrame(check); })"""
            )
            rows = page.evaluate("document.querySelectorAll('.row').length")
            result.update(collapsed_render_ms=collapsed_ms, expanded_render_ms=expanded_ms, rows=rows)
            page.click("#collapseall")
            start = page.evaluate("[window.gsmonState.applied, window.gsmonState.renders, window.gsmonState.epoch]")
            produced = feed.produced
            feed.rate = delta_rate
            time.sleep(window_s)
            feed.rate = 0
            time.sleep(0.5)  # what is on the way arrives
            end = page.evaluate("[window.gsmonState.applied, window.gsmonState.renders, window.gsmonState.epoch]")
            result.update(
                delta_rate=delta_rate,
                sent_per_s=(feed.produced - produced) / window_s,
                applied_per_s=(end[0] - start[0]) / window_s,
                renders_per_s=(end[1] - start[1]) / window_s,
                resnapshots=0 if end[2] == start[2] else 1,
            )
            browser.close()
    finally:
        stop_server()
    return result


#: The WebSocket clients of :func:`bench_sockets`, run in their own process so that
#: their JSON parsing is not counted as the bridge's CPU. Prints one JSON line.
_CLIENTS_SCRIPT: Final = r"""
import asyncio, json, sys
import aiohttp

url, clients = sys.argv[1], int(sys.argv[2])
stats = [{"nodes": 0, "messages": 0, "gaps": 0, "snapshots": 0} for _ in range(clients)]
counting = {"on": False}

async def follow(index, session):
    mine = stats[index]
    async with session.ws_connect(url, max_msg_size=0) as ws:
        await ws.send_str(json.dumps({"subscribe": ""}))
        epoch, seq = None, None
        async for msg in ws:
            body = json.loads(msg.data)
            if body["type"] == "snapshot":
                mine["snapshots"] += 1
                epoch, seq = body["epoch"], 0
                continue
            if body["epoch"] != epoch or body["seq"] != seq + 1:
                mine["gaps"] += 1
            seq = body["seq"]
            if counting["on"]:
                mine["messages"] += 1
                mine["nodes"] += sum(1 for node in body.get("nodes", ()) if node.get("kind") == "point")

async def main():
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(follow(i, session)) for i in range(clients)]
        print(json.dumps({"connecting": clients}), flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)  # "start": count from now
        counting["on"] = True
        await loop.run_in_executor(None, sys.stdin.readline)  # "stop": the feed stopped and its tail arrived
        print(json.dumps({"clients": stats}), flush=True)
        for task in tasks:
            task.cancel()

asyncio.run(main())
"""


def bench_sockets(points: int, rate: int, clients: int, window_s: float, core_cores: float) -> dict[str, Any]:
    """The bridge with ``clients`` real WebSocket connections following the whole tree."""
    import os
    import subprocess

    feed = SyntheticFeed(make_tree(points))
    url, stop_server = _serve_bridge(feed)
    ws_url = url.replace("http://", "ws://") + "api/v1/ws"
    child = subprocess.Popen(
        [sys.executable, "-c", _CLIENTS_SCRIPT, ws_url, str(clients)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdin is not None
        assert child.stdout is not None
        json.loads(child.stdout.readline())  # the clients are connecting
        time.sleep(3.0)  # settle: every client has its snapshot before the window opens
        child.stdin.write("start\n")
        child.stdin.flush()
        produced = feed.produced
        start_cpu = os.times()
        feed.rate = rate
        time.sleep(window_s)
        feed.rate = 0
        end_cpu = os.times()
        sent = feed.produced - produced
        time.sleep(1.0)  # what is on the way arrives
        child.stdin.write("stop\n")
        child.stdin.flush()
        report = json.loads(child.stdout.readline())
    finally:
        child.kill()
        child.wait()
        stop_server()
    bridge_s = (end_cpu.user - start_cpu.user) + (end_cpu.system - start_cpu.system)
    received = [entry["nodes"] for entry in report["clients"]]
    cores = bridge_s / window_s
    return {
        "nodes": len(feed.tree),
        "rate": rate,
        "clients": clients,
        "window_s": window_s,
        "produced_per_s": sent / window_s,
        # Point updates each client got of those produced (a path changed twice within one 50 ms
        # flush is sent once: coalescing, so slightly under 1 is everything).
        "received_fraction_min": min(received) / sent if sent else float("nan"),
        "received_fraction_median": sorted(received)[len(received) // 2] / sent if sent else float("nan"),
        "gaps": sum(entry["gaps"] for entry in report["clients"]),
        "resnapshots": sum(entry["snapshots"] - 1 for entry in report["clients"]),
        "bridge_process_cores": cores,
        "core_only_cores": core_cores,
        "ratio": cores / core_cores if core_cores else float("nan"),
    }


def _serve_bridge(feed: SyntheticFeed) -> tuple[str, Any]:
    """Serve a bridge on ``feed`` from a thread; return its URL and a function that stops it."""
    from aiohttp import web

    from gsmon.common.web.app import WebBridge, WebSettings

    bridge = WebBridge(WebSettings(hub="tcp://127.0.0.1:1"), feed=feed)  # type: ignore[arg-type]
    ready = threading.Event()
    url: dict[str, str] = {}
    stop = asyncio.Event()
    loop_box: dict[str, asyncio.AbstractEventLoop] = {}

    async def serve() -> None:
        runner = web.AppRunner(bridge.app, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        port = next(iter(getattr(server, "sockets", []))).getsockname()[1]
        url["url"] = f"http://127.0.0.1:{port}/"
        loop_box["loop"] = asyncio.get_running_loop()
        ready.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the bridge did not start within 30 s")

    def stop_server() -> None:
        loop_box["loop"].call_soon_threadsafe(stop.set)
        thread.join(10)

    return url["url"], stop_server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    points, window = (1_000, 1.0) if args.quick else (10_000, 5.0)
    report: dict[str, Any] = {"core": bench_core(points, 1_000, 50, window)}
    print(json.dumps({"core": report["core"]}), flush=True)
    report["sockets"] = bench_sockets(points, 1_000, 50, window, report["core"]["core_cores"])
    print(json.dumps({"sockets": report["sockets"]}), flush=True)
    report["metrics"] = bench_metrics(2_000 if args.quick else 20_000)
    print(json.dumps({"metrics": report["metrics"]}), flush=True)
    if not args.no_browser:
        report["page"] = bench_page(points, 500, 2.0 if args.quick else 5.0)
        print(json.dumps({"page": report["page"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
