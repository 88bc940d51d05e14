"""Clients of a hub pair (issue 17 §2, protocol 1.3 Hub pairs): two hubs (not linked to each other), one agent
publishing to both; SIGKILL the hub a client uses and it resumes within 5 s with a fresh snapshot from the other.

The hubs beat at 1 s (the default interval, so the measured time is what a station sees: about 3 missed
heartbeats, then the other hub's HELLO, subscription and snapshot).
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import Hub, Process, Processes, wait_until

from gsmon.common.client import Subscriber

pytestmark = pytest.mark.integration

FAILOVER_BOUND_S = 5.0
HEARTBEAT_S = "1.0"


def start_pair(procs: Processes) -> tuple[Hub, Hub]:
    """Two independent hubs and one agent publishing to both (agent hub=[A, B])."""
    a = procs.hub("--heartbeat-s", HEARTBEAT_S, name="hub-a")
    b = procs.hub("--heartbeat-s", HEARTBEAT_S, name="hub-b")
    spec = {"points": [{"name": "fine", "value": 1, "alert": "GREEN", "dt": 0.2}]}
    procs.agent([a, b], "pairagent", spec, mount="Lab/P")
    return a, b


def test_the_subscriber_fails_over_to_the_other_hub_with_a_fresh_snapshot(procs: Processes) -> None:
    a, b = start_pair(procs)
    with Subscriber(f"{a.query},{b.query}", "Lab/", timeout_s=5.0) as sub:
        wait_until(lambda: sub.poll(0.05) is not None and "Lab/P/fine" in sub.tree, what="the point at hub A")
        assert sub.hub == a.query
        epoch_a, resyncs = sub.epoch, sub.resyncs
        a.process.kill()
        killed = time.monotonic()

        def resumed() -> bool:
            sub.poll(0.05)
            return sub.hub == b.query and not sub.hub_lost and "Lab/P/fine" in sub.tree

        wait_until(resumed, timeout_s=10, what="the subscriber on hub B")
        elapsed_s = time.monotonic() - killed
        assert elapsed_s <= FAILOVER_BOUND_S, f"failover took {elapsed_s:.2f} s"
        assert sub.epoch not in (None, epoch_a)  # B's own epoch: a snapshot of B, never A's seqs
        assert sub.resyncs > resyncs
        assert sub.choice.switches == 1
        # Updates keep flowing from B (its seqs now).
        before = sub.tree["Lab/P/fine"].seq
        wait_until(lambda: sub.poll(0.05) is not None and sub.tree["Lab/P/fine"].seq > before, what="B's updates")


def test_get_takes_the_hub_of_the_pair_that_answers(procs: Processes, tmp_path: Path) -> None:
    a, b = start_pair(procs)
    wait_until(lambda: _get(f"{a.query},{b.query}").returncode == 0, timeout_s=15, what="the point at both hubs")
    a.process.kill()
    started = time.monotonic()
    result = _get(f"{a.query},{b.query}")
    elapsed_s = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "Lab/P/fine" in json.loads(result.stdout)
    assert elapsed_s <= FAILOVER_BOUND_S, f"gsmon get took {elapsed_s:.2f} s with hub A dead"
    both_dead = _get(f"{a.query},tcp://127.0.0.1:9")
    assert both_dead.returncode == 1
    assert "no hub of the pair answered" in both_dead.stderr


def _get(hubs: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gsmon.common.cli", "get", "Lab/", "--json", "--hub", hubs],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _printed(process: Process, text: str) -> bool:
    """Whether a stdout line holding ``text`` arrived (consumed up to it: the next wait sees only later ones)."""
    while True:
        try:
            line = process.lines.get_nowait()
        except queue.Empty:
            return False
        if text in line:
            return True


def test_watch_plain_names_the_hub_used_and_fails_over(procs: Processes) -> None:
    a, b = start_pair(procs)
    watch = procs.gsmon("watch", "watch", "Lab/", "--plain", "--hub", f"{a.query},{b.query}", "--refresh-s", "0.1")
    wait_until(lambda: _printed(watch, f"Hub {a.query} 'Lab/'"), timeout_s=15, what="watch on hub A")
    a.process.kill()
    killed = time.monotonic()
    wait_until(lambda: _printed(watch, f"Hub {b.query} 'Lab/'"), timeout_s=10, what="watch on hub B")
    elapsed_s = time.monotonic() - killed
    assert elapsed_s <= FAILOVER_BOUND_S, f"watch took {elapsed_s:.2f} s"
