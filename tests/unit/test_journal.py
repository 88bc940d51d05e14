"""The hub's state store on real SQLite files in temporary folders."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsmon.hub import journal as journal_module
from gsmon.hub.alarms import (
    ADMIN,
    OPERATOR,
    RTN_UNACKED,
    SCHEDULED,
    TIMED,
    AlarmBook,
    JournalEntry,
    path_in_prefix,
)
from gsmon.hub.journal import (
    MIGRATIONS,
    SCHEMA_VERSION,
    STATE_FILE,
    Migration,
    Pruner,
    Retention,
    StateStore,
    StoreError,
    default_state_dir,
)

WALL0 = 1_800_000_000.0
DAY = 86400.0
GREEN, ORANGE, RED = 10, 20, 30


def entry(path: str = "GS1/x", kind: str = "level", at: float = WALL0, **fields: Any) -> JournalEntry:
    return JournalEntry(at, fields.pop("hub_time", at), path, kind, **fields)


def write_book(store: StateStore, book: AlarmBook) -> range:
    alarms, shelves, next_id = book.take_records()
    return store.write_turn(book.take_journal(), alarms, shelves, next_id)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / STATE_FILE


def test_a_new_store_is_created_migrated_and_in_wal_mode(db_path: Path) -> None:
    with StateStore(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.load().next_id == 1
        assert store.load().alarms == []
    raw = sqlite3.connect(db_path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"meta", "alarms", "shelves", "journal"} <= tables
    raw.close()
    assert oct(db_path.parent.stat().st_mode & 0o777) == "0o700"  # comments and names: not for everyone
    with StateStore(db_path) as again:  # reopening changes nothing
        assert again.schema_version == SCHEMA_VERSION


def test_alarms_shelves_and_the_id_counter_survive_a_reopen_and_a_restore(db_path: Path) -> None:
    book = AlarmBook()
    book.point_level("GS1/a", "ant", RED, "RED", {"volts": [1.5, None, "x"]}, WALL0, None, 0, WALL0)
    book.point_level("GS1/b", "ant", RED, "RED", b"\x01raw", WALL0, None, 0, WALL0)
    (acked,) = [alarm.id for alarm in book.alarms("GS1/a")]
    book.ack([acked], "ops", "alice", "on it", "cli", OPERATOR, 0, WALL0 + 1)
    book.shelve("GS1/b", TIMED, None, WALL0 + 3600, "cable swap", "ops", "alice", "cli", OPERATOR, 0, WALL0 + 2)
    book.shelve("GS2", SCHEDULED, WALL0 + DAY, WALL0 + 2 * DAY, "window", "root", None, "web", ADMIN, 0, WALL0 + 3)
    book.agent_silent("gone", "GS3", 0, WALL0 + 4)
    expected_alarms = {alarm.id: alarm for alarm in book.alarms()}
    expected_shelves = book.shelves()
    with StateStore(db_path) as store:
        write_book(store, book)
    with StateStore(db_path) as store:
        stored = store.load()
    assert stored.next_id == book.next_id == 6
    stored_alarms = {alarm.id: alarm for alarm in stored.alarms}
    assert stored_alarms[acked] == expected_alarms[acked]
    assert stored_alarms[2].value == "\x01raw"  # bytes are kept as text
    assert {k: v for k, v in stored_alarms.items() if k != 2} == {k: v for k, v in expected_alarms.items() if k != 2}
    assert stored.shelves == expected_shelves
    restored = AlarmBook.restore(None, stored.alarms, stored.shelves, stored.next_id, 0, WALL0 + 5)
    assert restored.alarm(acked) == expected_alarms[acked]
    assert restored.is_silent("gone")
    assert restored.attention_of("GS1") == 0  # acked, and shelved
    assert restored.attention_of("GS3") == 50


def test_a_turn_is_one_transaction_all_or_nothing(db_path: Path) -> None:
    book = AlarmBook()
    book.point_level("GS1/a", "ant", RED, "RED", 1, WALL0, None, 0, WALL0)
    with StateStore(db_path) as store:
        ids = write_book(store, book)
        assert ids == range(1, 2)
        book.point_level("GS1/b", "ant", RED, "RED", 1, WALL0, None, 0, WALL0)
        alarms, shelves, next_id = book.take_records()
        broken = [*alarms, alarms[0].__class__(**{**_fields(alarms[0]), "id": 99, "path": None})]
        with pytest.raises(StoreError, match=r"^cannot write the state store .*NOT NULL"):
            store.write_turn(book.take_journal(), broken, shelves, next_id)
        stored = store.load()
        assert [alarm.id for alarm in stored.alarms] == [1]  # nothing of the failed turn
        assert stored.next_id == 2
        assert [e.id for e in store.query_journal()] == [1]
        assert store.write_turn([entry()], [], [], 2) == range(2, 3)  # and the store goes on


def _fields(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


def test_journal_ids_are_cursors_that_never_go_back_even_after_pruning_everything(db_path: Path) -> None:
    with StateStore(db_path) as store:
        assert store.write_turn([entry(), entry()], [], [], 1) == range(1, 3)
        assert store.write_turn([], [], [], 1) == range(0)  # nothing to write: no transaction at all
        store.prune(Retention(max_age_days=1), WALL0 + 2 * DAY)
        assert store.query_journal() == []
        assert store.write_turn([entry()], [], [], 1) == range(3, 4)
        assert store.load().last_journal_id == 3


def test_pure_level_turns_skip_the_fsync_and_everything_else_is_full(db_path: Path) -> None:
    with StateStore(db_path) as store:
        store.write_turn([entry(kind="level"), entry(kind="stale"), entry(kind="pending")], [], [], 1)
        assert store.synchronous == "NORMAL"
        store.write_turn([entry(kind="ack", by="ops")], [], [], 1)
        assert store.synchronous == "FULL"
        store.write_turn([entry(kind="level")], [], [], 1)
        assert store.synchronous == "NORMAL"
        store.write_turn([entry(kind="level")], [], [], 7)  # a new id was taken: it must not be lost
        assert store.synchronous == "FULL"


SEGMENTS = st.sampled_from(["GS1", "A", "AB", "A0", "A.", "A!", "x", "Aé", "é", "y z"])
PATHS = st.lists(SEGMENTS, min_size=1, max_size=4).map("/".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    paths=st.lists(PATHS, min_size=1, max_size=30), prefix=st.one_of(PATHS, PATHS.map(lambda p: p + "/"), st.just(""))
)
def test_journal_prefixes_are_segment_aware_like_path_in_prefix(
    tmp_path_factory: pytest.TempPathFactory, paths: list[str], prefix: str
) -> None:
    with StateStore(tmp_path_factory.mktemp("q") / STATE_FILE) as store:
        store.write_turn([entry(path) for path in paths], [], [], 1)
        got = [e.path for e in store.query_journal(prefix)]
    assert got == [path for path in paths if path_in_prefix(path, prefix)]


def test_query_by_time_cursor_and_limit(db_path: Path) -> None:
    with StateStore(db_path) as store:
        store.write_turn([entry(f"GS1/{n}", at=WALL0 + n) for n in range(10)], [], [], 1)
        assert [e.path for e in store.query_journal(since=WALL0 + 7)] == ["GS1/7", "GS1/8", "GS1/9"]
        page = store.query_journal("GS1", after_id=3, limit=4)
        assert [e.id for e in page] == [4, 5, 6, 7]
        assert store.query_journal(limit=0) == []


def test_newest_gives_the_latest_entries_still_oldest_first(db_path: Path) -> None:
    with StateStore(db_path) as store:
        store.write_turn([entry(f"GS1/{n}", at=WALL0 + n) for n in range(10)], [], [], 1)
        assert [e.id for e in store.query_journal(limit=3, newest=True)] == [8, 9, 10]
        assert [e.id for e in store.query_journal("GS1", after_id=8, limit=5, newest=True)] == [9, 10]
        assert [e.path for e in store.query_journal(since=WALL0 + 5, limit=2, newest=True)] == ["GS1/8", "GS1/9"]


def test_export_writes_json_lines_of_every_entry(db_path: Path) -> None:
    with StateStore(db_path) as store:
        store.write_turn([entry(f"GS1/{n}", value=n * 1.5, comment="é") for n in range(12)], [], [], 1)
        store.write_turn([entry("GS2/y", value=float("nan"))], [], [], 1)
        out = io.StringIO()
        assert store.export_jsonl(out, batch_rows=5) == 13
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        assert [line["id"] for line in lines] == list(range(1, 14))
        assert lines[3]["value"] == 4.5
        assert lines[3]["time"] == "2027-01-15T08:00:00.000Z"
        assert lines[-1]["value"] == "nan"
        assert set(lines[0]) >= {"time", "path", "kind", "old", "new", "value", "agent", "user", "comment", "alarm_id"}
        prefixed = io.StringIO()
        assert store.export_jsonl(prefixed, prefix="GS2") == 1


def test_retention_by_age_prunes_old_history_in_batches_and_never_open_alarms(db_path: Path) -> None:
    book = AlarmBook()
    book.point_level("GS1/old", "ant", ORANGE, "ORANGE", 1, WALL0, None, 0, WALL0)
    book.point_level("GS1/old", "ant", GREEN, "GREEN", 1, WALL0, None, 0, WALL0)  # cleared at WALL0
    book.point_level("GS1/open", "ant", RED, "RED", 1, WALL0, None, 0, WALL0)  # open since WALL0
    book.shelve("GS9", TIMED, None, WALL0 + 60, "short", "k", None, "cli", OPERATOR, 0, WALL0)
    book.tick(0, WALL0 + 60)  # ended at WALL0 + 60
    book.shelve("GS8", TIMED, None, WALL0 + 3600, "long", "k", None, "cli", OPERATOR, 0, WALL0)
    with StateStore(db_path) as store:
        book_rows = len(write_book(store, book))
        store.write_turn([entry(at=WALL0 + n) for n in range(50)], [], [], book.next_id)
        store.write_turn([entry(at=WALL0 + 20 * DAY)], [], [], book.next_id)
        result = store.prune(Retention(max_age_days=10), WALL0 + 11 * DAY, batch_rows=7)
        assert (result.alarms, result.shelves) == (1, 1)
        assert result.journal_rows == book_rows + 50
        assert [e.hub_time for e in store.query_journal()] == [WALL0 + 20 * DAY]
        stored = store.load()
        assert [alarm.path for alarm in stored.alarms] == ["GS1/open"]
        assert [shelf.prefix for shelf in stored.shelves] == ["GS8"]


def test_retention_by_size_drops_the_oldest_rows_and_shrinks_the_file(db_path: Path) -> None:
    with StateStore(db_path) as store:
        for turn in range(20):
            store.write_turn([entry(f"GS1/{turn}/{n}", comment="x" * 200) for n in range(500)], [], [], 1)
        checkpoint(db_path)
        before = db_path.stat().st_size
        assert store.size_bytes() > 2 << 20
        result = store.prune(Retention(max_age_days=None, max_size_bytes=1 << 20), WALL0, batch_rows=500)
        assert result.size_bytes <= 1 << 20
        assert store.size_bytes() == result.size_bytes
        remaining = store.query_journal(limit=100_000)
        assert remaining[-1].path == "GS1/19/499"  # the newest stay
        assert remaining[0].id == result.journal_rows + 1  # the oldest went, in order
    checkpoint(db_path)
    assert db_path.stat().st_size < before / 2  # free pages went back to the file system


def checkpoint(path: Path) -> None:
    """Move the WAL's pages into the database file, so that its size tells what the database holds."""
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()


