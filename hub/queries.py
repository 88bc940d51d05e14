"""Answers on the hub's query socket: INFO, snapshots in bounded slices, and commands. No I/O.

::

    query ROUTER --decode--> QueryCore.request(msg, who, now) --> replies now: INFO, ERROR, COMMAND_RESULT
                                                       \\--------> a snapshot job, queued
    every loop turn:         QueryCore.work(now) ------------> the next slice of the jobs, round-robin

Shaped like :class:`~gsmon.hub.state.HubState`: it takes the time as an
argument and returns what to send, ``(routing identity, frame)`` pairs for the
ROUTER socket; the server only reads, decodes and sends.

Why snapshots are sliced: answering each request at once, by scanning the
whole tree, let any subscriber key stop the hub -- 2,000 requests sent in a
few milliseconds held a good agent's updates back for 3.5 s at 35,000 nodes.
Now the work is bounded three ways:

* its cost is the subtree asked for: :meth:`HubState.nodes_under` walks the
  tree from the prefix's node, never the whole tree;
* a loop turn spends at most :attr:`QuerySettings.turn_nodes` nodes on all
  snapshots together, one chunk's slice per job in turn (round-robin), so
  that agents' messages are read between slices and keep flowing;
* a client identity (its CURVE key, else its connection) has at most
  :attr:`QuerySettings.max_jobs_per_client` snapshots outstanding and the hub
  :attr:`QuerySettings.max_jobs` in all; beyond that a request is answered at
  once with ERROR ``busy, retry``.

A snapshot spread over several turns is consistent by the per-node seq rule
(protocol: Snapshots): its SNAPSHOT_END carries the seq and the publish
counter of the moment it *started*, and every node payload its own seq.

Access, with keys: HELLO needs a subscriber key; a snapshot a grant covering
every node its prefix selects (:func:`may_snapshot`); a command the role its
entry in :data:`COMMANDS` names (viewer < operator < admin: the grant's
``role``, ``admin = true`` meaning admin, default viewer). The hub's own key
pair is an administrator that may read everything. Without keys the query
socket is open to whoever reaches it, as the rest of the hub is, and every
caller is an admin. Every command knows who asked: ``by`` is the key's name
(without keys ``anonymous@<peer ip>``), ``user`` the end user the client
forwards, ``via`` the args' ``via``. The operator commands themselves live in
:mod:`gsmon.hub.operator`.

Services (``register_service``): a client (the recorder) registers its
connection as the hub's "history" service; a COMMAND ``history`` from any
client is then forwarded to it with a request id of the hub's, and its
COMMAND_RESULT relayed back under the asker's request id
(:meth:`QueryCore.relay`). A forwarded request not answered within
:attr:`QuerySettings.forward_timeout_s` is answered ok=false.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from gsmon.common import protocol as proto
from gsmon.common.allowlist import AllowList, SubscriberGrant
from gsmon.common.tree import TreeNode
from gsmon.hub.client_health import ClientHealth
from gsmon.hub.command_log import command_level
from gsmon.hub.journal import StateStore
from gsmon.hub.operator import OPERATOR_COMMANDS
from gsmon.hub.relay import Router
from gsmon.hub.state import HubState

if TYPE_CHECKING:
    from gsmon.hub.pair import PairMessage

__all__ = [
    "BUSY_MESSAGE",
    "COMMANDS",
    "CommandSpec",
    "Outcome",
    "PairHooks",
    "QueryCore",
    "QuerySettings",
    "may_snapshot",
]

log = logging.getLogger(__name__)

BUSY_MESSAGE: Final = "busy, retry"
# Connections whose reply seq is remembered; past that the least recently answered is forgotten.
_MAX_TRACKED_CONNECTIONS: Final = 65536
Role = Literal["viewer", "operator", "admin"]
ROLE_ORDER: Final = ("viewer", "operator", "admin")
_ROLE_WORDS: Final = {"viewer": "a viewer's", "operator": "an operator's", "admin": "an administrator's"}


@dataclass(frozen=True, slots=True)
class QuerySettings:
    """How much snapshot work the hub does per turn and per client."""

    chunk_nodes: int = 2000  # nodes per SNAPSHOT_CHUNK
    turn_nodes: int = 4000  # nodes visited per loop turn, over all snapshots
    max_jobs_per_client: int = 4  # snapshots outstanding per client identity
    max_jobs: int = 256  # snapshots outstanding in all
    forward_timeout_s: float = 30.0  # a forwarded (service) request unanswered this long is answered ok=false
    max_forwarded: int = 1000  # forwarded requests outstanding in all


@dataclass(slots=True)
class QueryStats:
    """What the query core has done (the server reports some as health points)."""

    hellos: int = 0
    snapshots: int = 0
    snapshot_nodes: int = 0
    busy: int = 0
    commands: int = 0
    refused: int = 0


@dataclass(slots=True)
class Outcome:
    """What to send for one request, and whether it was refused for its key or invalid (the server counts it)."""

    replies: list[tuple[bytes, bytes]] = field(default_factory=list)
    refused: str | None = None  # refused for the sender's key: why
    invalid: str | None = None  # not a request the hub answers: why


@dataclass(frozen=True, slots=True)
class _Caller:
    """Who sent a request: the routing identity, and with keys the key and what it is granted."""

    identity: bytes
    key: str | None
    keyed: bool  # the hub uses keys
    hub_key: bool  # the hub's own key pair: an administrator that reads everything
    grant: SubscriberGrant | None
    peer: str | None = None  # the connection's IP address, when the server knows it

    @property
    def role(self) -> str:
        """viewer, operator or admin (without keys, and for the hub's own key: admin)."""
        if not self.keyed or self.hub_key:
            return "admin"
        return self.grant.effective_role if self.grant is not None else "viewer"

    @property
    def by(self) -> str:
        """Who acts, for the journal: the key's name, else ``anonymous@<peer ip>``."""
        if self.hub_key:
            return "hub"
        if self.grant is not None:
            return self.grant.name
        return f"anonymous@{self.peer or 'unknown'}"

    @property
    def client(self) -> str | bytes:
        """The identity snapshots are counted against: the key, else the connection."""
        return self.key if self.key is not None else self.identity

    @property
    def name(self) -> str:
        if self.hub_key:
            return "the hub's own key"
        if self.grant is not None:
            return repr(self.grant.name)
        return f"client {self.identity.hex()}" if not self.keyed else f"key {self.key}"

    def has_role(self, role: Role) -> bool:
        return ROLE_ORDER.index(self.role) >= ROLE_ORDER.index(role)


@dataclass(frozen=True, slots=True)
class RoutedCaller(_Caller):
    """(1.3) The asker of a command an upstream hub routed down (gsmon.hub.relay): its ``by`` and role
    as the upstream hub checked them."""

    routed_by: str = ""
    routed_role: str = "viewer"

    @property
    def role(self) -> str:
        return self.routed_role

    @property
    def by(self) -> str:
        return self.routed_by

    @property
    def name(self) -> str:
        return f"{self.routed_by} (routed from upstream)"


@dataclass(frozen=True, slots=True)
class Call:
    """One COMMAND as a command function sees it: its args and who asked, when."""

    command: str
    args: dict[str, Any]
    caller: _Caller
    user: str | None
    now: float
    wall: float
    allow: AllowList | None

    @property
    def role(self) -> str:
        return self.caller.role

    @property
    def by(self) -> str:
        return self.caller.by

    @property
    def via(self) -> str | None:
        via = self.args.get("via")
        return via[:40] if isinstance(via, str) and via else None


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command of the COMMAND message: the role its sender needs, and what it does."""

    role: Role
    summary: str
    run: Callable[[QueryCore, Call], tuple[bool, str, Any]]


class PairHooks(Protocol):
    """What a hub of a pair adds to the query socket (:mod:`gsmon.hub.pair_link`)."""

    commands: dict[str, CommandSpec]  # its own commands (pair_status, pair_mark)

    def sync(self, caller: _Caller, msg: proto.PairSync, now: float, wall: float) -> PairMessage | str:
        """A PAIR_SYNC from the peer: the answer's fields, or why it is refused."""
        ...

    def done(self, call: Call, ok: bool, result: Any) -> None:
        """A command ran here (operator actions become ops of the pair's log)."""
        ...


def _forget(core: QueryCore, call: Call) -> tuple[bool, str, Any]:
    name = call.args.get("agent")
    if not isinstance(name, str) or not name:
        return False, "forget needs the agent's name: {agent: NAME}", {"reason": "bad-args"}
    # A revoked agent cannot be live: the server drops whatever its key sends.
    allow = call.allow
    granted = allow is None or name in allow.agents
    book = core.state.alarms
    done = core.state.forget(name, call.now, call.wall, granted=granted)
    if done[0] and book is not None:
        book.record_forget(name, call.by, call.user, call.args.get("comment"), call.via, call.now, call.wall)
    return done


COMMANDS: Final[dict[str, CommandSpec]] = {
    "forget": CommandSpec("admin", "remove a silent agent and all its points now", _forget),
    **{name: CommandSpec(role, summary, run) for name, (role, summary, run) in OPERATOR_COMMANDS.items()},  # type: ignore[arg-type]
}
#: Services a client may register as (register_service), and the commands forwarded to each.
SERVICES: Final = {"history": ("history",)}
_FORWARDED: Final = {command: service for service, commands in SERVICES.items() for command in commands}


def may_snapshot(grant: SubscriberGrant, prefix: str) -> bool:
    """Whether the grant allows a snapshot of ``prefix``: exactly when it allows a
    subscription to it (:meth:`SubscriberGrant.allows_prefix`), so that a client is
    never handed a snapshot it cannot follow. ``A/B`` under a grant of ``A/B/`` is
    refused: as a ZeroMQ topic it would also match ``A/B2``."""
    return grant.allows_prefix(prefix)


class _Job:
    """One snapshot being sent."""

    __slots__ = (
        "chunk",
        "client",
        "count",
        "identity",
        "prefix",
        "published",
        "request_id",
        "seq_at",
        "stack",
        "turns",
    )

    def __init__(self, identity: bytes, client: str | bytes, request_id: int, prefix: str, state: HubState) -> None:
        self.identity = identity
        self.client = client
        self.request_id = request_id
        self.prefix = prefix
        self.stack: list[TreeNode] = state.walk_start(prefix)  # the walk in progress
        # The moment it starts: the seq and publish counter its END reports.
        self.seq_at = state.seq
        self.published = state.published(prefix)
        self.chunk: list[bytes] = []
        self.count = 0
        self.turns = 0


class QueryCore:
    """The query socket's requests, answered from one hub core."""

    def __init__(
        self,
        state: HubState,
        endpoints: dict[str, str],
        heartbeat_s: float,
        version: str,
        settings: QuerySettings | None = None,
    ) -> None:
        self.state = state
        self.settings = settings or QuerySettings()
        self.stats = QueryStats()
        self._endpoints = dict(endpoints)
        self._heartbeat_s = heartbeat_s
        self._version = version
        self._jobs: deque[_Job] = deque()
        self._per_client: dict[str | bytes, int] = {}
        self._seq_out: dict[bytes, int] = {}  # reply seq per connection (ROUTER identity), least recent first
        # The operator layer: the state store (journal reads, contexts), and the active contexts
        # ("<kind>/<prefix>" -> record), which the server publishes as _hub/contexts/... points.
        self.store: StateStore | None = None
        self.contexts: dict[str, dict[str, Any]] = {}
        # Registered services: name -> routing identity; forwarded requests: hub request id ->
        # (asker's identity, asker's request id, service, deadline).
        self.services: dict[str, bytes] = {}
        # Who registered each service (the key's name, without keys the peer): a registration again by the
        # same one (every 30 s, or after its DEALER reconnected under a new identity) is routine.
        self._service_by: dict[str, str] = {}
        self._forwarded: dict[int, tuple[bytes, int, str, float]] = {}
        self._forward_id = 0
        # What clients report of their own health (report_health), shown as _hub/clients/... points.
        self.client_health = ClientHealth()
        # (1.3) Routes commands for paths under a site hub's mount down to it (set by the server).
        self.router: Router | None = None
        self.pair: PairHooks | None = None  # a hub of a pair (issue 17 section 2)

    def use_store(self, store: StateStore, contexts: dict[str, dict[str, Any]]) -> None:
        """Answer the operator layer's commands from ``store``, starting from the ``contexts`` it holds."""
        self.store = store
        self.contexts = contexts

    @property
    def busy(self) -> bool:
        """Whether snapshots are still being sent (the loop should not sleep)."""
        return bool(self._jobs)

    def request(
        self,
        msg: proto.Message,
        identity: bytes,
        now: float,
        wall: float,
        *,
        key: str | None = None,
        allow: AllowList | None = None,
        hub_key: str | None = None,
        peer: str | None = None,
    ) -> Outcome:
        """Answer one decoded request from ``identity`` (with keys: ``key``, checked against ``allow``;
        ``peer``: the connection's IP address, which names an anonymous caller)."""
        keyed = allow is not None
        own = keyed and key is not None and key == hub_key
        grant = allow.subscriber_for_key(key) if allow is not None and not own else None
        caller = _Caller(identity, key, keyed, own, grant, peer)
        if keyed and not own and grant is None:
            self.stats.refused += 1
            return Outcome(
                [self._error(caller, msg, wall, "not allowed for this key")],
                refused=f"{msg.kind.name} from key {key} refused",
            )
        if isinstance(msg, proto.Hello):
            self.stats.hellos += 1
            log.debug("HELLO from %s", caller.name)
            info = proto.Info(
                **self._header(identity, wall),
                request_id=msg.request_id,
                endpoints=dict(self._endpoints),
                heartbeat_s=self._heartbeat_s,
                version=self._version,
                heartbeat_topic=_heartbeat_topic_of(caller.grant),
                nodes=True,  # (1.4) NODES batches are published (hub/state.py drain)
            )
            return Outcome([(identity, proto.encode(info))])
        if isinstance(msg, proto.SnapshotRequest):
            return self._snapshot(caller, msg, wall)
        if isinstance(msg, proto.Command):
            return self._command(caller, msg, now, wall, allow)
        if isinstance(msg, proto.CommandResult):
            return self.relay(caller, msg, wall)
        if type(msg) is proto.PairSync and self.pair is not None:
            return self._pair_sync(caller, msg, now, wall)
        why = f"{msg.kind.name} is not a query"
        return Outcome([self._error(caller, msg, wall, f"{msg.kind.name} is not a request I answer")], invalid=why)

    def _pair_sync(self, caller: _Caller, msg: proto.PairSync, now: float, wall: float) -> Outcome:
        assert self.pair is not None
        answer = self.pair.sync(caller, msg, now, wall)
        if isinstance(answer, str):
            return Outcome([self._error(caller, msg, wall, answer)], refused=f"PAIR_SYNC from {caller.name}: {answer}")
        reply = proto.PairSyncReply(
            **self._header(caller.identity, wall),
            request_id=msg.request_id,
            hub_id=answer.hub_id,
            head=answer.head,
            seen=answer.seen,
            ops=answer.ops,
            digest=answer.digest,
            full=answer.full,
            notifying=answer.notifying,
        )
        return Outcome([(caller.identity, proto.encode(reply))])

    # -- snapshots ------------------------------------------------------------

    def _snapshot(self, caller: _Caller, msg: proto.SnapshotRequest, wall: float) -> Outcome:
        if caller.keyed and not caller.hub_key and (caller.grant is None or not may_snapshot(caller.grant, msg.prefix)):
            self.stats.refused += 1
            return Outcome(
                [self._error(caller, msg, wall, "not allowed for this key")],
                refused=f"snapshot of {msg.prefix[:60]!r} for {caller.name} refused",
            )
        settings = self.settings
        client = caller.client
        if self._per_client.get(client, 0) >= settings.max_jobs_per_client or len(self._jobs) >= settings.max_jobs:
            self.stats.busy += 1
            return Outcome([self._error(caller, msg, wall, BUSY_MESSAGE)])
        self._per_client[client] = self._per_client.get(client, 0) + 1
        self._jobs.append(_Job(caller.identity, client, msg.request_id, msg.prefix, self.state))
        self.stats.snapshots += 1
        log.debug("snapshot of %r for %s", msg.prefix, caller.name)
        return Outcome()

    def work(self, now: float, wall: float) -> list[tuple[bytes, bytes]]:
        """The next slices of the pending snapshots: at most ``turn_nodes`` nodes, one slice per job in turn."""
        replies: list[tuple[bytes, bytes]] = []
        jobs = self._jobs
        settings = self.settings
        budget = settings.turn_nodes
        walk_step = self.state.walk_step
        while jobs and budget > 0:
            job = jobs.popleft()
            job.turns += 1
            chunk = job.chunk
            limit = min(budget, settings.chunk_nodes - len(chunk))
            visited = walk_step(job.stack, limit, chunk)
            budget -= visited
            finished = visited < limit
            if len(chunk) >= settings.chunk_nodes or (finished and chunk):
                replies.append((job.identity, self._chunk(job, wall)))
            if finished:
                replies.append((job.identity, self._end(job, wall)))
            else:
                jobs.append(job)
        return replies

    def _chunk(self, job: _Job, wall: float) -> bytes:
        items, job.chunk = job.chunk, []
        job.count += len(items)
        self.stats.snapshot_nodes += len(items)
        return proto.encode_snapshot_chunk(**self._header(job.identity, wall), request_id=job.request_id, items=items)

    def _end(self, job: _Job, wall: float) -> bytes:
        remaining = self._per_client[job.client] - 1
        if remaining:
            self._per_client[job.client] = remaining
        else:
            del self._per_client[job.client]
        log.debug("snapshot of %r: %d node(s) in %d turn(s)", job.prefix, job.count, job.turns)
        return proto.encode(
            proto.SnapshotEnd(
                **self._header(job.identity, wall),
                request_id=job.request_id,
                seq_at=job.seq_at,
                count=job.count,
                published=job.published,
            )
        )

    # -- commands -------------------------------------------------------------

    def _command(
        self, caller: _Caller, msg: proto.Command, now: float, wall: float, allow: AllowList | None
    ) -> Outcome:
        self.stats.commands += 1
        if msg.command == "register_service":
            return self._register(caller, msg, wall)
        if msg.command == "report_health":
            return self._report_health(caller, msg, now, wall)
        if msg.command in _FORWARDED:
            return self._forward(caller, msg, now, wall)
        spec = COMMANDS.get(msg.command)
        if spec is None and self.pair is not None:
            spec = self.pair.commands.get(msg.command)
        refused = None
        if spec is None:
            ok, message, result = (
                False,
                f"unknown command {msg.command[:40]!r} (this hub knows: {', '.join(sorted(COMMANDS))})",
                {"reason": "unknown-command"},
            )
        elif not caller.has_role(spec.role):
            self.stats.refused += 1
            ok, message, result = (
                False,
                f"{msg.command} needs {_ROLE_WORDS[spec.role]} key: a subscriber granted with role = "
                f"{spec.role!r} ('gsmon keys subscriber NAME --role {spec.role}'"
                + (", or admin = true" if spec.role == "admin" else "")
                + f"), or the hub's own key pair; {caller.name} is a {caller.role}",
                {"reason": "forbidden"},
            )
            refused = f"command {msg.command} from {caller.name} refused: not an {spec.role}"
        else:
            call = Call(msg.command, msg.args, caller, msg.user, now, wall, allow)
            # (1.3) A path under a site hub's mount: the command goes down to that site (gsmon.hub.relay).
            to = ("query", caller.identity, msg.request_id)
            routed = (
                self.router.route(msg.command, msg.args, msg.user, caller.by, caller.role, to, now, wall)
                if self.router is not None
                else False
            )
            if routed is True:
                return Outcome()  # answered when the site answers (or does not, in time)
            if routed is False:
                ok, message, result = spec.run(self, call)
                # (1.3) A listing above site mounts: merged with every site's (gsmon.hub.relay, Router.gather).
                merged = self.router.gather(
                    msg.command, msg.args, msg.user, caller.by, caller.role, to, (ok, message, result), now, wall
                ) if self.router is not None else False  # fmt: skip
                if merged is True:
                    return Outcome()  # answered when the sites have (or have not, in time)
                if merged is not False:
                    ok, message, result = merged.ok, merged.message, merged.result
            else:
                ok, message, result = routed.ok, routed.message, routed.result
            if self.pair is not None and routed is False:
                self.pair.done(call, ok, result)
        by = caller.name + (f" (user {msg.user!r})" if msg.user else "")
        log.log(command_level(msg.command, ok), "command %s %s by %s: %s", msg.command, msg.args, by, message)
        reply = proto.CommandResult(
            **self._header(caller.identity, wall), request_id=msg.request_id, ok=ok, message=message, result=result
        )
        return Outcome([(caller.identity, proto.encode(reply))], refused=refused)

    # -- services -------------------------------------------------------------

    def command_result(self, to: bytes, request_id: int, wall: float, ok: bool, message: str, result: Any) -> bytes:
        """A COMMAND_RESULT frame for ``to`` (the answer of a routed command, gsmon.hub.relay)."""
        return self._result(to, request_id, wall, ok, message, result)

    def _result(self, to: bytes, request_id: int, wall: float, ok: bool, message: str, result: Any) -> bytes:
        reply = proto.CommandResult(
            **self._header(to, wall), request_id=request_id, ok=ok, message=message, result=result
        )
        return proto.encode(reply)

    def _register(self, caller: _Caller, msg: proto.Command, wall: float) -> Outcome:
        """``register_service`` {service}: this connection answers that service's commands from now on."""
        service = msg.args.get("service")
        if service not in SERVICES:
            why = f"register_service needs a service: one of {', '.join(SERVICES)}"
            return Outcome(
                [
                    (
                        caller.identity,
                        self._result(caller.identity, msg.request_id, wall, False, why, {"reason": "bad-args"}),
                    )
                ]
            )
        allowed = not caller.keyed or caller.hub_key or (caller.grant is not None and service in caller.grant.services)
        if not allowed:
            self.stats.refused += 1
            why = (
                f"{caller.name} may not serve {service}: grant the key the service "
                f"('gsmon keys subscriber NAME --service {service}')"
            )
            reply = self._result(caller.identity, msg.request_id, wall, False, why, {"reason": "forbidden"})
            return Outcome([(caller.identity, reply)], refused=f"register_service {service} from {caller.name} refused")
        previous = self.services.get(str(service))
        again = previous is not None and self._service_by.get(str(service)) == caller.by
        self.services[str(service)] = caller.identity
        self._service_by[str(service)] = caller.by
        if again:
            log.debug("%s registered as the %s service again", caller.name, service)
        else:
            log.info(
                "%s registered as the %s service%s", caller.name, service, " (replacing another)" if previous else ""
            )
        reply = self._result(
            caller.identity, msg.request_id, wall, True, f"registered as the {service} service", {"service": service}
        )
        return Outcome([(caller.identity, reply)])

    def _report_health(self, caller: _Caller, msg: proto.Command, now: float, wall: float) -> Outcome:
        """``report_health`` {client?, points, ttl_s, final?}: the caller's own health points.

        Any caller may report (a viewer key too), but only under its own name: with keys the key's,
        so that no client can speak for another."""
        args = msg.args
        if caller.grant is not None:
            name: object = caller.grant.name
        elif caller.hub_key:
            name = "hub"
        elif caller.keyed:
            name = None  # a key without a grant speaks for nobody
        else:
            name = args.get("client")
        why = self.client_health.report(
            name,
            args.get("points"),
            args.get("ttl_s"),
            args.get("final") is True,
            now,
        )
        if why is not None:
            log.debug("report_health from %s refused: %s", caller.name, why)
            reply = self._result(
                caller.identity, msg.request_id, wall, False, f"report_health: {why}", {"reason": "bad-args"}
            )
            return Outcome([(caller.identity, reply)])
        prefix = f"_hub/clients/{name}"
        return Outcome(
            [
                (
                    caller.identity,
                    self._result(caller.identity, msg.request_id, wall, True, "reported", {"prefix": prefix}),
                )
            ]
        )

    def _forward(self, caller: _Caller, msg: proto.Command, now: float, wall: float) -> Outcome:
        """Send a service's command on to the registered connection, under a request id of the hub's."""
        service = _FORWARDED[msg.command]
        target = self.services.get(service)
        if target is None:
            reply = self._result(
                caller.identity,
                msg.request_id,
                wall,
                False,
                f"no {service} service: start gsmon recorder connected to this hub",
                {"reason": f"no {service} service"},
            )
            return Outcome([(caller.identity, reply)])
        if len(self._forwarded) >= self.settings.max_forwarded:
            reply = self._result(caller.identity, msg.request_id, wall, False, BUSY_MESSAGE, {"reason": "busy"})
            return Outcome([(caller.identity, reply)])
        self._forward_id += 1
        forward_id = self._forward_id
        self._forwarded[forward_id] = (caller.identity, msg.request_id, service, now + self.settings.forward_timeout_s)
        args = dict(msg.args)
        args["by"] = caller.by  # who asked, for the service's own log
        forwarded = proto.Command(
            **self._header(target, wall), request_id=forward_id, command=msg.command, args=args, user=msg.user
        )
        return Outcome([(target, proto.encode(forwarded))])

    def relay(self, caller: _Caller, msg: proto.CommandResult, wall: float) -> Outcome:
        """A service's COMMAND_RESULT: back to whoever asked, under the asker's request id."""
        pending = self._forwarded.get(msg.request_id)
        if pending is None or self.services.get(pending[2]) != caller.identity:
            return Outcome(invalid=f"COMMAND_RESULT {msg.request_id} from {caller.name} answers nothing forwarded")
        del self._forwarded[msg.request_id]
        identity, request_id, _, _ = pending
        return Outcome([(identity, self._result(identity, request_id, wall, msg.ok, msg.message, msg.result))])

    def expire_forwarded(self, now: float, wall: float) -> list[tuple[bytes, bytes]]:
        """Answer forwarded requests their service did not answer in time (ok=false)."""
        late = [fid for fid, (_, _, _, deadline) in self._forwarded.items() if deadline <= now]
        replies = []
        for forward_id in late:
            identity, request_id, service, _ = self._forwarded.pop(forward_id)
            message = f"the {service} service did not answer within {self.settings.forward_timeout_s:g} s"
            reply = proto.CommandResult(
                **self._header(identity, wall),
                request_id=request_id,
                ok=False,
                message=message,
                result={"reason": "timeout"},
            )
            replies.append((identity, proto.encode(reply)))
        return replies

    # -- replies --------------------------------------------------------------

    def malformed(self, identity: bytes, request_id: int | None, reason: str, wall: float) -> Outcome:
        """A request that did not decode (protocol: When ERROR is sent): an ERROR with the reason when
        it carries a usable ``request_id`` (:func:`proto.salvage_request_id`), else nothing to send."""
        why = reason[:300]
        if request_id is None:
            return Outcome(invalid=why)
        error = proto.Error(**self._header(identity, wall), request_id=request_id, message=f"malformed request: {why}")
        return Outcome([(identity, proto.encode(error))], invalid=why)

    def _header(self, identity: bytes, wall: float) -> dict[str, Any]:
        # Reply seq is per connection (protocol: Envelope): a ROUTER identity is one connection.
        seqs = self._seq_out
        seq = seqs.pop(identity, 0) + 1
        if len(seqs) >= _MAX_TRACKED_CONNECTIONS:
            del seqs[next(iter(seqs))]  # the longest idle connection; it may restart at 1 (documented)
        seqs[identity] = seq
        return {"sender": "hub", "epoch": self.state.epoch, "seq": seq, "sent_ns": int(wall * 1e9)}

    def _error(self, caller: _Caller, msg: proto.Message, wall: float, message: str) -> tuple[bytes, bytes]:
        error = proto.Error(
            **self._header(caller.identity, wall), request_id=getattr(msg, "request_id", 0), message=message
        )
        return caller.identity, proto.encode(error)


def _heartbeat_topic_of(grant: SubscriberGrant | None) -> bytes:
    """The heartbeat topic of a caller's read scope (protocol: INFO ``heartbeat_topic``):
    the hub-wide one for full access (no keys, the hub's own key, an unlimited grant),
    its own scope's for a prefix-limited grant."""
    if grant is None or grant.prefixes is None:
        return proto.HUB_HEARTBEAT_TOPIC
    return proto.scope_heartbeat_topic(grant.name)
