"""Hub-of-hubs, the receiving side: relayed entries and commands routed down to site hubs. No I/O.

::

    agents SUB --> decode --> RelayGuard.filter (loop guard, depth) --> HubState.apply
    COMMAND (query ROUTER) --> QueryCore --> Router.route --> path under a site's mount?
                                               |  yes: site silent -> "GS1 unreachable: ..." at once
                                               |       else a ROUTE topic (the server subscribes it on the
                                               |       agents socket) and a pending entry (5 s)
                                               '--> no: the command runs here
    UPSTREAM_RESULT (agents SUB) --> HubState --> Router.answer --> the asker's COMMAND_RESULT

The protocol docstring (:mod:`gsmon.common.protocol`, "Hub-of-hubs") is the
spec. A *site* is an agent whose entries carry the relay keys (HubState
marks it ``relay``); its mount is where its tree hangs here. Alarm state
stays with the hub nearest the agent: a command for a path under a site's
mount is never applied here, it goes down or fails with a reason.

Replies go back to whoever asked: a query-socket client (``("query",
identity, request_id)``), or, on a hub that is itself a site, its own
upstream (``("upstream", route_id)``) when a routed command has to go one
level further down (a chain).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from gsmon.common import names
from gsmon.common import protocol as proto

if TYPE_CHECKING:
    from gsmon.hub.queries import QueryCore
    from gsmon.hub.state import HubState

__all__ = ["ROUTED_COMMANDS", "ROUTE_TIMEOUT_S", "RelayGuard", "ReplyTo", "RoutedReply", "Router", "run_routed"]

log = logging.getLogger(__name__)

ROUTE_TIMEOUT_S: Final = 5.0  # a routed command not answered within this fails "unreachable"
#: Commands routed by their path (args ``path``) or prefix (args ``prefix``), in the order looked at.
ROUTED_COMMANDS: Final[dict[str, tuple[str, ...]]] = {
    "ack": ("path",),
    "unack": ("path",),
    "unshelve": ("path",),
    "shelve": ("prefix",),
    "alarms": ("prefix", "path"),
    "shelves": ("prefix", "path"),
}
_MAX_PENDING: Final = 10_000
_ROLES: Final = ("viewer", "operator", "admin")

# Who gets the answer: ("query", identity, request_id) or ("upstream", route_id).
ReplyTo = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class RoutedReply:
    """An answer for ``to``: the parts of a COMMAND_RESULT (or UPSTREAM_RESULT)."""

    to: ReplyTo
    ok: bool
    message: str
    result: Any


class RelayGuard:
    """The loop guard on relayed entries (spec: a hub drops entries whose ``via`` holds its id or is too deep)."""

    def __init__(self, hub_id: str, max_depth: int = proto.MAX_RELAY_DEPTH) -> None:
        self.hub_id = hub_id
        self.max_depth = max_depth
        self.loops_dropped = 0
        self.too_deep = 0

    def filter(self, msg: proto.Message) -> proto.Message:
        """``msg`` without the relayed entries this hub must drop (counted); other messages as they are."""
        if not isinstance(msg, proto.State | proto.Delta):
            return msg
        points = msg.points
        keep: list[proto.PointEntry] | None = None
        for index, entry in enumerate(points):
            if type(entry) is not proto.DebouncedEntry or "via" not in entry.debounce:
                if keep is not None:
                    keep.append(entry)
                continue
            via = entry.debounce["via"]
            drop = self.hub_id in via
            if drop:
                self.loops_dropped += 1
            elif len(via) > self.max_depth:
                drop = True
                self.too_deep += 1
            if drop and keep is None:
                keep = list(points[:index])
            elif not drop and keep is not None:
                keep.append(entry)
        if keep is None:
            return msg
        if isinstance(msg, proto.State):
            return proto.State(
                sender=msg.sender,
                epoch=msg.epoch,
                seq=msg.seq,
                sent_ns=msg.sent_ns,
                minor=msg.minor,
                mount=msg.mount,
                heartbeat_s=msg.heartbeat_s,
                points=keep,
                parents=msg.parents,
                part=msg.part,
                parts=msg.parts,
            )
        return proto.Delta(
            sender=msg.sender, epoch=msg.epoch, seq=msg.seq, sent_ns=msg.sent_ns, minor=msg.minor, points=keep
        )


class _Pending:
    __slots__ = ("deadline", "mount", "site", "to")

    def __init__(self, to: ReplyTo, site: str, mount: str, deadline: float) -> None:
        self.to = to
        self.site = site
        self.mount = mount
        self.deadline = deadline


class Router:
    """Routes commands for paths under a site's mount down to that site hub (module docstring)."""

    def __init__(self, state: HubState, hub_id: str, timeout_s: float = ROUTE_TIMEOUT_S) -> None:
        self.state = state
        self.hub_id = hub_id
        self.timeout_s = timeout_s
        self.routed = 0
        self.unreachable = 0
        self._next_id = 0
        self._pending: dict[int, _Pending] = {}
        self._topics: list[bytes] = []

    def site_for(self, path: str) -> tuple[str, str] | None:
        """The site (agent name, mount) whose mount holds ``path`` (the deepest), or None."""
        best: tuple[str, str] | None = None
        for name, agent in self.state.agents.items():
            mount = agent.mount
            if not agent.relay or not mount:
                continue
            if (path == mount or path.startswith(mount + "/")) and (best is None or len(mount) > len(best[1])):
                best = (name, mount)
        return best

    def route(
        self,
        command: str,
        args: dict[str, Any],
        user: str | None,
        by: str,
        role: str,
        to: ReplyTo,
        now: float,
        wall: float,
    ) -> RoutedReply | bool:
        """False: not for a site (run it here). True: sent down, the answer comes later (:meth:`answer`,
        :meth:`expire`). A :class:`RoutedReply`: it failed at once (the site is unreachable)."""
        keys = ROUTED_COMMANDS.get(command)
        if keys is None:
            return False
        for key in keys:
            target = args.get(key)
            if isinstance(target, str) and target:
                break
        else:
            return False
        site = self.site_for(target.rstrip("/") if target.endswith("/") and target != "/" else target)
        if site is None:
            return False
        name, mount = site
        agent = self.state.agents[name]
        if agent.silent:
            self.unreachable += 1
            return RoutedReply(
                to,
                False,
                f"{mount} unreachable: nothing heard from site hub {name} for {now - agent.last_heard:.0f} s",
                {"reason": "unreachable"},
            )
        if len(self._pending) >= _MAX_PENDING:
            return RoutedReply(to, False, "busy, retry: too many commands routed to sites", {"reason": "busy"})
        down = dict(args)
        for key in ("path", "prefix"):
            value = down.get(key)
            if isinstance(value, str) and (value == mount or value.startswith(mount + "/")):
                down[key] = value[len(mount) + 1 :]
        self._next_id += 1
        route_id = self._next_id
        self._pending[route_id] = _Pending(to, name, mount, now + self.timeout_s)
        self.routed += 1
        routed = {
            "route_id": route_id,
            "command": command,
            "args": down,
            "user": user,
            "by": by,
            "hub": self.hub_id,
            "role": role,
            "deadline": wall + self.timeout_s,
        }
        self._topics.append(proto.route_topic(name, routed))
        log.info("command %s for %s routed down to site hub %s (route %d)", command, target, name, route_id)
        return True

    def take_topics(self) -> list[bytes]:
        """Route topics to subscribe (then unsubscribe) on the agents socket, since the last call."""
        topics, self._topics = self._topics, []
        return topics

    def answer(self, site: str, msg: proto.UpstreamResult) -> RoutedReply | None:
        """A site's UPSTREAM_RESULT: the reply for whoever asked (paths with the mount put back), or None
        when it answers nothing pending from that site (late, or not ours)."""
        pending = self._pending.get(msg.route_id)
        if pending is None or pending.site != site:
            return None
        del self._pending[msg.route_id]
        return RoutedReply(pending.to, msg.ok, msg.message, _mounted(msg.result, pending.mount))

    def expire(self, now: float) -> list[RoutedReply]:
        """Routed commands not answered in time: failed, unreachable."""
        late = [route_id for route_id, pending in self._pending.items() if pending.deadline <= now]
        replies = []
        for route_id in late:
            pending = self._pending.pop(route_id)
            self.unreachable += 1
            replies.append(
                RoutedReply(
                    pending.to,
                    False,
                    f"{pending.mount} unreachable: no answer from site hub {pending.site} within {self.timeout_s:g} s",
                    {"reason": "unreachable"},
                )
            )
        return replies


