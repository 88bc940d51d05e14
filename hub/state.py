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
  point at once. A point whose deadline passed during the silence stays STALE
  *as part of the silence* (``silence_hold``: the alarm book sees no overdue
  point, so no alarm per point, issue 13 §1) until it is refreshed, or until it
  misses a deadline counted from the agent's return: then it is overdue.
* A complete STATE (all its parts) says which points and parents an agent
  has. Anything of that agent it did not list, and that is not reported again
  within ``removal_grace_s``, is removed -- this is how a restarted agent (new
  epoch) loses the points its new incarnation no longer has.
  Until then such a point is STALE too: the agent's new incarnation does not
  vouch for it, so it never reads live again with its old value. It is not
  overdue, though (the alarm book is told ``unlisted``: no alarm of its own,
  none escalated; its removal closes or keeps an alarm it had, by the book's
  removal rule).
* ``seq`` gaps are counted per agent; the hub then asks the agent for a STATE
  (protocol "resync") which heals the gap.
* An agent silent for ``agent_retention_s`` (default an hour) is forgotten
  with its points; until then they stay in the tree, STALE, so that a dead
  host keeps showing. ``gsmon forget NAME`` (:meth:`HubState.forget`, an
  administrator's command) removes a silent agent at once.
* Every change (value, alert, stale, removal) is published with the hub's
  epoch and the next global ``seq``; the hub's own health is a subtree
  ``_hub/`` of ordinary points.

Labels. A point carries the label its agent sent with its code, except that a
built-in code (:mod:`gsmon.common.alerts`) always has its built-in label; a
parent's label is that of a child it rolls up from (found lazily when the
parent is packed, and remembered). There is no hub-wide table of labels, so
no agent can relabel a level outside its own points.

What the hub has heard. Silence and overdue points are judged only up to the
moment the hub knows it had read everything an agent had sent; a hub that
falls behind its own input queue cannot tell silence from its own lag, and
must not turn it into false STALE alerts. It knows this two ways:

* The whole queue: a read that found the agents socket empty (the server
  calls :meth:`HubState.read_done`) heard every agent until then. How far
  behind that is, is the health point ``_hub/agents_backlog_s``.
* Per agent, while one agent floods the queue: libzmq's SUB socket reads its
  pipes (one per connection) fair-queued, round-robin, one message each (its
  ``fq`` keeps a cursor over the pipes that have data; a pipe found empty
  drops out until data arrives). So once the same incarnation (agent name and
  epoch: one connection) has been read twice, the cursor went round every
  pipe in between, and every pipe not read in between was found empty: each
  agent *not* read since the first of those two reads had been heard
  entirely as of that read. :meth:`HubState.apply` numbers every read; an
  agent whose last read comes before the first read of the latest such pair
  is heard until that read's time. One flooding agent therefore delays the
  judgment of its own points only (they carry ``liveness_unknown``), and a
  killed agent next to it turns STALE on time. (Without keys a peer can send
  under another's name and epoch and so fake such a pair; with keys a name is
  its key's.)

After a pause of the hub's own loop (SIGSTOP, a VM freeze; the server
detects it and calls :meth:`HubState.pause` with a clock that leaves the pause
out) nothing is concluded for a grace of at least one heartbeat: ZeroMQ's
I/O thread, stopped too, first has to move the backlog from the kernel into
its queues, and "nothing readable yet" must not read as "heard everything".
While the hub cannot vouch for an agent -- behind it by more than a heartbeat,
or in that grace -- the agent's points say so (``liveness_unknown`` in their
NODE payload, rolled up to every parent above them).

