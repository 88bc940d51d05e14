"""The Textual shell of ``gsmon watch``: widgets around the pure view model, and the keys.

Nothing here decides what a row says (:mod:`~gsmon.common.watch.layout`) or
which rows there are (:mod:`~gsmon.common.watch.model`): the widgets place
and colour, and turn keys into model calls. The tree is one line-API widget
(:class:`TreeView`) that renders only the lines on screen, whatever the
tree's size. A timer takes what the feed received every
:data:`REDRAW_S` seconds (at most 4 redraws a second, every change between
two redraws coalesced into one); keys redraw at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, Final

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.geometry import Size
from textual.screen import ModalScreen, Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, Static

from gsmon.common.alarms_cli import ALARM_COLUMNS, alarm_cells, sorted_alarms
from gsmon.common.units import one_line
from gsmon.common.watch.collector import FullCollections, hand_back, take_over
from gsmon.common.watch.commands import (
    MAX_COMMENT_CHARS,
    ROLES_THAT_ACT,
    CommandError,
    Commands,
    NullCommands,
    ShelveRequest,
    check_comment,
    parse_shelve_window,
)
from gsmon.common.watch.feed import FeedBatch
from gsmon.common.watch.layout import (
    UNACKED_MARK,
    Cells,
    Columns,
    ConnectionState,
    Tier,
    cells_for,
    columns_for,
    detail_lines,
    header_cells,
    line_text,
    status_text,
    title_text,
)
from gsmon.common.watch.model import Row, RowKind, ViewModel

__all__ = ["KEYS", "LEGEND", "REDRAW_S", "TreeView", "WatchApp"]

REDRAW_S: Final = 0.25
# Below these sizes the detail pane is not shown unless asked for (Enter on a point, or d).
WIDE_COLUMNS: Final = 120
TALL_LINES: Final = 40
# Redraw the ages at least this often when nothing else changes.
AGE_REDRAW_S: Final = 1.0
# Lines of the tree kept drawn (ten screens' worth; emptied when full: each Strip is ~15 objects for the collector).
_STRIP_CACHE_SIZE: Final = 500

#: Every key, for ``?`` (the help screen) and the module docs.
KEYS: Final[tuple[tuple[str, str], ...]] = (
    ("↑ ↓  k j", "move the selection (PgUp PgDn Home End g G too)"),
    ("Enter", "expand or collapse the selected node; on a point, open or close the detail pane"),
    ("→ l  ← h", "expand / collapse (← on a point or an open node's child goes to its parent)"),
    ("t", "toggle the attention tree (problems first) and the full tree (path order)"),
    ("/", "filter: a point's name or a full path (GS1/Rack1); Enter applies, Esc clears"),
    ("d", "show or hide the detail pane"),
    ("a", "acknowledge the unacked alarms of the selected subtree (operator keys; asks for a comment)"),
    ("u", "unacknowledge the acked alarms of the selected subtree (operator keys; a comment may say why)"),
    ("s", "shelve the selected subtree (operator keys; asks how long and a comment)"),
    ("A", "the alarm list (gsmon alarms) of the selected subtree, live"),
    ("L", "the journal (gsmon log) of the selected subtree"),
    ("?", "this help"),
    ("Esc", "close a prompt, a list or this help; clear the filter"),
    ("q  Ctrl+C", "quit"),
    ("mouse", "click selects, click again (or double-click) expands; the wheel scrolls"),
)

#: What the symbols say (for ``?``): a monochrome terminal reads the levels by them.
LEGEND: Final = (
    "Levels: ‼ CRITICAL  ◌ STALE  ✗ RED  ▲ ORANGE  ✓ GREEN  · no judgement  ? UNKNOWN (the hub is lost). "
    f"{UNACKED_MARK} before a point's name: its alarm waits for an acknowledgement (a), and is not shelved."
)

_TIER_STYLES: Final[dict[Tier, Style]] = {
    "critical": Style(bold=True, color="bright_white", bgcolor="red"),
    "stale": Style(color="magenta", bold=True),
    "red": Style(color="red", bold=True),
    "orange": Style(color="dark_orange"),
    "green": Style(color="green"),
    "none": Style(),
    "unknown": Style(dim=True),
}
_MONO_STYLES: Final[dict[Tier, Style]] = {
    "critical": Style(bold=True, reverse=True),
    "stale": Style(bold=True),
    "red": Style(bold=True),
    "orange": Style(),
    "green": Style(),
    "none": Style(),
    "unknown": Style(dim=True),
}
_CURSOR: Final = Style(reverse=True)
_PLAIN: Final = Style()
_BOLD: Final = Style(bold=True)


@contextlib.contextmanager
def _no_color_env(enabled: bool) -> Iterator[None]:
    """``NO_COLOR`` set while Textual reads it (it has no other switch for monochrome)."""
    if not enabled or "NO_COLOR" in os.environ:
        yield
        return
    os.environ["NO_COLOR"] = "1"
    try:
        yield
    finally:
        os.environ.pop("NO_COLOR", None)


class TextLine(Widget):
    """One line of text (title, column heads, status bar): redrawn, never laid out again, when it changes."""

    DEFAULT_CSS = "TextLine { height: 1; }"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = ""

    def set(self, text: str) -> None:
        if text != self.text:
            self.text = text
            self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y:
            return Strip.blank(width, _PLAIN)
        return Strip([Segment(self.text, _PLAIN)]).adjust_cell_length(width, _PLAIN)

    def render(self) -> str:  # what tests and screenshots read
        return self.text


class TreeView(ScrollView, can_focus=True):
    """The tree, one line per row, drawn on demand: only the lines on screen cost anything."""

    DEFAULT_CSS = """
    TreeView { height: 1fr; overflow-x: hidden; scrollbar-size-vertical: 1; }
    """
    # Priority bindings: the App runs them as soon as it takes the key (while the tree has the focus: an
    # Input or a prompt screen still gets j, k, Enter). A plain binding runs only after the key has been
    # forwarded to the tree and bubbled back up through its four ancestors, one message hop each, and a
    # redraw timer due in between runs first (a press waited for a tick and its paint: ~30 ms on 2 cores).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "up", show=False, priority=True),
        Binding("down,j", "move(1)", "down", show=False, priority=True),
        Binding("pageup", "page(-1)", "page up", show=False, priority=True),
        Binding("pagedown", "page(1)", "page down", show=False, priority=True),
        Binding("home,g", "edge(0)", "top", show=False, priority=True),
        Binding("end,G", "edge(1)", "bottom", show=False, priority=True),
        Binding("right,l", "expand", "expand", show=False, priority=True),
        Binding("left,h", "collapse", "collapse", show=False, priority=True),
        # Not in the footer (? lists it): at 80 columns the footer holds every other key (a cut footer hid A and L).
        Binding("enter", "open_close", "open", show=False, priority=True),
    ]

    def __init__(self, model: ViewModel, clock: Callable[[], float], colour: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.clock = clock
        self.colour = colour
        self.empty_message = ""
        self.on_selection: Callable[[], None] = lambda: None
        self.on_point_enter: Callable[[], None] = lambda: None
        self.on_resized: Callable[[], None] = lambda: None
        self._columns: Columns = columns_for(80, 20)
        self._columns_for: tuple[int, int] = (-1, -1)
        self._name_needed = 12
        self._rows_seen = -1
        self._content_seen = -1
        self._strips: dict[tuple[Cells, Columns], Strip] = {}
        self._drawn_window: tuple[int, int, Columns, tuple[Row, ...]] | None = None
        self.renders = 0  # lines drawn (the benchmark reads it)
        self.last_render_at = 0.0
        #: Cursor moves by a key or the mouse (the benchmark reads it, with ``cursor_drawn``).
        self.moves = 0
        #: (move, perf_counter): when the cursor's row was FIRST drawn after that move. Later redraws of the
        #: same row (the next tick's) leave it alone: the time a key press waits is until its first redraw.
        self.cursor_drawn: tuple[int, float] = (-1, 0.0)

    # --- what is drawn

    @property
    def columns(self) -> Columns:
        width = self.scrollable_content_region.width or self.size.width or 80
        if self._rows_seen != self.model.rows_version:
            self._rows_seen = self.model.rows_version
            # Never narrower than before: columns that jump on every expand or collapse are hard to read.
            self._name_needed = max(self._name_needed, self.model.name_needed)
        if self._columns_for != (width, self._name_needed):
            self._columns_for = (width, self._name_needed)
            self._columns = columns_for(width, self._name_needed)
        return self._columns

    def sync(self, *, force: bool = False) -> None:
        """Take the model's news: a new row list resizes the scroll area; a change redraws the lines it
        touches, or all of them when the screen shows other rows than it drew (or ``force``: the ages,
        each AGE_REDRAW_S). 1,000 updates a second change ~one line of the 46 on screen per tick: the
        whole tree redrawn on every tick was half of what the paints cost."""
        model = self.model
        rows_changed = self._rows_seen != model.rows_version or force
        content_changed = self._content_seen != model.content_version
        rows = model.rows  # builds when needed (bumps rows_version)
        if rows_changed or self._rows_seen != model.rows_version:
            self._set_height(len(rows))
            self.keep_cursor_visible()
        changed = model.take_changed()
        if not (rows_changed or content_changed or self._rows_seen != model.rows_version):
            return
        self._content_seen = model.content_version
        window = self._window()
        if force or changed is None or window != self._drawn_window:
            self._drawn_window = window
            self.refresh()
            return
        top = window[0]
        for offset, row in enumerate(window[3]):
            if row.path in changed or (row.kind is RowKind.GROUP and not changed.isdisjoint(row.members)):
                self.refresh_line(top + offset)

    def _window(self) -> tuple[int, int, Columns, tuple[Row, ...]]:
        """What decides what every line on screen shows: the top row, the cursor, the columns, the rows."""
        top = round(self.scroll_y)
        height = max(1, self.scrollable_content_region.height or self.size.height)
        columns = self.columns
        return (top, self.model.cursor, columns, tuple(self.model.rows[top : top + height]))

    def _set_height(self, rows: int) -> None:
        """The scroll area's height, without a layout of the screen: the row count changes with
        nearly every update of an attention tree, and a layout of the whole screen costs ~20 ms.
        (Textual sizes scroll views the same way in ``_size_updated``.)"""
        size = Size(self.size.width, rows)
        if size == self.virtual_size:
            return
        if not self.size:
            self.virtual_size = size  # not laid out yet: the first layout takes it
            return
        self.set_reactive(ScrollView.virtual_size, size)
        self._scroll_update(size)

    def keep_cursor_visible(self) -> None:
        cursor = self.model.cursor
        height = max(1, self.scrollable_content_region.height or self.size.height)
        top = round(self.scroll_y)
        if cursor < top:
            self.scroll_to(y=cursor, animate=False, immediate=True)
        elif cursor >= top + height:
            self.scroll_to(y=cursor - height + 1, animate=False, immediate=True)

    def render_line(self, y: int) -> Strip:
        self.renders += 1
        self.last_render_at = time.perf_counter()
        columns = self.columns
        rows = self.model.rows
        index = round(self.scroll_y) + y
        width = columns.width
        if not rows:
            if y == 0 and self.empty_message:
                return Strip([Segment(" " + self.empty_message, _PLAIN)]).adjust_cell_length(width, _PLAIN)
            return Strip.blank(width, _PLAIN)
        if index >= len(rows):
            return Strip.blank(width, _PLAIN)
        row = rows[index]
        cells = cells_for(row, self.model, columns, self.clock())
        # The same text, the same Strip object: a redraw of unchanged lines then makes no new Strips, and
        # Textual's per-Strip caches (crop, style, divide) answer. Every new Strip is also garbage for the
        # collector, not for reference counting (a Strip keeps itself in its own caches), and full
        # collections of it held the loop 30-80 ms.
        strip = self._strips.get((cells, columns))
        if strip is None:
            if len(self._strips) >= _STRIP_CACHE_SIZE:
                self._strips.clear()
            strip = self._strips[(cells, columns)] = self._strip(cells, columns)
        if index == self.model.cursor:
            strip = strip.apply_style(_CURSOR)
            if self.cursor_drawn[0] != self.moves:
                self.cursor_drawn = (self.moves, self.last_render_at)
        return strip

    def _strip(self, cells: Cells, columns: Columns) -> Strip:
        text = line_text(cells, columns)
        styles = _TIER_STYLES if self.colour else _MONO_STYLES
        level_style = styles[cells.tier]
        name_style = _BOLD if cells.problem else _PLAIN
        # Cut the fitted line at the column edges (every cell is already exactly its width).
        edges = [0, 1 + columns.name, 2 + columns.name + columns.level]
        segments = [
            Segment(text[: edges[1]], name_style),
            Segment(text[edges[1] : edges[1] + 1], _PLAIN),
            Segment(text[edges[1] + 1 : edges[2]], level_style),
            Segment(text[edges[2] :], _PLAIN),
        ]
        # The slices are by characters; line_text pads every cell, so a wide character only shifts the tail.
        # Every segment has a style: Textual's monochrome filter (NO_COLOR) cannot take a segment without one.
        return Strip(segments).adjust_cell_length(columns.width, _PLAIN)

    def on_resize(self, event: events.Resize) -> None:
        # The App's own Resize is consumed by Textual; the tree's follows every terminal resize.
        self.on_resized()

    # --- keys and mouse

    def _moved(self) -> None:
        self.moves += 1
        self.keep_cursor_visible()
        self.sync(force=True)
        self.on_selection()

    def _cursor_moved(self, old: int) -> None:
        """The cursor went from row ``old`` to another row of the same list: redraw those two lines only
        (the other 44 are as the last tick drew them; repainting them doubled what a press costs)."""
        model = self.model
        top = round(self.scroll_y)
        self.keep_cursor_visible()
        cursor = model.cursor  # builds the rows if an update made them stale (then: all lines)
        same_lines = round(self.scroll_y) == top and self._rows_seen == model.rows_version
        if not same_lines or self._content_seen != model.content_version:
            self._moved()
            return
        self.moves += 1
        self.refresh_line(old)
        self.refresh_line(cursor)
        self._drawn_window = self._window()
        self.on_selection()

    def action_move(self, delta: int) -> None:
        old = self.model.cursor
        self.model.move(delta)
        self._cursor_moved(old)

    def action_page(self, direction: int) -> None:
        height = max(1, self.scrollable_content_region.height - 1)
        old = self.model.cursor
        self.model.move(direction * height)
        self._cursor_moved(old)

    def action_edge(self, end: int) -> None:
        old = self.model.cursor
        self.model.move_to(len(self.model.rows) - 1 if end else 0)
        self._cursor_moved(old)

    def action_expand(self) -> None:
        self.model.expand()
        self._moved()

    def action_collapse(self) -> None:
        self.model.collapse()
        self._moved()

    def action_open_close(self) -> None:
        row = self.model.selected
        if row is not None and row.kind is RowKind.POINT:
            self.on_point_enter()
            return
        self.model.toggle()
        self._moved()

    def on_click(self, event: events.Click) -> None:
        index = round(self.scroll_y) + event.y
        if not 0 <= index < len(self.model.rows):
            return
        if index == self.model.cursor or event.chain >= 2:
            self.model.move_to(index)
            self.model.toggle()
        else:
            self.model.move_to(index)
        self._moved()


class DetailPane(ScrollView, can_focus=False):
    """Everything about the selected node, wrapped, never cut (it scrolls when long).

    A line-API widget like the tree: new text is wrapped here and redrawn, with
    no layout of the screen (that costs more than everything else a key press does).
    """

    DEFAULT_CSS = """
    DetailPane { border-left: vkey $primary-darken-2; padding: 0 1; overflow-x: hidden; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.content = Text()
        self._strips: list[Strip] = []
        self._wrapped_for: tuple[int, int] = (-1, -1)
        self._version = 0

    def show(self, lines: Sequence[tuple[str, str]]) -> None:
        text = Text()
        for index, (label, value) in enumerate(lines):
            if index:
                text.append("\n")
            if label:
                text.append(f"{label}: ", style="bold")
            text.append(value)
        self.content = text
        self._version += 1
        self._wrap()
        self.refresh()

    @property
    def plain(self) -> str:
        """The whole text (what tests read)."""
        return self.content.plain

    def _wrap(self) -> None:
        width = max(1, self.scrollable_content_region.width or self.size.width)
        if self._wrapped_for == (self._version, width):
            return
        self._wrapped_for = (self._version, width)
        console = self.app.console
        wrapped = self.content.wrap(console, width, overflow="fold")
        self._strips = [
            Strip([Segment(seg.text, seg.style or _PLAIN) for seg in line.render(console)]).adjust_cell_length(
                width, _PLAIN
            )
            for line in wrapped
        ]
        size = Size(width, len(self._strips))
        if size != self.virtual_size:
            if self.size:
                self.set_reactive(ScrollView.virtual_size, size)
                self._scroll_update(size)
            else:
                self.virtual_size = size

    def on_resize(self, event: events.Resize) -> None:
        self._wrap()

    def render_line(self, y: int) -> Strip:
        self._wrap()
        index = round(self.scroll_y) + y
        width = max(1, self.scrollable_content_region.width or self.size.width)
        if 0 <= index < len(self._strips):
            return self._strips[index]
        return Strip.blank(width, _PLAIN)


class HelpScreen(ModalScreen[None]):
    """Every key and what it does."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark", "dismiss", "close"),
        Binding("q", "app.quit", "quit"),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90%; max-width: 100; height: auto; max-height: 90%;
        border: round $primary; background: $surface; padding: 0 1; }
    """

    def __init__(self, role_note: str) -> None:
        super().__init__()
        self.role_note = role_note

    def compose(self) -> ComposeResult:
        # A grid, not one text: a description too long for the line wraps under itself, not under the keys
        # (at 80 columns most of them do).
        keys_table = Table.grid(padding=(0, 2))
        keys_table.add_column(style="bold", no_wrap=True)
        keys_table.add_column()
        for keys, what in KEYS:
            keys_table.add_row(keys, what)
        with VerticalScroll():
            yield Static(Text("gsmon watch: keys\n", style="bold"))
            yield Static(keys_table, id="help-keys")
            yield Static(Text(f"\n{LEGEND}\n\n{self.role_note}\nEsc or ? closes this help."))


class PromptScreen(ModalScreen[None]):
    """A modal prompt: a question, one or two inputs, a line for what went wrong; Enter sends, Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "cancel")]
    DEFAULT_CSS = """
    PromptScreen { align: center middle; }
    PromptScreen > Vertical { width: 90%; max-width: 100; height: auto; border: round $warning;
        background: $surface; padding: 0 1; }
    PromptScreen Input { margin: 0; }
    PromptScreen #prompt-error { color: $error; }
    """

    def __init__(self, question: str, fields: Sequence[tuple[str, str, str]]) -> None:
        """``fields``: (id, placeholder, initial value) of each input, in order."""
        super().__init__()
        self.question = question
        self.fields = list(fields)

    def compose(self) -> ComposeResult:
        with Vertical():
            # markup=False wherever a name or a hub's answer is shown: a name may hold "[" and "]" (only "/"
            # is reserved), and as Textual markup "[/x]" raised MarkupError (ending the view), "[b]" vanished.
            yield Static(self.question, id="prompt-question", markup=False)
            for field_id, placeholder, value in self.fields:
                yield Input(value=value, placeholder=placeholder, id=field_id)
            yield Static("", id="prompt-error", markup=False)
            yield Static("Enter sends · Tab next field · Esc cancels", id="prompt-hint")

    def value(self, field_id: str) -> str:
        return self.query_one(f"#{field_id}", Input).value

    def fail(self, message: str) -> None:
        self.query_one("#prompt-error", Static).update(message)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        ids = [field_id for field_id, _, _ in self.fields]
        position = ids.index(event.input.id or "")
        if position + 1 < len(ids) and not self.value(ids[position + 1]).strip():
            self.query_one(f"#{ids[position + 1]}", Input).focus()
            return
        self.submit()

    def submit(self) -> None:  # pragma: no cover - each prompt has its own
        raise NotImplementedError


class AckPrompt(PromptScreen):
    def __init__(self, prefix: str, ids: Sequence[int]) -> None:
        shown = ", ".join(str(alarm_id) for alarm_id in ids[:12]) + (" …" if len(ids) > 12 else "")
        noun = "alarm" if len(ids) == 1 else "alarms"
        super().__init__(
            f"Acknowledge {len(ids)} unacked {noun} under {prefix or 'the whole tree'} (ids {shown})?\n"
            "Only these ids are sent: an alarm raised after now is not acknowledged.",
            [("ack-comment", "comment (required: what you are doing about it)", "")],
        )
        self.prefix = prefix
        self.ids = tuple(ids)

    def submit(self) -> None:
        try:
            comment = check_comment(self.value("ack-comment"))
        except ValueError as error:
            self.fail(str(error))
            return
        app = self.app
        assert isinstance(app, WatchApp)
        app.send_ack(self.prefix, self.ids, comment, self)


class UnackPrompt(PromptScreen):
    def __init__(self, prefix: str, ids: Sequence[int]) -> None:
        shown = ", ".join(str(alarm_id) for alarm_id in ids[:12]) + (" …" if len(ids) > 12 else "")
        noun = "alarm" if len(ids) == 1 else "alarms"
        super().__init__(
            f"Unacknowledge {len(ids)} acked {noun} under {prefix or 'the whole tree'} (ids {shown})?\n"
            "They need attention again.",
            [("unack-comment", "comment (optional: why)", "")],
        )
        self.prefix = prefix
        self.ids = tuple(ids)

    def submit(self) -> None:
        comment = self.value("unack-comment").strip()
        if len(comment) > MAX_COMMENT_CHARS:
            self.fail(f"a comment is at most {MAX_COMMENT_CHARS} characters, this one has {len(comment)}")
            return
        app = self.app
        assert isinstance(app, WatchApp)
        app.send_unack(self.prefix, self.ids, comment, self)


class ShelvePrompt(PromptScreen):
    def __init__(self, prefix: str) -> None:
        super().__init__(
            f"Shelve {prefix or 'the whole tree'}: its points stay shown, but raise no attention "
            "or notifications until the shelf ends.\n"
            "How long: 2h, 30m, 'until 18:00', 'normal' (until every alarm is back to normal), "
            "or '18:00-20:00' (a scheduled window).",
            [("shelve-window", "how long (e.g. 2h)", "2h"), ("shelve-comment", "comment (required: why)", "")],
        )
        self.prefix = prefix

    def on_mount(self) -> None:
        self.query_one("#shelve-comment", Input).focus()

    def submit(self) -> None:
        try:
            mode, duration_s, starts_at, ends_at = parse_shelve_window(self.value("shelve-window"), time.time())
            comment = check_comment(self.value("shelve-comment"))
        except ValueError as error:
            self.fail(str(error))
            return
        app = self.app
        assert isinstance(app, WatchApp)
        request = ShelveRequest(self.prefix, mode, comment, duration_s, starts_at, ends_at)
        app.send_shelve(request, self)


def _local(wall_s: float | None) -> str:
    if wall_s is None:
        return ""
    return dt.datetime.fromtimestamp(wall_s).astimezone().strftime("%Y-%m-%d %H:%M:%S")


class ListScreen(Screen[None]):
    """A list the hub answers (alarms, journal), refreshed while shown."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "back"),
        Binding("r", "reload", "refresh"),
        Binding("q", "app.quit", "quit"),
    ]
    DEFAULT_CSS = """
    ListScreen #list-title { height: 1; background: $panel; }
    ListScreen #list-message { height: auto; color: $warning; }
    """
    COLUMNS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, commands: Commands, prefix: str) -> None:
        super().__init__()
        self.commands = commands
        self.prefix = prefix
        self.loaded_at = 0.0
        self.message = ""
        self.needed_width = 0  # cells the rows shown need (more than the screen: the title says so)

    def title_line(self) -> str:  # pragma: no cover - each list has its own
        raise NotImplementedError

    def fetch(self) -> list[tuple[str, ...]]:  # pragma: no cover - each list has its own
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        yield Static(self.title_line(), id="list-title", markup=False)  # a name, a hub's answer: see PromptScreen
        yield Static("loading…", id="list-message", markup=False)
        table: DataTable[str] = DataTable(id="list-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#list-table", DataTable)
        table.add_columns(*self.COLUMNS)
        self.action_reload()

    def action_reload(self) -> None:
        self.loaded_at = time.monotonic()
        self._load()

    @work(thread=True, exclusive=True)
    def _load(self) -> None:
        try:
            rows = self.fetch()
        except CommandError as error:
            self.app.call_from_thread(self._show, [], str(error))
            return
        notes = [note for note in ("" if rows else "nothing to list", self.note()) if note]
        self.app.call_from_thread(self._show, rows, "; ".join(notes))

    def note(self) -> str:
        """A line about what the list does not hold (asked after :meth:`fetch`, in its thread)."""
        return ""

    def _show(self, rows: list[tuple[str, ...]], message: str) -> None:
        self.message = message
        self.query_one("#list-message", Static).update(message)
        table = self.query_one("#list-table", DataTable)
        table.clear()
        # What the rows need: each column as wide as its widest cell, with the table's padding either side.
        padding = 2 * table.cell_padding
        self.needed_width = sum(
            max([cell_len(label), *(cell_len(one_line(row[index])) for row in rows)]) + padding
            for index, label in enumerate(self.COLUMNS)
        )
        for row in rows:
            # Text, not str: DataTable reads a str as Rich markup, and a comment or a value with brackets
            # ("[/dev/sda]") raised MarkupError, ending the view. Control characters escaped, as everywhere.
            table.add_row(*(Text(one_line(cell), no_wrap=True) for cell in row))
        self.call_after_refresh(self.update_title)

    def update_title(self) -> None:
        """The title, one line (cut with an ellipsis), saying first when the rows are wider than the screen:
        the columns off to the right are not cut, they are a ← → away (at 80 columns the journal's user and
        comment are)."""
        table = self.query_one("#list-table", DataTable)
        wide = self.needed_width > (table.scrollable_content_region.width or self.size.width) > 0
        hint = " ← → more columns ·" if wide else ""  # first: a long title is cut at its end (with an ellipsis)
        title = Text(hint + self.title_line(), no_wrap=True, overflow="ellipsis", end="")
        self.query_one("#list-title", Static).update(title)

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self.update_title)


