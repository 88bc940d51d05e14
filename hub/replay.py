"""What the hub missed of an agent, asked back from its outbox and replayed into the alarm book. No I/O.

A pure core beside :class:`~gsmon.hub.state.HubState` (protocol 1.3, "Outbox
and replay"; the agent side is :mod:`gsmon.agent.outbox`). Every time is an
argument (``now`` monotonic, ``wall`` wall-clock seconds)::

    server, per agent message HubState applied, with an outbox mark:
        core.observe(agent, epoch, seq, mark, state_end, now)
    server, per TRANSITIONS HubState applied (in its seq order):
        core.apply(msg, mount, mount_level, book, now, wall)       # a replay
        core.apply_live(msg, mount, book, now, wall)               # (1.3) live: ``msg.live`` set
    server, every turn:
        for agent, first, last in core.take_requests(now): subscribe + unsubscribe replay_topic(...)
        store.write_turn(..., meta=core.take_marks())        # with the journal, in ONE transaction

Rules:

* Per agent the hub keeps ``have``: every outbox entry up to it is in its
  journal (applied live or replayed, or journaled as lost). It is stored in
  the state store (meta ``outbox:<agent>`` = ``[outbox_id, have]``) in the same
  transaction as the journal rows it accounts for, so a restarted hub knows it;
  while a replay holds entries for matching (below), the stored one stays
  below them. What a hub journaled live in a break is not stored: one that
  restarts in the middle of a break may journal some entries twice (never
  none).
* ``have`` follows the agent's ``tseq_head`` while the hub hears the agent's
  messages without a break: the same epoch, seq after seq (a head is read by
  the agent before the points of its message, so every transition up to it is
  in that message or an earlier one). A head counts from the next message
  heard in order (not another part of the same DELTA): a flush's live
  TRANSITIONS come after its DELTAs, and one lost after them is a seq gap
  whose replay must still ask for their entries.
* A break (a seq gap, a new agent epoch, the hub's own restart) stops that;
  the hub's resync brings a STATE whose head ``H`` closes it: entries
  ``have+1 .. H`` are asked for (REPLAY topic ``have+1-H``) and, as they come,
  journaled and fed to the alarm book as replayed. Transitions after ``H``
  arrive live. An unanswered request is repeated after :data:`RETRY_S`
  without progress.
* An agent (or an outbox id) the hub has no record of is followed from its
  head: its earlier history predates this hub's journal and is not replayed.
  A head below ``have`` (the agent's outbox went back) is followed from there.
  Either in the middle of a replay: the entries held for matching are
  journaled, the rest of the range is lost (:meth:`ReplayCore._abandon`).
* Idempotent: an entry at or below ``have`` is never applied twice (a repeated
  or late TRANSITIONS, a batch asked twice).
* Every TRANSITIONS takes its place in the agent's seq order here too (the
  hub heard it: the next DELTA is in order after it, not a break).
* Live transitions (protocol "Live transitions", issue 17 §2): the hub keeps
  ``LIVE_TOPIC`` subscribed; an agent then sends, after each flush's DELTAs,
  the flush's window of entries with the *folded* ones listed (a blip RED and
  back between two flushes). Those are journaled at once with their original
  times as live entries (``replayed`` false: they are live, a flush late, and
  notified as such) and fed to the alarm book like replayed ones (a blip to
  RED latches), then :meth:`AlarmBook.replay_done` puts each point's alarm
  back on its live level. While the hub follows the heads,
  ``have`` moves to the window's last entry.
* Exactly once per (agent, tseq) (issue 17 §1): after a break the hub keeps
  ``journaled``, the tseqs above ``have`` it journaled live -- the listed
  entries, and the unlisted ones when it heard every message of their flush
  (seq ``live`` up to the TRANSITIONS) in order *and* the flush began after
  the resync STATE that closed the last break, above that STATE's head (only
  then was the book's level of each point current, so that the DELTAs it
  applied journaled them: in a break a DELTA showing the level the book had,
  after a change it missed, journals nothing) -- and the replay that closes
  the break skips them. An entry at or below the last replay's range that
  comes live is skipped too.
  And the level changes the alarm book journaled live in the break (DELTAs
  after the gap, the resync STATE showing what a lost DELTA carried, and the
  messages heard in order just before the gap whose head no later message
  confirmed -- ``recent`` -- since their entries are replayed too): the server
  hands every STATE's and DELTA's to :meth:`ReplayCore.note_live`. Each such
  change, and each debounce event the book journaled from a debounce map
  (``path -> [level, ...]``, :func:`_note_key`; ``noted`` while the break is open,
  ``stated`` once its STATE closed it) stands for one replayed entry of the
  point to that level: the point's replayed entries are held until the
  replay is complete, then matched from the last backwards (:func:`_unmatched`)
  and the others journaled, in order. Messages heard in order after the
  closing STATE are not noted (their changes are above the replay's range).
  This needs no live transitions (an agent before them is covered too), and
  relies on exact marks (protocol: the head read with the points).
  Server, per STATE or DELTA::

      noting = core.follows(agent); in_break = noting and core.in_break(agent, epoch, seq)
      mark = book.journal_mark(); state.apply(msg)
      if noting: core.note_live(agent, book.journal_since(mark), None if in_break else seq)
* Lost: entries below the agent's ``tseq_tail`` (or a TRANSITIONS ``lost``
  range) that the hub did not have were dropped by the agent's bounds; the
  hub journals one ``lost_transitions`` entry on the agent's mount (``value``
  ``[from, to]``) and moves ``have`` past them.
* Confirmations: the hub tells each agent what it has by a REPLAY request
  with an empty range (``have+1-have``) at most every
  :data:`CONFIRM_INTERVAL_S`, and with every replay request; the agent then
  drops what every hub confirmed. (A REPLAY subscription reaches every
  connected agent, so confirmations are rare by design.)
* A completed replay is journaled as one ``replayed`` entry on the mount
  (``comment`` "N transitions from T1 to T2", ``new`` the mount's level now):
  the notifier sends one summary per agent on it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from gsmon.common import names as naming
from gsmon.common import protocol as proto
from gsmon.hub.alarms import AlarmBook, JournalEntry

__all__ = ["CONFIRM_INTERVAL_S", "META_PREFIX", "RETRY_S", "ReplayCore", "ReplayStats"]

log = logging.getLogger(__name__)

META_PREFIX: Final = "outbox:"
RETRY_S: Final = 5.0
CONFIRM_INTERVAL_S: Final = 60.0
_INF: Final = math.inf
_LEVEL_KINDS: Final = ("level", "fresh")  # journal kinds of a point's level change from its agent
_EVENT_KINDS: Final = ("pending", "discarded")  # debounce events, journaled live from a point's debounce map


@dataclass(slots=True)
class ReplayStats:
    """Counters for the hub's health points."""

    replayed: int = 0  # outbox entries journaled as replayed
    live: int = 0  # folded entries of live TRANSITIONS journaled (blips between two DELTAs)
    duplicates: int = 0  # entries at or below `have` (asked twice, late answers): ignored
    unsolicited: int = 0  # TRANSITIONS nobody asked for (or from another outbox): dropped
    lost: int = 0  # entries journaled as lost_transitions
    requests: int = 0


