"""CURVE on real loopback sockets, guarded by HubAuthenticator: who gets in, who does not, and revocation.

Everything runs in this test process: one context per test, the hub's
sockets as CURVE servers bound to ``tcp://127.0.0.1:*``, clients connecting to
``last_endpoint``. A refusal is observed positively (the server's socket
monitor reports the failed handshake) and then confirmed by sending for a
while and receiving nothing; every test that expects a refusal also shows
a listed client getting through the same way, so a refusal is never
just a slow network.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zmq
from zmq.auth.thread import AuthenticationThread
from zmq.utils.monitor import recv_monitor_message

from gsmon.common import allowlist, keys
from gsmon.common.allowlist import AgentGrant, AllowList, SubscriberGrant
from gsmon.common.keys import KeyPair
from gsmon.hub import auth
from gsmon.hub.auth import HubAuthenticator, sender_key

pytestmark = pytest.mark.integration

DEADLINE_S = 5.0  # generous for a loaded CI machine; success returns as soon as it happens
QUIET_S = 0.4  # how long a refused client keeps trying before we conclude nothing got through

FAILED_HANDSHAKE = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


@dataclass
class Keys:
    """A hub keys folder and the client pairs it lists."""

    dir: Path
    hub: KeyPair
    ant1: KeyPair
    ant2: KeyPair
    ops: KeyPair

    @property
    def allow_list_path(self) -> Path:
        return self.dir / allowlist.ALLOW_LIST_FILE

    def write(self, allow_list: AllowList) -> None:
        keys.replace_private_file(self.allow_list_path, allow_list.dumps().encode())

    def full_list(self) -> AllowList:
        return AllowList(
            [
                AgentGrant("ant1", self.ant1.public_text, ("GS1/Antenna1",)),
                AgentGrant("ant2", self.ant2.public_text, ("GS1/Antenna2",)),
            ],
            [SubscriberGrant("ops", self.ops.public_text, ("GS1/",))],
        )


@pytest.fixture
def hub_keys(tmp_path: Path) -> Keys:
    folder = tmp_path / "hub"
    hub, _, _ = keys.create_key_pair(folder, allowlist.HUB_KEY_NAME)
    made = Keys(folder, hub, keys.generate_key_pair(), keys.generate_key_pair(), keys.generate_key_pair())
    made.write(made.full_list())
    return made


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def make_socket(context: zmq.Context[Any]) -> Iterator[Callable[[int], zmq.Socket[Any]]]:
    """Sockets that are closed with linger 0 at the end of the test, whatever happens."""
    made: list[zmq.Socket[Any]] = []

    def factory(kind: int) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = context.socket(kind)
        sock.linger = 0
        sock.reconnect_ivl = 50
        made.append(sock)
        return sock

    yield factory
    for sock in made:
        sock.close(linger=0)


@pytest.fixture
def hub_auth(context: zmq.Context[Any], hub_keys: Keys) -> Iterator[HubAuthenticator]:
    authenticator = HubAuthenticator.from_keys_dir(context, hub_keys.dir, settle_s=0.0)
    authenticator.start()
    yield authenticator
    authenticator.stop()


class Monitored:
    """A socket's handshake events, read on demand."""

    def __init__(self, sock: zmq.Socket[Any]) -> None:
        self.sock = sock
        self.pipe = sock.get_monitor_socket(FAILED_HANDSHAKE | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self.pipe.linger = 0

    def wait(self, wanted: int, deadline_s: float = DEADLINE_S) -> dict[str, Any] | None:
        """Return the first event among ``wanted`` within the deadline, or None."""
        deadline = time.monotonic() + deadline_s
        while (left := deadline - time.monotonic()) > 0:
            if self.pipe.poll(int(left * 1000) + 1):
                event: dict[str, Any] = dict(recv_monitor_message(self.pipe))
                if event["event"] & wanted:
                    return event
        return None

    def close(self) -> None:
        self.sock.disable_monitor()
        self.pipe.close(linger=0)


@pytest.fixture
def monitor() -> Iterator[Callable[[zmq.Socket[Any]], Monitored]]:
    made: list[Monitored] = []

    def factory(sock: zmq.Socket[Any]) -> Monitored:
        watched = Monitored(sock)
        made.append(watched)
        return watched

    yield factory
    for watched in made:
        watched.close()


def endpoint(sock: zmq.Socket[Any]) -> str:
    sock.bind("tcp://127.0.0.1:*")
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


def agent_socket(
    make_socket: Callable[[int], zmq.Socket[Any]], pair: KeyPair | None, server_key: bytes, url: str
) -> zmq.Socket[Any]:
    """An agent: XPUB connecting to the hub's SUB, as CURVE client (or NULL when ``pair`` is None)."""
    sock = make_socket(zmq.XPUB)
    if pair is not None:
        keys.apply_curve_client(sock, pair, server_key)
    sock.connect(url)
    return sock


def pump(sender: zmq.Socket[Any], receiver: zmq.Socket[Any], payload: bytes, seconds: float) -> zmq.Frame | None:
    """Send ``payload`` every 20 ms until ``receiver`` gets a frame or ``seconds`` pass; return that frame."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sender.send(payload)
        if receiver.poll(20):
            return receiver.recv(copy=False)
    return None


@pytest.fixture
def hub_sub(
    hub_auth: HubAuthenticator, make_socket: Callable[[int], zmq.Socket[Any]], monitor: Callable[..., Monitored]
) -> tuple[zmq.Socket[Any], str, Monitored]:
    """The hub's agent-facing SUB: a CURVE server in the agents domain, bound, monitored."""
    sub = make_socket(zmq.SUB)
    hub_auth.server_socket_options(sub, "agents")
    watched = monitor(sub)
    sub.subscribe(b"")
    return sub, endpoint(sub), watched


# -- who gets in -------------------------------------------------------------------------------


def test_a_listed_agent_gets_in_and_carries_its_key(
    hub_auth: HubAuthenticator, hub_keys: Keys, make_socket: Any, hub_sub: tuple[zmq.Socket[Any], str, Monitored]
) -> None:
    sub, url, _ = hub_sub
    agent = agent_socket(make_socket, hub_keys.ant1, hub_keys.hub.public, url)
    frame = pump(agent, sub, b"GS1/Antenna1/Azimuth", DEADLINE_S)
    assert frame is not None
    assert frame.bytes == b"GS1/Antenna1/Azimuth"
    key = sender_key(frame)
    assert key == hub_keys.ant1.public_text
    # The per-message check the hub makes on every message (hub/server.py): the key's grant, its name, its mounts.
    grant = hub_auth.allow_list.agent_for_key(key)
    assert grant is not None
    assert grant.name == "ant1"  # so it cannot speak for ant2
    assert grant.covers("GS1/Antenna1/Azimuth")
    assert not grant.covers("GS1/Antenna2/Azimuth")  # nor write its subtree
    assert hub_auth.accepted_handshakes >= 1


@pytest.mark.parametrize(
    ("client", "expected_event"),
    [
        ("unknown key", zmq.EVENT_HANDSHAKE_FAILED_AUTH),
        ("subscriber key", zmq.EVENT_HANDSHAKE_FAILED_AUTH),  # right hub, wrong socket
        ("NULL client", FAILED_HANDSHAKE),
        ("wrong server key", FAILED_HANDSHAKE),
    ],
)
def test_others_are_refused_at_the_handshake(
    hub_auth: HubAuthenticator,
    hub_keys: Keys,
    make_socket: Any,
    hub_sub: tuple[zmq.Socket[Any], str, Monitored],
    client: str,
    expected_event: int,
) -> None:
    sub, url, watched = hub_sub
    pair: KeyPair | None = {
        "unknown key": keys.generate_key_pair(),
        "subscriber key": hub_keys.ops,
        "NULL client": None,
        "wrong server key": hub_keys.ant1,
    }[client]
    server_key = keys.generate_key_pair().public if client == "wrong server key" else hub_keys.hub.public
    rogue = agent_socket(make_socket, pair, server_key, url)
    event = watched.wait(FAILED_HANDSHAKE | zmq.EVENT_HANDSHAKE_SUCCEEDED)
    assert event is not None, "no handshake seen at all"
    assert event["event"] & expected_event, event
    if expected_event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        assert event["value"] == 400  # the ZAP status our authenticator answered
        assert hub_auth.denied_handshakes >= 1
    assert pump(rogue, sub, b"GS1/Antenna1/Azimuth", QUIET_S) is None
    # Positive control on the same socket: a listed agent still gets through.
    agent = agent_socket(make_socket, hub_keys.ant1, hub_keys.hub.public, url)
    frame = pump(agent, sub, b"ok", DEADLINE_S)
    assert frame is not None
    assert sender_key(frame) == hub_keys.ant1.public_text
    assert hub_auth.is_alive()


def test_a_subscriber_gets_in_on_xpub_and_its_subscriptions_carry_its_key(
    hub_auth: HubAuthenticator, hub_keys: Keys, make_socket: Any
) -> None:
    xpub = make_socket(zmq.XPUB)
    hub_auth.server_socket_options(xpub, "subscribers")
    url = endpoint(xpub)
    sub = make_socket(zmq.SUB)
    keys.apply_curve_client(sub, hub_keys.ops, hub_keys.hub.public)
    sub.connect(url)
    sub.subscribe(b"GS1/Antenna1/")
    assert xpub.poll(int(DEADLINE_S * 1000))
    subscription = xpub.recv(copy=False)
    assert subscription.bytes == b"\x01GS1/Antenna1/"
    key = sender_key(subscription)
    assert key == hub_keys.ops.public_text
    assert hub_auth.allow_list.may_subscribe(key, subscription.bytes[1:])
    assert not hub_auth.allow_list.may_subscribe(key, b"GS2/")
    xpub.send_multipart([b"GS1/Antenna1/Azimuth", b"payload"])
    assert sub.poll(int(DEADLINE_S * 1000))
    assert sub.recv_multipart() == [b"GS1/Antenna1/Azimuth", b"payload"]


def test_an_agent_key_cannot_subscribe(
    hub_auth: HubAuthenticator, hub_keys: Keys, make_socket: Any, monitor: Callable[..., Monitored]
) -> None:
    xpub = make_socket(zmq.XPUB)
    hub_auth.server_socket_options(xpub, "subscribers")
    watched = monitor(xpub)
    url = endpoint(xpub)
    sub = make_socket(zmq.SUB)
    keys.apply_curve_client(sub, hub_keys.ant1, hub_keys.hub.public)
    sub.connect(url)
    sub.subscribe(b"")
    event = watched.wait(FAILED_HANDSHAKE | zmq.EVENT_HANDSHAKE_SUCCEEDED)
    assert event is not None
    assert event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH
    assert not xpub.poll(int(QUIET_S * 1000))


def test_a_subscriber_query_on_router_carries_its_key(
    hub_auth: HubAuthenticator, hub_keys: Keys, make_socket: Any
) -> None:
    router = make_socket(zmq.ROUTER)
    hub_auth.server_socket_options(router, "subscribers")
    url = endpoint(router)
    dealer = make_socket(zmq.DEALER)
    keys.apply_curve_client(dealer, hub_keys.ops, hub_keys.hub.public)
    dealer.connect(url)
    dealer.send(b"GS1/")
    assert router.poll(int(DEADLINE_S * 1000))
    identity, request = router.recv_multipart(copy=False)
    assert sender_key(request) == hub_keys.ops.public_text
    assert hub_auth.allow_list.may_subscribe(sender_key(request), request.bytes)
    router.send_multipart([identity.bytes, b"snapshot"])
    assert dealer.poll(int(DEADLINE_S * 1000))
    assert dealer.recv() == b"snapshot"


# -- revocation ---------------------------------------------------------------------------------


def test_a_revoked_key_cannot_connect_again_and_its_open_connection_is_caught_per_message(
    hub_auth: HubAuthenticator, hub_keys: Keys, make_socket: Any, hub_sub: tuple[zmq.Socket[Any], str, Monitored]
) -> None:
    sub, url, watched = hub_sub
    before = agent_socket(make_socket, hub_keys.ant1, hub_keys.hub.public, url)
    assert pump(before, sub, b"before", DEADLINE_S) is not None
    assert watched.wait(zmq.EVENT_HANDSHAKE_SUCCEEDED) is not None

    hub_keys.write(hub_keys.full_list().without("ant1"))
    assert hub_auth.reload_if_changed()
    assert hub_auth.allow_list.agent_for_key(hub_keys.ant1.public) is None

    again = agent_socket(make_socket, hub_keys.ant1, hub_keys.hub.public, url)
    event = watched.wait(FAILED_HANDSHAKE | zmq.EVENT_HANDSHAKE_SUCCEEDED)
    assert event is not None
    assert event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH
    # The connection made before the revocation still delivers: ZAP only
    # looks at handshakes. The hub's per-message check is what stops it.
    frame = pump(before, sub, b"after", DEADLINE_S)
    assert frame is not None
    assert hub_auth.allow_list.agent_for_key(sender_key(frame)) is None  # revoked: every message refused
    while sub.poll(0):
        sub.recv()  # drain what `before` queued
    before.close(linger=0)
    assert pump(again, sub, b"again", QUIET_S) is None
    # ant2 was untouched by the revocation.
    other = agent_socket(make_socket, hub_keys.ant2, hub_keys.hub.public, url)
    frame = pump(other, sub, b"ant2", DEADLINE_S)
    assert frame is not None
    assert sender_key(frame) == hub_keys.ant2.public_text


# -- the guards against failing open ---------------------------------------------------------------


def test_a_provider_that_raises_denies_and_the_zap_thread_survives(
    hub_auth: HubAuthenticator,
    hub_keys: Keys,
    make_socket: Any,
    hub_sub: tuple[zmq.Socket[Any], str, Monitored],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sub, url, watched = hub_sub

    def broken(self: AllowList, key: object) -> None:
        raise RuntimeError("bug in the allow-list")

    with monkeypatch.context() as patch:
        patch.setattr(AllowList, "agent_for_key", broken)
        rogue = agent_socket(make_socket, hub_keys.ant1, hub_keys.hub.public, url)
        event = watched.wait(FAILED_HANDSHAKE | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        assert event is not None
        assert event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH
        assert hub_auth.is_alive()
        rogue.close(linger=0)
    agent = agent_socket(make_socket, hub_keys.ant1, hub_keys.hub.public, url)
    assert pump(agent, sub, b"ok", DEADLINE_S) is not None


def test_an_error_inside_the_zap_handler_denies_and_the_thread_survives(
    hub_auth: HubAuthenticator,
    hub_keys: Keys,
    make_socket: Any,
    hub_sub: tuple[zmq.Socket[Any], str, Monitored],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pyzmq's own ZAP code failing (not only our provider) must not end the thread: that would fail open."""
    sub, url, watched = hub_sub

    async def broken(self: object, domain: str, client_key: bytes) -> tuple[bool, bytes]:
        raise RuntimeError("bug in pyzmq")

    with monkeypatch.context() as patch:
        patch.setattr(auth._GuardedThreadAuthenticator, "_authenticate_curve", broken)
        agent_socket(make_socket, hub_keys.ant1, hub_keys.hub.public, url)
        event = watched.wait(FAILED_HANDSHAKE | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        assert event is not None
        assert event["event"] & FAILED_HANDSHAKE
        assert hub_auth.is_alive()
    agent = agent_socket(make_socket, hub_keys.ant1, hub_keys.hub.public, url)
    assert pump(agent, sub, b"ok", DEADLINE_S) is not None


def test_without_an_authenticator_curve_admits_anyone_but_no_user_id(
    context: zmq.Context[Any], hub_keys: Keys, make_socket: Any
) -> None:
    """The fail-open trap, shown: with no ZAP handler a CURVE server takes any client knowing its key.

    That is why server_socket_options refuses to run without a live
    authenticator, and why the per-message check denies a missing User-Id.
    """
    sub = make_socket(zmq.SUB)
    keys.apply_curve_server(sub, hub_keys.hub)
    sub.subscribe(b"")
    url = endpoint(sub)
    stranger = agent_socket(make_socket, keys.generate_key_pair(), hub_keys.hub.public, url)
    frame = pump(stranger, sub, b"GS1/Antenna1/x", DEADLINE_S)
    assert frame is not None  # got in, unauthenticated
    assert sender_key(frame) is None
    assert hub_keys.full_list().agent_for_key(sender_key(frame)) is None


def test_server_options_refuse_to_leave_a_socket_unguarded(
    context: zmq.Context[Any], hub_keys: Keys, make_socket: Any
) -> None:
    authenticator = HubAuthenticator.from_keys_dir(context, hub_keys.dir)
    sub = make_socket(zmq.SUB)
    with pytest.raises(RuntimeError, match="start the authenticator"):
        authenticator.server_socket_options(sub, "agents")
    authenticator.start()
    try:
        with pytest.raises(ValueError, match="role"):
            authenticator.server_socket_options(sub, "admins")  # type: ignore[arg-type]
        bound = make_socket(zmq.SUB)
        bound.bind("tcp://127.0.0.1:*")
        with pytest.raises(ValueError, match="already bound"):
            authenticator.server_socket_options(bound, "agents")
        other_context: zmq.Context[Any] = zmq.Context()
        try:
            foreign = other_context.socket(zmq.SUB)
            try:
                with pytest.raises(ValueError, match="another zmq context"):
                    authenticator.server_socket_options(foreign, "agents")
            finally:
                foreign.close(linger=0)
        finally:
            other_context.term()
        # A second authenticator cannot take over this context's ZAP endpoint.
        second = HubAuthenticator.from_keys_dir(context, hub_keys.dir)
        with pytest.raises(RuntimeError, match="only one may run per context"):
            second.start()
        assert not second.is_alive()
        assert authenticator.is_alive()
    finally:
        authenticator.stop()
    assert not authenticator.is_alive()
    authenticator.stop()  # idempotent


def test_a_server_socket_without_a_domain_is_denied_by_the_authenticator(
    hub_auth: HubAuthenticator, hub_keys: Keys, make_socket: Any, monitor: Callable[..., Monitored]
) -> None:
    """A CURVE server set up by hand (no gsmon ZAP domain) is asked about as '*', which denies everyone."""
    sub = make_socket(zmq.SUB)
    keys.apply_curve_server(sub, hub_keys.hub)
    watched = monitor(sub)
    sub.subscribe(b"")
    url = endpoint(sub)
    agent_socket(make_socket, hub_keys.ant1, hub_keys.hub.public, url)
    event = watched.wait(FAILED_HANDSHAKE | zmq.EVENT_HANDSHAKE_SUCCEEDED)
    assert event is not None
    assert event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH


def test_client_options_refuse_a_bound_socket_and_a_bad_server_key(hub_keys: Keys, make_socket: Any) -> None:
    sock = make_socket(zmq.DEALER)
    sock.bind("tcp://127.0.0.1:*")
    with pytest.raises(ValueError, match="already bound or connected"):
        keys.apply_curve_client(sock, hub_keys.ant1, hub_keys.hub.public)
    with pytest.raises(ValueError, match="server public key"):
        keys.apply_curve_client(make_socket(zmq.DEALER), hub_keys.ant1, b"not a key")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_zap_thread_is_reported_and_stop_does_not_hang(
    hub_auth: HubAuthenticator, make_socket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the ZAP thread dies, is_alive() says so (the hub must stop serving) and stop() still returns.

    (pyzmq's own stop() would block for good sending TERMINATE to the dead thread.)
    """
    zap = hub_auth._auth
    assert zap is not None

    def crash(self: object, msg: list[bytes]) -> bool:
        raise RuntimeError("the ZAP thread dies")

    monkeypatch.setattr(AuthenticationThread, "_handle_pipe_message", crash)
    zap.pipe.send(b"anything")
    zap.thread.join(timeout=DEADLINE_S)
    assert not hub_auth.is_alive()
    with pytest.raises(RuntimeError, match="start the authenticator"):
        hub_auth.server_socket_options(make_socket(zmq.SUB), "agents")
    stopper = threading.Thread(target=hub_auth.stop, daemon=True)
    stopper.start()
    stopper.join(timeout=DEADLINE_S)
    assert not stopper.is_alive(), "stop() blocked on a dead ZAP thread"


def test_xpub_manual_lets_the_hub_enforce_subscriber_prefixes(
    hub_auth: HubAuthenticator, hub_keys: Keys, make_socket: Any
) -> None:
    """The pattern for the hub: XPUB_MANUAL, check each subscription's User-Id, subscribe only allowed prefixes.

    With a plain XPUB libzmq applies a subscription before the hub sees it,
    so a subscriber's prefix grant could not be enforced at all.
    """
    xpub = make_socket(zmq.XPUB)
    hub_auth.server_socket_options(xpub, "subscribers")
    xpub.xpub_manual = True
    url = endpoint(xpub)
    sub = make_socket(zmq.SUB)
    keys.apply_curve_client(sub, hub_keys.ops, hub_keys.hub.public)  # granted GS1/ only
    sub.connect(url)
    sub.subscribe(b"GS1/Antenna1/")
    sub.subscribe(b"GS2/")
    sub.subscribe(b"")
    decisions = {}
    for _ in range(3):
        assert xpub.poll(int(DEADLINE_S * 1000))
        frame = xpub.recv(copy=False)
        topic = frame.bytes[1:]
        decisions[topic] = hub_auth.allow_list.may_subscribe(sender_key(frame), topic)
        if decisions[topic]:
            xpub.subscribe(topic)  # in manual mode: applies to the pipe that just asked
    assert decisions == {b"GS1/Antenna1/": True, b"GS2/": False, b"": False}
    received: list[list[bytes]] = []
    deadline = time.monotonic() + DEADLINE_S
    while not received and time.monotonic() < deadline:
        xpub.send_multipart([b"GS2/secret", b"no"])
        xpub.send_multipart([b"GS1/Antenna1/Azimuth", b"yes"])
        while sub.poll(20):
            received.append(sub.recv_multipart())
    assert received
    assert all(topic == b"GS1/Antenna1/Azimuth" for topic, _ in received)
