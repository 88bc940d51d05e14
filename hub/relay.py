"""Hub-of-hubs, the receiving side: relayed entries and commands routed down to site hubs. No I/O.

::

    agents SUB --> decode --> RelayGuard.filter (loop guard, depth) --> HubState.apply
    COMMAND (query ROUTER) --> QueryCore --> Router.route --> path under a site's mount?
                                               |  yes: site silent -> "GS1 unreachable: ..." at once
                                               |       else a ROUTE topic (the server subscribes it on the
                                               |       agents socket; with keys sealed to the site's key,
                                               |       hub/sealed.py) and a pending entry (5 s)
                                               '--> no: the command runs here
    UPSTREAM_RESULT (agents SUB) --> HubState --> Router.answer --> the asker's COMMAND_RESULT
    "alarms" above the mounts --> the hub's own listing --> Router.gather --> every live site asked at once
                                                             '--> Router.answer/expire merge --> ONE listing

The protocol docstring (:mod:`gsmon.common.protocol`, "Hub-of-hubs") is the
spec. A *site* is an agent whose entries carry the relay keys (HubState
marks it ``relay``); its mount is where its tree hangs here. Alarm state
stays with the hub nearest the agent: a command for a path under a site's
mount is never applied here, it goes down or fails with a reason.

One alarm list of the whole network (1.3): an ``alarms`` listing whose prefix
lies above site mounts (the root included) is the hub's own book merged with
the listing of every site below, asked of each live site at once
(:meth:`Router.gather`), ids as this hub shows them (proxies), paths under the
mount; a silent site, or one that does not answer within
:data:`LISTING_TIMEOUT_S`, is named in ``unreached`` with the reason. Why ask
rather than answer from the relayed points' alarm maps: the site's book is the
authority and only it has every field (``acked_by``, ``ack_comment``,
``raised_at``...), the alarms of points it no longer has (a latched
``rtn_unacked`` alarm outlives its point, and a relayed point leaves the
centre with it), and the cleared ones ``--all`` asks for; a summary relayed
for each of them would cost the link bytes on every change for a listing
asked now and then. The price: a listing waits for the slowest live site (at
most the timeout), and a silent site's alarms are not listed (its silence
alarm, the hub's own, is, and the site is named).

Proxy ids are persistent (1.3): with a state store, each new proxy is stored
(``meta`` rows ``proxy:<id>``, :meth:`Router.take_marks`, in the turn's
transaction, before anything shows it) and restored at start
(:meth:`Router.restore`), so an id an operator read before a restart of this
hub still names the same alarm of the same site after it, and a new one never
reuses an old one. (Derived ids were not an option: a site's ids may be any
uint64 -- its own proxies and a pair's derived ids included -- so no mapping
of (site, id) into 2^52 - 2^48 numbers is free of collisions.)

Replies go back to whoever asked: a query-socket client (``("query",
identity, request_id)``), or, on a hub that is itself a site, its own
upstream (``("upstream", route_id)``) when a routed command has to go one
level further down (a chain).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from itertools import chain
from typing import TYPE_CHECKING, Any, Final

from gsmon.common import names
from gsmon.common import protocol as proto
from gsmon.hub.alarms import ACTIVE_UNACKED, RTN_UNACKED
from gsmon.hub.command_log import command_level

if TYPE_CHECKING:
    from gsmon.hub.queries import QueryCore
    from gsmon.hub.sealed import RouteSealer
    from gsmon.hub.state import HubState

__all__ = [
    "LISTING_TIMEOUT_S",
    "PROXY_BASE",
    "PROXY_META_PREFIX",
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
# A site's part of a merged listing not answered within this is named unreached: shorter than a client's
# usual 5 s wait, so the merged answer (the hub's own alarms and the sites that did answer) reaches it in time.
LISTING_TIMEOUT_S: Final = proto.LISTING_TIMEOUT_S
PROXY_META_PREFIX: Final = "proxy:"  # the state store's meta rows of the proxy map: proxy:<id> = "<site's id> <site>"
_MAX_LISTED: Final = 10_000  # a merged listing's alarms at most (as the alarms command's own, hub/operator.py)
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


class _Gather:
    """(1.3) One ``alarms`` listing above site mounts being put together (:meth:`Router.gather`)."""

    __slots__ = ("alarms", "limit", "me", "merged", "prefix", "to", "unreached", "wait_s", "waiting")

    def __init__(self, me: ReplyTo, to: ReplyTo, prefix: str, limit: int, alarms: list[Any]) -> None:
        self.me = me  # ("gather", number): where the sites' answers go (Router.answer, Router.expire)
        self.to = to  # who asked
        self.prefix = prefix
        self.limit = limit
        self.alarms = alarms  # the hub's own, then each site's as it answers
        self.merged: list[str] = []  # mounts whose lists are in
        self.unreached: list[dict[str, Any]] = []  # {"path": mount, "site": name, "reason": why}
        self.waiting = 0  # sites asked that have not answered (nor timed out)
        self.wait_s = LISTING_TIMEOUT_S  # how long the sites are waited for

    def reply(self) -> RoutedReply:
        """The merged listing: every alarm by id (the hub's own first: proxies are larger), and who is missing."""
        alarms = sorted(self.alarms, key=_alarm_order)[: self.limit]
        result: dict[str, Any] = {"alarms": alarms, "merged": sorted(self.merged)}
        where = self.prefix or "the whole tree"
        message = f"{len(alarms)} alarm{'s' if len(alarms) != 1 else ''} under {where}"
        message += f", {len(self.merged)} site hub{'s' if len(self.merged) != 1 else ''} included"
        if self.unreached:
            result["unreached"] = sorted(self.unreached, key=lambda item: str(item.get("path")))
            first = result["unreached"][0]
            message += f"; {len(self.unreached)} not reached ({first['path']}: {first['reason']})"
        return RoutedReply(self.to, True, message, result)


def _alarm_order(item: Any) -> tuple[int, str]:
    alarm_id = item.get("id") if isinstance(item, dict) else None
    return (alarm_id if type(alarm_id) is int else -1, str(item.get("path")) if isinstance(item, dict) else "")


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

    META_PREFIX: Final = PROXY_META_PREFIX  # (1.3) the state store's rows of the proxy map

    def __init__(self, state: HubState, hub_id: str, timeout_s: float = ROUTE_TIMEOUT_S) -> None:
        self.state = state
        self.hub_id = hub_id
        self.timeout_s = timeout_s
        self.routed = 0
        self.unreachable = 0
        self._next_id = 0
        self._pending: dict[int, _Pending] = {}
        self._topics: list[bytes] = []
        self._marks: dict[str, str] = {}  # (1.3) new proxies not yet given to the state store
        self._gathers: dict[int, _Gather] = {}  # (1.3) merged listings waiting for sites
        self._next_gather = 0
        self.listing_timeout_s = LISTING_TIMEOUT_S
        self._proxies: dict[int, tuple[str, int]] = {}  # proxy id -> (site agent name, the site's id)
        self._proxy_of: dict[tuple[str, int], int] = {}
        self._next_proxy = PROXY_BASE
        state.relay_alarm_id = self.proxy
        # With keys (hub/sealed.py): routes sealed to the key each site's latest message came with.
        self.sealer: RouteSealer | None = None
        self.site_keys: dict[str, str] = {}  # agent name -> the Z85 key its latest message came with

    def proxy(self, site: str, site_id: int) -> int:
        """This hub's id for alarm ``site_id`` of ``site`` (the same one as long as this hub runs, and with
        a state store across its restarts: :meth:`take_marks`)."""
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
        self._marks[f"{PROXY_META_PREFIX}{proxy}"] = f"{site_id} {site}"
        return proxy

    def restore(self, meta: dict[str, str]) -> int:
        """The proxy map the state store holds (its meta rows under :attr:`META_PREFIX`, as
        :meth:`take_marks` gave them: ``proxy:<id>`` = ``"<the site's id> <site>"``),
        before anything is relayed here; returns how many were restored. A row that does not read is
        skipped with a warning: its id is still never given again."""
        loaded: list[tuple[int, str, int]] = []  # (proxy, site, the site's id)
        highest = PROXY_BASE - 1
        for key, value in meta.items():
            try:
                proxy = int(key.removeprefix(PROXY_META_PREFIX))
                highest = max(highest, proxy)
                number, site = value.split(" ", 1)
                site_id = int(number)
                if not is_proxy_id(proxy) or not site:
                    raise ValueError(value)
            except (ValueError, TypeError):
                log.warning("state store: proxy row %r = %r does not read, skipped", key, value)
                continue
            loaded.append((proxy, site, site_id))
        loaded.sort()
        for proxy, site, site_id in loaded[-_MAX_PROXIES:]:
            self._proxies[proxy] = (site, site_id)
            self._proxy_of[(site, site_id)] = proxy
        self._next_proxy = max(self._next_proxy, highest + 1)
        return len(self._proxies)

    @property
    def marks_waiting(self) -> bool:
        """Whether proxies were made that the state store does not hold yet (:meth:`take_marks`)."""
        return bool(self._marks)

    def take_marks(self) -> dict[str, str]:
        """The proxies made since the last call, as ``meta`` rows for the state store (stored before the
        turn is published, with the book's records: an id shown is an id kept)."""
        marks, self._marks = self._marks, {}
        return marks

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
                why = f"unknown alarm id {unknown[0]} (no site's alarm has it here: list the alarms again)"
                return RoutedReply(("",), False, f"{command}: {why}", {"reason": "unknown"})
            sites = {self._proxies[item][0] for item in ids if is_proxy_id(item)}
            if len(sites) > 1 or not all(is_proxy_id(item) for item in ids):
                why = "ids must be the alarms of one site (as this hub lists them), not mixed with others"
                # (1.3) How they group, so that a client sends one command per group (its own ids first).
                groups: dict[str, list[int]] = {"": []}
                for item in ids:
                    groups.setdefault(self._proxies[item][0] if is_proxy_id(item) else "", []).append(item)
                result = {"reason": "bad-args", "groups": [group for group in groups.values() if group]}
                return RoutedReply(("",), False, f"{command}: {why}; send one per group", result)
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
        seal: Callable[[bytes], bytes] | None = None
        if self.sealer is not None:
            key = self.site_keys.get(name)
            if key is None:  # nothing authenticated heard from it yet: nobody to seal it to
                self.unreachable += 1
                return RoutedReply(
                    to, False, f"{mount} unreachable: no message with a key heard from site hub {name} yet",
                    {"reason": "unreachable"},
                )  # fmt: skip
            seal = partial(self.sealer.seal, key)
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
        self._topics.append(proto.route_topic(name, routed, seal))
        # Reads at DEBUG as the hub's own (command_log): every open web page lists the alarms every few seconds.
        log.log(
            command_level(command, True), "command %s routed down to site hub %s (route %d)", command, name, route_id
        )
        return True

    def take_topics(self) -> list[bytes]:
        """Route topics to subscribe (then unsubscribe) on the agents socket, since the last call."""
        topics, self._topics = self._topics, []
        return topics

    def answer(self, site: str, msg: proto.UpstreamResult) -> RoutedReply | bool:
        """A site's UPSTREAM_RESULT: the reply for whoever asked (paths with the mount put back, alarm ids
        as this hub shows them); True when it was a part of a merged listing that still waits for others;
        False when it answers nothing pending from that site (late, or not ours)."""
        pending = self._pending.get(msg.route_id)
        if pending is None or pending.site != site:
            return False
        del self._pending[msg.route_id]
        result = _mounted(msg.result, pending.mount)
        if isinstance(result, dict):
            result = self._proxied(pending.command, site, result)
        if pending.to[0] == "gather":  # (1.3) a site's part of a merged listing
            merged = self._fold(pending, msg.ok, msg.message, result)
            return True if merged is None else merged
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
            if pending.to[0] == "gather":  # (1.3) a site's part of a merged listing: named unreached
                waited = self._gathers[pending.to[1]].wait_s if pending.to[1] in self._gathers else self.timeout_s
                why = f"no answer from site hub {pending.site} within {waited:g} s"
                merged = self._fold(pending, False, why, None)
                if merged is not None:
                    replies.append(merged)
                continue
            replies.append(
                RoutedReply(
                    pending.to,
                    False,
                    f"{pending.mount} unreachable: no answer from site hub {pending.site} within {self.timeout_s:g} s",
                    {"reason": "unreachable"},
                )
            )
        return replies

    # -- (1.3) one alarm list of the network: a listing above site mounts merged with every site's --------

    def gather(
        self,
        command: str,
        args: dict[str, Any],
        user: str | None,
        by: str,
        role: str,
        to: ReplyTo,
        local: tuple[bool, str, Any],
        now: float,
        wall: float,
        budget_s: float | None = None,
    ) -> RoutedReply | bool:
        """An ``alarms`` listing that ran here (``local``: its outcome) with site mounts below its prefix:
        ask every live site for its whole list and merge (module docstring). False: nothing to merge
        (``local`` is the answer). True: asked, the merged answer comes from :meth:`answer` /
        :meth:`expire`. A :class:`RoutedReply`: merged at once (no site could be asked). ``budget_s``:
        the time the asker waits (a listing routed from upstream): the sites get at most half of it."""
        ok, _message, result = local
        if command != "alarms" or not ok or not isinstance(result, dict):
            return False
        prefix = args.get("prefix") or ""
        if not isinstance(prefix, str):
            return False
        mounts = sorted(
            agent.mount
            for agent in self.state.agents.values()
            if agent.relay and agent.mount and names.path_in_prefix(agent.mount, prefix)
        )
        # A site mounted below another site's mount is that site's to list (by this same rule).
        mounts = [mount for mount in mounts if not any(mount.startswith(other + "/") for other in mounts)]
        if not mounts:
            return False
        limit = args.get("limit", _MAX_LISTED)
        self._next_gather += 1
        gathered = self._gathers[self._next_gather] = _Gather(
            ("gather", self._next_gather),
            to,
            prefix,
            min(limit, _MAX_LISTED) if type(limit) is int and limit >= 0 else _MAX_LISTED,
            list(result.get("alarms") or []),
        )
        # Asked by the hub above: half its wait, so that this answer (the sites that did answer) is in time.
        wait_s = self.listing_timeout_s if budget_s is None else min(self.listing_timeout_s, budget_s) / 2
        gathered.wait_s = timeout_s = max(0.1, wait_s)
        for mount in mounts:
            # Routed as a listing at the mount is (prefix "" at the site), by route()'s own rules.
            down = {key: value for key, value in args.items() if key != "path"}
            down["prefix"] = mount
            routed = self.route(command, down, user, by, role, gathered.me, now, wall)
            if routed is True:
                self._pending[self._next_id].deadline = now + timeout_s  # (route() just numbered it)
                gathered.waiting += 1
            elif isinstance(routed, RoutedReply):  # silent, busy...: named with route()'s reason
                site = self.site_for(mount, at_mount=True)
                why = routed.message.removeprefix(f"{mount} unreachable: ")
                gathered.unreached.append({"path": mount, "site": site[0] if site else mount, "reason": why})
        if gathered.waiting:
            return True
        return self._gathers.pop(self._next_gather).reply()

    def _fold(self, pending: _Pending, ok: bool, message: str, result: Any) -> RoutedReply | None:
        """A site's part of a merged listing, into its gather: the merged reply once none is awaited."""
        gathered = self._gathers.get(pending.to[1])
        if gathered is None:
            return None
        gathered.waiting -= 1
        mount = pending.mount
        if ok and isinstance(result, dict) and isinstance(result.get("alarms"), list):
            gathered.alarms += result["alarms"]
            gathered.merged.append(mount)
            nested = result.get("merged")  # a chain: the site's own sites, under its mount here
            gathered.merged += [names.join(mount, item) for item in nested or [] if isinstance(item, str)]
            gathered.unreached += [item for item in result.get("unreached") or [] if isinstance(item, dict)]
        else:
            why = message.removeprefix(f"{mount} unreachable: ") if not ok else "its answer has no alarm list"
            gathered.unreached.append({"path": mount, "site": pending.site, "reason": why})
        if gathered.waiting:
            return None
        del self._gathers[pending.to[1]]
        return gathered.reply()


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
    log.log(command_level(command, ok), "command %s %s routed from upstream by %s: %s", command, args, by, message)
    # A listing of this hub's whole tree for the hub above: with the sites below this one (a chain).
    budget_s = float(routed["deadline"]) - wall
    merged = router.gather(command, args, user, by, role, to, (ok, message, result), now, wall, budget_s)
    if merged is True:
        return None
    return merged if isinstance(merged, RoutedReply) else RoutedReply(to, ok, message, result)


def routed_caller(by: str, role: str) -> Any:
    """A query caller standing for the asker of a routed command (its ``by`` and role, checked upstream)."""
    from gsmon.hub.queries import RoutedCaller

    return RoutedCaller(b"", None, True, False, None, None, by, role)