@dataclass(slots=True)
class _Follow:
    """One agent's outbox as the hub follows it."""

    outbox_id: int
    have: int
    epoch: int = -1
    last_seq: int = -1
    contiguous: bool = False  # heard seq after seq since `have` last followed the head
    want: list[int] | None = None  # [next tseq expected, last asked for], while replaying
    asked_at: float = -_INF  # the request was (re)sent then, or progress was made
    live_head: int = 0  # heads heard in order while the replay runs
    held: int = 0  # the last in-order mark's head, taken at the next message heard in order (see _promote)
    run_from: int = 0  # the seq at which the current run of messages heard in order began
    journaled: set[int] = field(default_factory=set)  # tseqs above `have` journaled live (after a break)
    replayed_to: int = 0  # the last tseq a completed replay covered (a live entry at or below it is old)
    # The message that last closed a break (the resync STATE's last part, or where following began) and
    # its head: the book is current from it on, so a flush after it journals its unlisted entries above it.
    closed_seq: int = -1
    closed_head: int = 0
    # Levels the hub journaled live for a point during a break (a DELTA after the gap, the resync STATE):
    # path -> those levels in order; matched from the end against the replay's entries of the point.
    # `noted` while the break is open, `stated` once its resync STATE closed it (the replay's range).
    # (Keyed by _note_key: the path for level changes, kind NUL path for debounce events.)
    noted: dict[str, list[int]] = field(default_factory=dict)
    stated: dict[str, list[int]] = field(default_factory=dict)
    held_items: dict[str, list[proto.TransitionItem]] = field(default_factory=dict)  # replayed, of `stated`
    # Level changes the book journaled from messages heard in order whose entries no head has covered yet
    # (seq, path, level): a loss before the next message in order makes them part of the break (`noted`).
    recent: list[tuple[int, str, int]] = field(default_factory=list)
    confirmed: int = 0  # `have` as last told to the agent
    confirm_at: float = -_INF
    first_time: float = _INF  # the replayed entries' times (for the summary)
    last_time: float = -_INF
    count: int = 0
    points: set[str] = field(default_factory=set)


