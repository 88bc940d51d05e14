"""gsmon watch's application driven headless by Textual's pilot: keys, prompts, hub lost, resize, units.

The feed is a fake (what the Subscriber thread would hand over); the
Commands are a fake operator (or the null viewer). Each test runs its own
event loop with ``asyncio.run``; ``app.tick()`` is called instead of waiting
for the redraw timer, so no test sleeps.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from textual.geometry import Size
from textual.pilot import Pilot
from textual.widgets import DataTable

from gsmon.common.client import NodeState
from gsmon.common.watch.app import (
    KEYS,
    LEGEND,
    AckPrompt,
    AlarmsScreen,
    HelpScreen,
    JournalScreen,
    ShelvePrompt,
    UnackPrompt,
    WatchApp,
)
from gsmon.common.watch.commands import (
    AckResult,
    AlarmRecord,
    CommandError,
    JournalRecord,
    Role,
    ShelfRecord,
    ShelveRequest,
)
from gsmon.common.watch.feed import FeedBatch
from gsmon.common.watch.model import GROUP_SUFFIX

LABELS = {0: "", 10: "GREEN", 20: "ORANGE", 30: "RED", 50: "STALE", 100: "CRITICAL"}


@dataclass(frozen=True)
class AlarmNode:
    """A NodeState as a hub with the alarm core sends it: the same fields plus the operator layer's."""

    path: str
    kind: str
    alertcode: int
    alertstr: str
    stale: bool
    value: Any
    agent: str | None
    polled_at_s: float | None
    received_at_s: float | None
    dt_s: float | None
    seq: int = 1
    attention: int | None = None
    alarm: dict[str, Any] | None = None
    unacked_below: int | None = None


def node(path: str, code: int = 10, value: Any = None, kind: str = "point", **extra: Any) -> Any:
    now = time.time()
    fields = (path, kind, code, LABELS[code], code == 50, value, "ag", now - 1.0, now - 0.5, 1.0, 1)
    return AlarmNode(*fields, **extra) if extra else NodeState(*fields)


def station(extra: bool = False) -> dict[str, Any]:
    """Several hundred points; a CRITICAL disk and a RED lock deep down; a big healthy rack."""
    tree: dict[str, Any] = {}

    def add(path: str, code: int, value: Any = None, kind: str = "point", **fields: Any) -> None:
        tree[path] = node(path, code, value, kind, **(fields if extra else {}))

    alarm = {"id": 7, "state": "active_unacked", "level": 100}
    add("GS1", 100, kind="parent", attention=100, unacked_below=2)
    add("GS1/Rack1", 100, kind="parent", attention=100)
    add("GS1/Rack1/Disk", 100, kind="parent", attention=100)
    add("GS1/Rack1/Disk/root_used_percent", 100, 99.5, attention=100, alarm=alarm)
    add("GS1/Rack1/Disk/root_free_bytes", 10, 1_073_741_824, attention=0)
    add("GS1/Rack1/Disk/root_total_bytes", 10, 256 * 1024**3, attention=0)
    add("GS1/Antenna1", 30, kind="parent", attention=30)
    add("GS1/Antenna1/RF", 30, kind="parent", attention=30)
    add(
        "GS1/Antenna1/RF/lock",
        30,
        "ERROR ConnectionError: no reply from the downconverter at 10.0.0.5 after 3 tries",
        attention=30,
        alarm={"id": 9, "state": "active_unacked", "level": 30},
    )
    add("GS1/Rack2", 10, kind="parent", attention=0)
    for index in range(300):
        add(f"GS1/Rack2/p{index:03d}_rx_bytes_per_s", 10, 8.21207e07, attention=0)
    add("_hub", 10, kind="parent", attention=0)
    add("_hub/uptime_s", 10, 3 * 86400 + 4 * 3600 + 12 * 60, attention=0)
    return tree


@dataclass
class FakeFeed:
    """What the Subscriber thread hands over, set by the test."""

    tree: dict[str, Any]
    state: str = "connected"
    pending: dict[str, Any] = field(default_factory=dict)
    fresh: bool = True
    endpoint: str = ""  # the hub the Subscriber uses now (a pair's: the one that answered)

    def take(self) -> FeedBatch:
        if self.fresh:
            self.fresh = False
            return FeedBatch(dict(self.tree), True, self.state, "", 0.0, time.time(), endpoint=self.endpoint)  # type: ignore[arg-type]
        updates, self.pending = self.pending, {}
        return FeedBatch(updates, False, self.state, "connection refused", 0.0, time.time(), endpoint=self.endpoint)  # type: ignore[arg-type]


