"""The operator's commands: ``gsmon alarms``, ``ack``, ``unack``, ``clear``, ``shelve``, ``shelves``, ``unshelve``,
``log``.

::

    gsmon alarms [PREFIX] [--unacked | --all] [--json]      what needs attention (not cleared; shelved too)
    gsmon ack PREFIX [-m TEXT] [--json]                      list the unacked alarms under PREFIX, ack those ids
    gsmon ack --id N [N ...] [-m TEXT] [--json]              ack exactly these alarms
    gsmon unack ID [ID ...] [-m TEXT] [--json]               take acknowledgements back
    gsmon clear ID [ID ...] [-m TEXT] [--json]               an admin clears alarms whatever their state
    gsmon shelve PREFIX (--for 2h | --until 18:00 | --until-normal [--for 4h] | --from T (--to T | --for D))
                 -m TEXT [--json]                            maintenance: shown, but no attention, no notifications
    gsmon shelves [PREFIX] [--all] [--json]                  the shelves in force or scheduled (--all: ended too)
    gsmon unshelve ID [-m TEXT]                              end a shelf now
    gsmon log [PREFIX] [--since 1h | 18:00 | 2026-12-02T08:00Z | all] [--follow] [--limit N] [--json]

Each asks the hub over its query socket (COMMAND / COMMAND_RESULT; the
client side is :mod:`gsmon.common.alarm_commands`). The hub, its keys and the
user name are found exactly as for ``gsmon get`` and ``gsmon forget``:
``--hub``, ``--key``/``--hub-key``, else ``GSMON_HUB``, ``GSMON_KEY``,
``GSMON_HUB_KEY``, else a client file (:mod:`gsmon.common.client_settings`);
the user name sent with each command is the login name (the hub records it
beside the key's name).

At a central hub (hub-of-hubs), ``gsmon alarms GS1`` (a site's mount, or a
prefix below it) lists that site's alarms, asked of the site hub; (1.3) a
prefix above the mounts (no prefix included) lists the whole network: the
central hub's own alarms and every live site's, each under its full path
with the id the central hub acks it by, one list; the text output names the
site hubs included, and each site that could not be asked, with the reason
(on stderr with ``--json``, whose output stays the array). Such a site's
alarms as the central hub last knew them are listed after the current ones,
their STATE marked ``last known 07:12`` (local time the centre last heard the
site), in ``--json`` with ``"last_known": true`` and ``as_of``; ``gsmon ack
PREFIX`` leaves them out (the site is not reached: an ack by their ids is
refused ``unreachable``).

Acknowledging by ids only: ``gsmon ack PREFIX`` first lists the unacked
alarms under PREFIX, prints them, and sends exactly their ids (with the
level each was listed at); the hub acks only those, so an alarm raised (or
one that rose) after the listing is never acknowledged by it. (1.3) At a
central hub the ids of several sites go as one ack per site (the hub says
how they group); a site that cannot be reached has its ids skipped, with
the reason, and the others are acknowledged.

Times people type: ``--for``/``--since`` durations ``2h``, ``90m``,
``1h30m``, ``1d``, ``45s``; ``--until``/``--from``/``--to``/``--since`` times
``18:00`` (the next one for a shelf, the last one for ``--since``), with a
zone ``18:00Z``, ``18:00+02:00``, ``'18:00 Europe/Oslo'``, or ISO 8601
``2026-12-02T18:00`` (local time), ``2026-12-02T17:00Z``. ``gsmon log``
without ``--since`` shows the last 24 hours; ``--since all`` the whole journal.

Output: text for people, with levels as words, values with their units and
times in local time with the zone and how long ago; ``--json`` exact values
with times in ISO 8601 UTC: ``alarms`` and ``shelves`` print one JSON array
of objects with the fields of issue 13 §4 (alarm: ``id``, ``path``,
``agent``, ``reason``, ``state``, ``level``, ``max_level``, ``latch``,
``raised_at``, ``rtn_at``, ``acked``, ``acked_by``, ``acked_at``,
``ack_comment``, ``shelved``, ``shelf_id``, then ``level_str``,
``max_level_str``, ``acked_user``, ``acked_key``, ``value``; ``acked_by`` is
the person who acknowledged (the user the client forwarded: the web page's
user, the terminal's login; else the key) and ``acked_key`` the key the
command came through (the web bridge's, a central hub's route); shelf: ``id``, ``prefix``,
``mode``, ``comment``, ``by``, ``created_at``, ``ends_at``, then
``starts_at``, ``user``, ``ended_at``, ``end_reason``); ``ack``/``unack``
print ``{"acked": [ids], "skipped": [{"id", "reason"}], "listed": [ids]}``;
``clear`` prints ``{"cleared": [ids], "skipped": [{"id", "reason"}]}``;
``shelve`` the new shelf's object; ``log`` one JSON object per line (JSON
lines, so ``--follow`` streams): ``time``, ``path``, ``kind``, ``old``,
``new`` (level codes), ``value``, ``agent``, ``user``, ``comment``,
``alarm_id``, then ``id`` (the journal cursor), ``hub_time``, ``by``.

``gsmon log --follow`` reads the journal by its cursor (entries with ids
above the last one printed), so it prints every entry exactly once, also
across a hub restart (the ids are persistent), until Ctrl-C or SIGTERM. A
hub that stops answering is said once on stderr and asked again every
second.

Exit statuses (errors end the command in :func:`gsmon.common.cli.main`, one
line on stderr, by the error base :mod:`gsmon.common.errors`):

====  =====================================================================
0     done; also: nothing to acknowledge, an empty list, ``log --follow``
      stopped by Ctrl-C or SIGTERM
1     the hub refused (its reason is shown: a viewer key, an unknown id, a
      shelf too long for an operator, a ``clear`` by a key that is not an
      admin's...), did not answer, or answered something this client does
      not understand; ``clear`` also when an id was not cleared (unknown,
      already cleared: each is said)
2     bad usage: a flag, a time, a prefix, a missing comment, the client
      settings or key files
130   a one-shot command interrupted by Ctrl-C
====  =====================================================================
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from gsmon.common import names
from gsmon.common.alarm_commands import (
    ALARM_STATES,
    JOURNAL_PAGE,
    OPEN_STATES,
    UNACKED_STATES,
    AckOutcome,
    AlarmRecord,
    JournalRecord,
    OperatorClient,
    ShelfRecord,
    check_comment,
    hub_sender,
    parse_duration,
    parse_moment,
)
from gsmon.common.alerts import alertstr_for
from gsmon.common.client import HubUnavailableError
from gsmon.common.errors import UsageError
from gsmon.common.units import format_duration, format_point, one_line

__all__ = [
    "ALARM_COLUMNS",
    "COMMAND_SUMMARIES",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "add_parser",
    "add_parsers",
    "alarm_cells",
    "alarm_lines",
    "format_when",
    "journal_line",
    "last_known_mark",
    "shelf_lines",
    "sorted_alarms",
]

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2
DEFAULT_LOG_SINCE_S: Final = 86_400.0
FOLLOW_POLL_S: Final = 0.5
RETRY_S: Final = 1.0

COMMAND_SUMMARIES: Final = {
    "alarms": "list the alarms that are not cleared (shelved ones too), or all of them",
    "ack": "acknowledge the unacked alarms under a prefix (exactly those listed), or given ids",
    "unack": "take acknowledgements back: the alarms need attention again",
    "clear": "clear alarms whatever their state, acknowledged or not (an administrator's command)",
    "shelve": "shelve a subtree for maintenance: still shown, but no attention and no notifications",
    "shelves": "list the shelves in force or scheduled",
    "unshelve": "end a shelf now",
    "log": "the hub's journal: every level change, alarm and operator action, or follow it live",
}


# -- text formatting (pure) -----------------------------------------------------------------------


def format_when(wall: float | None, now: float, zone: dt.tzinfo | None = None) -> str:
    """``2026-12-02 04:12:03 CET (5m 3s ago)`` (``in 2h 0m`` for the future); ``-`` when unknown."""
    if wall is None:
        return "-"
    moment = dt.datetime.fromtimestamp(wall, zone) if zone is not None else dt.datetime.fromtimestamp(wall).astimezone()
    text = moment.strftime("%Y-%m-%d %H:%M:%S") + " " + (moment.tzname() or moment.strftime("%z"))
    delta = now - wall
    if abs(delta) < 1:
        return f"{text} (now)"
    span = format_duration(round(abs(delta)))
    return f"{text} ({span} ago)" if delta > 0 else f"{text} (in {span})"


_STATE_WORDS: Final = {
    "active_unacked": "UNACKED",
    "active_acked": "acked",
    "rtn_unacked": "back, unacked",
    "cleared": "cleared",
}


def _level(code: int | None, label: str | None = None) -> str:
    if code is None:
        return "-"
    return label or alertstr_for(code) or str(code)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    rows = [list(row) for row in rows]
    widths = [max([len(header[i])] + [len(row[i]) for row in rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells)).rstrip()

    return [line(header), *(line(row) for row in rows)]


def last_known_mark(alarm: AlarmRecord, zone: dt.tzinfo | None = None) -> str:
    """(1.3) ``last known 07:12``: a site's alarm as the central hub last knew it (its local time then)."""
    if alarm.as_of is None:
        return "last known"
    moment = dt.datetime.fromtimestamp(alarm.as_of, dt.UTC).astimezone(zone)  # (zone None: the local one)
    return f"last known {moment:%H:%M}"