class ReplayCore:
    """The hub's view of every agent's outbox (module docstring). ``stored``: :meth:`take_marks` as stored."""

    def __init__(self, stored: Mapping[str, str] | None = None) -> None:
        self._agents: dict[str, _Follow] = {}
        self._dirty: set[str] = set()
        self.stats = ReplayStats()
        for key, text in (stored or {}).items():
            try:
                outbox_id, have = json.loads(text)
            except (ValueError, TypeError):
                log.warning("state store: ignored an unreadable outbox mark %s = %r", key, text[:80])
                continue
            if isinstance(outbox_id, int) and isinstance(have, int) and key.startswith(META_PREFIX):
                self._agents[key[len(META_PREFIX) :]] = _Follow(outbox_id, have, confirmed=have)

    def have(self, agent: str) -> int | None:
        """Every outbox entry of ``agent`` up to this is in the journal (None: not followed)."""
        follow = self._agents.get(agent)
        return None if follow is None else follow.have

    def replaying(self, agent: str) -> bool:
        follow = self._agents.get(agent)
        return follow is not None and follow.want is not None

    # -- input ----------------------------------------------------------------------------------

    def observe(
        self,
        agent: str,
        epoch: int,
        seq: int,
        mark: proto.OutboxMark,
        state_end: bool,
        now: float,
        delta: bool = False,
        *,
        mount: str | None = None,
        book: AlarmBook | None = None,
        wall: float = 0.0,
    ) -> list[tuple[int, int]]:
        """A STATE, DELTA or HEARTBEAT of ``agent`` that HubState applied, with its outbox ``mark``;
        ``state_end``: the last part of a STATE; ``delta``: it is a DELTA. Returns the ranges found lost
        (journal them with :meth:`journal_lost`). ``mount``, ``book``, ``wall``: where the entries a
        replay held go when the agent's outbox starts afresh or goes back in the middle of it."""
        follow = self._agents.get(agent)
        if follow is None or follow.outbox_id != mark.outbox_id:
            abandoned: list[tuple[int, int]] = []
            if follow is not None:
                log.info(
                    "agent %s has a new outbox (%x, was %x): followed from tseq %d, earlier entries not replayed",
                    agent,
                    mark.outbox_id,
                    follow.outbox_id,
                    mark.head,
                )
                abandoned = self._abandon(agent, follow, mount, book, wall)
            follow = self._agents[agent] = _Follow(mark.outbox_id, mark.head, epoch, seq, contiguous=True)
            follow.run_from = follow.closed_seq = seq
            follow.closed_head = mark.head
            self._dirty.add(agent)
            return abandoned
        in_order = self._heard(follow, epoch, seq)
        if in_order and not (delta and mark.head == follow.held):  # (another part of the same flush: hold on)
            self._promote(agent, follow)
        if mark.head < follow.have:
            log.info(
                "agent %s: its outbox is back at tseq %d (the hub had %d): followed from there",
                agent,
                mark.head,
                follow.have,
            )
            abandoned = self._abandon(agent, follow, mount, book, wall)
            follow.have = follow.confirmed = mark.head
            follow.want = None
            follow.journaled.clear()
            follow.recent.clear()
            follow.noted.clear()
            follow.stated.clear()
            follow.held_items.clear()
            follow.replayed_to = 0
            follow.held = 0
            follow.contiguous = in_order or state_end
            follow.closed_seq, follow.closed_head = seq, mark.head
            self._dirty.add(agent)
            return abandoned
        if follow.contiguous:
            follow.held = max(follow.held, mark.head)
            return []
        if not state_end:
            return []  # after a break: the resync STATE closes it
        follow.contiguous = True
        follow.closed_seq, follow.closed_head = seq, mark.head
        for key, levels in follow.noted.items():  # the break's notes are about entries up to this head
            follow.stated.setdefault(key, []).extend(levels)
        follow.noted = {}
        lost: list[tuple[int, int]] = []
        if follow.have + 1 < mark.tail:
            lost.append((follow.have + 1, mark.tail - 1))
            follow.have = mark.tail - 1
            self._dirty.add(agent)
        if follow.want is None:
            self._settle(agent, follow)  # what it journaled live since the break needs no asking
        if mark.head > follow.have:
            start = follow.want[0] if follow.want is not None else follow.have + 1
            follow.want = [max(start, follow.have + 1), mark.head]
            follow.asked_at = -_INF  # ask at once
            follow.live_head = mark.head
        elif follow.want is None:
            follow.stated.clear()  # nothing to replay: nothing to match
        follow.held = 0  # the replay covers up to this head; later ones are held as usual
        return lost

    def _abandon(
        self, agent: str, follow: _Follow, mount: str | None, book: AlarmBook | None, wall: float
    ) -> list[tuple[int, int]]:
        """The agent's outbox started afresh (or went back) in the middle of a replay: the entries held for
        matching are journaled now (matched as at the replay's end), and the rest of the range asked for,
        which that outbox no longer has, is returned as lost."""
        if follow.want is None:
            return []
        unmatched: list[proto.TransitionItem] = []
        for key, held in follow.held_items.items():
            unmatched += _unmatched(held, follow.stated.get(key, []))
        if mount is not None:
            for item in sorted(unmatched, key=lambda item: item.tseq):
                if self._journal(agent, mount, item, book, wall) is not None:
                    self.stats.replayed += 1
        follow.held_items = {}
        last = follow.want[1]
        follow.want = None
        return [(follow.have + 1, last)] if follow.have < last else []

    def in_break(self, agent: str, epoch: int, seq: int) -> bool:
        """Whether a message ``(epoch, seq)`` of ``agent`` about to be applied falls in a break (out of
        order, or after one its resync STATE has not closed yet): its live level changes go to
        :meth:`note_live`. Messages heard in order after the closing STATE are not in it, even while the
        replay runs: the book is current again, so what they journal is above the replay's range (noting
        them made the replay drop an entry it should journal)."""
        follow = self._agents.get(agent)
        if follow is None:
            return False
        in_order = epoch == follow.epoch and seq == follow.last_seq + 1
        return not in_order or not follow.contiguous

    def follows(self, agent: str) -> bool:
        """Whether ``agent``'s outbox is followed (its STATEs' and DELTAs' journal entries go to :meth:`note_live`)."""
        return agent in self._agents

    def note_live(self, agent: str, entries: Iterable[JournalEntry], seq: int | None = None) -> None:
        """What the alarm book journaled while applying a STATE or DELTA of ``agent``: the points' level
        changes (issue 17 §1: the replay then does not journal the same change again). ``seq`` None: a
        message :meth:`in_break` named; else the seq of one heard in order, whose changes are kept until
        a head covers them (the next message in order): a loss first puts them in the break too (their
        entries are then replayed, and the book journaled them already)."""
        follow = self._agents.get(agent)
        if follow is None:
            return
        if seq is None:
            self._into_break(follow)
        for entry in entries:
            if entry.agent != agent or entry.replayed or entry.new is None:
                continue
            if entry.kind in _LEVEL_KINDS or entry.kind in _EVENT_KINDS:
                key = _note_key(entry.kind, entry.path)
                if seq is None:
                    follow.noted.setdefault(key, []).append(entry.new)
                else:
                    follow.recent.append((seq, key, entry.new))

    @staticmethod
    def _into_break(follow: _Follow) -> None:
        """A break: the changes journaled from messages no head covered are the break's too."""
        for _, key, level in follow.recent:
            follow.noted.setdefault(key, []).append(level)
        follow.recent.clear()

    def _advance(self, agent: str, follow: _Follow, head: int) -> None:
        if head > follow.have:
            follow.have = head
            self._dirty.add(agent)
        self._settle(agent, follow)

    def _settle(self, agent: str, follow: _Follow) -> None:
        """Move ``have`` over the tseqs journaled live just above it; forget those at or below it."""
        journaled = follow.journaled
        if not journaled:
            return
        have = follow.have
        if follow.want is None:
            while have + 1 in journaled:
                have += 1
        if have != follow.have:
            follow.have = have
            self._dirty.add(agent)
        if min(journaled) <= have:
            follow.journaled = {tseq for tseq in journaled if tseq > have}

    def _promote(self, agent: str, follow: _Follow) -> None:
        """A message heard in order after a held mark: what the mark's head covers has all arrived.

        A mark's head counts only from the *next* message heard in order: a flush's live TRANSITIONS
        follow its DELTAs, so a head taken at the DELTA would skip the blips of a TRANSITIONS lost after
        it (that loss is a seq gap, and the replay closing it then asks for them)."""
        held, follow.held = follow.held, 0
        if follow.recent and follow.contiguous:
            # The messages before this one: their entries are all at or below their head (exact marks),
            # which counts from now (or the replay under way covers them).
            follow.recent = [note for note in follow.recent if note[0] >= follow.last_seq]
        if not held or not follow.contiguous:
            return
        if follow.want is None:
            self._advance(agent, follow, held)
        else:
            follow.live_head = max(follow.live_head, held)

    @staticmethod
    def _heard(follow: _Follow, epoch: int, seq: int) -> bool:
        """A message of the agent (any kind HubState applied): in order after the last one heard?"""
        in_order = epoch == follow.epoch and seq == follow.last_seq + 1
        follow.epoch, follow.last_seq = epoch, seq
        if not in_order:
            follow.contiguous = False
            follow.run_from = seq
            follow.held = 0
            ReplayCore._into_break(follow)
        return in_order

    def apply(
        self,
        msg: proto.Transitions,
        mount: str | None,
        mount_level: int | None,
        book: AlarmBook | None,
        now: float,
        wall: float,
    ) -> None:
        """A TRANSITIONS message HubState applied (in order): journal and latch what the hub did not have."""
        agent = msg.sender
        follow = self._agents.get(agent)
        if follow is not None and self._heard(follow, msg.epoch, msg.seq):  # it took a seq: the next DELTA
            self._promote(agent, follow)  # is in order after it
        if follow is None or follow.outbox_id != msg.outbox_id or follow.want is None or mount is None:
            self.stats.unsolicited += 1
            return
        first, last = follow.want
        if msg.first > first:
            return  # an answer to an earlier request, past a lost message: the retry asks again
        if msg.lost is not None:
            lost_from, lost_to = max(msg.lost[0], follow.have + 1), min(msg.lost[1], last)
            if lost_from <= lost_to:
                self.journal_lost(agent, mount, [(lost_from, lost_to)], book, wall)
                follow.have = max(follow.have, lost_to)
        touched: list[str] = []
        for item in msg.transitions:
            if item.tseq <= follow.have or item.tseq > last or item.tseq in follow.journaled:
                self.stats.duplicates += 1  # asked twice, or journaled live since the break (issue 17 §1)
                follow.have = max(follow.have, min(item.tseq, last))
                continue
            follow.have = item.tseq
            if follow.stated:
                joined = _joined(mount, item.path)
                key = None if joined is None else _note_key(item.kind, joined)
                if key is not None and key in follow.stated:
                    follow.held_items.setdefault(key, []).append(item)  # until the replay is complete
                    continue
            path = self._journal(agent, mount, item, book, wall)
            if path is None:
                continue
            self.stats.replayed += 1
            follow.count += 1
            follow.first_time = min(follow.first_time, item.time)
            follow.last_time = max(follow.last_time, item.time)
            if item.kind == "level" and path not in follow.points:
                follow.points.add(path)
                touched.append(path)
        follow.have = max(follow.have, min(msg.last, last))
        follow.want = None if follow.have >= last else [follow.have + 1, last]
        follow.asked_at = now
        self._dirty.add(agent)
        if follow.want is not None:
            return
        # Done. The points the hub journaled live during the break: their last entry to that level is what
        # was journaled (by the DELTA or the STATE that showed it); the others go in now, in order.
        unmatched: list[proto.TransitionItem] = []
        for key, held in follow.held_items.items():
            kept = _unmatched(held, follow.stated.get(key, []))
            self.stats.duplicates += len(held) - len(kept)
            unmatched += kept
        for item in sorted(unmatched, key=lambda item: item.tseq):
            joined_path = self._journal(agent, mount, item, book, wall)
            if joined_path is not None:
                self.stats.replayed += 1
                follow.count += 1
                follow.first_time = min(follow.first_time, item.time)
                follow.last_time = max(follow.last_time, item.time)
                if item.kind == "level":
                    follow.points.add(joined_path)
        follow.held_items = {}
        follow.stated = {}
        # The alarms of the replayed points follow their live levels again; one summary entry.
        follow.replayed_to = max(follow.replayed_to, last)
        if follow.contiguous:
            follow.have = max(follow.have, follow.live_head)
        self._settle(agent, follow)
        if book is not None:
            for path in sorted(follow.points):
                book.replay_done(path, wall)
            if follow.count:
                book.record(
                    "replayed",
                    mount,
                    wall,
                    at=follow.last_time,
                    new=mount_level,
                    agent=agent,
                    comment=f"{follow.count} transitions from {_iso(follow.first_time)} to {_iso(follow.last_time)}"
                    " replayed from the agent's outbox",
                    value=[follow.first_time, follow.last_time],
                    replayed=True,
                )
        log.info("agent %s: replayed %d outbox entries (now at tseq %d)", agent, follow.count, follow.have)
        follow.count = 0
        follow.first_time, follow.last_time = _INF, -_INF
        follow.points = set()
        follow.confirm_at = -_INF  # confirm at once: the agent may drop them

    def apply_live(
        self, msg: proto.Transitions, mount: str | None, book: AlarmBook | None, now: float, wall: float
    ) -> None:
        """Live TRANSITIONS HubState applied (protocol "Live transitions"): journal and latch the folded
        entries they list (a blip between two DELTAs); remember, after a break, every entry of
        ``first..last`` journaled so, so that the replay closing the break drops them (issue 17 §1, §2)."""
        agent = msg.sender
        follow = self._agents.get(agent)
        if follow is not None and self._heard(follow, msg.epoch, msg.seq):
            self._promote(agent, follow)
        if follow is None or follow.outbox_id != msg.outbox_id or mount is None or msg.live is None:
            self.stats.unsolicited += 1
            return
        # Every message of the flush (seq `live` .. this one) heard in order: the unlisted entries are
        # reflected in DELTAs this hub applied. They were journaled by them only if the book was current
        # then: the flush began after the message that closed the last break (a resync STATE), and the
        # entry is above that STATE's head (below it, the STATE showed it: the replay or `stated` has it).
        heard_flush = follow.run_from <= msg.live
        # Heard seq after seq and no replay running: `have` follows the heads, the entries listed are new.
        following = follow.contiguous and follow.want is None
        touched: list[str] = []
        for item in msg.transitions:
            if (
                item.tseq in follow.journaled
                or item.tseq <= follow.replayed_to
                or (not following and item.tseq <= follow.have)
            ):
                self.stats.duplicates += 1
                continue
            path = self._journal(agent, mount, item, book, wall, replayed=False)
            if path is not None:
                self.stats.live += 1
                if item.kind == "level" and path not in touched:
                    touched.append(path)
            if not following:
                follow.journaled.add(item.tseq)
        if book is not None:
            for path in touched:
                book.replay_done(path, wall, replayed=False)  # its alarm follows the point's live level again
        if heard_flush:
            if following:
                self._advance(agent, follow, msg.last)
            elif follow.contiguous and follow.closed_seq < msg.live:
                follow.journaled.update(range(max(msg.first, follow.have + 1, follow.closed_head + 1), msg.last + 1))
        self._settle(agent, follow)

    @staticmethod
    def _journal(
        agent: str, mount: str, item: proto.TransitionItem, book: AlarmBook | None, wall: float, replayed: bool = True
    ) -> str | None:
        """Journal one outbox entry with its original time (``replayed``: from a replay, or live) and feed it
        to the alarm book; returns the point's path in the hub's tree (None: not a path of this agent's,
        nothing journaled)."""
        path = _joined(mount, item.path)
        if path is None:
            return None  # never a point of this agent: nothing to journal under
        if book is None:
            return path
        if item.kind == "level":
            book.replayed_level(
                path, agent, item.old, item.new, item.alertstr, item.value, item.time, wall, replayed=replayed
            )
        elif replayed:
            book.record(item.kind, path, wall, at=item.time, old=item.old, new=item.new, agent=agent, replayed=True)
        else:
            book.record(item.kind, path, wall, at=item.time, old=item.old, new=item.new, agent=agent)
        return path

    def journal_lost(
        self, agent: str, mount: str | None, ranges: Iterable[tuple[int, int]], book: AlarmBook | None, wall: float
    ) -> None:
        """Journal ``lost_transitions`` on the agent's mount for each tseq range the agent no longer has."""
        for lost_from, lost_to in ranges:
            self.stats.lost += lost_to - lost_from + 1
            log.warning(
                "agent %s: transitions %d..%d were dropped from its outbox before this hub had them "
                "(its outbox bound); journaled as lost_transitions",
                agent,
                lost_from,
                lost_to,
            )
            if book is not None and mount is not None:
                book.record(
                    "lost_transitions",
                    mount,
                    wall,
                    agent=agent,
                    value=[lost_from, lost_to],
                    comment=f"outbox entries {lost_from}..{lost_to} of agent {agent} were lost",
                    replayed=True,
                )

    # -- output ---------------------------------------------------------------------------------

    def take_requests(self, now: float) -> list[tuple[str, int, int]]:
        """REPLAY requests to send now: ``(agent, first, last)``; ``last < first`` only confirms."""
        out: list[tuple[str, int, int]] = []
        for agent, follow in self._agents.items():
            if follow.want is not None:
                if now - follow.asked_at >= RETRY_S:
                    follow.asked_at = now
                    follow.confirmed = follow.want[0] - 1
                    follow.confirm_at = now
                    self.stats.requests += 1
                    out.append((agent, follow.want[0], follow.want[1]))
            elif follow.have > follow.confirmed and now - follow.confirm_at >= CONFIRM_INTERVAL_S:
                follow.confirmed = follow.have
                follow.confirm_at = now
                out.append((agent, follow.have + 1, follow.have))
        return out

    def take_marks(self) -> dict[str, str]:
        """Meta rows to store (``outbox:<agent>`` -> ``[outbox_id, have]``) for what changed since the last call."""
        marks = {}
        for agent in self._dirty:
            follow = self._agents.get(agent)
            if follow is not None:
                have = follow.have
                if follow.held_items:
                    # Replayed entries held for matching are not in the journal yet: a hub restarted before
                    # the replay completes asks for them again (journaling some twice rather than none).
                    have = min(have, min(held[0].tseq for held in follow.held_items.values()) - 1)
                marks[META_PREFIX + agent] = json.dumps([follow.outbox_id, have])
        self._dirty.clear()
        return marks


