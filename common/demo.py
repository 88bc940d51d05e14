"""``gsmon demo``: the whole system on one machine, with nothing to configure.

Starts a hub (on free loopback ports), a standalone agent with the built-in
psutil probes publishing to it (with their default thresholds, so levels and
colours show from the start, and rates from the first frame), and ``gsmon
watch`` on the whole tree in this terminal -- the full-screen attention view,
the hub's own ``_hub`` subtree collapsed; plain frames with ``--plain`` or
off a terminal -- until ``q``, Ctrl-C or ``--duration-s``; then stops both
children. Every
piece is the real thing, run the way an operator runs it, only wired together
for you. The children get no ``GSMON_*`` variables: the demo's hub has no
keys, whatever the operator's client settings say.

A child that fails -- before its ready line or later, while the view runs --
ends the demo with exit status 1 and the last lines the child wrote to stderr
(the reason: a traceback, a configuration error), which a reader thread keeps
for each child, bounded to the last :data:`STDERR_TAIL_LINES` lines.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import threading
import time
from typing import IO, Any, Final

from gsmon.common.errors import UnavailableError
from gsmon.common.ready import is_ready_line, parse_ready_line
from gsmon.common.views import add_view_flags

__all__ = ["STDERR_TAIL_LINES", "ChildFailedError", "add_parser", "run"]

STDERR_TAIL_LINES: Final = 20


class ChildFailedError(UnavailableError):
    """A child process of the demo did not start or exited; the message holds its last stderr lines (exit status 1)."""


def add_parser(subparsers: Any, name: str, summary: str) -> None:
    parser = subparsers.add_parser(name, help=summary, description=summary)
    parser.add_argument("--refresh-s", type=float, default=0.5, help="seconds between redraws (default 0.5)")
    parser.add_argument("--duration-s", type=float, default=None, help="stop after this many seconds")
    add_view_flags(parser)
    parser.set_defaults(handler=run)


class _Child:
    """One child process: stdout read for its ready line, stderr's last lines kept by a reader thread."""

    def __init__(self, what: str, argv: list[str]) -> None:
        self.what = what
        self.tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        env = {name: value for name, value in os.environ.items() if not name.startswith("GSMON_")}
        # Our own interpreter running our own CLI: no untrusted input reaches argv.
        self.popen = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "gsmon.common.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
            errors="replace",
        )
        self._reader = threading.Thread(target=self._read_stderr, name=f"gsmon-demo-{what}", daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        stream = self.popen.stderr
        assert stream is not None
        for line in stream:
            self.tail.append(line.rstrip("\n"))

    def ready_line(self, timeout_s: float = 20.0) -> str:
        stream: IO[str] | None = self.popen.stdout
        assert stream is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = stream.readline()
            if is_ready_line(line):
                return line.strip()
            if not line and self.popen.poll() is not None:
                break
        raise self.failure("did not start")

    def check(self) -> None:
        """Raise :class:`ChildFailedError` if the child has exited."""
        if self.popen.poll() is not None:
            raise self.failure("stopped")

    def failure(self, what_happened: str) -> ChildFailedError:
        status = self.popen.poll()
        if status is not None:
            self._reader.join(timeout=2.0)  # the last lines are the reason: read them to the end
        state = "still running" if status is None else f"exit status {status}"
        lines = list(self.tail)
        if not lines:
            return ChildFailedError(f"the {self.what} {what_happened} ({state}) and wrote nothing to stderr")
        shown = "\n".join(f"  {self.what}: {line}" for line in lines)
        return ChildFailedError(f"the {self.what} {what_happened} ({state}); its last lines on stderr:\n{shown}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._reader.join(timeout=2.0)
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()


def run(args: argparse.Namespace) -> int:
    from gsmon.common import views
    from gsmon.common.client_settings import ClientSettings

    children: list[_Child] = []

    def check_children() -> None:
        for child in children:
            child.check()

    try:
        hub = _Child(
            "hub",
            [
                "hub",
                "--agents",
                "tcp://127.0.0.1:0",
                "--subscribers",
                "tcp://127.0.0.1:0",
                "--query",
                "tcp://127.0.0.1:0",
                "--log-level",
                "WARNING",
            ],
        )
        children.append(hub)
        endpoints = parse_ready_line(hub.ready_line())
        agent = _Child("agent", ["agent", "--hub", endpoints["agents"], "--log-level", "WARNING"])
        children.append(agent)
        agent.ready_line()
        watch_args = argparse.Namespace(
            prefix="",
            timeout_s=5.0,
            refresh_s=args.refresh_s,
            duration_s=args.duration_s,
            no_colour=args.no_colour,
            plain=args.plain,
        )
        # A child that fails ends the view with ChildFailedError, Ctrl-C with KeyboardInterrupt: both are
        # gsmon.common.cli.main's to report (status 1 with the child's last lines; 0), once the children stop.
        return views.run_watch(
            watch_args,
            given=(ClientSettings(endpoints["query"], None, None, "gsmon demo"), None),
            check_children=check_children,
        )
    finally:
        for child in reversed(children):
            child.stop()
