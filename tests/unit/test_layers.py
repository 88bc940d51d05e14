"""The layers point one way, the package docstrings list their modules, and light commands stay light.

The architecture (agent -> hub -> subscribers, ``common/`` shared below them)
holds only if nothing below imports what sits above it, so this test reads
every module's imports with :mod:`ast` -- as written, including the ones
inside functions, relative ones resolved -- and fails on:

* anything under ``common/`` importing ``gsmon.agent`` or ``gsmon.hub``;
* ``agent/`` importing ``gsmon.hub``, or ``hub/`` importing ``gsmon.agent``
  (the two processes meet only on the wire, :mod:`gsmon.common.protocol`).

Package docstrings are the map a newcomer reads first: each package's
``__init__`` names every module and subpackage in it, as ``:mod:`` with its
dotted name (``gsmon.hub.state``) or as a file (``state.py``, ``watch/``).

Two commands must not pay for ZeroMQ: ``gsmon --version`` (nor msgspec), and
the in-process decorator API (a ``Monitor`` without a hub). Each runs in a
fresh interpreter, whose ``sys.modules`` is then read.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCE_FOLDERS = ("agent", "hub", "common")

# Imports a layer may not make: (importing package, imported package) -> why not.
FORBIDDEN = {
    ("gsmon.common", "gsmon.agent"): "common/ is shared below the processes and never imports one",
    ("gsmon.common", "gsmon.hub"): "common/ is shared below the processes and never imports one",
    ("gsmon.agent", "gsmon.hub"): "the agent talks to the hub only over the wire (common/protocol.py)",
    ("gsmon.hub", "gsmon.agent"): "the hub talks to agents only over the wire (common/protocol.py)",
}
# Imports that break a rule above on purpose, with the reason: (module, imported) -> why.
# (None today: the hub needs nothing from the agent, nor the agent from the hub.)
ALLOWED_EXCEPTIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. gsmon.common.cli
    imported: str  # the imported module, resolved, e.g. gsmon.hub.auth
    where: str  # file:line


def _module_name(path: Path) -> tuple[str, bool]:
    """``gsmon.<dotted path>`` of a source file, and whether it is a package's ``__init__``."""
    parts = path.relative_to(REPO).with_suffix("").parts
    if parts[-1] == "__init__":
        return "gsmon." + ".".join(parts[:-1]), True
    return "gsmon." + ".".join(parts), False


def _source_files() -> list[Path]:
    return sorted(path for folder in SOURCE_FOLDERS for path in (REPO / folder).rglob("*.py"))


def _imports(path: Path) -> Iterator[Import]:
    """Every import statement of the source file ``path``, resolved."""
    module, is_package = _module_name(path)
    yield from _imports_in(path.read_text(encoding="utf-8"), module, is_package, str(path.relative_to(REPO)))


def _imports_in(source: str, module: str, is_package: bool, filename: str) -> Iterator[Import]:
    """Every import of ``source`` (at any depth: function-level ones too), relative ones resolved."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source, filename=filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, where)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield Import(module, target, where)
            # `from gsmon import hub` imports gsmon.hub: count each name as a module too.
            for alias in node.names:
                yield Import(module, f"{target}.{alias.name}", where)
        elif isinstance(node, ast.Call) and _is_import_call(node):
            argument = node.args[0]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                yield Import(module, argument.value, where)


def _is_import_call(node: ast.Call) -> bool:
    """``importlib.import_module("...")`` or ``__import__("...")`` with a literal name."""
    function = node.func
    named = (isinstance(function, ast.Attribute) and function.attr == "import_module") or (
        isinstance(function, ast.Name) and function.id in ("import_module", "__import__")
    )
    return named and bool(node.args)


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _violations(imports: Iterable[Import]) -> list[str]:
    """The imports that break a rule of :data:`FORBIDDEN` and are not an allowed exception."""
    found: list[str] = []
    for item in imports:
        for (importer, imported), why in FORBIDDEN.items():
            if (
                _within(item.module, importer)
                and _within(item.imported, imported)
                and (item.module, item.imported) not in ALLOWED_EXCEPTIONS
            ):
                found.append(f"{item.where}: {item.module} imports {item.imported}: {why}")
    return found


def _all_imports() -> list[Import]:
    return [item for path in _source_files() for item in _imports(path)]


def test_the_checker_sees_every_kind_of_import() -> None:
    """The checker itself: top-level, function-level, relative, `from gsmon import hub`, import_module."""
    source = (
        "import gsmon.hub.auth\n"
        "from gsmon import agent\n"
        "from ..hub import state\n"
        "from . import names\n"
        "def f():\n"
        "    from gsmon.agent.monitor import Monitor\n"
        "    importlib.import_module('gsmon.hub.main')\n"
    )
    imports = list(_imports_in(source, "gsmon.common.sample", False, "sample.py"))
    assert {"gsmon.common.names", "gsmon.hub.state", "gsmon.agent.monitor"} <= {item.imported for item in imports}
    lines = {int(text.split(":")[1]) for text in _violations(imports)}
    assert lines == {1, 2, 3, 6, 7}  # every line but the import of common's own names


def test_layers_point_one_way() -> None:
    """Nothing in common/ imports a process; the agent and the hub do not import each other."""
    imports = _all_imports()
    assert _violations(imports) == []
    # An exception names an import that still exists (a stale one would hide the next real one).
    existing = {(item.module, item.imported) for item in imports}
    assert [pair for pair in ALLOWED_EXCEPTIONS if pair not in existing] == []


# -- package docstrings ------------------------------------------------------------


def _packages() -> list[Path]:
    return sorted(path.parent for path in _source_files() if path.name == "__init__.py")


def _members(package: Path) -> list[str]:
    """The package's modules (``state``) and subpackages (``probes``), by name."""
    modules = [path.stem for path in package.glob("*.py") if path.name != "__init__.py"]
    subpackages = [path.name for path in package.iterdir() if (path / "__init__.py").is_file()]
    return sorted(modules + subpackages)