class AlarmsScreen(ListScreen):
    """``gsmon alarms PREFIX``, live: asked again whenever an alarm summary in the tree changes."""

    # The cells gsmon alarms prints (alarms_cli.alarm_cells): one way to say an alarm, here and there;
    # the path and value before the times, which are wide and off to the right on a narrow terminal.
    _ORDER: Final = (0, 1, 2, 4, 5, 3, 6)  # ID STATE LEVEL PATH VALUE RAISED NOTE
    COLUMNS = tuple(ALARM_COLUMNS[i].lower() for i in _ORDER)
    alarm_version = -1

    def title_line(self) -> str:
        return f" alarms under {self.prefix or 'the whole tree'} (Esc back, r refresh)"

    def fetch(self) -> list[tuple[str, ...]]:
        now = time.time()
        rows = [alarm_cells(alarm, now) for alarm in sorted_alarms(self.commands.alarms(self.prefix))]
        return [tuple(cells[i] for i in self._ORDER) for cells in rows]

    def note(self) -> str:
        # (1.3) At a central hub: the sites not reached, as gsmon alarms says them (their last-known rows marked).
        return "; ".join(f"{mount}: not reached ({why})" for mount, why in self.commands.unreached_sites())


class JournalScreen(ListScreen):
    """``gsmon log PREFIX --since ...``: every transition and action under the subtree."""

    COLUMNS = ("time", "path", "kind", "change", "user", "comment")
    SPANS: ClassVar[tuple[tuple[str, float], ...]] = (
        ("1h", 3600.0),
        ("6h", 21600.0),
        ("24h", 86400.0),
        ("7d", 604800.0),
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("t", "span", "time span")]

    def __init__(self, commands: Commands, prefix: str) -> None:
        super().__init__(commands, prefix)
        self.span = 0

    def title_line(self) -> str:
        label = self.SPANS[self.span][0]
        return f" journal of {self.prefix or 'the whole tree'}, last {label} (t changes it, Esc back, r refresh)"

    def action_span(self) -> None:
        self.span = (self.span + 1) % len(self.SPANS)
        self.update_title()
        self.action_reload()

    def fetch(self) -> list[tuple[str, ...]]:
        app = self.app
        assert isinstance(app, WatchApp)
        since = time.time() - self.SPANS[self.span][1]
        rows: list[tuple[str, ...]] = []
        for entry in self.commands.journal(self.prefix, since):
            change = ""
            if entry.old is not None or entry.new is not None:
                old = "" if entry.old is None else app.model.label(entry.old) or str(entry.old)
                new = "" if entry.new is None else app.model.label(entry.new) or str(entry.new)
                change = f"{old} → {new}"
            rows.append((_local(entry.time), entry.path, entry.kind, change, entry.user or "", entry.comment or ""))
        return rows