ALARM_COLUMNS: Final = ("ID", "STATE", "LEVEL", "RAISED", "PATH", "VALUE", "NOTE")


def sorted_alarms(alarms: Iterable[AlarmRecord]) -> list[AlarmRecord]:
    """Worst unacked first; a site's last-known ones (which cannot be acted on now) after the current ones."""
    return sorted(
        alarms,
        key=lambda a: (a.last_known, not a.unacked, a.state == "cleared", -(a.max_level or a.level), a.id),
    )


def alarm_cells(alarm: AlarmRecord, now: float, zone: dt.tzinfo | None = None) -> list[str]:
    """One alarm as the cells of :data:`ALARM_COLUMNS`, in words and units (``gsmon alarms``, and the
    alarm list of ``gsmon watch``, say an alarm the same way)."""
    level = alarm.level_label
    if alarm.max_level is not None and alarm.max_level != alarm.level:
        level += f" (max {alarm.max_level_label})"
    state = _STATE_WORDS.get(alarm.state, alarm.state) + (f", shelf {alarm.shelf_id}" if alarm.shelved else "")
    if alarm.last_known:  # never mistaken for current: the site was not reached
        state = f"{last_known_mark(alarm, zone)}: {state}"
    name = alarm.path.rpartition("/")[2]
    value = "" if alarm.value is None else format_point(name, alarm.value)
    notes = []
    if alarm.reason and alarm.reason != "level":
        notes.append(alarm.reason)
    if alarm.acked_at is not None or alarm.acked_by:
        note = f"acked by {alarm.who_acked or '?'} {format_when(alarm.acked_at, now, zone)}"
        notes.append(note + (f": {one_line(alarm.ack_comment)}" if alarm.ack_comment else ""))
    if alarm.rtn_at is not None:
        notes.append(f"back to normal {format_when(alarm.rtn_at, now, zone)}")
    return [str(alarm.id), state, level, format_when(alarm.raised_at, now, zone), alarm.path, value, "; ".join(notes)]


