"""The agent's outbox: every effective-level transition, numbered, kept until the hubs confirmed it (protocol 1.3).

What it holds: one entry per effective-level transition of a point (the level
the agent publishes, after debounce), and the debounce events ``pending`` and
``discarded``, each numbered by ``tseq`` (1, 2, 3 ... per outbox, never
reused). A hub that was down, or lost messages, asks for the entries it
missed (protocol "Replay back-channel") and journals them with their
original times; see :mod:`gsmon.hub.replay`.

Store: one SQLite file (stdlib ``sqlite3``, WAL, ``synchronous=NORMAL``), named
``outbox-<agent>.db`` in the agent's state directory (``gsmon agent
--state-dir``, default ``/var/lib/gsmon`` when writable, else
``$XDG_STATE_HOME/gsmon``). So ``tseq`` survives agent restarts, and so does
each point's last level: a point that is RED at the first poll after a restart
and was GREEN before it is a transition too. A Monitor made in an application
without a state directory keeps its outbox in memory (``path=None``): it
covers hub outages while the process runs, and starts afresh (a new
``outbox_id``) at its next start. The file is opened in SQLite's exclusive
locking mode: a second agent with the same name and state directory is
refused at start with one line.

Durability (issue 17): :meth:`Outbox.record` runs under the Monitor's lock, so
it only appends to memory; the publisher thread writes everything recorded
since its last flush in ONE transaction (:meth:`Outbox.commit`, every
``flush_interval_s``, 50 ms by default) *before* it sends the messages that
reflect those entries. So a SIGKILL of the agent loses at most the entries of
the last flush interval, and only ones no hub was told about (the hub never
sees a ``tseq_head`` the file lacks); a power cut may lose a little more
(``synchronous=NORMAL``: the last transactions of the WAL). Without a
publisher flushing (not started), :data:`MAX_PENDING` entries trigger a
commit from :meth:`Outbox.record` itself. A failed commit keeps the entries
in memory and tries again at the next one (logged once). One commit per entry
under the Monitor's lock cost the agent 4x its CPU and 5 % of its schedule at
1,000 transitions a second (bench/outbox_bench.py, bench/RESULTS.md).

Live window (1.3, protocol "Live transitions"): the entries recorded since
the previous flush, cut under the Monitor's lock together with the publisher's
take of the changed points (:meth:`Outbox.cut`, :meth:`Outbox.take_window`);
the send policy sends a hub the ones its DELTA cannot show. The head at that
instant (and at a STATE's take of every point: :meth:`Outbox.note_head`) is
the message's ``tseq_head`` (protocol: exact marks).

Bounds (``[outbox]`` of the agent's configuration): entries older than
``max_age_days`` (7) by their poll time, and beyond ``max_entries`` (100,000)
the oldest, are dropped. Entries every configured hub confirmed are dropped at
once (a hub confirms by asking for what follows them). When the bounds drop
entries some hub has not confirmed, those are lost for it: logged at WARNING
once per drop (``outbox_overflow``), and visible to the hub as ``tseq_tail``
(the oldest tseq still held), from which it journals the lost range.

One object is shared by the Monitor's workers (which :meth:`record` under the
Monitor's lock) and the publisher thread (which commits, reads and confirms):
a record takes only the lock of the outbox's memory, never the file's, so a
commit of 10,000 entries does not hold up the Monitor. Times are wall seconds
(``time.time()``), passed in: no clock of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import re
import secrets
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from gsmon.common import protocol as proto

__all__ = ["DEFAULT_MAX_AGE_DAYS", "DEFAULT_MAX_ENTRIES", "Outbox", "OutboxError", "OutboxSettings", "outbox_file"]

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE_DAYS: Final = 7.0
DEFAULT_MAX_ENTRIES: Final = 100_000
#: Debounce events kept beside level transitions (the others, flapping_*, are in the point's map).
EVENT_KINDS: Final = ("pending", "discarded")
LEVEL: Final = "level"
#: Entries kept in memory before a commit without waiting for the publisher's flush (one not running).
MAX_PENDING: Final = 20_000
#: Entries of the live window kept for the publisher at most (beyond: not sent live; a replay has them).
MAX_WINDOW: Final = 20_000

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE IF NOT EXISTS entries (
        tseq INTEGER PRIMARY KEY, kind TEXT NOT NULL, path TEXT NOT NULL, time REAL NOT NULL,
        old INTEGER, new INTEGER NOT NULL, value BLOB, alertstr TEXT NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS levels (path TEXT PRIMARY KEY, level INTEGER NOT NULL) WITHOUT ROWID",
)


class OutboxError(Exception):
    """The outbox file cannot be used; the message is one line saying what to do."""


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    """The outbox's bounds (``[outbox]`` of the agent's configuration)."""

    max_age_days: float = DEFAULT_MAX_AGE_DAYS
    max_entries: int = DEFAULT_MAX_ENTRIES

    def __post_init__(self) -> None:
        days: object = self.max_age_days
        if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days < float("inf"):
            raise ValueError(f"outbox max_age_days: expected a positive number of days, got {days!r}")
        entries: object = self.max_entries
        if isinstance(entries, bool) or not isinstance(entries, int) or entries < 1:
            raise ValueError(f"outbox max_entries: expected a whole number >= 1, got {entries!r}")


def outbox_file(state_dir: Path, agent: str) -> Path:
    """``outbox-<agent>.db`` in ``state_dir`` (a name that is not a plain file name gets a digest instead)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", agent)
    if safe != agent or safe.startswith("."):
        safe = f"{safe[:40]}-{hashlib.sha256(agent.encode()).hexdigest()[:12]}"
    return state_dir / f"outbox-{safe}.db"