def _note_key(kind: str, path: str) -> str:
    """Where a change journaled live is noted: a point's level changes under its path, its debounce events
    under their kind and its path (a NUL, never in a path, between)."""
    return path if kind in _LEVEL_KINDS else f"{kind}\x00{path}"


def _unmatched(held: list[proto.TransitionItem], stated: list[int]) -> list[proto.TransitionItem]:
    """The replayed entries of one point that the levels journaled live for it in the break do not stand for.

    Each live level stands for one entry to that level, later ones for later entries: matched from the end
    (the last level with the last entry to it, the one before with an earlier entry to its level, ...).
    The others were not seen live (a lost flush's, a blip's) and are journaled."""
    matched: set[int] = set()
    levels = list(stated)
    for index in range(len(held) - 1, -1, -1):
        if not levels:
            break
        if held[index].new == levels[-1]:
            matched.add(index)
            levels.pop()
    return [item for index, item in enumerate(held) if index not in matched]


def _joined(mount: str, path: str) -> str | None:
    """An entry's point path in the hub's tree (None: not a valid path inside an agent)."""
    try:
        naming.check_path(path, "point path")
        return naming.join(mount, path)
    except naming.InvalidNameError:
        return None


def _iso(wall: float) -> str:
    from gsmon.hub.alarms import iso_utc

    return iso_utc(wall) or "-"
