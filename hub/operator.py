"""The operator commands of the query socket: alarms, acks, shelves, the journal, contexts. No I/O.

::

    COMMAND --> QueryCore._command (role check) --> one function here --> AlarmBook / StateStore reads
                                                                     \\--> (ok, message, result)

Each function takes the query core and the :class:`~gsmon.hub.queries.Call`
(args, who asked: ``by``, ``user``, ``via``, ``role``, ``now``, ``wall``) and
returns ``(ok, message, result)``. Changes go into the alarm book (and, for
contexts, the core's context table); the server stores the book's records and
journal in one transaction *before* it sends the replies of the turn, so an
``ok`` is never lost by a hub killed right after saying it. The command table,
roles, args and results are specified in the protocol docstring
(:mod:`gsmon.common.protocol`, "Commands").

Wire forms (times: float wall seconds; the CLI and web render ISO 8601 UTC):
:func:`alarm_wire`, :func:`shelf_wire`, :func:`entry_wire` -- every field of
the records, plus ``acked``/``shelved`` and ``level_str`` labels.

A refusal's ``result`` is ``{"reason": ...}``: ``forbidden`` (the role is too
low; operators' shelf limit too), ``bad-args``, ``unknown`` (no such alarm or
shelf), ``no-state`` (the hub runs without a state store).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final

from gsmon.common import names
from gsmon.hub.alarms import (
    ACTIVE_ACKED,
    CLEARED,
    MODES,
    Alarm,
    AlarmBook,
    JournalEntry,
    Outcome,
    Shelf,
)

if TYPE_CHECKING:
    from gsmon.hub.queries import Call, QueryCore

__all__ = ["OPERATOR_COMMANDS", "alarm_wire", "entry_wire", "shelf_wire"]

Result = tuple[bool, str, Any]

MAX_IDS: Final = 10_000
MAX_JOURNAL_LIMIT: Final = 10_000
_ALARM_FIELDS: Final = tuple(item.name for item in fields(Alarm))
_SHELF_FIELDS: Final = tuple(item.name for item in fields(Shelf))
_ENTRY_FIELDS: Final = JournalEntry._fields


def alarm_wire(alarm: Alarm) -> dict[str, Any]:
    """An alarm as the ``alarms`` command returns it: every field, plus ``acked`` and ``shelved``."""
    out = {name: getattr(alarm, name) for name in _ALARM_FIELDS}
    out["acked"] = alarm.acked
    out["shelved"] = alarm.shelved
    return out


def shelf_wire(shelf: Shelf) -> dict[str, Any]:
    return {name: getattr(shelf, name) for name in _SHELF_FIELDS}


def entry_wire(entry: JournalEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in _ENTRY_FIELDS}


def _bad(message: str) -> Result:
    return False, message, {"reason": "bad-args"}


def _book(core: QueryCore) -> AlarmBook | None:
    return core.state.alarms


_NO_STATE: Final = (
    False,
    "this hub runs without a state store (state_dir = ''): no alarms, shelves or journal",
    {"reason": "no-state"},
)


def _refused(outcome_message: str) -> dict[str, str]:
    """The reason of a refusal the alarm book said in words (its role rules and limits are its own)."""
    text = outcome_message
    if " may not " in text or "operators may shelve for at most" in text:
        return {"reason": "forbidden"}
    if text.startswith("no alarm") or text.startswith("no shelf"):
        return {"reason": "unknown"}
    return {"reason": "bad-args"}


def _prefix(args: dict[str, Any], required: bool) -> str | None:
    prefix = args.get("prefix", "" if not required else None)
    if not isinstance(prefix, str):
        return None
    return prefix


def _ids(args: dict[str, Any]) -> list[int] | None:
    ids = args.get("ids")
    if not isinstance(ids, list) or len(ids) > MAX_IDS:
        return None
    if not all(type(item) is int for item in ids):
        return None
    return ids


def _comment(args: dict[str, Any]) -> tuple[bool, str | None]:
    comment = args.get("comment")
    if comment is None or isinstance(comment, str):
        return True, comment
    return False, None


@dataclass(frozen=True, slots=True)
class _ByIds:
    """What ack, unack and clear read alike: the book, the ids (each once, in order) and the comment."""

    book: AlarmBook
    ids: list[int]
    comment: str | None


def _by_ids(core: QueryCore, call: Call, needs_ids: str) -> _ByIds | Result:
    """The args of a command on alarm ids, or its refusal (``needs_ids``: what to send instead)."""
    book = _book(core)
    if book is None:
        return _NO_STATE
    ids = _ids(call.args)
    if ids is None:
        return _bad(needs_ids)
    ok, comment = _comment(call.args)
    if not ok:
        return _bad("a comment must be text")
    return _ByIds(book, list(dict.fromkeys(ids)), comment)


# (by, user, comment, via, role, now, wall)
_Acting = tuple[str, str | None, str | None, str | None, str, float, float]


def _acting(call: Call, comment: str | None) -> _Acting:
    """Who acts, why, how and when: the book's arguments after the id(s) (by, user, comment, via,
    role, now, wall) for ack, unack, clear and unshelve."""
    return call.by, call.user, comment, call.via, call.role, call.now, call.wall


def _each(ids: list[int], act: Callable[[int], Outcome]) -> tuple[Result | None, list[int], list[dict[str, Any]]]:
    """``act`` on each id: (the refusal when the role may not, the ids done, the ones skipped with the
    book's reason). No ids still checks the role: the answer a probe expects."""
    done: list[int] = []
    skipped: list[dict[str, Any]] = []
    for alarm_id in ids or [-1]:  # (-1: no alarm has it, only the role is checked)
        outcome = act(alarm_id)
        if outcome.ok:
            done.append(alarm_id)
        elif " may not " in outcome.message:
            return (False, outcome.message, _refused(outcome.message)), done, skipped
        elif ids:
            skipped.append({"id": alarm_id, "reason": outcome.message})
    return None, done, skipped


def _time(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


# -- reads ----------------------------------------------------------------------------------------


def _alarms(core: QueryCore, call: Call) -> Result:
    book = _book(core)
    if book is None:
        return _NO_STATE
    args = call.args
    prefix = _prefix(args, required=False)
    if prefix is None:
        return _bad("alarms: prefix must be a path (or empty for everything)")
    states = args.get("states")
    if states is not None and (not isinstance(states, list) or not all(isinstance(s, str) for s in states)):
        return _bad("alarms: states must be a list of alarm states")
    limit = args.get("limit", MAX_IDS)
    if type(limit) is not int or limit < 0:
        return _bad("alarms: limit must be a whole number >= 0")
    wanted = set(states) if states else None
    listed = book.alarms(prefix, include_cleared=wanted is not None and CLEARED in wanted)
    chosen = [alarm_wire(a) for a in listed if wanted is None or a.state in wanted][: min(limit, MAX_IDS)]
    # (1.3) A listing above site mounts is this hub's book here; the query core merges every site's list
    # into it (gsmon.hub.relay, Router.gather), as it routes a listing at or below a mount to the site.
    result: dict[str, Any] = {"alarms": chosen}
    return True, f"{len(chosen)} alarm{'s' if len(chosen) != 1 else ''} under {prefix or 'the whole tree'}", result


def _shelves(core: QueryCore, call: Call) -> Result:
    book = _book(core)
    if book is None:
        return _NO_STATE
    prefix = _prefix(call.args, required=False)
    if prefix is None:
        return _bad("shelves: prefix must be a path (or empty for every shelf)")
    every = call.args.get("all") is True
    chosen = [
        shelf_wire(shelf)
        for shelf in book.shelves(active_only=not every)
        if not prefix or names.path_in_prefix(shelf.prefix, prefix) or names.path_in_prefix(prefix, shelf.prefix)
    ]
    return True, f"{len(chosen)} shelf/shelves", {"shelves": chosen}


def _journal(core: QueryCore, call: Call) -> Result:
    store = core.store
    if store is None:
        return _NO_STATE
    args = call.args
    after_id = args.get("after_id", 0)
    if type(after_id) is not int or after_id < 0:
        return _bad("journal: after_id must be a whole number >= 0 (the last id you have; 0 from the start)")
    prefix = _prefix(args, required=False)
    if prefix is None:
        return _bad("journal: prefix must be a path (or empty)")
    limit = args.get("limit", 1000)
    if type(limit) is not int or limit < 1:
        return _bad("journal: limit must be a whole number >= 1")
    since = args.get("since")
    if since is not None and _time(since) is None:
        return _bad("journal: since must be wall-clock seconds")
    newest = args.get("newest", False)
    if type(newest) is not bool:
        return _bad("journal: newest must be true or false")
    entries = store.query_journal(prefix, _time(since), after_id, min(limit, MAX_JOURNAL_LIMIT), newest)
    last_id = entries[-1].id if entries else after_id
    return True, f"{len(entries)} journal entries", {"entries": [entry_wire(e) for e in entries], "last_id": last_id}


def _whoami(core: QueryCore, call: Call) -> Result:
    return True, f"{call.by} ({call.role})", {"role": call.role, "by": call.by}


# -- operator actions ----------------------------------------------------------------------------


def _ack(core: QueryCore, call: Call) -> Result:
    parsed = _by_ids(core, call, "ack needs ids: a list of alarm ids (gsmon ack PREFIX sends the ones it listed)")
    if not isinstance(parsed, _ByIds):
        return parsed
    book = parsed.book
    seen_arg = call.args.get("seen")
    seen: dict[int, int] | None = None
    if seen_arg is not None:
        if not isinstance(seen_arg, dict):
            return _bad("ack: seen must map alarm ids to the max_level they had when listed")
        try:
            seen = {int(key): int(value) for key, value in seen_arg.items()}
        except (TypeError, ValueError):
            return _bad("ack: seen must map alarm ids to the max_level they had when listed")
    skipped: list[dict[str, Any]] = []
    ackable: list[int] = []
    for alarm_id in parsed.ids:
        alarm = book.alarm(alarm_id)
        if alarm is None:
            skipped.append({"id": alarm_id, "reason": "unknown"})
        elif alarm.state == CLEARED:
            skipped.append({"id": alarm_id, "reason": "cleared"})
        elif alarm.state == ACTIVE_ACKED:
            skipped.append({"id": alarm_id, "reason": "already acknowledged"})
        elif seen is not None and alarm_id in seen and alarm.max_level > seen[alarm_id]:
            skipped.append({"id": alarm_id, "reason": "escalated since it was listed"})
        else:
            ackable.append(alarm_id)
    outcome = book.ack(ackable, *_acting(call, parsed.comment), seen)
    if not outcome.ok and not outcome.ids and " may not " in outcome.message:
        return False, outcome.message, _refused(outcome.message)
    if not outcome.ok and not outcome.ids and ackable:
        return False, outcome.message, _refused(outcome.message)
    acked = list(outcome.ids)
    message = f"acknowledged {len(acked)} alarm{'s' if len(acked) != 1 else ''}"
    if skipped:
        listed = ", ".join(f"{item['id']}: {item['reason']}" for item in skipped[:5])
        message += f"; skipped {len(skipped)} ({listed})"
    return True, message, {"acked": acked, "skipped": skipped}


def _unack(core: QueryCore, call: Call) -> Result:
    parsed = _by_ids(core, call, "unack needs ids: a list of alarm ids")
    if not isinstance(parsed, _ByIds):
        return parsed
    acting = _acting(call, parsed.comment)
    refusal, done, skipped = _each(parsed.ids, lambda alarm_id: parsed.book.unack(alarm_id, *acting))
    if refusal is not None:
        return refusal
    message = f"unacknowledged {len(done)} alarm{'s' if len(done) != 1 else ''}"
    if skipped:
        message += "; " + "; ".join(s["reason"] for s in skipped[:5])
    return True, message, {"acked": done, "skipped": skipped}


def _clear(core: QueryCore, call: Call) -> Result:
    parsed = _by_ids(core, call, "clear needs ids: a list of alarm ids")
    if not isinstance(parsed, _ByIds):
        return parsed
    acting = _acting(call, parsed.comment)
    refusal, done, skipped = _each(parsed.ids, lambda alarm_id: parsed.book.clear(alarm_id, *acting))
    if refusal is not None:
        return refusal
    return True, f"cleared {len(done)} alarm{'s' if len(done) != 1 else ''}", {"cleared": done, "skipped": skipped}


def _shelve(core: QueryCore, call: Call) -> Result:
    book = _book(core)
    if book is None:
        return _NO_STATE
    args = call.args
    prefix = args.get("prefix")
    mode = args.get("mode")
    if not isinstance(prefix, str) or not prefix:
        return _bad("shelve needs a prefix: the subtree to shelve (GS1/Antenna2)")
    if mode not in MODES:
        return _bad(f"shelve needs a mode: one of {', '.join(MODES)}")
    ok, comment = _comment(args)
    if not ok:
        return _bad("a comment must be text")
    starts_at = _time(args["starts_at"]) if args.get("starts_at") is not None else None
    ends_at: float | None = None
    if args.get("duration_s") is not None:
        duration = _time(args["duration_s"])
        if duration is None or duration <= 0:
            return _bad("shelve: duration_s must be a positive number of seconds")
        ends_at = (starts_at if starts_at is not None else call.wall) + duration
    elif args.get("ends_at") is not None:
        ends_at = _time(args["ends_at"])
        if ends_at is None:
            return _bad("shelve: ends_at must be wall-clock seconds")
    if args.get("starts_at") is not None and starts_at is None:
        return _bad("shelve: starts_at must be wall-clock seconds")
    outcome = book.shelve(
        prefix, str(mode), starts_at, ends_at, comment, call.by, call.user, call.via, call.role, call.now, call.wall
    )
    if not outcome.ok:
        return False, outcome.message, _refused(outcome.message)
    shelf = book.shelf(outcome.ids[0])
    assert shelf is not None
    return True, outcome.message, {"shelf": shelf_wire(shelf)}


def _unshelve(core: QueryCore, call: Call) -> Result:
    book = _book(core)
    if book is None:
        return _NO_STATE
    shelf_id = call.args.get("id")
    if type(shelf_id) is not int:
        return _bad("unshelve needs the shelf's id: {id: N} (gsmon shelves lists them)")
    ok, comment = _comment(call.args)
    if not ok:
        return _bad("a comment must be text")
    outcome = book.unshelve(shelf_id, *_acting(call, comment))
    if not outcome.ok:
        return False, outcome.message, _refused(outcome.message)
    shelf = book.shelf(shelf_id)
    return True, outcome.message, {"shelf": None if shelf is None else shelf_wire(shelf)}


# -- contexts -------------------------------------------------------------------------------------


def _context_args(call: Call) -> tuple[str, str] | str:
    kind, prefix = call.args.get("kind"), call.args.get("prefix")
    if not isinstance(kind, str) or not isinstance(prefix, str):
        return "needs kind (a name such as pass) and prefix (the subtree it applies to)"
    try:
        names.check_name(kind, "context kind")
        names.check_path(prefix, "context prefix")
    except names.InvalidNameError as error:
        return str(error)
    return kind, prefix


def _context_start(core: QueryCore, call: Call) -> Result:
    book = _book(core)
    if book is None or core.store is None:
        return _NO_STATE
    parsed = _context_args(call)
    if isinstance(parsed, str):
        return _bad(f"context_start {parsed}")
    kind, prefix = parsed
    context_id = call.args.get("id")
    if isinstance(context_id, bool) or not isinstance(context_id, str | int) or context_id == "":
        return _bad("context_start needs an id (text or a number: the pass id)")
    key = f"{kind}/{prefix}"
    if key not in core.contexts and len(core.contexts) >= 1000:
        return _bad("1000 contexts are active already: stop some first")
    record = {"kind": kind, "prefix": prefix, "id": context_id, "by": call.by, "user": call.user, "at": call.wall}
    previous = core.contexts.get(key)
    contexts = {**core.contexts, key: record}
    core.store.save_contexts(contexts)
    core.contexts = contexts
    book.record(
        "context_start",
        prefix,
        call.wall,
        value=context_id,
        user=call.user,
        by=call.by,
        via=call.via,
        comment=f"{kind} {context_id}" + ("" if previous is None else f" (was {previous.get('id')})"),
    )
    return True, f"context {kind} {context_id} started on {prefix}", {"context": record}


def _context_stop(core: QueryCore, call: Call) -> Result:
    book = _book(core)
    if book is None or core.store is None:
        return _NO_STATE
    parsed = _context_args(call)
    if isinstance(parsed, str):
        return _bad(f"context_stop {parsed}")
    kind, prefix = parsed
    key = f"{kind}/{prefix}"
    record = core.contexts.get(key)
    if record is None:
        return False, f"no {kind} context is active on {prefix}", {"reason": "unknown"}
    contexts = {k: v for k, v in core.contexts.items() if k != key}
    core.store.save_contexts(contexts)
    core.contexts = contexts
    book.record(
        "context_stop",
        prefix,
        call.wall,
        value=record.get("id"),
        user=call.user,
        by=call.by,
        via=call.via,
        comment=f"{kind} {record.get('id')}",
    )
    return True, f"context {kind} {record.get('id')} stopped on {prefix}", {"context": record}


#: name -> (role, summary, function); QueryCore's table adds them (protocol docstring: Commands).
OPERATOR_COMMANDS: Final = {
    "whoami": ("viewer", "the caller's role and name", _whoami),
    "alarms": ("viewer", "list alarms under a prefix", _alarms),
    "shelves": ("viewer", "list shelves", _shelves),
    "journal": ("viewer", "read the journal by cursor", _journal),
    "ack": ("operator", "acknowledge alarms by id", _ack),
    "unack": ("operator", "take acknowledgements back", _unack),
    "shelve": ("operator", "shelve a subtree (operators: at most max_shelve_s)", _shelve),
    "unshelve": ("operator", "end a shelf", _unshelve),
    "context_start": ("operator", "start a context (a pass) on a subtree", _context_start),
    "context_stop": ("operator", "stop a context", _context_stop),
    "clear": ("admin", "clear alarms whatever their state", _clear),
}
