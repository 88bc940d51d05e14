"""What the hub benchmarks share: child processes, statistics, machine details.

Every benchmark process is started through a :class:`Children` registry used
as a context manager, so each child is terminated (SIGTERM, then SIGKILL) and
reaped whatever happens (both are thin users of :mod:`gsmon.common.children`,
as the integration tests' harness is). Children bind port 0 and print their real endpoints
on a ``READY agents=... subscribers=... query=...`` line, exactly like
``gsmon hub``; the benchmarks read the endpoints from there and never choose
ports. Children are driven through their stdin (one command per line, see
:mod:`bench.peers`), so that measurement windows line up across processes.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psutil
import zmq

from gsmon.common import children as child_processes
from gsmon.common.client import Subscriber

__all__ = [
    "LOOPBACK",
    "REPO",
    "Child",
    "Children",
    "HubLoad",
    "Summary",
    "before_tree",
    "hub_sample",
    "hub_value",
    "machine_details",
    "main_thread_cpu_s",
    "measure_window",
    "percentile",
    "summarise",
]

REPO: Final = Path(__file__).resolve().parents[1]
LOOPBACK: Final = "tcp://127.0.0.1:0"
_READY_TIMEOUT_S: Final = 30.0
_MB: Final = 1 / (1024 * 1024)


class Child(child_processes.Child):
    """A benchmark process (:class:`gsmon.common.children.Child`, stderr in the scenario's log folder),
    driven through its stdin, with its CPU time and memory read through psutil."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        child_env = dict(os.environ, PYTHONUNBUFFERED="1")
        # bench/ is not installed: the children import it from the repository.
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), child_env.get("PYTHONPATH", "")) if p)
        if env:
            child_env.update(env)
        stderr_path = log_dir / f"{name}-{time.monotonic_ns()}.stderr"
        super().__init__(name, argv, env=child_env, cwd=REPO, stderr_path=stderr_path, stdin=True)
        self.process = psutil.Process(self.pid)

    def wait_for_line(self, prefix: str, timeout_s: float = _READY_TIMEOUT_S) -> str:
        """The next stdout line starting with ``prefix``; ``ChildFailedError`` on timeout or exit."""
        return super().wait_for_line(prefix, timeout_s)

    def ready(self, timeout_s: float = _READY_TIMEOUT_S) -> dict[str, str]:
        """Wait for the ``READY key=value ...`` line (:mod:`gsmon.common.ready`) and return its fields."""
        return super().ready(timeout_s)

    def result(self, timeout_s: float = _READY_TIMEOUT_S) -> dict[str, Any]:
        """Wait for the child's ``RESULT {json}`` line and return the JSON."""
        line = self.wait_for_line("RESULT ", timeout_s)
        value = json.loads(line.split(" ", 1)[1])
        assert isinstance(value, dict)
        return value

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the child used so far, its threads included."""
        times = self.process.cpu_times()
        return times.user + times.system

    def rss_bytes(self) -> int:
        return int(self.process.memory_info().rss)

    def stderr(self) -> str:
        return super().stderr()[-4000:]


@dataclass
class Children:
    """Starts the processes of one scenario and reaps every one of them on exit
    (a :class:`gsmon.common.children.Children` registry of :class:`Child`).

    Exit statuses are not judged here: a peer ends on the EOF of its stdin or on
    SIGTERM, whichever comes first, and a scenario's figures come from its
    ``RESULT`` lines, which a failed child never prints.
    """

    hub_pythonpath: str | None = None  # a tree of another revision's gsmon (see before_tree)
    registry: child_processes.Children = field(default_factory=child_processes.Children)
    _log_dir: tempfile.TemporaryDirectory[str] = field(default_factory=lambda: tempfile.TemporaryDirectory("-bench"))

    @property
    def children(self) -> list[child_processes.Child]:
        return self.registry.children

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reap()

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Child:
        child = Child(name, argv, Path(self._log_dir.name), env)
        self.registry.add(child)
        return child

    def hub(self, config: str = "") -> tuple[Child, dict[str, str]]:
        """A real ``gsmon hub`` on loopback, port 0, with ``config`` (TOML text)
        as its configuration file; returns it and its READY fields."""
        env = None
        if self.hub_pythonpath is not None:
            env = {"PYTHONPATH": os.pathsep.join((self.hub_pythonpath, str(REPO)))}
        argv = child_processes.gsmon_argv("hub", "--agents", LOOPBACK, "--subscribers", LOOPBACK, "--query", LOOPBACK)
        argv += ["--log-level", "WARNING"]
        if "state_dir" not in config and self._has_state_store():
            # Its own state store (the default configuration: alarm layer on), never the machine's
            # /var/lib/gsmon, which every bench hub would otherwise share with each other and a real hub.
            argv += ["--state-dir", str(Path(self._log_dir.name) / f"state-{time.monotonic_ns()}")]
        if config:
            path = Path(self._log_dir.name) / f"hub-{time.monotonic_ns()}.toml"
            path.write_text(config, encoding="utf-8")
            argv += ["--config", str(path)]
        child = self.start("hub", argv, env)
        return child, child.ready()

    def _has_state_store(self) -> bool:
        """Whether the hub measured has ``--state-dir`` (a ``--before`` tree may predate it)."""
        tree = Path(self.hub_pythonpath) / "gsmon" if self.hub_pythonpath is not None else REPO
        return "--state-dir" in (tree / "hub" / "main.py").read_text(encoding="utf-8")

    def peer(self, role: str, *args: str) -> Child:
        """A helper process of :mod:`bench.peers` (forwarder, sender, sink...)."""
        return self.start(role, [sys.executable, "-m", "bench.peers", role, *args])

    def reap(self) -> None:
        self.registry.reap()
        self.registry.children.clear()
        self._log_dir.cleanup()


# ----------------------------------------------------------------------
# One measured window under load (the scale runs of hub_bench and scale_bench)
# ----------------------------------------------------------------------


def main_thread_cpu_s(child: Child) -> float:
    """CPU seconds of a child's main thread (its thread id is its pid)."""
    for thread in child.process.threads():
        if thread.id == child.process.pid:
            return float(thread.user_time + thread.system_time)
    return 0.0


