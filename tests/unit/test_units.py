"""Every unit formatter: values people can read, from the point name's suffix."""

from __future__ import annotations

import datetime as dt
import math
import re

import pytest

from gsmon.common.units import (
    Unit,
    format_age_short,
    format_bytes,
    format_celsius,
    format_datetime,
    format_duration,
    format_exact,
    format_per_second,
    format_percent,
    format_point,
    format_point_full,
    format_rate_bytes,
    format_raw_bytes,
    one_line,
    unit_of,
)

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("memory_available_bytes", Unit.BYTES),
        ("GS1/Rack1/Memory/swap_total_bytes", Unit.BYTES),
        ("eno1_rx_bytes_per_s", Unit.BYTES_PER_S),
        ("cpu_total_percent", Unit.PERCENT),
        ("fill_pct", Unit.PERCENT),
        ("sda_read_ops_per_s", Unit.OPS_PER_S),
        ("eth0_rx_errors_per_s", Unit.PER_S),
        ("controller_link_ms", Unit.MILLISECONDS),
        ("uptime_s", Unit.DURATION),
        ("uptime", Unit.DURATION),
        ("hub_uptime", Unit.DURATION),
        ("motor_temp_c", Unit.CELSIUS),
        ("coretemp_Package_id_0_temp_c", Unit.CELSIUS),
        ("lna_celsius", Unit.CELSIUS),
        ("thinkpad_0_fan_rpm", Unit.RPM),
        ("azimuth_deg", Unit.DEGREES),
        ("load_1min", Unit.NONE),
        ("tracking", Unit.NONE),
        ("template_count", Unit.NONE),  # "temp" is a word, not any text containing it
        ("bytes_seen_total", Unit.NONE),
    ],
)
def test_unit_of_reads_the_suffix(name: str, unit: Unit) -> None:
    """The unit comes from the last path segment's suffix (case-insensitive)."""
    assert unit_of(name) is unit
    assert unit_of(name.upper()) is unit


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1023, "1023 B"),
        (1024, "1.00 KiB"),
        (1536, "1.50 KiB"),
        (24_670_994_432, "23.0 GiB"),
        (252 * 1024**3, "252 GiB"),
        (5 * 1024**4, "5.00 TiB"),
        (-2048, "-2.00 KiB"),
        (10.5, "10.5 B"),
    ],
)
def test_format_bytes_binary_multiples(size: float, text: str) -> None:
    assert format_bytes(size) == text


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (0, "0 B/s"),
        (999, "999 B/s"),
        (12.25, "12.2 B/s"),
        (1000, "1.00 kB/s"),
        (8.21207e07, "82.1 MB/s"),
        (1.25e9, "1.25 GB/s"),
    ],
)
def test_format_rate_bytes_decimal_multiples(rate: float, text: str) -> None:
    """Link speeds are quoted in decimal units: 82,120,700 B/s is 82.1 MB/s."""
    assert format_rate_bytes(rate) == text


@pytest.mark.parametrize(
    ("rate", "what", "text"),
    [(0, "ops", "0 ops/s"), (2.3, "ops", "2.3 ops/s"), (1234.5, "ops", "1.23k ops/s"), (4.5e6, "ops", "4.5M ops/s")],
)
def test_format_per_second(rate: float, what: str, text: str) -> None:
    assert format_per_second(rate, what) == text