def _mounted(result: Any, mount: str, depth: int = 0) -> Any:
    """``result`` with the mount put in front of every ``path`` and ``prefix`` (alarms, shelves)."""
    if depth > 4:
        return result
    if isinstance(result, dict):
        out = {}
        for key, value in result.items():
            if key in ("path", "prefix") and isinstance(value, str):
                out[key] = names.join(mount, value)
            else:
                out[key] = _mounted(value, mount, depth + 1)
        return out
    if isinstance(result, list):
        return [_mounted(item, mount, depth + 1) for item in result]
    return result


def run_routed(
    queries: QueryCore, router: Router, routed: dict[str, Any], now: float, wall: float
) -> RoutedReply | None:
    """Run a command the upstream hub routed down to this hub (a site): the answer to send upstream,
    or None when it went one level further down (its answer comes through ``router``)."""
    from gsmon.hub.queries import COMMANDS, Call

    route_id = int(routed["route_id"])
    to: ReplyTo = ("upstream", route_id)
    command = str(routed["command"])
    args: dict[str, Any] = routed["args"]
    if wall > float(routed["deadline"]):
        log.warning("command %s routed from upstream dropped: it arrived after its deadline", command)
        return None  # the asker was told it failed; applying it now would contradict that
    role = routed.get("role")
    role = role if role in _ROLES else "viewer"
    by = f"{routed.get('by')}@{routed.get('hub')}"
    user = routed.get("user") if isinstance(routed.get("user"), str) else None
    spec = COMMANDS.get(command)
    if spec is None or command not in ROUTED_COMMANDS:
        return RoutedReply(
            to, False, f"command {command[:40]!r} is not routed to site hubs", {"reason": "unknown-command"}
        )
    if _ROLES.index(role) < _ROLES.index(spec.role):
        return RoutedReply(to, False, f"{command} needs an {spec.role} key", {"reason": "forbidden"})
    further = router.route(command, args, user, by, role, to, now, wall)
    if isinstance(further, RoutedReply):
        return further
    if further:
        return None
    caller = routed_caller(by, role)
    call = Call(command, args, caller, user, now, wall, None)
    ok, message, result = spec.run(queries, call)
    log.info("command %s %s routed from upstream by %s: %s", command, args, by, message)
    return RoutedReply(to, ok, message, result)


def routed_caller(by: str, role: str) -> Any:
    """A query caller standing for the asker of a routed command (its ``by`` and role, checked upstream)."""
    from gsmon.hub.queries import RoutedCaller

    return RoutedCaller(b"", None, True, False, None, None, by, role)
