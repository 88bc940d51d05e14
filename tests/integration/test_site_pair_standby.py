"""A site that is a hub pair relays to one centre as ONE site, with failover (issue 17; protocol "A site
that is a pair").

Real processes: the site pair ``site-a`` and ``site-b`` (each ``--peer`` the other, on ipc query endpoints
so that each can be told the other's before it starts), BOTH ``--upstream`` to one central hub under
``GS1``; agent ``rack1`` publishes to both site hubs (two RED points and a clock). The centre follows one
site hub and keeps the other as its standby: no conflict. An ack at the centre is applied by the followed
site hub only (the op is its own; the standby makes none, it only applies the op). After the followed site
hub's SIGKILL, no point of the site is ever STALE at the centre, no alarm opens there, the site's clock keeps
advancing from the other site hub, and an ack at the centre is routed to it and applied. With keys, the same
with sealed routes (the site pair shares the site's one agent key).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from harness import Hub, Processes, gsmon_cli, polled, wait_until

from gsmon.common.alerts import STALE_ALERTCODE
from gsmon.common.client import Subscriber
from gsmon.common.commands import send_command
from gsmon.common.keys import ClientKeys
from gsmon.hub.alarms import ACTIVE_ACKED

pytestmark = pytest.mark.integration

POINTS: dict[str, Any] = {
    "points": [
        {"name": "disk", "value": 97, "alert": "RED", "dt": 0.2},
        {"name": "fan", "value": 0, "alert": "RED", "dt": 0.2},
        {"name": "clock", "clock": True, "dt": 0.1},
    ]
}
DISK, FAN, CLOCK = "GS1/rack1/disk", "GS1/rack1/fan", "GS1/rack1/clock"
FOLLOWING = "_hub/site_pairs/GS1"


def _fresh(sub: Subscriber) -> bool:
    """Every point under GS1 there and none STALE (what an operator at the centre sees as fresh)."""
    sub.poll(0.05)
    nodes = [node for path, node in sub.tree.items() if path.startswith("GS1/") and node.kind == "point"]
    return len(nodes) == 3 and not any(node.stale or node.alertcode >= STALE_ALERTCODE for node in nodes)


def _ack(hub: Hub, alarm_id: int) -> Any:
    return send_command(hub.query, "ack", {"ids": [alarm_id]}, user="tester", timeout_s=10.0)


def _acks_journaled(site: Hub, path: str) -> int:
    done = gsmon_cli("log", path, "--since", "all", "--json", "--hub", site.query)
    assert done.returncode == 0, done.stderr
    return [json.loads(line)["kind"] for line in done.stdout.splitlines() if line.strip()].count("ack")


def _site_alarm_state(site: Hub, path: str) -> str | None:
    reply = send_command(site.query, "alarms", {"prefix": "rack1"}, timeout_s=5.0)
    assert reply.ok, reply.message
    states = [alarm["state"] for alarm in reply.result["alarms"] if alarm["path"] == path]
    return states[0] if states else None


def _own_ops_after(site: Hub, expected: int) -> int:
    """The site hub's own newest op (``_hub/pair/head``) once it reads ``expected``, then over five of its
    health refreshes (a later op would show within them)."""
    with Subscriber(site.query, "_hub/pair") as pair:
        wait_until(
            lambda: polled(pair) and "_hub/pair/head" in pair.tree and pair.tree["_hub/pair/head"].value == expected,
            what=f"the site hub's own newest op {expected}",
        )
        observed_until = time.monotonic() + 1.0
        while time.monotonic() < observed_until:
            pair.poll(0.05)
            assert pair.tree["_hub/pair/head"].value == expected
        return int(pair.tree["_hub/pair/head"].value)


def _centre_alarm_paths(centre: Hub) -> list[str]:
    """The paths of the centre's own alarms (a site's silence would be one on GS1) and the site's, merged."""
    reply = send_command(centre.query, "alarms", {}, timeout_s=5.0)
    assert reply.ok, reply.message
    return sorted(alarm["path"] for alarm in reply.result["alarms"])


