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
from dataclasses import dataclass, replace
from itertools import chain
from typing import TYPE_CHECKING, Any, Final

from gsmon.common import names
from gsmon.common import protocol as proto
from gsmon.hub.alarms import ACTIVE_UNACKED, RTN_UNACKED

if TYPE_CHECKING:
    from gsmon.hub.queries import QueryCore
    from gsmon.hub.state import HubState

__all__ = [
    "PROXY_BASE",
    "ROUTED_COMMANDS",
    "ROUTE_TIMEOUT_S",
    "RelayGuard",
    "ReplyTo",
    "RoutedReply",
    "Router",
    "is_proxy_id",
    "relayed_attention",
    "run_routed",
]

log = logging.getLogger(__name__)

ROUTE_TIMEOUT_S: Final = 5.0  # a routed command not answered within this fails "unreachable"
#: Commands routed by the alarm ids they name (this hub's proxies of a site's alarms, Router).
_BY_ALARM_ID: Final = ("ack", "unack")
#: Commands routed by their path (args ``path``) or prefix (args ``prefix``), in the order looked at.
ROUTED_COMMANDS: Final[dict[str, tuple[str, ...]]] = {
    "ack": (),
    "unack": (),
    "unshelve": ("path",),
    "shelve": ("prefix",),
    "alarms": ("prefix", "path"),
    "shelves": ("prefix", "path"),
}
_LISTINGS: Final = ("alarms", "shelves")  # read-only: a prefix at a site's mount lists the site's
_MAX_PENDING: Final = 10_000
_DEBOUNCED: Final = proto.DebouncedEntry
_MAX_PROXIES: Final = 1_000_000
PROXY_BASE: Final = proto.PROXY_BASE  # relayed alarms' ids at a hub start here (spec: "Routed commands")
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


def is_proxy_id(item: object) -> bool:
    """An id in the proxy range ``[PROXY_BASE, PROXY_END)``: a relayed alarm as this hub lists it (below: the
    hub's own counter ids; above: the derived ids of a hub pair, ``[2**52, 2**53)``, also the hub's own)."""
    return type(item) is int and PROXY_BASE <= item < proto.PROXY_END


def relayed_attention(debounce: dict[str, Any] | None) -> tuple[int | None, bool]:
    """(1.3) What a relayed point counts for in this hub's rollup (AlarmBook.set_relayed), from its 7th map:
    (the level its site's alarm needs attention at -- ``max_level`` while unacked and unshelved, as the
    site counts it -- or None; whether a site's shelf covers it). ``(None, False)`` for an entry not relayed."""
    if debounce is None or "via" not in debounce:
        return None, False
    shelved = debounce.get("shelf") is not None
    alarm = debounce["alarm"]
    if alarm is None or shelved or alarm["state"] not in (ACTIVE_UNACKED, RTN_UNACKED):
        return None, shelved
    return int(alarm["max_level"]), False


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
        if _DEBOUNCED not in map(type, points):
            return msg  # no 7th item, so nothing relayed: an agent's usual DELTA costs a C-speed scan
        try:  # a site's message: every entry relayed; none looped, none too deep (the scans run in C)
            vias = [entry.debounce["via"] for entry in points]  # type: ignore[attr-defined]
        except (AttributeError, KeyError):
            pass
        else:
            if max(map(len, vias)) <= self.max_depth and self.hub_id not in chain.from_iterable(vias):
                return msg
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
        # replace(): every other field as it came (a STATE's parts, parents and whatever later minors add).
        return replace(msg, points=keep)


class _Pending:
    __slots__ = ("command", "deadline", "mount", "site", "to")

    def __init__(self, to: ReplyTo, site: str, mount: str, deadline: float, command: str) -> None:
        self.to = to
        self.site = site
        self.mount = mount
        self.deadline = deadline
        self.command = command


