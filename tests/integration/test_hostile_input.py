"""Hostile input against a real hub process: garbage never crashes it, never enters the tree, never stalls the rest.

Every test runs a real ``gsmon hub`` and real agent/subscriber processes on
loopback; attackers are plain sockets in this process (raw TCP with the
``socket`` module, or ZeroMQ sockets sending what no gsmon peer would). The
hub's own counters (``_hub/messages_rejected``, ``_hub/decode_errors``,
``_hub/subscriptions_refused``...) are read the way any subscriber reads them,
and its memory with psutil.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import random
import signal
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import psutil
import pytest
import zmq
from harness import Hub, KeySet, Process, Processes, make_keys, polled, tree_digest, wait_until

from gsmon.common import protocol as proto
from gsmon.common.client import Subscriber
from gsmon.common.keys import ClientKeys

MiB = 1024 * 1024
GOOD = "GS1/Good"
TICKS = f"{GOOD}/Ticks"
COUNTER = {"points": [{"name": "Ticks", "counter": True, "dt": 0.05}]}


@pytest.fixture(scope="module")
def key_template(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    """One set of keys for the module (copied per test): agent ``good``, subscriber ``ops``."""
    return make_keys(tmp_path_factory.mktemp("keys") / "keys", agents={"good": [GOOD]}, subscribers={"ops": None})


def _start(procs: Processes, keys: KeySet | None = None, *hub_args: str) -> tuple[Hub, ClientKeys | None]:
    """A hub and the good agent (a counter every 50 ms); with keys, both use CURVE."""
    extra = [*hub_args, *(["--keys", str(keys.hub_dir)] if keys else [])]
    hub = procs.hub(*extra)
    if keys is None:
        procs.agent(hub, "good", COUNTER, mount=GOOD)
        return hub, None
    procs.agent(hub, "good", COUNTER, mount=GOOD, key=keys.secret("good"), hub_key=keys.hub_public)
    return hub, ClientKeys.load(keys.secret("ops"), keys.hub_public)


def _ticks(sub: Subscriber) -> int:
    node = sub.tree.get(TICKS)
    return 0 if node is None else int(node.value)


def _hub_point(sub: Subscriber, name: str) -> Any:
    node = sub.tree.get(f"_hub/{name}")
    return None if node is None else node.value


def _hub_count(sub: Subscriber, name: str) -> int:
    value = _hub_point(sub, name)
    return 0 if value is None else int(value)


def _rss(hub: Hub) -> int:
    return int(psutil.Process(hub.process.pid).memory_info().rss)


def _host_port(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
    return host, int(port)


def _advancing(sub: Subscriber, past: int, timeout_s: float = 5.0, what: str = "the good agent's counter") -> int:
    wait_until(lambda: polled(sub) and _ticks(sub) > past, timeout_s=timeout_s, what=f"{what} to pass {past}")
    return _ticks(sub)


# -- 1. raw TCP garbage ------------------------------------------------------------------------------

_SIGNATURE = b"\xff" + bytes(8) + b"\x7f"


def _zmtp3_greeting(mechanism: bytes) -> bytes:
    return _SIGNATURE + b"\x03\x00" + mechanism.ljust(20, b"\x00") + b"\x00" + bytes(31)


def _raw_attacks(rnd: random.Random) -> list[bytes]:
    """What one attacking connection sends first (empty: an idle, half-open connection)."""
    zmtp3 = _zmtp3_greeting(b"NULL")
    attacks: list[bytes] = []
    attacks += [b""] * 25  # idle: connect and say nothing
    attacks += [zmtp3[: rnd.randrange(1, len(zmtp3))] for _ in range(10)]  # truncated greetings
    attacks += [b"\x01\x00" + rnd.randbytes(rnd.randrange(0, 64)) for _ in range(5)]  # ZMTP 1.0: identity frame
    # ZMTP 2.0: signature, revision 1, socket type, empty identity, then garbage frames.
    attacks += [
        _SIGNATURE + b"\x01" + bytes([rnd.randrange(0, 12)]) + b"\x00\x00" + rnd.randbytes(64) for _ in range(5)
    ]
    attacks += [zmtp3 + rnd.randbytes(rnd.randrange(1, 512)) for _ in range(5)]  # NULL mechanism, garbage commands
    attacks += [_zmtp3_greeting(b"CURVE") + b"\x04\xff\x05HELLO" + rnd.randbytes(250) for _ in range(5)]
    attacks += [_zmtp3_greeting(b"PLAIN") + rnd.randbytes(100) for _ in range(3)]
    attacks += [rnd.randbytes(rnd.randrange(1, 4096)) for _ in range(40)]  # random payloads
    attacks += [_SIGNATURE + b"\x03\x00" + rnd.randbytes(200) for _ in range(5)]  # random mechanism names
    return attacks


class RawAttack:
    """Attacking connections to a set of ports, made from a background thread; idle ones stay open until close()."""

    def __init__(self, ports: list[tuple[str, int]], duration_s: float, seed: int, max_held: int = 300) -> None:
        self.ports = ports
        self.duration_s = duration_s
        self.max_held = max_held
        self.rnd = random.Random(seed)
        self.held: list[socket.socket] = []
        self.connections = 0
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="raw-attack")

    def start(self) -> RawAttack:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            end = time.monotonic() + self.duration_s
            while time.monotonic() < end:
                for port in self.ports:
                    for payload in _raw_attacks(self.rnd):
                        self._one(port, payload)
        except BaseException as error:  # reported by the test, not lost in the thread
            self.error = error
        finally:
            self.done.set()

    def _one(self, port: tuple[str, int], payload: bytes) -> None:
        conn = socket.create_connection(port, timeout=2.0)
        self.connections += 1
        try:
            if payload:
                conn.sendall(payload)
        except OSError:
            pass  # the hub may hang up first: that is its right
        if (payload and self.rnd.random() < 0.7) or len(self.held) >= self.max_held:
            conn.close()  # hit and run
        else:
            self.held.append(conn)  # half-open: stays until the test closes it

    def close(self) -> None:
        self._thread.join(timeout=30)
        for conn in self.held:
            conn.close()
        self.held.clear()


@pytest.mark.parametrize("keyed", [False, True], ids=["no-keys", "keys"])
def test_raw_tcp_garbage_on_every_port_neither_stops_the_hub_nor_a_good_agent(
    procs: Processes, tmp_path: Path, key_template: KeySet, keyed: bool
) -> None:
    """Random bytes, truncated/old/foreign ZMTP greetings and idle half-open connections on all three
    hub ports: the hub stays up, the good agent's counter keeps advancing at a subscriber during the
    attack, no garbage reaches the tree, and the hub's file descriptors return to normal."""
    keys = key_template.copy(tmp_path / "keys") if keyed else None
    hub, curve = _start(procs, keys)
    with Subscriber(hub.query, "", curve=curve) as sub:
        _advancing(sub, 0)
        hub_process = psutil.Process(hub.process.pid)
        fds_before = hub_process.num_fds()
        ports = [_host_port(endpoint) for endpoint in (hub.agents, hub.subscribers, hub.query)]
        attack = RawAttack(ports, duration_s=2.0, seed=1234).start()
        seen_during: list[tuple[float, int]] = []
        try:
            while not attack.done.is_set():
                sub.poll(0.05)
                seen_during.append((time.monotonic(), _ticks(sub)))
            # Still under siege (half-open connections held): the agent keeps delivering.
            held = len(attack.held)
            during = _advancing(sub, _ticks(sub), what="the counter with half-open connections held")
        finally:
            attack.close()
        assert attack.error is None, attack.error
        assert attack.connections >= 3 * 100
        assert held >= 200
        assert hub.process.popen.poll() is None, "the hub died"
        values = [value for _, value in seen_during]
        span = seen_during[-1][0] - seen_during[0][0]
        print(
            f"raw attack: {attack.connections} connections in {span:.2f} s, {held} held open; "
            f"counter {values[0]} -> {values[-1]} during it; hub fds {fds_before} -> {hub_process.num_fds()}"
        )
        assert values[-1] > values[0], "the counter did not advance during the attack"
        # Never a long silence during the attack (the counter ticks every 50 ms).
        changes = [
            at for (at, value), (_, before) in zip(seen_during[1:], seen_during, strict=False) if value != before
        ]
        gaps = [later - earlier for earlier, later in itertools.pairwise(changes)]
        assert max(gaps, default=0.0) < 2.0, f"longest pause in deliveries during the attack: {max(gaps):.2f} s"
        _advancing(sub, during, what="the counter after the attack")
        paths = set(sub.tree)
        assert {path for path in paths if not path.startswith("_hub")} == {"GS1", GOOD, TICKS}
        wait_until(
            lambda: hub_process.num_fds() <= fds_before + 5,
            timeout_s=10.0,
            what=f"the hub's fds to return near {fds_before} (now {hub_process.num_fds()})",
        )
        if keyed:
            assert _hub_point(sub, "auth_alive") is True


