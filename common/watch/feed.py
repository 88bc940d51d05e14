"""The Subscriber on a thread of its own, handing coalesced changes to the view.

The Subscriber is not thread-safe and its calls block (connecting waits up to
``timeout_s``; a resync loads a whole snapshot), so one thread owns it:
connect (retrying every :data:`RETRY_PAUSE_S` while the hub is not there),
then poll. What arrives is kept as the latest node per path; the view takes
it all at once (:meth:`HubFeed.take`) at its own pace, so a thousand updates
of one point between two redraws cost the view one. The thread never touches
the view, and the view never touches the Subscriber.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from gsmon.common.client import HubUnavailableError, NodeState, Subscriber
from gsmon.common.failover import HubChoice
from gsmon.common.keys import ClientKeys
from gsmon.common.watch.layout import ConnectionState

__all__ = ["RETRY_PAUSE_S", "FeedBatch", "HubFeed"]

RETRY_PAUSE_S: Final = 1.0
POLL_S: Final = 0.05


@dataclass(slots=True)
class FeedBatch:
    """What arrived since the last :meth:`HubFeed.take`."""

    updates: dict[str, NodeState | None] = field(default_factory=dict)
    reset: bool = False  # ``updates`` is the whole tree (a new connection)
    state: ConnectionState = "waiting"
    reason: str = ""
    clock_offset_s: float = 0.0  # hub clock minus this machine's
    last_update: float | None = None  # wall time the latest change arrived
    received: int = 0  # changes received (before coalescing)
    endpoint: str = ""  # the hub used now (of a pair: the one that answered; 1.3)


class HubFeed:
    """Follows ``prefix`` at the hub on a daemon thread; :meth:`take` hands over what came."""

    def __init__(
        self,
        hub: str | HubChoice,
        prefix: str,
        *,
        timeout_s: float = 5.0,
        curve: ClientKeys | None = None,
        subscriber_factory: Callable[..., Subscriber] = Subscriber,
    ) -> None:
        # One choice for every Subscriber this feed makes, shared with the view's commands (1.3).
        self.choice = hub if isinstance(hub, HubChoice) else HubChoice(hub)
        self.hub = ",".join(self.choice.endpoints)
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._curve = curve
        self._factory = subscriber_factory
        self._lock = threading.Lock()
        self._pending = FeedBatch()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gsmon-watch-feed", daemon=True)
        self.failure: BaseException | None = None

    def start(self) -> HubFeed:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def take(self) -> FeedBatch:
        """Everything since the last call (updates moved out, the state copied)."""
        with self._lock:
            batch = self._pending
            self._pending = FeedBatch(
                state=batch.state,
                reason=batch.reason,
                endpoint=batch.endpoint,
                clock_offset_s=batch.clock_offset_s,
                last_update=batch.last_update,
            )
        return batch

    def _set_state(self, state: ConnectionState, reason: str = "") -> None:
        with self._lock:
            self._pending.state = state
            self._pending.reason = reason

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    subscriber = self._factory(
                        self.choice, self.prefix, timeout_s=self.timeout_s, curve=self._curve
                    ).connect()
                except HubUnavailableError as error:
                    self._set_state("waiting", " ".join(str(error).split()))
                    self._stop.wait(RETRY_PAUSE_S)
                    continue
                with subscriber:
                    self._follow(subscriber)
                return
        except BaseException as error:  # reported by the view, which then ends
            self.failure = error

    def _follow(self, subscriber: Subscriber) -> None:
        tree = subscriber.tree
        with self._lock:
            self._pending.updates = dict(tree)
            self._pending.reset = True
            self._pending.state = "connected"
            self._pending.reason = ""
            self._pending.endpoint = subscriber.hub
            self._pending.clock_offset_s = subscriber.hub_time() - time.time()
            self._pending.last_update = time.time()
            self._pending.received += len(tree)
        while not self._stop.is_set():
            changes = subscriber.poll(POLL_S)
            state: ConnectionState = "hub lost" if subscriber.hub_lost else "connected"
            with self._lock:
                pending = self._pending
                for change in changes:
                    pending.updates[change.path] = change.new
                if changes:
                    pending.received += len(changes)
                    pending.last_update = time.time()
                pending.state = state
                pending.endpoint = subscriber.hub
                pending.clock_offset_s = subscriber.hub_time() - time.time()
