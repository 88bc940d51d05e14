"""Benchmark smoke tests: the benchmark scripts run end to end at tiny sizes.

They start real hubs, peers and views (processes and sockets on loopback), so
they live here rather than in ``tests/unit``, under the ``bench`` marker
(``pytest -m "not bench"`` leaves them out). No figure is judged: speed
targets belong in ``bench/RESULTS.md``, never in tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.bench)
