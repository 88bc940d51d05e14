"""The child-process helper's judgement of an exit (pure: a status and a stderr text in, a message out).

Starting, reading and stopping real children is covered through the
integration tests, whose harness is built on :mod:`gsmon.common.children`.
"""

from __future__ import annotations

import signal

import pytest

from gsmon.common.children import TRACEBACK, describe_status, exit_problem, tail

CRASH = f"""starting
{TRACEBACK}
  File "/x/hub/main.py", line 9, in run
    server.close()
RuntimeError: socket closed twice
"""


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (None, "still running"),
        (0, "exit status 0"),
        (2, "exit status 2"),
        (-signal.SIGKILL, "killed by SIGKILL"),
        (-signal.SIGTERM, "killed by SIGTERM"),
        (-200, "killed by signal 200"),
    ],
)
def test_a_status_reads_as_popen_reports_it(status: int | None, text: str) -> None:
    assert describe_status(status) == text


def test_the_tail_is_the_last_non_blank_lines() -> None:
    assert tail("a\n\nb\nc\n  \nd\n", 3) == ["b", "c", "d"]
    assert tail("", 3) == []


def test_a_clean_exit_is_no_problem() -> None:
    assert exit_problem("hub", 0, "INFO gsmon.hub.main: stopped\n") is None


def test_a_declared_status_is_no_problem() -> None:
    assert exit_problem("agent-rack1", -signal.SIGKILL, "", expected=-signal.SIGKILL) is None
    assert exit_problem("gsmon-get", 1, "gsmon get: no hub answered\n", expected=1) is None


def test_an_unexpected_status_names_the_child_its_status_and_its_stderr() -> None:
    message = exit_problem("hub", 1, "one\ngsmon hub: cannot bind tcp://127.0.0.1:1\n")
    assert message is not None
    assert message.startswith("child 'hub' ended badly (exit status 1, expected exit status 0)")
    assert message.endswith("\n  hub: one\n  hub: gsmon hub: cannot bind tcp://127.0.0.1:1")


def test_a_status_other_than_the_declared_one_is_a_problem() -> None:
    message = exit_problem("agent-a", 0, "", expected=-signal.SIGKILL)
    assert message is not None
    assert "(exit status 0, expected killed by SIGKILL)" in message
    assert message.endswith("  (nothing on stderr)")


def test_a_traceback_is_a_problem_even_with_status_zero() -> None:
    message = exit_problem("recorder", 0, CRASH)
    assert message is not None
    assert "(a Python traceback on stderr)" in message
    assert "  recorder: RuntimeError: socket closed twice" in message


def test_a_declared_traceback_is_no_problem() -> None:
    assert exit_problem("crasher", 1, CRASH, expected=1, traceback_expected=True) is None


def test_both_reasons_are_given() -> None:
    message = exit_problem("web", -signal.SIGTERM, CRASH)
    assert message is not None
    assert "(killed by SIGTERM, expected exit status 0; a Python traceback on stderr)" in message


def test_status_zero_reached_only_by_the_sigkill_after_the_grace_is_a_problem() -> None:
    """A child that ignored SIGTERM and had to be killed did not shut down cleanly, whatever it was expected
    to end with."""
    message = exit_problem("notify", -signal.SIGKILL, "", expected=-signal.SIGKILL, killed_after_grace=True)
    assert message is not None
    assert "killed by SIGKILL only after SIGTERM was ignored for the grace period" in message


def test_the_tail_is_bounded() -> None:
    stderr = "".join(f"line {n}\n" for n in range(100))
    message = exit_problem("hub", 3, stderr, tail_lines=5)
    assert message is not None
    assert message.count("\n  hub: ") == 5
    assert message.endswith("  hub: line 99")
