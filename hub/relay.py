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
                                       a site not reached --> its last-known alarms, marked (kept listing + tree)

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
most the timeout).

Last-known alarms (1.3): a site not reached (silent, mute, refusing) is still
listed as far as this hub knows it, each row marked ``last_known`` with
``as_of`` (wall seconds this hub last heard the site), so that the operator at
the centre sees what was wrong there when it went quiet -- never mistaken for
current: an ack of such a row goes the usual way and is refused
``unreachable`` while the site is silent (never applied here only). The rows
come from the site's part of the last merged listing this hub gathered (every
field, and alarms of removed points; kept per site, bounded like a listing,
only when that listing asked every open state and was not cut), corrected by
the relayed points' alarm summaries in the tree, which this hub heard later:
a summary's newer ``state``/``max_level`` wins, a listed alarm on a point that
now carries no alarm is left out, and an alarm only the tree knows (raised
after that listing, or no listing since this hub started) is a summary row.

Orphaned alarms (1.3): an open alarm of a site that no relayed point carries (a
latched alarm whose point the site removed, an agent's latched silence once the
agent is back) comes as one of the site's *orphans*, a small set beside its
entries (hub/upstream.py sends it; HubState keeps it per site). This hub counts
each in its rollup as an alarm of its own of a removed point
(:func:`orphan_attention`, ``AlarmBook.set_relayed_orphan``), lists and acks it
through the site like any of the site's alarms, and lists it as last known
while the site is silent (when it counts for nothing).

Proxy ids are persistent (1.3): with a state store, each new proxy is stored
(``meta`` rows ``proxy:<id>``, :meth:`Router.take_marks`, in the turn's
transaction, before anything shows it) and restored at start
(:meth:`Router.restore`), so an id an operator read before a restart of this
hub still names the same alarm of the same site after it, and a new one never
reuses an old one.

How they are made (spec: "Proxy ids of a pair"): a single hub counts them
from :data:`PROXY_BASE`; a hub of a pair derives them (:func:`derived_proxy_id`
of the site's name and the site's id, in ``[PROXY_DERIVED_BASE, PROXY_END)``)
so that both centres of a pair show a site's alarm under one id. No mapping of
(site, any uint64 id) into 3 * 2^50 numbers is free of collisions, so a taken
id moves to the next free one -- the pair's own alarm ids' rule
(hub/alarms.py): deterministic, and the same on both centres unless two of
the (at most 10^6) kept proxies collide, about a 1 in 7,000 chance at that
bound, in which case only those two may differ between the centres. Counter
ids stored before a hub became one of a pair stay valid (they still route,
and an ack by one is answered under it) while the derived id is shown.

Replies go back to whoever asked: a query-socket client (``("query",
identity, request_id)``), or, on a hub that is itself a site, its own
upstream (``("upstream", route_id, link)``: the link to the central hub
that routed it, which alone gets the answer) when a routed command has to go
one level further down (a chain). A site hub that is one of a pair records a
command routed down to it in the pair's op log (:func:`run_routed`), as any
command run there, so that its peer -- and the centre above the peer -- shows
it; the asking hub never records it (the site is the authority).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from itertools import chain
from typing import TYPE_CHECKING, Any, Final

from gsmon.common import names
from gsmon.common import protocol as proto
from gsmon.common.alerts import alertstr_for
from gsmon.hub.alarms import ACTIVE_ACKED, ACTIVE_UNACKED, RTN_UNACKED
from gsmon.hub.command_log import command_level

if TYPE_CHECKING:
    from gsmon.hub.queries import QueryCore
    from gsmon.hub.sealed import RouteSealer
    from gsmon.hub.state import HubState

