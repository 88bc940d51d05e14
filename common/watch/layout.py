"""What each line of ``gsmon watch`` says: columns, cells, symbols, status and title. Pure text.

The Textual widgets only colour and place what these functions return, so
the words, widths and truncation are tested without a terminal.

Every level has a symbol and a word, so that a monochrome terminal (or
``--no-colour``, or ``NO_COLOR``) still tells them apart::

    ‼ CRITICAL   ◌ STALE   ✗ RED   ▲ ORANGE   ✓ GREEN   · (no judgement)   ? UNKNOWN (hub lost)

A user-defined level takes the symbol of the built-in level below it and its
own word. A point is coloured by its attention, which its level word does not
say (an alarm back to normal but not acknowledged: ``✓ GREEN`` shown red), so
a point whose alarm waits for an acknowledgement (and is not shelved) is also
marked ``!`` before its name: a monochrome terminal tells it from the others too.

Columns: the name takes what the deepest, longest name needs, up to
:data:`NAME_SHARE` of the width; the level word and the ``age`` (at the hub)
are narrow and fixed; the value takes the rest, cut with ``…`` (the detail
pane shows all of it). A name too long for its column loses its middle, so
that its unit suffix stays readable.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from rich.cells import cell_len, set_cell_size

from gsmon.common.alerts import STALE_ALERTCODE, CriticalAlert, GreenAlert, OrangeAlert, RedAlert
from gsmon.common.units import format_age_short, format_duration, format_point, format_point_full
from gsmon.common.watch.model import PROBLEM_LEVEL, Row, RowKind, ViewModel

__all__ = [
    "NAME_SHARE",
    "UNACKED_MARK",
    "UNKNOWN_SYMBOL",
    "UNKNOWN_WORD",
    "Cells",
    "Columns",
    "ConnectionState",
    "Tier",
    "cells_for",
    "columns_for",
    "counts_text",
    "detail_lines",
    "ellipsis_end",
    "ellipsis_middle",
    "header_cells",
    "level_symbol",
    "line_text",
    "status_text",
    "summary_text",
    "tier_of",
    "title_text",
]

Tier = Literal["critical", "stale", "red", "orange", "green", "none", "unknown"]
NAME_SHARE: Final = 0.45
MIN_NAME: Final = 12
MIN_VALUE: Final = 8
LEVEL_WIDTH: Final = 10  # "‼ CRITICAL"
AGE_WIDTH: Final = 5  # "59.9s", "12m"
UNKNOWN_SYMBOL: Final = "?"
UNKNOWN_WORD: Final = "UNKNOWN"
ConnectionState = Literal["connected", "waiting", "hub lost"]

# (lowest code, tier, symbol), worst first.
_LADDER: Final[tuple[tuple[int, Tier, str], ...]] = (
    (CriticalAlert.alertcode, "critical", "‼"),
    (STALE_ALERTCODE, "stale", "◌"),
    (RedAlert.alertcode, "red", "✗"),
    (OrangeAlert.alertcode, "orange", "▲"),
    (GreenAlert.alertcode, "green", "✓"),
)
_NO_JUDGEMENT_SYMBOL: Final = "·"
_TIER_WORDS: Final[dict[Tier, str]] = {
    "critical": "critical",
    "stale": "stale",
    "red": "red",
    "orange": "orange",
    "green": "ok",
    "none": "ok",
    "unknown": "unknown",
}


def tier_of(level: int) -> Tier:
    for lowest, tier, _ in _LADDER:
        if level >= lowest:
            return tier
    return "none"


def level_symbol(level: int) -> str:
    for lowest, _, symbol in _LADDER:
        if level >= lowest:
            return symbol
    return _NO_JUDGEMENT_SYMBOL


def ellipsis_end(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells with ``…`` at the end when it does not fit."""
    if width <= 0:
        return ""
    if cell_len(text) <= width:
        return text
    return set_cell_size(text, width - 1) + "…"


