"""A site hub under a central pair (issue 17 §1 with §2): one site hub relays to BOTH hubs of the pair.

Real processes on loopback: centres ``centre-a`` and ``centre-b`` (each ``--peer`` the other, on ipc query
endpoints so that each can be told the other's before it starts), the site hub ``site1`` with
``--upstream A --upstream B --upstream-mount GS1``, and agent ``rack1`` under the site (two RED points and
a clock). Both centres show the site's tree fresh, a site alarm under one id on both; an ack at A is
applied at the site and shows at B under that id; after A's SIGKILL, B keeps the site's subtree fresh
(never STALE), an ack at B is routed down and applied, and the site's health points say link 1 (A) is
down and link 2 (B) up. With keys (the pair sharing one keys folder), each centre's routes are sealed and
the site opens them with its one upstream key pair.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from harness import Hub, Processes, gsmon_cli, polled, wait_until

from gsmon.common import protocol as proto
from gsmon.common.alerts import STALE_ALERTCODE
from gsmon.common.client import Subscriber
from gsmon.common.commands import send_command
from gsmon.common.keys import ClientKeys
from gsmon.hub.alarms import ACTIVE_ACKED, ACTIVE_UNACKED

pytestmark = pytest.mark.integration

RED = 30
POINTS: dict[str, Any] = {
    "points": [
        {"name": "disk", "value": 97, "alert": "RED", "dt": 0.2},
        {"name": "fan", "value": 0, "alert": "RED", "dt": 0.2},
        {"name": "clock", "clock": True, "dt": 0.1},
    ]
}
DISK, FAN, CLOCK = "GS1/rack1/disk", "GS1/rack1/fan", "GS1/rack1/clock"


def _site_alarm_state(site: Hub, path: str) -> str | None:
    reply = send_command(site.query, "alarms", {"prefix": "rack1"}, timeout_s=5.0)
    assert reply.ok, reply.message
    states = [alarm["state"] for alarm in reply.result["alarms"] if alarm["path"] == path]
    return states[0] if states else None


def _ack(hub: Hub, alarm_id: int) -> proto.CommandResult:
    return send_command(hub.query, "ack", {"ids": [alarm_id]}, user="tester", timeout_s=10.0)


def _fresh(sub: Subscriber) -> bool:
    """Every point under GS1 there and none STALE (what an operator at the centre sees as fresh)."""
    sub.poll(0.05)
    nodes = [node for path, node in sub.tree.items() if path.startswith("GS1/") and node.kind == "point"]
    return len(nodes) == 3 and not any(node.stale or node.alertcode >= STALE_ALERTCODE for node in nodes)


def test_a_site_under_a_central_pair_feeds_both_and_one_centres_death_is_only_a_blink(
    procs: Processes, tmp_path: Path
) -> None:
    query = {name: f"ipc://{tmp_path}/{name}.query" for name in ("centre-a", "centre-b")}

    def centre(name: str, peer: str) -> Hub:
        return procs.hub("--hub-id", name, "--peer", query[peer], "--peer-timeout-s", "2", query=query[name], name=name)

    a, b = centre("centre-a", "centre-b"), centre("centre-b", "centre-a")
    site = procs.hub(
        "--hub-id", "site1", "--upstream", a.agents, "--upstream", b.agents, "--upstream-mount", "GS1",
        "--upstream-coalesce-ms", "200", name="site1",
    )  # fmt: skip
    procs.agent(site, "rack1", POINTS, mount="rack1")

    with (
        Subscriber(a.query, "GS1") as on_a,
        Subscriber(b.query, "GS1") as on_b,
        Subscriber(a.query, "_hub/pair") as pair_a,
    ):
        for sub in (on_a, on_b):
            wait_until(lambda sub=sub: _fresh(sub), what="the site's tree, fresh, at both centres")
            wait_until(
                lambda sub=sub: polled(sub) and all(sub.tree[path].alarm for path in (DISK, FAN)),
                what="the site's alarms at both centres",
            )
        # (1.3) Proxy ids of a pair: both centres show the site's alarm under one id.
        disk_id, fan_id = (on_a.tree[path].alarm["id"] for path in (DISK, FAN))
        assert [on_b.tree[path].alarm["id"] for path in (DISK, FAN)] == [disk_id, fan_id]
        assert proto.PROXY_DERIVED_BASE <= disk_id < proto.PROXY_END
        assert on_a.tree[DISK].agent == on_b.tree[DISK].agent == "GS1:rack1"

        # An ack at A: routed down to the site (on A's link), applied there, and shown at B under the same
        # id by the site's next relayed entry (not by A's pair log: a routed command is not an op of it).
        acked = _ack(a, disk_id)
        assert acked.ok, acked.message
        assert acked.result["acked"] == [disk_id]
        asked_at = time.monotonic()
        assert _site_alarm_state(site, "rack1/disk") == ACTIVE_ACKED
        wait_until(
            lambda: polled(on_b) and on_b.tree[DISK].alarm["state"] == ACTIVE_ACKED,
            timeout_s=5.0,
            what="the ack made at A, shown at B",
        )
        shown_after_s = time.monotonic() - asked_at
        assert on_b.tree[DISK].alarm["id"] == disk_id
        assert shown_after_s < 3.0, f"B showed the ack {shown_after_s:.1f} s after A answered"
        assert on_b.tree[FAN].alarm["state"] == ACTIVE_UNACKED
        # Not an op of the centres' pair log: A's own newest op stays 0 over five of its health refreshes.
        observed_until = time.monotonic() + 1.0
        while time.monotonic() < observed_until:
            pair_a.poll(0.05)
            assert pair_a.tree["_hub/pair/head"].value == 0

        # SIGKILL A: B keeps the site's subtree fresh all the while -- never STALE -- and the clock moves on.
        assert a.process.kill() == -signal.SIGKILL
        clock_before = on_b.tree[CLOCK].value
        watch_until = time.monotonic() + 3.0  # well past a site's silence at B (3 heartbeats of 0.2 s)
        while time.monotonic() < watch_until:
            assert _fresh(on_b), {path: (node.stale, node.alertstr) for path, node in on_b.tree.items()}
        assert on_b.tree[CLOCK].value > clock_before + 2.0

    # An ack at B is routed to the site on B's link and applied there.
    acked = _ack(b, fan_id)
    assert acked.ok, acked.message
    assert acked.result["acked"] == [fan_id]
    assert _site_alarm_state(site, "rack1/fan") == ACTIVE_ACKED

    # The site's health points: link 1 (A) down, link 2 (B) up, each naming its endpoint.
    with Subscriber(site.query, "_hub") as health:

        def links() -> dict[str, Any]:
            health.poll(0.05)
            return {path: node.value for path, node in health.tree.items() if path.startswith("_hub/upstream")}

        wait_until(
            lambda: (
                links().get("_hub/upstream/1/connected") is False and links().get("_hub/upstream/2/connected") is True
            ),
            what="the site's health points saying link A is down and link B up",
        )
        seen = links()
        assert (seen["_hub/upstream/1/endpoint"], seen["_hub/upstream/2/endpoint"]) == (a.agents, b.agents)
        assert seen["_hub/upstream_connected"] is False
        assert health.tree["_hub/upstream/1/connected"].alertcode > health.tree["_hub/upstream/2/connected"].alertcode


def test_with_keys_a_site_under_a_central_pair_sharing_one_keys_folder_is_routed_sealed_on_each_link(
    procs: Processes, tmp_path: Path
) -> None:
    """deploy/README section 9: the pair shares ONE keys folder, so one grant of the site's key covers both
    links, and one ``--upstream-hub-key`` opens the sealed routes of either centre."""
    keys = tmp_path / "keys"
    for command in (
        ["keys", "init", str(keys)],
        ["keys", "agent", "GS1", "--mount", "GS1", "--hub-dir", str(keys), "--out", str(tmp_path / "GS1")],
        ["keys", "subscriber", "ops", "--role", "operator", "--hub-dir", str(keys), "--out", str(tmp_path / "ops")],
        # The pair's link: each hub's (one, shared) key granted the service "pair" (protocol "Hub pairs").
        [
            "keys",
            "subscriber",
            "pair",
            "--service",
            "pair",
            "--hub-dir",
            str(keys),
            "--public-key",
            str(keys / "hub.key"),
        ],
    ):
        done = gsmon_cli(*command)
        assert done.returncode == 0, done.stderr
    query = {name: f"ipc://{tmp_path}/{name}.query" for name in ("centre-a", "centre-b")}

    def centre(name: str, peer: str) -> Hub:
        return procs.hub(
            "--keys", str(keys), "--hub-id", name, "--peer", query[peer], "--peer-key", str(keys / "hub.key"),
            "--peer-timeout-s", "2", query=query[name], name=name,
        )  # fmt: skip

    a, b = centre("centre-a", "centre-b"), centre("centre-b", "centre-a")
    site = procs.hub(
        "--hub-id", "site1", "--upstream", a.agents, "--upstream", b.agents, "--upstream-mount", "GS1",
        "--upstream-key", str(tmp_path / "GS1" / "GS1.key_secret"), "--upstream-hub-key", str(keys / "hub.key"),
        "--upstream-coalesce-ms", "200", name="site1",
    )  # fmt: skip
    procs.agent(site, "rack1", POINTS, mount="rack1")
    ops = ClientKeys.load(tmp_path / "ops" / "ops.key_secret", tmp_path / "ops" / "hub.key")
    shown: dict[str, int] = {}
    for name, hub in (("a", a), ("b", b)):
        with Subscriber(hub.query, "GS1", curve=ops) as sub:
            wait_until(
                lambda sub=sub: (
                    polled(sub) and all(sub.tree.get(path) and sub.tree[path].alarm for path in (DISK, FAN))
                ),
                what=f"the site's alarms at centre {name}",
            )
            shown[name] = sub.tree[FAN].alarm["id"]
            disk_id = sub.tree[DISK].alarm["id"]
    assert shown["a"] == shown["b"]
    for hub, alarm_id, path in ((b, shown["b"], "rack1/fan"), (a, disk_id, "rack1/disk")):
        acked = send_command(hub.query, "ack", {"ids": [alarm_id]}, curve=ops, user="jo", timeout_s=10.0)
        assert acked.ok, acked.message
        assert _site_alarm_state(site, path) == ACTIVE_ACKED
