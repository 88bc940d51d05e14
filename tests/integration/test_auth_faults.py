"""A keyed hub under grant changes, handshake floods and a dead authenticator (issue 11.4, 11.7, 11.8).

Real hub and agent processes, keys made by the real ``gsmon keys``; the
dead-authenticator test runs ``HubServer`` in a thread of this process so
that it can stop the hub's ZAP thread behind its back (as test_security's
fail-open test does), with a real agent process publishing into it.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
import zmq
from harness import Hub, KeySet, Processes, gsmon_cli, make_keys, polled, wait_until

from gsmon.common import keys as keyfiles
from gsmon.common.alerts import STALE_ALERTCODE
from gsmon.common.client import Subscriber
from gsmon.common.keys import ClientKeys
from gsmon.hub.server import HubEndpoints, HubServer
from gsmon.hub.state import HubSettings

ANT1 = "GS1/Antenna1"
TICKS = f"{ANT1}/Ticks"
COUNTER = {"points": [{"name": "Ticks", "counter": True, "dt": 0.05}]}


@pytest.fixture(scope="module")
def key_template(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    return make_keys(
        tmp_path_factory.mktemp("keys") / "keys",
        agents={"ant1": [ANT1]},
        subscribers={"ops": None, "v1": ["GS1/"], "v2": ["GS1/"], "v3": ["GS1/"]},
    )


@pytest.fixture
def keys(key_template: KeySet, tmp_path: Path) -> KeySet:
    return key_template.copy(tmp_path / "keys")


def _ops(keys: KeySet) -> ClientKeys:
    return ClientKeys.load(keys.secret("ops"), keys.hub_public)


def _hub_value(sub: Subscriber, name: str) -> object:
    node = sub.tree.get(f"_hub/{name}")
    return None if node is None else node.value


def _revoke(keys: KeySet, name: str) -> None:
    result = gsmon_cli("keys", "revoke", name, "--hub-dir", str(keys.hub_dir))
    assert result.returncode == 0, result.stderr


class _PortThief:
    """A local process's attempt to take a port: bind + listen in a tight loop (SO_REUSEADDR), from a thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.attempts = 0
        self.won = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="thief")

    def __enter__(self) -> _PortThief:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            thief = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # As most servers do (and libzmq): the hub's closed connections in TIME_WAIT do not stop it.
            thief.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                thief.bind(("127.0.0.1", self.port))
                thief.listen(1)
                self.won = True
                time.sleep(3.0)  # hold it, as a process that wants the port would
                return
            except OSError:
                self.attempts += 1
            finally:
                thief.close()


def test_revoking_subscribers_never_frees_the_subscribers_port(procs: Processes, keys: KeySet) -> None:
    """Issue 11.4: three revocations (each rebuilds the subscribers socket) while a local process
    tries to bind the port in a tight loop: it never gets it, the hub keeps running, and ops, on
    the same port, keeps receiving."""
    hub = procs.hub("--keys", str(keys.hub_dir))
    procs.agent(hub, "ant1", COUNTER, mount=ANT1, key=keys.secret("ant1"), hub_key=keys.hub_public)
    port = int(hub.subscribers.rpartition(":")[2])
    with Subscriber(hub.query, "GS1/", curve=_ops(keys)) as ops:
        wait_until(lambda: polled(ops) and TICKS in ops.tree, what="the counter at ops")
        with _PortThief(port) as thief:
            for name in ("v1", "v2", "v3"):
                _revoke(keys, name)
                wait_until(lambda name=name: f"removed ['{name}']" in hub.process.stderr(), what=f"{name}'s revocation")
                time.sleep(0.3)  # the thief keeps trying across the rebuild
        print(f"port thief: {thief.attempts} attempts, won: {thief.won}")
        assert thief.attempts > 100
        assert not thief.won, "another process took the subscribers port during a grant change"
        assert hub.process.popen.poll() is None, hub.process.stderr()[-2000:]
        assert hub.process.stderr().count("subscribers socket rebuilt") == 3
        first = int(ops.tree[TICKS].value)
        wait_until(lambda: polled(ops) and int(ops.tree[TICKS].value) > first + 5, what="ops to keep receiving")


def test_a_flood_of_fresh_keys_gives_a_handful_of_log_lines_and_a_summary(procs: Processes, keys: KeySet) -> None:
    """Issue 11.7: 150 fresh (unknown) keys handshaking within a fraction of a second give at most a few
    WARNING lines in total, then one summary line that counts the rest; all 150 are counted."""
    hub = procs.hub("--keys", str(keys.hub_dir))
    server_key = keyfiles.load_public_key(keys.hub_public)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    dealers: list[zmq.Socket[bytes]] = []
    try:
        started = time.monotonic()
        for _ in range(150):
            pair = keyfiles.KeyPair(*zmq.curve_keypair())
            dealer = context.socket(zmq.DEALER)
            dealers.append(dealer)
            dealer.setsockopt(zmq.LINGER, 0)
            keyfiles.apply_curve_client(dealer, pair, server_key)
            dealer.connect(hub.query)
        print(f"150 fresh keys connected in {time.monotonic() - started:.2f} s")
        summary = re.compile(r"\.\.\. and (\d+) more denied handshakes in the last \d+ s")
        found = wait_until(lambda: summary.findall(hub.process.stderr()), timeout_s=20.0, what="the summary line")
        lines = [line for line in hub.process.stderr().splitlines() if "denied a CURVE handshake" in line]
        print(f"denial lines: {len(lines)}, summarised: {found}")
        assert 1 <= len(lines) <= 5
        assert len(lines) + sum(int(count) for count in found) == 150
        with Subscriber(hub.query, "_hub/", curve=_ops(keys)) as ops:
            wait_until(
                lambda: polled(ops) and int(_hub_value(ops, "auth_denied_handshakes") or 0) >= 150,
                what="150 denied handshakes counted",
            )
    finally:
        for dealer in dealers:
            dealer.close(linger=0)
        context.destroy(linger=0)


