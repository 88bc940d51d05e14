"""A site hub under a central pair (issue 17 §1 with §2): one upstream link per central hub.

The site's upstream core drives one link per ``--upstream`` endpoint, as an agent with ``hubs = [A, B]``:
a STATE only to the centre that asked, the same DELTAs to both (each link its own seqs), a routed command
answered on the link it came on, a BYE on each. No sockets, no sleeps: the site and centre cores of
test_federation, wired through the real codec, each link's messages to its own centre only.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from test_federation import SUBSCRIBE, Hub, _as_result
from test_hub_state import WALL0, Agent, pt

from gsmon.common import cli
from gsmon.common import protocol as proto
from gsmon.common.config import ConfigError
from gsmon.hub import upstream
from gsmon.hub.alarms import ACTIVE_ACKED, AlarmSettings
from gsmon.hub.config import parse_hub_config, read_hub_config
from gsmon.hub.relay import RoutedReply, run_routed

GREEN, ORANGE, RED, CRITICAL = 10, 20, 30, 100
DISK = "GS1/rack1/disk"
FAN = "GS1/rack1/fan"


def _centre(hub_id: str, epoch: int) -> Hub:
    """A central hub core of a pair (the server makes its router with derived ids when --peer is set)."""
    hub = Hub(hub_id, epoch)
    hub.router.derived_ids = True
    return hub


def _site_under_a_pair(alarms: AlarmSettings | None = None, **changes: Any) -> tuple[Hub, list[Hub], Agent]:
    """Site hub site1 (agent rack1: cpu GREEN, disk RED, fan GREEN) with one link to centre a (link 0)
    and one to centre b (link 1), under GS1; nothing asked for yet."""
    site = Hub("site1", 0x51)
    if alarms is not None:
        site.book.settings = alarms  # (before any point: the book caches each path's rule)
    rack = Agent("rack1", "rack1")
    site.take(rack.state(pt("cpu", GREEN), pt("disk", RED, value=97), pt("fan", GREEN, value=1)), 0.0)
    site.link("GS1", more_endpoints=("tcp://central-b:7761",), **changes)
    return site, [_centre("a", 0xA), _centre("b", 0xB)], rack


def _turn(site: Hub, centres: list[Hub], now: float, up: tuple[int, ...] = (0, 1)) -> list[tuple[int, proto.Message]]:
    """One turn of the site's links: link i's messages to centre i (none to a centre not in ``up``)."""
    site.drain(now)
    assert site.upstream is not None
    sent = site.upstream.sends(now, WALL0 + now)
    for link, msg in sent:
        if link in up:
            centres[link].take(msg, now)
    for centre in centres:
        centre.drain(now)
    return sent


def _kinds(sent: list[tuple[int, proto.Message]], link: int) -> list[str]:
    return [type(msg).__name__ for index, msg in sent if index == link]


def _shown(centre: Hub, path: str) -> tuple[Any, int] | None:
    node = centre.out.get(path)
    return None if node is None else (node["value"], node["alert"])


def test_each_centre_gets_a_state_when_it_asks_and_both_the_same_deltas_each_in_its_own_seqs() -> None:
    site, centres, rack = _site_under_a_pair()
    core = site.upstream
    assert core is not None
    assert core.upstream(SUBSCRIBE, 0) == (None, None)  # centre a subscribed: a STATE for a only
    sent = _turn(site, centres, 0.0)
    assert "State" in _kinds(sent, 0)
    assert "State" not in _kinds(sent, 1)
    assert _shown(centres[0], DISK) == (97, RED)
    assert DISK not in centres[1].out
    core.upstream(SUBSCRIBE, 1)  # then centre b
    sent = _turn(site, centres, 0.1)
    assert "State" in _kinds(sent, 1)
    assert "State" not in _kinds(sent, 0)
    assert _shown(centres[1], DISK) == (97, RED)

    site.take(rack.delta(pt("disk", RED, value=98)), 2.0)
    sent = _turn(site, centres, 2.0)
    deltas = [(link, msg) for link, msg in sent if isinstance(msg, proto.Delta)]
    assert [link for link, _ in deltas] == [0, 1]
    assert deltas[0][1].points == deltas[1][1].points  # made once, the same entries on both links
    assert _shown(centres[0], DISK) == _shown(centres[1], DISK) == (98, RED)
    # Each link numbers its own messages from 1 without a gap: neither centre asks for a resync.
    for link in (0, 1):
        seqs = [msg.seq for index, msg in sent if index == link]
        assert seqs == sorted(seqs)
    assert centres[0].state.take_resync_requests() == centres[1].state.take_resync_requests() == []
    byes = core.byes(2.1, WALL0 + 2.1)
    assert [(link, type(msg).__name__) for link, msg in byes] == [(0, "Bye"), (1, "Bye")]
    assert site.upstream.tick(2.2, WALL0 + 2.2) == []  # (one link's view of the same core: nothing due)


@pytest.mark.parametrize(
    ("then", "final"),
    [("stays", GREEN), ("back", ORANGE)],
    ids=["the-held-change-stays", "the-point-flips-back"],
)
def test_a_state_for_one_centre_leaves_both_converging_on_the_site(then: str, final: int) -> None:
    """fan goes ORANGE (sent to both), GREEN within the coalescing second (held), then centre a alone gets a
    STATE (a restart of a): b must still get the held GREEN; and when fan is ORANGE again before the held
    entry goes -- a value-only change below the minimum level as the DELTAs saw it -- a must get it too."""
    # No alarm at ORANGE: what the DELTAs compare is the level alone.
    site, centres, rack = _site_under_a_pair(AlarmSettings(alarm_min_level=CRITICAL), min_level=RED)
    assert site.book.alarms() == []
    core = site.upstream
    assert core is not None
    core.upstream(SUBSCRIBE, 0)
    core.upstream(SUBSCRIBE, 1)
    _turn(site, centres, 0.0)
    site.take(rack.delta(pt("fan", ORANGE, value=2)), 0.5)
    _turn(site, centres, 0.5)
    assert _shown(centres[0], FAN) == _shown(centres[1], FAN) == (2, ORANGE)
    site.take(rack.delta(pt("fan", GREEN, value=3)), 0.7)
    _turn(site, centres, 0.7)
    assert _shown(centres[1], FAN) == (2, ORANGE)  # held: within the second after the last entry
    core.upstream(SUBSCRIBE, 0)
    sent = _turn(site, centres, 0.8)
    assert "State" in _kinds(sent, 0)
    assert "State" not in _kinds(sent, 1)
    assert _shown(centres[0], FAN) == (3, GREEN)
    if then == "back":
        site.take(rack.delta(pt("fan", ORANGE, value=4)), 0.9)
    for now in (0.9, 1.0, 1.2, 1.4, 1.6):
        _turn(site, centres, now)
    want = (4, ORANGE) if then == "back" else (3, GREEN)
    assert _shown(centres[0], FAN) == _shown(centres[1], FAN) == want
    assert want[1] == final
    # The relayed since too: each centre shows the level's start as the site has it.
    site_since = site.out["rack1/fan"].get("since")
    assert centres[0].out[FAN].get("since") == centres[1].out[FAN].get("since") == site_since


def test_a_point_the_site_removes_leaves_both_centres_after_a_state_for_one() -> None:
    site, centres, rack = _site_under_a_pair()
    core = site.upstream
    assert core is not None
    core.upstream(SUBSCRIBE, 0)
    core.upstream(SUBSCRIBE, 1)
    _turn(site, centres, 0.0)
    core.upstream(SUBSCRIBE, 0)  # a STATE for a alone, then the site drops disk
    _turn(site, centres, 0.5)
    site.take(rack.state(pt("cpu", GREEN), pt("fan", GREEN, value=1)), 1.0)
    now = 1.0
    while now < 40.0 and (DISK in site.state.tree or any(DISK in centre.state.tree for centre in centres)):
        now += 0.5
        site.state.tick(now, WALL0 + now)
        for centre in centres:
            centre.state.tick(now, WALL0 + now)
        _turn(site, centres, now)
    assert DISK not in site.state.tree
    assert [DISK in centre.state.tree for centre in centres] == [False, False]
    assert [FAN in centre.state.tree for centre in centres] == [True, True]


def test_a_command_routed_by_each_centre_is_answered_on_its_own_link_though_both_numbered_it_1() -> None:
    site, centres, _ = _site_under_a_pair()
    core = site.upstream
    assert core is not None
    core.upstream(SUBSCRIBE, 0)
    core.upstream(SUBSCRIBE, 1)
    _turn(site, centres, 0.0)
    a, b = centres
    shown = a.out[DISK]["alarm"]["id"]
    assert b.out[DISK]["alarm"]["id"] == shown  # (1.3) one proxy id on both centres of the pair

    assert a.ask("ack", {"ids": [shown], "seen": {str(shown): RED}}, 1.0) is None  # routed down
    assert b.ask("alarms", {"prefix": "GS1"}, 1.0) is None  # and a listing from b, at once
    answers: dict[int, proto.Message] = {}
    for link, centre in enumerate(centres):
        [topic] = centre.router.take_topics()
        command, _ = core.upstream(SUBSCRIBE + topic, link)  # each centre's route reached its own link
        assert command is not None
        assert command["route_id"] == 1
        answer = run_routed(site.queries, site.router, command, 1.1, WALL0 + 1.1, link)
        assert answer is not None
        assert answer.to == ("upstream", 1, link)
        answers[link] = core.result(1.1, WALL0 + 1.1, answer.to[1], answer.ok, answer.message, answer.result, link)
    for link, centre in enumerate(centres):
        centre.take(answers[link], 1.1)
    replies: dict[str, Any] = {}
    for name, centre in zip("ab", centres, strict=True):
        [(site_name, result)] = centre.state.take_upstream_results()
        routed = centre.router.answer(site_name, result)
        assert isinstance(routed, RoutedReply)
        replies[name] = _as_result(routed)
    assert (replies["a"].ok, replies["a"].result["acked"]) == (True, [shown])
    [listed] = replies["b"].result["alarms"]
    assert (listed["id"], listed["path"]) == (shown, DISK)
    # Each answer took the next seq of its own link: no gap, no resync at either centre.
    assert a.state.take_resync_requests() == b.state.take_resync_requests() == []

    # The ack made at a was applied at the site; b shows it under the same id with the site's next entry.
    [site_alarm] = site.book.alarms()
    assert site_alarm.state == ACTIVE_ACKED
    for now in (1.2, 2.5):
        _turn(site, centres, now)
    for centre in centres:
        alarm = centre.out[DISK]["alarm"]
        assert (alarm["id"], alarm["state"]) == (shown, ACTIVE_ACKED)


def test_with_centre_a_gone_b_keeps_the_site_fresh_and_an_ack_at_b_is_applied() -> None:
    site, centres, rack = _site_under_a_pair()
    core = site.upstream
    assert core is not None
    core.upstream(SUBSCRIBE, 0)
    core.upstream(SUBSCRIBE, 1)
    _turn(site, centres, 0.0)
    b = centres[1]
    for step in range(1, 21):  # 10 s with nothing reaching a: b hears every heartbeat and change
        now = step * 0.5
        site.take(rack.delta(pt("disk", RED, value=100 + step)), now)
        site.state.tick(now, WALL0 + now)
        b.state.tick(now, WALL0 + now)
        _turn(site, centres, now, up=(1,))
    assert not b.out[DISK].get("stale")
    assert b.out[DISK]["value"] >= 119
    shown = b.out[DISK]["alarm"]["id"]
    assert b.ask("ack", {"ids": [shown]}, 10.1) is None
    [topic] = b.router.take_topics()
    command, _ = core.upstream(SUBSCRIBE + topic, 1)
    assert command is not None
    answer = run_routed(site.queries, site.router, command, 10.1, WALL0 + 10.1, 1)
    assert answer is not None
    assert answer.ok
    b.take(core.result(10.1, WALL0 + 10.1, answer.to[1], answer.ok, answer.message, answer.result, 1), 10.1)
    [(name, result)] = b.state.take_upstream_results()
    reply = b.router.answer(name, result)
    assert isinstance(reply, RoutedReply)
    assert reply.result["acked"] == [shown]
    assert [alarm.state for alarm in site.book.alarms()] == [ACTIVE_ACKED]


def test_every_links_bytes_are_what_encode_gives_with_each_entry_packed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    site, _, rack = _site_under_a_pair()
    core = site.upstream
    assert core is not None
    core.upstream(SUBSCRIBE, 0)
    core.upstream(SUBSCRIBE, 1)
    site.drain(0.0)
    sends = core.sends(0.0, WALL0)  # a STATE for both (a periodic one's case) ...
    site.take(rack.delta(pt("disk", RED, value=98), pt("fan", ORANGE, value=2)), 2.0)
    site.drain(2.0)
    sends += core.sends(2.0, WALL0 + 2.0)  # ... and a DELTA for both
    assert {type(msg).__name__ for _, msg in sends} >= {"State", "Delta"}
    packed: list[str] = []
    real = proto.pack_entry

    def counted(entry: proto.PointEntry) -> bytes:
        packed.append(entry.path)
        return real(entry)

    monkeypatch.setattr(proto, "pack_entry", counted)
    out = upstream.encoded(sends, 2)
    monkeypatch.undo()
    assert out == [(link, proto.encode(msg)) for link, msg in sends]  # byte for byte
    carried = [entry.path for link, msg in sends if link == 0 and hasattr(msg, "points") for entry in msg.points]
    assert sorted(packed) == sorted(carried)  # once each, not once per link
    # One link: plain encode.
    assert upstream.encoded(sends[:1], 1) == [(sends[0][0], proto.encode(sends[0][1]))]


def test_a_state_to_one_centre_does_not_keep_the_sites_orphans_from_the_other() -> None:
    """(Protocol "Orphaned alarms") The disk's latched alarm loses its point at the site: an orphan. Centre a
    asks for a STATE just then (it carries the set to a); b, which asked for nothing, must still get the
    set in a DELTA and count the alarm, as a does; and the bytes of it all are what encode gives."""
    site, centres, rack = _site_under_a_pair()
    core = site.upstream
    assert core is not None
    core.upstream(SUBSCRIBE, 0)
    core.upstream(SUBSCRIBE, 1)
    sent = _turn(site, centres, 0.0)
    site.take(rack.state(pt("cpu", GREEN), pt("fan", GREEN, value=1)), 1.0)  # the disk is gone
    now, asked = 1.0, False
    while not asked and now < 60.0:
        now += 1.0
        site.take(rack.heartbeat(), now)
        site.state.tick(now, WALL0 + now)
        if core.orphans():  # the set changed in this turn, before anything carried it:
            core.upstream(SUBSCRIBE, 0)  # centre a (re)subscribes just then, so its STATE carries the set
            asked = True
        sent += _turn(site, centres, now)
        for centre in centres:
            centre.state.tick(now, WALL0 + now)
    assert asked
    assert [orphan.path for orphan in core.orphans()] == ["rack1/disk"]
    assert [link for link, msg in sent if isinstance(msg, proto.State) and msg.orphans] == [0]
    until = now + 60.0
    while any(DISK in centre.state.tree for centre in centres) and now < until:  # (the centres' removal grace)
        now += 0.5
        site.take(rack.heartbeat(), now)
        site.state.tick(now, WALL0 + now)
        sent += _turn(site, centres, now)
        for centre in centres:
            centre.state.tick(now, WALL0 + now)
    carried = {link: msg.orphans for link, msg in sent if isinstance(msg, proto.State | proto.Delta) and msg.orphans}
    assert set(carried) == {0, 1}, "each centre was told the set"
    for centre in centres:
        assert DISK not in centre.state.tree
        node = centre.out["GS1"]
        assert (node.get("attention"), node.get("unacked_below")) == (RED, 1), centre.id
    # Acked at the site in the very turn centre a asks for a STATE again: the STATE tells a the set is now
    # empty; b (no STATE: nothing went) must be told by a DELTA, not left counting an alarm that was acked.
    (orphan,) = core.orphans()
    core.upstream(SUBSCRIBE, 0)
    answer = site.ask("ack", {"ids": [orphan.id]}, now)
    assert answer is not None
    assert answer.ok, answer
    mark = len(sent)
    for _ in range(6):
        now += 0.5
        site.take(rack.heartbeat(), now)
        sent += _turn(site, centres, now)
    told = [(link, type(msg).__name__) for link, msg in sent[mark:] if getattr(msg, "orphans", None) is not None]
    assert told == [(0, "State"), (1, "Delta")], told
    for centre in centres:
        assert centre.out["GS1"].get("unacked_below", 0) == 0, centre.id
    assert upstream.encoded(sent, 2) == [(link, proto.encode(msg)) for link, msg in sent]  # orphans too


# -- configuration ------------------------------------------------------------------------------


def test_upstream_takes_one_endpoint_or_the_hubs_of_a_central_pair() -> None:
    pair = parse_hub_config('[hub]\nupstream = ["tcp://ca:7761", "tcp://cb:7761"]\nupstream_mount = "GS1"\n')
    assert pair.upstream is not None
    assert pair.upstream.endpoints == ("tcp://ca:7761", "tcp://cb:7761")
    single = parse_hub_config('[hub]\nupstream = "tcp://ca:7761"\nupstream_mount = "GS1"\n')
    assert single.upstream is not None
    assert single.upstream.endpoints == ("tcp://ca:7761",)
    overrides = {
        "hub.upstream": (["tcp://ca:7761", "tcp://cb:7761"], "--upstream"),
        "hub.upstream_mount": ("GS1", "--upstream-mount"),
    }
    flagged = read_hub_config(None, overrides).upstream
    assert flagged is not None
    assert flagged.endpoints == ("tcp://ca:7761", "tcp://cb:7761")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ('["tcp://ca:7761", "tcp://ca:7761"]', "upstream[1]: expected no repeated endpoints"),
        ("[]", "hub.upstream: expected a non-empty array of endpoints"),
        ('["tcp://ca:7761", "central-b"]', "upstream[1]: expected"),
        ('["tcp://ca:7761", 7761]', "upstream[1]: expected"),
    ],
    ids=["a-duplicate", "an-empty-list", "not-an-endpoint", "not-a-string"],
)
def test_a_bad_list_of_central_hubs_is_refused_in_one_line_naming_the_key(value: str, words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)) as caught:
        parse_hub_config(f'[hub]\nupstream = {value}\nupstream_mount = "GS1"\n')
    assert "\n" not in str(caught.value)


def test_a_repeated_upstream_flag_names_the_flag_when_refused_and_check_config_lists_both(
    capsys: pytest.CaptureFixture[str],
) -> None:
    overrides = {
        "hub.upstream": (["tcp://ca:7761", "tcp://ca:7761"], "--upstream"),
        "hub.upstream_mount": ("GS1", "--upstream-mount"),
    }
    with pytest.raises(ConfigError, match=re.escape("--upstream")):
        read_hub_config(None, overrides)
    argv = ["hub", "--upstream", "tcp://ca:7761", "--upstream", "tcp://cb:7761", "--upstream-mount", "GS1"]
    assert cli.main([*argv, "--state-dir", "", "--check-config"]) == 0
    assert "upstream tcp://ca:7761, tcp://cb:7761 under GS1" in capsys.readouterr().out
    assert cli.main(["hub", "--upstream", "tcp://ca:7761", "--upstream", "tcp://ca:7761", "--check-config"]) == 2
    assert "--upstream" in capsys.readouterr().err
