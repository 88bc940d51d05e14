"""The tree table: how ``print(mon)``, ``gsmon get`` and ``gsmon watch`` draw a tree.

::

     Monitor (RED) --- running
     Name                          Value                                   Alert     Last polled
     ----------------------------- --------------------------------------- --------- ---------------
     .Antenna                                                              RED
     ..Azimuth                     182.5                                   GREEN     0.42
     ..Elevation                   -3.1                                    RED       0.42

One leading dot per level, as the original libgs table had. Values are shown
with ``str()`` except floats, which get six significant digits; ``None`` (a
parent, or a point not polled yet) shows as blank. That is :func:`render_table`,
the seed's layout, kept for ``print(mon)``.

``gsmon get`` and the plain frames of ``gsmon watch`` use
:func:`render_view`: the same dotted tree, but sized to the terminal (the
name column takes what the names need up to 40 % of the width, the value the
rest, cut with ``…``), every value with the unit its name says
(:mod:`gsmon.common.units`: ``23.0 GiB``, ``82.1 MB/s``, ``3d 4h 12m``), and
the last column saying what it is: ``age``, the seconds since the hub
received the value::

     Hub tcp://127.0.0.1:7763 (RED) --- 6 nodes
     Name                 Value                          Alert      age
     -------------------- ------------------------------ ---------- -------
     .Antenna                                            RED
     ..azimuth_deg        182.5°                         GREEN      0.4s
     ..uptime_s           3d 4h 12m                      GREEN      12s
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from gsmon.common.alerts import STALE_ALERTCODE, CriticalAlert, GreenAlert, OrangeAlert, RedAlert
from gsmon.common.units import format_age_short, format_point

__all__ = ["Row", "format_age", "format_value", "render_table", "render_view"]

NAME_WIDTH: Final = 30
VALUE_WIDTH: Final = 40
ALERT_WIDTH: Final = 10
AGE_WIDTH: Final = 15
# Unicode category Cc: C0 controls, DEL and C1 controls.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f]")

# ANSI colours per alert code, for terminals (gsmon watch).
_RESET: Final = "\x1b[0m"
_COLOURS: Final[dict[int, str]] = {
    GreenAlert.alertcode: "\x1b[32m",
    OrangeAlert.alertcode: "\x1b[33m",
    RedAlert.alertcode: "\x1b[31m",
    STALE_ALERTCODE: "\x1b[35m",
    CriticalAlert.alertcode: "\x1b[1;41;97m",
}


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table."""

    depth: int
    name: str
    value: Any
    alertcode: int | None
    alertstr: str
    age_s: float | None


def format_value(value: Any) -> str:
    """Render a value for the table (one line, no control characters)."""
    text = f"{value:.6g}" if isinstance(value, float) and math.isfinite(value) else str(value)
    # Keep the table one line per node whatever the value holds, and let no
    # escape sequence reach the terminal: "\n" -> "\\n", ESC -> "\\x1b".
    return _CONTROL.sub(_escape, text.replace("\t", " "))


def _escape(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]


def format_age(age_s: float | None) -> str:
    return "" if age_s is None else f"{age_s:.2f}"


def _colour_for(code: int | None) -> str:
    if code is None:
        return ""
    # A user-defined level between two built-in ones takes the lower one's colour.
    best = ""
    for threshold in sorted(_COLOURS):
        if code >= threshold:
            best = _COLOURS[threshold]
    return best


def render_table(title: str, rows: Iterable[Row], *, colour: bool = False) -> str:
    """Render the header line, the column heads and one line per row."""
    lines = [
        f" {title}",
        f" {'Name':<{NAME_WIDTH}s}{'Value':<{VALUE_WIDTH}s}{'Alert':<{ALERT_WIDTH}s}Last polled",
        " " + " ".join("-" * (width - 1) for width in (NAME_WIDTH, VALUE_WIDTH, ALERT_WIDTH)) + " " + "-" * AGE_WIDTH,
    ]
    for row in rows:
        name = ("." * (row.depth + 1) + row.name)[: NAME_WIDTH - 1]
        value = "" if row.value is None else format_value(row.value)[: VALUE_WIDTH - 1]
        alert = row.alertstr[: ALERT_WIDTH - 1]
        line = f" {name:<{NAME_WIDTH}s}{value:<{VALUE_WIDTH}s}{alert:<{ALERT_WIDTH}s}{format_age(row.age_s)}".rstrip()
        if colour:
            tint = _colour_for(row.alertcode)
            if tint:
                line = f"{tint}{line}{_RESET}"
        lines.append(line)
    return "\n".join(lines) + "\n"


VIEW_NAME_SHARE: Final = 0.4
VIEW_MIN_NAME: Final = 16
VIEW_MIN_VALUE: Final = 12
VIEW_AGE_WIDTH: Final = 7


def _cut_end(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _cut_middle(text: str, width: int) -> str:
    """Keep both ends (the unit suffix of a long name stays readable)."""
    if len(text) <= width:
        return text
    if width < 8:
        return _cut_end(text, width)
    tail = (width - 1) // 2
    return text[: width - 1 - tail] + "…" + text[-tail:]


def render_view(title: str, rows: Iterable[Row], *, width: int = 100, colour: bool = False) -> str:
    """The tree for people, ``width`` columns wide, values with their units (see the module docstring)."""
    rows = list(rows)
    width = max(width, 50)
    needed = max((row.depth + 1 + len(row.name) for row in rows), default=VIEW_MIN_NAME)
    alert_width = ALERT_WIDTH
    room = width - 1 - alert_width - VIEW_AGE_WIDTH - 3
    name_width = max(VIEW_MIN_NAME, min(needed, int(width * VIEW_NAME_SHARE), room - VIEW_MIN_VALUE))
    value_width = max(VIEW_MIN_VALUE, room - name_width)
    lines = [
        f" {title}",
        f" {'Name':<{name_width}s} {'Value':<{value_width}s} {'Alert':<{alert_width}s} age",
        " " + " ".join("-" * size for size in (name_width, value_width, alert_width, VIEW_AGE_WIDTH)),
    ]
    for row in rows:
        name = _cut_middle("." * (row.depth + 1) + row.name, name_width)
        value = "" if row.value is None else _cut_end(format_point(row.name, row.value), value_width)
        alert = _cut_end(row.alertstr, alert_width)
        age = format_age_short(row.age_s)
        line = f" {name:<{name_width}s} {value:<{value_width}s} {alert:<{alert_width}s} {age}".rstrip()
        if colour:
            tint = _colour_for(row.alertcode)
            if tint:
                line = f"{tint}{line}{_RESET}"
        lines.append(line)
    return "\n".join(lines) + "\n"
