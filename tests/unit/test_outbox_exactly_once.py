"""Issue 17 §3: every effective-level transition an agent's outbox numbers reaches the hub's journal once.

The agent's real outbox and send policy and the hub's real state, alarm book and replay core, wired by a
lossy channel (tests/unit/outbox_model.py): first the cases an exploration of that model found (each lost
or repeated a transition before its fix), then the model itself under seeded random losses and polls.
No sockets, no sleeps, made-up times.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from outbox_model import AGENT, GREEN, MOUNT, ORANGE, RED, Model

from gsmon.common import protocol as proto


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    """The hub logs every gap and replay at INFO/WARNING: thousands in the random runs."""
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def started(*paths: str) -> tuple[Model, int]:
    """A model whose hub follows the agent, every point GREEN; and where the journal stood then."""
    model = Model()
    for path in paths:
        model.poll(path, GREEN)
    model.settle(2.0)
    return model, len(model.hub.journal)


def levels_of(model: Model, since: int, path: str) -> list[tuple[int | None, int | None, bool]]:
    return [(e.old, e.new, e.replayed) for e in model.journaled_levels(since) if e.path == f"{MOUNT}/{path}"]


def test_a_delta_after_a_gap_showing_the_level_the_hub_had_leaves_its_entry_to_the_replay() -> None:
    """A RED, back to GREEN in a lost DELTA, RED again: the hub saw RED, RED. The DELTA after the gap showed
    no change, so it journaled nothing; the replay must bring both (the hub took the third as journaled)."""
    model, since = started("a", "b")
    model.poll("a", RED)
    model.step()
    model.poll("a", GREEN)
    model.poll("b", RED)
    model.step(drop=lambda m: isinstance(m, proto.Delta))
    model.poll("a", RED)
    model.step()
    model.settle(10.0)
    assert levels_of(model, since, "a") == [(GREEN, RED, False), (RED, GREEN, True), (GREEN, RED, True)]
    assert [new for _, new, _ in levels_of(model, since, "b")] == [RED]


def test_a_change_journaled_from_a_delta_whose_live_transitions_were_lost_is_not_replayed_again() -> None:
    """The DELTA (b RED) arrives, its live TRANSITIONS is lost: the head waits, the gap's replay asks for the
    entry -- and the hub, which journaled it from the DELTA, does not journal it twice."""
    model, since = started("a", "b")
    model.poll("b", RED)
    model.step(drop=lambda m: isinstance(m, proto.Transitions))
    model.poll("a", RED)
    model.step()
    model.settle(10.0)
    assert levels_of(model, since, "b") == [(GREEN, RED, False)]
    assert [new for _, new, _ in levels_of(model, since, "a")] == [RED]
    assert model.hub.replay.have(AGENT) == model.agent.outbox.head


def test_changes_after_the_closing_state_do_not_stand_for_a_replayed_entry() -> None:
    """A blip in a lost flush; after the resync STATE, while the replay is under way (its first answer
    lost), the point flips twice live. Those changes are above the replay's range: the blip's return
    must still be journaled (it was taken as the live return to GREEN). The lost answer is a seq gap
    too: the retried replay completes while that second break is open, and what the hub journaled live
    in it still stands for its entry when the next STATE closes it (it was replayed again)."""
    model, since = started("a", "z")
    model.poll("a", RED)
    model.poll("a", GREEN, after_s=0.01)
    model.step(drop=lambda m: True)  # the whole flush (its DELTA and its live TRANSITIONS)
    model.poll("z", RED)
    model.step()  # the DELTA after the gap: the hub asks for a STATE
    answers: list[proto.Message] = []

    def lose_the_first_answer(message: proto.Message) -> bool:
        if isinstance(message, proto.Transitions) and message.live is None:
            answers.append(message)
            return len(answers) == 1  # the hub asks again after RETRY_S
        return False

    model.step(drop=lose_the_first_answer)  # the resync STATE: the replay is asked for
    for level in (RED, GREEN):  # two flushes, one change each, heard in order after the STATE
        model.poll("a", level)
        model.step(drop=lose_the_first_answer)
    model.settle(32.0)  # the hub asks again after RETRY_S; the periodic STATE closes the second break
    assert answers, "no replay was asked for"
    assert model.hub.replay.have(AGENT) == model.agent.outbox.head
    assert levels_of(model, since, "a") == [
        (GREEN, RED, False),  # the two live changes
        (RED, GREEN, False),
        (GREEN, RED, True),  # the blip, replayed
        (RED, GREEN, True),
    ]


def test_two_changes_of_a_point_journaled_live_in_one_break_stand_for_two_entries() -> None:
    """After a gap two DELTAs show b RED then b GREEN (each journaled live): the replay journals neither again."""
    model, since = started("a", "b")
    model.poll("a", RED)
    model.step(drop=lambda m: True)  # a's flush lost: a gap
    for level in (RED, GREEN):
        model.poll("b", level)
        model.step(drop=lambda m: isinstance(m, proto.State))  # the gap stays open a while
    model.settle(40.0)  # a resync STATE in the end (asked again, or the periodic one)
    assert [(old, new) for old, new, _ in levels_of(model, since, "b")] == [(GREEN, RED), (RED, GREEN)]
    assert [new for _, new, _ in levels_of(model, since, "a")] == [RED]


def test_a_poll_between_the_mark_and_the_points_of_a_state_is_in_its_head() -> None:
    """The policy reads the outbox mark, a worker's poll lands, then the points are taken: the STATE shows
    the poll, so its head must count it (else the replay stops below it and the DELTA after shows no
    change: the transition was never journaled)."""
    model, since = started("a", "z")
    model.poll("a", RED)
    model.step(drop=lambda m: True)  # lost: a gap
    model.poll("z", RED)
    model.step()  # the DELTA after the gap: the hub asks for a STATE
    model.agent.concurrently = lambda: model.poll("a", GREEN, after_s=0.0)
    sent = model.step()
    (state,) = [m for m in sent if isinstance(m, proto.State)]
    assert state.outbox is not None
    assert state.outbox.head == model.agent.outbox.head == 3
    model.settle(10.0)
    assert [(old, new) for old, new, _ in levels_of(model, since, "a")] == [(GREEN, RED), (RED, GREEN)]


def test_a_debounce_event_journaled_live_in_a_break_is_not_journaled_again_by_the_replay() -> None:
    """After a gap, a DELTA's debounce map shows temp pending RED: the book journals that ``pending`` live.
    The replay that closes the break brings the outbox's ``pending`` entry: it stands for it."""
    from gsmon.hub.alarms import AlarmBook
    from gsmon.hub.replay import ReplayCore

    book, core, path = AlarmBook(), ReplayCore(), f"{MOUNT}/temp"
    book.point_level(path, AGENT, GREEN, "GREEN", 1.0, 1.0, None, 0.0, 1.0)
    core.observe(AGENT, 7, 1, proto.OutboxMark(9, 1, 10), True, 0.0)  # followed from tseq 10
    assert core.in_break(AGENT, 7, 3)  # seq 2 lost
    mark = book.journal_mark()
    book.point_debounce(path, AGENT, (RED, 11.0), None, 11.0, 0.1, 11.0)
    core.note_live(AGENT, book.journal_since(mark))
    core.observe(AGENT, 7, 3, proto.OutboxMark(9, 1, 11), False, 0.1, delta=True)
    core.observe(AGENT, 7, 4, proto.OutboxMark(9, 1, 11), True, 0.2)  # the resync STATE
    assert core.take_requests(0.2) == [(AGENT, 11, 11)]
    pending = proto.TransitionItem(11, "pending", "temp", 11.0, GREEN, RED, None, "")
    answer = proto.Transitions(
        sender=AGENT, epoch=7, seq=5, sent_ns=0, outbox_id=9, first=11, last=11, done=True, transitions=[pending]
    )
    core.apply(answer, MOUNT, GREEN, book, 0.3, 12.0)
    assert [(e.kind, e.new, e.replayed) for e in book.take_journal() if e.kind == "pending"] == [
        ("pending", RED, False)
    ]
    assert core.have(AGENT) == 11


