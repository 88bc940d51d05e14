"""Who follows what on the hub's subscribers XPUB: the alignment guard, the ledger, the publish counters. No I/O.

The server loop reads every upstream frame of the subscribers socket and asks
:meth:`SubscriptionLedger.read` what to do with it (a ``setsockopt`` to apply,
or nothing); :meth:`SubscriptionLedger.drained` when a read returned EAGAIN.
:meth:`HubState.drain <gsmon.hub.state.HubState.drain>` asks
:meth:`SubscriptionLedger.followed` which path prefixes anyone follows and
tells :meth:`SubscriptionLedger.count_published` what it published, so this
module is the one owner of subscriptions and of the per-prefix publish
counters that heartbeats carry (protocol: gap detection). A prefix is
followed plainly (its topic: a message per NODE, matched by libzmq) or (1.4)
in NODES batches (:func:`~gsmon.common.protocol.nodes_topic`: drain makes
each batch, :meth:`SubscriptionLedger.nodes_followed` says for which
prefixes); both count under the prefix's one publish counter.

Why manual mode
===============
The XPUB runs with ``ZMQ_XPUB_MANUAL``: a subscription takes effect only when
the hub applies it with ``setsockopt(SUBSCRIBE)``. That is what lets the hub
cap subscriptions per subscriber and in total (libzmq's own trie would grow
with whatever a peer sends) and, with keys, refuse a prefix outside the
sender's read grant (checked against the frame's ``User-Id``). One socket per
grant, or filtering per connection in Python, would cost a socket rebuild or a
copy per update; manual mode costs nothing per update.

The trap: which connection a ``setsockopt`` lands on
======================================================
In manual mode ``setsockopt(SUBSCRIBE)`` applies to libzmq's ``_last_pipe``:
the connection of the most recently *received* subscription. libzmq 4.3.5's
``src/xpub.cpp`` keeps two queues: ``xread_activated`` pushes, for every
(un)subscription a peer sends, one entry on ``_pending_data`` (with its
metadata) **and** one on ``_pending_pipes``; ``send_unsubscription`` (the
unsubscriptions libzmq makes itself when a connection closes) pushes one on
each too, with a NULL pipe; but a non-subscription upstream message (empty,
or a first byte other than 0 and 1) is pushed on ``_pending_data`` only.
``xrecv`` pops one ``_pending_data`` entry and, whenever ``_pending_pipes``
is not empty, one pipe, which becomes ``_last_pipe``. So after a peer sent
one junk message, every later (un)subscription read in that batch is paired
with the pipe of the one *after* it: the next ``SUBSCRIBE`` lands on another
client's connection -- a prefix-limited key could be handed a subscription it
was never granted, and the client it belonged to silently loses it (issue 11.1).
The metadata (``User-Id``) travels in ``_pending_data``, so it always belongs
to the frame read: grant checks are right, only the target pipe is wrong.

Two facts make a guard exact: ``|_pending_pipes| <= |subscriptions in
_pending_data|`` at all times (each pipe entry is pushed with its data entry,
and pops never take a pipe without a data entry), and a recv that returns
EAGAIN found ``_pending_data`` empty -- so both queues are empty and aligned
again. Until a junk frame has been read, every pipe popped is the pipe of the
frame read (the queues started aligned and only junk pops skew them).

**The alignment guard**: from the moment the hub reads a non-subscription
frame it applies no ``setsockopt`` at all until a recv returns EAGAIN; the
(un)subscriptions read meanwhile are counted (``skipped``) and not applied.
An honest client whose subscription was skipped recovers by itself: the
:class:`~gsmon.common.client.Subscriber` re-sends its subscriptions
(unsubscribe + subscribe) every second until the first heartbeat arrives, and
treats a heartbeat (newer than its snapshot) whose ``published`` lacks its
prefix as a gap: it re-subscribes and takes a new snapshot. So no sequence of
upstream frames can apply a subscription to a connection that did not send
it, and no client loses a subscription for longer than a heartbeat or two.

The ledger
==========
A subscriber is identified by its CURVE key with keys, else by its IP
address; the hub cannot tell two connections of one identity apart (the only
per-connection properties libzmq 4.3.5 offers, ``ZMQ_METADATA``, are draft).
libzmq holds a subscription once per connection and topic, however often it
was sent, and when a connection closes it emits one identity-less
unsubscription per topic that connection had sent and not cancelled --
applied *or not* (its "manual" trie records everything).

* Entries are (identity, topic) pairs, counted once under the caps and in
  ``_hub/subscriptions``: a repeat is still applied (a no-op on the
  connection that already holds it; a real subscription on a second
  connection of that identity), takes no new place, and is counted as
  refused ("not taken in"), so repeats never lock an identity out.
* Publishing must never stop for a topic some connection still holds (lazy
  publishing would starve it: that is an *under*-count), while following a
  topic nobody holds only costs work (an *over*-count is safe). So a repeat
  is also remembered with its pair, as possibly another connection; when the
  pair is released by a closed connection, its repeats become *orphans*:
  the topic stays followed (not under the caps), until further closed
  connections' unsubscriptions take them, or a cancellation of that topic
  does. Repeats from one connection (libzmq holds it once) thus leave an
  orphan behind: a topic followed that nobody may hold, which only costs
  publishing. Nothing is bounded or cleared by the socket monitor's
  connection count: "0 connections" and the unsubscriptions still queued
  for the closed connections are not ordered (issue 11.9: clearing on it
  starved the connection that had just subscribed), and neither is any
  lower count.
* Subscriptions the hub did not apply (outside the grant, over a cap, skipped
  by the guard) are kept in a *refused pool* per topic, so that the
  identity-less unsubscriptions of a closing connection release refused
  entries before applied ones (releasing an applied entry another client
  still holds would be an under-count). The pool overflows into one counter.
* Unsubscriptions that carry an identity release that identity's repeat,
  else its pair, else its orphan, else one of its refused entries; they are
  applied to the sender's connection, which removes nothing from anyone else.

What stays approximate: a closing connection's unsubscriptions carry no
identity, so they release *some* holder of the topic (the sum per topic is
what matters for publishing, and it stays an upper bound); and after the
guard skipped an unsubscription the pair stays (an over-count). Under attack
an honest client may still see its prefix missing from a heartbeat, and then
re-subscribes (see the client rules above): nothing freezes for good.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from enum import IntEnum
from itertools import repeat
from typing import Final

from gsmon.common import protocol as proto

__all__ = ["MAX_NODES_PREFIXES", "Outcome", "SubscriptionLedger", "followed_prefix"]

_CONTROL: Final = 0  # a topic starting with NUL is a control topic (heartbeats, NODES), never a path
MAX_NODES_PREFIXES: Final = proto.MAX_NODES_PREFIXES  # (1.4) NODES prefixes followed at most


class Outcome(IntEnum):
    """What :meth:`SubscriptionLedger.read` decided for one upstream frame."""

    SUBSCRIBE = 1  # apply setsockopt(SUBSCRIBE, topic) now
    UNSUBSCRIBE = 2  # apply setsockopt(UNSUBSCRIBE, topic) now
    REPEAT = 3  # apply setsockopt(SUBSCRIBE, topic): this identity already holds it
    IGNORED = 4  # nothing to do (an identity-less unsubscription, or a frame that is no subscription)
    SKIPPED = 5  # an (un)subscription read while the queues may be misaligned: not applied
    REFUSED_GRANT = 6  # outside what the sender may read (or over-long): not applied
    REFUSED_CAP = 7  # over the per-subscriber or total cap: not applied

    @property
    def applies(self) -> bool:
        return self in (Outcome.SUBSCRIBE, Outcome.UNSUBSCRIBE, Outcome.REPEAT)


def followed_prefix(topic: bytes) -> str | None:
    """The path prefix a subscription ``topic`` follows, or None if it matches no path.

    XPUB matches bytes, so a topic cut inside a multi-byte character (a raw
    ZeroMQ subscriber may send one) still matches paths: it is followed as
    its longest whole-character prefix, a superset, so nothing it would
    receive goes unpublished. Invalid bytes before the end match nothing, and
    so do control topics (a leading NUL byte).
    """
    if topic[:1] == b"\x00":
        return None
    try:
        # Not final: an incomplete character at the end is held back, not an error.
        return codecs.getincrementaldecoder("utf-8")().decode(topic, final=False)
    except UnicodeDecodeError:
        return None


class SubscriptionLedger:
    """The alignment guard, the (identity, topic) ledger with its caps, and the publish counters."""

    def __init__(
        self, *, max_per_subscriber: int = 100, max_total: int = 100_000, max_published_prefixes: int = 1000
    ) -> None:
        self.max_per_subscriber = max_per_subscriber
        self.max_total = max_total
        self.max_published_prefixes = max_published_prefixes
        # Health counters.
        self.refused = 0  # subscriptions not taken in: grant, caps, repeats, guard
        self.skipped = 0  # of which: read while the queues may have been misaligned
        self.junk_frames = 0  # upstream frames that are no (un)subscription
        # The guard: True from a junk frame until a read found the queue empty.
        self.misaligned = False
        self._holders: dict[bytes, dict[str, None]] = {}  # topic -> identities holding it (ordered)
        self._control: dict[bytes, None] = {}  # held topics that start with NUL (heartbeats)
        self._by_identity: dict[str, int] = {}  # identity -> distinct topics held
        self._total = 0
        # Subscriptions libzmq recorded but the hub did not apply: topic -> identity -> count.
        self._refused_pool: dict[bytes, dict[str, int]] = {}
        self._refused_entries = 0
        self._refused_overflow = 0  # pool entries beyond max_total, not attributed to a topic
        # Repeats of a held pair (identity, topic): each may be another connection of that identity.
        self._extra: dict[tuple[str, bytes], int] = {}
        # Connections that may still hold a topic whose pair was released: topic -> count;
        # followed (published) but not counted under the caps. Past max_total topics the rest
        # is only counted, and every change is published (an over-count is safe).
        self._orphans: dict[bytes, int] = {}
        self._orphan_overflow = 0
        # Publish counters: path prefix -> number of pairs following it (plain or in batches), and NODEs
        # published under it.
        self._prefix_refs: dict[str, int] = {}
        self._published: dict[str, int] = {}
        # Of those, the pairs following a prefix plainly (a topic per NODE) and (1.4) in NODES batches.
        self._plain_refs: dict[str, int] = {}
        self._nodes_refs: dict[str, int] = {}
        self._followed: tuple[str, ...] | None = ()  # cached for drain; None: publish everything
        self._nodes_followed: tuple[str, ...] = ()

    # ------------------------------------------------------------------
    # Upstream frames
    # ------------------------------------------------------------------

    def read(
        self,
        data: bytes,
        identity: str | None,
        has_metadata: bool,
        may_subscribe: Callable[[str | None, bytes], bool] | None = None,
    ) -> Outcome:
        """Decide what to do with one frame read from the XPUB.

        ``identity``: the sender's key or address (None if the frame named
        none); ``has_metadata``: False for libzmq's own unsubscriptions of a
        closed connection (they carry no metadata at all). ``may_subscribe``:
        the grant check (None: everything is allowed).
        """
        if not data or data[0] > 1:
            self.junk_frames += 1
            self.misaligned = True  # the pipe queue may now run ahead of the data queue
            return Outcome.IGNORED
        topic = data[1:]
        subscribe = data[0] == 1
        if not has_metadata:
            # A closed connection's unsubscription: never applied (its pipe is gone, and while
            # misaligned the popped pipe may be someone else's).
            if not subscribe:
                self._release_anonymous(topic)
            return Outcome.IGNORED
        who = identity if identity is not None else "?"
        if self.misaligned:
            self.skipped += 1
            if subscribe:
                self.refused += 1
                self._pool_add(topic, who)
            # A skipped unsubscription leaves the pair in place: its connection may still hold it.
            return Outcome.SKIPPED
        if not subscribe:
            key = (who, topic)
            if self._extra.get(key):
                self._take_extra(key)  # one of its connections cancelled; another may hold it still
            elif not self._remove(who, topic) and not self._orphan_take(topic):
                self._pool_take(topic, who)
            return Outcome.UNSUBSCRIBE
        if may_subscribe is not None and not may_subscribe(identity, topic):
            self.refused += 1
            self._pool_add(topic, who)
            return Outcome.REFUSED_GRANT
        holders = self._holders.get(topic)
        if holders is not None and who in holders:
            # Held once per identity (caps, health); applied for the connection's sake; and
            # remembered, since it may come from a second connection (publishing must not stop
            # when the first one closes).
            self.refused += 1
            key = (who, topic)
            self._extra[key] = self._extra.get(key, 0) + 1
            return Outcome.REPEAT
        if (
            self._by_identity.get(who, 0) >= self.max_per_subscriber
            or self._total >= self.max_total
            or self._over_nodes_cap(topic)
        ):
            self.refused += 1
            self._pool_add(topic, who)
            return Outcome.REFUSED_CAP
        self._add(who, topic)
        return Outcome.SUBSCRIBE

    def _over_nodes_cap(self, topic: bytes) -> bool:
        """(1.4) Whether ``topic`` would be one NODES prefix more than MAX_NODES_PREFIXES (each costs every drain a
        pass over what it published; a client refused falls back to plain subscriptions)."""
        if not topic.startswith(proto.NODES_TOPIC_PREFIX) or len(self._nodes_refs) < MAX_NODES_PREFIXES:
            return False
        prefix = proto.nodes_prefix(topic)
        return prefix is not None and prefix not in self._nodes_refs

    def drained(self) -> None:
        """A read found the queue empty: the data and pipe queues are aligned again."""
        self.misaligned = False

    # ------------------------------------------------------------------
    # The ledger
    # ------------------------------------------------------------------

    @property
    def total(self) -> int:
        """(identity, topic) pairs held."""
        return self._total

    def count(self, identity: str) -> int:
        """Distinct topics ``identity`` holds."""
        return self._by_identity.get(identity, 0)

    def holds(self, topic: bytes) -> bool:
        """Whether some identity holds ``topic`` as a pair (under the caps)."""
        return topic in self._holders

    def held_topics(self, start: bytes) -> list[bytes]:
        """Held control topics (a leading NUL) that start with ``start``: the heartbeat topics someone follows."""
        held = [topic for topic in self._control if topic.startswith(start)]
        held += [topic for topic in self._orphans if topic.startswith(start) and topic not in self._control]
        return held

    def _add(self, identity: str, topic: bytes) -> None:
        self._holders.setdefault(topic, {})[identity] = None
        if topic[:1] == b"\x00":
            self._control[topic] = None
        self._by_identity[identity] = self._by_identity.get(identity, 0) + 1
        self._total += 1
        self.follow(topic, True)

    def _remove(self, identity: str, topic: bytes) -> bool:
        holders = self._holders.get(topic)
        if holders is None or identity not in holders:
            return False
        del holders[identity]
        if not holders:
            del self._holders[topic]
            self._control.pop(topic, None)
        left = self._by_identity[identity] - 1
        if left:
            self._by_identity[identity] = left
        else:
            del self._by_identity[identity]
        self._total -= 1
        self.follow(topic, False)
        return True

    def _pool_add(self, topic: bytes, identity: str) -> None:
        if self._refused_entries >= self.max_total:
            self._refused_overflow += 1  # still absorbs one anonymous unsubscription: over-counting is safe
            return
        by_identity = self._refused_pool.setdefault(topic, {})
        by_identity[identity] = by_identity.get(identity, 0) + 1
        self._refused_entries += 1

    def _pool_take(self, topic: bytes, identity: str | None) -> bool:
        """Take one refused entry for ``topic`` (``identity``'s, or anyone's when None)."""
        by_identity = self._refused_pool.get(topic)
        if by_identity is None:
            return False
        if identity is None:
            identity = next(iter(by_identity))
        elif identity not in by_identity:
            return False
        left = by_identity[identity] - 1
        if left:
            by_identity[identity] = left
        else:
            del by_identity[identity]
            if not by_identity:
                del self._refused_pool[topic]
        self._refused_entries -= 1
        return True

    def _release_anonymous(self, topic: bytes) -> None:
        """A closed connection had sent ``topic``: release a refused entry first, else one holder
        (its repeats become orphans: they may be other connections that still hold it), else an orphan."""
        if self._pool_take(topic, None):
            return
        if self._refused_overflow:
            self._refused_overflow -= 1
            return
        holders = self._holders.get(topic)
        if holders:
            identity = next(reversed(holders))
            repeats = self._extra.pop((identity, topic), 0)
            if repeats:
                self._orphan_add(topic, repeats)  # before the pair goes: the counter stays
            self._remove(identity, topic)
            return
        if not self._orphan_take(topic) and self._orphan_overflow:
            self._orphan_overflow -= 1

    def _take_extra(self, key: tuple[str, bytes]) -> None:
        left = self._extra[key] - 1
        if left:
            self._extra[key] = left
        else:
            del self._extra[key]

    def _orphan_add(self, topic: bytes, count: int) -> None:
        held = self._orphans.get(topic, 0)
        if not held and len(self._orphans) >= self.max_total:
            self._orphan_overflow += count
            self._refresh_followed()
            return
        self._orphans[topic] = held + count
        if not held:
            self.follow(topic, True)

    def _orphan_take(self, topic: bytes) -> bool:
        held = self._orphans.get(topic, 0)
        if not held:
            return False
        if held > 1:
            self._orphans[topic] = held - 1
        else:
            del self._orphans[topic]
            self.follow(topic, False)
        return True

    # ------------------------------------------------------------------
    # Publish counters (protocol: gap detection)
    # ------------------------------------------------------------------

    def follow(self, topic: bytes, subscribed: bool) -> None:
        """One more (or one fewer) follower of ``topic``: keep the per-prefix publish counters.

        Control topics and topics no path can match are not counted, except
        (1.4) a NODES topic, which counts for its prefix as the plain topic
        does (one counter per prefix, however it is followed). A prefix
        followed by nobody loses its counter (a new follower starts a fresh
        one, which its snapshot's ``published`` tells it).
        """
        step = 1 if subscribed else -1
        prefix = followed_prefix(topic)
        if prefix is not None:
            kind_refs = self._plain_refs
        else:
            prefix = proto.nodes_prefix(topic)  # (1.4) a NODES topic: the same prefix, its NODEs in batches
            if prefix is None:
                return
            kind_refs = self._nodes_refs
        held = kind_refs.get(prefix, 0) + step
        if held > 0:
            kind_refs[prefix] = held
        else:
            kind_refs.pop(prefix, None)
        refs = self._prefix_refs.get(prefix, 0) + step
        if refs > 0:
            if prefix not in self._published and len(self._published) < self.max_published_prefixes:
                self._published[prefix] = 0
            self._prefix_refs[prefix] = refs
        else:
            self._prefix_refs.pop(prefix, None)
            self._published.pop(prefix, None)
        self._refresh_followed()

    def reset(self) -> None:
        """Forget every subscription (a new subscribers socket holds none)."""
        self._holders.clear()
        self._control.clear()
        self._by_identity.clear()
        self._total = 0
        self._refused_pool.clear()
        self._refused_entries = self._refused_overflow = 0
        self._extra.clear()
        self._orphans.clear()
        self._orphan_overflow = 0
        self._prefix_refs.clear()
        self._published.clear()
        self._plain_refs.clear()
        self._nodes_refs.clear()
        self.misaligned = False
        self._refresh_followed()

    def nodes_followed(self) -> tuple[str, ...]:
        """(1.4) The prefixes followed in NODES batches: each gets its own batches of what drain publishes."""
        return self._nodes_followed

    def nodes_followed_for(self, readable: Callable[[str], bool] | None = None) -> tuple[str, ...]:
        """(1.4) The NODES prefixes a heartbeat lists (``batched``): every one, or those ``readable`` allows."""
        if readable is None:
            return self._nodes_followed
        return tuple(prefix for prefix in self._nodes_followed if readable(prefix))

    def _refresh_followed(self) -> None:
        if "" in self._plain_refs or len(self._prefix_refs) > len(self._published) or self._orphan_overflow:
            # Someone follows the whole tree, or a followed prefix has no counter
            # (past max_published_prefixes): publish every change.
            self._followed = None
        else:
            self._followed = tuple(self._plain_refs)
        self._nodes_followed = tuple(self._nodes_refs)

    @property
    def complete(self) -> bool:
        """Whether every followed prefix has a publish counter (heartbeats say so)."""
        return len(self._prefix_refs) == len(self._published)

    def followed(self) -> tuple[str, ...] | None:
        """The followed path prefixes, for ``str.startswith``; None: publish every change."""
        return self._followed

    def counting(self) -> bool:
        """Whether any prefix has a counter (else drain need not report what it published)."""
        return bool(self._published)

    def count_published(self, removed: list[str], changed: list[str], total: int) -> None:
        """Count the NODEs one drain published: ``removed`` and ``changed`` paths, ``total`` frames."""
        counts = self._published
        for prefix in counts:
            if prefix:
                # map() over str.startswith: no Python-level loop per update and prefix.
                counts[prefix] += sum(map(str.startswith, removed, repeat(prefix))) + sum(
                    map(str.startswith, changed, repeat(prefix))
                )
            else:  # the whole tree: every update counts
                counts[prefix] += total

    def published(self, prefix: str) -> int:
        """How many NODEs were published under ``prefix`` (0 if nobody follows it)."""
        return self._published.get(prefix, 0)

    def published_for(self, readable: Callable[[str], bool] | None = None) -> dict[str, int]:
        """The publish counters a heartbeat carries: every one, or those ``readable`` allows."""
        if readable is None:
            return dict(self._published)
        return {prefix: count for prefix, count in self._published.items() if readable(prefix)}
