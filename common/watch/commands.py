"""What the terminal view asks of the hub besides the tree: the ``Commands`` interface.

The view acknowledges, shelves, lists alarms and reads the journal only
through this interface, so that it does not depend on how the hub is asked
(issue 13's COMMAND / COMMAND_RESULT requests on the query socket) or on
whether the hub can be asked at all::

    class Commands(Protocol):
        role: Role                                  # what this client's key may do
        def ack(ids, comment) -> AckResult
        def unack(ids, comment) -> AckResult
        def shelve(ShelveRequest) -> ShelfRecord
        def alarms(prefix) -> list[AlarmRecord]     # gsmon alarms PREFIX
        def unreached_sites() -> [(mount, why)]     # (1.3) site hubs the last alarms() could not ask
        def journal(prefix, since) -> list[JournalRecord]   # gsmon log PREFIX --since

Every method may block (a round trip to the hub): the view calls them from a
worker thread, never from its event loop. Each raises :class:`CommandError`
with one line for a person (the hub's refusal, a timeout, "not available on
this hub") and never anything else for an expected failure.

:class:`HubCommands` is the real one: the hub's operator COMMANDs through
:class:`~gsmon.common.alarm_commands.OperatorClient` (the same client as
``gsmon alarms``/``ack``/``shelve``/``log``, so the view and the CLI send the
same requests). Its role is learnt from the hub in the background
(:meth:`HubCommands.start`: ``viewer`` until the hub has said, so ``a`` and
``s`` appear once it has; without keys the hub lets anyone act: ``admin``).
The journal of a time span is read by cursor from the first entry at or after
its start, the newest :data:`MAX_JOURNAL_ROWS` kept.

:class:`NullCommands` is a hub that does not speak commands: role ``viewer``
(so ``a`` and ``s`` are not offered) and every method says "not available on
this hub". The rest of this module is pure: parsing the shelve prompt's "how
long" text, and the comment rule (required, at most
:data:`MAX_COMMENT_CHARS` characters). The records are those of
:mod:`gsmon.common.alarm_commands`.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol, TypeVar

from gsmon.common.alarm_commands import (
    MAX_COMMENT_CHARS,
    OPEN_STATES,
    AlarmRecord,
    BadAnswerError,
    CommandRefusedError,
    JournalRecord,
    OperatorClient,
    ShelfRecord,
    parse_duration,
)
from gsmon.common.alarm_commands import check_comment as _check_comment
from gsmon.common.client import HubUnavailableError

__all__ = [
    "MAX_COMMENT_CHARS",
    "NOT_AVAILABLE",
    "ROLES_THAT_ACT",
    "AckResult",
    "AlarmRecord",
    "CommandError",
    "Commands",
    "HubCommands",
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
T = TypeVar("T")
ShelveMode = Literal["timed", "until_normal", "scheduled"]
ROLES_THAT_ACT: Final[frozenset[str]] = frozenset({"operator", "admin"})
NOT_AVAILABLE: Final = "not available on this hub"


class CommandError(Exception):
    """A command the hub refused or could not be asked; the message is one line for a person."""


@dataclass(frozen=True, slots=True)
class AckResult:
    """The ids the hub acknowledged (it acks only ids it was sent, and only unacked ones), and those it skipped."""

    acked_ids: tuple[int, ...]
    skipped: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ShelveRequest:
    """One shelve: ``timed`` needs ``duration_s`` or ``ends_at``; ``scheduled`` both ends; times are wall s."""

    prefix: str
    mode: ShelveMode
    comment: str
    duration_s: float | None = None
    starts_at: float | None = None
    ends_at: float | None = None


class Commands(Protocol):
    """The hub's operator commands, as the view uses them (see the module docstring)."""

    @property
    def role(self) -> Role:
        """What this client may do: ``viewer`` reads; ``operator`` and ``admin`` also ack and shelve."""
        ...

    def ack(self, ids: Sequence[int], comment: str) -> AckResult: ...

    def unack(self, ids: Sequence[int], comment: str) -> AckResult: ...

    def shelve(self, request: ShelveRequest) -> ShelfRecord: ...

    def alarms(self, prefix: str) -> list[AlarmRecord]: ...

    def unreached_sites(self) -> tuple[tuple[str, str], ...]:
        """(1.3) At a central hub: the site hubs whose alarms the last :meth:`alarms` does not hold,
        each with the reason (as ``gsmon alarms`` says them)."""
        ...

    def journal(self, prefix: str, since: float) -> list[JournalRecord]: ...


