"""The socket side of a hub pair (issue 17 section 2): the peer link, the pair store, the pair's commands.

::

    this hub's DEALER --CURVE: own key pair, the peer's server key--> peer's query ROUTER
        PAIR_SYNC (every sync_s; at once after an op)  -->  PairCore.take on the peer, its ops applied there
        PAIR_SYNC_REPLY                                <--  the peer's ops, applied here
    the peer's DEALER --> this hub's query ROUTER: the same, the other way (QueryCore.pair = this link)

All the rules are :mod:`gsmon.hub.pair`'s (a pure core); this module reads and
writes the DEALER, stores the op log (``pair.db`` beside ``state.db``:
SQLite, WAL, written every turn that held new ops, before the PAIR_SYNC that
carries them), applies the peer's ops to the alarm book and the tree, and
turns this hub's successful operator commands into ops (QueryCore's
``pair.done`` hook). Access: the peer's key must be granted on this hub as a
subscriber listing the service ``pair`` (``services = ["pair"]``); without
keys anyone who reaches the query socket may (as with every command).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import zmq

from gsmon.common import protocol as proto
from gsmon.common import transport
from gsmon.common.alerts import GreenAlert, RedAlert
from gsmon.common.keys import KeyPair, apply_curve_client
from gsmon.hub.pair import PairConfig, PairCore, PairMessage, StoredPair, delivery_key
from gsmon.hub.queries import Call, CommandSpec, QueryCore

if TYPE_CHECKING:
    from gsmon.hub.queries import _Caller

__all__ = ["PAIR_FILE", "PairLink", "PairStore"]

log = logging.getLogger(__name__)

PAIR_FILE: Final = "pair.db"
PAIR_SERVICE: Final = "pair"
_REPLICATED: Final = ("ack", "unack", "shelve", "unshelve", "clear", "forget")
MAX_MARKS: Final = 1000  # keys in one pair_mark / pair_status


class PairStore:
    """``pair.db``: this hub's id, the cursors and the retained op log."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS ops (origin TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,"
            " at REAL NOT NULL, args TEXT NOT NULL, PRIMARY KEY (origin, seq))"
        )

    def load(self, hub_id: str | None, keep: int) -> StoredPair:
        """What is stored; a new store takes ``hub_id`` or makes one (``hub-`` + 8 hex digits)."""
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        stored_id = meta.get("hub_id")
        if hub_id is not None and stored_id is not None and stored_id != hub_id:
            log.warning("hub id %s given; pair.db had %s: this hub is %s from now on", hub_id, stored_id, hub_id)
        chosen = hub_id or stored_id or f"hub-{secrets.token_hex(4)}"
        rows = self._db.execute(
            "SELECT origin, seq, kind, at, args FROM ops ORDER BY rowid DESC LIMIT ?", (keep,)
        ).fetchall()
        ops = [proto.PairOp(origin, seq, kind, at, json.loads(args)) for origin, seq, kind, at, args in reversed(rows)]
        stored = StoredPair(
            chosen,
            meta.get("peer_id"),
            int(meta.get("head", 0)),
            int(meta.get("seen", 0)),
            int(meta.get("count", 0)),
            int(meta.get("total", 0)),
            ops,
        )
        if chosen != stored_id:
            self.save([], stored)
        return stored

    def save(self, ops: list[proto.PairOp], stored: StoredPair) -> None:
        """New ops and the cursors, in one transaction."""
        meta = {
            "hub_id": stored.hub_id,
            "head": str(stored.head),
            "seen": str(stored.seen),
            "count": str(stored.count),
            "total": str(stored.total),
        }
        if stored.peer_id is not None:
            meta["peer_id"] = stored.peer_id
        with contextlib.closing(self._db.cursor()) as cur:
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.executemany(
                    "INSERT OR IGNORE INTO ops (origin, seq, kind, at, args) VALUES (?, ?, ?, ?, ?)",
                    [(op.origin, op.seq, op.kind, op.at, json.dumps(op.args)) for op in ops],
                )
                cur.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta.items())
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._db.close()


