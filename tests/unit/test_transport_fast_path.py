"""The hot-path shortcut into pyzmq's Cython socket (transport.fast_send/fast_recv/fast_get) against the public API.

On an in-process (inproc) PAIR of sockets: the shortcut and pyzmq's public
``Socket.send/recv/get`` must give the same frames, the same RCVMORE flags and
the same errors, for the pyzmq this project runs on; above the checked major
version the public API is used instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, Final

import pytest
import zmq

from gsmon.common import transport

Sockets = tuple[zmq.Socket[bytes], zmq.Socket[bytes]]
PUBLIC: Final = (
    lambda sock, data, flags: sock.send(data, flags),
    lambda sock, flags: sock.recv(flags),
    lambda sock, option: sock.get(option),
)


@pytest.fixture
def pair() -> Iterator[Sockets]:
    """Two connected PAIR sockets on an inproc endpoint (no network, no port)."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    left = context.socket(zmq.PAIR)
    right = context.socket(zmq.PAIR)
    left.setsockopt(zmq.LINGER, 0)
    right.setsockopt(zmq.LINGER, 0)
    left.bind("inproc://fast-path-test")
    right.connect("inproc://fast-path-test")
    yield left, right
    left.close(linger=0)
    right.close(linger=0)
    context.term()


def _received(recv: Callable[..., bytes], get: Callable[..., Any], sock: zmq.Socket[bytes]) -> list[tuple[bytes, int]]:
    """Every frame waiting on ``sock`` with the RCVMORE flag read after it."""
    assert sock.poll(5000), "nothing arrived within 5 s"
    frames = []
    while True:
        try:
            data = recv(sock, zmq.DONTWAIT)
        except zmq.Again:
            return frames
        frames.append((data, int(get(sock, zmq.RCVMORE))))


MESSAGES: list[list[Any]] = [
    [b"GS1/a", b"\x82\xa1v\x01"],  # a NODE: topic + payload
    [b""],  # an empty frame
    [b"\x00\x01heartbeat", bytearray(b"x" * 70_000), memoryview(b"tail")],  # a large frame, other buffer types
]


@pytest.mark.parametrize("message", MESSAGES, ids=["node", "empty", "large"])
def test_the_shortcut_sends_and_receives_what_the_public_api_does(pair: Sockets, message: list[Any]) -> None:
    """Frames sent with fast_send arrive as those sent with Socket.send, read alike by fast_recv and Socket.recv."""
    left, right = pair
    results = []
    for send, recv, get in ((transport.fast_send, transport.fast_recv, transport.fast_get), PUBLIC):
        for index, data in enumerate(message):
            last = index == len(message) - 1
            send(left, data, zmq.DONTWAIT if last else zmq.SNDMORE | zmq.DONTWAIT)
        results.append(_received(recv, get, right))
    expected = [(bytes(data), int(index < len(message) - 1)) for index, data in enumerate(message)]
    assert results == [expected, expected]


def test_the_shortcut_reads_frames_sent_by_the_public_api_and_back(pair: Sockets) -> None:
    """Mixed: public send -> fast recv, and fast send -> public recv."""
    left, right = pair
    left.send(b"one", zmq.SNDMORE)
    left.send(b"two")
    assert _received(transport.fast_recv, transport.fast_get, right) == [(b"one", 1), (b"two", 0)]
    transport.fast_send(right, b"three", zmq.SNDMORE)
    transport.fast_send(right, b"four", 0)
    assert left.recv_multipart() == [b"three", b"four"]


@pytest.mark.parametrize("api", ["fast", "public"])
def test_the_shortcut_raises_the_same_errors(pair: Sockets, api: str) -> None:
    """Nothing to read: zmq.Again; a bad option: EINVAL; a closed socket: ENOTSOCK -- from both."""
    send, recv, get = (transport.fast_send, transport.fast_recv, transport.fast_get) if api == "fast" else PUBLIC
    left, right = pair
    with pytest.raises(zmq.Again):
        recv(right, zmq.DONTWAIT)
    with pytest.raises(zmq.ZMQError) as bad_option:
        get(right, 999_999)
    assert bad_option.value.errno == zmq.EINVAL
    with pytest.raises(TypeError):
        send(left, "text is not bytes", 0)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    lonely = context.socket(zmq.PAIR)
    lonely.close(linger=0)
    for call in (lambda: send(lonely, b"x", zmq.DONTWAIT), lambda: recv(lonely, zmq.DONTWAIT)):
        with pytest.raises(zmq.ZMQError) as closed:
            call()
        assert closed.value.errno == zmq.ENOTSOCK
    context.term()


def test_a_peerless_send_is_again_from_both() -> None:
    """DONTWAIT on a PAIR with no peer yet: zmq.Again from the shortcut and from Socket.send."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = context.socket(zmq.PAIR)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("inproc://fast-path-nobody")
    try:
        for send in (transport.fast_send, PUBLIC[0]):
            with pytest.raises(zmq.Again):
                send(sock, b"x", zmq.DONTWAIT)
    finally:
        sock.close(linger=0)
        context.term()


def test_this_pyzmq_is_within_the_checked_bound_and_uses_the_shortcut() -> None:
    """The pyzmq the project runs on is one the shortcut was checked against: the Cython methods are used."""
    assert zmq.pyzmq_version_info()[0] <= transport.PYZMQ_CHECKED_MAJOR
    assert transport.FAST_PATH
    assert transport.fast_send is zmq.backend.Socket.send
    assert transport.fast_recv is zmq.backend.Socket.recv
    assert transport.fast_get is zmq.backend.Socket.get


def test_a_newer_pyzmq_major_falls_back_to_the_public_api(caplog: pytest.LogCaptureFixture) -> None:
    """Above the checked major the public methods are chosen, with one DEBUG line saying why."""
    caplog.set_level(logging.DEBUG, logger="gsmon.common.transport")
    send, recv, get, shortcut = transport.choose_fast_path(transport.PYZMQ_CHECKED_MAJOR + 1)
    assert not shortcut
    assert (send, recv, get) == (zmq.Socket.send, zmq.Socket.recv, zmq.Socket.get)
    lines = [r for r in caplog.records if "checked against" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.DEBUG
    same, *_ = transport.choose_fast_path(transport.PYZMQ_CHECKED_MAJOR)
    assert same is zmq.backend.Socket.send


def test_the_fallback_functions_are_called_the_same_way(pair: Sockets) -> None:
    """What choose_fast_path returns above the bound takes the same (sock, data, flags) arguments."""
    send, recv, get, _ = transport.choose_fast_path(transport.PYZMQ_CHECKED_MAJOR + 1)
    left, right = pair
    send(left, b"a", zmq.SNDMORE)
    send(left, b"b", 0)
    assert _received(recv, get, right) == [(b"a", 1), (b"b", 0)]
