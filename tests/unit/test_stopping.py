"""StopFlag: a signal handler's stop request, seen by a main thread that is waiting on it."""

from __future__ import annotations

import os
import signal
import threading
import time

from gsmon.common.stopping import StopFlag


def test_a_signal_handled_while_the_main_thread_waits_ends_the_wait() -> None:
    # The agent's old stop: a handler calling Event.set() while the main thread was inside Event.wait()
    # (holding the event's lock) deadlocked. Here the handler interrupts wait() itself, many times over.
    for _ in range(20):
        flag = StopFlag(poll_s=0.01)
        previous = signal.signal(signal.SIGUSR1, lambda *_, flag=flag: flag.set())  # this turn's flag (B023)
        try:
            threading.Timer(0.005, os.kill, (os.getpid(), signal.SIGUSR1)).start()
            assert flag.wait(timeout_s=10.0)
        finally:
            signal.signal(signal.SIGUSR1, previous)


def test_wait_returns_false_after_its_timeout_when_nobody_asked() -> None:
    flag = StopFlag(poll_s=0.01)
    started = time.monotonic()
    assert not flag.wait(timeout_s=0.05)
    assert time.monotonic() - started >= 0.05
    assert not flag.is_set()


def test_a_set_flag_stays_set_and_wait_returns_at_once() -> None:
    flag = StopFlag()
    flag.set()
    assert flag.is_set()
    assert flag.wait()
    assert flag.wait(timeout_s=0)


def test_set_on_signals_makes_each_signal_set_the_flag() -> None:
    flag = StopFlag(poll_s=0.01)
    previous = signal.getsignal(signal.SIGUSR2)
    try:
        assert flag.set_on_signals([signal.SIGUSR2]) is flag
        os.kill(os.getpid(), signal.SIGUSR2)
        assert flag.wait(timeout_s=10.0)
    finally:
        signal.signal(signal.SIGUSR2, previous)
