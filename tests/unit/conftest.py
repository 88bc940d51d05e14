"""Shared helpers for the unit tests: condition waits and a self-stopping Monitor."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gsmon.agent import Monitor

WaitUntil = Callable[..., None]


def _wait_until(predicate: Callable[[], object], timeout_s: float = 5.0, interval_s: float = 0.002) -> None:
    """Poll ``predicate`` until it is true; fail the test if ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s: {getattr(predicate, '__name__', predicate)}")
        time.sleep(interval_s)


@pytest.fixture
def wait_until() -> WaitUntil:
    """``wait_until(predicate, timeout_s=5.0)``: wait for a condition with a deadline, never sleep-and-hope."""
    return _wait_until


@pytest.fixture
def make_monitor() -> Iterator[Callable[..., Monitor]]:
    """Build Monitors that are always stopped at the end of the test."""
    made: list[Monitor] = []

    def factory(**kwargs: Any) -> Monitor:
        mon = Monitor(**kwargs)
        made.append(mon)
        return mon

    yield factory
    for mon in made:
        mon.stop()
