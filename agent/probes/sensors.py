"""Sensors probe: temperatures and fan speeds, where the OS reports them.

Points (parent ``Sensors``), named after the chip and the sensor's label
(``coretemp`` / ``Package id 0`` gives ``coretemp_Package_id_0_temp_c``; an
unlabelled sensor gets its position on the chip):

==========================  =====  ==================================
name                        unit   meaning
==========================  =====  ==================================
<chip>_<label>_temp_c       °C     temperature
<chip>_<label>_fan_rpm      rpm    fan speed
==========================  =====  ==================================

Many hosts report neither (virtual machines, containers, macOS and Windows
for temperatures): then nothing is registered and a debug line says so.

Where a chip reports its own "high" and "critical" temperatures, they become
default thresholds (Orange at high, Red at critical, 2 °C hysteresis). They are
returned in :attr:`RegisteredProbes.default_thresholds` rather than applied
here, so an operator's ``[[thresholds]]`` for the same point takes precedence.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import psutil

from gsmon.agent.config import SensorsProbe
from gsmon.agent.probes.base import RegisteredProbes, log
from gsmon.agent.probes.labels import label, unique
from gsmon.agent.thresholds import Threshold
from gsmon.common import names as naming

__all__ = ["HYSTERESIS_C", "PARENT", "hardware_threshold", "register_sensors"]

PARENT: Final = "Sensors"
HYSTERESIS_C: Final = 2.0
# Limits outside this range are firmware junk (0, -273, 65535...), not limits.
_PLAUSIBLE_LIMIT_C: Final = (1.0, 200.0)

Readings = Mapping[str, Sequence[Any]]  # {chip: [named tuples with .label and .current]}


def _read(kind: str) -> Readings:
    """``psutil.sensors_<kind>()``, or ``{}`` where this OS has no such function or it fails."""
    reader = getattr(psutil, f"sensors_{kind}", None)
    if reader is None:
        return {}
    try:
        readings: Readings = reader() or {}
    except (OSError, RuntimeError, ValueError) as error:
        log.debug("sensors probe: psutil.sensors_%s() failed: %s", kind, error)
        return {}
    return readings


def _entries(readings: Readings, suffix: str) -> list[tuple[tuple[str, int], str]]:
    """``((chip, index), point name)`` for every sensor, names unique."""
    keys = [(chip, index) for chip, sensors in readings.items() for index in range(len(sensors))]
    labels = [label(f"{chip}_{readings[chip][index].label or index}") for chip, index in keys]
    return [(key, f"{name}_{suffix}") for key, name in zip(keys, unique(labels), strict=True)]


def _limit(value: object) -> float | None:
    if isinstance(value, int | float) and math.isfinite(value):
        low, high = _PLAUSIBLE_LIMIT_C
        if low <= value <= high:
            return float(value)
    return None


def hardware_threshold(path: str, high: object, critical: object) -> Threshold | None:
    """A threshold from a sensor's own limits (pure): Orange at ``high``, Red at
    ``critical``; ``None`` when neither limit is usable."""
    orange, red = _limit(high), _limit(critical)
    if orange is not None and red is not None and orange >= red:
        orange = None  # some chips report high == critical; keep the more serious one
    if orange is None and red is None:
        return None
    return Threshold(path, orange=orange, red=red, hysteresis=HYSTERESIS_C)


def _reader(kind: str, keys: list[tuple[str, int]], read: Callable[[str], Readings]) -> Callable[[], Any]:
    def sensors() -> Any:
        readings = read(kind)
        values: list[float | int | None] = []
        for chip, index in keys:
            sensors_of_chip = readings.get(chip, ())
            current = sensors_of_chip[index].current if index < len(sensors_of_chip) else None
            if current is None:
                values.append(None)
            elif kind == "fans":
                values.append(int(current))
            else:
                values.append(round(float(current), 1))
        return tuple(values) if len(values) > 1 else values[0]

    sensors.__name__ = f"sensors_{kind}"
    return sensors


def register_sensors(
    probes: RegisteredProbes, config: SensorsProbe, *, read: Callable[[str], Readings] | None = None
) -> None:
    """Declare temperature and fan points under ``Sensors`` where the OS reports any.

    ``read(kind)`` replaces ``psutil.sensors_<kind>()`` (``"temperatures"`` or
    ``"fans"``) for tests.
    """
    read_kind = read or _read
    for kind, enabled, suffix in (("temperatures", config.temperatures, "temp_c"), ("fans", config.fans, "fan_rpm")):
        if not enabled:
            continue
        readings = read_kind(kind)
        entries = _entries(readings, suffix)
        if not entries:
            log.debug("sensors probe: this host reports no %s; none registered", kind)
            continue
        keys = [key for key, _ in entries]
        names = tuple(name for _, name in entries)
        probes.add(names, _reader(kind, keys, read_kind), dt_s=config.dt_s, parent=PARENT)
        if kind == "temperatures":
            for (chip, index), name in entries:
                sensor = readings[chip][index]
                # Escaped: a label like "Core [0]" must match itself, not a glob character class.
                path = glob.escape(naming.join(PARENT, name))
                threshold = hardware_threshold(path, getattr(sensor, "high", None), getattr(sensor, "critical", None))
                if threshold is not None:
                    probes.default_thresholds.append(threshold)
