"""Security end to end: a keyed ``gsmon hub`` lets nobody inject, spoof or read beyond a grant.

Keys are made with the real ``gsmon keys`` command (once per module, copied
per test); the hub, agents and subscribers are real processes, except in the
fail-open test, which runs ``HubServer`` in a thread so that it can stop the
hub's ZAP authenticator from outside. A refusal is always shown next to a
positive control on the same hub, so that "nothing arrived" never just means
"too slow".
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from harness import Hub, KeySet, Process, Processes, gsmon_cli, make_keys, polled, wait_until
from zmq.utils.monitor import recv_monitor_message

from gsmon.common import keys as keyfiles
from gsmon.common import protocol as proto
from gsmon.common.alerts import STALE_ALERTCODE
from gsmon.common.client import HubUnavailableError, Subscriber
from gsmon.common.keys import ClientKeys
from gsmon.hub.server import HubEndpoints, HubServer
from gsmon.hub.state import HubSettings

ANT1 = "GS1/Antenna1"
ANT2 = "GS1/Antenna2"
TICKS = f"{ANT1}/Ticks"
COUNTER = {"points": [{"name": "Ticks", "counter": True, "dt": 0.05}]}
QUIET_S = 1.5  # how long refused clients keep trying before we conclude nothing got through
REVOCATION_BOUND_S = 2.0


@pytest.fixture(scope="module")
def key_template(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    """Agents ant1/ant2, subscribers ops (all), viewer (all), limited (GS1/Antenna1/ only), a stranger."""
    return make_keys(
        tmp_path_factory.mktemp("keys") / "keys",
        agents={"ant1": [ANT1], "ant2": [ANT2]},
        subscribers={"ops": None, "viewer": None, "limited": [ANT1]},
        strangers=["stranger"],
    )


@pytest.fixture
def hub_keys(key_template: KeySet, tmp_path: Path) -> KeySet:
    """This test's own copy of the keys (it may revoke some)."""
    return key_template.copy(tmp_path / "keys")


def _client(keys: KeySet, name: str) -> ClientKeys:
    return ClientKeys.load(keys.secret(name), keys.hub_public)


def _keyed_hub(procs: Processes, keys: KeySet) -> Hub:
    return procs.hub("--keys", str(keys.hub_dir))


def _agent(
    procs: Processes, hub: Hub, keys: KeySet, key: str, name: str, mount: str, hub_public: Path | None = None
) -> Process:
    """An agent process with ``key``'s secret (and the hub's public key unless ``hub_public``)."""
    return procs.agent(hub, name, COUNTER, mount=mount, key=keys.secret(key), hub_key=hub_public or keys.hub_public)


def _hub_count(sub: Subscriber, name: str) -> int:
    node = sub.tree.get(f"_hub/{name}")
    return 0 if node is None else int(node.value)


def _gs1_leaves(sub: Subscriber) -> set[str]:
    return {path for path, node in sub.tree.items() if path.startswith("GS1") and node.kind == "point"}


def _ticking(sub: Subscriber, path: str = TICKS) -> int:
    """Wait for the counter at ``path`` to advance; return its new value."""
    node = sub.tree.get(path)
    past = -1 if node is None else int(node.value)
    wait_until(lambda: polled(sub) and path in sub.tree and int(sub.tree[path].value) > past, what=f"{path} to advance")
    return int(sub.tree[path].value)


def _watch_quietly(sub: Subscriber, seconds: float) -> None:
    """Keep taking in updates for an observation window (how long refused clients get to try)."""
    for _ in sub.changes(timeout_s=seconds):
        pass


# -- who may connect ---------------------------------------------------------------------------------


