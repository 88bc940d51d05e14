"""Asking the history: ``answer(store, command, args) -> result``, the one query code path.

``gsmon history --db/--state-dir`` calls :func:`answer` on a local store;
the recorder's ``--serve-history`` calls it for the COMMANDs the hub forwards
(``gsmon history --hub``). Its result is a plain value (maps, lists, floats,
the points' own typed values), so it crosses the wire as a COMMAND_RESULT's
``result`` unchanged; the command line shapes it into JSON, CSV or a table
(:mod:`~gsmon.common.recorder.output`). Bad arguments raise
:class:`AnswerError` (``reason`` ``"bad-args"``, ``"unknown-path"``,
``"unknown-context"``, ``"unknown-command"``) with one line saying why.

Commands (times in seconds since the Unix epoch, UTC):

``history`` ``{path, from, to, limit}``
    Raw samples of one point: ``{"path", "from", "to", "samples": [{"t",
    "value", "level", "context", "stale"}...], "gaps": [{"from", "to",
    "reason"}...], "truncated": bool}`` (at most ``limit`` samples, default
    10,000; removal markers are not samples).
``history`` ``{path, from, to, buckets: N | every: seconds}``
    Buckets: ``{"path", "from", "to", "buckets": [{"from", "to", "min", "max",
    "avg", "count", "first", "last"}...], "gaps": [...], "source": "raw" |
    "rollups"}``. ``count`` is the rows saved in the bucket; min/max/avg are
    over its numbers (null for text and other values), first/last its first
    and last values. A bucket with no rows holds the value saved before it
    (count 0, min = max = avg = first = last = that value), unless a gap or a
    removal ended that value: then it is all null, and the gap is in
    ``gaps`` -- a gap is never drawn as a flat line. Wide buckets (at least
    two roll-up slots) are answered from the roll-ups (``source`` "rollups")
    with their edges on slot boundaries (``--buckets 500`` over 30 days: 500
    buckets of 86 or 87 minutes), the newest minutes from raw rows.
``history`` ``{path, at}`` (``path`` a prefix)
    The tree as it was at ``at``: ``{"prefix", "at", "points": {path: {"t",
    "value", "level", "context", "stale"}}, "gaps": [...]}`` -- each point's
    last row at or before ``at`` (removed points are left out), and the gaps
    under the prefix that hold ``at``.
``history`` ``{path, context: ID}``
    ``from``/``to`` are those of the context interval ``ID`` (a pass; the
    newest one with that id selecting the path, or else any with that id).
``contexts`` ``{prefix, from, to}``
    Context intervals overlapping the range: ``{"contexts": [{"kind",
    "prefix", "context", "from", "to", "source"}...]}`` (``to`` null: active).

A sample's context is the one the recorder saw live with it, else the
innermost offline interval (``gsmon context start --db``) that holds it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gsmon.common import names as naming
from gsmon.common.recorder import values
from gsmon.common.recorder.core import Why
from gsmon.common.recorder.maintenance import ROLLED_UNTIL_KEY
from gsmon.common.recorder.store import Store, contexts, coverage, gaps, paths, samples

__all__ = ["DEFAULT_LIMIT", "MAX_BUCKETS", "AnswerError", "answer"]

DEFAULT_LIMIT: Final = 10_000
MAX_LIMIT: Final = 1_000_000
MAX_BUCKETS: Final = 100_000
_US: Final = 1_000_000
_REMOVED: Final = int(Why.REMOVED)


class AnswerError(ValueError):
    """A query that cannot be answered; ``reason`` is the COMMAND_RESULT's."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def answer(
    store: Store, command: str, args: Mapping[str, Any], *, now: float | None = None, rollup_s: int = 60
) -> dict[str, Any]:
    """Answer one history command (see the module docstring). ``now`` defaults to the clock."""
    if not isinstance(args, Mapping):
        raise AnswerError("bad-args", f"args must be a map, got {type(args).__name__}")
    clock = time.time() if now is None else now
    with store.read() as conn:
        if command == "history":
            return _history(store, conn, args, clock, rollup_s)
        if command == "contexts":
            return _contexts(store, conn, args, clock)
    raise AnswerError("unknown-command", f"unknown history command {command!r} (history, contexts)")


# -- arguments --------------------------------------------------------------------------------


