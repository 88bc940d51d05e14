"""The hub's fast paths give exactly what the general paths give.

The hub packs NODE payloads with :class:`protocol.NodeEncoder` and decodes
point entries through a fast path in :func:`protocol.decode`; both exist only
for speed (see bench/RESULTS.md), so the wire bytes and the decoded values
must be those of :func:`protocol.node_payload` and of the general validation.
"""

from __future__ import annotations

import datetime as dt
import math
from enum import IntEnum
from typing import Any

import pytest
from hypothesis import given, settings
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
) -> None:
    """Every kind of payload, every kind of value: the same bytes."""
    encoder = proto.NodeEncoder(epoch=2**62 + 5)
    common = {"epoch": 2**62 + 5, "seq": seq}
    assert encoder.point(seq, alertcode, alertstr, stale, value, agent, polled, received, period) == proto.node_payload(
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
    )
    assert encoder.parent(seq, alertcode, alertstr, stale) == proto.node_payload(
        **common, kind=proto.NODE_PARENT, alertcode=alertcode, alertstr=alertstr, stale=stale
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