def test_agents_without_a_valid_key_cannot_change_the_tree(procs: Processes, hub_keys: KeySet) -> None:
    """A NULL (keyless) agent, an agent with an unknown key and one holding the wrong hub key all try
    to publish as ant2 at GS1/Antenna2: nothing of theirs reaches the tree, the unknown key is
    denied at the handshake, and the real ant2 then gets in at once."""
    hub = _keyed_hub(procs, hub_keys)
    _agent(procs, hub, hub_keys, "ant1", "ant1", ANT1)
    with Subscriber(hub.query, "", curve=_client(hub_keys, "ops")) as sub:
        _ticking(sub)
        procs.agent(hub, "ant2", COUNTER, mount=ANT2)  # no key at all
        _agent(procs, hub, hub_keys, "stranger", "ant2", ANT2)  # a key the hub does not list
        _agent(procs, hub, hub_keys, "ant2", "ant2", ANT2, hub_public=hub_keys.other_hub_public)  # wrong hub key
        wait_until(lambda: polled(sub) and _hub_count(sub, "auth_denied_handshakes") > 0, what="the unknown key denied")
        _watch_quietly(sub, QUIET_S)
        assert _gs1_leaves(sub) == {TICKS}
        assert "_hub/agents/ant2" not in sub.tree
        _ticking(sub)
        # Positive control: the real ant2, with its own key, is in at once.
        _agent(procs, hub, hub_keys, "ant2", "ant2", ANT2)
        _ticking(sub, f"{ANT2}/Ticks")
        assert _gs1_leaves(sub) == {TICKS, f"{ANT2}/Ticks"}


def test_a_valid_agent_cannot_speak_for_another_or_publish_outside_its_mounts(
    procs: Processes, hub_keys: KeySet
) -> None:
    """ant1's (valid) key used as agent ant2, or as ant1 mounted at GS1/Antenna2, at GS1 (above its
    mount) or at GS1/Antenna10 (a sibling sharing its name's prefix): every message is refused and
    counted, and the real ant1 keeps publishing."""
    hub = _keyed_hub(procs, hub_keys)
    _agent(procs, hub, hub_keys, "ant1", "ant1", ANT1)
    with Subscriber(hub.query, "", curve=_client(hub_keys, "ops")) as sub:
        _ticking(sub)
        _agent(procs, hub, hub_keys, "ant1", "ant2", ANT2)  # another agent's name
        for mount in (ANT2, "GS1", "GS1/Antenna10"):
            _agent(procs, hub, hub_keys, "ant1", "ant1", mount)  # outside its mounts
        wait_until(
            lambda: polled(sub) and _hub_count(sub, "auth_unauthorised_messages") >= 40,
            what="the impostors' messages refused",
        )
        _watch_quietly(sub, QUIET_S)
        assert _gs1_leaves(sub) == {TICKS}
        assert not sub.tree[TICKS].stale
        assert "_hub/agents/ant2" not in sub.tree
        _ticking(sub)


# -- revocation on a running hub ---------------------------------------------------------------------------


def _revoke(keys: KeySet, name: str) -> float:
    """``gsmon keys revoke NAME``; returns the wall-clock time it finished."""
    result = gsmon_cli("keys", "revoke", name, "--hub-dir", str(keys.hub_dir))
    assert result.returncode == 0, result.stderr
    return time.time()


