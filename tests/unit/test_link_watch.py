"""Pure cores of the link diagnostics: LinkWatch (monitor events -> what went wrong), Backoff, DenialLog.

The event sequences are the ones libzmq 4.3.5 produced in the experiments
recorded in common/transport.py's docstring (and the integration tests
test_agent_link.py / test_client_errors.py run them for real).
"""

from __future__ import annotations

import errno
import logging

import pytest
import zmq

from gsmon.common.transport import Backoff, LinkProblem, LinkWatch, describe_problem
from gsmon.hub.auth import DenialLog

CONNECTED, RETRIED = zmq.EVENT_CONNECTED, zmq.EVENT_CONNECT_RETRIED
OK, GONE = zmq.EVENT_HANDSHAKE_SUCCEEDED, zmq.EVENT_DISCONNECTED
AUTH, PROTOCOL, NO_DETAIL = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH,
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
)


def feed(watch: LinkWatch, *events: tuple[int, int]) -> list[LinkProblem]:
    return [problem for event, value in events if (problem := watch.feed(event, value)) is not None]


@pytest.mark.parametrize(
    ("uses_keys", "events", "problem", "final"),
    [
        (False, [(RETRIED, 100), (RETRIED, 200)], LinkProblem.NOTHING_LISTENING, False),
        (True, [(CONNECTED, 9), (AUTH, 400), (GONE, 9)], LinkProblem.KEY_REFUSED, True),
        (True, [(CONNECTED, 9), (NO_DETAIL, 32), (GONE, 9), (RETRIED, 300)], LinkProblem.HUB_KEY_MISMATCH, False),
        (
            False,
            [(CONNECTED, 9), (PROTOCOL, zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH), (GONE, 9)],
            LinkProblem.KEYS_REQUIRED,
            True,
        ),
        (
            True,
            [(CONNECTED, 9), (PROTOCOL, zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH), (GONE, 9)],
            LinkProblem.KEYS_NOT_USED,
            True,
        ),
        (False, [(CONNECTED, 9), (GONE, 9)], LinkProblem.WRONG_SOCKET_TYPE, False),
        # A hub that says nothing for HANDSHAKE_IVL (overloaded, stopped): our own timer, EAGAIN; keys or not.
        (
            False,
            [(CONNECTED, 9), (NO_DETAIL, errno.EAGAIN), (GONE, 9), (RETRIED, 9)],
            LinkProblem.HANDSHAKE_TIMEOUT,
            False,
        ),
        (
            True,
            [(CONNECTED, 9), (NO_DETAIL, errno.EAGAIN), (GONE, 9), (RETRIED, 9)],
            LinkProblem.HANDSHAKE_TIMEOUT,
            False,
        ),
    ],
)
def test_each_failure_is_named_and_final_ones_ask_for_a_new_socket(
    uses_keys: bool, events: list[tuple[int, int]], problem: LinkProblem, final: bool
) -> None:
    watch = LinkWatch(uses_keys)
    found = feed(watch, *events)
    assert found
    assert set(found) == {problem}
    assert watch.problem is problem
    assert watch.needs_new_socket is final
    assert not watch.handshaken


def test_a_mechanism_mismatch_seen_after_the_disconnect_replaces_the_socket_type_guess() -> None:
    watch = LinkWatch(False)
    assert feed(watch, (CONNECTED, 9), (GONE, 9)) == [LinkProblem.WRONG_SOCKET_TYPE]
    feed(watch, (PROTOCOL, zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH))
    assert watch.problem is LinkProblem.KEYS_REQUIRED
    assert watch.needs_new_socket


def test_a_successful_handshake_clears_the_problem_and_a_lost_connection_is_no_failure() -> None:
    watch = LinkWatch(True)
    feed(watch, (CONNECTED, 9), (AUTH, 400), (GONE, 9))
    watch.new_socket()
    assert watch.problem is LinkProblem.KEY_REFUSED  # kept until a handshake succeeds
    assert not watch.needs_new_socket
    assert feed(watch, (CONNECTED, 10), (OK, 0)) == []
    assert (watch.problem, watch.handshaken, watch.ever_handshaken) == (None, True, True)
    # The hub went away: a retry that finds nothing listening says so, and libzmq keeps retrying.
    assert feed(watch, (GONE, 10), (RETRIED, 100)) == [LinkProblem.NOTHING_LISTENING]
    assert not watch.needs_new_socket


def test_every_problem_has_one_line_that_says_what_to_do() -> None:
    for problem in LinkProblem:
        line = describe_problem(problem, "tcp://h:1", who="this agent")
        assert "\n" not in line
        assert "tcp://h:1" in line


def test_no_handshake_in_time_says_the_hub_may_be_overloaded_not_that_it_is_another_socket() -> None:
    line = describe_problem(LinkProblem.HANDSHAKE_TIMEOUT, "tcp://h:7763", what="hub's query")
    assert line.startswith("no reply from tcp://h:7763 within 5 s of connecting (no handshake): ")
    assert "the hub there may be overloaded or stopped" in line
    assert "try again" in line
    assert line.endswith("or tcp://h:7763 is not the hub's query endpoint (check the address and port)")
    watch = LinkWatch(False)
    assert feed(watch, (CONNECTED, 9), (NO_DETAIL, errno.EAGAIN), (GONE, 9)) == [LinkProblem.HANDSHAKE_TIMEOUT]
    assert feed(watch, (CONNECTED, 9), (OK, 0)) == []  # it caught up
    assert watch.problem is None


def test_backoff_doubles_to_its_cap_and_starts_over() -> None:
    backoff = Backoff(1.0, 30.0)
    assert [backoff.next_delay() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    backoff.reset()
    assert backoff.next_delay() == 1


def test_denial_log_limits_lines_in_total_and_sums_up_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    """150 fresh keys within 0.1 s: three lines, then one summary line once it is due; the same key is
    never logged twice within the interval."""
    logger = logging.getLogger("test.denials")
    denials = DenialLog(logger, burst=3, interval_s=60.0, summary_s=10.0)
    with caplog.at_level(logging.WARNING, logger="test.denials"):
        for index in range(150):
            denials.denied(("key", index), f"denied key {index}", 100.0 + index / 1500)
        denials.flush(105.0)
        assert [record.getMessage() for record in caplog.records] == ["denied key 0", "denied key 1", "denied key 2"]
        denials.flush(110.1)
        assert caplog.records[-1].getMessage() == "... and 147 more denied handshakes in the last 10 s"
        denials.flush(200.0)
        assert len(caplog.records) == 4  # nothing more to sum up
        denials.denied(("key", 0), "denied key 0", 200.0)  # a new interval: logged again
        denials.denied(("key", 0), "denied key 0", 200.5)  # but not twice in it
        assert len(caplog.records) == 5
    assert denials.count == 152