def alarm_lines(alarms: Sequence[AlarmRecord], now: float, zone: dt.tzinfo | None = None) -> list[str]:
    """The ``gsmon alarms`` table: one line per alarm in :func:`sorted_alarms` order."""
    return _table(ALARM_COLUMNS, (alarm_cells(alarm, now, zone) for alarm in sorted_alarms(alarms)))


def _shelf_end(shelf: ShelfRecord, now: float, zone: dt.tzinfo | None) -> str:
    if shelf.ended_at is not None:
        return f"ended {format_when(shelf.ended_at, now, zone)} ({shelf.end_reason or 'ended'})"
    if shelf.mode == "until_normal":
        cap = "" if shelf.ends_at is None else f", at most until {format_when(shelf.ends_at, now, zone)}"
        return "until back to normal" + cap
    return f"until {format_when(shelf.ends_at, now, zone)}"


def shelf_lines(shelves: Sequence[ShelfRecord], now: float, zone: dt.tzinfo | None = None) -> list[str]:
    """The ``gsmon shelves`` table."""
    rows = []
    for shelf in shelves:
        starts = (
            ""
            if shelf.starts_at is None or shelf.starts_at <= now
            else f"from {format_when(shelf.starts_at, now, zone)} "
        )
        who = shelf.by if not shelf.user or shelf.user == shelf.by else f"{shelf.user} ({shelf.by})"
        rows.append(
            [
                str(shelf.id),
                shelf.prefix or "/",
                shelf.mode,
                starts + _shelf_end(shelf, now, zone),
                who or "-",
                one_line(shelf.comment),
            ]
        )
    return _table(("ID", "PREFIX", "MODE", "WHEN", "BY", "COMMENT"), rows)