@dataclass
class FakeCommands:
    """An operator's Commands that records what it was asked."""

    role: Role = "operator"
    acks: list[tuple[tuple[int, ...], str]] = field(default_factory=list)
    shelves: list[ShelveRequest] = field(default_factory=list)
    unacks: list[tuple[tuple[int, ...], str]] = field(default_factory=list)
    refuse: str | None = None

    def ack(self, ids: Sequence[int], comment: str) -> AckResult:
        if self.refuse:
            raise CommandError(self.refuse)
        self.acks.append((tuple(ids), comment))
        return AckResult(tuple(ids))

    def unack(self, ids: Sequence[int], comment: str) -> AckResult:
        self.unacks.append((tuple(ids), comment))
        return AckResult(tuple(ids))

    def shelve(self, request: ShelveRequest) -> ShelfRecord:
        self.shelves.append(request)
        return ShelfRecord(3, request.prefix, request.mode, request.comment, "ops", time.time(), time.time() + 7200)

    def alarms(self, prefix: str) -> list[AlarmRecord]:
        return [AlarmRecord(7, "GS1/Rack1/Disk/root_used_percent", "active_unacked", 100, raised_at=time.time())]

    def unreached_sites(self) -> tuple[tuple[str, str], ...]:
        return (("GS2", "nothing heard from site hub GS2 for 12 s"),)

    def journal(self, prefix: str, since: float) -> list[JournalRecord]:
        return [JournalRecord(time=time.time() - 5, path="GS1/Antenna1/RF/lock", kind="level", old=10, new=30)]


Scenario = Callable[[WatchApp, Pilot[int]], Awaitable[None]]


def run(
    scenario: Scenario,
    *,
    feed: FakeFeed | None = None,
    commands: Any = None,
    size: tuple[int, int] = (80, 24),
    colour: bool = True,
) -> WatchApp:
    """Run ``scenario`` against a headless app; the app has exited when this returns."""
    app = WatchApp((feed or FakeFeed(station())).take, hub="tcp://127.0.0.1:7763", commands=commands, colour=colour)

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await scenario(app, pilot)

    asyncio.run(main())
    return app


def tree_lines(app: WatchApp) -> list[str]:
    """The tree's lines on screen, as text."""
    view = app.tree_view
    return [view.render_line(y).text.rstrip() for y in range(view.scrollable_content_region.height)]


def text(widget: Any) -> str:
    return str(widget.render())


def selected(app: WatchApp) -> str:
    row = app.model.selected
    assert row is not None
    return row.key


# ----------------------------------------------------------------------


def test_first_screen_shows_the_deep_problems_at_80x24() -> None:
    """Problems first: the CRITICAL disk and the RED lock are on the first screen; Rack2 is one line."""

    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        lines = tree_lines(app)
        assert len(lines) <= 24
        shown = "\n".join(lines)
        assert "root_used_percent ‼ CRITICAL 99.5%" in " ".join(shown.split())
        assert "lock" in shown
        assert "✗ RED" in shown
        rack2 = next(line for line in lines if "Rack2" in line)
        assert "✓ 300 ok" in rack2
        assert "p000_rx_bytes_per_s" not in shown
        assert lines.index(next(line for line in lines if "_hub" in line)) > lines.index(rack2)
        assert "‼ CRITICAL" in text(app._title)
        status = text(app._status)
        assert "connected" in status
        assert "tcp://127.0.0.1:7763" in status
        assert "updated " in status
        await pilot.press("q")

    app = run(scenario)
    assert app.return_value in (0, None)


