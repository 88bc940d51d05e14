"""The agent-overhead benchmark still runs: one tiny scenario per implementation.

Only the shape and sanity of its numbers are checked. Speed targets never go
in tests: they depend on the machine and on whatever else it is doing.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "agent_overhead.py"


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    """bench/ is not an installed package: load the script by its path."""
    spec = importlib.util.spec_from_file_location("gsmon_bench_agent_overhead", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is built.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.mark.parametrize("impl", ["gsmon", "baseline"])
def test_one_short_scenario_returns_sane_numbers(bench: ModuleType, impl: str) -> None:
    """50 points at dt=0.5 s for about a second: polls happen, CPU is measured."""
    result = bench.run_scenario(impl, 50, duration_s=1.0, warmup_s=0.3, dt_s=0.5)
    assert result.impl == impl
    assert result.points == 50
    assert result.polls_due_per_s == pytest.approx(100.0)
    assert result.window_s >= 1.0
    assert result.polls_done_per_s > 0
    assert 0 < result.schedule_pct <= 200  # generous: a window edge may cut a burst
    assert 0 <= result.cpu_cores <= (os.cpu_count() or 1) + 0.5  # cannot use more cores than there are


def test_table_has_a_row_per_size(bench: ModuleType) -> None:
    """The report lines up both implementations per size, in text and Markdown."""
    make = bench.ScenarioResult
    results = [
        make("baseline", 10, 1.0, 1.0, 10.0, 9.0, 0.01),
        make("gsmon", 10, 1.0, 1.0, 10.0, 10.0, 0.005),
    ]
    text = bench.format_table(results)
    assert len(text.splitlines()) == 3  # header, rule, one row
    assert "90.0" in text
    assert "100.0" in text
    markdown = bench.format_table(results, markdown=True)
    assert markdown.startswith("| points |")


def test_table_survives_a_window_too_short_to_measure(bench: ModuleType) -> None:
    """CPU that reads 0 (psutil counts 10 ms ticks) or no poll at all leaves a ratio blank, never raises."""
    make = bench.ScenarioResult
    results = [
        make("baseline", 10, 1.0, 0.1, 10.0, 0.0, 0.0),
        make("gsmon", 10, 1.0, 0.1, 10.0, 10.0, 0.0),
    ]
    row = bench.format_table(results).splitlines()[2]
    assert " - " in row
