"""Hub-of-hubs with real processes (issue 17 §1): site hubs publishing their trees to a central hub.

* In network namespaces the test builds itself (tests/integration/namespaces.py): a central hub
  and two site hubs on separate veth links, each site with an agent beside it; pulling one site's
  link turns that site's subtree STALE at the centre with ONE alarm, the other site unaffected, and
  plugging it back heals it; an ack at the centre is applied at the site while the link is up and
  refused with the reason while it is down.
* On loopback: a chain of three hubs (an ack at the top goes two levels down; the site's unacked RED
  needs attention at the top until then; each hub's root listing holds the site's alarm), a centre
  restarted on its state store (its ids for a site's alarms are the same after it, and an ack by an
  id read before goes to that alarm), and a configured loop (each hub drops, and counts, what comes
  back round to it).
* (1.3) The centre's root ``alarms`` listing is one list of the network: every site's alarms under
  the centre's ids; a lost site is named (``unreached``) beside the centre's own alarm for it, its
  alarms listed as the centre last knew them (``last_known``; test_hub_federation_last_known).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from harness import AGENT_PROGRAM, FAST_HUB_ARGS, Hub, Process, Processes, polled, wait_until
from namespaces import Namespaces, gsmon_in, in_namespace, made_namespaces, must

from gsmon.common import protocol as proto
from gsmon.common.alerts import STALE_ALERTCODE
from gsmon.common.client import NodeState, Subscriber
from gsmon.common.commands import send_command
from gsmon.common.keys import ClientKeys

pytestmark = pytest.mark.integration

RED, GREEN = 30, 10
POINTS: dict[str, Any] = {
    "points": [
        {"name": "disk", "value": 97, "alert": "RED", "dt": 0.2},
        {"name": "cpu", "value": 1, "alert": "GREEN", "dt": 0.2},
    ]
}
# The site hubs' own heartbeats on the upstream link follow --heartbeat-s (0.2 s): a lost site is
# silent at the centre after 3 of them.
SITE_ARGS = ["--upstream-coalesce-ms", "200"]


def _point(sub: Subscriber, path: str) -> NodeState | None:
    sub.poll(0.05)
    node = sub.tree.get(path)
    return node if node is not None and node.kind == "point" else None


def _points(sub: Subscriber, prefix: str) -> list[NodeState]:
    return [node for path, node in sub.tree.items() if path.startswith(prefix) and node.kind == "point"]


def _all_stale(sub: Subscriber, prefix: str) -> bool:
    sub.poll(0.05)
    nodes = _points(sub, prefix)
    return bool(nodes) and all(node.stale and node.alertcode >= STALE_ALERTCODE for node in nodes)


def _all_live(sub: Subscriber, prefix: str) -> bool:
    sub.poll(0.05)
    nodes = _points(sub, prefix)
    return bool(nodes) and not any(node.stale for node in nodes)


def _command(query: str, command: str, args: dict[str, Any], curve: ClientKeys | None = None) -> proto.CommandResult:
    return send_command(query, command, args, curve=curve, user="tester", timeout_s=10.0)


def _open_alarms(query: str, prefix: str = "", curve: ClientKeys | None = None) -> list[dict[str, Any]]:
    reply = _command(query, "alarms", {"prefix": prefix} if prefix else {}, curve)
    assert reply.ok, reply.message
    alarms: list[dict[str, Any]] = reply.result["alarms"]
    return alarms


# -- loopback: a chain of three, and a loop ------------------------------------------------------


def test_a_chain_of_three_hubs_shows_the_site_at_the_top_and_routes_an_ack_two_levels_down(procs: Processes) -> None:
    top = procs.hub("--hub-id", "top", name="top")
    mid = procs.hub(
        "--hub-id", "mid", "--upstream", top.agents, "--upstream-mount", "M", *SITE_ARGS, name="mid"
    )  # fmt: skip
    site = procs.hub(
        "--hub-id", "site1", "--upstream", mid.agents, "--upstream-mount", "GS1", *SITE_ARGS, name="site"
    )  # fmt: skip
    procs.agent(site, "rack1", POINTS, mount="rack1")
    with Subscriber(top.query, "") as sub:
        disk = wait_until(lambda: _point(sub, "M/GS1/rack1/disk"), what="the site's point at the top of the chain")
        assert disk.agent == "M:GS1:rack1"
        assert disk.alertcode == RED
        assert disk.dt_s == pytest.approx(0.2)
        wait_until(lambda: polled(sub) and sub.tree["M"].alertcode == RED, what="the top recomputes its parents")
        wait_until(lambda: _alarm_of(sub, "M/GS1/rack1/disk"), what="the alarm summary at the top")
        # (1.3) The site's unacked RED needs attention at the top: the point, the mount, the top's root.
        wait_until(
            lambda: [_attention(sub, path) for path in ("M/GS1/rack1/disk", "M/GS1", "M")] == [RED] * 3,
            what="the site's unacked RED in the top's attention tree",
        )
        assert sub.tree["M"].unacked_below == 1
        assert sub.tree["M/GS1/rack1/disk"].since is not None
        # The alarm lives at the site only; the top lists it through the chain, paths as the top has them.
        [_site_alarm] = wait_until(lambda: _open_alarms(site.query), what="the site's alarm")
        # (1.3) The root listing of each hub above holds the site's alarm: one list of the network below it.
        [at_mid] = _open_alarms(mid.query)
        assert at_mid["path"] == "GS1/rack1/disk"
        [at_top] = _open_alarms(top.query)
        assert at_top["path"] == "M/GS1/rack1/disk"
        [listed] = _open_alarms(top.query, "M/GS1")
        shown = sub.tree["M/GS1/rack1/disk"].alarm["id"]  # the top's own id for the site's alarm
        assert (listed["id"], listed["path"], listed["max_level"]) == (shown, "M/GS1/rack1/disk", RED)
        # As gsmon ack, the web page or the watch view send it: the ids they were shown.
        reply = _command(top.query, "ack", {"ids": [shown], "comment": "seen"})
        assert reply.ok, reply.message
        assert reply.result["acked"] == [shown]
        [acked] = _open_alarms(site.query)
        assert acked["state"] == "active_acked"
        assert acked["acked_by"].endswith("@mid")  # the mid hub routed it on: the asker, at the hub that asked
        wait_until(
            lambda: polled(sub) and sub.tree["M/GS1/rack1/disk"].alarm["state"] == "active_acked",
            what="the acknowledgement relayed back up to the top",
        )
        wait_until(
            lambda: [_attention(sub, path) for path in ("M/GS1/rack1/disk", "M/GS1", "M")] == [0] * 3,
            what="no attention left at the top once the site's alarm is acked",
        )
        assert not sub.tree["M"].unacked_below


def _set(file: Path, value: Any, alert: str) -> None:
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps([value, alert]))
    tmp.replace(file)


def test_the_centres_ids_for_a_sites_alarms_are_the_same_after_the_centre_restarts(
    procs: Processes, tmp_path: Path
) -> None:
    state_dir = tmp_path / "central-state"
    agents = f"ipc://{tmp_path}/central-agents"  # the site hub reconnects to the restarted centre by itself
    central = procs.hub("--hub-id", "central", "--state-dir", str(state_dir), agents=agents, name="central")
    site = procs.hub(
        "--hub-id", "site1", "--upstream", agents, "--upstream-mount", "GS1", *SITE_ARGS, name="site"
    )  # fmt: skip
    fan, temp = tmp_path / "fan.json", tmp_path / "temp.json"
    _set(fan, 1, "RED")
    _set(temp, 20, "GREEN")
    spec = {"points": [{"name": name, "file": str(path), "dt": 0.1} for name, path in (("fan", fan), ("temp", temp))]}
    procs.agent(site, "rack1", spec, mount="rack1")
    with Subscriber(central.query, "") as sub:
        # The fan's alarm gets the centre's first id; acked at the centre and back to normal, it is cleared.
        fan_alarm = wait_until(lambda: _alarm_of(sub, "GS1/rack1/fan"), what="the fan's alarm at the centre")
        reply = _command(central.query, "ack", {"ids": [fan_alarm["id"]]})
        assert reply.ok, reply.message
        _set(fan, 2, "GREEN")
        wait_until(lambda: _open_alarms(site.query) == [], what="the fan's alarm cleared at the site")
        # Then the temperature's: the centre's second id (a fresh counter would give it the first).
        _set(temp, 90, "RED")
        temp_alarm = wait_until(lambda: _alarm_of(sub, "GS1/rack1/temp"), what="the temperature's alarm")
        shown = temp_alarm["id"]
        assert shown != fan_alarm["id"]
        [listed] = _open_alarms(central.query)  # the root listing: the site's alarm, merged
        assert (listed["path"], listed["id"]) == ("GS1/rack1/temp", shown)
    central.process.stop()
    again = procs.hub("--hub-id", "central", "--state-dir", str(state_dir), agents=agents, name="central2")
    with Subscriber(again.query, "") as sub:
        alarm = wait_until(lambda: _alarm_of(sub, "GS1/rack1/temp"), timeout_s=15.0, what="the alarm after the restart")
        assert alarm["id"] == shown
        [listed] = _open_alarms(again.query)
        assert (listed["path"], listed["id"]) == ("GS1/rack1/temp", shown)
    # The operator acks by the id read before the restart: that alarm, at its site.
    reply = _command(again.query, "ack", {"ids": [shown], "comment": "read before the restart"})
    assert reply.ok, reply.message
    assert reply.result["acked"] == [shown]
    [acked] = _open_alarms(site.query)
    assert (acked["path"], acked["state"], acked["ack_comment"]) == (
        "rack1/temp",
        "active_acked",
        "read before the restart",
    )


def test_a_configured_loop_is_cut_where_a_hub_sees_its_own_id(procs: Processes, tmp_path: Path) -> None:
    # A publishes to B under X and B to A under Y: a cycle. (ipc endpoints named by the test, so each
    # hub can be told the other's before either runs; ZeroMQ connects when the other binds.)
    a_agents, b_agents = f"ipc://{tmp_path}/A-agents", f"ipc://{tmp_path}/B-agents"
    hub_a = procs.hub(
        "--hub-id", "A", "--upstream", b_agents, "--upstream-mount", "X", *SITE_ARGS, agents=a_agents, name="A"
    )  # fmt: skip
    hub_b = procs.hub(
        "--hub-id", "B", "--upstream", a_agents, "--upstream-mount", "Y", *SITE_ARGS, agents=b_agents, name="B"
    )  # fmt: skip
    procs.agent(hub_a, "rack1", POINTS, mount="rack1")
    procs.agent(hub_b, "ant", POINTS, mount="ant")
    with Subscriber(hub_a.query, "") as sub_a, Subscriber(hub_b.query, "") as sub_b:
        wait_until(lambda: _point(sub_b, "X/rack1/disk"), what="A's point at B")
        wait_until(lambda: _point(sub_a, "Y/ant/disk"), what="B's point at A")
        wait_until(lambda: _count(sub_a, "_hub/relay_loops_dropped") > 0, what="A counts what came back round to it")
        wait_until(lambda: _count(sub_b, "_hub/relay_loops_dropped") > 0, what="B counts what came back round to it")
        assert not any(path.startswith("Y/X") for path in sub_a.tree)
        assert not any(path.startswith("X/Y") for path in sub_b.tree)


def _count(sub: Subscriber, path: str) -> int:
    node = _point(sub, path)
    return int(node.value) if node is not None else 0


def _attention(sub: Subscriber, path: str) -> int | None:
    """A node's NODE attention: absent is 0 on a node with ``since``, and None (not judged) without."""
    sub.poll(0.05)
    node = sub.tree.get(path)
    if node is None or node.since is None:
        return None
    return node.attention or 0