def test_a_site_pair_under_one_centre_is_one_site_and_the_followed_site_hubs_death_is_only_a_blink(
    procs: Processes, tmp_path: Path
) -> None:
    centre = procs.hub("--hub-id", "centre", name="centre")
    query = {name: f"ipc://{tmp_path}/{name}.query" for name in ("site-a", "site-b")}

    def site(name: str, peer: str) -> Hub:
        return procs.hub(
            "--hub-id", name, "--peer", query[peer], "--peer-timeout-s", "2", "--upstream", centre.agents,
            "--upstream-mount", "GS1", "--upstream-coalesce-ms", "200", query=query[name], name=name,
        )  # fmt: skip

    sites = {"site-a": site("site-a", "site-b"), "site-b": site("site-b", "site-a")}
    procs.agent(list(sites.values()), "rack1", POINTS, mount="rack1")

    with Subscriber(centre.query, "GS1") as tree, Subscriber(centre.query, "_hub") as health:

        def following() -> str:
            health.poll(0.05)
            node = health.tree.get(FOLLOWING)
            return "" if node is None else str(node.value)

        wait_until(lambda: _fresh(tree), what="the site's tree, fresh, at the centre")
        wait_until(
            lambda: polled(tree) and all(tree.tree[path].alarm for path in (DISK, FAN)),
            what="the site's alarms at the centre",
        )
        # One followed site hub, the other its standby (the peer ids learnt over the site pair's link).
        shown = wait_until(
            lambda: (text := following()).endswith(" live") and "standby" in text and text,
            what="the centre following one site hub with the other as its standby",
        )
        followed = "site-a" if shown.startswith("following site hub site-a,") else "site-b"
        standby = "site-b" if followed == "site-a" else "site-a"
        assert shown == f"following site hub {followed}, standby {standby} live"
        assert health.tree["_hub/agents/GS1"].value == "live"
        assert health.tree["_hub/conflicts"].value == 0

        # An ack at the centre: both site hubs see the route, only the followed one acts (then its pair log).
        disk_id, fan_id = (tree.tree[path].alarm["id"] for path in (DISK, FAN))
        acked = _ack(centre, disk_id)
        assert acked.ok, acked.message
        assert acked.result["acked"] == [disk_id]
        wait_until(
            lambda: _site_alarm_state(sites[standby], "rack1/disk") == ACTIVE_ACKED,
            what="the ack passed to the standby site hub by the site pair's op log",
        )
        assert [_acks_journaled(sites[name], "rack1/disk") for name in (followed, standby)] == [1, 1]
        # Applied by the followed site hub alone: it made the op, the standby only applied it (a standby that
        # acted too would have an op of its own: its _hub/pair/head 1).
        assert _own_ops_after(sites[followed], 1) == 1
        assert _own_ops_after(sites[standby], 0) == 0

        # SIGKILL the followed site hub: the centre follows the other before anything turns STALE.
        assert sites[followed].process.kill() == -signal.SIGKILL
        clock_before = tree.tree[CLOCK].value
        watch_until = time.monotonic() + 3.0  # well past a site's silence (3 heartbeats of 0.2 s)
        while time.monotonic() < watch_until:
            assert _fresh(tree), {path: (node.stale, node.alertstr) for path, node in tree.tree.items()}
        assert tree.tree[CLOCK].value > clock_before + 2.0  # the site's values advance from the other site hub
        assert following() == f"following site hub {standby}, standby {followed} silent"
        assert health.tree["_hub/agents/GS1"].value == "live"
        assert health.tree["_hub/standby_switches"].value == 1
        assert health.tree["_hub/conflicts"].value == 0
        assert "GS1" not in _centre_alarm_paths(centre)  # no silence alarm: nothing to notify

    # An ack at the centre is routed to the site hub it follows now, and applied there.
    acked = _ack(centre, fan_id)
    assert acked.ok, acked.message
    assert acked.result["acked"] == [fan_id]
    assert _site_alarm_state(sites[standby], "rack1/fan") == ACTIVE_ACKED


