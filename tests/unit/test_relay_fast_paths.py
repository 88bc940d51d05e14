"""The relay's fast paths make what the general ones make (issue 17 §4: the site's and the centre's CPU per entry).

* At the site, the 7th map of a relayed entry for an agent point without debounce is made directly, not through
  :func:`proto.relay_map`: the same keys, in the same order, so the same bytes (stale, one-shot, empty label,
  alarm, since, shelf).
* :func:`proto.pack_entry` packs an entry of a scalar value through msgspec: the bytes msgpack (strict types)
  gives, and what msgspec refuses (an int beyond 64 bits, a lone surrogate, a str subclass) or would pack
  otherwise (a tuple, an enum, a set: not scalars) takes the general path.
* At the centre, an entry whose map is the one the point already has, with no alarm and no shelf in it, is not
  booked again (AlarmBook.set_relayed would change nothing): the rollup stays what booking every entry gave.

No sockets, no sleeps: the cores of tests/unit/test_federation.py.
"""

from __future__ import annotations

import enum
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from test_federation import GREEN, RED, SUBSCRIBE, Hub, attention, federation, pump, routed_answers
from test_hub_state import WALL0, pt

from gsmon.common import protocol as proto
from gsmon.hub.upstream import UpstreamCore


def _reference(core: UpstreamCore, leaf: Any, since_sent: bool) -> dict[str, Any]:
    """proto.relay_map's map for a point without debounce, from the facts its entry is made of."""
    _, stale, owner, via, dt_s, reported, alarm, _, since, shelf = core._facts(leaf)
    debounce = {"raw": reported, "raw_str": leaf.alertstr}
    return proto.relay_map(debounce, owner, via, stale, dt_s, reported, alarm, None if since_sent else since, shelf)


def _check_every_point(site: Hub) -> list[dict[str, Any]]:
    """Each leaf's STATE entry, then its DELTA entry (since unchanged: left out), against the reference."""
    core = site.upstream
    assert core is not None
    maps = []
    for agent in site.state.agents.values():
        for leaf in agent.leaves.values():
            assert leaf.debounce is None
            for full in (True, False):
                wanted = _reference(core, leaf, since_sent=not full)
                entry = core._entry(leaf, full)
                assert isinstance(entry, proto.DebouncedEntry)
                assert list(entry.debounce.items()) == list(wanted.items()), leaf.path  # order too: the bytes
                assert proto.pack_entry(entry) == proto.pack_entry(proto.debounced_entry(entry, wanted))
                maps.append(entry.debounce)
    return maps


def test_a_debounce_less_points_relay_map_is_relay_maps_whatever_it_carries() -> None:
    site, central, rack = federation(coalesce_s=0.0)
    site.take(
        rack.delta(
            pt("oneshot", GREEN),  # no dt
            proto.PointEntry("blank", 1, GREEN, "", WALL0 + 1.0, 1.0),  # an empty label: no raw_str
        ),
        1.0,
    )
    pump(site, central, 1.0)
    maps = _check_every_point(site)
    assert any("alarm" in made for made in maps)
    assert any("dt" not in made for made in maps)
    assert any("raw_str" not in made for made in maps)
    assert any("since" in made for made in maps)
    # A shelf at the site: its id in every map.
    args = {"prefix": "GS1/rack1", "mode": "timed", "duration_s": 600, "comment": "disk swap"}
    assert central.ask("shelve", args, 2.0) is None
    [reply] = routed_answers(site, central, 2.0)
    assert reply.ok, reply.message
    pump(site, central, 2.0)
    assert all("shelf" in made for made in _check_every_point(site))
    # The agent silent: every point stale, the one-shot one too.
    for now in (10.0, 45.0):  # silent after 3 x its 10 s heartbeat
        site.state.tick(now, WALL0 + now)
        pump(site, central, now)
    maps = _check_every_point(site)
    assert all(made.get("stale") is True for made in maps)