def shelf_summary(shelf: ShelfRecord, now: float, zone: dt.tzinfo | None = None) -> str:
    """One line for a new shelf: ``shelf 7 on GS1/Antenna2 (timed), until ... (in 2h 0m): comment``."""
    starts = (
        "" if shelf.starts_at is None or shelf.starts_at <= now else f"from {format_when(shelf.starts_at, now, zone)} "
    )
    where = f"shelf {shelf.id} on {shelf.prefix or '/'} ({shelf.mode})"
    return f"{where}, {starts}{_shelf_end(shelf, now, zone)}: {one_line(shelf.comment)}"


def journal_line(entry: JournalRecord, zone: dt.tzinfo | None = None) -> str:
    """One journal entry on one line: time (local, with the zone), kind, path, change, value, who, comment."""
    moment = (
        dt.datetime.fromtimestamp(entry.time, zone)
        if zone is not None
        else dt.datetime.fromtimestamp(entry.time).astimezone()
    )
    stamp = (
        moment.strftime("%Y-%m-%d %H:%M:%S.")
        + f"{moment.microsecond // 1000:03d} "
        + (moment.tzname() or moment.strftime("%z"))
    )
    parts = [stamp, entry.kind.ljust(16), entry.path or "/"]
    if entry.old is not None or entry.new is not None:
        parts.append(f"{_level(entry.old)} -> {_level(entry.new)}")
    if entry.value is not None:
        parts.append("value " + format_point(entry.path.rpartition("/")[2], entry.value))
    if entry.alarm_id is not None:
        parts.append(f"alarm {entry.alarm_id}")
    who = (
        entry.user
        if not entry.by or entry.by == entry.user
        else (f"{entry.user} ({entry.by})" if entry.user else entry.by)
    )
    if who:
        parts.append(f"by {who}")
    if entry.comment:
        parts.append(f"-- {one_line(entry.comment)}")
    if entry.replayed:
        parts.append("(replayed)")
    return "  ".join(parts)


# -- parsing --------------------------------------------------------------------------------------


def _prefix(text: str) -> str:
    """A prefix as typed (a trailing / kept: only the subtree below), checked segment by segment."""
    if text in ("", "/"):
        return ""
    try:
        names.check_path(text[:-1] if text.endswith("/") else text, "prefix")
    except ValueError as error:
        raise UsageError(f"{error} (a prefix names whole path segments, e.g. GS1/Antenna2)") from None
    return text


def _moment(text: str, now: float, direction: str, flag: str) -> float:
    try:
        return parse_moment(text, now, direction="past" if direction == "past" else "future")
    except ValueError as error:
        raise UsageError(f"{flag}: {error}") from None


