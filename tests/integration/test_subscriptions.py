"""The hub's subscribers socket under attack and under faults: no grant leaks, no subscription is lost for good.

Real ``gsmon hub`` and agent processes on loopback; attackers and victims are
ZeroMQ sockets in this process (raw XSUB/SUB, CURVE clients with keys made by
the real ``gsmon keys``) or the project's Subscriber. See hub/subscriptions.py
for the libzmq trap these tests reproduce (a junk upstream frame skews which
connection the hub's manual setsockopt lands on).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from harness import KeySet, Processes, make_keys, polled, wait_until

from gsmon.common import keys as keyfiles
from gsmon.common import protocol as proto
from gsmon.common.alerts import STALE_ALERTCODE
from gsmon.common.client import Subscriber
from gsmon.common.keys import ClientKeys

G_TICKS = "GS1/G/Ticks"
COUNTER = {"points": [{"name": "Ticks", "counter": True, "dt": 0.05}]}
# Keeps the hub busy: 300 points every 20 ms (15,000 updates a second) under GS1/G.
FLOOD = {"points": [{"name": f"F{index}", "counter": True, "dt": 0.02} for index in range(300)]}
ATTEMPTS = 20
RESEND_S = 1.0  # how often an honest raw client re-sends an unconfirmed subscription (as the Subscriber does)


@pytest.fixture(scope="module")
def key_template(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    """Agents g (GS1/G) and a (GS1/A); subscribers ops (everything) and lim (GS1/A only)."""
    return make_keys(
        tmp_path_factory.mktemp("keys") / "keys",
        agents={"g": ["GS1/G"], "a": ["GS1/A"]},
        subscribers={"ops": None, "lim": ["GS1/A"]},
    )


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    """A context whose sockets are all closed at the end of the test, whatever happens."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield ctx
    for sock in _MADE:
        sock.close(linger=0)
    _MADE.clear()
    ctx.destroy(linger=0)


_MADE: list[zmq.Socket[bytes]] = []


def _raw(
    context: zmq.Context[zmq.Socket[bytes]], kind: int, endpoint: str, keys: KeySet | None, name: str
) -> zmq.Socket[bytes]:
    """A raw socket connected to ``endpoint`` (a CURVE client with ``name``'s key when ``keys``), handshake done."""
    sock = context.socket(kind)
    _MADE.append(sock)
    sock.setsockopt(zmq.LINGER, 0)
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    if keys is not None:
        pair = keyfiles.load_key_pair(keys.secret(name))
        keyfiles.apply_curve_client(sock, pair, keyfiles.load_public_key(keys.hub_public))
    sock.connect(endpoint)
    assert monitor.poll(10_000), f"{name}: no handshake with {endpoint}"
    sock.disable_monitor()
    monitor.close(linger=0)
    return sock


def _topics(sock: zmq.Socket[bytes], seconds: float) -> set[bytes]:
    """The topics of everything ``sock`` receives within ``seconds``."""
    seen: set[bytes] = set()
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if sock.poll(int(left * 1000) + 1):
            seen.add(sock.recv_multipart()[0])
    return seen


def _receives(sock: zmq.Socket[bytes], prefix: bytes, timeout_s: float, resend: bool) -> bool:
    """Whether ``sock`` receives a NODE under ``prefix`` within ``timeout_s`` (re-sending its subscription
    every RESEND_S while it does not, as an honest client does when nothing confirms it)."""
    deadline = time.monotonic() + timeout_s
    next_resend = time.monotonic() + RESEND_S
    while time.monotonic() < deadline:
        if sock.poll(50) and sock.recv_multipart()[0].startswith(prefix):
            return True
        if resend and time.monotonic() >= next_resend:
            sock.setsockopt(zmq.UNSUBSCRIBE, prefix)
            sock.setsockopt(zmq.SUBSCRIBE, prefix)
            next_resend = time.monotonic() + RESEND_S
    return False


def _drain(sock: zmq.Socket[bytes]) -> None:
    while sock.poll(0):
        sock.recv_multipart()


