"""bench/nodes_bench.py still runs end to end (``python -m bench.nodes_bench --quick``).

No speed is judged here (CPU figures belong in bench/RESULTS.md). What is checked: the plain window's
reader followed a NODE at a time and the NODES window's in batches, each applied about every update the
simulated agents sent (50 agents x 100 points at 1 Hz) and took no snapshot after its first.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_quick_nodes_bench_measures_both_streams() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.nodes_bench", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    rows = [line.split() for line in run.stdout.splitlines() if line.startswith(("plain ", "nodes "))]
    assert [row[0] for row in rows] == ["plain", "nodes"], run.stdout
    for stream, per_s, _hub_us, _reader_us, batched, resyncs in rows:
        assert batched == ("True" if stream == "nodes" else "False"), run.stdout
        assert resyncs == "1", run.stdout
        assert 4000 <= float(per_s.replace(",", "")) <= 6000, run.stdout  # 5,000 updates a second offered
    assert "NODES / plain (medians)" in run.stdout
