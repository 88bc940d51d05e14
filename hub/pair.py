"""A pair of hubs (issue 17 §2): the op log, its exchange, the digest and the notification sender. No I/O.

Both hubs of a pair build the same tree from the same agents (``hub=[A, B]``);
what an operator does on one of them (ack, unack, shelve, unshelve, clear,
forget) and what its notifier delivered must reach the other. Each hub writes
those as *ops* into its own log, keyed ``(origin hub_id, seq)``, and the two
exchange them over the peer link (PAIR_SYNC / PAIR_SYNC_REPLY, protocol
docstring "Hub pairs")::

    operator command ok on A --> core.record(kind, args, wall) --> op (A, 7)
    every sync_s, or at once after a record:  core.message(now) --> PAIR_SYNC to B
    B:  core.take(msg, now) --> [ops to apply]  --> the alarm book (ack...), the delivery marks
        ops that name what B does not know yet (an alarm its agent has not raised there) --> core.defer
    B's answer (PAIR_SYNC_REPLY) carries B's ops the same way

Rules:

* Idempotent: an op is applied once, whatever number of times it arrives (the
  held set, and the contiguous cursor ``seen`` of the peer's ops).
* Resend: every message says ``seen`` (the peer's ops held with none missing);
  the peer sends its ops after that, so ops lost with a link, or sent to a dead
  peer, go again when the link returns. An op after a gap is dropped (it comes
  again after the missing one).
* Digest: every ``digest_s`` a message carries ``(ops held, sum of their key
  hashes mod 2**64)``. When both sides' cursors agree (the peer's ``seen`` is
  this hub's ``head`` and its ``head`` this hub's ``seen``) and the digests
  differ, or when the peer holds more of this hub's ops than this hub does (its
  state was restored from an older copy), this hub starts a *full exchange*:
  it sends its whole retained log, with ``full`` set, and the receiver applies
  every op it lacks (contiguous or not, its own returning ones too) and
  answers with a full exchange of its own.
* Liveness: the peer is live while any valid message from it arrived within
  ``peer_timeout_s``.
* Notifications: the sender is this hub when the peer is not live, or when
  its ``hub_id`` is the lowest of the two (so exactly one sends while both
  are up, and both send while they cannot hear each other).
* Delivery marks (``delivered`` ops, ``{"keys": [[receiver, alarm_id, kind],
  ...]}``) are applied here: :meth:`PairCore.is_delivered` answers the
  standby's notifier, which sends only what no hub has marked.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from gsmon.common.protocol import MAX_PAIR_OPS_PER_MESSAGE, PairOp

__all__ = [
    "OP_KINDS",
    "DeliveryKey",
    "PairConfig",
    "PairCore",
    "PairMessage",
    "PairSettings",
    "PairStats",
    "StoredPair",
    "check_hub_id",
    "delivery_key",
    "op_hash",
]

#: What travels in the op log.
OP_KINDS: Final = ("ack", "unack", "shelve", "unshelve", "clear", "forget", "delivered")

DeliveryKey = tuple[str, int, str]  # (receiver, alarm id, journal kind)
_MASK64: Final = (1 << 64) - 1
# A full exchange received this soon after this hub started one is the answer to it (no ping-pong).
_FULL_ANSWER_WINDOW_S: Final = 5.0


def op_hash(origin: str, seq: int) -> int:
    """The 64-bit hash of an op key that the digest sums (blake2b, so any language can compute it)."""
    digest = hashlib.blake2b(f"{origin}\0{seq}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def delivery_key(item: object) -> DeliveryKey | None:
    """A ``[receiver, alarm_id, kind]`` from the wire, or None when it is not one."""
    if not isinstance(item, list | tuple) or len(item) != 3:
        return None
    receiver, alarm_id, kind = item
    if not isinstance(receiver, str) or type(alarm_id) is not int or not isinstance(kind, str):
        return None
    return receiver, alarm_id, kind


@dataclass(frozen=True, slots=True)
class PairSettings:
    """How the pair exchanges (``gsmon hub --peer``; ``[pair]`` in the hub config)."""

    peer_timeout_s: float = 15.0  # the peer is gone after this long without a message from it
    sync_s: float = 0.25  # an idle hub sends PAIR_SYNC this often (at once after an op)
    digest_s: float = 30.0  # a digest rides on a message this often
    retry_for_s: float = 60.0  # an op naming what this hub does not know yet is retried this long
    max_ops_kept: int = 50_000  # retained log (for resends and full exchanges); older ops are dropped


@dataclass(frozen=True, slots=True)
class PairConfig:
    """``gsmon hub --peer QUERY_ENDPOINT [--peer-key FILE] [--hub-id ID]``; ``[pair]`` in the hub config."""

    peer: str  # the peer hub's query endpoint
    peer_key_file: Path | None = None  # its public key file (with keys)
    hub_id: str | None = None  # None: the one stored in pair.db (made on the first start)
    settings: PairSettings = PairSettings()


_HUB_ID_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def check_hub_id(hub_id: str) -> str | None:
    """Why ``hub_id`` is not usable (None: it is): 1 to 64 of letters, digits, ``-``, ``_``, ``.``."""
    if not 1 <= len(hub_id) <= 64 or not set(hub_id) <= _HUB_ID_CHARS:
        return f"hub id {hub_id!r:.80} must be 1 to 64 letters, digits, '-', '_' or '.'"
    return None


@dataclass(slots=True)
class StoredPair:
    """What the hub's pair store holds (``pair.db`` in the state directory)."""

    hub_id: str
    peer_id: str | None = None
    head: int = 0
    seen: int = 0
    count: int = 0
    total: int = 0
    ops: list[PairOp] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PairMessage:
    """The fields of a PAIR_SYNC or PAIR_SYNC_REPLY, as the core fills them."""

    hub_id: str
    head: int
    seen: int
    ops: list[PairOp]
    digest: tuple[int, int] | None
    full: bool
    notifying: bool


