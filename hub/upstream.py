"""Hub-of-hubs, the sending side: a site hub publishes its tree to a central hub as an agent would.

::

    HubState.drain --changed paths--> UpstreamCore (coalesce, prefixes, min level)
                                          |  PointSource of a SendPolicy: STATE / DELTA / HEARTBEAT / BYE
                                          v  (one link per central hub: each its own seqs)
    Upstream --> UpstreamLink i: XPUB --connect--> central hub i's agents SUB  (its own CURVE key and grant)
                                 <--subscription-- hub i (re)subscribed or asked to resync -> STATE to i only
                                 <--ROUTE topic--- a command for this site -> run here -> UPSTREAM_RESULT on i

The protocol docstring (:mod:`gsmon.common.protocol`, "Hub-of-hubs") is the
spec. The link is an agent's link, by the agent's rules (protocol "When to
send"): the agent's own :class:`~gsmon.common.send_policy.SendPolicy`, with
this core as its point source and one link per central hub given
(``--upstream`` repeated: the two hubs of a central pair, as an agent's
``hubs = [A, B]``): STATE on a central hub's subscription or resync request
(to that hub only), DELTAs (made and packed once: the same entries to every
link, :func:`encoded`), HEARTBEATs, BYE, one seq per message per link
(UPSTREAM_RESULT too). A command routed down by one central hub is answered
on that hub's link only: route ids are each centre's own numbers. :class:`UpstreamCore` makes the
relayed entries from the site's tree and takes ``now`` as an argument, so it
is tested without sockets. :class:`Upstream` is the thin socket part the
hub's loop drives: one :class:`UpstreamLink` per central hub (an XPUB, its
monitor, and a new socket after a refused handshake, as the agent's
publisher does).

A STATE for some links only (one centre restarted, or saw a gap) leaves the
core's record of what the DELTAs carried alone -- it is what the other
centres have -- and marks each point whose STATE entry differs from that
record (a change waiting for its coalescing interval) to go in the next
DELTA whatever the minimum level, with its ``since``: every centre then
converges on the site's state, the one that got the STATE with an entry it
partly had already.

Coalescing (``upstream_coalesce_ms``): the first change of a point after a
quiet interval goes with the next flush; later changes within the interval
wait for its end, and then the point's latest state goes (the latest wins:
the entry is made from the tree when it is sent, not when it changed).

Orphaned alarms (1.3, protocol "Orphaned alarms"): a latched alarm whose point
the site removed (or an agent's latched silence once the agent is back) has no
entry to ride on, so the whole set of them goes as the
``orphans`` of every STATE (its last part) and, when it changed, of the next
DELTA (one with no points if the flush has none), at most once per coalescing
interval. Whether it changed is told by version counters (the book's own
orphans, and the orphans of the sites below a hub that is itself a site), so a
flush costs two integer compares, never a scan of the alarms.

A site that is a pair (1.3, protocol "A site that is a pair"): a site hub of a
pair (``--peer``) puts ``pair`` (its pair hub id, its peer's once learnt) in
every STATE and HEARTBEAT (:attr:`UpstreamCore.pair`, set by the server), so a
centre fed by both site hubs follows one and keeps the other as its standby;
a route whose ``to`` names the other site hub is dropped here (it acts).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

import zmq
from zmq.utils.monitor import recv_monitor_message

from gsmon.common import names, transport
from gsmon.common import protocol as proto
from gsmon.common.alerts import STALE_ALERTCODE, GreenAlert, OrangeAlert, alertstr_for
from gsmon.common.keys import ClientKeys
from gsmon.common.send_policy import Outgoing, PublisherSettings, SendPolicy
from gsmon.hub.sealed import RouteOpener

if TYPE_CHECKING:
    from gsmon.hub.state import HubState

__all__ = ["Upstream", "UpstreamCore", "UpstreamLink", "UpstreamSettings", "default_hub_id", "encoded"]

log = logging.getLogger(__name__)

_HUB_ROOT: Final = "_hub"
_HUB_PREFIX: Final = _HUB_ROOT + "/"
_UNSENT: Final = object()  # no entry of the point sent since the last STATE
# (A STATE for some links only) the point's next DELTA entry goes whatever the minimum level: equal to no key.
_MUST_SEND: Final = (object(),)


def default_hub_id(agents_endpoint: str) -> str:
    """``<host name>:<agents port>`` (protocol: hub id), from the bound agents endpoint."""
    port = agents_endpoint.rpartition(":")[2]
    return f"{names.default_agent_name()}:{port}"


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """``[upstream]``: where and what a site hub sends upstream (times in seconds)."""

    endpoint: str  # the (first) central hub's agents endpoint
    mount: str
    name: str = ""  # the sender name; "" = the mount's last segment
    prefixes: tuple[str, ...] = ()  # site paths relayed; () = every point
    min_level: int = 0  # value-only changes of points below this are not relayed
    coalesce_s: float = 1.0  # at most one DELTA entry per point per this interval (0: every change)
    flush_interval_s: float = 0.1
    heartbeat_interval_s: float = 1.0
    state_interval_s: float = 30.0
    sndhwm: int = 10_000
    curve: ClientKeys | None = None  # one key pair and one central hub key: a central pair shares its keys
    # The other central hubs (the other hub of a central pair): one link each, the same tree and settings.
    more_endpoints: tuple[str, ...] = ()

    @property
    def sender(self) -> str:
        return self.name or names.split(self.mount)[-1]

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Every central hub's agents endpoint, in the order given (link ``i`` is ``endpoints[i]``)."""
        return (self.endpoint, *self.more_endpoints)


