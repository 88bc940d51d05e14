"""Hub-of-hubs (issue 17 §1): the upstream core and the central side's relay handling.

No sockets, no sleeps: site and central hub cores are wired through the real codec
(encode -> decode), with every time an argument.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import msgpack
import pytest
from notify_support import JournalNotifier
from test_hub_state import SETTINGS, WALL0, Agent, pt

from gsmon.common import alarms_cli, cli
from gsmon.common import protocol as proto
from gsmon.common.alerts import STALE_ALERTCODE
from gsmon.common.config import ConfigError
from gsmon.hub.alarms import ACTIVE_ACKED, ACTIVE_UNACKED, AGENT_SILENT, AlarmBook
from gsmon.hub.config import UpstreamConfig, parse_hub_config, read_hub_config
from gsmon.hub.queries import QueryCore
from gsmon.hub.relay import PROXY_BASE, RelayGuard, RoutedReply, Router, is_proxy_id, run_routed
from gsmon.hub.state import HubState
from gsmon.hub.upstream import UpstreamCore, UpstreamSettings

GREEN, ORANGE, RED = 10, 20, 30
SUBSCRIBE = b"\x01"


class Hub:
    """One hub core with its alarm book, query core, router and loop guard (what HubServer wires)."""

    def __init__(self, hub_id: str, epoch: int) -> None:
        self.id = hub_id
        self.book = AlarmBook()
        self.state = HubState(SETTINGS, epoch, now=0.0, alarms=self.book)
        self.state.subscriptions.follow(b"", subscribed=True)
        self.queries = QueryCore(self.state, {"agents": "a", "subscribers": "s", "query": "q"}, 1.0, "test")
        self.router = self.queries.router = Router(self.state, hub_id)
        self.guard = RelayGuard(hub_id)
        self.upstream: UpstreamCore | None = None
        self.out: dict[str, dict[str, Any]] = {}  # the latest NODE payload per path

    def link(self, mount: str, **changes: Any) -> UpstreamCore:
        settings = replace(UpstreamSettings(endpoint="tcp://central:7761", mount=mount), **changes)
        self.upstream = UpstreamCore(settings, self.state, self.id, epoch=hash(self.id) & 0xFFFF, now=0.0)
        return self.upstream

    def take(self, msg: proto.Message, now: float) -> None:
        """One message off the agents socket, as the server handles it (decoded from its bytes)."""
        decoded = self.guard.filter(proto.decode(proto.encode(msg)))
        self.state.apply(decoded, now, WALL0 + now)

    def drain(self, now: float) -> dict[str, dict[str, Any]]:
        changed = {topic.decode(): msgpack.unpackb(payload) for topic, payload in self.state.drain(WALL0 + now)}
        self.out.update(changed)
        return changed

    def ask(self, command: str, args: dict[str, Any], now: float) -> proto.CommandResult | None:
        """A COMMAND on the query socket: its COMMAND_RESULT, or None while it was routed down."""
        msg = proto.Command(sender="c", epoch=1, seq=1, sent_ns=0, request_id=7, command=command, args=args, user="ann")
        outcome = self.queries.request(msg, b"client", now, WALL0 + now)
        if not outcome.replies:
            return None
        reply = proto.decode(outcome.replies[0][1])
        assert isinstance(reply, proto.CommandResult)
        return reply


def pump(site: Hub, central: Hub, now: float) -> list[proto.Message]:
    """One turn: the site drains (so its upstream knows the changes) and ticks its link into the centre."""
    site.drain(now)
    assert site.upstream is not None
    sent = site.upstream.tick(now, WALL0 + now)
    for msg in sent:
        central.take(msg, now)
    central.drain(now)
    return sent


def routed_answers(site: Hub, central: Hub, now: float) -> list[proto.CommandResult]:
    """Carry the centre's route topics to the site, run them there, carry the answers back."""
    assert site.upstream is not None
    replies = []
    for topic in central.router.take_topics():
        command, _ = site.upstream.upstream(SUBSCRIBE + topic)
        assert command is not None
        answer = run_routed(site.queries, site.router, command, now, WALL0 + now)
        assert answer is not None
        central.take(
            site.upstream.result(now, WALL0 + now, answer.to[1], answer.ok, answer.message, answer.result), now
        )
    for name, result in central.state.take_upstream_results():
        routed = central.router.answer(name, result)
        assert routed is not False, "an answer the centre was not waiting for"
        if isinstance(routed, RoutedReply):  # (True: a site's part of a merged listing, more to come)
            replies.append(_as_result(routed))
    return replies


def _as_result(routed: RoutedReply) -> proto.CommandResult:
    return proto.CommandResult(
        sender="hub", epoch=1, seq=1, sent_ns=0, request_id=routed.to[2], ok=routed.ok, message=routed.message,
        result=routed.result,
    )  # fmt: skip


def federation(**changes: Any) -> tuple[Hub, Hub, Agent]:
    """A site hub (id site1) with agent rack1 at rack1, linked to a central hub under GS1, STATE sent."""
    site, central = Hub("site1", 0x51), Hub("central", 0xCE)
    rack = Agent("rack1", "rack1")
    site.take(rack.state(pt("cpu", GREEN, dt=1.0), pt("disk", RED, value=97, dt=1.0)), 0.0)
    core = site.link("GS1", **changes)
    core.upstream(SUBSCRIBE)  # the central hub's subscription reached the site's XPUB
    pump(site, central, 0.0)
    return site, central, rack