def hub_value(watch: Subscriber, name: str) -> Any:
    """The hub's own point ``_hub/<name>`` as a ``_hub/`` follower last saw it (None: not yet)."""
    node = watch.tree.get(f"_hub/{name}")
    return None if node is None else node.value


def hub_sample(watch: Subscriber, name: str) -> tuple[float, float]:
    """A hub counter with the hub's own time of it (its health points are
    refreshed once a second: rates need the time the value was taken)."""
    node = watch.tree.get(f"_hub/{name}")
    if node is None or node.polled_at_s is None:
        return 0.0, 0.0
    return float(node.value), node.polled_at_s


@dataclass(frozen=True, slots=True)
class HubLoad:
    """What one hub process cost over a window."""

    name: str
    cores: float  # the whole process ...
    loop_cores: float  # ... of which its loop thread (the rest: ZeroMQ's I/O thread)
    rss_start_mb: float
    rss_end_mb: float
    rss_max_mb: float

    @property
    def rss_growth_mb(self) -> float:
        return self.rss_end_mb - self.rss_start_mb


def measure_window(
    window_s: float,
    hubs: Mapping[str, Child],
    sink: Child,
    fleets: Sequence[Child],
    poll: Callable[[float], object],
) -> tuple[float, dict[str, HubLoad]]:
    """One measured window: the sink and the fleets are told ``MARK`` (count from here), ``poll(seconds)``
    is called until ``window_s`` is over (at most a second at a time: each hub's RSS is sampled between
    calls), then the sink is told ``END`` and the fleets ``CUT`` (the load goes on: the caller ends it).
    Returns the window's real length, s, and each hub's CPU and RSS over it."""
    cpu = {name: (child.cpu_s(), main_thread_cpu_s(child)) for name, child in hubs.items()}
    rss = {name: [child.rss_bytes()] for name, child in hubs.items()}
    started = time.monotonic()
    sink.command("MARK")
    for fleet in fleets:
        fleet.command("MARK")
    end = started + window_s
    while (now := time.monotonic()) < end:
        poll(min(1.0, end - now))
        for name, child in hubs.items():
            rss[name].append(child.rss_bytes())
    sink.command("END")
    for fleet in fleets:
        fleet.command("CUT")
    elapsed = time.monotonic() - started
    loads = {}
    for name, child in hubs.items():
        rss[name].append(child.rss_bytes())
        loads[name] = HubLoad(
            name=name,
            cores=(child.cpu_s() - cpu[name][0]) / elapsed,
            loop_cores=(main_thread_cpu_s(child) - cpu[name][1]) / elapsed,
            rss_start_mb=rss[name][0] * _MB,
            rss_end_mb=rss[name][-1] * _MB,
            rss_max_mb=max(rss[name]) * _MB,
        )
    return elapsed, loads


@contextlib.contextmanager
def before_tree(ref: str) -> Iterator[str]:
    """Export revision ``ref`` of the repository to a temporary folder laid out
    as an importable ``gsmon`` package and yield the folder for PYTHONPATH, so
    that the same run can measure the hub as it was before an optimisation.

    Uses ``git archive`` (read-only for the repository: no worktree, no index).
    """
    folder = Path(tempfile.mkdtemp(prefix="gsmon-before-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", ref, "agent", "hub", "common"],
            capture_output=True,
            check=True,
        ).stdout
        package = folder / "gsmon"
        package.mkdir()
        tar_path = folder / "tree.tar"
        tar_path.write_bytes(archive)
        with tarfile.open(tar_path) as tar:
            tar.extractall(package, filter="data")
        # The real `gsmon` has no __init__.py (a namespace), and neither does this one:
        # a PYTHONPATH entry wins over the editable install's finder, which runs last.
        yield str(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class Summary:
    """Median and range of repeated measurements."""

    median: float
    low: float
    high: float
    count: int

    def format(self, fmt: str = ",.0f", scale: float = 1.0) -> str:
        """``median (low–high)``, or just the value when there is one measurement."""
        median = format(self.median * scale, fmt)
        if self.count <= 1 or self.low == self.high:
            return median
        return f"{median} ({format(self.low * scale, fmt)}–{format(self.high * scale, fmt)})"


def summarise(values: Sequence[float]) -> Summary:
    """The median, minimum and maximum of ``values`` (NaN for none)."""
    if not values:
        nan = float("nan")
        return Summary(nan, nan, nan, 0)
    return Summary(statistics.median(values), min(values), max(values), len(values))


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (NaN when empty)."""
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def machine_details() -> dict[str, str]:
    """The agent-overhead benchmark's machine details plus libzmq and msgspec versions."""
    from bench.agent_overhead import machine_details as base_details

    details = base_details()
    details["libzmq"] = zmq.zmq_version()
    try:
        details["msgspec"] = importlib.metadata.version("msgspec")
    except importlib.metadata.PackageNotFoundError:
        details["msgspec"] = "not installed"
    with contextlib.suppress(OSError):
        details["load average"] = " ".join(f"{value:.2f}" for value in os.getloadavg())
    details["git"] = _git_revision()
    return details


def _git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "agent", "hub", "common"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in agent/hub/common" if dirty else "")


def dumps(value: Any) -> str:
    """One-line JSON for a child's RESULT line."""
    return json.dumps(value, separators=(",", ":"))
