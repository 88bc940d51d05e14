"""`gsmon get` and the Subscriber tell apart why the hub did not answer (issue 10.3), each in one line.

Real hub processes; `gsmon get` runs as a real command; the Subscriber's
typed errors are checked in this process. Before, all of these read "no
answer from the hub at ... within 5 s".
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from harness import Hub, KeySet, Processes, gsmon_cli, make_keys

from gsmon.common.client import (
    HandshakeFailedError,
    HubKeysRequiredError,
    HubNotListeningError,
    HubTimeoutError,
    HubUnavailableError,
    NotAQueryEndpointError,
    Subscriber,
)
from gsmon.common.keys import ClientKeys

TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    return make_keys(
        tmp_path_factory.mktemp("keys") / "keys", agents={}, subscribers={"ops": None}, strangers=["nobody"]
    )


def _get(endpoint: str, *extra: str) -> tuple[str, float]:
    """Run `gsmon get --hub endpoint`; it must fail with status 1 and one line; return it and the time taken."""
    started = time.monotonic()
    result = gsmon_cli("get", "--hub", endpoint, "--timeout-s", str(TIMEOUT_S), *extra)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0], elapsed


def _subscriber_error(endpoint: str, curve: ClientKeys | None = None) -> HubUnavailableError:
    with pytest.raises(HubUnavailableError) as raised:
        Subscriber(endpoint, "", timeout_s=TIMEOUT_S, curve=curve).connect()
    return raised.value


def test_nothing_listening(procs: Processes) -> None:
    gone = procs.hub(name="gone")
    gone.process.stop()
    line, _ = _get(gone.query)
    assert "nothing is listening at" in line
    assert "connection refused" in line
    assert isinstance(_subscriber_error(gone.query), HubNotListeningError)


def test_keys_required(procs: Processes, keys: KeySet) -> None:
    hub = procs.hub("--keys", str(keys.hub_dir))
    line, elapsed = _get(hub.query)
    assert "requires CURVE keys" in line
    assert "--key" in line
    assert elapsed < TIMEOUT_S + 5  # said as soon as the handshake fails
    assert isinstance(_subscriber_error(hub.query), HubKeysRequiredError)


def test_handshake_failed_with_an_unknown_key_or_the_wrong_hub_key(procs: Processes, keys: KeySet) -> None:
    hub = procs.hub("--keys", str(keys.hub_dir))
    line, _ = _get(hub.query, "--key", str(keys.secret("nobody")), "--hub-key", str(keys.hub_public))
    assert "refused this client's key" in line
    line, _ = _get(hub.query, "--key", str(keys.secret("ops")), "--hub-key", str(keys.other_hub_public))
    assert "the hub's public key does not match" in line
    stranger = ClientKeys.load(keys.secret("nobody"), keys.hub_public)
    assert isinstance(_subscriber_error(hub.query, stranger), HandshakeFailedError)
    wrong_hub = ClientKeys.load(keys.secret("ops"), keys.other_hub_public)
    assert isinstance(_subscriber_error(hub.query, wrong_hub), HandshakeFailedError)


@pytest.mark.parametrize("port", ["agents", "subscribers"])
def test_not_a_query_endpoint(procs: Processes, port: str) -> None:
    hub = procs.hub()
    endpoint = getattr(hub, port)
    line, _ = _get(endpoint)
    assert f"{endpoint} is not the hub's query endpoint" in line
    assert isinstance(_subscriber_error(endpoint), NotAQueryEndpointError)


def test_a_plain_timeout(procs: Processes) -> None:
    hub: Hub = procs.hub()
    hub.process.signal(signal.SIGSTOP)
    try:
        line, _ = _get(hub.query)
        assert f"no answer from the hub at {hub.query} within {TIMEOUT_S:g} s" in line
        assert isinstance(_subscriber_error(hub.query), HubTimeoutError)
    finally:
        hub.process.signal(signal.SIGCONT)


def test_a_hub_that_does_not_even_greet_is_said_to_be_maybe_overloaded_not_another_socket(procs: Processes) -> None:
    """Stopped for longer than the handshake interval (5 s), a hub looks like an overloaded one: connected,
    then silence. Before, this read "... is not the hub's query endpoint", sending operators to the port."""
    hub: Hub = procs.hub()
    hub.process.signal(signal.SIGSTOP)
    try:
        line, _ = _get(hub.query, "--timeout-s", "7")  # (the later --timeout-s wins)
        assert f"no reply from {hub.query} within 5 s of connecting (no handshake)" in line
        assert "may be overloaded or stopped" in line
        with pytest.raises(HubTimeoutError, match="may be overloaded"):
            Subscriber(hub.query, "", timeout_s=7.0).connect()
    finally:
        hub.process.signal(signal.SIGCONT)


def test_a_working_hub_still_answers(procs: Processes, keys: KeySet, tmp_path: Path) -> None:
    """Positive control for the cases above: the same commands with the right keys work."""
    hub = procs.hub("--keys", str(keys.hub_dir))
    result = gsmon_cli("get", "--hub", hub.query, "--key", str(keys.secret("ops")), "--hub-key", str(keys.hub_public))
    assert result.returncode == 0, result.stderr
    assert "_hub" in result.stdout
