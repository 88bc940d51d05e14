"""Point names made from what the OS calls things (mount points, disks, sensors).

Point names must be unique across the whole Monitor and may not contain
``/`` or control characters (:mod:`gsmon.common.names`). OS names can hold
both, so every name a probe derives from the OS goes through :func:`label`,
and a family's names go through :func:`unique` in case two clean up to the
same text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from gsmon.common import names as naming

__all__ = ["label", "mount_label", "unique"]

# Path separators, whitespace and control characters become "_"; runs of them collapse.
_UNSAFE: Final = re.compile(r"[/\\\s\x00-\x1f\x7f-\x9f]+")
# Leave room for the longest suffix a probe adds ("_write_bytes_per_s").
_MAX_LABEL_CHARS: Final = naming.MAX_NAME_CHARS - 32


def label(text: str, fallback: str = "unnamed") -> str:
    """``text`` as a point-name prefix: separators, spaces and control
    characters become ``_``; empty results become ``fallback``."""
    cleaned = _UNSAFE.sub("_", text).strip("_")[:_MAX_LABEL_CHARS]
    return cleaned or fallback


def mount_label(mountpoint: str) -> str:
    """A mount point as a name prefix: ``/`` is ``root``, ``/var/log`` is ``var_log``,
    ``C:\\`` is ``C:``."""
    return label(mountpoint, fallback="root")


def unique(labels: Iterable[str]) -> list[str]:
    """The labels, with ``_2``, ``_3``... added to repeats so that each is unique."""
    seen: set[str] = set()
    result: list[str] = []
    for text in labels:
        candidate, count = text, 1
        while candidate in seen:
            count += 1
            candidate = f"{text}_{count}"
        seen.add(candidate)
        result.append(candidate)
    return result