def _alarm_of(sub: Subscriber, path: str) -> Any:
    node = _point(sub, path)
    return None if node is None else node.alarm


# -- network namespaces: a central hub and two sites on their own links ---------------------------

CENTRAL_ADDRESS = "10.78.0.1"
SITES = {"GS1": "10.78.0.11", "GS2": "10.78.0.12"}


@dataclass
class Network:
    """The namespaces one test run created: the centre's first, then one per site."""

    spaces: Namespaces
    sites: dict[str, tuple[str, str]] = field(default_factory=dict)  # site -> (namespace, centre-side cable)

    @property
    def central_ns(self) -> str:
        return self.spaces.names[0]


@pytest.fixture
def network() -> Iterator[Network]:
    """A central namespace with a bridge, and one namespace per site on its own veth; deleted afterwards."""
    with made_namespaces("gsfed") as spaces:
        made = Network(spaces)
        central = spaces.add("central")
        must("-n", central, "link", "add", "br0", "type", "bridge")
        must("-n", central, "addr", "add", f"{CENTRAL_ADDRESS}/24", "dev", "br0")
        must("-n", central, "link", "set", "br0", "up")
        for index, (site, address) in enumerate(SITES.items()):
            site_ns = spaces.add(f"site{index}")
            cable = f"gf{spaces.suffix}{index}"
            spaces.veth(central, cable, None, site_ns, "eth0", f"{address}/24")
            must("-n", central, "link", "set", cable, "master", "br0")
            made.sites[site] = (site_ns, cable)
        yield made