def test_navigation_expand_collapse_and_the_full_tree() -> None:
    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        assert selected(app) == "GS1"
        await pilot.press("j", "down", "j")
        assert selected(app) == "GS1/Rack1/Disk/root_used_percent"
        await pilot.press("k")
        assert selected(app) == "GS1/Rack1/Disk"
        await pilot.press("left")
        assert "root_used_percent" not in "\n".join(tree_lines(app))
        await pilot.press("right")
        assert "root_used_percent" in "\n".join(tree_lines(app))
        await pilot.press("enter")
        assert "root_used_percent" not in "\n".join(tree_lines(app))
        app.model.select("GS1/Rack2")
        await pilot.press("l")
        assert "p000_rx_bytes_per_s" in "\n".join(tree_lines(app))
        assert "82.1 MB/s" in "\n".join(tree_lines(app)), "units in every human view"
        await pilot.press("G")
        assert selected(app) == "_hub"
        lines = tree_lines(app)
        assert any(line.startswith(" ▸ _hub") for line in lines), "the scroll follows the cursor"
        await pilot.press("g", "t")
        assert app.model.mode == "full"
        assert "full tree" in text(app._title)
        assert tree_lines(app)[0].startswith(" ▾ GS1")
        assert "Antenna1" in tree_lines(app)[1], "path order"
        await pilot.press("t")
        assert app.model.mode == "attention"

    run(scenario)


def test_a_group_of_healthy_points_opens_on_enter() -> None:
    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        assert app.model.select("GS1/Rack1/Disk" + GROUP_SUFFIX)
        app.tree_view.sync(force=True)
        assert any("(2 ok)" in line for line in tree_lines(app))
        await pilot.press("enter")
        assert selected(app) == "GS1/Rack1/Disk/root_free_bytes"
        assert any("1.00 GiB" in line for line in tree_lines(app))

    run(scenario)


def test_filter_prompt_shows_the_matches_and_returns_to_the_tree() -> None:
    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        await pilot.press("slash")
        assert app._filter.has_focus
        await pilot.press(*"lock", "enter")
        assert app.tree_view.has_focus, "Enter returns the cursor to the tree"
        lines = [line for line in tree_lines(app) if line]
        names = [line.split()[1] if line.split()[0] in "▾▸" else line.split()[0] for line in lines]
        assert names == ["GS1", "Antenna1", "RF", "lock"]
        assert "filter 'lock'" in text(app._title)
        await pilot.press("slash", *"GS1/Rack2", "enter")
        assert len(app.model.rows) == 302  # GS1, Rack2 and its 300 points: nothing else, all shown
        await pilot.press("escape")
        assert app.model.filter_text is None
        assert len(app.model.rows) < 20
        await pilot.press("slash", *"xyz", "escape")
        assert app.model.filter_text is None, "Esc in the prompt cancels it"
        assert app.tree_view.has_focus

    run(scenario)