def shelve_request(args: argparse.Namespace, now: float) -> dict[str, Any]:
    """The shelve command's arguments from the flags (pure but for ``now``); raises :class:`UsageError`."""
    duration_s = None
    if args.for_ is not None:
        try:
            duration_s = parse_duration(args.for_)
        except ValueError as error:
            raise UsageError(f"--for: {error}") from None
    until = None if args.until is None else _moment(args.until, now, "future", "--until")
    if args.from_ is not None or args.to is not None:
        if args.until_normal or args.until is not None:
            raise UsageError("--from/--to is a scheduled window: not with --until or --until-normal")
        if args.from_ is None:
            raise UsageError("--to needs --from (a window: --from 18:00 --to 20:00, or --from T --for 2h)")
        starts_at = _moment(args.from_, now, "future", "--from")
        if (args.to is None) == (duration_s is None):
            raise UsageError("--from needs one end: --to T or --for DURATION")
        ends_at = starts_at + duration_s if duration_s is not None else _moment(args.to, now, "future", "--to")
        if args.to is not None and ends_at <= starts_at and ":" in args.to and "T" not in args.to:
            ends_at = _moment(args.to, starts_at, "future", "--to")  # 22:00 to 02:00: the next 02:00 after the start
        if ends_at <= starts_at:
            raise UsageError("--to must be after --from")
        return {"mode": "scheduled", "starts_at": starts_at, "ends_at": ends_at}
    if args.until_normal:
        if duration_s is not None and until is not None:
            raise UsageError("--until-normal takes one cap: --for or --until, not both")
        request: dict[str, Any] = {"mode": "until_normal"}
        if duration_s is not None:
            request["duration_s"] = duration_s
        if until is not None:
            request["ends_at"] = until
        return request
    if duration_s is not None and until is not None:
        raise UsageError("give --for or --until, not both")
    if duration_s is not None:
        return {"mode": "timed", "duration_s": duration_s}
    if until is not None:
        return {"mode": "timed", "ends_at": until}
    raise UsageError("say how long: --for 2h, --until 18:00, --until-normal, or --from T --to T")


def log_since(text: str | None, now: float) -> float | None:
    """``--since``: None for ``all``, else wall seconds (default: 24 hours ago)."""
    if text is None:
        return now - DEFAULT_LOG_SINCE_S
    if text.strip().lower() == "all":
        return None
    return _moment(text, now, "past", "--since")


# -- argparse -------------------------------------------------------------------------------------


def _client_flags(parser: argparse.ArgumentParser) -> None:
    from gsmon.common.views import add_client_flags

    add_client_flags(parser)


def _json_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON (exact values, ISO 8601 UTC times)")


def _comment_flag(parser: argparse.ArgumentParser, required: bool) -> None:
    need = "required" if required else "optional"
    parser.add_argument(
        "-m",
        "--comment",
        dest="comment",
        default=None,
        metavar="TEXT",
        help=f"why ({need}; at most 500 characters; journaled with your name)",
    )


def add_parser(subparsers: Any, name: str, summary: str | None = None) -> None:
    """Register the subcommand ``name`` (one of :data:`COMMAND_SUMMARIES`) on ``gsmon``'s subparsers."""
    summary = summary or COMMAND_SUMMARIES[name]
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=summary + ".",
        epilog="Exit status: 0 done, 1 refused by the hub or no answer (the message says why), 2 bad usage.",
    )
    if name == "alarms":
        parser.add_argument("prefix", nargs="?", default="", help="path prefix, e.g. GS1/Antenna2 (default: all)")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--unacked", action="store_true", help="only the alarms that need an acknowledgement")
        which.add_argument("--all", action="store_true", help="cleared alarms too")
        _json_flag(parser, "the alarms")
        parser.set_defaults(handler=run_alarms)
    elif name == "ack":
        parser.add_argument("prefix", nargs="?", default=None, help="acknowledge the unacked alarms under this prefix")
        parser.add_argument(
            "--id",
            dest="ids",
            type=int,
            nargs="+",
            action="extend",
            metavar="N",
            help="acknowledge exactly these alarm ids instead",
        )
        _comment_flag(parser, required=False)
        _json_flag(parser, "the acked and skipped ids")
        parser.set_defaults(handler=run_ack)
    elif name == "unack":
        parser.add_argument("ids", type=int, nargs="+", metavar="ID", help="alarm ids")
        _comment_flag(parser, required=False)
        _json_flag(parser, "the unacked and skipped ids")
        parser.set_defaults(handler=run_unack)
    elif name == "clear":
        parser.add_argument("ids", type=int, nargs="+", metavar="ID", help="alarm ids (gsmon alarms lists them)")
        _comment_flag(parser, required=False)
        _json_flag(parser, "the cleared and skipped ids")
        parser.set_defaults(handler=run_clear)
    elif name == "shelve":
        parser.add_argument("prefix", help="the subtree to shelve, e.g. GS1/Antenna2")
        parser.add_argument("--for", dest="for_", metavar="DURATION", help="for this long: 2h, 30m, 1h30m")
        parser.add_argument("--until", metavar="TIME", help="until then: 18:00, 18:00Z, 2026-12-02T18:00+01:00")
        parser.add_argument(
            "--until-normal",
            action="store_true",
            help="until every alarm it covers is back to normal (capped; --for/--until set the cap)",
        )
        parser.add_argument(
            "--from", dest="from_", metavar="TIME", help="a scheduled window's start (with --to or --for)"
        )
        parser.add_argument("--to", metavar="TIME", help="a scheduled window's end")
        _comment_flag(parser, required=True)
        _json_flag(parser, "the new shelf")
        parser.set_defaults(handler=run_shelve)
    elif name == "shelves":
        parser.add_argument("prefix", nargs="?", default="", help="only the shelves under this prefix")
        parser.add_argument("--all", action="store_true", help="ended shelves too (the ones the hub keeps)")
        _json_flag(parser, "the shelves")
        parser.set_defaults(handler=run_shelves)
    elif name == "unshelve":
        parser.add_argument("id", type=int, metavar="ID", help="the shelf's id (gsmon shelves lists them)")
        _comment_flag(parser, required=False)
        parser.set_defaults(handler=run_unshelve)
    elif name == "log":
        parser.add_argument("prefix", nargs="?", default="", help="path prefix (default: everything)")
        parser.add_argument(
            "--since",
            metavar="WHEN",
            default=None,
            help="from then: 1h, 30m, 2d, 18:00, 2026-12-02T08:00Z, or all (default: the last 24 hours)",
        )
        parser.add_argument("--follow", "-f", action="store_true", help="then keep printing new entries as they come")
        parser.add_argument(
            "--limit", type=int, default=None, metavar="N", help="at most N entries (not with --follow)"
        )
        _json_flag(parser, "each entry (JSON lines)")
        parser.set_defaults(handler=run_log)
    else:  # pragma: no cover - a programming error
        raise ValueError(f"unknown operator command {name!r}")
    _client_flags(parser)