_NEEDS_ATTENTION: Final = ("active_unacked", "rtn_unacked")
_Relayed: Final = proto.DebouncedEntry
_new_tuple: Final = tuple.__new__  # a NamedTuple's own __new__ is a Python call around it (twice the cost)
# What a point's entry says besides its value (UpstreamCore._facts): code, stale, owner, via, dt, reported,
# alarm map, alarm key, since, shelf.
_Facts = tuple[int, bool, str, list[str], float | None, int, dict[str, Any] | None, Any, float | None, int | None]


class UpstreamCore:
    """What the site hub sends to its central hub, and when (module docstring). No sockets."""

    def __init__(self, settings: UpstreamSettings, state: HubState, hub_id: str, epoch: int, now: float) -> None:
        self.settings = settings
        self.state = state
        self.hub_id = hub_id
        self.epoch = epoch
        # The agent's send policy, one link per central hub: STATE on that hub's subscription or resync
        # request, and every state_interval_s to all; DELTAs every flush (the same to all); HEARTBEATs; BYE;
        # each link its own seqs.
        timings = PublisherSettings(
            settings.flush_interval_s, settings.heartbeat_interval_s, settings.state_interval_s, settings.sndhwm
        )
        self.links = len(settings.endpoints)
        self.policy = SendPolicy(settings.sender, epoch, settings.mount, self.links, timings, now)
        self._changed: dict[str, None] = {}
        state.changes_out = self._changed  # drain adds every changed path
        # Changed, not sent yet (coalescing): path -> the flush time it waits on (-inf: due now).
        self._held_at: dict[str, float] = {}
        self._due_now: dict[str, None] = {}
        self._waiting: dict[float, dict[str, None]] = {}  # last-sent flush time -> paths, oldest first
        self._sent_at: dict[str, float] = {}  # when each point's last DELTA entry was made
        self._sent_key: dict[str, tuple[Any, ...]] = {}  # its level, staleness and alarm then
        # (1.3) The relay ``since`` each point's last entry said: a DELTA entry leaves an unchanged one out
        # (it changes only with the level: sending it with every value would cost the link a sixth more).
        self._sent_since: dict[str, float | None] = {}
        self._via = [hub_id]
        self._now = now
        # With keys the central hub seals the routes for this site (hub/sealed.py); only those are taken.
        curve = settings.curve
        self.opener = None if curve is None else RouteOpener(curve.pair.secret, curve.server_public_key)
        self._route_head = b"\x01" + proto.ROUTE_TOPIC_PREFIX + settings.sender.encode() + b"\x00"
        self.routes_refused = 0
        # (1.3) A site hub of a pair (--peer): what its STATEs and HEARTBEATs declare (protocol: A site that is
        # a pair), asked each time (the peer's id is learnt from the pair link). Set by the server.
        self.pair: Callable[[], proto.SitePair] | None = None
        self.routes_for_peer = 0  # routed commands the centre addressed to the other site hub of the pair
        self.entries_sent = 0
        self.entries_coalesced = 0  # changes folded into a later entry of the same point
        # (1.3) The orphans last sent (module docstring), the versions they were made at, when a DELTA last
        # carried them (coalescing), and how many were left out beyond MAX_RELAYED_ORPHANS.
        # One record per link: each centre of a pair is told the set on its own.
        self._orphans_sent: list[list[proto.RelayedOrphan]] = [[] for _ in range(self.links)]
        self._orphans_version: list[tuple[int, int]] = [(-1, -1)] * self.links
        self._orphans_at: list[float] = [-math.inf] * self.links
        self.orphans_cut = 0

    # -- what the loop calls ----------------------------------------------------------------------

    def upstream(self, frame: bytes, link: int = 0) -> tuple[dict[str, Any] | None, str | None]:
        """A frame link ``link``'s XPUB read: (a routed command for this site, or None; the central hub's
        NOTICE reason to log, or None). Subscriptions that ask for a STATE are booked for that link."""
        opener = self.opener
        routed = proto.parse_route(self.settings.sender, frame, None if opener is None else opener.open)
        if routed is not None:
            to = routed.get("to")
            if self.pair is not None and isinstance(to, str) and to != self.pair().hub:
                # The centre follows the other site hub of this pair: it acts, this one must not (an ack
                # applied by both would be journaled twice and answered twice).
                self.routes_for_peer += 1
                return None, None
            return routed, None
        if frame.startswith(self._route_head):
            self.routes_refused += 1
            log.warning(
                "dropped a routed command for this site that %s (%d so far)",
                "did not open with this hub's upstream key (altered, or sealed to another key) or came unsealed"
                if opener is not None
                else "came sealed, but this hub has no upstream key (upstream_key, upstream_hub_key)",
                self.routes_refused,
            )
            return None, None
        return None, self.policy.upstream(link, frame)

    def sends(self, now: float, wall: float) -> list[Outgoing]:
        """What to send now, as (link, message) pairs (the policy's rules, with this core as its point
        source), with the site's orphaned alarms where they are due (module docstring)."""
        self._now = now
        out = self._with_orphans(self.policy.tick(now, wall, self), now, wall)
        if self.pair is not None:
            # (1.3) Every STATE and HEARTBEAT says this site hub is one of a pair: the centre follows one of
            # the two and keeps the other as its standby, instead of seeing two processes claim one name.
            pair = self.pair()
            out = [
                (link, replace(msg, pair=pair) if isinstance(msg, proto.State | proto.Heartbeat) else msg)
                for link, msg in out
            ]
        return out

    def tick(self, now: float, wall: float) -> list[proto.Message]:
        """What to send now, every link's messages in order (:meth:`sends` without the links: one link)."""
        return [message for _, message in self.sends(now, wall)]

    def _orphans_now(self) -> tuple[int, int]:
        book = self.state.alarms
        return (0 if book is None else book.orphans_version), self.state.orphans_version

    def _with_orphans(self, out: list[Outgoing], now: float, wall: float) -> list[Outgoing]:
        """``out`` with the orphans, link by link: in every STATE's last part; else, when they changed since
        the link last had them and the coalescing interval since its last DELTA that carried them is over,
        in the link's first DELTA of this flush (or a new one). Each link its own record: a STATE to one
        centre of a pair must not make the other miss a change of the set."""
        version = self._orphans_now()
        current: list[proto.RelayedOrphan] | None = None
        for link in range(self.links):
            last_parts = [
                (index, msg)
                for index, (to, msg) in enumerate(out)
                if to == link and isinstance(msg, proto.State) and msg.part == msg.parts - 1
            ]
            if last_parts:
                current = self.orphans() if current is None else current
                for index, state in last_parts:
                    out[index] = (link, replace(state, orphans=current))
                self._orphans_sent[link], self._orphans_version[link] = current, version
                continue
            if version == self._orphans_version[link] or now < self._orphans_at[link] + self.settings.coalesce_s:
                continue  # unchanged, or changed within the interval: the latest set goes at its end
            if self.policy.wants_state(link):
                continue  # a STATE is owed (a point went): it carries the set, next tick
            self._orphans_version[link] = version
            current = self.orphans() if current is None else current
            if current == self._orphans_sent[link]:
                continue  # (a change that left the set as it was: an alarm of a point, a site's STATE)
            self._orphans_sent[link], self._orphans_at[link] = current, now
            delta = next(
                ((index, msg) for index, (to, msg) in enumerate(out) if to == link and isinstance(msg, proto.Delta)),
                None,
            )
            if delta is not None:
                out[delta[0]] = (link, replace(delta[1], orphans=current))
            else:
                out.append((link, proto.Delta(**self.policy.header(link, now, wall), points=[], orphans=current)))
        return out

    def orphans(self) -> list[proto.RelayedOrphan]:
        """(1.3) The site's orphaned alarms as it relays them (protocol: Orphaned alarms): its own (its book's
        open alarms that no point carries: of removed points, of agents heard again after a silence) and its
        live sites' (relayed on), selected, the lowest ids first."""
        found: list[proto.RelayedOrphan] = []
        book = self.state.alarms
        if book is not None:
            for alarm in book.orphaned_alarms():
                if self._selected(alarm.path):
                    orphan = proto.RelayedOrphan(
                        alarm.path, alarm.id, alarm.agent, self._via, alarm.state, alarm.level, alarm.max_level,
                        alarm.shelf_id,
                    )  # fmt: skip
                    found.append(orphan)
        proxy = self.state.relay_alarm_id
        for site in self.state.orphan_sites():
            for below in site.orphans.values():
                path = names.join(site.mount, below.path)
                if self._selected(path):
                    site_id = below.id if proxy is None else proxy(site.name, below.id)
                    found.append(
                        below._replace(
                            path=path, id=site_id, agent=f"{site.name}:{below.agent}", via=[*below.via, self.hub_id]
                        )
                    )
        found.sort(key=lambda orphan: orphan.id)
        if len(found) > proto.MAX_RELAYED_ORPHANS:
            self.orphans_cut = len(found) - proto.MAX_RELAYED_ORPHANS
            log.warning(
                "%d orphaned alarms (alarms of removed points) not relayed upstream: at most %d are",
                self.orphans_cut,
                proto.MAX_RELAYED_ORPHANS,
            )
            del found[proto.MAX_RELAYED_ORPHANS :]
        else:
            self.orphans_cut = 0
        return found

    def next_due(self) -> float:
        return self.policy.next_due()

    def result(
        self, now: float, wall: float, route_id: int, ok: bool, message: str, result: Any, link: int = 0
    ) -> proto.Message:
        """The UPSTREAM_RESULT answering routed command ``route_id`` of link ``link``'s central hub (numbered in
        that link's seqs: it goes on that link only)."""
        header = self.policy.header(link, now, wall)
        return proto.UpstreamResult(**header, route_id=route_id, ok=ok, message=message, result=result)

    def byes(self, now: float, wall: float) -> list[Outgoing]:
        """A BYE for every link, as (link, message) pairs."""
        return self.policy.bye(now, wall)

    def bye(self, now: float, wall: float) -> list[proto.Message]:
        return [message for _, message in self.byes(now, wall)]

    # -- PointSource (the send policy's view of the site's tree) ---------------------------------

    def take_changes(self) -> list[proto.PointEntry]:
        """The points due in this flush: changed, their coalescing interval over, selected.

        O(changes), not O(points held): a change is filed at once as due now (nothing sent for
        it within the interval) or under the flush that last sent it, and whole flushes come due
        in order (flush times only grow)."""
        now = self._now
        interval = self.settings.coalesce_s
        sent_at = self._sent_at
        held_at, due_now, waiting = self._held_at, self._due_now, self._waiting
        if self._changed:
            for path in self._changed:
                if path in held_at:
                    self.entries_coalesced += 1  # folded into the entry it already waits for
                    continue
                last = sent_at.get(path)
                if last is None or now >= last + interval:
                    due_now[path] = None
                    held_at[path] = -math.inf
                else:
                    bucket = waiting.get(last)
                    if bucket is None:
                        bucket = waiting[last] = {}
                    bucket[path] = None
                    held_at[path] = last
            self._changed.clear()
        ready = list(due_now)
        due_now.clear()
        while waiting:
            first = next(iter(waiting))
            if now < first + interval:
                break
            ready += waiting.pop(first)
        if not ready:
            return []
        min_level = self.settings.min_level
        sent_key = self._sent_key
        get = self.state.tree.by_key().get  # a C call (Tree.get is a Python one around it)
        out: list[proto.PointEntry] = []
        removed = False
        silences: list[str] = []
        every_path = not self.settings.prefixes  # _selected, inlined for the usual case
        for path in ready:
            del held_at[path]
            node = get(path)
            if node is not None and not node.is_leaf:
                # A mount whose agent-silent alarm changed (acked, say): the points that carry it go again.
                for agent in self.state.agents_mounted_at(path):
                    if agent.silent:
                        silences.extend(leaf for leaf in agent.leaves if leaf not in held_at)
            if node is None or not node.is_leaf:
                if path in sent_key:  # a point the central hub has: gone here, so it goes there with a STATE
                    removed = True
                    del sent_key[path]
                    sent_at.pop(path, None)
                    self._sent_since.pop(path, None)
                continue
            if path.startswith(_HUB_PREFIX) or not (every_path or self._selected(path)):
                continue
            leaf = node.data
            facts = self._facts(leaf)
            key = facts[0], facts[1], facts[7], facts[9]  # _key, inlined
            if key[0] < min_level and sent_key.get(path) == key:
                continue  # below the minimum level and only its value changed: not relayed
            out.append(self._entry(leaf, False, facts))
            sent_at[path] = now
            if sent_key.get(path) != key:  # an unchanged key stays: the new tuple dies young (fewer full collections)
                sent_key[path] = key
        for path in dict.fromkeys(silences):
            node = get(path)
            if node is None or not node.is_leaf or not self._selected(path):
                continue
            facts = self._facts(node.data)
            key = self._key(facts)
            if sent_key.get(path) != key:
                out.append(self._entry(node.data, False, facts))
                sent_at[path] = now
                sent_key[path] = key
        if removed:
            for link in range(self.links):  # every centre has it (the DELTAs went to all)
                self.policy.book_state(link)
        self.entries_sent += len(out)
        return out

    def full_state(self) -> tuple[list[proto.PointEntry], list[str]]:
        """Every selected point of the site as a relayed entry (parents follow from their paths)."""
        if not all(self.policy.wants_state(link) for link in range(self.links)):
            return self._partial_state(), []
        entries: list[proto.PointEntry] = []
        sent_key = self._sent_key
        sent_key.clear()
        self._sent_since.clear()
        # The STATE carries every point as it is now: changes waiting to be sent are in it.
        self._changed.clear()
        self._held_at.clear()
        self._due_now.clear()
        self._waiting.clear()
        every_path = not self.settings.prefixes  # _selected, inlined for the usual case (25,000 points a site)
        facts_of, entry_of, append = self._facts, self._entry, entries.append
        for agent in self.state.agents.values():
            for path, leaf in agent.leaves.items():
                if path.startswith(_HUB_PREFIX) or not (every_path or self._selected(path)):
                    continue
                facts = facts_of(leaf)
                append(entry_of(leaf, True, facts))
                sent_key[path] = facts[0], facts[1], facts[7], facts[9]  # _key, inlined
        self.entries_sent += len(entries)
        return entries, []

    def _partial_state(self) -> list[proto.PointEntry]:
        """A STATE for some links only (module docstring): the entries, the DELTAs' record left as the other
        centres have it, and every point whose entry differs from it due in the next DELTA, ``since`` and all."""
        entries: list[proto.PointEntry] = []
        sent_key, sent_since, changed = self._sent_key, self._sent_since, self._changed
        for agent in self.state.agents.values():
            for path, leaf in agent.leaves.items():
                if not self._selected(path):
                    continue
                facts = self._facts(leaf)
                before = sent_since.get(path, _UNSENT)
                entries.append(self._entry(leaf, True, facts))  # (it records the STATE's since as sent)
                if before is _UNSENT or before != facts[8]:
                    sent_since.pop(path, None)  # not what the DELTAs said: the next DELTA entry says it
                if sent_key.get(path) != self._key(facts):
                    sent_key[path] = _MUST_SEND  # (and a removal of it books a STATE: that centre has it now)
                    if path not in self._held_at:
                        changed[path] = None
        self.entries_sent += len(entries)
        return entries

    def unpolled_paths(self) -> list[str]:
        """None: the site relays only points it has an entry for."""
        return []

    def point_count(self) -> int:
        return sum(len(agent.leaves) for agent in self.state.agents.values())

    # -- relayed entries --------------------------------------------------------------------------

    def _selected(self, path: str) -> bool:
        if path == _HUB_ROOT or path.startswith(_HUB_PREFIX):
            return False
        prefixes = self.settings.prefixes
        return not prefixes or any(names.path_in_prefix(path, prefix) for prefix in prefixes)

    def _facts(self, leaf: Any) -> _Facts:
        """What a point's entry says besides its value, read once per entry (one alarm view, not one for the
        key and one for the entry): level (STALE included), staleness, owner, hubs passed, dt, reported
        level, alarm (its map on the wire, and as the key compares it), since and shelf (1.3)."""
        agent = leaf.agent
        debounce = leaf.debounce
        stale = bool(leaf.overdue or agent.silent)
        if agent.relay and debounce is not None and "via" in debounce:
            # A point this hub has itself from a site below: relayed on, one hub longer.
            owner = f"{agent.name}:{debounce['agent']}"
            via = [*debounce["via"], self.hub_id]
            stale = stale or debounce["stale"]
            dt_s = debounce["dt"]
            reported = debounce["reported"]
            alarm = debounce["alarm"]
            alarm_key = None
            if alarm is not None:
                alarm_key = (alarm["id"], alarm["state"], alarm["max_level"])  # its id here or below: a change
                proxy = self.state.relay_alarm_id
                if proxy is not None:  # relayed on under this hub's id for it (Router)
                    alarm = {**alarm, "id": proxy(agent.name, alarm["id"])}
            # (1.3) The site nearest the agent judged them: relayed on as they came.
            since, shelf = debounce.get("since"), debounce.get("shelf")
        else:
            owner = agent.name
            via = self._via  # one list for every entry of this hub's own points: packed, never changed
            dt_s = leaf.dt_s if leaf.dt_s is not None and 0 < leaf.dt_s < math.inf else None
            reported = leaf.alertcode
            alarm = alarm_key = since = shelf = None
            book = self.state.alarms
            if book is not None:
                view = book.current_view(leaf.path)
                since, shelf = view.since, view.shelf_id  # (1.3) the centre's NODE since, shelf_id and attention
                found = view.alarm if not agent.silent else self._shown_alarm(leaf, view.alarm)
                if found is not None:
                    alarm_key = (found.id, found.state, found.max_level)
                    alarm = {"id": found.id, "state": found.state, "max_level": found.max_level}
        code: int = leaf.node.code
        if stale:
            code = max(code, STALE_ALERTCODE)
        return code, stale, owner, via, dt_s, reported, alarm, alarm_key, since, shelf

    @staticmethod
    def _key(facts: _Facts) -> tuple[int, bool, Any, int | None]:
        """What a point's entry says besides its value -- level (STALE included), staleness, alarm, shelf
        (1.3): a change of it is relayed whatever the minimum level."""
        return facts[0], facts[1], facts[7], facts[9]

    def _shown_alarm(self, leaf: Any, own: Any) -> Any:
        """(1.3) The alarm a point's entry carries: its own, or -- while its agent is silent -- the agent-silent
        alarm (it sits on the agent's mount here, which is not relayed), so the centre counts the silence in
        its attention and can route an ack of it down (one proxy id for all the points). The silence wins
        over an own alarm that needs no attention (acknowledged or shelved)."""
        book = self.state.alarms
        if book is None or not leaf.agent.silent:
            return own
        silence = book.agent_alarm(leaf.agent.name)
        if silence is None or (own is not None and own.state in _NEEDS_ATTENTION and own.shelf_id is None):
            return own
        return silence

    def _entry(self, leaf: Any, full: bool, facts: _Facts | None = None) -> proto.PointEntry:
        """A leaf of the site's tree as a relayed entry (protocol: "Relayed entries"); ``full``: for a
        STATE (``since`` always there when known), else for a DELTA (``since`` only when it changed).
        The 7th map is :func:`proto.relay_map`'s (every key at its default left out)."""
        code, stale, owner, via, dt_s, reported, alarm, _, since, shelf = facts or self._facts(leaf)
        path = leaf.path
        sent_since = self._sent_since
        if full or sent_since.get(path, _UNSENT) != since:
            sent_since[path] = since
        else:
            since = None  # unchanged since the point's last entry: left out (protocol: Relayed entries)
        debounce = leaf.debounce
        if debounce is None:
            # An agent point without debounce (the usual one): its own level is the raw one, so no
            # "reported", no pending or flapping: proto.relay_map's map, started here without the debounce
            # map it would read "raw" from, and ended by the same code (the same keys in the same order).
            relayed: dict[str, Any] = {"raw": reported}
            if leaf.alertstr:
                relayed["raw_str"] = leaf.alertstr
            proto.relay_keys_after(relayed, owner, via, stale, dt_s, reported, alarm, since, shelf)
        else:
            # The agent's debounce map (or the one relayed from below): raw, pending, flapping as they are.
            relayed = proto.relay_map(debounce, owner, via, stale, dt_s, reported, alarm, since, shelf)
        label = alertstr_for(code) if code != leaf.alertcode else leaf.alertstr
        entry: proto.DebouncedEntry = _new_tuple(
            _Relayed, (path, leaf.value, code, label or "", leaf.polled_at_s or 0.0, None)
        )
        entry.debounce = relayed
        return entry


