"""Hub-of-hubs, the operator's view at the centre (issue 17 §1): ONE alarm list of the whole network.

No sockets, no sleeps: the hub cores of test_federation, wired through the real codec, every time an
argument. Covers the merged ``alarms`` listing (the centre's own alarms and every live site's, silent
and mute sites named), a latched alarm whose point the site removed, and proxy ids kept across a
restart of the central hub (its state store).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from test_federation import SUBSCRIBE, Hub, _as_result, drop_disk_at_the_site, federation, pump, routed_answers
from test_hub_state import WALL0, Agent, pt

from gsmon.common import alarms_cli, cli
from gsmon.common import protocol as proto
from gsmon.common.alarm_commands import CommandRefusedError, OperatorClient
from gsmon.hub.alarms import ACTIVE_ACKED, ACTIVE_UNACKED, AGENT_SILENT, CLEARED, RTN_UNACKED
from gsmon.hub.journal import StateStore
from gsmon.hub.relay import LISTING_TIMEOUT_S, PROXY_BASE, PROXY_META_PREFIX, RoutedReply, run_routed

GREEN, ORANGE, RED = 10, 20, 30


class Network:
    """A central hub with an agent of its own (ops: fan RED) and two site hubs GS1, GS2 (rack1: disk RED)."""

    def __init__(self) -> None:
        self.central = Hub("central", 0xCE)
        self.sites: dict[str, Hub] = {}
        self.racks: dict[str, Agent] = {}
        for number, mount in ((1, "GS1"), (2, "GS2")):
            site = Hub(f"site{number}", 0x50 + number)
            rack = self.racks[mount] = Agent("rack1", "rack1")
            # (one-shot points, never overdue: a site lost meanwhile leaves the others' levels as they are)
            site.take(rack.state(pt("cpu", GREEN), pt("disk", RED, value=97)), 0.0)
            site.link(mount).upstream(SUBSCRIBE)
            pump(site, self.central, 0.0)
            self.sites[mount] = site
        self.ops = Agent("ops", "ops")
        self.central.take(self.ops.state(pt("fan", RED)), 0.0)
        self.central.drain(0.0)

    def lose(self, mount: str, until: float) -> float:
        """Nothing more from ``mount`` while the other sites keep their links up, until the centre finds
        it silent; the time then."""
        now = 0.0
        while not self.central.state.agents[mount].silent and now < until:
            now += 2.0
            for other, site in self.sites.items():
                if other != mount:
                    site.state.tick(now, WALL0 + now)
                    assert site.upstream is not None
                    site.upstream.policy.last_sent = -1e9  # a heartbeat is due
                    pump(site, self.central, now)
            self.central.state.tick(now, WALL0 + now)
            self.central.drain(now)
        assert self.central.state.agents[mount].silent
        assert all(not self.central.state.agents[other].silent for other in self.sites if other != mount)
        return now

    def carry(self, now: float, lost: tuple[str, ...] = ()) -> list[proto.CommandResult]:
        """The centre's route topics to the sites (but those in ``lost``), their answers back."""
        return carry(self.central, self.sites, now, lost)


def carry(central: Hub, sites: dict[str, Hub], now: float, lost: tuple[str, ...] = ()) -> list[proto.CommandResult]:
    """Route topics from ``central`` to whichever of ``sites`` they name, run there, answers carried back."""
    for topic in central.router.take_topics():
        for mount, site in sites.items():
            assert site.upstream is not None
            command, _ = site.upstream.upstream(SUBSCRIBE + topic)
            if command is None or mount in lost:
                continue
            answer = run_routed(site.queries, site.router, command, now, WALL0 + now)
            assert answer is not None
            result = site.upstream.result(now, WALL0 + now, answer.to[1], answer.ok, answer.message, answer.result)
            central.take(result, now)
    replies = []
    for name, result in central.state.take_upstream_results():
        routed = central.router.answer(name, result)
        assert routed is not False, "an answer the centre was not waiting for"
        if isinstance(routed, RoutedReply):
            replies.append(_as_result(routed))
    return replies