def test_value_only_entries_of_a_point_without_alarm_leave_the_rollup_as_booking_each_one_did() -> None:
    site, central, rack = federation(coalesce_s=0.0)
    assert attention(central, "GS1") == (RED, 1, 0)  # disk's alarm, cpu none
    for step in range(1, 4):
        now = float(step)
        # New values, the same levels: the maps at the centre are the ones the points have.
        cpu = pt("cpu", GREEN, value=step, dt=1.0, polled=now)
        site.take(rack.delta(cpu, pt("disk", RED, value=97 + step, dt=1.0, polled=now)), now)
        pump(site, central, now)
        assert central.out["GS1/rack1/cpu"]["value"] == step
        assert "attention" not in central.out["GS1/rack1/cpu"]
        assert central.out["GS1/rack1/disk"]["attention"] == RED
        assert attention(central, "GS1/rack1") == attention(central, "GS1") == (RED, 1, 0)
    # cpu goes RED at the site: an alarm in its map, booked (a changed map is always booked) ...
    site.take(rack.delta(pt("cpu", RED, value=99, dt=1.0, polled=4.0)), 4.0)
    pump(site, central, 4.0)
    assert central.out["GS1/rack1/cpu"]["attention"] == RED
    assert attention(central, "GS1") == (RED, 2, 0)
    # ... and while the site is silent its alarms count as its silence; back, they count again.
    central.state.tick(15.0, WALL0 + 15.0)
    central.drain(15.0)
    assert "attention" not in central.out["GS1/rack1/cpu"]
    cpu, disk = pt("cpu", RED, value=98, dt=1.0, polled=16.0), pt("disk", RED, value=96, dt=1.0, polled=16.0)
    site.take(rack.delta(cpu, disk), 16.0)
    site.state.tick(16.0, WALL0 + 16.0)
    assert site.upstream is not None
    site.upstream.policy.set_last_sent(0, -1e9)
    pump(site, central, 16.0)
    site.upstream.upstream(SUBSCRIBE + proto.RESYNC_TOPIC_PREFIX + b"GS1")
    pump(site, central, 16.2)
    assert central.out["GS1/rack1/cpu"]["attention"] == central.out["GS1/rack1/disk"]["attention"] == RED
    assert attention(central, "GS1/rack1") == (RED, 2, 0)


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),  # beyond 64 bits too: msgspec refuses, msgpack's path sanitises
    st.floats(allow_nan=False),
    st.text(),
)
_MAP_ITEMS = st.one_of(  # what a debounce or relay map holds (never an int beyond 64 bits: ours)
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1), st.floats(), st.text()
)
_MAPS = st.recursive(
    _MAP_ITEMS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def _old_bytes(entry: proto.PointEntry) -> bytes:
    """The general path: msgpack with strict types, every item as it is (the value sanitised if it must be)."""
    items = [*entry]
    if isinstance(entry, proto.DebouncedEntry):
        items.append(entry.debounce)
    try:
        return proto._pack_strict(items)
    except (TypeError, ValueError, OverflowError):
        items[1] = proto._sanitise(items[1])
        return proto._pack_strict(items)


@given(
    path=st.text(min_size=1),
    value=_SCALARS,
    code=st.integers(min_value=0, max_value=2**16),
    label=st.text(),
    polled=st.floats(allow_nan=False),
    dt_s=st.none() | st.floats(min_value=0.001, max_value=1e6),
    debounce=st.none() | st.dictionaries(st.text(max_size=8), _MAPS, max_size=6),
)
def test_a_scalar_entry_packs_to_msgpacks_bytes(
    path: str, value: Any, code: int, label: str, polled: float, dt_s: float | None, debounce: dict[str, Any] | None
) -> None:
    entry = proto.PointEntry(path, value, code, label, polled, dt_s)
    if debounce is not None:
        entry = proto.debounced_entry(entry, debounce)
    assert proto.pack_entry(entry) == _old_bytes(entry)


class _Level(enum.Enum):
    RED = 30


class _Text(str):
    pass


def test_what_msgspec_would_pack_otherwise_takes_the_general_path() -> None:
    for value in ((1, 2), _Level.RED, {1, 2}, _Text("x"), 2**64, "lone \ud800"):
        entry = proto.PointEntry("p", value, GREEN, "GREEN", WALL0, None)
        assert proto.pack_entry(entry) == _old_bytes(entry), repr(value)
    labelled = proto.PointEntry("p", 1.0, GREEN, _Text("GREEN"), WALL0, None)
    assert proto.pack_entry(labelled) == _old_bytes(labelled)
    # A map's items are the spec's (arrays, never our tuple ext): a tuple in one packs as the array it stands for.
    mapped = proto.debounced_entry(proto.PointEntry("p", 1.0, GREEN, "GREEN", WALL0, None), {"via": ("a", "b")})
    listed = proto.debounced_entry(mapped, {"via": ["a", "b"]})
    assert proto.pack_entry(mapped) == proto.pack_entry(listed) == _old_bytes(listed)