def test_the_pruner_thread_uses_its_own_connection_beside_a_busy_writer(db_path: Path) -> None:
    clock = [WALL0]
    with StateStore(db_path) as store:
        store.write_turn([entry(at=WALL0 - 40 * DAY) for _ in range(3000)], [], [], 1)
        pruner = Pruner(db_path, Retention(max_age_days=30), interval_s=0.01, clock=lambda: clock[0], batch_rows=100)
        pruner.start()
        try:
            for turn in range(30):  # the hub keeps writing meanwhile
                store.write_turn([entry(f"GS1/{turn}", at=WALL0) for _ in range(50)], [], [], 1)
            assert pruner.wait_for_runs(2, timeout_s=30)
        finally:
            pruner.stop()
        assert not any(thread.name == "gsmon-journal-pruner" for thread in threading.enumerate())
        assert len(store.query_journal(limit=100_000)) == 30 * 50
        assert pruner.last is not None
    with pytest.raises(ValueError, match="interval_s"):
        Pruner(db_path, Retention(), interval_s=0)


def test_a_store_from_a_newer_gsmon_is_refused_with_one_line(db_path: Path) -> None:
    newer = (*MIGRATIONS, Migration(SCHEMA_VERSION + 1, "future", ("CREATE TABLE future (x)",)))
    StateStore(db_path, migrations=newer).close()
    with pytest.raises(StoreError) as caught:
        StateStore(db_path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.endswith(
        f"has schema {SCHEMA_VERSION + 1}, this gsmon knows up to {SCHEMA_VERSION}:"
        " upgrade gsmon, or give --state-dir another folder"
    )


def test_migrations_run_in_order_once_and_a_failing_one_changes_nothing(db_path: Path) -> None:
    StateStore(db_path).close()
    step = Migration(SCHEMA_VERSION + 1, "kinds index", ("CREATE INDEX journal_kind ON journal (kind)",))
    broken = Migration(SCHEMA_VERSION + 2, "broken", ("CREATE TABLE t2 (x)", "CREATE TABLE no such syntax"))
    with pytest.raises(StoreError, match="move it aside"):
        StateStore(db_path, migrations=(*MIGRATIONS, step, broken))
    with StateStore(db_path, migrations=(*MIGRATIONS, step)) as store:  # the failed run left version 1, no t2
        assert store.schema_version == SCHEMA_VERSION + 1
    raw = sqlite3.connect(db_path)
    names = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
    raw.close()
    assert "journal_kind" in names
    assert "t2" not in names


def test_an_unusable_place_gets_one_clear_line(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, just some bytes " * 100)
    with pytest.raises(StoreError, match=r"is unreadable .*: move it aside to start afresh$"):
        StateStore(garbage)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match=r"^cannot open the state store .*: give --state-dir a writable folder$"):
        StateStore(blocker / "state.db")


def test_retention_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_age_days: expected a positive number of days, got 0"):
        Retention(max_age_days=0)
    with pytest.raises(ValueError, match="max_size_bytes: expected a whole number of bytes >= 1 MiB, got 10"):
        Retention(max_size_bytes=10)


def test_the_default_state_dir_is_beside_the_keys_else_system_else_per_user(tmp_path: Path) -> None:
    keys = tmp_path / "etc" / "keys"
    assert default_state_dir(keys) == tmp_path / "etc" / "state"
    chosen = default_state_dir(None, env={"XDG_STATE_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)})
    system_writable = os.access("/var/lib/gsmon" if Path("/var/lib/gsmon").exists() else "/var/lib", os.W_OK)
    assert chosen == (Path("/var/lib/gsmon") if system_writable else tmp_path / "xdg" / "gsmon")


def test_an_ack_survives_a_restart_through_the_store(db_path: Path) -> None:
    """The AlarmBook and the store together: ack, write, "kill", reopen, restore."""
    book = AlarmBook()
    book.point_level("GS1/x", "ant", RED, "RED", 1, WALL0, None, 0, WALL0)
    book.point_level("GS1/x", "ant", GREEN, "GREEN", 1, WALL0 + 1, None, 0, WALL0 + 1)
    with StateStore(db_path) as store:
        write_book(store, book)
    with StateStore(db_path) as store:
        stored = store.load()
    again = AlarmBook.restore(None, stored.alarms, stored.shelves, stored.next_id, 0, WALL0 + 2)
    (alarm,) = again.alarms()
    assert alarm.state == RTN_UNACKED
    outcome = again.ack([alarm.id], "ops", None, None, "cli", OPERATOR, 0, WALL0 + 3)
    assert outcome.ok
    with StateStore(db_path) as store:
        write_book(store, again)
        assert store.load().alarms[0].state == "cleared"
        assert [e.kind for e in store.query_journal()][-2:] == ["ack", "alarm_cleared"]


def test_a_journal_entry_s_fields_are_the_journal_columns_in_order() -> None:
    """write_turn makes each row from the entry tuple's slices: the fields must be the columns after id."""
    columns = journal_module._JOURNAL_COLUMNS[1:]
    names = {"user_name": "user", "by_key": "by"}
    assert JournalEntry._fields[: len(columns)] == tuple(names.get(column, column) for column in columns)
    entry = JournalEntry(1.0, 2.0, "GS1/p", "level", 10, 30, {"v": 1}, "a", "u", "k", "cli", "c", 7, 8, True)
    assert journal_module._journal_row(5, entry) == (5, 1.0, 2.0, "GS1/p", "level", 10, 30, '{"v":1}', "a", "u",
                                                     "k", "cli", "c", 7, 8, True)  # fmt: skip
