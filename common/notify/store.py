"""The notifier's state file: journal cursor, core state and the log of what was sent (stdlib ``sqlite3``, WAL).

Library choice: the standard library's ``sqlite3`` (WAL): atomic, durable
transactions in one file, readable by ``gsmon notify --log`` while the
notifier runs, and nothing to install.

Tables: ``meta(key, value)`` holds ``schema_version``, ``cursor`` (the last
journal id taken in) and ``core_state`` (the core's JSON); ``sent`` holds one
row per finished message (sent, or given up after retries) and each test.

The exactly-once rule: the entries of one journal page change the core, and
the new core state is committed together with the new cursor (:meth:`save`),
so a notifier killed at any moment restarts from a cursor that matches its
state: no entry is taken twice, none is lost, and messages not yet delivered
are in the saved outbox. A delivery is recorded (:meth:`record`) in one
transaction with the state that no longer holds the message. The only window
left is a kill between the receiver accepting a message and that commit (a
few milliseconds): such a message is sent once more after the restart, never
lost.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from gsmon.common.errors import UsageError
from gsmon.common.notify.core import Message, iso_utc

__all__ = ["STATE_FILE", "NotifyStore", "SentRow", "StoreError"]

STATE_FILE: Final = "notify.db"
SCHEMA_VERSION: Final = 1


class StoreError(UsageError):
    """The state file cannot be used (one line for the operator: fix --state-dir or the file)."""


@dataclass(frozen=True, slots=True)
class SentRow:
    id: int
    at: float
    receiver: str
    status: str  # sent | failed | test
    attempts: int
    title: str
    body: str
    alarm_ids: list[int]
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": iso_utc(self.at),
            "receiver": self.receiver,
            "status": self.status,
            "attempts": self.attempts,
            "title": self.title,
            "body": self.body,
            "alarm_ids": self.alarm_ids,
            "error": self.error,
        }


class NotifyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sent (id INTEGER PRIMARY KEY AUTOINCREMENT, message_id INTEGER,"
                " at REAL NOT NULL, receiver TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,"
                " title TEXT NOT NULL, body TEXT NOT NULL, alarm_ids TEXT NOT NULL, error TEXT)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS sent_at ON sent (at)")
            version = self._meta("schema_version")
            if version is None:
                self._set("schema_version", str(SCHEMA_VERSION))
            elif int(version) > SCHEMA_VERSION:
                raise StoreError(f"{path}: written by a newer gsmon (schema {version}); upgrade gsmon to read it")
        except (sqlite3.Error, OSError) as error:
            raise StoreError(f"{path}: cannot open the notifier's state file: {error}") from error

    def close(self) -> None:
        self._db.close()

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def load(self) -> tuple[int, dict[str, Any] | None]:
        """(cursor, core state or None) as last saved."""
        cursor = self._meta("cursor")
        state = self._meta("core_state")
        return (int(cursor) if cursor else 0), (json.loads(state) if state else None)

    def save(self, cursor: int, state: dict[str, Any]) -> None:
        """The cursor and the core state, in one transaction."""
        with self._transaction():
            self._set("cursor", str(cursor))
            self._set("core_state", json.dumps(state))

    def record(self, message: Message, status: str, at: float, state: dict[str, Any] | None) -> None:
        """Log a finished message (and the state that no longer holds it) in one transaction."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO sent (message_id, at, receiver, status, attempts, title, body, alarm_ids, error)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    message.id,
                    at,
                    message.receiver,
                    status,
                    message.attempts,
                    message.title,
                    message.body,
                    json.dumps(message.alarm_ids),
                    message.last_error,
                ),
            )
            if state is not None:
                self._set("core_state", json.dumps(state))

    def sent(self, since: float | None = None, limit: int = 1000) -> list[SentRow]:
        rows = self._db.execute(
            "SELECT id, at, receiver, status, attempts, title, body, alarm_ids, error FROM sent"
            " WHERE at >= ? ORDER BY id LIMIT ?",
            (since if since is not None else 0.0, limit),
        ).fetchall()
        return [SentRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8]) for r in rows]

    def _transaction(self) -> _Tx:
        return _Tx(self._db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
