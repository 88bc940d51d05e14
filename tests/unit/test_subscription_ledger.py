"""The subscriptions core (hub/subscriptions.py): the alignment guard, the ledger and its caps. No sockets.

Frames are fed as the hub reads them from its XPUB: bytes, the sender's
identity, and whether the frame has metadata at all (libzmq's own
unsubscriptions of a closed connection have none).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsmon.common import protocol as proto
from gsmon.hub.subscriptions import Outcome, SubscriptionLedger, followed_prefix

SUB, UNSUB = b"\x01", b"\x00"


def sub(ledger: SubscriptionLedger, who: str | None, topic: bytes, allow: bool = True) -> Outcome:
    return ledger.read(SUB + topic, who, True, None if allow else (lambda _who, _topic: False))


def unsub(ledger: SubscriptionLedger, who: str | None, topic: bytes) -> Outcome:
    return ledger.read(UNSUB + topic, who, True)


def closed(ledger: SubscriptionLedger, topic: bytes) -> Outcome:
    """An unsubscription libzmq made for a closed connection (no metadata)."""
    return ledger.read(UNSUB + topic, None, False)


def test_a_junk_frame_stops_every_setsockopt_until_the_queue_was_read_empty() -> None:
    """After a frame that is no (un)subscription, nothing is applied (and it is counted) until drained()."""
    ledger = SubscriptionLedger()
    assert sub(ledger, "a", b"GS1/") is Outcome.SUBSCRIBE
    for junk in (b"junk", b"", b"\x02GS1/"):
        assert ledger.read(junk, "a", True) is Outcome.IGNORED
        assert ledger.misaligned
        assert sub(ledger, "b", b"GS1/G/") is Outcome.SKIPPED
        assert unsub(ledger, "a", b"GS1/") is Outcome.SKIPPED
        ledger.drained()
        assert not ledger.misaligned
    assert (ledger.junk_frames, ledger.skipped) == (3, 6)
    assert ledger.holds(b"GS1/")  # a skipped unsubscription leaves the pair: its connection may still hold it
    assert not ledger.holds(b"GS1/G/")
    assert sub(ledger, "b", b"GS1/G/") is Outcome.SUBSCRIBE  # re-sent after the drain: applied


def test_a_closed_connection_releases_refused_and_skipped_entries_before_applied_ones() -> None:
    """libzmq unsubscribes a closing connection from everything it *sent*, applied or not: those
    identity-less unsubscriptions take refused entries first, so a prefix someone else follows stays counted."""
    ledger = SubscriptionLedger()
    assert sub(ledger, "full", b"GS1/G/") is Outcome.SUBSCRIBE
    assert sub(ledger, "limited", b"GS1/G/", allow=False) is Outcome.REFUSED_GRANT
    ledger.read(b"junk", "limited", True)
    assert sub(ledger, "limited", b"GS1/G/") is Outcome.SKIPPED
    ledger.drained()
    closed(ledger, b"GS1/G/")  # the limited key's connection closes: two unsubscriptions
    closed(ledger, b"GS1/G/")
    assert ledger.holds(b"GS1/G/")
    assert ledger.followed() == ("GS1/G/",)
    closed(ledger, b"GS1/G/")  # now the full-access one's
    assert not ledger.holds(b"GS1/G/")
    assert ledger.followed() == ()
    assert closed(ledger, b"GS1/G/") is Outcome.IGNORED  # nothing left: harmless


def test_repeats_take_no_new_place_and_one_release_frees_them() -> None:
    """libzmq holds a subscription once per connection: 200 repeats are applied (a no-op there) and
    counted as refused, take one place under the cap, and one unsubscription of the closed
    connection releases it."""
    ledger = SubscriptionLedger(max_per_subscriber=100)
    assert sub(ledger, "peer", b"GS1/") is Outcome.SUBSCRIBE
    assert {sub(ledger, "peer", b"GS1/") for _ in range(199)} == {Outcome.REPEAT}
    assert Outcome.REPEAT.applies
    assert (ledger.total, ledger.count("peer"), ledger.refused) == (1, 1, 199)
    closed(ledger, b"GS1/")
    assert (ledger.total, ledger.count("peer")) == (0, 0)


def test_a_second_connection_of_one_identity_keeps_the_topic_followed_when_the_first_closes() -> None:
    """Issue 11.9 with one identity (a subscriber restarted on the same host, or two watches): the
    repeat may be the second connection, so when the first closes the topic stays followed (an orphan),
    until the second closes too."""
    ledger = SubscriptionLedger()
    sub(ledger, "host", b"GS1/")
    assert sub(ledger, "host", b"GS1/") is Outcome.REPEAT
    closed(ledger, b"GS1/")
    assert ledger.total == 0  # not under the caps any more
    assert ledger.followed() == ("GS1/",)  # but still published
    closed(ledger, b"GS1/")  # the second connection closes
    assert ledger.followed() == ()


def test_restarts_on_one_host_in_any_order_never_unfollow_a_live_connections_topic() -> None:
    """A chain of replacements (each new connection subscribes while or after the old one's
    unsubscriptions are read): the topic stays followed while one of them is open."""
    ledger = SubscriptionLedger()
    sub(ledger, "host", b"GS1/G/")
    for new_first in (True, False, True, True, False):
        if new_first:
            sub(ledger, "host", b"GS1/G/")
            closed(ledger, b"GS1/G/")
        else:
            closed(ledger, b"GS1/G/")
            sub(ledger, "host", b"GS1/G/")
        assert ledger.followed() == ("GS1/G/",)


def test_an_identitys_cancellation_takes_its_repeat_first_then_its_pair() -> None:
    ledger = SubscriptionLedger()
    sub(ledger, "host", b"GS1/")
    sub(ledger, "host", b"GS1/")
    unsub(ledger, "host", b"GS1/")  # one of its two connections
    assert (ledger.total, ledger.followed()) == (1, ("GS1/",))
    unsub(ledger, "host", b"GS1/")
    assert (ledger.total, ledger.followed()) == (0, ())


def test_repeats_from_one_connection_release_the_pair_and_leave_only_an_orphan() -> None:
    """200 repeats on one connection: when it closes, the pair (caps, _hub/subscriptions) is released;
    what remains is an orphan that keeps the topic published (an over-count), taken by later
    closed connections' unsubscriptions or a cancellation."""
    ledger = SubscriptionLedger()
    for _ in range(200):
        sub(ledger, "peer", b"GS1/")
    closed(ledger, b"GS1/")
    assert (ledger.total, ledger.count("peer")) == (0, 0)
    assert ledger.followed() == ("GS1/",)
    for _ in range(199):
        unsub(ledger, "other", b"GS1/")
    assert ledger.followed() == ()