Two processes with one agent name (two incarnations alternating: a message
of an earlier epoch *sent* after the current one started) are one conflict:
counted once, logged once at WARNING with both peers' addresses, shown on
``_hub/agents/<name>`` ORANGE. The hub then applies only the incarnation it
follows until one of them stops. Agents whose mounts nest (one strictly
inside another's) are warned about once, when both are first seen.

(1.3) A site that is a hub pair (protocol "A site that is a pair"): two site
hubs relay one site under one name, each declaring the pair (``pair`` in its
STATEs and HEARTBEATs). That is no conflict: the hub follows one incarnation
and keeps the other as its *standby* (heard, not applied). When the followed
one is silent, or says BYE, while the standby is heard, the hub follows the
standby at once -- the site is never silent, nothing turns STALE -- and asks
it for a STATE. Only when both are silent is the site silent.

Alert transitions of points (path, old -> new, value, agent) are logged by
the ``gsmon.hub.alerts`` logger at ``alert_log_level`` when the old or new
code is at least ``alert_log_threshold`` (at most a few hundred lines a
second, then a count of what was left out); points fresh again after STALE
are one line per agent (:mod:`gsmon.hub.alert_log`).
"""

from __future__ import annotations

import bisect
import heapq
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gsmon.common import names as naming
from gsmon.common import protocol as proto
from gsmon.common.alerts import (
    STALE_ALERTCODE,
    STALE_ALERTSTR,
    CriticalAlert,
    GreenAlert,
    NoAlert,
    OrangeAlert,
    RedAlert,
    alertstr_for,
)
from gsmon.common.tree import RollupTree, TreeNode
from gsmon.hub.alarms import AGENT_SILENT, OVERDUE, UNLISTED, AlarmBook
from gsmon.hub.alert_log import AlertLog
from gsmon.hub.relay import orphan_attention, relayed_attention
from gsmon.hub.subscriptions import SubscriptionLedger

__all__ = ["HUB_AGENT", "HUB_ROOT", "HubSettings", "HubState", "HubStats", "nested_mounts"]

log = logging.getLogger(__name__)

# Tuples rather than inline `A | B` unions, which are rebuilt at every call (per message here).
# TRANSITIONS (1.3) count for seq and liveness here; the server hands them to hub/replay.py.
_AGENT_MESSAGES: Final = (proto.State, proto.Delta, proto.Heartbeat, proto.Bye, proto.Transitions, proto.UpstreamResult)
_MOUNTING_MESSAGES: Final = (proto.State, proto.Heartbeat)

HUB_ROOT: Final = "_hub"
HUB_AGENT: Final = "_hub"  # the owner name of the hub's own points
_INF: Final = math.inf
# The built-in ladder's labels: a point or parent with one of these codes shows this label, whatever an agent sent.
_BUILTIN_LABELS: Final[dict[int, str]] = {
    **{cls.alertcode: cls.alertstr or "" for cls in (NoAlert, GreenAlert, OrangeAlert, RedAlert, CriticalAlert)},
    STALE_ALERTCODE: STALE_ALERTSTR,
}
# An earlier incarnation's message sent this much after the current one started: two live processes.
_CONFLICT_MARGIN_NS: Final = 1_000_000_000
_PEER_WAIT_S: Final = 2.0  # how long a conflict warning waits for both peers' addresses
_MAX_EPOCHS_REMEMBERED: Final = 4
_MAX_NESTING_WARNINGS: Final = 10_000


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
    pause_grace_s: float = 1.0  # after a pause of the loop, no judgment for this long (at least a heartbeat)
    alert_log_level: int | None = logging.WARNING  # point alert transitions are logged at this level (None: never)
    alert_log_threshold: int = RedAlert.alertcode  # ... when the old or the new code is at least this


@dataclass(slots=True)
class HubStats:
    """Counters the hub reports under ``_hub/`` (the server adds its own)."""

    messages_in: int = 0
    messages_out: int = 0
    messages_rejected: int = 0
    points_rejected: int = 0
    conflicts: int = 0
    standby_switches: int = 0  # (1.3) a site pair's standby site hub followed instead of a silent or stopped one
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
        "debounce",
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
        "silence_hold",
        "stale_reason",
        "unknown",
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
        self.overdue = False  # not refreshed in time, or not listed by the agent's latest complete STATE
        # Overdue since its agent's silence, and the agent is back: its STALE is still the silence (the
        # mount's one alarm) until the point is refreshed or misses the deadline counted from the return.
        self.silence_hold = False
        self.unknown = False  # liveness unknown, as counted in the parents (follows agent.unknown)
        self.gen = 0  # the agent's state generation when last reported
        self.seq = 0  # hub seq of the last change
        # As the alarm book was last told: None, "overdue", "agent silent", "unlisted".
        self.stale_reason: str | None = None
        # The agent's debounce map of the last report (protocol "Point entry", 7th item), or None: a point
        # without debounce. Relayed in NODEs as raw_alert, pending, flapping.
        self.debounce: dict[str, Any] | None = None
        # The last change packed as a NODE payload, or b"" when nobody followed
        # the path then: a snapshot packs it on demand (same bytes, same seq).
        self.payload = b""


class _Parent:
    """A parent of the global tree (``TreeNode.data`` of a parent)."""

    __slots__ = ("declared", "label_from", "payload", "seq", "since", "since_code", "unknown")

    def __init__(self) -> None:
        # Agents whose STATE listed this parent explicitly (it stays while
        # childless as long as one of them still lists it).
        self.declared: set[str] = set()
        self.seq = 0
        self.payload = b""  # as _Leaf.payload
        self.unknown = 0  # children whose liveness is unknown (the parent's is, while any is)
        self.label_from: TreeNode | None = None  # the child whose label a user-defined code was last taken from
        self.since: float | None = None  # wall time its current worst level began (NODE ``since``)
        self.since_code: int | None = None


@dataclass(eq=False, slots=True)
class _Standby:
    """(1.3) The other site hub of a site that is a pair (protocol: A site that is a pair): heard, not applied."""

    epoch: int
    pair: proto.SitePair
    heartbeat_s: float
    last_heard: float
    last_seq: int


def _one_pair(a: proto.SitePair, b: proto.SitePair) -> bool:
    """Whether two site hubs declare one pair: two hub ids, each the other's peer (or its peer not learnt yet)."""
    return a.hub != b.hub and a.peer in (None, b.hub) and b.peer in (None, a.hub)


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
    silent_since: float | None = None  # None: never silent since it was first heard
    point_count: int = 0
    leaves: dict[str, _Leaf] = field(default_factory=dict)  # by full path
    by_rel: dict[str, _Leaf] = field(default_factory=dict)  # by path inside the agent (current mount)
    parents: dict[str, int] = field(default_factory=dict)  # declared parent path -> state generation
    gen: int = 0  # incremented per complete STATE
    state_parts_seen: int = 0
    state_unpolled: set[str] = field(default_factory=set)  # full paths a STATE's parts named unpolled so far
    removal_due: float = _INF
    removal_gen: int = 0
    resync_at: float = -_INF
    gaps: int = 0
    conflicts: int = 0
    # What the hub has heard of it (module docstring): the number of its last read,
    # the time until which it is proven heard, and the heard time judged at the last tick.
    last_read_n: int = 0
    last_read_epoch: int = -1  # the epoch of that read: the same one read again is a pair (one connection)
    heard_until: float = -_INF
    judged: float = -_INF
    unknown: bool = False  # liveness unknown: the hub is behind it, or just resumed from a pause
    held: list[str] = field(default_factory=list)  # points past their deadline while it was behind
    held_min: float = _INF
    # Incarnations: first sent_ns seen per epoch; a second live process (conflict).
    epochs_first_ns: dict[int, int] = field(default_factory=dict)
    past_epochs: list[int] = field(default_factory=list)  # incarnations it was switched away from (recent ones)
    conflict_epoch: int = -1  # the other live incarnation, while two processes claim this name
    conflict_seen: float = 0.0
    conflict_logged: bool = True
    peers: dict[int, str] = field(default_factory=dict)  # epoch -> peer address, when the server said
    # (1.3) A site hub relaying its tree (its entries carry the relay keys, gsmon.hub.relay): its points
    # open no alarms here (alarm state stays with the site), their staleness and owner are as relayed.
    relay: bool = False
    silent_wall: float | None = None  # (1.3) wall time its silence began: a silent site's points' NODE since
    # (1.3) A site's orphaned alarms as it last sent them (protocol: Orphaned alarms), by the site's id, and the
    # full paths they are at (a relayed point removed there may let one count: _remove_leaf).
    orphans: dict[int, proto.RelayedOrphan] = field(default_factory=dict)
    orphan_paths: frozenset[str] = frozenset()
    # (1.3) A site that is a hub pair: what the followed incarnation declares (None: no pair), and the other
    # site hub's incarnation, kept as its standby (never a conflict).
    pair: proto.SitePair | None = None
    standby: _Standby | None = None


class HubState:
    """The global tree and everything the hub knows about agents."""

    def __init__(
        self,
        settings: HubSettings,
        epoch: int,
        now: float,
        subscriptions: SubscriptionLedger | None = None,
        alarms: AlarmBook | None = None,
    ) -> None:
        self.settings = settings
        # The operator layer (issue 13): told every effective-level change, staleness, silence and
        # removal; its per-node view (attention, alarm, shelf) goes into the NODE payloads.
        self.alarms = alarms
        self._wall = 0.0  # the latest wall time given (for the alarm book's calls from deep inside)
        # Agents whose first complete STATE since the hub started has been checked against the
        # points the restored alarm book knows (those it no longer lists are removed there too).
        self._book_checked: set[str] = set()
        self.epoch = epoch
        self.seq = 0
        self.stats = HubStats()
        self.tree = RollupTree()
        self.agents: dict[str, _Agent] = {}
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
        self._own = _Agent(HUB_AGENT, epoch=epoch, mount=HUB_ROOT, silent=False, judged=_INF)
        self._encoder = proto.NodeEncoder(epoch)
        # Values the server adds to the hub's own points (name -> (value, alert code)): set_server_health.
        self._server_health: dict[str, tuple[Any, int]] = {}
        # The hub's own points (path -> wall time their current level began: NODE ``since``). They
        # are not in the alarm book, which keeps every other point's since.
        self._own_since: dict[str, float] = {}
        self._last_health = -_INF
        self._backlog_s = 0.0  # how far behind its agents' messages the last tick was
        self._started = now
        self._now = now  # the latest time given (for the alert log's rate limit)
        # What has been heard (module docstring). Until the server reports reads
        # (read_done), a core hears everything at once, as the unit tests drive it.
        self._reads_tracked = False
        self._heard_all = now
        self._read_n = 0
        self._proven_n = 0  # the first read of the latest pair of reads from one incarnation
        # A pair proves something only if its first read is above this: the proven one, and no
        # read before the end of a pause's grace (set far up during it).
        self._pair_floor = 0
        self._refused_reads: dict[int, int] = {}  # reads the server refused, by their key: latest read number
        # (last read number, time) of each turn's reads, as read_done reports them: a read's time.
        self._read_turns: list[tuple[int, float]] = []
        self._grace_until = -_INF  # after a pause: nothing is judged before this
        self._paused_at = -_INF
        # The longest the loop may go unobserved without misjudging a live agent or point (hub/clock.py):
        # the shortest slack of a liveness window, (agent_liveness - 1) x heartbeat, or the points' stale
        # slack. Kept by tick; the server hands it to its ObservedClock.
        self.blind_tolerance_s = settings.stale_slack_s
        self._peers_wanted: dict[str, float] = {}  # agents whose conflict warning waits for addresses
        self._nesting_warned: set[tuple[str, str]] = set()
        # Mounts by path, and the agents mounted strictly below each path: nesting is found by walking a
        # mount's ancestors, never every agent (a fleet coming up was quadratic in _warn_nesting).
        self._agents_at_mount: dict[str, set[str]] = {}
        self._agents_below: dict[str, set[str]] = {}
        # Transitions are logged from this code up (inf: never).
        self._alert_threshold = _INF if settings.alert_log_level is None else settings.alert_log_threshold
        self._alert_log = (
            None
            if settings.alert_log_level is None
            else AlertLog(settings.alert_log_level, settings.alert_log_threshold)
        )
        # (1.3) When set, drain adds the path of every changed or removed node (the upstream link reads it).
        self.changes_out: dict[str, None] | None = None
        # (1.3) This hub's id for a site's alarm (site agent name, the site's id): the router's proxies.
        self.relay_alarm_id: Callable[[str, int], int] | None = None
        # (1.3) Moves whenever a site's orphaned alarms, or whether they count, change (a hub that is itself a
        # site relays them on: hub/upstream.py).
        self.orphans_version = 0
        # (1.3) UPSTREAM_RESULTs of site hubs, (sender, message), for the server's router.
        self._upstream_results: list[tuple[str, proto.UpstreamResult]] = []

    # ------------------------------------------------------------------
    # Agent messages
    # ------------------------------------------------------------------

    def apply(self, msg: proto.Message, now: float, wall: float, peer: str | None = None) -> None:
        """Apply one decoded agent message (STATE, DELTA, HEARTBEAT or BYE).

        ``peer``: the sender's address, when the server has it (with keys, or
        while :attr:`peers_wanted`); only used to name two processes that
        claim one agent name.
        """
        self.stats.messages_in += 1
        self._wall = wall
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
            if isinstance(msg, proto.Bye | proto.Transitions):
                return  # goodbye (or a replay) from an agent we never knew: nothing to record
            if not naming.is_agent_name(name) or len(self.agents) >= self.settings.max_agents:
                self.stats.messages_rejected += 1
                why = "the hub has max_agents agents" if naming.is_agent_name(name) else "invalid or reserved name"
                self._notice(name, f"agent name {name!r} refused: {why}")
                return
            agent = self.agents[name] = _Agent(name)
        # Number the read, for the fair-queue argument (module docstring): the same
        # incarnation read twice in a row of its reads is a pair.
        read_n = self._read_n = self._read_n + 1
        if agent.last_read_epoch == msg.epoch and agent.last_read_n > self._pair_floor:
            self._proven_n = self._pair_floor = agent.last_read_n
        agent.last_read_n = read_n
        agent.last_read_epoch = msg.epoch
        if peer is not None:
            agent.peers[msg.epoch] = peer
            if not agent.conflict_logged:
                self._log_conflict(agent, now)

        if msg.epoch != agent.epoch and agent.pair is not None and self._standby_heard(agent, msg, now):
            return  # (1.3) the standby site hub of a pair: heard, not applied
        if msg.epoch != agent.epoch:
            if isinstance(msg, proto.Bye):
                # Goodbye from an incarnation we never knew (nothing to revive), or
                # from the other process of a conflict (which ends it).
                if msg.epoch == agent.conflict_epoch:
                    self._end_conflict(agent, f"the other process (epoch {msg.epoch:x}) stopped")
                return
            if self._other_process(agent, msg, now):
                self.stats.messages_rejected += 1
                return
            agent.epochs_first_ns.setdefault(msg.epoch, msg.sent_ns)
            if len(agent.epochs_first_ns) > _MAX_EPOCHS_REMEMBERED:
                oldest = next(epoch for epoch in agent.epochs_first_ns if epoch != agent.epoch)
                del agent.epochs_first_ns[oldest]
                agent.peers.pop(oldest, None)
            if not isinstance(msg, proto.State):
                # We missed this incarnation's STATE (hub restart, dropped
                # message): ask for it rather than guess its mount.
                self._hear(agent, now)
                self._request_resync(agent, now)
                return
            if agent.epoch != -1:
                log.info("agent %s restarted (epoch %x -> %x)", name, agent.epoch, msg.epoch)
                agent.past_epochs = [*agent.past_epochs[-(_MAX_EPOCHS_REMEMBERED - 1) :], agent.epoch]
            agent.epoch = msg.epoch
            agent.last_seq = msg.seq - 1
            agent.state_parts_seen = 0
        if msg.seq <= agent.last_seq:
            # Replayed or reordered: never apply old news over new.
            self.stats.messages_rejected += 1
            return
        # The first part of a STATE refills the agent by itself: asking for another after a gap or a silence
        # would only make the agent send it twice (and a request reaches every connected agent: a restarted
        # hub asked each of its agents once, N x N frames).
        refill = isinstance(msg, proto.State) and msg.part == 0
        if msg.seq != agent.last_seq + 1:
            missing = msg.seq - agent.last_seq - 1
            agent.gaps += missing
            self.stats.seq_gaps += missing
            if not refill:
                self._request_resync(agent, now)
        agent.last_seq = msg.seq
        self._hear(agent, now, refill)
        if isinstance(msg, _MOUNTING_MESSAGES) and msg.pair != agent.pair:
            agent.pair = msg.pair  # (1.3) it declares a site pair (or no longer does)
            standby = agent.standby
            if standby is not None and (msg.pair is None or not _one_pair(msg.pair, standby.pair)):
                agent.standby = None

        if isinstance(msg, proto.State):
            self._apply_state(agent, msg, now, wall)
            if msg.part == msg.parts - 1 and (msg.orphans is not None or agent.orphans):
                self._set_orphans(agent, msg.orphans or [], True)  # (1.3) a STATE's last part: the whole set
        elif isinstance(msg, proto.Delta):
            self._apply_points(agent, msg.points, now, wall, delta=True)
            if msg.orphans is not None:
                self._set_orphans(agent, msg.orphans, False)  # (1.3) the set changed
        elif isinstance(msg, proto.Heartbeat):
            self._set_mount(agent, msg.mount)
            agent.heartbeat_s = msg.heartbeat_s
            agent.point_count = msg.point_count
        elif isinstance(msg, proto.UpstreamResult):
            if len(self._upstream_results) < 10_000:
                self._upstream_results.append((name, msg))
        elif isinstance(msg, proto.Bye):
            if self._standby_live(agent, now):
                self._follow_standby(agent, now, f"site hub {agent.pair.hub if agent.pair else '?'} stopped")
                agent.standby = None  # it said goodbye: no standby until it (or a new one) declares the pair
            else:
                self._set_silent(agent, now, bye=True)

    # ------------------------------------------------------------------
    # (1.3) A site that is a hub pair: one site hub followed, the other its standby
    # ------------------------------------------------------------------

    def _standby_heard(self, agent: _Agent, msg: proto.Message, now: float) -> bool:
        """Whether ``msg`` (not of the followed epoch; the followed declares a pair) is the standby's: heard,
        not applied. False: anything else (a restart, a conflict, as for any agent), or the followed site hub
        is silent and the standby speaks: then it is followed from this message on."""
        followed = agent.pair
        assert followed is not None
        mounting = msg if isinstance(msg, proto.State | proto.Heartbeat) else None
        declared = None if mounting is None else mounting.pair
        standby = agent.standby
        if standby is None or msg.epoch != standby.epoch:
            if mounting is None or declared is None or not _one_pair(followed, declared):
                return False  # not the pair's other site hub (the followed one restarted, a conflict...)
            if mounting.mount != agent.mount:
                return False
            if standby is None or standby.pair.hub != declared.hub:
                log.info(
                    "site %s is a hub pair: following site hub %s, site hub %s is its standby",
                    agent.name,
                    followed.hub,
                    declared.hub,
                )
            standby = agent.standby = _Standby(msg.epoch, declared, mounting.heartbeat_s, now, msg.seq)
        else:
            if mounting is not None:
                if declared is None or not _one_pair(followed, declared) or mounting.mount != agent.mount:
                    agent.standby = None
                    return False  # it no longer declares this pair: as any other incarnation
                standby.pair, standby.heartbeat_s = declared, mounting.heartbeat_s
            if isinstance(msg, proto.Bye):
                agent.standby = None
                log.info("site %s: its standby site hub %s stopped", agent.name, standby.pair.hub)
                return True
            if msg.seq <= standby.last_seq:
                return True  # replayed or reordered
            standby.last_heard, standby.last_seq = now, msg.seq
        if not agent.silent:
            return True
        # Both were silent (the site is STALE) and the standby speaks first: it is followed, as a return.
        refill = isinstance(msg, proto.State) and msg.part == 0  # (then no other STATE is asked for)
        self._follow_standby(agent, now, "it spoke while the followed one is silent", ask_state=not refill)
        agent.last_seq = msg.seq - 1  # this message is applied (a STATE is asked for as on any return)
        return False

    def is_standby(self, sender: str, epoch: int) -> bool:
        """(1.3) Whether ``epoch`` of ``sender`` is the standby site hub of a site pair (heard, not applied)."""
        agent = self.agents.get(sender)
        return agent is not None and agent.standby is not None and agent.standby.epoch == epoch

    def _standby_live(self, agent: _Agent, judged: float) -> bool:
        standby = agent.standby
        return standby is not None and judged - standby.last_heard <= self.settings.agent_liveness * standby.heartbeat_s

    def _follow_standby(self, agent: _Agent, now: float, why: str, *, ask_state: bool = True) -> None:
        """Follow the standby site hub instead (the followed one becomes the standby): no silence, no STALE;
        its STATE is asked for at once (unless ``ask_state`` is false: one is being applied) and refills the
        site (a refill: unlisted points go as after any STATE)."""
        standby = agent.standby
        assert standby is not None
        assert agent.pair is not None
        gone = agent.pair.hub
        agent.standby = _Standby(agent.epoch, agent.pair, agent.heartbeat_s, agent.last_heard, agent.last_seq)
        agent.epoch, agent.pair, agent.heartbeat_s = standby.epoch, standby.pair, standby.heartbeat_s
        agent.last_seq = standby.last_seq
        if not agent.silent:
            agent.last_heard = standby.last_heard
        agent.state_parts_seen = 0
        agent.state_unpolled.clear()
        self.stats.standby_switches += 1
        if ask_state:
            agent.resync_at = -_INF  # asked at once, whatever was asked of the other site hub just before
            self._request_resync(agent, now)
        log.info("site %s: following site hub %s now instead of %s (%s)", agent.name, standby.pair.hub, gone, why)

    def _set_orphans(self, agent: _Agent, orphans: list[proto.RelayedOrphan], state: bool) -> None:
        """(1.3) A site's whole set of orphaned alarms (protocol: Orphaned alarms; the loop guard has
        filtered them). Only a site's: an agent judged here has its alarms in this hub's own book. A STATE's
        set is counted even when unchanged: the site may be back from a silence that stopped them counting."""
        if not agent.relay:
            return
        found: dict[int, proto.RelayedOrphan] = {}
        for orphan in orphans:
            try:
                naming.check_path(naming.join(agent.mount, orphan.path), "orphaned alarm's path")
            except naming.InvalidNameError as error:
                self.stats.points_rejected += 1  # bad input from the network: counted and dropped
                log.debug("site %s: %s", agent.name, error)
                continue
            found[orphan.id] = orphan
        if found == agent.orphans and not state:
            return
        before = agent.orphans
        agent.orphans = found
        self._count_orphans(agent, before)

    def _count_orphans(self, agent: _Agent, before: Mapping[int, proto.RelayedOrphan]) -> None:
        """(1.3) What a site's orphans count for in the book's rollup now (none while it is silent, one
        whose alarm a relayed point still carries counts there instead); ``before``: those to take away."""
        self.orphans_version += 1
        agent.orphan_paths = frozenset(naming.join(agent.mount, orphan.path) for orphan in agent.orphans.values())
        book = self.alarms
        if book is None:
            return
        for site_id, orphan in before.items():
            if site_id not in agent.orphans:
                book.set_relayed_orphan((agent.name, site_id), naming.join(agent.mount, orphan.path), None)
        for site_id, orphan in agent.orphans.items():
            path = naming.join(agent.mount, orphan.path)
            leaf = agent.leaves.get(path)
            carried = None
            if leaf is not None and leaf.debounce is not None and leaf.debounce.get("alarm") is not None:
                carried = leaf.debounce["alarm"]["id"]
            attention = None if agent.silent else orphan_attention(orphan, carried)
            book.set_relayed_orphan((agent.name, site_id), path, attention)

    def orphan_sites(self) -> list[_Agent]:
        """(1.3) The live sites with orphaned alarms (what a hub that is itself a site relays on)."""
        return [agent for agent in self.agents.values() if agent.orphans and agent.relay and not agent.silent]

    def take_upstream_results(self) -> list[tuple[str, proto.UpstreamResult]]:
        """(1.3) Site hubs' answers to routed commands since the last call: (agent name, message)."""
        results, self._upstream_results = self._upstream_results, []
        return results

    def _hear(self, agent: _Agent, now: float, refill: bool = False) -> None:
        """``agent`` was heard; ``refill``: in the first part of a STATE (no STATE to ask for after a silence)."""
        agent.last_heard = now
        if agent.silent:
            agent.silent = False
            if self.alarms is not None:
                self.alarms.agent_back(agent.name, agent.mount, now, self._wall)
            if agent.silent_since is not None:
                log.info("agent %s is back after %.1f s of silence", agent.name, now - agent.silent_since)
            if agent.epoch != -1 and agent.leaves and not refill:
                # Back from silence: a STATE refreshes every point at once.
                self._request_resync(agent, now)
            settings = self.settings
            for leaf in agent.leaves.values():
                if leaf.overdue and leaf.gen >= agent.removal_gen:
                    # Overdue during the silence: held as the silence's STALE (no alarm of its own) until
                    # the STATE asked for refreshes it, or it misses a deadline counted from now.
                    leaf.silence_hold = True
                    dt_s = leaf.dt_s
                    if dt_s is not None and 0 < dt_s < _INF:
                        leaf.deadline = now + settings.stale_factor * dt_s + settings.stale_slack_s
                        if leaf.deadline < leaf.queued:
                            leaf.queued = leaf.deadline
                            self._queue(leaf.deadline, leaf.path)
                self._restyle(leaf)

    # ------------------------------------------------------------------
    # Two processes, one agent name
    # ------------------------------------------------------------------

    def _other_process(self, agent: _Agent, msg: proto.Message, now: float) -> bool:
        """Whether ``msg`` (not of the followed epoch) is dropped: it comes from an
        incarnation the hub switched away from -- its last words, or a second live
        process claiming the agent's name (a conflict, counted once)."""
        if agent.conflict_epoch != -1:
            if msg.epoch != agent.conflict_epoch:
                return False  # a third incarnation: a restart of one of them, handled as usual
            if agent.silent:
                # The process we followed is gone: the other one takes over.
                self._end_conflict(agent, f"epoch {agent.epoch:x} went silent")
                if msg.epoch in agent.past_epochs:
                    agent.past_epochs.remove(msg.epoch)
                return False
            agent.conflict_seen = now
            return True
        if msg.epoch not in agent.past_epochs:
            return False  # a new incarnation (a restart), or one whose STATE is still to come
        # An incarnation the hub switched away from is never switched back to: A, B, A, B...
        # would be a "restart" per message.
        started_ns = agent.epochs_first_ns.get(agent.epoch)
        if started_ns is None or msg.sent_ns <= started_ns + _CONFLICT_MARGIN_NS:
            return True  # its last words, sent before the current incarnation started: dropped
        # An earlier incarnation still sends after the current one started: two live processes.
        agent.conflict_epoch = msg.epoch
        agent.conflict_seen = now
        agent.conflict_logged = False
        agent.conflicts += 1
        self.stats.conflicts += 1
        self._peers_wanted[agent.name] = now + _PEER_WAIT_S
        self._log_conflict(agent, now)
        return True

    def _log_conflict(self, agent: _Agent, now: float) -> None:
        """The one WARNING of a conflict, once both addresses are known (or after a short wait)."""
        epochs = (agent.epoch, agent.conflict_epoch)
        known = [agent.peers.get(epoch) for epoch in epochs]
        if agent.conflict_logged or (None in known and now < self._peers_wanted.get(agent.name, -_INF)):
            return
        agent.conflict_logged = True
        self._peers_wanted.pop(agent.name, None)
        log.warning(
            "agent %s: two processes claim this name: epoch %x from %s and epoch %x from %s; "
            "only epoch %x's messages are applied until one of them stops (counted in _hub/conflicts). "
            "Stop the one that should not run, or give it another agent name",
            agent.name,
            epochs[0],
            known[0] or "an unknown address",
            epochs[1],
            known[1] or "an unknown address",
            epochs[0],
        )

    def _end_conflict(self, agent: _Agent, why: str) -> None:
        gone = agent.conflict_epoch
        agent.conflict_epoch = -1
        agent.conflict_logged = True
        self._peers_wanted.pop(agent.name, None)
        agent.peers.pop(gone, None)
        log.info("agent %s: one process again (%s)", agent.name, why)

    @property
    def peers_wanted(self) -> bool:
        """Whether the core wants the ``peer`` of agent messages (a conflict warning waits for it)."""
        return bool(self._peers_wanted)

    def _request_resync(self, agent: _Agent, now: float) -> None:
        if now - agent.resync_at < self.settings.resync_interval_s:
            return
        agent.resync_at = now
        self.stats.resyncs_requested += 1
        self._resync.append(agent.name)

    def applied(self, msg: proto.Message) -> bool:
        """Whether :meth:`apply` just applied ``msg`` (its agent's epoch and latest seq are the message's)."""
        agent = self.agents.get(msg.sender)
        return agent is not None and agent.epoch == msg.epoch and agent.last_seq == msg.seq

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
            self._index_mount(agent.name, agent.mount, add=False)
            agent.mount = mount
            agent.by_rel = {}  # rel paths now resolve under the new mount
            self._index_mount(agent.name, mount, add=True)
            self._warn_nesting(agent)

    def agents_mounted_at(self, path: str) -> list[_Agent]:
        """The agents whose mount is ``path``."""
        return [self.agents[name] for name in sorted(self._agents_at_mount.get(path, ()))]

    def _index_mount(self, name: str, mount: str, *, add: bool) -> None:
        """Enter (or take out) ``name`` at ``mount`` in the mount index."""
        if not mount:
            return
        ancestors = _proper_ancestors(mount)
        for path, index in ((mount, self._agents_at_mount), *((a, self._agents_below) for a in ancestors)):
            if add:
                index.setdefault(path, set()).add(name)
            elif (names := index.get(path)) is not None:
                names.discard(name)
                if not names:
                    del index[path]

    def _warn_nesting(self, agent: _Agent) -> None:
        """One WARNING per pair of agents whose mounts nest (equal mounts share a parent by design)."""
        mount = agent.mount
        pairs = [(agent.name, inner) for inner in sorted(self._agents_below.get(mount, ()))]
        pairs += [
            (outer, agent.name)
            for above in _proper_ancestors(mount)
            for outer in sorted(self._agents_at_mount.get(above, ()))
        ]
        for outer, inner in pairs:
            outer_mount, inner_mount = self.agents[outer].mount, self.agents[inner].mount
            pair = (outer, inner)
            if pair in self._nesting_warned:
                continue
            if len(self._nesting_warned) < _MAX_NESTING_WARNINGS:
                self._nesting_warned.add(pair)
            log.warning(
                "agents %s (mount %s) and %s (mount %s) have nested mounts: %s can publish into %s's "
                "subtree, and a point both claim stays with whichever sent it first (the other is refused "
                "and counted in _hub/conflicts). Give them disjoint mounts, or one mount to share its parent",
                outer,
                outer_mount,
                inner,
                inner_mount,
                outer,
                inner,
            )

    def _apply_state(self, agent: _Agent, msg: proto.State, now: float, wall: float) -> None:
        self._set_mount(agent, msg.mount)
        agent.heartbeat_s = msg.heartbeat_s
        if msg.part == 0:
            agent.state_parts_seen = 0
            agent.state_unpolled.clear()
            agent.gen += 1
        agent.state_parts_seen += 1
        gen = agent.gen
        for rel in msg.parents:
            self._declare_parent(agent, rel, gen)
        self._apply_points(agent, msg.points, now, wall)
        unpolled = agent.state_unpolled
        for rel in msg.unpolled:
            # The agent has it but has not polled it yet (a restarted agent's slow point):
            # listed, so neither removed nor forced STALE; its own deadline still applies.
            path = naming.join(agent.mount, rel)
            unpolled.add(path)
            leaf = agent.leaves.get(path)
            if leaf is not None:
                leaf.gen = gen
        if msg.part == msg.parts - 1:
            complete = agent.state_parts_seen == msg.parts
            agent.state_parts_seen = 0
            if complete and self.alarms is not None and agent.name not in self._book_checked:
                # The first full STATE since the hub started: points the restored alarm book
                # knows for this agent that it no longer has are gone (HubState never knew them).
                # One not polled yet is judged again at the next full STATE.
                waiting = False
                for path in self.alarms.restored_point_paths_of(agent.name):
                    if path in unpolled:
                        waiting = True
                    elif path not in agent.leaves:
                        self.alarms.point_removed(path, now, wall)
                if not waiting:
                    self._book_checked.add(agent.name)
            unpolled.clear()
            if complete:
                # Whatever this STATE did not list goes, unless reported again soon;
                # until then it is STALE: this incarnation does not vouch for it.
                agent.removal_gen = gen
                agent.removal_due = now + self.settings.removal_grace_s
                for leaf in agent.leaves.values():
                    if leaf.gen < gen and (not leaf.overdue or leaf.silence_hold):
                        leaf.overdue, leaf.silence_hold = True, False
                        self._restyle(leaf)

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

    def _apply_points(
        self, agent: _Agent, entries: list[proto.PointEntry], now: float, wall: float, delta: bool = False
    ) -> None:
        # One turn of this loop per point received: attributes are read once
        # into locals, and _restyle is inlined (a refreshed leaf is not
        # overdue, so only its agent's silence can make it STALE).
        gen = agent.gen
        by_rel = agent.by_rel
        dirty = self._dirty
        deadlines, due = self._deadlines, self._due
        settings = self.settings
        stale_factor, stale_slack_s = settings.stale_factor, settings.stale_slack_s
        threshold = self._alert_threshold
        silent = agent.silent
        unknown = agent.unknown
        set_code = self.tree.set_code
        debounced_entry = proto.DebouncedEntry
        if not agent.relay and entries and type(entries[0]) is debounced_entry and "via" in entries[0].debounce:
            agent.relay = True  # a site hub (1.3): alarm state stays with it
        # The hub's own points open no alarms: its health is in the tree, an agent's silence is its own alarm.
        book = self.alarms if agent is not self._own and not agent.relay else None
        relayed_book = self.alarms if agent.relay and not silent else None  # (1.3) a site's points: its judgement
        keep_since = delta and agent.relay  # (1.3) a relayed DELTA entry without since: unchanged, kept
        stale_reason = AGENT_SILENT if silent else None
        for entry in entries:
            path, value, alertcode, alertstr, polled_at_s, dt_s = entry
            leaf = by_rel.get(path)
            if leaf is None:
                leaf = self._claim(agent, path)
                if leaf is None:
                    continue
            node = leaf.node
            assert node is not None
            code = max(alertcode, STALE_ALERTCODE) if silent else alertcode
            old_code = node.code
            if (
                not delta
                and polled_at_s == leaf.polled_at_s
                and code == old_code
                and not leaf.overdue
                and not leaf.silence_hold
                and unknown is leaf.unknown
                and dt_s == leaf.dt_s
                and alertstr == leaf.alertstr
                and value == leaf.value
                and (entry.debounce if type(entry) is debounced_entry else None) == leaf.debounce
            ):
                # A STATE re-sending the poll the hub has (an agent's periodic STATE; a site hub's): it is
                # listed, and nothing else -- no NODE (nothing changed, received_at stays that of the poll's
                # first arrival) and no new deadline (the point was not polled again: a stuck point goes
                # STALE however often its old poll is re-sent).
                leaf.gen = gen
                continue
            if code != old_code and (code >= threshold or old_code >= threshold):
                # Before the leaf changes: the old label is still the leaf's (a new one was never set).
                self._now = now
                self._log_alert(
                    leaf, None if leaf.received_at_s is None else old_code, code, alertcode, alertstr, value
                )
            leaf.gen = gen
            leaf.value = value
            leaf.alertstr = alertstr
            leaf.polled_at_s = polled_at_s
            leaf.received_at_s = wall
            leaf.dt_s = dt_s
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
            if leaf.silence_hold:
                leaf.silence_hold = False
            if unknown is not leaf.unknown:
                self._count_unknown(leaf, unknown)
            if book is not None and (code != old_code or leaf.stale_reason != stale_reason or leaf.seq == 0):
                leaf.stale_reason = stale_reason
                label = _BUILTIN_LABELS.get(code, alertstr)
                book.point_level(leaf.path, agent.name, code, label, value, polled_at_s, stale_reason, now, wall)
            # A debounced point's entry carries its raw level, pending move and flap state (DebouncedEntry).
            if type(entry) is debounced_entry:
                if keep_since and "since" not in entry.debounce and leaf.debounce is not None:
                    before = leaf.debounce.get("since")
                    if before is not None and "via" in entry.debounce:
                        entry.debounce["since"] = before
                # The same map as the point has (a site's point whose value alone changed: the usual case):
                # the point keeps its own, so that each entry's dicts die young instead of ageing into the
                # collector's oldest generation, whose full scans were a third of a centre's CPU.
                if entry.debounce != leaf.debounce:
                    self._set_debounce(leaf, entry.debounce, book, polled_at_s, now, wall)
                    booked = False
                else:
                    # (1.3) The map the point had (its value alone changed: the usual relayed entry). With no
                    # alarm and no shelf in it, it counts for nothing in the rollup, and the book has it so
                    # already: booked when this map came, or taken out with every point of its site by the
                    # site's silence since. set_relayed would change nothing.
                    kept = entry.debounce  # equal to the point's
                    booked = kept.get("alarm") is None and kept.get("shelf") is None
            else:
                booked = False
                if leaf.debounce is not None:
                    self._set_debounce(leaf, None, book, polled_at_s, now, wall)  # its debounce was switched off
            if relayed_book is not None and not booked:
                attention, shelved = relayed_attention(leaf.debounce)
                relayed_book.set_relayed(leaf.path, attention, shelved)
            if code != old_code:
                for ancestor in set_code(node, code):
                    dirty[ancestor.key] = ancestor
            dirty[leaf.path] = node

    @staticmethod
    def _set_debounce(
        leaf: _Leaf,
        debounce: dict[str, Any] | None,
        book: AlarmBook | None,
        polled_at_s: float,
        now: float,
        wall: float,
    ) -> None:
        """Keep the debounce map of a point's latest entry; the alarm book journals its pending/flapping changes."""
        before = leaf.debounce
        leaf.debounce = debounce
        if book is None:
            return
        pending = flapping = None
        if debounce is not None:
            pending, flapping = debounce["pending"], debounce["flapping"]
        if before is not None and before["pending"] == pending and before["flapping"] == flapping:
            return
        book.point_debounce(
            leaf.path,
            leaf.agent.name,
            None if pending is None else (pending["level"], pending["since"]),
            None if flapping is None else (flapping["since"], flapping["changes"]),
            polled_at_s,
            now,
            wall,
        )

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
        """Recompute a leaf's effective code and liveness after any change and mark it dirty."""
        node = leaf.node
        assert node is not None
        agent = leaf.agent
        code = leaf.alertcode
        if leaf.overdue or agent.silent:
            code = max(code, STALE_ALERTCODE)
        old_code = node.code
        book = self.alarms
        if book is not None and agent is not self._own and not agent.relay:
            if agent.silent or leaf.silence_hold:
                reason: str | None = AGENT_SILENT
            elif not leaf.overdue:
                reason = None
            else:
                # Not reported since the STATE that did not list it: the agent dropped it (no alarm).
                reason = UNLISTED if leaf.gen < agent.removal_gen else OVERDUE
            if code != old_code or reason != leaf.stale_reason:
                leaf.stale_reason = reason
                label = _BUILTIN_LABELS.get(code, leaf.alertstr if code == leaf.alertcode else "")
                # The hub's judgement (overdue, silent) happens now; a refresh keeps the poll's time.
                at = self._wall if reason is not None else leaf.polled_at_s
                book.point_level(leaf.path, agent.name, code, label, leaf.value, at, reason, self._now, self._wall)
        if code != old_code:
            settings = self.settings
            threshold = settings.alert_log_threshold
            if settings.alert_log_level is not None and (code >= threshold or old_code >= threshold):
                self._log_alert(leaf, old_code, code, leaf.alertcode, leaf.alertstr, leaf.value)
            for ancestor in self.tree.set_code(node, code):
                self._dirty[ancestor.key] = ancestor
        if agent.unknown is not leaf.unknown:
            self._count_unknown(leaf, agent.unknown)
        self._dirty[leaf.path] = node

    def _count_unknown(self, leaf: _Leaf, unknown: bool) -> None:
        """Set the leaf's liveness-unknown flag and roll it up: a parent is unknown while any child is."""
        leaf.unknown = unknown
        node = leaf.node
        assert node is not None
        delta = 1 if unknown else -1
        parent = node.parent
        dirty = self._dirty
        while parent is not None:
            data = parent.data
            was = data.unknown > 0
            data.unknown += delta
            if (data.unknown > 0) is was:
                return
            dirty[parent.key] = parent
            parent = parent.parent

    def _log_alert(
        self, leaf: _Leaf, old_code: int | None, new_code: int, alertcode: int, alertstr: str, value: Any
    ) -> None:
        """Log a point's alert transition (``old_code`` None: a new point): :mod:`gsmon.hub.alert_log`."""
        alerts = self._alert_log
        assert alerts is not None  # (no transition reaches here with alert_log_level None: the threshold is inf)
        if old_code is None:
            old_label = "unset"
        else:
            old_label = _BUILTIN_LABELS.get(old_code, leaf.alertstr if old_code == leaf.alertcode else "") or "NONE"
        new_label = _BUILTIN_LABELS.get(new_code, alertstr if new_code == alertcode else "") or "NONE"
        quiet_s = 0.0 if leaf.received_at_s is None else max(0.0, self._wall - leaf.received_at_s)
        alerts.transition(
            self._now, leaf.path, leaf.agent.name, (old_code, old_label), (new_code, new_label), value, quiet_s
        )

    def _set_silent(self, agent: _Agent, now: float, bye: bool = False) -> None:
        if agent.silent:
            return
        agent.silent = True
        agent.silent_since = now
        if self.alarms is not None and agent.mount:
            self.alarms.agent_silent(agent.name, agent.mount, now, self._wall)
            if agent.relay:
                # (1.3) The site's silence alarm stands for its relayed alarms until its entries come again.
                agent.silent_wall = self._wall
                for path in agent.leaves:
                    self.alarms.set_relayed(path, None, False)
                if agent.orphans:
                    self._count_orphans(agent, {})  # its orphans too: kept as last known, counted again at its STATE
        if bye:
            log.info("agent %s stopped (it said goodbye); its points are STALE", agent.name)
        else:
            log.warning(
                "agent %s is silent: nothing heard for %.1f s; its %d point(s) are STALE",
                agent.name,
                now - agent.last_heard,
                len(agent.leaves),
            )
        for leaf in agent.leaves.values():
            self._restyle(leaf)

    # ------------------------------------------------------------------
    # Time
    # ------------------------------------------------------------------

    def read_done(self, now: float, emptied: bool) -> None:
        """The server has read from the agents socket this turn; ``emptied``: it
        found the queue empty (or nothing was readable), so every agent was heard
        until ``now`` -- except just after a pause (:meth:`pause`)."""
        self._reads_tracked = True
        turns = self._read_turns
        if not turns or turns[-1][0] != self._read_n:
            turns.append((self._read_n, now))
        if emptied and now >= self._grace_until:
            self._heard_all = now

    def note_read(self, identity: str, now: float) -> None:
        """A message was read but not applied (refused by the server): count the
        read for the fair-queue argument, under the identity of its sender's key."""
        self._read_n += 1
        key = hash(identity)
        previous = self._refused_reads.get(key, 0)
        if previous > self._pair_floor:
            self._proven_n = self._pair_floor = previous
        if len(self._refused_reads) >= 1024:
            self._refused_reads.clear()  # a memory bound: a lost entry only delays a proof
        self._refused_reads[key] = self._read_n

    def pause(self, now: float, paused_s: float) -> None:
        """The server's loop did not run for ``paused_s`` (SIGSTOP, VM freeze), a
        time ``now`` -- observed time, pauses left out -- does not count.

        Nothing is judged for a grace of at least one heartbeat: ZeroMQ's I/O
        thread first moves the backlog of the pause into its queues, and until
        then an empty queue does not mean that everything was heard. Meanwhile
        every live agent's points carry ``liveness_unknown``.
        """
        grace = max(self.settings.pause_grace_s, self.settings.heartbeat_interval_s)
        log.warning(
            "the hub did not run for %.1f s (stopped, or its machine paused): that time is not counted as "
            "silence, and liveness is judged again after %.1f s",
            paused_s,
            grace,
        )
        self._paused_at = now
        self._grace_until = now + grace
        self._pair_floor = 1 << 62  # a pair of reads during the grace, or across it, proves nothing
        self._refused_reads.clear()

    def tick(self, now: float, wall: float, heard_all_until: float | None = None) -> None:
        """Advance liveness: silent agents, overdue points, removals, health points.

        Silence and overdue points are judged as of when the hub had heard all
        of an agent (module docstring), not ``now``: what arrived since may
        still wait in the hub's own queue. ``heard_all_until`` overrides what
        :meth:`read_done` reported for the whole queue; without either, the
        core has heard everything until ``now``.
        """
        settings = self.settings
        self._now = now
        self._wall = wall
        if heard_all_until is not None:
            heard_all = min(now, heard_all_until)
        elif self._reads_tracked:
            heard_all = self._heard_all
        else:
            heard_all = now
        in_grace = now < self._grace_until
        if in_grace:
            heard_all = min(heard_all, self._paused_at)
        elif self._pair_floor > self._read_n:
            self._pair_floor = self._read_n  # the grace is over: reads from now on make pairs again
        self._backlog_s = now - heard_all
        proven_n, proven_t = self._proven_n, -_INF
        turns = self._read_turns
        if turns and turns[-1][0] >= proven_n:
            # The time of the proven read: that of the first turn whose reads reach its number.
            first = bisect.bisect_left(turns, (proven_n, -_INF))
            proven_t = turns[first][1]
            if first > 1:
                del turns[: first - 1]
        behind_s = settings.heartbeat_interval_s
        horizon = heard_all
        liveness_slack, tolerance = settings.agent_liveness - 1.0, settings.stale_slack_s
        for agent in list(self.agents.values()):
            if agent.last_read_n < proven_n and proven_t > agent.heard_until:
                agent.heard_until = proven_t  # not read since the first read of a pair: heard then
            heard = agent.judged = agent.heard_until if agent.heard_until > heard_all else heard_all
            if heard > horizon:
                horizon = heard
            if not agent.silent and heard - agent.last_heard > settings.agent_liveness * agent.heartbeat_s:
                if self._standby_live(agent, heard):
                    # (1.3) A site pair: its other site hub was heard: followed now, before anything is STALE.
                    self._follow_standby(agent, now, f"nothing heard for {heard - agent.last_heard:.1f} s")
                else:
                    self._set_silent(agent, now)
            if not agent.silent and liveness_slack * agent.heartbeat_s < tolerance:
                tolerance = liveness_slack * agent.heartbeat_s
            if agent.silent and heard - agent.last_heard > settings.agent_retention_s:
                log.info("forgetting agent %s, silent for %.0f s", agent.name, heard - agent.last_heard)
                self._forget(agent)
                continue
            if now >= agent.removal_due:
                agent.removal_due = _INF
                self._remove_unlisted(agent, agent.removal_gen)
            if agent.conflict_epoch != -1:
                if now - agent.conflict_seen > settings.agent_liveness * agent.heartbeat_s:
                    self._end_conflict(agent, f"the other process (epoch {agent.conflict_epoch:x}) stopped")
                elif not agent.conflict_logged:
                    self._log_conflict(agent, now)
            unknown = not agent.silent and (in_grace or now - heard > behind_s)
            if unknown is not agent.unknown:
                agent.unknown = unknown
                for point in agent.leaves.values():
                    self._restyle(point)
            if agent.held and heard >= agent.held_min:
                self._release_held(agent)

        self.blind_tolerance_s = tolerance
        heap, groups = self._deadlines, self._due
        get = self.tree.get
        # Every point comes round here once per stale period (25,000 a second
        # with 100,000 points at dt = 1 s), nearly always refreshed since, and
        # then re-queued with a list append. A group's paths are taken in
        # order, so points go overdue in (deadline, path) order as before.
        while heap and heap[0] <= horizon:
            due = heapq.heappop(heap)
            for path in sorted(groups.pop(due)):
                node = get(path)
                leaf = node.data if node is not None else None
                if not isinstance(leaf, _Leaf) or due != leaf.queued:
                    continue  # the leaf is gone, or this entry was superseded by an earlier one
                deadline = leaf.deadline
                if deadline > horizon:
                    # Refreshed since: look again later (never, if it became one-shot).
                    leaf.queued = deadline
                    if deadline < _INF:
                        self._queue(deadline, path)
                    continue
                leaf.queued = _INF
                owner = leaf.agent
                if deadline > owner.judged:
                    # The hub is behind this agent: its refresh may be waiting in the
                    # queue. Judged once the agent has been heard that far.
                    owner.held.append(path)
                    owner.held_min = min(owner.held_min, deadline)
                    continue
                if not leaf.overdue or (leaf.silence_hold and not owner.silent):
                    # (A held point: not refreshed within a period of its agent's return: overdue now.)
                    leaf.overdue, leaf.silence_hold = True, False
                    self._restyle(leaf)

        if now - self._last_health >= settings.heartbeat_interval_s:
            self._last_health = now
            self._update_health(now, wall)

    def _release_held(self, agent: _Agent) -> None:
        """Queue again the points held while the hub was behind the agent (tick judges them now)."""
        get = self.tree.get
        for path in agent.held:
            node = get(path)
            leaf = node.data if node is not None else None
            if isinstance(leaf, _Leaf) and leaf.queued == _INF and leaf.deadline < _INF:
                leaf.queued = leaf.deadline
                self._queue(leaf.deadline, path)
        agent.held = []
        agent.held_min = _INF

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
        if agent.orphans:
            before, agent.orphans = agent.orphans, {}
            self._count_orphans(agent, before)
        for path in list(agent.leaves):
            self._remove_leaf(agent, path)
        self._undeclare(agent, list(agent.parents))
        self._index_mount(agent.name, agent.mount, add=False)
        del self.agents[agent.name]
        self._peers_wanted.pop(agent.name, None)

    def forget(self, name: str, now: float, wall: float, *, granted: bool = True) -> tuple[bool, str, dict[str, Any]]:
        """Remove a silent agent and all its points now (the ``forget`` command).

        Returns ``(done, message, result)``. A live agent is refused -- unless
        ``granted`` is False: its key was revoked, so the server drops whatever
        it sends and it cannot be live any more.
        """
        agent = self.agents.get(name)
        if agent is None:
            return False, f"the hub knows no agent named {name!r}", {"reason": "unknown"}
        if not agent.silent and granted:
            return (
                False,
                f"agent {name!r} is live (heard {max(0.0, now - agent.last_heard):.1f} s ago): stop it first, "
                f"or revoke its key; only a silent agent can be forgotten",
                {"reason": "live"},
            )
        points = len(agent.leaves)
        self._forget(agent)
        self._update_health(now, wall)  # its _hub/agents/<name> point goes now too
        self._last_health = now
        log.info("forgot agent %s and its %d point(s)", name, points)
        return True, f"forgot agent {name!r} and its {points} point(s)", {"agent": name, "points": points}

    def _remove_leaf(self, agent: _Agent, path: str) -> None:
        leaf = agent.leaves.pop(path)
        if agent is self._own:
            self._own_since.pop(path, None)
        elif self.alarms is not None:
            self.alarms.point_removed(path, self._now, self._wall)
        if leaf.unknown:
            self._count_unknown(leaf, False)
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
        if path in agent.orphan_paths:
            self._count_orphans(agent, {})  # (1.3) a site's orphan the point carried counts on its own now

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

    def count_rejected(self, count: int = 1) -> None:
        """``count`` messages the server dropped before they reached the core (undecodable,
        unauthorised, a failure to apply): they count in ``_hub/messages_rejected``."""
        self.stats.messages_rejected += count

    def set_subscribers(self, connections: int) -> None:
        """How many subscriber connections are open (``_hub/subscribers``), as the server's monitor counts them."""
        self.stats.subscribers = connections

    def set_server_health(self, values: Mapping[str, tuple[Any, int]]) -> None:
        """The server's own health figures, shown as points ``_hub/<name>``: ``name -> (value, alert code)``.

        They replace the previous call's: a name left out is removed at the next refresh.
        """
        self._server_health = dict(values)

    def _update_health(self, now: float, wall: float) -> None:
        live = sum(1 for agent in self.agents.values() if not agent.silent)
        stats = self.stats
        values: dict[str, Any] = {
            "messages_in": stats.messages_in,
            "messages_out": stats.messages_out,
            "messages_rejected": stats.messages_rejected,
            "points_rejected": stats.points_rejected,
            "conflicts": stats.conflicts,
            "standby_switches": stats.standby_switches,
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
            for key, (value, code) in self._server_health.items()
        ]
        # Behind by more than a heartbeat: liveness judgments are on hold (see tick).
        backlog_s = round(self._backlog_s, 1)
        backlog_code = OrangeAlert.alertcode if backlog_s > self.settings.heartbeat_interval_s else 0
        backlog = proto.PointEntry("agents_backlog_s", backlog_s, backlog_code, alertstr_for(backlog_code), wall, None)
        entries.append(backlog)
        for agent in self.agents.values():
            if agent.silent:
                state, code = "silent", STALE_ALERTCODE
            elif agent.conflict_epoch != -1:
                state, code = "conflict: two processes", OrangeAlert.alertcode
            else:
                state, code = "live", GreenAlert.alertcode
            entries.append(proto.PointEntry(f"agents/{agent.name}", state, code, alertstr_for(code), wall, None))
            if agent.pair is not None:
                # (1.3) A site that is a hub pair: the site hub followed, and whether its standby is live
                # (its own point: _hub/agents/<name> keeps saying "live", which clients read).
                # ORANGE without a live standby: the site is then one failure from STALE (its redundancy is
                # lost, which an operator should see before the second site hub goes too).
                standby = agent.standby
                live = standby is not None and self._standby_live(agent, now)
                if standby is None:
                    text = f"following site hub {agent.pair.hub}, no standby heard"
                else:
                    heard = "live" if live else "silent"
                    text = f"following site hub {agent.pair.hub}, standby {standby.pair.hub} {heard}"
                pair_code = GreenAlert.alertcode if live else OrangeAlert.alertcode
                entries.append(
                    proto.PointEntry(f"site_pairs/{agent.name}", text, pair_code, alertstr_for(pair_code), wall, None)
                )
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
        moved = [
            entry.path
            for entry in changed
            if (leaf := own.by_rel.get(entry.path)) is None or leaf.alertcode != entry.alertcode
        ]
        self._apply_points(own, changed, now, wall)
        for rel in moved:
            if (leaf := own.by_rel.get(rel)) is not None:  # (not refused: max_nodes)
                self._own_since[leaf.path] = wall

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
        if self._alert_log is not None:
            self._alert_log.flush(self._now)  # what came back from STALE this turn: one line per agent
        book = self.alarms
        if book is not None:
            # Nodes whose attention, alarm or shelf changed are republished (the caller has stored them).
            get = self.tree.get
            for path in book.take_node_changes():
                node = get(path)
                if node is not None:
                    self._dirty[path] = node
        if not self._dirty and not self._removed:
            return []
        if self.changes_out is not None:
            self.changes_out.update(dict.fromkeys(self._removed))
            self.changes_out.update(dict.fromkeys(self._dirty))
        # Every NODE some stream wants, in seq order: (path bytes, payload); then the plain frames and the
        # (1.4) NODES batches are taken from it, each NODE packed once for both.
        published: list[tuple[bytes, bytes]] = []
        append = published.append
        encoder = self._encoder
        if encoder.epoch != self.epoch:
            encoder = self._encoder = proto.NodeEncoder(self.epoch)
        # str.startswith takes a tuple: one C call tells whether anyone follows a path.
        subscriptions = self.subscriptions
        followed = subscriptions.followed()
        batched = subscriptions.nodes_followed()
        wanted = None if followed is None else followed + batched
        seq = self.seq
        paths = self._removed
        published_removed: list[str] = []
        for path in paths:
            seq += 1
            if wanted is None or path.startswith(wanted):
                append((path.encode(), encoder.removed(seq)))
                published_removed.append(path)
        self._removed = []
        published_dirty: list[str] = []
        for path, node in self._dirty.items():
            seq += 1
            data = node.data
            data.seq = seq
            if type(data) is _Parent and data.since_code != node.code:
                data.since_code, data.since = node.code, wall
            if wanted is None or path.startswith(wanted):
                data.payload = self._pack(node, encoder)
                append((path.encode(), data.payload))
                published_dirty.append(path)
            else:
                data.payload = b""
        self._dirty = {}
        self.seq = seq
        if subscriptions.counting():
            subscriptions.count_published(published_removed, published_dirty, len(published))
        if not batched:
            frames = published  # plain subscriptions only: every NODE wanted is a plain one
        else:
            published_paths = published_removed + published_dirty
            if followed is None:
                frames = list(published)
            elif followed:
                frames = [
                    item for item, path in zip(published, published_paths, strict=True) if path.startswith(followed)
                ]
            else:
                frames = []
            for prefix in batched:
                if not prefix or wanted == (prefix,):
                    chosen = published  # the whole tree, or the only prefix anyone follows: all of it
                else:
                    chosen = [
                        item for item, path in zip(published, published_paths, strict=True) if path.startswith(prefix)
                    ]
                topic = proto.nodes_topic(prefix)
                frames += [(topic, batch) for batch in proto.encode_nodes_batches(chosen)]
        self.stats.messages_out += len(published)
        return frames

    def _extra(self, path: str, data: _Leaf | _Parent) -> dict[str, Any] | None:
        """The NODE keys of the operator layer (protocol NODE_EXTRA_KEYS, in order; defaults left out)."""
        book = self.alarms
        extra: dict[str, Any] = {}
        if book is None:
            # No alarm layer (no state store): no since and no attention on any node, so that a client
            # reads an absent attention as "not judged" (protocol: NODE attention), never as 0.
            if type(data) is _Leaf and data.debounce is not None:
                self._debounce_keys(data.debounce, extra)
            return extra or None
        if type(data) is _Parent and data.since is not None:
            extra["since"] = data.since
        elif type(data) is _Leaf and data.agent is self._own:
            # The hub's own points open no alarms and cannot be acked: their attention is their level
            # (protocol: NODE since), so that views colour them by it, as they did before they had since.
            since = self._own_since.get(path)
            if since is not None:
                extra["since"] = since
            if data.alertcode:
                extra["attention"] = data.alertcode
            return extra or None
        view = book.current_view(path)
        if type(data) is _Leaf and view.since is not None:
            extra["since"] = view.since
        if view.attention:
            extra["attention"] = view.attention
        if view.alarm is not None:
            extra["alarm"] = view.alarm.to_wire()
        if view.shelf_id is not None:
            extra["shelf_id"] = view.shelf_id
        if type(data) is _Parent:
            if view.shelved_below:
                extra["shelved_below"] = view.shelved_below
            if view.unacked_below:
                extra["unacked_below"] = view.unacked_below
        elif isinstance(data, _Leaf) and data.debounce is not None:
            self._debounce_keys(data.debounce, extra)
        return extra or None

    def _relay_keys(self, site: _Agent, debounce: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
        """(1.3) A relayed point's NODE keys, in NODE_EXTRA_KEYS order: ``since`` and ``shelf_id`` as the site
        relayed them (with the alarm layer only: without it nothing is judged; while the site is silent its
        points are STALE since the silence began), ``attention`` from the book (set_relayed), the site's alarm
        summary (under this hub's proxy id), the hubs it passed."""
        extra = extra or {}
        out: dict[str, Any] = {}
        layer = self.alarms is not None
        since = debounce.get("since")
        if site.silent and site.silent_wall is not None:
            since = site.silent_wall
        if layer and since is not None:
            out["since"] = since
        if "attention" in extra:
            out["attention"] = extra["attention"]
        alarm = debounce["alarm"]
        if alarm is not None:
            proxy = self.relay_alarm_id
            out["alarm"] = alarm if proxy is None else {**alarm, "id": proxy(site.name, alarm["id"])}
        if layer and debounce.get("shelf") is not None:
            out["shelf_id"] = debounce["shelf"]
        for key, value in extra.items():
            if key not in out and key not in ("since", "attention", "alarm", "shelf_id"):
                out[key] = value
        out["via"] = debounce["via"]
        return out

    @staticmethod
    def _debounce_keys(debounce: dict[str, Any], extra: dict[str, Any]) -> None:
        """NODE ``raw_alert`` (every point with debounce), ``pending`` and ``flapping`` (while there is one)."""
        extra["raw_alert"] = debounce["raw"]
        if debounce["pending"] is not None:
            extra["pending"] = debounce["pending"]
        if debounce["flapping"] is not None:
            extra["flapping"] = debounce["flapping"]

    def _pack(self, node: TreeNode, encoder: proto.NodeEncoder, _labels: dict[int, str] = _BUILTIN_LABELS) -> bytes:
        """The NODE payload of ``node``'s current state, with the seq of its last change."""
        data = node.data
        code = node.code
        extra = self._extra(node.key, data)
        if type(data) is _Leaf:
            agent = data.agent
            reported: int | None = data.alertcode
            owner, stale, dt_s = agent.name, data.overdue or agent.silent, data.dt_s
            debounce = data.debounce
            if agent.relay and debounce is not None and "via" in debounce:
                # (1.3) A site's point: owner, staleness, dt and alarm as the site hub relayed them.
                owner = f"{agent.name}:{debounce['agent']}"
                stale = stale or debounce["stale"]
                dt_s = debounce["dt"]
                reported = debounce["reported"]
                extra = self._relay_keys(agent, debounce, extra)
            if code == reported:
                label, reported = _labels.get(code, data.alertstr), None  # sent only when it differs
            else:
                label = _labels.get(code, "")
            return encoder.point(
                data.seq,
                code,
                label,
                stale,
                data.value,
                owner,
                data.polled_at_s,
                data.received_at_s,
                dt_s,
                reported,
                data.unknown,
                extra,
            )
        assert isinstance(data, _Parent)
        return encoder.parent(data.seq, code, self._label(node), code == STALE_ALERTCODE, data.unknown > 0, extra)

    @staticmethod
    def _label(node: TreeNode) -> str:
        """A node's label: built-in for a built-in code, else that of a child it rolls up from (down to a point)."""
        code = node.code
        label = _BUILTIN_LABELS.get(code)
        if label is not None:
            return label
        while not node.is_leaf:
            data = node.data
            source = data.label_from
            if source is None or source.parent is not node or source.code != code:
                # Remembered, so that a parent with many children is scanned once per change of its code.
                source = data.label_from = next((kid for kid in node.children.values() if kid.code == code), None)
                if source is None:
                    return ""  # no child has the code (a parent of negative codes reads 0)
            node = source
        leaf = node.data
        return leaf.alertstr if leaf.alertcode == code else ""

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
            batched=subscriptions.nodes_followed_for(readable),
        )
        return proto.encode_hub_heartbeat(beat, topic)

    def snapshot(self, prefix: str) -> tuple[list[bytes], int, int]:
        """Every node ``prefix`` selects as packed ``[path, payload]`` items, at
        once, with the ``seq`` and the prefix's publish counter of this moment
        (the query core, :mod:`gsmon.hub.queries`, spreads large ones over
        loop turns with :meth:`nodes_under` and :meth:`node_item`).

        Call after :meth:`drain`, so that every cached payload is current.
        """
        items = [item for node in self.nodes_under(prefix) if (item := self.node_item(node)) is not None]
        return items, self.seq, self.published(prefix)

    def nodes_under(self, prefix: str) -> Iterator[TreeNode]:
        """The nodes ``prefix`` selects (:func:`gsmon.common.names.path_in_prefix`),
        walking only that subtree of the tree: the cost is the subtree's size.

        It may be resumed across loop turns while the tree changes: a node
        removed meanwhile is skipped, and one added under a parent already
        visited is missed -- its creation is published with a seq above the
        snapshot's, so a client gets it anyway (protocol: Snapshots).
        """
        tree = self.tree
        if not prefix:
            stack = tree.roots()
        else:
            base = prefix[:-1] if prefix.endswith(naming.SEPARATOR) else prefix
            start = tree.get(base)
            if start is None:
                return
            if base == prefix:
                yield start  # "A/B" is that node and its subtree; "A/B/" only the subtree
            stack = list(start.children.values())
        get, pop, extend = tree.get, stack.pop, stack.extend
        # Depth first, children in no particular order (a snapshot is a set): a list of
        # nodes to visit, each node's children copied when it is visited.
        while stack:
            node = pop()
            if get(node.key) is node:  # still in the tree (it may have gone between two turns)
                yield node
                if node.children:
                    extend(node.children.values())

    def walk_start(self, prefix: str) -> list[TreeNode]:
        """The first nodes of a snapshot walk of ``prefix`` (for :meth:`walk_step`): the
        prefix's node for ``A/B``, its children for ``A/B/``, the roots for ``""``."""
        if not prefix:
            return self.tree.roots()[::-1]
        base = prefix[:-1] if prefix.endswith(naming.SEPARATOR) else prefix
        start = self.tree.get(base)
        if start is None:
            return []
        return [start] if base == prefix else list(reversed(start.children.values()))

    def walk_step(self, stack: list[TreeNode], limit: int, out: list[bytes]) -> int:
        """Visit up to ``limit`` nodes of a walk (:meth:`walk_start`), appending each one's
        packed ``[path, payload]`` item to ``out``; return how many were visited (fewer than
        ``limit``: the walk is over). The walk of :meth:`nodes_under`, in one tight loop: the
        query core's snapshots."""
        get = self.tree.by_key().get
        pop, extend, append = stack.pop, stack.extend, out.append
        encoder = self._encoder
        if encoder.epoch != self.epoch:
            encoder = self._encoder = proto.NodeEncoder(self.epoch)
        pack = self._pack
        visited = 0
        while stack and visited < limit:
            node = pop()
            visited += 1
            key = node.key
            if get(key) is not node:
                continue  # gone since the walk began
            if node.children:
                # Reversed onto the stack: children come off it in the order they were made,
                # which is about the order they lie in memory (half the time of the other way).
                extend(reversed(node.children.values()))
            data = node.data
            if not data.seq:
                continue  # created, not drained yet: it comes with its first update
            payload = data.payload
            if not payload:
                payload = data.payload = pack(node, encoder)
            append(proto.snapshot_item(key, payload))
        return visited

    def node_item(self, node: TreeNode) -> bytes | None:
        """The packed ``[path, payload]`` item of a node as last published (None:
        created but not drained yet; it comes with its first update)."""
        data = node.data
        if not data.seq:
            return None
        if not data.payload:
            encoder = self._encoder
            if encoder.epoch != self.epoch:
                encoder = self._encoder = proto.NodeEncoder(self.epoch)
            data.payload = self._pack(node, encoder)
        return proto.snapshot_item(node.key, data.payload)


def nested_mounts(mounts: Iterable[tuple[str, str]]) -> list[tuple[str, str, str, str]]:
    """The pairs of ``(agent name, mount)`` whose mounts nest, as ``(outer name,
    outer mount, inner name, inner mount)``: the inner mount lies strictly below
    the outer one. Equal mounts are not listed (two agents sharing a parent is
    the documented pattern), nor an agent's own mounts among themselves."""
    by_mount: dict[str, list[str]] = {}
    for name, mount in mounts:
        by_mount.setdefault(mount, []).append(name)
    pairs: list[tuple[str, str, str, str]] = []
    for mount in sorted(by_mount):
        segments = naming.split(mount)
        for depth in range(1, len(segments)):
            outer_mount = naming.SEPARATOR.join(segments[:depth])
            for outer in by_mount.get(outer_mount, ()):
                pairs.extend((outer, outer_mount, inner, mount) for inner in by_mount[mount] if inner != outer)
    return pairs


def _proper_ancestors(path: str) -> list[str]:
    """``a/b/c`` -> ``["a", "a/b"]``."""
    parts = path.split(naming.SEPARATOR)
    return [naming.SEPARATOR.join(parts[:end]) for end in range(1, len(parts))]
