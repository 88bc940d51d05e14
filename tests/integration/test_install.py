"""Installed the way users install it: a built wheel in a fresh virtualenv, nothing from the checkout.

The module builds the wheel (``pip wheel --no-deps``, as deploy/README.md
does) and the sdist (``python -m build --sdist``) once, installs the wheel
non-editable into a new virtualenv outside the checkout (its dependencies from
the normal index), and runs everything from that virtualenv's own ``gsmon``
with the current folder outside the checkout and no ``PYTHONPATH``: the
import check, ``gsmon --version``, ``gsmon demo``, the example configurations
it prints, and a real hub with a standalone agent whose built-in probes'
points are read back with that install's ``gsmon get --json``; ``gsmon web``
serves its page and vendored files from the installed package, /metrics and a
login of a user made with the install's ``gsmon web passwd``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import Processes, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SOURCE_FOLDERS = ("agent", "hub", "common")
NEVER_SHIPPED = ("tests", "deploy", "bench")
INSTALL_TIMEOUT_S = 300.0


def _clean_env() -> dict[str, str]:
    """The environment of every command run from the install: no PYTHONPATH, no gsmon settings."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "PYTHONHOME") and not name.startswith("GSMON_")
    }
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(argv: list[str], cwd: Path, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _source_files() -> list[Path]:
    """Every file of the three source folders that belongs in a distribution (relative to the checkout)."""
    return sorted(
        path.relative_to(REPO)
        for folder in SOURCE_FOLDERS
        for path in (REPO / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".typed", ".toml")
    )


@dataclass(frozen=True)
class Install:
    wheel: Path
    sdist: Path
    venv: Path
    workdir: Path  # outside the checkout: the current folder of every command

    @property
    def gsmon(self) -> Path:
        return self.venv / "bin" / "gsmon"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        return _run([str(self.gsmon), *args], self.workdir, timeout_s)

    def argv(self, *args: str) -> list[str]:
        """A command line for a long-running process of the install (through env: clean environment, workdir)."""
        unset = [arg for name in sorted(set(os.environ) - set(_clean_env())) for arg in ("-u", name)]
        return ["env", "-C", str(self.workdir), *unset, "PYTHONNOUSERSITE=1", str(self.gsmon), *args]


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Install:
    """Wheel and sdist built from the checkout, the wheel installed into a fresh virtualenv (shared by the module)."""
    root = tmp_path_factory.mktemp("install")
    assert REPO not in root.parents, "the install must live outside the checkout"
    dist, workdir = root / "dist", root / "work"
    workdir.mkdir()
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(REPO)],
        workdir,
        INSTALL_TIMEOUT_S,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    sdist = _run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(dist), str(REPO)], workdir, INSTALL_TIMEOUT_S
    )
    assert sdist.returncode == 0, sdist.stdout + sdist.stderr
    (wheel,) = dist.glob("gsmon-*.whl")
    (archive,) = dist.glob("gsmon-*.tar.gz")
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], workdir, INSTALL_TIMEOUT_S)
    assert made.returncode == 0, made.stderr
    installed = _run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], workdir, INSTALL_TIMEOUT_S
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return Install(wheel, archive, venv, workdir)


# ----------------------------------------------------------------------
# What the distributions hold
# ----------------------------------------------------------------------


def test_every_source_folder_is_a_typed_package() -> None:
    """Every folder holding Python files below agent/, hub/, common/ has __init__.py and py.typed
    (a folder without __init__.py would be a namespace package that discovery could miss)."""
    for folder in SOURCE_FOLDERS:
        for directory in [REPO / folder, *(p for p in (REPO / folder).rglob("*") if p.is_dir())]:
            if directory.name == "__pycache__" or not any(directory.glob("*.py")):
                continue
            assert (directory / "__init__.py").is_file(), f"{directory} is not a package"
            assert (directory / "py.typed").is_file(), f"{directory} has no py.typed"


