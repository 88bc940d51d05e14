"""Network probe: traffic, error and drop rates per interface.

Points (parent ``Network``), for each interface ``<if>``:

====================  ===========  ===================================
name                  unit         meaning
====================  ===========  ===================================
<if>_rx_bytes_per_s   bytes/s      received
<if>_tx_bytes_per_s   bytes/s      sent
<if>_rx_errors_per_s  errors/s     receive errors
<if>_tx_errors_per_s  errors/s     transmit errors
<if>_rx_drops_per_s   packets/s    incoming packets dropped
<if>_tx_drops_per_s   packets/s    outgoing packets dropped
====================  ===========  ===================================

Rates are counter differences over ``time.monotonic()`` (see
:mod:`~gsmon.agent.probes.rates`); a value is ``None`` until there are two
samples far enough apart, and for an interface that has disappeared.
Interfaces are chosen once, at registration: the ``interfaces`` listed in
the configuration, else every interface except the ``ignore`` globs and the
virtual interfaces that are down (Linux: listed in ``/sys/devices/virtual/net``
and not up, such as an unused ``ifb0`` or ``dummy0``): they carry nothing and
would only crowd the view. List one in ``interfaces`` to watch it anyway.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any, Final

import psutil

from gsmon.agent.config import NetworkProbe
from gsmon.agent.probes.base import RegisteredProbes, log

__all__ = ["FIELDS", "PARENT", "choose_interfaces", "down_virtual_interfaces", "register_network"]

PARENT: Final = "Network"
_SYS_VIRTUAL_NET: Final = "/sys/devices/virtual/net"

#: psutil counter -> point-name suffix.
FIELDS: Final = {
    "bytes_recv": "rx_bytes_per_s",
    "bytes_sent": "tx_bytes_per_s",
    "errin": "rx_errors_per_s",
    "errout": "tx_errors_per_s",
    "dropin": "rx_drops_per_s",
    "dropout": "tx_drops_per_s",
}


def choose_interfaces(available: Iterable[str], config: NetworkProbe, *, left_out: Collection[str] = ()) -> list[str]:
    """The interfaces to watch (pure). ``left_out``: interfaces not to watch unless configured
    (the virtual ones that are down, see :func:`down_virtual_interfaces`)."""
    if config.interfaces:
        return list(config.interfaces)
    return sorted(
        name
        for name in available
        if name not in left_out and not any(fnmatchcase(name, glob) for glob in config.ignore)
    )


def down_virtual_interfaces(stats: Mapping[str, Any] | None = None, virtual: Collection[str] | None = None) -> set[str]:
    """Interfaces that are virtual (Linux ``/sys/devices/virtual/net``) and not up; empty where the
    OS does not say. ``stats`` and ``virtual`` replace ``psutil.net_if_stats()`` and the folder (tests)."""
    if virtual is None:
        try:
            virtual = set(os.listdir(_SYS_VIRTUAL_NET))
        except OSError:
            return set()
    if stats is None:
        try:
            stats = psutil.net_if_stats()
        except (OSError, RuntimeError):
            return set()
    return {name for name in virtual if name in stats and not stats[name].isup}


def register_network(
    probes: RegisteredProbes,
    config: NetworkProbe,
    *,
    read: Callable[[], Mapping[str, Any]] | None = None,
    clock: Callable[[], float] | None = None,
) -> None:
    """Declare the per-interface rate points under ``Network``.

    ``read`` and ``clock`` replace ``psutil.net_io_counters(pernic=True)`` and
    ``time.monotonic`` (for tests).
    """
    read_counters: Callable[[], Mapping[str, Any]] = read or (lambda: psutil.net_io_counters(pernic=True))
    now: Callable[[], float] = clock or time.monotonic
    first = read_counters() or {}
    interfaces = choose_interfaces(first, config, left_out=down_virtual_interfaces() if read is None else ())
    if not interfaces:
        log.debug("network probe: no interface to watch")
        return
    probes.add_counter_rates(interfaces, FIELDS, read_counters, first, now, dt_s=config.dt_s, parent=PARENT)
