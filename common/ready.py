"""The ready line: the one line a gsmon process prints on stdout once it serves.

A hub, once bound, and a standalone agent, once running, print exactly one
line that scripts, service checks and the tests read (they never choose
ports: a child binds port 0 and tells its real endpoints here)::

    READY agents=tcp://127.0.0.1:40321 subscribers=tcp://127.0.0.1:40322 query=tcp://127.0.0.1:40323
    READY agents=tcp://0.0.0.0:7761 ... WARNING=unauthenticated-non-loopback
    READY agent=rack1 mount=GS1/Rack1 hubs=tcp://hub:7761,tcp://hub2:7761

The word ``READY``, then ``key=value`` fields separated by single spaces, in
the order given. A value that holds white space or quotes (a mount such as
``GS1/Antenna 2``) is quoted as a POSIX shell would quote it
(``mount='GS1/Antenna 2'``), so the line always splits back into the same
fields. :func:`ready_line` writes it and :func:`parse_ready_line` reads it:
every process and test uses this pair.
"""

from __future__ import annotations

import shlex
from typing import Final

__all__ = ["READY", "is_ready_line", "parse_ready_line", "ready_line"]

READY: Final = "READY"


def ready_line(**fields: str | None) -> str:
    """``READY key=value ...`` for ``fields`` in order; a field whose value is ``None`` is left out."""
    parts = [READY]
    for key, value in fields.items():
        if value is None:
            continue
        if not key.isidentifier():
            raise ValueError(f"a ready-line key is a word, not {key!r}")
        needs_quotes = not value or any(char.isspace() or char in "'\"\\" for char in value)
        parts.append(f"{key}={shlex.quote(value) if needs_quotes else value}")
    return " ".join(parts)


def is_ready_line(line: str) -> bool:
    """Whether ``line`` is a ready line (``READY`` alone, or followed by fields)."""
    return line.rstrip("\r\n") == READY or line.startswith(READY + " ")


def parse_ready_line(line: str) -> dict[str, str]:
    """The fields of a ready line, in order; ``ValueError`` when ``line`` is not one."""
    if not is_ready_line(line):
        raise ValueError(f"not a ready line: {line!r}")
    fields: dict[str, str] = {}
    for part in shlex.split(line)[1:]:
        key, sep, value = part.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"not a key=value field in the ready line: {part!r}")
        fields[key] = value
    return fields