@pytest.mark.parametrize(("value", "text"), [(42, "42%"), (42.51, "42.5%"), (100.0, "100.0%"), (0.0, "0.0%")])
def test_format_percent(value: float, text: str) -> None:
    assert format_percent(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (0.12, "120 ms"),
        (0.0004, "0.4 ms"),
        (5, "5 s"),
        (42.34, "42.3 s"),
        (60, "1m 0s"),
        (725, "12m 5s"),
        (4 * 3600 + 12 * 60 + 9, "4h 12m"),
        (3 * 86400 + 4 * 3600 + 12 * 60 + 5, "3d 4h 12m"),
        (1.23457e06, "14d 6h 56m"),
        (-90, "-1m 30s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    """Spans of time the way people say them: uptime 1.23457e+06 is two weeks, not a float."""
    assert format_duration(seconds) == text


def test_format_celsius() -> None:
    assert format_celsius(45) == "45.0 °C"
    assert format_celsius(-3.14) == "-3.1 °C"


@pytest.mark.parametrize(
    ("age", "text"),
    [
        (None, ""),
        (0.04, "0.0s"),
        (4.25, "4.2s"),
        (42.0, "42s"),
        (130, "2m"),
        (7300, "2h"),
        (200_000, "2d"),
        (-1, "0.0s"),
    ],
)
def test_format_age_short(age: float | None, text: str) -> None:
    assert format_age_short(age) == text


def test_format_datetime_local_with_zone() -> None:
    """Aware datetimes in this machine's local time, with the zone's name; naive ones as sent."""
    moment = dt.datetime(2026, 12, 1, 21, 49, 20, tzinfo=dt.UTC)
    local = moment.astimezone()
    assert format_datetime(moment) == f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"
    assert format_datetime(dt.datetime(2018, 6, 21, 0, 39, 7)) == "2018-06-21 00:39:07"  # noqa: DTZ001
    assert format_datetime(moment.replace(microsecond=123_000)).split()[1].endswith(".123")


def test_format_raw_bytes_length_and_hex_preview() -> None:
    assert format_raw_bytes(b"") == "0 bytes"
    assert format_raw_bytes(b"\x00") == "1 byte: 00"
    assert format_raw_bytes(b"hello") == "5 bytes: 68 65 6c 6c 6f"
    assert format_raw_bytes(bytes(range(20))) == "20 bytes: 00 01 02 03 04 05 06 07 …"


def test_one_line_escapes_control_characters() -> None:
    assert one_line("a\nb\tc\x1b[31m") == "a\\nb c\\x1b[31m"


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("memory_available_bytes", 24_670_994_432, "23.0 GiB"),
        ("eno1_rx_bytes_per_s", 8.21207e07, "82.1 MB/s"),
        ("uptime_s", 1.23457e06, "14d 6h 56m"),
        ("cpu_total_percent", 12.34, "12.3%"),
        ("sda_read_ops_per_s", 2.3, "2.3 ops/s"),
        ("eth0_rx_drops_per_s", 0.4, "0.4 drops/s"),
        ("motor_temp_c", 40.0, "40.0 °C"),
        ("fan_rpm", 2100, "2100 rpm"),
        ("azimuth_deg", 182.5, "182.5°"),
        ("controller_link_ms", 12.5, "12.5 ms"),
        ("load_1min", 0.5, "0.5"),
        ("load_1min", 3.14159265, "3.14159"),
        ("anything_bytes", None, ""),
        ("anything_bytes", "ERROR OSError: gone", "ERROR OSError: gone"),  # text is never given a unit
        ("flag_percent", True, "True"),  # bool is not a number here
        ("x_bytes", float("nan"), "nan"),
        ("blob", b"\x01\x02", "2 bytes: 01 02"),
        ("pair", (1.5, "a"), "(1.5, 'a')"),
        ("note", "line one\nline two", "line one\\nline two"),
    ],
)
def test_format_point_one_line_with_unit(name: str, value: object, text: str) -> None:
    assert format_point(name, value) == text


def test_format_point_never_lets_a_control_character_through() -> None:
    for raw in ("\x1b[2J\x1b[Hgotcha", "nul\x00", "bell\x07", "c1\x85", "del\x7f"):
        assert CONTROL.search(format_point("x", raw)) is None


def test_format_point_full_keeps_everything() -> None:
    """The detail pane: unit and exact number; text keeps its lines, nothing cut; bytes all in hex."""
    assert format_point_full("memory_available_bytes", 24_670_994_432) == "23.0 GiB  (24670994432)"
    assert format_point_full("load_1min", 0.5) == "0.5"
    long_text = "x" * 5000 + "\nsecond line\x1b"
    shown = format_point_full("error", long_text)
    assert shown.startswith("x" * 5000 + "\nsecond line")
    assert shown.endswith("\\x1b")
    assert format_point_full("blob", bytes(range(18))) == (
        "18 bytes\n00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f\n10 11"
    )
    assert format_exact(None) == "(none)"
    moment = dt.datetime(2026, 12, 1, 21, 49, 20, tzinfo=dt.UTC)
    assert format_exact(moment).endswith("(2026-12-01T21:49:20+00:00)")


def test_infinities_keep_their_name() -> None:
    assert format_point("x_bytes", math.inf) == "inf"
    assert format_point("x_s", -math.inf) == "-inf"
    assert format_point("x_percent", math.nan) == "nan"