def listed(reply: proto.CommandResult) -> dict[str, dict[str, Any]]:
    assert reply.ok, reply.message
    return {item["path"]: item for item in reply.result["alarms"]}


def test_the_root_listing_at_the_centre_is_one_list_of_the_whole_network() -> None:
    net = Network()
    central, gs1 = net.central, net.sites["GS1"]
    # An operator at GS1 acked its disk alarm there, with a comment.
    [site_alarm] = gs1.book.alarms()
    assert gs1.ask("ack", {"ids": [site_alarm.id], "comment": "fan ordered"}, 0.5) is not None
    pump(gs1, central, 0.5)
    assert central.ask("alarms", {}, 1.0) is None  # every site is asked at once
    [reply] = net.carry(1.0)
    alarms = listed(reply)
    assert sorted(alarms) == ["GS1/rack1/disk", "GS2/rack1/disk", "ops/fan"]
    assert alarms["ops/fan"]["id"] < PROXY_BASE  # the centre's own
    for path in ("GS1/rack1/disk", "GS2/rack1/disk"):
        # The id the centre shows in its tree and acks by: one of its proxies.
        assert alarms[path]["id"] == central.out[path]["alarm"]["id"] >= PROXY_BASE
    gs1_disk = alarms["GS1/rack1/disk"]
    stored = gs1.book.alarm(site_alarm.id)
    assert stored is not None
    assert (gs1_disk["state"], gs1_disk["acked_by"], gs1_disk["ack_comment"]) == (
        ACTIVE_ACKED,
        "anonymous@unknown",
        "fan ordered",
    )
    assert (gs1_disk["raised_at"], gs1_disk["level_since"], gs1_disk["agent"]) == (
        stored.raised_at,
        stored.level_since,
        "rack1",
    )
    assert alarms["GS2/rack1/disk"]["state"] == ACTIVE_UNACKED
    assert reply.result["merged"] == ["GS1", "GS2"]
    assert "unreached" not in reply.result
    assert reply.message == "3 alarms under the whole tree, 2 site hubs included"


def test_a_prefix_above_some_mounts_asks_only_those_sites_and_an_ack_of_a_listed_id_reaches_its_site() -> None:
    net = Network()
    central = net.central
    reply = central.ask("alarms", {"prefix": "ops"}, 1.0)  # no site below: the centre's own, at once
    assert reply is not None
    assert (list(listed(reply)), "merged" in reply.result) == (["ops/fan"], False)
    assert central.router.take_topics() == []
    assert central.ask("alarms", {"states": [ACTIVE_UNACKED]}, 1.0) is None
    [reply] = net.carry(1.0)
    gs2 = listed(reply)["GS2/rack1/disk"]
    assert central.ask("ack", {"ids": [gs2["id"]], "seen": {str(gs2["id"]): RED}}, 1.1) is None
    [acked] = net.carry(1.1)
    assert (acked.ok, acked.result["acked"]) == (True, [gs2["id"]])
    assert [a.state for a in net.sites["GS2"].book.alarms()] == [ACTIVE_ACKED]
    assert [a.state for a in net.sites["GS1"].book.alarms()] == [ACTIVE_UNACKED]
    # A limit cuts the merged list (by id: the centre's own first), not each site's part only.
    assert central.ask("alarms", {"limit": 2}, 1.2) is None
    [cut] = net.carry(1.2)
    assert [item["path"] for item in cut.result["alarms"]] == ["ops/fan", "GS1/rack1/disk"]


