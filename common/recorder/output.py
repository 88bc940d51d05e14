"""How ``gsmon history`` shows an answer: a table for people, CSV, or exact JSON.

The answer (:func:`~gsmon.common.recorder.query.answer`, or the hub's
COMMAND_RESULT) carries times as float seconds since the epoch and values as
the points' own typed values. Here:

* ``--format json`` (``--json``): the issue's shape, times as ISO 8601 UTC
  (``"2026-12-01T21:49:20.123Z"``), values exact (:func:`values.jsonable`),
  levels as codes plus ``level_str``: ``{"path", "from", "to", "samples":
  [{"t", "value", "level", "level_str", "context", "stale"}...], "gaps":
  [{"from", "to", "reason"}...]}``; buckets alike (``"buckets": [{"from",
  "to", "min", "max", "avg", "count", "first", "last"}...]``); ``--at``:
  ``{"prefix", "at", "points": {path: {...}}, "gaps": [...]}``.
* ``--format csv``: one header line, one line per sample or bucket, times
  ISO 8601, values exact as JSON text where they are not plain numbers; a
  gap is a line of its own (``gap`` in the ``kind`` column), so a plot made
  from the file shows it.
* ``--format table`` (default): times ISO 8601 UTC to the second, values
  with their units (:func:`gsmon.common.units.format_point`: the point's
  name says the unit), levels as labels, spans as ``12 min``, and each gap
  as a line ``--- gap 12 min (recorder down) ---`` in time order.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from typing import Any

from gsmon.common.alerts import alertstr_for
from gsmon.common.recorder import values
from gsmon.common.recorder.times import format_span, iso
from gsmon.common.units import format_point

__all__ = ["render", "to_json"]


def _iso(seconds: Any) -> Any:
    return None if seconds is None else iso(float(seconds))


def _sample_json(sample: Mapping[str, Any]) -> dict[str, Any]:
    level = int(sample.get("level", 0))
    return {
        "t": _iso(sample.get("t")),
        "value": values.jsonable(sample.get("value")),
        "level": level,
        "level_str": alertstr_for(level),
        "context": sample.get("context"),
        "stale": bool(sample.get("stale", False)),
    }


def _gaps_json(gaps: Any) -> list[dict[str, Any]]:
    return [{"from": _iso(gap["from"]), "to": _iso(gap["to"]), "reason": gap.get("reason", "")} for gap in gaps or []]


def to_json(result: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON view of an answer (see the module docstring)."""
    if "points" in result:
        return {
            "prefix": result.get("prefix"),
            "at": _iso(result.get("at")),
            "points": {path: _sample_json(sample) for path, sample in result["points"].items()},
            "gaps": _gaps_json(result.get("gaps")),
        }
    if "contexts" in result:
        return {
            "contexts": [
                {**item, "from": _iso(item.get("from")), "to": _iso(item.get("to"))} for item in result["contexts"]
            ]
        }
    out: dict[str, Any] = {"path": result.get("path"), "from": _iso(result.get("from")), "to": _iso(result.get("to"))}
    if "buckets" in result:
        out["buckets"] = [
            {
                "from": _iso(bucket["from"]),
                "to": _iso(bucket["to"]),
                "min": values.jsonable(bucket.get("min")),
                "max": values.jsonable(bucket.get("max")),
                "avg": values.jsonable(bucket.get("avg")),
                "count": bucket.get("count", 0),
                "first": values.jsonable(bucket.get("first")),
                "last": values.jsonable(bucket.get("last")),
            }
            for bucket in result["buckets"]
        ]
        out["source"] = result.get("source")
    else:
        out["samples"] = [_sample_json(sample) for sample in result.get("samples", [])]
        out["truncated"] = bool(result.get("truncated", False))
    out["gaps"] = _gaps_json(result.get("gaps"))
    return out


def _exact_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    shown = values.jsonable(value)
    return shown if isinstance(shown, str) else json.dumps(shown, ensure_ascii=False)


def _second(seconds: float) -> str:
    return iso(float(seconds))[:19] + "Z"


