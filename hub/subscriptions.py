"""Who subscribed to what on the hub's XPUB, with per-subscriber and total caps. No I/O.

The hub's XPUB runs in manual mode: every (un)subscription reaches the hub,
which decides whether to apply it. :class:`SubscriptionLedger` makes that
decision and keeps the counts, so that one subscriber cannot grow the hub's
subscription trie without bound or crowd out the others.

A subscriber is identified by its CURVE key when the hub has keys, else by
its IP address. Unsubscriptions that libzmq generates when a connection
closes carry no identity; the ledger then releases the topic from one of the
identities holding it (the exact one whenever a single identity holds it,
which is the usual case: a subscriber's prefixes are its own).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["SubscriptionLedger"]


@dataclass(slots=True)
class SubscriptionLedger:
    """Counts subscriptions per identity and per topic against two caps."""

    max_per_subscriber: int = 100
    max_total: int = 100_000
    refused: int = 0
    _by_identity: Counter[str] = field(default_factory=Counter)
    _holders: dict[bytes, Counter[str]] = field(default_factory=dict)
    _total: int = 0

    def subscribe(self, identity: str, topic: bytes) -> bool:
        """Record a subscription; False (and counted) when a cap refuses it."""
        if self._by_identity[identity] >= self.max_per_subscriber or self._total >= self.max_total:
            self.refused += 1
            if not self._by_identity[identity]:
                del self._by_identity[identity]
            return False
        self._by_identity[identity] += 1
        self._holders.setdefault(topic, Counter())[identity] += 1
        self._total += 1
        return True

    def unsubscribe(self, identity: str | None, topic: bytes) -> bool:
        """Release a subscription (``identity`` None: a closed connection's);
        False when nobody held it (nothing to undo)."""
        holders = self._holders.get(topic)
        if not holders:
            return False
        if identity is None or identity not in holders:
            if identity is not None:
                return False  # an unsubscription for something this identity never had
            identity = next(reversed(holders))
        holders[identity] -= 1
        if not holders[identity]:
            del holders[identity]
        if not holders:
            del self._holders[topic]
        self._by_identity[identity] -= 1
        if not self._by_identity[identity]:
            del self._by_identity[identity]
        self._total -= 1
        return True

    def count(self, identity: str) -> int:
        return self._by_identity.get(identity, 0)

    @property
    def total(self) -> int:
        return self._total

    def clear(self) -> None:
        """Forget everything (the socket was rebuilt; subscribers will subscribe again)."""
        self._by_identity.clear()
        self._holders.clear()
        self._total = 0
