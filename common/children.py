"""Child processes: start a command, read its ready line, stop it, reap it, judge its exit.

The one helper for every place gsmon runs processes of its own: ``gsmon demo``
(a hub and an agent), the integration tests' ``Processes`` harness and the
benchmarks' ``Children``. A :class:`Child`:

- has its stdout read line by line by a reader thread into :attr:`Child.lines`,
  so a child that prints a lot never blocks on a full pipe, and the caller
  waits for a line with a deadline (:meth:`Child.wait_for_line`; the ready
  line, parsed by :mod:`gsmon.common.ready`, with :meth:`Child.ready`);
- writes stderr straight into a file when given one (kept whole, for callers
  that search the log), else a second reader thread keeps its last
  ``tail_lines`` lines in memory;
- stops with SIGCONT (a stopped process cannot handle SIGTERM), SIGTERM, a
  grace of ``grace_s`` seconds, then SIGKILL; it is always reaped.

Every gsmon process ends cleanly on SIGTERM or SIGINT with exit status 0
(:mod:`gsmon.common.errors`), so a child is expected to end with status 0 and
no Python traceback on stderr unless its owner says otherwise
(:meth:`Child.expect_exit`; :meth:`Child.kill` expects the SIGKILL it sends).
:func:`exit_problem` is that judgement, as a pure function of the status and
the stderr text.

A :class:`Children` registry starts children and reaps all of them, in reverse
order of start (clients before the hub they use), also as a context manager;
:meth:`Children.reap` returns one line per child that did not end as expected.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Final

from gsmon.common.errors import UnavailableError
from gsmon.common.ready import is_ready_line, parse_ready_line

__all__ = [
    "GRACE_S",
    "TRACEBACK",
    "Child",
    "ChildFailedError",
    "Children",
    "describe_status",
    "exit_problem",
    "gsmon_argv",
    "tail",
]

GRACE_S: Final = 5.0
TRACEBACK: Final = "Traceback (most recent call last):"
_TAIL_LINES: Final = 20


class ChildFailedError(UnavailableError):
    """A child did not print the line waited for, or exited; the message holds its last stderr lines (status 1)."""


def describe_status(status: int | None) -> str:
    """``exit status 2``, ``killed by SIGKILL`` (Popen's negative status), or ``still running`` for ``None``."""
    if status is None:
        return "still running"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def tail(text: str, lines: int = _TAIL_LINES) -> list[str]:
    """The last ``lines`` non-empty lines of ``text``."""
    return [line for line in text.splitlines() if line.strip()][-lines:]


def exit_problem(
    name: str,
    status: int | None,
    stderr: str,
    *,
    expected: int = 0,
    traceback_expected: bool = False,
    killed_after_grace: bool = False,
    tail_lines: int = _TAIL_LINES,
) -> str | None:
    """What is wrong with how child ``name`` ended (``None``: nothing).

    Wrong is: a ``status`` other than ``expected`` (a negative status is a
    signal, as Popen reports it), one reached only by the SIGKILL sent after
    the grace (the child ignored SIGTERM), or a Python traceback on stderr
    unless ``traceback_expected``. The message names the child, its status
    and the tail of its stderr.
    """
    reasons = []
    if status != expected:
        reasons.append(f"{describe_status(status)}, expected {describe_status(expected)}")
    if killed_after_grace and status == expected:
        reasons.append(f"{describe_status(status)} only after SIGTERM was ignored for the grace period")
    if not traceback_expected and TRACEBACK in stderr:
        reasons.append("a Python traceback on stderr")
    if not reasons:
        return None
    shown = "\n".join(f"  {name}: {line}" for line in tail(stderr, tail_lines)) or "  (nothing on stderr)"
    return f"child {name!r} ended badly ({'; '.join(reasons)}); the last lines of its stderr:\n{shown}"


class Child:
    """One child process: stdout lines queued by a reader thread, stderr in a file or a bounded tail."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stderr_path: Path | None = None,
        stdin: bool = False,
        tail_lines: int = _TAIL_LINES,
    ) -> None:
        """Start ``argv`` with ``env`` as its whole environment (``None``: ours) and stdin a pipe
        (``stdin``, for :meth:`command`) or /dev/null."""
        self.name = name
        self.argv = list(argv)
        self.stderr_path = stderr_path
        self.tail_lines = tail_lines
        self.expected_status = 0
        self.traceback_expected = False
        self.killed_after_grace = False
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []  # the lines taken from the queue so far, in order
        self.ready_text: str | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._stderr_file: IO[bytes] | None = stderr_path.open("wb") if stderr_path is not None else None
        # Our own programs with the caller's command line: no untrusted input reaches argv.
        self.popen = subprocess.Popen(  # noqa: S603
            self.argv,
            stdout=subprocess.PIPE,
            stderr=self._stderr_file if self._stderr_file is not None else subprocess.PIPE,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            text=True,
            errors="replace",
        )
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True, name=f"child-{name}-stdout")]
        if self._stderr_file is None:
            self._readers.append(threading.Thread(target=self._read_stderr, daemon=True, name=f"child-{name}-stderr"))
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))

    def _read_stderr(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self._tail.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def status(self) -> int | None:
        """The exit status once it has exited (negative: the signal that ended it), else ``None``."""
        return self.popen.poll()

    # -- output --------------------------------------------------------------------------------------------

    def wait_for_line(self, prefix: str, timeout_s: float = 20.0) -> str:
        """The next stdout line starting with ``prefix``; :class:`ChildFailedError` on timeout or exit."""
        return self._wait(lambda line: line.startswith(prefix), f"a line starting with {prefix!r}", timeout_s)

    def wait_for_ready(self, timeout_s: float = 20.0) -> str:
        """The ready line (:mod:`gsmon.common.ready`), waited for once and kept."""
        if self.ready_text is None:
            self.ready_text = self._wait(is_ready_line, "its ready line", timeout_s)
        return self.ready_text

    def ready(self, timeout_s: float = 20.0) -> dict[str, str]:
        """The fields of the ready line (``{}`` for a bare ``READY``)."""
        return parse_ready_line(self.wait_for_ready(timeout_s))

    def _wait(self, match: Callable[[str], bool], what: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self.failure(f"printed no {what} within {timeout_s:g} s")
            try:
                line = self.lines.get(timeout=min(remaining, 0.1))
            except queue.Empty:
                if self.popen.poll() is not None and self.lines.empty():
                    self._readers[0].join(timeout=1.0)  # a last line may be on its way into the queue
                    if self.lines.empty():
                        raise self.failure(f"exited before {what}") from None
                continue
            self.seen.append(line)
            if match(line):
                return line

    def latest(self, prefix: str) -> str | None:
        """The newest stdout line so far starting with ``prefix`` (``None`` if none yet)."""
        self.drain()
        return next((line for line in reversed(self.seen) if line.startswith(prefix)), None)

    def drain(self) -> list[str]:
        """Move what the reader queued into :attr:`seen`; return all of :attr:`seen`."""
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return self.seen

    def stderr(self) -> str:
        """What the child wrote to stderr: all of it with a file, else the last ``tail_lines`` lines."""
        if self.stderr_path is None:
            return "".join(line + "\n" for line in list(self._tail))
        if self._stderr_file is not None and not self._stderr_file.closed:
            self._stderr_file.flush()
        return self.stderr_path.read_text(errors="replace")

    def failure(self, what_happened: str) -> ChildFailedError:
        """The error for "the <name> <what_happened>", with its status and its last stderr lines."""
        status = self.popen.poll()
        if status is not None and len(self._readers) > 1:
            self._readers[1].join(timeout=2.0)  # the last lines are the reason: read them to the end
        lines = tail(self.stderr(), self.tail_lines)
        state = "still running" if status is None else f"exit status {status}"  # as Popen reports it
        if not lines:
            return ChildFailedError(f"the {self.name} {what_happened} ({state}) and wrote nothing to stderr")
        shown = "\n".join(f"  {self.name}: {line}" for line in lines)
        return ChildFailedError(f"the {self.name} {what_happened} ({state}); its last lines on stderr:\n{shown}")

    def check(self) -> None:
        """:class:`ChildFailedError` if the child has exited (it should be running)."""
        if self.popen.poll() is not None:
            raise self.failure("stopped")

    def command(self, line: str) -> None:
        """Send one line to the child's stdin (started with ``stdin=True``)."""
        assert self.popen.stdin is not None, f"{self.name} was started without a stdin pipe"
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    # -- ending --------------------------------------------------------------------------------------------

    def expect_exit(self, status: int, *, traceback: bool = False) -> None:
        """Declare how this child is meant to end: an exit status (``1``), or a signal
        (``signal.SIGKILL``: Popen's ``-9``); ``traceback`` when it is meant to print one."""
        self.expected_status = -int(status) if isinstance(status, signal.Signals) else int(status)
        self.traceback_expected = traceback

    def signal(self, signum: int) -> None:
        """Send ``signum`` if the child still runs."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signum)

    def stop(self, grace_s: float = GRACE_S) -> int:
        """Close its stdin, SIGCONT and SIGTERM, wait ``grace_s``, then SIGKILL; always reaps. Returns the status."""
        if self.popen.poll() is None:
            if self.popen.stdin is not None:
                with contextlib.suppress(OSError):
                    self.popen.stdin.close()
            self.signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.killed_after_grace = True
                self.popen.kill()
                self.popen.wait()
        self._close()
        return self.popen.returncode

    def kill(self) -> int:
        """SIGKILL now (a crash, as far as its peers can tell); a child still running is then expected to end
        so. Always reaps; returns the status."""
        if self.popen.poll() is None:
            self.expect_exit(signal.SIGKILL)
            self.popen.kill()
        self.popen.wait()
        return self.popen.returncode

    def problem(self) -> str | None:
        """How the (reaped) child ended against what was expected (:func:`exit_problem`); ``None`` if fine."""
        return exit_problem(
            self.name,
            self.popen.poll(),
            self.stderr(),
            expected=self.expected_status,
            traceback_expected=self.traceback_expected,
            killed_after_grace=self.killed_after_grace,
            tail_lines=self.tail_lines,
        )

    def _close(self) -> None:
        for reader in self._readers:
            reader.join(timeout=5.0)
        for stream in (self.popen.stdout, self.popen.stdin, self.popen.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self._stderr_file is not None:
            self._stderr_file.close()


class Children:
    """The children of one owner (a demo run, a test, a benchmark scenario): all reaped by :meth:`reap`."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reap()

    def add(self, child: Child) -> Child:
        """Register a child started elsewhere (a subclass of :class:`Child`)."""
        self.children.append(child)
        return child

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stderr_path: Path | None = None,
        stdin: bool = False,
        tail_lines: int = _TAIL_LINES,
    ) -> Child:
        """Start and register a :class:`Child` (the arguments are :class:`Child`'s)."""
        return self.add(
            Child(name, argv, env=env, cwd=cwd, stderr_path=stderr_path, stdin=stdin, tail_lines=tail_lines)
        )

    def check(self) -> None:
        """:class:`ChildFailedError` for the first child that has exited (all should be running)."""
        for child in self.children:
            child.check()

    def reap(self, grace_s: float = GRACE_S) -> list[str]:
        """Stop every child, newest first, whatever happens to the others; return the problem of each
        that did not end as expected (:meth:`Child.problem`), oldest first."""
        for child in reversed(self.children):
            try:
                child.stop(grace_s)
            except Exception:  # keep reaping the others whatever happens
                with contextlib.suppress(Exception):
                    child.popen.kill()
                    child.popen.wait()
        return [problem for child in self.children if (problem := child.problem()) is not None]


def gsmon_argv(*args: str) -> list[str]:
    """The command line that runs ``gsmon ARGS`` with this interpreter."""
    return [sys.executable, "-m", "gsmon.common.cli", *args]
