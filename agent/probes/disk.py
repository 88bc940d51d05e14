"""Disk probe: space used on each mounted file system.

Points (parent ``Disk``), for each mount point, named after it (``/`` is
``root``, ``/var/log`` is ``var_log``, see :func:`~gsmon.agent.probes.labels.mount_label`):

=======================  =======  =====================================================
name                     unit     meaning
=======================  =======  =====================================================
<mount>_used_percent     percent  share of the space usable by ordinary users in use
<mount>_free_bytes       bytes    space free for ordinary users (excludes root's reserve)
<mount>_total_bytes      bytes    size of the file system
=======================  =======  =====================================================

Which mounts: the ``mounts`` listed in the configuration, else every physical
partition psutil reports (``disk_partitions(all=False)``) except ignored
mount points and file-system types, and only the first mount of each device:
bind mounts of one file system would repeat the same numbers. Each mount has
its own monitor function, so a hung network mount times out alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase
from typing import Final, Protocol

import psutil

from gsmon.agent.config import DiskProbe
from gsmon.agent.probes.base import RegisteredProbes, log
from gsmon.agent.probes.labels import mount_label, unique
from gsmon.agent.thresholds import Threshold

__all__ = ["PARENT", "SPACE_THRESHOLD", "choose_mounts", "register_disk"]

PARENT: Final = "Disk"
#: Offered as a default threshold for every mount (an operator's own [[thresholds]] win).
SPACE_THRESHOLD: Final = Threshold(f"{PARENT}/*_used_percent", orange=85.0, red=95.0, hysteresis=1.0)


class Partition(Protocol):
    """What :func:`choose_mounts` needs of a ``psutil.disk_partitions()`` entry."""

    @property
    def device(self) -> str: ...
    @property
    def mountpoint(self) -> str: ...
    @property
    def fstype(self) -> str: ...


def choose_mounts(partitions: Iterable[Partition], config: DiskProbe) -> list[str]:
    """The mount points to watch (pure: ``partitions`` is what psutil reported)."""
    if config.mounts:
        return list(config.mounts)
    chosen: list[str] = []
    devices: set[str] = set()
    # Shortest mount point first, so "/" wins over a bind mount of the same device.
    for part in sorted(partitions, key=lambda p: (len(p.mountpoint), p.mountpoint)):
        if part.fstype in config.ignore_fstypes:
            continue
        if any(fnmatchcase(part.mountpoint, pattern) for pattern in config.ignore_mounts):
            continue
        if part.device and part.device in devices:
            continue
        devices.add(part.device)
        chosen.append(part.mountpoint)
    return sorted(chosen)


def register_disk(probes: RegisteredProbes, config: DiskProbe) -> None:
    """Declare ``<mount>_used_percent``, ``_free_bytes`` and ``_total_bytes`` under ``Disk``."""
    mounts = choose_mounts(psutil.disk_partitions(all=False), config)
    if not mounts:
        log.debug("disk probe: no mounted file system to watch")
        return
    probes.default_thresholds.append(SPACE_THRESHOLD)
    for mountpoint, prefix in zip(mounts, unique(mount_label(m) for m in mounts), strict=True):
        probes.add(
            (f"{prefix}_used_percent", f"{prefix}_free_bytes", f"{prefix}_total_bytes"),
            _usage_of(mountpoint),
            dt_s=config.dt_s,
            parent=PARENT,
        )


def _usage_of(mountpoint: str) -> Callable[[], tuple[float, int, int]]:
    def disk_usage() -> tuple[float, int, int]:
        # Raises when the mount is gone; the Monitor reports that as the points' error.
        usage = psutil.disk_usage(mountpoint)
        return float(usage.percent), int(usage.free), int(usage.total)

    disk_usage.__name__ = f"disk_usage({mountpoint})"
    return disk_usage
