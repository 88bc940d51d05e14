"""A stop request a signal handler can make safely: a flag, no lock.

Why not :class:`threading.Event`: a Python signal handler runs in the main thread
between two bytecodes -- also inside ``Event.wait()`` while that thread holds the
event's internal lock, which is not re-entrant -- so a handler calling ``set()``
on an event the main thread is waiting on deadlocks it (an agent then ignored
SIGTERM until the SIGKILL). And an untimed wait may never return to run the
handler at all: the kernel hands a process-directed signal to any thread that
does not block it, and Python runs the handler only when the main thread next
executes bytecode.

:class:`StopFlag` has the part of Event's interface the processes use; ``set()``
only stores ``True`` and ``wait()`` sleeps in short slices, so a request is seen
within :data:`POLL_S` whichever thread the signal landed on.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterable
from typing import Final

__all__ = ["POLL_S", "StopFlag"]

POLL_S: Final = 0.1  # how soon a waiting thread sees a request made by a signal handler


class StopFlag:
    """A one-way flag: ``set()`` from anywhere (a signal handler too), ``wait()`` in slices of ``poll_s``."""

    def __init__(self, poll_s: float = POLL_S) -> None:
        self.poll_s = poll_s
        self._set = False

    def set(self) -> None:
        self._set = True  # one store: nothing a signal handler could deadlock on

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout_s: float | None = None) -> bool:
        """Sleep until set or ``timeout_s`` passed (``None``: until set); whether it is set."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._set:
            left_s = self.poll_s if deadline is None else min(self.poll_s, deadline - time.monotonic())
            if left_s <= 0:
                break
            time.sleep(left_s)
        return self._set

    def set_on_signals(self, signums: Iterable[int] = (signal.SIGTERM, signal.SIGINT)) -> StopFlag:
        """Make each of ``signums`` set the flag (call from the main thread); returns the flag."""
        for signum in signums:
            signal.signal(signum, lambda *_: self.set())
        return self
