"""The hub's fast paths give exactly what the general paths give.

The hub packs NODE payloads with :class:`protocol.NodeEncoder` (msgspec) and decodes DELTAs through fast paths in
:func:`protocol.decode` (msgspec's typed decoder, and an exact-type check per
point entry); all exist only for speed (see bench/RESULTS.md), so the wire
bytes, the decoded values and the errors must be those of
:func:`protocol.node_payload` and of the general decoding.
"""

from __future__ import annotations

import datetime as dt
import math
from enum import IntEnum
from typing import Any

import msgpack
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from gsmon.common import protocol as proto


class _Level(IntEnum):
    HIGH = 3


class _Text(str):
    __slots__ = ()


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),  # beyond 64 bits too: sanitised to text
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),  # lone surrogates included: sanitised
    st.binary(max_size=300),
    st.datetimes(timezones=st.none() | st.just(dt.UTC)),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
times = st.none() | st.floats(allow_nan=False, min_value=0, max_value=2e9)


@settings(max_examples=300, deadline=None)
@given(
    seq=st.integers(min_value=0, max_value=2**64 - 1),
    alertcode=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    alertstr=st.text(max_size=40).map(lambda s: s.encode("utf-8", "replace").decode()),
    stale=st.booleans(),
    value=values,
    agent=st.none() | st.text(max_size=20).map(lambda s: s.encode("utf-8", "replace").decode()),
    polled=times,
    received=times,
    period=times,
    reported=st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1),
    unknown=st.booleans(),
)
def test_node_encoder_packs_the_bytes_of_node_payload(
    seq: int,
    alertcode: int,
    alertstr: str,
    stale: bool,
    value: Any,
    agent: str | None,
    polled: float | None,
    received: float | None,
    period: float | None,
    reported: int | None,
    unknown: bool,
) -> None:
    """Every kind of payload, every kind of value: the same bytes."""
    encoder = proto.NodeEncoder(epoch=2**62 + 5)
    common = {"epoch": 2**62 + 5, "seq": seq}
    packed = encoder.point(seq, alertcode, alertstr, stale, value, agent, polled, received, period, reported, unknown)
    assert packed == proto.node_payload(
        **common,
        kind=proto.NODE_POINT,
        alertcode=alertcode,
        alertstr=alertstr,
        stale=stale,
        value=value,
        agent=agent,
        polled_at_s=polled,
        received_at_s=received,
        dt_s=period,
        reported_alert=reported,
        liveness_unknown=unknown,
    )
    assert encoder.parent(seq, alertcode, alertstr, stale, unknown) == proto.node_payload(
        **common, kind=proto.NODE_PARENT, alertcode=alertcode, alertstr=alertstr, stale=stale, liveness_unknown=unknown
    )
    assert encoder.removed(seq) == proto.node_payload(
        **common, kind=proto.NODE_REMOVED, alertcode=0, alertstr="", stale=False
    )


@pytest.mark.parametrize(
    "value",
    [_Level.HIGH, _Text("subclass"), bytearray(b"ab"), 2**64, "lone \udc80", math.nan, object()],
    ids=repr,
)
def test_node_encoder_sends_awkward_values_the_general_way(value: Any) -> None:
    """Subclasses, out-of-range ints, broken text, arbitrary objects: node_payload's bytes."""
    encoder = proto.NodeEncoder(epoch=7)
    expected = proto.node_payload(
        epoch=7, seq=1, kind=proto.NODE_POINT, alertcode=10, alertstr="GREEN", stale=False, value=value
    )
    # (str(object()) holds its address: the same object gives the same text both ways.)
    assert encoder.point(1, 10, "GREEN", False, value, None, None, None, None) == expected


entry_items = st.one_of(st.text(max_size=8), st.integers(-5, 5), st.floats(allow_nan=False), st.booleans(), st.none())
entries = st.one_of(
    # Mostly well-formed entries, in both the fast form (float times) and the general one (int times).
    st.tuples(
        st.text(min_size=1, max_size=8),
        values,
        st.integers(-(2**63), 2**63 - 1),
        st.text(max_size=8),
        st.floats(allow_nan=False) | st.integers(0, 2**40),
        st.none() | st.floats(allow_nan=False) | st.integers(0, 100),
    ).map(list),
    st.lists(entry_items, min_size=5, max_size=8),  # wrong lengths, wrong types, trailing items
    entry_items,
)


@settings(max_examples=300, deadline=None)
@given(items=st.lists(entries, max_size=6))
def test_decoding_point_entries_fast_gives_what_the_general_path_gives(items: list[Any]) -> None:
    """Same PointEntry values and types, or the same ProtocolError for the first bad entry."""
    body = {"points": items}
    try:
        expected: list[proto.PointEntry] | str = [proto._point(index, item) for index, item in enumerate(items)]
    except proto.ProtocolError as error:
        expected = str(error)
    try:
        got: list[proto.PointEntry] | str = proto._points(body, proto.DEFAULT_LIMITS)
    except proto.ProtocolError as error:
        got = str(error)
    assert repr(got) == repr(expected)  # repr: NaN-safe, and int vs float visible
    if isinstance(got, list):
        assert all(type(entry) is proto.PointEntry for entry in got)


def general_decode(data: bytes, limits: proto.Limits = proto.DEFAULT_LIMITS) -> Any:
    """protocol.decode with its msgspec fast path switched off, for comparison."""
    saved = proto._fast_delta
    proto._fast_delta = lambda frame, limits: None
    try:
        return proto.decode(data, limits)
    finally:
        proto._fast_delta = saved


