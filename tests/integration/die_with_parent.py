"""Run a command that is killed when the test process that started it dies.

Usage: python die_with_parent.py PARENT_PID COMMAND [ARG...]

The fixtures reap every child after each test, but a test run that is itself
killed (a pytest-timeout of the "thread" kind ends the process at once, CI
cancels a job) runs no fixture. On Linux this sets PR_SET_PDEATHSIG, which
survives the exec below, so the kernel kills the command with its parent.
Elsewhere it just runs the command. (The signal follows the thread that
forked, so the harness starts children from the test's own thread.)
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main() -> None:
    parent, argv = int(sys.argv[1]), sys.argv[2:]
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died before the setting took hold
            sys.exit(1)
    os.execvp(argv[0], argv)  # noqa: S606 -- the test's own command line, as given


if __name__ == "__main__":
    main()
