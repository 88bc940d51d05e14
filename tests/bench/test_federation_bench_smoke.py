"""bench/federation_bench.py still runs end to end (``python -m bench.federation_bench --quick``).

No speed is judged here. The byte counts come from a simulated clock, so one property of the link's
policy is checked: coalescing sends fewer bytes than relaying every change.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_quick_federation_bench_prints_a_row_per_scenario() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.federation_bench", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    rows = [line.split("|")[1:-1] for line in run.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    scenarios = {cells[0].strip(): int(cells[1].strip().replace(",", "")) for cells in rows[1:]}
    assert len(scenarios) == 4
    assert scenarios["coalesce 1000 ms (default)"] < scenarios["every change (coalesce 0)"]
