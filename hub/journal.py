"""The hub's state store: alarms, shelves and the journal in one SQLite file (stdlib ``sqlite3``, WAL).

Library choice: the standard library's ``sqlite3``. SQLite gives atomic,
durable transactions in one file, concurrent readers beside one writer (WAL),
and survives a process killed mid-write; nothing to install, and the file can
be read with the ``sqlite3`` shell. No ORM: four tables and a dozen statements.
Point values are stored as JSON text made by ``msgspec`` (already the hub's
dependency): in a storm turn, encoding values is most of the Python time.

How the hub uses it (integration is a later step)::

    store = StateStore(state_dir / STATE_FILE)            # creates/migrates; StoreError: one line to show
    stored = store.load()
    book = AlarmBook.restore(settings, stored.alarms, stored.shelves, stored.next_id, now, wall)
    every loop turn, BEFORE publishing that turn's NODEs:
        journal = book.take_journal(); alarms, shelves, next_id = book.take_records()
        ids = store.write_turn(journal, alarms, shelves, next_id)   # ONE transaction; ids: the journal cursors
    COMMAND "journal" {after_id, prefix, limit}:  store.query_journal(prefix, after_id=..., limit=...)
    gsmon log --since 1h:                          store.query_journal(prefix, since=wall - 3600)
    export:                                        store.export_jsonl(file)
    retention, in a background thread with its own connection:
        pruner = Pruner(path, Retention(max_age_days=90, max_size_bytes=1 << 30)); pruner.start(); ... pruner.stop()

Schema (version :data:`SCHEMA_VERSION`, migrated on open; a file from a newer
gsmon is refused with a clear line):

* ``meta(key, value)``: ``schema_version``, ``next_alarm_id`` (the book's id
  counter for alarms and shelves: ids are never reused).
* ``alarms``: one row per alarm (every field of :class:`~gsmon.hub.alarms.Alarm`),
  upserted by id.
* ``shelves``: one row per shelf (every field of :class:`~gsmon.hub.alarms.Shelf`).
* ``journal``: one row per :class:`~gsmon.hub.alarms.JournalEntry`; ``id``
  (AUTOINCREMENT, so a cursor never goes back, even after pruning everything)
  is the cursor consumers read by. Point values are stored as JSON text.
  Columns ``by_key``/``user_name`` hold ``by``/``user`` (``by`` is an SQL word).

Durability and speed: every write is one transaction per hub loop turn
(``write_turn``), so an alarm storm of 10,000 transitions costs one commit,
not 10,000 (see bench/journal_bench.py and bench/RESULTS.md), and a hub killed
mid-write leaves whole turns only (SQLite rolls the torn transaction back at
the next open). A turn that holds anything an operator would miss after a
power cut (an operator action, an alarm or shelf record, a new id) commits with
``synchronous=FULL``: on disk before ``write_turn`` returns, so before the hub
publishes it. A turn of pure level transitions (kinds in :data:`BULK_KINDS`)
commits with ``synchronous=NORMAL``: WAL keeps it atomic and safe against a
killed process, but a power cut may lose the last such turns. That is the
trade-off taken: those transitions describe points the agents report again
anyway, and skipping the fsync keeps level storms cheap.

Retention (:class:`Retention`): journal rows older than ``max_age_days`` (by
``hub_time``), cleared alarms and ended shelves older than that, and then the
oldest journal rows while the database's used pages exceed ``max_size_bytes``.
Deletion runs in small batches, each its own short transaction, so the hub's
writer waits at most one batch (``busy_timeout`` covers it); freed pages go
back to the file system (``auto_vacuum=INCREMENTAL``). Open alarms and shelves
not ended are never pruned. A :class:`StateStore` belongs to the thread that
made it (sqlite3's rule); the :class:`Pruner` thread opens its own.

Prefixes are segment-aware (``GS1/A`` selects ``GS1/A`` and ``GS1/A/...``,
never ``GS1/AB``; ``GS1/A/`` only what lies below), done in SQL as an index
range: ``path = p OR (p || '/' <= path < p || '0')`` ('0' follows '/').
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import operator
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

import msgspec

from gsmon.common import config
from gsmon.common.errors import UnavailableError
from gsmon.hub.alarms import Alarm, JournalEntry, Shelf, jsonable

__all__ = [
    "BULK_KINDS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "STATE_FILE",
    "Migration",
    "PruneResult",
    "Pruner",
    "Retention",
    "StateStore",
    "StoreError",
    "StoredState",
    "default_state_dir",
]

log = logging.getLogger(__name__)

STATE_FILE: Final = "state.db"

#: Journal kinds that describe points only: a turn of nothing else commits without an fsync.
BULK_KINDS: Final = frozenset(
    ("level", "stale", "fresh", "removed", "pending", "discarded", "flapping_start", "flapping_stop")
)

_ALARM_COLUMNS: Final = (
    "id",
    "path",
    "agent",
    "reason",
    "state",
    "level",
    "level_str",
    "max_level",
    "max_level_str",
    "latch",
    "raised_at",
    "raise_level",
    "raise_value",
    "value",
    "level_since",
    "rtn_at",
    "acked_by",
    "acked_user",
    "acked_via",
    "acked_at",
    "ack_comment",
    "shelf_id",
    "cleared_at",
    "cleared_by",
    "cleared_user",
    "cleared_reason",
)
_SHELF_COLUMNS: Final = (
    "id",
    "prefix",
    "mode",
    "starts_at",
    "ends_at",
    "comment",
    "by_key",
    "user_name",
    "via",
    "created_at",
    "ended_at",
    "end_reason",
    "ended_by",
    "ended_user",
)
_JOURNAL_COLUMNS: Final = (
    "id",
    "time",
    "hub_time",
    "path",
    "kind",
    "old",
    "new",
    "value",
    "agent",
    "user_name",
    "by_key",
    "via",
    "comment",
    "alarm_id",
    "shelf_id",
    "replayed",
)


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: from ``version - 1`` to ``version``, the ``statements`` in one transaction."""

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: Final = (
    Migration(
        1,
        "meta, alarms, shelves and journal",
        (
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
            """CREATE TABLE alarms (
                id INTEGER PRIMARY KEY, path TEXT NOT NULL, agent TEXT NOT NULL, reason TEXT NOT NULL,
                state TEXT NOT NULL, level INTEGER NOT NULL, level_str TEXT NOT NULL, max_level INTEGER NOT NULL,
                max_level_str TEXT NOT NULL, latch INTEGER NOT NULL, raised_at REAL NOT NULL,
                raise_level INTEGER NOT NULL, raise_value TEXT, value TEXT, level_since REAL NOT NULL, rtn_at REAL,
                acked_by TEXT, acked_user TEXT, acked_via TEXT, acked_at REAL, ack_comment TEXT, shelf_id INTEGER,
                cleared_at REAL, cleared_by TEXT, cleared_user TEXT, cleared_reason TEXT)""",
            "CREATE INDEX alarms_open ON alarms (id) WHERE state != 'cleared'",
            "CREATE INDEX alarms_cleared ON alarms (cleared_at) WHERE cleared_at IS NOT NULL",
            """CREATE TABLE shelves (
                id INTEGER PRIMARY KEY, prefix TEXT NOT NULL, mode TEXT NOT NULL, starts_at REAL NOT NULL,
                ends_at REAL, comment TEXT NOT NULL, by_key TEXT NOT NULL, user_name TEXT, via TEXT,
                created_at REAL NOT NULL, ended_at REAL, end_reason TEXT, ended_by TEXT, ended_user TEXT)""",
            """CREATE TABLE journal (
                id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, hub_time REAL NOT NULL,
                path TEXT NOT NULL, kind TEXT NOT NULL, old INTEGER, new INTEGER, value TEXT, agent TEXT,
                user_name TEXT, by_key TEXT, via TEXT, comment TEXT, alarm_id INTEGER, shelf_id INTEGER,
                replayed INTEGER NOT NULL DEFAULT 0)""",
            "CREATE INDEX journal_path ON journal (path, id)",
            "CREATE INDEX journal_hub_time ON journal (hub_time)",
        ),
    ),
)
SCHEMA_VERSION: Final = MIGRATIONS[-1].version

