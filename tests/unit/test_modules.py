"""User monitor modules: loading files and module names, every failure, and the shipped antenna example."""

from __future__ import annotations

import importlib.machinery
import inspect
import re
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from gsmon.agent import Monitor, modules
from gsmon.agent.config import ConfigError, parse_agent_config
from gsmon.agent.modules import load_module, load_modules
from gsmon.common.alerts import Alert, CriticalAlert, GreenAlert, OrangeAlert, RedAlert

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "examples" / "antenna_controller.py"
CONFIG = "/etc/gsmon/agent.toml"


def poll_once(mon: Monitor) -> dict[str, Alert]:
    """Run the monitor until every point was polled once (with a deadline), then stop it."""
    seen: dict[str, Alert] = {}
    done = threading.Event()

    def record(name: str, tstamp: float, exc: BaseException | None, alert: Alert) -> None:
        seen.setdefault(name, alert)
        if len(seen) == len(mon):
            done.set()

    mon.add_callback(record)
    with mon:
        assert done.wait(10), f"only {sorted(seen)} were polled"
    return seen


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def load_error(mon: Monitor, entry: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_modules(mon, [entry], source=CONFIG)
    return caught.value


GOOD = """
    from gsmon.agent import GreenAlert

    def setup(mon):
        @mon.monitor(point="answer", dt=1.0, parent="Mine")
        def answer():
            return GreenAlert(42)
"""


class TestLoading:
    def test_file_module(self, tmp_path: Path) -> None:
        """A .py file is loaded and its setup declares points on the Monitor."""
        mon = Monitor()
        loaded = load_modules(mon, [str(write(tmp_path, "mine.py", GOOD))], source=CONFIG)
        assert len(loaded) == 1
        assert callable(loaded[0].setup)
        assert mon["answer"].parent == "Mine"
        assert poll_once(mon)["answer"] == GreenAlert(42)

    def test_module_by_name(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A dotted name is imported from the Python path."""
        package = tmp_path / "sitepkg_zz9"
        package.mkdir()
        (package / "__init__.py").write_text("", encoding="utf-8")
        write(package, "monitors.py", GOOD)
        monkeypatch.syspath_prepend(str(tmp_path))
        mon = Monitor()
        (module,) = load_modules(mon, ["sitepkg_zz9.monitors"])
        assert module.__name__ == "sitepkg_zz9.monitors"
        assert "answer" in mon
        for name in ("sitepkg_zz9.monitors", "sitepkg_zz9"):
            sys.modules.pop(name, None)  # the next test run imports it afresh

    def test_same_file_name_in_two_folders(self, tmp_path: Path) -> None:
        """Two files called monitors.py are two separate modules."""
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        first = write(tmp_path / "a", "monitors.py", "def setup(mon):\n    mon.register_parent('A')\n")
        second = write(tmp_path / "b", "monitors.py", "def setup(mon):\n    mon.register_parent('B')\n")
        mon = Monitor()
        one, two = load_modules(mon, [str(first), str(second)])
        assert one is not two
        assert one.__name__ != two.__name__
        assert "A" in mon
        assert "B" in mon

    def test_relative_path_from_the_config(self, tmp_path: Path) -> None:
        """modules entries in a config file are found next to it."""
        write(tmp_path, "mine.py", GOOD)
        config = parse_agent_config('modules = ["mine.py"]', str(tmp_path / "agent.toml"), tmp_path)
        mon = Monitor()
        load_modules(mon, config.modules, source=config.source)
        assert "answer" in mon

    def test_setup_may_return_anything(self, tmp_path: Path) -> None:
        """What setup returns is ignored."""
        path = write(tmp_path, "r.py", "def setup(mon):\n    return 'ignored'\n")
        assert load_module(Monitor(), str(path)).__name__.startswith("gsmon_user_module_r_")


class TestErrors:
    """Every failure is a ConfigError: config file, entry, module, reason; the cause chained."""

    def prefix(self, entry: str | Path) -> str:
        return f"{CONFIG}: modules[0]: module {str(entry)!r}: "

    def test_missing_file(self, tmp_path: Path) -> None:
        entry = tmp_path / "missing.py"
        assert str(load_error(Monitor(), str(entry))) == self.prefix(entry) + "no such file"

    def test_directory(self, tmp_path: Path) -> None:
        entry = tmp_path / "dir.py"
        entry.mkdir()
        assert str(load_error(Monitor(), str(entry))) == self.prefix(entry) + "it is a directory, not a Python file"

    def test_unreadable_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Simulated: the tests may run as root, who can read any file."""
        entry = write(tmp_path, "secret.py", GOOD)

        def denied(self: Any, path: str) -> bytes:
            raise PermissionError(13, "Permission denied", path)

        monkeypatch.setattr(importlib.machinery.SourceFileLoader, "get_data", denied)
        error = load_error(Monitor(), str(entry))
        assert str(error) == self.prefix(entry) + "cannot read it: Permission denied"
        assert isinstance(error.__cause__, PermissionError)

    def test_not_a_python_file(self, tmp_path: Path) -> None:
        (tmp_path / "notes").mkdir()
        entry = write(tmp_path, "notes/monitors.txt", "x")  # a "/" makes it a path; it is no Python file
        assert str(load_error(Monitor(), str(entry))) == self.prefix(entry) + "Python cannot load this kind of file"

    def test_syntax_error_with_line(self, tmp_path: Path) -> None:
        entry = write(tmp_path, "broken.py", "def setup(mon):\n    return (\n")
        error = load_error(Monitor(), str(entry))
        assert str(error) == self.prefix(entry) + "syntax error (line 2): '(' was never closed"
        assert isinstance(error.__cause__, SyntaxError)

    def test_missing_dependency(self, tmp_path: Path) -> None:
        entry = write(tmp_path, "needs.py", "import no_such_package_zz9\n")
        assert str(load_error(Monitor(), str(entry))) == self.prefix(entry) + (
            "importing it raised ModuleNotFoundError: No module named 'no_such_package_zz9'"
        )

    def test_exception_at_import(self, tmp_path: Path) -> None:
        entry = write(tmp_path, "boom.py", "raise RuntimeError('controller config missing')\n")
        error = load_error(Monitor(), str(entry))
        assert str(error) == self.prefix(entry) + "importing it raised RuntimeError: controller config missing"
        assert isinstance(error.__cause__, RuntimeError)

    def test_oserror_from_the_module_code_is_not_a_read_error(self, tmp_path: Path) -> None:
        """An OSError raised by the module's own code is reported as such, not as 'cannot read it'."""
        entry = write(tmp_path, "serial.py", "open('/nonexistent-zz9/ttyUSB0')\n")
        assert str(load_error(Monitor(), str(entry))) == self.prefix(entry) + (
            "importing it raised FileNotFoundError: [Errno 2] No such file or directory: '/nonexistent-zz9/ttyUSB0'"
        )

    def test_sys_exit_at_import(self, tmp_path: Path) -> None:
        entry = write(tmp_path, "quits.py", "import sys\nsys.exit(3)\n")
        assert str(load_error(Monitor(), str(entry))) == self.prefix(entry) + "importing it raised SystemExit: 3"

    def test_no_setup(self, tmp_path: Path) -> None:
        entry = write(tmp_path, "nosetup.py", "def start(mon):\n    pass\n")
        assert str(load_error(Monitor(), str(entry))) == self.prefix(entry) + "it defines no setup(mon) function"

    def test_setup_not_callable(self, tmp_path: Path) -> None:
        entry = write(tmp_path, "notfn.py", "setup = 3\n")
        assert str(load_error(Monitor(), str(entry))) == self.prefix(entry) + "its setup is not a function: 3"

    def test_setup_raising(self, tmp_path: Path) -> None:
        entry = write(tmp_path, "raises.py", "def setup(mon):\n    raise KeyError('antenna2')\n")
        error = load_error(Monitor(), str(entry))
        assert str(error) == self.prefix(entry) + "setup(mon) raised KeyError: 'antenna2'"
        assert isinstance(error.__cause__, KeyError)

    def test_setup_reusing_a_name(self, tmp_path: Path) -> None:
        """Names are unique across the agent: a module cannot reuse a probe's point name."""
        mon = Monitor()

        @mon.monitor(point="uptime_s", parent="System")
        def uptime() -> float:
            return 1.0

        entry = write(tmp_path, "dup.py", "def setup(mon):\n    mon.monitor(point='uptime_s')(lambda: 0)\n")
        assert str(load_error(mon, str(entry))) == self.prefix(entry) + (
            "setup(mon) raised ValueError: 'uptime_s' already exists; names must be unique"
        )

    def test_setup_with_wrong_signature(self, tmp_path: Path) -> None:
        entry = write(tmp_path, "sig.py", "def setup():\n    pass\n")
        message = str(load_error(Monitor(), str(entry)))
        assert message.startswith(self.prefix(entry) + "setup(mon) raised TypeError: ")

    def test_unknown_module_name(self) -> None:
        entry = "no_such_package_zz9.monitors"
        assert str(load_error(Monitor(), entry)) == self.prefix(entry) + "no such module on the Python path"

    def test_module_name_with_a_missing_dependency(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A module that exists but imports something missing says what is missing."""
        write(tmp_path, "dep_user_zz9.py", "import no_such_dep_zz9\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        assert str(load_error(Monitor(), "dep_user_zz9")) == self.prefix("dep_user_zz9") + (
            "importing it raised ModuleNotFoundError: No module named 'no_such_dep_zz9'"
        )

    def test_module_name_without_setup(self) -> None:
        assert str(load_error(Monitor(), "json")) == self.prefix("json") + "it defines no setup(mon) function"

    def test_without_a_config_file(self, tmp_path: Path) -> None:
        """Called directly, the message still names the module and the reason."""
        entry = tmp_path / "missing.py"
        with pytest.raises(ConfigError) as caught:
            load_module(Monitor(), str(entry))
        assert str(caught.value) == f"module {str(entry)!r}: no such file"

    def test_failed_file_is_not_left_in_sys_modules(self, tmp_path: Path) -> None:
        """A module that failed to import does not linger half-initialised."""
        before = set(sys.modules)
        load_error(Monitor(), str(write(tmp_path, "half.py", "x = 1\nraise ValueError('no')\n")))
        assert not [name for name in set(sys.modules) - before if name.startswith("gsmon_user_module_half")]

    def test_the_operator_sees_no_traceback(self, tmp_path: Path) -> None:
        """The message is one line, for the operator; the traceback stays in __cause__."""
        message = str(load_error(Monitor(), str(write(tmp_path, "boom.py", "1/0\n"))))
        assert "\n" not in message
        assert "Traceback" not in message
        assert message.endswith("importing it raised ZeroDivisionError: division by zero")

    def test_later_modules_are_not_loaded_after_a_failure(self, tmp_path: Path) -> None:
        """Loading stops at the first failing entry, which is named by its index."""
        good = write(tmp_path, "good.py", GOOD)
        mon = Monitor()
        with pytest.raises(ConfigError, match=re.escape(f"{CONFIG}: modules[0]: ")):
            load_modules(mon, [str(tmp_path / "missing.py"), str(good)], source=CONFIG)
        assert "answer" not in mon
        with pytest.raises(ConfigError, match=re.escape(f"{CONFIG}: modules[1]: ")):
            load_modules(Monitor(), [str(good), str(tmp_path / "missing.py")], source=CONFIG)


class TestDocstringExample:
    def test_the_documented_module_works(self, tmp_path: Path) -> None:
        """The complete example in gsmon.agent.modules' docstring loads and polls as described."""
        doc = inspect.getdoc(modules)
        assert doc is not None
        block = doc.split("A complete module", 1)[1].split("::\n", 1)[1].split("\nWhen a module", 1)[0]
        path = tmp_path / "dish.py"
        path.write_text(textwrap.dedent(block), encoding="utf-8")
        mon = Monitor()
        load_modules(mon, [str(path)])
        seen = poll_once(mon)
        assert seen["dish_az_deg"] == GreenAlert(181.5)
        assert seen["dish_el_deg"].val == 42.0
        assert seen["dish_motor_temp_c"] == GreenAlert(48.5)
        assert seen["dish_link"] == GreenAlert("up")


# ----------------------------------------------------------------------
# The shipped example: deploy/examples/antenna_controller.py
# ----------------------------------------------------------------------


@pytest.fixture
def antenna() -> ModuleType:
    """The example module, loaded the way the agent loads it."""
    (module,) = load_modules(Monitor(), [str(EXAMPLE)])
    return module


class TestAntennaExample:
    def test_loads_into_a_monitor_and_polls(self) -> None:
        """All documented points appear under Antenna and are polled with their alert levels."""
        mon = Monitor()
        load_modules(mon, [str(EXAMPLE)], source=CONFIG)
        points = {"azimuth_deg", "elevation_deg", "motor_temp_c", "tracking", "controller_link_ms"}
        assert set(mon.keys()) == points
        assert {mon[p].parent for p in points} == {"Antenna"}
        seen = poll_once(mon)
        assert seen["azimuth_deg"] == GreenAlert(100.0)  # the first step of the simulated pass
        assert seen["elevation_deg"] == GreenAlert(3.0)
        assert seen["motor_temp_c"] == GreenAlert(40.0)
        assert seen["tracking"] == GreenAlert("STOWED")
        assert seen["controller_link_ms"] == GreenAlert(2.0)

    def test_unreachable_controller_turns_the_link_red(self, antenna: ModuleType) -> None:
        """The link check raises; the Monitor records the error as a Red value."""

        class Down(antenna.SimulatedController):  # type: ignore[name-defined,misc]
            def ping_ms(self) -> float:
                raise ConnectionError("no route to controller")

        mon = Monitor()
        antenna.setup(mon, controller=Down())
        seen = poll_once(mon)
        assert isinstance(seen["controller_link_ms"], RedAlert)
        assert mon["controller_link_ms"].alert == RedAlert.alertcode
        assert mon["controller_link_ms"].value == "ERROR ConnectionError: no route to controller"
        assert mon["Antenna"].alert == RedAlert.alertcode

    def test_simulation_is_deterministic(self, antenna: ModuleType) -> None:
        """Two simulated controllers replay the same values."""
        first, second = antenna.SimulatedController(), antenna.SimulatedController()
        assert [first.position() for _ in range(130)] == [second.position() for _ in range(130)]

    def test_position_soft_limits(self, antenna: ModuleType) -> None:
        """Green inside the limits, Orange in the margin, Red past a limit."""
        limit: Callable[..., Alert] = antenna.limit_alert
        assert limit(0.0, (-270.0, 270.0), 5.0) == GreenAlert(0.0)
        assert limit(266.0, (-270.0, 270.0), 5.0) == OrangeAlert(266.0)
        assert limit(-266.0, (-270.0, 270.0), 5.0) == OrangeAlert(-266.0)
        assert limit(271.0, (-270.0, 270.0), 5.0) == RedAlert(271.0)
        monitors = antenna.setup(Monitor())
        levels = {type(monitors.position()[0]) for _ in range(antenna.SimulatedController.PASS_STEPS)}
        assert levels == {GreenAlert, OrangeAlert}  # the pass ends inside the azimuth margin

    def test_motor_temperature_hysteresis(self, antenna: ModuleType) -> None:
        """Over one warm-up and cool-down the motor goes Green, Orange, Red and back, without flapping."""
        monitors = antenna.setup(Monitor())
        labels = [monitors.motor_temperature().alertstr for _ in range(60)]
        changes = [label for i, label in enumerate(labels) if i == 0 or label != labels[i - 1]]
        assert changes == ["GREEN", "ORANGE", "RED", "ORANGE", "GREEN"]
        assert CriticalAlert not in {type(monitors.motor_temperature()) for _ in range(60)}  # it peaks at 80 °C

    def test_tracking_fault_is_red(self, antenna: ModuleType) -> None:
        """The simulated mode cycle contains one FAULT, which is Red."""
        monitors = antenna.setup(Monitor())
        modes = [monitors.tracking() for _ in range(len(antenna.SimulatedController.MODES))]
        assert [alert for alert in modes if isinstance(alert, RedAlert)] == [RedAlert("FAULT")]

    def test_link_drops_two_replies_in_ten(self, antenna: ModuleType) -> None:
        """The simulated controller misses replies 7 and 8 of every ten."""
        monitors = antenna.setup(Monitor())
        outcomes = []
        for _ in range(10):
            try:
                outcomes.append(monitors.controller_link().alertstr)
            except ConnectionError:
                outcomes.append("DOWN")
        assert outcomes == ["GREEN"] * 7 + ["DOWN", "DOWN", "GREEN"]