# -- 2. malformed msgpack on the agents socket ---------------------------------------------------------


def _envelope(kind: Any, body: Any, sender: Any = "fuzz", **header: Any) -> bytes:
    items = [header.get("major", 1), header.get("minor", 0), kind, sender, header.get("epoch", 7)]
    items += [header.get("seq", 1), header.get("sent_ns", 0), body]
    return msgpack.packb(items, use_bin_type=True)


def _valid_state(sender: str = "fuzz", mount: str = "GS1/Fuzz", seq: int = 1, value: Any = 1) -> bytes:
    entry = proto.PointEntry("P", value, 0, "", time.time(), 1.0)
    return proto.encode(
        proto.State(
            sender=sender, epoch=7, seq=seq, sent_ns=time.time_ns(), mount=mount, heartbeat_s=1.0, points=[entry]
        )
    )


def _malformed(rnd: random.Random, count: int) -> Iterator[tuple[str, list[bytes]]]:
    """``count`` malformed agent messages as (category, frames), cycling through every category."""
    valid = _valid_state()
    point = ["P", 1, 0, "", 1.0, 1.0]
    state_body = {"mount": "GS1/Fuzz", "heartbeat_s": 1.0, "points": [point]}
    deep_array = b"\x91" * 5000 + b"\xc0"
    deep_map = b"\x81\xa1k" * 3000 + b"\xc0"
    tuple_ext = msgpack.ExtType(proto.EXT_TUPLE, b"\xc0")
    for _ in range(17):
        tuple_ext = msgpack.ExtType(proto.EXT_TUPLE, msgpack.packb([tuple_ext]))
    makers: list[tuple[str, Any]] = [
        ("random bytes", lambda: [rnd.randbytes(rnd.randrange(1, 600))]),
        ("truncated envelope", lambda: [valid[: rnd.randrange(1, len(valid))]]),
        ("empty frame", lambda: [b""]),
        ("huge array header", lambda: [b"\xdd\x7f\xff\xff\xff" + rnd.randbytes(8)]),
        ("huge map header", lambda: [b"\xdf\xff\xff\xff\xff\xa1k"]),
        ("huge str header", lambda: [b"\x98\x01\x00\x01\xdb\x7f\xff\xff\xff" + b"a" * 16]),
        ("huge bin header", lambda: [b"\x98\x01\x00\x01\xa1a\x07\x01\x00\xc6\xff\xff\xff\xf0"]),
        ("huge points header", lambda: [valid[:-40] + b"\xdd\x7f\xff\xff\xff"]),
        ("deep array", lambda: [deep_array]),
        ("deep map", lambda: [deep_map]),
        ("deep tuple ext", lambda: [_envelope(2, {"points": [["P", tuple_ext, 0, "", 1.0, 1.0]]})]),
        ("non-str map key", lambda: [_envelope(1, {**state_body, 1: 2})]),
        ("non-str key in value", lambda: [_envelope(2, {"points": [["P", {1: "x"}, 0, "", 1.0, 1.0]]})]),
        ("invalid UTF-8 sender", lambda: [b"\x98\x01\x00\x01\xa3\xff\xfe\xfd\x07\x01\x00\x80"]),
        (
            "invalid UTF-8 path",
            lambda: [_envelope(2, {"points": [[b"\xff", 1, 0, "", 1.0, 1.0]]}).replace(b"\xc4\x01\xff", b"\xa1\xff")],
        ),
        ("unknown ext type", lambda: [_envelope(2, {"points": [["P", msgpack.ExtType(99, b"x"), 0, "", 1.0, 1.0]]})]),
        (
            "bad datetime ext",
            lambda: [
                _envelope(2, {"points": [["P", msgpack.ExtType(proto.EXT_DATETIME, b"yesterday"), 0, "", 1.0, 1.0]]})
            ],
        ),
        ("trailing bytes", lambda: [valid + b"\xc0"]),
        ("not an array", lambda: [msgpack.packb({"kind": 1})]),
        ("short envelope", lambda: [msgpack.packb([1, 0, 1, "fuzz", 7, 1, 0])]),
        ("foreign major", lambda: [_envelope(1, state_body, major=2)]),
        ("negative seq", lambda: [_envelope(1, state_body, seq=-1)]),
        ("bool epoch", lambda: [_envelope(1, state_body, epoch=True)]),
        ("empty sender", lambda: [_envelope(1, state_body, sender="")]),
        ("long sender", lambda: [_envelope(1, state_body, sender="s" * 300)]),
        ("body not a map", lambda: [_envelope(1, [state_body])]),
        ("missing mount", lambda: [_envelope(1, {"heartbeat_s": 1.0, "points": []})]),
        ("NaN heartbeat", lambda: [_envelope(3, {"mount": "GS1/Fuzz", "heartbeat_s": math.nan, "points": 1})]),
        ("points not a list", lambda: [_envelope(2, {"points": {"P": 1}})]),
        ("short point", lambda: [_envelope(2, {"points": [["P", 1, 0]]})]),
        ("wrong point types", lambda: [_envelope(2, {"points": [[1, 1, "0", 0, "x", "y"]]})]),
        ("bool alert code", lambda: [_envelope(2, {"points": [["P", 1, True, "", 1.0, 1.0]]})]),
        ("part beyond parts", lambda: [_envelope(1, {**state_body, "part": 3, "parts": 2})]),
        ("unknown kind", lambda: [_envelope(rnd.choice([0, 5, 9, 99, 255, 2**40]), {})]),
        ("kind of another type", lambda: [_envelope(rnd.choice([True, 1.0, "STATE", None, [1]]), state_body)]),
        ("two frames", lambda: [valid, valid]),
        ("many frames", lambda: [b"\xc0"] * rnd.randrange(3, 50)),
        ("query on the agents socket", lambda: [_envelope(10, {"request_id": 1})]),
    ]
    for index in range(count):
        name, make = makers[index % len(makers)]
        yield name, make()


