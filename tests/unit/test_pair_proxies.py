"""Proxy ids of a pair (issue 17 §2): both central hubs of a pair show a site's alarm under one id.

A hub of a pair derives its proxies from the site's name and the site's alarm id (protocol "Proxy ids
of a pair"); a taken id moves to the next free one; the ids are stored and restored; counter ids
stored before the hub became one of a pair still name their alarms. No sockets, no sleeps: the
site and centre cores of test_federation, wired through the real codec.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from test_federation import SUBSCRIBE, Hub, routed_answers
from test_hub_state import WALL0, Agent, pt

from gsmon.common import protocol as proto
from gsmon.hub import relay
from gsmon.hub.alarms import ACTIVE_ACKED, ACTIVE_UNACKED
from gsmon.hub.journal import StateStore
from gsmon.hub.relay import PROXY_BASE, PROXY_DERIVED_BASE, PROXY_META_PREFIX, Router, derived_proxy_id

GREEN, RED = 10, 30


def _spec_id(site: str, site_id: int) -> int:
    """The spec's rule, written out again here: a client in another language computes this."""
    digest = hashlib.blake2b(f"proxy\0{site}\0{site_id}".encode(), digest_size=8).digest()
    return (1 << 50) + int.from_bytes(digest, "big") % ((1 << 52) - (1 << 50))


def _centre(hub_id: str, epoch: int) -> Hub:
    """A central hub core of a pair (the server makes its router with derived_ids when --peer is set)."""
    hub = Hub(hub_id, epoch)
    hub.router.derived_ids = True
    return hub


def test_both_centres_derive_one_id_per_site_alarm_whatever_order_they_see_them_in() -> None:
    alarms = [("GS1", 7), ("GS2", 7), ("GS1", (1 << 52) + 12345), ("GS1", PROXY_BASE + 1)]
    a = Router(_centre("a", 1).state, "a", derived_ids=True)
    b = Router(_centre("b", 2).state, "b", derived_ids=True)
    on_a = {alarm: a.proxy(*alarm) for alarm in alarms}
    on_b = {alarm: b.proxy(*alarm) for alarm in reversed(alarms)}
    assert on_a == on_b
    assert on_a == {alarm: _spec_id(*alarm) for alarm in alarms}
    assert all(PROXY_DERIVED_BASE <= item < proto.PROXY_END and relay.is_proxy_id(item) for item in on_a.values())
    assert len(set(on_a.values())) == len(alarms)
    assert a.proxy("GS1", 7) == on_a[("GS1", 7)]  # asked again: the same
    # A single hub keeps its counter, below the derived range.
    single = Router(Hub("s", 3).state, "s")
    assert [single.proxy(*alarm) for alarm in alarms] == [PROXY_BASE + n for n in range(len(alarms))]


def test_a_collision_takes_the_next_free_id_wrapping_within_the_derived_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Three alarms whose hashes meet at the last id of the range: the first seen keeps it, the next
    # ones wrap to the start of the derived range, one after the other -- the same on every hub.
    monkeypatch.setattr(relay, "derived_proxy_id", lambda site, site_id: proto.PROXY_END - 1)
    first = Router(_centre("a", 1).state, "a", derived_ids=True)
    second = Router(_centre("b", 2).state, "b", derived_ids=True)
    for router in (first, second):
        assert router.proxy("GS1", 1) == proto.PROXY_END - 1
        assert router.proxy("GS1", 2) == PROXY_DERIVED_BASE
        assert router.proxy("GS2", 1) == PROXY_DERIVED_BASE + 1
        assert router.proxy("GS1", 1) == proto.PROXY_END - 1
    # A stored row holding an alarm's derived id (another alarm's, after a collision) moves it on too.
    monkeypatch.undo()
    taken = derived_proxy_id("GS1", 9)
    stored = Router(_centre("c", 3).state, "c", derived_ids=True)
    assert stored.restore({f"{PROXY_META_PREFIX}{taken}": "4 GS3"}) == 1
    assert stored.proxy("GS1", 9) == taken + 1
    assert stored.proxy("GS3", 4) == taken


def _site_and_two_centres() -> tuple[Hub, Hub, Hub, Agent]:
    """Site hub site1 (agent rack1, disk RED) relaying under GS1 to two centres of a pair, a and b."""
    site, a, b = Hub("site1", 0x51), _centre("a", 0xA), _centre("b", 0xB)
    rack = Agent("rack1", "rack1")
    site.take(rack.state(pt("cpu", GREEN, dt=1.0), pt("disk", RED, value=97, dt=1.0)), 0.0)
    core = site.link("GS1")
    core.upstream(SUBSCRIBE)
    return site, a, b, rack