def _number(args: Mapping[str, Any], key: str, default: float | None = None) -> float | None:
    value = args.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AnswerError("bad-args", f"{key} must be a number of seconds, got {value!r}")
    return float(value)


def _range(args: Mapping[str, Any], now: float) -> tuple[int, int]:
    end = _number(args, "to", now)
    assert end is not None
    start = _number(args, "from", end - 3600.0)
    assert start is not None
    if not start < end:
        raise AnswerError("bad-args", f"from must be before to (got from {start:.3f}, to {end:.3f})")
    return round(start * _US), round(end * _US)


def _path(args: Mapping[str, Any], *, prefix: bool = False) -> str:
    path = args.get("path")
    if not isinstance(path, str) or (not path and not prefix):
        raise AnswerError("bad-args", f"path must be a point's path such as GS1/Antenna1/Azimuth, got {path!r}")
    body = path[:-1] if path.endswith("/") else path
    if body:
        try:
            naming.check_path(body)
        except naming.InvalidNameError as error:
            raise AnswerError("bad-args", str(error)) from error
    return path


# -- gaps and contexts -----------------------------------------------------------------------


def _gap_rows(conn: Connection, start_us: int, end_us: int) -> list[tuple[str, int, int, str]]:
    query = sa.select(gaps.c.prefix, gaps.c.start_us, gaps.c.end_us, gaps.c.reason).where(
        gaps.c.start_us < end_us, gaps.c.end_us > start_us
    )
    return [(str(p), int(a), int(b), str(r)) for p, a, b, r in conn.execute(query)]


def _merged(intervals: Sequence[tuple[int, int, str]], start_us: int, end_us: int) -> list[tuple[int, int, str]]:
    """Intervals clipped to the range and merged where they overlap (reasons joined)."""
    merged: list[tuple[int, int, str]] = []
    for low, high, reason in sorted((max(a, start_us), min(b, end_us), r) for a, b, r in intervals):
        if high <= low:
            continue
        if merged and low <= merged[-1][1]:
            last = merged[-1]
            reasons = last[2] if reason in last[2].split(", ") else f"{last[2]}, {reason}"
            merged[-1] = (last[0], max(last[1], high), reasons)
        else:
            merged.append((low, high, reason))
    return merged


#: A path's coverage ending more than this before the end of a query is shown as a gap (the recorder is
#: not running, or far behind): a normal one trails by about a commit interval.
COVERAGE_SLACK_US: Final = 10 * _US


def _gaps_for_path(conn: Connection, path: str, start_us: int, end_us: int) -> list[tuple[int, int, str]]:
    found = [(a, b, r) for p, a, b, r in _gap_rows(conn, start_us, end_us) if naming.path_in_prefix(path, p)]
    # After the last commit of the recorder(s) following the path nothing is known yet: no flat line to now.
    covering = [
        (int(start), int(until))
        for prefix, start, until in conn.execute(sa.select(coverage.c.prefix, coverage.c.start_us, coverage.c.until_us))
        if naming.path_in_prefix(path, str(prefix)) or not prefix
    ]
    if covering:
        until = max(until for _, until in covering)
        if end_us - until > COVERAGE_SLACK_US:
            found.append((until, end_us, "not recorded (the recorder is not running, or behind)"))
    return _merged(found, start_us, end_us)


def _gaps_json(merged: Sequence[tuple[int, int, str]]) -> list[dict[str, Any]]:
    return [{"from": a / _US, "to": b / _US, "reason": r} for a, b, r in merged]


@dataclass(frozen=True, slots=True)
class _Interval:
    kind: str
    prefix: str
    context: str
    start_us: int
    end_us: int | None
    source: str


def _intervals(conn: Connection, start_us: int, end_us: int, **where: Any) -> list[_Interval]:
    query = sa.select(
        contexts.c.kind,
        contexts.c.prefix,
        contexts.c.context,
        contexts.c.start_us,
        contexts.c.end_us,
        contexts.c.source,
    ).where(contexts.c.start_us < end_us, sa.or_(contexts.c.end_us.is_(None), contexts.c.end_us > start_us))
    if "context" in where:
        query = query.where(contexts.c.context == where["context"])
    return [
        _Interval(str(k), str(p), str(c), int(a), None if b is None else int(b), str(s))
        for k, p, c, a, b, s in conn.execute(query.order_by(contexts.c.start_us))
    ]