def test_wheel_holds_every_package_and_nothing_else(install: Install) -> None:
    """Every package of the source tree (by its __init__.py), every source file, py.typed, the examples;
    no tests/, deploy/ or bench/."""
    names = set(zipfile.ZipFile(install.wheel).namelist())
    packages = [path.parent for path in _source_files() if path.name == "__init__.py"]
    assert Path("agent/probes") in packages
    for package in packages:
        assert f"gsmon/{package.as_posix()}/__init__.py" in names, f"the wheel misses the package {package}"
        assert f"gsmon/{package.as_posix()}/py.typed" in names, f"the wheel misses {package}/py.typed"
    for path in _source_files():
        assert f"gsmon/{path.as_posix()}" in names, f"the wheel misses {path}"
    for name in names:
        top = name.split("/")[0]
        assert top == "gsmon" or top.endswith(".dist-info"), f"{name} does not belong in the wheel"
    assert not any(part in NEVER_SHIPPED for name in names for part in name.split("/")[:2])
    assert "gsmon/__init__.py" not in names, "gsmon is a namespace package"
    # gsmon web serves its page from the installed package: every static file, the vendored licence too.
    static = REPO / "common" / "web" / "static"
    for path in static.rglob("*"):
        if path.is_file():
            assert f"gsmon/{path.relative_to(REPO).as_posix()}" in names, f"the wheel misses {path.relative_to(REPO)}"


def test_sdist_holds_the_sources_and_the_build_files(install: Install) -> None:
    with tarfile.open(install.sdist) as archive:
        members = {member.name.split("/", 1)[1] for member in archive.getmembers() if "/" in member.name}
    for path in [*_source_files(), Path("pyproject.toml"), Path("setup.py"), Path("README.md")]:
        assert path.as_posix() in members, f"the sdist misses {path}"


# ----------------------------------------------------------------------
# Running the install
# ----------------------------------------------------------------------


def test_gsmon_imports_from_the_virtualenv_not_the_checkout(install: Install) -> None:
    """`import gsmon` (and every subpackage) resolves inside the new virtualenv; the checkout is not on sys.path."""
    probe = (
        "import json, sys, gsmon, gsmon.agent.probes, gsmon.hub.server, gsmon.common.cli;"
        "print(json.dumps({'gsmon': list(gsmon.__path__), 'probes': gsmon.agent.probes.__file__,"
        "'hub': gsmon.hub.server.__file__, 'cli': gsmon.common.cli.__file__, 'path': sys.path}))"
    )
    result = _run([str(install.python), "-c", probe], install.workdir)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    venv = str(install.venv.resolve())
    for what in ("probes", "hub", "cli"):
        assert str(Path(found[what]).resolve()).startswith(venv), (what, found[what])
    assert all(str(Path(path).resolve()).startswith(venv) for path in found["gsmon"]), found["gsmon"]
    assert not any(str(REPO) in entry for entry in found["path"]), found["path"]


def test_version(install: Install) -> None:
    from gsmon.common.version import __version__

    result = install.run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"gsmon {__version__}"


def test_demo_runs_and_shows_the_tree(install: Install) -> None:
    """`gsmon demo --duration-s 3` from the install: exit 0, the agent's probe points in plain frames."""
    result = install.run("demo", "--duration-s", "3", "--refresh-s", "0.5", timeout_s=90)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "cpu_total_percent" in result.stdout, result.stdout[-3000:]
    assert " .CPU" in result.stdout or "..CPU" in result.stdout, result.stdout[-3000:]
    assert "\x1b[" not in result.stdout, "no cursor or colour codes when stdout is not a terminal"


@pytest.mark.parametrize(("command", "example"), [("hub", "hub.toml"), ("agent", "agent-rack.toml")])
def test_the_installed_example_configs_are_the_deploy_examples(install: Install, command: str, example: str) -> None:
    """`gsmon hub|agent --print-example-config` works from a wheel (package data) and prints deploy/examples/…"""
    result = install.run(command, "--print-example-config")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (REPO / "deploy" / "examples" / example).read_text()


