"""deploy/ for the web bridge: the Prometheus config and rules pass promtool, the Grafana dashboard is JSON
that only queries gsmon's families, the nginx example forwards what --behind-proxy reads."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
FAMILIES = re.compile(r"\b(gsmon_[a-z_]+)")


def _promtool() -> str:
    if not os.path.exists(PROMTOOL):
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing (apt-get install prometheus)")
        pytest.skip("promtool is missing (apt-get install prometheus)")
    return PROMTOOL


@pytest.mark.parametrize(("what", "path"), [("config", "prometheus.yml"), ("rules", "gsmon-rules.yml")])
def test_prometheus_examples_pass_promtool(what: str, path: str) -> None:
    result = subprocess.run(
        [_promtool(), "check", what, str(DEPLOY / "prometheus" / path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_dashboard_queries_only_exported_families() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "gsmon-dashboard.json").read_text())
    metrics = (Path(__file__).resolve().parents[2] / "common" / "web" / "metrics.py").read_text()
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert exprs
    assert any(FAMILIES.findall(expr) for expr in exprs)
    for expr in exprs:
        for family in FAMILIES.findall(expr):
            known = family in metrics or family.startswith("gsmon_hub_")
            assert known, f"the dashboard queries {family}, which /metrics does not export"


def test_nginx_example_forwards_the_headers_behind_proxy_reads() -> None:
    text = (DEPLOY / "web" / "nginx.conf").read_text()
    for needed in ("X-Forwarded-Proto", "X-Forwarded-Host", "Upgrade $http_upgrade", "/api/v1/ws", "--behind-proxy"):
        assert needed in text