def test_a_silent_site_is_named_at_once_and_a_mute_one_after_the_listing_timeout() -> None:
    net = Network()
    central = net.central
    now = net.lose("GS1", until=20.0)
    assert central.ask("alarms", {}, now) is None  # GS2 is asked; GS1 is not (silent)
    assert net.carry(now, lost=("GS2",)) == []  # GS2's answer never comes
    assert central.router.expire(now + LISTING_TIMEOUT_S - 0.1) == []
    [late] = central.router.expire(now + LISTING_TIMEOUT_S)
    assert late.ok  # the centre's own alarms, and who is missing
    alarms = {item["path"]: item for item in late.result["alarms"]}
    assert sorted(alarms) == ["GS1", "GS1/rack1/disk", "GS2/rack1/disk", "ops/fan"]
    assert alarms["GS1"]["reason"] == AGENT_SILENT  # the centre's own alarm for the site's silence
    # Neither site answered: their alarms as the centre last knew them (test_federation_last_known), marked.
    assert [path for path, item in alarms.items() if item.get("last_known")] == ["GS1/rack1/disk", "GS2/rack1/disk"]
    [gs1, gs2_missing] = late.result["unreached"]
    assert (gs1["path"], gs1["site"]) == ("GS1", "GS1")
    assert gs1["reason"].startswith("nothing heard from site hub GS1 for ")
    assert gs2_missing == {"path": "GS2", "site": "GS2", "reason": "no answer from site hub GS2 within 3 s"}
    assert late.result["merged"] == []
    assert "2 not reached" in late.message
    assert late.message.endswith(", 2 last-known alarms of theirs listed")


def test_a_chain_lists_the_whole_network_at_the_top_under_the_tops_ids() -> None:
    site, mid, top = Hub("site1", 1), Hub("mid", 2), Hub("top", 3)
    rack = Agent("rack1", "rack1")
    site.take(rack.state(pt("disk", RED, dt=2.0)), 0.0)
    site.link("GS1").upstream(SUBSCRIBE)
    mid.link("M").upstream(SUBSCRIBE)
    for now in (0.0, 0.2):
        pump(site, mid, now)
        pump(mid, top, now)
    assert top.ask("alarms", {}, 1.0) is None
    [down] = top.router.take_topics()
    assert mid.upstream is not None
    command, _ = mid.upstream.upstream(SUBSCRIBE + down)
    assert command is not None
    assert run_routed(mid.queries, mid.router, command, 1.0, WALL0 + 1.0) is None  # mid asks its own site
    [to_site] = mid.router.take_topics()
    assert site.upstream is not None
    site_command, _ = site.upstream.upstream(SUBSCRIBE + to_site)
    assert site_command is not None
    answer = run_routed(site.queries, site.router, site_command, 1.0, WALL0 + 1.0)
    assert answer is not None
    mid.take(site.upstream.result(1.0, WALL0 + 1.0, answer.to[1], answer.ok, answer.message, answer.result), 1.0)
    [(name, result)] = mid.state.take_upstream_results()
    up = mid.router.answer(name, result)
    assert isinstance(up, RoutedReply)
    assert up.to[0] == "upstream"
    top.take(mid.upstream.result(1.0, WALL0 + 1.0, up.to[1], up.ok, up.message, up.result), 1.0)
    [(name, result)] = top.state.take_upstream_results()
    reply = top.router.answer(name, result)
    assert isinstance(reply, RoutedReply)
    [disk] = reply.result["alarms"]
    assert (disk["path"], disk["id"]) == ("M/GS1/rack1/disk", top.out["M/GS1/rack1/disk"]["alarm"]["id"])
    assert reply.result["merged"] == ["M", "M/GS1"]


