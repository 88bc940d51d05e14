"""``gsmon history export/import``: JSON lines that move a history between stores (SQLite <-> PostgreSQL).

One JSON object per line, each with a ``type``::

    {"type": "header", "format": "gsmon-history", "version": 1, "schema": 1, "exported_at": "2026-12-01T21:49:20Z"}
    {"type": "sample", "path": "GS1/Ant1/Az_deg", "t_us": 1796170000000000, "level": 0, "raw_level": null,
     "stale": false, "num": 182.5, "val": null, "agent": "ant1", "context": "P123", "why": 3}
    {"type": "gap", "prefix": "GS1/", "start_us": ..., "end_us": ..., "reason": "recorder down"}
    {"type": "context", "kind": "pass", "prefix": "GS1", "context": "P123", "start_us": ..., "end_us": null,
     "source": "tree"}

Samples carry the store's own columns (``num`` a float or null, ``val`` the
exact packed value as base64 or null: see :mod:`~gsmon.common.recorder.values`),
so nothing is lost or reinterpreted on the way; ``t_us`` is integer
microseconds since the epoch (exact, unlike a float of seconds). Import is
idempotent (rows already there are kept), then computes the roll-ups of the
imported time range. Roll-ups themselves are not exported: they are derived.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import IO, Any, Final

import sqlalchemy as sa

from gsmon.common.recorder.store import SCHEMA_VERSION, Store, contexts, gaps, prefix_condition, samples

__all__ = ["FORMAT", "BadExportError", "export_lines", "import_lines"]

FORMAT: Final = "gsmon-history"
_VERSION: Final = 1
_BATCH: Final = 5000


class BadExportError(ValueError):
    """A line of an import file that is not what export writes (the message names the line)."""


def export_lines(
    store: Store, prefix: str = "", start_us: int | None = None, end_us: int | None = None
) -> Iterator[str]:
    """The export of ``store`` (under ``prefix``, in ``[start_us, end_us)``) as JSON lines, without newlines."""
    import time

    from gsmon.common.recorder.times import iso

    yield json.dumps(
        {
            "type": "header",
            "format": FORMAT,
            "version": _VERSION,
            "schema": SCHEMA_VERSION,
            "exported_at": iso(time.time()),
        }
    )
    with store.read() as conn:
        agent_names = store.agent_names(conn)
        for path_id, path in store.all_paths(conn, prefix):
            query = sa.select(
                samples.c.t_us,
                samples.c.level,
                samples.c.raw_level,
                samples.c.stale,
                samples.c.num,
                samples.c.val,
                samples.c.agent_id,
                samples.c.context,
                samples.c.why,
            ).where(samples.c.path_id == path_id)
            if start_us is not None:
                query = query.where(samples.c.t_us >= start_us)
            if end_us is not None:
                query = query.where(samples.c.t_us < end_us)
            for t_us, level, raw, stale, num, val, agent_id, context, why in conn.execute(
                query.order_by(samples.c.t_us)
            ):
                yield json.dumps(
                    {
                        "type": "sample",
                        "path": path,
                        "t_us": int(t_us),
                        "level": int(level),
                        "raw_level": None if raw is None else int(raw),
                        "stale": bool(stale),
                        "num": num,
                        "val": None if val is None else base64.b64encode(bytes(val)).decode(),
                        "agent": agent_names.get(int(agent_id)) if agent_id is not None else None,
                        "context": context,
                        "why": int(why),
                    },
                    allow_nan=True,  # num holds +-inf exactly (JSON's Infinity, which Python reads back)
                )
        gap_query = sa.select(gaps.c.prefix, gaps.c.start_us, gaps.c.end_us, gaps.c.reason).where(
            prefix_condition(gaps.c.prefix, prefix)
        )
        for gap_prefix, start, end, reason in conn.execute(gap_query.order_by(gaps.c.start_us)):
            yield json.dumps(
                {"type": "gap", "prefix": gap_prefix, "start_us": int(start), "end_us": int(end), "reason": reason}
            )
        for kind, ctx_prefix, context, start, end, source in conn.execute(
            sa.select(
                contexts.c.kind,
                contexts.c.prefix,
                contexts.c.context,
                contexts.c.start_us,
                contexts.c.end_us,
                contexts.c.source,
            ).order_by(contexts.c.start_us)
        ):
            yield json.dumps(
                {
                    "type": "context",
                    "kind": kind,
                    "prefix": ctx_prefix,
                    "context": context,
                    "start_us": int(start),
                    "end_us": None if end is None else int(end),
                    "source": source,
                }
            )


def _field(record: dict[str, Any], key: str, kinds: tuple[type, ...], line: int, optional: bool = False) -> Any:
    value = record.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise BadExportError(f"line {line}: {key!r} must be {' or '.join(k.__name__ for k in kinds)}, got {value!r}")
    return value


def import_lines(store: Store, lines: IO[str], *, rollup_s: int = 60) -> dict[str, int]:
    """Import an export file into ``store``; counts of what was read. Raises :class:`BadExportError`."""
    from gsmon.common.recorder.maintenance import rollup_range

    counts = {"samples": 0, "gaps": 0, "contexts": 0}
    batch: list[dict[str, Any]] = []
    low: int | None = None
    high: int | None = None

    def flush() -> None:
        if not batch:
            return
        with store.begin(immediate=True) as conn:
            path_ids = store.path_ids(conn, {item["path"] for item in batch})
            agent_ids = store.agent_ids(conn, {item["agent"] for item in batch if item["agent"] is not None})
            store.insert_samples(
                conn,
                [
                    (
                        path_ids[item["path"]],
                        item["t_us"],
                        item["level"],
                        item["raw_level"],
                        item["stale"],
                        item["num"],
                        item["val"],
                        agent_ids.get(item["agent"]) if item["agent"] is not None else None,
                        item["context"],
                        item["why"],
                    )
                    for item in batch
                ],
            )
        batch.clear()

    seen_header = False
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            raise BadExportError(f"line {number}: not JSON ({error.msg}): is this a gsmon history export?") from None
        if not isinstance(record, dict):
            raise BadExportError(f"line {number}: expected a JSON object")
        kind = record.get("type")
        if kind == "header":
            if record.get("format") != FORMAT or record.get("version") != _VERSION:
                raise BadExportError(
                    f"line {number}: not a {FORMAT} export of version {_VERSION}: {text.strip()[:200]}"
                )
            seen_header = True
            continue
        if not seen_header:
            raise BadExportError(f"line {number}: the file must start with the export's header line")
        if kind == "sample":
            val = _field(record, "val", (str,), number, optional=True)
            item = {
                "path": _field(record, "path", (str,), number),
                "t_us": _field(record, "t_us", (int,), number),
                "level": _field(record, "level", (int,), number),
                "raw_level": _field(record, "raw_level", (int,), number, optional=True),
                "stale": _field(record, "stale", (bool,), number),
                "num": _field(record, "num", (int, float), number, optional=True),
                "val": None if val is None else base64.b64decode(val, validate=True),
                "agent": _field(record, "agent", (str,), number, optional=True),
                "context": _field(record, "context", (str,), number, optional=True),
                "why": _field(record, "why", (int,), number),
            }
            batch.append(item)
            low = item["t_us"] if low is None else min(low, item["t_us"])
            high = item["t_us"] if high is None else max(high, item["t_us"])
            counts["samples"] += 1
            if len(batch) >= _BATCH:
                flush()
        elif kind == "gap":
            with store.begin(immediate=True) as conn:
                store.add_gap(
                    conn,
                    _field(record, "prefix", (str,), number),
                    _field(record, "start_us", (int,), number),
                    _field(record, "end_us", (int,), number),
                    _field(record, "reason", (str,), number),
                )
            counts["gaps"] += 1
        elif kind == "context":
            with store.begin(immediate=True) as conn:
                conn.execute(
                    store._insert_ignore(contexts),
                    [
                        {
                            "kind": _field(record, "kind", (str,), number),
                            "prefix": _field(record, "prefix", (str,), number),
                            "context": _field(record, "context", (str,), number),
                            "start_us": _field(record, "start_us", (int,), number),
                            "end_us": _field(record, "end_us", (int,), number, optional=True),
                            "source": _field(record, "source", (str,), number),
                        }
                    ],
                )
            counts["contexts"] += 1
        else:
            raise BadExportError(f"line {number}: unknown type {kind!r} (header, sample, gap, context)")
    flush()
    if low is not None and high is not None:
        rollup_range(store, low, high + 1, rollup_s)
    return counts
