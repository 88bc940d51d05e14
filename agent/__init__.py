"""gsmon agent: runs monitor points and publishes them to the hub.

Pipeline of one agent process (or of a Monitor inside any application)::

    monitor functions --(worker threads)--> Monitor: points + rollup tree
        --(changed points, every flush)--> publisher --(XPUB, msgpack)--> hub(s)

* :mod:`~gsmon.agent.monitor` -- the libgs-compatible ``Monitor`` and its decorator API
* :mod:`~gsmon.agent.points` -- the Monitor's point table: results, rollup, log/callback notes (pure, takes ``now``)
* :mod:`~gsmon.agent.scheduler` -- due times on a heap (pure, takes ``now``)
* :mod:`~gsmon.agent.debounce` -- per-point debounce and flap guard (pure, takes poll times; the point table applies it)

Everything a monitor author needs is importable from here::

    from gsmon.agent import Monitor, RedAlert, GreenAlert
"""

from gsmon.agent.monitor import Monitor, MonitorItem
from gsmon.common.alerts import Alert, CriticalAlert, GreenAlert, NoAlert, OrangeAlert, RedAlert

__all__ = [
    "Alert",
    "CriticalAlert",
    "GreenAlert",
    "Monitor",
    "MonitorItem",
    "NoAlert",
    "OrangeAlert",
    "RedAlert",
]