def tty_size() -> tuple[int, int] | None:
    """The terminal's (columns, lines), from whichever of stdout and stderr is one (None: neither)."""
    for stream in (sys.__stdout__, sys.__stderr__):
        try:
            columns, lines = os.get_terminal_size(stream.fileno())  # type: ignore[union-attr]
        except (AttributeError, OSError, ValueError):
            continue
        return columns, lines
    return None


class WatchApp(App[int]):
    """``gsmon watch`` on a terminal. ``take`` hands over what the feed received since its last call."""

    TITLE = "gsmon watch"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    Screen { layout: vertical; }
    #title { height: 1; background: $panel; text-style: bold; }
    #columns { height: 1; text-style: bold; color: $text-muted; }
    #body { height: 1fr; }
    #main { width: 1fr; }
    #detail { width: 40%; display: none; }
    #body.-narrow { layout: vertical; }
    #body.-narrow #detail { width: 100%; height: 45%; border-left: none; border-top: hkey $primary-darken-2; }
    #body.-detail #detail { display: block; }
    #filter { display: none; height: 1; border: none; padding: 0 1; }
    #filter.-shown { display: block; }
    #status { height: 1; background: $panel; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),
        Binding("question_mark", "help", "keys"),
        # A priority binding runs in the app's own task before later keys are
        # forwarded to the focused widget: "/lock" typed fast all reaches the prompt.
        Binding("slash", "filter", "filter", priority=True),
        Binding("t", "toggle_tree", "tree"),
        Binding("d", "detail", "detail"),
        Binding("a", "ack", "ack"),
        Binding("s", "shelve", "shelve"),
        Binding("u", "unack", "unack", show=False),  # the rarer undo of a: in ? only, for the footer's 80 columns
        Binding("A", "alarms", "alarms"),
        Binding("L", "journal", "log"),
        Binding("escape", "clear", "clear filter", show=False),
    ]

    def __init__(
        self,
        take: Callable[[], FeedBatch],
        *,
        hub: str,
        prefix: str = "",
        commands: Commands | None = None,
        colour: bool = True,
        duration_s: float | None = None,
        check: Callable[[], None] | None = None,
        redraw_s: float = REDRAW_S,
        freeze_gc: bool = False,
    ) -> None:
        with _no_color_env(not colour):
            super().__init__()
        self.take = take
        self.hub = hub
        self.prefix = prefix
        self.commands: Commands = commands if commands is not None else NullCommands()
        self.colour = colour and not self.no_color
        self.duration_s = duration_s
        self.check = check
        self.redraw_s = redraw_s
        self.freeze_gc = freeze_gc
        # The collector's full passes, run from the timer while the keys are quiet (collector.py), once the
        # snapshot is frozen; None: CPython's own (tests, and whoever makes the app without freeze_gc).
        self.collections: FullCollections | None = None
        self._gc_thresholds: tuple[int, int, int] | None = None
        self.model = ViewModel()
        self.state: ConnectionState = "waiting"
        self.reason = ""
        self.clock_offset_s = 0.0
        self.last_update: float | None = None
        self.failure: BaseException | None = None
        self.detail_choice: bool | None = None  # None: by the terminal's size
        self._was_roomy: bool | None = None
        self._detail_key: tuple[str | None, int, bool, int] | None = None
        self._ages_drawn = 0.0
        self.message = ""
        self.ticks = 0
        # The terminal's size asked every tick (None: the driver's resize events only, as when headless): a
        # resize whose SIGWINCH or in-band report never arrived must not leave the view at the old size.
        self.terminal_size: Callable[[], tuple[int, int] | None] | None = None
        self._size_seen: Size | None = None  # a size that differs from the app's, seen at the last tick
        self._role_shown: str | None = None
        self.received = 0  # changes the feed received (the benchmark reads it)
        # The main screen's widgets, kept: the timer reaches them while another screen is on top.
        self._title = TextLine(id="title")
        self._body = Horizontal(id="body")
        self._columns = TextLine(id="columns")
        self.tree_view = TreeView(self.model, self.hub_now, self.colour, id="tree")
        self.tree_view.on_selection = self._selection_changed
        self.tree_view.on_point_enter = self._point_enter
        self.tree_view.on_resized = self.terminal_resized
        self._detail = DetailPane(id="detail")
        self._filter = Input(
            placeholder="filter: a point's name or a full path (Enter applies, Esc cancels)", id="filter"
        )
        self._status = TextLine(id="status")

    # --- layout

    def compose(self) -> ComposeResult:
        yield self._title
        with self._body:
            with Vertical(id="main"):
                yield self._columns
                yield self.tree_view
            yield self._detail
        yield self._filter
        yield self._status
        yield Footer()

    def hub_now(self) -> float:
        return time.time() + self.clock_offset_s

    def on_mount(self) -> None:
        self.tree_view.focus()
        if self.terminal_size is None and not self.is_headless:
            self.terminal_size = tty_size
        self.set_interval(self.redraw_s, self.tick)
        if self.duration_s is not None:
            self.set_timer(self.duration_s, lambda: self.exit(0))
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: self.exit(0))
        self._layout_for_size()
        self.tick()

    def on_unmount(self) -> None:
        if self._gc_thresholds is not None:
            hand_back(self._gc_thresholds)
            self._gc_thresholds = None
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)

    def terminal_resized(self) -> None:
        """The tree's size changed (the terminal was resized, or the detail pane came or went)."""
        roomy = self._roomy()
        if roomy != self._was_roomy:
            self._was_roomy = roomy
            self.detail_choice = None  # a new size class: the pane follows the size again
        self._layout_for_size()
        self.tree_view.sync(force=True)
        self._draw_chrome()

    def _roomy(self) -> bool:
        width, height = self.size
        return width >= WIDE_COLUMNS or height >= TALL_LINES

    def _detail_shown(self) -> bool:
        if self.detail_choice is not None:
            return self.detail_choice
        return self._roomy()

    def _layout_for_size(self) -> None:
        body = self._body
        body.set_class(self.size.width < WIDE_COLUMNS, "-narrow")
        body.set_class(self._detail_shown(), "-detail")
        self._detail_key = None

    # --- the timer: take, apply, redraw

    def _follow_terminal_size(self) -> None:
        """Resize to the terminal's size when it differs from the app's at two ticks running (one ioctl a
        tick): a resize Textual was not told of (a lost SIGWINCH, an in-band report that did not come) is
        followed anyway; one on its way is left to the driver."""
        if self.terminal_size is None:
            return
        found = self.terminal_size()
        size = None if found is None else Size(*found)
        if size is None or size == self.size:
            self._size_seen = None
            return
        if size != self._size_seen:
            self._size_seen = size
            return
        self._size_seen = None
        self.post_message(events.Resize(size, size))

    def tick(self) -> None:
        if not self.screen_stack:
            return  # the app is closing: its screens are gone, and a last timer tick has nothing to draw
        self.ticks += 1
        self._follow_terminal_size()
        collections = self.collections
        if collections is not None and collections.due(time.monotonic()):
            # Before this tick's work, after the last one's paint: the pass delays no key (none for a
            # second) and no drawing already asked for.
            gc.collect()
            collections.collected(time.monotonic())
        role = self.commands.role
        if role != self._role_shown:
            # HubCommands learns the role from the hub in the background: offer a, u and s once it allows them.
            self._role_shown = role
            self.refresh_bindings()
        if self.check is not None:
            try:
                self.check()
            except Exception as error:  # the demo's hub or agent died: end and say why
                self.failure = error
                self.exit(1)
                return
        batch = self.take()
        self.received += batch.received
        self.state, self.reason = batch.state, batch.reason
        if batch.endpoint:
            self.hub = batch.endpoint  # the title and status bar name the hub used now (of a pair, 1.3)
        self.clock_offset_s = batch.clock_offset_s
        self.last_update = batch.last_update
        if batch.updates or batch.reset:
            self.model.apply(batch.updates, reset=batch.reset)
        if batch.reset and self.freeze_gc:
            # A whole tree just arrived and will live long, with the application's own widgets: out of the
            # collector's sight, so that its full passes (tens of ms on a 10,000-node tree) stop delaying keys.
            gc.freeze()
            if self.collections is None:
                self._gc_thresholds = take_over()
                self.collections = FullCollections(time.monotonic())
        self.model.set_lost(self.state == "hub lost")
        now = time.monotonic()
        tree = self.tree_view
        tree.empty_message = self._empty_message()
        if now - self._ages_drawn >= AGE_REDRAW_S:
            self._ages_drawn = now
            tree.sync(force=True)
        else:
            tree.sync()
        self._draw_chrome()
        self._refresh_lists()

    def _empty_message(self) -> str:
        if self.state == "waiting":
            why = f": {self.reason}" if self.reason else ""
            return f"waiting for the hub at {self.hub}{why} (retrying; q quits)"
        if self.model.filter_text is not None:
            return f"nothing matches the filter {self.model.filter_text!r} (Esc clears it)"
        where = f"under {self.prefix}" if self.prefix else "in the tree"
        return f"nothing {where} at the hub yet"

    def _draw_chrome(self) -> None:
        width = self.size.width
        model = self.model
        self._title.set(title_text(self.hub, self.prefix, model, self.state, self.reason, width))
        columns = self.tree_view.columns
        self._columns.set(line_text(header_cells(columns), columns).rstrip())
        status = status_text(self.hub, self.state, model.point_counts(), model.unacked_count(), self.last_update, width)
        if self.message:
            status = self.message
        self._status.set(status)
        self._draw_detail()

    def _draw_detail(self, *, force: bool = False) -> None:
        if not self._detail_shown():
            return
        row = self.model.selected
        entry = self.model.entry(row.path) if row is not None else None
        # Redrawn when the selection or its node changes, and each second (ages), not on every update elsewhere.
        key = (row.key if row is not None else None, id(entry.node) if entry else 0, self.model.lost, int(time.time()))
        if key == self._detail_key and not force:
            return
        self._detail_key = key
        self._detail.show(detail_lines(row, self.model, self.hub_now()))

    def _key_came(self) -> None:
        if self.collections is not None:
            self.collections.key(time.monotonic())
            self.call_after_refresh(self._collect_after_redraw)

    def _collect_after_redraw(self) -> None:
        """A key's redraw is on the screen: a full pass now, if one is due, delays no key (collector.py)."""
        collections = self.collections
        if collections is not None and collections.due(time.monotonic(), redrawn_after_key=True):
            gc.collect()
            collections.collected(time.monotonic())

    def _selection_changed(self) -> None:
        self._key_came()
        self.message = ""
        self._draw_detail(force=True)
        self._draw_chrome()

    def _point_enter(self) -> None:
        if self.size.width < WIDE_COLUMNS and self.size.height < TALL_LINES:
            self.detail_choice = not self._detail_shown()
            self._layout_for_size()
            self._draw_detail(force=True)

    # --- actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("ack", "shelve", "unack"):
            return self.commands.role in ROLES_THAT_ACT
        if action == "filter":
            # "/" is typed as itself into any input (paths have slashes), and
            # opens the filter only from the tree.
            return not isinstance(self.focused, Input)
        return True

    def action_help(self) -> None:
        role = self.commands.role
        note = (
            f"This client's role: {role}."
            if role in ROLES_THAT_ACT
            else f"This client's role: {role} (reading only): a and s need an operator or admin key."
        )
        self.push_screen(HelpScreen(note))

    def action_toggle_tree(self) -> None:
        mode = self.model.toggle_mode()
        self.notify_line(f"{'full tree, in path order' if mode == 'full' else 'attention tree: problems first'}")
        self.tree_view.sync(force=True)
        self._draw_chrome()

    def action_detail(self) -> None:
        self.detail_choice = not self._detail_shown()
        self._layout_for_size()
        self._draw_detail(force=True)

    def action_filter(self) -> None:
        prompt = self._filter
        prompt.value = self.model.filter_text or ""
        prompt.add_class("-shown")
        # Focus now, not with Widget.focus(), which defers it (call_later): keys
        # typed right after "/" are already queued and would reach the tree.
        prompt.styles.display = "block"
        self.screen.set_focus(prompt)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "filter":
            return
        event.stop()
        matches = self.model.set_filter(event.value)
        event.input.remove_class("-shown")
        event.input.styles.display = "none"
        self.tree_view.focus()
        self.model.move_to(0)
        text = self.model.filter_text
        self.tree_view.sync(force=True)
        self._selection_changed()
        nodes = "node" if matches == 1 else "nodes"
        self.notify_line(f"filter {text!r}: {matches} matching {nodes} (Esc clears)" if text else "filter cleared")

    def on_key(self, event: events.Key) -> None:
        self._key_came()  # the keys bound to the tree never come here: they come through _selection_changed
        prompt = self._filter
        if event.key == "escape" and prompt.has_focus:
            event.stop()
            prompt.remove_class("-shown")
            prompt.styles.display = "none"
            self.tree_view.focus()

    def action_clear(self) -> None:
        if self.model.filter_text is not None:
            self.model.set_filter(None)
            self.tree_view.sync(force=True)
            self._selection_changed()
            self.notify_line("filter cleared")

    def _selected_prefix(self) -> str:
        row = self.model.selected
        return "" if row is None else row.path

    def action_ack(self) -> None:
        if self.commands.role not in ROLES_THAT_ACT:
            self.notify_line(f"acknowledging needs an operator key (this client is a {self.commands.role})")
            return
        prefix = self._selected_prefix()
        ids = self.model.unacked_ids(prefix)
        if not ids:
            self.notify_line(f"nothing to acknowledge under {prefix or 'the whole tree'}")
            return
        self.push_screen(AckPrompt(prefix, ids))

    def action_unack(self) -> None:
        if self.commands.role not in ROLES_THAT_ACT:
            self.notify_line(f"unacknowledging needs an operator key (this client is a {self.commands.role})")
            return
        prefix = self._selected_prefix()
        ids = self.model.acked_ids(prefix)
        if not ids:
            self.notify_line(f"nothing acknowledged to take back under {prefix or 'the whole tree'}")
            return
        self.push_screen(UnackPrompt(prefix, ids))

    def action_shelve(self) -> None:
        if self.commands.role not in ROLES_THAT_ACT:
            self.notify_line(f"shelving needs an operator key (this client is a {self.commands.role})")
            return
        self.push_screen(ShelvePrompt(self._selected_prefix()))

    def action_alarms(self) -> None:
        self.push_screen(AlarmsScreen(self.commands, self._selected_prefix()))

    def action_journal(self) -> None:
        self.push_screen(JournalScreen(self.commands, self._selected_prefix()))

    def notify_line(self, message: str) -> None:
        """Say something on the status line until the selection moves."""
        self.message = " " + message
        self._status.set(self.message)

    @work(thread=True)
    def send_ack(self, prefix: str, ids: tuple[int, ...], comment: str, prompt: PromptScreen) -> None:
        try:
            result = self.commands.ack(ids, comment)
        except CommandError as error:
            self.call_from_thread(prompt.fail, str(error))
            return
        acked = len(result.acked_ids)
        self.call_from_thread(self._done, prompt, f"acknowledged {acked} of {len(ids)} alarms under {prefix or '/'}")

    @work(thread=True)
    def send_unack(self, prefix: str, ids: tuple[int, ...], comment: str, prompt: PromptScreen) -> None:
        try:
            result = self.commands.unack(ids, comment)
        except CommandError as error:
            self.call_from_thread(prompt.fail, str(error))
            return
        done = len(result.acked_ids)
        self.call_from_thread(self._done, prompt, f"unacknowledged {done} of {len(ids)} alarms under {prefix or '/'}")

    @work(thread=True)
    def send_shelve(self, request: ShelveRequest, prompt: PromptScreen) -> None:
        try:
            shelf = self.commands.shelve(request)
        except CommandError as error:
            self.call_from_thread(prompt.fail, str(error))
            return
        until = f" until {_local(shelf.ends_at)}" if shelf.ends_at is not None else ""
        self.call_from_thread(self._done, prompt, f"shelf {shelf.id} on {shelf.prefix or '/'} ({shelf.mode}){until}")

    def _done(self, prompt: PromptScreen, message: str) -> None:
        prompt.dismiss()
        self.notify_line(message)

    def _refresh_lists(self) -> None:
        """The alarm list is live: asked again when an alarm in the tree changed (at most every 2 s),
        and every 10 s in any case (a hub that sends no alarm fields)."""
        screen = self.screen
        if not isinstance(screen, AlarmsScreen) or not screen.loaded_at:
            return
        waited_s = time.monotonic() - screen.loaded_at
        changed = screen.alarm_version != self.model.alarm_version
        if (changed and waited_s >= 2.0) or waited_s >= 10.0:
            screen.alarm_version = self.model.alarm_version
            screen.action_reload()


__all__ += ["AckPrompt", "AlarmsScreen", "DetailPane", "HelpScreen", "JournalScreen", "ShelvePrompt", "UnackPrompt"]
