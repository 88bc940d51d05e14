"""The benchmark suite's entry point still runs end to end: ``python -m bench --quick``.

Tiny sizes, one repetition, every scenario; the test only checks that a table
comes out (on stdout and in the results file) with a row per scenario. No
figure is judged: speed depends on the machine and on what else it is doing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = ("throughput", "latency", "scale", "snapshot", "agent")


@pytest.mark.timeout(300)
def test_quick_run_prints_and_writes_one_table(tmp_path: Path) -> None:
    """Every scenario contributes a row; the generated section sits between its markers."""
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nHand-written notes stay.\n", encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--results", str(results)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    lines = run.stdout.splitlines()
    assert lines[0].split()[:3] == ["scenario", "measure", "gsmon"]
    assert set(lines[1]) <= {"-", " "}
    assert {line.split()[0] for line in lines[2:]} == set(SCENARIOS)
    text = results.read_text(encoding="utf-8")
    assert text.startswith("# Results\n\nHand-written notes stay.\n")
    assert "<!-- bench/run_all.py: generated, begin -->" in text
    assert text.rstrip().endswith("<!-- bench/run_all.py: generated, end -->")
    assert "| scenario | measure | gsmon (this tree) |" in text
    assert "libzmq" in text  # the machine's details are recorded with the figures
