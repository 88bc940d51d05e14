"""(1.3) Relayed entries decode through the typed structs exactly as through the loose path (protocol
"Relayed entries"): the same entries, the same 7th maps, and the same refusals."""

from __future__ import annotations

import math
from typing import Any

import msgpack
import pytest

from gsmon.common import protocol as proto

HEAD: dict[str, Any] = {"sender": "GS1", "epoch": 7, "seq": 1, "sent_ns": 0}
BASE: dict[str, Any] = {"raw": 10, "agent": "rack1", "via": ["site:7761"]}
MAPS: list[dict[str, Any]] = [
    BASE,
    {**BASE, "raw_str": "GREEN", "stale": True, "dt": 5, "reported": 20, "since": 12.5, "shelf": 3},
    {**BASE, "since": None, "alarm": {"id": 4, "state": "active_unacked", "max_level": 30, "extra": 1}},
    {**BASE, "pending": {"level": 30, "since": 2, "more": "x"}, "flapping": {"since": 1.5, "changes": 4}},
    {**BASE, "via": ["a:1", "b:2"], "agent": "GS0:rack1", "unknown_key": [1, 2]},
]


def _packed(kind: type[proto.State] | type[proto.Delta], maps: list[dict[str, Any]]) -> bytes:
    entries = [
        proto.debounced_entry(proto.PointEntry(f"rack1/p{index}", index * 1.5, 10, "GREEN", 100.0, None), relay)
        for index, relay in enumerate(maps)
    ]
    if kind is proto.State:
        return proto.encode(proto.State(**HEAD, mount="GS1", heartbeat_s=1.0, points=entries))
    return proto.encode(proto.Delta(**HEAD, points=entries))


def _loose(data: bytes) -> list[proto.PointEntry]:
    """What the loose path (the Python checks of the 7th map) makes of the same bytes."""
    body = msgpack.unpackb(data)[7]
    decode = proto._decode_loose_state if "mount" in body else proto._decode_loose_delta
    return proto._points(decode(msgpack.packb(body)).points, proto.DEFAULT_LIMITS, True)


@pytest.mark.parametrize("kind", [proto.State, proto.Delta])
def test_relayed_entries_decode_as_the_loose_path_decodes_them(kind: type[proto.State] | type[proto.Delta]) -> None:
    data = _packed(kind, MAPS)
    decoded = proto.decode(data)
    assert isinstance(decoded, kind)
    expected = _loose(data)
    assert decoded.points == expected
    for got, want in zip(decoded.points, expected, strict=True):
        assert type(got) is proto.DebouncedEntry
        assert isinstance(want, proto.DebouncedEntry)
        assert got.debounce == want.debounce
        assert list(got.debounce) == list(want.debounce)  # the same keys in the same order
        assert [type(value) for value in got.debounce.values()] == [type(value) for value in want.debounce.values()]
    assert "since" not in decoded.points[0].debounce  # absent: unchanged (kept by the receiver)
    assert decoded.points[2].debounce["since"] is None


@pytest.mark.parametrize(
    "bad",
    [
        {"dt": math.inf},
        {"since": math.inf},
        {"since": math.nan},
        {"dt": 0},
        {"via": []},
        {"via": [""]},
        {"stale": 1},
        {"reported": None},
        {"reported": True},
        {"alarm": {"id": 1, "state": "x"}},
        {"shelf": 1.5},
        {"agent": ""},
    ],
)
def test_a_bad_relay_map_is_refused_with_the_loose_paths_words(bad: dict[str, Any]) -> None:
    data = _packed(proto.Delta, [BASE, {**BASE, **bad}])
    with pytest.raises(proto.ProtocolError, match=r"body.points\[1\]\[6\] relay keys must be"):
        proto.decode(data)


def test_a_map_without_via_in_a_relayed_message_is_a_plain_debounce_map() -> None:
    plain = proto.point_debounce_map(20, "ORANGE", None, None)
    decoded = proto.decode(_packed(proto.Delta, [BASE, plain]))
    assert isinstance(decoded, proto.Delta)
    assert [("via" in entry.debounce) for entry in decoded.points if isinstance(entry, proto.DebouncedEntry)] == [
        True,
        False,
    ]
    assert decoded.points == _loose(_packed(proto.Delta, [BASE, plain]))


def test_a_point_entry_packs_as_before_through_the_kept_packer_even_after_one_failed() -> None:
    """pack_entry reuses a Packer per thread: its bytes are packb's, and a pack that raised (an int beyond
    64 bits: sanitised) leaves nothing behind in the next entry's bytes."""
    import datetime as dt
    import threading

    entries = [
        proto.PointEntry("a/b", 1.5, 10, "GREEN", 1.0, 2.0),
        proto.PointEntry("a/c", (1, dt.datetime(2026, 1, 2, tzinfo=dt.UTC)), 20, "ORANGE", 1.0, None),
        proto.debounced_entry(proto.PointEntry("a/d", "text", 10, "GREEN", 1.0, 2.0), BASE),
    ]

    def expected(entry: proto.PointEntry) -> bytes:
        items = [*entry, entry.debounce] if isinstance(entry, proto.DebouncedEntry) else list(entry)
        return proto._pack_strict(items)

    huge = proto.PointEntry("a/e", 2**70, 10, "GREEN", 1.0, 2.0)
    for entry in entries:
        assert proto.pack_entry(huge) == proto._pack_strict(["a/e", str(2**70), 10, "GREEN", 1.0, 2.0])
        assert proto.pack_entry(entry) == expected(entry)
    seen: list[bool] = []
    workers = [
        threading.Thread(target=lambda: seen.extend(proto.pack_entry(e) == expected(e) for e in entries * 200))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert seen == [True] * (4 * 600)


def test_equal_maps_in_a_row_decode_to_a_dict_of_their_own_each() -> None:
    decoded = proto.decode(_packed(proto.Delta, [BASE, BASE, {**BASE, "stale": True}, BASE]))
    maps = [entry.debounce for entry in decoded.points if isinstance(entry, proto.DebouncedEntry)]
    assert maps == _loose_maps([BASE, BASE, {**BASE, "stale": True}, BASE])
    maps[0]["since"] = 5.0  # what a hub does to keep a since: the other entries' maps are not touched
    assert ["since" in made for made in maps] == [True, False, False, False]


def _loose_maps(maps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry.debounce for entry in _loose(_packed(proto.Delta, maps)) if isinstance(entry, proto.DebouncedEntry)]


def test_the_guard_passes_a_sites_message_whole_and_drops_only_the_looped_or_too_deep_entry() -> None:
    from gsmon.hub.relay import RelayGuard

    guard = RelayGuard("centre:1", max_depth=3)
    fine = proto.decode(_packed(proto.Delta, [BASE, {**BASE, "via": ["a:1", "b:2", "c:3"]}]))
    assert guard.filter(fine) is fine
    looped = {**BASE, "via": ["centre:1", "site:7761"]}
    deep = {**BASE, "via": ["a:1", "b:2", "c:3", "d:4"]}
    mixed = proto.decode(_packed(proto.Delta, [BASE, looped, BASE, deep]))
    kept = guard.filter(mixed)
    assert isinstance(kept, proto.Delta)
    assert [entry.path for entry in kept.points] == ["rack1/p0", "rack1/p2"]
    assert (guard.loops_dropped, guard.too_deep) == (1, 1)
