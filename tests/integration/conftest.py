"""Fixtures for integration tests: real processes, real sockets, loopback only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Processes


@pytest.fixture
def procs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Processes]:
    """A registry of child processes, all reaped after the test (pass or fail); a child that ended otherwise
    than the test declared fails it (after a test that failed already, that is only reported)."""
    registry = Processes(tmp_path)
    try:
        yield registry
    finally:
        report = getattr(request.node, "rep_call", None)
        failed = report is not None and report.failed
        try:
            registry.reap()
        except AssertionError as unclean:
            if not failed:
                raise
            print(unclean)
        if failed:
            print(registry.stderr_report())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


# -- history stores: SQLite, and a real PostgreSQL cluster (the recorder's tests run on both) ---------------


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[object]:
    """One throwaway PostgreSQL cluster for the session (pgcluster.py); under CI=true it must start."""
    import os

    from pgcluster import PgCluster, unavailable

    why = unavailable()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI=true: {why}")
        pytest.skip(f"no PostgreSQL here: {why}")
    cluster = PgCluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty history store's URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    cluster = request.getfixturevalue("pg_cluster")
    return str(cluster.new_database())
