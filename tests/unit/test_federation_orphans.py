"""Hub-of-hubs (issue 17 §1, protocol "Orphaned alarms"): a site's latched alarm whose point it removed.

No sockets, no sleeps: the hub cores of test_federation, wired through the real codec, every time an
argument. The site relays its orphans (open alarms of removed points) with its STATEs and, when they
change, with a DELTA; the centre counts them in its parents' attention and unacked counts as the site
does, lists and acks them through the site, and lets them go when the site acks them, counts them for
nothing while the site is silent (last known then), and drops them when it forgets the site.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_federation import SUBSCRIBE, Hub, attention, federation, pump, routed_answers
from test_hub_state import WALL0, Agent, pt

from gsmon.common import protocol as proto
from gsmon.common.alerts import STALE_ALERTCODE
from gsmon.hub.alarms import CLEARED, RTN_UNACKED
from gsmon.hub.relay import PROXY_BASE, RelayGuard, orphan_attention

GREEN, ORANGE, RED = 10, 20, 30


def drop_disk(site: Hub, central: Hub, rack: Agent, until: float = 40.0) -> tuple[float, list[proto.Message]]:
    """rack1's next STATE no longer lists ``disk``: time runs until the point is gone at the site and at the
    centre. Returns the time then and every message the site sent meanwhile; checks at every step that the
    centre counted the latched alarm exactly once (as a relayed point's, then as an orphan)."""
    site.take(rack.state(pt("cpu", GREEN)), 1.0)
    now, sent = 1.0, []
    while "GS1/rack1/disk" in central.state.tree and now < until:
        now += 1.0
        site.take(rack.heartbeat(), now)
        site.state.tick(now, WALL0 + now)
        sent += pump(site, central, now)
        central.state.tick(now, WALL0 + now)
        central.drain(now)
        assert attention(central, "GS1") == (RED, 1, 0), now
    assert "GS1/rack1/disk" not in central.state.tree
    return now, sent


def orphans_sent(sent: list[proto.Message]) -> list[list[proto.RelayedOrphan]]:
    """The orphan sets the messages carried, in order (a message without the key left out)."""
    return [msg.orphans for msg in sent if isinstance(msg, proto.State | proto.Delta) and msg.orphans is not None]


def run(site: Hub, central: Hub, start: float, seconds: float, step: float = 0.5) -> list[proto.Message]:
    now, sent = start, []
    while now < start + seconds:
        now += step
        sent += pump(site, central, now)
    return sent


# -- the site's side: which orphans go, and when ---------------------------------------------------


def test_a_site_sends_no_orphans_while_its_alarms_have_their_points() -> None:
    site, central, _ = federation(coalesce_s=0.0)
    assert site.upstream is not None
    assert site.upstream.orphans() == []
    sent = run(site, central, 0.0, 3.0)
    assert orphans_sent(sent) == []  # nothing changed: no message carries the key


def test_the_removed_points_latched_alarm_goes_with_the_state_that_removes_the_point() -> None:
    site, central, rack = federation(coalesce_s=0.0)
    [alarm] = site.book.alarms()
    _, sent = drop_disk(site, central, rack)
    states = [msg for msg in sent if isinstance(msg, proto.State)]
    assert states, "a removal at the site is said with a STATE"
    removal = states[0]
    assert [entry.path for entry in removal.points] == ["rack1/cpu"]
    assert removal.orphans == [
        proto.RelayedOrphan("rack1/disk", alarm.id, "rack1", ["site1"], RTN_UNACKED, alarm.level, RED, None)
    ]
    # Only the STATE carried it: the DELTAs after it leave the unchanged set out.
    assert all(msg.orphans is None for msg in sent if isinstance(msg, proto.Delta))


def test_an_ack_at_the_site_sends_the_empty_set_once_with_a_delta_of_no_points() -> None:
    site, central, rack = federation(coalesce_s=0.0)
    now, _ = drop_disk(site, central, rack)
    [alarm] = site.book.alarms()
    outcome = site.book.ack([alarm.id], "ops", None, "seen", None, "admin", now, WALL0 + now)
    assert outcome.ok
    sent = run(site, central, now, 2.0)
    carried = [msg for msg in sent if isinstance(msg, proto.Delta) and msg.orphans is not None]
    assert [(msg.points, msg.orphans) for msg in carried] == [([], [])]
    assert attention(central, "GS1") == (0, 0, 0)


def test_changes_of_the_set_within_the_coalescing_interval_wait_for_its_end_and_the_latest_goes() -> None:
    site = Hub("site1", 0x51)
    central = Hub("central", 0xCE)
    rack = Agent("rack1", "rack1")
    site.take(rack.state(pt("cpu", GREEN), pt("a", RED, value=1), pt("b", RED, value=2)), 0.0)
    core = site.link("GS1", coalesce_s=5.0)
    core.upstream(SUBSCRIBE)
    pump(site, central, 0.0)
    site.take(rack.state(pt("cpu", GREEN)), 1.0)  # a and b unlisted: removed after the grace
    now, sent = 1.0, []
    while "GS1/rack1/a" in central.state.tree:
        now += 1.0
        site.take(rack.heartbeat(), now)
        site.state.tick(now, WALL0 + now)
        sent += pump(site, central, now)
        central.state.tick(now, WALL0 + now)
        central.drain(now)
    assert attention(central, "GS1") == (RED, 2, 0)
    [a, b] = site.book.alarms()
    assert [[o.id for o in found] for found in orphans_sent(sent)] == [[a.id, b.id]]  # with the STATE
    # Two acks in a row: the first change goes at once (no DELTA carried the set yet), the second waits.
    site.book.ack([a.id], "ops", None, None, None, "admin", now, WALL0 + now)
    first = run(site, central, now, 0.5, step=0.5)
    now += 0.5
    assert [[o.id for o in found] for found in orphans_sent(first)] == [[b.id]]
    site.book.ack([b.id], "ops", None, None, None, "admin", now, WALL0 + now)
    waiting = run(site, central, now, 4.0)
    now += 4.0
    assert orphans_sent(waiting) == []  # within 5 s of the DELTA that carried the last set
    later = run(site, central, now, 1.5)
    assert orphans_sent(later) == [[]]
    assert attention(central, "GS1") == (0, 0, 0)


def test_only_orphans_under_the_upstream_prefixes_are_sent() -> None:
    site, central, rack = federation(coalesce_s=0.0, prefixes=("rack1/cpu",))
    site.take(rack.state(pt("cpu", GREEN)), 1.0)
    now = 1.0
    while "rack1/disk" in site.state.tree:
        now += 1.0
        site.take(rack.heartbeat(), now)
        site.state.tick(now, WALL0 + now)
        pump(site, central, now)
    assert [alarm.state for alarm in site.book.alarms()] == [RTN_UNACKED]
    assert site.upstream is not None
    assert site.upstream.orphans() == []


def test_a_point_that_comes_back_takes_its_alarm_back_and_it_is_no_orphan_any_more() -> None:
    site, central, rack = federation(coalesce_s=0.0)
    now, _ = drop_disk(site, central, rack)
    assert site.upstream is not None
    [orphan] = site.upstream.orphans()
    site.take(rack.state(pt("cpu", GREEN), pt("disk", RED, value=99, dt=1.0, polled=now)), now)
    sent = run(site, central, now, 1.0)
    assert site.upstream.orphans() == []
    assert orphans_sent(sent)[-1] == []
    disk = central.out["GS1/rack1/disk"]  # back at the centre with the same alarm, counted once
    assert disk["alarm"]["id"] == central.router.proxy("GS1", orphan.id)
    assert attention(central, "GS1") == (RED, 1, 0)


# -- the centre's side: counted, listed, acked through the site, gone ---------------------------------


def test_the_centre_counts_the_orphan_as_the_site_does_lists_it_and_an_ack_there_is_applied_at_the_site() -> None:
    site, central, rack = federation(coalesce_s=0.0)
    now, _ = drop_disk(site, central, rack)
    assert attention(central, "GS1") == attention(central, "GS1/rack1") == attention(site, "rack1") == (RED, 1, 0)
    assert central.book.alarms() == []  # counted, but no alarm of the centre's
    assert central.ask("alarms", {}, now) is None  # the merged listing asks the site
    [reply] = routed_answers(site, central, now)
    [disk] = reply.result["alarms"]
    assert (disk["path"], disk["state"], disk["id"] >= PROXY_BASE) == ("GS1/rack1/disk", RTN_UNACKED, True)
    assert central.ask("ack", {"ids": [disk["id"]], "seen": {str(disk["id"]): RED}}, now) is None
    [acked] = routed_answers(site, central, now)
    assert (acked.ok, acked.result["acked"]) == (True, [disk["id"]])
    assert [alarm.state for alarm in site.book.alarms(include_cleared=True)] == [CLEARED]
    run(site, central, now, 1.0)
    assert attention(central, "GS1") == attention(central, "GS1/rack1") == (0, 0, 0)
    assert central.state.agents["GS1"].orphans == {}
    assert central.book.view_of("GS1/rack1/disk") == central.book.view_of("no/such/path")  # pruned


def test_a_silent_sites_orphans_count_for_nothing_are_listed_as_last_known_and_count_again_at_its_state() -> None:
    site, central, rack = federation(coalesce_s=0.0)
    now, _ = drop_disk(site, central, rack)
    [alarm] = site.book.alarms()
    while not central.state.agents["GS1"].silent:  # the site's link lost
        now += 1.0
        central.state.tick(now, WALL0 + now)
        central.drain(now)
    # One alarm for the site (its silence, on the mount) stands for what it has: the orphan counts no more.
    assert attention(central, "GS1")[1] == 1
    assert central.book.attention_of("GS1/rack1") == 0
    reply = central.ask("alarms", {}, now)  # the only site is silent: answered at once
    assert reply is not None
    [kept] = [item for item in reply.result["alarms"] if item.get("last_known")]
    assert kept == {
        "id": central.router.proxy("GS1", alarm.id),
        "path": "GS1/rack1/disk",
        "agent": "rack1",
        "state": RTN_UNACKED,
        "level": alarm.level,
        "level_str": alarm.level_str,
        "max_level": RED,
        "acked": False,
        "shelved": False,
        "last_known": True,
        "as_of": WALL0 + central.state.agents["GS1"].last_heard,
    }
    # The link is back: the centre asks for a STATE, which carries the set again.
    assert site.upstream is not None
    site.upstream.upstream(SUBSCRIBE + proto.RESYNC_TOPIC_PREFIX + b"GS1")
    now += 1.0
    pump(site, central, now)
    assert not central.state.agents["GS1"].silent
    assert central.book.attention_of("GS1/rack1") == RED
    assert central.book.unacked_below("GS1/rack1") == 1


def test_a_forgotten_site_takes_its_orphans_with_it() -> None:
    site, central, rack = federation(coalesce_s=0.0)
    now, _ = drop_disk(site, central, rack)
    while not central.state.agents["GS1"].silent:
        now += 1.0
        central.state.tick(now, WALL0 + now)
        central.drain(now)
    done, _, _ = central.state.forget("GS1", now, WALL0 + now)
    assert done
    central.drain(now)
    assert central.book.unacked_below("GS1/rack1") == 0
    assert central.book.view_of("GS1/rack1/disk") == central.book.view_of("no/such/path")


def test_an_agent_that_is_no_site_cannot_send_orphans_into_the_centres_counts() -> None:
    central = Hub("central", 0xCE)
    rack = Agent("rack1", "rack1")
    state = rack.state(pt("cpu", GREEN))
    fake = proto.RelayedOrphan("cpu", 5, "rack1", ["x"], RTN_UNACKED, RED, RED)
    central.take(replace(state, orphans=[fake]), 0.0)
    central.drain(0.0)
    assert central.book.unacked_below("rack1") == 0  # its alarms are this hub's own to judge
    assert central.state.agents["rack1"].orphans == {}


def test_the_loop_guard_drops_orphans_that_passed_this_hub_or_too_many_hubs() -> None:
    guard = RelayGuard("central", max_depth=2)
    keep = proto.RelayedOrphan("a", 1, "r", ["s1"], RTN_UNACKED, RED, RED)
    looped = keep._replace(id=2, via=["s1", "central", "mid"])
    deep = keep._replace(id=3, via=["s1", "s2", "s3"])
    msg = proto.Delta(sender="GS1", epoch=1, seq=1, sent_ns=0, points=[], orphans=[keep, looped, deep])
    filtered = guard.filter(msg)
    assert isinstance(filtered, proto.Delta)
    assert (filtered.orphans, guard.loops_dropped, guard.too_deep) == ([keep], 1, 1)


@pytest.mark.parametrize(
    ("state", "shelf", "carried", "counted"),
    [
        (RTN_UNACKED, None, None, RED),
        ("active_unacked", None, None, RED),
        ("active_acked", None, None, None),
        (RTN_UNACKED, 4, None, None),  # shelved at the site
        (RTN_UNACKED, None, 7, None),  # a relayed point still carries it: counted there
        (RTN_UNACKED, None, 8, RED),  # the point there carries another alarm
    ],
    ids=["rtn-unacked", "active-unacked", "acked", "shelved", "carried", "other-carried"],
)
def test_what_an_orphan_counts_for(state: str, shelf: int | None, carried: int | None, counted: int | None) -> None:
    orphan = proto.RelayedOrphan("a", 7, "r", ["s1"], state, GREEN, RED, shelf)
    assert orphan_attention(orphan, carried) == counted


def test_a_chain_relays_the_sites_orphans_on_and_the_top_counts_them() -> None:
    site, mid, top = Hub("site1", 1), Hub("mid", 2), Hub("top", 3)
    rack = Agent("rack1", "rack1")
    site.take(rack.state(pt("cpu", GREEN), pt("disk", RED, value=97, dt=1.0)), 0.0)
    site.link("GS1", coalesce_s=0.0).upstream(SUBSCRIBE)
    mid.link("M", coalesce_s=0.0).upstream(SUBSCRIBE)
    pump(site, mid, 0.0)
    pump(mid, top, 0.0)
    site.take(rack.state(pt("cpu", GREEN)), 1.0)
    now = 1.0
    while "M/GS1/rack1/disk" in top.state.tree and now < 60.0:
        now += 1.0
        site.take(rack.heartbeat(), now)
        for hub in (site, mid, top):
            hub.state.tick(now, WALL0 + now)
        pump(site, mid, now)
        pump(mid, top, now)
        top.drain(now)
    [alarm] = site.book.alarms()
    assert mid.upstream is not None
    [relayed] = mid.upstream.orphans()
    assert relayed == proto.RelayedOrphan(
        "GS1/rack1/disk", mid.router.proxy("GS1", alarm.id), "GS1:rack1", ["site1", "mid"], RTN_UNACKED,
        alarm.level, RED, None,
    )  # fmt: skip
    assert attention(top, "M") == attention(top, "M/GS1") == (RED, 1, 0)


def test_orphans_on_the_wire_round_trip_and_a_bad_one_makes_the_message_invalid() -> None:
    orphan = proto.RelayedOrphan("rack1/disk", 7, "rack1", ["site1"], RTN_UNACKED, GREEN, RED, 3)
    delta = proto.Delta(sender="GS1", epoch=1, seq=2, sent_ns=3, points=[], orphans=[orphan])
    assert proto.decode(proto.encode(delta)) == delta
    state = proto.State(sender="GS1", epoch=1, seq=2, sent_ns=3, mount="GS1", heartbeat_s=1.0, points=[])
    assert proto.decode(proto.encode(state)).orphans is None  # type: ignore[union-attr]
    unchanged = proto.Delta(sender="GS1", epoch=1, seq=2, sent_ns=3, points=[])
    assert b"orphans" not in proto.encode(unchanged)  # an unchanged set costs no byte
    cleared = proto.encode(delta).replace(b"rtn_unacked", b"cleared____")
    with pytest.raises(proto.ProtocolError, match="orphans"):
        proto.decode(cleared)
    many = proto.Delta(sender="GS1", epoch=1, seq=2, sent_ns=3, points=[], orphans=[orphan] * 1001)
    with pytest.raises(proto.ProtocolError, match="orphans"):
        proto.decode(proto.encode(many))


def test_an_agents_latched_silence_at_the_site_counts_at_the_centre_once_the_agent_is_back_until_acked() -> None:
    site, central, rack = federation(coalesce_s=0.0)
    [disk_alarm] = site.book.alarms()
    site.book.ack([disk_alarm.id], "ops", None, None, None, "admin", 0.0, WALL0)  # the disk's RED: acked
    site.take(rack.bye(), 1.0)  # rack1 stops: one alarm on its mount at the site, latched (STALE)
    run(site, central, 1.0, 1.0)
    silence = site.book.agent_alarm("rack1")
    assert silence is not None
    assert site.upstream is not None
    assert site.upstream.orphans() == []  # while rack1 is silent its points carry the silence
    assert attention(central, "GS1/rack1/cpu")[0] == STALE_ALERTCODE
    site.take(rack.state(pt("cpu", GREEN, dt=1.0, polled=3.0), pt("disk", RED, value=97, dt=1.0, polled=3.0)), 3.0)
    run(site, central, 3.0, 1.0)
    [orphan] = site.upstream.orphans()  # back: no point carries it any more, but it wants its ack
    assert (orphan.id, orphan.path, orphan.state, orphan.max_level) == (
        silence.id,
        "rack1",
        RTN_UNACKED,
        STALE_ALERTCODE,
    )
    assert attention(central, "GS1/rack1") == attention(site, "rack1") == (STALE_ALERTCODE, 1, 0)
    proxy = central.router.proxy("GS1", silence.id)
    assert central.ask("ack", {"ids": [proxy]}, 4.0) is None
    [acked] = routed_answers(site, central, 4.0)
    assert (acked.ok, acked.result["acked"]) == (True, [proxy])
    run(site, central, 4.0, 1.0)
    assert site.upstream.orphans() == []
    assert attention(central, "GS1/rack1") == attention(site, "rack1") == (0, 0, 0)


def test_an_orphan_with_a_path_that_is_no_path_is_counted_and_dropped() -> None:
    site, central, _ = federation(coalesce_s=0.0)
    bad = proto.RelayedOrphan("rack1//disk", 9, "rack1", ["site1"], RTN_UNACKED, GREEN, RED)
    good = bad._replace(path="rack1/old", id=10)
    rejected = central.state.stats.points_rejected
    assert site.upstream is not None
    header = site.upstream.policy.header(0, 1.0, WALL0 + 1.0)
    central.take(proto.Delta(**header, points=[], orphans=[bad, good]), 1.0)
    central.drain(1.0)
    assert sorted(central.state.agents["GS1"].orphans) == [10]
    assert central.state.stats.points_rejected == rejected + 1
    assert attention(central, "GS1") == (RED, 2, 0)  # the disk's own RED, and the good orphan
