"""The agent's outbox (agent/outbox.py): tseq across restarts, bounds, confirmations, the lost range."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gsmon.agent.outbox import Outbox, OutboxError, OutboxSettings, outbox_file
from gsmon.common.protocol import TransitionItem

HUBS = ["tcp://a:7761", "tcp://b:7761"]
T0 = 1_800_000_000.0


def _transitions(outbox: Outbox, count: int, start: float = T0) -> list[int]:
    """``count`` level transitions of one point, alternating GREEN and RED, one a second."""
    tseqs = []
    for index in range(count):
        new = 30 if index % 2 == 0 else 10
        tseq = outbox.record("Rack/temp", 40 - new, new, "RED" if new == 30 else "GREEN", index, start + index, start)
        assert tseq is not None
        tseqs.append(tseq)
        outbox.commit(start)  # one publisher flush per transition
    return tseqs


def test_tseq_and_levels_survive_a_restart(tmp_path: Path) -> None:
    path = outbox_file(tmp_path, "rack1")
    outbox = Outbox(path, HUBS)
    assert outbox.record("Rack/temp", None, 10, "GREEN", 21.0, T0, T0) is None  # its first level ever
    assert outbox.record("Rack/temp", 10, 30, "RED", 90.0, T0 + 1, T0) == 1
    assert outbox.record("Rack/temp", 30, 30, "RED", 91.0, T0 + 2, T0) is None  # no move
    assert outbox.record_event("pending", "Rack/fan", 10, 20, T0 + 3, T0) == 2
    first_id = outbox.outbox_id
    outbox.close()

    again = Outbox(path, HUBS)
    assert (again.outbox_id, again.tail, again.head) == (first_id, 1, 2)
    # The first poll of the new process: old is None, but the outbox knew RED, so GREEN is a transition.
    assert again.record("Rack/temp", None, 10, "GREEN", 22.0, T0 + 10, T0) == 3
    assert again.read(1, 3, 100, 1 << 20) == [
        TransitionItem(1, "level", "Rack/temp", T0 + 1, 10, 30, 90.0, "RED"),
        TransitionItem(2, "pending", "Rack/fan", T0 + 3, 10, 20, None, ""),
        TransitionItem(3, "level", "Rack/temp", T0 + 10, 30, 10, 22.0, "GREEN"),
    ]


def test_a_second_process_on_the_same_file_is_refused(tmp_path: Path) -> None:
    path = outbox_file(tmp_path, "rack1")
    first = Outbox(path, HUBS)
    with pytest.raises(OutboxError, match="in use by another process"):
        Outbox(path, HUBS, busy_timeout_s=0.05)
    first.close()


def test_entries_every_hub_confirmed_are_dropped(tmp_path: Path) -> None:
    outbox = Outbox(None, HUBS)
    _transitions(outbox, 5)
    outbox.confirm(0, 3, T0)
    assert (outbox.tail, outbox.head) == (1, 5)  # hub b has confirmed nothing
    outbox.confirm(1, 2, T0)
    assert (outbox.tail, outbox.head, len(outbox)) == (3, 5, 3)
    outbox.confirm(1, 99, T0)  # beyond the head: up to the head
    assert outbox.confirmed(1) == 5
    assert (outbox.tail, outbox.head) == (4, 5)
    assert outbox.lost == 0


def test_the_entry_bound_drops_the_oldest_and_counts_the_unconfirmed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(outbox_file(tmp_path, "rack1"), HUBS, OutboxSettings(max_entries=4))
    outbox.confirm(0, 0, T0)
    with caplog.at_level(logging.WARNING):
        _transitions(outbox, 6)
    assert (outbox.tail, outbox.head, len(outbox)) == (3, 6, 4)
    assert outbox.lost == 2
    assert "outbox_overflow: dropped transitions 1..1" in caplog.text
    assert [t.tseq for t in outbox.read(1, 99, 100, 1 << 20)] == [3, 4, 5, 6]
    outbox.close()
    again = Outbox(outbox_file(tmp_path, "rack1"), HUBS, OutboxSettings(max_entries=4))
    assert (again.tail, again.head) == (3, 6)  # the bound holds across a restart


def test_the_age_bound_drops_entries_older_than_max_age_days() -> None:
    outbox = Outbox(None, HUBS, OutboxSettings(max_age_days=1.0))
    _transitions(outbox, 3, start=T0 - 2 * 86400)  # two days old
    assert outbox.head == 3
    # The next commit (a day later than the first three's age bound) drops them.
    assert outbox.record("Rack/temp", 30, 10, "GREEN", 1.0, T0, T0) == 4
    assert (outbox.tail, outbox.head) == (1, 4)  # recorded in memory: the bounds apply when it is written
    outbox.commit(T0)
    assert (outbox.tail, outbox.head) == (4, 4)
    assert outbox.lost == 3


def test_read_is_cut_by_count_and_by_bytes() -> None:
    outbox = Outbox(None, HUBS)
    assert outbox.record("Big", None, 10, "", None, T0, T0) is None  # the point's first level
    for index in range(9):
        outbox.record("Big", None, 30 if index % 2 == 0 else 10, "", "x" * 1000, T0 + index, T0)
    assert outbox.head == 9
    assert [t.tseq for t in outbox.read(1, 9, 3, 1 << 20)] == [1, 2, 3]
    assert [t.tseq for t in outbox.read(1, 9, 100, 2500)] == [1, 2]
    assert [t.tseq for t in outbox.read(1, 9, 100, 10)] == [1]  # at least one, however big


def test_bad_settings_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="max_age_days: expected a positive number of days"):
        OutboxSettings(max_age_days=0)
    with pytest.raises(ValueError, match="max_entries: expected a whole number >= 1"):
        OutboxSettings(max_entries=True)


def test_outbox_file_names_are_plain_file_names(tmp_path: Path) -> None:
    assert outbox_file(tmp_path, "rack1").name == "outbox-rack1.db"
    odd = outbox_file(tmp_path, "Antenne été 2").name
    assert odd.startswith("outbox-Antenne__t__2-")
    assert odd.endswith(".db")


def test_the_agent_config_sets_the_state_dir_and_the_bounds(tmp_path: Path) -> None:
    from gsmon.agent.config import parse_agent_config
    from gsmon.common.config import ConfigError

    config = parse_agent_config(
        f'[agent]\nname = "rack1"\nstate_dir = "{tmp_path}"\n[outbox]\nmax_age_days = 2\nmax_entries = 50\n'
    )
    assert config.agent.state_dir == tmp_path
    assert (config.outbox.enabled, config.outbox.max_age_days, config.outbox.max_entries) == (True, 2.0, 50)
    assert parse_agent_config('[agent]\nstate_dir = ""').agent.state_dir is None  # in memory
    assert parse_agent_config("").agent.state_dir is not None  # gsmon agent persists it by default
    with pytest.raises(ConfigError, match="max_entries"):
        parse_agent_config("[outbox]\nmax_entries = 0")


def test_only_a_publishing_monitor_has_an_outbox(tmp_path: Path) -> None:
    from gsmon.agent.monitor import Monitor

    mon = Monitor(hub="tcp://127.0.0.1:1", agent="rack1", mount="GS1/Rack1", state_dir=tmp_path)
    assert mon.outbox is not None
    assert mon.outbox.path == outbox_file(tmp_path, "rack1")
    assert Monitor(hub="tcp://127.0.0.1:1", agent="rack2").outbox is not None  # in memory
    assert Monitor(hub="tcp://127.0.0.1:1", agent="rack3", outbox=False).outbox is None
    assert Monitor().outbox is None
    with pytest.raises(ValueError, match="in use by another process"):
        Monitor(hub="tcp://127.0.0.1:1", agent="rack1", state_dir=tmp_path)
    mon.outbox.close()


def test_entries_are_written_in_one_transaction_per_commit(tmp_path: Path) -> None:
    """Issue 17 §3: recording (under the Monitor's lock) only appends to memory; commit() writes them all."""
    outbox = Outbox(outbox_file(tmp_path, "rack1"), HUBS)
    statements: list[str] = []
    outbox._db.set_trace_callback(statements.append)
    for index in range(100):
        outbox.record(f"Rack/p{index}", 10, 30, "RED", index, T0, T0)
    assert outbox.head == 100
    assert statements == []  # nothing written yet
    outbox.commit(T0)
    assert sum(1 for sql in statements if sql.strip().upper() == "COMMIT") == 1
    assert [t.tseq for t in outbox.read(99, 100, 10, 1 << 20)] == [99, 100]
    outbox.close()
    again = Outbox(outbox_file(tmp_path, "rack1"), HUBS)
    assert again.head == 100
    again.close()


def test_entries_not_yet_committed_are_written_by_close_and_read_by_a_replay(tmp_path: Path) -> None:
    outbox = Outbox(outbox_file(tmp_path, "rack1"), HUBS)
    outbox.record("Rack/temp", 10, 30, "RED", 90.0, T0, T0)
    assert [t.tseq for t in outbox.read(1, 1, 10, 1 << 20)] == [1]  # read() writes what is pending first
    outbox.record("Rack/temp", 30, 10, "GREEN", 20.0, T0 + 1, T0)
    outbox.close()
    assert outbox.record("Rack/temp", 10, 30, "RED", 90.0, T0 + 2, T0) is None  # closed: nothing recorded
    again = Outbox(outbox_file(tmp_path, "rack1"), HUBS)
    assert (again.head, again.read(2, 2, 10, 1 << 20)[0].new) == (2, 10)
    again.close()


def test_the_live_window_is_what_was_recorded_between_cuts() -> None:
    outbox = Outbox(None, HUBS)
    outbox.record("A", 10, 30, "RED", 1, T0, T0)
    outbox.cut()
    outbox.record("A", 30, 10, "GREEN", 2, T0 + 1, T0)  # after the cut: the next window's
    assert [t.tseq for t in outbox.take_window()] == [1]
    assert [t.tseq for t in outbox.take_window()] == [2]  # no cut since: taken as it is
    assert outbox.take_window() == []


def test_monitor_stop_closes_the_outbox_and_start_opens_it_again(tmp_path: Path) -> None:
    """Issue 17 §4: stop() writes the pending entries and releases the file (its lock, its handles)."""
    import os

    from gsmon.agent.monitor import Monitor

    path = outbox_file(tmp_path, "rack1")

    def open_handles() -> list[str]:
        fds = Path("/proc/self/fd")
        return [str(fd.readlink()) for fd in fds.iterdir() if fd.is_symlink() and str(path) in os.path.realpath(fd)]

    mon = Monitor(hub="tcp://127.0.0.1:1", agent="rack1", state_dir=tmp_path)
    first = mon.outbox
    assert first is not None
    assert open_handles()
    first.record("Rack/temp", 10, 30, "RED", 90.0, T0, T0)  # pending, not written
    mon.stop()  # never started: stop still closes it
    assert first.closed
    assert open_handles() == []
    other = Outbox(path, HUBS)  # the exclusive lock is released
    assert other.head == 1  # and the pending entry was written
    other.close()

    mon.start()
    try:
        second = mon.outbox
        assert second is not None
        assert second is not first
        assert not second.closed
        assert second.head == 1  # the same file again
        assert mon.publisher is not None
        assert mon.publisher.outbox is second
    finally:
        mon.stop()
    assert second.closed
    assert open_handles() == []
