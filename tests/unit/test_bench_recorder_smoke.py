"""The recorder benchmark still runs at a tiny size (no speed is asserted: that belongs in bench/)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "recorder_bench.py"


def test_a_tiny_run_reports_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("gsmon_bench_recorder", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        assert module.main(["--quick"]) == 0
    finally:
        del sys.modules[spec.name]
    out = capsys.readouterr().out
    assert "writes (SQLite, every change):" in out
    assert "baseline" in out
    assert "scale core (2,000 points" in out
    assert "read path (" in out
    assert "first commit (SQLite, 2,000 new paths" in out