__all__ = [
    "LISTING_TIMEOUT_S",
    "PROXY_BASE",
    "PROXY_DERIVED_BASE",
    "PROXY_META_PREFIX",
    "ROUTED_COMMANDS",
    "ROUTE_TIMEOUT_S",
    "RelayGuard",
    "ReplyTo",
    "RoutedReply",
    "Router",
    "derived_proxy_id",
    "is_proxy_id",
    "orphan_attention",
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
_OPEN_STATES: Final = frozenset((ACTIVE_UNACKED, ACTIVE_ACKED, RTN_UNACKED))  # a listing's default (no "states")
# An ack's fields: a last-known row whose state the tree corrected no longer knows who acked (or that nobody did).
_ACK_FIELDS: Final = ("acked_by", "acked_user", "acked_via", "acked_at", "ack_comment")
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
PROXY_DERIVED_BASE: Final = proto.PROXY_DERIVED_BASE  # a pair's derived proxies; a single hub counts below
_DERIVED_SPAN: Final = proto.PROXY_END - PROXY_DERIVED_BASE
_ROLES: Final = ("viewer", "operator", "admin")

# Who gets the answer: ("query", identity, request_id) or ("upstream", route_id, link): the central hub on that
# upstream link (a site under a central pair has one per centre, and each centre numbers its routes itself).
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


def derived_proxy_id(site: str, site_id: int) -> int:
    """(1.3) The proxy both hubs of a pair derive for alarm ``site_id`` of ``site`` before any collision
    moves it (spec: "Proxy ids of a pair"; blake2b, so any language can compute it)."""
    key = f"proxy\0{site}\0{site_id}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return PROXY_DERIVED_BASE + int.from_bytes(digest, "big") % _DERIVED_SPAN


def orphan_attention(orphan: proto.RelayedOrphan, carried_id: int | None) -> int | None:
    """(1.3) The level a site's orphaned alarm counts at in this hub's rollup (AlarmBook.set_relayed_orphan):
    its ``max_level`` while unacked and unshelved at the site -- unless a relayed point at its path still
    carries the same alarm (``carried_id``: the site's id of the alarm that point carries), which counts it
    already (protocol: Orphaned alarms). None: it counts for nothing."""
    if orphan.state not in (ACTIVE_UNACKED, RTN_UNACKED) or orphan.shelf is not None or carried_id == orphan.id:
        return None
    return orphan.max_level


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
        if msg.orphans:  # (1.3) a site's orphaned alarms: the same guard (spec: Orphaned alarms)
            msg = self._guard_orphans(msg)
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

    def _guard_orphans(self, msg: proto.State | proto.Delta) -> proto.State | proto.Delta:
        orphans = msg.orphans or []
        keep = []
        for orphan in orphans:
            if self.hub_id in orphan.via:
                self.loops_dropped += 1
            elif len(orphan.via) > self.max_depth:
                self.too_deep += 1
            else:
                keep.append(orphan)
        return msg if len(keep) == len(orphans) else replace(msg, orphans=keep)


class _Gather:
    """(1.3) One ``alarms`` listing above site mounts being put together (:meth:`Router.gather`)."""

    __slots__ = (
        "alarms", "asked_at", "limit", "me", "merged", "prefix", "states", "to", "unreached", "wait_s", "waiting",
        "wall_offset_s",
    )  # fmt: skip

    def __init__(
        self,
        me: ReplyTo,
        to: ReplyTo,
        prefix: str,
        limit: int,
        alarms: list[Any],
        states: frozenset[str],
        now: float,
        wall: float,
    ) -> None:
        self.me = me  # ("gather", number): where the sites' answers go (Router.answer, Router.expire)
        self.to = to  # who asked
        self.prefix = prefix
        self.limit = limit
        self.alarms = alarms  # the hub's own, then each site's as it answers (or its last-known ones)
        self.states = states  # the states asked for (the default: the open ones)
        self.asked_at = wall  # wall seconds it was asked
        self.wall_offset_s = wall - now  # a monotonic time here as wall seconds (as_of: when a site was heard)
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
            last_known = sum(1 for item in alarms if isinstance(item, dict) and item.get("last_known") is True)
            if last_known:
                message += f", {last_known} last-known alarm{'s' if last_known != 1 else ''} of theirs listed"
        return RoutedReply(self.to, True, message, result)


def _alarm_order(item: Any) -> tuple[int, str]:
    alarm_id = item.get("id") if isinstance(item, dict) else None
    return (alarm_id if type(alarm_id) is int else -1, str(item.get("path")) if isinstance(item, dict) else "")


class _Pending:
    __slots__ = ("asked", "command", "deadline", "mount", "site", "to")

    def __init__(
        self, to: ReplyTo, site: str, mount: str, deadline: float, command: str, asked: dict[int, int] | None
    ) -> None:
        self.to = to
        self.site = site
        self.mount = mount
        self.deadline = deadline
        self.command = command
        self.asked = asked  # an ack/unack's ids: the site's id -> the proxy the command named it by


# A target of a routed command: (site, mount, args for the site, the ids asked by: the site's id -> the proxy).
_Target = tuple[str, str, dict[str, Any], dict[int, int] | None]


class Router:
    """Routes commands for a site's alarms or subtree down to that site hub (module docstring).

    Alarm ids: a relayed alarm shows here under a *proxy id* of this hub's (at least
    :data:`PROXY_BASE`, which no alarm book reaches), so that an ack by id -- as ``gsmon ack``,
    the web page and the watch view send it -- names one alarm of one site, never an alarm of
    this hub's own that has the same number at the site. A single hub counts them; a hub of a pair
    (``derived_ids``) derives them, so that its peer shows the same site alarm under the same id.
    """

    META_PREFIX: Final = PROXY_META_PREFIX  # (1.3) the state store's rows of the proxy map

    def __init__(
        self, state: HubState, hub_id: str, timeout_s: float = ROUTE_TIMEOUT_S, derived_ids: bool = False
    ) -> None:
        self.state = state
        self.hub_id = hub_id
        # (1.3) A hub of a pair derives its proxies (derived_proxy_id), so that both centres agree on them.
        self.derived_ids = derived_ids
        self.timeout_s = timeout_s
        self.routed = 0
        self.unreachable = 0
        self._next_id = 0
        self._pending: dict[int, _Pending] = {}
        self._topics: list[bytes] = []
        self._marks: dict[str, str] = {}  # (1.3) new proxies not yet given to the state store
        self._gathers: dict[int, _Gather] = {}  # (1.3) merged listings waiting for sites
        # (1.3) Each site's part of the last complete merged listing: its last-known alarms (module docstring).
        self._last_listed: dict[str, _SiteListing] = {}
        self._next_gather = 0
        self.listing_timeout_s = LISTING_TIMEOUT_S
        self._proxies: dict[int, tuple[str, int]] = {}  # proxy id -> (site agent name, the site's id)
        # The id shown for each (site, the site's id). _proxies may hold more ids of one alarm than this
        # shows: a counter id stored before this hub became one of a pair still names (routes to) its alarm.
        self._proxy_of: dict[tuple[str, int], int] = {}
        self._next_proxy = PROXY_BASE
        self._unreadable: set[int] = set()  # derived ids of stored rows that did not read: never given
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
            forgotten = self._proxies.pop(oldest)
            if self._proxy_of.get(forgotten) == oldest:
                del self._proxy_of[forgotten]
        # A counter that reached the derived range (after 2^50 - 2^48 ids: never, in practice) derives too.
        if self.derived_ids or self._next_proxy >= PROXY_DERIVED_BASE:
            proxy = self._derive(site, site_id)
        else:
            proxy = self._next_proxy
            self._next_proxy += 1
        self._proxies[proxy] = key
        self._proxy_of[key] = proxy
        self._marks[f"{PROXY_META_PREFIX}{proxy}"] = f"{site_id} {site}"
        return proxy

    def _derive(self, site: str, site_id: int) -> int:
        """The derived proxy of a new (site, id): the next free one from :func:`derived_proxy_id` (this
        key's own stored ids are shown already, so any id held is another alarm's)."""
        made = derived_proxy_id(site, site_id)
        while made in self._proxies or made in self._unreadable:
            made = PROXY_DERIVED_BASE + (made + 1 - PROXY_DERIVED_BASE) % _DERIVED_SPAN
        return made

    def restore(self, meta: dict[str, str]) -> int:
        """The proxy map the state store holds (its meta rows under :attr:`META_PREFIX`, as
        :meth:`take_marks` gave them: ``proxy:<id>`` = ``"<the site's id> <site>"``),
        before anything is relayed here; returns how many were restored. A row that does not read is
        skipped with a warning: its id is still never given again.

        Every row's id names its alarm again. Shown for an alarm: its derived id when one is stored (the
        rule an id in ``[PROXY_DERIVED_BASE, PROXY_END)`` was made by); else, on a single hub, its counter
        id; on a hub of a pair, whose alarms show derived ids, a counter id stored before this hub became
        one is kept as a second name of its alarm, and the alarm gets its derived id when next relayed."""
        loaded: list[tuple[int, str, int]] = []  # (proxy, site, the site's id)
        highest = PROXY_BASE - 1  # the highest counter id: a single hub counts on from it
        for key, value in meta.items():
            try:
                proxy = int(key.removeprefix(PROXY_META_PREFIX))
                if PROXY_DERIVED_BASE <= proxy < proto.PROXY_END:
                    self._unreadable.add(proxy)  # (until it reads: taken out below)
                else:
                    highest = max(highest, proxy)
                number, site = value.split(" ", 1)
                site_id = int(number)
                if not is_proxy_id(proxy) or not site:
                    raise ValueError(value)
            except (ValueError, TypeError):
                log.warning("state store: proxy row %r = %r does not read, skipped", key, value)
                continue
            loaded.append((proxy, site, site_id))
        loaded.sort()  # counter ids first: an alarm's derived id, when it has one, is the one shown
        for proxy, site, site_id in loaded[-_MAX_PROXIES:]:
            alarm = (site, site_id)
            self._proxies[proxy] = alarm
            self._unreadable.discard(proxy)
            if proxy >= PROXY_DERIVED_BASE or not self.derived_ids:
                self._proxy_of[alarm] = proxy
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

    def _target(self, command: str, args: dict[str, Any]) -> _Target | RoutedReply | None:
        """(site, mount, args for the site, the ids asked by), a refusal, or None (the command is this hub's)."""
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
            # The answer names the alarms as asked (a stored counter id on a hub of a pair: not the shown one).
            asked = {self._proxies[item][1]: item for item in ids}
            seen = args.get("seen")
            if isinstance(seen, dict):
                down["seen"] = {
                    str(self._proxies[int(key)][1]) if str(key).isdigit() and int(key) in self._proxies else key: level
                    for key, level in seen.items()
                }
            return site, agent.mount, down, asked
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
        return site, mount, down, None

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
        name, mount, down, asked = target
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
        self._pending[route_id] = _Pending(to, name, mount, now + self.timeout_s, command, asked)
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
        if agent.pair is not None:
            # (1.3) A site that is a pair: both site hubs see the route; only the one followed here acts.
            routed["to"] = agent.pair.hub
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
            result = self._proxied(pending.command, site, result, pending.asked or {})
        if pending.to[0] == "gather":  # (1.3) a site's part of a merged listing
            merged = self._fold(pending, msg.ok, msg.message, result)
            return True if merged is None else merged
        return RoutedReply(pending.to, msg.ok, msg.message, result)

    def _proxied(self, command: str, site: str, result: dict[str, Any], asked: dict[int, int]) -> dict[str, Any]:
        """A site's result with its alarm ids as this hub's proxies (those the command named, as named)."""

        def proxy(value: Any) -> Any:
            if type(value) is not int:
                return value
            named = asked.get(value)
            return self.proxy(site, value) if named is None else named

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
        states = args.get("states")  # (checked by the listing that ran here: a list of str, or absent)
        self._next_gather += 1
        gathered = self._gathers[self._next_gather] = _Gather(
            ("gather", self._next_gather),
            to,
            prefix,
            min(limit, _MAX_LISTED) if type(limit) is int and limit >= 0 else _MAX_LISTED,
            list(result.get("alarms") or []),
            frozenset(map(str, states)) if isinstance(states, list) and states else _OPEN_STATES,
            now,
            wall,
        )
        agents = self.state.agents
        for gone in [site for site in self._last_listed if site not in agents or not agents[site].relay]:
            del self._last_listed[gone]  # a site forgotten here: its listing too (the memory bound)
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
                if site is not None:
                    gathered.alarms += self._last_known(site[0], gathered)
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
            self._keep_listing(pending.site, gathered, result["alarms"])
            gathered.merged.append(mount)
            nested = result.get("merged")  # a chain: the site's own sites, under its mount here
            gathered.merged += [names.join(mount, item) for item in nested or [] if isinstance(item, str)]
            gathered.unreached += [item for item in result.get("unreached") or [] if isinstance(item, dict)]
        else:
            why = message.removeprefix(f"{mount} unreachable: ") if not ok else "its answer has no alarm list"
            gathered.unreached.append({"path": mount, "site": pending.site, "reason": why})
            gathered.alarms += self._last_known(pending.site, gathered)
        if gathered.waiting:
            return None
        del self._gathers[pending.to[1]]
        return gathered.reply()

    # -- (1.3) a site not reached: its last-known alarms (module docstring) ---------------------------------

    def _keep_listing(self, site: str, gathered: _Gather, alarms: list[Any]) -> None:
        """A site's part of a merged listing, kept as its last-known alarms when it is the whole open list:
        every open state asked, and not cut at the limit (a partial list would hide alarms as gone)."""
        if not gathered.states >= _OPEN_STATES or len(alarms) >= gathered.limit:
            return
        kept = [item for item in alarms if isinstance(item, dict) and item.get("state") in _OPEN_STATES]
        self._last_listed[site] = _SiteListing(kept[:_MAX_LISTED], gathered.asked_at)

    def _last_known(self, site: str, gathered: _Gather) -> list[dict[str, Any]]:
        """The alarms of ``site`` (not reached) as this hub last knew them, each marked ``last_known`` with
        ``as_of`` (wall seconds it last heard the site): its last kept listing, corrected by the relayed
        points' summaries in the tree (heard later), and the summaries of alarms that listing lacks."""
        agent = self.state.agents.get(site)
        if agent is None or not agent.relay:
            return []
        as_of = agent.last_heard + gathered.wall_offset_s
        # The tree's summaries: each point's alarm (None: it has none), by this hub's proxy id.
        on_point: dict[str, int | None] = {}
        summaries: dict[int, list[tuple[str, Any]]] = {}
        for path, leaf in agent.leaves.items():
            debounce = leaf.debounce
            if debounce is None or "via" not in debounce:
                continue
            alarm = debounce["alarm"]
            proxy = None if alarm is None else self.proxy(site, int(alarm["id"]))
            on_point[path] = proxy
            if proxy is not None:
                summaries.setdefault(proxy, []).append((path, leaf))
        # (1.3) Its orphaned alarms as it last sent them: summaries of alarms whose points it no longer has.
        orphans = {self.proxy(site, orphan.id): orphan for orphan in agent.orphans.values()}
        rows: list[dict[str, Any]] = []
        listing = self._last_listed.get(site)
        kept, listed_at = (listing.alarms, listing.listed_at) if listing is not None else ([], None)
        for item in kept:
            alarm_id, listed_path = item.get("id"), item.get("path")
            points = summaries.pop(alarm_id, None) if type(alarm_id) is int else None
            if points is None and isinstance(listed_path, str) and on_point.get(listed_path, -1) is None:
                continue  # its point carries no alarm now: it ended after that listing
            row = dict(item)
            orphan = orphans.pop(alarm_id, None) if points is None and type(alarm_id) is int else None
            if points is not None:
                _corrected(row, points[0][1].debounce["alarm"])
            elif orphan is not None:
                _corrected(row, {"state": orphan.state, "max_level": orphan.max_level})
            if row.get("last_known") is not True:  # (one a site listed as last known keeps its own as_of)
                row.update(last_known=True, as_of=as_of, listed_at=listed_at)
            rows.append(row)
        rows += (_summary_row(proxy, points, as_of) for proxy, points in summaries.items())
        rows += (_orphan_row(proxy, orphan, agent.mount, as_of) for proxy, orphan in orphans.items())
        return [row for row in rows if row.get("state") in gathered.states][:_MAX_LISTED]


@dataclass(frozen=True, slots=True)
class _SiteListing:
    """(1.3) A site's part of the last complete merged listing (its rows as listed here: paths, proxies)."""

    alarms: list[dict[str, Any]]
    listed_at: float  # wall seconds it was asked for


def _corrected(row: dict[str, Any], summary: dict[str, Any]) -> None:
    """A listed alarm brought up to its relayed summary (heard after the listing): the summary's ``state``
    and ``max_level`` win; a changed state leaves the ack's fields unknown (absent)."""
    state, max_level = summary["state"], summary["max_level"]
    if row.get("state") != state:
        row["state"] = state
        row["acked"] = state == ACTIVE_ACKED
        for key in _ACK_FIELDS:
            row.pop(key, None)
    if row.get("max_level") != max_level:
        row["max_level"] = max_level
        row.pop("max_level_str", None)  # (the label was the old level's)


def _summary_row(proxy: int, points: list[tuple[str, Any]], as_of: float) -> dict[str, Any]:
    """A last-known alarm from the relayed summaries alone (every point that carries it: one, or an agent's
    points for its silence at the site): the path they share, the worst point's level."""
    paths = [path for path, _ in points]
    shared = names.split(paths[0])
    for path in paths[1:]:
        parts = names.split(path)
        while shared and parts[: len(shared)] != shared:
            shared.pop()
    worst = max((leaf for _, leaf in points), key=lambda leaf: leaf.alertcode)
    relayed = worst.debounce
    summary = relayed["alarm"]
    row: dict[str, Any] = {
        "id": proxy,
        "path": names.join(*shared),
        "agent": relayed["agent"],
        "state": summary["state"],
        "level": worst.alertcode,
        "level_str": worst.alertstr,
        "max_level": summary["max_level"],
        "acked": summary["state"] == ACTIVE_ACKED,
        "shelved": relayed.get("shelf") is not None,
    }
    if relayed.get("shelf") is not None:
        row["shelf_id"] = relayed["shelf"]
    if len(points) == 1:
        row["value"] = worst.value
        if relayed.get("since") is not None:
            row["level_since"] = relayed["since"]
    row.update(last_known=True, as_of=as_of)
    return row


def _orphan_row(proxy: int, orphan: proto.RelayedOrphan, mount: str, as_of: float) -> dict[str, Any]:
    """(1.3) A last-known alarm from a site's orphans alone (spec: Last-known alarms): no point carries it."""
    row: dict[str, Any] = {
        "id": proxy,
        "path": names.join(mount, orphan.path),
        "agent": orphan.agent,
        "state": orphan.state,
        "level": orphan.level,
        "level_str": alertstr_for(orphan.level),
        "max_level": orphan.max_level,
        "acked": orphan.state == ACTIVE_ACKED,
        "shelved": orphan.shelf is not None,
    }
    if orphan.shelf is not None:
        row["shelf_id"] = orphan.shelf
    row.update(last_known=True, as_of=as_of)
    return row


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
    queries: QueryCore, router: Router, routed: dict[str, Any], now: float, wall: float, link: int = 0
) -> RoutedReply | None:
    """Run a command the upstream hub on upstream link ``link`` routed down to this hub (a site): the answer
    to send on that link, or None when it went one level further down (its answer comes through ``router``)."""
    from gsmon.hub.queries import COMMANDS, Call

    route_id = int(routed["route_id"])
    to: ReplyTo = ("upstream", route_id, link)
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
    if queries.pair is not None:
        # A site that is one of a pair: what the centre's command changed here is an op of the pair's log,
        # as any operator's command is, so the other site hub (and the centre above it) shows it too.
        queries.pair.done(call, ok, result)
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
