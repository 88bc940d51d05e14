"""Times as operators type them and as JSON shows them.

* A *duration*: ``90`` or ``90s``, ``5m``, ``6h``, ``2d``, ``1w``, or a sum such
  as ``1h30m`` (:func:`parse_duration`).
* A *moment*: ISO 8601 (``2026-12-01T21:49:20Z``, ``2026-12-01T22:49:20+01:00``,
  ``2026-12-01 21:49``; without an offset it is UTC), ``now``, or a
  duration meaning that long ago (``6h``, ``2d``), or a bare number of seconds
  since the Unix epoch (:func:`parse_moment`).
* JSON and the tables show moments as ISO 8601 UTC with a ``Z``,
  milliseconds, or microseconds when the time has them (:func:`iso`).

Pure functions: the current time is an argument.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

__all__ = ["format_span", "iso", "iso_us", "parse_duration", "parse_moment"]

_UNITS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (see the module docstring); ``ValueError`` with what is expected."""
    cleaned = text.strip().lower()
    try:
        seconds = float(cleaned)
    except ValueError:
        pass
    else:
        if seconds >= 0 and seconds == seconds and seconds != float("inf"):
            return seconds
        raise ValueError(f"expected a duration such as 90s, 5m, 6h, 2d or 1h30m, got {text!r}")
    position, total = 0, 0.0
    for match in _DURATION.finditer(cleaned):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not cleaned or position != len(cleaned):
        raise ValueError(f"expected a duration such as 90s, 5m, 6h, 2d or 1h30m, got {text!r}")
    return total


def parse_moment(text: str, now: float) -> float:
    """Seconds since the epoch for ``text`` (see the module docstring); ``ValueError`` with what is expected."""
    cleaned = text.strip()
    if cleaned.lower() == "now":
        return now
    try:
        return float(cleaned)  # a bare number: seconds since the Unix epoch
    except ValueError:
        pass
    try:
        return now - parse_duration(cleaned)
    except ValueError:
        pass
    iso_text = cleaned[:-1] + "+00:00" if cleaned.endswith(("Z", "z")) else cleaned
    try:
        when = dt.datetime.fromisoformat(iso_text)
    except ValueError:
        raise ValueError(
            f"expected a time: ISO 8601 such as 2026-12-01T21:49:20Z (UTC unless an offset is given), "
            f"'now', or how long ago such as 6h or 2d, got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def iso(seconds: float) -> str:
    """``2026-12-01T21:49:20.123Z`` (microseconds when the time has them)."""
    when = dt.datetime.fromtimestamp(seconds, dt.UTC)
    spec = "milliseconds" if when.microsecond % 1000 == 0 else "microseconds"
    return when.isoformat(timespec=spec).replace("+00:00", "Z")


def iso_us(t_us: int) -> str:
    """:func:`iso` of integer microseconds, exactly (no float rounding)."""
    seconds, micros = divmod(t_us, 1_000_000)
    when = dt.datetime.fromtimestamp(seconds, dt.UTC).replace(microsecond=micros)
    spec = "milliseconds" if micros % 1000 == 0 else "microseconds"
    return when.isoformat(timespec=spec).replace("+00:00", "Z")


def format_span(seconds: float) -> str:
    """A short human span: ``45 s``, ``12 min``, ``3.5 h``, ``2.1 d``."""
    if seconds < 90:
        return f"{seconds:.3g} s"
    if seconds < 5400:
        return f"{seconds / 60:.3g} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86_400:.3g} d"
