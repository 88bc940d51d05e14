"""How a point's value is stored: a number for plotting beside the exact value, and back.

Every value a point can hold (see the protocol's Values section: nil, bool,
int, float with NaN and +-inf, str, bytes, lists, maps, datetimes with their
zone, tuples) is split into two columns:

=========  =================================================================
``num``    the value as a float when it is a number (``bool`` as 0/1, ``int``
           as the nearest float), for min/max/avg and plots; NULL otherwise
           and for NaN (SQLite cannot hold NaN, and one rule on both stores
           keeps their aggregates equal)
``val``    the exact value, packed by gsmon's protocol value packer
           (msgpack with the protocol's datetime and tuple extension types);
           NULL when ``num`` already says everything: a finite float, or
           ``+-inf`` (``num`` holds it exactly), and nil (both NULL)
=========  =================================================================

:func:`split` and :func:`join` are exact inverses for every value the
protocol can carry: types are kept (``1`` stays an int, ``True`` a bool,
``(1, 2)`` a tuple, an aware datetime keeps its offset and IANA zone).

:func:`jsonable` is the JSON form of a value for ``gsmon history --format
json`` (as ``gsmon get --json`` writes it: bytes as base64 text, datetimes as
ISO 8601 text, tuples as arrays, NaN and +-inf as the strings ``"NaN"``,
``"Infinity"``, ``"-Infinity"``); export files carry ``val`` itself (base64)
so that nothing is lost there.

The packer and its extension hook are the protocol module's own
(``_pack_value``, ``_EXT_HOOK``): one implementation of the value encoding in
the code base. They are private names today; when the protocol module makes
them public, only this module changes.
"""

from __future__ import annotations

import math
from typing import Any, Final

from gsmon.common import protocol as proto
from gsmon.common.json_form import jsonable

__all__ = ["is_number", "join", "jsonable", "number_of", "pack", "split", "unpack"]

_NUMBERS: Final = (int, float)


def pack(value: Any) -> bytes:
    """The exact value as bytes (the protocol's packing of a point value; never raises)."""
    return proto.pack_value(value)


def unpack(data: bytes) -> Any:
    """The value :func:`pack` packed (raises ``ValueError`` for bytes it did not make)."""
    try:
        return proto.unpack_value(data)
    except proto.ProtocolError as error:
        raise ValueError(f"not a packed value: {error}") from error


def is_number(value: Any) -> bool:
    """Whether ``value`` goes into the numeric column (bool, int, float; NaN counts as a number)."""
    return isinstance(value, _NUMBERS)


def number_of(value: Any) -> float | None:
    """The numeric column's value: a float for numbers except NaN, else None."""
    kind = type(value)
    if kind is float:
        return None if value != value else value
    if kind is int or kind is bool:
        return float(value)
    if isinstance(value, _NUMBERS):  # subclasses (an IntEnum)
        number = float(value)
        return None if math.isnan(number) else number
    return None


def split(value: Any) -> tuple[float | None, bytes | None]:
    """``(num, val)`` for a value (see the module docstring)."""
    kind = type(value)
    if kind is float:
        if value != value:  # NaN: only val can hold it
            return None, pack(value)
        return value, None
    if value is None:
        return None, None
    return number_of(value), pack(value)


def join(num: float | None, val: bytes | None) -> Any:
    """The value :func:`split` split."""
    if val is not None:
        return unpack(bytes(val))
    return None if num is None else float(num)