def test_a_junk_frame_never_hands_a_limited_key_a_subscription_outside_its_grant(
    procs: Processes, key_template: KeySet, tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    """Issue 11.1, as reported: a GS1/A-limited key holds two XSUB connections L1 and L2; L1 sends
    b"junk", a full-access client (un)subscribes GS1/G/, L2 subscribes GS1/A/quiet/, while an agent
    flood keeps the hub busy; 20 attempts. L2 never receives a NODE outside GS1/A, and the full-access
    client keeps receiving GS1/G."""
    keys = key_template.copy(tmp_path / "keys")
    hub = procs.hub("--keys", str(keys.hub_dir))
    procs.agent(hub, "g", FLOOD, mount="GS1/G", key=keys.secret("g"), hub_key=keys.hub_public)
    procs.agent(hub, "a", COUNTER, mount="GS1/A", key=keys.secret("a"), hub_key=keys.hub_public)
    full = _raw(context, zmq.SUB, hub.subscribers, keys, "ops")
    full.setsockopt(zmq.SUBSCRIBE, b"GS1/G/")
    assert _receives(full, b"GS1/G/", 10.0, resend=True), "the full-access client never received GS1/G"
    l1 = _raw(context, zmq.XSUB, hub.subscribers, keys, "lim")
    l2 = _raw(context, zmq.XSUB, hub.subscribers, keys, "lim")
    leaked: set[bytes] = set()
    for attempt in range(ATTEMPTS):
        _drain(full)
        l1.send(b"junk")
        full.setsockopt(zmq.UNSUBSCRIBE, b"GS1/G/")
        full.setsockopt(zmq.SUBSCRIBE, b"GS1/G/")
        l2.send(b"\x01GS1/A/quiet/")
        leaked |= {topic for topic in _topics(l2, 0.3) if not topic.startswith(b"GS1/A/")}
        assert not leaked, f"attempt {attempt + 1}: L2 (granted GS1/A/ only) received {sorted(leaked)[:5]}"
        assert _receives(full, b"GS1/G/", 5.0, resend=True), f"attempt {attempt + 1}: the full-access client lost GS1/G"
        l2.send(b"\x00GS1/A/quiet/")
    # And afterwards, without any re-sending: the full-access client still holds its subscription.
    assert _receives(full, b"GS1/G/", 5.0, resend=False)
    assert not {topic for topic in _topics(l2, 0.5) if not topic.startswith(b"GS1/A/")}


class _JunkSprayer:
    """Raw XSUB peers (no keys) in a thread of their own, spraying junk frames and (un)subscriptions."""

    def __init__(self, endpoint: str, peers: int = 3) -> None:
        self.endpoint, self.peers = endpoint, peers
        self.rounds = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="junk")

    def __enter__(self) -> _JunkSprayer:
        self._thread.start()
        assert self._ready.wait(10.0), "the junk peers did not connect"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10.0)
        assert self.error is None, self.error

    def _run(self) -> None:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            peers = [_raw(context, zmq.XSUB, self.endpoint, None, f"junk{index}") for index in range(self.peers)]
            self._ready.set()
            while not self._stop.is_set():
                self.rounds += 1
                for index, peer in enumerate(peers):
                    peer.send(b"junk" if (self.rounds + index) % 2 else b"")
                    peer.send(b"\x01GS1/G/" if index == 0 else b"\x00GS1/G/")
                    peer.send(b"\x01GS1/Other/" + str(self.rounds % 50).encode())
                time.sleep(0.002)
        except BaseException as error:  # reported by __exit__
            self.error = error
        finally:
            context.destroy(linger=0)


def test_junk_from_raw_peers_takes_no_subscription_away_for_good(procs: Processes) -> None:
    """Without keys (every peer of 127.0.0.1 is one identity): while raw peers spray junk frames and
    (un)subscriptions at a busy hub, Subscribers that connect one after another each get their
    subscription within a couple of seconds: live updates, and no resync needed any more (a client
    whose subscription landed on another connection re-snapshots at every heartbeat, or never even
    hears one)."""
    hub = procs.hub()
    procs.agent(hub, "g", FLOOD, mount="GS1/G/Flood")
    procs.agent(hub, "g2", COUNTER, mount="GS1/G")
    with _JunkSprayer(hub.subscribers) as sprayer:
        for victim_number in range(6):
            with Subscriber(hub.query, "GS1/G/", timeout_s=10.0) as victim:
                deadline = time.monotonic() + 4.0
                while True:
                    resyncs = victim.resyncs
                    node = victim.tree.get(G_TICKS)
                    ticks = -1 if node is None else int(node.value)
                    for _ in victim.changes(timeout_s=1.0):
                        pass
                    node = victim.tree.get(G_TICKS)
                    if victim.resyncs == resyncs and node is not None and int(node.value) > ticks:
                        break  # a second of live updates without a resync: subscribed
                    assert time.monotonic() < deadline, (
                        f"victim {victim_number + 1}: no live updates within 4 s ({victim.resyncs} resyncs)"
                    )
        print(f"raw junk: {sprayer.rounds} rounds against 6 subscribers")


