"""The hub pair's pure core (hub/pair.py): op log idempotence, resend, digest, sender election. No sockets."""

from __future__ import annotations

from dataclasses import replace

from gsmon.common import protocol as proto
from gsmon.hub.pair import PairCore, PairMessage, PairSettings, StoredPair

SETTINGS = PairSettings(peer_timeout_s=15.0, sync_s=0.25, digest_s=30.0, retry_for_s=60.0)


def pair(now: float = 0.0) -> tuple[PairCore, PairCore]:
    return PairCore(StoredPair("hub-a"), SETTINGS, now), PairCore(StoredPair("hub-b"), SETTINGS, now)


def exchange(sender: PairCore, receiver: PairCore, now: float) -> list[proto.PairOp]:
    """One PAIR_SYNC from ``sender`` and the reply; returns what the receiver applied."""
    applied = receiver.take(sender.message(now), now)
    sender.take(receiver.reply(now), now)
    return applied


def test_an_op_is_applied_once_however_often_it_arrives() -> None:
    a, b = pair()
    a.record("ack", {"ids": [7]}, wall=100.0, now=1.0)
    message = a.message(1.0)
    first = b.take(message, 1.0)
    assert [(op.origin, op.seq, op.kind) for op in first] == [("hub-a", 1, "ack")]
    assert b.take(message, 1.1) == []  # the same message again
    assert b.take(replace(message, full=True), 1.2) == []  # and within a full exchange
    assert b.stats.duplicates == 2
    assert b.seen == 1


def test_ops_lost_on_the_way_are_sent_again_after_the_peers_last_seen_seq() -> None:
    a, b = pair()
    a.record("ack", {"ids": [1]}, 100.0, 1.0)
    a.message(1.0)  # lost: the link was down
    a.record("shelve", {"id": 9}, 101.0, 2.0)
    a.message(2.0)  # lost too
    assert b.seen == 0
    # The link returns: B's message says it has seen nothing of A's, so A's answer carries both.
    applied = a.take(b.message(3.0), 3.0) and []
    applied = b.take(a.reply(3.0), 3.0)
    assert [op.seq for op in applied] == [1, 2]
    assert b.seen == 2
    # Once B says so, A sends nothing more.
    a.take(b.message(4.0), 4.0)
    assert a.message(4.0).ops == []


def test_an_op_after_a_gap_waits_for_the_missing_one() -> None:
    a, b = pair()
    a.record("ack", {"ids": [1]}, 100.0, 1.0)
    a.record("ack", {"ids": [2]}, 100.0, 1.0)
    whole = a.message(1.0)
    only_second = replace(whole, ops=[whole.ops[1]])
    assert b.take(only_second, 1.0) == []
    assert b.stats.gaps == 1
    assert b.seen == 0
    assert [op.seq for op in b.take(whole, 1.1)] == [1, 2]


def test_digest_mismatch_with_cursors_in_step_starts_a_full_exchange_that_heals_both() -> None:
    a, b = pair()
    a.record("ack", {"ids": [1]}, 100.0, 1.0)
    exchange(a, b, 1.0)
    # B loses the op it held (its state was restored from an older copy) but keeps its cursor:
    # the cursors agree, only the digest can tell.
    b_restored = PairCore(replace(b.stored(), count=0, total=0, ops=[]), SETTINGS, 2.0)
    b_restored.peer_id = "hub-a"
    assert b_restored.digest != a.digest
    a.take(b_restored.message(2.0), 2.0)  # carries B's digest (the first message of a core does)
    assert a.stats.digest_mismatches == 1
    full = a.message(2.1)
    assert full.full
    assert [op.seq for op in full.ops] == [1]
    healed = b_restored.take(full, 2.1)
    assert [op.kind for op in healed] == ["ack"]
    assert b_restored.digest == a.digest