# -- relayed entries ----------------------------------------------------------------------------


def drop_disk_at_the_site(site: Hub, central: Hub, rack: Agent) -> float:
    """rack1's next STATE no longer lists ``disk`` (cpu one-shot: never overdue); time runs until the point
    is gone at the site, then at the centre (at most 40 s). Returns the time then."""
    site.take(rack.state(pt("cpu", GREEN)), 1.0)
    now = 1.0
    while "GS1/rack1/disk" in central.state.tree and now < 40.0:
        now += 1.0
        site.take(rack.heartbeat(), now)
        site.state.tick(now, WALL0 + now)
        pump(site, central, now)
        central.state.tick(now, WALL0 + now)
        central.drain(now)
    return now


def test_the_central_hub_mounts_the_site_tree_with_owner_dt_alarm_and_recomputes_parents() -> None:
    site, central, _ = federation()
    [site_alarm] = site.book.alarms()
    disk = central.out["GS1/rack1/disk"]
    assert (disk["alert"], disk["value"], disk["agent"], disk["dt"], disk["stale"]) == (
        RED,
        97,
        "GS1:rack1",
        1.0,
        False,
    )
    # The site's alarm, under the centre's own id for it (never one of the centre's alarm book's).
    assert disk["alarm"] == {
        "id": central.router.proxy("GS1", site_alarm.id),
        "state": ACTIVE_UNACKED,
        "max_level": RED,
    }
    assert disk["alarm"]["id"] >= PROXY_BASE
    assert disk["via"] == ["site1"]
    assert central.out["GS1/rack1"]["alert"] == RED
    assert central.out["GS1"]["alert"] == RED
    assert central.out["GS1/rack1/cpu"]["alert"] == GREEN
    assert central.book.alarms() == []  # alarm state stays with the site: no second alarm at the top


def test_a_point_stale_at_the_site_is_stale_at_the_centre_without_a_central_judgement() -> None:
    site, central, rack = federation()
    for now in (1.0, 2.0, 3.0, 4.5):  # the agent keeps beating, cpu and disk are never refreshed
        site.take(rack.heartbeat(), now)
        site.state.tick(now, WALL0 + now)
        pump(site, central, now)
    cpu = central.out["GS1/rack1/cpu"]
    assert (cpu["alert"], cpu["stale"], cpu["reported_alert"]) == (STALE_ALERTCODE, True, GREEN)
    assert central.book.alarms() == []
    # Refreshed at the site: fresh at the centre with the next flush.
    site.take(rack.delta(pt("cpu", GREEN, dt=1.0, polled=5.5)), 5.5)
    pump(site, central, 5.5)
    assert (central.out["GS1/rack1/cpu"]["alert"], central.out["GS1/rack1/cpu"]["stale"]) == (GREEN, False)


def test_losing_the_site_is_one_alarm_at_the_centre_and_it_heals_with_a_full_state() -> None:
    site, central, rack = federation()
    # The link is down: nothing arrives at the centre, whose tick finds the site silent.
    central.state.tick(10.0, WALL0 + 10.0)
    central.drain(10.0)
    assert all(central.out[path]["stale"] for path in ("GS1/rack1/cpu", "GS1/rack1/disk"))
    [alarm] = central.book.alarms()
    assert (alarm.path, alarm.reason, alarm.state) == ("GS1", AGENT_SILENT, ACTIVE_UNACKED)
    # Back: the first message makes the centre ask for a STATE on the resync back-channel.
    site.take(rack.delta(pt("cpu", ORANGE, dt=1.0, polled=11.0), pt("disk", RED, value=97, dt=1.0)), 11.0)
    site.state.tick(11.0, WALL0 + 11.0)
    assert site.upstream is not None
    site.upstream.policy.set_last_sent(0, -1e9)  # a heartbeat is due: the silence is over with this flush
    pump(site, central, 11.0)
    assert central.state.take_resync_requests() == ["GS1"]
    site.upstream.upstream(SUBSCRIBE + proto.RESYNC_TOPIC_PREFIX + b"GS1")
    sent = pump(site, central, 11.2)
    assert [type(msg) for msg in sent][:1] == [proto.State]
    assert central.out["GS1/rack1/cpu"]["alert"] == ORANGE
    assert not central.out["GS1/rack1/cpu"]["stale"]
    assert not central.out["GS1/rack1/disk"]["stale"]
    assert [a.path for a in central.book.alarms()] == ["GS1"]
    assert central.book.alarms()[0].rtn_at is not None


def test_coalescing_sends_at_most_one_entry_per_point_per_interval_and_the_latest_wins() -> None:
    site, central, rack = federation(coalesce_s=1.0)
    counted: list[proto.PointEntry] = []
    for step in range(1, 21):  # 20 changes of cpu in 2 s, one every 0.1 s
        now = step * 0.1
        site.take(rack.delta(pt("cpu", GREEN, value=step, dt=1.0, polled=now)), now)
        counted += [entry for msg in pump(site, central, now) if isinstance(msg, proto.Delta) for entry in msg.points]
    assert 2 <= len(counted) <= 3  # the first at once, then one per second
    pump(site, central, 3.5)  # the interval after the last change ends: the latest value goes
    assert central.out["GS1/rack1/cpu"]["value"] == 20