def ellipsis_middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells by taking out its middle (``coretemp_Pack…id_0_temp_c``)."""
    if width <= 0:
        return ""
    if cell_len(text) <= width:
        return text
    if width < 6:
        return ellipsis_end(text, width)
    tail = (width - 1) // 2
    head = width - 1 - tail
    return (
        set_cell_size(text, head) + "…" + text[-tail:] if cell_len(text[-tail:]) == tail else ellipsis_end(text, width)
    )


@dataclass(frozen=True, slots=True)
class Columns:
    """Cell widths of one tree line (with one space between columns and one at the left edge)."""

    width: int
    name: int
    level: int
    value: int
    age: int


def columns_for(width: int, name_needed: int) -> Columns:
    """The widths for a terminal ``width`` cells wide whose longest indented name needs ``name_needed``."""
    width = max(width, 20)
    level = LEVEL_WIDTH if width >= 60 else 1
    age = AGE_WIDTH
    available = width - level - age - 4  # a left margin and three gaps
    share = max(MIN_NAME, int(width * NAME_SHARE))
    name = max(MIN_NAME, min(name_needed, share))
    name = max(1, min(name, available - MIN_VALUE))
    return Columns(width, name, level, max(1, available - name), age)


#: Before the name of a point whose alarm waits for an acknowledgement (where a parent has its twisty).
UNACKED_MARK: Final = "!"


def _twisty(row: Row, unacked: bool = False) -> str:
    if row.kind is RowKind.GROUP:
        return "▸ "
    if row.expandable:
        return "▾ " if row.expanded else "▸ "
    return f"{UNACKED_MARK} " if unacked else "  "


def _label(row: Row, model: ViewModel) -> str:
    if row.kind is RowKind.GROUP:
        return f"({len(row.members)} ok)" if not model.lost else f"({len(row.members)} unknown)"
    return row.name


def summary_text(counts: Counter[int], lost: bool, label: dict[int, str] | None = None) -> str:
    """A collapsed subtree in a few words: ``35 ok``, ``1 red, 2 orange, 32 ok``; ``35 unknown`` when lost."""
    total = sum(counts.values())
    if lost:
        return f"{total} unknown"
    bad: Counter[Tier] = Counter()
    ok = 0
    for level, count in counts.items():
        if level >= PROBLEM_LEVEL:
            bad[tier_of(level)] += count
        else:
            ok += count
    parts = [f"{bad[tier]} {_TIER_WORDS[tier]}" for tier in ("critical", "stale", "red", "orange") if bad.get(tier)]
    if ok or not parts:
        parts.append(f"{ok} ok")
    return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Cells:
    """The texts of one tree line, each already fitted to its column, and its colour tier."""

    name: str
    level: str
    value: str
    age: str
    tier: Tier
    problem: bool


def cells_for(row: Row, model: ViewModel, columns: Columns, now: float) -> Cells:
    """One row's cells at hub time ``now`` (seconds; the age column is the age at the hub)."""
    lost = model.lost
    entry = model.entry(row.path) if row.kind is not RowKind.GROUP else None
    alarm = entry.extras.alarm if entry is not None else None
    # Waits for a person: unacked and not shelved (a shelf silences it, as attention says); lost: unknown.
    unacked = (
        not lost
        and alarm is not None
        and alarm.unacked
        and alarm.shelf_id is None
        and (entry is None or entry.extras.shelf_id is None)
    )
    name = ellipsis_middle("  " * row.depth + _twisty(row, unacked) + _label(row, model), columns.name)
    if row.kind is RowKind.GROUP:
        members = [model.entry(path) for path in row.members]
        worst = max((entry.level for entry in members if entry is not None), default=0)
        tier: Tier = "unknown" if lost else tier_of(worst)
        symbol = UNKNOWN_SYMBOL if lost else level_symbol(worst)
        word = UNKNOWN_WORD if lost else model.label(worst)
        value = ", ".join(path.rpartition("/")[2] for path in row.members)
        return Cells(
            name, _level_cell(symbol, word, columns.level), ellipsis_end(value, columns.value), "", tier, False
        )
    if entry is None:  # removed since the rows were built: the next build drops it
        return Cells(name, "", "", "", "none", False)
    # Views colour by attention once the hub sends it (an acknowledged RED is no longer loud).
    shown_level = entry.attention if entry.extras.attention is not None else entry.level
    tier = "unknown" if lost else tier_of(shown_level)
    symbol = UNKNOWN_SYMBOL if lost else level_symbol(entry.level)
    word = UNKNOWN_WORD if lost else (entry.node.alertstr or model.label(entry.level))
    if row.kind is RowKind.PARENT:
        value = (
            ""
            if row.expanded
            else f"{level_symbol(entry.level) if not lost else UNKNOWN_SYMBOL} "
            + summary_text(model.counts_below(row.path), lost)
        )
        if not row.expandable:
            value = ""
    else:
        value = format_point(row.name, entry.node.value)
    # A parent's own receipt time says nothing (it changes with its worst child): no age for it.
    received = entry.node.received_at_s if entry.is_point else None
    age = format_age_short(None if received is None else now - received)
    return Cells(
        name,
        _level_cell(symbol, word, columns.level),
        ellipsis_end(value, columns.value),
        age,
        tier,
        not lost and entry.attention >= PROBLEM_LEVEL,
    )


def _level_cell(symbol: str, word: str, width: int) -> str:
    if width <= 2:
        return symbol
    return ellipsis_end(f"{symbol} {word}" if word else symbol, width)