# Statements are put together from the column tuples above only, never from input (hence the noqa: S608).
_INSERT_JOURNAL: Final = (
    f"INSERT INTO journal ({', '.join(_JOURNAL_COLUMNS)}) VALUES ({', '.join('?' * len(_JOURNAL_COLUMNS))})"  # noqa: S608
)
_SELECT_ALARMS: Final = f"SELECT {', '.join(_ALARM_COLUMNS)} FROM alarms"  # noqa: S608
_SELECT_SHELVES: Final = f"SELECT {', '.join(_SHELF_COLUMNS)} FROM shelves"  # noqa: S608
_SELECT_JOURNAL: Final = f"SELECT {', '.join(_JOURNAL_COLUMNS)} FROM journal"  # noqa: S608


class StoreError(UnavailableError):
    """The state store cannot be used or written; the message is one line saying what to do.

    An :class:`~gsmon.common.errors.UnavailableError`: a hub that cannot open its store at start ends
    with that line and status 1 (through :func:`gsmon.common.cli.main`, no traceback)."""


@dataclass(frozen=True, slots=True)
class StoredState:
    """What :meth:`StateStore.load` returns for :meth:`AlarmBook.restore <gsmon.hub.alarms.AlarmBook.restore>`."""

    alarms: list[Alarm]
    shelves: list[Shelf]
    next_id: int
    last_journal_id: int


