"""SharedCalls: the asks of one key share the next call, and every answer was read after its ask; the bridge's
``/api/v1/alarms`` asked by many pages at once goes to the hub once per round.

Stand-in calls that the test answers by hand (no sockets, no timed sleeps:
``asyncio.sleep(0)`` only lets the loop run the tasks that are ready).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gsmon.common.web.app import WebBridge, WebSettings
from gsmon.common.web.hub_commands import CommandOutcome
from gsmon.common.web.shared_calls import SharedCalls


class HandAnswered:
    """The hub: each call waits until the test answers it; ``started`` lists the keys in call order."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.pending: list[asyncio.Future[str]] = []

    async def __call__(self, key: str) -> str:
        self.started.append(key)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        return await future

    def answer(self, index: int, value: str) -> None:
        self.pending[index].set_result(value)

    def fail(self, index: int, error: Exception) -> None:
        self.pending[index].set_exception(error)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def _run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def test_asks_while_a_call_is_on_its_way_share_the_next_call_not_the_old_one() -> None:
    async def test() -> None:
        hub = HandAnswered()
        shared: SharedCalls[str, str] = SharedCalls(hub)
        first = asyncio.ensure_future(shared("alarms"))
        await _settle()
        assert hub.started == ["alarms"]
        # Two pages ask while the first call is out: it may have read the book before their change.
        second = asyncio.ensure_future(shared("alarms"))
        third = asyncio.ensure_future(shared("alarms"))
        await _settle()
        assert hub.started == ["alarms"]  # they wait: one call at a time per key
        hub.answer(0, "book at t0")
        await _settle()
        assert await first == "book at t0"
        assert not second.done()
        assert not third.done()
        assert hub.started == ["alarms", "alarms"]  # the next call, for both of them
        hub.answer(1, "book at t1")
        assert (await second, await third) == ("book at t1", "book at t1")
        assert (shared.asked, shared.calls) == (3, 2)
        # Idle again: a new ask starts a call at once.
        fourth = asyncio.ensure_future(shared("alarms"))
        await _settle()
        assert len(hub.started) == 3
        hub.answer(2, "book at t2")
        assert await fourth == "book at t2"

    _run(test)


def test_keys_do_not_share() -> None:
    async def test() -> None:
        hub = HandAnswered()
        shared: SharedCalls[str, str] = SharedCalls(hub)
        otto = asyncio.ensure_future(shared("alarms for otto"))
        vera = asyncio.ensure_future(shared("alarms for vera"))
        await _settle()
        assert hub.started == ["alarms for otto", "alarms for vera"]
        hub.answer(1, "vera's")
        hub.answer(0, "otto's")
        assert (await otto, await vera) == ("otto's", "vera's")

    _run(test)


def test_an_error_reaches_every_sharer_and_the_next_ask_calls_again() -> None:
    async def test() -> None:
        hub = HandAnswered()
        shared: SharedCalls[str, str] = SharedCalls(hub)
        first = asyncio.ensure_future(shared("alarms"))
        await _settle()
        second = asyncio.ensure_future(shared("alarms"))
        third = asyncio.ensure_future(shared("alarms"))
        hub.answer(0, "book")
        await _settle()
        hub.fail(1, TimeoutError("no answer from the hub within 3 s"))
        assert await first == "book"
        for sharer in (second, third):
            with pytest.raises(TimeoutError, match="no answer"):
                await sharer
        again = asyncio.ensure_future(shared("alarms"))
        await _settle()
        hub.answer(2, "book again")
        assert await again == "book again"

    _run(test)


def test_an_asker_that_goes_away_leaves_the_call_to_the_others() -> None:
    async def test() -> None:
        hub = HandAnswered()
        shared: SharedCalls[str, str] = SharedCalls(hub)
        gone = asyncio.ensure_future(shared("alarms"))
        await _settle()
        staying = asyncio.ensure_future(shared("alarms"))
        leaving = asyncio.ensure_future(shared("alarms"))
        await _settle()
        gone.cancel()  # the page closed while its listing was on its way
        leaving.cancel()
        hub.answer(0, "book")
        await _settle()
        hub.answer(1, "newer book")
        assert await staying == "newer book"
        assert gone.cancelled()
        assert leaving.cancelled()
        assert shared.calls == 2

    _run(test)


def test_a_failed_call_nobody_waits_for_any_more_leaves_nothing_behind(caplog: pytest.LogCaptureFixture) -> None:
    async def test() -> None:
        hub = HandAnswered()
        shared: SharedCalls[str, str] = SharedCalls(hub)
        gone = asyncio.ensure_future(shared("alarms"))
        await _settle()
        gone.cancel()
        hub.fail(0, TimeoutError("no answer"))
        await _settle()
        after = asyncio.ensure_future(shared("alarms"))
        await _settle()
        hub.answer(1, "book")
        assert await after == "book"

    _run(test)
    assert "never retrieved" not in caplog.text


class StandInCommands:
    """The bridge's COMMAND client: records each call and waits for the test to answer it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], str | None]] = []
        self.pending: list[asyncio.Future[CommandOutcome]] = []

    async def call(self, command: str, args: dict[str, Any], *, user: str | None) -> CommandOutcome:
        self.calls.append((command, dict(args), user))
        future: asyncio.Future[CommandOutcome] = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        return await future

    async def close(self) -> None:
        return None


def test_the_bridges_alarm_listing_asked_by_many_pages_at_once_is_one_hub_call_per_round() -> None:
    async def test() -> None:
        commands = StandInCommands()
        bridge = WebBridge(WebSettings(hub="tcp://127.0.0.1:1"), feed=cast(Any, object()), commands=cast(Any, commands))

        def listing(query: str = "") -> asyncio.Future[web.Response]:
            return asyncio.ensure_future(bridge.alarms(make_mocked_request("GET", f"/api/v1/alarms{query}")))

        first = listing()
        await _settle()
        pages = [listing() for _ in range(5)]  # every page saw the same alarm change in its tree
        filtered = listing("?states=rtn_unacked")  # another ask: its own call
        await _settle()
        assert [args for _, args, _ in commands.calls] == [
            {"prefix": "", "via": "web"},
            {"prefix": "", "states": ["rtn_unacked"], "via": "web"},
        ]
        book = {"alarms": [{"id": 7, "path": "GS1/fan", "state": "rtn_unacked", "raised_at": 0.0}]}
        commands.pending[0].set_result(CommandOutcome(True, "1 alarm", book))
        commands.pending[1].set_result(CommandOutcome(True, "0 alarms", {"alarms": []}))
        await _settle()
        assert len(commands.calls) == 3  # the five pages' round, read after they asked
        commands.pending[2].set_result(CommandOutcome(True, "1 alarm", book))
        for response in [await first, *[await page for page in pages]]:
            assert response.status == 200
            body = json.loads(cast(bytes, response.body))
            assert body["result"]["alarms"][0]["raised_at"] == "1970-01-01T00:00:00.000Z"
        assert json.loads(cast(bytes, (await filtered).body))["result"] == {"alarms": []}

    _run(test)