def test_without_coalescing_every_flush_with_a_change_sends_it() -> None:
    site, central, rack = federation(coalesce_s=0.0)
    counted = 0
    for step in range(1, 11):
        now = step * 0.1
        site.take(rack.delta(pt("cpu", GREEN, value=step, dt=1.0, polled=now)), now)
        counted += sum(len(msg.points) for msg in pump(site, central, now) if isinstance(msg, proto.Delta))
    assert counted == 10
    assert central.out["GS1/rack1/cpu"]["value"] == 10


def test_below_the_minimum_level_only_level_changes_travel() -> None:
    site, central, rack = federation(min_level=ORANGE, coalesce_s=0.0)
    sent = []
    for step, code in ((1, GREEN), (2, GREEN), (3, ORANGE), (4, ORANGE), (5, GREEN)):
        now = step * 0.2
        site.take(rack.delta(pt("cpu", code, value=step, dt=1.0, polled=now)), now)
        sent += [e.value for msg in pump(site, central, now) if isinstance(msg, proto.Delta) for e in msg.points]
    assert sent == [3, 4, 5]  # GREEN value changes stay home; ORANGE ones and the way back go
    assert central.out["GS1/rack1/cpu"]["alert"] == GREEN


def test_prefixes_limit_what_goes_upstream() -> None:
    site, central = Hub("site1", 0x51), Hub("central", 0xCE)
    site.take(Agent("rack1", "rack1").state(pt("cpu")), 0.0)
    site.take(Agent("ant", "ant").state(pt("az")), 0.0)
    site.link("GS1", prefixes=("ant",)).upstream(SUBSCRIBE)
    pump(site, central, 0.0)
    assert "GS1/ant/az" in central.out
    assert not any(path.startswith("GS1/rack1") for path in central.out)
    assert not any(path.startswith("GS1/_hub") for path in central.out)  # the site's own points never go


def test_a_point_removed_at_the_site_leaves_the_centre_with_the_next_state() -> None:
    site, central, rack = federation()
    site.take(rack.state(pt("cpu", GREEN, dt=1.0)), 1.0)  # disk is no longer listed
    site.state.tick(12.0, WALL0 + 12.0)  # removed after the grace
    site.take(rack.heartbeat(), 12.0)
    sent = pump(site, central, 12.0)
    sent += pump(site, central, 12.2)
    assert any(isinstance(msg, proto.State) and [e.path for e in msg.points] == ["rack1/cpu"] for msg in sent)


# -- attention at the centre (1.3) --------------------------------------------------------------


def attention(hub: Hub, path: str) -> tuple[int, int, int]:
    """A node's (attention, unacked_below, shelved_below) as its latest NODE says (absent: 0)."""
    node = hub.out[path]
    assert "since" in node, f"{path}: no since, so attention would read as not judged"
    return node.get("attention", 0), node.get("unacked_below", 0), node.get("shelved_below", 0)


def test_a_relayed_unacked_alarm_needs_attention_at_the_centre_and_its_parents_count_it() -> None:
    site, central, _ = federation()
    disk = central.out["GS1/rack1/disk"]
    assert disk["since"] == site.out["rack1/disk"]["since"]  # the site's, relayed
    assert disk["attention"] == RED
    assert "since" in central.out["GS1/rack1/cpu"]
    assert "attention" not in central.out["GS1/rack1/cpu"]
    assert attention(central, "GS1/rack1") == attention(central, "GS1") == (RED, 1, 0)
    assert central.book.alarms() == []  # counted, but no alarm of the centre's


def test_a_delta_entry_carries_since_only_when_it_changed_and_the_centre_keeps_it_meanwhile() -> None:
    site, central, rack = federation(coalesce_s=0.0)
    first = central.out["GS1/rack1/disk"]["since"]
    site.take(rack.delta(pt("disk", RED, value=98, dt=1.0, polled=1.0)), 1.0)  # a new value, the same level
    [delta] = [msg for msg in pump(site, central, 1.0) if isinstance(msg, proto.Delta)]
    [entry] = delta.points
    assert isinstance(entry, proto.DebouncedEntry)
    assert "since" not in entry.debounce  # unchanged: left out (a sixth of the link's bytes)
    disk = central.out["GS1/rack1/disk"]
    assert (disk["value"], disk["since"], disk["attention"]) == (98, first, RED)
    site.take(rack.delta(pt("disk", ORANGE, value=90, dt=1.0, polled=2.0)), 2.0)
    [delta] = [msg for msg in pump(site, central, 2.0) if isinstance(msg, proto.Delta)]
    [entry] = delta.points
    assert isinstance(entry, proto.DebouncedEntry)
    assert entry.debounce["since"] == WALL0 + 2.0 == central.out["GS1/rack1/disk"]["since"]
    # A STATE carries it whatever was sent before.
    assert site.upstream is not None
    site.upstream.upstream(SUBSCRIBE)
    [state] = [msg for msg in pump(site, central, 3.0) if isinstance(msg, proto.State)]
    assert all(isinstance(item, proto.DebouncedEntry) and "since" in item.debounce for item in state.points)