class _OfflineContexts:
    """The offline intervals selecting one path: the context of a sample that has none of its own."""

    def __init__(self, intervals: Sequence[_Interval], path: str) -> None:
        self.intervals = sorted(
            (item for item in intervals if item.source == "offline" and naming.path_in_prefix(path, item.prefix)),
            key=lambda item: -len(item.prefix),
        )

    def at(self, t_us: int) -> str | None:
        for item in self.intervals:
            if item.start_us <= t_us and (item.end_us is None or t_us < item.end_us):
                return item.context
        return None


def _contexts(store: Store, conn: Connection, args: Mapping[str, Any], now: float) -> dict[str, Any]:
    start_us, end_us = _range(args, now)
    prefix = args.get("prefix", "")
    if not isinstance(prefix, str):
        raise AnswerError("bad-args", f"prefix must be text, got {prefix!r}")
    found = [
        item
        for item in _intervals(conn, start_us, end_us)
        if not prefix or naming.path_in_prefix(item.prefix, prefix) or naming.path_in_prefix(prefix, item.prefix)
    ]
    return {
        "contexts": [
            {
                "kind": item.kind,
                "prefix": item.prefix,
                "context": item.context,
                "from": item.start_us / _US,
                "to": None if item.end_us is None else item.end_us / _US,
                "source": item.source,
            }
            for item in found
        ]
    }


# -- history ----------------------------------------------------------------------------------


def _history(store: Store, conn: Connection, args: Mapping[str, Any], now: float, rollup_s: int) -> dict[str, Any]:
    if args.get("at") is not None:
        at = _number(args, "at")
        assert at is not None
        return _tree_at(conn, _path(args, prefix=True), round(at * _US))
    path = _path(args)
    context = args.get("context")
    if context is not None:
        if not isinstance(context, str) or not context:
            raise AnswerError("bad-args", f"context must be a context id such as P123, got {context!r}")
        start_us, end_us = _context_range(conn, path, context, now)
        end_us = max(start_us + 1, end_us - 1)  # the row written when the context ended is not in it
    else:
        start_us, end_us = _range(args, now)
    path_id = store.path_id(conn, path)
    if path_id is None:
        raise AnswerError(
            "unknown-path",
            f"no history of {path!r} in this store (a point's full path; gsmon history PREFIX/ --at now lists them)",
        )
    buckets = args.get("buckets")
    every = _number(args, "every")
    if buckets is not None or every is not None:
        return _buckets(store, conn, path, path_id, start_us, end_us, buckets, every, rollup_s)
    limit = args.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_LIMIT:
        raise AnswerError("bad-args", f"limit must be a whole number from 1 to {MAX_LIMIT}, got {limit!r}")
    return _samples(conn, path, path_id, start_us, end_us, limit)


def _context_range(conn: Connection, path: str, context: str, now: float) -> tuple[int, int]:
    found = _intervals(conn, -(2**62), 2**62, context=context)
    if not found:
        raise AnswerError("unknown-context", f"no context {context!r} in this store")
    selecting = [item for item in found if naming.path_in_prefix(path, item.prefix)] or found
    chosen = selecting[-1]
    end_us = chosen.end_us if chosen.end_us is not None else round(now * _US)
    return chosen.start_us, max(end_us, chosen.start_us + 1)


def _samples(conn: Connection, path: str, path_id: int, start_us: int, end_us: int, limit: int) -> dict[str, Any]:
    query = (
        sa.select(samples.c.t_us, samples.c.level, samples.c.stale, samples.c.num, samples.c.val, samples.c.context)
        .where(
            samples.c.path_id == path_id,
            samples.c.t_us >= start_us,
            samples.c.t_us <= end_us,
            samples.c.why != _REMOVED,
        )
        .order_by(samples.c.t_us)
        .limit(limit + 1)
    )
    rows = conn.execute(query).all()
    truncated = len(rows) > limit
    offline = _OfflineContexts(_intervals(conn, start_us, end_us + 1), path)
    out = []
    for t_us, level, stale, num, val, context in rows[:limit]:
        out.append(
            {
                "t": t_us / _US,
                "value": values.join(num, val),
                "level": int(level),
                "context": context if context is not None else offline.at(int(t_us)),
                "stale": bool(stale),
            }
        )
    return {
        "path": path,
        "from": start_us / _US,
        "to": end_us / _US,
        "samples": out,
        "gaps": _gaps_json(_gaps_for_path(conn, path, start_us, end_us)),
        "truncated": truncated,
    }


