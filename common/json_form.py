"""Point values and wall times as every gsmon JSON output writes them: one implementation.

``gsmon get --json``, ``gsmon log --json`` / ``gsmon alarms --json``, ``gsmon history --format json``,
the web API and the notifier's messages all write a value exactly, with its type kept where JSON can
keep it, and a wall time as ISO 8601 UTC with milliseconds:

=====================  ==========================================================
value                  JSON
=====================  ==========================================================
nil, bool, int, str    itself
float                  itself; NaN, +inf, -inf as ``"NaN"``, ``"Infinity"``, ``"-Infinity"``
bytes                  base64 text
datetime               ISO 8601 text (with its offset, as it came)
list, tuple            an array (of the items' forms)
map                    an object (keys as text)
anything else          its ``str()`` (never an error: the protocol carries none, but a bug must not
                       stop an output)
wall seconds           ``"2026-12-01T21:49:20.123Z"`` (:func:`iso_utc`; None, NaN or out of range: None)
=====================  ==========================================================

(The recorder's own times keep microseconds when they have them: :func:`gsmon.common.recorder.times.iso`.)
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["iso_utc", "jsonable"]


def jsonable(value: Any) -> Any:
    """A point value as exact JSON (see the module docstring)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    return str(value)


def iso_utc(wall_s: float | None) -> str | None:
    """Wall seconds -> ``"2026-12-01T21:49:20.123Z"`` (None stays None; NaN or out of range: None)."""
    if wall_s is None or not math.isfinite(wall_s):
        return None
    try:
        moment = dt.datetime.fromtimestamp(wall_s, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