def _outcome(decode: Any, data: bytes, limits: proto.Limits = proto.DEFAULT_LIMITS) -> str:
    try:
        return repr(decode(data, limits))
    except proto.ProtocolError as error:
        return f"ProtocolError: {error}"


header_items = st.one_of(st.integers(-3, 2**64 - 1), st.booleans(), st.text(max_size=3), st.none(), st.floats())
delta_envelopes = st.tuples(
    st.sampled_from([1, 1, 1, True, 2]),  # major
    st.sampled_from([0, 0, 1, 1, 7, 127, 128, -1, False]),  # minor (1.0 and 1.1 agents, later minors)
    st.sampled_from([2, 2, 2, 1, 2.0]),  # kind
    st.text(min_size=0, max_size=3) | st.integers(0, 3),  # sender
    st.integers(-1, 2**63) | header_items,  # epoch
    st.integers(-1, 2**64 - 1) | header_items,  # seq
    st.integers(-(2**63), 2**63 - 1) | header_items,  # sent_ns
    st.dictionaries(st.sampled_from(["points", "other"]), st.lists(entries, max_size=4) | entry_items, max_size=2),
    st.lists(entry_items, max_size=2),  # extra trailing envelope items
)


@settings(max_examples=400, deadline=None)
@given(parts=delta_envelopes)
def test_decoding_deltas_fast_gives_what_the_general_path_gives(parts: tuple[Any, ...]) -> None:
    """Valid or not, a DELTA-shaped frame decodes to the same message or fails with the same error."""
    *head, body, extra = parts
    try:
        data = msgpack.packb([*head, body, *extra], default=proto._default, use_bin_type=True)
    except OverflowError:
        reject()  # an integer beyond 64 bits: msgpack cannot put it on the wire, so no frame holds one
    assert _outcome(proto.decode, data) == _outcome(general_decode, data)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(values, min_size=1, max_size=5),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3),
    limit=st.sampled_from([1, 3, proto.MAX_POINTS_PER_MESSAGE]),
)
def test_real_deltas_and_corrupted_copies_decode_alike(
    values: list[Any], flips: list[tuple[int, int]], limit: int
) -> None:
    """A DELTA as an agent packs it, then with bytes overwritten, under a points limit."""
    points = [proto.PointEntry(f"g/p{i}", value, 10, "GREEN", 1.7e9 + i, 1.0) for i, value in enumerate(values)]
    data = bytearray(proto.encode(proto.Delta(sender="ant", epoch=1, seq=2, sent_ns=3, points=points)))
    for position, byte in flips:
        data[position % len(data)] = byte
    limits = proto.Limits(max_points_per_message=limit)
    assert _outcome(proto.decode, bytes(data), limits) == _outcome(general_decode, bytes(data), limits)


def test_a_plain_delta_takes_the_msgspec_path_and_a_container_does_not() -> None:
    """The comparisons above do exercise the fast path."""
    plain = proto.Delta(
        sender="ant", epoch=1, seq=2, sent_ns=3, points=[proto.PointEntry("p", 1.5, 10, "G", 1.0, None)]
    )
    data = proto.encode(plain)
    assert proto._fast_delta(data, proto.DEFAULT_LIMITS) == plain == proto.decode(data)
    boxed = proto.encode(
        proto.Delta(sender="ant", epoch=1, seq=2, sent_ns=3, points=[plain.points[0]._replace(value=[1])])
    )
    assert proto._fast_delta(boxed, proto.DEFAULT_LIMITS) is None


@pytest.mark.parametrize("minor", [0, 1, 5])
def test_a_delta_of_any_minor_takes_the_fast_path(minor: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent of protocol 1.0 (minor 0) is decoded as fast as one of this version."""
    delta = proto.Delta(
        sender="ant", epoch=1, seq=2, sent_ns=3, minor=minor, points=[proto.PointEntry("p", 1.5, 10, "G", 1.0, None)]
    )
    data = proto.encode(delta)
    taken: list[bytes] = []
    fast = proto._fast_delta
    monkeypatch.setattr(proto, "_fast_delta", lambda frame, limits: taken.append(frame) or fast(frame, limits))
    assert proto.decode(data) == delta
    assert taken == [data]


class _Payload(dict[str, Any]):
    """A dict subclass: decode_node_payload's fast path only takes exact dicts."""


field_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 2**64 - 1),
    st.floats(allow_nan=False),
    st.sampled_from(["point", "parent", "removed", "GREEN", ""]),
    st.lists(st.integers(), max_size=1),
)
NODE_KEYS = ("v", "epoch", "seq", "kind", "alert", "alertstr", "stale", "value", "agent")
NODE_KEYS += ("polled_at", "received_at", "dt", "reported_alert", "liveness_unknown")
node_payloads = st.fixed_dictionaries({}, optional=dict.fromkeys(NODE_KEYS, field_values))


@settings(max_examples=500, deadline=None)
@given(payload=node_payloads)
def test_node_payloads_decode_fast_as_they_do_the_general_way(payload: dict[str, Any]) -> None:
    """A subscriber's view of a NODE: the same NodeUpdate, or the same error, either way."""

    def outcome(value: dict[str, Any]) -> str:
        try:
            return repr(proto.decode_node_payload("GS1/a", value))
        except (proto.ProtocolError, TypeError) as error:  # TypeError: an unhashable kind, on both paths
            return f"{type(error).__name__}: {error}"

    assert outcome(payload) == outcome(_Payload(payload))