def test_the_relayed_attention_is_the_worst_of_the_hubs_own_and_the_sites() -> None:
    site, central = Hub("site1", 0x51), Hub("central", 0xCE)
    site.take(Agent("rack1", "rack1").state(pt("disk", RED)), 0.0)
    site.link("net/GS1", coalesce_s=0.0).upstream(SUBSCRIBE)
    pump(site, central, 0.0)
    central.take(Agent("ops", "net/ops").state(pt("fan", ORANGE)), 0.5)  # an agent of the centre's own
    central.drain(0.5)
    assert attention(central, "net") == (RED, 2, 0)
    shown = central.out["net/GS1/rack1/disk"]["alarm"]["id"]
    assert central.ask("ack", {"ids": [shown]}, 1.0) is None
    [reply] = routed_answers(site, central, 1.0)
    assert reply.ok
    pump(site, central, 1.0)
    assert attention(central, "net") == (ORANGE, 1, 0)  # the centre's own ORANGE is left
    assert attention(central, "net/GS1") == (0, 0, 0)


def test_an_ack_at_the_centre_takes_the_relayed_attention_away_and_a_new_level_brings_it_back() -> None:
    site, central, rack = federation(coalesce_s=0.0)
    shown = central.out["GS1/rack1/disk"]["alarm"]["id"]
    assert central.ask("ack", {"ids": [shown]}, 1.0) is None
    [reply] = routed_answers(site, central, 1.0)
    assert reply.ok
    pump(site, central, 1.0)
    assert "attention" not in central.out["GS1/rack1/disk"]
    assert attention(central, "GS1") == (0, 0, 0)
    # Worse than the acked max_level: the site's alarm is unacked again, and so is the centre's view of it.
    site.take(rack.delta(pt("disk", STALE_ALERTCODE + 10, dt=1.0, polled=2.0)), 2.0)
    pump(site, central, 2.0)
    assert central.out["GS1/rack1/disk"]["attention"] == STALE_ALERTCODE + 10
    assert attention(central, "GS1") == (STALE_ALERTCODE + 10, 1, 0)


def test_a_latched_alarm_back_to_normal_at_the_site_still_needs_attention_at_the_centre() -> None:
    site, central, rack = federation(coalesce_s=0.0)
    site.take(rack.delta(pt("disk", GREEN, value=40, dt=1.0, polled=1.0)), 1.0)
    pump(site, central, 1.0)
    disk = central.out["GS1/rack1/disk"]
    assert (disk["alert"], disk["alarm"]["state"], disk["attention"]) == (GREEN, "rtn_unacked", RED)
    assert attention(central, "GS1") == (RED, 1, 0)


def test_a_site_shelf_relays_its_id_and_takes_attention_away_at_the_centre() -> None:
    site, central, _ = federation(coalesce_s=0.0)
    args = {"prefix": "GS1/rack1", "mode": "timed", "duration_s": 600, "comment": "disk swap"}
    assert central.ask("shelve", args, 1.0) is None  # below the mount: routed to the site
    [reply] = routed_answers(site, central, 1.0)
    assert reply.ok, reply.message
    shelf_id = reply.result["shelf"]["id"]
    pump(site, central, 1.0)
    disk, cpu = central.out["GS1/rack1/disk"], central.out["GS1/rack1/cpu"]
    assert (disk["shelf_id"], cpu["shelf_id"]) == (shelf_id, shelf_id)  # the site's id, as a routed listing shows it
    assert "attention" not in disk
    assert attention(central, "GS1/rack1") == attention(central, "GS1") == (0, 0, 2)
    assert central.ask("unshelve", {"id": shelf_id, "path": "GS1/rack1/disk"}, 2.0) is None
    [reply] = routed_answers(site, central, 2.0)
    assert reply.ok, reply.message
    pump(site, central, 2.0)
    assert "shelf_id" not in central.out["GS1/rack1/disk"]
    assert attention(central, "GS1") == (RED, 1, 0)


def test_a_silent_sites_relayed_alarms_count_as_its_silence_until_its_entries_come_again() -> None:
    site, central, rack = federation(coalesce_s=0.0)
    central.state.tick(10.0, WALL0 + 10.0)
    central.drain(10.0)
    # One alarm for the centre's operators: the silence on the mount, not the disk it stands for.
    assert "attention" not in central.out["GS1/rack1/disk"]
    assert central.out["GS1/rack1/disk"]["since"] == WALL0 + 10.0  # STALE since the silence began
    assert attention(central, "GS1/rack1") == (0, 0, 0)
    assert attention(central, "GS1") == (STALE_ALERTCODE, 1, 0)
    site.take(rack.delta(pt("cpu", GREEN, dt=1.0, polled=11.0), pt("disk", RED, value=97, dt=1.0, polled=11.0)), 11.0)
    site.state.tick(11.0, WALL0 + 11.0)
    assert site.upstream is not None
    site.upstream.policy.set_last_sent(0, -1e9)
    pump(site, central, 11.0)
    assert central.state.take_resync_requests() == ["GS1"]
    site.upstream.upstream(SUBSCRIBE + proto.RESYNC_TOPIC_PREFIX + b"GS1")
    pump(site, central, 11.2)
    assert central.out["GS1/rack1/disk"]["attention"] == RED
    assert central.out["GS1/rack1/disk"]["since"] == site.out["rack1/disk"]["since"]  # the site's again
    # The silence latched (STALE): it still wants its ack, next to the site's RED.
    assert attention(central, "GS1") == (STALE_ALERTCODE, 2, 0)
    assert attention(central, "GS1/rack1") == (RED, 1, 0)


