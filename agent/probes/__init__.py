"""Built-in psutil probes: the host's own health, declared on a Monitor in one call.

::

    from gsmon.agent.probes import register_probes

    probes = register_probes(mon, config.probes)          # config: an AgentConfig
    mon.set_alert_rule(ThresholdRule([*config.thresholds, *probes.default_thresholds]))

One module per family (as glances has one plugin per family), each declaring
its points with the Monitor's usual decorator, under one parent per area, with
the unit in every point name:

============  ================  =================================================================
parent        family (config)   points
============  ================  =================================================================
CPU           cpu               cpu_total_percent, cpu<N>_percent
CPU           load              load_1min, load_5min, load_15min
Memory        memory            memory_used_percent, memory_available_bytes, memory_total_bytes
Memory        swap              swap_used_percent, swap_used_bytes, swap_total_bytes
Disk          disk              <mount>_used_percent, <mount>_free_bytes, <mount>_total_bytes
Disk          disk_io           <disk>_read_bytes_per_s, _write_bytes_per_s, _read_ops_per_s, ...
Network       network           <if>_rx_bytes_per_s, _tx_bytes_per_s, _rx_errors_per_s, ...
Sensors       sensors           <chip>_<label>_temp_c, <chip>_<label>_fan_rpm (where reported)
System        uptime            uptime_s
Processes     process           <name>, <name>_cpu_percent, <name>_rss_bytes
============  ================  =================================================================

Modules: :mod:`~gsmon.agent.probes.base` (what every family uses to declare
its points), one per family -- :mod:`~gsmon.agent.probes.cpu` (cpu, load),
:mod:`~gsmon.agent.probes.memory` (memory, swap),
:mod:`~gsmon.agent.probes.disk`, :mod:`~gsmon.agent.probes.diskio`,
:mod:`~gsmon.agent.probes.network`, :mod:`~gsmon.agent.probes.sensors`,
:mod:`~gsmon.agent.probes.system` (uptime),
:mod:`~gsmon.agent.probes.processes` -- and two helpers they share:
:mod:`~gsmon.agent.probes.rates` (counters to per-second rates) and
:mod:`~gsmon.agent.probes.labels` (point names made from what the OS calls
things).

Each family can be switched off and has its own poll interval (``enabled``,
``dt_s`` in ``[probes.<family>]``). Probe functions never block: rates come from
counter differences between polls (:mod:`~gsmon.agent.probes.rates`), primed
at registration, never from psutil's ``interval=`` calls.

Alert levels: probes return plain values (NoAlert), so thresholds decide what is
Orange or Red. ``[[thresholds]]`` in the configuration come first; after them,
the probes offer sensible defaults (:attr:`RegisteredProbes.default_thresholds`),
so that a fresh agent (``gsmon demo``) already tells healthy from not:

==============================  =======  =======  =========================
point                           orange   red      hysteresis
==============================  =======  =======  =========================
CPU/cpu_total_percent           85       95       5
CPU/load_5min                   2/core   4/core   0.25/core
Memory/memory_used_percent      85       95       2
Memory/swap_used_percent        60       85       5
Disk/*_used_percent             85       95       1
Sensors/<chip>_<label>_temp_c   the chip's own high and critical limits
==============================  =======  =======  =========================

A process check with no matching process is Red (Green while one runs).
Rates are primed at registration; ``gsmon agent`` waits for
:meth:`RegisteredProbes.wait_for_first_rates` (a fraction of a second) before
its first poll, so that rates have values from the first frame on.
"""

from __future__ import annotations

from gsmon.agent.config import ConfigError, ProbesConfig
from gsmon.agent.monitor import Monitor
from gsmon.agent.probes.base import RegisteredProbes
from gsmon.agent.probes.cpu import register_cpu, register_load
from gsmon.agent.probes.disk import register_disk
from gsmon.agent.probes.diskio import register_disk_io
from gsmon.agent.probes.memory import register_memory, register_swap
from gsmon.agent.probes.network import register_network
from gsmon.agent.probes.processes import register_process_checks
from gsmon.agent.probes.rates import CounterRates, RateTracker
from gsmon.agent.probes.sensors import register_sensors
from gsmon.agent.probes.system import register_uptime

__all__ = ["CounterRates", "RateTracker", "RegisteredProbes", "register_probes"]


def register_probes(mon: Monitor, config: ProbesConfig, *, source: str | None = None) -> RegisteredProbes:
    """Declare every enabled probe family, and every process check, on ``mon``.

    Args:
        mon: The agent's Monitor (not started yet, or running: both work).
        config: ``AgentConfig.probes``.
        source: The configuration file, named in errors.

    Returns:
        What was registered: the functions (still plain callables), the
        points' parents, and the default thresholds the hardware suggests.

    Raises:
        ConfigError: a process check's point name is already taken by
            another point or parent of ``mon``.
    """
    probes = RegisteredProbes(mon)
    if config.cpu.enabled:
        register_cpu(probes, config.cpu)
    if config.load.enabled:
        register_load(probes, config.load)
    if config.memory.enabled:
        register_memory(probes, config.memory)
    if config.swap.enabled:
        register_swap(probes, config.swap)
    if config.disk.enabled:
        register_disk(probes, config.disk)
    if config.disk_io.enabled:
        register_disk_io(probes, config.disk_io)
    if config.network.enabled:
        register_network(probes, config.network)
    if config.sensors.enabled:
        register_sensors(probes, config.sensors)
    if config.uptime.enabled:
        register_uptime(probes, config.uptime)
    for index, check in enumerate(config.processes):
        try:
            register_process_checks(probes, (check,))
        except ValueError as error:
            # The operator chose this name, so it is a configuration mistake.
            raise ConfigError(
                f"expected a point name not used elsewhere in this agent, got {check.name!r}: {error}",
                file=source,
                key=f"probes.process[{index}].name",
            ) from error
    return probes