# -- the model under random losses --------------------------------------------------------------------


def run(seed: int, drop_rate: float, races: bool, outbox_path: Path | None, pair: bool, steps: int = 150) -> Model:
    """``steps`` publisher turns with 0-2 polls each among 3 points, losing each message at ``drop_rate``;
    ``races``: some polls land between the policy's reading of the mark and its taking of the points; with
    ``outbox_path`` the agent restarts now and then (its outbox on disk); ``pair``: to two hubs, each link
    losing its own messages. Then turns without loss."""
    rng = random.Random(seed)
    model = Model(outbox_path=outbox_path, pair=pair)
    paths = ("a", "b", "c")
    for path in paths:
        model.poll(path, GREEN)
    model.settle(2.0)
    model.truth.clear()
    for hub in model.hubs:
        hub.journal.clear()
    for _ in range(steps):
        for _ in range(rng.randint(0, 2)):
            model.poll(rng.choice(paths), rng.choice((GREEN, GREEN, ORANGE, RED)))
        if races and rng.random() < 0.2:
            path, level = rng.choice(paths), rng.choice((GREEN, RED))
            model.agent.concurrently = lambda path=path, level=level: model.poll(path, level, after_s=0.0)
        if outbox_path is not None and rng.random() < 0.02:
            model.restart_agent()
        model.step(drop=lambda _: rng.random() < drop_rate)
    model.agent.concurrently = None
    model.settle(32.0)  # the periodic STATE closes a break whose resync was not asked again
    return model


