"""Hub reads that many pages ask at once, asked of the hub once: the alarm listing of every open page.

Each page refreshes its alarm table from the hub's ``alarms`` listing when its
tree shows an alarm change (so every page at the same moment), after its own
writes and every few seconds. At a central hub each listing is routed to every
site, so N pages would cost the network N listings per change. Here the
askers of one key share one call, with one rule that keeps every answer fresh:
an answer was read by a call that *started after* the ask. A call on its way
started before a new ask (it may have read the book before the change that
made the page ask), so the new ask waits for the next call, which every ask
arriving meanwhile shares. Per key: at most one call on its way and one
waiting, whatever the number of pages; nothing is cached.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["SharedCalls"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(eq=False, slots=True)
class _Slot(Generic[V]):
    running: asyncio.Task[None] | None = None
    #: The answer of the next call, shared by every ask since the running one started (None: nobody asked).
    waiting: asyncio.Future[V] | None = None


def _retrieved(future: asyncio.Future[Any]) -> None:
    # Every asker of a failed call may have gone (a closed page): its error is theirs, never the loop's log.
    if not future.cancelled():
        future.exception()


class SharedCalls(Generic[K, V]):
    """``await shared(key)``: ``call(key)``'s answer from a call that started after this ask, shared by the
    asks of the same key that came while the previous call was on its way. An error reaches every sharer."""

    def __init__(self, call: Callable[[K], Awaitable[V]]) -> None:
        self._call = call
        self._slots: dict[K, _Slot[V]] = {}
        self.asked = 0
        self.calls = 0

    async def __call__(self, key: K) -> V:
        self.asked += 1
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        if slot.waiting is None:
            slot.waiting = asyncio.get_running_loop().create_future()
            slot.waiting.add_done_callback(_retrieved)
        answer = slot.waiting
        if slot.running is None:
            self._start(key, slot)
        # Shielded: an asker that goes away (its request cancelled) does not cancel the others' call.
        return await asyncio.shield(answer)

    def _start(self, key: K, slot: _Slot[V]) -> None:
        answer, slot.waiting = slot.waiting, None
        assert answer is not None
        self.calls += 1
        slot.running = asyncio.get_running_loop().create_task(self._run(key, slot, answer))

    async def _run(self, key: K, slot: _Slot[V], answer: asyncio.Future[V]) -> None:
        try:
            value = await self._call(key)
        except asyncio.CancelledError:  # the bridge is stopping: nobody gets an answer, no next call starts
            answer.cancel()
            if slot.waiting is not None:
                slot.waiting.cancel()
            del self._slots[key]
            raise
        except Exception as error:  # handed to every asker, who handles it
            answer.set_exception(error)
        else:
            answer.set_result(value)
        slot.running = None
        if slot.waiting is not None:
            self._start(key, slot)  # asked while this one was on its way: the next call, for all of them
        else:
            del self._slots[key]
