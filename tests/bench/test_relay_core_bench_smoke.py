"""bench/relay_core_bench.py still runs end to end (``python -m bench.relay_core_bench --quick``).

No speed is judged here (CPU figures belong in bench/RESULTS.md). What the simulated clock makes exact is
checked: every agent update reaches the centre as one relayed entry (the default coalescing of 1 s folds
nothing at one poll per 10 s), and the periodic STATE carries every point of the site once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_quick_relay_core_bench_prints_every_side() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.relay_core_bench", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert run.stderr == "", run.stderr[-4000:]  # no agent went silent, nothing was refused
    rows = [line.split("|")[1:-1] for line in run.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 6, run.stdout
    counts = [int(cells[1].strip().replace(",", "")) for cells in rows[1:]]
    hub, site, centre, state_site, state_centre = counts
    assert hub > 0
    assert site == centre  # the centre applied every entry the site sent
    assert hub - 20 * 100 <= site <= hub  # each update relayed once (the last turn's may wait for a flush)
    assert state_site == state_centre == 20 * 100  # --quick: 20 agents x 100 points
