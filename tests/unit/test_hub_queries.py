"""The query socket's core: INFO, snapshots in bounded slices, commands, access. No sockets, no sleeps.

A :class:`QueryCore` answers decoded requests from a real :class:`HubState`; its replies are
decoded as a client would. The consistency tests drive the real subscriber's apply rule, its
:class:`~gsmon.common.clone.CloneCore` (fed the query core's replies, then the hub's published frames).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsmon.common import protocol as proto
from gsmon.common.alerts import alertstr_for
from gsmon.common.allowlist import AgentGrant, AllowList, SubscriberGrant
from gsmon.common.clone import CloneCore
from gsmon.common.keys import generate_key_pair
from gsmon.common.names import path_in_prefix
from gsmon.hub.alarms import AlarmBook
from gsmon.hub.queries import BUSY_MESSAGE, QueryCore, QuerySettings
from gsmon.hub.state import HubSettings, HubState

EPOCH = 0xFEED
WALL0 = 1_700_000_000.0
GREEN, RED = 10, 30
ENDPOINTS = {"agents": "tcp://h:1", "subscribers": "tcp://h:2", "query": "tcp://h:3"}
_requests = itertools.count(1)


def make(settings: QuerySettings | None = None, follow: bytes | None = b"") -> tuple[HubState, QueryCore]:
    hub = HubState(HubSettings(), EPOCH, now=0.0)
    if follow is not None:
        hub.subscriptions.follow(follow, subscribed=True)
    return hub, QueryCore(hub, ENDPOINTS, 1.0, "9.9", settings)


def fill(hub: HubState, name: str, mount: str, points: list[str], epoch: int = 1, now: float = 0.0) -> None:
    entries = [proto.PointEntry(path, 1, GREEN, "GREEN", WALL0, None) for path in points]
    for part, start in enumerate(range(0, max(1, len(entries)), 5000)):
        parts = max(1, -(-len(entries) // 5000))
        hub.apply(
            proto.State(
                sender=name,
                epoch=epoch,
                seq=part,
                sent_ns=0,
                mount=mount,
                heartbeat_s=100.0,
                points=entries[start : start + 5000],
                part=part,
                parts=parts,
            ),
            now,
            WALL0 + now,
        )
    hub.drain(WALL0 + now)


def snapshot_request(prefix: str) -> proto.SnapshotRequest:
    return proto.SnapshotRequest(sender="c", epoch=0, seq=1, sent_ns=0, request_id=next(_requests), prefix=prefix)


def decoded(replies: list[tuple[bytes, bytes]]) -> list[tuple[bytes, proto.Message]]:
    return [(identity, proto.decode(frame)) for identity, frame in replies]


def run_to_end(core: QueryCore, first: list[tuple[bytes, bytes]] | None = None) -> tuple[list[proto.Message], int]:
    """Every reply of the pending jobs (after ``first``), and how many turns it took."""
    replies = decoded(first or [])
    turns = 0
    while core.busy:
        turns += 1
        replies += decoded(core.work(float(turns), WALL0 + turns))
        assert turns < 10_000
    return [msg for _, msg in replies], turns


def nodes_of(messages: list[proto.Message]) -> dict[str, dict[str, Any]]:
    return {path: payload for msg in messages if isinstance(msg, proto.SnapshotChunk) for path, payload in msg.nodes}


# -- INFO and snapshots ---------------------------------------------------------------------------------


def test_hello_is_answered_with_the_hubs_endpoints_and_settings() -> None:
    _, core = make()
    outcome = core.request(proto.Hello(sender="c", epoch=0, seq=1, sent_ns=0, request_id=7), b"id", 0.0, WALL0)
    ((to, info),) = decoded(outcome.replies)
    assert to == b"id"
    assert isinstance(info, proto.Info)
    assert (info.request_id, info.endpoints, info.heartbeat_s, info.version, info.epoch) == (
        7,
        ENDPOINTS,
        1.0,
        "9.9",
        EPOCH,
    )
    assert outcome.refused is None


def test_a_small_snapshot_is_answered_in_the_same_turn_with_the_seq_and_counter_of_its_start() -> None:
    hub, core = make(follow=b"GS1/Antenna1")
    fill(hub, "a", "GS1/Antenna1", ["x", "y/z"])
    fill(hub, "b", "GS1/Antenna10", ["w"])
    request = snapshot_request("GS1/Antenna1")
    assert core.request(request, b"id", 0.0, WALL0).replies == []  # queued: the loop's work() answers it
    replies = decoded(core.work(0.0, WALL0))
    assert not core.busy
    messages = [msg for _, msg in replies]
    assert [type(msg) for msg in messages] == [proto.SnapshotChunk, proto.SnapshotEnd]
    end = messages[-1]
    assert isinstance(end, proto.SnapshotEnd)
    assert set(nodes_of(messages)) == {"GS1/Antenna1", "GS1/Antenna1/x", "GS1/Antenna1/y", "GS1/Antenna1/y/z"}
    assert (end.request_id, end.seq_at, end.count, end.published) == (
        request.request_id,
        hub.seq,
        4,
        hub.published("GS1/Antenna1"),
    )


def test_a_large_snapshot_is_spread_over_turns_within_the_turn_budget_and_in_chunks() -> None:
    hub, core = make(QuerySettings(chunk_nodes=100, turn_nodes=250))
    fill(hub, "a", "GS1", [f"p{i}" for i in range(1000)])
    core.request(snapshot_request("GS1/"), b"id", 0.0, WALL0)
    visited: list[int] = []
    original = hub.walk_step

    def counting(stack: Any, limit: int, out: list[bytes]) -> int:
        visited.append(original(stack, limit, out))
        return visited[-1]

    hub.walk_step = counting  # type: ignore[method-assign]
    turns = 0
    messages: list[proto.Message] = []
    while core.busy:
        before = sum(visited)
        messages += [msg for _, msg in decoded(core.work(float(turns), WALL0))]
        assert sum(visited) - before <= 250  # the turn's budget, whatever is pending
        turns += 1
    assert turns == 5  # 1000 nodes at 250 a turn (the last turn finds the walk's end)
    chunks = [msg for msg in messages if isinstance(msg, proto.SnapshotChunk)]
    assert [len(chunk.nodes) for chunk in chunks] == [100] * 10
    assert set(nodes_of(messages)) == {f"GS1/p{i}" for i in range(1000)}


def test_pending_snapshots_take_turns() -> None:
    """Round-robin: a big snapshot asked first does not hold back a small one asked after it."""
    hub, core = make(QuerySettings(chunk_nodes=100, turn_nodes=200))
    fill(hub, "a", "Big", [f"p{i}" for i in range(2000)])
    fill(hub, "b", "Small", ["x"])
    core.request(snapshot_request("Big/"), b"big", 0.0, WALL0)
    core.request(snapshot_request("Small"), b"small", 0.0, WALL0)
    first_turn = decoded(core.work(0.0, WALL0))
    assert (b"small", proto.SnapshotEnd) in [(to, type(msg)) for to, msg in first_turn]
    assert core.busy  # the big one goes on


def test_a_snapshot_costs_the_subtree_asked_for_not_the_tree() -> None:
    """35,000 nodes in the tree, a prefix of three: three nodes visited, answered at once."""
    hub, core = make(QuerySettings(turn_nodes=10))
    fill(hub, "bulk", "GS1/Bulk", [f"g{g}/p{i}" for g in range(50) for i in range(700)])
    fill(hub, "small", "GS1/A", ["quiet/x", "quiet/y"])
    assert len(hub.tree) > 35_000
    visited = 0
    original = hub.walk_step

    def counting(stack: Any, limit: int, out: list[bytes]) -> int:
        nonlocal visited
        visited += original(stack, limit, out)
        return visited

    hub.walk_step = counting  # type: ignore[method-assign]
    core.request(snapshot_request("GS1/A/quiet/"), b"id", 0.0, WALL0)
    messages = [msg for _, msg in decoded(core.work(0.0, WALL0))]
    assert not core.busy
    assert visited == 2
    assert set(nodes_of(messages)) == {"GS1/A/quiet/x", "GS1/A/quiet/y"}


def test_a_client_over_its_share_of_snapshots_is_told_busy_retry_and_others_are_not() -> None:
    hub, core = make(QuerySettings(max_jobs_per_client=2, max_jobs=3))
    fill(hub, "a", "GS1", ["x"])
    for _ in range(2):
        assert core.request(snapshot_request("GS1/"), b"greedy", 0.0, WALL0).replies == []
    ((_, busy),) = decoded(core.request(snapshot_request("GS1/"), b"greedy", 0.0, WALL0).replies)
    assert isinstance(busy, proto.Error)
    assert busy.message == BUSY_MESSAGE
    assert core.request(snapshot_request("GS1/"), b"other", 0.0, WALL0).replies == []
    ((_, full),) = decoded(core.request(snapshot_request("GS1/"), b"third", 0.0, WALL0).replies)
    assert isinstance(full, proto.Error)
    assert full.message == BUSY_MESSAGE  # the hub's total
    assert core.stats.busy == 2
    run_to_end(core)
    assert core.request(snapshot_request("GS1/"), b"greedy", 0.0, WALL0).replies == []  # served: room again


def test_with_keys_the_share_is_per_key_not_per_connection() -> None:
    hub, core = make(QuerySettings(max_jobs_per_client=1))
    fill(hub, "a", "GS1", ["x"])
    key = generate_key_pair({}).public.decode()
    allow = AllowList(subscribers=[SubscriberGrant("ops", key)])
    assert core.request(snapshot_request("GS1/"), b"conn1", 0.0, WALL0, key=key, allow=allow).replies == []
    ((_, busy),) = decoded(core.request(snapshot_request("GS1/"), b"conn2", 0.0, WALL0, key=key, allow=allow).replies)
    assert isinstance(busy, proto.Error)
    assert busy.message == BUSY_MESSAGE


# -- consistency over turns -------------------------------------------------------------------------------


def subscriber_after(
    core: QueryCore, hub: HubState, prefix: str, changes: Iterator[None]
) -> tuple[CloneCore, list[tuple[bytes, bytes]]]:
    """A client's clone core whose snapshot is taken by ``core`` while ``changes`` run between its turns;
    returns it and the frames the hub published meanwhile (which it then receives, as its SUB socket
    queued them)."""
    published: list[tuple[bytes, bytes]] = []
    clone = CloneCore(prefix, "sub", 7)
    request = clone.snapshot_request(WALL0)
    core.request(request, b"sub", 0.0, WALL0)
    while clone.snapshot_outstanding:
        for _, frame in core.work(0.0, WALL0):
            clone.snapshot_reply(proto.decode(frame))
        if not core.busy:
            break
        next(changes, None)  # the hub applies agents' messages between turns
        published.extend(hub.drain(WALL0))
    assert not clone.snapshot_outstanding
    assert not clone.wants_snapshot  # SNAPSHOT_END's count matched the nodes received
    return clone, published


def tree_view(hub: HubState, prefix: str) -> dict[str, tuple[str, int, Any]]:
    view = {}
    for path, node in hub.tree.items():
        if path_in_prefix(path, prefix):
            data = node.data
            view[path] = ("point" if node.is_leaf else "parent", node.code, getattr(data, "value", None))
    return view


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 59), st.sampled_from([GREEN, RED, None])),  # None: the agent drops the point
        min_size=1,
        max_size=25,
    ),
    restart_at=st.integers(0, 30),
)
def test_a_snapshot_over_several_turns_plus_the_updates_gives_the_hubs_tree(
    steps: list[tuple[int, int | None]], restart_at: int
) -> None:
    """Nodes change, appear and go while the snapshot is sent in slices: with the per-node seq rule
    (END.seq = the start's seq, each node its own) the client ends with exactly the hub's tree, and
    never shows a node older than it already held."""
    hub, core = make(QuerySettings(chunk_nodes=7, turn_nodes=5))
    names = [f"G{i % 6}/p{i}" for i in range(60)]
    fill(hub, "a", "GS1", names[:40])
    seq = itertools.count(100)
    present = set(names[:40])

    def changes() -> Iterator[None]:
        for index, (which, level) in enumerate(steps):
            path = names[which]
            if index == restart_at:
                # A complete STATE without some points: they go STALE, then removed after the grace.
                keep = sorted(present)[::2]
                hub.apply(
                    proto.State(
                        sender="a",
                        epoch=1,
                        seq=next(seq),
                        sent_ns=0,
                        mount="GS1",
                        heartbeat_s=100.0,
                        points=[proto.PointEntry(p, 1, GREEN, "GREEN", WALL0, None) for p in keep],
                    ),
                    0.0,
                    WALL0,
                )
                hub.tick(20.0, WALL0 + 20.0)
                present.intersection_update(keep)
            elif level is not None:
                hub.apply(
                    proto.Delta(
                        sender="a",
                        epoch=1,
                        seq=next(seq),
                        sent_ns=0,
                        points=[proto.PointEntry(path, index, level, alertstr_for(level), WALL0, None)],
                    ),
                    0.0,
                    WALL0,
                )
                present.add(path)
            yield None

    sub, published = subscriber_after(core, hub, "GS1/", changes())
    published.extend(hub.drain(WALL0))
    changes_seen: list[Any] = []
    for topic, payload in published:
        if topic.startswith(b"GS1/"):  # what its SUB socket's subscription delivers
            changes_seen += sub.receive(topic, payload, 0.0, WALL0)
    got = {path: (node.kind, node.alertcode, node.value) for path, node in sub.tree.items()}
    assert got == tree_view(hub, "GS1/")
    # And never backwards on the way: an update older than what the snapshot held is not applied.
    for change in changes_seen:
        if change.old is not None and change.new is not None:
            assert change.new.seq > change.old.seq, change.path


# -- access and commands ----------------------------------------------------------------------------------


def command(name: str, **args: Any) -> proto.Command:
    return proto.Command(sender="c", epoch=0, seq=1, sent_ns=0, request_id=next(_requests), command=name, args=args)


def result_of(outcome: Any) -> proto.CommandResult:
    ((_, reply),) = decoded(outcome.replies)
    assert isinstance(reply, proto.CommandResult)
    return reply


@pytest.fixture
def keyed() -> tuple[HubState, QueryCore, dict[str, str], AllowList]:
    """A hub with a silent agent 'dead' and a live one 'live'; keys of ops (plain), root (admin), limited, the hub."""
    hub, core = make()
    fill(hub, "dead", "GS1/Dead", ["x", "y"])
    fill(hub, "live", "GS1/Live", ["z"])
    hub.agents["dead"].heartbeat_s = 0.1
    hub.apply(
        proto.Heartbeat(sender="live", epoch=1, seq=5, sent_ns=0, mount="GS1/Live", heartbeat_s=100.0, point_count=1),
        5.0,
        WALL0,
    )
    hub.tick(5.0, WALL0 + 5.0)
    hub.drain(WALL0 + 5.0)
    keys = {name: generate_key_pair({}).public.decode() for name in ("ops", "root", "limited", "hub", "dead", "live")}
    allow = AllowList(
        agents=[AgentGrant("dead", keys["dead"], ("GS1/Dead",)), AgentGrant("live", keys["live"], ("GS1/Live",))],
        subscribers=[
            SubscriberGrant("ops", keys["ops"]),
            SubscriberGrant("root", keys["root"], admin=True),
            SubscriberGrant("limited", keys["limited"], ("GS1/Live",)),
        ],
    )
    return hub, core, keys, allow


def test_forget_by_an_admin_key_removes_the_silent_agent(keyed: Any) -> None:
    hub, core, keys, allow = keyed
    outcome = core.request(
        command("forget", agent="dead"), b"id", 5.0, WALL0, key=keys["root"], allow=allow, hub_key=keys["hub"]
    )
    reply = result_of(outcome)
    assert (reply.ok, reply.result) == (True, {"agent": "dead", "points": 2})
    assert "dead" not in hub.agents
    assert "GS1/Dead/x" not in hub.tree
    assert outcome.refused is None


def test_the_hubs_own_key_is_an_administrator_that_reads_everything(keyed: Any) -> None:
    _, core, keys, allow = keyed
    who = {"key": keys["hub"], "allow": allow, "hub_key": keys["hub"]}
    assert result_of(core.request(command("forget", agent="dead"), b"id", 5.0, WALL0, **who)).ok
    assert core.request(snapshot_request(""), b"id", 5.0, WALL0, **who).replies == []  # queued, not refused
    assert "GS1/Live/z" in nodes_of(run_to_end(core)[0])


def test_forget_by_a_plain_subscriber_key_is_refused_and_removes_nothing(keyed: Any) -> None:
    hub, core, keys, allow = keyed
    outcome = core.request(
        command("forget", agent="dead"), b"id", 5.0, WALL0, key=keys["ops"], allow=allow, hub_key=keys["hub"]
    )
    reply = result_of(outcome)
    assert (reply.ok, reply.result) == (False, {"reason": "forbidden"})
    assert "administrator" in reply.message
    assert "'ops'" in reply.message
    assert outcome.refused is not None  # the server counts it as unauthorised
    assert "dead" in hub.agents
    assert "GS1/Dead/x" in hub.tree


def test_forget_of_a_live_agent_is_refused_with_the_reason(keyed: Any) -> None:
    hub, core, keys, allow = keyed
    reply = result_of(core.request(command("forget", agent="live"), b"id", 5.0, WALL0, key=keys["root"], allow=allow))
    assert (reply.ok, reply.result) == (False, {"reason": "live"})
    assert "live" in reply.message
    assert "GS1/Live/z" in hub.tree


def test_forget_of_a_live_agent_whose_key_was_revoked_goes_ahead(keyed: Any) -> None:
    """Revoked: the server drops whatever it sends, so it is not live any more (keys revoke --forget)."""
    hub, core, keys, allow = keyed
    revoked = AllowList(subscribers=list(allow.subscribers.values()))  # no agent grants at all
    reply = result_of(core.request(command("forget", agent="live"), b"id", 5.0, WALL0, key=keys["root"], allow=revoked))
    assert reply.ok
    assert "live" not in hub.agents


def test_without_keys_anyone_who_reaches_the_query_socket_may_forget(keyed: Any) -> None:
    _, core, _, _ = keyed
    assert result_of(core.request(command("forget", agent="dead"), b"id", 5.0, WALL0)).ok


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (command("no_such_command", agent="dead"), "unknown-command"),
        (command("forget"), "bad-args"),
        (command("forget", agent=3), "bad-args"),
        (command("forget", agent="nobody"), "unknown"),
    ],
    ids=["unknown command", "no agent", "agent not a str", "unknown agent"],
)
def test_a_bad_command_says_what_is_wrong_and_changes_nothing(keyed: Any, msg: proto.Command, reason: str) -> None:
    hub, core, keys, allow = keyed
    before = set(hub.agents)
    reply = result_of(core.request(msg, b"id", 5.0, WALL0, key=keys["root"], allow=allow))
    assert (reply.ok, reply.result["reason"]) == (False, reason)
    assert reply.message
    assert set(hub.agents) == before


def test_with_keys_unknown_keys_and_snapshots_outside_a_grant_are_refused(keyed: Any) -> None:
    _, core, keys, allow = keyed
    stranger = generate_key_pair({}).public.decode()
    for msg, key in (
        (proto.Hello(sender="c", epoch=0, seq=1, sent_ns=0, request_id=1), stranger),
        (snapshot_request("GS1/"), stranger),
        (snapshot_request("GS1/"), keys["limited"]),
        (snapshot_request("GS1/Live"), keys["limited"]),  # as a topic it would also match GS1/Live2
        (command("forget", agent="dead"), stranger),
    ):
        outcome = core.request(msg, b"id", 5.0, WALL0, key=key, allow=allow, hub_key=keys["hub"])
        ((_, reply),) = decoded(outcome.replies)
        assert isinstance(reply, proto.Error), msg
        assert reply.message == "not allowed for this key"
        assert outcome.refused is not None
    assert (
        core.request(snapshot_request("GS1/Live/"), b"id", 5.0, WALL0, key=keys["limited"], allow=allow).replies == []
    )


def test_an_agent_message_on_the_query_socket_is_invalid() -> None:
    _, core = make()
    outcome = core.request(proto.Bye(sender="a", epoch=1, seq=1, sent_ns=0), b"id", 0.0, WALL0)
    ((_, reply),) = decoded(outcome.replies)
    assert isinstance(reply, proto.Error)
    assert outcome.invalid is not None


def test_snapshot_items_are_the_published_payloads(keyed: Any) -> None:
    """What a snapshot sends for a node is byte for byte its last published payload."""
    hub, core, _, _ = keyed
    core.request(snapshot_request("GS1/Live/"), b"id", 5.0, WALL0)
    item = msgpack.packb(nodes_of(run_to_end(core)[0])["GS1/Live/z"])
    assert item == hub.tree["GS1/Live/z"].data.payload


# -- malformed requests and reply seq (issue 12 §2) -----------------------------


def _frame(major: Any = 1, kind: Any = 11, sent_ns: Any = 0, body: Any = None) -> bytes:
    body = {"request_id": 42, "prefix": ""} if body is None else body
    return msgpack.packb([major, 1, kind, "c", 5, 1, sent_ns, body])


@pytest.mark.parametrize(
    ("frame", "request_id", "says"),
    [
        (_frame(major=2), 42, "major version 2"),
        (_frame(kind=99), 42, "unknown message kind 99"),
        (_frame(body={"request_id": 42}), 42, "prefix"),
        (_frame(body={"request_id": -3, "prefix": ""}), 0, "request_id"),
        (_frame(sent_ns=1.7e18), 42, "sent_ns must be an int"),
    ],
    ids=["major-2", "unknown-kind", "missing-prefix", "negative-request-id", "float-sent-ns"],
)
def test_a_malformed_request_with_an_envelope_gets_an_error_saying_what_is_wrong(
    frame: bytes, request_id: int, says: str
) -> None:
    """The server's path for a frame decode refused: salvage the request id, answer ERROR with the reason."""
    _, core = make()
    with pytest.raises(proto.ProtocolError) as refused:
        proto.decode(frame)
    outcome = core.malformed(b"conn", proto.salvage_request_id(frame), str(refused.value), WALL0)
    [(to, reply)] = decoded(outcome.replies)
    assert to == b"conn"
    assert isinstance(reply, proto.Error)
    assert reply.request_id == request_id
    assert says in reply.message
    assert reply.message.startswith("malformed request: ")
    assert outcome.invalid is not None  # still counted as rejected by the server


@pytest.mark.parametrize("frame", [b"\xc1", msgpack.packb({"request_id": 1}), msgpack.packb([1, 1, 11])])
def test_a_frame_that_is_no_envelope_gets_no_reply(frame: bytes) -> None:
    _, core = make()
    assert proto.salvage_request_id(frame) is None
    outcome = core.malformed(b"conn", None, "bad", WALL0)
    assert outcome.replies == []
    assert outcome.invalid == "bad"


def test_reply_seq_counts_per_connection() -> None:
    """Protocol, Envelope: seq is per sender, epoch and connection, +1 per message."""
    _, core = make()
    hello = proto.Hello(sender="c", epoch=1, seq=1, sent_ns=0, request_id=1)
    seqs: dict[bytes, list[int]] = {b"a": [], b"b": []}
    for identity in (b"a", b"b", b"a", b"a", b"b"):
        [(to, reply)] = decoded(core.request(hello, identity, 0.0, WALL0).replies)
        seqs[to].append(reply.seq)
    assert seqs == {b"a": [1, 2, 3], b"b": [1, 2]}


def test_a_service_registering_again_is_logged_at_debug_and_another_one_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The recorder registers every 30 s (and after a reconnect, under a new identity): routine, DEBUG; a
    registration from someone else replaces the service, and says so at INFO."""
    _, core = make()
    caplog.set_level(logging.DEBUG, logger="gsmon.hub.queries")

    def register(identity: bytes, peer: str) -> list[tuple[int, str]]:
        caplog.clear()
        assert result_of(
            core.request(command("register_service", service="history"), identity, 0.0, WALL0, peer=peer)
        ).ok
        return [(r.levelno, r.getMessage()) for r in caplog.records if "registered as" in r.getMessage()]

    [(level, first)] = register(b"rec-1", "10.0.0.5")
    assert level == logging.INFO
    assert "replacing" not in first
    assert register(b"rec-1", "10.0.0.5") == [
        (logging.DEBUG, "client 7265632d31 registered as the history service again")
    ]
    [(level, _)] = register(b"rec-2", "10.0.0.5")  # the same recorder, reconnected
    assert level == logging.DEBUG
    assert core.services["history"] == b"rec-2"
    [(level, message)] = register(b"other", "10.0.0.9")
    assert (level, message.endswith("(replacing another)")) == (logging.INFO, True)


def test_ack_unack_and_clear_read_ids_and_comment_alike_and_act_on_each_id_once() -> None:
    """hub/operator.py: the commands on alarm ids share their reading of ids, comment and who acts."""
    book = AlarmBook()
    hub = HubState(HubSettings(), EPOCH, now=0.0, alarms=book)
    core = QueryCore(hub, ENDPOINTS, 1.0, "9.9")
    hub.apply(
        proto.State(
            sender="ant",
            epoch=1,
            seq=0,
            sent_ns=0,
            mount="GS1",
            heartbeat_s=100.0,
            points=[proto.PointEntry("p", 1, RED, "RED", WALL0, None)],
            part=0,
            parts=1,
        ),
        0.0,
        WALL0,
    )
    [alarm] = book.alarms()
    for name in ("ack", "unack", "clear"):
        for args, needs in (({}, f"{name} needs ids"), ({"ids": [alarm.id], "comment": 5}, "a comment must be text")):
            reply = result_of(core.request(command(name, **args), b"id", 1.0, WALL0 + 1))
            assert (reply.ok, reply.result["reason"]) == (False, "bad-args")
            assert reply.message.startswith(needs)
    reply = result_of(core.request(command("ack", ids=[alarm.id, alarm.id], comment="on it"), b"id", 1.0, WALL0 + 1))
    assert (reply.ok, reply.result) == (True, {"acked": [alarm.id], "skipped": []})
    acked = book.alarm(alarm.id)
    assert acked is not None
    assert (acked.ack_comment, acked.acked_at) == ("on it", WALL0 + 1)
    reply = result_of(core.request(command("unack", ids=[alarm.id, alarm.id]), b"id", 2.0, WALL0 + 2))
    assert (reply.ok, reply.result) == (True, {"acked": [alarm.id], "skipped": []})
    reply = result_of(core.request(command("clear", ids=[alarm.id, alarm.id], comment="done"), b"id", 3.0, WALL0 + 3))
    assert (reply.ok, reply.result) == (True, {"cleared": [alarm.id], "skipped": []})
    cleared = book.alarm(alarm.id)
    assert cleared is not None
    assert (cleared.state, cleared.cleared_at) == ("cleared", WALL0 + 3)
