"""What the web bridge's unit tests share: a stand-in for the Subscriber's nodes.

Imported as ``web_support`` (pytest puts tests/unit on ``sys.path``, as for ``notify_support``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NOW = 1_764_700_000.0


@dataclass(frozen=True)
class Node:
    """A node as the Subscriber gives it (NodeState's fields), with optional operator-layer fields."""

    path: str
    kind: str = "point"
    alertcode: int = 10
    alertstr: str = "GREEN"
    stale: bool = False
    value: Any = 1.0
    agent: str | None = "rack1"
    polled_at_s: float | None = NOW - 1
    received_at_s: float | None = NOW - 0.5
    dt_s: float | None = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:  # attention, alarm, since, shelf_id ... when given
        extra = object.__getattribute__(self, "extra")
        if name in extra:
            return extra[name]
        raise AttributeError(name)
