"""Which hub of a pair a client uses, and when it moves to the other: a pure core (protocol 1.3, Hub pairs).

No sockets, no clock: every time is an argument (``now`` is ``time.monotonic()``).
:class:`HubChoice` is asked by the sockets around it (the Subscriber, the
notifier's journal client, the command senders) what to do; they only
connect where it says::

    HubChoice(("tcp://a:7763", "tcp://b:7763"))
    choice.order()                           --> endpoints to try when connecting, the current one first
    choice.connected(endpoint, now)          <-- one answered (HELLO, heartbeat, snapshot): it is the current hub
    choice.tick(now, last_heartbeat, interval_s) <-- every loop turn: the current hub's latest heartbeat
    choice.query_failed(now)                 <-- a request to the current hub missed its deadline
    choice.due(now) --> endpoint | None      --> another hub to try now (the current one is lost)
    choice.attempt_failed(endpoint, now)     <-- that try did not answer: the next one after RETRY_S

The rules (the protocol docstring's Hub pairs section is the specification):

1. Connecting: try the endpoints in the order given, the current one first;
   the first that answers is used (the hub that answers is preferred, not
   the one listed first).
2. The current hub is lost when no heartbeat came for ``liveness`` x its
   heartbeat interval (3 x, as a single-hub client judges "hub lost"), or a
   request with a deadline to it went unanswered.
3. Then the other hubs are tried in list order after the current one, one
   attempt at a time, at most one every :data:`RETRY_S`, round and round,
   until one answers; the client re-snapshots from it (the hubs of a pair are
   independent: each has its own epoch and seq, so nothing learnt from one is
   applied to the other).
4. No flapping: a client stays with the hub it uses while that hub lives,
   even when an earlier-listed (preferred) one comes back. It moves only by
   rule 2.
5. Views say ``hub lost`` (or ``waiting``) only when every hub is gone: the
   current one is lost and every other has failed an attempt since
   (:attr:`HubChoice.all_lost`). A single endpoint never fails over (ZeroMQ
   reconnects to it by itself, as before).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from gsmon.common.endpoints import split_hubs

__all__ = ["LIVENESS", "RETRY_S", "HubChoice"]

#: Heartbeat intervals without a heartbeat after which the current hub is lost (the clone's HUB_LIVENESS).
LIVENESS: Final = 3.0
#: Seconds between two attempts at another hub while the current one is lost.
RETRY_S: Final = 1.0


class HubChoice:
    """The hubs a client may use (one, or a pair: any number works) and the one it uses now.

    Args:
        hubs: The endpoints, in order of preference for the first connection
            (a sequence, or one setting ``"tcp://a:7763,tcp://b:7763"``).
        liveness: Heartbeat intervals without one that make the current hub lost.
        retry_s: Seconds between attempts at another hub while the current one is lost.
    """

    def __init__(self, hubs: Sequence[str] | str, *, liveness: float = LIVENESS, retry_s: float = RETRY_S) -> None:
        endpoints = split_hubs(hubs) if isinstance(hubs, str) else tuple(hubs)
        if not endpoints:
            raise ValueError("a client needs at least one hub endpoint")
        if len(set(endpoints)) != len(endpoints):
            raise ValueError(f"a hub endpoint is listed twice: {', '.join(endpoints)}")
        self.endpoints: tuple[str, ...] = endpoints
        self.liveness = liveness
        self.retry_s = retry_s
        self.current = endpoints[0]
        self.switches = 0  # moves from one hub to another after the first connection
        self.connected_once = False
        self.lost_at: float | None = None  # monotonic time the current hub was judged lost (None: alive)
        self.last_failover_s: float | None = None  # lost -> connected elsewhere, the latest move
        self._next_attempt_at: float | None = None
        self._failed_since_lost: set[str] = set()
        self._cursor = 0  # the next candidate, as an offset after the current one

    # ------------------------------------------------------------------

    @property
    def pair(self) -> bool:
        """Whether there is another hub to go to."""
        return len(self.endpoints) > 1

    @property
    def lost(self) -> bool:
        """Whether the current hub is lost (rule 2)."""
        return self.lost_at is not None

    @property
    def all_lost(self) -> bool:
        """Whether every hub is gone (rule 5): the current one lost and every other failed an attempt since."""
        if self.lost_at is None:
            return False
        return all(endpoint in self._failed_since_lost for endpoint in self.endpoints if endpoint != self.current)

    def others(self) -> tuple[str, ...]:
        """The other endpoints in list order after the current one (cyclically)."""
        index = self.endpoints.index(self.current)
        return self.endpoints[index + 1 :] + self.endpoints[:index]

    def order(self) -> tuple[str, ...]:
        """Where to try to connect, in turn: the current hub first, then the others (rule 1)."""
        return (self.current, *self.others())

    def describe(self) -> str:
        """The hub in use, for a status line: ``tcp://b:7763`` or ``tcp://b:7763 (pair: tcp://a:7763)``."""
        others = self.others()
        return self.current if not others else f"{self.current} (pair: {', '.join(others)})"

    # ------------------------------------------------------------------

    def connected(self, endpoint: str, now: float) -> None:
        """``endpoint`` answered and is used from now on (a new connection, or a failover)."""
        if endpoint not in self.endpoints:
            raise ValueError(f"{endpoint!r} is not one of {', '.join(self.endpoints)}")
        if self.connected_once and endpoint != self.current:
            self.switches += 1
            if self.lost_at is not None:
                self.last_failover_s = now - self.lost_at
        self.connected_once = True
        self.current = endpoint
        self.lost_at = None
        self._next_attempt_at = None
        self._failed_since_lost.clear()
        self._cursor = 0

    def tick(self, now: float, last_heartbeat: float | None, interval_s: float) -> None:
        """The current hub's latest heartbeat (monotonic; None: none yet) and its interval (rule 2).

        A heartbeat newer than the loss makes the current hub alive again (it came back before another
        answered: the client stays, rule 4).
        """
        if last_heartbeat is None:
            return  # never heard on this connection: connecting judges that, with its own deadline
        if now - last_heartbeat > self.liveness * interval_s:
            self._lose(last_heartbeat + self.liveness * interval_s)  # when it became lost
        elif self.lost_at is not None and last_heartbeat > self.lost_at:
            self.lost_at = None
            self._next_attempt_at = None
            self._failed_since_lost.clear()
            self._cursor = 0

    def query_failed(self, now: float) -> None:
        """A request to the current hub missed its deadline (rule 2)."""
        self._lose(now)

    def _lose(self, at: float) -> None:
        if self.lost_at is None:
            self.lost_at = at
            self._next_attempt_at = None  # the first attempt is due at once
            self._failed_since_lost.clear()
            self._cursor = 0

    def due(self, now: float) -> str | None:
        """Another hub to try now, when the current one is lost and an attempt is due (rule 3)."""
        if self.lost_at is None or not self.pair:
            return None
        if self._next_attempt_at is not None and now < self._next_attempt_at:
            return None
        others = self.others()
        return others[self._cursor % len(others)]

    def attempt_failed(self, endpoint: str, now: float) -> None:
        """The attempt at ``endpoint`` got no answer: the next candidate, :attr:`retry_s` from now."""
        self._failed_since_lost.add(endpoint)
        self._cursor += 1
        self._next_attempt_at = now + self.retry_s

    def next_due(self) -> float | None:
        """When the next attempt is due (None: none is waited for)."""
        return self._next_attempt_at if self.lost_at is not None and self.pair else None