def test_ack_prompt_sends_the_listed_ids_with_the_comment() -> None:
    commands = FakeCommands()

    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        assert app.model.unacked_count() == 2
        assert "2 unacked" in text(app._status)
        await pilot.press("a")
        assert isinstance(app.screen, AckPrompt)
        assert app.screen.ids == (7, 9)
        await pilot.press("enter")
        await pilot.pause()
        assert not commands.acks, "no comment, nothing sent"
        assert "comment is required" in text(app.screen.query_one("#prompt-error"))
        await pilot.press(*"on it", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert commands.acks == [((7, 9), "on it")]
        assert not isinstance(app.screen, AckPrompt)
        assert "acknowledged 2 of 2" in text(app._status)

    run(scenario, feed=FakeFeed(station(extra=True)), commands=commands)


def test_u_unacks_the_acked_alarms_of_the_selected_subtree() -> None:
    commands = FakeCommands()
    tree = station(extra=True)
    lock = tree["GS1/Antenna1/RF/lock"]
    tree["GS1/Antenna1/RF/lock"] = node(
        lock.path, 30, lock.value, "point", attention=0, alarm={"id": 9, "state": "active_acked", "level": 30}
    )

    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        app.model.select("GS1/Rack1")
        await pilot.press("u")
        assert not isinstance(app.screen, UnackPrompt)
        assert "nothing acknowledged to take back under GS1/Rack1" in text(app._status)
        app.model.select("GS1/Antenna1")
        await pilot.press("u")
        assert isinstance(app.screen, UnackPrompt)
        assert app.screen.ids == (9,)
        await pilot.press(*"not fixed", "enter")  # a comment is optional; this one is sent
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert commands.unacks == [((9,), "not fixed")]
        assert "unacknowledged 1 of 1 alarms under GS1/Antenna1" in text(app._status)

    run(scenario, feed=FakeFeed(tree), commands=commands)


def test_ack_refused_by_the_hub_says_why_in_the_prompt() -> None:
    commands = FakeCommands(refuse="the hub refused: this key is a viewer")

    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        await pilot.press("a", *"x", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, AckPrompt)
        assert "this key is a viewer" in text(app.screen.query_one("#prompt-error"))
        await pilot.press("escape")
        assert not isinstance(app.screen, AckPrompt)

    run(scenario, feed=FakeFeed(station(extra=True)), commands=commands)


def test_brackets_in_names_and_hub_messages_are_text_in_prompts_and_lists() -> None:
    """A name may hold any character but "/": the node ``Rack[/x]`` (segments ``Rack[`` and ``x]``) in a
    prompt's question or a list's title, or a hub's answer with brackets, is shown as it is (as Textual
    markup, ``[/x]`` raised MarkupError and ended the view, and ``[b]`` vanished)."""
    tree = station(extra=True)
    tree["GS1/Rack["] = node("GS1/Rack[", 30, kind="parent", attention=30)
    tree["GS1/Rack[/x]"] = node("GS1/Rack[/x]", 30, kind="parent", attention=30)
    alarm = {"id": 11, "state": "active_unacked", "level": 30}
    tree["GS1/Rack[/x]/p_percent"] = node("GS1/Rack[/x]/p_percent", 30, 97.0, attention=30, alarm=alarm)
    refusal = "the hub refused: nothing to acknowledge under GS1/Rack[/x] [b]now[/b]"
    commands = FakeCommands(refuse=refusal)

    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        assert app.model.select("GS1/Rack[/x]")
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, AckPrompt)
        assert "under GS1/Rack[/x] (ids 11)" in text(app.screen.query_one("#prompt-question"))
        await pilot.press(*"x", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert text(app.screen.query_one("#prompt-error")) == refusal
        await pilot.press("escape", "A")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, AlarmsScreen)
        assert "alarms under GS1/Rack[/x] " in text(app.screen.query_one("#list-title"))
        await pilot.press("escape")
        assert app.failure is None

    app = run(scenario, feed=FakeFeed(tree), commands=commands)
    assert app.return_value in (0, None)


def test_shelve_prompt_sends_the_selected_prefix_mode_and_comment() -> None:
    commands = FakeCommands()

    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        app.model.select("GS1/Antenna1")
        await pilot.press("s")
        assert isinstance(app.screen, ShelvePrompt)
        await pilot.press(*"maintenance", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert commands.shelves == [ShelveRequest("GS1/Antenna1", "timed", "maintenance", duration_s=7200.0)]
        assert "shelf 3 on GS1/Antenna1 (timed)" in text(app._status)
        await pilot.press("s")
        window = app.screen.query_one("#shelve-window")
        window.value = "soon"  # type: ignore[attr-defined]
        await pilot.press(*"why", "enter")
        assert "expected how long to shelve" in text(app.screen.query_one("#prompt-error"))
        assert len(commands.shelves) == 1

    run(scenario, commands=commands)


def test_a_viewer_is_not_offered_ack_or_shelve() -> None:
    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        assert app.check_action("ack", ()) is False
        assert app.check_action("shelve", ()) is False
        assert app.check_action("alarms", ()) is True
        await pilot.press("a")  # hidden and disabled: nothing happens
        assert not isinstance(app.screen, AckPrompt)
        await pilot.press("s")
        assert not isinstance(app.screen, ShelvePrompt)

    run(scenario)  # NullCommands: the viewer


def test_alarm_list_and_journal_through_commands_or_not_available() -> None:
    async def with_commands(app: WatchApp, pilot: Pilot[int]) -> None:
        await pilot.press("A")
        assert isinstance(app.screen, AlarmsScreen)
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one("#list-table", DataTable)
        assert table.row_count == 1
        # The cells gsmon alarms prints: state and level in words, the raised time with its zone.
        cells = dict(zip(AlarmsScreen.COLUMNS, map(str, table.get_row_at(0)), strict=True))
        assert (cells["id"], cells["state"], cells["level"]) == ("7", "UNACKED", "CRITICAL")
        assert cells["path"] == "GS1/Rack1/Disk/root_used_percent"
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ \(now\)", cells["raised"]), cells["raised"]
        # (1.3) A site the central hub could not ask is said, as gsmon alarms says it.
        assert app.screen.message == "GS2: not reached (nothing heard from site hub GS2 for 12 s)"  # type: ignore[attr-defined]
        await pilot.press("escape", "L")
        assert isinstance(app.screen, JournalScreen)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen.query_one("#list-table").row_count == 1  # type: ignore[attr-defined]
        await pilot.press("escape")

    run(with_commands, commands=FakeCommands())

    async def without(app: WatchApp, pilot: Pilot[int]) -> None:
        await pilot.press("A")
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, AlarmsScreen)
        assert screen.message == "the alarm list is not available on this hub"
        await pilot.press("escape", "L")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, JournalScreen)
        assert app.screen.message == "the journal is not available on this hub"

    run(without)


