"""Hub-of-hubs (issue 17 §1): a silent site's last-known alarms in the centre's merged listing.

No sockets, no sleeps: the hub cores of test_federation / test_federation_alarms, every time an
argument. A site the centre cannot ask is listed as the centre last knew it -- the site's part of the
last merged listing, corrected by the relayed summaries heard since, else the summaries alone -- each
row marked ``last_known`` with ``as_of``; an ack of such a row is still refused ``unreachable``; a live
site's rows are never marked.
"""

from __future__ import annotations

from typing import Any

from test_federation import drop_disk_at_the_site, federation, pump, routed_answers
from test_federation_alarms import GREEN, RED, Network, listed
from test_hub_state import WALL0, pt

from gsmon.common import protocol as proto
from gsmon.hub.alarms import ACTIVE_ACKED, ACTIVE_UNACKED, RTN_UNACKED
from gsmon.hub.relay import PROXY_BASE


def root_listing(net: Network, now: float, **args: Any) -> proto.CommandResult:
    """The centre's root ``alarms``: answered at once (no live site) or once the live sites answered."""
    reply = net.central.ask("alarms", args, now)
    if reply is None:
        [reply] = net.carry(now)
    return reply


def heard_at(net: Network, site: str) -> float:
    """Wall seconds the centre last heard ``site`` (its clock is WALL0 at its 0.0)."""
    return WALL0 + net.central.state.agents[site].last_heard


def test_a_site_that_answered_once_then_went_silent_is_listed_as_last_known_and_acks_stay_refused() -> None:
    net = Network()
    central, gs1 = net.central, net.sites["GS1"]
    [site_alarm] = gs1.book.alarms()
    before = listed(root_listing(net, 1.0))
    assert not any("last_known" in item for item in before.values())  # every site answered: all current
    now = net.lose("GS1", until=20.0)
    reply = root_listing(net, now)
    alarms = listed(reply)
    assert sorted(alarms) == ["GS1", "GS1/rack1/disk", "GS2/rack1/disk", "ops/fan"]
    disk = alarms["GS1/rack1/disk"]
    # As GS1 listed it, every field (its raise time, the site's own agent name...), marked not current.
    stored = gs1.book.alarm(site_alarm.id)
    assert stored is not None
    assert {key: disk[key] for key in ("id", "state", "raised_at", "agent", "level_since")} == {
        "id": before["GS1/rack1/disk"]["id"],
        "state": ACTIVE_UNACKED,
        "raised_at": stored.raised_at,
        "agent": "rack1",
        "level_since": stored.level_since,
    }
    assert (disk["last_known"], disk["as_of"], disk["listed_at"]) == (True, heard_at(net, "GS1"), WALL0 + 1.0)
    # The live site's alarm and the centre's own (its silence alarm for GS1 included) are current.
    for path in ("GS2/rack1/disk", "ops/fan", "GS1"):
        assert not {"last_known", "as_of", "listed_at"} & set(alarms[path]), path
    [unreached] = reply.result["unreached"]
    assert unreached["path"] == "GS1"
    assert reply.message.endswith(", 1 last-known alarm of theirs listed")
    # An ack of the last-known row: refused with the reason, at once, applied nowhere.
    refused = central.ask("ack", {"ids": [disk["id"]], "seen": {str(disk["id"]): RED}}, now)
    assert refused is not None
    assert (refused.ok, refused.result) == (False, {"reason": "unreachable"})
    assert refused.message.startswith("GS1 unreachable: nothing heard from site hub GS1 for ")
    assert central.router.take_topics() == []
    assert [alarm.state for alarm in gs1.book.alarms()] == [ACTIVE_UNACKED]


def test_a_site_never_listed_here_is_listed_from_the_relayed_summaries_in_the_tree() -> None:
    net = Network()
    shown = net.central.out["GS1/rack1/disk"]["alarm"]["id"]  # the centre's id for it, as its tree shows it
    now = net.lose("GS1", until=20.0)
    [disk] = [item for item in listed(root_listing(net, now)).values() if item.get("last_known")]
    assert disk == {
        "id": shown,
        "path": "GS1/rack1/disk",
        "agent": "rack1",
        "state": ACTIVE_UNACKED,
        "level": RED,
        "level_str": "RED",
        "max_level": RED,
        "acked": False,
        "shelved": False,
        "value": 97,
        "level_since": net.sites["GS1"].book.alarms()[0].level_since,
        "last_known": True,
        "as_of": heard_at(net, "GS1"),
    }
    assert shown >= PROXY_BASE


