"""The notifier's state file: cursor and core state commit together; the sent-log; a newer schema is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gsmon.common.notify.core import Message
from gsmon.common.notify.store import NotifyStore, StoreError


def message(message_id: int) -> Message:
    return Message(message_id, "ops", f"title {message_id}", "body", ["alarm_raised"], [7], ["GS1/a"], 1.0, 1.0, 1)


def test_cursor_state_and_log_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "notify.db"
    store = NotifyStore(path)
    assert store.load() == (0, None)
    store.save(42, {"next_id": 3})
    store.record(message(1), "sent", 100.0, {"next_id": 4})
    store.record(message(2), "failed", 200.0, None)
    store.close()
    again = NotifyStore(path)
    assert again.load() == (42, {"next_id": 4})
    rows = again.sent()
    assert [(r.title, r.status, r.alarm_ids) for r in rows] == [("title 1", "sent", [7]), ("title 2", "failed", [7])]
    assert [r.title for r in again.sent(since=150.0)] == ["title 2"]
    assert rows[0].to_json()["at"] == "1970-01-01T00:01:40.000Z"
    again.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def test_a_file_from_a_newer_gsmon_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "notify.db"
    NotifyStore(path).close()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.close()
    with pytest.raises(StoreError, match="written by a newer gsmon") as caught:
        NotifyStore(path)
    assert "\n" not in str(caught.value)


def test_an_unusable_path_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot open the notifier's state file"):
        NotifyStore(tmp_path / "file" / "notify.db")
