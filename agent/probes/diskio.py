"""Disk I/O probe: read and write rates per disk.

Points (parent ``Disk``), for each disk ``<disk>`` (``sda``, ``nvme0n1``...):

=========================  ========  ==========================
name                       unit      meaning
=========================  ========  ==========================
<disk>_read_bytes_per_s    bytes/s   read from the disk
<disk>_write_bytes_per_s   bytes/s   written to the disk
<disk>_read_ops_per_s      ops/s     read operations completed
<disk>_write_ops_per_s     ops/s     write operations completed
=========================  ========  ==========================

Disks are chosen once, at registration: the ``disks`` listed in the
configuration, else every disk psutil reports except the ``ignore`` globs
(loop, RAM and optical devices by default) and, on Linux, except partitions
(only names listed in ``/sys/block`` are whole disks), whose traffic is
already counted in their disk's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any, Final

import psutil

from gsmon.agent.config import DiskIOProbe
from gsmon.agent.probes.base import RegisteredProbes, log

__all__ = ["FIELDS", "PARENT", "choose_disks", "register_disk_io", "whole_disks"]

PARENT: Final = "Disk"
_SYS_BLOCK: Final = "/sys/block"

#: psutil counter -> point-name suffix.
FIELDS: Final = {
    "read_bytes": "read_bytes_per_s",
    "write_bytes": "write_bytes_per_s",
    "read_count": "read_ops_per_s",
    "write_count": "write_ops_per_s",
}


def whole_disks() -> set[str] | None:
    """The names of whole disks where the OS tells them apart from partitions
    (Linux ``/sys/block``), else ``None``."""
    try:
        return set(os.listdir(_SYS_BLOCK))
    except OSError:
        return None


def choose_disks(available: Iterable[str], config: DiskIOProbe, whole: set[str] | None) -> list[str]:
    """The disks to watch (pure). ``whole``: names of whole disks, or ``None`` when unknown."""
    if config.disks:
        return list(config.disks)
    return sorted(
        name
        for name in available
        if not any(fnmatchcase(name, glob) for glob in config.ignore) and (whole is None or name in whole)
    )


def register_disk_io(
    probes: RegisteredProbes,
    config: DiskIOProbe,
    *,
    read: Callable[[], Mapping[str, Any] | None] | None = None,
    clock: Callable[[], float] | None = None,
) -> None:
    """Declare the per-disk rate points under ``Disk``.

    ``read`` and ``clock`` replace ``psutil.disk_io_counters(perdisk=True)``
    and ``time.monotonic`` (for tests).
    """
    read_counters: Callable[[], Mapping[str, Any] | None] = read or (lambda: psutil.disk_io_counters(perdisk=True))
    now: Callable[[], float] = clock or time.monotonic
    # psutil returns None (or {}) where the OS keeps no disk statistics, e.g. in some containers.
    first = read_counters() or {}
    disks = choose_disks(first, config, whole_disks() if read is None else None)
    if not disks:
        log.debug("disk I/O probe: the OS reports no disk to watch")
        return
    probes.add_counter_rates(disks, FIELDS, read_counters, first, now, dt_s=config.dt_s, parent=PARENT)
