"""The view model of ``gsmon watch``: the followed tree -> the rows on screen. Pure: no terminal, no I/O.

:class:`ViewModel` takes the Subscriber's changes (:meth:`ViewModel.apply`,
coalesced: the latest node per path), keeps per-subtree counts up to date as
they come (each change touches its ancestors only), and builds the list of
rows lazily, only when something that changes it happened (a node added or
removed, a level or attention changed, a key expanded or filtered): a value
that changes redraws its row, and no row list is rebuilt for it.

Two orders:

``attention`` (the default)
    Worst first at every level (by attention, then level, then name). A node
    needing attention (attention ORANGE or worse) is expanded, and so is a
    top-level node (one level: its children, collapsed, say where things
    stand); a healthy parent is one collapsed line with its counts
    (``Rack2 ✓ 35 ok``); two or more healthy points beside problems fold into
    one ``(N ok)`` line. The hub's own subtrees (a root starting with ``_``)
    come last and open only for a problem.
``full``
    The whole tree in path order, expanded, except the hub's own ``_hub``.

Expanding or collapsing a node by hand sticks, per order, until the model is
told otherwise. A filter (:meth:`ViewModel.set_filter`) is a point's name or
a full path, segment-aware as everywhere in gsmon (``GS1/A`` covers ``GS1/A``
and ``GS1/A/...``, never ``GS1/AB``; a name matches a node of that name and
its subtree): exactly the matching nodes are shown, with their ancestors,
expanded.

The cursor lives here too (the index of the selected row, kept on the same
node when rows come and go), so navigation is tested without a terminal.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple, Protocol

from gsmon.common.alerts import OrangeAlert, alertstr_for
from gsmon.common.watch.adapter import NodeExtras, attention_of, display_level, read_extras

__all__ = [
    "GROUP_SUFFIX",
    "PROBLEM_LEVEL",
    "Mode",
    "Node",
    "Row",
    "RowKind",
    "ViewModel",
    "covers",
    "parent_of",
]

Mode = Literal["attention", "full"]
#: Attention at or above this is a problem: expanded, sorted first.
PROBLEM_LEVEL: Final = OrangeAlert.alertcode
#: A folded group of healthy points has the key "<parent path>" + this.
GROUP_SUFFIX: Final = "\x00ok"
#: At least this many healthy points beside a problem fold into one line.
MIN_GROUP: Final = 2


class Node(Protocol):
    """What the view needs of a node (:class:`~gsmon.common.client.NodeState` is one)."""

    @property
    def path(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def alertcode(self) -> int: ...
    @property
    def alertstr(self) -> str: ...
    @property
    def stale(self) -> bool: ...
    @property
    def value(self) -> Any: ...
    @property
    def agent(self) -> str | None: ...
    @property
    def polled_at_s(self) -> float | None: ...
    @property
    def received_at_s(self) -> float | None: ...
    @property
    def dt_s(self) -> float | None: ...


def parent_of(path: str) -> str:
    """``"GS1/Rack1/CPU"`` -> ``"GS1/Rack1"``; a root's parent is ``""``."""
    return path.rpartition("/")[0]


def covers(prefix: str, path: str) -> bool:
    """Segment-aware prefix: ``GS1/A`` covers ``GS1/A`` and ``GS1/A/...``, never ``GS1/AB``; ``""`` covers all."""
    prefix = prefix.rstrip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


class RowKind(enum.Enum):
    POINT = "point"
    PARENT = "parent"
    GROUP = "group"  # healthy points folded into one line


class Row(NamedTuple):
    """One line of the tree view (a tuple: 10,000 of them are built in a few milliseconds)."""

    key: str  # the node's path; a group's is its parent's path + GROUP_SUFFIX
    path: str  # the node's path (a group's: its parent's)
    depth: int
    kind: RowKind
    expanded: bool = False
    expandable: bool = False
    members: tuple[str, ...] = ()  # a group's points

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]


@dataclass(slots=True)
class Entry:
    """A node as the model keeps it: the node, and what it is shown and sorted by."""

    node: Node
    level: int
    attention: int
    extras: NodeExtras
    is_point: bool

    @property
    def name(self) -> str:
        return self.node.path.rpartition("/")[2]


def _entry(node: Node) -> Entry:
    extras = read_extras(node)
    level = display_level(node.alertcode, node.stale)
    return Entry(node, level, attention_of(extras, level), extras, node.kind == "point")


