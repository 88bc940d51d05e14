"""The bridge's pure core: the live tree, per-client subscriptions, and the deltas each client gets. No I/O.

Like the hub's :class:`~gsmon.hub.state.HubState`, :class:`BridgeCore` takes
the time as an argument and returns what to send; the aiohttp layer
(:mod:`gsmon.common.web.app`) only moves bytes.

Input
    :meth:`BridgeCore.apply` takes the Subscriber's changes, coalesced to
    the latest node per path (``None``: removed), and ``reset`` when they are
    the whole tree (a new connection to the hub: what is not in it is gone).
    :meth:`BridgeCore.set_hub` says how the link to the hub stands
    (``connected``, ``waiting``, ``hub lost``).

Output
    The tree under a prefix (:meth:`BridgeCore.tree`), one node
    (:meth:`BridgeCore.node`), the status (:meth:`BridgeCore.status`), the
    entries /metrics reads (:meth:`BridgeCore.entries`; each carries its
    series prefixes, handed on to the node's next version while its labels
    stay the same, see :mod:`gsmon.common.web.metrics`), and the
    WebSocket stream: :meth:`BridgeCore.subscribe` answers a client's
    subscription with a *snapshot*; :meth:`BridgeCore.flush` (called every
    few tens of milliseconds) returns, per client, at most one *delta* (the
    nodes that changed under its prefix since the last flush, coalesced) and
    a *status* message when the counts or the hub's state changed, or every
    :data:`STATUS_EVERY_S` (so ages on the page keep moving).

Stream messages (JSON text frames; every one carries ``epoch`` and ``seq``)::

    {"type": "snapshot", "epoch": E, "seq": 0, "prefix": P, "min_level": L|null,
     "nodes": [node...], "status": {...}}
    {"type": "delta", "epoch": E, "seq": n, "nodes": [node...], "removed": [path...]}
    {"type": "status", "epoch": E, "seq": n, "status": {...}}
    {"type": "error", "message": "one line"}     (a client's bad message: no epoch, no seq, nothing changed)

``epoch`` names one subscription (each snapshot starts a new one, from a
random start, so a page never mistakes a restarted bridge's stream for its
own) and ``seq`` counts the messages of that subscription: 0 for the
snapshot, then +1 per message. A client that sees ``seq`` jump (or an
unknown ``epoch``) has missed something and subscribes again, which gets it
a fresh snapshot. The bridge makes such a gap on purpose when it has to
drop a message for a client that reads too slowly (:meth:`BridgeCore.gap`):
memory per client stays bounded, and the client heals itself.

A node is in a subscription's view when its path is under the prefix
(segment-aware, :func:`gsmon.common.names.path_in_prefix`) and, with a
``min_level``, when its level or its attention reaches it; a node that
leaves the view is sent in ``removed``, one that enters it in ``nodes``.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from gsmon.common.alerts import STALE_ALERTCODE as STALE
from gsmon.common.alerts import CriticalAlert, GreenAlert, OrangeAlert, RedAlert
from gsmon.common.names import SEPARATOR, path_in_prefix
from gsmon.common.watch.adapter import UNACKED_STATES, NodeExtras, display_level, read_extras
from gsmon.common.web.nodes import WebNodeSource, effective_attention, iso_utc, node_json

if TYPE_CHECKING:  # metrics.py imports this module
    from gsmon.common.web.metrics import SeriesPrefixes

__all__ = ["STATUS_EVERY_S", "BridgeCore", "Entry", "HubLink", "Subscription", "tier_of"]

HubLink = Literal["connected", "waiting", "hub lost"]
#: A status message goes to every client at least this often (ages and the hub's clock move on).
STATUS_EVERY_S: Final = 1.0

_TIERS: Final = (
    (CriticalAlert.alertcode, "critical"),
    (STALE, "stale"),
    (RedAlert.alertcode, "red"),
    (OrangeAlert.alertcode, "orange"),
    (GreenAlert.alertcode, "green"),
)


def tier_of(level: int) -> str:
    """The colour family of a level (a user level takes the built-in one below it)."""
    for lowest, tier in _TIERS:
        if level >= lowest:
            return tier
    return "none"


@dataclass(slots=True)
class Entry:
    """A node as the core keeps it: the node, what it is shown and sorted by, and its JSON (made when asked)."""

    node: WebNodeSource
    extras: NodeExtras
    level: int  # display level: the alert, at least STALE when stale
    attention: int  # the hub's attention, else the level
    is_point: bool
    _json: str | None = None
    #: The node's /metrics series up to their values (made at the first scrape; see metrics.py).
    series: SeriesPrefixes | None = None

    @property
    def json(self) -> str:
        if self._json is None:
            self._json = json.dumps(node_json(self.node, self.extras), ensure_ascii=False, allow_nan=False)
        return self._json

    @property
    def rank(self) -> int:
        """What a ``min_level`` compares with: the worse of level and attention."""
        return self.level if self.level >= self.attention else self.attention

    @property
    def unacked_alarm(self) -> bool:
        alarm = self.extras.alarm
        return alarm is not None and alarm.state in UNACKED_STATES


def _entry(node: WebNodeSource) -> Entry:
    extras = read_extras(node)
    level = display_level(node.alertcode, node.stale)
    return Entry(node, extras, level, effective_attention(extras, level), node.kind == "point")


@dataclass(slots=True)
class Subscription:
    """One WebSocket client's view: a prefix, a level floor, and its stream's epoch and seq."""

    client_id: int
    prefix: str
    min_level: int | None
    epoch: int = 0
    seq: int = 0

    def sees(self, entry: Entry | None) -> bool:
        return entry is not None and (self.min_level is None or entry.rank >= self.min_level)


@dataclass(slots=True)
class _HubStatus:
    state: HubLink = "waiting"
    reason: str = ""
    clock_offset_s: float = 0.0
    last_update: float | None = None


@dataclass(slots=True)
class _Counts:
    points_by_level: Counter[int] = field(default_factory=Counter)
    unacked: set[str] = field(default_factory=set)
    shelved: set[str] = field(default_factory=set)
    alarm_fields: int = 0  # nodes that carry any operator-layer field
    # The top-level nodes: their unacked_below is the hub's count of every unacknowledged alarm, those of
    # removed points (latched) included, which no node of the tree carries any more.
    top: dict[str, Entry] = field(default_factory=dict)


class BridgeCore:
    """The live tree and its subscribers (see the module docstring). ``endpoint``: the hub, for the status."""

    def __init__(self, endpoint: str = "", *, epoch_start: int = 1) -> None:
        self.endpoint = endpoint
        self._entries: dict[str, Entry] = {}
        # path -> the entry it had at the last flush (None: it was not there), for every path changed since.
        self._dirty: dict[str, Entry | None] = {}
        self._subs: dict[int, Subscription] = {}
        self._next_epoch = max(1, epoch_start)
        self._hub = _HubStatus()
        self._counts = _Counts()
        self._status_sent: str | None = None  # the last status sent (without its clock), to send changes only
        self._status_at = -math.inf
        #: Updates taken in (before coalescing by the feed), for the bench and /metrics.
        self.updates_applied = 0

    # ------------------------------------------------------------------
    # Input

    def apply(self, updates: Mapping[str, WebNodeSource | None], *, reset: bool = False) -> None:
        """Take the latest node per path (``None``: removed); ``reset``: ``updates`` is the whole tree."""
        if reset:
            for path in [path for path in self._entries if updates.get(path) is None]:
                self._remove(path)
        for path, node in updates.items():
            if node is None:
                self._remove(path)
            else:
                self._upsert(path, node)
        self.updates_applied += len(updates)

    def set_hub(
        self, state: HubLink, reason: str = "", *, clock_offset_s: float = 0.0, last_update: float | None = None
    ) -> None:
        """How the link to the hub stands; ``clock_offset_s``: the hub's clock minus this machine's."""
        self._hub.state = state
        self._hub.reason = reason
        self._hub.clock_offset_s = clock_offset_s
        if last_update is not None:
            self._hub.last_update = last_update

    def _upsert(self, path: str, node: WebNodeSource) -> None:
        new = _entry(node)
        old = self._entries.get(path)
        if old is not None and old.series is not None and old.series.fits(node):
            new.series = old.series  # same labels: a scrape only formats the new values
        if path not in self._dirty:
            self._dirty[path] = old
        self._entries[path] = new
        self._count(path, old, -1)
        self._count(path, new, +1)

    def _remove(self, path: str) -> None:
        old = self._entries.pop(path, None)
        if old is None:
            return
        if path not in self._dirty:
            self._dirty[path] = old
        self._count(path, old, -1)

    def _count(self, path: str, entry: Entry | None, delta: int) -> None:
        if entry is None:
            return
        counts = self._counts
        if entry.extras.known:
            counts.alarm_fields += delta
        if entry.is_point:
            counts.points_by_level[entry.level] += delta
            if not counts.points_by_level[entry.level]:
                del counts.points_by_level[entry.level]
        if delta > 0:
            if entry.unacked_alarm:
                counts.unacked.add(path)
            if entry.is_point and entry.extras.shelf_id is not None:
                counts.shelved.add(path)
            if SEPARATOR not in path:
                counts.top[path] = entry
        else:
            counts.unacked.discard(path)
            counts.shelved.discard(path)
            counts.top.pop(path, None)

    # ------------------------------------------------------------------
    # Reads

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, path: str) -> Entry | None:
        return self._entries.get(path)

    def entries(self, prefix: str = "", min_level: int | None = None) -> list[Entry]:
        """The entries under ``prefix`` reaching ``min_level`` (a list: safe to read off the loop)."""
        if not prefix and min_level is None:
            return list(self._entries.values())
        return [
            entry
            for path, entry in self._entries.items()
            if path_in_prefix(path, prefix) and (min_level is None or entry.rank >= min_level)
        ]

    def tree(self, prefix: str = "", min_level: int | None = None) -> list[str]:
        """The JSON texts of the nodes under ``prefix`` reaching ``min_level``, in path order."""
        chosen = self.entries(prefix, min_level)
        chosen.sort(key=lambda entry: entry.node.path.split("/"))
        return [entry.json for entry in chosen]

    def node(self, path: str) -> str | None:
        entry = self._entries.get(path)
        return None if entry is None else entry.json

    def hub_time(self, now: float) -> float:
        """The hub's wall clock at this machine's wall time ``now``."""
        return now + self._hub.clock_offset_s

    @property
    def hub_state(self) -> HubLink:
        return self._hub.state

    def _status_body(self) -> dict[str, Any]:
        counts = self._counts
        by_tier: Counter[str] = Counter()
        for level, count in counts.points_by_level.items():
            by_tier[tier_of(level)] += count
        return {
            "hub": self.endpoint,
            "state": self._hub.state,
            "reason": self._hub.reason,
            "nodes": len(self._entries),
            "points": sum(counts.points_by_level.values()),
            "by_level": {str(level): count for level, count in sorted(counts.points_by_level.items())},
            "by_tier": dict(sorted(by_tier.items())),
            # None while the hub sends no operator-layer field at all (a hub before issue 13).
            "unacked": self._unacked() if counts.alarm_fields else None,
            "shelved": len(counts.shelved) if counts.alarm_fields else None,
            "alarm_fields": counts.alarm_fields > 0,
            "last_update": iso_utc(self._hub.last_update),
        }

    def _unacked(self) -> int:
        """Unacknowledged alarms as the tree's badges count them: unshelved, at or below each top-level node, a
        removed point's latched one included (the alarm table lists it; no node carries it). A hub with its
        alarm layer sends ``since`` on every node, and then an absent ``unacked_below`` is 0 (protocol: NODE);
        from a hub without it (no ``since``): the nodes whose own alarm waits."""
        total, layer = 0, False
        for entry in self._counts.top.values():
            extras = entry.extras
            if extras.since is None:
                continue
            layer = True
            if entry.is_point:
                total += 1 if entry.unacked_alarm and extras.shelf_id is None else 0
            else:
                total += extras.unacked_below or 0
        return total if layer else len(self._counts.unacked)

    def status(self, now: float) -> dict[str, Any]:
        """The status bar's facts at wall time ``now`` (``now`` in the result: the hub's clock)."""
        body = self._status_body()
        body["now"] = iso_utc(self.hub_time(now))
        return body

    # ------------------------------------------------------------------
    # The stream

    def subscribe(self, client_id: int, prefix: str, min_level: int | None, now: float) -> str:
        """(Re)subscribe ``client_id``; return its snapshot message (the start of a new epoch)."""
        sub = Subscription(client_id, prefix, min_level, epoch=self._next_epoch, seq=0)
        self._next_epoch += 1
        self._subs[client_id] = sub
        chosen = self.entries(prefix, min_level)
        head = json.dumps(
            {"type": "snapshot", "epoch": sub.epoch, "seq": 0, "prefix": prefix, "min_level": min_level},
            ensure_ascii=False,
        )
        status = json.dumps(self.status(now), ensure_ascii=False)
        return f'{head[:-1]},"status":{status},"nodes":[{",".join(entry.json for entry in chosen)}]}}'

    def unsubscribe(self, client_id: int) -> None:
        self._subs.pop(client_id, None)

    def subscription(self, client_id: int) -> Subscription | None:
        return self._subs.get(client_id)

    @property
    def clients(self) -> int:
        return len(self._subs)

    def gap(self, client_id: int) -> None:
        """A message for ``client_id`` was dropped: skip a seq, so that the client re-snapshots."""
        sub = self._subs.get(client_id)
        if sub is not None:
            sub.seq += 1

    def flush(self, now: float) -> dict[int, list[str]]:
        """The messages for each client since the last flush (clients with nothing new are absent)."""
        dirty, self._dirty = self._dirty, {}
        changed: list[tuple[str, Entry | None, Entry | None]] = []
        if self._subs:  # nobody to tell: no need to compare (nor to encode) anything
            for path, old in dirty.items():
                new = self._entries.get(path)
                if not _same(old, new):
                    changed.append((path, old, new))
        out: dict[int, list[str]] = {}
        if changed:
            by_view: dict[tuple[str, int | None], list[Subscription]] = {}
            for sub in self._subs.values():
                by_view.setdefault((sub.prefix, sub.min_level), []).append(sub)
            for subs in by_view.values():
                body = _delta_body(changed, subs[0])
                if body is None:
                    continue
                for sub in subs:
                    sub.seq += 1
                    out[sub.client_id] = [f'{{"type":"delta","epoch":{sub.epoch},"seq":{sub.seq},{body}}}']
        status_body = json.dumps(self._status_body(), ensure_ascii=False)
        if status_body != self._status_sent or now - self._status_at >= STATUS_EVERY_S:
            self._status_sent = status_body
            self._status_at = now
            clock = json.dumps(iso_utc(self.hub_time(now)))
            status = f'{status_body[:-1]},"now":{clock}}}'
            for sub in self._subs.values():
                sub.seq += 1
                out.setdefault(sub.client_id, []).append(
                    f'{{"type":"status","epoch":{sub.epoch},"seq":{sub.seq},"status":{status}}}'
                )
        return out


def _same(old: Entry | None, new: Entry | None) -> bool:
    if old is None or new is None:
        return old is new
    return old is new or old.json == new.json


def _delta_body(changed: Iterable[tuple[str, Entry | None, Entry | None]], sub: Subscription) -> str | None:
    """The ``"nodes":[...],"removed":[...]`` part of one view's delta; None when nothing in it changed."""
    parts: list[str] = []
    removed: list[str] = []
    prefix = sub.prefix
    for path, old, new in changed:
        if prefix and not path_in_prefix(path, prefix):
            continue
        if sub.sees(new):
            assert new is not None
            parts.append(new.json)
        elif sub.sees(old):
            removed.append(path)
    if not parts and not removed:
        return None
    return f'"nodes":[{",".join(parts)}],"removed":{json.dumps(removed, ensure_ascii=False)}'
