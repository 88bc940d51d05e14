"""What the terminal view asks of the hub besides the tree: the ``Commands`` interface.

The view acknowledges, shelves, lists alarms and reads the journal only
through this interface, so that it does not depend on how the hub is asked
(issue 13's COMMAND / COMMAND_RESULT requests on the query socket) or on
whether the hub can be asked at all::

    class Commands(Protocol):
        role: Role                                  # what this client's key may do
        def ack(ids, comment) -> AckResult
        def shelve(ShelveRequest) -> ShelfRecord
        def alarms(prefix) -> list[AlarmRecord]     # gsmon alarms PREFIX
        def journal(prefix, since) -> list[JournalRecord]   # gsmon log PREFIX --since

Every method may block (a round trip to the hub): the view calls them from a
worker thread, never from its event loop. Each raises :class:`CommandError`
with one line for a person (the hub's refusal, a timeout, "not available on
this hub") and never anything else for an expected failure.

:class:`NullCommands` is what the view uses until the hub speaks commands:
role ``viewer`` (so ``a`` and ``s`` are not offered) and every method says
"not available on this hub". The rest of this module is pure: parsing the
shelve prompt's "how long" text, and the comment rule (required, at most
:data:`MAX_COMMENT_CHARS` characters).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

__all__ = [
    "MAX_COMMENT_CHARS",
    "NOT_AVAILABLE",
    "ROLES_THAT_ACT",
    "AckResult",
    "AlarmRecord",
    "CommandError",
    "Commands",
    "JournalRecord",
    "NullCommands",
    "Role",
    "ShelfRecord",
    "ShelveMode",
    "ShelveRequest",
    "check_comment",
    "parse_duration",
    "parse_shelve_window",
]

Role = Literal["viewer", "operator", "admin"]
ShelveMode = Literal["timed", "until_normal", "scheduled"]
ROLES_THAT_ACT: Final[frozenset[str]] = frozenset({"operator", "admin"})
MAX_COMMENT_CHARS: Final = 500
NOT_AVAILABLE: Final = "not available on this hub"


class CommandError(Exception):
    """A command the hub refused or could not be asked; the message is one line for a person."""


@dataclass(frozen=True, slots=True)
class AckResult:
    """The ids the hub acknowledged (it acks only ids it was sent, and only unacked ones)."""

    acked_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ShelveRequest:
    """One shelve: ``timed`` needs ``duration_s`` or ``ends_at``; ``scheduled`` both ends; times are wall s."""

    prefix: str
    mode: ShelveMode
    comment: str
    duration_s: float | None = None
    starts_at: float | None = None
    ends_at: float | None = None


@dataclass(frozen=True, slots=True)
class ShelfRecord:
    """A shelf as ``gsmon shelves --json`` lists it (times: wall seconds)."""

    id: int
    prefix: str
    mode: str
    comment: str
    by: str | None = None
    created_at: float | None = None
    ends_at: float | None = None


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    """An alarm as ``gsmon alarms --json`` lists it (times: wall seconds)."""

    id: int
    path: str
    state: str
    level: int
    max_level: int | None = None
    agent: str | None = None
    reason: str | None = None
    latch: bool | None = None
    raised_at: float | None = None
    rtn_at: float | None = None
    acked: bool = False
    acked_by: str | None = None
    acked_at: float | None = None
    ack_comment: str | None = None
    shelved: bool = False
    shelf_id: int | None = None


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """A journal entry as ``gsmon log --json`` lists it (``time``: wall seconds, source time)."""

    time: float
    path: str
    kind: str
    old: int | None = None
    new: int | None = None
    value: Any = None
    agent: str | None = None
    user: str | None = None
    comment: str | None = None
    alarm_id: int | None = None


class Commands(Protocol):
    """The hub's operator commands, as the view uses them (see the module docstring)."""

    @property
    def role(self) -> Role:
        """What this client may do: ``viewer`` reads; ``operator`` and ``admin`` also ack and shelve."""
        ...

    def ack(self, ids: Sequence[int], comment: str) -> AckResult: ...

    def shelve(self, request: ShelveRequest) -> ShelfRecord: ...

    def alarms(self, prefix: str) -> list[AlarmRecord]: ...

    def journal(self, prefix: str, since: float) -> list[JournalRecord]: ...


class NullCommands:
    """A hub that does not speak commands (yet): a viewer, and every command says so."""

    @property
    def role(self) -> Role:
        return "viewer"

    def ack(self, ids: Sequence[int], comment: str) -> AckResult:
        raise CommandError(f"acknowledging is {NOT_AVAILABLE}")

    def shelve(self, request: ShelveRequest) -> ShelfRecord:
        raise CommandError(f"shelving is {NOT_AVAILABLE}")

    def alarms(self, prefix: str) -> list[AlarmRecord]:
        raise CommandError(f"the alarm list is {NOT_AVAILABLE}")

    def journal(self, prefix: str, since: float) -> list[JournalRecord]:
        raise CommandError(f"the journal is {NOT_AVAILABLE}")