def test_with_keys_the_site_pair_shares_one_agent_key_and_only_the_followed_site_hub_acts_on_a_sealed_route(
    procs: Processes, tmp_path: Path
) -> None:
    """The site's one agent key (a name is one key's) on both site hubs: a sealed route opens at both, and
    ``to`` makes only the followed one act, before and after its SIGKILL."""
    keys = tmp_path / "keys"
    for command in (
        ["keys", "init", str(keys)],
        ["keys", "agent", "GS1", "--mount", "GS1", "--hub-dir", str(keys), "--out", str(tmp_path / "GS1")],
        ["keys", "subscriber", "ops", "--role", "operator", "--hub-dir", str(keys), "--out", str(tmp_path / "ops")],
    ):
        done = gsmon_cli(*command)
        assert done.returncode == 0, done.stderr
    centre = procs.hub("--keys", str(keys), "--hub-id", "centre", name="centre")
    query = {name: f"ipc://{tmp_path}/{name}.query" for name in ("site-a", "site-b")}

    def site(name: str, peer: str) -> Hub:
        return procs.hub(
            "--hub-id", name, "--peer", query[peer], "--peer-timeout-s", "2", "--upstream", centre.agents,
            "--upstream-mount", "GS1", "--upstream-coalesce-ms", "200",
            "--upstream-key", str(tmp_path / "GS1" / "GS1.key_secret"), "--upstream-hub-key", str(keys / "hub.key"),
            query=query[name], name=name,
        )  # fmt: skip

    sites = {"site-a": site("site-a", "site-b"), "site-b": site("site-b", "site-a")}
    procs.agent(list(sites.values()), "rack1", POINTS, mount="rack1")
    ops = ClientKeys.load(tmp_path / "ops" / "ops.key_secret", tmp_path / "ops" / "hub.key")
    with Subscriber(centre.query, "GS1", curve=ops) as tree, Subscriber(centre.query, "_hub", curve=ops) as health:
        wait_until(
            lambda: polled(tree) and all(tree.tree.get(path) and tree.tree[path].alarm for path in (DISK, FAN)),
            what="the site's alarms at the centre",
        )

        def following() -> str:
            health.poll(0.05)
            node = health.tree.get(FOLLOWING)
            return "" if node is None else str(node.value)

        shown = wait_until(lambda: (text := following()).endswith(" live") and text, what="a followed site hub")
        followed = "site-a" if shown.startswith("following site hub site-a,") else "site-b"
        standby = "site-b" if followed == "site-a" else "site-a"
        disk_id, fan_id = (tree.tree[path].alarm["id"] for path in (DISK, FAN))
        acked = send_command(centre.query, "ack", {"ids": [disk_id]}, curve=ops, user="jo", timeout_s=10.0)
        assert acked.ok, acked.message
        wait_until(
            lambda: _site_alarm_state(sites[standby], "rack1/disk") == ACTIVE_ACKED,
            what="the ack passed to the standby site hub by the site pair's op log",
        )
        assert [_own_ops_after(sites[name], ops) for name, ops in ((followed, 1), (standby, 0))] == [1, 0]
        assert sites[followed].process.kill() == -signal.SIGKILL
        wait_until(
            lambda: following() == f"following site hub {standby}, standby {followed} silent",
            what="the centre following the other site hub",
        )
        assert _fresh(tree)
    acked = send_command(centre.query, "ack", {"ids": [fan_id]}, curve=ops, user="jo", timeout_s=10.0)
    assert acked.ok, acked.message
    assert _site_alarm_state(sites[standby], "rack1/fan") == ACTIVE_ACKED
