"""Where the notifier reads each hub's journal from: a pure core for a hub pair (protocol 1.3, rule 7).

No I/O, no clock. Journal ids are each hub's own, so a cursor belongs to one
hub; :class:`JournalCursors` keeps one per hub, and for a hub not read yet
says to read from a source time instead (``since``: the newest entry taken
from the other hub, less ``overlap_s``) and drops the entries taken already
(same kind, path, source time and new level: both hubs journal the agents'
transitions with the agents' own poll times)::

    cursors = JournalCursors(hub, stored_cursor)
    cursors.cursor, cursors.since          --> the journal request's after_id and since
    cursors.take(entries)                  --> the entries not taken before (remembered from now on)
    cursors.advance(last_id)               <-- the page was taken in: the hub's cursor moves on
    cursors.switch(other_hub)              <-- the journal client moved to the other hub of the pair
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Protocol, TypeVar

__all__ = ["RECENT_KEYS", "SWITCH_OVERLAP_S", "JournalCursors"]

#: On a hub of the pair not read yet: entries from this long before the newest one taken from the other.
SWITCH_OVERLAP_S: Final = 5.0
#: Entries remembered (kind, path, time, level) to drop those both hubs journaled.
RECENT_KEYS: Final = 2000


class _Entry(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def time(self) -> float: ...
    @property
    def new(self) -> int | None: ...


_E = TypeVar("_E", bound=_Entry)


class JournalCursors:
    """One journal cursor per hub, and what to skip after a move (module docstring)."""

    def __init__(
        self, hub: str, cursor: int, *, overlap_s: float = SWITCH_OVERLAP_S, remember: int = RECENT_KEYS
    ) -> None:
        self.hub = hub
        self.cursor = cursor
        self.since: float | None = None  # on a hub not read yet: entries from this source time
        self.overlap_s = overlap_s
        self._remember = remember
        self._cursors: dict[str, int] = {hub: cursor}
        self._recent: dict[tuple[Any, ...], None] = {}  # oldest first
        self.newest_time: float | None = None

    def take(self, entries: Iterable[_E]) -> list[_E]:
        """The entries after the cursor that were not taken before (from either hub); remembered now."""
        fresh = []
        for entry in entries:
            key = (entry.kind, entry.path, entry.time, entry.new)
            if entry.id <= self.cursor or key in self._recent:
                continue
            fresh.append(entry)
            self._recent[key] = None
            if len(self._recent) > self._remember:
                del self._recent[next(iter(self._recent))]
            self.newest_time = entry.time if self.newest_time is None else max(self.newest_time, entry.time)
        return fresh

    def advance(self, cursor: int) -> None:
        """A page was taken in: this hub's cursor is ``cursor`` (ids are read from there on, not times)."""
        self.cursor = cursor
        self._cursors[self.hub] = cursor
        self.since = None

    def switch(self, hub: str) -> None:
        """Now reading ``hub``: its own cursor if it was read before, else from the newest source time taken."""
        self._cursors[self.hub] = self.cursor
        self.hub = hub
        known = self._cursors.get(hub)
        if known is not None:
            self.cursor, self.since = known, None
        else:
            self.cursor = 0
            self.since = None if self.newest_time is None else self.newest_time - self.overlap_s
