"""What an agent sends to which hub, and when: the send policy of an agent's links. No clock, no sockets.

::

    publisher thread:  a frame read from link i's XPUB --> SendPolicy.upstream(i, frame) --> a hub wants a STATE
                       every loop turn ------------------> SendPolicy.tick(now, wall, source) --> [(i, message)]
                       sleep until ---------------------> SendPolicy.next_due()
                       on stop -------------------------> SendPolicy.bye(wall) --> [(i, BYE)]

Shaped like :class:`~gsmon.hub.state.HubState`: every time is an argument
(``now`` is ``time.monotonic()``, ``wall`` is ``time.time()``), and it returns
the messages to send as ``(link index, message)`` pairs in order; the caller
encodes and sends them, watches the sockets and replaces refused ones. The
points come from a :class:`PointSource`. Two callers, one set of rules: the
agent's publisher (:mod:`gsmon.agent.publisher`, the Monitor as its source,
one link per hub) and a site hub's link to its central hub
(:mod:`gsmon.hub.upstream`, one link, the site's tree as its source: a site
hub publishes upstream as an agent does). It lives here, below both, because
the agent and the hub meet only on the wire.

Rules (protocol: "When to send"):

* A link's hub gets a STATE when it subscribed to everything (the hub
  (re)connected: ``0x01`` + empty topic) or to this agent's resync topic
  (it saw a gap), and every link gets one every ``state_interval_s``. A
  STATE has at least one part (an agent without points still says its
  mount) and at most :data:`~gsmon.common.protocol.MAX_POINTS_PER_MESSAGE`
  points and as many parents per part; parts are numbered ``0 .. parts-1``.
  It is sent only to the links that asked: to another hub it would look like
  a gap.
* Every ``flush_interval_s`` the points polled since the last flush (latest
  poll per point) go to every link as DELTAs of at most
  ``MAX_POINTS_PER_MESSAGE`` points; then a HEARTBEAT goes to each link that
  was sent nothing for ``heartbeat_interval_s``.
* On stop, a BYE to every link.
* Each link numbers its messages itself: ``seq`` 1, 2, 3 ... (protocol: per
  sender, epoch and connection). The count goes on when the publisher gives a
  refused link a new socket, so the hub sees no false gap.
* Upstream frames that are neither: a NOTICE (protocol) naming this agent
  gives the hub's reason for refusing its messages, for the publisher to log.
* The outbox (1.3, :mod:`gsmon.agent.outbox`): every STATE, DELTA and
  HEARTBEAT carries its mark (id, tail, head), read *before* the points it
  goes with are taken, so that every transition up to the head is reflected in
  that message or an earlier one; and, when the source notes the head as it
  takes the points (under the lock its records take: the Monitor does, see
  :meth:`~gsmon.agent.outbox.Outbox.note_head`), the head noted then, so that
  no later one is (protocol: exact marks). A REPLAY request from a link's hub
  (``first-last``) confirms every entry before ``first`` for that link and,
  when ``last >= first``, books a replay: TRANSITIONS messages of at most
  :data:`~gsmon.common.protocol.MAX_TRANSITIONS_PER_MESSAGE` entries and about
  :data:`~gsmon.common.protocol.MAX_TRANSITIONS_BYTES`, paced to at most
  :data:`REPLAY_RATE_PER_S` entries a second per link, the last one ``done``.
  A later request replaces the one in progress.
* Live transitions (1.3, protocol "Live transitions"): a link whose hub keeps
  :data:`~gsmon.common.protocol.LIVE_TOPIC` subscribed gets, after the DELTAs
  of every flush that had transitions, TRANSITIONS (``live``: the seq of the
  flush's first message) covering the flush's window (the outbox entries cut
  with the points taken, :meth:`~gsmon.agent.outbox.Outbox.cut`), listing the
  entries those DELTAs cannot show (:func:`folded`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol

from gsmon.common import protocol as proto

__all__ = ["Outgoing", "PointSource", "PublisherSettings", "ReplaySource", "SendPolicy", "folded"]

_SUBSCRIBE: Final = b"\x01"
_UNSUBSCRIBE: Final = b"\x00"
#: Replayed outbox entries a link is sent per second at most (a hub catching up must not flood its queue).
REPLAY_RATE_PER_S: Final = 5000.0


@dataclass(frozen=True, slots=True)
class PublisherSettings:
    """Timings of the agent's link (seconds)."""

    flush_interval_s: float = 0.05
    heartbeat_interval_s: float = 1.0
    state_interval_s: float = 30.0
    sndhwm: int = 10_000


