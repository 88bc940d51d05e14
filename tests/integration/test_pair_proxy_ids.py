"""A pair of central hubs over a site (issue 17 §2 with §1): both centres show a site's alarm under
one id, and an ack by it on one centre is the site's ack, shown on the other under that id.

Real processes on ipc endpoints: centres ``centre-a`` and ``centre-b`` (each ``--peer`` the other),
and the site as a pair of site hubs ``site-a`` and ``site-b`` (each ``--peer`` the other), each
relaying upstream under ``GS1`` to one centre; agent ``ant1`` publishes to both site hubs. (Here the
site reaches both centres through its own pair: the two site hubs derive one id for the agent's alarm,
and the centres one proxy id from it. One site hub relaying to both centres, ``--upstream`` repeated:
test_site_under_pair.) Agent
``rack`` publishes to ``site-a`` only and goes RED first, so centre-a has a site alarm centre-b never
sees: with counted proxies the two centres would give ``ant1``'s alarm different ids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from harness import Hub, Processes, gsmon_cli, wait_until

from gsmon.common import protocol as proto
from gsmon.common.commands import send_command

pytestmark = pytest.mark.integration

SITE_ARGS = ["--upstream-coalesce-ms", "200", "--peer-timeout-s", "2"]
POWER = "GS1/ups/Power"
FAN = "GS1/rack/Fan"


def _set(file: Path, value: Any, alert: str) -> None:
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps([value, alert]))
    tmp.replace(file)


def _alarms(hub: Hub, prefix: str = "") -> dict[str, dict[str, Any]]:
    """The hub's alarm listing by path (a centre's root listing: its own and each site's, merged)."""
    reply = send_command(hub.query, "alarms", {"prefix": prefix} if prefix else {}, timeout_s=5.0)
    assert reply.ok, reply.message
    return {alarm["path"]: alarm for alarm in reply.result["alarms"]}


def _listed(hub: Hub) -> dict[str, dict[str, Any]]:
    """``gsmon alarms --json`` at ``hub``, by path."""
    done = gsmon_cli("alarms", "--json", "--hub", hub.query)
    assert done.returncode == 0, done.stderr
    return {alarm["path"]: alarm for alarm in json.loads(done.stdout)}


def test_both_centres_list_a_sites_alarm_under_one_id_and_an_ack_on_one_shows_acked_on_the_other(
    procs: Processes, tmp_path: Path
) -> None:
    query = {name: f"ipc://{tmp_path}/{name}.query" for name in ("centre-a", "centre-b", "site-a", "site-b")}

    def paired(name: str, peer: str, *extra: str) -> Hub:
        return procs.hub("--hub-id", name, "--peer", query[peer], *extra, query=query[name], name=name)

    centre_a = paired("centre-a", "centre-b", "--peer-timeout-s", "2")
    centre_b = paired("centre-b", "centre-a", "--peer-timeout-s", "2")
    site_a = paired("site-a", "site-b", "--upstream", centre_a.agents, "--upstream-mount", "GS1", *SITE_ARGS)
    site_b = paired("site-b", "site-a", "--upstream", centre_b.agents, "--upstream-mount", "GS1", *SITE_ARGS)

    fan, power = tmp_path / "fan.json", tmp_path / "power.json"
    _set(fan, 0, "RED")
    procs.agent(site_a, "rack", {"points": [{"name": "Fan", "file": str(fan), "dt": 0.1}]}, mount="rack")
    fan_alarm = wait_until(lambda: _alarms(centre_a).get(FAN), what="the rack's alarm at centre-a")
    _set(power, 230.0, "GREEN")
    spec = {"points": [{"name": "Power", "file": str(power), "dt": 0.1}]}
    procs.agent([site_a, site_b], "ant1", spec, mount="ups")
    _set(power, 0.0, "RED")

    on_a = wait_until(lambda: _alarms(centre_a).get(POWER), what="the site's alarm at centre-a")
    on_b = wait_until(lambda: _alarms(centre_b).get(POWER), what="the site's alarm at centre-b")
    shown = on_a["id"]
    assert on_b["id"] == shown
    assert proto.PROXY_DERIVED_BASE <= shown < proto.PROXY_END
    assert fan_alarm["id"] != shown
    assert FAN not in _alarms(centre_b)
    # As an operator reads them: gsmon alarms --json on each centre.
    listed_a, listed_b = _listed(centre_a), _listed(centre_b)
    assert (listed_a[POWER]["id"], listed_b[POWER]["id"]) == (shown, shown)
    assert listed_a[POWER]["state"] == listed_b[POWER]["state"] == "active_unacked"

    done = gsmon_cli("ack", "--id", str(shown), "-m", "on it", "--json", "--hub", centre_a.query)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["acked"] == [shown]

    # The site hub under centre-a applied it (asked by centre-a), its peer got it through the site pair's
    # op log, and centre-b shows the alarm acked under the id it showed before.
    for site in (site_a, site_b):
        acked = wait_until(
            lambda site=site: _alarms(site, "ups").get("ups/Power", {}).get("state") == "active_acked" and site,
            what="the ack at the site",
        )
        alarm = _alarms(acked, "ups")["ups/Power"]
        assert alarm["acked_by"].endswith("@centre-a")  # the hub's own listing: acked_by is the key there
        assert alarm["ack_comment"] == "on it"
    wait_until(lambda: _alarms(centre_b).get(POWER, {}).get("state") == "active_acked", what="the ack at centre-b")
    listed_b = _listed(centre_b)
    assert (listed_b[POWER]["id"], listed_b[POWER]["state"]) == (shown, "active_acked")
    assert listed_b[POWER]["acked_key"].endswith("@centre-a")
    # Acked once at the site: one ack in its journal.
    log = gsmon_cli("log", "ups/Power", "--since", "all", "--json", "--hub", site_a.query)
    assert log.returncode == 0, log.stderr
    kinds = [json.loads(line)["kind"] for line in log.stdout.splitlines() if line.strip()]
    assert kinds.count("ack") == 1, kinds
