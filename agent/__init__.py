"""gsmon agent: runs monitor points and publishes them to the hub.

Pipeline of one agent process (or of a Monitor inside any application)::

    monitor functions --(worker threads)--> Monitor: points + rollup tree
        --(changed points, every flush)--> publisher --(XPUB, msgpack)--> hub(s)

The Monitor (in any application, no hub needed):

* :mod:`~gsmon.agent.monitor` -- the libgs-compatible ``Monitor`` and its decorator API
* :mod:`~gsmon.agent.points` -- the Monitor's point table: results, rollup, log/callback notes (pure, takes ``now``)
* :mod:`~gsmon.agent.scheduler` -- due times on a heap (pure, takes ``now``)
* :mod:`~gsmon.agent.debounce` -- per-point debounce and flap guard (pure, takes poll times; the point table applies it)
* :mod:`~gsmon.agent.thresholds` -- threshold rules: numeric values to alert levels, with hysteresis

The link to the hub(s), loaded only when a Monitor is given one (so the
decorator API alone never imports ZeroMQ):

* :mod:`~gsmon.agent.publisher` -- one thread, one XPUB socket per hub
  (what it sends to which hub and when is :mod:`~gsmon.common.send_policy`, shared with a site hub's upstream)
* :mod:`~gsmon.agent.outbox` -- every level transition in a small SQLite file, replayed to a hub that missed it

The standalone agent process (``gsmon agent``):

* :mod:`~gsmon.agent.main` -- the command: configuration, probes, modules, the ready line
* :mod:`~gsmon.agent.config` -- agent.toml: schema, defaults and loader
* :mod:`~gsmon.agent.modules` -- the user's own monitor modules, loaded from the configuration
* :mod:`~gsmon.agent.probes` -- the built-in psutil probes (CPU, memory, disks, network, sensors, processes)

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