def test_in_a_chain_the_middle_hub_waits_half_as_long_so_the_top_hears_which_site_is_mute() -> None:
    site, mid, top = Hub("site1", 1), Hub("mid", 2), Hub("top", 3)
    rack = Agent("rack1", "rack1")
    site.take(rack.state(pt("disk", RED)), 0.0)
    site.link("GS1").upstream(SUBSCRIBE)
    mid.link("M").upstream(SUBSCRIBE)
    for now in (0.0, 0.2):
        pump(site, mid, now)
        pump(mid, top, now)
    assert top.ask("alarms", {}, 1.0) is None
    [down] = top.router.take_topics()
    assert mid.upstream is not None
    command, _ = mid.upstream.upstream(SUBSCRIBE + down)
    assert command is not None
    assert run_routed(mid.queries, mid.router, command, 1.0, WALL0 + 1.0) is None
    assert len(mid.router.take_topics()) == 1  # lost on the way to GS1
    assert mid.router.expire(1.0 + LISTING_TIMEOUT_S / 2 - 0.01) == []
    [up] = mid.router.expire(1.0 + LISTING_TIMEOUT_S / 2)  # well before the top gives up on mid
    assert up.to[0] == "upstream"
    top.take(mid.upstream.result(2.5, WALL0 + 2.5, up.to[1], up.ok, up.message, up.result), 2.5)
    [(name, result)] = top.state.take_upstream_results()
    reply = top.router.answer(name, result)
    assert isinstance(reply, RoutedReply)
    assert reply.result["merged"] == ["M"]
    # The mid hub lists GS1's alarm as it last knew it (its tree): marked, under the top's id, as_of kept.
    [last_known] = reply.result["alarms"]
    assert (last_known["path"], last_known["id"]) == ("M/GS1/rack1/disk", top.out["M/GS1/rack1/disk"]["alarm"]["id"])
    heard = mid.state.agents["GS1"].last_heard  # (the mid hub's clock: WALL0 at its 0.0)
    assert (last_known["last_known"], last_known["as_of"]) == (True, WALL0 + heard)
    assert reply.result["unreached"] == [
        {"path": "M/GS1", "site": "GS1", "reason": f"no answer from site hub GS1 within {LISTING_TIMEOUT_S / 2:g} s"}
    ]


def test_a_latched_alarm_whose_point_the_site_removed_stays_listed_and_ackable_at_the_centre() -> None:
    site, central, rack = federation(coalesce_s=0.0)
    now = drop_disk_at_the_site(site, central, rack)
    assert "GS1/rack1/disk" not in central.state.tree
    [site_alarm] = site.book.alarms()
    assert site_alarm.state == RTN_UNACKED  # latched: the site still wants an ack
    assert central.ask("alarms", {}, now) is None
    [reply] = routed_answers(site, central, now)
    [disk] = reply.result["alarms"]
    assert (disk["path"], disk["state"], disk["id"] >= PROXY_BASE) == ("GS1/rack1/disk", RTN_UNACKED, True)
    assert central.ask("ack", {"ids": [disk["id"]], "seen": {str(disk["id"]): RED}}, now) is None
    [acked] = routed_answers(site, central, now)
    assert (acked.ok, acked.result["acked"]) == (True, [disk["id"]])
    assert site.book.alarm(site_alarm.id).state == CLEARED  # type: ignore[union-attr]
    assert central.ask("alarms", {}, now) is None
    [after] = routed_answers(site, central, now)
    assert after.result["alarms"] == []