class Outbox:
    """The outbox of one agent (module docstring). ``path`` None: in memory.

    ``hubs``: the configured hub endpoints, in the publisher's link order;
    each link's confirmations are kept by endpoint (so a reordered list keeps them).
    """

    def __init__(
        self,
        path: Path | None,
        hubs: Sequence[str],
        settings: OutboxSettings | None = None,
        busy_timeout_s: float = 0.5,
    ) -> None:
        self.path = path
        self.settings = settings or OutboxSettings()
        self.hubs = list(hubs)
        # Two locks: _lock guards the state in memory (records take it, under the Monitor's lock), _db_lock the
        # connection (commits, reads, confirmations take it first, then _lock for a moment).
        self._lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._busy_timeout_s = busy_timeout_s
        self._closed = False
        #: Commit at :meth:`commit` (every publisher flush); False: one commit per entry (the bench's baseline).
        self.batch = True
        self._pending: list[proto.TransitionItem] = []  # recorded, not yet in the file
        self._level_rows: dict[str, int] = {}  # levels changed, not yet in the file
        self._failing = False  # the last commit failed (logged once)
        self._fresh: list[proto.TransitionItem] = []  # recorded since the last cut (the live window)
        self._window: list[proto.TransitionItem] = []  # cut, not yet taken
        self._noted_head: int | None = None  # the head when the publisher last took points (note_head)
        self.lost = 0  # entries dropped by the bounds before every hub confirmed them (outbox_overflow)
        where = ":memory:" if path is None else str(path)
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # One connection for every thread, always under self._db_lock.
            self._db = sqlite3.connect(where, isolation_level=None, timeout=busy_timeout_s, check_same_thread=False)
        except (OSError, sqlite3.Error) as error:
            raise OutboxError(f"cannot open the outbox {where}: {error}: give --state-dir a writable folder") from error
        try:
            if path is not None:
                # Exclusive: a second agent on the same file fails here instead of interleaving tseqs.
                self._db.execute("PRAGMA locking_mode = EXCLUSIVE")
                mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise OutboxError(
                        f"the outbox {where} cannot use WAL (got {mode}): put --state-dir on a local disk"
                    )
                self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("BEGIN IMMEDIATE")  # takes (and, exclusive, keeps) the write lock
            for statement in _SCHEMA:
                self._db.execute(statement)
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
            if "outbox_id" not in meta:
                meta["outbox_id"] = str(secrets.randbits(63) or 1)
                self._db.execute("INSERT INTO meta VALUES ('outbox_id', ?)", (meta["outbox_id"],))
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as error:
            self._db.close()
            if "locked" in str(error):
                raise OutboxError(
                    f"the outbox {where} is in use by another process: give each agent its own name or --state-dir"
                ) from error
            raise OutboxError(f"the outbox {where} is unusable ({error}): move it aside to start afresh") from error
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise OutboxError(f"the outbox {where} is unreadable ({error}): move it aside to start afresh") from error
        except OutboxError:
            self._db.close()
            raise
        self.outbox_id = int(meta["outbox_id"])
        row = self._db.execute("SELECT MIN(tseq), MAX(tseq) FROM entries").fetchone()
        self._head = max(int(meta.get("head", 0)), int(row[1] or 0))
        self._tail = int(row[0]) if row[0] is not None else self._head + 1
        self._confirmed = {hub: int(meta.get(f"confirmed:{hub}", 0)) for hub in self.hubs}
        self._levels: dict[str, int] = dict(self._db.execute("SELECT path, level FROM levels").fetchall())

    # -- state ----------------------------------------------------------------------------------

    @property
    def head(self) -> int:
        """The last tseq given (0: none yet)."""
        return self._head

    @property
    def tail(self) -> int:
        """The oldest tseq still held (``head + 1`` when empty)."""
        return self._tail

    def __len__(self) -> int:
        return self._head - self._tail + 1

    def confirmed(self, link: int) -> int:
        """What the hub of ``link`` confirmed: every tseq up to this one."""
        return self._confirmed[self.hubs[link]]

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Write what is pending and close the file (idempotent; recording after it does nothing)."""
        with self._db_lock:
            self._commit_db(None)
            with self._lock:
                if self._closed:
                    return
                self._closed = True
            self._db.close()

    def reopen(self) -> Outbox:
        """A new Outbox on the same file (a closed in-memory one starts afresh: a new ``outbox_id``)."""
        return Outbox(self.path, self.hubs, self.settings, self._busy_timeout_s)

    # -- writing --------------------------------------------------------------------------------

    def record(
        self, path: str, old: int | None, new: int, alertstr: str, value: Any, polled_at: float, wall: float
    ) -> int | None:
        """A point's effective level after a poll (``old``: the level it showed before, None at its first poll
        in this process). Returns the tseq given, or None when it is no transition: the same level as the
        outbox last knew (across restarts too), or the point's first level ever. In memory until
        :meth:`commit` (module docstring: Durability)."""
        with self._lock:
            if self._closed:
                return None
            known = self._levels.get(path)
            if known == new:
                return None
            self._levels[path] = new
            self._level_rows[path] = new
            if known is None and old is None:
                return None  # a point's first level ever: nothing happened before it
            before = known if known is not None else old
            tseq = self._append(LEVEL, path, polled_at, before, new, value, alertstr)
        if not self.batch or len(self._pending) >= MAX_PENDING:
            self.commit(wall)
        return tseq

    def record_event(self, kind: str, path: str, old: int, new: int, polled_at: float, wall: float) -> int | None:
        """A debounce event (``pending``: a move held back; ``discarded``: it did not hold)."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"outbox events are {', '.join(EVENT_KINDS)}, not {kind!r}")
        with self._lock:
            if self._closed:
                return None
            tseq = self._append(kind, path, polled_at, old, new, None, "")
        if not self.batch or len(self._pending) >= MAX_PENDING:
            self.commit(wall)
        return tseq

    def _append(
        self, kind: str, path: str, polled_at: float, old: int | None, new: int, value: Any, alertstr: str
    ) -> int:
        """A new entry, in memory (under the lock)."""
        tseq = self._head + 1
        item = proto.TransitionItem(tseq, kind, path, polled_at, old, new, value, alertstr)
        self._pending.append(item)
        self._fresh.append(item)
        if len(self._fresh) > MAX_WINDOW:
            del self._fresh[: len(self._fresh) - MAX_WINDOW]  # nobody takes the window: no live link runs
        self._head = tseq
        if self._tail > tseq:
            self._tail = tseq
        return tseq

    def commit(self, wall: float | None) -> None:
        """Write every entry recorded since the last commit in ONE transaction, then apply the bounds
        (``wall`` None: the age bound waits for the next commit). The publisher calls it at every flush."""
        with self._db_lock:
            self._commit_db(wall)

    def _commit_db(self, wall: float | None) -> None:
        """:meth:`commit` under the file's lock only: records go on meanwhile (they need the other lock)."""
        with self._lock:
            if self._closed:
                return
            pending, levels = self._pending, self._level_rows
            if not pending and not levels:
                return
            self._pending, self._level_rows = [], {}
        try:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [_row(t) for t in pending],
            )
            if pending:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('head', ?)", (str(pending[-1].tseq),))
            self._db.executemany("INSERT OR REPLACE INTO levels VALUES (?, ?)", levels.items())
            self._db.execute("COMMIT")
        except sqlite3.Error as error:
            self._rollback()
            # Kept in memory and tried again at the next commit (replays read them from memory meanwhile).
            with self._lock:
                self._pending = pending + self._pending
                self._level_rows = {**levels, **self._level_rows}
            if not self._failing:
                log.error("outbox %s: cannot write %d transitions: %s", self.path or "(memory)", len(pending), error)
            self._failing = True
            return
        if self._failing:
            log.warning("outbox %s: written again", self.path or "(memory)")
            self._failing = False
        if pending:
            with self._lock:
                self._bound(wall)

    def cut(self) -> None:
        """Close the live window (call it under the Monitor's lock, with the publisher's take of the changes:
        the entries of a window are exactly the transitions of the points taken); notes the head too."""
        with self._lock:
            self._window.extend(self._fresh)
            self._fresh = []
            self._noted_head = self._head

    def note_head(self) -> None:
        """The head at this instant, for the message whose points are being taken (call it under the
        Monitor's lock, with the take: the points reflect exactly the entries up to it). See
        :meth:`take_noted_head`."""
        with self._lock:
            self._noted_head = self._head

    def take_noted_head(self) -> int | None:
        """The head :meth:`note_head` or :meth:`cut` noted since the last call (None: neither was called)."""
        with self._lock:
            head, self._noted_head = self._noted_head, None
            return head

    def take_window(self) -> list[proto.TransitionItem]:
        """The entries of the windows :meth:`cut` closed since the last call (cut now when none was)."""
        with self._lock:
            if not self._window:
                self._window, self._fresh = self._fresh, []
            window, self._window = self._window, []
            return window

    def confirm(self, link: int, upto: int, wall: float | None = None) -> None:
        """The hub of ``link`` has every entry up to ``upto``; entries all hubs have are dropped (and, given
        ``wall``, those past the age bound: otherwise that is checked at the next :meth:`commit`)."""
        with self._db_lock:
            with self._lock:
                hub = self.hubs[link]
                upto = min(upto, self._head)
                if self._closed or upto <= self._confirmed[hub]:
                    return
                self._confirmed[hub] = upto
            self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"confirmed:{hub}", str(upto)))
            self._commit_db(wall)
            with self._lock:
                self._bound(wall)

    def _bound(self, wall: float | None) -> None:
        """Drop what every hub has, then what the bounds no longer allow (under both locks)."""
        everyone = min(self._confirmed.values(), default=self._head)
        cut = everyone + 1  # the new tail, at least
        settings = self.settings
        if self._head - max(cut, self._tail) + 1 > settings.max_entries:
            cut = max(cut, self._head - settings.max_entries + 1)
        oldest = self._db.execute("SELECT time FROM entries WHERE tseq = ?", (max(cut, self._tail),)).fetchone()
        horizon = -math.inf if wall is None else wall - settings.max_age_days * 86400.0
        if oldest is not None and oldest[0] < horizon:
            row = self._db.execute(
                "SELECT MIN(tseq) FROM entries WHERE tseq >= ? AND time >= ?", (max(cut, self._tail), horizon)
            ).fetchone()
            cut = int(row[0]) if row[0] is not None else self._head + 1
        if cut <= self._tail:
            return
        unconfirmed = [hub for hub, upto in self._confirmed.items() if upto < cut - 1]
        if unconfirmed:
            first = max(self._tail, min(self._confirmed[hub] for hub in unconfirmed) + 1)
            self.lost += cut - first
            log.warning(
                "outbox_overflow: dropped transitions %d..%d (the outbox holds at most %d entries, %g days) "
                "before hub(s) %s confirmed them; those hubs will journal them as lost",
                first,
                cut - 1,
                settings.max_entries,
                settings.max_age_days,
                ", ".join(unconfirmed),
            )
        if self._write("DELETE FROM entries WHERE tseq < ?", (cut,)):
            self._tail = cut

    def _write(self, sql: str, args: tuple[Any, ...]) -> bool:
        try:
            self._db.execute(sql, args)
        except sqlite3.Error as error:
            log.error("outbox %s: %s", self.path or "(memory)", error)
            return False
        return True

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # nothing was open
            self._db.execute("ROLLBACK")

    # -- reading --------------------------------------------------------------------------------

    def read(self, first: int, last: int, max_entries: int, max_bytes: int) -> list[proto.TransitionItem]:
        """Entries ``first..last`` that are still held, oldest first, at most ``max_entries`` of them and
        about ``max_bytes`` of values (at least one entry, however big)."""
        with self._db_lock:
            self._commit_db(None)
            if self._closed:
                return []
            rows = self._db.execute(
                "SELECT tseq, kind, path, time, old, new, value, alertstr FROM entries"
                " WHERE tseq >= ? AND tseq <= ? ORDER BY tseq LIMIT ?",
                (first, last, max_entries),
            ).fetchall()
        with self._lock:
            if self._pending:  # a commit failed (or records came since): they are in memory
                rows = [row for row in rows if row[0] < self._pending[0].tseq]
                rows += [_row(t) for t in self._pending if first <= t.tseq <= last][: max(0, max_entries - len(rows))]
        out: list[proto.TransitionItem] = []
        size = 0
        for tseq, kind, path, time_s, old, new, blob, alertstr in rows:
            size += len(path) + len(alertstr) + 32 + (0 if blob is None else len(blob))
            if out and size > max_bytes:
                break
            value = None if blob is None else proto.unpack_value(blob)
            out.append(proto.TransitionItem(tseq, kind, path, time_s, old, new, value, alertstr))
        return out


def _row(item: proto.TransitionItem) -> tuple[Any, ...]:
    """An entry as the ``entries`` table holds it (and as :meth:`Outbox.read` reads rows back)."""
    value = None if item.value is None else proto.pack_value(item.value)
    return (item.tseq, item.kind, item.path, item.time, item.old, item.new, value, item.alertstr)