@dataclass(frozen=True, slots=True)
class Retention:
    """How much history to keep: by age (days, of ``hub_time``) and by size (used bytes of the database)."""

    max_age_days: float | None = 90.0
    max_size_bytes: int | None = None

    def __post_init__(self) -> None:
        problems = []
        days: object = self.max_age_days
        if days is not None and (not isinstance(days, int | float) or isinstance(days, bool) or not days > 0):
            problems.append(f"retention max_age_days: expected a positive number of days, got {days!r}")
        size: object = self.max_size_bytes
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1 << 20):
            problems.append(f"retention max_size_bytes: expected a whole number of bytes >= 1 MiB, got {size!r}")
        if problems:
            raise ValueError("\n".join(problems))


@dataclass(frozen=True, slots=True)
class PruneResult:
    journal_rows: int = 0
    alarms: int = 0
    shelves: int = 0
    size_bytes: int = 0  # used bytes after pruning


def default_state_dir(keys_dir: Path | None, env: dict[str, str] | None = None) -> Path:
    """The hub's default state directory: ``state`` beside its keys folder; else the one every gsmon process
    uses (:func:`gsmon.common.config.default_state_dir`: ``/var/lib/gsmon`` or ``~/.local/state/gsmon``)."""
    if keys_dir is not None:
        return keys_dir.resolve().parent / "state"
    return config.default_state_dir(env)


_PLAIN: Final = (int, str, bool)
_INT64: Final = 2**63
_encode_json: Final = msgspec.json.Encoder().encode
_decode_json: Final = msgspec.json.Decoder().decode


def _dumps(value: Any) -> str | None:
    """A point value as JSON text (msgspec: a storm turn spends most of its Python time here)."""
    if value is None:
        return None
    kind = type(value)
    if kind is int and -_INT64 <= value < _INT64:
        return str(value)  # the same text as JSON, without an encoder call and a decode
    if kind in _PLAIN or (kind is float and math.isfinite(value)):
        return _encode_json(value).decode()
    return _encode_json(jsonable(value)).decode()


def _loads(text: str | None) -> Any:
    return None if text is None else _decode_json(text)


def _prefix_clause(prefix: str) -> tuple[str, list[Any]]:
    """A segment-aware prefix as an SQL condition on ``path`` that an index on path can serve."""
    if not prefix:
        return "1", []
    if prefix.endswith("/"):
        below = prefix[:-1]
        return "(path >= ? AND path < ?)", [below + "/", below + "0"]
    return "(path = ? OR (path >= ? AND path < ?))", [prefix, prefix + "/", prefix + "0"]


