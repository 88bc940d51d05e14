"""What the notifier core's unit tests share: levels, a fake clock, settings, journal entries and one tick.

Imported as ``notify_support`` (pytest puts tests/unit on ``sys.path``, as tests/integration's ``harness``).
"""

from __future__ import annotations

import itertools
from typing import Any

from gsmon.common.notify.core import Entry, Guidance, Message, NotifyCore, Receiver, Route, Settings

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
