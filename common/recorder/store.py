"""The history store: one schema on SQLite or PostgreSQL, through SQLAlchemy Core.

::

    store = Store.open("sqlite:////var/lib/gsmon/history.db")   # creates or migrates; StoreError: one line
    store = Store.open("postgresql+psycopg://gsmon@/gsmon?host=/run/postgresql")

Library choice: SQLAlchemy Core 2.x (no ORM): one set of table definitions
and statements for both databases, dialect-specific only where it must be
(the idempotent insert's ``ON CONFLICT DO NOTHING``, PostgreSQL's partitions);
psycopg 3 is the PostgreSQL driver (``pip install 'gsmon[postgres]'``),
SQLite is Python's own ``sqlite3``. Migrations are a small table of our own
(``meta.schema_version`` and :data:`MIGRATIONS`, run on open inside one
transaction, under a lock: ``BEGIN IMMEDIATE`` on SQLite, an advisory lock on
PostgreSQL) rather than alembic: a handful of tables, migrations that must
run unattended at every start from a wheel (alembic wants a script folder and
an ``env.py``), and partition DDL that alembic does not generate anyway. A
store written by a newer gsmon (a higher schema version) is refused with a
clear line instead of being changed.

Schema (version :data:`SCHEMA_VERSION`):

``meta(key, value)``
    ``schema_version``; ``rolled_until_us`` (roll-ups are complete below it).
``paths(id, path, raw_days, rollup_days)``, ``agents(id, name)``
    Interned names (rows hold small integers); ``raw_days``/``rollup_days``
    are the retention in force for the path (kept by the maintenance job).
``samples(path_id, t_us, level, raw_level, stale, num, val, agent_id, context, why)``
    One row per saved update; primary key ``(path_id, t_us)``, so a row
    written twice (a restarted recorder re-reading its first snapshot) is
    inserted once (``ON CONFLICT DO NOTHING``). ``t_us`` is integer
    microseconds since the Unix epoch (UTC); ``num``/``val``: see
    :mod:`~gsmon.common.recorder.values`; ``why``:
    :class:`~gsmon.common.recorder.core.Why`. An index on ``t_us`` serves
    roll-ups and pruning (a BRIN index on PostgreSQL).
``rollups(path_id, t_us, n, n_num, sum_num, min_num, max_num, first_*, last_*, max_level, ended_t_us)``
    One row per path and ``rollup_s`` slot (default one minute), computed
    from the samples by the maintenance job: rows, numbers, their sum, min
    and max, the first and last row's time, number and value
    (``first_t_us``, ``first_num``, ``first_val``, and ``last_...``), the
    highest level, and ``ended_t_us``, the time of a removal marker.
``gaps(id, prefix, start_us, end_us, reason)``
    Times when updates under ``prefix`` were missed (unique per prefix and start).
``contexts(id, kind, prefix, context, start_us, end_us, source)``
    Context intervals (a pass): ``source`` ``"tree"`` (seen live in the hub's
    tree) or ``"offline"`` (``gsmon context start/stop --db``); ``end_us``
    NULL while active.
``coverage(prefix, start_us, until_us)``
    What the recorder followed, and until when its rows are committed: a
    recorder that starts again records a gap from ``until_us`` to now.

PostgreSQL: ``samples`` and ``rollups`` are partitioned by range on ``t_us``,
one partition per calendar month (UTC), created ahead (this month and the
next on open) and on demand before rows of another month are inserted;
retention drops whole partitions once every row in them is past its time.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gsmon.common.config import default_state_dir
from gsmon.common.errors import UnavailableError
from gsmon.common.recorder.core import Why

__all__ = [
    "HISTORY_FILE",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Store",
    "StoreError",
    "default_state_dir",
    "metadata",
    "prefix_condition",
    "sqlite_url",
]

log = logging.getLogger(__name__)

HISTORY_FILE: Final = "history.db"
SCHEMA_VERSION: Final = 1
_REMOVED: Final = int(Why.REMOVED)
assert _REMOVED == 6, "the roll-up SQL names Why.REMOVED as 6"
_PG_LOCK_KEY: Final = 0x6773_6D6F_6E48  # "gsmonH": the advisory lock that serialises migrations

metadata = sa.MetaData()

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
paths = sa.Table(
    "paths",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("path", sa.Text, nullable=False, unique=True),
    sa.Column("raw_days", sa.Double),
    sa.Column("rollup_days", sa.Double),
)
agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
)
samples = sa.Table(
    "samples",
    metadata,
    sa.Column("path_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("t_us", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("level", sa.SmallInteger, nullable=False),
    sa.Column("raw_level", sa.SmallInteger),
    sa.Column("stale", sa.Boolean, nullable=False),
    sa.Column("num", sa.Double),
    sa.Column("val", sa.LargeBinary),
    sa.Column("agent_id", sa.Integer),
    sa.Column("context", sa.Text),
    sa.Column("why", sa.SmallInteger, nullable=False),
    postgresql_partition_by="RANGE (t_us)",
)
rollups = sa.Table(
    "rollups",
    metadata,
    sa.Column("path_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("t_us", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("n_num", sa.Integer, nullable=False),
    sa.Column("sum_num", sa.Double),
    sa.Column("min_num", sa.Double),
    sa.Column("max_num", sa.Double),
    sa.Column("first_t_us", sa.BigInteger),
    sa.Column("first_num", sa.Double),
    sa.Column("first_val", sa.LargeBinary),
    sa.Column("last_t_us", sa.BigInteger),
    sa.Column("last_num", sa.Double),
    sa.Column("last_val", sa.LargeBinary),
    sa.Column("max_level", sa.SmallInteger),
    sa.Column("ended_t_us", sa.BigInteger),
    postgresql_partition_by="RANGE (t_us)",
)
gaps = sa.Table(
    "gaps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("start_us", sa.BigInteger, nullable=False),
    sa.Column("end_us", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.UniqueConstraint("prefix", "start_us", name="gaps_prefix_start"),
)
contexts = sa.Table(
    "contexts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("context", sa.Text, nullable=False),
    sa.Column("start_us", sa.BigInteger, nullable=False),
    sa.Column("end_us", sa.BigInteger),
    sa.Column("source", sa.String(16), nullable=False),
    sa.UniqueConstraint("kind", "prefix", "start_us", name="contexts_kind_prefix_start"),
)
coverage = sa.Table(
    "coverage",
    metadata,
    sa.Column("prefix", sa.Text, primary_key=True),
    sa.Column("start_us", sa.BigInteger, nullable=False),
    sa.Column("until_us", sa.BigInteger, nullable=False),
)
sa.Index("gaps_end", gaps.c.end_us)
sa.Index("contexts_context", contexts.c.context)
sa.Index("contexts_start", contexts.c.start_us)
_SAMPLES_T = sa.Index("samples_t", samples.c.t_us, postgresql_using="brin")
_ROLLUPS_T = sa.Index("rollups_t", rollups.c.t_us, postgresql_using="brin")

PARTITIONED: Final = ("samples", "rollups")

#: PostgreSQL batches above this many sample rows go through COPY (see Store.insert_samples).
_COPY_FROM_ROWS: Final = 200
#: PostgreSQL: more new names than this are interned as array parameters (see Store._intern_arrays).
_INTERN_ARRAYS_FROM: Final = 200
#: The samples columns' PostgreSQL types, in _SAMPLE_COLUMNS order (binary COPY needs them).
_SAMPLE_PG_TYPES: Final = ("int4", "int8", "int2", "int2", "bool", "float8", "bytea", "int4", "text", "int2")
_SAMPLE_COLUMNS: Final = ("path_id", "t_us", "level", "raw_level", "stale", "num", "val", "agent_id", "context", "why")
_ROLLUP_COLUMNS: Final = tuple(column.name for column in rollups.columns)


class StoreError(UnavailableError):
    """The store cannot be used (the message is one line saying what to do; ``gsmon`` exits 1)."""


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of the SQLite file ``path``."""
    return f"sqlite:///{path.resolve()}"