class StateStore:
    """One connection to the state database (use it from the thread that made it)."""

    def __init__(
        self,
        path: str | Path,
        *,
        migrations: Sequence[Migration] = MIGRATIONS,
        busy_timeout_s: float = 5.0,
        check_same_thread: bool = True,
    ) -> None:
        self.path = Path(path)
        self._migrations = tuple(migrations)
        self._sync = ""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # isolation_level=None: no implicit transactions; every write below says BEGIN and COMMIT itself.
            # check_same_thread=False: the hub opens it while binding and uses it from its loop's thread
            # (one thread at a time, never two at once).
            self._db = sqlite3.connect(
                self.path, isolation_level=None, timeout=busy_timeout_s, check_same_thread=check_same_thread
            )
        except (OSError, sqlite3.Error) as error:
            raise StoreError(
                f"cannot open the state store {self.path}: {error}: give --state-dir a writable folder"
            ) from error
        try:
            self._db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect only while the file is new
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(
                    f"the state store {self.path} cannot use WAL (got {mode}): put --state-dir on a local disk"
                )
            self._set_sync("FULL")
            self._migrate()
            self._next_id_stored = self._meta_int("next_alarm_id", 1)
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise StoreError(
                f"the state store {self.path} is unreadable ({error}): move it aside to start afresh"
            ) from error
        except StoreError:
            self._db.close()
            raise

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self._version()

    @property
    def synchronous(self) -> str:
        """``"FULL"`` or ``"NORMAL"``: how the last write was committed (see the module docstring)."""
        return self._sync

    def _version(self) -> int:
        table = self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        if table is None:
            return 0
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return 0 if row is None else int(row[0])

    def _migrate(self) -> None:
        known = self._migrations[-1].version if self._migrations else 0
        with self._transaction():  # IMMEDIATE: two processes opening a new file at once migrate it once
            version = self._version()
            if version > known:
                raise StoreError(
                    f"the state store {self.path} has schema {version}, this gsmon knows up to {known}:"
                    " upgrade gsmon, or give --state-dir another folder"
                )
            for migration in self._migrations:
                if migration.version <= version:
                    continue
                for statement in migration.statements:
                    self._db.execute(statement)
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(migration.version),),
                )
                log.info("state store %s: schema %d (%s)", self.path, migration.version, migration.name)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _set_sync(self, level: str) -> None:
        if level != self._sync:
            self._db.execute(f"PRAGMA synchronous = {level}")  # one of two constants, never input
            self._sync = level

    # -- writing --------------------------------------------------------------------------------

    def write_turn(
        self,
        journal_entries: Sequence[JournalEntry],
        alarm_upserts: Iterable[Alarm],
        shelf_upserts: Iterable[Shelf],
        next_alarm_id: int,
        meta: Mapping[str, str] | None = None,
    ) -> range:
        """Persist one loop turn in ONE transaction; return the journal ids given to the entries, in order.

        ``meta``: rows of the ``meta`` table to upsert with it (the agents' outbox marks, hub/replay.py:
        stored with the journal rows they account for).

        All or nothing: on any error the turn is rolled back and :class:`StoreError` raised (the hub must
        not publish what it could not store).
        """
        alarms = [_alarm_row(alarm) for alarm in alarm_upserts]
        shelves = [_shelf_row(shelf) for shelf in shelf_upserts]
        bulk = not alarms and not shelves and all(entry.kind in BULK_KINDS for entry in journal_entries)
        same_id = next_alarm_id == self._next_id_stored
        if bulk and same_id and not journal_entries and not meta:
            return range(0)
        try:
            self._set_sync("NORMAL" if bulk and same_id else "FULL")
            with self._transaction():
                row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'journal'").fetchone()
                first = (0 if row is None else int(row[0])) + 1
                self._db.executemany(
                    _INSERT_JOURNAL, [_journal_row(first + index, entry) for index, entry in enumerate(journal_entries)]
                )
                if alarms:
                    self._db.executemany(_UPSERT_ALARM, alarms)
                if shelves:
                    self._db.executemany(_UPSERT_SHELF, shelves)
                if meta:
                    self._db.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?)"
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        list(meta.items()),
                    )
                if not same_id:
                    self._db.execute(
                        "INSERT INTO meta (key, value) VALUES ('next_alarm_id', ?)"
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (str(next_alarm_id),),
                    )
        except sqlite3.Error as error:
            raise StoreError(f"cannot write the state store {self.path}: {error}") from error
        self._next_id_stored = next_alarm_id
        return range(first, first + len(journal_entries))

    def load_meta(self, prefix: str) -> dict[str, str]:
        """The ``meta`` rows whose key starts with ``prefix`` (the agents' outbox marks: ``outbox:``)."""
        rows = self._db.execute("SELECT key, value FROM meta WHERE key >= ? AND key < ?", (prefix, prefix + "\uffff"))
        return dict(rows.fetchall())

    def load_contexts(self) -> dict[str, dict[str, Any]]:
        """The active contexts (``"<kind>/<prefix>"`` -> record), as :meth:`save_contexts` stored them."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'contexts'").fetchone()
        loaded = _loads(row[0]) if row is not None else None
        return dict(loaded) if isinstance(loaded, dict) else {}

    def save_contexts(self, contexts: Mapping[str, Mapping[str, Any]]) -> None:
        """Store the active contexts (one durable transaction: a context command is an operator action)."""
        try:
            self._set_sync("FULL")
            with self._transaction():
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('contexts', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (_encode_json(dict(contexts)).decode(),),
                )
        except sqlite3.Error as error:
            raise StoreError(f"cannot write the state store {self.path}: {error}") from error

    def _meta_int(self, key: str, default: int) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else int(row[0])

    # -- reading --------------------------------------------------------------------------------

    def load(self, cleared_limit: int = 10_000, ended_shelves_limit: int = 1000) -> StoredState:
        """Every open alarm and shelf not ended, the most recently cleared/ended ones, and the id counter."""
        open_rows = self._db.execute(_SELECT_ALARMS + " WHERE state != 'cleared' ORDER BY id").fetchall()
        cleared_rows = self._db.execute(
            _SELECT_ALARMS + " WHERE cleared_at IS NOT NULL AND state = 'cleared' ORDER BY cleared_at DESC LIMIT ?",
            (cleared_limit,),
        ).fetchall()
        shelves = self._db.execute(_SELECT_SHELVES + " WHERE ended_at IS NULL ORDER BY id").fetchall()
        ended = self._db.execute(
            _SELECT_SHELVES + " WHERE ended_at IS NOT NULL ORDER BY ended_at DESC LIMIT ?", (ended_shelves_limit,)
        ).fetchall()
        alarms = sorted((_alarm_from(row) for row in [*open_rows, *cleared_rows]), key=lambda alarm: alarm.id)
        shelf_list = sorted((_shelf_from(row) for row in [*shelves, *ended]), key=lambda shelf: shelf.id)
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'journal'").fetchone()
        return StoredState(alarms, shelf_list, self._meta_int("next_alarm_id", 1), 0 if row is None else int(row[0]))

    def query_journal(
        self,
        prefix: str = "",
        since: float | None = None,
        after_id: int = 0,
        limit: int = 1000,
        newest: bool = False,
    ) -> list[JournalEntry]:
        """Journal entries under ``prefix`` (segment-aware) with ``id > after_id`` and, when given,
        ``hub_time >= since`` (wall seconds), oldest first, at most ``limit`` of them: the oldest
        ``limit`` that match, or with ``newest`` the newest ``limit`` (a view's "latest entries")."""
        clause, args = _prefix_clause(prefix)
        if since is not None:
            clause += " AND hub_time >= ?"
            args.append(since)
        order = "DESC" if newest else "ASC"
        rows = self._db.execute(
            f"{_SELECT_JOURNAL} WHERE id > ? AND {clause} ORDER BY id {order} LIMIT ?",  # fixed SQL, values bound
            [after_id, *args, max(0, limit)],
        ).fetchall()
        entries = [_journal_from(row) for row in rows]
        return entries[::-1] if newest else entries

    def export_jsonl(self, out: TextIO, prefix: str = "", since: float | None = None, batch_rows: int = 5000) -> int:
        """Write the journal as JSON lines (``JournalEntry.to_json``), oldest first; return the count."""
        count, after = 0, 0
        while True:
            entries = self.query_journal(prefix, since, after, batch_rows)
            for entry in entries:
                out.write(json.dumps(entry.to_json(), ensure_ascii=False) + "\n")
            count += len(entries)
            if len(entries) < batch_rows:
                return count
            assert entries[-1].id is not None
            after = entries[-1].id

    def size_bytes(self) -> int:
        """The bytes the database's pages hold (free pages not counted; the WAL neither)."""
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    # -- retention ------------------------------------------------------------------------------

    def prune(self, retention: Retention, wall: float, batch_rows: int = 2000) -> PruneResult:
        """Apply ``retention`` now, in batches of ``batch_rows`` rows, each its own short transaction."""
        self._set_sync("NORMAL")  # a lost prune is redone next time: no fsync per batch
        journal_rows = alarms = shelves = 0
        try:
            if retention.max_age_days is not None:
                cutoff = wall - retention.max_age_days * 86400.0
                journal_rows += self._delete_batches(
                    "DELETE FROM journal WHERE id IN (SELECT id FROM journal WHERE hub_time < ? ORDER BY id LIMIT ?)",
                    (cutoff,),
                    batch_rows,
                )
                alarms += self._delete_batches(
                    "DELETE FROM alarms WHERE id IN (SELECT id FROM alarms WHERE cleared_at < ?"
                    " AND state = 'cleared' LIMIT ?)",
                    (cutoff,),
                    batch_rows,
                )
                shelves += self._delete_batches(
                    "DELETE FROM shelves WHERE id IN (SELECT id FROM shelves WHERE ended_at < ? LIMIT ?)",
                    (cutoff,),
                    batch_rows,
                )
            if retention.max_size_bytes is not None:
                while self.size_bytes() > retention.max_size_bytes:
                    deleted = self._delete_batches(
                        "DELETE FROM journal WHERE id IN (SELECT id FROM journal ORDER BY id LIMIT ?)",
                        (),
                        batch_rows,
                        once=True,
                    )
                    if not deleted:
                        break  # the journal is empty: alarms and shelves alone are over the limit
                    journal_rows += deleted
            # Give the freed pages back to the file system, a few at a time (each step is a short write).
            while self._db.execute("PRAGMA freelist_count").fetchone()[0]:
                self._db.execute("PRAGMA incremental_vacuum(256)").fetchall()
        except sqlite3.Error as error:
            raise StoreError(f"cannot prune the state store {self.path}: {error}") from error
        finally:
            self._set_sync("FULL")
        return PruneResult(journal_rows, alarms, shelves, self.size_bytes())

    def _delete_batches(self, sql: str, args: tuple[Any, ...], batch_rows: int, once: bool = False) -> int:
        total = 0
        while True:
            with self._transaction():
                deleted = self._db.execute(sql, (*args, batch_rows)).rowcount
            total += deleted
            if once or deleted < batch_rows:
                return total


class Pruner:
    """Applies a :class:`Retention` every ``interval_s`` in a daemon thread with its own connection.

    ``start()`` prunes at once and then periodically; ``stop()`` ends the thread (waiting for a batch in
    progress). Errors are logged and retried at the next interval: retention never stops the hub.
    """

    def __init__(
        self,
        path: str | Path,
        retention: Retention,
        interval_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
        batch_rows: int = 2000,
    ) -> None:
        if not math.isfinite(interval_s) or interval_s <= 0:
            raise ValueError(f"prune interval_s: expected a positive number of seconds, got {interval_s!r}")
        self.path = Path(path)
        self.retention = retention
        self.interval_s = interval_s
        self.batch_rows = batch_rows
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0  # completed prunes (for health points and tests)
        self.last: PruneResult | None = None
        self._done = threading.Condition()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gsmon-journal-pruner", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def wait_for_runs(self, count: int, timeout_s: float) -> bool:
        """Wait until ``count`` prunes have completed (True) or ``timeout_s`` passed (False)."""
        with self._done:
            return self._done.wait_for(lambda: self.runs >= count, timeout_s)

    def _run(self) -> None:
        store: StateStore | None = None
        try:
            while not self._stop.is_set():
                try:
                    if store is None:
                        store = StateStore(self.path)
                    result = store.prune(self.retention, self._clock(), self.batch_rows)
                    if result.journal_rows or result.alarms or result.shelves:
                        log.info(
                            "state store %s: pruned %d journal rows, %d alarms, %d shelves; %d bytes used",
                            self.path,
                            result.journal_rows,
                            result.alarms,
                            result.shelves,
                            result.size_bytes,
                        )
                    with self._done:
                        self.last = result
                        self.runs += 1
                        self._done.notify_all()
                except StoreError as error:
                    log.warning("%s (retried in %.0f s)", error, self.interval_s)
                self._stop.wait(self.interval_s)
        finally:
            if store is not None:
                store.close()


# -- rows -----------------------------------------------------------------------------------------


def _upsert(table: str, columns: Sequence[str]) -> str:
    updates = ", ".join(f"{column} = excluded.{column}" for column in columns if column != "id")
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608
        f" ON CONFLICT (id) DO UPDATE SET {updates}"
    )


