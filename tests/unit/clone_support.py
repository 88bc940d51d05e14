"""Hub messages and snapshot replies for the clone core's unit tests (tests/unit/test_client_sync.py,
tests/unit/test_clone_lean.py): the ``[topic, payload]`` frames a hub would publish, and the replies it
would send to a snapshot request, through the wire format; time is a number passed in."""

from __future__ import annotations

from typing import Any

import msgpack

from gsmon.common import protocol as proto
from gsmon.common.alerts import STALE_ALERTCODE, alertstr_for
from gsmon.common.clone import Change, CloneCore

HUB_EPOCH = 0xC10E
CLIENT_EPOCH = 0x5EED
PREFIX = "GS1/"
GREEN, ORANGE, RED, CRITICAL = 10, 20, 30, 100
WALL = 1_700_000_010.0  # the local wall clock the tests run at
NOW = 50.0  # and the monotonic one
Frames = tuple[bytes, bytes]


def update(
    path: str, seq: int, code: int = GREEN, value: Any = 1.0, kind: str = proto.NODE_POINT, epoch: int = HUB_EPOCH
) -> proto.NodeUpdate:
    if kind == proto.NODE_REMOVED:
        return proto.NodeUpdate(path, epoch, seq, kind, 0, "", False)
    is_point = kind == proto.NODE_POINT
    return proto.NodeUpdate(
        path,
        epoch,
        seq,
        kind,
        code,
        alertstr_for(code),
        code == STALE_ALERTCODE,
        value if is_point else None,
        "ant" if is_point else None,
        1_700_000_000.0 if is_point else None,
        1_700_000_000.5 if is_point else None,
        1.0 if is_point else None,
    )


def node(path: str, seq: int, code: int = GREEN, value: Any = 1.0, epoch: int = HUB_EPOCH) -> Frames:
    """The frames of a NODE (a point) as the hub publishes it."""
    return proto.encode_node(update(path, seq, code, value, epoch=epoch))


def removed(path: str, seq: int) -> Frames:
    return proto.encode_node(update(path, seq, kind=proto.NODE_REMOVED))


def beat(
    seq: int,
    published: dict[str, int],
    epoch: int = HUB_EPOCH,
    sent_at: float = WALL,
    complete: bool = True,
    batched: tuple[str, ...] = (),
) -> Frames:
    return proto.encode_hub_heartbeat(
        proto.HubHeartbeat(epoch, seq, 1.0, sent_at, published, complete=complete, batched=batched)
    )


def nodes(prefix: str, *updates: proto.NodeUpdate) -> Frames:
    """(1.4) The NODES message of ``updates`` (in this order) as the hub publishes it for ``prefix``."""
    return proto.nodes_topic(prefix), proto.encode_nodes([proto.encode_node(item) for item in updates])


def replies_to(
    request: proto.SnapshotRequest,
    *,
    seq: int,
    published: int,
    nodes: list[proto.NodeUpdate],
    epoch: int = HUB_EPOCH,
    extra_items: list[tuple[str, Any]] | None = None,
    count: int | None = None,
) -> list[proto.Message]:
    """The hub's replies to ``request``: ``nodes`` in one chunk, then the END (``count``: as the hub says it)."""
    head = {"sender": "hub", "epoch": epoch, "sent_ns": 0, "request_id": request.request_id}
    items = [(n.path, msgpack.unpackb(proto.encode_node(n)[1])) for n in nodes] + (extra_items or [])
    replies: list[proto.Message] = [
        proto.SnapshotChunk(**head, seq=1, nodes=items),
        proto.SnapshotEnd(**head, seq=2, seq_at=seq, count=len(items) if count is None else count, published=published),
    ]
    return [proto.decode(proto.encode(reply)) for reply in replies]  # through the wire format, as the client gets it


def load(core: CloneCore, **snapshot: Any) -> list[Change]:
    """Ask for a snapshot and feed the core the replies (see :func:`replies_to`); return its changes."""
    request = core.snapshot_request(WALL)
    changes: list[Change] = []
    for reply in replies_to(request, **snapshot):
        changes += core.snapshot_reply(reply)
    assert not core.snapshot_outstanding
    return changes


def feed(core: CloneCore, *messages: Frames, now: float = NOW) -> list[Change]:
    changes: list[Change] = []
    for topic, payload in messages:
        changes += core.receive(topic, payload, now, WALL)
    return changes