def prefix_condition(column: sa.ColumnElement[str], prefix: str) -> sa.ColumnElement[bool]:
    """A segment-aware prefix (:func:`gsmon.common.names.path_in_prefix`) as an index range on ``column``.

    ``'0'`` is the character after ``'/'``, so ``p/ <= path < p0`` is exactly "below p".
    """
    if not prefix:
        return sa.true()
    if prefix.endswith("/"):
        below = prefix[:-1]
        return sa.and_(column >= below + "/", column < below + "0")
    return sa.or_(column == prefix, sa.and_(column >= prefix + "/", column < prefix + "0"))


def month_start_us(year: int, month: int) -> int:
    return calendar.timegm((year, month, 1, 0, 0, 0)) * 1_000_000


def month_of(t_us: int) -> tuple[int, int]:
    when = dt.datetime.fromtimestamp(t_us / 1_000_000, dt.UTC)
    return when.year, when.month


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


@dataclass(frozen=True, slots=True)
class Migration:
    """Brings the schema from ``version - 1`` to ``version``."""

    version: int
    what: str
    apply: Callable[[Connection, str], None]


def _create_v1(conn: Connection, dialect: str) -> None:
    metadata.create_all(conn)


MIGRATIONS: Final = (Migration(1, "the first schema", _create_v1),)