def _keys(root: Path) -> Path:
    """The central hub's keys, one agent key per site hub (its name and mount), the operator's key."""
    hub_dir = root / "central"
    commands = [["keys", "init", str(hub_dir)]]
    commands += [
        ["keys", "agent", site, "--mount", site, "--hub-dir", str(hub_dir), "--out", str(root / site)] for site in SITES
    ]
    commands.append(
        ["keys", "subscriber", "ops", "--role", "operator", "--hub-dir", str(hub_dir), "--out", str(root / "ops")]
    )
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


def _agent_in(procs: Processes, namespace: str, name: str, site_agents: str) -> Process:
    """A test agent beside its site hub (same namespace, over ipc), once its Monitor runs."""
    argv = [sys.executable, str(AGENT_PROGRAM), "--name", name, "--mount", name, "--spec", json.dumps(POINTS)]
    argv += ["--heartbeat-s", "0.2", "--hub", site_agents]
    process = procs.start(f"agent-{name}", in_namespace(namespace, argv))
    process.wait_for_ready()
    return process


def _site_hub(procs: Processes, network: Network, site: str, tmp_path: Path, central_port: str) -> Hub:
    namespace, _ = network.sites[site]
    process = gsmon_in(
        procs, namespace, f"hub-{site}", "hub",
        "--agents", f"ipc://{tmp_path}/{site}-a", "--subscribers", f"ipc://{tmp_path}/{site}-s",
        "--query", f"ipc://{tmp_path}/{site}-q", "--state-dir", str(tmp_path / f"state-{site}"),
        "--hub-id", site.lower(),
        "--upstream", f"tcp://{CENTRAL_ADDRESS}:{central_port}", "--upstream-mount", site,
        "--upstream-key", str(tmp_path / site / f"{site}.key_secret"),
        "--upstream-hub-key", str(tmp_path / site / "hub.key"),
        *SITE_ARGS, *FAST_HUB_ARGS,
    )  # fmt: skip
    fields = process.ready()
    return Hub(process, fields["agents"], fields["subscribers"], fields["query"], process.wait_for_ready())


