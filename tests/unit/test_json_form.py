"""Values and wall times as every gsmon JSON output writes them (common/json_form.py, the one implementation)."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest

from gsmon.common import alarm_commands, json_form, views
from gsmon.common.notify import core as notify_core
from gsmon.common.recorder import values
from gsmon.common.web import nodes


def test_every_json_output_uses_the_one_implementation() -> None:
    assert alarm_commands.jsonable is values.jsonable is nodes.jsonable is views.jsonable is json_form.jsonable
    assert alarm_commands.iso_utc is nodes.iso_utc is views.iso_utc is json_form.iso_utc


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (None, None),
        (True, True),
        (7, 7),
        (2.5, 2.5),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        (b"\x00\xff", "AP8="),
        (bytearray(b"\x00\xff"), "AP8="),
        ((1, [2.0, math.nan]), [1, [2.0, "NaN"]]),
        ({1: b"a", "k": None}, {"1": "YQ==", "k": None}),
        (dt.datetime(2026, 12, 1, 21, 49, 20, tzinfo=dt.UTC), "2026-12-01T21:49:20+00:00"),
        (frozenset({3}), "frozenset({3})"),  # not on the wire: its text, never an error
    ],
)
def test_values_are_written_exactly(value: object, written: object) -> None:
    assert json_form.jsonable(value) == written
    json.dumps(json_form.jsonable(value), allow_nan=False)


def test_wall_times_are_iso_utc_with_milliseconds_and_nonsense_is_none() -> None:
    assert json_form.iso_utc(1_764_625_760.1234) == "2025-12-01T21:49:20.123Z"
    assert [json_form.iso_utc(t) for t in (None, math.nan, math.inf, 1e20)] == [None, None, None, None]
    assert notify_core.iso_utc(None) == notify_core.iso_utc(math.nan) == "-"  # in a text line
    assert notify_core.iso_utc(0.0) == "1970-01-01T00:00:00.000Z"