def test_installed_hub_and_agent_with_probes(install: Install, procs: Processes) -> None:
    """A real hub and a standalone agent with its built-in probes, both from the install; the probe points
    arrive at the hub, read with the install's own `gsmon get --json`."""
    # Each its own state folder (alarm store, outbox): never the machine's /var/lib/gsmon.
    hub = procs.start(
        "wheel-hub",
        install.argv(
            "hub",
            "--agents",
            "tcp://127.0.0.1:0",
            "--subscribers",
            "tcp://127.0.0.1:0",
            "--query",
            "tcp://127.0.0.1:0",
            "--state-dir",
            str(procs.log_dir / "wheel-hub-state"),
        ),
    )
    fields = hub.ready()
    agent = procs.start(
        "wheel-agent",
        install.argv(
            "agent",
            "--hub",
            fields["agents"],
            "--name",
            "wheel",
            "--mount",
            "Wheel/Host",
            "--heartbeat-s",
            "0.2",
            "--state-dir",
            str(procs.log_dir / "wheel-agent-state"),
        ),
    )
    agent.wait_for_line("READY agent=wheel ")
    wanted = ("Wheel/Host/CPU/cpu_total_percent", "Wheel/Host/Memory/memory_used_percent", "Wheel/Host/System/uptime_s")

    def points() -> dict[str, object] | None:
        result = install.run("get", "Wheel/", "--json", "--hub", fields["query"], timeout_s=30)
        if result.returncode != 0:
            return None
        tree = json.loads(result.stdout)
        return tree if all(path in tree and tree[path]["kind"] == "point" for path in wanted) else None

    tree = wait_until(points, timeout_s=30, interval_s=0.3, what="the probes' points at the hub")
    assert isinstance(tree, dict)
    assert isinstance(tree["Wheel/Host/System/uptime_s"], dict)
    assert tree["Wheel/Host/System/uptime_s"]["value"] > 0
    assert agent.stop() == 0, agent.stderr()
    assert hub.stop() == 0, hub.stderr()
    for process in (agent, hub):
        assert "Traceback" not in process.stderr(), process.stderr()


def test_installed_web_serves_its_page_files_and_metrics(install: Install, procs: Processes, tmp_path: Path) -> None:
    """`gsmon web passwd` (password on stdin) and `gsmon web` from the install: the page, its script and the
    vendored uPlot with its licence come from the installed package (the checkout's bytes), /metrics answers,
    and the installed bridge's login works."""
    users = tmp_path / "users.toml"
    made = subprocess.run(
        [str(install.gsmon), "web", "passwd", "otto", "--users", str(users), "--role", "operator"],
        cwd=install.workdir,
        env=_clean_env(),
        input="operator-pw\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert "created otto (operator)" in made.stdout
    hub = procs.start(
        "wheel-hub-web",
        install.argv(
            "hub",
            "--agents",
            "tcp://127.0.0.1:0",
            "--subscribers",
            "tcp://127.0.0.1:0",
            "--query",
            "tcp://127.0.0.1:0",
            "--state-dir",
            str(procs.log_dir / "wheel-hub-web-state"),
        ),
    )
    query = hub.ready()["query"]
    web = procs.start(
        "wheel-web",
        install.argv("web", "--hub", query, "--listen", "127.0.0.1:0", "--users", str(users)),
    )
    url = web.ready()["url"]

    def get(path: str) -> bytes:
        with urllib.request.urlopen(url + path, timeout=30) as response:  # noqa: S310 (a loopback URL it printed)
            body: bytes = response.read()
            return body

    static = REPO / "common" / "web" / "static"
    assert b"/static/app.js" in get("")
    for path in ("app.js", "app.css", "vendor/uplot/uPlot.iife.min.js", "vendor/uplot/LICENSE"):
        assert get(f"static/{path}") == (static / path).read_bytes(), path
    metrics = wait_until(
        lambda: (text := get("metrics").decode()) and "gsmon_web_hub_connected 1.0" in text and text,
        timeout_s=30,
        what="the installed bridge following the hub",
    )
    assert "gsmon_metrics_truncated 0.0" in metrics
    login = urllib.request.Request(  # noqa: S310 (a loopback URL it printed)
        url + "api/v1/login",
        data=json.dumps({"user": "otto", "password": "operator-pw"}).encode(),
        headers={"Content-Type": "application/json", "Origin": url.rstrip("/")},
        method="POST",
    )
    with urllib.request.urlopen(login, timeout=30) as response:  # noqa: S310
        assert json.loads(response.read())["role"] == "operator"
    assert web.stop() == 0, web.stderr()
    assert hub.stop() == 0, hub.stderr()
    for process in (web, hub):
        assert "Traceback" not in process.stderr(), process.stderr()