def check_comment(text: str) -> str:
    """The comment, stripped; raises :class:`ValueError` (one line) when empty or too long."""
    comment = text.strip()
    if not comment:
        raise ValueError("a comment is required: say why (it goes into the journal with your name)")
    if len(comment) > MAX_COMMENT_CHARS:
        raise ValueError(f"a comment is at most {MAX_COMMENT_CHARS} characters, this one has {len(comment)}")
    return comment


_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])", re.IGNORECASE)
_UNIT_S: Final = {"d": 86_400.0, "h": 3_600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> float:
    """``2h``, ``90m``, ``1h30m``, ``1d``, ``45s`` or plain seconds (``3600``) -> seconds.

    Raises :class:`ValueError` (one line) for anything else or a span that is not positive.
    """
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned:
        raise ValueError("expected a duration such as 2h, 30m or 1h30m, got nothing")
    try:
        seconds = float(cleaned)
    except ValueError:
        parts = _DURATION_PART.findall(cleaned)
        if not parts or "".join(f"{number}{unit}" for number, unit in parts) != cleaned:
            raise ValueError(f"expected a duration such as 2h, 30m or 1h30m, got {text.strip()!r}") from None
        seconds = sum(float(number) * _UNIT_S[unit.lower()] for number, unit in parts)
    if not seconds > 0:
        raise ValueError(f"expected a duration longer than zero, got {text.strip()!r}")
    return seconds


def _clock_time(text: str, now: dt.datetime) -> dt.datetime:
    """``18:00`` (today, or tomorrow once past) or an ISO 8601 date and time, in local time."""
    value = text.strip()
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value)
    if match:
        hour, minute = int(match.group(1)), int(match.group(2))
        if hour > 23 or minute > 59:
            raise ValueError(f"expected a time of day such as 18:00, got {value!r}")
        moment = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        return moment if moment > now else moment + dt.timedelta(days=1)
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected a time such as 18:00 or 2026-12-02T18:00, got {value!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=now.tzinfo)


def parse_shelve_window(
    text: str, now: float, zone: dt.tzinfo | None = None
) -> tuple[ShelveMode, float | None, float | None, float | None]:
    """The shelve prompt's "how long": ``(mode, duration_s, starts_at, ends_at)``.

    ``2h`` / ``90m`` / ``1h30m``: timed, for that long. ``until 18:00``: timed,
    until then. ``normal`` (or ``until normal``): until every covered alarm is
    back to normal. ``18:00-20:00`` (or ``from A to B``, ISO 8601 times too): a
    scheduled window. ``now`` is wall seconds; ``zone`` the local zone (default
    this machine's). Raises :class:`ValueError` (one line) for anything else.
    """
    cleaned = " ".join(text.strip().lower().split())
    local_now = (
        dt.datetime.fromtimestamp(now, tz=zone) if zone is not None else dt.datetime.fromtimestamp(now).astimezone()
    )
    if cleaned in ("normal", "until normal", "until-normal", "until_normal"):
        return "until_normal", None, None, None
    if cleaned.startswith("until "):
        until = _clock_time(cleaned.removeprefix("until "), local_now).timestamp()
        if until <= now:
            raise ValueError(f"expected a time in the future, got {text.strip()!r}")
        return "timed", None, None, until
    ends: tuple[str, str] | None = None
    if " to " in cleaned:
        first, _, second = cleaned.removeprefix("from ").partition(" to ")
        ends = (first, second)
    elif match := re.fullmatch(r"(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})", cleaned):
        ends = (match.group(1), match.group(2))
    if ends is not None:
        start = _clock_time(ends[0], local_now)
        end = _clock_time(ends[1], local_now)
        if end <= start and re.fullmatch(r"\d{1,2}:\d{2}", ends[1]):
            end += dt.timedelta(days=1)  # 22:00-02:00 ends tomorrow
        if end <= start:
            raise ValueError(f"expected the window's end after its start, got {text.strip()!r}")
        return "scheduled", None, start.timestamp(), end.timestamp()
    try:
        return "timed", parse_duration(cleaned), None, None
    except ValueError:
        raise ValueError(
            f"expected how long to shelve: 2h, 30m, 'until 18:00', 'normal' (until back to normal) or "
            f"'18:00-20:00' (a scheduled window), got {text.strip()!r}"
        ) from None
