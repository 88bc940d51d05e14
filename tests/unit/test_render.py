"""The tree table: layout, value formatting, truncation and colours."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from gsmon.common.render import ALERT_WIDTH, NAME_WIDTH, VALUE_WIDTH, Row, format_age, format_value, render_table

ANSI = re.compile("\x1b\\[[0-9;]*m")
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def test_header_matches_seed_layout() -> None:
    """Title, column heads and dashed rule follow the seed's widths (30/40/10/15)."""
    lines = render_table("Monitor --- running", []).splitlines()
    assert lines[0] == " Monitor --- running"
    assert lines[1] == " " + "Name".ljust(30) + "Value".ljust(40) + "Alert".ljust(10) + "Last polled"
    assert lines[2] == " " + "-" * 29 + " " + "-" * 39 + " " + "-" * 9 + " " + "-" * 15
    assert (NAME_WIDTH, VALUE_WIDTH, ALERT_WIDTH) == (30, 40, 10)


def test_rows_are_indented_with_one_dot_per_level() -> None:
    """Each row starts with depth+1 dots; columns line up under the heads."""
    rows = [
        Row(0, "Antenna", None, 30, "RED", None),
        Row(1, "Azimuth", 182.5, 10, "GREEN", 0.4213),
        Row(1, "Elevation", -3.1, 30, "RED", 12.0),
    ]
    lines = render_table("Monitor (RED) --- running", rows).splitlines()
    assert lines[3] == " " + ".Antenna".ljust(30) + "".ljust(40) + "RED"
    assert lines[4] == " " + "..Azimuth".ljust(30) + "182.5".ljust(40) + "GREEN".ljust(10) + "0.42"
    assert lines[5] == " " + "..Elevation".ljust(30) + "-3.1".ljust(40) + "RED".ljust(10) + "12.00"
    assert render_table("t", rows).endswith("\n")


def test_long_cells_are_truncated_to_their_column() -> None:
    """Names, values and labels longer than their column are cut, keeping one space."""
    row = Row(3, "n" * 60, "v" * 100, 15, "MAINTENANCE", 1.0)
    line = render_table("t", [row]).splitlines()[3]
    assert line[1:30] == ("...." + "n" * 60)[:29]
    assert line[30] == " "
    assert line[31:70] == "v" * 39
    assert line[70] == " "
    assert line[71:80] == "MAINTENAN"
    assert line[81:] == "1.00"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3.14159265, "3.14159"),
        (1e-9, "1e-09"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (42, "42"),
        (True, "True"),
        ("hello world", "hello world"),
        ((1, 2), "(1, 2)"),
        (datetime(2018, 6, 21, 0, 39, 7), "2018-06-21 00:39:07"),  # noqa: DTZ001 -- the seed's naive example
    ],
)
def test_format_value(value: object, text: str) -> None:
    """Floats get six significant digits; everything else is str()."""
    assert format_value(value) == text


def test_format_value_keeps_one_line() -> None:
    """Newlines and tabs in values are escaped so a node stays on one line."""
    assert format_value("a\nb\rc\td") == "a\\nb\\rc d"
    assert format_value("\x1b[31mred") == "\\x1b[31mred"


@pytest.mark.parametrize(
    "raw", ["\x1b[2J\x1b[Hgotcha", "nul\x00byte", "bell\x07", "ff\x0c", "vt\x0b", "c1\x85", "del\x7f"]
)
def test_format_value_leaves_no_control_characters(raw: str) -> None:
    """No control character of a value reaches the table (no terminal escapes, no extra lines)."""
    text = format_value(raw)
    assert CONTROL.search(text) is None
    assert len(text.splitlines()) == 1


def test_none_value_is_blank() -> None:
    """A parent or unpolled point (value None) shows an empty value cell, not 'None'."""
    line = render_table("t", [Row(0, "p", None, None, "", None)]).splitlines()[3]
    assert line == " .p"


def test_format_age() -> None:
    """Ages show two decimals; unknown age is blank."""
    assert format_age(None) == ""
    assert format_age(0.004) == "0.00"
    assert format_age(3.456) == "3.46"


@pytest.mark.parametrize(
    ("code", "colour"),
    [(10, "\x1b[32m"), (20, "\x1b[33m"), (30, "\x1b[31m"), (50, "\x1b[35m"), (100, "\x1b[1;41;97m"), (15, "\x1b[32m")],
)
def test_colour_by_alert_code(code: int, colour: str) -> None:
    """With colour on, a row is tinted by its level; user levels take the colour of the level below."""
    line = render_table("t", [Row(0, "p", 1, code, "X", None)], colour=True).splitlines()[3]
    assert line.startswith(colour)
    assert line.endswith("\x1b[0m")


@pytest.mark.parametrize("code", [None, 0, 5])
def test_no_colour_for_noalert_or_unpolled(code: int | None) -> None:
    """Rows below Green (or never polled) are not tinted."""
    line = render_table("t", [Row(0, "p", 1, code, "", None)], colour=True).splitlines()[3]
    assert ANSI.search(line) is None


def test_no_colour_by_default() -> None:
    """Without colour=True there are no escape sequences at all."""
    text = render_table("t", [Row(0, "p", 1, 100, "CRITICAL", 1.0)])
    assert "\x1b" not in text


def test_render_view_has_units_age_and_fits_the_width() -> None:
    """gsmon get and the plain frames: values with units, an `age` column, sized to the width, cut with …"""
    from gsmon.common.render import render_view

    rows = [
        Row(0, "Memory", None, 10, "GREEN", None),
        Row(1, "memory_available_bytes", 24_670_994_432, 10, "GREEN", 130.0),
        Row(1, "eno1_rx_bytes_per_s", 8.21207e07, 10, "GREEN", 0.4),
        Row(1, "uptime_s", 1.23457e06, 10, "GREEN", 2.0),
        Row(
            1, "lock", "ERROR ConnectionError: no reply from the downconverter at 10.0.0.5 after 3 tries", 30, "RED", 1
        ),
    ]
    for width in (80, 120):
        lines = render_view("Hub x (RED) --- 5 nodes", rows, width=width).splitlines()
        assert lines[0] == " Hub x (RED) --- 5 nodes"
        assert lines[1].split() == ["Name", "Value", "Alert", "age"]
        assert all(len(line) <= width for line in lines)
        text = "\n".join(lines)
        assert "23.0 GiB" in text
        assert "82.1 MB/s" in text
        assert "14d 6h 56m" in text
        assert lines[3].startswith(" .Memory")
        assert lines[4].startswith(" ..memory_available_bytes")
        assert lines[4].endswith("GREEN      2m")
    narrow = render_view("t", rows, width=80).splitlines()[-1]
    assert "…" in narrow
    assert "\x1b" not in render_view("t", rows)
    assert render_view("t", rows, colour=True).splitlines()[-1].startswith("\x1b[31m ..lock")