class PairLink:
    """One hub's side of the pair: its DEALER to the peer, the core, the store; QueryCore's pair hooks."""

    def __init__(
        self,
        config: PairConfig,
        store: PairStore,
        queries: QueryCore,
        context: zmq.Context[zmq.Socket[bytes]],
        own_pair: KeyPair | None,
        peer_key: bytes | None,
        epoch: int,
        now: float,
        persist: Callable[[], bool] | None = None,
    ) -> None:
        self.config = config
        # The server's state-store write: what the peer's ops changed is in state.db before pair.db says
        # they are held (a crash between the two then applies them again, harmlessly, never loses them).
        self._persist = persist
        self.store = store
        self.queries = queries
        self.core = PairCore(store.load(config.hub_id, config.settings.max_ops_kept), config.settings, now)
        self.epoch = epoch
        self._requests = 0
        self._seq = 0
        self.commands: dict[str, CommandSpec] = {
            "pair_status": CommandSpec("viewer", "this hub's place in its pair, and delivery marks", _pair_status),
            "pair_mark": CommandSpec("viewer", "record deliveries of this hub's notifier", _pair_mark),
        }
        dealer = self.dealer = transport.make_socket(
            context, zmq.DEALER, transport.SocketOptions(sndhwm=100, rcvhwm=1000, max_msg_bytes=proto.MAX_FRAME_BYTES)
        )
        if own_pair is not None:
            if peer_key is None:
                raise ValueError("a hub with keys needs its peer's public key (--peer-key FILE) to link with it")
            apply_curve_client(dealer, own_pair, peer_key)
        dealer.connect(config.peer)
        self.bad_messages = 0
        self._was_live = False
        queries.pair = self
        log.info("pair: this hub is %s; peer at %s", self.core.hub_id, config.peer)

    # -- the loop's part ------------------------------------------------------------------------------

    def turn(self, now: float, wall: float) -> None:
        """Read the peer's replies, retry deferred ops, send a PAIR_SYNC when due; store what is new."""
        while True:
            try:
                data = self.dealer.recv(zmq.DONTWAIT)
            except zmq.Again:
                break
            try:
                msg = proto.decode(data)
            except proto.ProtocolError as error:
                self._bad(f"undecodable answer from the peer: {error}")
                continue
            if isinstance(msg, proto.PairSyncReply):
                self._apply_all(self.core.take(_fields(msg), now), now, wall)
                self._stored_first()
            elif isinstance(msg, proto.Error):
                self._bad(f"the peer refused PAIR_SYNC: {msg.message}")
            else:
                self._bad(f"the peer answered {msg.kind.name}")
        for op in self.core.retries(now):
            if self._apply(op, now, wall):
                self.core.done(op)
        live = self.core.peer_live(now)
        if live != self._was_live:
            self._was_live = live
            if live:
                log.info("pair: linked with %s", self.core.peer_id)
            else:
                log.warning(
                    "pair: no word from the peer %s for %g s: this hub sends the notifications",
                    self.core.peer_id,
                    self.config.settings.peer_timeout_s,
                )
        self.save()  # before the PAIR_SYNC that carries them: an op the peer holds is one this hub holds
        if self.core.due(now):
            fields = self.core.message(now)
            self._requests += 1
            self._seq += 1
            request = proto.PairSync(
                sender="hub",
                epoch=self.epoch,
                seq=self._seq,
                sent_ns=time.time_ns(),
                request_id=self._requests,
                hub_id=fields.hub_id,
                head=fields.head,
                seen=fields.seen,
                ops=fields.ops,
                digest=fields.digest,
                full=fields.full,
                notifying=fields.notifying,
            )
            with contextlib.suppress(zmq.Again):  # the peer is down: the ops go again after its last seen
                self.dealer.send(proto.encode(request), zmq.DONTWAIT)

    def health_points(self, now: float) -> dict[str, tuple[Any, int]]:
        """The pair's health as hub points ``_hub/pair/...`` (value, level): the link, the sender, the counts."""
        live = self.core.peer_live(now)
        stats = self.core.stats
        points: dict[str, tuple[Any, int]] = {
            "pair/peer_live": (live, GreenAlert.alertcode if live else RedAlert.alertcode),
            "pair/sender": (self.core.is_sender(now), 0),
            "pair/head": (self.core.head, 0),
            "pair/seen": (self.core.seen, 0),
            "pair/bad_messages": (self.bad_messages + stats.foreign, 0),
        }
        for name in ("applied", "duplicates", "gaps", "deferred", "expired", "full_exchanges", "digest_mismatches"):
            points[f"pair/{name}"] = (getattr(stats, name), 0)
        return points

    def _stored_first(self) -> None:
        if self._persist is not None:
            self._persist()

    def save(self) -> None:
        ops = self.core.take_unsaved()
        if ops or self.core.stored() != getattr(self, "_saved", None):
            stored = self.core.stored()
            self.store.save(ops, stored)
            self._saved = stored

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.save()
        self.dealer.close(linger=0)
        self.store.close()

    # -- QueryCore's hooks ----------------------------------------------------------------------------

    def sync(self, caller: _Caller, msg: proto.PairSync, now: float, wall: float) -> PairMessage | str:
        grant = caller.grant
        if caller.keyed and not caller.hub_key and (grant is None or PAIR_SERVICE not in grant.services):
            return f'PAIR_SYNC needs a key granted the service {PAIR_SERVICE!r} (services = ["pair"])'
        if msg.hub_id == self.core.hub_id:
            return f"PAIR_SYNC from hub id {msg.hub_id}, which is this hub's own: give each hub its own --hub-id"
        if self.core.peer_id is not None and msg.hub_id != self.core.peer_id:
            return f"this hub is paired with {self.core.peer_id}, not {msg.hub_id}"
        self._apply_all(self.core.take(_fields(msg), now), now, wall)
        self._stored_first()
        self.save()
        return self.core.reply(now)

    def done(self, call: Call, ok: bool, result: Any) -> None:
        """An operator command ran here: what it changed becomes an op of this hub's log."""
        if not ok or call.command not in _REPLICATED or not isinstance(result, dict):
            return
        common = {"by": call.by, "user": call.user, "via": call.via, "comment": call.args.get("comment")}
        args: dict[str, Any] | None = None
        if call.command == "ack" or call.command == "unack":
            ids = result.get("acked") or []
            args = {"ids": ids, **common} if ids else None
        elif call.command == "clear":
            ids = result.get("cleared") or []
            args = {"ids": ids, **common} if ids else None
        elif call.command == "shelve":
            shelf = result.get("shelf") or {}
            keys = ("id", "prefix", "mode", "starts_at", "ends_at", "comment", "by", "user", "via")
            args = {key: shelf.get(key) for key in keys}
        elif call.command == "unshelve":
            shelf = result.get("shelf") or {}
            args = {"id": shelf.get("id"), **common}
        elif call.command == "forget":
            args = {"agent": call.args.get("agent"), **common}
        if args is not None:
            self.core.record(call.command, args, call.wall, call.now)
            self.save()  # in pair.db before the COMMAND_RESULT says done: a crash then cannot lose the op

    # -- applying the peer's ops ----------------------------------------------------------------------

    def _apply_all(self, ops: list[proto.PairOp], now: float, wall: float) -> None:
        for op in ops:
            try:
                applied = self._apply(op, now, wall)
            except Exception as error:  # a bad op from the network must not stop the hub
                self._bad(f"op {op.origin}/{op.seq} {op.kind}: {type(error).__name__}: {error}")
                continue
            if not applied:
                self.core.defer(op, now)

    def _apply(self, op: proto.PairOp, now: float, wall: float) -> bool:
        """Apply one op of the peer's (or a deferred one); False: it names what this hub does not know yet."""
        book = self.queries.state.alarms
        args = op.args
        if op.kind == "delivered":
            return True  # the core holds the marks
        if book is None:
            return True  # no alarm layer here: nothing to apply (the op stays in the log)
        by = str(args.get("by") or op.origin)
        user, via, comment = _text(args.get("user")), _text(args.get("via")), _text(args.get("comment"))
        at = op.at if math.isfinite(op.at) else wall
        if op.kind in ("ack", "unack", "clear"):
            ids = [i for i in args.get("ids") or [] if type(i) is int]
            missing = [i for i in ids if book.alarm(i) is None]
            for alarm_id in ids:
                if alarm_id in missing:
                    continue
                if op.kind == "ack":
                    book.ack([alarm_id], by, user, comment, via, "admin", now, at)
                elif op.kind == "unack":
                    book.unack(alarm_id, by, user, comment, via, "admin", now, at)
                else:
                    book.clear(alarm_id, by, user, comment, via, "admin", now, at)
            if missing and len(missing) == len(ids):
                return False  # all of it waits: the alarm is raised here when this hub gets the agent's message
            if missing:
                self.core.defer(proto.PairOp(op.origin, op.seq, op.kind, op.at, {**args, "ids": missing}), now)
            return True
        if op.kind == "shelve":
            shelf_id = args.get("id")
            if type(shelf_id) is not int or book.shelf(shelf_id) is not None:
                return True
            book.shelve(
                str(args.get("prefix")),
                str(args.get("mode")),
                _number(args.get("starts_at")),
                _number(args.get("ends_at")),
                comment or "(replicated from the peer hub)",
                by,
                user,
                via,
                "admin",
                now,
                at,
                shelf_id=shelf_id,
            )
            return True
        if op.kind == "unshelve":
            shelf_id = args.get("id")
            if type(shelf_id) is not int:
                return True
            shelf = book.shelf(shelf_id)
            if shelf is None:
                return False
            if shelf.ended_at is None:
                book.unshelve(shelf_id, by, user, comment, via, "admin", now, at)
            return True
        if op.kind == "forget":
            name = args.get("agent")
            if not isinstance(name, str):
                return True
            done, _, result = self.queries.state.forget(name, now, wall)
            if done:
                book.record_forget(name, by, user, comment, via, now, wall)
                return True
            return result.get("reason") != "live"  # live here still: forgotten once it is silent here too
        return True

    def _bad(self, why: str) -> None:
        self.bad_messages += 1
        if self.bad_messages <= 10 or self.bad_messages % 1000 == 0:
            log.warning("pair: %s (%d so far)", why, self.bad_messages)


