"""Values people can read: the unit of a point comes from the end of its name.

Every human view (``gsmon watch``, ``gsmon get``'s table, ``gsmon demo``)
shows a value through :func:`format_point` (one line, for a table cell) or
:func:`format_point_full` (every character of it, for the detail pane);
``--json`` never comes here and stays exact. Pure functions: no I/O, no
clock (a datetime is shown in the local zone of this machine, which is what
"local time" means).

================================  ==================  ==========================
name ends with (or holds)         unit                example
================================  ==================  ==========================
``_bytes_per_s``                  decimal bytes/s     ``82.1 MB/s``
``_bytes``                        binary bytes        ``23.0 GiB``, ``512 B``
``_percent``, ``_pct``            percent             ``42.5%``
``_ops_per_s``                    operations/s        ``1.23k ops/s``
``<what>_per_s``                  <what> per second   ``0.4 errors/s``
``_ms``                           milliseconds        ``12.5 ms``
``_s``, ``uptime``                a duration          ``3d 4h 12m``, ``42.3 s``
``_celsius``, a ``temp`` word     degrees Celsius     ``45.0 °C``
``_rpm``                          revolutions/min     ``2100 rpm``
``_deg``                          degrees             ``182.5°``
================================  ==================  ==========================

Only numbers (not ``bool``) get a unit; anything else a point holds is shown
as what it is: a datetime in local time with its zone (a naive one, which
carries no zone, as sent), bytes as their length and a hex preview, text on
one line with control characters escaped (``\\n``, ``\\x1b``: no escape
sequence ever reaches the terminal), floats with six significant digits.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import re
from typing import Any, Final

__all__ = [
    "Unit",
    "format_age_short",
    "format_bytes",
    "format_celsius",
    "format_datetime",
    "format_duration",
    "format_exact",
    "format_per_second",
    "format_percent",
    "format_point",
    "format_point_full",
    "format_rate_bytes",
    "format_raw_bytes",
    "one_line",
    "unit_of",
]

# Unicode category Cc (C0, DEL, C1): never sent to a terminal as they are.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f]")
# The same, but keeping newlines and tabs (the detail pane shows a value's lines).
_CONTROL_BUT_LINES: Final = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_BINARY_UNITS: Final = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_DECIMAL_UNITS: Final = ("B/s", "kB/s", "MB/s", "GB/s", "TB/s", "PB/s")
_SI_PREFIXES: Final = ("", "k", "M", "G", "T", "P")
HEX_PREVIEW_BYTES: Final = 8


class Unit(enum.Enum):
    """What a point's name says its numbers are."""

    NONE = "none"
    BYTES = "bytes"
    BYTES_PER_S = "bytes_per_s"
    PERCENT = "percent"
    OPS_PER_S = "ops_per_s"
    PER_S = "per_s"
    MILLISECONDS = "ms"
    DURATION = "duration"
    CELSIUS = "celsius"
    RPM = "rpm"
    DEGREES = "degrees"


def unit_of(name: str) -> Unit:
    """The unit of the point called ``name`` (its last path segment), from its suffix."""
    lower = name.rpartition("/")[2].lower()
    words = lower.split("_")
    if lower.endswith("_bytes_per_s"):
        return Unit.BYTES_PER_S
    if lower.endswith("_bytes") or lower == "bytes":
        return Unit.BYTES
    if lower.endswith(("_percent", "_pct")) or lower == "percent":
        return Unit.PERCENT
    if lower.endswith("_ops_per_s"):
        return Unit.OPS_PER_S
    if lower.endswith("_per_s"):
        return Unit.PER_S
    if lower.endswith("_ms"):
        return Unit.MILLISECONDS
    if lower.endswith("_s") or "uptime" in words:
        return Unit.DURATION
    if lower.endswith("_celsius") or "temp" in words or "temperature" in words:
        return Unit.CELSIUS
    if lower.endswith("_rpm"):
        return Unit.RPM
    if lower.endswith("_deg"):
        return Unit.DEGREES
    return Unit.NONE


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scaled(value: float, step: float, units: tuple[str, ...]) -> tuple[float, str]:
    magnitude = abs(value)
    index = 0
    while magnitude >= step and index < len(units) - 1:
        magnitude /= step
        index += 1
    return math.copysign(magnitude, value), units[index]