def _relay(site: Hub, centres: list[Hub], now: float) -> None:
    """One turn of the site's link, every message to each centre (the site's XPUB fans out)."""
    site.drain(now)
    assert site.upstream is not None
    for msg in site.upstream.tick(now, WALL0 + now):
        for centre in centres:
            centre.take(msg, now)
    for centre in centres:
        centre.drain(now)


def test_an_ack_by_the_id_one_centre_shows_is_applied_at_the_site_and_the_other_shows_it_under_that_id() -> None:
    site, a, b, _ = _site_and_two_centres()
    a.router.proxy("GS9", 1)  # another site's alarm first, on a only: counters would now differ
    _relay(site, [a, b], 0.0)
    shown = a.out["GS1/rack1/disk"]["alarm"]["id"]
    assert b.out["GS1/rack1/disk"]["alarm"]["id"] == shown
    [site_alarm] = site.book.alarms()
    assert shown == _spec_id("GS1", site_alarm.id)
    assert a.ask("ack", {"ids": [shown], "seen": {str(shown): RED}}, 1.0) is None  # routed down to the site
    [reply] = routed_answers(site, a, 1.1)
    assert (reply.ok, reply.result["acked"]) == (True, [shown])
    assert site.book.alarm(site_alarm.id).state == ACTIVE_ACKED  # type: ignore[union-attr]
    _relay(site, [a, b], 1.2)
    for centre in (a, b):
        alarm = centre.out["GS1/rack1/disk"]["alarm"]
        assert (alarm["id"], alarm["state"]) == (shown, ACTIVE_ACKED)
    # b lists the site's alarm (asked of the site) acked, under the same id.
    assert b.ask("alarms", {"prefix": "GS1"}, 1.3) is None
    [listed] = routed_answers(site, b, 1.3)
    [item] = listed.result["alarms"]
    assert (item["id"], item["state"], item["path"]) == (shown, ACTIVE_ACKED, "GS1/rack1/disk")
    # And an unack on b goes down once: the site's alarm is unacked, both centres show it so.
    assert b.ask("unack", {"ids": [shown]}, 1.4) is None
    [undone] = routed_answers(site, b, 1.4)
    assert (undone.ok, undone.result["acked"]) == (True, [shown])
    assert site.book.alarm(site_alarm.id).state == ACTIVE_UNACKED  # type: ignore[union-attr]
    _relay(site, [a, b], 2.5)  # (the link coalesces a point to one entry a second)
    assert a.out["GS1/rack1/disk"]["alarm"]["state"] == b.out["GS1/rack1/disk"]["alarm"]["state"] == ACTIVE_UNACKED


def test_derived_proxies_survive_a_restart_and_a_new_alarm_after_it_gets_its_derived_id(tmp_path: Path) -> None:
    site, a, _, rack = _site_and_two_centres()
    _relay(site, [a], 0.0)
    shown = a.out["GS1/rack1/disk"]["alarm"]["id"]
    with StateStore(tmp_path / "state.db") as store:
        store.write_turn([], [], [], 1, meta=a.router.take_marks())  # as the server's _persist does
    restarted = _centre("a", 0xA1)
    with StateStore(tmp_path / "state.db") as store:
        assert restarted.router.restore(store.load_meta(PROXY_META_PREFIX)) == 1
    site.take(rack.delta(pt("cpu", RED, dt=1.0, polled=2.0)), 2.0)
    assert site.upstream is not None
    site.upstream.upstream(SUBSCRIBE)  # the restarted centre's subscription: a STATE
    _relay(site, [restarted], 2.0)
    assert restarted.out["GS1/rack1/disk"]["alarm"]["id"] == shown
    cpu = next(alarm for alarm in site.book.alarms() if alarm.path == "rack1/cpu")
    assert restarted.out["GS1/rack1/cpu"]["alarm"]["id"] == _spec_id("GS1", cpu.id)
    assert restarted.ask("ack", {"ids": [shown]}, 2.1) is None
    [reply] = routed_answers(site, restarted, 2.1)
    assert (reply.ok, reply.result["acked"]) == (True, [shown])