def render(result: Mapping[str, Any], fmt: str) -> str:
    """The answer as ``fmt`` (``json``, ``csv`` or ``table``), ending with a newline."""
    if fmt == "json":
        return json.dumps(to_json(result), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    if fmt == "csv":
        return _csv(result)
    return _table(result)


def _csv(result: Mapping[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    gaps = [(g["from"], g["to"], g.get("reason", "")) for g in result.get("gaps", [])]
    if "points" in result:
        writer.writerow(["path", "t", "value", "level", "context", "stale"])
        for path, sample in result["points"].items():
            writer.writerow(
                [
                    path,
                    _iso(sample["t"]),
                    _exact_text(sample["value"]),
                    _level(sample["level"]),
                    sample.get("context") or "",
                    sample.get("stale"),
                ]
            )
        return buffer.getvalue()
    if "contexts" in result:
        writer.writerow(["kind", "prefix", "context", "from", "to", "source"])
        for item in result["contexts"]:
            writer.writerow(
                [
                    item["kind"],
                    item["prefix"],
                    item["context"],
                    _iso(item["from"]),
                    _iso(item["to"]) or "",
                    item["source"],
                ]
            )
        return buffer.getvalue()
    lines: list[tuple[float, list[Any]]] = []
    if "buckets" in result:
        writer.writerow(["kind", "from", "to", "min", "max", "avg", "count", "first", "last", "reason"])
        lines.extend(
            (
                b["from"],
                ["bucket", _iso(b["from"]), _iso(b["to"])]
                + [_exact_text(b.get(k)) for k in ("min", "max", "avg")]
                + [b.get("count", 0), _exact_text(b.get("first")), _exact_text(b.get("last")), ""],
            )
            for b in result["buckets"]
        )
        lines.extend((low, ["gap", _iso(low), _iso(high), "", "", "", 0, "", "", reason]) for low, high, reason in gaps)
    else:
        writer.writerow(["kind", "t", "to", "value", "level", "context", "stale", "reason"])
        lines.extend(
            (
                s["t"],
                [
                    "sample",
                    _iso(s["t"]),
                    "",
                    _exact_text(s["value"]),
                    _level(s["level"]),
                    s.get("context") or "",
                    s.get("stale"),
                    "",
                ],
            )
            for s in result.get("samples", [])
        )
        lines.extend((low, ["gap", _iso(low), _iso(high), "", "", "", "", reason]) for low, high, reason in gaps)
    for _, row in sorted(lines, key=lambda item: item[0]):
        writer.writerow(row)
    return buffer.getvalue()


def _gap_line(low: float, high: float, reason: str) -> str:
    return f"--- gap {format_span(high - low)} from {_second(low)} to {_second(high)} ({reason}) ---"


def _table(result: Mapping[str, Any]) -> str:
    gaps = [(g["from"], g["to"], g.get("reason", "")) for g in result.get("gaps", [])]
    out: list[tuple[float, str]] = []
    if "points" in result:
        lines = [f"{result.get('prefix') or '(whole tree)'} as it was at {_second(result['at'])}"]
        width = max((len(path) for path in result["points"]), default=4)
        for path, sample in result["points"].items():
            name = path.rpartition("/")[2]
            context = f"  [{sample['context']}]" if sample.get("context") else ""
            stale = " STALE" if sample.get("stale") else ""
            lines.append(
                f"{path:<{width}}  {format_point(name, sample['value']):>14}  {_level(sample['level']):<8}"
                f"{stale}  saved {_second(sample['t'])}{context}"
            )
        lines += [_gap_line(*gap) for gap in gaps]
        return "\n".join(lines) + "\n"
    if "contexts" in result:
        lines = []
        for item in result["contexts"]:
            to = _second(item["to"]) if item.get("to") is not None else "(active)"
            span = f" ({format_span(item['to'] - item['from'])})" if item.get("to") is not None else ""
            when = f"{_second(item['from'])} .. {to}{span}"
            lines.append(f"{item['kind']:<8} {item['prefix']:<24} {item['context']:<16} {when} [{item['source']}]")
        return "\n".join(lines or ["no contexts in this range"]) + "\n"
    path = str(result.get("path", ""))
    name = path.rpartition("/")[2]
    header = f"{path} from {_second(result['from'])} to {_second(result['to'])}"
    if "buckets" in result:
        header += f" ({len(result['buckets'])} buckets from {result.get('source')})"
        out.append((float("-inf"), f"{'from':<20}  {'min':>12}  {'max':>12}  {'avg':>12}  {'count':>6}  last"))
        for b in result["buckets"]:
            if b.get("count", 0) == 0 and b.get("last") is None:
                cells = f"{'-':>12}  {'-':>12}  {'-':>12}  {0:>6}  -"
            else:
                cells = (
                    f"{_num(name, b.get('min')):>12}  {_num(name, b.get('max')):>12}  {_num(name, b.get('avg')):>12}  "
                    f"{b.get('count', 0):>6}  {format_point(name, b.get('last'))}"
                )
            out.append((b["from"], f"{_second(b['from'])}  {cells}"))
    else:
        for s in result.get("samples", []):
            context = f"  [{s['context']}]" if s.get("context") else ""
            stale = " STALE" if s.get("stale") else ""
            shown = f"{format_point(name, s['value']):>14}  {_level(s['level']):<8}{stale}{context}"
            out.append((s["t"], f"{iso(float(s['t']))}  {shown}"))
        if not result.get("samples"):
            out.append((float("-inf"), "no samples in this range"))
        if result.get("truncated"):
            out.append((float("inf"), "(more samples: narrow the range, or use --buckets)"))
    out += [(low, _gap_line(low, high, reason)) for low, high, reason in gaps]
    out.sort(key=lambda item: item[0])
    return "\n".join([header, *(line for _, line in out)]) + "\n"


def _num(name: str, value: Any) -> str:
    return "-" if value is None else format_point(name, value)


def _level(code: Any) -> str:
    """A level's label for people (``OK`` for a point with no alert)."""
    return alertstr_for(int(code)) or "OK"
