"""`/metrics` scraped by a real Prometheus (Debian's `prometheus` 2.42) and linted by its `promtool`.

A real hub, a real agent and the bridge; Prometheus is started by the test
with a scrape config naming the bridge (every second), on loopback with port
0 (its real port is read from the kernel's socket table for its pid, psutil,
so no port is chosen by the test). After a scrape its HTTP API returns
``gsmon_alert_level`` of a known path with the right value; after the agent
is killed (SIGKILL), ``gsmon_stale`` of that path turns 1. ``promtool check
metrics`` accepts the output (exit 0). Under ``CI=true`` a missing
prometheus fails these tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest
from harness import Processes, wait_until
from test_web_browser import start_bridge

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
POINT = "GS1/Rack1/Drive/az_deg"


def _require(binary: str) -> None:
    if not os.path.exists(binary):
        problem = f"{binary} is missing (apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback URLs the test made)
        data: bytes = response.read()
        return data


def _listening_port(pid: int) -> int | None:
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return None
    ports = [conn.laddr.port for conn in connections if conn.status == psutil.CONN_LISTEN]
    return ports[0] if ports else None


def _query(api: str, expression: str) -> list[dict[str, Any]]:
    body = json.loads(_get(f"{api}/api/v1/query?{urllib.parse.urlencode({'query': expression})}"))
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_prometheus_scrapes_the_tree_and_sees_the_agent_go_stale(procs: Processes, tmp_path: Path) -> None:
    _require(PROMETHEUS)
    _require(PROMTOOL)
    hub = procs.hub()
    spec = {
        "parents": {"Drive": None},
        "points": [
            {"name": "az_deg", "parent": "Drive", "value": 181.25, "alert": "RED", "dt": 0.2},
            {"name": 'label "quoted" name', "parent": "Drive", "value": True, "alert": "GREEN", "dt": 0.2},
        ],
    }
    agent = procs.agent(hub, "rack1", spec, mount="GS1/Rack1")
    bridge = start_bridge(procs, hub)
    metrics_url = bridge.url + "metrics"

    def scraped() -> str | None:
        body = _get(metrics_url).decode()
        return body if f'path="{POINT}"' in body else None

    text = wait_until(scraped, what="the point in /metrics")
    assert isinstance(text, str)
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    target = urllib.parse.urlsplit(bridge.url).netloc
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        f"scrape_configs:\n  - job_name: gsmon\n    static_configs:\n      - targets: ['{target}']\n"
    )
    prometheus = procs.start(
        "prometheus",
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            "--web.listen-address=127.0.0.1:0",
            "--log.level=warn",
        ],
    )
    port = wait_until(lambda: _listening_port(prometheus.pid), timeout_s=30, what="prometheus listening")
    api = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return bool(_get(f"{api}/-/ready"))
        except OSError:  # 503 while it starts (HTTPError is an OSError), or not accepting yet
            return False

    wait_until(ready, timeout_s=30, interval_s=0.2, what="prometheus ready")

    def alert_level() -> list[dict[str, Any]]:
        return _query(api, f'gsmon_alert_level{{path="{POINT}"}}')

    (series,) = wait_until(alert_level, timeout_s=30, interval_s=0.3, what="a scrape holding the point")
    assert series["metric"]["agent"] == "rack1"
    assert series["metric"]["kind"] == "point"
    assert float(series["value"][1]) == 30.0  # RED
    assert float(_query(api, f'gsmon_value{{path="{POINT}"}}')[0]["value"][1]) == 181.25
    quoted = _query(api, 'gsmon_value{path="GS1/Rack1/Drive/label \\"quoted\\" name"}')
    assert float(quoted[0]["value"][1]) == 1.0
    assert float(_query(api, f'gsmon_stale{{path="{POINT}"}}')[0]["value"][1]) == 0.0
    assert float(_query(api, 'gsmon_agent_up{agent="rack1"}')[0]["value"][1]) == 1.0

    agent.kill()

    def stale() -> bool:
        found = _query(api, f'gsmon_stale{{path="{POINT}"}}')
        return bool(found) and float(found[0]["value"][1]) == 1.0

    wait_until(stale, timeout_s=30, interval_s=0.3, what="gsmon_stale 1 after the agent was killed")

    def agent_down() -> bool:  # the hub calls the agent silent a little after its points are overdue
        found = _query(api, 'gsmon_agent_up{agent="rack1"}')
        return bool(found) and float(found[0]["value"][1]) == 0.0

    wait_until(agent_down, timeout_s=30, interval_s=0.3, what="gsmon_agent_up 0 after the agent was killed")
    assert prometheus.stop() == 0, prometheus.stderr()
    assert bridge.process.stop() == 0, bridge.process.stderr()