def test_a_lost_site_is_one_stale_subtree_and_one_alarm_and_acks_go_down_only_while_it_is_reachable(
    network: Network, procs: Processes, tmp_path: Path
) -> None:
    hub_dir = _keys(tmp_path)
    central_process = gsmon_in(
        procs, network.central_ns, "central", "hub",
        "--agents", f"tcp://{CENTRAL_ADDRESS}:0", "--subscribers", f"ipc://{tmp_path}/c-s",
        "--query", f"ipc://{tmp_path}/c-q", "--keys", str(hub_dir), "--state-dir", str(tmp_path / "state-central"),
        "--hub-id", "central", *FAST_HUB_ARGS,
    )  # fmt: skip
    fields = central_process.ready()
    central = Hub(central_process, fields["agents"], fields["subscribers"], fields["query"], fields["agents"])
    port = central.agents.rsplit(":", 1)[1]
    sites = {site: _site_hub(procs, network, site, tmp_path, port) for site in SITES}
    for site, hub in sites.items():
        namespace, _ = network.sites[site]
        _agent_in(procs, namespace, f"rack{site[-1]}", hub.agents)

    ops = ClientKeys.load(tmp_path / "ops" / "ops.key_secret", tmp_path / "ops" / "hub.key")
    with Subscriber(central.query, "", curve=ops) as sub:
        wait_until(
            lambda: _all_live(sub, "GS1/") and _all_live(sub, "GS2/"), timeout_s=20.0, what="both sites at the centre"
        )
        disk = sub.tree["GS1/rack1/disk"]
        assert disk.agent == "GS1:rack1"
        assert disk.alertcode == RED
        [_site_alarm] = wait_until(lambda: _open_alarms(sites["GS1"].query), what="the alarm at site GS1")
        wait_until(lambda: polled(sub) and sub.tree["GS1/rack1/disk"].alarm, what="the alarm summary at the centre")
        shown = sub.tree["GS1/rack1/disk"].alarm["id"]  # the centre's id for the site's alarm
        # (1.3) The centre's root listing: every site's alarms, each under the id the centre shows.
        wait_until(lambda: polled(sub) and sub.tree["GS2/rack2/disk"].alarm, what="GS2's alarm at the centre")
        listed = {item["path"]: item["id"] for item in _open_alarms(central.query, "", ops)}
        assert listed == {"GS1/rack1/disk": shown, "GS2/rack2/disk": sub.tree["GS2/rack2/disk"].alarm["id"]}

        # Ack at the centre while the site is up: applied at the site, shown at the centre.
        reply = _command(central.query, "ack", {"ids": [shown]}, ops)
        assert reply.ok, reply.message
        [acked] = _open_alarms(sites["GS1"].query)
        assert (acked["state"], acked["acked_by"]) == ("active_acked", "ops@central")
        wait_until(
            lambda: polled(sub) and sub.tree["GS1/rack1/disk"].alarm["state"] == "active_acked",
            what="the site's acknowledgement relayed to the centre",
        )

        # Pull GS1's cable: its whole subtree STALE, ONE alarm for it, GS2 untouched.
        must("-n", network.central_ns, "link", "set", network.sites["GS1"][1], "down")
        wait_until(lambda: _all_stale(sub, "GS1/"), timeout_s=8.0, what="GS1 STALE at the centre")
        central_alarms = _open_alarms(central.query, "", ops)
        # The centre's own alarm for the lost site, GS2's alarm, and GS1's as the centre last knew it (its
        # listing above, corrected by the acknowledgement relayed since), marked; GS1 is named, not reached.
        assert [item["path"] for item in central_alarms] == ["GS1", "GS1/rack1/disk", "GS2/rack2/disk"]
        assert central_alarms[0]["reason"] == "agent silent"
        last_known = central_alarms[1]
        assert (last_known["id"], last_known["state"], last_known["last_known"]) == (shown, "active_acked", True)
        assert not any("last_known" in item for item in (central_alarms[0], central_alarms[2]))
        listing = _command(central.query, "alarms", {}, ops)
        [unreached] = listing.result["unreached"]
        assert (unreached["path"], unreached["reason"][:28]) == ("GS1", "nothing heard from site hub ")
        assert _all_live(sub, "GS2/")
        # An ack (here an unack) at the centre for the unreachable site is refused with the reason.
        refused = _command(central.query, "unack", {"ids": [shown]}, ops)
        assert not refused.ok
        assert refused.message.startswith("GS1 unreachable: ")
        assert refused.result == {"reason": "unreachable"}
        assert _open_alarms(sites["GS1"].query)[0]["state"] == "active_acked"  # not applied anywhere

        # Plug it back: healed by itself, the one alarm returns to normal.
        must("-n", network.central_ns, "link", "set", network.sites["GS1"][1], "up")
        wait_until(lambda: _all_live(sub, "GS1/"), timeout_s=20.0, what="GS1 live again at the centre")
        assert sub.tree["GS1/rack1/disk"].alertcode == RED
        after = _open_alarms(central.query, "", ops)
        assert [item["path"] for item in after] == ["GS1", "GS1/rack1/disk", "GS2/rack2/disk"]
        assert after[0]["state"] != "active_unacked"
        assert (after[1]["id"], after[1]["state"]) == (shown, "active_acked")
        assert _all_live(sub, "GS2/")