@pytest.fixture
def threaded_hub(keys: KeySet) -> Iterator[HubServer]:
    """A keyed HubServer running in a thread of this process (stopped and joined afterwards)."""
    endpoint = "tcp://127.0.0.1:0"
    server = HubServer(
        HubEndpoints(endpoint, endpoint, endpoint),
        HubSettings(heartbeat_interval_s=0.2, agent_liveness=3.0, stale_slack_s=0.5),
        keys_dir=keys.hub_dir,
    )
    server.bind()
    thread = threading.Thread(target=server.run, name="hub", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(timeout=5.0)
        assert not thread.is_alive(), "the hub thread did not stop"


def test_with_the_zap_thread_dead_a_revoked_agent_still_stops(
    threaded_hub: HubServer, keys: KeySet, procs: Processes
) -> None:
    """Issue 11.8: the ZAP thread dies (stopped behind the hub's back); _hub/auth_alive turns False, and
    `gsmon keys revoke ant1` still stops the connected agent's messages: its point goes stale."""
    server = threaded_hub
    assert server.endpoints is not None
    assert server.auth is not None
    endpoints = server.endpoints
    in_thread = cast(Hub, SimpleNamespace(agents=endpoints.agents))  # all procs.agent reads of a Hub
    procs.agent([in_thread], "ant1", COUNTER, mount=ANT1, key=keys.secret("ant1"), hub_key=keys.hub_public)
    with Subscriber(endpoints.query, "", curve=_ops(keys)) as ops:
        wait_until(lambda: polled(ops) and TICKS in ops.tree and not ops.tree[TICKS].stale, what="ant1's counter")
        zap = server.auth._auth
        assert zap is not None
        zap.stop()  # the hub is not told: as if the thread had died
        wait_until(lambda: polled(ops) and _hub_value(ops, "auth_alive") is False, what="auth_alive False")
        assert ops.tree["_hub/auth_alive"].alertcode >= 100
        refused = int(_hub_value(ops, "auth_unauthorised_messages") or 0)
        _revoke(keys, "ant1")
        wait_until(lambda: polled(ops) and ops.tree[TICKS].stale, timeout_s=8.0, what="the revoked agent's point stale")
        assert ops.tree[TICKS].alertcode >= STALE_ALERTCODE
        wait_until(
            lambda: polled(ops) and int(_hub_value(ops, "auth_unauthorised_messages") or 0) > refused + 10,
            what="its further messages refused",
        )


def test_a_revoked_subscriber_let_in_again_recovers_by_itself(procs: Processes, keys: KeySet) -> None:
    """Issue 11.5 for subscribers: after its key is revoked libzmq will not retry the refused handshake;
    the Subscriber makes new sockets with backoff and, once the key is registered again, follows the
    tree again without being restarted."""
    hub = procs.hub("--keys", str(keys.hub_dir))
    procs.agent(hub, "ant1", COUNTER, mount=ANT1, key=keys.secret("ant1"), hub_key=keys.hub_public)
    viewer = ClientKeys.load(keys.secret("v1"), keys.hub_public)
    with Subscriber(hub.query, "GS1/", curve=viewer) as sub:
        wait_until(lambda: polled(sub) and TICKS in sub.tree, what="the viewer's counter")
        _revoke(keys, "v1")
        wait_until(lambda: polled(sub) and sub.hub_lost, timeout_s=10.0, what="the viewer to lose the hub")
        result = gsmon_cli(
            "keys", "subscriber", "v1", "--prefix", "GS1/", "--hub-dir", str(keys.hub_dir),
            "--public-key", str(keys.root / "v1" / "v1.key"),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        wait_until(lambda: polled(sub) and not sub.hub_lost, timeout_s=30.0, what="the viewer to be back")
        seen = int(sub.tree[TICKS].value)
        wait_until(lambda: polled(sub) and int(sub.tree[TICKS].value) > seen, what="live updates again")


def test_an_ipc_subscribers_endpoint_is_kept_across_a_revocation(
    procs: Processes, keys: KeySet, tmp_path: Path
) -> None:
    """The hub's own AF_UNIX listener serves ipc:// too: a rebuild keeps the socket file, ops keeps
    receiving, and the file is removed when the hub stops."""
    path = tmp_path / "subscribers.sock"
    hub = procs.hub("--keys", str(keys.hub_dir), subscribers=f"ipc://{path}")
    assert hub.subscribers == f"ipc://{path}"
    procs.agent(hub, "ant1", COUNTER, mount=ANT1, key=keys.secret("ant1"), hub_key=keys.hub_public)
    with Subscriber(hub.query, "GS1/", curve=_ops(keys)) as ops:
        wait_until(lambda: polled(ops) and TICKS in ops.tree, what="the counter at ops")
        _revoke(keys, "v2")
        wait_until(lambda: "subscribers socket rebuilt" in hub.process.stderr(), what="the rebuild")
        assert path.is_socket()
        seen = int(ops.tree[TICKS].value)
        wait_until(lambda: polled(ops) and int(ops.tree[TICKS].value) > seen + 5, what="ops to keep receiving")
    assert hub.process.stop() == 0
    assert not path.exists()