@dataclass(slots=True)
class PairStats:
    """What the pair has done (health points ``_hub/pair/...``)."""

    sent: int = 0
    received: int = 0
    applied: int = 0
    duplicates: int = 0
    gaps: int = 0
    foreign: int = 0  # ops from a third origin, or messages from another hub id than the peer's
    deferred: int = 0
    expired: int = 0  # deferred ops given up (what they named never appeared)
    full_exchanges: int = 0
    digest_mismatches: int = 0


class PairCore:
    """One hub's side of the pair (see the module docstring)."""

    def __init__(self, stored: StoredPair, settings: PairSettings, now: float) -> None:
        self.settings = settings
        self.hub_id = stored.hub_id
        self.peer_id = stored.peer_id
        self.head = stored.head  # own last seq
        self.seen = stored.seen  # the peer's ops held with none missing below
        self._count = stored.count
        self._total = stored.total
        self._log: OrderedDict[tuple[str, int], PairOp] = OrderedDict()
        self._delivered: OrderedDict[DeliveryKey, None] = OrderedDict()
        for op in stored.ops:
            self._keep(op)
        self.peer_seen = 0  # what the peer last said it holds of ours (resend after it)
        self.peer_head = 0
        self.peer_notifying = False
        self.last_heard = -math.inf
        self._next_sync = now
        self._next_digest = now
        self._full_queue: list[PairOp] = []
        self._full_open = False  # a full exchange is being sent (possibly of no ops at all)
        self._full_started = -math.inf
        self._deferred: list[tuple[PairOp, float]] = []
        self._unsaved: list[PairOp] = []
        self.stats = PairStats()

    # -- this hub's ops ---------------------------------------------------------------------------

    def record(self, kind: str, args: dict[str, Any], wall: float, now: float) -> PairOp:
        """An operator action done here: the next op of this hub's log (sent at the next :meth:`message`)."""
        if kind not in OP_KINDS:
            raise ValueError(f"unknown pair op kind {kind!r}: one of {', '.join(OP_KINDS)}")
        self.head += 1
        op = PairOp(self.hub_id, self.head, kind, wall, args)
        self._hold(op)
        self._next_sync = now  # at once: an ack shows on the peer within a second
        return op

    def mark_delivered(self, keys: Iterable[DeliveryKey], wall: float, now: float) -> PairOp | None:
        """The notifier here delivered these: a ``delivered`` op (None when every key was marked already)."""
        new = [list(key) for key in dict.fromkeys(keys) if key not in self._delivered]
        if not new:
            return None
        return self.record("delivered", {"keys": new}, wall, now)

    def is_delivered(self, key: DeliveryKey) -> bool:
        return key in self._delivered

    # -- the exchange -----------------------------------------------------------------------------

    def due(self, now: float) -> bool:
        """Whether a PAIR_SYNC should go to the peer now."""
        return now >= self._next_sync

    def message(self, now: float) -> PairMessage:
        """What to send the peer now (a PAIR_SYNC, or the answer to one): ops it lacks, cursors, perhaps a digest."""
        self._next_sync = now + self.settings.sync_s
        full = self._full_open
        if full:
            ops = self._full_queue[:MAX_PAIR_OPS_PER_MESSAGE]
            del self._full_queue[:MAX_PAIR_OPS_PER_MESSAGE]
            self._full_open = bool(self._full_queue)
        else:
            ops = []
            for seq in range(self.peer_seen + 1, self.head + 1):
                op = self._log.get((self.hub_id, seq))
                if op is not None:  # None: dropped from the retained log (the digest shows the loss)
                    ops.append(op)
                if len(ops) >= MAX_PAIR_OPS_PER_MESSAGE:
                    break
        digest: tuple[int, int] | None = None
        if now >= self._next_digest:
            self._next_digest = now + self.settings.digest_s
            digest = self.digest
        self.stats.sent += 1
        return PairMessage(self.hub_id, self.head, self.seen, ops, digest, full, self.is_sender(now))

    def reply(self, now: float) -> PairMessage:
        """The answer to a PAIR_SYNC just taken: the same as :meth:`message`, without moving the sync timer."""
        next_sync = self._next_sync
        out = self.message(now)
        self._next_sync = min(next_sync, self._next_sync)
        return out

    @property
    def digest(self) -> tuple[int, int]:
        return self._count, self._total

    def take(self, msg: PairMessage, now: float) -> list[PairOp]:
        """A message from the peer: the ops to apply now, in order (each exactly once over the pair's life)."""
        if self.peer_id is None:
            self.peer_id = msg.hub_id
        elif msg.hub_id != self.peer_id or msg.hub_id == self.hub_id:
            self.stats.foreign += 1
            return []
        self.stats.received += 1
        self.last_heard = now
        # As said, not the highest ever: a peer restored from an older copy says less, and gets the rest again.
        self.peer_seen = msg.seen
        self.peer_head = msg.head
        self.peer_notifying = msg.notifying
        out: list[PairOp] = []
        for op in sorted(msg.ops, key=lambda item: (item.origin, item.seq)):
            key = (op.origin, op.seq)
            if op.kind not in OP_KINDS or op.origin not in (self.hub_id, self.peer_id):
                self.stats.foreign += 1
                continue
            # Below the cursor is held (applied), except in a full exchange, which is there to find what a
            # hub lost although its cursor says otherwise (the held set decides then, unless it was trimmed).
            below = op.origin == self.peer_id and op.seq <= self.seen
            trimmed = len(self._log) >= self.settings.max_ops_kept
            if key in self._log or (below and (not msg.full or trimmed)):
                self.stats.duplicates += 1
                continue
            if op.origin == self.hub_id:
                if not msg.full or op.seq <= self.head:
                    self.stats.duplicates += 1
                    continue
                self.head = op.seq  # our own op, returning after this hub lost it
            elif op.seq != self.seen + 1 and not msg.full:
                self.stats.gaps += 1
                continue
            self._hold(op)
            out.append(op)
        self.stats.applied += len(out)
        if msg.full and now - self._full_started > _FULL_ANSWER_WINDOW_S:
            self._start_full(now)  # answer with ours: the union ends on both sides
        elif msg.digest is not None and self._mismatch(msg):
            self.stats.digest_mismatches += 1
            self._start_full(now)
        elif msg.seen > self.head:
            self._start_full(now)  # the peer holds ops of ours that we lost: ask for everything
        return out

    def _mismatch(self, msg: PairMessage) -> bool:
        in_step = msg.seen == self.head and msg.head == self.seen
        return in_step and msg.digest != self.digest

    def _start_full(self, now: float) -> None:
        self.stats.full_exchanges += 1
        self._full_started = now
        self._full_queue = list(self._log.values())
        self._full_open = True  # even with no ops: one full message still asks for theirs
        self._next_sync = now

    # -- ops that must wait -------------------------------------------------------------------------

    def defer(self, op: PairOp, now: float) -> None:
        """``op`` names what this hub does not know yet (an alarm its agent has not raised here): retry it."""
        self.stats.deferred += 1
        self._deferred.append((op, now + self.settings.retry_for_s))

    def retries(self, now: float) -> list[PairOp]:
        """The deferred ops to try again now (those past ``retry_for_s`` are given up and counted)."""
        waiting, self._deferred = self._deferred, []
        out = []
        for op, until in waiting:
            if now > until:
                self.stats.expired += 1
            else:
                out.append(op)
                self._deferred.append((op, until))
        return out

    def done(self, op: PairOp) -> None:
        """A deferred op applied at last."""
        self._deferred = [(item, until) for item, until in self._deferred if item is not op]

    # -- liveness and the sender ----------------------------------------------------------------------

    def peer_live(self, now: float) -> bool:
        return now - self.last_heard < self.settings.peer_timeout_s

    def is_sender(self, now: float) -> bool:
        """Whether this hub's notifier sends: the lowest live hub_id does (both do in a partition)."""
        return self.peer_id is None or not self.peer_live(now) or self.hub_id < self.peer_id

    # -- persistence ------------------------------------------------------------------------------------

    def take_unsaved(self) -> list[PairOp]:
        """Ops held since the last call (the store writes them)."""
        out, self._unsaved = self._unsaved, []
        return out

    def stored(self) -> StoredPair:
        """The cursors (the ops are written as they come, by :meth:`take_unsaved`)."""
        return StoredPair(self.hub_id, self.peer_id, self.head, self.seen, self._count, self._total)

    def _hold(self, op: PairOp) -> None:
        self._keep(op)
        self._count += 1
        self._total = (self._total + op_hash(op.origin, op.seq)) & _MASK64
        if op.origin != self.hub_id:
            while (op.origin, self.seen + 1) in self._log:
                self.seen += 1
        self._unsaved.append(op)

    def _keep(self, op: PairOp) -> None:
        self._log[(op.origin, op.seq)] = op
        while len(self._log) > self.settings.max_ops_kept:
            self._log.popitem(last=False)
        if op.kind == "delivered":
            for item in op.args.get("keys", ()):
                key = delivery_key(item)
                if key is not None:
                    self._delivered[key] = None
            while len(self._delivered) > self.settings.max_ops_kept * 4:
                self._delivered.popitem(last=False)