def _three_digits(value: float) -> str:
    """Three significant digits without exponent: 1.23, 12.3, 123."""
    magnitude = abs(value)
    if magnitude >= 99.95:
        return f"{value:.0f}"
    if magnitude >= 9.995:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_bytes(size: float) -> str:
    """Binary multiples: ``512 B``, ``1.50 KiB``, ``23.0 GiB``."""
    if not math.isfinite(size):
        return _float_text(float(size))
    if abs(size) < 1024:
        return f"{size:.0f} B" if float(size).is_integer() else f"{size:.1f} B"
    scaled, unit = _scaled(float(size), 1024.0, _BINARY_UNITS)
    return f"{_three_digits(scaled)} {unit}"


def format_rate_bytes(rate: float) -> str:
    """Decimal multiples per second (as network and disk speeds are quoted): ``82.1 MB/s``."""
    if not math.isfinite(rate):
        return _float_text(float(rate))
    if abs(rate) < 1000:
        number = f"{rate:.0f}" if float(rate).is_integer() else _three_digits(float(rate))
        return f"{number} B/s"
    scaled, unit = _scaled(float(rate), 1000.0, _DECIMAL_UNITS)
    return f"{_three_digits(scaled)} {unit}"


def format_per_second(rate: float, what: str) -> str:
    """A count per second with SI prefixes: ``12.5 ops/s``, ``1.23k ops/s``, ``0 errors/s``."""
    if not math.isfinite(rate):
        return _float_text(float(rate))
    if rate == 0:
        return f"0 {what}/s"
    scaled, prefix = _scaled(float(rate), 1000.0, _SI_PREFIXES)
    number = f"{scaled:.0f}" if float(scaled).is_integer() else f"{scaled:.3g}"
    return f"{number}{prefix} {what}/s"


def format_percent(value: float) -> str:
    """``42%`` for whole numbers, ``42.5%`` otherwise."""
    if not math.isfinite(value):
        return _float_text(float(value))
    if isinstance(value, int):
        return f"{value}%"
    return f"{value:.1f}%"


def format_duration(seconds: float) -> str:
    """A span of time: ``120 ms``, ``42.3 s``, ``12m 5s``, ``4h 12m``, ``3d 4h 12m``."""
    if not math.isfinite(seconds):
        return _float_text(float(seconds))
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds == 0:
        return "0 s"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if not float(seconds).is_integer() else f"{seconds:.0f} s"
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"


def format_celsius(value: float) -> str:
    """``45.0 °C``."""
    if not math.isfinite(value):
        return _float_text(float(value))
    return f"{value:.1f} °C"


def format_age_short(age_s: float | None) -> str:
    """An age for a narrow column: ``0.4s``, ``42s``, ``12m``, ``3h``, ``2d``; ``""`` when unknown."""
    if age_s is None or not math.isfinite(age_s):
        return ""
    age_s = max(0.0, age_s)
    if age_s < 10:
        return f"{age_s:.1f}s"
    if age_s < 60:
        return f"{age_s:.0f}s"
    if age_s < 3_600:
        return f"{age_s // 60:.0f}m"
    if age_s < 86_400:
        return f"{age_s // 3_600:.0f}h"
    return f"{age_s // 86_400:.0f}d"