class Router:
    """Routes commands for a site's alarms or subtree down to that site hub (module docstring).

    Alarm ids: a relayed alarm shows here under a *proxy id* of this hub's (at least
    :data:`PROXY_BASE`, which no alarm book reaches), so that an ack by id -- as ``gsmon ack``,
    the web page and the watch view send it -- names one alarm of one site, never an alarm of
    this hub's own that has the same number at the site.
    """

    def __init__(self, state: HubState, hub_id: str, timeout_s: float = ROUTE_TIMEOUT_S) -> None:
        self.state = state
        self.hub_id = hub_id
        self.timeout_s = timeout_s
        self.routed = 0
        self.unreachable = 0
        self._next_id = 0
        self._pending: dict[int, _Pending] = {}
        self._topics: list[bytes] = []
        self._proxies: dict[int, tuple[str, int]] = {}  # proxy id -> (site agent name, the site's id)
        self._proxy_of: dict[tuple[str, int], int] = {}
        self._next_proxy = PROXY_BASE
        state.relay_alarm_id = self.proxy

    def proxy(self, site: str, site_id: int) -> int:
        """This hub's id for alarm ``site_id`` of ``site`` (the same one as long as this hub runs)."""
        key = (site, site_id)
        found = self._proxy_of.get(key)
        if found is not None:
            return found
        if len(self._proxies) >= _MAX_PROXIES:  # a memory bound: the oldest ids are forgotten
            oldest = next(iter(self._proxies))
            del self._proxy_of[self._proxies.pop(oldest)]
        proxy = self._next_proxy
        self._next_proxy += 1
        self._proxies[proxy] = key
        self._proxy_of[key] = proxy
        return proxy

    def site_for(self, path: str, at_mount: bool = False) -> tuple[str, str] | None:
        """The site (agent name, mount) whose mount holds ``path`` strictly below it (the deepest), or
        None: the mount itself is this hub's (its site-silent alarm lives here) -- except for a listing
        (``at_mount``), where the mount itself names the site's whole tree."""
        best: tuple[str, str] | None = None
        for name, agent in self.state.agents.items():
            mount = agent.mount
            if not agent.relay or not mount:
                continue
            below = path.startswith(mount + "/") or (at_mount and path == mount)
            if below and (best is None or len(mount) > len(best[1])):
                best = (name, mount)
        return best

    def _target(self, command: str, args: dict[str, Any]) -> tuple[str, str, dict[str, Any]] | RoutedReply | None:
        """(site, mount, args for the site), a refusal, or None (the command is this hub's)."""
        if command in _BY_ALARM_ID:
            ids = args.get("ids")
            if not isinstance(ids, list) or not any(is_proxy_id(item) for item in ids):
                return None
            unknown = [item for item in ids if is_proxy_id(item) and item not in self._proxies]
            if unknown:
                why = f"unknown alarm id {unknown[0]} (this hub restarted since it was listed? list the alarms again)"
                return RoutedReply(("",), False, f"{command}: {why}", {"reason": "unknown"})
            sites = {self._proxies[item][0] for item in ids if is_proxy_id(item)}
            if len(sites) > 1 or not all(is_proxy_id(item) for item in ids):
                why = "ids must be the alarms of one site (as this hub lists them), not mixed with others"
                return RoutedReply(("",), False, f"{command}: {why}", {"reason": "bad-args"})
            [site] = sites
            agent = self.state.agents.get(site)
            if agent is None or not agent.relay:
                return RoutedReply(("",), False, f"{command}: site hub {site} is gone", {"reason": "unknown"})
            down = dict(args)
            down["ids"] = [self._proxies[item][1] for item in ids]
            seen = args.get("seen")
            if isinstance(seen, dict):
                down["seen"] = {
                    str(self._proxies[int(key)][1]) if str(key).isdigit() and int(key) in self._proxies else key: level
                    for key, level in seen.items()
                }
            return site, agent.mount, down
        keys = ROUTED_COMMANDS.get(command)
        if keys is None:
            return None
        for key in keys:
            target = args.get(key)
            if isinstance(target, str) and target:
                break
        else:
            return None
        found = self.site_for(target, at_mount=command in _LISTINGS)
        if found is None:
            return None
        site, mount = found
        down = dict(args)
        for key in ("path", "prefix"):
            value = down.get(key)
            if isinstance(value, str) and (value == mount or value.startswith(mount + "/")):
                down[key] = value[len(mount) + 1 :]
        return site, mount, down

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
        :meth:`expire`). A :class:`RoutedReply`: it failed at once (the site is unreachable...)."""
        target = self._target(command, args)
        if target is None:
            return False
        if isinstance(target, RoutedReply):
            return RoutedReply(to, target.ok, target.message, target.result)
        name, mount, down = target
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
        self._next_id += 1
        route_id = self._next_id
        self._pending[route_id] = _Pending(to, name, mount, now + self.timeout_s, command)
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
        log.info("command %s routed down to site hub %s (route %d)", command, name, route_id)
        return True

    def take_topics(self) -> list[bytes]:
        """Route topics to subscribe (then unsubscribe) on the agents socket, since the last call."""
        topics, self._topics = self._topics, []
        return topics

    def answer(self, site: str, msg: proto.UpstreamResult) -> RoutedReply | None:
        """A site's UPSTREAM_RESULT: the reply for whoever asked (paths with the mount put back, alarm ids
        as this hub shows them), or None when it answers nothing pending from that site (late, or not ours)."""
        pending = self._pending.get(msg.route_id)
        if pending is None or pending.site != site:
            return None
        del self._pending[msg.route_id]
        result = _mounted(msg.result, pending.mount)
        if isinstance(result, dict):
            result = self._proxied(pending.command, site, result)
        return RoutedReply(pending.to, msg.ok, msg.message, result)

    def _proxied(self, command: str, site: str, result: dict[str, Any]) -> dict[str, Any]:
        """A site's result with its alarm ids as this hub's proxies."""

        def proxy(value: Any) -> Any:
            return self.proxy(site, value) if type(value) is int else value

        out = dict(result)
        if command in _BY_ALARM_ID:
            if isinstance(out.get("acked"), list):
                out["acked"] = [proxy(item) for item in out["acked"]]
            if isinstance(out.get("skipped"), list):
                out["skipped"] = [
                    {**item, "id": proxy(item.get("id"))} if isinstance(item, dict) else item for item in out["skipped"]
                ]
        elif command == "alarms" and isinstance(out.get("alarms"), list):
            out["alarms"] = [
                {**item, "id": proxy(item.get("id"))} if isinstance(item, dict) else item for item in out["alarms"]
            ]
        return out

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