def _xpub_to(context: zmq.Context[zmq.Socket[bytes]], endpoint: str) -> zmq.Socket[bytes]:
    """An agent-like XPUB connected to the hub's agents socket, returned once the hub's subscription arrived."""
    sock = context.socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)  # never drop on our side: every message must reach the hub
    # Verbose: the hub's subscription is seen again after a reconnect (the session outlives the connection).
    sock.setsockopt(zmq.XPUB_VERBOSE, 1)
    sock.setsockopt(zmq.RECONNECT_IVL, 50)
    sock.connect(endpoint)
    assert sock.poll(10_000), "the hub never subscribed"
    assert sock.recv() == b"\x01"
    return sock


def test_ten_thousand_malformed_agent_messages_are_rejected_counted_and_cost_no_memory(procs: Processes) -> None:
    """10,000 malformed messages (random, truncated, huge headers, deep nesting, non-str keys, bad UTF-8,
    wrong schema, unknown kinds, multi-frame) on the agents socket: every one is counted as rejected,
    the hub's RSS stays flat, the good agent's next update is applied, and a valid message on the same
    connection is still accepted; an oversize frame only disconnects its sender."""
    hub, _ = _start(procs)
    rnd = random.Random(42)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        rogue = _xpub_to(context, hub.agents)
        with Subscriber(hub.query, "") as sub:
            _advancing(sub, 0)
            # Sent in batches of BATCH, each counted before the next, so that the queue in
            # front of the hub stays the same depth; a warm-up batch fills the allocator's
            # pools. After that, memory that grows is memory that leaks.
            batch = 2500

            def send_batch(size: int, categories: dict[str, int]) -> None:
                target = _hub_count(sub, "messages_rejected") + size
                # Both counters, since the hub publishes them as separate updates: a
                # subscriber may hold the new messages_rejected and the old decode_errors.
                decode_target = _hub_count(sub, "decode_errors") + size
                for name, frames in _malformed(rnd, size):
                    rogue.send_multipart(frames)
                    categories[name] = categories.get(name, 0) + 1
                    decode_target -= name == "query on the agents socket"  # decoded, refused by the core
                wait_until(
                    lambda: (
                        polled(sub)
                        and _hub_count(sub, "messages_rejected") >= target
                        and _hub_count(sub, "decode_errors") >= decode_target
                    ),
                    timeout_s=20.0,
                    what=f"a batch of {size} counted",
                )

            wait_until(lambda: polled(sub) and _hub_point(sub, "messages_rejected") is not None, what="hub health")
            send_batch(batch, {})
            rejected_before = _hub_count(sub, "messages_rejected")
            decode_before = _hub_count(sub, "decode_errors")
            rss_before = _rss(hub)
            categories: dict[str, int] = {}
            for _ in range(10_000 // batch):
                send_batch(batch, categories)
            # All but the well-formed query (decoded, then refused by the core) are decode errors.
            expected_decode = 10_000 - categories["query on the agents socket"]

            def counted() -> bool:
                return (
                    _hub_count(sub, "messages_rejected") >= rejected_before + 10_000
                    and _hub_count(sub, "decode_errors") >= decode_before + expected_decode
                )

            wait_until(lambda: polled(sub) and counted(), timeout_s=30.0, what="all 10,000 to be counted")
            for _ in sub.changes(timeout_s=0.6):
                pass  # anything counted twice would show up now
            rejected = _hub_count(sub, "messages_rejected") - rejected_before
            decode_errors = _hub_count(sub, "decode_errors") - decode_before
            growth = _rss(hub) - rss_before
            print(f"malformed: {len(categories)} categories, rejected {rejected}, RSS growth {growth / MiB:.1f} MiB")
            assert rejected == 10_000
            assert decode_errors == expected_decode
            assert growth < 4 * MiB, f"hub RSS grew by {growth / MiB:.1f} MiB"
            assert not any(path.startswith("GS1/Fuzz") for path in sub.tree)
            # The good agent's next update is applied, and the same connection still works.
            _advancing(sub, _ticks(sub))
            rogue.send(_valid_state(seq=1))
            wait_until(lambda: polled(sub) and "GS1/Fuzz/P" in sub.tree, what="the valid STATE after the garbage")
            # An oversize frame (ZMQ_MAXMSGSIZE) disconnects that sender, and only it;
            # libzmq gives no reason, so the hub counts the disconnect.
            disconnects_before = _hub_count(sub, "agent_disconnects")
            rogue.send(b"\x00" * (proto.MAX_FRAME_BYTES + 1))
            wait_until(
                lambda: rogue.poll(100) and rogue.recv() == b"\x01",
                what="the rogue to be disconnected, reconnect and be subscribed again",
            )
            wait_until(
                lambda: polled(sub) and _hub_count(sub, "agent_disconnects") == disconnects_before + 1,
                what="the oversize frame's disconnect to be counted",
            )
            rogue.send(_valid_state(seq=2, value=2))
            wait_until(
                lambda: polled(sub) and sub.tree["GS1/Fuzz/P"].value == 2, what="a valid STATE after reconnecting"
            )
            _advancing(sub, _ticks(sub))
            assert _rss(hub) - rss_before < 16 * MiB
            assert hub.process.popen.poll() is None
    finally:
        context.destroy(linger=0)


# -- 3. malformed queries and garbage subscriptions ------------------------------------------------------


def test_malformed_queries_are_rejected_and_the_query_socket_keeps_answering(procs: Processes) -> None:
    """Garbage on the ROUTER (random bytes, multi-frame, wrong kinds, huge prefixes, a flood of HELLOs
    never read): counted as rejected or answered with ERROR, memory bounded, and HELLO still answered."""
    hub, _ = _start(procs)
    rnd = random.Random(7)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        with Subscriber(hub.query, "") as sub:
            _advancing(sub, 0)
            rss_before = _rss(hub)
            decode_before = _hub_count(sub, "decode_errors")
            rogue = context.socket(zmq.DEALER)
            rogue.setsockopt(zmq.LINGER, 0)
            rogue.setsockopt(zmq.SNDHWM, 0)
            rogue.connect(hub.query)
            hello = proto.Hello(sender="rogue", epoch=0, seq=1, sent_ns=0, request_id=1)
            sent_garbage = 0
            for index in range(3000):
                kind = index % 6
                if kind == 0:
                    rogue.send(rnd.randbytes(rnd.randrange(1, 300)))
                elif kind == 1:
                    rogue.send_multipart([proto.encode(hello), b"extra"])
                elif kind == 2:
                    rogue.send(b"")
                elif kind == 3:
                    rogue.send(_valid_state())  # an agent's message on the query socket: ERROR
                elif kind == 4:
                    rogue.send(_envelope(11, {"request_id": 1}))  # a snapshot request without a prefix
                else:
                    rogue.send(_envelope(11, {"request_id": 1, "prefix": "\x00" * rnd.randrange(1, 30_000)}))
                sent_garbage += kind in (0, 1, 2, 4)
            # A flood of requests whose replies are never read (the hub must not queue without bound).
            for _ in range(20_000):
                rogue.send(proto.encode(hello))
            wait_until(
                lambda: polled(sub) and _hub_count(sub, "decode_errors") >= decode_before + sent_garbage,
                timeout_s=20.0,
                what=f"{sent_garbage} garbage queries counted",
            )
            # An oversize query disconnects that client only.
            rogue.send(b"\x00" * (64 * 1024 + 1))
            with Subscriber(hub.query, GOOD + "/") as other:
                assert other.tree[TICKS].value >= 1
            growth = _rss(hub) - rss_before
            print(f"queries: RSS growth {growth / MiB:.1f} MiB")
            assert growth < 32 * MiB
            _advancing(sub, _ticks(sub))
            assert hub.process.popen.poll() is None
    finally:
        context.destroy(linger=0)


class RawPeer:
    """A hand-made ZMTP 3.0 peer (NULL mechanism) over a plain TCP socket.

    Unlike a libzmq SUB/XSUB, it keeps no subscription trie of its own, so it
    can send subscriptions no real client would (a libzmq XSUB holding a 1 MiB
    topic overflows its own stack when it is destroyed).
    """

    def __init__(self, endpoint: str, socket_type: bytes = b"SUB") -> None:
        self.conn = socket.create_connection(_host_port(endpoint), timeout=5.0)
        self.conn.sendall(_zmtp3_greeting(b"NULL"))
        self._exactly(64)
        name = b"Socket-Type"
        body = b"\x05READY" + bytes([len(name)]) + name + len(socket_type).to_bytes(4, "big") + socket_type
        self.conn.sendall(self.frame(body, command=True))
        flags = self._exactly(1)[0]
        size = int.from_bytes(self._exactly(8 if flags & 2 else 1), "big")
        self._exactly(size)  # the hub's READY

    @staticmethod
    def frame(body: bytes, command: bool = False) -> bytes:
        flags = 4 if command else 0
        if len(body) > 255:
            return bytes([flags | 2]) + len(body).to_bytes(8, "big") + body
        return bytes([flags, len(body)]) + body

    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.conn.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the hub closed the connection")
            data += chunk
        return data

    def send(self, *bodies: bytes) -> None:
        self.conn.sendall(b"".join(self.frame(body) for body in bodies))

    def closed_by_peer(self) -> bool:
        """True once the hub has hung up on us."""
        self.conn.settimeout(0.05)
        try:
            return self.conn.recv(65536) == b""
        except TimeoutError:
            return False
        except OSError:
            return True

    def close(self) -> None:
        self.conn.close()


def test_garbage_subscriptions_are_capped_refused_and_released(procs: Processes) -> None:
    """On the subscribers socket: a huge subscription disconnects its sender before it costs memory;
    over-long topics and malformed frames are refused; a flood of distinct prefixes beyond the
    per-subscriber cap is refused and counted (_hub/subscriptions_refused); the hub's memory stays
    bounded; when the flooder leaves its subscriptions are released and a newcomer gets in."""
    hub, _ = _start(procs)
    with Subscriber(hub.query, "") as sub:
        _advancing(sub, 0)
        own = wait_until(lambda: polled(sub) and _hub_count(sub, "subscriptions"), what="our own subscriptions")
        refused_before = _hub_count(sub, "subscriptions_refused")
        decode_before = _hub_count(sub, "decode_errors")
        rss_before = _rss(hub)
        for size in (64 * 1024, MiB, 16 * MiB):
            huge = RawPeer(hub.subscribers)
            with contextlib.suppress(OSError):  # the hub may hang up while we are still sending
                huge.send(b"\x01" + b"A" * size)
            wait_until(huge.closed_by_peer, what=f"the hub to drop a peer subscribing {size} bytes")
            huge.close()
        flooder = RawPeer(hub.subscribers)
        flooder.send(*(b"\x01" + b"B" * 3000 + str(index).encode() for index in range(20)))  # longer than any path
        flooder.send(b"", b"\x02GS1/", b"\xffjunk", b"\x00never-subscribed")
        flooder.send(*(b"\x01GS1/" + str(index).encode() for index in range(5000)))
        cap = 100  # ServerLimits.max_subscriptions_per_subscriber; without keys, one IP is one subscriber
        wait_until(
            lambda: polled(sub) and _hub_count(sub, "subscriptions_refused") >= refused_before + 5000 - cap,
            timeout_s=20.0,
            what="the refused subscriptions counted",
        )
        assert _hub_count(sub, "subscriptions") <= cap
        wait_until(
            lambda: polled(sub) and _hub_count(sub, "decode_errors") >= decode_before + 20, what="long topics refused"
        )
        growth = _rss(hub) - rss_before
        print(f"subscriptions: RSS growth {growth / MiB:.1f} MiB")
        assert growth < 16 * MiB
        assert not flooder.closed_by_peer()  # refused, not disconnected: it only costs itself
        flooder.close()
        wait_until(
            lambda: polled(sub) and _hub_count(sub, "subscriptions") == own,
            what=f"the flooder's subscriptions released (back to {own})",
        )
        with Subscriber(hub.query, GOOD + "/") as newcomer:
            first = newcomer.tree[TICKS].value
            wait_until(lambda: polled(newcomer) and newcomer.tree[TICKS].value > first, what="a newcomer's updates")
        _advancing(sub, _ticks(sub))
        assert hub.process.popen.poll() is None


def test_a_subscriber_repeating_one_subscription_does_not_lock_out_its_identity(procs: Processes) -> None:
    """A peer that sends the same subscription 200 times and leaves releases everything it held, so that
    later subscribers from its address (one IP is one subscriber without keys) are not refused."""
    hub, _ = _start(procs)
    with Subscriber(hub.query, "") as sub:
        own = wait_until(lambda: polled(sub) and _hub_count(sub, "subscriptions"), what="our own subscriptions")
        peer = RawPeer(hub.subscribers)
        peer.send(*(b"\x01GS1/" for _ in range(200)))
        wait_until(lambda: polled(sub) and _hub_count(sub, "subscriptions_refused") >= 100, what="the repeats")
        peer.close()
        wait_until(
            lambda: polled(sub) and _hub_count(sub, "subscriptions") == own,
            timeout_s=3.0,
            what=f"the repeats released (back to {own}, not stuck at the cap)",
        )


# -- 4. a stopped subscriber ---------------------------------------------------------------------------

SUBSCRIBERS_SNDHWM = 1000
BLOB_BYTES = 8000
BULK = {
    "points": [
        {"name": "Clock", "clock": True, "dt": 0.02},
        *({"name": f"Blob{index}", "counter": True, "pad": BLOB_BYTES, "dt": 0.05} for index in range(40)),
    ]
}


def _status(process: Process) -> dict[str, Any]:
    line = process.latest("STATUS ")
    return {} if line is None else dict(json.loads(line.removeprefix("STATUS ")))


def test_a_stopped_subscriber_neither_delays_another_nor_grows_the_hub_and_resyncs_after(
    procs: Processes, tmp_path: Path
) -> None:
    """A SIGSTOPped subscriber (small RCVHWM) under ~6 MB/s of updates: a second subscriber's
    agent-to-subscriber latency stays low (p99 < 0.5 s) and it misses nothing, the hub's memory
    stays within its high-water-mark budget; after SIGCONT the stopped one sees the gap, resyncs
    by itself and ends with the tree a fresh snapshot shows."""
    config = tmp_path / "hub.toml"
    config.write_text(f"[limits]\nsubscribers_sndhwm = {SUBSCRIBERS_SNDHWM}\n")
    hub = procs.hub("--config", str(config))
    agent = procs.agent(hub, "bulk", BULK, mount="GS1/Bulk")
    slow = procs.subscriber(hub, "GS1/", name="slow", rcvhwm=10)
    with Subscriber(hub.query, "GS1/") as fast:
        clock = "GS1/Bulk/Clock"
        wait_until(lambda: polled(fast) and clock in fast.tree and len(fast.tree) >= 42, what="the bulk agent")
        wait_until(lambda: _status(slow).get("nodes", 0) >= 42, what="the slow subscriber's tree")
        for _ in range(20):
            fast.poll(0.05)  # settle
        rss_before = _rss(hub)
        slow.signal(signal.SIGSTOP)
        latencies: list[float] = []
        rss_peak = rss_before
        received = 0
        end = time.monotonic() + 4.0  # a measuring window: ~24 MB published, far more than every buffer on the way
        while time.monotonic() < end:
            for change in fast.poll(0.01):
                received += 1
                if change.path == clock and change.new is not None:
                    latencies.append(time.time() - float(change.new.value))
            rss_peak = max(rss_peak, _rss(hub))
        slow.signal(signal.SIGCONT)
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        growth = rss_peak - rss_before
        print(
            f"stopped subscriber: {received} updates, {len(latencies)} latency samples, "
            f"median {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"max {latencies[-1] * 1000:.0f} ms; hub RSS growth {growth / MiB:.1f} MiB"
        )
        assert len(latencies) >= 50
        assert p99 < 0.5
        assert fast.resyncs == 1, "the fast subscriber missed updates"
        # SNDHWM x message size (the slow one follows in NODES batches of at most MAX_NODES_BATCH_BYTES, or
        # one node more), plus slack for the hub's own churn.
        assert growth < SUBSCRIBERS_SNDHWM * (proto.MAX_NODES_BATCH_BYTES + BLOB_BYTES + 200) + 32 * MiB
        wait_until(lambda: _status(slow).get("resyncs", 0) >= 2, timeout_s=15.0, what="the slow one to resync")
        # Quiesce (the agent says BYE, its points turn stale), then compare with a fresh snapshot.
        agent.stop()
        wait_until(lambda: polled(fast) and all(node.stale for node in fast.tree.values()), what="every point stale")
        with Subscriber(hub.query, "GS1/") as fresh:
            expected = tree_digest(fresh.tree)
            count = len(fresh.tree)
        wait_until(
            lambda: _status(slow).get("digest") == expected,
            timeout_s=10.0,
            what=f"the slow subscriber's tree to equal a fresh snapshot ({count} nodes)",
        )


# -- 5. clean shutdown ---------------------------------------------------------------------------------


def _exit_time(process: Process, signum: int) -> float:
    """Send ``signum`` and return how long the process took to exit (fails unless status 0 within 2 s)."""
    start = time.monotonic()
    process.signal(signum)
    try:
        status = process.popen.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{process.name} did not exit within 5 s of {signal.Signals(signum).name}") from None
    elapsed = time.monotonic() - start
    print(f"{process.name}: exit {status} {elapsed * 1000:.0f} ms after {signal.Signals(signum).name}")
    assert status == 0, f"{process.name} exited with {status}\n{process.stderr()[-2000:]}"
    assert elapsed < 2.0, f"{process.name} took {elapsed:.2f} s to exit"
    return elapsed


SIGNALS = pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])


