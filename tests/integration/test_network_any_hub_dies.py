"""The whole network of issue 17: a site pair under a central pair, and any single hub dies as a blink.

Real processes: central hubs ``centre-a`` and ``centre-b`` (each ``--peer`` the other), the site pair
``site-a`` and ``site-b`` (each ``--peer`` the other), each site hub ``--upstream`` to BOTH centres under
``GS1`` (protocol "Hub-of-hubs": a site under a pair, and a site that is a pair), agent ``rack1``
publishing to both site hubs (a RED disk and a clock). An operator's Subscriber is given both centres.

Then, one after the other: SIGKILL of the site hub the centres follow (each centre switches to the other
site hub before anything turns STALE), then SIGKILL of the centre the operator is on (the Subscriber is on
the other centre within 5 s, with a fresh snapshot). Through both, no point of the site is ever STALE in
the operator's view, the site's clock keeps advancing, no silence alarm opens at the surviving centre, and
an ack made there is routed down to the surviving site hub and applied.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from harness import Hub, Processes, polled, wait_until

from gsmon.common.alerts import STALE_ALERTCODE
from gsmon.common.client import Subscriber
from gsmon.common.commands import send_command
from gsmon.hub.alarms import ACTIVE_ACKED

pytestmark = pytest.mark.integration

POINTS: dict[str, Any] = {
    "points": [
        {"name": "disk", "value": 97, "alert": "RED", "dt": 0.2},
        {"name": "clock", "clock": True, "dt": 0.1},
    ]
}
DISK, CLOCK = "GS1/rack1/disk", "GS1/rack1/clock"
FAILOVER_BOUND_S = 5.0


def _site_points(sub: Subscriber) -> list[Any]:
    return [node for path, node in sub.tree.items() if path.startswith("GS1/") and node.kind == "point"]


def _fresh(sub: Subscriber) -> bool:
    """Both points of the site there, none STALE (what the operator sees as fresh)."""
    nodes = _site_points(sub)
    return len(nodes) == 2 and not any(node.stale or node.alertcode >= STALE_ALERTCODE for node in nodes)


def _following(centre: Hub) -> str:
    """The centre's ``_hub/site_pairs/GS1``: which site hub it follows, and its standby ("" until shown)."""
    with Subscriber(centre.query, "_hub/site_pairs") as health:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            health.poll(0.05)
            node = health.tree.get("_hub/site_pairs/GS1")
            if node is not None:
                return str(node.value)
    return ""


def _alarm_paths(centre: Hub) -> list[str]:
    reply = send_command(centre.query, "alarms", {}, timeout_s=5.0)
    assert reply.ok, reply.message
    return sorted(alarm["path"] for alarm in reply.result["alarms"])


def _watch_fresh(sub: Subscriber, seconds: float) -> None:
    """Poll the operator's view for ``seconds``: fresh at every look (it may be between hubs: then it shows
    nothing new, never STALE)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        sub.poll(0.05)
        if _site_points(sub):
            assert _fresh(sub), {path: (node.stale, node.alertstr) for path, node in sub.tree.items()}


def test_a_site_pair_under_a_central_pair_survives_any_one_hubs_sigkill_as_a_blink(
    procs: Processes, tmp_path: Path
) -> None:
    query = {name: f"ipc://{tmp_path}/{name}.query" for name in ("centre-a", "centre-b", "site-a", "site-b")}
    centres = {
        name: procs.hub("--hub-id", name, "--peer", query[peer], "--peer-timeout-s", "2", query=query[name], name=name)
        for name, peer in (("centre-a", "centre-b"), ("centre-b", "centre-a"))
    }

    def site(name: str, peer: str) -> Hub:
        return procs.hub(
            "--hub-id", name, "--peer", query[peer], "--peer-timeout-s", "2",
            "--upstream", centres["centre-a"].agents, "--upstream", centres["centre-b"].agents,
            "--upstream-mount", "GS1", "--upstream-coalesce-ms", "200", query=query[name], name=name,
        )  # fmt: skip

    sites = {"site-a": site("site-a", "site-b"), "site-b": site("site-b", "site-a")}
    procs.agent(list(sites.values()), "rack1", POINTS, mount="rack1")
    endpoints = f"{centres['centre-a'].query},{centres['centre-b'].query}"

    with Subscriber(endpoints, "GS1", timeout_s=5.0) as sub:
        wait_until(lambda: sub.poll(0.05) is not None and _fresh(sub), what="the site's tree, fresh, at a centre")
        wait_until(lambda: polled(sub) and bool(sub.tree[DISK].alarm), what="the site's alarm at the centre")
        disk_id = sub.tree[DISK].alarm["id"]
        # Each centre follows one site hub of the pair and keeps the other as its standby.
        shown = {
            name: wait_until(
                lambda centre=centre: (text := _following(centre)).endswith(" live") and "standby" in text and text,
                what=f"{name} following one site hub with the other as its standby",
            )
            for name, centre in centres.items()
        }
        followed = {name: text.split(",")[0].rsplit(" ", 1)[1] for name, text in shown.items()}
        on = next(name for name, centre in centres.items() if centre.query == sub.hub)
        other = "centre-b" if on == "centre-a" else "centre-a"

        # 1. The site hub the operator's centre follows dies.
        victim = followed[on]
        survivor = "site-b" if victim == "site-a" else "site-a"
        clock_before = sub.tree[CLOCK].value
        assert sites[victim].process.kill() == -signal.SIGKILL
        _watch_fresh(sub, 3.0)  # past a site's silence (3 heartbeats of 0.2 s): a switch, never STALE
        assert sub.tree[CLOCK].value > clock_before + 2.0
        for name, centre in centres.items():
            wait_until(
                lambda centre=centre: _following(centre).startswith(f"following site hub {survivor},"),
                what=f"{name} following {survivor}",
            )
            assert "GS1" not in _alarm_paths(centre), f"{name} opened a silence alarm for the site"

        # 2. The centre the operator is on dies: the Subscriber is on the other within the bound.
        assert centres[on].process.kill() == -signal.SIGKILL
        killed = time.monotonic()

        def resumed() -> bool:
            sub.poll(0.05)
            return sub.hub == centres[other].query and not sub.hub_lost and _fresh(sub)

        wait_until(resumed, timeout_s=10, what="the operator's view on the other centre, fresh")
        elapsed_s = time.monotonic() - killed
        assert elapsed_s <= FAILOVER_BOUND_S, f"failover took {elapsed_s:.2f} s"
        clock_after = sub.tree[CLOCK].value
        _watch_fresh(sub, 2.0)
        assert sub.tree[CLOCK].value > clock_after + 1.0  # still advancing, from the surviving site hub
        assert "GS1" not in _alarm_paths(centres[other])

    # 3. An ack at the surviving centre is routed to the surviving site hub and applied there.
    acked = send_command(centres[other].query, "ack", {"ids": [disk_id]}, user="tester", timeout_s=10.0)
    assert acked.ok, acked.message
    assert acked.result["acked"] == [disk_id]
    reply = send_command(sites[survivor].query, "alarms", {"prefix": "rack1"}, timeout_s=5.0)
    assert reply.ok, reply.message
    assert [alarm["state"] for alarm in reply.result["alarms"] if alarm["path"] == "rack1/disk"] == [ACTIVE_ACKED]