_UPSERT_ALARM: Final = _upsert("alarms", _ALARM_COLUMNS)
_UPSERT_SHELF: Final = _upsert("shelves", _SHELF_COLUMNS)


_alarm_values: Final = operator.attrgetter(*_ALARM_COLUMNS)
_RAISE_VALUE: Final = _ALARM_COLUMNS.index("raise_value")
_VALUE: Final = _ALARM_COLUMNS.index("value")
_LATCH: Final = _ALARM_COLUMNS.index("latch")


def _alarm_row(alarm: Alarm) -> list[Any]:
    row = list(_alarm_values(alarm))
    row[_RAISE_VALUE] = _dumps(row[_RAISE_VALUE])
    row[_VALUE] = _dumps(row[_VALUE])
    row[_LATCH] = int(row[_LATCH])
    return row


def _alarm_from(row: Sequence[Any]) -> Alarm:
    data = dict(zip(_ALARM_COLUMNS, row, strict=True))
    data["raise_value"] = _loads(data["raise_value"])
    data["value"] = _loads(data["value"])
    data["latch"] = bool(data["latch"])
    return Alarm(**data)


def _shelf_row(shelf: Shelf) -> tuple[Any, ...]:
    names = {"by_key": "by", "user_name": "user"}
    return tuple(getattr(shelf, names.get(column, column)) for column in _SHELF_COLUMNS)


def _shelf_from(row: Sequence[Any]) -> Shelf:
    data = dict(zip(_SHELF_COLUMNS, row, strict=True))
    data["by"] = data.pop("by_key")
    data["user"] = data.pop("user_name")
    return Shelf(**data)


_VALUE_AT: Final = JournalEntry._fields.index("value")
_REPLAYED_AT: Final = JournalEntry._fields.index("replayed")
# The entry's fields are the journal's columns after ``id``, in order (tests/unit/test_journal.py checks it).


def _journal_row(journal_id: int, entry: JournalEntry) -> tuple[Any, ...]:
    # Slices of the tuple, in C: a storm turn writes 100,000 of these (sqlite3 stores a bool as 0/1).
    return (journal_id, *entry[:_VALUE_AT], _dumps(entry.value), *entry[_VALUE_AT + 1 : _REPLAYED_AT + 1])


def _journal_from(row: Sequence[Any]) -> JournalEntry:
    data = dict(zip(_JOURNAL_COLUMNS, row, strict=True))
    data["user"] = data.pop("user_name")
    data["by"] = data.pop("by_key")
    data["value"] = _loads(data["value"])
    data["replayed"] = bool(data["replayed"])
    return JournalEntry(**data)
