"""Several hosts for real: the hub and two agents in network namespaces of their own.

The test builds a small station LAN itself: three namespaces (unique names per
run), a bridge in the hub's namespace at 10.77.0.1/24, and a veth pair from
each agent's namespace to that bridge (agents at 10.77.0.11 and 10.77.0.12).
The hub binds ``tcp://10.77.0.1:0`` for agents and reports the port it got;
its query and subscribers endpoints are ipc:// files, which this process (in
the host's namespace) can reach, with CURVE keys made by ``gsmon keys``.
Pulling one agent's cable (``ip link set ... down``) turns that agent STALE at
the hub while the other stays live; plugging it back restores it.

Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) and iproute2; skipped with the
reason otherwise, failed under ``CI=true``. Namespaces (and with them every veth
and the bridge) are deleted afterwards, also when the test fails (namespaces.py).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from harness import FAST_HUB_ARGS, Hub, Processes, polled, wait_until
from namespaces import Namespaces, gsmon_in, made_namespaces, must

from gsmon.common.alerts import STALE_ALERTCODE
from gsmon.common.client import NodeState, Subscriber
from gsmon.common.keys import ClientKeys

pytestmark = pytest.mark.integration

HUB_ADDRESS = "10.77.0.1"
AGENTS = {"antA": ("GS1/Antenna1", "10.77.0.11"), "rackB": ("GS1/Rack1", "10.77.0.12")}
FAMILIES = ("cpu", "load", "memory", "swap", "disk", "disk_io", "network", "sensors")


@dataclass
class Station:
    """The namespaces one test run created: the hub's first, then one host per agent."""

    spaces: Namespaces
    # agent name -> (its namespace, the hub-side end of its cable)
    hosts: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def hub_ns(self) -> str:
        return self.spaces.names[0]

    def cable(self, agent: str) -> str:
        return self.hosts[agent][1]


@pytest.fixture
def station() -> Iterator[Station]:
    """Three namespaces joined by a bridge and two veth pairs; deleted afterwards whatever happens."""
    with made_namespaces("gsmon") as spaces:
        made = Station(spaces)
        hub_ns = spaces.add("hub")
        must("-n", hub_ns, "link", "add", "br0", "type", "bridge")
        must("-n", hub_ns, "addr", "add", f"{HUB_ADDRESS}/24", "dev", "br0")
        must("-n", hub_ns, "link", "set", "br0", "up")
        for index, (agent, (_, address)) in enumerate(AGENTS.items()):
            host_ns = spaces.add(f"host{index}")
            cable = f"gs{spaces.suffix}{index}"  # the hub-side end; at most 15 characters
            spaces.veth(hub_ns, cable, None, host_ns, "eth0", f"{address}/24")
            must("-n", hub_ns, "link", "set", cable, "master", "br0")
            made.hosts[agent] = (host_ns, cable)
        yield made