@SIGNALS
def test_hub_exits_within_2s_when_its_peers_were_killed(procs: Processes, signum: int) -> None:
    """A hub whose agent and subscriber were SIGKILLed exits 0 within 2 s of SIGTERM/SIGINT."""
    hub, _ = _start(procs)
    procs.subscriber(hub, "GS1/")
    for child in procs.children:
        if child is not hub.process:
            child.kill()
    _exit_time(hub.process, signum)


@SIGNALS
def test_hub_exits_within_2s_with_a_stopped_subscriber_holding_a_full_queue(procs: Processes, signum: int) -> None:
    """A hub queueing megabytes for a SIGSTOPped subscriber (its agent SIGKILLed) exits 0 within 2 s of
    SIGTERM/SIGINT."""
    hub = procs.hub()
    agent = procs.agent(hub, "bulk", BULK, mount="GS1/Bulk")
    stuck = procs.subscriber(hub, "GS1/", name="stuck", rcvhwm=10)
    rss_before = _rss(hub)
    stuck.signal(signal.SIGSTOP)
    wait_until(lambda: _rss(hub) - rss_before > 8 * MiB, timeout_s=15.0, what="the hub to hold a queue for it")
    agent.kill()
    _exit_time(hub.process, signum)


@SIGNALS
def test_agent_exits_within_2s_when_its_hub_is_dead(procs: Processes, signum: int) -> None:
    """An agent whose hub was SIGKILLed exits 0 within 2 s of SIGTERM/SIGINT."""
    hub = procs.hub()
    agent = procs.agent(hub, "good", COUNTER, mount=GOOD)
    with Subscriber(hub.query, GOOD + "/") as sub:
        _advancing(sub, 0)
    hub.process.kill()
    _exit_time(agent, signum)