def _fields(msg: proto.PairSync) -> PairMessage:
    return PairMessage(msg.hub_id, msg.head, msg.seen, msg.ops, msg.digest, msg.full, msg.notifying)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _link(core: QueryCore) -> PairLink | None:
    pair = core.pair
    return pair if isinstance(pair, PairLink) else None


def _keys(value: object) -> list[tuple[str, int, str]] | None:
    if not isinstance(value, list) or len(value) > MAX_MARKS:
        return None
    keys = [delivery_key(item) for item in value]
    return None if any(key is None for key in keys) else [key for key in keys if key is not None]


def _pair_status(core: QueryCore, call: Call) -> tuple[bool, str, Any]:
    """``pair_status {check?: [[receiver, alarm_id, kind]...]}``: whether this hub sends, and which keys are marked."""
    link = _link(core)
    assert link is not None  # the command exists only on a hub of a pair
    keys = _keys(call.args.get("check", []))
    if keys is None:
        return False, f"check must be a list of at most {MAX_MARKS} [receiver, alarm_id, kind]", {"reason": "bad-args"}
    pair = link.core
    result = {
        "hub_id": pair.hub_id,
        "peer_id": pair.peer_id,
        "peer_live": pair.peer_live(call.now),
        "sender": pair.is_sender(call.now),
        "delivered": [pair.is_delivered(key) for key in keys],
    }
    return True, "sender" if result["sender"] else "standby", result


def _pair_mark(core: QueryCore, call: Call) -> tuple[bool, str, Any]:
    """``pair_mark {keys: [[receiver, alarm_id, kind]...]}``: this hub's notifier delivered these."""
    link = _link(core)
    assert link is not None
    grant = call.caller.grant
    viewer = call.caller.keyed and not call.caller.hub_key and call.role == "viewer"
    if viewer and (grant is None or "notify" not in grant.services):
        # A mark stops the other hub's notifier: more than a viewer may do.
        return (
            False,
            'pair_mark needs an operator\'s key or one granted services = ["notify"]',
            {"reason": "forbidden"},
        )
    keys = _keys(call.args.get("keys"))
    if keys is None:
        return False, f"keys must be a list of at most {MAX_MARKS} [receiver, alarm_id, kind]", {"reason": "bad-args"}
    link.core.mark_delivered(keys, call.wall, call.now)
    link.save()  # held before the answer says so
    return True, f"marked {len(keys)} deliveries", {"marked": len(keys)}
