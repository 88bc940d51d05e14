"""User monitor modules: your own monitor points, loaded by ``gsmon agent`` from its configuration.

The configuration lists modules at the top level::

    modules = ["/etc/gsmon/antenna.py", "mypackage.monitors"]

An entry ending in ``.py`` (or holding a ``/``) is a Python file, loaded from
that path (relative paths start at the configuration file's folder); anything
else is a module name imported from the agent's Python path, like ``import``
would. Each module is loaded once, in the order listed.

The contract: a module defines ``setup(mon)``. The agent calls it once, at
start-up, with its :class:`~gsmon.agent.Monitor`, before polling starts; it
declares points with the usual decorator and returns nothing. Everything the
seed API offers works: ``dt=`` (seconds), ``parent=``, several points from
one function (``point=(...)``), explicit alert levels, ``alert_exc=`` for the
level an exception gets, ``timeout=``. Point and parent names are unique
across the whole agent (built-in probes and every module), so choose
specific ones. A point's plain numeric value is also judged by the agent's
``[[thresholds]]``; an alert the function returns itself always wins.

A complete module (the full version, with a simulated controller, is
``deploy/examples/antenna_controller.py``)::

    \"\"\"Monitor points for the dish controller on this host.\"\"\"

    from gsmon.agent import GreenAlert, Monitor, OrangeAlert, RedAlert
    from gsmon.agent.thresholds import Threshold, ThresholdRule

    AZ_LIMITS_DEG = (-270.0, 270.0)  # the cable wrap
    MOTOR = ThresholdRule([Threshold("motor_temp_c", orange=60.0, red=75.0, hysteresis=2.0)])


    def read_controller() -> dict[str, float]:
        # Replace with the real query (serial port, TCP, vendor library...).
        return {"az": 181.5, "el": 42.0, "motor_c": 48.5}


    def setup(mon: Monitor) -> None:
        mon.register_parent("Dish")

        @mon.monitor(point=("dish_az_deg", "dish_el_deg"), dt=1.0, parent="Dish")
        def position():
            status = read_controller()
            low, high = AZ_LIMITS_DEG
            az = status["az"]
            az_alert = RedAlert(az) if not low <= az <= high else (
                OrangeAlert(az) if min(az - low, high - az) < 5.0 else GreenAlert(az))
            return az_alert, status["el"]

        @mon.monitor(point="dish_motor_temp_c", dt=5.0, parent="Dish")
        def motor_temperature():
            return MOTOR.alert_for("motor_temp_c", read_controller()["motor_c"])

        @mon.monitor(point="dish_link", dt=10.0, parent="Dish", alert_exc=RedAlert, timeout=3.0)
        def link():
            read_controller()  # raises when the controller does not answer: the point turns Red
            return GreenAlert("up")

When a module cannot be loaded, :func:`load_modules` raises
:class:`~gsmon.common.config.ConfigError` naming the configuration file, the
entry (``modules[0]``), the module and the reason: no such file or module,
unreadable file, syntax error (with the line), an exception while importing,
no ``setup``, or ``setup`` raising (a name already in use, a bad ``dt``...).
The message is meant for the operator as it is; the original exception is
chained as ``__cause__``. A ``setup`` that fails half-way leaves the points
it had declared in the Monitor; the agent is expected to stop on the error.

A file module is loaded under a private module name, so two files both called
``monitors.py`` do not collide; it can import installed packages, but not
files next to it: to share code between modules, make it a package and list
the package's modules by name.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from gsmon.agent.config import is_module_file
from gsmon.agent.monitor import Monitor
from gsmon.common.config import ConfigError

__all__ = ["load_module", "load_modules"]

log = logging.getLogger(__name__)

_UNSAFE_IN_MODULE_NAME = re.compile(r"\W")


class _LoadError(Exception):
    """Why one module could not be loaded (turned into a ConfigError by the caller)."""


def load_modules(mon: Monitor, modules: Sequence[str], *, source: str | None = None) -> list[ModuleType]:
    """Load every module in ``modules`` and call its ``setup(mon)``, in order.

    Args:
        mon: The agent's Monitor.
        modules: Entries of the configuration's ``modules`` list: file paths
            (``.py``) or importable module names (``AgentConfig.modules``).
        source: The configuration file, named in errors.

    Returns:
        The loaded modules.

    Raises:
        ConfigError: a module could not be loaded or its ``setup`` failed;
            the message names the entry, the module and the reason.
    """
    return [load_module(mon, entry, source=source, key=f"modules[{index}]") for index, entry in enumerate(modules)]


def load_module(mon: Monitor, entry: str, *, source: str | None = None, key: str | None = None) -> ModuleType:
    """Load one module (a ``.py`` path or a module name) and call its ``setup(mon)``.

    ``source`` and ``key`` (the configuration file and the entry's key) only
    serve the :class:`ConfigError` message.
    """
    try:
        module = _import_file(Path(entry)) if is_module_file(entry) else _import_name(entry)
        _run_setup(module, mon)
    except _LoadError as error:
        raise ConfigError(f"module {entry!r}: {error}", file=source, key=key) from error.__cause__
    log.info("loaded monitor module %s", entry)
    return module


def _import_file(path: Path) -> ModuleType:
    if not path.exists():
        raise _LoadError("no such file")
    if path.is_dir():
        raise _LoadError("it is a directory, not a Python file")
    resolved = path.resolve()
    # A private, unique name: user files may share a name with each other or
    # with installed modules ("monitors", "test"), and must not shadow them.
    digest = hashlib.sha256(str(resolved).encode("utf-8", "surrogatepass")).hexdigest()[:12]
    name = f"gsmon_user_module_{_UNSAFE_IN_MODULE_NAME.sub('_', resolved.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise _LoadError("Python cannot load this kind of file")
    module = importlib.util.module_from_spec(spec)
    # Registered before running, as `import` does (dataclasses and pickling look it up).
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (KeyboardInterrupt, GeneratorExit):
        sys.modules.pop(name, None)
        raise
    except BaseException as error:  # SystemExit too: a module's sys.exit() must not end the agent silently
        sys.modules.pop(name, None)
        raise _LoadError(_describe_import_error(error, resolved)) from error
    return module


def _import_name(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            raise _LoadError("no such module on the Python path") from error
        raise _LoadError(_describe_import_error(error, None)) from error
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as error:
        raise _LoadError(_describe_import_error(error, None)) from error


def _describe_import_error(error: BaseException, path: Path | None) -> str:
    """Why importing a module failed, in one line."""
    if isinstance(error, SyntaxError):
        where = f"line {error.lineno}" if error.lineno else "an unknown line"
        if error.filename and not error.filename.startswith("<") and Path(error.filename) != path:
            where = f"{error.filename}, {where}"  # the error is in a module it imports
        return f"syntax error ({where}): {error.msg}"
    if isinstance(error, OSError) and path is not None and error.filename is not None and Path(error.filename) == path:
        # Reading the module file itself failed (not an OSError raised by its code).
        return f"cannot read it: {error.strerror or error}"
    return f"importing it raised {type(error).__name__}: {error}"


def _run_setup(module: ModuleType, mon: Monitor) -> None:
    setup = getattr(module, "setup", None)
    if setup is None:
        raise _LoadError("it defines no setup(mon) function")
    if not callable(setup):
        raise _LoadError(f"its setup is not a function: {setup!r}")
    before = len(mon)
    try:
        setup(mon)
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as error:  # SystemExit too: a module's sys.exit() must not end the agent silently
        raise _LoadError(f"setup(mon) raised {type(error).__name__}: {error}") from error
    log.debug("module %s declared %d points", module.__name__, len(mon) - before)