def test_the_lists_show_brackets_and_control_characters_as_text() -> None:
    """A comment or a value with square brackets is text, not Rich markup (``[/dev/sda]`` read as a closing
    tag raised MarkupError and ended the whole view); control characters are escaped, as in every view."""

    @dataclass
    class Bracketed(FakeCommands):
        def alarms(self, prefix: str) -> list[AlarmRecord]:
            return [
                AlarmRecord(
                    8,
                    "GS1/Rack1/Disk/mount",
                    "active_acked",
                    30,
                    value="[/dev/sda] [bold]ro",
                    acked_by="ops",
                    ack_comment="[/x]",
                )
            ]

        def journal(self, prefix: str, since: float) -> list[JournalRecord]:
            return [
                JournalRecord(time=time.time(), path="GS1/Rack1/Disk/mount", kind="ack", comment="swapped [/dev/sda]"),
                JournalRecord(time=time.time(), path="GS1/Rack1/Disk/mount", kind="ack", user="[red]ops\x1b[2J"),
            ]

    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        await pilot.press("A")
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one("#list-table", DataTable)
        cells = dict(zip(AlarmsScreen.COLUMNS, map(str, table.get_row_at(0)), strict=True))
        assert cells["value"] == "[/dev/sda] [bold]ro"
        assert cells["note"].endswith(": [/x]")
        await pilot.press("escape", "L")
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one("#list-table", DataTable)
        rows = [dict(zip(JournalScreen.COLUMNS, map(str, table.get_row_at(i)), strict=True)) for i in range(2)]
        assert rows[0]["comment"] == "swapped [/dev/sda]"
        assert rows[1]["user"] == "[red]ops\\x1b[2J"
        await pilot.press("escape")
        assert app.failure is None

    app = run(scenario, commands=Bracketed())
    assert app.return_value in (0, None)


def test_a_list_wider_than_the_screen_says_so_in_its_title() -> None:
    """At 80 columns the journal's last columns are off to the right (not cut: a → away); the title says
    so, and stops saying it when the terminal is wide enough."""

    @dataclass
    class Talkative(FakeCommands):
        def journal(self, prefix: str, since: float) -> list[JournalRecord]:
            comment = "swapped the disk in bay 3 and started the rebuild, back in two hours"
            path = "GS1/Rack1/Disk/root_used_percent"
            return [JournalRecord(time=time.time(), path=path, kind="ack", user="ops", comment=comment)]

    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        await pilot.press("L")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.pause()
        title = text(app.screen.query_one("#list-title"))
        assert title.startswith(" ← → more columns · journal of GS1"), title
        await pilot.resize_terminal(220, 40)
        await pilot.pause()
        await pilot.pause()
        title = text(app.screen.query_one("#list-title"))
        assert title.startswith(" journal of GS1"), title

    run(scenario, commands=Talkative())


def test_hub_lost_every_row_unknown_then_back() -> None:
    feed = FakeFeed(station())

    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        feed.state = "hub lost"
        app.tick()
        await pilot.pause()
        lines = [line for line in tree_lines(app) if line]
        assert all("? UNKNOWN" in line for line in lines)
        assert not any("GREEN" in line or "CRITICAL" in line or " ok" in line for line in lines)
        assert any("300 unknown" in line for line in lines)
        assert "HUB LOST" in text(app._title)
        assert "hub lost" in text(app._status)
        feed.state = "connected"
        app.tick()
        await pilot.pause()
        assert any("‼ CRITICAL" in line for line in tree_lines(app))

    run(scenario, feed=feed)


