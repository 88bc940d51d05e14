"""Hub-of-hubs with real processes (issue 17 §1, protocol "Orphaned alarms"): a site's latched alarm whose
point the site removed is seen, counted and acked at the centre.

On loopback: a central hub, a site hub under GS1, and an agent beside the site. The agent's disk goes RED
and back to GREEN (the site's alarm latches: ``rtn_unacked``); the agent is restarted without the disk, so
the site removes the point and keeps its alarm (and, for the restart, the agent's latched silence on its
mount). No relayed point carries those alarms any more: the site relays them as its orphans, so the
centre lists them (``gsmon alarms``), its attention tree says what the site's says (the mount and its
points' parent: the level and the unacked count), and an ack at the centre by the id it listed is
applied at the site, after which the alarm leaves both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from harness import Processes, gsmon_cli, polled, wait_until
from test_hub_federation import SITE_ARGS, _alarm_of, _command, _open_alarms

from gsmon.common.alerts import STALE_ALERTCODE
from gsmon.common.client import Subscriber

pytestmark = pytest.mark.integration

RED = 30
GRACE = ["--removal-grace-s", "0.5"]  # a point the agent's STATE no longer lists goes soon after


def _set(file: Path, value: Any, alert: str) -> None:
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps([value, alert]))
    tmp.replace(file)


def _counts(sub: Subscriber, path: str) -> tuple[int, int] | None:
    """A node's (attention, unacked_below) as its latest NODE says (None: no such node, or not judged)."""
    sub.poll(0.05)
    node = sub.tree.get(path)
    if node is None or node.since is None:
        return None
    return node.attention or 0, node.unacked_below or 0


def _same_counts(site: Subscriber, centre: Subscriber, want: tuple[int, int]) -> bool:
    """The site's rack1 and the centre's GS1/rack1 and GS1 all count ``want``."""
    return _counts(site, "rack1") == _counts(centre, "GS1/rack1") == _counts(centre, "GS1") == want


def _by_path(query: str) -> dict[str, dict[str, Any]]:
    return {alarm["path"]: alarm for alarm in _open_alarms(query)}


def test_a_sites_latched_alarm_of_a_removed_point_is_listed_counted_and_acked_at_the_centre(
    procs: Processes, tmp_path: Path
) -> None:
    central = procs.hub("--hub-id", "central", *GRACE, name="central")
    site = procs.hub(
        "--hub-id", "site1", "--upstream", central.agents, "--upstream-mount", "GS1", *SITE_ARGS, *GRACE, name="site"
    )  # fmt: skip
    disk = tmp_path / "disk.json"
    _set(disk, 97, "RED")
    cpu = {"name": "cpu", "value": 1, "alert": "GREEN", "dt": 0.1}
    agent = procs.agent(site, "rack1", {"points": [{"name": "disk", "file": str(disk), "dt": 0.1}, cpu]}, "rack1")
    with Subscriber(central.query, "") as at_centre, Subscriber(site.query, "") as at_site:
        wait_until(lambda: _alarm_of(at_centre, "GS1/rack1/disk"), what="the disk's alarm relayed to the centre")
        _set(disk, 20, "GREEN")
        wait_until(
            lambda: [alarm["state"] for alarm in _open_alarms(site.query)] == ["rtn_unacked"],
            what="the disk back to GREEN at the site, its alarm latched",
        )
        # The agent restarted without the disk: the site removes the point, and keeps its latched alarm.
        assert agent.stop() == 0
        procs.agent(site, "rack1", {"points": [cpu]}, "rack1")
        wait_until(lambda: polled(at_site) and "rack1/disk" not in at_site.tree, what="the disk removed at the site")
        wait_until(
            lambda: polled(at_centre) and "GS1/rack1/disk" not in at_centre.tree, what="the disk gone at the centre"
        )
        at_the_site = wait_until(
            lambda: (found := _by_path(site.query)).keys() == {"rack1", "rack1/disk"} and found,
            what="the site's open alarms: the disk's, and the restart's latched silence",
        )
        assert [at_the_site[path]["state"] for path in ("rack1", "rack1/disk")] == ["rtn_unacked"] * 2
        # The centre's attention says what the site's says: both alarms want an ack, the worst is STALE.
        wait_until(
            lambda: _same_counts(at_site, at_centre, (STALE_ALERTCODE, 2)),
            what="the centre's attention for GS1 as the site's for rack1: STALE, 2 unacked",
        )
        at_the_centre = wait_until(
            lambda: (found := _by_path(central.query)).keys() == {"GS1/rack1", "GS1/rack1/disk"} and found,
            what="the centre's listing of the site's two alarms",
        )
        listed = at_the_centre["GS1/rack1/disk"]
        assert (listed["state"], listed["max_level"]) == ("rtn_unacked", RED)
        # gsmon ack at the centre, by the id the centre listed: routed down, applied at the site.
        acked = gsmon_cli("ack", "--id", str(listed["id"]), "-m", "disk replaced", "--hub", central.query)
        assert acked.returncode == 0, acked.stdout + acked.stderr
        wait_until(
            lambda: _by_path(site.query).keys() == {"rack1"}, what="the disk's alarm acked (cleared) at the site"
        )
        wait_until(
            lambda: _same_counts(at_site, at_centre, (STALE_ALERTCODE, 1)),
            what="the disk's alarm gone from the centre's attention, the silence still counted",
        )
        assert _by_path(central.query).keys() == {"GS1/rack1"}
        # The silence too, from the centre: nothing left anywhere.
        silence = at_the_centre["GS1/rack1"]["id"]
        reply = _command(central.query, "ack", {"ids": [silence], "comment": "restarted on purpose"})
        assert (reply.ok, reply.result["acked"]) == (True, [silence]), reply.message
        wait_until(lambda: _same_counts(at_site, at_centre, (0, 0)), what="no attention left at the site or the centre")
        assert _open_alarms(site.query) == _open_alarms(central.query) == []