class Store:
    """One history store (an SQLAlchemy engine and what it has learnt); share it between threads freely:
    every method takes its own connection from the engine's pool."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.dialect = engine.dialect.name
        self._lock = threading.Lock()
        self._path_ids: dict[str, int] = {}
        self._agent_ids: dict[str, int] = {}
        self._partitions: set[tuple[str, int, int]] = set()
        self._insert_sql = self._sample_insert_sql()

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Store:
        """Open the store at ``url`` (an SQLAlchemy URL), creating or migrating its schema.

        Raises :class:`StoreError` with one line saying what is wrong and what to do.
        """
        engine = _engine(url)
        store = cls(engine, url)
        try:
            store._check_reachable()
            if migrate:
                store._migrate()
            if store.dialect == "postgresql":
                store.ensure_months([_now_us(), _now_us() + 31 * 86_400 * 1_000_000])
        except StoreError:
            engine.dispose()
            raise
        except sa.exc.SQLAlchemyError as error:
            engine.dispose()
            raise StoreError(f"the history store {store.describe()}: {_one_line(error)}") from error
        return store

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        """The URL without its password, for messages and the READY line."""
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def _check_reachable(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.OperationalError as error:
            hint = (
                "is the server running, and may this user connect to this database?"
                if self.dialect == "postgresql"
                else "give --state-dir a writable folder (or --db another URL)"
            )
            raise StoreError(f"cannot open the history store {self.describe()}: {_one_line(error)}: {hint}") from error

    def schema_version(self, conn: Connection) -> int:
        if not sa.inspect(conn).has_table("meta"):
            return 0
        value = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
        return int(value) if value is not None else 0

    def _migrate(self) -> None:
        with self.begin(immediate=True) as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            version = self.schema_version(conn)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the history store {self.describe()} has schema version {version}, written by a newer gsmon "
                    f"(this one knows {SCHEMA_VERSION}): upgrade gsmon, or use another --db/--state-dir"
                )
            for migration in MIGRATIONS:
                if migration.version > version:
                    log.info(
                        "history store %s: migrating to schema %d (%s)",
                        self.describe(),
                        migration.version,
                        migration.what,
                    )
                    migration.apply(conn, self.dialect)
                    self._set_meta(conn, "schema_version", str(migration.version))

    # -- transactions ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def begin(self, *, immediate: bool = False) -> Iterator[Connection]:
        """A connection in a transaction, committed at the end (``immediate``: SQLite takes the write lock
        at once, so two writers queue instead of failing halfway)."""
        with self.engine.connect() as conn:
            if immediate:
                conn = conn.execution_options(gsmon_immediate=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading (one consistent snapshot)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # -- meta ------------------------------------------------------------------------------------

    def _set_meta(self, conn: Connection, key: str, value: str) -> None:
        updated = conn.execute(sa.update(meta).where(meta.c.key == key).values(value=value)).rowcount
        if not updated:
            conn.execute(sa.insert(meta).values(key=key, value=value))

    def get_meta(self, conn: Connection, key: str) -> str | None:
        value = conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()
        return None if value is None else str(value)

    def set_meta(self, conn: Connection, key: str, value: str) -> None:
        self._set_meta(conn, key, value)

    # -- names -----------------------------------------------------------------------------------

    def path_ids(self, conn: Connection, names: Iterable[str]) -> dict[str, int]:
        """Ids of ``names`` (paths), interned on first use (inside ``conn``'s transaction)."""
        return self._intern(conn, paths, paths.c.path, self._path_ids, names)

    def agent_ids(self, conn: Connection, names: Iterable[str]) -> dict[str, int]:
        return self._intern(conn, agents, agents.c.name, self._agent_ids, names)

    def _intern(
        self, conn: Connection, table: sa.Table, column: sa.Column[str], cache: dict[str, int], names: Iterable[str]
    ) -> dict[str, int]:
        with self._lock:
            known = dict(cache)
        missing = sorted({name for name in names if name not in known})
        if self.dialect == "postgresql" and len(missing) > _INTERN_ARRAYS_FROM:
            known.update(self._intern_arrays(conn, table, column, missing))
            missing_after: list[str] = []
        else:
            missing_after = missing
        for start in range(0, len(missing_after), 500):
            chunk = missing_after[start : start + 500]
            found: dict[str, int] = dict(conn.execute(sa.select(column, table.c.id).where(column.in_(chunk))).all())
            new = [name for name in chunk if name not in found]
            if new:
                conn.execute(self._insert_ignore(table), [{column.name: name} for name in new])
                found.update(
                    (str(name), int(ident))
                    for name, ident in conn.execute(sa.select(column, table.c.id).where(column.in_(new)))
                )
            known.update(found)
        with self._lock:
            cache.update((name, known[name]) for name in missing)
        return known

    def _intern_arrays(
        self, conn: Connection, table: sa.Table, column: sa.Column[str], names: list[str]
    ) -> dict[str, int]:
        """PostgreSQL, many new names (a first snapshot: 100,000 paths): each chunk as ONE array parameter,
        inserted with ``unnest`` and read back with ``= ANY``. Chunks of 500 through SQLAlchemy took 5.5 s
        of a 6.2 s first commit of 100,000 rows (the COPY itself 0.5 s; bench/RESULTS.md). Names already
        there are left out of the insert, so that they use up no ids (ON CONFLICT alone would)."""
        raw = conn.connection.driver_connection  # psycopg's, in the same transaction as ``conn``
        assert raw is not None
        name, key = table.name, column.name  # constants of this module's schema
        found: dict[str, int] = {}
        with raw.cursor() as cursor:
            for start in range(0, len(names), 50_000):
                chunk = names[start : start + 50_000]
                cursor.execute(
                    f"INSERT INTO {name} ({key}) SELECT n FROM unnest(%s::text[]) AS n "  # noqa: S608 -- constants
                    f"WHERE NOT EXISTS (SELECT 1 FROM {name} t WHERE t.{key} = n) ON CONFLICT DO NOTHING",
                    (chunk,),
                )
                cursor.execute(f"SELECT {key}, id FROM {name} WHERE {key} = ANY(%s::text[])", (chunk,))  # noqa: S608
                found.update((str(text), int(ident)) for text, ident in cursor.fetchall())
        return found

    def forget_names(self) -> None:
        """Drop the cached name ids (after a rolled-back transaction that may have interned some)."""
        with self._lock:
            self._path_ids.clear()
            self._agent_ids.clear()

    def _insert_ignore(self, table: sa.Table) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing()
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()

    def all_paths(self, conn: Connection, prefix: str = "") -> list[tuple[int, str]]:
        query = sa.select(paths.c.id, paths.c.path).where(prefix_condition(paths.c.path, prefix)).order_by(paths.c.path)
        return [(int(ident), str(path)) for ident, path in conn.execute(query)]

    def path_id(self, conn: Connection, path: str) -> int | None:
        value = conn.execute(sa.select(paths.c.id).where(paths.c.path == path)).scalar()
        return None if value is None else int(value)

    def agent_names(self, conn: Connection) -> dict[int, str]:
        return {int(ident): str(name) for ident, name in conn.execute(sa.select(agents.c.id, agents.c.name))}

    # -- samples ---------------------------------------------------------------------------------

    def _sample_insert_sql(self) -> str:
        """The idempotent insert of one sample, compiled once by SQLAlchemy for this dialect (positional)."""
        statement = self._insert_ignore(samples)
        if self.dialect == "sqlite":
            compiled = statement.compile(dialect=self.engine.dialect, column_keys=list(_SAMPLE_COLUMNS))
            return str(compiled)
        # PostgreSQL: the same statement for psycopg's executemany (pipeline mode) with positional
        # parameters: SQLAlchemy's batched VALUES builds a dict per row and a new statement per batch,
        # which halves the rate (bench/RESULTS.md).
        columns = ", ".join(_SAMPLE_COLUMNS)
        marks = ", ".join(["%s"] * len(_SAMPLE_COLUMNS))
        return f"INSERT INTO samples ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING"  # noqa: S608 -- constants

    def insert_samples(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert sample tuples in :data:`_SAMPLE_COLUMNS` order; a row already there is left as it is.

        SQLite takes the statement compiled once, with positional parameters (the driver's
        ``executemany``: no per-row work in Python). PostgreSQL takes a batch of more than
        :data:`_COPY_FROM_ROWS` through ``COPY`` into a temporary table (dropped at commit) and
        one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` from it: COPY streams rows without a
        statement per row, which psycopg's pipelined ``executemany`` cannot avoid (it stayed
        under the 50,000 rows/s target; bench/RESULTS.md). Smaller batches use the statement.
        """
        if not rows:
            return
        if self.dialect == "postgresql":
            self.ensure_months([row[1] for row in rows], conn)
            if len(rows) > _COPY_FROM_ROWS:
                self._copy_samples(conn, rows)
                return
        conn.exec_driver_sql(self._insert_sql, list(rows))

    def _copy_samples(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        columns = ", ".join(_SAMPLE_COLUMNS)
        raw = conn.connection.driver_connection  # psycopg's, in the same transaction as ``conn``
        assert raw is not None
        with raw.cursor() as cursor:
            # Column names and types from the samples table itself (LIKE), so the two never differ.
            cursor.execute("CREATE TEMPORARY TABLE IF NOT EXISTS samples_incoming (LIKE samples) ON COMMIT DELETE ROWS")
            # Binary COPY: no text formatting and parsing of every number on either side.
            with cursor.copy(f"COPY samples_incoming ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(_SAMPLE_PG_TYPES)
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                f"INSERT INTO samples ({columns}) SELECT {columns} FROM samples_incoming "  # noqa: S608 -- constants
                "ON CONFLICT DO NOTHING"
            )
            cursor.execute("TRUNCATE samples_incoming")  # a second batch in the same transaction starts empty

    def insert_rollups(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        if self.dialect == "postgresql":
            self.ensure_months([int(row["t_us"]) for row in rows], conn)
        conn.execute(self._insert_ignore(rollups), list(rows))

    # -- partitions (PostgreSQL) ---------------------------------------------------------------

    def ensure_months(self, times_us: Sequence[int], conn: Connection | None = None) -> None:
        """Create the monthly partitions that rows at ``times_us`` need (PostgreSQL; a no-op on SQLite)."""
        if self.dialect != "postgresql" or not times_us:
            return
        low, high = min(times_us), max(times_us)
        months = {month_of(low), month_of(high)}
        if month_of(low) != month_of(high):
            months |= {month_of(t) for t in times_us}
        needed = [(table, year, month) for table in PARTITIONED for year, month in months]
        with self._lock:
            needed = [item for item in needed if item not in self._partitions]
        if not needed:
            return
        if conn is None:
            with self.begin() as own:
                self._create_partitions(own, needed)
        else:
            self._create_partitions(conn, needed)

    def _create_partitions(self, conn: Connection, needed: list[tuple[str, int, int]]) -> None:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY + 1})
        for table, year, month in needed:
            low = month_start_us(year, month)
            high = month_start_us(*_next_month(year, month))
            conn.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {table}_p{year:04d}{month:02d} PARTITION OF {table} "
                f"FOR VALUES FROM ({low}) TO ({high})"
            )
        with self._lock:
            self._partitions.update(needed)

    def partitions(self, conn: Connection, table: str) -> list[tuple[str, int, int]]:
        """``(name, low_us, high_us)`` of each partition of ``table`` (PostgreSQL; [] on SQLite)."""
        if self.dialect != "postgresql":
            return []
        found = []
        query = sa.text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :table"
        )
        for name, bound in conn.execute(query, {"table": table}):
            numbers = [
                int(part)
                for part in str(bound).replace("(", " ").replace(")", " ").replace("'", " ").split()
                if _is_int(part)
            ]
            if len(numbers) == 2:
                found.append((str(name), numbers[0], numbers[1]))
        return sorted(found, key=lambda item: item[1])

    def drop_partition(self, conn: Connection, name: str) -> None:
        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a partition name: {name!r}")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        with self._lock:
            self._partitions = {item for item in self._partitions if f"{item[0]}_p{item[1]:04d}{item[2]:02d}" != name}

    # -- gaps, contexts, coverage ----------------------------------------------------------------

    def add_gap(self, conn: Connection, prefix: str, start_us: int, end_us: int, reason: str) -> None:
        conn.execute(
            self._insert_ignore(gaps), [{"prefix": prefix, "start_us": start_us, "end_us": end_us, "reason": reason}]
        )

    def start_context(self, conn: Connection, kind: str, prefix: str, context: str, start_us: int, source: str) -> None:
        """A context interval begins (any open one of the same kind and prefix ends there)."""
        self.end_context(conn, kind, prefix, start_us)
        conn.execute(
            self._insert_ignore(contexts),
            [{"kind": kind, "prefix": prefix, "context": context, "start_us": start_us, "source": source}],
        )

    def end_context(self, conn: Connection, kind: str, prefix: str, end_us: int) -> int:
        """End the open intervals of ``kind`` and ``prefix``; how many there were."""
        return int(
            conn.execute(
                sa.update(contexts)
                .where(contexts.c.kind == kind, contexts.c.prefix == prefix, contexts.c.end_us.is_(None))
                .values(
                    end_us=sa.func.max(contexts.c.start_us, end_us)
                    if self.dialect == "sqlite"
                    else sa.func.greatest(contexts.c.start_us, end_us)
                )
            ).rowcount
        )

    def coverage(self, conn: Connection) -> dict[str, tuple[int, int]]:
        return {
            str(prefix): (int(start), int(until))
            for prefix, start, until in conn.execute(
                sa.select(coverage.c.prefix, coverage.c.start_us, coverage.c.until_us)
            )
        }

    def set_coverage(self, conn: Connection, prefix: str, start_us: int, until_us: int) -> None:
        updated = conn.execute(
            sa.update(coverage).where(coverage.c.prefix == prefix).values(until_us=until_us)
        ).rowcount
        if not updated:
            conn.execute(sa.insert(coverage).values(prefix=prefix, start_us=start_us, until_us=until_us))

    # -- maintenance: roll-ups and retention ---------------------------------------------------

    def rollup(self, conn: Connection, start_us: int, end_us: int, slot_us: int) -> int:
        """(Re)compute the roll-up rows of every path for the slots in ``[start_us, end_us)`` from the samples."""
        if self.dialect == "postgresql":
            self.ensure_months([start_us, max(start_us, end_us - 1)], conn)
        statement = sa.text(
            """
            INSERT INTO rollups (path_id, t_us, n, n_num, sum_num, min_num, max_num, first_t_us, first_num,
                                 first_val, last_t_us, last_num, last_val, max_level, ended_t_us)
            SELECT g.path_id, g.slot, g.n, g.n_num, g.s, g.mn, g.mx, g.t0, f.num, f.val, g.t1, l.num, l.val,
                   g.lvl, g.te
            FROM (SELECT path_id, (t_us / :slot) * :slot AS slot,
                         sum(CASE WHEN why <> 6 THEN 1 ELSE 0 END) AS n,
                         count(CASE WHEN why <> 6 THEN num END) AS n_num,
                         sum(CASE WHEN why <> 6 THEN num END) AS s,
                         min(CASE WHEN why <> 6 THEN num END) AS mn,
                         max(CASE WHEN why <> 6 THEN num END) AS mx,
                         min(CASE WHEN why <> 6 THEN t_us END) AS t0,
                         max(CASE WHEN why <> 6 THEN t_us END) AS t1,
                         max(CASE WHEN why <> 6 THEN level END) AS lvl,
                         max(CASE WHEN why = 6 THEN t_us END) AS te
                  FROM samples WHERE t_us >= :start AND t_us < :end GROUP BY 1, 2) g
            LEFT JOIN samples f ON f.path_id = g.path_id AND f.t_us = g.t0
            LEFT JOIN samples l ON l.path_id = g.path_id AND l.t_us = g.t1
            WHERE TRUE
            ON CONFLICT (path_id, t_us) DO UPDATE SET
                n = excluded.n, n_num = excluded.n_num, sum_num = excluded.sum_num, min_num = excluded.min_num,
                max_num = excluded.max_num, first_t_us = excluded.first_t_us, first_num = excluded.first_num,
                first_val = excluded.first_val, last_t_us = excluded.last_t_us, last_num = excluded.last_num,
                last_val = excluded.last_val, max_level = excluded.max_level, ended_t_us = excluded.ended_t_us
            """
        ).bindparams(
            sa.bindparam("slot", type_=sa.BigInteger),
            sa.bindparam("start", type_=sa.BigInteger),
            sa.bindparam("end", type_=sa.BigInteger),
        )
        return int(conn.execute(statement, {"slot": slot_us, "start": start_us, "end": end_us}).rowcount or 0)

    def oldest_sample_us(self, conn: Connection) -> int | None:
        value = conn.execute(sa.select(sa.func.min(samples.c.t_us))).scalar()
        return None if value is None else int(value)

    def newest_under(self, conn: Connection, prefix: str) -> int | None:
        """The time of the newest row under ``prefix`` (newest first on the time index: one step per row)."""
        value = conn.execute(
            sa.select(samples.c.t_us)
            .join(paths, paths.c.id == samples.c.path_id)
            .where(prefix_condition(paths.c.path, prefix))
            .order_by(samples.c.t_us.desc())
            .limit(1)
        ).scalar()
        return None if value is None else int(value)

    def newest_sample_us(self, conn: Connection) -> int | None:
        value = conn.execute(sa.select(sa.func.max(samples.c.t_us))).scalar()
        return None if value is None else int(value)

    def set_retention(self, conn: Connection, ids: Sequence[int], raw_days: float, rollup_days: float) -> None:
        for start in range(0, len(ids), 500):
            conn.execute(
                sa.update(paths)
                .where(paths.c.id.in_(ids[start : start + 500]))
                .values(raw_days=raw_days, rollup_days=rollup_days)
            )

    def retention_of_paths(
        self, conn: Connection, *, only_new: bool = False
    ) -> list[tuple[int, str, float | None, float | None]]:
        """``(id, path, raw_days, rollup_days)`` of every path (``only_new``: those without a retention yet)."""
        query = sa.select(paths.c.id, paths.c.path, paths.c.raw_days, paths.c.rollup_days)
        if only_new:
            query = query.where(paths.c.raw_days.is_(None))
        return [(int(ident), str(path), raw, rollup) for ident, path, raw, rollup in conn.execute(query)]

    def prune(
        self, conn: Connection, table: sa.Table, days_column: str, days: float, cutoff_us: int, batch: int
    ) -> int:
        """Delete at most ``batch`` rows of ``table`` older than ``cutoff_us`` whose path keeps them ``days``."""
        days_of = paths.c[days_column]
        chosen = (
            sa.select(table.c.path_id, table.c.t_us)
            .join(paths, paths.c.id == table.c.path_id)
            .where(table.c.t_us < cutoff_us, days_of == days)
            .limit(batch)
        )
        statement = sa.delete(table).where(sa.tuple_(table.c.path_id, table.c.t_us).in_(chosen))
        return int(conn.execute(statement).rowcount or 0)

    def prune_gaps(self, conn: Connection, cutoff_us: int) -> int:
        return int(conn.execute(sa.delete(gaps).where(gaps.c.end_us < cutoff_us)).rowcount or 0)

    def prune_contexts(self, conn: Connection, cutoff_us: int) -> int:
        return int(
            conn.execute(
                sa.delete(contexts).where(contexts.c.end_us.is_not(None), contexts.c.end_us < cutoff_us)
            ).rowcount
            or 0
        )

    def size_bytes(self) -> int | None:
        """The store's size on disk (SQLite file with its WAL, or the PostgreSQL database), when known."""
        try:
            if self.dialect == "sqlite":
                database = sa.engine.make_url(self.url).database
                if not database:
                    return None
                total = 0
                for suffix in ("", "-wal"):
                    with contextlib.suppress(OSError):
                        total += Path(database + suffix).stat().st_size
                return total
            with self.engine.connect() as conn:
                value = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar()
                return None if value is None else int(value)
        except sa.exc.SQLAlchemyError:
            return None


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _now_us() -> int:
    import time

    return round(time.time() * 1_000_000)


def _one_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error)
    return " ".join(text.split())[:400]


def _engine(url: str) -> Engine:
    """An engine for ``url``; SQLite: WAL, NORMAL sync, a busy timeout, and real transactions (BEGIN emitted
    by us, IMMEDIATE when asked, as SQLAlchemy's pysqlite documentation recommends)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as error:
        raise StoreError(
            f"not a database URL: {url!r} (expected e.g. sqlite:////var/lib/gsmon/history.db or "
            "postgresql+psycopg://user@host/db)"
        ) from error
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            folder = Path(database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as error:
                raise StoreError(
                    f"cannot create the folder {folder} for the history store: {error.strerror or error}: "
                    "give --state-dir a writable folder"
                ) from error
        engine = sa.create_engine(url, connect_args={"timeout": 30.0})

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.isolation_level = None  # we say BEGIN ourselves (below)
            cursor = dbapi_connection.cursor()
            mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() not in ("wal", "memory"):
                raise StoreError(f"the history store {database} cannot use WAL (got {mode}): put it on a local disk")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA cache_size = -32768")  # 32 MiB
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("gsmon_immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise StoreError(
                f"use the psycopg driver for PostgreSQL: postgresql+psycopg://... (got {parsed.drivername})"
            )
        try:
            import psycopg  # noqa: F401 -- only to say clearly what is missing
        except ImportError as error:
            raise StoreError(
                "PostgreSQL needs the psycopg driver: pip install 'gsmon[postgres]' (or psycopg[binary])"
            ) from error
        return sa.create_engine(url, pool_pre_ping=True)
    raise StoreError(f"unsupported database {backend!r} in {url!r}: use sqlite:///FILE or postgresql+psycopg://...")