def test_the_status_bar_names_the_hub_of_the_pair_in_use() -> None:
    """Issue 17 (1.3): after a failover the status bar names the hub the view reads now."""
    feed = FakeFeed(station(), endpoint="tcp://10.0.0.1:7763")

    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        app.tick()
        await pilot.pause()
        assert "tcp://10.0.0.1:7763" in text(app._status)
        feed.endpoint = "tcp://10.0.0.2:7763"
        app.tick()
        await pilot.pause()
        assert "tcp://10.0.0.2:7763" in text(app._status)
        assert "hub lost" not in text(app._status)

    run(scenario, feed=feed)


def test_waiting_for_the_hub_says_so() -> None:
    feed = FakeFeed({}, state="waiting", fresh=False)

    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        assert "waiting for the hub at tcp://127.0.0.1:7763: connection refused" in tree_lines(app)[0]
        assert "waiting" in text(app._status)

    run(scenario, feed=feed)


def test_updates_are_coalesced_into_the_next_redraw() -> None:
    feed = FakeFeed(station())

    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        for value in range(100):
            feed.pending["GS1/Rack1/Disk/root_used_percent"] = node("GS1/Rack1/Disk/root_used_percent", 100, value)
        built = app.model.rows_version
        app.tick()
        await pilot.pause()
        assert any("99%" in line for line in tree_lines(app))
        assert app.model.rows_version == built, "a value change rebuilds no rows"
        feed.pending["GS1/Rack2/p005_rx_bytes_per_s"] = node("GS1/Rack2/p005_rx_bytes_per_s", 100, 1.0)
        feed.pending["GS1/Rack2"] = node("GS1/Rack2", 100, kind="parent")
        app.tick()
        await pilot.pause()
        assert any("p005_rx_bytes_per_s" in line for line in tree_lines(app)), "a new problem opens its way"

    run(scenario, feed=feed)


def test_a_resize_the_terminal_did_not_signal_is_followed_at_the_second_tick() -> None:
    # tmux resized under CI load and the view stayed at 80x24 for 30 s: the SIGWINCH (or the in-band
    # report) never reached Textual. The app asks the terminal's size every tick as well.
    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        terminal: list[tuple[int, int] | None] = [(80, 24)]
        app.terminal_size = lambda: terminal[0]
        app.tick()
        await pilot.pause()
        assert tuple(app.size) == (80, 24)
        terminal[0] = (160, 50)
        # The first sight: a resize may be on its way, left to the driver (checked before any await: the
        # app's own timer ticks too, and under load it may tick a second time during a pause).
        app._follow_terminal_size()
        assert app._size_seen == Size(160, 50)
        assert tuple(app.size) == (80, 24)
        app._follow_terminal_size()
        assert app._size_seen is None  # the second sight: the Resize is posted
        await pilot.pause()
        assert tuple(app.size) == (160, 50)
        assert app._detail_shown(), "laid out for the new size (the detail pane has room now)"
        terminal[0] = None  # no terminal to ask: nothing changes
        app.tick()
        app.tick()
        await pilot.pause()
        assert tuple(app.size) == (160, 50)

    run(scenario)


def test_resize_moves_and_shows_the_detail_pane() -> None:
    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        assert not app._detail.display or app._detail.size.width == 0
        app.model.select("GS1/Antenna1/RF/lock")
        await pilot.press("enter")  # at 80x24, Enter on a point opens the detail pane
        await pilot.pause()
        assert app._detail_shown()
        detail = app._detail.plain
        assert "Path: GS1/Antenna1/RF/lock" in detail
        assert "after 3 tries" in detail, "the whole value, never cut"
        await pilot.press("enter")
        assert not app._detail_shown()
        await pilot.resize_terminal(160, 50)
        await pilot.pause()
        assert app._detail_shown(), "a big terminal has room for it"
        assert app.tree_view.size.width < 160
        lines = tree_lines(app)
        assert all(len(line) <= app.tree_view.size.width for line in lines)
        assert "ERROR ConnectionError: no reply from the" in "\n".join(lines), "wider than the seed's 39 characters"
        await pilot.resize_terminal(60, 15)
        await pilot.pause()
        assert not app._detail_shown()
        assert len(tree_lines(app)) < 15
        assert all(len(line) <= 60 for line in tree_lines(app))

    run(scenario)