class PointSource(Protocol):
    """What the publisher needs from a Monitor (a fake will do in tests)."""

    def take_changes(self) -> list[proto.PointEntry]:
        """Points polled since the last call, latest poll per point."""
        ...

    def full_state(self) -> tuple[list[proto.PointEntry], list[str]]:
        """Every polled point, and every parent's path."""
        ...

    def unpolled_paths(self) -> list[str]:
        """The paths of the points not polled yet (a STATE names them so the hub keeps them)."""
        ...

    def point_count(self) -> int:
        """How many points there are."""
        ...


class ReplaySource(Protocol):
    """What the policy needs from the agent's outbox (:class:`gsmon.agent.outbox.Outbox`) to replay it."""

    outbox_id: int

    @property
    def head(self) -> int:
        """The last tseq given (0: none yet)."""
        ...

    @property
    def tail(self) -> int:
        """The oldest tseq still held (``head + 1`` when empty)."""
        ...

    def confirm(self, link: int, upto: int) -> None:
        """``link``'s hub has every entry up to ``upto``."""
        ...

    def read(self, first: int, last: int, max_entries: int, max_bytes: int) -> list[proto.TransitionItem]:
        """Entries ``first..last`` still held, oldest first."""
        ...

    def take_noted_head(self) -> int | None:
        """The head noted as the source took the points (under its lock), None when the source does not."""
        ...

    def take_window(self) -> list[proto.TransitionItem]:
        """The entries recorded in the flush windows closed since the last call (live transitions)."""
        ...

    def commit(self, wall: float | None) -> None:
        """Write what was recorded since the last commit in one transaction (before anything reflecting it
        is sent)."""
        ...


Outgoing = tuple[int, proto.Message]  # (link index, message)


class _LinkState:
    """What the policy keeps per link: its seq, when it was last sent something, whether its hub wants a STATE."""

    __slots__ = ("last_sent", "live", "needs_state", "replay", "replay_at", "seq")

    def __init__(self) -> None:
        self.seq = 0
        self.last_sent = -float("inf")
        self.needs_state = False
        self.live = False  # its hub keeps LIVE_TOPIC subscribed: send it the flushes' live transitions
        self.replay: list[int] | None = None  # [next tseq to send, last asked for], while a replay is due
        self.replay_at = -float("inf")  # the next TRANSITIONS may go then (pacing)


