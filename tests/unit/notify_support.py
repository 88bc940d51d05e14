"""What the notifier core's unit tests share: levels, a fake clock, settings, journal entries and one tick;
and a notifier reading a hub core's journal (the hub tests' end-to-end checks).

Imported as ``notify_support`` (pytest puts tests/unit on ``sys.path``, as tests/integration's ``harness``).
"""

from __future__ import annotations

import itertools
from typing import Any

from gsmon.common.notify.core import Entry, Guidance, Message, NotifyCore, Receiver, Route, Settings
from gsmon.hub.alarms import AlarmBook

RED, ORANGE, GREEN, STALE = 30, 20, 10, 50
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
_ids = itertools.count(1)


def settings(**overrides: Any) -> Settings:
    """Two receivers, a GS1 route at RED before a catch-all at ORANGE, no startup grace; ``overrides`` win."""
    values: dict[str, Any] = {
        "receivers": {"ops": Receiver("ops", ("json://x",)), "all": Receiver("all", ("json://y",))},
        "routes": [Route("GS1", RED, ("ops",)), Route("", ORANGE, ("all",))],
        "guidance": [Guidance("GS1/ups", "Check the breaker.", "https://wiki/ups")],
        "group_wait_s": 5.0,
        "group_interval_s": 10.0,
        "repeat_s": 3600.0,
        "startup_grace_s": 0.0,
        "max_per_minute": 20,
        "hub": "tcp://hub:7763",
    }
    values.update(overrides)
    return Settings(**values)


def entry(kind: str, path: str, alarm_id: int | None = None, **fields: Any) -> Entry:
    """A journal entry with the next id, at ``T0`` unless ``time=`` says otherwise."""
    return Entry(id=next(_ids), time=fields.pop("time", T0), path=path, kind=kind, alarm_id=alarm_id, **fields)


def run(core: NotifyCore, now: float) -> list[Message]:
    """Tick at ``now`` and deliver everything due successfully; returns what went out."""
    core.tick(now)
    sent = core.due(now)
    for message in sent:
        core.delivered(message.id, True, None, now)
    return sent


class JournalNotifier:
    """The notifier's core reading a hub core's alarm journal, as ``gsmon notify`` reads the hub's: one receiver
    for everything from ORANGE, no waits, every message delivered at once; ``sent`` has their titles in order.

    ``book``: the hub's AlarmBook (its ``take_journal``); ``wall0``: the wall time the hub tests count from."""

    def __init__(self, book: AlarmBook, wall0: float) -> None:
        self.book, self.wall0 = book, wall0
        self.core = NotifyCore(
            Settings(
                receivers={"ops": Receiver("ops", ("json://x",))},
                routes=[Route("", ORANGE, ("ops",))],
                group_wait_s=0.0,
                group_interval_s=0.0,
                startup_grace_s=0.0,
            ),
            None,
            wall0,
        )
        self.ids = itertools.count(1)  # the store's cursor ids: the hub core's entries have none yet
        self.sent: list[str] = []

    def __call__(self, now: float) -> None:
        """Read what the book journaled since the last call, and deliver what is due at ``now``."""
        wall = self.wall0 + now
        entries = [
            Entry(
                id=next(self.ids),
                time=e.time,
                path=e.path,
                kind=e.kind,
                old=e.old,
                new=e.new,
                agent=e.agent,
                alarm_id=e.alarm_id,
            )
            for e in self.book.take_journal()
        ]
        self.core.take_entries(entries, wall)
        self.core.tick(wall)
        for message in self.core.due(wall):
            self.core.delivered(message.id, True, None, wall)
            self.sent.append(message.title)