def test_help_lists_every_key() -> None:
    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        # What is on the screen, line by line (at 80 columns most descriptions take two lines).
        drawn = [
            widget.render_line(y).text.rstrip()
            for widget in app.screen.query("Static")
            for y in range(widget.size.height)
        ]
        shown = " ".join(" ".join(drawn).split())  # the words, whatever the wrapping
        column = max(len(keys) for keys, _ in KEYS) + 2
        for keys, what in KEYS:
            first = next(index for index, line in enumerate(drawn) if line.startswith(keys + "  "))
            assert drawn[first][column:].startswith(what[:20]), drawn[first]
            words = " ".join(line[column:].strip() for line in drawn[first : first + 3])
            assert what[:50] in words
            if len(what) > 60:  # wrapped: the rest of the description under its first line, not under the keys
                assert drawn[first + 1][:column].strip() == "", drawn[first + 1]
        assert "a and s need an operator" in shown
        assert " ".join(LEGEND.split()) in shown
        assert "! before a point's name" in shown
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("q")

    run(scenario)


def test_the_footer_shows_all_its_keys_at_80_columns() -> None:
    """Textual's footer cuts what does not fit, with no ellipsis: at 80 columns it ended in ``u unack  A``
    and hid the alarm list and the journal. Every key it shows must fit (? lists them all)."""

    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        await pilot.pause()
        footer_keys = list(app.screen.query("Footer FooterKey"))  # Textual's own widget (not exported)
        shown = {getattr(key, "key_display", "") for key in footer_keys}
        assert {"q", "?", "/", "t", "d", "a", "s", "A", "L"} <= shown, shown
        for key in footer_keys:
            assert key.region.right <= 80, f"{getattr(key, 'description', '')} ends at {key.region.right}"

    run(scenario, commands=FakeCommands(), size=(80, 24))


def test_a_tick_after_the_screens_are_gone_does_nothing() -> None:
    """The refresh timer may fire once more while the app closes (seen in CI: ScreenStackError from the tick's
    alarm-list refresh, after the last screen was popped): that tick must not raise."""
    app = run(lambda app, pilot: pilot.pause())
    assert not app.screen_stack
    ticks = app.ticks
    app.tick()
    assert app.ticks == ticks


def test_mouse_click_selects_and_expands() -> None:
    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        index = app.model.index_of("GS1/Rack2")
        assert index is not None
        await pilot.click("#tree", offset=(5, index))
        assert selected(app) == "GS1/Rack2"
        await pilot.click("#tree", offset=(5, index))
        assert any("p000_rx_bytes_per_s" in line for line in tree_lines(app))

    run(scenario)


def test_no_colour_draws_no_colour() -> None:
    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        assert app.no_color
        for y in range(5):
            for segment in app.tree_view.render_line(y):
                style = segment.style
                assert style is None or (style.color is None and style.bgcolor is None)

    run(scenario, colour=False)


