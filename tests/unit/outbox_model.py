"""An agent with an outbox and a hub that journals, wired by a lossy channel: the issue 17 §3 model.

Both ends are the real pure cores -- the agent's :class:`~gsmon.agent.outbox.Outbox` and
:class:`~gsmon.common.send_policy.SendPolicy`, the hub's :class:`~gsmon.hub.state.HubState`,
:class:`~gsmon.hub.alarms.AlarmBook` and :class:`~gsmon.hub.replay.ReplayCore` -- glued as
``agent/publisher.py`` and ``hub/server.py`` glue them (:func:`hub_receives` is the server's per-message
glue; keep the two alike). Every message goes through ``proto.encode``/``decode``; a message the test
drops is a seq gap, as an XPUB that dropped at its high-water mark makes one. The back-channel (the hub's
subscriptions) is reliable, as a connected socket's is. Times are made up: no sockets, no sleeps.

What a test checks: every effective-level transition the outbox numbered is in the hub's journal once
(:meth:`Model.journaled_levels` against :attr:`Model.truth`), in each hub's of a pair; across a hub's
restart (:meth:`Model.restart_hub`), at least once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gsmon.agent.outbox import Outbox
from gsmon.common import protocol as proto
from gsmon.common.send_policy import PublisherSettings, SendPolicy
from gsmon.hub.alarms import AlarmBook, JournalEntry
from gsmon.hub.replay import ReplayCore
from gsmon.hub.state import HubSettings, HubState

AGENT = "rack1"
MOUNT = "GS1/Rack1"
HUBS = ("tcp://hub-a:1", "tcp://hub-b:1")  # a hub pair: the agent publishes to both, each follows it alone
WALL0 = 1_800_000_000.0
GREEN, ORANGE, RED = 10, 20, 30
LABEL = {GREEN: "GREEN", ORANGE: "ORANGE", RED: "RED"}
FLUSH_S = 0.05
AGENT_SETTINGS = PublisherSettings(flush_interval_s=FLUSH_S, heartbeat_interval_s=1.0, state_interval_s=30.0)
HUB_SETTINGS = HubSettings(heartbeat_interval_s=1.0, agent_liveness=3.0, stale_factor=3.0, stale_slack_s=1.0)

Drop = Callable[[proto.Message], bool]


class AgentEnd:
    """The agent: its points (as a Monitor's table keeps them), its outbox and its send policy.

    ``concurrently``: called inside :meth:`take_changes` and :meth:`full_state` before they take the points
    -- a worker thread's poll landing between the policy's reading of the outbox mark and its taking of the
    points (what the Monitor's lock allows)."""

    def __init__(self, outbox: Outbox, epoch: int, now: float) -> None:
        self.outbox = outbox
        self.policy = SendPolicy(AGENT, epoch, MOUNT, len(outbox.hubs), AGENT_SETTINGS, now, outbox=outbox)
        self.points: dict[str, proto.PointEntry] = {}
        self.levels: dict[str, int] = {}
        self.changes: dict[str, proto.PointEntry] = {}
        self.concurrently: Callable[[], None] | None = None

    def poll(self, path: str, level: int, wall: float) -> int | None:
        """One poll of ``path`` at ``level`` (under the Monitor's lock: the table, then the outbox)."""
        entry = proto.PointEntry(path, float(level), level, LABEL[level], wall, None)
        old = self.levels.get(path)
        self.points[path] = self.changes[path] = entry
        self.levels[path] = level
        return self.outbox.record(path, old, level, LABEL[level], float(level), wall, wall)

    # PointSource
    def take_changes(self) -> list[proto.PointEntry]:
        self._meanwhile()
        self.outbox.cut()  # as Monitor._take_changes: the window is cut with the points taken
        changes, self.changes = list(self.changes.values()), {}
        return changes

    def full_state(self) -> tuple[list[proto.PointEntry], list[str]]:
        self._meanwhile()
        self.outbox.note_head()  # as Monitor._full_state: under the lock, with the points
        return list(self.points.values()), []

    def unpolled_paths(self) -> list[str]:
        return []

    def point_count(self) -> int:
        return len(self.points)

    def _meanwhile(self) -> None:
        step, self.concurrently = self.concurrently, None
        if step is not None:
            step()


class HubEnd:
    """The hub: its state, alarm book and replay core, and every journal entry it made (``journal``)."""

    def __init__(self, stored: dict[str, str] | None = None) -> None:
        self.book = AlarmBook()
        self.state = HubState(HUB_SETTINGS, 0x4B0B, now=0.0, alarms=self.book)
        self.state.subscriptions.follow(b"", subscribed=True)
        self.replay = ReplayCore(stored)
        self.journal: list[JournalEntry] = []
        self.stored: dict[str, str] = dict(stored or {})


def hub_receives(hub: HubEnd, msg: proto.Message, now: float, wall: float) -> None:
    """What hub/server.py does with one decoded agent message (``_read_agents`` and ``_outbox``)."""
    state, replay, book = hub.state, hub.replay, hub.book
    noting = isinstance(msg, proto.State | proto.Delta) and replay.follows(msg.sender)
    in_break = noting and replay.in_break(msg.sender, msg.epoch, msg.seq)
    mark = book.journal_mark() if noting else 0
    state.apply(msg, now, wall)
    if not state.applied(msg):
        return
    if noting:
        replay.note_live(msg.sender, book.journal_since(mark), None if in_break else msg.seq)
    if isinstance(msg, proto.Transitions):
        mount = state.mount_of(msg.sender)
        node = state.tree.get(mount) if mount is not None else None
        if msg.live is not None:
            replay.apply_live(msg, mount, book, now, wall)
        else:
            replay.apply(msg, mount, None if node is None else node.code, book, now, wall)
    elif isinstance(msg, proto.State | proto.Delta | proto.Heartbeat) and msg.outbox is not None:
        state_end = isinstance(msg, proto.State) and msg.part == msg.parts - 1
        mount = state.mount_of(msg.sender)
        lost = replay.observe(
            msg.sender, msg.epoch, msg.seq, msg.outbox, state_end, now, delta=isinstance(msg, proto.Delta),
            mount=mount, book=book, wall=wall,
        )  # fmt: skip
        if lost:
            replay.journal_lost(msg.sender, mount, lost, book, wall)


class Model:
    """One agent, one hub (``pair``: two) and a lossy link to each; ``outbox_path`` None keeps the outbox
    in memory. ``hub`` is the first hub (``hubs[0]``)."""

    def __init__(self, outbox_path: Path | None = None, live: bool = True, pair: bool = False) -> None:
        self.now = 0.0
        self.outbox_path = outbox_path
        self.epoch = 1
        self.endpoints = list(HUBS[: 2 if pair else 1])
        self.agent = AgentEnd(Outbox(outbox_path, self.endpoints), self.epoch, self.now)
        self.hubs = [HubEnd() for _ in self.endpoints]
        self.live = live
        self.truth: list[proto.TransitionItem] = []  # every level entry the outbox numbered
        self.dropped = 0
        self._subscribe_all()

    @property
    def hub(self) -> HubEnd:
        return self.hubs[0]

    @property
    def wall(self) -> float:
        return WALL0 + self.now

    def _subscribe_all(self) -> None:
        """(Re)connected hubs: they subscribe to everything (a STATE is owed) and to live transitions."""
        for link in range(len(self.hubs)):
            self.agent.policy.upstream(link, b"\x01")
            if self.live:
                self.agent.policy.upstream(link, b"\x01" + proto.LIVE_TOPIC)

    def poll(self, path: str, level: int, after_s: float = 0.001) -> None:
        self.now += after_s
        tseq = self.agent.poll(path, level, self.wall)
        if tseq is not None:
            (item,) = self.agent.outbox.read(tseq, tseq, 1, 1 << 30)
            self.truth.append(item)

    def step(self, drop: Drop | None = None, after_s: float = FLUSH_S) -> list[proto.Message]:
        """One publisher turn (``after_s`` later) and one hub turn; returns what the agent sent."""
        self.now += after_s
        out = self.agent.policy.tick(self.now, self.wall, self.agent)
        for link, message in out:
            decoded = proto.decode(proto.encode(message))
            if drop is not None and drop(decoded):
                self.dropped += 1
                continue
            hub_receives(self.hubs[link], decoded, self.now, self.wall)
        for link in range(len(self.hubs)):
            self._hub_turn(link)
        return [message for link, message in out if link == 0]

    def _hub_turn(self, link: int) -> None:
        hub, policy = self.hubs[link], self.agent.policy
        hub.state.tick(self.now, self.wall)
        hub.state.drain(self.wall)
        hub.journal.extend(hub.book.take_journal())
        hub.stored.update(hub.replay.take_marks())  # stored with the journal rows, in one transaction
        for name in hub.state.take_resync_requests():
            policy.upstream(link, b"\x01" + proto.RESYNC_TOPIC_PREFIX + name.encode())
        for name, first, last in hub.replay.take_requests(self.now):
            assert name == AGENT
            policy.upstream(link, b"\x01" + proto.replay_topic(name, first, last))

    def settle(self, seconds: float = 12.0) -> None:
        """Turns without loss until the hub has caught up (replays answered, retried, done)."""
        end = self.now + seconds
        while self.now < end:
            self.step()

    def restart_agent(self) -> None:
        """The agent process restarts: a new epoch and seqs from 1, the outbox file opened again."""
        self.agent.outbox.close()
        outbox = Outbox(self.outbox_path, self.endpoints)
        levels, points = self.agent.levels, self.agent.points
        self.epoch += 1
        self.agent = AgentEnd(outbox, self.epoch, self.now)
        # A restarted agent polls its points again before it has anything to say: same levels here.
        for path, entry in points.items():
            self.agent.poll(path, levels[path], entry.polled_at_s)
        self._subscribe_all()

    def restart_hub(self) -> None:
        """The first hub restarts: its journal, stored outbox marks and alarms are kept (its state store:
        the book comes back with :meth:`AlarmBook.restore`, as the server's), the rest starts afresh."""
        old = self.hubs[0]
        hub = self.hubs[0] = HubEnd(old.stored)
        hub.book = AlarmBook.restore(None, old.book.alarms(), [], old.book.next_id, self.now, self.wall)
        hub.state = HubState(HUB_SETTINGS, old.state.epoch + 1, now=self.now, alarms=hub.book)
        hub.state.subscriptions.follow(b"", subscribed=True)
        hub.journal = old.journal
        self._subscribe_all()

    def journaled_levels(self, since: int = 0, link: int = 0) -> list[JournalEntry]:
        """The journal's level entries of this agent's points (hub ``link``), from index ``since`` on."""
        return [e for e in self.hubs[link].journal[since:] if e.kind == "level" and e.agent == AGENT]