def test_counter_ids_stored_before_the_hub_became_one_of_a_pair_still_name_their_alarms() -> None:
    site, _, _, _ = _site_and_two_centres()
    single = Hub("a", 0xA)  # the centre before it was given a peer: it counts
    _relay(site, [single], 0.0)
    counted = single.out["GS1/rack1/disk"]["alarm"]["id"]
    assert counted == PROXY_BASE
    rows = single.router.take_marks()  # what its state store holds
    paired = _centre("a", 0xA2)  # restarted with --peer, on the same state store
    assert paired.router.restore(rows) == 1
    assert site.upstream is not None
    site.upstream.upstream(SUBSCRIBE)
    _relay(site, [paired], 1.0)
    [site_alarm] = site.book.alarms()
    derived = paired.out["GS1/rack1/disk"]["alarm"]["id"]
    assert derived == _spec_id("GS1", site_alarm.id) != counted  # shown as its peer shows it
    assert f"{PROXY_META_PREFIX}{derived}" in paired.router.take_marks()  # and stored
    # An operator's ack by the id read before: the same alarm, answered under the id it named.
    assert paired.ask("ack", {"ids": [counted], "seen": {str(counted): RED}}, 1.1) is None
    [reply] = routed_answers(site, paired, 1.1)
    assert (reply.ok, reply.result["acked"]) == (True, [counted])
    assert site.book.alarm(site_alarm.id).state == ACTIVE_ACKED  # type: ignore[union-attr]


def test_a_hub_that_leaves_its_pair_shows_its_derived_ids_and_counts_on_below_them() -> None:
    derived = derived_proxy_id("GS1", 7)
    rows = {f"{PROXY_META_PREFIX}{PROXY_BASE + 4}": "6 GS1", f"{PROXY_META_PREFIX}{derived}": "7 GS1"}
    single = Router(Hub("s", 1).state, "s")
    assert single.restore(rows) == 2
    assert single.proxy("GS1", 7) == derived
    assert single.proxy("GS1", 6) == PROXY_BASE + 4
    assert single.proxy("GS1", 8) == PROXY_BASE + 5  # from the highest counter id, not the derived one
    # Both ids of one alarm stored (a counter id, then the derived one): the derived one is shown.
    both = Router(Hub("t", 2).state, "t")
    both.restore({f"{PROXY_META_PREFIX}{PROXY_BASE}": "7 GS1", f"{PROXY_META_PREFIX}{derived}": "7 GS1"})
    assert both.proxy("GS1", 7) == derived


def test_a_stored_derived_row_that_does_not_read_keeps_its_id_from_being_given_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = PROXY_DERIVED_BASE + 77
    monkeypatch.setattr(relay, "derived_proxy_id", lambda site, site_id: broken)
    router = Router(_centre("a", 1).state, "a", derived_ids=True)
    assert router.restore({f"{PROXY_META_PREFIX}{broken}": "not-a-number GS1"}) == 0
    assert router.proxy("GS1", 1) == broken + 1


class _PairRecorder:
    """A site hub's pair hooks (hub/pair_link.py's PairLink stands here): the commands that reached done()."""

    def __init__(self) -> None:
        self.commands: dict[str, Any] = {}
        self.done_calls: list[tuple[str, bool, Any, str]] = []

    def sync(self, caller: Any, msg: Any, now: float, wall: float) -> str:
        return "not used here"

    def done(self, call: Any, ok: bool, result: Any) -> None:
        self.done_calls.append((call.command, ok, result, call.by))


def test_a_command_routed_down_to_a_site_of_a_pair_becomes_an_op_of_the_sites_pair_log() -> None:
    # A site that is itself a pair (two site hubs, each under one centre): the ack a centre routed to one
    # of them must reach the other through the site pair's log, as an ack made at the site would.
    site, a, _, _ = _site_and_two_centres()
    recorder = _PairRecorder()
    site.queries.pair = recorder
    _relay(site, [a], 0.0)
    [site_alarm] = site.book.alarms()
    shown = a.out["GS1/rack1/disk"]["alarm"]["id"]
    assert a.ask("ack", {"ids": [shown]}, 1.0) is None
    [reply] = routed_answers(site, a, 1.0)
    assert reply.ok
    [(command, ok, result, by)] = recorder.done_calls
    assert (command, ok, result["acked"]) == ("ack", True, [site_alarm.id])  # the site's own id, for its peer
    assert by.endswith("@a")