def test_proxy_ids_survive_a_restart_of_the_central_hub(tmp_path: Path) -> None:
    site, central, rack = federation()
    shown = central.out["GS1/rack1/disk"]["alarm"]["id"]
    with StateStore(tmp_path / "state.db") as store:
        assert central.router.marks_waiting
        store.write_turn([], [], [], 1, meta=central.router.take_marks())  # as the server's _persist does
        assert not central.router.marks_waiting
    # The centre restarts: a new process, the same state store. Another alarm of the site's is first
    # relayed to it after the restart (a fresh counter would have given it the old disk id).
    restarted = Hub("central", 0xCF)
    with StateStore(tmp_path / "state.db") as store:
        assert restarted.router.restore(store.load_meta(PROXY_META_PREFIX)) == 1
    site.take(rack.delta(pt("cpu", ORANGE, dt=1.0, polled=2.0)), 2.0)
    assert site.upstream is not None
    site.upstream.upstream(SUBSCRIBE)  # the restarted centre's subscription: a STATE
    pump(site, restarted, 2.0)
    assert restarted.out["GS1/rack1/disk"]["alarm"]["id"] == shown
    assert restarted.out["GS1/rack1/cpu"]["alarm"]["id"] not in (shown, PROXY_BASE)
    assert restarted.out["GS1/rack1/cpu"]["alarm"]["id"] > shown  # never an id given before
    # The operator's ack by the id read before the restart hits that alarm, at its site.
    assert restarted.ask("ack", {"ids": [shown], "seen": {str(shown): RED}}, 2.1) is None
    [reply] = routed_answers(site, restarted, 2.1)
    assert (reply.ok, reply.result["acked"]) == (True, [shown])
    disk = next(alarm for alarm in site.book.alarms() if alarm.path == "rack1/disk")
    assert disk.state == ACTIVE_ACKED


def test_proxy_rows_that_do_not_read_are_skipped_and_their_ids_never_given_again() -> None:
    hub = Hub("central", 1)
    good = PROXY_BASE + 3
    restored = hub.router.restore(
        {
            f"{PROXY_META_PREFIX}{good}": "7 GS1",
            f"{PROXY_META_PREFIX}{PROXY_BASE + 9}": "seven GS1",
            f"{PROXY_META_PREFIX}nonsense": "[]",
        }
    )
    assert restored == 1
    assert hub.router.proxy("GS1", 7) == good
    assert hub.router.proxy("GS1", 8) == PROXY_BASE + 10


# -- the operator's commands at the centre ---------------------------------------------------------


def network_sender(net: Network, now: float) -> Any:
    def send(command: str, args: dict[str, Any]) -> proto.CommandResult:
        """The centre's query core, and the sites' when the command is routed (no sockets)."""
        reply = net.central.ask(command, args, now)
        if reply is None:
            [reply] = net.carry(now)
        return reply

    return send


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("GSMON_HUB", "tcp://127.0.0.1:7763")
    monkeypatch.setenv("XDG_CONFIG_HOME", "/nonexistent-gsmon-test")
    return monkeypatch


