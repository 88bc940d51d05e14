"""The Subscriber's two read loops (client.read_changes, client.read_updates) on a real inproc PUB->SUB pair.

inproc has no I/O thread: what the PUB sends is in the SUB's pipe when send returns (as
tests/unit/test_transport_fast_path.py uses it). The lean loop must drop what the classic one drops
(messages that are not [topic, payload]) and hand heartbeats to the core with the clocks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import zmq
from clone_support import CLIENT_EPOCH, PREFIX, Frames, beat, load, node, update

from gsmon.common import protocol as proto
from gsmon.common.client import read_changes, read_updates
from gsmon.common.clone import CloneCore


@pytest.fixture
def link() -> Iterator[tuple[zmq.Socket[bytes], zmq.Socket[bytes]]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub, sub = context.socket(zmq.PUB), context.socket(zmq.SUB)
    pub.bind("inproc://read-loops")
    sub.connect("inproc://read-loops")
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    deadline = time.monotonic() + 10.0
    while not sub.poll(0):  # the subscription reaches the PUB with a later send: probe until one arrives
        assert time.monotonic() < deadline, "the inproc subscription never took"
        pub.send_multipart([b"probe", b"x"])
    while sub.poll(0):
        sub.recv_multipart()
    try:
        yield pub, sub
    finally:
        pub.close(linger=0)
        sub.close(linger=0)
        context.term()


def synced(lean: bool) -> CloneCore:
    core = CloneCore(PREFIX, "client-test", CLIENT_EPOCH, lean=lean)
    load(core, seq=10, published=0, nodes=[update("GS1/a", 3)])
    return core


def send(pub: zmq.Socket[bytes], *messages: Frames | list[bytes]) -> None:
    for message in messages:
        pub.send_multipart(list(message))


def test_both_loops_keep_the_nodes_drop_misframed_messages_and_take_heartbeats(
    link: tuple[zmq.Socket[bytes], zmq.Socket[bytes]],
) -> None:
    pub, sub = link
    messages: list[Frames | list[bytes]] = [
        node("GS1/a", 11, value=1.5),
        [b"GS1/lonely"],  # one frame: the message after it is whole
        node("GS1/b", 12, value=2.5),
        [b"GS1/a", node("GS1/a", 13)[1], b"extra"],  # three frames (not counted: not a NODE)
        beat(13, {PREFIX: 2}),  # the two NODEs published: both received
        node("GS1/c", 14, value=3.5),
    ]
    classic, lean = synced(False), synced(True)
    send(pub, *messages)
    changes = read_changes(sub, classic)
    send(pub, *messages)
    accepted: list[proto.NodeUpdate] = []
    read_updates(sub, lean, accepted)
    expected = [("GS1/a", 11), ("GS1/b", 12), ("GS1/c", 14)]
    assert [(c.path, c.new.seq if c.new else None) for c in changes] == expected
    assert [(u.path, u.seq) for u in accepted] == expected
    assert lean.tree == classic.tree
    for core in (classic, lean):
        assert core.last_heartbeat is not None  # the heartbeat reached the core
        assert not core.wants_snapshot  # and its count agreed
    assert not sub.poll(0)  # every frame was read


def test_the_lean_loop_reads_at_most_its_limit(link: tuple[zmq.Socket[bytes], zmq.Socket[bytes]]) -> None:
    pub, sub = link
    lean = synced(True)
    send(pub, *(node("GS1/a", 11 + index) for index in range(5)))
    accepted: list[proto.NodeUpdate] = []
    read_updates(sub, lean, accepted, limit=3)
    assert [u.seq for u in accepted] == [11, 12, 13]
    read_updates(sub, lean, accepted)
    assert [u.seq for u in accepted] == [11, 12, 13, 14, 15]


def test_both_loops_take_a_node_as_a_sign_of_the_hubs_life(link: tuple[zmq.Socket[bytes], zmq.Socket[bytes]]) -> None:
    """Rule 5: a NODE read after the last heartbeat moves ``alive_at`` on (a reader behind the stream meets
    the next heartbeat only after the NODEs before it); nothing read moves nothing."""
    pub, sub = link
    for lean in (False, True):
        core = synced(lean)

        def read(core: CloneCore = core, lean: bool = lean) -> None:
            if lean:
                read_updates(sub, core, [])
            else:
                read_changes(sub, core)

        send(pub, beat(11, {PREFIX: 0}))
        read()
        beat_at = core.last_heartbeat
        assert beat_at is not None
        assert core.alive_at == beat_at
        send(pub, node("GS1/a", 12, value=2.0))
        before = time.monotonic()
        read()
        alive_at = core.alive_at
        assert alive_at is not None
        assert alive_at >= before > beat_at
        assert core.last_heartbeat == beat_at  # (the heartbeat's own time is kept for rule 4)
        read()  # nothing waiting
        assert core.alive_at == alive_at
