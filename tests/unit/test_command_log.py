"""The hub's log of the commands it answers: changes at INFO with who did them, reads and polls at DEBUG.

A real :class:`QueryCore` over a real :class:`HubState` and :class:`AlarmBook` answers the commands;
``caplog`` reads what it logged (no sockets, no sleeps).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gsmon.common import protocol as proto
from gsmon.hub.alarms import AlarmBook
from gsmon.hub.command_log import READS, command_level
from gsmon.hub.journal import StateStore
from gsmon.hub.queries import COMMANDS, QueryCore
from gsmon.hub.state import HubSettings, HubState

WALL0 = 1_700_000_000.0
RED = 30
ENDPOINTS = {"agents": "tcp://h:1", "subscribers": "tcp://h:2", "query": "tcp://h:3"}
# Every command that changes the hub's state; with READS, every command the hub knows.
CHANGES = {"ack", "unack", "clear", "shelve", "unshelve", "context_start", "context_stop", "forget"}
_requests = itertools.count(1)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[QueryCore, int]]:
    """A query core over a hub with one RED alarm and a real state store (the journal is read from it)."""
    book = AlarmBook()
    state = HubState(HubSettings(), 0xFEED, now=0.0, alarms=book)
    point = proto.PointEntry("p", 1, RED, "RED", WALL0, None)
    message = proto.State(
        sender="ant", epoch=1, seq=0, sent_ns=0, mount="GS1", heartbeat_s=100.0, points=[point], part=0, parts=1
    )
    state.apply(message, 0.0, WALL0)
    [alarm] = book.alarms()
    core = QueryCore(state, ENDPOINTS, 1.0, "9.9")
    with StateStore(tmp_path / "state.db") as store:
        core.use_store(store, {})
        yield core, alarm.id


def ask(core: QueryCore, caplog: pytest.LogCaptureFixture, name: str, user: str | None = None, **args: Any) -> list:
    """The lines the query core logged for one command: (level, message)."""
    caplog.clear()
    msg = proto.Command(
        sender="c", epoch=0, seq=1, sent_ns=0, request_id=next(_requests), command=name, args=args, user=user
    )
    core.request(msg, b"ops-1", 1.0, WALL0 + 1, peer="10.0.0.5")
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "gsmon.hub.queries"]


def test_reads_and_polls_are_debug_and_an_ack_is_info_with_who_did_it(
    hub: tuple[QueryCore, int], caplog: pytest.LogCaptureFixture
) -> None:
    core, alarm_id = hub
    caplog.set_level(logging.DEBUG, logger="gsmon.hub.queries")
    for name, args in (("journal", {"after_id": 0}), ("alarms", {}), ("shelves", {}), ("whoami", {})):
        [(level, line)] = ask(core, caplog, name, **args)
        assert (name, level) == (name, logging.DEBUG), line
    [(level, line)] = ask(core, caplog, "ack", user="ann", ids=[alarm_id], comment="on it")
    assert level == logging.INFO
    assert line.startswith("command ack ")
    # Who: the connection (no keys here; with keys the key's name) and the end user; then what it did.
    assert line.endswith(f"[{alarm_id}], 'comment': 'on it'}} by client 6f70732d31 (user 'ann'): acknowledged 1 alarm")
    [(level, line)] = ask(core, caplog, "unack", user="ann", ids=[alarm_id])
    assert level == logging.INFO


def test_a_refused_or_failed_command_is_a_warning_even_a_read(
    hub: tuple[QueryCore, int], caplog: pytest.LogCaptureFixture
) -> None:
    core, _ = hub
    caplog.set_level(logging.DEBUG, logger="gsmon.hub.queries")
    [(level, line)] = ask(core, caplog, "ack", comment="which?")
    assert level == logging.WARNING
    assert "by client 6f70732d31: ack needs ids" in line
    [(level, _)] = ask(core, caplog, "journal", after_id="zero")
    assert level == logging.WARNING
    [(level, _)] = ask(core, caplog, "no_such_command")
    assert level == logging.WARNING


def test_every_command_of_the_hub_is_classified_and_unknown_ones_are_loud() -> None:
    assert set(COMMANDS) <= READS | CHANGES
    assert not READS & CHANGES
    assert {"pair_status", "pair_mark"} <= READS  # a hub pair's commands (hub/pair_link.py), the notifiers' polls
    assert command_level("a_command_added_later", True) == logging.INFO
    assert [command_level(name, True) for name in sorted(CHANGES)] == [logging.INFO] * len(CHANGES)
