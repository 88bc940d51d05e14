"""Hub-of-hubs (issue 17 §1): the upstream core and the central side's relay handling.

No sockets, no sleeps: site and central hub cores are wired through the real codec
(encode -> decode), with every time an argument.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import msgpack
import pytest
from test_hub_state import SETTINGS, WALL0, Agent, pt

from gsmon.common import protocol as proto
from gsmon.common.alerts import STALE_ALERTCODE
from gsmon.hub.alarms import ACTIVE_ACKED, ACTIVE_UNACKED, AGENT_SILENT, AlarmBook
from gsmon.hub.queries import QueryCore
from gsmon.hub.relay import RelayGuard, RoutedReply, Router, run_routed
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
        assert routed is not None
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
    assert disk["alarm"] == {"id": site_alarm.id, "state": ACTIVE_UNACKED, "max_level": RED}
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
    site.upstream.policy.last_sent = -1e9  # a heartbeat is due: the silence is over with this flush
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
    assert cpu["alarm"]["id"] == site.book.alarms()[0].id
    assert top.out["M"]["alert"] == RED
    assert mid.book.alarms() == []
    assert top.book.alarms() == []


# -- routed commands ----------------------------------------------------------------------------


def test_an_ack_at_the_centre_is_applied_at_the_site_and_shows_at_the_centre() -> None:
    site, central, _ = federation()
    [alarm] = site.book.alarms()
    assert central.ask("ack", {"ids": [alarm.id], "path": "GS1/rack1/disk"}, 1.0) is None  # routed down
    [reply] = routed_answers(site, central, 1.1)
    assert reply.ok
    assert reply.result["acked"] == [alarm.id]
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
    assert [item["path"] for item in reply.result["alarms"]] == ["GS1/rack1/disk"]


def test_a_command_for_a_silent_site_fails_at_once_with_the_reason() -> None:
    site, central, _ = federation()
    central.state.tick(10.0, WALL0 + 10.0)
    reply = central.ask("ack", {"ids": [1], "path": "GS1/rack1/disk"}, 10.0)
    assert reply is not None
    assert not reply.ok
    assert reply.message.startswith("GS1 unreachable: nothing heard from site hub GS1 for ")
    assert reply.result == {"reason": "unreachable"}
    assert central.router.take_topics() == []  # nothing went down, nothing applied anywhere
    assert site.book.alarms()[0].state == ACTIVE_UNACKED


def test_an_unanswered_routed_command_fails_after_the_timeout_and_is_never_applied_late() -> None:
    site, central, _ = federation()
    [alarm] = site.book.alarms()
    assert central.ask("ack", {"ids": [alarm.id], "path": "GS1/rack1/disk"}, 1.0) is None
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
     {"via": ["s"], "alarm": {"id": "x", "state": "s", "max_level": 1}}],
)  # fmt: skip
def test_relay_keys_with_a_wrong_type_make_the_message_invalid(bad: dict[str, Any]) -> None:
    relay = {"raw": 10, "raw_str": "", "pending": None, "flapping": None, "agent": "r", "via": ["s"], "stale": False,
             "dt": None, "reported": 10, "alarm": None, **bad}  # fmt: skip
    frame = msgpack.packb([1, 3, 2, "GS1", 1, 1, 0, {"points": [["p", 1, 10, "GREEN", 1.0, None, relay]]}])
    with pytest.raises(proto.ProtocolError, match=r"relay keys"):
        proto.decode(frame)