def test_a_subscriber_that_replaces_the_only_one_while_the_hub_is_stopped_sees_stale(
    procs: Processes, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    """Issue 11.9: the only subscriber leaves and another connects while the hub is SIGSTOPped; after
    SIGCONT the agent is killed: the new subscriber receives the STALE. (The old loop read the new
    connection's subscriptions, then the monitor's "0 connections", and cleared them all.)"""
    hub = procs.hub()
    agent = procs.agent(hub, "g2", COUNTER, mount="GS1/G")
    # A flood that piles up while the hub is stopped: its first turn after SIGCONT is long, so the new
    # connection's subscriptions and both connection events are read in the same turn.
    procs.agent(hub, "g", FLOOD, mount="GS1/Flood")
    old = Subscriber(hub.query, "GS1/").connect()
    wait_until(lambda: polled(old) and G_TICKS in old.tree, what="the first subscriber's ticks")
    leaving: Subscriber | zmq.Socket[bytes] = old
    for round_ in range(5):  # each round: the only subscriber leaves, another comes, the hub frozen meanwhile
        hub.process.signal(signal.SIGSTOP)
        try:
            leaving.close()
            new = context.socket(zmq.SUB)
            _MADE.append(new)
            new.setsockopt(zmq.LINGER, 0)
            new.setsockopt(zmq.RCVHWM, 0)  # the one STALE update must not be dropped on our side
            new.connect(hub.subscribers)
            new.setsockopt(zmq.SUBSCRIBE, b"GS1/G/")  # not the flood's subtree
            new.setsockopt(zmq.SUBSCRIBE, proto.HUB_HEARTBEAT_TOPIC)
            time.sleep(1.5)  # the flood's backlog grows; both connection changes wait in the kernel
        finally:
            hub.process.signal(signal.SIGCONT)
        assert _receives(new, b"GS1/G/", 10.0, resend=False), f"round {round_ + 1}: the new subscriber receives nothing"
        leaving = new
    agent.kill()

    def stale_seen() -> bool:
        while new.poll(50):
            topic, payload = new.recv_multipart()
            if topic == G_TICKS.encode():
                update = proto.decode_hub_message(topic, payload)
                if isinstance(update, proto.NodeUpdate) and update.stale:
                    assert update.alertcode >= STALE_ALERTCODE
                    return True
        return False

    wait_until(stale_seen, timeout_s=10.0, what="the killed agent's point to reach the new subscriber as STALE")


def test_a_limited_key_hears_only_its_own_scope_in_heartbeats(
    procs: Processes, key_template: KeySet, tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    """Issue 11.6: INFO gives a GS1/A-limited key its own heartbeat topic, whose published lists only
    prefixes under GS1/A/, while ops follows GS1/G/ and the full heartbeat lists it; the limited key
    may not subscribe to the full heartbeat topic nor to another scope's."""
    keys = key_template.copy(tmp_path / "keys")
    hub = procs.hub("--keys", str(keys.hub_dir))
    procs.agent(hub, "a", COUNTER, mount="GS1/A", key=keys.secret("a"), hub_key=keys.hub_public)
    ops = ClientKeys.load(keys.secret("ops"), keys.hub_public)
    lim = ClientKeys.load(keys.secret("lim"), keys.hub_public)
    with Subscriber(hub.query, "GS1/G/", curve=ops) as full, Subscriber(hub.query, "GS1/A/", curve=lim) as own:
        assert own.heartbeat_topic == proto.scope_heartbeat_topic("lim")
        assert full.heartbeat_topic == proto.HUB_HEARTBEAT_TOPIC
        spy = _raw(context, zmq.SUB, hub.subscribers, keys, "lim")
        for topic in (proto.scope_heartbeat_topic("lim"), proto.HUB_HEARTBEAT_TOPIC, b"\x00hub/", b"\x00"):
            spy.setsockopt(zmq.SUBSCRIBE, topic)
        beats: list[proto.HubHeartbeat] = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            full.poll(0.01)
            if spy.poll(10):
                topic, payload = spy.recv_multipart()
                assert topic == proto.scope_heartbeat_topic("lim"), f"the limited key received {topic!r}"
                beat = proto.decode_hub_message(topic, payload)
                assert isinstance(beat, proto.HubHeartbeat)
                beats.append(beat)
        assert len(beats) >= 3
        assert all(set(beat.published) == {"GS1/A/"} for beat in beats), beats[-1].published
        assert "GS1/G/" in full.tree or full.hub_lost is False
        wait_until(lambda: polled(own) and "GS1/A/Ticks" in own.tree, what="the limited subscriber's own data")