def header_cells(columns: Columns) -> Cells:
    return Cells(
        ellipsis_end("Name", columns.name), ellipsis_end("Level", columns.level), "Value", "age", "none", False
    )


def line_text(cells: Cells, columns: Columns) -> str:
    """The cells as one line of exactly ``columns.width`` cells (plain text; the widget colours it)."""
    parts = (
        " ",
        set_cell_size(cells.name, columns.name),
        " ",
        set_cell_size(cells.level, columns.level),
        " ",
        set_cell_size(cells.value, columns.value),
        " ",
        set_cell_size(cells.age.rjust(columns.age), columns.age),
    )
    return set_cell_size("".join(parts), columns.width)


def counts_text(counts: Counter[int], lost: bool, width: int) -> str:
    """The status bar's counts of points by level, worst first, as long as ``width`` allows."""
    total = sum(counts.values())
    if lost:
        return f"{UNKNOWN_SYMBOL} {total} unknown"
    by_tier: Counter[Tier] = Counter()
    for level, count in counts.items():
        by_tier[tier_of(level)] += count
    order: Sequence[Tier] = ("critical", "stale", "red", "orange")
    long_parts = [f"{by_tier[tier]} {_TIER_WORDS[tier]}" for tier in order if by_tier.get(tier)]
    ok = by_tier.get("green", 0) + by_tier.get("none", 0)
    long_parts.append(f"{ok} ok")
    long_form = " ".join(
        f"{symbol} {part}"
        for symbol, part in zip(
            [level_symbol(_lowest(tier)) for tier in order if by_tier.get(tier)] + ["✓"], long_parts, strict=True
        )
    )
    if cell_len(long_form) <= width:
        return long_form
    short = [f"{level_symbol(_lowest(tier))}{by_tier[tier]}" for tier in order if by_tier.get(tier)] + [f"✓{ok}"]
    return ellipsis_end(" ".join(short), width)


def _lowest(tier: Tier) -> int:
    return next(lowest for lowest, each, _ in _LADDER if each == tier)


def status_text(
    endpoint: str,
    state: ConnectionState,
    counts: Counter[int],
    unacked: int | None,
    last_update: float | None,
    width: int,
    *,
    zone: dt.tzinfo | None = None,
) -> str:
    """The status bar: the hub, its state, the counts (and unacked alarms when known), the last update."""
    lost = state == "hub lost"
    when = "no update yet"
    if last_update is not None:
        moment = (
            dt.datetime.fromtimestamp(last_update, tz=zone)
            if zone is not None
            else dt.datetime.fromtimestamp(last_update).astimezone()
        )
        when = f"updated {moment:%H:%M:%S}"
    alarms = "" if unacked is None or lost else f" │ {unacked} unacked"
    fixed = f" {state} │ " + " │ " + alarms + f" │ {when}"
    room = max(10, width - cell_len(fixed) - cell_len(endpoint) - 1)
    counts_part = counts_text(counts, lost, room) if state != "waiting" or counts else "-"
    text = f" {endpoint} │ {state} │ {counts_part}{alarms} │ {when}"
    if cell_len(text) > width:  # narrow: the endpoint gives way first, then the time
        text = f" {state} │ {counts_part}{alarms} │ {when.removeprefix('updated ')}"
    return ellipsis_end(text, width)


def title_text(hub: str, prefix: str, model: ViewModel, state: ConnectionState, reason: str, width: int) -> str:
    """The top line: what is watched and its overall state, or why nothing can be vouched for."""
    where = f"{hub} {prefix}" if prefix else hub
    if state == "hub lost":
        text = f" HUB LOST: no heartbeat from {where}; every level is UNKNOWN until it is back (retrying)"
    elif state == "waiting":
        text = f" waiting for the hub at {hub}: {reason} (retrying; q quits)" if reason else f" waiting for {hub}"
    else:
        worst = max(model.point_counts(), default=0)
        view = {"attention": "attention tree", "full": "full tree"}[model.mode]
        shown = f"filter {model.filter_text!r}" if model.filter_text is not None else view
        word = model.label(worst)
        overall = f"{level_symbol(worst)} {word}" if word else level_symbol(worst)
        text = f" gsmon watch {prefix or '(everything)'} │ {overall} │ {len(model)} nodes │ {shown} │ ? keys"
    return ellipsis_end(text, width)


def _when(wall_s: float | None, now: float) -> str:
    """``2026-12-01 22:49:20 CET (3m 2s ago)``; ``now`` and ``wall_s`` are wall seconds."""
    if wall_s is None:
        return "unknown"
    moment = dt.datetime.fromtimestamp(wall_s).astimezone()
    zone = moment.tzname() or moment.strftime("%z")
    return f"{moment:%Y-%m-%d %H:%M:%S} {zone} ({format_duration(max(0.0, now - wall_s))} ago)"


