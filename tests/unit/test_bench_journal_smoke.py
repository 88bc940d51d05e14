"""The state-store benchmark still runs: both scenarios at a tiny size.

Only the shape and sanity of its numbers are checked. Speed targets never go
in tests: they depend on the machine and on whatever else it is doing.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "journal_bench.py"


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    """bench/ is not an installed package: load the script by its path."""
    spec = importlib.util.spec_from_file_location("gsmon_bench_journal", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.mark.parametrize(("scenario", "rows_per_transition"), [("levels", 1), ("storm", 3)])
def test_a_tiny_run_writes_every_row_and_reports_rates(
    bench: ModuleType, tmp_path: Path, scenario: str, rows_per_transition: int
) -> None:
    result = bench.run_scenario(scenario, 200, 2, 20, tmp_path)
    assert result.scenario == scenario
    assert result.rows_per_turn == 200 * rows_per_transition
    assert result.turn_ms > 0
    assert result.rows_per_s > 0
    assert result.baseline_rows_per_s > 0
    assert list(tmp_path.iterdir()) == []  # its files are cleaned up
    table = bench.format_table([result], markdown=True)
    assert len(table.splitlines()) == 3
    assert f"| {scenario} | 200 |" in table