def test_a_relayed_point_removed_counts_no_more_but_its_latched_alarm_counts_as_the_sites_orphan() -> None:
    site, central, rack = federation(coalesce_s=0.0)
    drop_disk_at_the_site(site, central, rack)
    assert "GS1/rack1/disk" not in central.state.tree
    assert [alarm.state for alarm in site.book.alarms()] == ["rtn_unacked"]  # latched: the site still wants an ack
    # (1.3, Orphaned alarms) Counted once, as the site counts it (test_federation_orphans has the rest).
    assert attention(central, "GS1") == attention(site, "rack1") == (RED, 1, 0)


def test_a_chain_of_three_hubs_shows_the_sites_attention_at_the_top() -> None:
    site, mid, top = Hub("site1", 1), Hub("mid", 2), Hub("top", 3)
    rack = Agent("rack1", "rack1")
    site.take(rack.state(pt("cpu", RED, dt=2.0)), 0.0)
    site.link("GS1").upstream(SUBSCRIBE)
    mid.link("M").upstream(SUBSCRIBE)
    for now in (0.0, 0.2):
        pump(site, mid, now)
        pump(mid, top, now)
    cpu = top.out["M/GS1/rack1/cpu"]
    assert (cpu["attention"], cpu["since"]) == (RED, site.out["rack1/cpu"]["since"])
    assert attention(top, "M") == attention(mid, "GS1") == (RED, 1, 0)
    # A new value at the same level: DELTAs without since all the way up, and each hub keeps it.
    site.take(rack.delta(pt("cpu", RED, value=2.0, dt=2.0, polled=1.5)), 1.5)
    for now in (1.5, 1.7):
        pump(site, mid, now)
        pump(mid, top, now)
    cpu = top.out["M/GS1/rack1/cpu"]
    assert (cpu["value"], cpu["since"], cpu["attention"]) == (2.0, site.out["rack1/cpu"]["since"], RED)


def test_set_relayed_counts_once_per_path_and_taking_it_away_prunes() -> None:
    book = AlarmBook()
    book.set_relayed("S/a/x", RED, False)
    book.set_relayed("S/a/x", RED, False)  # the same again: nothing changes
    book.set_relayed("S/b/y", None, True)
    assert (book.attention_of("S"), book.unacked_below("S"), book.shelved_below("S")) == (RED, 1, 1)
    assert set(book.take_node_changes()) == {"S", "S/a", "S/a/x", "S/b", "S/b/y"}
    book.set_relayed("S/a/x", ORANGE, False)
    assert (book.attention_of("S"), book.unacked_below("S")) == (ORANGE, 1)
    book.set_relayed("S/a/x", None, False)
    book.point_removed("S/b/y", 0.0, WALL0)
    assert (book.attention_of("S"), book.unacked_below("S"), book.shelved_below("S")) == (0, 0, 0)
    assert book.take_journal() == []  # the site journals its alarms; nothing here
    assert all(view == book.view_of("") for view in book.take_node_changes().values())  # every node reset