def test_caps_per_subscriber_and_in_total() -> None:
    ledger = SubscriptionLedger(max_per_subscriber=2, max_total=3)
    assert [sub(ledger, "a", topic) for topic in (b"1", b"2", b"3")] == [
        Outcome.SUBSCRIBE,
        Outcome.SUBSCRIBE,
        Outcome.REFUSED_CAP,
    ]
    assert sub(ledger, "b", b"1") is Outcome.SUBSCRIBE
    assert sub(ledger, "c", b"9") is Outcome.REFUSED_CAP  # the total
    assert unsub(ledger, "a", b"1") is Outcome.UNSUBSCRIBE
    assert sub(ledger, "c", b"9") is Outcome.SUBSCRIBE
    assert ledger.refused == 2
    # The refused ones' closed-connection unsubscriptions release the pool, not b's or c's places.
    closed(ledger, b"3")
    closed(ledger, b"9")
    assert ledger.holds(b"9")


def test_an_unsubscription_with_an_identity_releases_that_identitys_own_pair_only() -> None:
    ledger = SubscriptionLedger()
    sub(ledger, "a", b"GS1/")
    sub(ledger, "b", b"GS1/")
    assert unsub(ledger, "c", b"GS1/") is Outcome.UNSUBSCRIBE  # applied to c's own connection: removes nothing
    assert ledger.total == 2
    unsub(ledger, "a", b"GS1/")
    assert (ledger.count("a"), ledger.count("b")) == (0, 1)
    assert ledger.followed() == ("GS1/",)


def test_no_wholesale_reset_is_needed_for_a_new_connection_between_two_closes() -> None:
    """Issue 11.9: one turn holds a new connection's subscription, then the old connection's
    unsubscriptions: the new one stays followed."""
    ledger = SubscriptionLedger()
    sub(ledger, "old", b"GS1/")
    sub(ledger, "new", b"GS1/")
    closed(ledger, b"GS1/")
    assert ledger.followed() == ("GS1/",)


def test_heartbeat_and_control_topics_are_held_but_not_followed_as_paths() -> None:
    ledger = SubscriptionLedger()
    scope = proto.scope_heartbeat_topic("lim")
    sub(ledger, "a", proto.HUB_HEARTBEAT_TOPIC)
    sub(ledger, "b", scope)
    assert ledger.held_topics(proto.SCOPE_HEARTBEAT_PREFIX) == [scope]
    assert ledger.followed() == ()
    assert followed_prefix(scope) is None


def test_heartbeat_counters_per_scope() -> None:
    """published_for gives only the prefixes a scope may read."""
    ledger = SubscriptionLedger()
    for who, topic in (("a", b"GS1/A/"), ("b", b"GS1/B/secret/"), ("c", b"")):
        sub(ledger, who, topic)
    ledger.count_published(["GS1/A/x"], ["GS1/B/secret/y", "GS1/A/z"], 3)
    assert ledger.published_for() == {"GS1/A/": 2, "GS1/B/secret/": 1, "": 3}
    assert ledger.published_for(lambda prefix: prefix.startswith("GS1/A/")) == {"GS1/A/": 2}
    assert ledger.followed() is None  # "" follows everything


