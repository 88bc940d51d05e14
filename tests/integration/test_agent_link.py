"""An agent says when it cannot reach, or is refused by, its hub -- and gets in once it is let in.

Real ``gsmon hub`` and agent processes (tests/integration/agent_program.py,
which logs like ``gsmon agent``); keys made by the real ``gsmon keys``. Each
operator mistake of issue 10.2 must give its one clear line in the agent's
stderr within 10 s; issue 11.5: a refused agent retries with backoff.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from harness import KeySet, Process, Processes, gsmon_cli, make_keys, polled, wait_until

from gsmon.common.client import Subscriber
from gsmon.common.keys import ClientKeys

ANT1 = "GS1/Antenna1"
COUNTER = {"points": [{"name": "Ticks", "counter": True, "dt": 0.05}]}
LINE_S = 10.0


@pytest.fixture(scope="module")
def key_template(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    """Agent ant1 (GS1/Antenna1), subscriber ops, and a pair the hub does not list (late)."""
    return make_keys(
        tmp_path_factory.mktemp("keys") / "keys",
        agents={"ant1": [ANT1]},
        subscribers={"ops": None},
        strangers=["late"],
    )


@pytest.fixture
def keys(key_template: KeySet, tmp_path: Path) -> KeySet:
    return key_template.copy(tmp_path / "keys")


def _says(agent: Process, text: str, timeout_s: float = LINE_S) -> str:
    """Wait for a line of the agent's stderr containing ``text``; return it."""

    def line() -> str | None:
        return next((each for each in agent.stderr().splitlines() if text in each), None)

    return wait_until(line, timeout_s=timeout_s, what=f"{agent.name} to say {text!r}\n{agent.stderr()[-2000:]}")


def test_a_connected_agent_says_so(procs: Processes) -> None:
    hub = procs.hub()
    agent = procs.agent(hub, "ant1", COUNTER, mount=ANT1)
    line = _says(agent, "connected to the hub at")
    assert "INFO" in line
    assert hub.agents in line


def test_an_agent_pointed_at_a_port_with_no_hub_says_so_and_not_per_attempt(procs: Processes) -> None:
    """Nothing listening: one line saying so at once, then `no hub at ... for N s` (the first within
    10 s), not one line per connection attempt (ZeroMQ retries every 100 ms up to 5 s)."""
    gone = procs.hub(name="gone")
    gone.process.stop()  # its agents port is free now: nothing listens there
    agent = procs.agent(gone, "ant1", COUNTER, mount=ANT1)
    line = _says(agent, f"no hub at {gone.agents} for")
    assert "WARNING" in line
    assert "nothing is listening" in line
    lines = [each for each in agent.stderr().splitlines() if gone.agents in each]
    assert len(lines) <= 3, lines


def test_an_agent_pointed_at_another_hub_port_says_it_is_not_the_agents_endpoint(procs: Processes) -> None:
    hub = procs.hub()
    agent = procs.agent(dataclasses.replace(hub, agents=hub.query), "ant1", COUNTER, mount=ANT1)
    line = _says(agent, "is not the hub's agents endpoint")
    assert "WARNING" in line


def test_an_agent_with_the_wrong_hub_public_key_says_the_key_does_not_match(procs: Processes, keys: KeySet) -> None:
    hub = procs.hub("--keys", str(keys.hub_dir))
    agent = procs.agent(hub, "ant1", COUNTER, mount=ANT1, key=keys.secret("ant1"), hub_key=keys.other_hub_public)
    assert "WARNING" in _says(agent, "the hub's public key does not match")
    # The hub counts and logs it, though ZAP was never asked.
    with Subscriber(hub.query, "_hub/", curve=ClientKeys.load(keys.secret("ops"), keys.hub_public)) as ops:
        wait_until(
            lambda: polled(ops) and (node := ops.tree.get("_hub/auth_denied_handshakes")) is not None and node.value,
            what="the hub to count the failed handshake",
        )
    # With the peer's address when the hub could still read it off the connection (it is closed within
    # a millisecond of the failure, so that is best effort).
    assert re.search(
        r"refused a handshake on the agents socket from (127\.0\.0\.1:\d+|an unknown peer)", hub.process.stderr()
    )


def test_an_agent_without_keys_against_a_keyed_hub_says_keys_are_required(procs: Processes, keys: KeySet) -> None:
    hub = procs.hub("--keys", str(keys.hub_dir))
    agent = procs.agent(hub, "ant1", COUNTER, mount=ANT1)
    assert "WARNING" in _says(agent, "requires CURVE keys")


def test_an_agent_with_an_unregistered_key_is_told_and_gets_in_once_registered(procs: Processes, keys: KeySet) -> None:
    """Issue 11.5 (the on-host `gsmon keys pair` flow): the agent starts before its key is registered,
    says the hub refused its key, keeps retrying with backoff, and publishes within a few seconds of
    `gsmon keys agent late --public-key ...`."""
    hub = procs.hub("--keys", str(keys.hub_dir))
    late_public = keys.root / "late" / "late.key"
    agent = procs.agent(hub, "late", COUNTER, mount="GS1/Late", key=keys.secret("late"), hub_key=keys.hub_public)
    assert "WARNING" in _says(agent, "the hub refused this agent's key")
    result = gsmon_cli(
        "keys", "agent", "late", "--mount", "GS1/Late", "--hub-dir", str(keys.hub_dir), "--public-key", str(late_public)
    )
    assert result.returncode == 0, result.stderr
    _says(agent, "connected to the hub at", timeout_s=15.0)
    with Subscriber(hub.query, "GS1/", curve=ClientKeys.load(keys.secret("ops"), keys.hub_public)) as ops:
        wait_until(lambda: polled(ops) and "GS1/Late/Ticks" in ops.tree, what="the late agent's point")


def test_an_agent_publishing_under_another_name_hears_why_from_the_hub(procs: Processes, keys: KeySet) -> None:
    """A valid key used under a wrong name: every message is refused, and the hub says why (NOTICE)."""
    hub = procs.hub("--keys", str(keys.hub_dir))
    agent = procs.agent(hub, "ant9", COUNTER, mount=ANT1, key=keys.secret("ant1"), hub_key=keys.hub_public)
    line = _says(agent, "refuses this agent's messages")
    assert "WARNING" in line
    assert "unauthorised" in line
    assert "ant1" in line


def test_an_agent_whose_points_another_agent_owns_hears_why_from_the_hub(procs: Processes) -> None:
    """Two agents claiming the same points (a wrong mount): the second one's are refused as conflicts,
    and it is told so with the owner's name; the first one hears nothing of the kind."""
    hub = procs.hub()
    first = procs.agent(hub, "ant1", COUNTER, mount=ANT1)
    with Subscriber(hub.query, "GS1/") as sub:
        wait_until(lambda: polled(sub) and f"{ANT1}/Ticks" in sub.tree, what="the first agent's point")
    second = procs.agent(hub, "ant2", COUNTER, mount=ANT1)
    line = _says(second, "refuses this agent's messages")
    assert "conflict" in line
    assert "ant1" in line
    assert "refuses this agent's messages" not in first.stderr()
