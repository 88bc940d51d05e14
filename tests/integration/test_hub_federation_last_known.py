"""Hub-of-hubs with real processes (issue 17 §1): a silent site's last-known alarms at the centre.

On loopback: a central hub, a site hub under GS1 with an agent beside it. The site's alarm, acked
there with a comment, is listed at the centre (``gsmon alarms --json``); the site hub is then frozen
(SIGSTOP: its connection stays open, nothing more comes), so the centre finds it silent. The centre's
``gsmon alarms --json`` still lists the site's alarm -- every field as last listed, marked
``last_known`` with ``as_of`` -- and names the site not reached; ``gsmon ack --id`` of it is refused
with the reason and applied nowhere. Thawed (SIGCONT), the site answers again: nothing last known.
"""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest
from harness import Processes, gsmon_cli, wait_until
from test_hub_federation import POINTS, SITE_ARGS, _alarm_of, _all_live, _all_stale, _command, _open_alarms

from gsmon.common.client import Subscriber

pytestmark = pytest.mark.integration


def _listed(query: str) -> tuple[list[dict[str, Any]], str]:
    """``gsmon alarms --json`` at ``query``: its rows, and its stderr (where sites not reached are named)."""
    done = gsmon_cli("alarms", "--json", "--hub", query)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows, done.stderr


def test_a_frozen_sites_alarm_is_listed_at_the_centre_as_last_known_and_its_ack_is_refused(procs: Processes) -> None:
    central = procs.hub("--hub-id", "central", name="central")
    site = procs.hub(
        "--hub-id", "site1", "--upstream", central.agents, "--upstream-mount", "GS1", *SITE_ARGS, name="site"
    )  # fmt: skip
    procs.agent(site, "rack1", POINTS, mount="rack1")
    with Subscriber(central.query, "") as sub:
        [site_alarm] = wait_until(lambda: _open_alarms(site.query), what="the disk's alarm at the site")
        reply = _command(site.query, "ack", {"ids": [site_alarm["id"]], "comment": "disk ordered"})
        assert reply.ok, reply.message
        wait_until(
            lambda: (_alarm_of(sub, "GS1/rack1/disk") or {}).get("state") == "active_acked",
            what="the site's acknowledgement relayed to the centre",
        )
        # The centre's root listing while the site answers: current rows (and the centre keeps GS1's part).
        rows, _ = _listed(central.query)
        [current] = [row for row in rows if row["path"] == "GS1/rack1/disk"]
        assert "last_known" not in current
        shown = current["id"]

        site.process.signal(signal.SIGSTOP)
        try:
            wait_until(lambda: _all_stale(sub, "GS1/"), timeout_s=8.0, what="GS1 silent, STALE at the centre")
            rows, stderr = _listed(central.query)
            by_path = {row["path"]: row for row in rows}
            disk = by_path["GS1/rack1/disk"]
            assert (disk["id"], disk["last_known"], disk["state"]) == (shown, True, "active_acked")
            assert disk["ack_comment"] == "disk ordered"  # every field as the site last listed it
            assert disk["as_of"].endswith("Z")
            assert "last_known" not in by_path["GS1"]  # the centre's own alarm for the site's silence: current
            assert "GS1: not reached (nothing heard from site hub GS1 for " in stderr
            assert "its 1 last-known alarm is listed as such" in stderr
            # An ack of it (by the id listed) is refused with the reason: never applied at the centre alone.
            refused = gsmon_cli("ack", "--id", str(shown), "-m", "from the centre", "--json", "--hub", central.query)
            assert refused.returncode == 1, refused.stdout + refused.stderr
            assert "GS1 unreachable: nothing heard from site hub GS1 for " in refused.stderr
        finally:
            site.process.signal(signal.SIGCONT)
        wait_until(lambda: _all_live(sub, "GS1/"), timeout_s=15.0, what="GS1 live again at the centre")
        [at_site] = _open_alarms(site.query)
        assert (at_site["state"], at_site["ack_comment"]) == ("active_acked", "disk ordered")  # the refused ack: none
        rows = wait_until(lambda: _all_current(central.query), what="the site's alarms current again at the centre")
        assert [row["path"] for row in rows] == ["GS1", "GS1/rack1/disk"]  # (GS1: the silence, back, unacked)


def _all_current(query: str) -> list[dict[str, Any]] | None:
    rows, stderr = _listed(query)
    return None if "not reached" in stderr or any("last_known" in row for row in rows) else rows