@pytest.mark.parametrize(
    ("signum", "hub_alive"),
    [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGTERM, True)],
    ids=["SIGTERM-hub-dead", "SIGINT-hub-dead", "SIGTERM-hub-alive"],
)
def test_watch_exits_within_2s(procs: Processes, signum: int, hub_alive: bool) -> None:
    """``gsmon watch`` exits 0 within 2 s of SIGTERM/SIGINT, with its hub running or SIGKILLed."""
    hub, _ = _start(procs)
    watch = procs.gsmon("watch", "watch", "--hub", hub.query, "--no-colour", "--refresh-s", "0.1", "GS1/")
    # Its stdout is a pipe: plain frames, no cursor-control codes (issue 10.3); each starts with the title.
    watch.wait_for_line(" Hub ")
    if not hub_alive:
        hub.process.kill()
        wait_until(lambda: watch.latest(" HUB LOST") is not None, what="watch to show the hub lost")
    _exit_time(watch, signum)


def test_a_malformed_request_gets_an_error_naming_what_is_wrong_even_from_a_req_socket(procs: Processes) -> None:
    """Issue 12 §2: a request that does not decode but carries a request_id is answered with ERROR."""
    hub, _ = _start(procs)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        dealer = context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.RCVTIMEO, 10_000)
        dealer.connect(hub.query)
        dealer.send(_envelope(11, {"request_id": 77, "prefix": ""}, major=2))
        reply = proto.decode(dealer.recv())
        assert isinstance(reply, proto.Error)
        assert reply.request_id == 77
        assert "malformed request: protocol major version 2" in reply.message
        req = context.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.setsockopt(zmq.RCVTIMEO, 10_000)
        req.connect(hub.query)
        req.send(proto.encode(proto.Hello(sender="req", epoch=1, seq=1, sent_ns=0, request_id=5)))
        answer = proto.decode(req.recv())
        assert isinstance(answer, proto.Error)
        assert answer.request_id == 5
        assert "leading empty frame" in answer.message
    finally:
        context.destroy(linger=0)
