"""Process checks: a named process must be running; its CPU and memory use.

Points (parent ``Processes``), for each ``[[probes.process]]`` check ``<name>``:

====================  =======  ==========================================================
name                  unit     meaning
====================  =======  ==========================================================
<name>                count    matching processes: Green when at least one, Red when none
<name>_cpu_percent    percent  CPU use of all matching processes (100 = one core, as top)
<name>_rss_bytes      bytes    resident memory of all matching processes
====================  =======  ==========================================================

A process matches when its name equals ``match`` or its command line contains
it. The agent itself never matches (its own command line may well contain the
text). Zombies do not count as running.

All checks share one :class:`ProcessScanner`: the process list (names and
command lines) is read at most once per ``max_age_s``, under a lock, however
many checks there are. CPU use is the rate of each process's user + system
CPU seconds (see :mod:`~gsmon.agent.probes.rates`), so it needs two polls,
like every rate. A process that ends between the scan and the read
(``NoSuchProcess``, ``ZombieProcess``) is skipped; one that can be seen but
not read (``AccessDenied``: another user's process, without privileges) counts
as running, with its CPU and memory unknown.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import psutil

from gsmon.agent.config import ProcessCheck
from gsmon.agent.probes.base import RegisteredProbes, log
from gsmon.agent.probes.rates import RateTracker
from gsmon.common.alerts import Alert, GreenAlert, RedAlert

__all__ = ["PARENT", "ProcessEntry", "ProcessScanner", "ProcessUsage", "matches", "register_process_checks"]

PARENT: Final = "Processes"


@dataclass(frozen=True, slots=True)
class ProcessEntry:
    """One process seen by a scan."""

    process: psutil.Process
    name: str
    cmdline: str  # the arguments joined with spaces ("" when unreadable)


def matches(pattern: str, name: str, cmdline: str) -> bool:
    """Whether a process called ``name`` running ``cmdline`` matches ``pattern`` (pure)."""
    return name == pattern or pattern in cmdline


class ProcessScanner:
    """The list of running processes, shared by every check and refreshed at
    most every ``max_age_s`` seconds. Thread-safe."""

    def __init__(self, max_age_s: float = 1.0, own_pid: int | None = None) -> None:
        self.max_age_s = max_age_s
        self.own_pid = os.getpid() if own_pid is None else own_pid
        self._lock = threading.Lock()
        self._entries: list[ProcessEntry] = []
        self._scanned_at: float | None = None

    def entries(self, now: float) -> list[ProcessEntry]:
        """The processes as of a scan at most ``max_age_s`` before ``now`` (monotonic)."""
        with self._lock:
            if self._scanned_at is None or not 0 <= now - self._scanned_at < self.max_age_s:
                self._entries = self._scan()
                self._scanned_at = now
            return self._entries

    def _scan(self) -> list[ProcessEntry]:
        entries: list[ProcessEntry] = []
        # process_iter() without attrs: it would store them on shared Process
        # objects (proc.info), which concurrent users of psutil could overwrite.
        for process in psutil.process_iter():
            if process.pid == self.own_pid:
                continue
            try:
                info = process.as_dict(["name", "cmdline", "status"])
            except psutil.NoSuchProcess:  # ended while we looked (ZombieProcess is a subclass)
                continue
            if info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = info["cmdline"]
            entries.append(ProcessEntry(process, info["name"] or "", " ".join(cmdline) if cmdline else ""))
        return entries


class ProcessUsage:
    """Count, CPU percent and RSS of the processes one check matches."""

    def __init__(self, check: ProcessCheck, scanner: ProcessScanner, tracker: RateTracker | None = None) -> None:
        self.check = check
        self.scanner = scanner
        self.tracker = tracker if tracker is not None else RateTracker()

    def poll(self, now: float) -> tuple[Alert, float | None, int | None]:
        """``(running alert, cpu percent, rss bytes)`` at monotonic time ``now``."""
        running = 0
        cpu_percent: float | None = None
        rss: int | None = None
        seen: list[tuple[int, float]] = []
        for entry in self.scanner.entries(now):
            if not matches(self.check.match, entry.name, entry.cmdline):
                continue
            try:
                info = entry.process.as_dict(["cpu_times", "memory_info", "create_time"])
            except psutil.NoSuchProcess:  # it ended since the scan (or is now a zombie)
                continue
            except psutil.Error as error:  # it exists but cannot be read
                log.debug("process check %s: pid %d: %s", self.check.name, entry.process.pid, error)
                running += 1
                continue
            running += 1
            # (pid, start time): a reused pid is a new process with fresh counters.
            key = (entry.process.pid, info["create_time"] or 0.0)
            seen.append(key)
            times = info["cpu_times"]
            if times is not None:  # None: AccessDenied on this attribute
                rate = self.tracker.rate(key, times.user + times.system, now)
                if rate is not None:
                    cpu_percent = (cpu_percent or 0.0) + 100.0 * rate
            memory = info["memory_info"]
            if memory is not None:
                rss = (rss or 0) + int(memory.rss)
        self.tracker.retain(seen)
        alert: Alert = GreenAlert(running) if running else RedAlert(0)
        return alert, None if cpu_percent is None else round(cpu_percent, 1), rss


def register_process_checks(
    probes: RegisteredProbes,
    checks: tuple[ProcessCheck, ...],
    *,
    scanner: ProcessScanner | None = None,
    clock: Callable[[], float] | None = None,
) -> None:
    """Declare ``<name>``, ``<name>_cpu_percent`` and ``<name>_rss_bytes`` under
    ``Processes`` for every check."""
    if not checks:
        return
    shared = scanner if scanner is not None else ProcessScanner()
    now: Callable[[], float] = clock or time.monotonic
    for check in checks:
        usage = ProcessUsage(check, shared)
        usage.poll(now())  # prime the CPU counters
        probes.primed(now())
        probes.add(
            (check.name, f"{check.name}_cpu_percent", f"{check.name}_rss_bytes"),
            _poller(usage, now),
            dt_s=check.dt_s,
            parent=PARENT,
        )


def _poller(usage: ProcessUsage, now: Callable[[], float]) -> Callable[[], tuple[Alert, float | None, int | None]]:
    def process_check() -> tuple[Alert, float | None, int | None]:
        return usage.poll(now())

    process_check.__name__ = f"process_check({usage.check.name})"
    return process_check