def test_a_revoked_agent_key_stops_within_2s_on_its_open_connection(procs: Processes, hub_keys: KeySet) -> None:
    """``gsmon keys revoke ant1`` while ant1 is connected and publishing: no value of ant1's is applied
    later than 2 s after the command, its points go stale, its further messages are counted as
    unauthorised, and ant2 is not affected."""
    hub = _keyed_hub(procs, hub_keys)
    _agent(procs, hub, hub_keys, "ant1", "ant1", ANT1)
    _agent(procs, hub, hub_keys, "ant2", "ant2", ANT2)
    other = f"{ANT2}/Ticks"
    with Subscriber(hub.query, "", curve=_client(hub_keys, "ops")) as sub:
        _ticking(sub)
        _ticking(sub, other)
        started = time.time()
        revoked_at = _revoke(hub_keys, "ant1")
        wait_until(lambda: polled(sub) and sub.tree[TICKS].stale, timeout_s=5.0, what="ant1's point stale")
        refused = _hub_count(sub, "auth_unauthorised_messages")
        last = sub.tree[TICKS]
        _watch_quietly(sub, 1.0)
        assert sub.tree[TICKS].value == last.value, "a value from the revoked key was applied"
        assert last.received_at_s is not None
        lag = last.received_at_s - revoked_at
        print(
            f"revoked agent: last value applied {lag * 1000:+.0f} ms after `gsmon keys revoke` returned "
            f"({(last.received_at_s - started) * 1000:.0f} ms after it started)"
        )
        assert lag < REVOCATION_BOUND_S
        assert sub.tree[TICKS].alertcode >= STALE_ALERTCODE
        assert sub.tree["_hub/agents/ant1"].value == "silent"
        assert _hub_count(sub, "auth_unauthorised_messages") > refused  # it keeps trying; still refused
        _ticking(sub, other)
        assert not sub.tree[other].stale


def _status(process: Process) -> dict[str, Any]:
    line = process.latest("STATUS ")
    return {} if line is None else dict(json.loads(line.removeprefix("STATUS ")))


def test_a_revoked_subscriber_key_stops_receiving_within_2s(procs: Processes, hub_keys: KeySet) -> None:
    """``gsmon keys revoke viewer`` while viewer (a subscriber process) follows GS1/: it receives no
    value later than 2 s after the command, while ops, still granted, keeps receiving."""
    hub = _keyed_hub(procs, hub_keys)
    _agent(procs, hub, hub_keys, "ant1", "ant1", ANT1)
    viewer = procs.subscriber(
        hub, "GS1/", name="viewer", watch=TICKS, key=hub_keys.secret("viewer"), hub_key=hub_keys.hub_public
    )
    with Subscriber(hub.query, "GS1/", curve=_client(hub_keys, "ops")) as ops:
        seen = _ticking(ops)
        wait_until(lambda: (_status(viewer).get("value") or 0) >= seen, what="the viewer to follow the counter")
        revoked_at = _revoke(hub_keys, "viewer")
        # ops, still granted, gets at least 2.5 s more of the counter (about 50 values)...
        deadline = revoked_at + REVOCATION_BOUND_S + 0.5
        while time.time() < deadline:
            _ticking(ops)
        # ...while the viewer's last change came within the bound.
        final = _status(viewer)
        lag = final["changed_at"] - revoked_at
        print(
            f"revoked subscriber: last change seen {lag * 1000:+.0f} ms after `gsmon keys revoke` returned; "
            f"viewer stopped at {final['value']}, ops at {ops.tree[TICKS].value}"
        )
        assert lag < REVOCATION_BOUND_S
        assert final["value"] < ops.tree[TICKS].value - 10
        _ticking(ops)
        assert viewer.popen.poll() is None  # still running: refused, not crashed


