"""Example gsmon monitor module: an antenna controller (SIMULATED -- adapt before use).

THERE IS NO HARDWARE BEHIND THIS FILE. :class:`SimulatedController` stands in
for the link to a real antenna controller and replays a fixed, repeatable
sequence (a pass across the sky, a warming motor, a controller that misses a
reply now and then), so the example runs anywhere and its tests are
deterministic. To use it for real, write a class with the same four methods
that talks to your controller (serial port, TCP, the vendor's library) and
hand it to :func:`setup`; the monitor functions do not change.

Load it from the agent's configuration::

    modules = ["/etc/gsmon/antenna_controller.py"]

    [agent]
    mount = "GS1/Antenna2"        # its points appear under GS1/Antenna2/Antenna/...

Points (parent ``Antenna``):

====================  =====  ==============================================================
name                  unit   alert
====================  =====  ==============================================================
azimuth_deg           deg    Green inside the soft limits, Orange within 5° of one, Red past
elevation_deg         deg    the same, with a 2° margin
motor_temp_c          °C     Orange from 60, Red from 75, Critical from 85 (2 °C hysteresis)
tracking              --     the controller's mode: Green when normal, Red on FAULT
controller_link_ms    ms     round-trip time; Red (an error value) when the controller
                             does not answer -- the function raises and ``alert_exc``
                             turns the exception into a Red point
====================  =====  ==============================================================

Names are unique across the whole agent (built-in probes and every module);
rename the points and the parent if one host watches two antennas.
"""

from __future__ import annotations

import itertools
import math
from typing import Final, Protocol

from gsmon.agent import Alert, GreenAlert, Monitor, OrangeAlert, RedAlert
from gsmon.agent.thresholds import Threshold, ThresholdRule

PARENT: Final = "Antenna"

# Soft limits: where the controller itself stops the drive. Values from the
# pedestal's manual go here; these are typical for a cable-wrapped az/el mount.
AZIMUTH_LIMITS_DEG: Final = (-270.0, 270.0)
AZIMUTH_MARGIN_DEG: Final = 5.0
ELEVATION_LIMITS_DEG: Final = (0.0, 90.0)
ELEVATION_MARGIN_DEG: Final = 2.0

NORMAL_MODES: Final = frozenset({"STOWED", "IDLE", "SLEWING", "TRACKING"})


class Controller(Protocol):
    """What the monitor functions need from an antenna controller link."""

    def position(self) -> tuple[float, float]:
        """Current (azimuth, elevation) in degrees."""
        ...

    def motor_temperature_c(self) -> float:
        """Hottest drive motor, °C."""
        ...

    def mode(self) -> str:
        """Operating mode: STOWED, IDLE, SLEWING, TRACKING or FAULT."""
        ...

    def ping_ms(self) -> float:
        """Round-trip time of a status request; raises ConnectionError when there is no answer."""
        ...


class SimulatedController:
    """A deterministic stand-in for a real controller (SIMULATION: no hardware is read).

    Each method replays its own fixed sequence, one step per call, so every
    run and every test sees the same values. The sequences cover the
    interesting cases: a pass that runs close to the azimuth soft limit, a
    motor that warms past its thresholds and cools down, a FAULT, and a
    controller that misses two replies in every ten.
    """

    PASS_STEPS: Final = 120
    MODES: Final = ("STOWED", "SLEWING", *("TRACKING",) * 8, "IDLE", "FAULT")

    def __init__(self) -> None:
        # One counter per method: each monitor function calls only its own
        # method and is never run twice at once, so no lock is needed.
        self._position = itertools.count()
        self._temperature = itertools.count()
        self._mode = itertools.count()
        self._ping = itertools.count()

    def position(self) -> tuple[float, float]:
        phase = (next(self._position) % self.PASS_STEPS) / self.PASS_STEPS
        azimuth = 100.0 + 168.0 * phase  # 100° .. 268°: ends inside the 5° margin of +270°
        elevation = 3.0 + 77.0 * math.sin(math.pi * phase)  # rises to 80° and sets
        return round(azimuth, 2), round(elevation, 2)

    def motor_temperature_c(self) -> float:
        step = next(self._temperature) % 60
        # A triangle wave 40 °C -> 80 °C -> 40 °C over 60 polls.
        rise = step if step < 30 else 60 - step
        return round(40.0 + 40.0 * rise / 30, 1)

    def mode(self) -> str:
        return self.MODES[next(self._mode) % len(self.MODES)]

    def ping_ms(self) -> float:
        step = next(self._ping) % 10
        if step in (7, 8):
            raise ConnectionError("no reply from the controller at 192.0.2.10:4001 within 1.0 s (simulated)")
        return 2.0 + 0.1 * step


def limit_alert(value: float, limits: tuple[float, float], margin: float) -> Alert:
    """Green inside the soft limits, Orange within ``margin`` of one, Red outside."""
    low, high = limits
    if not low <= value <= high:
        return RedAlert(value)
    if value - low < margin or high - value < margin:
        return OrangeAlert(value)
    return GreenAlert(value)


class AntennaMonitors:
    """The monitor functions, bound to one controller (plain methods: call them to poll once)."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        # The module judges its motor itself, with hysteresis, so the levels
        # hold even where agent.toml has no [[thresholds]] for this point.
        self.motor_levels = ThresholdRule(
            [Threshold("motor_temp_c", orange=60.0, red=75.0, critical=85.0, hysteresis=2.0)]
        )

    def position(self) -> tuple[Alert, Alert]:
        azimuth, elevation = self.controller.position()
        return (
            limit_alert(azimuth, AZIMUTH_LIMITS_DEG, AZIMUTH_MARGIN_DEG),
            limit_alert(elevation, ELEVATION_LIMITS_DEG, ELEVATION_MARGIN_DEG),
        )

    def motor_temperature(self) -> Alert:
        return self.motor_levels.alert_for("motor_temp_c", self.controller.motor_temperature_c())

    def tracking(self) -> Alert:
        mode = self.controller.mode()
        return GreenAlert(mode) if mode in NORMAL_MODES else RedAlert(mode)

    def controller_link(self) -> Alert:
        # No try/except: the exception *is* the report. The Monitor records
        # "ERROR ConnectionError: ..." with alert_exc (Red) as the point's value.
        return GreenAlert(round(self.controller.ping_ms(), 1))


def setup(mon: Monitor, controller: Controller | None = None) -> AntennaMonitors:
    """Declare the antenna points on the agent's Monitor (called once by ``gsmon agent``).

    ``controller`` defaults to the simulation; pass a real one when adapting
    this file. Returns the bound functions (the agent ignores the result;
    tests use it).
    """
    monitors = AntennaMonitors(controller if controller is not None else SimulatedController())
    mon.register_parent(PARENT)
    mon.monitor(point=("azimuth_deg", "elevation_deg"), dt=1.0, parent=PARENT)(monitors.position)
    mon.monitor(point="motor_temp_c", dt=5.0, parent=PARENT)(monitors.motor_temperature)
    mon.monitor(point="tracking", dt=2.0, parent=PARENT)(monitors.tracking)
    # timeout: a controller that hangs instead of refusing is reported after 3 s.
    mon.monitor(point="controller_link_ms", dt=10.0, parent=PARENT, alert_exc=RedAlert, timeout=3.0)(
        monitors.controller_link
    )
    return monitors