def _level_words(model: ViewModel, level: int | None) -> str:
    if level is None:
        return "unknown"
    word = model.label(level)
    if word:
        return f"{level_symbol(level)} {word} ({level})"
    return f"{level_symbol(level)} no judgement (0)" if level == 0 else f"{level_symbol(level)} level {level}"


def detail_lines(row: Row | None, model: ViewModel, now: float) -> list[tuple[str, str]]:
    """The detail pane of the selected row, as (label, text) lines; a text may hold newlines
    (the pane wraps and scrolls, and never cuts anything)."""
    if row is None:
        return [("", "nothing selected")]
    if row.kind is RowKind.GROUP:
        lines: list[tuple[str, str]] = [("Group", f"{len(row.members)} healthy points of {row.path}")]
        for path in row.members:
            entry = model.entry(path)
            if entry is not None:
                value = format_point(entry.name, entry.node.value)
                shown = UNKNOWN_WORD if model.lost else (entry.node.alertstr or model.label(entry.level) or "-")
                lines.append(("", f"{entry.name}  {value}  {shown}"))
        return lines
    entry = model.entry(row.path)
    if entry is None:
        return [("Path", row.path), ("", "(removed)")]
    node = entry.node
    extras = entry.extras
    lines = [("Path", node.path)]
    if entry.is_point:
        lines.append(("Value", format_point_full(entry.name, node.value)))
    else:
        lines.append(("Points below", summary_text(model.counts_below(node.path), False)))
    if model.lost:
        lines.append(
            (
                "Level",
                f"{UNKNOWN_SYMBOL} {UNKNOWN_WORD}: the hub is lost (last known: {_level_words(model, entry.level)})",
            )
        )
    else:
        lines.append(("Level", _level_words(model, entry.level) + (" (stale)" if node.stale else "")))
    if extras.raw_alert is not None:
        lines.append(("Raw level", _level_words(model, extras.raw_alert)))
    elif entry.is_point:
        lines.append(("Raw level", "same (no debounce on this point)"))
    if extras.attention is not None:
        lines.append(("Attention", _level_words(model, extras.attention) if extras.attention else "none"))
    lines.append(("Since", _when(extras.since, now) if extras.since is not None else "not sent by this hub"))
    if node.agent:
        lines.append(("Agent", node.agent))
    if node.dt_s is not None:
        lines.append(("Poll interval", format_duration(node.dt_s)))
    received = node.received_at_s
    lines.append(("Age at the hub", "unknown" if received is None else format_duration(max(0.0, now - received))))
    if entry.is_point:
        lines.append(("Polled at", _when(node.polled_at_s, now)))
    alarm = extras.alarm
    if alarm is not None:
        text = f"#{alarm.id} {alarm.state.replace('_', ' ')}"
        if alarm.level is not None:
            text += f", {_level_words(model, alarm.level)}"
        if alarm.max_level is not None and alarm.max_level != alarm.level:
            text += f", worst {_level_words(model, alarm.max_level)}"
        if alarm.latch:
            text += ", latched"
        if alarm.reason:
            text += f"\nreason: {alarm.reason}"
        if alarm.raised_at is not None:
            text += f"\nraised {_when(alarm.raised_at, now)}"
        if alarm.rtn_at is not None:
            text += f"\nback to normal {_when(alarm.rtn_at, now)}"
        if alarm.acked_by or alarm.acked_at is not None:
            text += f"\nacknowledged by {alarm.acked_by or 'someone'} {_when(alarm.acked_at, now)}"
            if alarm.ack_comment:
                text += f": {alarm.ack_comment}"
        lines.append(("Alarm", text))
    elif model.extras_known and entry.is_point:
        lines.append(("Alarm", "none"))
    shelf = extras.shelf_id if extras.shelf_id is not None else (alarm.shelf_id if alarm is not None else None)
    if shelf is not None:
        lines.append(("Shelf", f"shelved by shelf #{shelf}"))
    if extras.shelved_below:
        lines.append(("Shelved below", str(extras.shelved_below)))
    if extras.unacked_below is not None and not entry.is_point:
        lines.append(("Unacked below", str(extras.unacked_below)))
    if extras.pending is not None:
        lines.append(
            ("Pending", f"{_level_words(model, extras.pending.level)} since {_when(extras.pending.since, now)}")
        )
    if extras.flapping is not None:
        changes = "" if extras.flapping.changes is None else f", {extras.flapping.changes} changes"
        lines.append(("Flapping", f"since {_when(extras.flapping.since, now)}{changes}"))
    return lines