def add_parsers(subparsers: Any) -> None:
    """Register every operator command."""
    for name, summary in COMMAND_SUMMARIES.items():
        add_parser(subparsers, name, summary)


# -- running --------------------------------------------------------------------------------------


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return None


def _client(args: argparse.Namespace) -> OperatorClient:
    """The client from the flags, variables and client files; raises ConfigError/KeyFileError/ValueError."""
    from gsmon.common.views import client_settings

    if not args.timeout_s > 0:
        raise UsageError(f"--timeout-s must be positive, got {args.timeout_s}")
    settings, curve = client_settings(args)
    return OperatorClient(hub_sender(settings.hub, curve, timeout_s=args.timeout_s, user=_user()))


def _err(prog: str, message: str) -> None:
    print(f"{prog}: {one_line(message)}", file=sys.stderr)


def _dump(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write("\n")


def _where(prefix: str) -> str:
    return f"under {prefix}" if prefix else "in the whole tree"


def run_alarms(args: argparse.Namespace) -> int:
    prefix = _prefix(args.prefix)
    client = _client(args)
    states = UNACKED_STATES if args.unacked else ALARM_STATES if args.all else OPEN_STATES
    alarms, listing = client.alarm_listing(prefix, states)
    if args.json:
        _dump([alarm.to_json() for alarm in alarms])
    elif alarms:
        print("\n".join(alarm_lines(alarms, time.time())))
    else:
        which = "unacked alarms" if args.unacked else "alarms" if args.all else "open alarms"
        print(f"no {which} {_where(prefix)}")
    if listing.merged and not args.json:
        shown = ", ".join(listing.merged[:5]) + (
            f" and {len(listing.merged) - 5} more" if len(listing.merged) > 5 else ""
        )
        print(f"with the alarms of the site hubs {shown}")
    # (1.3) A site the central hub could not ask: said, never silently missing (stderr beside JSON); its
    # alarms as the centre last knew them are in the list, marked.
    for mount, why in listing.unreached:
        known = sum(1 for alarm in alarms if alarm.last_known and names.path_in_prefix(alarm.path, mount))
        shown = f"its {known} last-known alarm{'s are' if known != 1 else ' is'} listed as such" if known else ""
        print(
            f"{mount}: not reached ({why}); " + (shown or "none of its alarms is known here"),
            file=sys.stderr if args.json else None,
        )
    return EXIT_OK


def _ack_report(verb: str, outcome: AckOutcome, sent: Sequence[int], listed: Sequence[int], as_json: bool) -> int:
    if as_json:
        _dump(
            {
                "acked": list(outcome.done),
                "skipped": [{"id": alarm_id, "reason": reason} for alarm_id, reason in outcome.skipped],
                "listed": list(listed),
            }
        )
        return EXIT_OK
    done = ", ".join(map(str, outcome.done))
    noun = "alarm" if len(outcome.done) == 1 else "alarms"
    print(f"{verb} {len(outcome.done)} of {len(sent)} {noun}" + (f": {done}" if done else ""))
    for alarm_id, reason in outcome.skipped:
        print(f"  skipped {alarm_id}: {one_line(reason)}")
    return EXIT_OK


def run_ack(args: argparse.Namespace) -> int:
    if (args.prefix is None) == (args.ids is None):
        raise UsageError("say what to acknowledge: a PREFIX (its unacked alarms) or --id N ..., not both")
    try:
        comment = check_comment(args.comment or "", required=False) or None
    except ValueError as error:
        raise UsageError(f"-m: {error}") from None
    client = _client(args)
    listed: list[int] = []
    seen: dict[int, int] | None = None
    if args.ids is not None:
        ids = list(dict.fromkeys(args.ids))
    else:
        prefix = _prefix(args.prefix)
        listed_alarms, listing = client.alarm_listing(prefix, UNACKED_STATES)
        # (1.3) A site's last-known alarms are not acked: the site was not reached (said below).
        alarms = [alarm for alarm in listed_alarms if alarm.unacked and not alarm.last_known]
        if not alarms:
            if args.json:
                _dump({"acked": [], "skipped": [], "listed": []})
            else:
                print(f"nothing to acknowledge: no unacked alarms {_where(prefix)}")
            return EXIT_OK
        if not args.json:
            print(f"acknowledging {len(alarms)} unacked alarm{'s' if len(alarms) != 1 else ''} {_where(prefix)}:")
            print("\n".join("  " + line for line in alarm_lines(alarms, time.time())))
        for mount, why in listing.unreached:
            print(f"{mount}: not reached ({why}); its alarms are not acknowledged", file=sys.stderr)
        ids = listed = [alarm.id for alarm in alarms]
        seen = {alarm.id: alarm.max_level if alarm.max_level is not None else alarm.level for alarm in alarms}
    # (At a central hub the ids of several sites go as one ack per site: OperatorClient.ack splits them.)
    outcome = client.ack(ids, comment, seen)
    return _ack_report("acknowledged", outcome, ids, listed, args.json)


def run_unack(args: argparse.Namespace) -> int:
    try:
        comment = check_comment(args.comment or "", required=False) or None
    except ValueError as error:
        raise UsageError(f"-m: {error}") from None
    ids = list(dict.fromkeys(args.ids))
    outcome = _client(args).unack(ids, comment)
    return _ack_report("unacknowledged", outcome, ids, [], args.json)


def run_clear(args: argparse.Namespace) -> int:
    """Admins clear alarms by id; exit 1 when the hub refuses (not an admin) or an id was not cleared."""
    try:
        comment = check_comment(args.comment or "", required=False) or None
    except ValueError as error:
        raise UsageError(f"-m: {error}") from None
    ids = list(dict.fromkeys(args.ids))
    outcome = _client(args).clear(ids, comment)
    if args.json:
        _dump(
            {
                "cleared": list(outcome.done),
                "skipped": [{"id": alarm_id, "reason": reason} for alarm_id, reason in outcome.skipped],
            }
        )
    else:
        done = ", ".join(map(str, outcome.done))
        noun = "alarm" if len(ids) == 1 else "alarms"
        print(f"cleared {len(outcome.done)} of {len(ids)} {noun}" + (f": {done}" if done else ""))
    for alarm_id, reason in outcome.skipped:
        _err("gsmon clear", f"alarm {alarm_id} not cleared: {reason}")
    return EXIT_REFUSED if outcome.skipped or len(outcome.done) < len(ids) else EXIT_OK


def run_shelve(args: argparse.Namespace) -> int:
    prefix = _prefix(args.prefix)
    if not prefix:
        raise UsageError("shelve a subtree, e.g. GS1/Antenna2 (not the whole tree)")
    try:
        comment = check_comment(args.comment or "")
    except ValueError as error:
        raise UsageError(f"-m: {error}") from None
    request = shelve_request(args, time.time())
    client = _client(args)
    mode = request.pop("mode")
    shelf = client.shelve(prefix.rstrip("/"), mode, comment, **request)
    if args.json:
        _dump(shelf.to_json())
    else:
        print(shelf_summary(shelf, time.time()))
    return EXIT_OK


def run_shelves(args: argparse.Namespace) -> int:
    prefix = _prefix(args.prefix)
    shelves = _client(args).shelves(prefix, include_ended=args.all)
    if args.json:
        _dump([shelf.to_json() for shelf in shelves])
    elif shelves:
        print("\n".join(shelf_lines(shelves, time.time())))
    else:
        print(f"no shelves {_where(prefix)}")
    return EXIT_OK


def run_unshelve(args: argparse.Namespace) -> int:
    try:
        comment = check_comment(args.comment or "", required=False) or None
    except ValueError as error:
        raise UsageError(f"-m: {error}") from None
    print(_client(args).unshelve(args.id, comment))
    return EXIT_OK


def _hub_time(entry: JournalRecord) -> float:
    return entry.hub_time if entry.hub_time is not None else entry.time


def _print_entry(entry: JournalRecord, as_json: bool) -> None:
    if as_json:
        print(json.dumps(entry.to_json(), ensure_ascii=False, allow_nan=False), flush=True)
    else:
        print(journal_line(entry), flush=True)


def _stop_on_sigterm() -> None:
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def run_log(args: argparse.Namespace) -> int:
    prog = "gsmon log"
    if args.follow:
        _stop_on_sigterm()  # at once: SIGTERM is how a service manager (or a test) ends --follow
    prefix = _prefix(args.prefix)
    if args.limit is not None and (args.limit <= 0 or args.follow):
        raise UsageError("--limit takes a positive count, and not with --follow")
    since = log_since(args.since, time.time())
    client = _client(args)
    if args.follow:
        try:
            follow(client, prefix, since, args.json, prog)
        except KeyboardInterrupt:
            return EXIT_OK
        return EXIT_OK  # pragma: no cover - follow returns only by an exception
    cursor = 0 if since is None else client.first_cursor_since(since)
    count = 0
    for entry in client.read_journal(cursor, prefix, args.limit):
        if since is not None and _hub_time(entry) < since:
            continue
        _print_entry(entry, args.json)
        count += 1
    if not count and not args.json:
        print(f"nothing in the journal {_where(prefix)}" + ("" if since is None else " since then"), file=sys.stderr)
    return EXIT_OK


def follow(
    client: OperatorClient,
    prefix: str,
    since: float | None,
    as_json: bool,
    prog: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rounds: int | None = None,
) -> int:
    """Print the journal from ``since`` and then every new entry, each once (by cursor), until interrupted.

    A hub that stops answering is said once on stderr and asked again every
    :data:`RETRY_S`; the cursor is kept, so nothing is printed twice or
    missed. ``rounds`` (tests): stop after that many polls, returning the cursor.
    """
    cursor: int | None = None
    lost = False
    done = 0
    while rounds is None or done < rounds:
        done += 1
        try:
            if cursor is None:
                cursor = 0 if since is None else client.first_cursor_since(since)
            while True:
                page = client.journal(cursor, prefix, JOURNAL_PAGE)
                for entry in page.entries:
                    if since is None or _hub_time(entry) >= since:
                        _print_entry(entry, as_json)
                cursor = max(cursor, page.last_id)
                if len(page.entries) < JOURNAL_PAGE:
                    break
        except HubUnavailableError as error:
            if not lost:
                _err(prog, f"{error} (retrying every {RETRY_S:g} s; Ctrl-C stops)")
                lost = True
            sleep(RETRY_S)
            continue
        if lost:
            _err(prog, "the hub answers again")
            lost = False
        sleep(FOLLOW_POLL_S)
    return cursor or 0