def format_datetime(value: dt.datetime) -> str:
    """Local time with its zone (``2026-12-01 22:49:20 CET``); a naive datetime as it came."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value.isoformat(sep=" ", timespec="seconds" if value.microsecond == 0 else "milliseconds")
    local = value.astimezone()
    text = local.strftime("%Y-%m-%d %H:%M:%S")
    if local.microsecond:
        text += f".{local.microsecond // 1000:03d}"
    zone = local.tzname() or local.strftime("%z")
    return f"{text} {zone}"


def format_raw_bytes(value: bytes | bytearray | memoryview, preview: int = HEX_PREVIEW_BYTES) -> str:
    """Bytes as their length and a hex preview: ``5 bytes: 68 65 6c 6c 6f``, ``... 0a 0b …``."""
    data = bytes(value)
    shown = " ".join(f"{byte:02x}" for byte in data[:preview])
    more = " …" if len(data) > preview else ""
    noun = "byte" if len(data) == 1 else "bytes"
    return f"{len(data)} {noun}: {shown}{more}" if data else "0 bytes"


def _float_text(value: float) -> str:
    return f"{value:.6g}" if math.isfinite(value) else str(value)


def _escape(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]


def one_line(text: str) -> str:
    """``text`` on one line: tabs become spaces, other control characters their escapes."""
    return _CONTROL.sub(_escape, text.replace("\t", " "))


def _plain(value: Any) -> str:
    """A value with no unit, on one line."""
    if value is None:
        return ""
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, dt.datetime):
        return format_datetime(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return format_raw_bytes(value)
    if isinstance(value, tuple | list):
        inner = ", ".join(_plain(item) if not isinstance(item, str) else repr(item) for item in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    try:
        text = str(value)
    except Exception as error:  # a value whose __str__ fails must not take the view down
        text = f"<unprintable {type(value).__name__}: {type(error).__name__}>"
    return one_line(text)


def _with_unit(unit: Unit, name: str, number: float) -> str:
    if unit is Unit.BYTES:
        return format_bytes(number)
    if unit is Unit.BYTES_PER_S:
        return format_rate_bytes(number)
    if unit is Unit.PERCENT:
        return format_percent(number)
    if unit is Unit.OPS_PER_S:
        return format_per_second(number, "ops")
    if unit is Unit.PER_S:
        words = name.rpartition("/")[2].lower().split("_")
        what = words[-3] if len(words) >= 3 and words[-3] else "events"
        return format_per_second(number, what)
    if unit is Unit.MILLISECONDS:
        return "nan" if not math.isfinite(number) else f"{number:.3g} ms"
    if unit is Unit.DURATION:
        return format_duration(number)
    if unit is Unit.CELSIUS:
        return format_celsius(number)
    if unit is Unit.RPM:
        return "nan" if not math.isfinite(number) else f"{number:.0f} rpm"
    if unit is Unit.DEGREES:
        return "nan" if not math.isfinite(number) else f"{number:.1f}°"
    return _plain(number)


def format_point(name: str, value: Any) -> str:
    """The value of the point called ``name`` for a table cell: its unit, one line, no control characters."""
    if _is_number(value):
        unit = unit_of(name)
        if unit is not Unit.NONE:
            return _with_unit(unit, name, value)
    return _plain(value)


def format_exact(value: Any) -> str:
    """The value exactly as it is (``repr`` for numbers, every byte in hex), for the detail pane."""
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        lines = [" ".join(f"{byte:02x}" for byte in data[start : start + 16]) for start in range(0, len(data), 16)]
        return f"{len(data)} bytes\n" + "\n".join(lines) if data else "0 bytes"
    if isinstance(value, dt.datetime):
        utc = value.astimezone(dt.UTC).isoformat() if value.tzinfo is not None else value.isoformat()
        return f"{format_datetime(value)}  ({utc})"
    if isinstance(value, str):
        return _CONTROL_BUT_LINES.sub(_escape, value)
    if value is None:
        return "(none)"
    try:
        return _CONTROL_BUT_LINES.sub(_escape, repr(value))
    except Exception as error:
        return f"<unprintable {type(value).__name__}: {type(error).__name__}>"


def format_point_full(name: str, value: Any) -> str:
    """Everything about a value, for the detail pane: with its unit and the exact number beside it
    (``23.0 GiB  (24670994432)``); text keeps its lines (control characters other than newline
    and tab escaped), never cut."""
    if _is_number(value):
        shown = format_point(name, value)
        exact = format_exact(value)
        return shown if shown == exact else f"{shown}  ({exact})"
    return format_exact(value)