def test_past_max_published_prefixes_everything_is_published_and_heartbeats_say_they_are_incomplete() -> None:
    ledger = SubscriptionLedger(max_published_prefixes=1)
    sub(ledger, "a", b"a/")
    assert (ledger.followed(), ledger.complete) == (("a/",), True)
    sub(ledger, "a", b"b/")
    assert (ledger.followed(), ledger.complete) == (None, False)
    unsub(ledger, "a", b"b/")
    assert (ledger.followed(), ledger.complete) == (("a/",), True)


# -- a model of libzmq's XPUB in manual mode, to check the guard against every interleaving ------------


class XPubModel:
    """libzmq 4.3.5's xpub.cpp as far as manual mode goes: _pending_data (with metadata), _pending_pipes,
    _last_pipe, the applied trie per pipe, the manual trie per pipe, and termination."""

    def __init__(self) -> None:
        self.data: list[tuple[bytes, str | None]] = []  # (frame, sender pipe or None for libzmq's own)
        self.pipes: list[str | None] = []
        self.last: str | None = None
        self.applied: dict[str, set[bytes]] = {}
        self.manual: dict[str, set[bytes]] = {}
        self.sent: dict[str, set[bytes]] = {}  # every topic a pipe ever subscribed (for the invariant)
        self.closed: set[str] = set()  # a closed connection is gone for good (a new one is another pipe)

    def upstream(self, pipe: str, frame: bytes) -> None:
        if pipe in self.closed:
            return
        if frame and frame[0] in (0, 1):
            topic = frame[1:]
            if frame[0]:
                self.manual.setdefault(pipe, set()).add(topic)
                self.sent.setdefault(pipe, set()).add(topic)
            else:
                self.manual.setdefault(pipe, set()).discard(topic)
            self.pipes.append(pipe)
        self.data.append((frame, pipe))

    def close(self, pipe: str) -> None:
        if pipe in self.closed:
            return
        self.closed.add(pipe)
        for topic in sorted(self.manual.pop(pipe, set())):
            self.data.append((UNSUB + topic, None))
            self.pipes.append(None)
        self.applied.pop(pipe, None)
        if self.last == pipe:
            self.last = None

    def recv(self) -> tuple[bytes, str | None] | None:
        if not self.data:
            return None
        if self.pipes:
            self.last = self.pipes.pop(0)
        return self.data.pop(0)

    def setsockopt(self, subscribe: bool, topic: bytes) -> None:
        if self.last is None or self.last in self.closed:  # libzmq: _dist.has_pipe(_last_pipe)
            return
        if subscribe:
            self.applied.setdefault(self.last, set()).add(topic)
        else:
            self.applied.setdefault(self.last, set()).discard(topic)


PIPES = {"L1": "lim", "L2": "lim", "F": "full", "X": "other"}
GRANTS = {"lim": (b"GS1/A/",), "other": (b"GS1/",), "full": (b"",)}
FRAMES = [b"junk", b"", SUB + b"GS1/G/", SUB + b"GS1/A/quiet/", UNSUB + b"GS1/G/", SUB + b"GS1/", SUB + b""]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("send"), st.sampled_from(sorted(PIPES)), st.sampled_from(FRAMES)),
            st.tuples(st.just("read"), st.integers(1, 4), st.just(b"")),
            st.tuples(st.just("close"), st.sampled_from(sorted(PIPES)), st.just(b"")),
        ),
        max_size=40,
    )
)
def test_no_interleaving_applies_a_subscription_to_a_connection_that_did_not_send_it(
    steps: list[tuple[str, object, bytes]],
) -> None:
    """Against the model of libzmq's queues: whatever frames any connections send, in any order, with
    reads in between, every topic applied to a connection is one that connection subscribed to itself
    and its key may read; and a connection that subscribed and was then drained holds it unless skipped."""
    xpub, ledger = XPubModel(), SubscriptionLedger()

    def may(who: str | None, topic: bytes) -> bool:
        return who is not None and any(topic.startswith(grant) for grant in GRANTS[who])

    def read(count: int) -> None:
        for _ in range(count):
            got = xpub.recv()
            if got is None:
                ledger.drained()
                return
            frame, pipe = got
            outcome = ledger.read(frame, None if pipe is None else PIPES[pipe], pipe is not None, may)
            if outcome.applies:
                xpub.setsockopt(outcome is not Outcome.UNSUBSCRIBE, frame[1:])

    for action, arg, frame in steps:
        if action == "send":
            assert isinstance(arg, str)
            xpub.upstream(arg, frame)
        elif action == "close":
            assert isinstance(arg, str)
            xpub.close(arg)
        else:
            assert isinstance(arg, int)
            read(arg)
        for pipe, topics in xpub.applied.items():
            for topic in topics:
                assert topic in xpub.sent.get(pipe, set()), f"{pipe} holds {topic!r} it never subscribed"
                assert may(PIPES[pipe], topic), f"{pipe} ({PIPES[pipe]}) holds {topic!r} outside its grant"
    read(1000)
    assert not ledger.misaligned


@pytest.mark.parametrize(("topic", "prefix"), [(b"GS1/", "GS1/"), (b"", ""), (b"\xffx", None), (b"\x00hub/", None)])
def test_followed_prefix(topic: bytes, prefix: str | None) -> None:
    assert followed_prefix(topic) == prefix