CASES = [
    pytest.param(seed, rate, races, restarts, pair, id=f"seed{seed}-drop{rate}-{'race' if races else 'norace'}-"
                 f"{'restarts' if restarts else 'norestart'}-{'pair' if pair else 'onehub'}")
    for seed, rate, races, restarts, pair in [
        (1, 0.05, False, False, False), (2, 0.2, False, False, False), (3, 0.4, False, False, False),
        (4, 0.05, True, False, False), (5, 0.2, True, False, False), (6, 0.4, True, False, False),
        (7, 0.1, False, True, False), (8, 0.3, True, True, False),
        (9, 0.2, True, False, True), (10, 0.3, True, True, True),
    ]
]  # fmt: skip


@pytest.mark.parametrize(("seed", "drop_rate", "races", "restarts", "pair"), CASES)
def test_every_transition_is_journaled_once_whatever_is_lost(
    seed: int, drop_rate: float, races: bool, restarts: bool, pair: bool, tmp_path: Path
) -> None:
    model = run(seed, drop_rate, races, tmp_path / "outbox.db" if restarts else None, pair)
    assert model.dropped > 0  # the run did lose messages
    assert len(model.truth) > 50  # and had transitions
    truth = Counter((t.path, t.new) for t in model.truth)
    outbox = model.agent.outbox
    for link, hub in enumerate(model.hubs):
        journaled = Counter((e.path.rsplit("/", 1)[1], e.new) for e in model.journaled_levels(link=link))
        assert journaled == truth, f"hub {link}"
        assert hub.replay.have(AGENT) == outbox.head
        assert not hub.replay.replaying(AGENT)
        have = hub.replay.have(AGENT)
        assert have is not None
        assert outbox.tail - 1 <= have  # the outbox dropped nothing this hub did not have


@pytest.mark.parametrize(("seed", "drop_rate"), [(11, 0.0), (12, 0.0), (13, 0.1), (14, 0.3)])
def test_across_hub_restarts_nothing_is_lost(seed: int, drop_rate: float) -> None:
    """The hub restarts now and then (journal, outbox marks and alarms from its store). Nothing is lost; a
    restart may journal again what it had not stored as had (protocol: the last message before it, a break
    under way) -- without losses, at most one entry per restart."""
    rng = random.Random(seed)
    model = Model()
    for path in ("a", "b", "c"):
        model.poll(path, GREEN)
    model.settle(2.0)
    model.truth.clear()
    model.hub.journal.clear()
    restarts = 0
    for _ in range(150):
        for _ in range(rng.randint(0, 2)):
            model.poll(rng.choice(("a", "b", "c")), rng.choice((GREEN, GREEN, ORANGE, RED)))
        if rng.random() < 0.05:
            model.restart_hub()
            restarts += 1
        model.step(drop=lambda _: rng.random() < drop_rate)
    model.settle(32.0)
    assert restarts >= 2
    truth = Counter((t.path, t.new) for t in model.truth)
    journaled = Counter((e.path.rsplit("/", 1)[1], e.new) for e in model.journaled_levels())
    assert truth - journaled == Counter()  # none lost
    if drop_rate == 0.0:
        assert (journaled - truth).total() <= restarts
    assert model.hub.replay.have(AGENT) == model.agent.outbox.head