@dataclass(slots=True)
class _Filter:
    text: str
    visible: set[str] | None = None  # matches and their ancestors (None: to be computed)
    matches: int = 0


@dataclass(slots=True)
class _Expansion:
    """Hand-made expand/collapse choices of one order."""

    nodes: dict[str, bool] = field(default_factory=dict)
    open_groups: set[str] = field(default_factory=set)


class ViewModel:
    """The rows of the tree view, kept up to date incrementally (see the module docstring)."""

    def __init__(self, mode: Mode = "attention") -> None:
        self.mode: Mode = mode
        self.lost = False
        self._entries: dict[str, Entry] = {}
        self._children: dict[str, set[str]] = {}
        self._roots: set[str] = set()
        # Points below each path (any prefix string, present or not) by display level; "" is everything.
        self._counts: dict[str, Counter[int]] = {}
        self._labels: dict[int, str] = {}
        self._sorted: dict[tuple[str, Mode], list[str]] = {}
        self._expansion: dict[Mode, _Expansion] = {"attention": _Expansion(), "full": _Expansion()}
        self._filter: _Filter | None = None
        self._unacked: dict[str, int] = {}  # path -> alarm id, for unacked alarms
        self._extras_known = False
        self._rows: list[Row] | None = []
        self._index: dict[str, int] = {}
        #: Cells the widest indented name of the rows needs (twisty included), found while building them.
        self.name_needed = 0
        self._cursor = 0
        self._cursor_key: str | None = None
        #: Incremented whenever the row list changes (a redraw of everything).
        self.rows_version = 0
        #: Incremented whenever any node changes (a redraw of the visible rows).
        self.content_version = 0
        # Paths whose own line may read differently since take_changed() (a node, or the counts below a
        # parent); None: any line may (a reset, the hub lost or back).
        self._changed: set[str] | None = set()
        #: Incremented whenever an alarm summary changes (the alarm list re-asks the hub).
        self.alarm_version = 0

    # ------------------------------------------------------------------
    # Input: the tree's changes

    def apply(self, updates: Mapping[str, Node | None], *, reset: bool = False) -> None:
        """Take the latest node per path (``None``: removed); ``reset``: ``updates`` is the whole tree."""
        if reset:
            self._entries.clear()
            self._children.clear()
            self._roots.clear()
            self._counts.clear()
            self._sorted.clear()
            self._unacked.clear()
            self._invalidate()
            self.alarm_version += 1
            self._changed = None
        # Parents before their children, so a new subtree needs no re-rooting of its own nodes.
        for path in sorted(updates, key=lambda p: p.count("/")) if reset else updates:
            node = updates[path]
            if node is None:
                self._remove(path)
            else:
                self._upsert(path, node)
        if updates or reset:
            self.content_version += 1

    def set_lost(self, lost: bool) -> None:
        """The hub is lost (every level is unknown) or back."""
        if lost != self.lost:
            self.lost = lost
            self.content_version += 1
            self._changed = None

    def take_changed(self) -> set[str] | None:
        """The paths whose line may read differently since the last call (``None``: every line may)."""
        changed, self._changed = self._changed, set()
        return changed

    def _count(self, path: str, level: int, delta: int) -> None:
        prefix = path
        changed = self._changed
        while prefix:
            prefix = parent_of(prefix)
            if changed is not None:
                changed.add(prefix)  # a collapsed parent's line says its counts
            counts = self._counts.get(prefix)
            if counts is None:
                counts = self._counts[prefix] = Counter()
            counts[level] += delta
            if not counts[level]:
                del counts[level]

    def _upsert(self, path: str, node: Node) -> None:
        new = _entry(node)
        if self._changed is not None:
            self._changed.add(path)
        if node.alertstr and node.alertcode not in self._labels:
            self._labels[node.alertcode] = node.alertstr
        old = self._entries.get(path)
        self._entries[path] = new
        if not self._extras_known and new.extras.known:
            self._extras_known = True
        alarm = new.extras.alarm
        if (old.extras.alarm if old is not None else None) != alarm:
            self.alarm_version += 1
        if alarm is not None and alarm.unacked:
            self._unacked[path] = alarm.id
        else:
            self._unacked.pop(path, None)
        if old is None:
            parent = parent_of(path)
            self._children.setdefault(parent, set()).add(path)
            if parent not in self._entries:
                self._roots.add(path)
            for child in self._children.get(path, ()):
                self._roots.discard(child)
            if new.is_point:
                self._count(path, new.level, +1)
            self._sorted.pop((parent, "attention"), None)
            self._sorted.pop((parent, "full"), None)
            self._invalidate()
            return
        if old.level != new.level or old.attention != new.attention or old.is_point != new.is_point:
            if old.is_point:
                self._count(path, old.level, -1)
            if new.is_point:
                self._count(path, new.level, +1)
            self._sorted.pop((parent_of(path), "attention"), None)
            # Levels shape the attention tree only: the full tree (path order, all open) keeps its rows.
            if self.mode == "attention" or old.is_point != new.is_point:
                self._invalidate()

    def _remove(self, path: str) -> None:
        old = self._entries.pop(path, None)
        if old is None:
            return
        if self._changed is not None:
            self._changed.add(path)
        parent = parent_of(path)
        siblings = self._children.get(parent)
        if siblings is not None:
            siblings.discard(path)
            if not siblings:
                del self._children[parent]
        self._roots.discard(path)
        for child in self._children.get(path, ()):
            self._roots.add(child)
        if old.is_point:
            self._count(path, old.level, -1)
        if self._unacked.pop(path, None) is not None or old.extras.alarm is not None:
            self.alarm_version += 1
        self._sorted.pop((parent, "attention"), None)
        self._sorted.pop((parent, "full"), None)
        self._invalidate()

    def _invalidate(self) -> None:
        self._rows = None
        if self._filter is not None:
            self._filter.visible = None

    # ------------------------------------------------------------------
    # What the tree holds

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: object) -> bool:
        return path in self._entries

    def entry(self, path: str) -> Entry | None:
        return self._entries.get(path)

    def label(self, level: int) -> str:
        """The word for a level: learnt from the hub's nodes (user levels), else the built-in ladder."""
        return self._labels.get(level) or alertstr_for(level)

    def counts_below(self, path: str) -> Counter[int]:
        """Points below ``path`` (``""``: the whole tree) by display level."""
        return self._counts.get(path, Counter())

    def point_counts(self) -> Counter[int]:
        return self.counts_below("")

    @property
    def extras_known(self) -> bool:
        """Whether the hub sends the operator layer's fields (alarms, attention)."""
        return self._extras_known

    def unacked_count(self) -> int | None:
        """Unacknowledged alarms in the followed tree, as its badges count them: unshelved, at or below each
        root of the view, a removed point's latched one included (the alarm list shows it; no node carries
        it). A hub with its alarm layer sends ``since`` on every node, and then an absent ``unacked_below``
        is 0; from one without (no ``since``), the nodes whose own alarm waits. ``None`` while the hub sends
        no alarm fields."""
        if not self._extras_known:
            return None
        total, layer = 0, False
        for path in self._roots:
            entry = self._entries.get(path)
            if entry is None or entry.extras.since is None:
                continue
            layer = True
            if entry.is_point:
                total += 1 if path in self._unacked and entry.extras.shelf_id is None else 0
            else:
                total += entry.extras.unacked_below or 0
        return total if layer else len(self._unacked)

    def unacked_ids(self, prefix: str) -> list[int]:
        """The ids of the unacked alarms at or below ``prefix`` (what an ack of that subtree sends)."""
        return sorted({alarm_id for path, alarm_id in self._unacked.items() if covers(prefix, path)})

    def acked_ids(self, prefix: str) -> list[int]:
        """The ids of the acknowledged, still active alarms at or below ``prefix`` (what an unack sends)."""
        return sorted(
            {
                entry.extras.alarm.id
                for path, entry in self._entries.items()
                if entry.extras.alarm is not None
                and entry.extras.alarm.state == "active_acked"
                and covers(prefix, path)
            }
        )

    def points_under(self, prefix: str) -> int:
        if prefix in self._entries and self._entries[prefix].is_point:
            return 1
        return sum(self.counts_below(prefix).values())

    # ------------------------------------------------------------------
    # Order, expansion and filter

    def _sort_key_attention(self, path: str) -> tuple[int, int, str]:
        entry = self._entries[path]
        return (-entry.attention, -entry.level, entry.name)

    def _sorted_children(self, parent: str) -> list[str]:
        key = (parent, self.mode)
        cached = self._sorted.get(key)
        if cached is None:
            children = self._children.get(parent, ())
            if self.mode == "attention":
                cached = sorted(children, key=self._sort_key_attention)
            else:
                cached = sorted(children, key=lambda path: path.rpartition("/")[2])
            self._sorted[key] = cached
        return cached

    def _sorted_roots(self) -> list[str]:
        # The hub's own subtrees (_hub) come after the station's, in either order.
        if self.mode == "attention":
            return sorted(self._roots, key=lambda path: (path.startswith("_"), self._sort_key_attention(path)))
        return sorted(self._roots, key=lambda path: (path.startswith("_"), path.split("/")))

    def is_problem(self, path: str) -> bool:
        entry = self._entries.get(path)
        return entry is not None and entry.attention >= PROBLEM_LEVEL

    def is_expanded(self, path: str) -> bool:
        """Whether the parent at ``path`` shows its children."""
        if self._filter is not None:
            return True
        chosen = self._expansion[self.mode].nodes.get(path)
        if chosen is not None:
            return chosen
        if self.mode == "full":
            return not path.startswith("_")
        # A top-level node is opened one level (its children, collapsed, say where things stand)
        # unless it is the hub's own; below that, only what needs attention.
        return self.is_problem(path) or (path in self._roots and not path.startswith("_"))

    def set_expanded(self, path: str, expanded: bool) -> None:
        if self._filter is not None:
            return  # a filtered view shows every match: nothing to fold
        if path.endswith(GROUP_SUFFIX):
            groups = self._expansion[self.mode].open_groups
            parent = path.removesuffix(GROUP_SUFFIX)
            if expanded:
                groups.add(parent)
            else:
                groups.discard(parent)
        else:
            self._expansion[self.mode].nodes[path] = expanded
            if not expanded:
                self._expansion[self.mode].open_groups.discard(path)
        self._invalidate()

    def set_mode(self, mode: Mode) -> None:
        if mode != self.mode:
            self.mode = mode
            self._invalidate()

    def toggle_mode(self) -> Mode:
        self.set_mode("full" if self.mode == "attention" else "attention")
        return self.mode

    @property
    def filter_text(self) -> str | None:
        return None if self._filter is None else self._filter.text

    def set_filter(self, text: str | None) -> int:
        """Show only what ``text`` matches (``None`` or blank: everything); return how many nodes match."""
        cleaned = (text or "").strip()
        self._filter = _Filter(cleaned) if cleaned else None
        self._invalidate()
        if self._filter is None:
            return len(self._entries)
        self._visible()
        return self._filter.matches

    def _visible(self) -> set[str] | None:
        if self._filter is None:
            return None
        if self._filter.visible is None:
            text = self._filter.text
            if "/" in text:
                prefix = text.strip("/")
                matched = [path for path in self._entries if covers(prefix, path)]
            else:
                matched = [path for path in self._entries if text in path.split("/")]
            visible = set(matched)
            for path in matched:
                parent = parent_of(path)
                while parent and parent not in visible:
                    visible.add(parent)
                    parent = parent_of(parent)
            self._filter.visible = visible
            self._filter.matches = len(matched)
        return self._filter.visible

    # ------------------------------------------------------------------
    # Output: rows

    @property
    def rows(self) -> Sequence[Row]:
        if self._rows is None:
            self._build()
        assert self._rows is not None
        return self._rows

    def _build(self) -> None:
        rows: list[Row] = []
        append = rows.append
        needed = 0
        visible = self._visible()
        grouping = self.mode == "attention" and visible is None
        open_groups = self._expansion[self.mode].open_groups
        hand_made = self._expansion[self.mode].nodes
        entries = self._entries
        folded_groups: dict[str, tuple[str, ...]] = {}
        # An explicit stack (depth-first, children in order) instead of recursion: cheap on 10,000 rows.
        stack: list[tuple[str, int]] = [(path, 0) for path in reversed(self._sorted_roots())]
        if visible is not None:
            stack = [item for item in stack if item[0] in visible]
        while stack:
            path, depth = stack.pop()
            if path.endswith(GROUP_SUFFIX):
                parent = path.removesuffix(GROUP_SUFFIX)
                members = folded_groups.pop(parent)
                append(Row(path, parent, depth, RowKind.GROUP, False, True, members))
                needed = max(needed, 2 * depth + 8 + len(str(len(members))))  # "▸ (12 unknown)"
                continue
            entry = entries[path]
            width = 2 * depth + 2 + len(path.rpartition("/")[2])
            if width > needed:
                needed = width
            children = self._sorted_children(path)
            if visible is not None:
                children = [child for child in children if child in visible]
            if entry.is_point and not children:
                append(Row(path, path, depth, RowKind.POINT))
                continue
            expanded = bool(children) and self.is_expanded(path)
            append(Row(path, path, depth, RowKind.PARENT, expanded, bool(children)))
            if not expanded:
                continue
            shown: Iterable[str] = children
            # Fold healthy points only under a node opened by the rules: one opened by hand shows them all.
            if grouping and path not in open_groups and path not in hand_made:
                healthy = self._group_members(path)
                if len(healthy) >= MIN_GROUP:
                    folded_groups[path] = tuple(healthy)  # the group's row, popped below, holds them
                    folded = set(healthy)
                    shown = [child for child in children if child not in folded] + [path + GROUP_SUFFIX]
            stack.extend((child, depth + 1) for child in reversed(list(shown)))
        self._rows = rows
        self.name_needed = needed
        self._index = {row[0]: index for index, row in enumerate(rows)}
        self.rows_version += 1
        self._place_cursor()

    def _group_members(self, parent: str) -> list[str]:
        """The healthy points among ``parent``'s children (in order): below ORANGE, no attention, no children."""
        entries = self._entries
        return [
            child
            for child in self._sorted_children(parent)
            if (entry := entries[child]).is_point
            and entry.level < PROBLEM_LEVEL
            and entry.attention < PROBLEM_LEVEL
            and child not in self._children
        ]

    def index_of(self, key: str) -> int | None:
        self.rows  # noqa: B018 -- builds the index when needed
        return self._index.get(key)

    # ------------------------------------------------------------------
    # The cursor

    @property
    def cursor(self) -> int:
        self.rows  # noqa: B018 -- places the cursor on a fresh build
        return self._cursor

    @property
    def selected(self) -> Row | None:
        rows = self.rows
        return rows[self._cursor] if rows else None

    def _place_cursor(self) -> None:
        rows = self._rows or []
        if self._cursor_key is not None:
            index = self._index.get(self._cursor_key)
            if index is None and self._cursor_key.endswith(GROUP_SUFFIX):
                index = self._index.get(self._cursor_key.removesuffix(GROUP_SUFFIX))
            if index is None and (index := self._row_holding(self._cursor_key)) is not None:
                self._cursor_key = rows[index].key  # the selection is now that row (what a and s act on)
            if index is not None:
                self._cursor = index
                return
        self._cursor = max(0, min(self._cursor, len(rows) - 1))
        self._cursor_key = rows[self._cursor].key if rows else None

    def _row_holding(self, key: str) -> int | None:
        """The row that now shows the node ``key`` whose own row is gone: the ``(N ok)`` group that folded
        it, or its nearest ancestor on screen (a subtree that became healthy collapsed around it). The
        selection is what ``a`` and ``s`` act on: it must not slide onto a neighbour's subtree."""
        rows = self._rows or []
        for position, row in enumerate(rows):
            if row.kind is RowKind.GROUP and key in row.members:
                return position
        path = parent_of(key)
        while path:
            index = self._index.get(path)
            if index is not None:
                return index
            path = parent_of(path)
        return None

    def move_to(self, index: int) -> None:
        rows = self.rows
        if not rows:
            return
        self._cursor = max(0, min(index, len(rows) - 1))
        self._cursor_key = rows[self._cursor].key

    def move(self, delta: int) -> None:
        self.move_to(self.cursor + delta)

    def select(self, key: str) -> bool:
        index = self.index_of(key)
        if index is None:
            return False
        self.move_to(index)
        return True

    def expand(self) -> None:
        """→: open the selected parent or group; on an open parent, go to its first child."""
        row = self.selected
        if row is None or not row.expandable:
            return
        if row.kind is RowKind.GROUP:
            self._open_group(row)
        elif not row.expanded:
            self.set_expanded(row.path, True)
        else:
            self.move(1)

    def collapse(self) -> None:
        """←: close the selected parent; elsewhere, go to the parent's row."""
        row = self.selected
        if row is None:
            return
        if row.kind is RowKind.PARENT and row.expanded and self._filter is None:
            self.set_expanded(row.path, False)
            return
        parent = parent_of(row.path) if row.kind is not RowKind.GROUP else row.path
        if parent:
            self.select(parent)

    def toggle(self) -> None:
        """Enter: open or close the selected parent or group."""
        row = self.selected
        if row is None or not row.expandable:
            return
        if row.kind is RowKind.GROUP:
            self._open_group(row)
        else:
            self.set_expanded(row.path, not row.expanded)

    def _open_group(self, row: Row) -> None:
        self.set_expanded(row.key, True)
        if row.members:
            self._cursor_key = row.members[0]  # the cursor lands on the first point the group held