def test_a_prefix_limited_subscriber_cannot_subscribe_or_snapshot_outside_its_grant(
    procs: Processes, hub_keys: KeySet
) -> None:
    """A subscriber granted GS1/Antenna1/ only: snapshots of GS1/Antenna2/, GS1/ or everything are
    refused, a raw SUB's subscriptions to those (and to _hub/) deliver nothing, while its own
    subtree is served on the same connection."""
    hub = _keyed_hub(procs, hub_keys)
    _agent(procs, hub, hub_keys, "ant1", "ant1", ANT1)
    _agent(procs, hub, hub_keys, "ant2", "ant2", ANT2)
    limited = _client(hub_keys, "limited")
    for prefix in (f"{ANT2}/", "GS1/", "GS1", "", "_hub/", ANT1):
        with pytest.raises(HubUnavailableError):
            Subscriber(hub.query, prefix, curve=limited, timeout_s=2.0).connect()
    with Subscriber(hub.query, f"{ANT1}/", curve=limited) as own:
        _ticking(own)
        assert set(own.tree) == {TICKS}
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        raw = context.socket(zmq.SUB)
        raw.setsockopt(zmq.LINGER, 0)
        limited.apply(raw)
        with Subscriber(hub.query, "", curve=_client(hub_keys, "ops")) as ops:
            raw.connect(ops.endpoints["subscribers"])
            for topic in (b"", b"GS1/", f"{ANT2}/".encode(), b"_hub/", proto.HUB_HEARTBEAT_TOPIC[:1]):
                raw.setsockopt(zmq.SUBSCRIBE, topic)
            refused_before = _hub_count(ops, "auth_unauthorised_messages")
            wait_until(
                lambda: polled(ops) and _hub_count(ops, "auth_unauthorised_messages") >= refused_before + 5,
                what="the five subscriptions refused",
            )
            assert not raw.poll(int(QUIET_S * 1000)), "a refused subscription delivered data"
            raw.setsockopt(zmq.SUBSCRIBE, f"{ANT1}/".encode())  # positive control on the same connection
            assert raw.poll(5000)
            topics = set()
            window = time.monotonic() + 0.5
            while (left := window - time.monotonic()) > 0:
                if raw.poll(int(left * 1000) + 1):
                    topics.add(raw.recv_multipart()[0])
            assert topics == {TICKS.encode()}
        # A hand-made snapshot request outside the grant gets an ERROR, not data.
        dealer = context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        limited.apply(dealer)
        dealer.connect(hub.query)
        dealer.send(
            proto.encode(proto.SnapshotRequest(sender="x", epoch=0, seq=1, sent_ns=0, request_id=9, prefix="GS1/"))
        )
        assert dealer.poll(5000)
        reply = proto.decode(dealer.recv())
        assert isinstance(reply, proto.Error)
        assert "not allowed" in reply.message
    finally:
        context.destroy(linger=0)


# -- the authenticator's fail-open guards ----------------------------------------------------------------


def _hub_start_fails(keys_dir: Path) -> str:
    """Start ``gsmon hub --keys keys_dir``; it must exit non-zero at once. Returns its stderr."""
    result = gsmon_cli(
        "hub",
        "--keys",
        str(keys_dir),
        "--agents",
        "tcp://127.0.0.1:0",
        "--subscribers",
        "tcp://127.0.0.1:0",
        "--query",
        "tcp://127.0.0.1:0",
        timeout_s=20.0,
    )
    assert result.returncode != 0
    assert "READY" not in result.stdout
    return result.stderr


def test_hub_refuses_to_start_with_keys_but_no_usable_allow_list(tmp_path: Path, key_template: KeySet) -> None:
    """``gsmon hub --keys``: an empty allow-list, a missing one, or one others may write makes the hub
    exit non-zero with a message saying so, instead of serving unguarded or guarding nobody."""
    empty = tmp_path / "empty"
    assert gsmon_cli("keys", "init", str(empty)).returncode == 0
    assert "accept nobody" in _hub_start_fails(empty)

    missing = key_template.copy(tmp_path / "missing")
    (missing.hub_dir / "authorized.toml").unlink()
    assert "allow-list not found" in _hub_start_fails(missing.hub_dir)

    loose = key_template.copy(tmp_path / "loose")
    os.chmod(loose.hub_dir / "authorized.toml", 0o666)  # noqa: S103 -- the unsafe mode under test
    assert "writable by group/others" in _hub_start_fails(loose.hub_dir)