def test_the_summaries_heard_after_the_listing_correct_it_end_alarms_and_add_new_ones() -> None:
    net = Network()
    gs1, rack = net.sites["GS1"], net.racks["GS1"]
    root_listing(net, 0.5)  # GS1 listed with its disk alarm unacked
    [disk_alarm] = gs1.book.alarms()
    # Then, at GS1: its disk alarm acked and back to normal (cleared), a new alarm on cpu; heard at the centre.
    assert gs1.ask("ack", {"ids": [disk_alarm.id]}, 0.6) is not None
    gs1.take(rack.delta(pt("disk", GREEN, value=40), pt("cpu", RED, value=99)), 0.6)
    for now in (0.6, 1.2, 1.8):
        pump(gs1, net.central, now)
    assert net.central.out["GS1/rack1/disk"].get("alarm") is None
    now = net.lose("GS1", until=20.0)
    last_known = {path: item for path, item in listed(root_listing(net, now)).items() if item.get("last_known")}
    assert list(last_known) == ["GS1/rack1/cpu"]  # the disk alarm ended after the listing: not listed
    cpu = last_known["GS1/rack1/cpu"]
    assert (cpu["state"], cpu["max_level"], cpu["value"], "listed_at" in cpu) == (ACTIVE_UNACKED, RED, 99, False)


def test_a_listed_alarm_acked_since_at_the_site_shows_the_newer_state_without_stale_ack_fields() -> None:
    net = Network()
    gs1 = net.sites["GS1"]
    [site_alarm] = gs1.book.alarms()
    assert gs1.ask("ack", {"ids": [site_alarm.id], "comment": "on it"}, 0.2) is not None
    pump(gs1, net.central, 0.2)
    root_listing(net, 0.5)  # listed acked, with its comment
    assert gs1.ask("unack", {"ids": [site_alarm.id]}, 0.6) is not None
    for now in (0.6, 1.2, 1.8):
        pump(gs1, net.central, now)
    now = net.lose("GS1", until=20.0)
    disk = listed(root_listing(net, now))["GS1/rack1/disk"]
    assert (disk["last_known"], disk["state"], disk["acked"]) == (True, ACTIVE_UNACKED, False)
    assert not {"ack_comment", "acked_by", "acked_at"} & set(disk)  # the ack was taken back after the listing
    assert disk["raised_at"] == site_alarm.raised_at  # the rest as listed


def test_a_listing_asking_some_states_only_is_not_kept_and_the_last_known_rows_follow_the_states_asked() -> None:
    net = Network()
    gs1 = net.sites["GS1"]
    [site_alarm] = gs1.book.alarms()
    assert gs1.ask("ack", {"ids": [site_alarm.id], "comment": "on it"}, 0.2) is not None
    pump(gs1, net.central, 0.2)
    root_listing(net, 0.5, states=[ACTIVE_ACKED])  # not every open state: not kept as last known
    now = net.lose("GS1", until=20.0)
    disk = listed(root_listing(net, now))["GS1/rack1/disk"]
    assert (disk["last_known"], disk["state"], "ack_comment" in disk) == (True, ACTIVE_ACKED, False)  # the tree's
    only_unacked = listed(root_listing(net, now, states=[ACTIVE_UNACKED]))
    assert not any(item.get("last_known") for item in only_unacked.values())


def test_a_listing_cut_at_its_limit_is_not_kept_as_a_sites_last_known_list() -> None:
    net = Network()
    root_listing(net, 0.5, limit=1)  # GS1 sends one alarm of at most one: maybe not all it has
    now = net.lose("GS1", until=20.0)
    disk = listed(root_listing(net, now))["GS1/rack1/disk"]
    assert (disk["last_known"], "listed_at" in disk, "raised_at" in disk) == (True, False, False)  # the tree's


def test_a_latched_alarm_whose_point_the_site_removed_is_still_listed_as_last_known() -> None:
    site, central, rack = federation(coalesce_s=0.0)
    now = drop_disk_at_the_site(site, central, rack)
    assert central.ask("alarms", {}, now) is None
    [reply] = routed_answers(site, central, now)
    [disk] = reply.result["alarms"]
    assert disk["state"] == RTN_UNACKED
    while not central.state.agents["GS1"].silent:  # the site's link lost: nothing more from it
        now += 1.0
        central.state.tick(now, WALL0 + now)
        central.drain(now)
    reply = central.ask("alarms", {}, now)
    assert reply is not None  # the only site is silent: answered at once
    [kept] = [item for item in reply.result["alarms"] if item.get("last_known")]
    assert (kept["id"], kept["path"], kept["state"]) == (disk["id"], "GS1/rack1/disk", RTN_UNACKED)
