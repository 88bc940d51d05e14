"""The subscriber's clone logic: a pure core. No sockets, no clock.

:class:`CloneCore` keeps a copy of the hub's subtree under a prefix correct
(protocol: Snapshots, HUB_HEARTBEAT, Subscribing), shaped like
:class:`~gsmon.hub.state.HubState`: every time is an argument (``now`` is
``time.monotonic()``, ``wall`` is ``time.time()``), and each call returns
what to do -- requests to send, subscriptions to (re)send, changes to
deliver. :class:`~gsmon.common.client.Subscriber` is the sockets around it::

    Subscriber.connect:  CloneCore.hello(wall) --> HELLO;   INFO --> CloneCore.info(info)
                         CloneCore.subscribe(now) --> Subscriptions (prefix, then heartbeat topic)
    SUB socket frames -------> CloneCore.receive(topic, payload, now, wall) --> [Change]   (NODE, NODES, heartbeat)
    every poll --------------> CloneCore.tick(now, wall) --> Todo(subscriptions, snapshot request)
    snapshot replies --------> CloneCore.snapshot_reply(reply) --> [Change] (when it ends complete)
    (lean) NODE frames ------> CloneCore.receive_nodes([(topic, payload)...], accepted) --> accepted += [LeanNode]
    (lean) NODES frames -----> CloneCore.receive_batch(topic, payload, accepted) --> accepted += [LeanNode]
    a request that failed ---> CloneCore.snapshot_failed() (asked again at the next tick)

The rules (the protocol docstring is the specification):

1. Subscribe the prefix, then the heartbeat topic (INFO's ``heartbeat_topic``).
   Until a heartbeat on that topic lists the prefix in ``published`` (or
   says ``complete`` false), send both again, each cancelled first, every
   :data:`RESUBSCRIBE_S`.
2. Then ask for a snapshot. Its chunks are collected; SNAPSHOT_END gives its
   ``seq`` (the hub's when the snapshot started), the hub's publish counter
   for the prefix, and ``count``: the nodes the hub sent. A different number
   received means a chunk was dropped (the hub never blocks on a slow
   client): the snapshot is thrown away and asked for again. Removals and
   payloads that do not decode are left out of the view (but counted as
   received: the hub sent them).
3. A NODE is applied only if its ``seq`` is greater than SNAPSHOT_END's and
   than that of the node held for its path; every NODE with a seq greater than
   SNAPSHOT_END's counts towards the gap check, applied or not, and so does
   one the prefix rule (:func:`~gsmon.common.names.path_in_prefix`) leaves
   out: ZeroMQ matches bytes, ``GS1/Antenna1`` also delivers ``GS1/Antenna10/...``,
   and the hub counts what it delivers.
4. A heartbeat whose ``seq`` is below SNAPSHOT_END's was sent before the
   snapshot started (it can arrive later, on the other connection): ignored.
   Otherwise the NODEs counted since the snapshot must equal
   ``published[prefix] - SNAPSHOT_END.published``; any other number, or a new
   hub ``epoch`` (in a heartbeat or a NODE), means a new snapshot. A heartbeat
   (not older than the snapshot, not ``complete`` false) that does not list the
   prefix means the hub neither counts nor publishes it for us: subscribe again
   as in 1, then take a new snapshot.
5. Nothing from the hub for :data:`HUB_LIVENESS` x the hub's interval (no
   heartbeat, and -- once one heartbeat was heard -- no NODE either): the hub
   is lost (``hub_lost``); no snapshot is asked for meanwhile, the
   subscriptions stay (ZeroMQ reconnects by itself), and when heartbeats come
   back rule 4 decides whether a new snapshot is needed. A NODE counts as a
   sign of life because a heartbeat waits in the same queue as the NODEs: a
   subscriber reading behind the stream (a recorder under a burst) meets the
   next heartbeat only after the NODEs before it, and must not take its own
   slowness for the hub's death (and resync, and fall further behind).

6. A hub pair (protocol: Clients of a hub pair): the hubs are independent,
   so moving to the other takes a new core, :meth:`CloneCore.fork` (the view
   kept, none of the old hub's sync state), loaded by a fresh snapshot; the
   decision to move is :class:`~gsmon.common.failover.HubChoice`'s.

7. (Protocol 1.4) When the hub's INFO says ``nodes``, the prefix is followed in NODES batches: its topic
   is :func:`~gsmon.common.protocol.nodes_topic` instead of the prefix (rule 1), and each batch's nodes
   are taken in order by rules 3-4 as NODEs. Only a heartbeat listing the prefix in ``batched`` confirms
   it (and one that no longer lists it is a gap, as in rule 4); after :data:`BATCHES_FALLBACK_ROUNDS`
   heartbeats that did not confirm it the core gives batches up for the plain topic. A message on another NODES topic
   (a subscription to ``""`` receives every topic) is not ours: neither applied nor counted.

The lean mode (``lean=True``, the recorder's: the whole view, no ``min_alert``) applies the same rules
but keeps each node as the :class:`~gsmon.common.protocol.LeanNode` its payload was decoded into
(:func:`~gsmon.common.protocol.decode_lean_node`: what decode_node_message accepts, without building a
NodeUpdate) and, for a NODE, appends the node it applied to a list the caller passes
(:meth:`CloneCore.receive_nodes`, in batches between heartbeats; a removal is the LeanNode of kind
``removed``) instead of building a NodeState and a Change for it: at 100,000 NODEs/s those cost a third
of the read path, and the NodeUpdate half of the rest (bench/recorder_bench.py, read). :attr:`CloneCore.tree`
and the snapshot's changes are NodeStates in both modes; :attr:`CloneCore.lean_nodes` is the lean view itself.

Requests (protocol: Envelope): the client's own random non-zero ``epoch``
(:func:`new_client_epoch`), a header ``seq`` of 1, 2, 3 ... per query
connection (:meth:`CloneCore.new_query_socket` starts it again), and
``request_id`` from a counter of its own.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import msgspec

from gsmon.common import protocol as proto
from gsmon.common.alerts import Alert
from gsmon.common.names import SEPARATOR, path_in_prefix

__all__ = [
    "HUB_LIVENESS",
    "RESUBSCRIBE_S",
    "Change",
    "ClientEnvelope",
    "CloneCore",
    "NodeState",
    "Subscriptions",
    "Todo",
    "new_client_epoch",
]

log = logging.getLogger(__name__)

_N = TypeVar("_N", proto.NodeUpdate, proto.LeanNode)

# Heartbeats missed before the hub is reported lost.
HUB_LIVENESS: Final = 3.0
# How often subscriptions are sent again until a heartbeat confirms them.
RESUBSCRIBE_S: Final = 1.0
#: (Rule 7) Heartbeats that came while a NODES subscription awaited confirmation and did not list it in
#: ``batched``: at this many the subscription is given up for the plain topic (a hub past its cap of NODES
#: prefixes refuses new ones). Heartbeats, not rounds: a hub that is down or away sends none, and a client
#: waiting for it must not give batches up.
BATCHES_FALLBACK_ROUNDS: Final = 3


def new_client_epoch() -> int:
    """A random non-zero epoch for a client's incarnation (uint63, as the protocol's envelope says)."""
    return secrets.randbits(63) or 1


class ClientEnvelope:
    """A client's request envelope (protocol: Envelope), one per sending loop: its ``sender`` id, a
    random non-zero ``epoch`` drawn once per incarnation, a header ``seq`` of 1, 2, 3 ... per query
    connection (:meth:`new_connection` starts it again), and ``request_id`` from a counter of its
    own that goes on across connections (a late reply to an earlier request is told by it)."""

    __slots__ = ("_request_ids", "epoch", "sender", "seq")

    def __init__(self, sender: str, epoch: int | None = None) -> None:
        self.sender = sender
        self.epoch = new_client_epoch() if epoch is None else epoch
        self.seq = 0  # the header seq of the latest message on this connection
        self._request_ids = itertools.count(1)

    def new_connection(self) -> None:
        """The query socket was replaced: the next header has seq 1 again."""
        self.seq = 0

    def next_request_id(self) -> int:
        return next(self._request_ids)

    def header(self, sent_ns: int | None = None) -> dict[str, Any]:
        """The envelope fields of the next message (``sent_ns`` None: the wall clock now)."""
        self.seq += 1
        return {
            "sender": self.sender,
            "epoch": self.epoch,
            "seq": self.seq,
            "sent_ns": time.time_ns() if sent_ns is None else sent_ns,
        }

    def command(self, command: str, args: dict[str, Any], user: str | None = None) -> proto.Command:
        """A COMMAND with the next header and the next ``request_id`` (the caller reads it back from
        the message to match the reply)."""
        return proto.Command(**self.header(), request_id=next(self._request_ids), command=command, args=args, user=user)


def _operator_fields(keys: dict[str, Any] | None) -> tuple[Any, ...]:
    """NodeState's operator fields from a NODE's operator keys. A node with ``since`` comes from a hub with
    the alarm layer, which leaves out the counts at 0 (attention, shelved_below, unacked_below): those read 0;
    without ``since`` they are not judged (None), e.g. a hub without a state store relaying debounce keys."""
    if not keys:
        return _NO_OPERATOR_FIELDS
    judged: int | None = 0 if "since" in keys else None
    return (
        keys.get("since"),
        keys.get("attention", judged),
        keys.get("alarm"),
        keys.get("shelf_id"),
        keys.get("shelved_below", judged),
        keys.get("unacked_below", judged),
        keys.get("raw_alert"),
        keys.get("pending"),
        keys.get("flapping"),
    )


_NO_OPERATOR_FIELDS: Final[tuple[Any, ...]] = (None,) * 9


class NodeState(msgspec.Struct, frozen=True):
    """One node of the followed subtree, as the hub last published it.

    A frozen msgspec Struct, not a frozen dataclass: one is made per NODE a subscriber applies, and a
    frozen dataclass of 22 fields took 3.3 us to make (each field an ``object.__setattr__``), more than
    the decode; a Struct takes a tenth of that (bench/recorder_bench.py, read). Same fields, order,
    defaults, equality and hash."""

    path: str
    kind: str  # "point" or "parent"
    alertcode: int
    alertstr: str
    stale: bool
    value: Any
    agent: str | None
    polled_at_s: float | None
    received_at_s: float | None
    dt_s: float | None
    seq: int
    reported_alert: int | None = None  # points: the agent's own last code, when not alertcode (a STALE point's "was")
    liveness_unknown: bool = False  # the hub cannot vouch for its freshness now (it is behind, or was paused)
    # The operator layer (NODE keys of minor 2; None: not sent): read by gsmon.common.watch.adapter.
    since: float | None = None
    attention: int | None = None
    alarm: Any = None
    shelf_id: int | None = None
    shelved_below: int | None = None
    unacked_below: int | None = None
    raw_alert: int | None = None
    pending: Any = None
    flapping: Any = None

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]

    @classmethod
    def from_update(cls, update: proto.NodeUpdate | proto.LeanNode) -> NodeState:
        return cls(
            update.path,
            update.kind,
            update.alertcode,
            update.alertstr,
            update.stale,
            update.value,
            update.agent,
            update.polled_at_s,
            update.received_at_s,
            update.dt_s,
            update.seq,
            update.reported_alert,
            update.liveness_unknown,
            *_operator_fields(update.operator),
        )


class Change(msgspec.Struct, frozen=True):
    """A node appeared (``old`` is None), changed, or went away (``new`` is None)."""

    path: str
    old: NodeState | None
    new: NodeState | None


@dataclass(frozen=True, slots=True)
class Subscriptions:
    """ZeroMQ subscriptions to send, in this order; ``again``: cancel each one just before it; ``cancel``:
    topics to cancel first (a stream given up: NODES for the plain topic)."""

    topics: tuple[bytes, ...]
    again: bool = False
    cancel: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Todo:
    """What :meth:`CloneCore.tick` asks the sockets to do now."""

    subscriptions: Subscriptions | None = None
    snapshot: proto.SnapshotRequest | None = None  # send it, then feed its replies to snapshot_reply


class _Assembly:
    """A snapshot being received: the request it answers and the nodes so far."""

    __slots__ = ("epoch", "nodes", "received", "request_id", "updates")

    def __init__(self, request_id: int) -> None:
        self.request_id = request_id
        self.nodes: dict[str, NodeState] = {}
        self.updates: dict[str, proto.LeanNode] = {}  # the lean mode's nodes (nodes stays empty)
        self.received = 0  # items in the chunks, kept or not (SNAPSHOT_END.count counts them all)
        self.epoch: int | None = None


class CloneCore:
    """The clone of the subtree under ``prefix`` and the rules that keep it right (module docstring).

    Args:
        prefix: The followed prefix (protocol: Prefixes).
        client_id: The envelope's ``sender``.
        client_epoch: The envelope's ``epoch`` (:func:`new_client_epoch`).
        min_alert: Only nodes whose alert code is at least this (an int or an Alert class) are in
            :attr:`tree` and the changes.
        lean: Keep the view as LeanNodes and take NODEs through :meth:`receive_node` (module
            docstring); the whole view only (``min_alert`` None).
        batches: Follow the prefix in NODES batches (protocol 1.4) when the hub's INFO says it publishes
            them (rule 7); False: always the plain topic, a message per NODE.
    """

    def __init__(
        self,
        prefix: str,
        client_id: str,
        client_epoch: int,
        min_alert: int | type[Alert] | None = None,
        *,
        lean: bool = False,
        batches: bool = True,
    ) -> None:
        if lean and min_alert is not None:
            raise ValueError("a lean CloneCore keeps the whole view: min_alert must be None")
        self.lean = lean
        self.batches_wanted = batches
        self.batched = False  # following in NODES batches now (rule 7)
        self._batches_refused = False  # the hub did not take our NODES subscription: plain from now on
        self._refusals = 0  # heartbeats that did not confirm our NODES subscription (BATCHES_FALLBACK_ROUNDS)
        self._sent_topic: bytes | None = None  # the stream topic subscribed last
        self.prefix = prefix
        self.client_id = client_id
        self.client_epoch = client_epoch
        self.min_alert: int | None = (
            min_alert.alertcode if isinstance(min_alert, type) and issubclass(min_alert, Alert) else min_alert
        )
        self._prefix_topic = prefix.encode()
        self.nodes_topic = proto.nodes_topic(prefix)
        self._prefix_ends_segment = not prefix or prefix.endswith(SEPARATOR)
        self.heartbeat_topic = proto.HUB_HEARTBEAT_TOPIC
        self.heartbeat_s = 1.0
        # Requests: header seq per query connection, request ids of their own.
        self._envelope = ClientEnvelope(client_id, client_epoch)
        # Subscriptions not yet confirmed by a heartbeat listing the prefix: sent again at this time.
        self._confirm_at: float | None = None
        self.confirmed = True  # until subscribe(): nothing awaits confirmation
        self._nodes: dict[str, NodeState] = {}
        self._updates: dict[str, proto.LeanNode] = {}  # the lean mode's view (_nodes stays empty)
        # Sync state.
        self.epoch: int | None = None  # the hub's, as of the snapshot held
        self._snapshot_seq = 0
        self._base_published = 0
        self._received = 0  # NODEs with seq > the snapshot's since it
        self.wants_snapshot = True
        self._assembly: _Assembly | None = None
        self.last_heartbeat: float | None = None  # monotonic time of the latest heartbeat on our topic
        self.last_message: float | None = None  # monotonic time of the latest message read from the hub (rule 5)
        self.hub_clock_offset_s = 0.0
        self.hub_lost = False
        self.resyncs = 0

    def fork(self) -> CloneCore:
        """A core for another hub of a pair (1.3): the same prefix, ids and view, but nothing of this hub's
        sync state (epoch, seqs, counters, subscriptions), so no NODE of the other hub is applied before its
        own snapshot, and loading that snapshot reports only what differs from the view held now."""
        other = CloneCore(
            self.prefix, self.client_id, self.client_epoch, self.min_alert, lean=self.lean, batches=self.batches_wanted
        )
        other._envelope = self._envelope  # request ids count over the client's lifetime (a new connection: new seqs)
        other._nodes = dict(self._nodes)
        other._updates = dict(self._updates)
        other.resyncs = self.resyncs
        return other

    # ------------------------------------------------------------------
    # The view
    # ------------------------------------------------------------------

    @property
    def tree(self) -> dict[str, NodeState]:
        """The current subtree: path -> NodeState (a copy, filtered by ``min_alert``)."""
        if self.lean:
            return {path: NodeState.from_update(update) for path, update in self._updates.items()}
        return {path: node for path, node in self._nodes.items() if self._visible(node)}

    @property
    def updates(self) -> dict[str, proto.NodeUpdate]:
        """The lean mode's view: path -> the node applied last as a NodeUpdate (a copy; empty when not lean)."""
        return {path: node.to_update() for path, node in self._updates.items()}

    @property
    def lean_nodes(self) -> dict[str, proto.LeanNode]:
        """The lean mode's view as it is kept: path -> the LeanNode applied last (a copy of the dict; the
        nodes are shared, read-only; empty when not lean)."""
        return dict(self._updates)

    def hub_time(self, wall: float) -> float:
        """The hub's wall clock at local wall time ``wall``, as its heartbeats tell it."""
        return wall + self.hub_clock_offset_s

    def age_s(self, node: NodeState, wall: float) -> float | None:
        """Seconds since the hub received the node's latest value (by the hub's clock)."""
        return None if node.received_at_s is None else max(0.0, self.hub_time(wall) - node.received_at_s)

    # ------------------------------------------------------------------
    # Requests
    # ------------------------------------------------------------------

    def new_query_socket(self) -> None:
        """The query socket was replaced: a new connection, whose header seq starts at 1 again."""
        self._envelope.new_connection()

    def _header(self, wall: float) -> dict[str, Any]:
        return self._envelope.header(int(wall * 1e9))

    def hello(self, wall: float) -> proto.Hello:
        """The HELLO to send first (its INFO goes to :meth:`info`)."""
        return proto.Hello(**self._header(wall), request_id=self._envelope.next_request_id())

    def info(self, info: proto.Info) -> None:
        """Learn the hub's heartbeat interval, this key's heartbeat topic and whether the hub publishes NODES
        batches (rule 7) from its INFO."""
        self.heartbeat_s = info.heartbeat_s
        self.heartbeat_topic = info.heartbeat_topic or proto.HUB_HEARTBEAT_TOPIC
        self.batched = self.batches_wanted and info.nodes and not self._batches_refused

    def subscribe(self, now: float, again: bool = False) -> Subscriptions:
        """Subscriptions to send now (a new SUB socket: ``again`` False); they await a confirming heartbeat."""
        self.confirmed = False
        self._confirm_at = now + RESUBSCRIBE_S
        topic = self.nodes_topic if self.batched else self._prefix_topic
        cancel = () if self._sent_topic in (None, topic) or not again else (self._sent_topic,)
        self._sent_topic = topic
        # Order matters: the heartbeat answering the second proves the first is in place at the hub.
        return Subscriptions((topic, self.heartbeat_topic), again, cancel)

    def next_due(self) -> float | None:
        """When the subscriptions are due to be sent again (None: confirmed, nothing due)."""
        return self._confirm_at

    def resubscriptions(self, now: float) -> Subscriptions | None:
        """The subscriptions to send again now, cancelled first (rule 1), if they are due; after
        BATCHES_FALLBACK_ROUNDS heartbeats that did not confirm a NODES subscription, the plain topic instead
        (rule 7)."""
        if self._confirm_at is not None and now >= self._confirm_at:
            if self.batched and self._refusals >= BATCHES_FALLBACK_ROUNDS:
                log.info(
                    "the hub does not take NODES batches of %r (%d heartbeats without them): following it a NODE "
                    "at a time",
                    self.prefix,
                    self._refusals,
                )
                self.batched, self._batches_refused = False, True
            return self.subscribe(now, again=True)
        return None

    def snapshot_request(self, wall: float) -> proto.SnapshotRequest:
        """A SNAPSHOT_REQUEST for the prefix; the replies to any earlier one are ignored from now on."""
        request = proto.SnapshotRequest(
            **self._header(wall), request_id=self._envelope.next_request_id(), prefix=self.prefix
        )
        self._assembly = _Assembly(request.request_id)
        return request

    @property
    def snapshot_outstanding(self) -> bool:
        """Whether a snapshot was asked for and has not ended (nor failed)."""
        return self._assembly is not None

    def snapshot_failed(self) -> None:
        """The snapshot request went unanswered or could not be sent: ask again at the next tick."""
        self._assembly = None

    def snapshot_reply(self, reply: proto.Message) -> list[Change]:
        """Take one reply on the query socket; when it completes the snapshot, the changes to the view.

        Replies to other requests are ignored. An ERROR ends the attempt (the caller reports it; the
        next tick asks again), as does a SNAPSHOT_END whose ``count`` differs from the nodes received.
        """
        assembly = self._assembly
        if assembly is None or getattr(reply, "request_id", None) != assembly.request_id:
            return []
        assembly.epoch = reply.epoch
        if isinstance(reply, proto.SnapshotChunk):
            for path, payload in reply.nodes:
                assembly.received += 1
                try:
                    update = proto.decode_node_payload(path, payload)
                except proto.ProtocolError as error:
                    log.debug("dropped a snapshot node: %s", error)
                    continue
                if update.kind == proto.NODE_REMOVED:
                    continue
                if self.lean:
                    assembly.updates[path] = proto.LeanNode.from_update(update)
                else:
                    assembly.nodes[path] = NodeState.from_update(update)
            return []
        self._assembly = None
        if isinstance(reply, proto.Error):
            return []
        if not isinstance(reply, proto.SnapshotEnd):
            return []  # not a snapshot reply at all: the attempt is over, asked again at the next tick
        if reply.count != assembly.received:
            log.info(
                "snapshot of %r incomplete (%d of %d nodes arrived): asking again",
                self.prefix,
                assembly.received,
                reply.count,
            )
            return []
        return self._load(assembly, reply)

    def _load(self, assembly: _Assembly, end: proto.SnapshotEnd) -> list[Change]:
        self.epoch = assembly.epoch
        self._snapshot_seq = end.seq_at
        self._base_published = end.published
        self._received = 0
        self.wants_snapshot = False
        self.resyncs += 1
        if self.lean:
            return self._load_updates(assembly.updates)
        fresh = assembly.nodes
        old, self._nodes = self._nodes, fresh
        changes = [Change(path, node, fresh.get(path)) for path, node in old.items() if fresh.get(path) != node]
        changes += [Change(path, None, node) for path, node in fresh.items() if path not in old]
        return [seen for change in changes if (seen := self._as_seen(change)) is not None]

    def _load_updates(self, fresh: dict[str, proto.LeanNode]) -> list[Change]:
        """The lean mode's :meth:`_load`: the same changes, told by the NodeStates of the nodes (a
        node's hub ``epoch`` is not part of its NodeState: two hubs' equal nodes are no change)."""
        old, self._updates = self._updates, fresh
        state = NodeState.from_update
        changes: list[Change] = []
        for path, held in old.items():
            update = fresh.get(path)
            if update is None:
                changes.append(Change(path, state(held), None))
            elif update != held and (before := state(held)) != (after := state(update)):
                changes.append(Change(path, before, after))
        changes += [Change(path, None, state(update)) for path, update in fresh.items() if path not in old]
        return changes

    # ------------------------------------------------------------------
    # Time
    # ------------------------------------------------------------------

    def heard(self, now: float) -> None:
        """A message from the hub was read at ``now`` (the lean read loop says so once per read, not per NODE)."""
        self.last_message = now

    @property
    def alive_at(self) -> float | None:
        """When the hub last showed it is alive (rule 5): its latest heartbeat, or a later message read from
        it; None until the first heartbeat."""
        beat, message = self.last_heartbeat, self.last_message
        if beat is None or message is None or message < beat:
            return beat
        return message

    def tick(self, now: float, wall: float) -> Todo:
        """What to do now: subscriptions to send again, a snapshot to ask for (rules 1, 2, 5)."""
        heard = self.alive_at
        lost = heard is None or now - heard > HUB_LIVENESS * self.heartbeat_s
        if lost and not self.hub_lost and heard is not None:  # (never heard: connecting says so itself)
            log.warning("nothing from the hub for %.1f s (no heartbeat, no update)", now - heard)
        self.hub_lost = lost
        subscriptions = self.resubscriptions(now)
        snapshot = None
        if self.wants_snapshot and not lost and self.confirmed and self._assembly is None:
            snapshot = self.snapshot_request(wall)
        return Todo(subscriptions, snapshot)

    # ------------------------------------------------------------------
    # The hub's publications
    # ------------------------------------------------------------------

    def receive(self, topic: bytes, payload: bytes, now: float, wall: float) -> list[Change]:
        """Take one ``[topic, payload]`` message from the SUB socket; return the changes it makes."""
        self.last_message = now
        if topic.startswith(proto.NODES_TOPIC_PREFIX):
            return self._receive_batch(topic, payload)
        try:
            message = proto.decode_hub_message(topic, payload)
        except proto.ProtocolError as error:
            log.debug("dropped a message from the hub: %s", error)
            return []
        if isinstance(message, proto.HubHeartbeat):
            if topic == self.heartbeat_topic:  # not another scope's (a subscription to "" receives them all)
                self._heartbeat(message, now, wall)
            return []
        if self.lean:
            return self._lean_change(message)
        return self._node(message)

    def _receive_batch(self, topic: bytes, payload: bytes) -> list[Change]:
        """A NODES message given to :meth:`receive`: each node by the rules of a NODE (rule 7)."""
        changes: list[Change] = []
        if self.lean:
            for lean in self._batch(topic, payload, proto.decode_lean_nodes):
                changes += self._lean_node_change(lean)
        else:
            for node in self._batch(topic, payload, proto.decode_nodes):
                changes += self._node(node)
        return changes

    def _batch(self, topic: bytes, payload: bytes, decode: Callable[[bytes], tuple[list[_N], list[str]]]) -> list[_N]:
        """The nodes of a NODES message that is ours (rule 7), decoded; [] for another prefix's batches (a plain
        subscription to "" receives every topic), batches given up, or a payload that is none."""
        if not self.batched or topic != self.nodes_topic:
            return []
        try:
            nodes, dropped = decode(payload)
        except proto.ProtocolError as error:
            log.debug("dropped a NODES message from the hub: %s", error)
            return []
        if dropped:
            log.debug("dropped %d node(s) of a NODES message from the hub: %s", len(dropped), dropped[0])
        return nodes

    def _lean_change(self, update: proto.NodeUpdate) -> list[Change]:
        """A NODE given to :meth:`receive` in the lean mode: applied by the same rules, reported as a Change."""
        return self._lean_node_change(proto.LeanNode.from_update(update))

    def _lean_node_change(self, message: proto.LeanNode) -> list[Change]:
        accepted: list[proto.LeanNode] = []
        old = self._apply_update(message, accepted)
        if not accepted:
            return []
        before = None if old is None else NodeState.from_update(old)
        after = None if message.kind == proto.NODE_REMOVED else NodeState.from_update(message)
        return [Change(message.path, before, after)]

    def receive_node(self, topic: bytes, payload: bytes, accepted: list[proto.LeanNode]) -> None:
        """The lean mode's :meth:`receive` of a message whose topic is not a heartbeat topic
        (:func:`~gsmon.common.protocol.is_heartbeat_topic`: those go to :meth:`receive`, with the clocks):
        the same rules; the NODE applied, if it is, is appended to ``accepted`` (a removal as the
        LeanNode of kind ``removed``, only when the view held the node)."""
        self.receive_nodes(((topic, payload),), accepted)

    def receive_nodes(self, messages: Iterable[tuple[bytes, bytes]], accepted: list[proto.LeanNode]) -> None:
        """:meth:`receive_node` of each ``(topic, payload)`` in turn, as one loop (the read path's: a call
        and the sync state's lookups per NODE cost as much as the rules). None may be a heartbeat: the
        caller hands those to :meth:`receive` between two batches, in stream order."""
        self._apply_lean(self._decoded(messages), accepted)

    def receive_batch(self, topic: bytes, payload: bytes, accepted: list[proto.LeanNode]) -> None:
        """The lean mode's :meth:`receive` of a NODES message (rule 7): its nodes by the same rules as
        :meth:`receive_nodes`, the ones applied appended to ``accepted``. Another prefix's batches are not ours."""
        self._apply_lean(self._batch(topic, payload, proto.decode_lean_nodes), accepted)

    @staticmethod
    def _decoded(messages: Iterable[tuple[bytes, bytes]]) -> Iterator[proto.LeanNode]:
        decode, protocol_error = proto.decode_lean_node, proto.ProtocolError
        for topic, payload in messages:
            try:
                yield decode(topic, payload)
            except protocol_error as error:
                log.debug("dropped a message from the hub: %s", error)

    def _apply_lean(self, messages: Iterable[proto.LeanNode], accepted: list[proto.LeanNode]) -> None:
        """Rule 3 for each lean node in turn (:meth:`receive_nodes`, :meth:`receive_batch`)."""
        epoch, snapshot_seq, prefix = self.epoch, self._snapshot_seq, self.prefix
        ends_segment, nodes, append, removed = (
            self._prefix_ends_segment,
            self._updates,
            accepted.append,
            proto.NODE_REMOVED,
        )
        received = 0
        try:
            for message in messages:
                # Rule 3, as _apply_update (the sync state does not change within a batch: only a snapshot does).
                if message.epoch != epoch:
                    self.wants_snapshot = True
                    continue
                seq = message.seq
                if seq <= snapshot_seq:
                    continue  # already in the snapshot
                received += 1
                path = message.path
                # path_in_prefix, by its definition: a prefix that is empty or ends at a separator selects what
                # it starts; what it leaves out was counted all the same (the topic matched bytes).
                if not (path.startswith(prefix) if ends_segment else path_in_prefix(path, prefix)):
                    continue
                old = nodes.get(path)
                if old is not None:
                    if seq <= old.seq:
                        continue  # the snapshot already held this node at that change or a later one
                    # The same text: the one held (the view's key) is kept, the copy just decoded is freed now,
                    # while it is in cache, rather than the old one later, when it is not.
                    message.path = old.path
                if message.kind == removed:
                    if old is None:
                        continue
                    del nodes[path]
                else:
                    nodes[path] = message
                append(message)
        finally:
            self._received += received

    def _apply_update(self, message: proto.LeanNode, accepted: list[proto.LeanNode]) -> proto.LeanNode | None:
        """Rule 3 in the lean mode (as :meth:`_node`); returns the node held before when ``message`` was applied
        (and appended to ``accepted``), else None (also when nothing was held: ``accepted`` tells)."""
        if message.epoch != self.epoch:
            self.wants_snapshot = True
            return None
        seq = message.seq
        if seq <= self._snapshot_seq:
            return None  # already in the snapshot
        self._received += 1
        path = message.path
        prefix = self.prefix
        # path_in_prefix, by its definition: a prefix that is empty or ends at a separator selects what it starts.
        if not (path.startswith(prefix) if self._prefix_ends_segment else path_in_prefix(path, prefix)):
            return None  # the topic matched bytes, the prefix rule does not select it (counted all the same)
        nodes = self._updates
        old = nodes.get(path)
        if old is not None and seq <= old.seq:
            return None  # the snapshot already held this node at that change or a later one
        if message.kind == proto.NODE_REMOVED:
            if old is None:
                return None
            del nodes[path]
        else:
            nodes[path] = message
        accepted.append(message)
        return old

    def _heartbeat(self, beat: proto.HubHeartbeat, now: float, wall: float) -> None:
        self.last_heartbeat = now
        self.heartbeat_s = beat.interval_s
        self.hub_clock_offset_s = beat.sent_at_s - wall
        if not self.confirmed:
            # In batches (rule 7) only ``batched`` says that the hub publishes them for us: the counter may be
            # there for another client's plain subscription of the same prefix.
            if self.prefix in beat.batched if self.batched else (self.prefix in beat.published or not beat.complete):
                self.confirmed = True
                self._confirm_at = None
                self._refusals = 0
                self.wants_snapshot = True  # subscribed (again): a fresh snapshot
            elif self.batched:
                self._refusals += 1
            return
        if beat.epoch != self.epoch:
            self.wants_snapshot = True
            return
        if beat.seq < self._snapshot_seq:
            return  # sent before the snapshot started: it counts NODEs the snapshot already holds
        if self.batched and self.prefix not in beat.batched:
            # The hub no longer makes our batches: subscribe again, then re-snapshot (rule 4, rule 7).
            log.info("the hub no longer lists %r as followed in batches; subscribing again", self.prefix)
            self.confirmed = False
            self._confirm_at = now
            return
        published = beat.published.get(self.prefix)
        if published is None:
            if beat.complete:
                # The hub does not count (nor publish) our prefix: subscribe again, then re-snapshot.
                log.info("the hub no longer lists %r as followed; subscribing again", self.prefix)
                self.confirmed = False
                self._confirm_at = now  # the next tick sends them
            return
        if published - self._base_published != self._received:
            log.info(
                "missed %d update(s) from the hub; taking a new snapshot",
                published - self._base_published - self._received,
            )
            self.wants_snapshot = True

    def _node(self, message: proto.NodeUpdate) -> list[Change]:
        if message.epoch != self.epoch:
            self.wants_snapshot = True
            return []
        if message.seq <= self._snapshot_seq:
            return []  # already in the snapshot
        self._received += 1
        path = message.path
        if not path_in_prefix(path, self.prefix):
            return []  # the topic matched bytes, the prefix rule does not select it (counted all the same)
        old = self._nodes.get(path)
        if old is not None and message.seq <= old.seq:
            return []  # the snapshot already held this node at that change or a later one
        if message.kind == proto.NODE_REMOVED:
            if old is None:
                return []
            del self._nodes[path]
            new = None
        else:
            new = self._nodes[path] = NodeState.from_update(message)
        if self.min_alert is None:
            return [Change(path, old, new)]  # the whole view: the change as it is (one Change per NODE, not two)
        seen = self._as_seen(Change(path, old, new))
        return [] if seen is None else [seen]

    # ------------------------------------------------------------------

    def _visible(self, node: NodeState | None) -> bool:
        return node is not None and (self.min_alert is None or node.alertcode >= self.min_alert)

    def _as_seen(self, change: Change) -> Change | None:
        """The change as the ``min_alert`` view sees it: a node rising to the
        threshold appears (``old`` None), one dropping below it goes away (``new``
        None); None when it stays out of view."""
        old = change.old if self._visible(change.old) else None
        new = change.new if self._visible(change.new) else None
        return None if old is None and new is None else Change(change.path, old, new)