def test_a_hub_that_lost_its_own_ops_gets_them_back_from_the_peer() -> None:
    a, b = pair()
    a.record("ack", {"ids": [1]}, 100.0, 1.0)
    a.record("unack", {"ids": [1]}, 101.0, 1.0)
    exchange(a, b, 1.0)
    lost = PairCore(StoredPair("hub-a", peer_id="hub-b"), SETTINGS, 2.0)  # wiped, same hub id
    lost.take(b.message(2.0), 2.0)  # B says it has seen 2 of A's ops; A's head is 0
    assert lost.stats.full_exchanges == 1
    b.take(lost.message(2.1), 2.1)  # A's (empty) full exchange: B answers with its whole log
    back = lost.take(b.message(2.2), 2.2)
    assert [(op.origin, op.seq) for op in back] == [("hub-a", 1), ("hub-a", 2)]
    assert lost.head == 2
    assert lost.record("ack", {"ids": [3]}, 102.0, 3.0).seq == 3  # seqs are never reused


def test_the_lowest_live_hub_id_sends_and_the_other_takes_over_after_peer_timeout() -> None:
    a, b = pair()
    assert a.is_sender(0.0)
    assert b.is_sender(0.0)
    exchange(a, b, 1.0)
    assert a.is_sender(1.0)
    assert not b.is_sender(1.0)
    assert not b.is_sender(1.0 + 14.9)
    assert b.is_sender(1.0 + 15.0)  # A silent for peer_timeout_s: B sends
    assert a.is_sender(20.0)  # a partition: both send
    exchange(b, a, 30.0)
    assert a.is_sender(30.0)
    assert not b.is_sender(30.0)


def test_delivery_marks_replicate_and_an_already_marked_key_makes_no_op() -> None:
    a, b = pair()
    key = ("hook", 123, "alarm_raised")
    op = a.mark_delivered([key], 100.0, 1.0)
    assert op is not None
    assert a.is_delivered(key)
    assert a.mark_delivered([key], 100.0, 1.0) is None
    assert not b.is_delivered(key)
    exchange(a, b, 1.0)
    assert b.is_delivered(key)


def test_deferred_ops_are_retried_then_given_up() -> None:
    a, b = pair()
    a.record("ack", {"ids": [5]}, 100.0, 1.0)
    [op] = b.take(a.message(1.0), 1.0)
    b.defer(op, 1.0)
    assert b.retries(30.0) == [op]
    assert b.retries(61.5) == []
    assert b.stats.expired == 1


def test_the_log_survives_a_restart_of_the_core() -> None:
    a, b = pair()
    a.record("ack", {"ids": [1]}, 100.0, 1.0)
    exchange(a, b, 1.0)
    saved = b.stored()
    saved.ops = b.take_unsaved()
    again = PairCore(saved, SETTINGS, 5.0)
    assert again.seen == 1
    assert again.digest == b.digest
    assert again.take(a.message(5.0), 5.0) == []  # what it held is not applied twice


def test_a_message_from_a_third_hub_is_counted_and_dropped() -> None:
    a, b = pair()
    exchange(a, b, 1.0)
    c = PairCore(StoredPair("hub-c"), SETTINGS, 1.0)
    c.record("ack", {"ids": [1]}, 100.0, 1.0)
    assert b.take(c.message(1.0), 1.0) == []
    assert b.stats.foreign == 1


def test_the_wire_form_round_trips() -> None:
    a, _ = pair()
    a.record("shelve", {"id": 3, "prefix": "GS1"}, 100.0, 1.0)
    fields: PairMessage = a.message(1.0)
    msg = proto.PairSync(
        sender="hub", epoch=1, seq=1, sent_ns=1, request_id=1, hub_id=fields.hub_id, head=fields.head,
        seen=fields.seen, ops=fields.ops, digest=fields.digest, full=fields.full, notifying=fields.notifying,
    )  # fmt: skip
    back = proto.decode(proto.encode(msg))
    assert isinstance(back, proto.PairSync)
    assert back.ops == fields.ops
    assert back.digest == fields.digest


# -- alarm ids both hubs agree on (hub/alarms.py, derived_ids) -------------------------------------

from gsmon.hub.alarms import DERIVED_ID_BASE, AlarmBook  # noqa: E402


def paired_book() -> AlarmBook:
    book = AlarmBook()
    book.derived_ids = True
    return book


