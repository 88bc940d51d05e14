"""The hub's core: the global tree, agent liveness and staleness. No I/O.

The server loop decodes messages and hands them to :meth:`HubState.apply`
with the current time; it calls :meth:`HubState.tick` every few hundred
milliseconds and sends what :meth:`HubState.drain` returns. Every time is an
argument (``now`` is ``time.monotonic()``, ``wall`` is ``time.time()``), so
the whole core is tested without sockets or sleeps.

Rules (see DESIGN.md):

* Every agent is merged at its mount path. The same parent path from two
  agents is one node holding the union of their children. A leaf belongs to
  one agent: a second agent claiming it is refused and counted as a conflict.
* A parent's alert is its worst child's (``RollupTree``, incremental).
* A point is *overdue* when not refreshed (by a DELTA or STATE) within
  ``stale_factor x dt + stale_slack_s``; an agent is *silent* when nothing
  arrived from it within ``agent_liveness x its heartbeat interval``. A point
  that is overdue or whose agent is silent is STALE: its alert is at least
  STALE, which rolls up like any alert. Any message from a silent agent makes
  it live again, and the hub asks it for a full STATE, which refreshes every
  point at once.
* A complete STATE (all its parts) says which points and parents an agent
  has. Anything of that agent it did not list, and that is not reported again
  within ``removal_grace_s``, is removed -- this is how a restarted agent (new
  epoch) loses the points its new incarnation no longer has.
* ``seq`` gaps are counted per agent; the hub then asks the agent for a STATE
  (protocol "resync") which heals the gap.
* Silence is judged only up to the moment the hub last had read everything
  the agents had sent (``heard_all_until``): a hub that falls behind its own
  input queue cannot tell silence from its own lag, and must not turn it into
  false STALE alerts (which cost more work: resyncs, restyles). How far it is
  behind is its health point ``_hub/agents_backlog_s``.
* An agent silent for ``agent_retention_s`` is forgotten with its points.
* Every change (value, alert, stale, removal) is published with the hub's
  epoch and the next global ``seq``; the hub's own health is a subtree
  ``_hub/`` of ordinary points.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from gsmon.common import names as naming
from gsmon.common import protocol as proto
from gsmon.common.alerts import STALE_ALERTCODE, GreenAlert, OrangeAlert, alertstr_for
from gsmon.common.tree import RollupTree, TreeNode
from gsmon.hub.subscriptions import SubscriptionLedger

__all__ = ["HUB_AGENT", "HUB_ROOT", "HubSettings", "HubState", "HubStats"]

log = logging.getLogger("gsmon.hub")

# Tuples rather than inline `A | B` unions, which are rebuilt at every call (per message here).
_AGENT_MESSAGES: Final = (proto.State, proto.Delta, proto.Heartbeat, proto.Bye)
_MOUNTING_MESSAGES: Final = (proto.State, proto.Heartbeat)

HUB_ROOT: Final = "_hub"
HUB_AGENT: Final = "_hub"  # the owner name of the hub's own points
_INF: Final = math.inf


@dataclass(frozen=True, slots=True)
class HubSettings:
    """Liveness timings and limits of the hub core (documented defaults)."""

    heartbeat_interval_s: float = 1.0  # hub -> subscribers heartbeat, and health-point refresh
    agent_liveness: float = 3.0  # an agent is silent after this many of its heartbeat intervals
    stale_factor: float = 3.0  # a point is overdue after stale_factor x dt ...
    stale_slack_s: float = 1.0  # ... + this slack (absorbs flush delays and hub load)
    removal_grace_s: float = 10.0  # unlisted points of an agent are removed after this
    agent_retention_s: float = 3600.0  # a silent agent and its points are forgotten after this
    resync_interval_s: float = 1.0  # at most one resync request per agent per this interval
    max_nodes: int = 1_000_000  # new points beyond this are refused (memory bound)
    max_points_per_agent: int = 100_000
    max_agents: int = 10_000
    max_published_prefixes: int = 1000  # distinct subscription prefixes counted for gap detection


@dataclass(slots=True)
class HubStats:
    """Counters the hub reports under ``_hub/`` (the server adds its own)."""

    messages_in: int = 0
    messages_out: int = 0
    messages_rejected: int = 0
    points_rejected: int = 0
    conflicts: int = 0
    seq_gaps: int = 0
    resyncs_requested: int = 0
    subscribers: int = 0


class _Leaf:
    """A point of the global tree (``TreeNode.data`` of a leaf)."""

    __slots__ = (
        "agent",
        "alertcode",
        "alertstr",
        "deadline",
        "dt_s",
        "gen",
        "node",
        "overdue",
        "path",
        "payload",
        "polled_at_s",
        "queued",
        "received_at_s",
        "seq",
        "value",
    )

    def __init__(self, path: str, agent: _Agent) -> None:
        self.path = path
        self.agent = agent
        self.node: TreeNode | None = None
        self.value: Any = None
        self.alertcode = 0
        self.alertstr = ""
        self.polled_at_s: float | None = None
        self.received_at_s: float | None = None
        self.dt_s: float | None = None
        self.deadline = _INF  # hub monotonic time after which the point is overdue
        self.queued = _INF  # deadline of this leaf's live entry in the deadline heap (inf: none)
        self.overdue = False
        self.gen = 0  # the agent's state generation when last reported
        self.seq = 0  # hub seq of the last change
        # The last change packed as a NODE payload, or b"" when nobody followed
        # the path then: a snapshot packs it on demand (same bytes, same seq).
        self.payload = b""


class _Parent:
    """A parent of the global tree (``TreeNode.data`` of a parent)."""

    __slots__ = ("declared", "payload", "seq")

    def __init__(self) -> None:
        # Agents whose STATE listed this parent explicitly (it stays while
        # childless as long as one of them still lists it).
        self.declared: set[str] = set()
        self.seq = 0
        self.payload = b""  # as _Leaf.payload


@dataclass(eq=False, slots=True)
class _Agent:
    """What the hub knows of one agent."""

    name: str
    epoch: int = -1
    mount: str = ""
    heartbeat_s: float = 1.0
    last_seq: int = -1
    last_heard: float = 0.0
    silent: bool = True
    silent_since: float = 0.0
    point_count: int = 0
    leaves: dict[str, _Leaf] = field(default_factory=dict)  # by full path
    by_rel: dict[str, _Leaf] = field(default_factory=dict)  # by path inside the agent (current mount)
    parents: dict[str, int] = field(default_factory=dict)  # declared parent path -> state generation
    gen: int = 0  # incremented per complete STATE
    state_parts_seen: int = 0
    removal_due: float = _INF
    removal_gen: int = 0
    resync_at: float = -_INF
    gaps: int = 0
    conflicts: int = 0


class HubState:
    """The global tree and everything the hub knows about agents."""

    def __init__(
        self, settings: HubSettings, epoch: int, now: float, subscriptions: SubscriptionLedger | None = None
    ) -> None:
        self.settings = settings
        self.epoch = epoch
        self.seq = 0
        self.stats = HubStats()
        self.tree = RollupTree()
        self.agents: dict[str, _Agent] = {}
        self._alertstrs: dict[int, str] = {}
        self._dirty: dict[str, TreeNode] = {}
        self._removed: list[str] = []
        # Deadlines of points, grouped: a heap of distinct deadlines, and the
        # paths queued for each. All points of one DELTA share theirs (the
        # same `now` and usually the same dt), so the heap stays small and a
        # point is queued by a list append (see tick).
        self._deadlines: list[float] = []
        self._due: dict[float, list[str]] = {}
        self._resync: list[str] = []
        # (agent name, reason) of refused messages, for the server's NOTICE back-channel.
        self._notices: list[tuple[str, str]] = []
        # Who follows what, and the publish counters per followed prefix (protocol: gap
        # detection): owned by the subscriptions ledger, which the server feeds.
        self.subscriptions = subscriptions or SubscriptionLedger(max_published_prefixes=settings.max_published_prefixes)
        self._own = _Agent(HUB_AGENT, epoch=epoch, mount=HUB_ROOT, silent=False)
        self._encoder = proto.NodeEncoder(epoch)
        # Values the server adds to the hub's own points (name -> (value, alert code)).
        self.extra_health: dict[str, tuple[Any, int]] = {}
        self._last_health = -_INF
        self._backlog_s = 0.0  # how far behind its agents' messages the last tick was
        self._started = now

    # ------------------------------------------------------------------
    # Agent messages
    # ------------------------------------------------------------------

    def apply(self, msg: proto.Message, now: float, wall: float) -> None:
        """Apply one decoded agent message (STATE, DELTA, HEARTBEAT or BYE)."""
        self.stats.messages_in += 1
        if not isinstance(msg, _AGENT_MESSAGES):
            self.stats.messages_rejected += 1
            log.debug("dropped %s from %s on the agents socket", msg.kind.name, msg.sender)
            return
        name = msg.sender
        if isinstance(msg, _MOUNTING_MESSAGES):
            # Before registering a new agent: a refused message must not leave a phantom
            # (silent, hence STALE) agent behind in the hub's health.
            try:
                naming.check_mount(msg.mount)
            except naming.InvalidNameError as error:
                self.stats.messages_rejected += 1
                log.debug("agent %s: %s", name, error)
                self._notice(name, f"mount refused: {error}")
                return
        agent = self.agents.get(name)
        if agent is None:
            if isinstance(msg, proto.Bye):
                return  # goodbye from an agent we never knew: nothing to record
            if not _valid_agent_name(name) or len(self.agents) >= self.settings.max_agents:
                self.stats.messages_rejected += 1
                why = "the hub has max_agents agents" if _valid_agent_name(name) else "invalid or reserved name"
                self._notice(name, f"agent name {name!r} refused: {why}")
                return
            agent = self.agents[name] = _Agent(name)

        if msg.epoch != agent.epoch:
            if isinstance(msg, proto.Bye):
                # Goodbye from an incarnation we never knew: nothing to revive.
                return
            if not isinstance(msg, proto.State):
                # We missed this incarnation's STATE (hub restart, dropped
                # message): ask for it rather than guess its mount.
                self._hear(agent, now)
                self._request_resync(agent, now)
                return
            if agent.epoch != -1:
                log.info("agent %s restarted (epoch %x -> %x)", name, agent.epoch, msg.epoch)
            agent.epoch = msg.epoch
            agent.last_seq = msg.seq - 1
            agent.state_parts_seen = 0
        if msg.seq <= agent.last_seq:
            # Replayed or reordered: never apply old news over new.
            self.stats.messages_rejected += 1
            return
        if msg.seq != agent.last_seq + 1:
            missing = msg.seq - agent.last_seq - 1
            agent.gaps += missing
            self.stats.seq_gaps += missing
            self._request_resync(agent, now)
        agent.last_seq = msg.seq
        self._hear(agent, now)

        if isinstance(msg, proto.State):
            self._apply_state(agent, msg, now, wall)
        elif isinstance(msg, proto.Delta):
            self._apply_points(agent, msg.points, now, wall)
        elif isinstance(msg, proto.Heartbeat):
            self._set_mount(agent, msg.mount)
            agent.heartbeat_s = msg.heartbeat_s
            agent.point_count = msg.point_count
        else:
            self._set_silent(agent, now)

    def _hear(self, agent: _Agent, now: float) -> None:
        agent.last_heard = now
        if agent.silent:
            agent.silent = False
            if agent.epoch != -1 and agent.leaves:
                # Back from silence: a STATE refreshes every point at once.
                self._request_resync(agent, now)
            for leaf in agent.leaves.values():
                self._restyle(leaf)

    def _request_resync(self, agent: _Agent, now: float) -> None:
        if now - agent.resync_at < self.settings.resync_interval_s:
            return
        agent.resync_at = now
        self.stats.resyncs_requested += 1
        self._resync.append(agent.name)

    def mount_of(self, agent_name: str) -> str | None:
        """The mount an agent publishes under (None while unknown)."""
        agent = self.agents.get(agent_name)
        return agent.mount if agent is not None and agent.mount else None

    def take_resync_requests(self) -> list[str]:
        """Agents the server should ask for a STATE (protocol resync)."""
        requests, self._resync = self._resync, []
        return requests

    def _set_mount(self, agent: _Agent, mount: str) -> None:
        if mount != agent.mount:
            agent.mount = mount
            agent.by_rel = {}  # rel paths now resolve under the new mount

    def _apply_state(self, agent: _Agent, msg: proto.State, now: float, wall: float) -> None:
        self._set_mount(agent, msg.mount)
        agent.heartbeat_s = msg.heartbeat_s
        if msg.part == 0:
            agent.state_parts_seen = 0
            agent.gen += 1
        agent.state_parts_seen += 1
        gen = agent.gen
        for rel in msg.parents:
            self._declare_parent(agent, rel, gen)
        self._apply_points(agent, msg.points, now, wall)
        if msg.part == msg.parts - 1:
            complete = agent.state_parts_seen == msg.parts
            agent.state_parts_seen = 0
            if complete:
                # Whatever this STATE did not list goes, unless reported again soon.
                agent.removal_gen = gen
                agent.removal_due = now + self.settings.removal_grace_s

    def _declare_parent(self, agent: _Agent, rel: str, gen: int) -> None:
        path = naming.join(agent.mount, rel)
        if path not in self.tree and len(self.tree) >= self.settings.max_nodes:
            self.stats.points_rejected += 1  # declared parents count against the memory bound too
            return
        try:
            node = self._ensure_parents(path, include_self=True)
        except ValueError as error:
            agent.conflicts += 1
            self.stats.conflicts += 1
            log.debug("agent %s: parent %s refused: %s", agent.name, path, error)
            self._notice(agent.name, f"parent {path} refused: {error}")
            return
        assert isinstance(node.data, _Parent)
        node.data.declared.add(agent.name)
        agent.parents[path] = gen

    def _apply_points(self, agent: _Agent, entries: list[proto.PointEntry], now: float, wall: float) -> None:
        # One turn of this loop per point received: attributes are read once
        # into locals, and _restyle is inlined (a refreshed leaf is not
        # overdue, so only its agent's silence can make it STALE).
        gen = agent.gen
        by_rel = agent.by_rel
        alertstrs = self._alertstrs
        dirty = self._dirty
        deadlines, due = self._deadlines, self._due
        stale_factor, stale_slack_s = self.settings.stale_factor, self.settings.stale_slack_s
        silent = agent.silent
        set_code = self.tree.set_code
        for path, value, alertcode, alertstr, polled_at_s, dt_s in entries:
            leaf = by_rel.get(path)
            if leaf is None:
                leaf = self._claim(agent, path)
                if leaf is None:
                    continue
            leaf.gen = gen
            leaf.value = value
            leaf.alertstr = alertstr
            leaf.polled_at_s = polled_at_s
            leaf.received_at_s = wall
            leaf.dt_s = dt_s
            # Learn labels of user-defined levels; STALE's label is the hub's own.
            if alertcode not in alertstrs and alertstr and alertcode != STALE_ALERTCODE:
                alertstrs[alertcode] = alertstr
            leaf.alertcode = alertcode
            if dt_s is None or not 0 < dt_s < _INF:  # one-shot, or nonsense (NaN would jam the heap)
                leaf.deadline = _INF
            else:
                deadline = leaf.deadline = now + stale_factor * dt_s + stale_slack_s
                if deadline < leaf.queued:
                    # Not queued yet, or due before its queued entry (a shorter dt): queue
                    # it; tick() ignores the superseded entry. (_queue, inlined.)
                    leaf.queued = deadline
                    group = due.get(deadline)
                    if group is None:
                        due[deadline] = [leaf.path]
                        heapq.heappush(deadlines, deadline)
                    else:
                        group.append(leaf.path)
            leaf.overdue = False
            node = leaf.node
            assert node is not None
            code = max(alertcode, STALE_ALERTCODE) if silent else alertcode
            if code != node.code:
                for ancestor in set_code(node, code):
                    dirty[ancestor.key] = ancestor
            dirty[leaf.path] = node

    def _claim(self, agent: _Agent, rel: str) -> _Leaf | None:
        """Find or create the leaf for ``rel`` under the agent's mount, or refuse it."""
        if not agent.mount:
            self.stats.points_rejected += 1
            return None
        path = naming.join(agent.mount, rel)
        node = self.tree.get(path)
        if node is not None:
            data = node.data
            if not isinstance(data, _Leaf):
                self._refuse(agent, path, "it is a parent")
                return None
            if data.agent is not agent:
                self._refuse(agent, path, f"it belongs to agent {data.agent.name}")
                return None
            agent.by_rel[rel] = data
            return data
        try:
            naming.check_path(rel, "point path")
            naming.check_path(path, "point path")
        except naming.InvalidNameError as error:
            self.stats.points_rejected += 1
            log.debug("agent %s: %s", agent.name, error)
            return None
        if len(self.tree) >= self.settings.max_nodes or len(agent.leaves) >= self.settings.max_points_per_agent:
            self.stats.points_rejected += 1
            return None
        parent_path, _, _ = path.rpartition("/")
        try:
            parent = self._ensure_parents(parent_path, include_self=True) if parent_path else None
        except ValueError as error:
            self._refuse(agent, path, str(error))
            return None
        leaf = _Leaf(path, agent)
        leaf.node = self.tree.add(path, parent.key if parent else None, is_leaf=True, data=leaf)
        agent.leaves[path] = leaf
        agent.by_rel[rel] = leaf
        return leaf

    def _refuse(self, agent: _Agent, path: str, why: str) -> None:
        agent.conflicts += 1
        self.stats.conflicts += 1
        log.debug("agent %s may not publish %s: %s", agent.name, path, why)
        self._notice(agent.name, f"point {path} refused (a conflict): {why}")

    def _notice(self, agent: str, reason: str) -> None:
        if len(self._notices) < 1000:  # the server sends them once per turn, rate-limited
            self._notices.append((agent, reason))

    def take_notices(self) -> list[tuple[str, str]]:
        """Reasons for refused agent messages since the last call (the server tells the agents)."""
        notices, self._notices = self._notices, []
        return notices

    def _ensure_parents(self, path: str, include_self: bool) -> TreeNode:
        """Create the parents along ``path`` (it too when ``include_self``) and
        return the deepest; ``ValueError`` if one of them is a leaf."""
        if include_self:
            # Usually there already: one lookup (it was checked when it was made).
            existing = self.tree.get(path)
            if existing is not None and not existing.is_leaf:
                return existing
        segments = naming.split(path)
        naming.check_path(path, "parent path")
        node: TreeNode | None = None
        stop = len(segments) if include_self else len(segments) - 1
        for depth in range(1, stop + 1):
            sub = "/".join(segments[:depth])
            existing = self.tree.get(sub)
            if existing is None:
                existing = self.tree.add(sub, node.key if node else None, is_leaf=False, data=_Parent())
                self._dirty[sub] = existing
            elif existing.is_leaf:
                raise ValueError(f"{sub} is a point of agent {existing.data.agent.name}, not a parent")
            node = existing
        assert node is not None
        return node

    def _restyle(self, leaf: _Leaf) -> None:
        """Recompute a leaf's effective code after any change and mark it dirty."""
        node = leaf.node
        assert node is not None
        code = leaf.alertcode
        if leaf.overdue or leaf.agent.silent:
            code = max(code, STALE_ALERTCODE)
        for ancestor in self.tree.set_code(node, code):
            self._dirty[ancestor.key] = ancestor
        self._dirty[leaf.path] = node

    def _set_silent(self, agent: _Agent, now: float) -> None:
        if agent.silent:
            return
        agent.silent = True
        agent.silent_since = now
        log.info("agent %s is silent", agent.name)
        for leaf in agent.leaves.values():
            self._restyle(leaf)

    # ------------------------------------------------------------------
    # Time
    # ------------------------------------------------------------------

    def tick(self, now: float, wall: float, heard_all_until: float | None = None) -> None:
        """Advance liveness: silent agents, overdue points, removals, health points.

        ``heard_all_until``: when the server last had read every message the
        agents had sent (``now`` if omitted). Silence and overdue points are
        judged as of then, not ``now``: what arrived since may still wait in
        the hub's own queue.
        """
        settings = self.settings
        heard = now if heard_all_until is None else min(now, heard_all_until)
        self._backlog_s = now - heard
        for agent in list(self.agents.values()):
            if not agent.silent and heard - agent.last_heard > settings.agent_liveness * agent.heartbeat_s:
                self._set_silent(agent, now)
            if agent.silent and heard - agent.last_heard > settings.agent_retention_s:
                log.info("forgetting agent %s, silent for %.0f s", agent.name, heard - agent.last_heard)
                self._forget(agent)
            elif now >= agent.removal_due:
                agent.removal_due = _INF
                self._remove_unlisted(agent, agent.removal_gen)

        heap, groups = self._deadlines, self._due
        get = self.tree.get
        # Every point comes round here once per stale period (25,000 a second
        # with 100,000 points at dt = 1 s), nearly always refreshed since, and
        # then re-queued with a list append. A group's paths are taken in
        # order, so points go overdue in (deadline, path) order as before.
        while heap and heap[0] <= heard:
            due = heapq.heappop(heap)
            for path in sorted(groups.pop(due)):
                node = get(path)
                leaf = node.data if node is not None else None
                if not isinstance(leaf, _Leaf) or due != leaf.queued:
                    continue  # the leaf is gone, or this entry was superseded by an earlier one
                if leaf.deadline > heard:
                    # Refreshed since: look again later (never, if it became one-shot).
                    leaf.queued = leaf.deadline
                    if leaf.deadline < _INF:
                        self._queue(leaf.deadline, path)
                    continue
                leaf.queued = _INF
                if not leaf.overdue:
                    leaf.overdue = True
                    self._restyle(leaf)

        if now - self._last_health >= settings.heartbeat_interval_s:
            self._last_health = now
            self._update_health(now, wall)

    def _queue(self, deadline: float, path: str) -> None:
        """Queue the point at ``path`` to be looked at when ``deadline`` comes."""
        group = self._due.get(deadline)
        if group is None:
            self._due[deadline] = [path]
            heapq.heappush(self._deadlines, deadline)
        else:
            group.append(path)

    def _remove_unlisted(self, agent: _Agent, gen: int) -> None:
        stale = [leaf.path for leaf in agent.leaves.values() if leaf.gen < gen]
        for path in stale:
            self._remove_leaf(agent, path)
        self._undeclare(agent, [path for path, declared_gen in agent.parents.items() if declared_gen < gen])
        if stale:
            log.info("agent %s no longer reports %d point(s); removed", agent.name, len(stale))

    def _undeclare(self, agent: _Agent, paths: list[str]) -> None:
        for path in paths:
            del agent.parents[path]
            node = self.tree.get(path)
            if node is not None and isinstance(node.data, _Parent):
                node.data.declared.discard(agent.name)
                self._prune(node)

    def _forget(self, agent: _Agent) -> None:
        for path in list(agent.leaves):
            self._remove_leaf(agent, path)
        self._undeclare(agent, list(agent.parents))
        del self.agents[agent.name]

    def _remove_leaf(self, agent: _Agent, path: str) -> None:
        leaf = agent.leaves.pop(path)
        mount_prefix = agent.mount + "/"
        if path.startswith(mount_prefix):
            rel = path[len(mount_prefix) :]
            if agent.by_rel.get(rel) is leaf:
                del agent.by_rel[rel]
        node = leaf.node
        assert node is not None
        parent = node.parent
        self._drop_node(path)
        if parent is not None:
            self._prune(parent)

    def _drop_node(self, path: str) -> None:
        for ancestor in self.tree.remove(path):
            self._dirty[ancestor.key] = ancestor
        self._dirty.pop(path, None)
        self._removed.append(path)

    def _prune(self, node: TreeNode) -> None:
        """Remove ``node`` and then its ancestors while they are empty, undeclared parents."""
        current: TreeNode | None = node
        while current is not None and not current.children:
            data = current.data
            if not isinstance(data, _Parent) or data.declared or current.key == HUB_ROOT:
                return
            parent = current.parent
            self._drop_node(current.key)
            current = parent

    # ------------------------------------------------------------------
    # The hub's own points
    # ------------------------------------------------------------------

    def _update_health(self, now: float, wall: float) -> None:
        live = sum(1 for agent in self.agents.values() if not agent.silent)
        stats = self.stats
        values: dict[str, Any] = {
            "messages_in": stats.messages_in,
            "messages_out": stats.messages_out,
            "messages_rejected": stats.messages_rejected,
            "points_rejected": stats.points_rejected,
            "conflicts": stats.conflicts,
            "seq_gaps": stats.seq_gaps,
            "resyncs_requested": stats.resyncs_requested,
            "agents_live": live,
            "agents_silent": len(self.agents) - live,
            "subscribers": stats.subscribers,
            "nodes": len(self.tree),
            "uptime_s": round(now - self._started, 1),
        }
        entries = [proto.PointEntry(key, value, 0, "", wall, None) for key, value in values.items()]
        entries += [
            proto.PointEntry(key, value, code, alertstr_for(code), wall, None)
            for key, (value, code) in self.extra_health.items()
        ]
        # Behind by more than a heartbeat: liveness judgments are on hold (see tick).
        backlog_s = round(self._backlog_s, 1)
        backlog_code = OrangeAlert.alertcode if backlog_s > self.settings.heartbeat_interval_s else 0
        backlog = proto.PointEntry("agents_backlog_s", backlog_s, backlog_code, alertstr_for(backlog_code), wall, None)
        entries.append(backlog)
        for agent in self.agents.values():
            state, code = ("silent", STALE_ALERTCODE) if agent.silent else ("live", GreenAlert.alertcode)
            entries.append(proto.PointEntry(f"agents/{agent.name}", state, code, alertstr_for(code), wall, None))
        own = self._own
        own.last_heard = now
        listed = {entry.path for entry in entries}
        for rel in [rel for rel in own.by_rel if rel not in listed]:
            self._remove_leaf(own, own.by_rel[rel].path)
        changed = [
            entry
            for entry in entries
            if (leaf := own.by_rel.get(entry.path)) is None
            or leaf.value != entry.value
            or leaf.alertcode != entry.alertcode
        ]
        self._apply_points(own, changed, now, wall)

    # ------------------------------------------------------------------
    # Publishing
    # ------------------------------------------------------------------

    def drain(self, wall: float) -> list[tuple[bytes, bytes]]:
        """Give every node changed since the last call its next ``seq`` and
        return the ``[topic, payload]`` frames to publish, in order.

        Only changes some subscription follows are packed and returned: XPUB
        would drop the rest anyway, and packing them is most of the hub's work
        when subscribers follow parts of a large tree. A change nobody follows
        keeps its seq; a snapshot packs it on demand, byte for byte as it
        would have been published.
        """
        if not self._dirty and not self._removed:
            return []
        frames: list[tuple[bytes, bytes]] = []
        append = frames.append
        encoder = self._encoder
        if encoder.epoch != self.epoch:
            encoder = self._encoder = proto.NodeEncoder(self.epoch)
        # str.startswith takes a tuple: one C call tells whether anyone follows a path.
        subscriptions = self.subscriptions
        followed = subscriptions.followed()
        seq = self.seq
        paths = self._removed
        for path in paths:
            seq += 1
            if followed is None or path.startswith(followed):
                append((path.encode(), encoder.removed(seq)))
        self._removed = []
        published_dirty: list[str] = []
        for path, node in self._dirty.items():
            seq += 1
            data = node.data
            data.seq = seq
            if followed is None or path.startswith(followed):
                data.payload = self._pack(node, encoder)
                append((path.encode(), data.payload))
                published_dirty.append(path)
            else:
                data.payload = b""
        if subscriptions.counting():
            published_removed = paths if followed is None else [path for path in paths if path.startswith(followed)]
            subscriptions.count_published(published_removed, published_dirty, len(frames))
        self._dirty = {}
        self.seq = seq
        self.stats.messages_out += len(frames)
        return frames

    def _pack(self, node: TreeNode, encoder: proto.NodeEncoder) -> bytes:
        """The NODE payload of ``node``'s current state, with the seq of its last change."""
        data = node.data
        code = node.code
        if type(data) is _Leaf:
            agent = data.agent
            return encoder.point(
                data.seq,
                code,
                data.alertstr if code == data.alertcode else alertstr_for(code, self._alertstrs),
                data.overdue or agent.silent,
                data.value,
                agent.name,
                data.polled_at_s,
                data.received_at_s,
                data.dt_s,
            )
        assert isinstance(data, _Parent)
        return encoder.parent(data.seq, code, alertstr_for(code, self._alertstrs), code == STALE_ALERTCODE)

    def published(self, prefix: str) -> int:
        """How many NODEs were published under ``prefix`` (0 if nobody follows it)."""
        return self.subscriptions.published(prefix)

    def heartbeat(
        self,
        wall: float,
        topic: bytes = proto.HUB_HEARTBEAT_TOPIC,
        readable: Callable[[str], bool] | None = None,
    ) -> tuple[bytes, bytes]:
        """A heartbeat on ``topic`` whose ``published`` holds the counters ``readable`` allows (all if None)."""
        subscriptions = self.subscriptions
        beat = proto.HubHeartbeat(
            self.epoch,
            self.seq,
            self.settings.heartbeat_interval_s,
            wall,
            subscriptions.published_for(readable),
            complete=subscriptions.complete,
        )
        return proto.encode_hub_heartbeat(beat, topic)

    def snapshot(self, prefix: str) -> tuple[list[bytes], int, int]:
        """Every node under ``prefix`` as packed ``[path, payload]`` items, with
        the ``seq`` and the prefix's publish counter they are consistent with.

        Call after :meth:`drain`, so that every cached payload is current.
        """
        items = []
        encoder = self._encoder
        for path, node in self._nodes_under(prefix):
            data = node.data
            if not data.seq:
                continue  # created, not drained yet: it comes with its first update
            if not data.payload:
                data.payload = self._pack(node, encoder)
            items.append(_pack_item(path, data.payload))
        return items, self.seq, self.published(prefix)

    def _nodes_under(self, prefix: str) -> Iterable[tuple[str, TreeNode]]:
        return ((path, node) for path, node in self.tree.items() if path.startswith(prefix))


def _valid_agent_name(name: str) -> bool:
    try:
        naming.check_name(name, "agent name")
    except naming.InvalidNameError:
        return False
    return not name.startswith(naming.RESERVED_ROOT_PREFIX)


def _pack_item(path: str, payload: bytes) -> bytes:
    """A packed 2-array ``[path, payload-map]`` without unpacking the payload."""
    encoded = path.encode()
    size = len(encoded)
    if size < 32:
        head = bytes((0xA0 | size,))
    elif size < 256:
        head = b"\xd9" + bytes((size,))
    else:
        head = b"\xda" + size.to_bytes(2, "big")
    return b"\x92" + head + encoded + payload