def test_gsmon_alarms_at_the_centre_lists_the_whole_network_and_names_a_site_not_reached(
    cli_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    net = Network()
    cli_env.setattr(alarms_cli, "hub_sender", lambda *args, **kwargs: network_sender(net, 1.0))
    assert cli.main(["alarms"]) == 0
    out = capsys.readouterr().out
    for path in ("ops/fan", "GS1/rack1/disk", "GS2/rack1/disk"):
        assert path in out
    assert str(net.central.out["GS2/rack1/disk"]["alarm"]["id"]) in out
    assert "with the alarms of the site hubs GS1, GS2" in out
    assert cli.main(["alarms", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(row["path"] for row in rows) == ["GS1/rack1/disk", "GS2/rack1/disk", "ops/fan"]
    # GS1 falls silent: named, with the reason; its alarm as the centre last knew it, marked so.
    now = net.lose("GS1", until=20.0)
    cli_env.setattr(alarms_cli, "hub_sender", lambda *args, **kwargs: network_sender(net, now))
    assert cli.main(["alarms", "--json"]) == 0
    captured = capsys.readouterr()
    rows = {row["path"]: row for row in json.loads(captured.out)}  # the JSON stays the array
    assert "last_known" not in rows["GS2/rack1/disk"]
    assert rows["GS1/rack1/disk"]["last_known"] is True
    assert rows["GS1/rack1/disk"]["as_of"].endswith("Z")
    assert "GS1: not reached (nothing heard from site hub GS1 for " in captured.err
    assert "its 1 last-known alarm is listed as such" in captured.err
    assert cli.main(["alarms"]) == 0
    lines = capsys.readouterr().out.splitlines()
    [gs1_line] = [line for line in lines if "GS1/rack1/disk" in line]
    assert "last known " in gs1_line
    assert lines.index(gs1_line) == len(lines) - 3  # after the current ones (then the sites, the unreached)
    assert not any("last known" in line for line in lines if "GS1/rack1/disk" not in line and "not reached" not in line)


def test_gsmon_ack_of_a_prefix_at_the_centre_acks_each_sites_alarms_at_that_site(
    cli_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    net = Network()
    cli_env.setattr(alarms_cli, "hub_sender", lambda *args, **kwargs: network_sender(net, 1.0))
    assert cli.main(["ack", "/", "-m", "seen at the centre", "--json"]) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert len(outcome["acked"]) == len(outcome["listed"]) == 3
    assert outcome["skipped"] == []
    for site in net.sites.values():
        [alarm] = site.book.alarms()
        assert (alarm.state, alarm.ack_comment, alarm.acked_by) == (
            ACTIVE_ACKED,
            "seen at the centre",
            "anonymous@unknown@central",
        )
    assert [alarm.state for alarm in net.central.book.alarms()] == [ACTIVE_ACKED]


def test_an_ack_of_several_sites_ids_goes_as_one_ack_per_site_and_a_lost_sites_are_skipped() -> None:
    net = Network()
    client = OperatorClient(network_sender(net, 1.0))
    alarms, _ = client.alarm_listing("")
    ids = [alarm.id for alarm in alarms]  # the centre's own, GS1's and GS2's: mixed
    reply = net.central.ask("ack", {"ids": ids}, 1.0)
    assert reply is not None
    assert (reply.ok, reply.result["reason"]) == (False, "bad-args")
    assert sorted(map(sorted, reply.result["groups"])) == sorted([[ids[0]], [ids[1]], [ids[2]]])
    now = net.lose("GS1", until=20.0)  # GS1 is lost between the listing and the ack
    client = OperatorClient(network_sender(net, now))
    outcome = client.ack(ids, None, {alarm.id: alarm.max_level or 0 for alarm in alarms})
    gs1 = next(alarm.id for alarm in alarms if alarm.path == "GS1/rack1/disk")
    [(skipped_id, why)] = outcome.skipped
    assert skipped_id == gs1
    assert why.startswith("GS1 unreachable: nothing heard from site hub GS1 for ")
    assert sorted(outcome.done) == sorted(alarm_id for alarm_id in ids if alarm_id != gs1)
    assert [alarm.state for alarm in net.sites["GS2"].book.alarms()] == [ACTIVE_ACKED]
    assert [alarm.state for alarm in net.central.book.alarms() if alarm.path == "ops/fan"] == [ACTIVE_ACKED]
    # GS1's alone: refused as before (nothing to split).
    with pytest.raises(CommandRefusedError, match="GS1 unreachable"):
        client.ack([gs1], None)


def test_routed_listings_log_at_debug_and_routed_acks_at_info(caplog: pytest.LogCaptureFixture) -> None:
    """As the hub's own commands (command_log): every open web page lists the alarms every few seconds, and
    at a centre each listing is routed to every site; an operator's ack stays in the log at INFO."""
    net = Network()
    central = net.central
    with caplog.at_level(logging.DEBUG, logger="gsmon.hub.relay"):
        assert central.ask("alarms", {}, 1.0) is None
        [reply] = net.carry(1.0)
        disk = listed(reply)["GS1/rack1/disk"]
        assert central.ask("ack", {"ids": [disk["id"]]}, 2.0) is None
        [acked] = net.carry(2.0)
    assert acked.ok, acked.message
    levels = {(record.levelname, str(record.args[0])) for record in caplog.records if record.args}
    assert ("DEBUG", "alarms") in levels
    assert ("INFO", "ack") in levels
    assert ("INFO", "alarms") not in levels