def encoded(sends: list[Outgoing], links: int) -> list[tuple[int, bytes]]:
    """``(link, proto.encode(message))`` for each of ``sends``, in order. With several links each entry is
    packed once: every link's DELTAs carry the same entries (and a STATE for all of them too); only the
    envelopes (the seqs) differ, so the site's CPU does not grow with its central hubs by the packing."""
    if links == 1:
        return [(index, proto.encode(message)) for index, message in sends]
    # id(entry) -> its bytes, for these messages only (they hold the entries: no id is reused meanwhile).
    packed: dict[int, bytes] = {}
    out: list[tuple[int, bytes]] = []
    for index, message in sends:
        if type(message) is proto.Delta or type(message) is proto.State:
            entries = [
                packed.get(id(entry)) or packed.setdefault(id(entry), proto.pack_entry(entry))
                for entry in message.points
            ]
            out.append((index, proto.encode_entries(message, entries)))
        else:
            out.append((index, proto.encode(message)))
    return out


class UpstreamLink:
    """One central hub: an XPUB, its monitor, and a new socket after a refused handshake (module docstring).
    Its messages' seqs are the core's send policy's (link ``index``), so they outlive a socket."""

    def __init__(
        self, settings: UpstreamSettings, endpoint: str, index: int, context: zmq.Context[zmq.Socket[bytes]]
    ) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.index = index
        self._context = context
        self.socket = self._new_socket()
        self.monitor: zmq.Socket[bytes] | None = None
        self.watch = transport.LinkWatch(self.settings.curve is not None)
        self.backoff = transport.Backoff()
        self._retry_at: float | None = None
        self._reported: transport.LinkProblem | None = None
        self.messages_sent = 0
        self.messages_dropped = 0
        self.bytes_sent = 0
        self._connect()

    def _new_socket(self) -> zmq.Socket[bytes]:
        sock = transport.make_socket(self._context, zmq.XPUB, transport.publisher_options(self.settings.sndhwm))
        if self.settings.curve is not None:
            self.settings.curve.apply(sock)
        return sock

    def _connect(self) -> None:
        self.monitor = transport.monitor_socket(self.socket, transport.MONITOR_EVENTS)
        self.socket.connect(self.endpoint)

    def sockets(self) -> list[zmq.Socket[bytes]]:
        """What the loop polls for input."""
        return [self.socket] if self.monitor is None else [self.socket, self.monitor]

    def read(self, core: UpstreamCore) -> list[dict[str, Any]]:
        """Read this link's upstream frames and monitor events: the routed commands that arrived on it."""
        routed: list[dict[str, Any]] = []
        while True:
            try:
                frame = self.socket.recv(zmq.DONTWAIT)
            except zmq.Again:
                break
            command, notice = core.upstream(frame, self.index)
            if command is not None:
                routed.append(command)
            elif notice is not None:
                log.warning("the central hub at %s refuses this hub's messages: %s", self.endpoint, notice)
        self._read_monitor()
        return routed

    def _read_monitor(self) -> None:
        monitor = self.monitor
        if monitor is None:
            return
        while True:
            try:
                event = recv_monitor_message(monitor, zmq.DONTWAIT)
            except zmq.Again:
                return
            was = self.watch.handshaken
            problem = self.watch.feed(event["event"], int(event["value"]))
            if self.watch.handshaken and not was:
                log.info("connected to the central hub at %s as %s", self.endpoint, self.settings.sender)
                self.backoff.reset()
                self._reported = None
            elif was and not self.watch.handshaken:
                log.warning("lost the connection to the central hub at %s", self.endpoint)
            if problem is not None and problem is not self._reported:
                self._reported = problem
                log.warning(
                    "%s",
                    transport.describe_problem(problem, self.endpoint, who="this hub", what="central hub's agents"),
                )

    def look_after(self, now: float) -> None:
        """Give a refused link a new socket when its time comes."""
        if self.watch.needs_new_socket and self._retry_at is None:
            self._retry_at = now + self.backoff.next_delay()
        if self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
            if self.monitor is not None:
                self.monitor.close(linger=0)
            self.socket.close(linger=0)
            self.socket = self._new_socket()
            self.watch.new_socket()
            self._connect()

    def send(self, message: proto.Message) -> None:
        self.send_bytes(proto.encode(message))

    def send_bytes(self, data: bytes) -> None:
        """One encoded message (never blocks: counted as dropped at the high-water mark)."""
        try:
            self.socket.send(data, zmq.DONTWAIT)  # XPUB drops at its high-water mark: never blocks the hub
            self.messages_sent += 1
            self.bytes_sent += len(data)
        except zmq.Again:
            self.messages_dropped += 1

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close(linger=0)
        self.socket.close(linger=200)