class NullCommands:
    """A hub that does not speak commands (yet): a viewer, and every command says so."""

    @property
    def role(self) -> Role:
        return "viewer"

    def ack(self, ids: Sequence[int], comment: str) -> AckResult:
        raise CommandError(f"acknowledging is {NOT_AVAILABLE}")

    def unack(self, ids: Sequence[int], comment: str) -> AckResult:
        raise CommandError(f"unacknowledging is {NOT_AVAILABLE}")

    def shelve(self, request: ShelveRequest) -> ShelfRecord:
        raise CommandError(f"shelving is {NOT_AVAILABLE}")

    def alarms(self, prefix: str) -> list[AlarmRecord]:
        raise CommandError(f"the alarm list is {NOT_AVAILABLE}")

    def unreached_sites(self) -> tuple[tuple[str, str], ...]:
        return ()

    def journal(self, prefix: str, since: float) -> list[JournalRecord]:
        raise CommandError(f"the journal is {NOT_AVAILABLE}")


def check_comment(text: str) -> str:
    """The comment, stripped; raises :class:`ValueError` (one line) when empty or too long."""
    return _check_comment(text, required=True)


#: The journal view keeps at most this many entries of its span (the newest).
MAX_JOURNAL_ROWS: Final = 5000
#: Seconds between attempts to learn the role while the hub does not answer.
ROLE_RETRY_S: Final = 2.0


class HubCommands:
    """The hub's operator commands for the view, over ``client`` (see the module docstring).

    ``keyed``: this client uses CURVE keys (so the hub checks a role); without
    keys the hub lets anyone act and the role is ``admin`` from the start.
    """

    def __init__(self, client: OperatorClient, *, keyed: bool) -> None:
        self.client = client
        self._role: Role = "viewer" if keyed else "admin"
        self._known = not keyed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unreached: tuple[tuple[str, str], ...] = ()  # (1.3) of the last alarm list

    @property
    def role(self) -> Role:
        return self._role

    @property
    def role_known(self) -> bool:
        return self._known

    def learn_role(self) -> bool:
        """Ask the hub once; True when it answered (the role is then known)."""
        try:
            self._role = self.client.role()
        except (HubUnavailableError, CommandRefusedError, BadAnswerError):
            return False
        self._known = True
        return True

    def start(self) -> HubCommands:
        """Learn the role in a background thread (asking again while the hub does not answer)."""
        if self._known or self._thread is not None:
            return self

        def run() -> None:
            while not self._stop.is_set() and not self.learn_role():
                self._stop.wait(ROLE_RETRY_S)

        self._thread = threading.Thread(target=run, name="gsmon-watch-role", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    @staticmethod
    def _do(what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except CommandRefusedError as refusal:
            raise CommandError(f"the hub refused to {what}: {refusal.hub_message}") from None
        except (HubUnavailableError, BadAnswerError) as error:
            raise CommandError(" ".join(str(error).split())) from None

    def ack(self, ids: Sequence[int], comment: str) -> AckResult:
        outcome = self._do("acknowledge", lambda: self.client.ack(list(ids), comment or None))
        return AckResult(outcome.done, outcome.skipped)

    def unack(self, ids: Sequence[int], comment: str) -> AckResult:
        outcome = self._do("unacknowledge", lambda: self.client.unack(list(ids), comment or None))
        return AckResult(outcome.done, outcome.skipped)

    def shelve(self, request: ShelveRequest) -> ShelfRecord:
        return self._do(
            "shelve",
            lambda: self.client.shelve(
                request.prefix.rstrip("/"),
                request.mode,
                request.comment,
                duration_s=request.duration_s,
                starts_at=request.starts_at,
                ends_at=request.ends_at,
            ),
        )

    def alarms(self, prefix: str) -> list[AlarmRecord]:
        alarms, listing = self._do("list the alarms", lambda: self.client.alarm_listing(prefix, OPEN_STATES))
        self._unreached = listing.unreached
        return alarms

    def unreached_sites(self) -> tuple[tuple[str, str], ...]:
        return self._unreached

    def journal(self, prefix: str, since: float) -> list[JournalRecord]:
        def read() -> list[JournalRecord]:
            cursor = self.client.first_cursor_since(since)
            newest: deque[JournalRecord] = deque(maxlen=MAX_JOURNAL_ROWS)
            for entry in self.client.read_journal(cursor, prefix):
                if (entry.hub_time if entry.hub_time is not None else entry.time) >= since:
                    newest.append(entry)
            return list(newest)

        return self._do("read the journal", read)


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