@pytest.fixture
def threaded_hub(hub_keys: KeySet) -> Iterator[HubServer]:
    """A keyed HubServer running in a thread of this process (stopped and joined afterwards)."""
    endpoint = "tcp://127.0.0.1:0"
    server = HubServer(
        HubEndpoints(endpoint, endpoint, endpoint), HubSettings(heartbeat_interval_s=0.2), keys_dir=hub_keys.hub_dir
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


def test_with_the_zap_thread_dead_an_unknown_key_still_cannot_inject(threaded_hub: HubServer, hub_keys: KeySet) -> None:
    """Stop the hub's ZAP thread behind its back: libzmq then completes the CURVE handshake of any client
    that knows the hub's public key (the fail-open trap), but such connections carry no User-Id, so
    the hub refuses every message they send and every subscription they make; _hub/auth_alive turns False."""
    server = threaded_hub
    assert server.endpoints is not None
    assert server.auth is not None
    endpoints = server.endpoints
    with Subscriber(endpoints.query, "", curve=_client(hub_keys, "ops")) as ops:
        wait_until(lambda: polled(ops) and ops.tree.get("_hub/auth_alive") is not None, what="hub health")
        assert ops.tree["_hub/auth_alive"].value is True
        zap = server.auth._auth  # pyzmq's authenticator thread, inside the hub's HubAuthenticator
        assert zap is not None
        zap.stop()  # the hub is not told: as if the thread had died
        wait_until(lambda: polled(ops) and ops.tree["_hub/auth_alive"].value is False, what="auth_alive False")

        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            stranger = keyfiles.load_key_pair(hub_keys.secret("stranger"))
            server_key = keyfiles.load_public_key(hub_keys.hub_public)
            rogue = context.socket(zmq.XPUB)
            rogue.setsockopt(zmq.LINGER, 0)
            monitor = rogue.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
            keyfiles.apply_curve_client(rogue, stranger, server_key)
            rogue.connect(endpoints.agents)
            assert monitor.poll(5000), "no handshake: the fail-open path was not exercised"
            assert recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED
            refused = _hub_count(ops, "auth_unauthorised_messages")
            seq = 0

            def inject() -> bool:
                nonlocal seq
                for sender, mount in (("ant1", ANT1), ("stranger", "GS1/Stranger")):
                    seq += 1
                    entry = proto.PointEntry("Injected", "pwned", 100, "CRITICAL", time.time(), 1.0)
                    state = proto.State(
                        sender=sender, epoch=1, seq=seq, sent_ns=0, mount=mount, heartbeat_s=1.0, points=[entry]
                    )
                    rogue.send(proto.encode(state))
                ops.poll(0.05)
                return _hub_count(ops, "auth_unauthorised_messages") >= refused + 20

            wait_until(inject, what="the stranger's messages refused")
            # And as a subscriber: connected (no ZAP to refuse it), but every subscription is refused.
            spy = context.socket(zmq.SUB)
            spy.setsockopt(zmq.LINGER, 0)
            keyfiles.apply_curve_client(spy, stranger, server_key)
            spy.connect(ops.endpoints["subscribers"])
            spy.setsockopt(zmq.SUBSCRIBE, b"")
            _watch_quietly(ops, QUIET_S)
            assert not spy.poll(0), "an unauthenticated subscriber received data"
            assert not [path for path in ops.tree if path.startswith("GS1")]
            assert "_hub/agents/ant1" not in ops.tree
            assert "_hub/agents/stranger" not in ops.tree
            assert ops.tree["_hub/auth_alive"].value is False
            monitor.close(linger=0)
        finally:
            context.destroy(linger=0)


# -- binding beyond loopback -----------------------------------------------------------------------------


def test_a_hub_on_a_non_loopback_address_without_keys_warns_loudly(procs: Processes, hub_keys: KeySet) -> None:
    """Binding 0.0.0.0 without keys: a WARNING on stderr and WARNING=unauthenticated-non-loopback in the
    ready line; with keys, neither."""
    exposed = procs.hub(agents="tcp://0.0.0.0:0", name="exposed")
    assert "WARNING=unauthenticated-non-loopback" in exposed.ready_line
    wait_until(lambda: "WITHOUT KEYS" in exposed.process.stderr(), what="the warning on stderr")
    guarded = procs.hub("--keys", str(hub_keys.hub_dir), agents="tcp://0.0.0.0:0", name="guarded")
    assert "WARNING" not in guarded.ready_line
    local = procs.hub(name="local")
    assert "WARNING" not in local.ready_line