def test_gsmon_alarms_at_the_centre_lists_the_sites_alarms_with_its_own_and_at_a_mount_the_sites(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    site, central, _ = federation()

    def send(command: str, args: dict[str, Any]) -> proto.CommandResult:
        """The centre's query core, and the site's when the command is routed (no sockets)."""
        reply = central.ask(command, args, 1.0)
        if reply is None:
            [reply] = routed_answers(site, central, 1.0)
        return reply

    monkeypatch.setattr(alarms_cli, "hub_sender", lambda *args, **kwargs: send)
    monkeypatch.setenv("GSMON_HUB", "tcp://127.0.0.1:7763")
    monkeypatch.setenv("XDG_CONFIG_HOME", "/nonexistent-gsmon-test")
    assert central.ask("alarms", {}, 1.0) is None  # (1.3) the root listing asks the site too
    [reply] = routed_answers(site, central, 1.0)
    assert ([item["path"] for item in reply.result["alarms"]], reply.result["merged"]) == (["GS1/rack1/disk"], ["GS1"])
    assert cli.main(["alarms"]) == 0
    out = capsys.readouterr().out
    assert "GS1/rack1/disk" in out
    assert "with the alarms of the site hubs GS1" in out
    assert cli.main(["alarms", "GS1"]) == 0  # at the mount: the site's list, routed
    out = capsys.readouterr().out
    assert "GS1/rack1/disk" in out
    assert "site hubs" not in out
    assert cli.main(["alarms", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)  # the JSON array as before
    assert (row["path"], row["id"]) == ("GS1/rack1/disk", central.out["GS1/rack1/disk"]["alarm"]["id"])


# -- loop guard and chains ----------------------------------------------------------------------


def test_a_hub_drops_relayed_entries_that_passed_it_and_those_too_deep() -> None:
    guard = RelayGuard("central")
    base = proto.point_debounce_map(GREEN, "GREEN", None, None)

    def relayed(path: str, via: list[str]) -> proto.PointEntry:
        entry = proto.PointEntry(path, 1, GREEN, "GREEN", WALL0, None)
        return proto.debounced_entry(entry, proto.relay_map(base, "rack1", via, False, 1.0, GREEN, None))

    delta = proto.Delta(
        sender="GS1", epoch=1, seq=1, sent_ns=0,
        points=[relayed("a", ["site1"]), relayed("b", ["central", "site1"]), relayed("c", ["1", "2", "3", "4", "5"]),
                pt("plain")],
    )  # fmt: skip
    kept = guard.filter(proto.decode(proto.encode(delta)))
    assert isinstance(kept, proto.Delta)
    assert [entry.path for entry in kept.points] == ["a", "plain"]
    assert (guard.loops_dropped, guard.too_deep) == (1, 1)


def test_a_configured_loop_stops_at_the_hub_that_sees_its_own_id() -> None:
    a, b = Hub("A", 0xA), Hub("B", 0xB)
    a.take(Agent("rack1", "rack1").state(pt("cpu")), 0.0)
    b.take(Agent("ant", "ant").state(pt("az")), 0.0)
    a.link("X").upstream(SUBSCRIBE)  # A publishes to B under X ...
    b.link("Y").upstream(SUBSCRIBE)  # ... and B to A under Y: a cycle
    for now in (0.0, 0.2, 0.4, 0.6, 31.0, 31.2):
        pump(a, b, now)
        pump(b, a, now)
    # Each hub has the other's own points once; its own, come back round, it dropped (counted).
    assert "X/rack1/cpu" in b.out
    assert not any(path.startswith("X/Y") for path in b.out)
    assert "Y/ant/az" in a.out
    assert not any(path.startswith("Y/X") for path in a.out)
    assert a.guard.loops_dropped > 0
    assert b.guard.loops_dropped > 0


def test_a_chain_of_three_hubs_names_the_owner_and_lists_the_hubs_passed() -> None:
    site, mid, top = Hub("site1", 1), Hub("mid", 2), Hub("top", 3)
    site.take(Agent("rack1", "rack1").state(pt("cpu", RED, dt=2.0)), 0.0)
    site.link("GS1").upstream(SUBSCRIBE)
    mid.link("M").upstream(SUBSCRIBE)
    for now in (0.0, 0.2):
        pump(site, mid, now)
        pump(mid, top, now)
    cpu = top.out["M/GS1/rack1/cpu"]
    assert (cpu["agent"], cpu["via"], cpu["alert"], cpu["dt"]) == ("M:GS1:rack1", ["site1", "mid"], RED, 2.0)
    assert cpu["alarm"]["id"] == top.router.proxy("M", mid.router.proxy("GS1", site.book.alarms()[0].id))
    assert top.out["M"]["alert"] == RED
    assert mid.book.alarms() == []
    assert top.book.alarms() == []


# -- routed commands ----------------------------------------------------------------------------


def test_an_ack_at_the_centre_is_applied_at_the_site_and_shows_at_the_centre() -> None:
    site, central, _ = federation()
    [alarm] = site.book.alarms()
    shown = central.out["GS1/rack1/disk"]["alarm"]["id"]
    assert central.ask("ack", {"ids": [shown], "seen": {str(shown): RED}}, 1.0) is None  # routed down
    [reply] = routed_answers(site, central, 1.1)
    assert reply.ok
    assert reply.result["acked"] == [shown]  # the ids as the centre shows them
    stored = site.book.alarm(alarm.id)
    assert stored is not None
    assert stored.state == ACTIVE_ACKED
    assert stored.acked_by == "anonymous@unknown@central"
    pump(site, central, 1.2)
    assert central.out["GS1/rack1/disk"]["alarm"]["state"] == ACTIVE_ACKED
    assert central.book.alarms() == []


def test_alarms_at_the_centre_under_a_mount_are_the_sites_with_the_mount_put_back() -> None:
    site, central, _ = federation()
    assert central.ask("alarms", {"prefix": "GS1/rack1"}, 1.0) is None
    [reply] = routed_answers(site, central, 1.1)
    [listed] = reply.result["alarms"]
    assert (listed["path"], listed["id"]) == ("GS1/rack1/disk", central.out["GS1/rack1/disk"]["alarm"]["id"])


def test_a_command_for_a_silent_site_fails_at_once_with_the_reason() -> None:
    site, central, _ = federation()
    shown = central.out["GS1/rack1/disk"]["alarm"]["id"]
    central.state.tick(10.0, WALL0 + 10.0)
    reply = central.ask("ack", {"ids": [shown]}, 10.0)
    assert reply is not None
    assert not reply.ok
    assert reply.message.startswith("GS1 unreachable: nothing heard from site hub GS1 for ")
    assert reply.result == {"reason": "unreachable"}
    assert central.router.take_topics() == []  # nothing went down, nothing applied anywhere
    assert site.book.alarms()[0].state == ACTIVE_UNACKED


def test_an_unanswered_routed_command_fails_after_the_timeout_and_is_never_applied_late() -> None:
    site, central, _ = federation()
    [alarm] = site.book.alarms()
    assert central.ask("ack", {"ids": [central.out["GS1/rack1/disk"]["alarm"]["id"]]}, 1.0) is None
    [topic] = central.router.take_topics()  # lost on the way (the link went down)
    assert central.router.expire(5.9) == []
    [late] = central.router.expire(6.0)
    assert not late.ok
    assert late.message == "GS1 unreachable: no answer from site hub GS1 within 5 s"
    assert site.upstream is not None
    command, _ = site.upstream.upstream(SUBSCRIBE + topic)  # it arrives after all, too late
    assert command is not None
    assert run_routed(site.queries, site.router, command, 7.0, WALL0 + 7.0) is None
    assert site.book.alarm(alarm.id).state == ACTIVE_UNACKED  # type: ignore[union-attr]


def test_an_ack_of_the_hubs_own_alarm_stays_here_and_mixed_or_unknown_ids_are_refused() -> None:
    _site, central, _ = federation()
    central.state.tick(10.0, WALL0 + 10.0)  # the site is silent: the centre's own alarm on GS1
    [own] = central.book.alarms()
    assert own.id < PROXY_BASE
    reply = central.ask("ack", {"ids": [own.id]}, 10.0)
    assert reply is not None
    assert reply.ok
    assert reply.result["acked"] == [own.id]
    shown = central.out["GS1/rack1/disk"]["alarm"]["id"]
    mixed = central.ask("ack", {"ids": [shown, own.id]}, 10.0)
    assert mixed is not None
    assert mixed.result == {"reason": "bad-args", "groups": [[own.id], [shown]]}  # (1.3) one command per group
    assert "one site" in mixed.message
    unknown = central.ask("unack", {"ids": [PROXY_BASE + 999]}, 10.0)
    assert unknown is not None
    assert unknown.result == {"reason": "unknown"}
    assert central.router.take_topics() == []


def test_commands_for_paths_outside_any_site_run_at_the_hub_itself() -> None:
    _, central, _ = federation()
    reply = central.ask("alarms", {"prefix": "elsewhere"}, 1.0)
    assert reply is not None
    assert reply.ok
    assert reply.result == {"alarms": []}
    assert central.router.take_topics() == []


def test_a_routed_command_is_checked_against_the_role_the_centre_saw() -> None:
    site, _, _ = federation()
    routed = {"route_id": 3, "command": "ack", "args": {"ids": [1]}, "by": "v", "hub": "c", "role": "viewer",
              "deadline": WALL0 + 100}  # fmt: skip
    answer = run_routed(site.queries, site.router, routed, 1.0, WALL0 + 1.0)
    assert answer is not None
    assert not answer.ok
    assert answer.result == {"reason": "forbidden"}


# -- the wire -----------------------------------------------------------------------------------


def test_route_topics_name_their_site_and_round_trip() -> None:
    command = {"route_id": 1, "command": "ack", "args": {"ids": [2]}, "deadline": 5.0, "by": "b", "role": "admin"}
    topic = proto.route_topic("GS1", command)
    assert topic.startswith(proto.ROUTE_TOPIC_PREFIX + b"GS1\x00")
    assert proto.parse_route("GS1", SUBSCRIBE + topic) == command
    assert proto.parse_route("GS10", SUBSCRIBE + topic) is None
    assert proto.parse_route("GS1", b"\x00" + topic) is None  # an unsubscription
    assert proto.parse_route("GS1", SUBSCRIBE + proto.ROUTE_TOPIC_PREFIX + b"GS1\x00\xc1") is None


def test_upstream_result_round_trips() -> None:
    msg = proto.UpstreamResult(
        sender="GS1", epoch=1, seq=4, sent_ns=5, route_id=9, ok=True, message="m", result={"a": 1}
    )
    assert proto.decode(proto.encode(msg)) == msg


@pytest.mark.parametrize(
    "bad",
    [{"via": "site1"}, {"via": []}, {"via": ["s"], "agent": 3}, {"via": ["s"], "stale": 1}, {"via": ["s"], "dt": -1},
     {"via": ["s"], "alarm": {"id": "x", "state": "s", "max_level": 1}}, {"via": ["s"], "since": "x"},
     {"via": ["s"], "since": float("nan")}, {"via": ["s"], "shelf": 1.5}, {"via": ["s"], "shelf": True}],
)  # fmt: skip
def test_relay_keys_with_a_wrong_type_make_the_message_invalid(bad: dict[str, Any]) -> None:
    relay = {"raw": 10, "raw_str": "", "pending": None, "flapping": None, "agent": "r", "via": ["s"], "stale": False,
             "dt": None, "reported": 10, "alarm": None, **bad}  # fmt: skip
    frame = msgpack.packb([1, 3, 2, "GS1", 1, 1, 0, {"points": [["p", 1, 10, "GREEN", 1.0, None, relay]]}])
    with pytest.raises(proto.ProtocolError, match=r"relay keys"):
        proto.decode(frame)


# -- configuration ------------------------------------------------------------------------------


def test_the_upstream_keys_of_the_hub_config() -> None:
    config = parse_hub_config(
        '[hub]\nhub_id = "site1"\nupstream = "tcp://central:7761"\nupstream_mount = "Sites/GS1"\n'
        'upstream_prefixes = ["rack1", "ant/"]\nupstream_min_level = "orange"\nupstream_coalesce_ms = 250\n'
    )
    assert config.hub_id == "site1"
    assert config.upstream == UpstreamConfig(
        endpoint="tcp://central:7761", mount="Sites/GS1", prefixes=("rack1", "ant/"), min_level=ORANGE, coalesce_ms=250
    )
    assert UpstreamSettings(endpoint="e", mount="Sites/GS1").sender == "GS1"
    assert parse_hub_config("").upstream is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('upstream = "tcp://c:1"', "upstream_mount: is required with upstream"),
        ('upstream_mount = "GS1"', "upstream_mount: needs upstream"),
        ('upstream = "tcp://c:1"\nupstream_mount = "_hub/x"', "reserved"),
        ('upstream = "tcp://c:1"\nupstream_mount = "GS1"\nupstream_key = "k"', "upstream_hub_key: is missing"),
        ('upstream = "tcp://c:1"\nupstream_mount = "GS1"\nupstream_min_level = "PINK"', "upstream_min_level"),
    ],
)
def test_bad_upstream_keys_are_refused_in_one_line_naming_the_key(text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        parse_hub_config(f"[hub]\n{text}\n")


def test_the_upstream_flags_set_the_keys() -> None:
    overrides = {
        "hub.upstream": ("tcp://central:7761", "--upstream"),
        "hub.upstream_mount": ("GS1", "--upstream-mount"),
        "hub.upstream_prefixes": (["rack1"], "--upstream-prefix"),
        "hub.upstream_coalesce_ms": (0, "--upstream-coalesce-ms"),
    }
    upstream = read_hub_config(None, overrides).upstream
    assert upstream is not None
    assert (upstream.mount, upstream.prefixes, upstream.coalesce_ms) == ("GS1", ("rack1",), 0)


def test_the_notifier_of_the_centre_tells_a_lost_site_once_not_once_per_point() -> None:
    """common/notify reading the central hub's journal while a site of 50 points is lost and back."""
    site, central = Hub("site1", 0x51), Hub("central", 0xCE)
    rack = Agent("rack1", "rack1")
    site.take(rack.state(*(pt(f"p{index}", RED if index == 0 else GREEN, dt=1.0) for index in range(50))), 0.0)
    site.link("GS1").upstream(SUBSCRIBE)
    pump(site, central, 0.0)
    notify = JournalNotifier(central.book, WALL0)
    sent = notify.sent

    notify(0.0)
    assert sent == []  # the site's RED is the site's alarm: notified there, not twice
    for now in (10.0, 20.0):  # the link is down
        central.state.tick(now, WALL0 + now)
        central.drain(now)
        notify(now)
    assert sent == ["[gsmon] AGENT SILENT STALE GS1"]
    site.take(rack.heartbeat(), 21.0)
    assert site.upstream is not None
    site.upstream.policy.set_last_sent(0, -1e9)
    pump(site, central, 21.0)
    site.upstream.upstream(SUBSCRIBE + proto.RESYNC_TOPIC_PREFIX + b"GS1")
    for now in (21.2, 22.0):
        pump(site, central, now)
        central.state.tick(now, WALL0 + now)
        notify(now)
    assert sent == ["[gsmon] AGENT SILENT STALE GS1", "[gsmon] AGENT BACK STALE GS1"]


def test_proxy_ids_sit_between_the_counted_ids_and_a_pairs_derived_ids() -> None:
    """A hub of a pair acks its own derived ids (2**52 and up) itself: only the proxy range is routed."""
    from gsmon.hub.alarms import DERIVED_ID_BASE

    assert is_proxy_id(PROXY_BASE)
    assert is_proxy_id(proto.PROXY_END - 1)
    assert not is_proxy_id(PROXY_BASE - 1)
    assert not is_proxy_id(DERIVED_ID_BASE)
    assert not is_proxy_id(True)
    hub = HubState(SETTINGS, 1, now=0.0, alarms=AlarmBook())
    assert Router(hub, "central")._target("ack", {"ids": [DERIVED_ID_BASE + 5]}) is None


def test_an_agent_silent_at_the_site_needs_attention_at_the_centre_until_acked_there() -> None:
    """The site's agent-silent alarm sits on the agent's mount there (not relayed): its points carry it up."""
    site, central, _ = federation(coalesce_s=0.0)
    disk = central.out["GS1/rack1/disk"]["alarm"]["id"]
    assert central.ask("ack", {"ids": [disk]}, 0.5) is None
    [reply] = routed_answers(site, central, 0.5)
    assert reply.ok
    pump(site, central, 0.5)
    assert attention(central, "GS1") == (0, 0, 0)
    site.state.tick(35.0, WALL0 + 35.0)  # rack1 unheard for more than 3 x its 10 s heartbeat: silent there
    pump(site, central, 35.0)
    [silence] = [a for a in site.book.alarms() if a.reason == AGENT_SILENT]
    cpu = central.out["GS1/rack1/cpu"]
    assert cpu["stale"]
    assert cpu["alarm"]["state"] == ACTIVE_UNACKED
    assert central.out["GS1/rack1/disk"]["alarm"]["id"] == cpu["alarm"]["id"]  # one alarm, one proxy id
    assert attention(central, "GS1")[0] == STALE_ALERTCODE
    assert central.ask("ack", {"ids": [cpu["alarm"]["id"]]}, 36.0) is None
    [reply] = routed_answers(site, central, 36.0)
    assert reply.ok, reply.message
    assert site.book.alarm(silence.id).state == ACTIVE_ACKED  # type: ignore[union-attr]
    pump(site, central, 36.0)
    assert attention(central, "GS1") == (0, 0, 0)
