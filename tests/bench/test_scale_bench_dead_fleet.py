"""bench/scale_bench.py says how a fleet process died: its exit status and its last stderr lines.

A real ``bench.peers fleet`` that cannot connect (an endpoint ZeroMQ refuses) dies with a traceback once
its ramp reaches its first agent; ``_end_fleets`` must measure without it and keep what it said.
"""

from __future__ import annotations

import time

import pytest

from bench import scale_bench
from bench._support import Children, HubLoad


def _result() -> scale_bench.SetupResult:
    hub = HubLoad("centre", 0.0, 0.0, 0.0, 0.0, 0.0)
    figures = dict.fromkeys(
        (
            "agents",
            "sites",
            "live_agents_start",
            "live_agents_end",
            "followed_agents",
            "latency_samples",
            "missed_polls",
            "repeats",
            "points_seen",
            "lost_subscriber",
            "stale_points",
            "stale_parents",
            "seq_gaps",
            "dropped_by_agents",
            "rejected",
            "centre_nodes",
        ),
        0,
    )
    rates = dict.fromkeys(
        ("offered_per_s", "centre_messages_per_s", "centre_updates_per_s", "followed_offered_per_s"), 0.0
    )
    latencies = dict.fromkeys(("delivered_per_s", "p50_us", "p99_us", "p999_us", "max_us"), 0.0)
    return scale_bench.SetupResult(
        setup="federated", window_s=10.0, followed="x", centre=hub, **figures, **rates, **latencies
    )


@pytest.mark.timeout(60)
def test_a_dead_fleet_is_reported_with_its_status_and_last_stderr_lines() -> None:
    with Children() as children:
        fleet = children.peer(
            "fleet",
            *("--endpoint", "tcp://no-such-transport", "--first", "7", "--agents", "2", "--total-agents", "2"),
            *("--dt", "10", "--ramp", "0"),
        )
        fleet.ready(timeout_s=30)
        deadline = time.monotonic() + 30
        while fleet.status is None and time.monotonic() < deadline:  # its first connect fails at once
            time.sleep(0.05)
        assert fleet.status == 1
        fleet.expect_exit(1, traceback=True)
        result = scale_bench._end_fleets([fleet], _result())
    assert result.offered_per_s == 0.0
    assert result.came_up == "yes; 1 fleet process(es) died (not counted)"
    [death] = result.dead_fleets
    assert death.startswith("fleet of sim-0007..sim-0008 (exit status 1): ")
    assert "ZMQError" in death
    assert "fleet of sim-0007..sim-0008" in scale_bench.render_markdown(
        scale_bench.ScaleRun(
            agents=2,
            sites=1,
            window_s=10.0,
            single=_result(),
            federated=result,
            failover=None,
            federation_note="",
            machine={},
            minutes=0.1,
        )
    )
