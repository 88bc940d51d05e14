"""System probe: time since boot.

Points (parent ``System``):

=========  =======  =================================================
name       unit     meaning
=========  =======  =================================================
uptime_s   seconds  time since the host booted (drops after a reboot)
=========  =======  =================================================
"""

from __future__ import annotations

import time
from typing import Final

import psutil

from gsmon.agent.config import UptimeProbe
from gsmon.agent.probes.base import RegisteredProbes

__all__ = ["PARENT", "register_uptime"]

PARENT: Final = "System"


def register_uptime(probes: RegisteredProbes, config: UptimeProbe) -> None:
    """Declare ``uptime_s`` under ``System``."""

    def uptime_s() -> float:
        # boot_time() is wall-clock, so the difference is too.
        return round(max(0.0, time.time() - psutil.boot_time()), 1)

    probes.add(("uptime_s",), uptime_s, dt_s=config.dt_s, parent=PARENT)
