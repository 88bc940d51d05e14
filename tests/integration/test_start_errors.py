"""A process that cannot start says why in one line on stderr, with the exit status of its kind of error.

A port that is taken (status 1): the line names the socket, the endpoint and
the setting to change. Each of those tests takes a port with a plain listening socket first (as another
program would), then starts the real command on it and reads its exit status
and its whole stderr. The error is built from the errno where the socket is
bound (:class:`gsmon.common.errors.BindError`), never from a library's text.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import gsmon_cli

pytestmark = pytest.mark.integration

FREE = "tcp://127.0.0.1:0"


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port held by a listening socket for the whole test."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


@pytest.mark.parametrize("role", ["agents", "subscribers", "query"])
def test_hub_on_a_taken_port_exits_1_with_one_line_naming_the_socket_and_the_flag(
    role: str, taken_port: int, tmp_path: Path
) -> None:
    endpoints = {"agents": FREE, "subscribers": FREE, "query": FREE}
    endpoints[role] = taken = f"tcp://127.0.0.1:{taken_port}"
    flags = [word for name, endpoint in endpoints.items() for word in (f"--{name}", endpoint)]
    result = gsmon_cli("hub", *flags, "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 1, result.stderr
    assert result.stdout == "", "no READY line"
    assert result.stderr == (
        f"gsmon hub: cannot bind the {role} socket to {taken}: address already in use; "
        f"stop the other hub or choose another endpoint with --{role}\n"
    )


def test_hub_configured_in_a_file_names_the_key_in_that_file(taken_port: int, tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    taken = f"tcp://127.0.0.1:{taken_port}"
    config.write_text(f'[hub]\nagents = "{FREE}"\nsubscribers = "{FREE}"\nquery = "{taken}"\n')
    result = gsmon_cli("hub", "--config", str(config), "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        f"gsmon hub: cannot bind the query socket to {taken}: address already in use; "
        f"stop the other hub or choose another endpoint with hub.query in {config}\n"
    )


def test_web_on_a_taken_port_exits_1_with_one_line_naming_listen(taken_port: int) -> None:
    listen = f"127.0.0.1:{taken_port}"
    # No hub needs to run: the bridge binds before its feed has anything to say.
    result = gsmon_cli("web", "--hub", "tcp://127.0.0.1:9", "--listen", listen)
    assert result.returncode == 1, result.stderr
    assert result.stdout == "", "no READY line"
    assert result.stderr == (
        f"gsmon web: cannot bind the HTTP socket to {listen}: address already in use; "
        "stop the other gsmon web or choose another endpoint with --listen\n"
    )


def test_web_on_a_host_that_does_not_resolve_exits_2_with_one_line_naming_listen() -> None:
    listen = "999.1.1.1:0"  # (no address: a name for the resolver, which knows none such)
    result = gsmon_cli("web", "--hub", "tcp://127.0.0.1:9", "--listen", listen)
    assert result.returncode == 2, result.stderr
    assert result.stdout == "", "no READY line"
    last = result.stderr.splitlines()[-1]  # (after the warnings about serving beyond loopback)
    assert last.startswith(f"gsmon web: cannot bind the HTTP socket to {listen}: the host does not resolve ("), last
    assert last.endswith("); fix --listen"), last
    assert "unknown error" not in result.stderr  # (once: "unknown error -2", getaddrinfo's code read as an errno)


def test_hub_whose_state_store_cannot_be_opened_exits_1_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    state_dir = tmp_path / "a-file" / "state"
    result = gsmon_cli("hub", "--agents", FREE, "--subscribers", FREE, "--query", FREE, "--state-dir", str(state_dir))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"gsmon hub: cannot open the state store {state_dir}/state.db: ")
    assert line.endswith(": give --state-dir a writable folder")
