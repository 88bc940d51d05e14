"""A site that is a hub pair relays to the centre as ONE site (issue 17; protocol "A site that is a pair").

Two site hubs (site-a, site-b) fed by the same agent both relay under ``GS1`` to one central hub; each
declares the pair on its upstream link. The centre follows one and keeps the other as its standby: no
conflict; the followed one silent (or saying BYE) while the standby is heard: the standby is followed before
anything turns STALE. No sockets, no sleeps: the real cores wired through the real codec, time an argument.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from test_federation import SUBSCRIBE, Hub, pump
from test_hub_state import WALL0, Agent, pt

from gsmon.common import protocol as proto
from gsmon.common.alerts import STALE_ALERTCODE
from gsmon.hub.alarms import ACTIVE_UNACKED, AGENT_SILENT
from gsmon.hub.upstream import UpstreamCore, UpstreamSettings

GREEN, ORANGE, RED = 10, 20, 30
STEP_S = 0.5


class SitePair:
    """Site hubs a and b (each declaring ``declared[i]``, or nothing) fed by one agent, and one central hub."""

    def __init__(self, declared: tuple[proto.SitePair | None, proto.SitePair | None]) -> None:
        self.a, self.b, self.central = Hub("site-a", 0xA1), Hub("site-b", 0xB2), Hub("central", 0xCE)
        self.rack = Agent("rack1", "rack1", heartbeat_s=1.0)
        self.stale_seen: list[str] = []  # every central path ever drained STALE
        self.now = 0.0
        state = self.rack.state(pt("cpu", GREEN, value=0, dt=1.0, polled=0.0), pt("disk", RED, value=97, dt=1.0))
        for site, epoch, pair in ((self.a, 0xA, declared[0]), (self.b, 0xB, declared[1])):
            site.take(state, 0.0)
            settings = UpstreamSettings(endpoint="tcp://central:7761", mount="GS1")
            core = site.upstream = UpstreamCore(settings, site.state, site.id, epoch=epoch, now=0.0)
            if pair is not None:
                core.pair = lambda pair=pair: pair
            core.upstream(SUBSCRIBE)  # the centre's subscription reached both site hubs' XPUBs
        self.step(self.a, self.b)  # a's STATE reaches the centre first: a is followed

    def step(self, *alive: Hub) -> None:
        """``STEP_S`` on: the agent's next cpu value reaches the live site hubs, which relay it; the centre
        ticks. Records every point the centre published STALE."""
        self.now += STEP_S
        now = self.now
        delta = self.rack.delta(pt("cpu", GREEN, value=now, dt=1.0, polled=now), pt("disk", RED, value=97, dt=1.0))
        for site in alive:
            site.take(delta, now)
            site.state.tick(now, WALL0 + now)
            pump(site, self.central, now)
        self.central.state.tick(now, WALL0 + now)
        changed = self.central.drain(now)
        self.stale_seen += [path for path, node in changed.items() if node.get("stale") and path.startswith("GS1")]

    def resync(self, site: Hub) -> None:
        """Carry the centre's resync request to ``site``'s XPUB (the centre asked for its STATE)."""
        assert site.upstream is not None
        site.upstream.upstream(SUBSCRIBE + proto.RESYNC_TOPIC_PREFIX + b"GS1")

    def node(self, path: str) -> dict[str, Any]:
        return self.central.out[path]


A_OF_AB = proto.SitePair("site-a", "site-b")
B_OF_AB = proto.SitePair("site-b", "site-a")


def test_the_centre_follows_one_site_hub_and_keeps_the_other_as_standby_without_a_conflict(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gsmon.hub")
    pair = SitePair((A_OF_AB, B_OF_AB))
    for _ in range(6):
        pair.step(pair.a, pair.b)
    site = pair.central.state.agents["GS1"]
    assert site.epoch == 0xA
    assert (pair.central.state.is_standby("GS1", 0xB), pair.central.state.is_standby("GS1", 0xA)) == (True, False)
    assert pair.central.state.stats.conflicts == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "gsmon.hub.state"]
    assert (pair.node("_hub/agents/GS1")["value"], pair.node("_hub/agents/GS1")["alert"]) == ("live", GREEN)
    health = pair.node("_hub/site_pairs/GS1")
    assert (health["value"], health["alert"]) == ("following site hub site-a, standby site-b live", GREEN)
    # Only the followed site hub is applied: a value only site-b has does not show.
    pair.b.take(pair.rack.delta(pt("disk", RED, value=555, dt=1.0, polled=pair.now)), pair.now)
    pump(pair.b, pair.central, pair.now)
    pair.step(pair.a)
    assert pair.node("GS1/rack1/disk")["value"] == 97
    assert pair.central.state.take_resync_requests() == []  # the standby's messages ask for nothing


def test_a_standby_whose_peer_id_is_not_learnt_yet_is_a_standby_too() -> None:
    """A site hub's first run: it declares its own id before it has heard its peer's."""
    pair = SitePair((proto.SitePair("site-a", None), proto.SitePair("site-b", None)))
    for _ in range(4):
        pair.step(pair.a, pair.b)
    assert pair.central.state.stats.conflicts == 0
    assert pair.node("_hub/site_pairs/GS1")["value"] == "following site hub site-a, standby site-b live"


def test_the_followed_site_hub_silent_switches_to_the_standby_with_no_stale_and_a_resync() -> None:
    pair = SitePair((A_OF_AB, B_OF_AB))
    for _ in range(4):
        pair.step(pair.a, pair.b)
    pair.central.state.take_resync_requests()
    # site-a is killed: only site-b relays from now on.
    resyncs: list[str] = []
    for _ in range(12):
        pair.step(pair.b)
        resyncs += pair.central.state.take_resync_requests()
        if resyncs:
            pair.resync(pair.b)  # the centre asked site-b for its STATE: it sends it with its next flush
    site = pair.central.state.agents["GS1"]
    assert site.epoch == 0xB
    assert pair.central.state.is_standby("GS1", 0xA)  # the silent one is the standby now
    assert resyncs == ["GS1"]
    assert pair.central.state.stats.standby_switches == 1
    assert pair.stale_seen == []  # no point of the site was ever STALE at the centre
    assert pair.central.book.alarms() == []  # no silence alarm, so no notification
    assert pair.node("GS1/rack1/cpu")["value"] == pair.now  # values advance from site-b
    assert pair.node("_hub/agents/GS1")["value"] == "live"
    health = pair.node("_hub/site_pairs/GS1")
    # The redundancy is lost: ORANGE, so that an operator sees it before the other site hub goes too.
    assert (health["value"], health["alert"]) == ("following site hub site-b, standby site-a silent", ORANGE)


def test_a_bye_of_the_followed_site_hub_switches_at_once() -> None:
    pair = SitePair((A_OF_AB, B_OF_AB))
    for _ in range(4):
        pair.step(pair.a, pair.b)
    assert pair.a.upstream is not None
    for msg in pair.a.upstream.bye(pair.now, WALL0 + pair.now):
        pair.central.take(msg, pair.now)
    assert pair.central.state.agents["GS1"].epoch == 0xB
    assert not pair.central.state.is_standby("GS1", 0xA)  # it said goodbye: never followed again
    assert pair.central.state.take_resync_requests() == ["GS1"]
    pair.resync(pair.b)
    for _ in range(4):
        pair.step(pair.b)
    assert pair.stale_seen == []
    assert pair.node("GS1/rack1/cpu")["value"] == pair.now


def test_both_site_hubs_silent_is_one_silence_alarm_and_the_first_back_is_followed() -> None:
    pair = SitePair((A_OF_AB, B_OF_AB))
    for _ in range(4):
        pair.step(pair.a, pair.b)
    for _ in range(10):  # both gone
        pair.step()
    assert {"GS1/rack1/cpu", "GS1/rack1/disk"} <= set(pair.stale_seen)
    [alarm] = pair.central.book.alarms()
    assert (alarm.path, alarm.reason, alarm.state) == ("GS1", AGENT_SILENT, ACTIVE_UNACKED)
    assert pair.node("GS1/rack1/cpu")["alert"] == STALE_ALERTCODE
    assert pair.central.state.stats.standby_switches == 0
    # site-b (the standby) comes back first: it is followed, its STATE refills the site.
    pair.stale_seen.clear()
    assert pair.b.upstream is not None
    pair.b.upstream.policy.set_last_sent(0, -1e9)  # a heartbeat is due at its next flush
    pair.step(pair.b)
    assert pair.central.state.agents["GS1"].epoch == 0xB
    assert pair.central.state.take_resync_requests() == ["GS1"]
    pair.resync(pair.b)
    pair.step(pair.b)
    assert not pair.node("GS1/rack1/cpu")["stale"]
    assert pair.node("GS1/rack1/cpu")["value"] == pair.now
    assert [a.path for a in pair.central.book.alarms()] == ["GS1"]  # the one alarm, back to normal
    assert pair.central.book.alarms()[0].rtn_at is not None


@pytest.mark.parametrize(
    "declared",
    [
        pytest.param((None, None), id="neither-declares"),
        pytest.param((A_OF_AB, None), id="one-declares"),
        pytest.param((A_OF_AB, proto.SitePair("site-b", "site-x")), id="another-peer"),
        pytest.param((A_OF_AB, proto.SitePair("site-a", "site-b")), id="same-hub-id"),
    ],
)
def test_two_site_hubs_not_declaring_one_pair_are_still_a_conflict(
    declared: tuple[proto.SitePair | None, proto.SitePair | None],
) -> None:
    pair = SitePair(declared)
    for _ in range(8):  # both keep sending, each well after the other started
        pair.step(pair.a, pair.b)
    assert pair.central.state.stats.conflicts == 1
    health = pair.node("_hub/agents/GS1")
    assert (health["value"], health["alert"]) == ("conflict: two processes", ORANGE)
    assert pair.central.state.stats.standby_switches == 0


def test_a_routed_command_names_the_followed_site_hub_and_only_it_acts() -> None:
    pair = SitePair((A_OF_AB, B_OF_AB))
    pair.step(pair.a, pair.b)
    assert pair.central.ask("alarms", {"prefix": "GS1/rack1"}, pair.now) is None  # routed down
    [topic] = pair.central.router.take_topics()
    assert pair.a.upstream is not None
    assert pair.b.upstream is not None
    command, _ = pair.a.upstream.upstream(SUBSCRIBE + topic)
    assert command is not None
    assert command["to"] == "site-a"
    assert pair.b.upstream.upstream(SUBSCRIBE + topic) == (None, None)
    assert pair.b.upstream.routes_for_peer == 1


def test_the_pair_key_round_trips_and_a_hub_naming_itself_its_peer_is_refused() -> None:
    head: dict[str, Any] = {"sender": "GS1", "epoch": 7, "seq": 1, "sent_ns": 0}
    beat = proto.Heartbeat(**head, mount="GS1", heartbeat_s=1.0, point_count=2, pair=A_OF_AB)
    assert proto.decode(proto.encode(beat)) == beat
    state = proto.State(**head, mount="GS1", heartbeat_s=1.0, points=[], pair=proto.SitePair("site-a", None))
    assert proto.decode(proto.encode(state)) == state
    plain = proto.State(**head, mount="GS1", heartbeat_s=1.0, points=[])
    assert proto.decode(proto.encode(plain)).pair is None  # type: ignore[attr-defined]
    with pytest.raises(proto.ProtocolError, match="its own peer"):
        proto.decode(proto.encode(proto.Heartbeat(**head, mount="GS1", heartbeat_s=1.0, point_count=2,
                                                  pair=proto.SitePair("site-a", "site-a"))))  # fmt: skip


def test_a_bye_of_the_standby_ends_it_and_the_followed_site_hubs_silence_is_then_the_sites() -> None:
    pair = SitePair((A_OF_AB, B_OF_AB))
    for _ in range(4):
        pair.step(pair.a, pair.b)
    assert pair.b.upstream is not None
    for msg in pair.b.upstream.bye(pair.now, WALL0 + pair.now):
        pair.central.take(msg, pair.now)
    pair.step(pair.a)
    pair.step(pair.a)  # (the hub's health points are refreshed once a heartbeat interval)
    assert not pair.central.state.is_standby("GS1", 0xB)
    health = pair.node("_hub/site_pairs/GS1")
    assert (health["value"], health["alert"]) == ("following site hub site-a, no standby heard", ORANGE)
    assert pair.stale_seen == []
    for _ in range(10):  # site-a gone too
        pair.step()
    assert "GS1/rack1/cpu" in pair.stale_seen
    assert [alarm.path for alarm in pair.central.book.alarms()] == ["GS1"]
    assert pair.central.state.stats.standby_switches == 0


def test_the_standby_back_first_with_a_state_is_followed_and_asked_for_no_other() -> None:
    pair = SitePair((A_OF_AB, B_OF_AB))
    for _ in range(4):
        pair.step(pair.a, pair.b)
    for _ in range(10):  # both gone: the site is silent
        pair.step()
    pair.central.state.take_resync_requests()
    pair.resync(pair.b)  # site-b's first message on its return is a STATE (its link was resubscribed)
    pair.step(pair.b)
    assert pair.central.state.agents["GS1"].epoch == 0xB
    assert pair.central.state.take_resync_requests() == []  # the STATE refills the site by itself
    assert not pair.node("GS1/rack1/cpu")["stale"]
    assert pair.node("GS1/rack1/cpu")["value"] == pair.now