def test_no_color_in_the_environment_draws_no_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_COLOR (https://no-color.org) without --no-colour: the same monochrome view, levels told apart by
    their symbols and words."""
    monkeypatch.setenv("NO_COLOR", "1")

    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        assert app.no_color
        assert not app.colour
        lines = tree_lines(app)
        assert any("‼ CRITICAL" in line for line in lines)
        assert any("✗ RED" in line for line in lines)
        for y in range(len(lines)):
            for segment in app.tree_view.render_line(y):
                style = segment.style
                assert style is None or (style.color is None and style.bgcolor is None)

    run(scenario, colour=True)


def test_a_failing_check_ends_the_app_with_its_error() -> None:
    def check() -> None:
        raise RuntimeError("the agent stopped (exit status -9)")

    app = WatchApp(FakeFeed(station()).take, hub="tcp://h:1", check=check)

    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()

    asyncio.run(main())
    assert isinstance(app.failure, RuntimeError)
    assert app.return_value == 1


@pytest.mark.parametrize("size", [(80, 24), (160, 50), (40, 10)])
def test_fits_any_size(size: tuple[int, int]) -> None:
    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        lines = tree_lines(app)
        assert 0 < len(lines) < size[1]
        assert all(len(line) <= size[0] for line in lines)

    run(scenario, size=size)


def test_a_role_learnt_later_offers_ack_once_known() -> None:
    commands = FakeCommands(role="viewer")

    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        await pilot.press("a")
        assert not isinstance(app.screen, AckPrompt)
        commands.role = "operator"  # the hub has answered whoami
        app.tick()
        await pilot.pause()
        await pilot.press("a")
        assert isinstance(app.screen, AckPrompt)

    run(scenario, feed=FakeFeed(station(extra=True)), commands=commands)


# --- the redraw after a key (issue 14 §4: bench/watch_bench.py measures it)


def test_a_move_notes_the_first_draw_of_the_moved_cursor_row_once() -> None:
    """The benchmark times a press to the FIRST draw of the moved cursor's row: a later redraw keeps it."""

    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        tree = app.tree_view
        moves = tree.moves
        await pilot.press("j")
        await pilot.pause()
        assert tree.moves == moves + 1
        drawn_move, drawn_at = tree.cursor_drawn
        assert drawn_move == tree.moves
        assert drawn_at > 0
        app.tick()
        tree.sync(force=True)
        await pilot.pause()
        assert tree.cursor_drawn == (drawn_move, drawn_at), "a tick's redraw of the same row is not a new draw"
        await pilot.press("k")
        await pilot.pause()
        assert tree.cursor_drawn[0] == moves + 2
        assert tree.cursor_drawn[1] > drawn_at

    run(scenario)


def test_j_k_l_h_are_typed_into_the_filter_not_taken_by_the_tree() -> None:
    """The tree's keys are priority bindings only while the tree has the focus."""

    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        cursor = app.model.cursor
        await pilot.press("slash", *"jklh")
        assert app._filter.value == "jklh"
        assert app.model.cursor == cursor
        await pilot.press("escape", "j")
        assert app.model.cursor == cursor + 1

    run(scenario)


def test_a_line_redrawn_after_an_update_shows_the_new_value() -> None:
    """Drawn lines are kept by their text: a changed value is a new line, never the kept one."""
    feed = FakeFeed(station())

    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        path = "GS1/Rack1/Disk/root_used_percent"
        assert app.model.select(path)
        index = app.model.cursor
        top = round(app.tree_view.scroll_y)
        before = app.tree_view.render_line(index - top).text
        assert "99.5" in before
        feed.pending[path] = node(path, 100, 97.25)
        app.tick()
        await pilot.pause()
        after = app.tree_view.render_line(app.model.cursor - top).text
        assert "97.2" in after
        assert "99.5" not in after

    run(scenario, feed=feed)


def test_with_freeze_gc_the_full_passes_wait_for_quiet_keys_and_are_handed_back() -> None:
    import gc

    before = gc.get_threshold()
    app = WatchApp(FakeFeed(station()).take, hub="tcp://127.0.0.1:7763", freeze_gc=True)

    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            collections = app.collections
            assert collections is not None, "taken over once the snapshot is in"
            assert gc.get_threshold()[:2] == before[:2]
            assert gc.get_threshold()[2] > before[2]
            collections.every_s = 0.0
            collections.latest_s = 3600.0
            collections.key(time.monotonic())
            app.tick()
            assert collections.passes == 0, "a key a moment ago: no full pass from the timer"
            await pilot.press("j")
            await pilot.pause()
            assert collections.passes == 1, "once the key's redraw is painted"
            collections.quiet_s = 0.0
            app.tick()
            assert collections.passes == 2

    try:
        asyncio.run(main())
    finally:
        gc.unfreeze()
    assert gc.get_threshold() == before, "the thresholds are handed back when the app ends"


def test_an_update_to_a_line_on_screen_is_painted_and_only_its_line_is_asked_for() -> None:
    """A tick redraws the lines whose nodes changed (what the terminal shows: the screenshot)."""
    feed = FakeFeed(station())

    async def scenario(app: WatchApp, pilot: Pilot[int]) -> None:
        path = "GS1/Rack1/Disk/root_used_percent"
        app.tick()
        await pilot.pause()
        assert "99.5" in app.export_screenshot()
        tree = app.tree_view
        feed.pending[path] = node(path, 100, 97.25)
        refreshed: list[int] = []
        original = tree.refresh_line
        tree.refresh_line = lambda y: (refreshed.append(y), original(y))[1]  # type: ignore[method-assign]
        app._ages_drawn = time.monotonic()  # not the once-a-second redraw of every line
        app.tick()
        await pilot.pause()
        assert refreshed == [app.model.index_of(path)]
        screen = app.export_screenshot()
        assert "97.2" in screen
        assert "99.5" not in screen

    run(scenario, feed=feed, size=(120, 40))