def test_both_hubs_derive_the_same_alarm_id_from_what_the_agent_sent() -> None:
    a, b = paired_book(), paired_book()
    for book, wall in ((a, 1000.0), (b, 1000.7)):  # the hubs' clocks and turns differ
        book.point_level("GS1/p", "ant1", 10, "GREEN", 1, 990.0, None, 1.0, wall)
        book.point_level("GS1/p", "ant1", 30, "RED", 2, 995.5, None, 2.0, wall + 1)
        book.agent_silent("ant1", "GS1", 3.0, wall + 5)
    ids_a = [alarm.id for alarm in a.alarms()]
    ids_b = [alarm.id for alarm in b.alarms()]
    assert ids_a == ids_b
    assert len(ids_a) == 2
    assert all(DERIVED_ID_BASE <= alarm_id < 2 * DERIVED_ID_BASE for alarm_id in ids_a)
    # The journal entry of the change names the alarm it raised.
    [level] = [entry for entry in a.take_journal() if entry.kind == "level"]
    assert level.alarm_id == a.alarms(prefix="GS1/p")[0].id


def test_a_second_raise_on_the_same_path_gets_another_id_and_counters_stay_for_single_hubs() -> None:
    a = paired_book()
    a.point_level("GS1/p", "ant1", 30, "RED", 2, 995.5, None, 1.0, 1000.0)
    first = a.alarms()[0].id
    a.clear(first, "admin", None, None, None, "admin", 2.0, 1001.0)
    a.point_level("GS1/p", "ant1", 10, "GREEN", 1, 996.0, None, 3.0, 1002.0)
    a.point_level("GS1/p", "ant1", 30, "RED", 2, 997.0, None, 4.0, 1003.0)
    second = a.alarms()[0].id
    assert second != first
    single = AlarmBook(next_id=41)
    single.point_level("GS1/p", "ant1", 30, "RED", 2, 995.5, None, 1.0, 1000.0)
    assert [alarm.id for alarm in single.alarms()] == [41]
    # A single hub that restores derived ids (it was one of a pair) keeps counting from its counter.
    alarms, shelves, _next_id = a.take_records()
    restored = AlarmBook.restore(None, alarms, shelves, 7, 5.0, 1004.0)
    assert restored.next_id == 7


def test_a_replicated_shelf_keeps_its_origins_id() -> None:
    a, b = paired_book(), paired_book()
    made = a.shelve("GS1", "timed", None, 2000.0, "works", "ops", None, None, "operator", 1.0, 1000.0)
    assert made.ok
    shelf_id = made.ids[0]
    copy = b.shelve("GS1", "timed", None, 2000.0, "works", "ops", None, None, "admin", 1.0, 1000.0, shelf_id=shelf_id)
    assert copy.ok
    assert copy.ids == (shelf_id,)
    again = b.shelve("GS1", "timed", None, 2000.0, "works", "ops", None, None, "admin", 1.0, 1000.0, shelf_id=shelf_id)
    assert not again.ok


# -- the notifier's side (common/notify/pair.py) ---------------------------------------------------

from gsmon.common.notify.core import Message  # noqa: E402
from gsmon.common.notify.pair import message_keys, sent_by_peer  # noqa: E402


def _message(kinds: list[str], alarm_ids: list[int], paths: list[str]) -> Message:
    return Message(1, "hook", "t", "b", kinds, alarm_ids, paths, 0.0, 0.0)


def test_a_message_is_sent_by_the_peer_only_when_every_key_is_marked() -> None:
    message = _message(["alarm_raised", "alarm_rtn"], [7], ["GS1/p"])
    keys = message_keys(message)
    assert keys == [["hook", 7, "alarm_raised"], ["hook", 7, "alarm_rtn"]]
    assert sent_by_peer(keys, [True, True])
    assert not sent_by_peer(keys, [True, False])
    assert not sent_by_peer(keys, [True])  # an answer of the wrong length proves nothing
    silent = message_keys(_message(["agent_silent"], [], ["GS1/rack"]))
    assert silent == [["hook", 0, "agent_silent:GS1/rack"]]