def _named_in(docstring: str, dotted: str, member: str, is_subpackage: bool) -> bool:
    """Whether the docstring names ``member`` of the package ``dotted``: ``gsmon.x.member`` or ``member.py``."""
    forms = [rf"\b{re.escape(dotted)}\.{member}\b", rf"(?<![\w./]){member}\.py\b"]
    if is_subpackage:
        forms.append(rf"(?<![\w./]){member}/")
    return any(re.search(form, docstring) for form in forms)


@pytest.mark.parametrize("package", _packages(), ids=lambda path: str(path.relative_to(REPO)))
def test_package_docstring_lists_every_module(package: Path) -> None:
    """Each package's docstring names all its modules and subpackages (the map a newcomer reads first)."""
    dotted, _ = _module_name(package / "__init__.py")
    docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8"))) or ""
    missing = [
        member
        for member in _members(package)
        if not _named_in(docstring, dotted, member, (package / member / "__init__.py").is_file())
    ]
    assert missing == [], f"{package.relative_to(REPO)}/__init__.py: its docstring does not name {missing}"


def test_common_names_the_subscriber_side() -> None:
    """common/'s docstring says where the subscriber side lives, under that name."""
    docstring = ast.get_docstring(ast.parse((REPO / "common" / "__init__.py").read_text(encoding="utf-8"))) or ""
    assert "subscriber side" in docstring.lower()
    for module in ("client", "views", "render", "watch", "web", "recorder", "notify"):
        assert f"gsmon.common.{module}" in docstring


# -- what light commands import ----------------------------------------------------


def _modules_after(code: str) -> set[str]:
    """The names in ``sys.modules`` once ``code`` has run in a fresh interpreter, with their top-level packages."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    names = set(json.loads(result.stdout.splitlines()[-1]))
    return names | {name.split(".")[0] for name in names}


def test_gsmon_version_imports_neither_zmq_nor_msgspec() -> None:
    """`gsmon --version` is the CLI table alone: no ZeroMQ, no msgspec, no process module."""
    loaded = _modules_after(
        "import contextlib, io\n"
        "from gsmon.common.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        "    main(['--version'])\n"
        "assert out.getvalue().startswith('gsmon '), out.getvalue()\n"
    )
    assert "gsmon.common.cli" in loaded  # the code did run
    assert loaded.isdisjoint({"zmq", "msgspec", "msgpack", "psutil", "textual", "sqlalchemy", "aiohttp"})
    assert loaded.isdisjoint({"gsmon.agent", "gsmon.hub", "gsmon.common.protocol"})


def test_the_decorator_api_without_a_hub_imports_no_zmq() -> None:
    """A Monitor used in-process (declare, start, poll, read, stop) never loads ZeroMQ."""
    loaded = _modules_after(
        "import time\n"
        "from gsmon.agent import GreenAlert, Monitor\n"
        "mon = Monitor()\n"
        "@mon.monitor(dt=0.01, parent='Antenna')\n"
        "def azimuth():\n"
        "    return GreenAlert(42)\n"
        "mon.start()\n"
        "deadline = time.monotonic() + 10\n"
        "while mon['azimuth'].value != 42 and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
        "table = str(mon)\n"
        "mon.stop()\n"
        "assert mon['azimuth'].value == 42 and 'azimuth' in table, table\n"
    )
    assert "gsmon.agent.monitor" in loaded
    assert "zmq" not in loaded
    assert "gsmon.agent.publisher" not in loaded


def test_reading_a_hub_configuration_imports_no_zmq() -> None:
    """`gsmon hub --check-config` and tools reading hub.toml need no sockets: hub/config.py loads no ZeroMQ."""
    loaded = _modules_after(
        "from gsmon.hub.config import read_hub_config\nconfig = read_hub_config(None, {})\nassert config.endpoints\n"
    )
    assert "gsmon.hub.config" in loaded
    assert "zmq" not in loaded
    assert "gsmon.hub.server" not in loaded


def test_gsmon_hub_check_config_loads_neither_the_server_nor_zmq(tmp_path: Path) -> None:
    """`gsmon hub --check-config` (without keys) stops before the server is imported: no ZeroMQ."""
    config = tmp_path / "hub.toml"
    config.write_text('[hub]\nstate_dir = ""\n')
    loaded = _modules_after(
        "import contextlib, io\n"
        "from gsmon.common.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        f"    main(['hub', '--config', {str(config)!r}, '--check-config'])\n"
        "assert out.getvalue().startswith('config OK'), out.getvalue()\n"
    )
    assert "gsmon.hub.config" in loaded
    assert "zmq" not in loaded
    assert "gsmon.hub.server" not in loaded