class SendPolicy:
    """The send policy of one agent's links (module docstring)."""

    def __init__(
        self,
        agent: str,
        epoch: int,
        mount: str,
        links: int,
        settings: PublisherSettings,
        now: float,
        outbox: ReplaySource | None = None,
    ) -> None:
        if links < 1:
            raise ValueError("at least one link is needed")
        self.agent = agent
        self.epoch = epoch
        self.mount = mount
        self.settings = settings
        self.points_sent = 0  # point entries put in STATEs (per link) and DELTAs (once for all links)
        self._links = [_LinkState() for _ in range(links)]
        self.outbox = outbox
        self.transitions_sent = 0
        self.live_sent = 0  # folded entries sent in live TRANSITIONS (per flush, once for all links)
        self.live_messages = 0  # live TRANSITIONS sent (every link's)
        self._resync_topic = proto.RESYNC_TOPIC_PREFIX + agent.encode()
        self._next_flush = now + settings.flush_interval_s
        self._next_state = now + settings.state_interval_s

    # ------------------------------------------------------------------

    def upstream(self, link: int, frame: bytes) -> str | None:
        """One frame read from ``link``'s XPUB. A subscription to everything or to this agent's
        resync topic books a STATE for that link; a NOTICE for this agent returns the hub's reason
        (to log); anything else returns None."""
        if frame[:1] == _SUBSCRIBE and frame[1:] in (b"", self._resync_topic):
            self._links[link].needs_state = True
            return None
        if frame[1:] == proto.LIVE_TOPIC and frame[:1] in (_SUBSCRIBE, _UNSUBSCRIBE):
            self._links[link].live = frame[:1] == _SUBSCRIBE and self.outbox is not None
            return None
        if self.outbox is not None and (asked := proto.parse_replay(self.agent, frame)) is not None:
            self.replay_asked(link, *asked)
            return None
        return proto.parse_notice(self.agent, frame)

    def replay_asked(self, link: int, first: int, last: int) -> None:
        """``link``'s hub has every outbox entry before ``first`` and asks for ``first..last`` (none if
        ``last < first``)."""
        outbox = self.outbox
        if outbox is None:
            return
        outbox.confirm(link, first - 1)
        state = self._links[link]
        state.replay = [first, min(last, outbox.head)] if last >= first else None

    def wants_state(self, link: int) -> bool:
        """Whether ``link``'s hub is owed a STATE (sent at the next :meth:`tick`)."""
        return self._links[link].needs_state

    def book_state(self, link: int) -> None:
        """Owe ``link``'s hub a STATE (a site hub's point went: only a STATE says so)."""
        self._links[link].needs_state = True

    def header(self, link: int, now: float, wall: float) -> dict[str, Any]:
        """The header of one more message on ``link`` (its next seq): for a message the policy does not
        make itself (a site hub's UPSTREAM_RESULT)."""
        return self._header(self._links[link], now, wall)

    def set_last_sent(self, link: int, now: float) -> None:
        """Say ``link`` was last sent a message at ``now`` (a test makes a HEARTBEAT due with it)."""
        self._links[link].last_sent = now

    def next_due(self) -> float:
        """The earliest time :meth:`tick` has something to do without news from upstream."""
        return min(self._next_flush, self._next_state)

    def tick(self, now: float, wall: float, source: PointSource) -> list[Outgoing]:
        """What to send now, in order: STATEs owed, then the flush's DELTAs and HEARTBEATs when it is due."""
        out: list[Outgoing] = []
        settings = self.settings
        links = self._links
        if now >= self._next_state:
            self._next_state = now + settings.state_interval_s
            for link in links:
                link.needs_state = True
        if any(link.needs_state for link in links):
            before = self._mark()  # before the points: see the module docstring
            entries, parents = source.full_state()
            self._outbox_mark = self._exact(before)
            unpolled = source.unpolled_paths()
            for index, link in enumerate(links):
                if link.needs_state:
                    link.needs_state = False
                    self._state(index, entries, parents, unpolled, now, wall, out)
        if now >= self._next_flush:
            self._next_flush = now + settings.flush_interval_s
            before = self._mark()
            changes = source.take_changes()
            self._outbox_mark = self._exact(before)
            # The window: the outbox entries of exactly these points (the Monitor cuts it as it takes them).
            window = self.outbox.take_window() if self.outbox is not None else []
            flush_from = [link.seq + 1 for link in links]  # each link's first message of this flush
            if changes:
                self._delta(changes, now, wall, out)
            for index, link in enumerate(links):
                if now - link.last_sent >= settings.heartbeat_interval_s:
                    beat = proto.Heartbeat(
                        **self._header(link, now, wall),
                        mount=self.mount,
                        heartbeat_s=settings.heartbeat_interval_s,
                        point_count=source.point_count(),
                        outbox=self._outbox_mark,
                    )
                    out.append((index, beat))
            if window:
                self._live(window, flush_from, now, wall, out)
        if self.outbox is not None:
            # One transaction for everything recorded since the last flush, before any message that
            # reflects it is sent (agent/outbox.py: Durability).
            self.outbox.commit(wall)
            for index, link in enumerate(links):
                if link.replay is not None and now >= link.replay_at:
                    self._replay(index, link, now, wall, out)
        return out

    _outbox_mark: proto.OutboxMark | None = None

    def _mark(self) -> proto.OutboxMark | None:
        outbox = self.outbox
        return None if outbox is None else proto.OutboxMark(outbox.outbox_id, outbox.tail, outbox.head)

    def _exact(self, before: proto.OutboxMark | None) -> proto.OutboxMark | None:
        """The mark of the points just taken: the head the source noted as it took them (under the lock its
        records take, so exactly the entries they reflect), else the one read ``before`` (every entry up to
        it is reflected; a few after it may be too)."""
        outbox = self.outbox
        if outbox is None or before is None:
            return before
        head = outbox.take_noted_head()
        if head is None or head < before.head:
            return before
        return proto.OutboxMark(before.outbox_id, before.tail, head)

    def _replay(self, index: int, link: _LinkState, now: float, wall: float, out: list[Outgoing]) -> None:
        """The next TRANSITIONS of ``link``'s replay (one per call, paced)."""
        outbox = self.outbox
        assert outbox is not None
        assert link.replay is not None
        first, last = link.replay
        lost: tuple[int, int] | None = None
        tail = outbox.tail
        if first < tail:
            lost = (first, min(last, tail - 1))  # the bounds dropped these before this hub confirmed them
        entries = outbox.read(max(first, tail), last, proto.MAX_TRANSITIONS_PER_MESSAGE, proto.MAX_TRANSITIONS_BYTES)
        # The outbox holds tail..head without holes: a message cut by count or size covers up to its last entry.
        covered = entries[-1].tseq if entries else last
        done = covered >= last
        message = proto.Transitions(
            **self._header(link, now, wall),
            outbox_id=outbox.outbox_id,
            first=first,
            last=covered,
            done=done,
            transitions=entries,
            lost=lost,
        )
        out.append((index, message))
        self.transitions_sent += len(entries)
        link.replay = None if done else [covered + 1, last]
        link.replay_at = now + max(1, len(entries)) / REPLAY_RATE_PER_S

    def _live(
        self,
        window: list[proto.TransitionItem],
        flush_from: list[int],
        now: float,
        wall: float,
        out: list[Outgoing],
    ) -> None:
        """The flush's live TRANSITIONS to every link that asked for them (module docstring)."""
        outbox = self.outbox
        assert outbox is not None
        live = [index for index, link in enumerate(self._links) if link.live]
        if not live:
            return
        listed = {item.tseq for item in folded(window)}
        for part in _parts(window, listed):
            items = [item for item in part if item.tseq in listed]
            for index in live:
                message = proto.Transitions(
                    **self._header(self._links[index], now, wall),
                    outbox_id=outbox.outbox_id,
                    first=part[0].tseq,
                    last=part[-1].tseq,
                    done=True,
                    transitions=items,
                    live=flush_from[index],
                )
                out.append((index, message))
                self.live_messages += 1
            self.live_sent += len(items)

    def bye(self, now: float, wall: float) -> list[Outgoing]:
        """A BYE for every link (the agent stops)."""
        return [(index, proto.Bye(**self._header(link, now, wall))) for index, link in enumerate(self._links)]

    # ------------------------------------------------------------------

    def _header(self, link: _LinkState, now: float, wall: float) -> dict[str, Any]:
        link.seq += 1
        link.last_sent = now
        return {"sender": self.agent, "epoch": self.epoch, "seq": link.seq, "sent_ns": int(wall * 1e9)}

    def _state(
        self,
        index: int,
        entries: list[proto.PointEntry],
        parents: list[str],
        unpolled: list[str],
        now: float,
        wall: float,
        out: list[Outgoing],
    ) -> None:
        size = proto.MAX_POINTS_PER_MESSAGE
        parts = max(1, -(-len(entries) // size), -(-len(parents) // size), -(-len(unpolled) // size))
        link = self._links[index]
        for part in range(parts):
            state = proto.State(
                **self._header(link, now, wall),
                mount=self.mount,
                heartbeat_s=self.settings.heartbeat_interval_s,
                points=entries[part * size : (part + 1) * size],
                parents=parents[part * size : (part + 1) * size],
                unpolled=unpolled[part * size : (part + 1) * size],
                part=part,
                parts=parts,
                outbox=self._outbox_mark,
            )
            out.append((index, state))
        self.points_sent += len(entries)

    def _delta(self, changes: list[proto.PointEntry], now: float, wall: float, out: list[Outgoing]) -> None:
        size = proto.MAX_POINTS_PER_MESSAGE
        for start in range(0, len(changes), size):
            batch = changes[start : start + size]
            for index, link in enumerate(self._links):
                out.append(
                    (index, proto.Delta(**self._header(link, now, wall), points=batch, outbox=self._outbox_mark))
                )
        self.points_sent += len(changes)


def _parts(window: list[proto.TransitionItem], listed: set[int]) -> list[list[proto.TransitionItem]]:
    """The window cut into live TRANSITIONS: at most MAX_TRANSITIONS_PER_MESSAGE entries each, and about
    MAX_TRANSITIONS_BYTES of listed entries (at least one entry, however big)."""
    parts: list[list[proto.TransitionItem]] = []
    part: list[proto.TransitionItem] = []
    size = 0
    for item in window:
        cost = 0
        if item.tseq in listed:
            cost = len(item.path) + len(item.alertstr) + 32
            cost += 0 if item.value is None else len(proto.pack_value(item.value))
        if part and (len(part) >= proto.MAX_TRANSITIONS_PER_MESSAGE or size + cost > proto.MAX_TRANSITIONS_BYTES):
            parts.append(part)
            part, size = [], 0
        part.append(item)
        size += cost
    if part:
        parts.append(part)
    return parts


def folded(window: list[proto.TransitionItem]) -> list[proto.TransitionItem]:
    """The entries of a flush's window that its DELTAs cannot show (protocol "Live transitions").

    The DELTA carries each point's latest poll: of a point's ``level`` entries in the window the last one
    is what the hub sees (from the level the point had before the window to the last), unless the point
    is back where it started (the hub sees no change); the ones before it are folded. Likewise the
    ``pending``/``discarded`` entries of a point: one is seen (its debounce map in the DELTA), of more all
    but the last are folded. Returned in tseq order.
    """
    by_point: dict[tuple[str, bool], list[proto.TransitionItem]] = {}
    for item in window:
        by_point.setdefault((item.path, item.kind == "level"), []).append(item)
    out: list[proto.TransitionItem] = []
    for (_, is_level), items in by_point.items():
        if len(items) == 1:
            continue
        back = is_level and items[0].old == items[-1].new
        out.extend(items if back else items[:-1])
    out.sort(key=lambda item: item.tseq)
    return out
