"""bench/watch_bench.py still runs end to end (tiny sizes, short windows): a table comes out.

No figure is judged here: speed targets belong in bench/RESULTS.md, never in tests.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_quick_watch_bench_prints_a_row_per_view() -> None:
    run = subprocess.run(
        [sys.executable, "bench/watch_bench.py", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    lines = run.stdout.splitlines()
    header = next(index for index, line in enumerate(lines) if line.startswith("view "))
    views = [line.split("  ")[0] for line in lines[header + 1 :]]
    assert views == ["attention tree", "full tree", "(baseline: bare Subscriber)"]
    for line in lines[header + 1 : header + 3]:
        cells = line.split()
        assert float(cells[cells.index("tree") + 4]) >= 0  # app cores, a number