@dataclass
class _Group:
    """What one bucket's rows (raw, roll-ups, or both) add up to."""

    n: int = 0
    n_num: int = 0
    minimum: float | None = None
    maximum: float | None = None
    total: float = 0.0
    first_t: int | None = None
    last_t: int | None = None
    ended_t: int | None = None
    first: Any = None
    last: Any = None

    def add(
        self, n: int, n_num: int, mn: Any, mx: Any, s: Any, t0: Any, t1: Any, te: Any, first: Any, last: Any
    ) -> None:
        self.n += int(n or 0)
        self.n_num += int(n_num or 0)
        if mn is not None:
            self.minimum = float(mn) if self.minimum is None else min(self.minimum, float(mn))
        if mx is not None:
            self.maximum = float(mx) if self.maximum is None else max(self.maximum, float(mx))
        if s is not None:
            self.total += float(s)
        if t0 is not None and (self.first_t is None or int(t0) < self.first_t):
            self.first_t, self.first = int(t0), first
        if t1 is not None and (self.last_t is None or int(t1) > self.last_t):
            self.last_t, self.last = int(t1), last
        if te is not None and (self.ended_t is None or int(te) > self.ended_t):
            self.ended_t = int(te)


def _plan(
    start_us: int,
    end_us: int,
    buckets: Any,
    every: float | None,
    rollup_us: int,
    rolled_until: int | None,
    force_rollups: bool = False,
) -> tuple[int, int, int, int, int, bool]:
    """``(start, end, slot_us, slots, n, from_rollups)``: bucket i is slots [i*M//n, (i+1)*M//n) of ``slot_us``."""
    span = end_us - start_us
    if buckets is not None:
        if isinstance(buckets, bool) or not isinstance(buckets, int) or not 0 < buckets <= MAX_BUCKETS:
            raise AnswerError("bad-args", f"buckets must be a whole number from 1 to {MAX_BUCKETS}, got {buckets!r}")
        width = span / buckets
    else:
        assert every is not None
        if not every > 0:
            raise AnswerError("bad-args", f"every must be a positive number of seconds, got {every!r}")
        width = every * _US
        if span / width > MAX_BUCKETS:
            raise AnswerError("bad-args", f"every {every:g} s makes more than {MAX_BUCKETS} buckets: widen it")
    rollups = force_rollups or (rolled_until is not None and width >= 2 * rollup_us and start_us < rolled_until)
    if rollups:
        start = (start_us // rollup_us) * rollup_us
        end = -(-end_us // rollup_us) * rollup_us
        if buckets is not None:
            slot, slots = rollup_us, (end - start) // rollup_us
            return start, end, slot, slots, min(buckets, slots), True
        slot = max(1, round(width / rollup_us)) * rollup_us
        slots = -(-(end - start) // slot)
        return start, start + slots * slot, slot, slots, slots, True
    if buckets is not None:
        return start_us, end_us, 1, span, buckets, False
    slot = max(1, round(width))
    slots = -(-span // slot)
    return start_us, start_us + slots * slot, slot, slots, slots, False


# Bucket i holds slots [i*M//n, (i+1)*M//n) of :r microseconds from :f (see _plan); 6 is Why.REMOVED.
_SAMPLE_BUCKETS: Final = """
    SELECT g.b, g.n, g.nn, g.mn, g.mx, g.s, g.t0, g.t1, g.te, f.num, f.val, l.num, l.val
    FROM (SELECT ((((t_us - :f) / :r) + 1) * :n - 1) / :m AS b,
                 sum(CASE WHEN why <> 6 THEN 1 ELSE 0 END) AS n,
                 count(CASE WHEN why <> 6 THEN num END) AS nn,
                 min(CASE WHEN why <> 6 THEN num END) AS mn,
                 max(CASE WHEN why <> 6 THEN num END) AS mx,
                 sum(CASE WHEN why <> 6 THEN num END) AS s,
                 min(CASE WHEN why <> 6 THEN t_us END) AS t0,
                 max(CASE WHEN why <> 6 THEN t_us END) AS t1,
                 max(CASE WHEN why = 6 THEN t_us END) AS te
          FROM samples WHERE path_id = :p AND t_us >= :lo AND t_us < :hi GROUP BY 1) g
    LEFT JOIN samples f ON f.path_id = :p AND f.t_us = g.t0
    LEFT JOIN samples l ON l.path_id = :p AND l.t_us = g.t1
    ORDER BY g.b
"""
_ROLLUP_BUCKETS: Final = """
    SELECT g.b, g.n, g.nn, g.mn, g.mx, g.s, g.t0, g.t1, g.te, f.first_num, f.first_val, l.last_num, l.last_val
    FROM (SELECT ((((t_us - :f) / :r) + 1) * :n - 1) / :m AS b,
                 sum(n) AS n, sum(n_num) AS nn, min(min_num) AS mn, max(max_num) AS mx, sum(sum_num) AS s,
                 min(first_t_us) AS t0, max(last_t_us) AS t1, max(ended_t_us) AS te,
                 min(CASE WHEN n > 0 THEN t_us END) AS r0, max(CASE WHEN n > 0 THEN t_us END) AS r1
          FROM rollups WHERE path_id = :p AND t_us >= :lo AND t_us < :hi GROUP BY 1) g
    LEFT JOIN rollups f ON f.path_id = :p AND f.t_us = g.r0
    LEFT JOIN rollups l ON l.path_id = :p AND l.t_us = g.r1
    ORDER BY g.b
"""
assert _REMOVED == 6, "the SQL above names Why.REMOVED as 6"


def _grouped_sql(table: str) -> sa.TextClause:
    text = _SAMPLE_BUCKETS if table == "samples" else _ROLLUP_BUCKETS
    return sa.text(text).bindparams(
        *(sa.bindparam(name, type_=sa.BigInteger) for name in ("f", "r", "n", "m", "p", "lo", "hi"))
    )


def _held_before(conn: Connection, path_id: int, start_us: int) -> Any:
    """The value saved last before ``start_us`` (raw rows, else roll-ups); None after a removal or nothing."""
    row = conn.execute(
        sa.select(samples.c.num, samples.c.val, samples.c.why)
        .where(samples.c.path_id == path_id, samples.c.t_us < start_us)
        .order_by(samples.c.t_us.desc())
        .limit(1)
    ).first()
    if row is not None:
        return _NOTHING if int(row[2]) == _REMOVED else values.join(row[0], row[1])
    from gsmon.common.recorder.store import rollups

    roll = conn.execute(
        sa.select(rollups.c.last_num, rollups.c.last_val, rollups.c.last_t_us, rollups.c.ended_t_us)
        .where(rollups.c.path_id == path_id, rollups.c.t_us < start_us)
        .order_by(rollups.c.t_us.desc())
        .limit(1)
    ).first()
    if roll is None or roll[2] is None or (roll[3] is not None and int(roll[3]) > int(roll[2])):
        return _NOTHING
    return values.join(roll[0], roll[1])


class _Nothing:
    """No value is held (nothing saved yet, a removal, a gap)."""


_NOTHING: Final = _Nothing()


def _buckets(
    store: Store,
    conn: Connection,
    path: str,
    path_id: int,
    start_us: int,
    end_us: int,
    buckets: Any,
    every: float | None,
    rollup_s: int,
) -> dict[str, Any]:
    rollup_us = rollup_s * _US
    rolled = store.get_meta(conn, ROLLED_UNTIL_KEY)
    rolled_until = int(rolled) if rolled is not None else None

    def compute(force: bool) -> tuple[tuple[int, int, int, int, int, bool], list[_Group], int]:
        plan = _plan(start_us, end_us, buckets, every, rollup_us, rolled_until, force)
        start, end, slot, slots, count, use_rollups = plan
        groups = [_Group() for _ in range(count)]
        params = {"f": start, "r": slot, "n": count, "m": slots, "p": path_id}

        def gather(table: str, low: int, high: int) -> int:
            found = 0
            if high <= low:
                return found
            for b, n, nn, mn, mx, s, t0, t1, te, fnum, fval, lnum, lval in conn.execute(
                _grouped_sql(table), {**params, "lo": low, "hi": high}
            ):
                index = int(b)
                if 0 <= index < count:
                    first = values.join(fnum, fval) if t0 is not None else None
                    last = values.join(lnum, lval) if t1 is not None else None
                    groups[index].add(n, nn, mn, mx, s, t0, t1, te, first, last)
                    found += 1
            return found

        if not use_rollups:
            return plan, groups, gather("samples", start, end)
        split = end if rolled_until is None else min(end, max(start, rolled_until))
        gather("rollups", start, split)
        return plan, groups, gather("samples", split, end)

    plan, groups, raw_found = compute(False)
    if not plan[5] and not raw_found and rolled_until is not None and rolled_until > start_us:
        # No raw rows here (pruned, or never kept): the roll-ups, at their own resolution at the finest.
        plan, groups, raw_found = compute(True)
    start, end, slot, slots, count, use_rollups = plan
    source = "rollups" if use_rollups else "raw"
    gap_list = _gaps_for_path(conn, path, start, end)
    held = _held_before(conn, path_id, start)
    if any(a <= start < b for a, b, _ in gap_list):
        held = _NOTHING
    out = []
    for index, group in enumerate(groups):
        low = start + (index * slots // count) * slot
        high = start + ((index + 1) * slots // count) * slot
        overlapping = [(a, b) for a, b, _ in gap_list if a < high and b > low]
        covered = sum(min(b, high) - max(a, low) for a, b in overlapping)
        entry: dict[str, Any] = {"from": low / _US, "to": high / _US}
        if group.n:
            entry.update(
                min=group.minimum,
                max=group.maximum,
                avg=group.total / group.n_num if group.n_num else None,
                count=group.n,
                first=group.first,
                last=group.last,
            )
            held = group.last
            if (group.ended_t is not None and group.last_t is not None and group.ended_t > group.last_t) or any(
                group.last_t is not None and a >= group.last_t for a, _ in overlapping
            ):
                held = _NOTHING
        else:
            shown = None if isinstance(held, _Nothing) or covered >= high - low else held
            number = values.number_of(shown) if shown is not None else None
            entry.update(min=number, max=number, avg=number, count=0, first=shown, last=shown)
            if overlapping or group.ended_t is not None:
                held = _NOTHING
        out.append(entry)
    return {
        "path": path,
        "from": start / _US,
        "to": end / _US,
        "buckets": out,
        "gaps": _gaps_json(gap_list),
        "source": source,
    }


def _tree_at(conn: Connection, prefix: str, at_us: int) -> dict[str, Any]:
    latest = samples.alias("latest")
    inner = (
        sa.select(sa.func.max(latest.c.t_us))
        .where(latest.c.path_id == paths.c.id, latest.c.t_us <= at_us)
        .correlate(paths)
    )
    query = (
        sa.select(
            paths.c.path,
            samples.c.t_us,
            samples.c.level,
            samples.c.stale,
            samples.c.num,
            samples.c.val,
            samples.c.context,
            samples.c.why,
        )
        .select_from(paths)
        .join(samples, sa.and_(samples.c.path_id == paths.c.id, samples.c.t_us == inner.scalar_subquery()))
        .where(_prefix_of(prefix))
        .order_by(paths.c.path)
    )
    points: dict[str, Any] = {}
    for path, t_us, level, stale, num, val, context, why in conn.execute(query):
        if int(why) == _REMOVED:
            continue
        points[str(path)] = {
            "t": int(t_us) / _US,
            "value": values.join(num, val),
            "level": int(level),
            "context": context,
            "stale": bool(stale),
        }
    found = []
    for gap_prefix, a, b, reason in _gap_rows(conn, at_us, at_us + 1):
        if (
            not prefix
            or naming.path_in_prefix(gap_prefix, prefix)
            or naming.path_in_prefix(prefix.rstrip("/"), gap_prefix)
        ):
            found.append((a, b, reason))
    offline = [item for item in _intervals(conn, at_us, at_us + 1) if item.source == "offline"]
    for path, point in points.items():
        if point["context"] is None:
            point["context"] = _OfflineContexts(offline, path).at(at_us)
    return {"prefix": prefix, "at": at_us / _US, "points": points, "gaps": _gaps_json(_merged(found, -(2**62), 2**62))}


def _prefix_of(prefix: str) -> sa.ColumnElement[bool]:
    from gsmon.common.recorder.store import prefix_condition

    return prefix_condition(paths.c.path, prefix)
