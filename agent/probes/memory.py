"""Memory probe: RAM and swap use.

Points (parent ``Memory``):

=======================  =======  ==========================================
name                     unit     meaning
=======================  =======  ==========================================
memory_used_percent      percent  share of RAM not available to new programs
memory_available_bytes   bytes    RAM available without swapping
memory_total_bytes       bytes    installed RAM
swap_used_percent        percent  share of swap in use (0 when there is none)
swap_used_bytes          bytes    swap in use
swap_total_bytes         bytes    swap configured
=======================  =======  ==========================================
"""

from __future__ import annotations

from typing import Final

import psutil

from gsmon.agent.config import MemoryProbe, SwapProbe
from gsmon.agent.probes.base import RegisteredProbes
from gsmon.agent.thresholds import Threshold

__all__ = ["MEMORY_THRESHOLD", "PARENT", "SWAP_THRESHOLD", "register_memory", "register_swap"]

PARENT: Final = "Memory"
#: Offered as default thresholds (an operator's own [[thresholds]] for the point win).
MEMORY_THRESHOLD: Final = Threshold(f"{PARENT}/memory_used_percent", orange=85.0, red=95.0, hysteresis=2.0)
SWAP_THRESHOLD: Final = Threshold(f"{PARENT}/swap_used_percent", orange=60.0, red=85.0, hysteresis=5.0)


def register_memory(probes: RegisteredProbes, config: MemoryProbe) -> None:
    """Declare the ``memory_*`` points under ``Memory``."""
    probes.default_thresholds.append(MEMORY_THRESHOLD)

    def memory() -> tuple[float, int, int]:
        vm = psutil.virtual_memory()
        return float(vm.percent), int(vm.available), int(vm.total)

    probes.add(
        ("memory_used_percent", "memory_available_bytes", "memory_total_bytes"),
        memory,
        dt_s=config.dt_s,
        parent=PARENT,
    )


def register_swap(probes: RegisteredProbes, config: SwapProbe) -> None:
    """Declare the ``swap_*`` points under ``Memory``."""
    probes.default_thresholds.append(SWAP_THRESHOLD)

    def swap() -> tuple[float, int, int]:
        sm = psutil.swap_memory()
        return float(sm.percent), int(sm.used), int(sm.total)

    probes.add(("swap_used_percent", "swap_used_bytes", "swap_total_bytes"), swap, dt_s=config.dt_s, parent=PARENT)