def _keys(root: Path) -> Path:
    """`gsmon keys init`, one agent key per agent, and the operator's subscriber key."""
    hub_dir = root / "hub"
    commands = [["keys", "init", str(hub_dir)]]
    for agent, (mount, _) in AGENTS.items():
        commands.append(
            ["keys", "agent", agent, "--mount", mount, "--hub-dir", str(hub_dir), "--out", str(root / agent)]
        )
    commands.append(["keys", "subscriber", "ops", "--hub-dir", str(hub_dir), "--out", str(root / "ops")])
    for command in commands:
        result = subprocess.run(
            [sys.executable, "-m", "gsmon.common.cli", *command],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    return hub_dir


def _agent_config(root: Path, agent: str, hub_port: str) -> Path:
    mount, _ = AGENTS[agent]
    config = root / f"{agent}.toml"
    config.write_text(
        f'[agent]\nname = "{agent}"\nmount = "{mount}"\nhubs = ["tcp://{HUB_ADDRESS}:{hub_port}"]\n'
        f'heartbeat_interval_s = 0.2\nstate_dir = "{agent}-state"\n\n'  # its outbox here, not in /var/lib/gsmon
        f'[agent.security]\nhub_public_key_file = "{agent}/hub.key"\nsecret_key_file = "{agent}/{agent}.key_secret"\n\n'
        "[probes.uptime]\ndt_s = 0.5\n\n" + "".join(f"[probes.{family}]\nenabled = false\n\n" for family in FAMILIES)
    )
    return config


def _points(sub: Subscriber, prefix: str) -> list[NodeState]:
    return [node for path, node in sub.tree.items() if path.startswith(prefix) and node.kind == "point"]


def _stale(sub: Subscriber, prefix: str) -> bool:
    sub.poll(0.05)
    nodes = _points(sub, prefix)
    return bool(nodes) and all(node.stale and node.alertcode >= STALE_ALERTCODE for node in nodes)


def _live(sub: Subscriber, prefix: str) -> bool:
    sub.poll(0.05)
    nodes = _points(sub, prefix)
    return bool(nodes) and not any(node.stale for node in nodes)


def test_agents_on_other_hosts_go_stale_when_their_link_is_down_and_recover(
    station: Station, procs: Processes, tmp_path: Path
) -> None:
    """Hub and two agents in separate namespaces over veth: one link down turns that agent STALE, up restores it."""
    hub_dir = _keys(tmp_path)
    hub_process = gsmon_in(
        procs,
        station.hub_ns,
        "hub",
        "hub",
        "--agents",
        f"tcp://{HUB_ADDRESS}:0",
        "--subscribers",
        f"ipc://{tmp_path}/s",
        "--query",
        f"ipc://{tmp_path}/q",
        "--keys",
        str(hub_dir),
        "--state-dir",
        str(tmp_path / "hub-state"),
        *FAST_HUB_ARGS,
    )
    fields = hub_process.ready()
    hub = Hub(hub_process, fields["agents"], fields["subscribers"], fields["query"], hub_process.wait_for_ready())
    assert hub.agents.startswith(f"tcp://{HUB_ADDRESS}:")
    assert "WARNING" not in fields, "keys are configured: no unauthenticated warning"
    port = hub.agents.rsplit(":", 1)[1]

    for agent, (namespace, _) in station.hosts.items():
        process = gsmon_in(
            procs, namespace, f"agent-{agent}", "agent", "--config", str(_agent_config(tmp_path, agent, port))
        )
        process.wait_for_line(f"READY agent={agent} ")

    curve = ClientKeys.load(tmp_path / "ops" / "ops.key_secret", tmp_path / "ops" / "hub.key")
    with Subscriber(hub.query, "", curve=curve) as sub:
        wait_until(
            lambda: _live(sub, "GS1/Antenna1/") and _live(sub, "GS1/Rack1/"),
            what="both agents live at the hub, over the station LAN",
        )
        wait_until(lambda: polled(sub) and sub.tree.get("_hub/agents_live") and sub.tree["_hub/agents_live"].value == 2)

        # Pull antA's cable at the switch: no RST, no FIN, the packets just stop.
        must("-n", station.hub_ns, "link", "set", station.cable("antA"), "down")
        wait_until(lambda: _stale(sub, "GS1/Antenna1/"), timeout_s=8.0, what="antA STALE with its link down")
        wait_until(lambda: polled(sub) and sub.tree["_hub/agents/antA"].value == "silent", what="antA listed silent")
        assert sub.tree["GS1"].alertcode >= STALE_ALERTCODE, "a dead host never reads as healthy"
        assert _live(sub, "GS1/Rack1/"), "the other agent is not affected"

        # Plug it back: TCP retransmits, the same connection carries on and the hub is filled again.
        must("-n", station.hub_ns, "link", "set", station.cable("antA"), "up")
        wait_until(lambda: _live(sub, "GS1/Antenna1/"), timeout_s=15.0, what="antA live again with its link up")
        wait_until(lambda: polled(sub) and sub.tree["_hub/agents/antA"].value == "live", what="antA listed live")
        assert sub.tree["GS1"].alertcode < STALE_ALERTCODE