class Upstream:
    """The site hub's links to its central hub(s), driven from the hub's loop: one core (what to send), one
    :class:`UpstreamLink` per central hub (module docstring)."""

    def __init__(self, core: UpstreamCore, context: zmq.Context[zmq.Socket[bytes]]) -> None:
        self.core = core
        self.settings = core.settings
        self.links = [
            UpstreamLink(core.settings, endpoint, index, context)
            for index, endpoint in enumerate(core.settings.endpoints)
        ]

    def read(self) -> list[tuple[int, dict[str, Any]]]:
        """Every link's upstream frames and monitor events: the routed commands that arrived, each with the
        link it came on (its answer goes there)."""
        return [(link.index, command) for link in self.links for command in link.read(self.core)]

    def tick(self, now: float, wall: float) -> None:
        """Send what the core says is due, each message on its link; look after refused links."""
        links = self.links
        for index, data in encoded(self.core.sends(now, wall), len(links)):
            links[index].send_bytes(data)
        for link in links:
            link.look_after(now)

    def answer(self, link: int, now: float, wall: float, route_id: int, ok: bool, message: str, result: Any) -> None:
        """The UPSTREAM_RESULT of routed command ``route_id``, on the link it came on only (route ids are each
        central hub's own: another centre's pending command may have the same number)."""
        if 0 <= link < len(self.links):
            self.links[link].send(self.core.result(now, wall, route_id, ok, message, result, link))

    def health_points(self) -> dict[str, tuple[Any, int]]:
        """The links as hub points ``_hub/...`` (value, level): ``upstream_connected`` (every link's handshake
        is live; ORANGE when one is not), ``upstream_bytes_sent`` and ``upstream_messages_dropped`` (all links),
        and per link ``upstream/<n>/endpoint``, ``connected`` (ORANGE when not), ``bytes_sent`` and
        ``messages_dropped``, ``n`` = 1, 2 ... in the order the endpoints were given."""
        links = self.links
        every = all(link.watch.handshaken for link in links)
        points: dict[str, tuple[Any, int]] = {
            "upstream_connected": (every, GreenAlert.alertcode if every else OrangeAlert.alertcode),
            "upstream_bytes_sent": (sum(link.bytes_sent for link in links), 0),
            "upstream_messages_dropped": (sum(link.messages_dropped for link in links), 0),
        }
        for link in links:
            name = f"upstream/{link.index + 1}"
            up = link.watch.handshaken
            points[f"{name}/endpoint"] = (link.endpoint, 0)
            points[f"{name}/connected"] = (up, GreenAlert.alertcode if up else OrangeAlert.alertcode)
            points[f"{name}/bytes_sent"] = (link.bytes_sent, 0)
            points[f"{name}/messages_dropped"] = (link.messages_dropped, 0)
        return points

    def close(self, now: float | None = None) -> None:
        """BYE on every link, then close (each central hub marks the site silent at once: one alarm there)."""
        moment = time.monotonic() if now is None else now
        for index, message in self.core.byes(moment, time.time()):
            self.links[index].send(message)
        for link in self.links:
            link.close()
