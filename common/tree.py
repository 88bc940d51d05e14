"""A tree of monitor points whose parents show their worst child.

Both the agent's local tree (keyed by point name) and the hub's global tree
(keyed by path) are instances of :class:`RollupTree`. It only knows keys,
parent links and alert codes; what a node *means* lives in the ``data`` slot.

Rollup is incremental. Every parent keeps a small histogram of its children's
codes (``{code: how many children have it}``); a change updates the histogram
of each ancestor in turn and stops at the first ancestor whose worst code did
not move. A change therefore costs O(depth x distinct codes) and the tree is
never rescanned, which is what lets one hub carry 100,000 points.

    set_code(leaf, RED)        leaf: GREEN -> RED
        parent  {GREEN: 3}          -> {GREEN: 2, RED: 1}   worst GREEN -> RED
        grandpa {GREEN: 1, RED: 1}  -> {RED: 2}             worst RED   -> RED  (stop)

Not thread-safe: callers serialise access (the Monitor under its lock, the hub
in its single loop thread).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["RollupTree", "TreeNode"]


class TreeNode:
    """One node: a leaf carries its own code, a parent the worst of its children."""

    __slots__ = ("child_codes", "children", "code", "data", "is_leaf", "key", "parent")

    def __init__(self, key: str, parent: TreeNode | None, is_leaf: bool, code: int, data: Any) -> None:
        self.key = key
        self.parent = parent
        self.is_leaf = is_leaf
        self.code = code
        self.data = data
        # Parents only: children by key, and how many children have each code.
        self.children: dict[str, TreeNode] = {}
        self.child_codes: dict[int, int] = {}

    def __repr__(self) -> str:
        kind = "leaf" if self.is_leaf else "parent"
        return f"TreeNode({self.key!r}, {kind}, code={self.code})"


class RollupTree:
    """Nodes by key, with parent links and incremental worst-child rollup.

    Mutators return the list of *ancestors* whose code changed (nearest
    first), so a caller that publishes changes knows exactly which parents to
    re-send.
    """

    __slots__ = ("_nodes", "_roots")

    def __init__(self) -> None:
        self._nodes: dict[str, TreeNode] = {}
        self._roots: dict[str, TreeNode] = {}

    # -- queries ---------------------------------------------------------

    def __contains__(self, key: object) -> bool:
        return key in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def __getitem__(self, key: str) -> TreeNode:
        return self._nodes[key]

    def get(self, key: str) -> TreeNode | None:
        return self._nodes.get(key)

    def by_key(self) -> Mapping[str, TreeNode]:
        """Every node by key, as a read-only view (its ``get`` is a C call: for loops over many nodes)."""
        return MappingProxyType(self._nodes)

    def items(self) -> Iterator[tuple[str, TreeNode]]:
        """Every ``(key, node)``, in no particular order (a flat index: no walk)."""
        return iter(self._nodes.items())

    def roots(self) -> list[TreeNode]:
        return list(self._roots.values())

    def worst_code(self) -> int:
        """The worst code in the whole tree (0 when empty)."""
        return max((root.code for root in self._roots.values()), default=0)

    def walk(self, start: TreeNode | None = None, sort: bool = True) -> Iterator[tuple[int, TreeNode]]:
        """Depth-first ``(depth, node)`` pairs below ``start`` (the whole tree
        when ``None``), children sorted by key when ``sort``. Depth counts from
        0 at the first level yielded; ``start`` itself is not yielded."""
        level = start.children if start is not None else self._roots
        stack: list[tuple[int, TreeNode]] = []
        first = sorted(level.values(), key=_key, reverse=True) if sort else list(reversed(level.values()))
        stack.extend((0, node) for node in first)
        while stack:
            depth, node = stack.pop()
            yield depth, node
            if node.children:
                kids = node.children.values()
                ordered = sorted(kids, key=_key, reverse=True) if sort else list(reversed(kids))
                stack.extend((depth + 1, kid) for kid in ordered)

    # -- mutators --------------------------------------------------------

    def add(self, key: str, parent_key: str | None, *, is_leaf: bool, data: Any = None) -> TreeNode:
        """Add a node with code 0 under ``parent_key`` (which must exist and be
        a parent) and return it. A code-0 node never changes an ancestor, so
        there is nothing to roll up; set its real code with :meth:`set_code`.

        Raises ``KeyError`` for an unknown parent or an existing key and
        ``ValueError`` when the parent is a leaf; nothing is changed then.
        """
        if key in self._nodes:
            raise KeyError(f"{key!r} already exists")
        parent = None
        if parent_key is not None:
            parent = self._nodes.get(parent_key)
            if parent is None:
                raise KeyError(f"parent {parent_key!r} does not exist")
            if parent.is_leaf:
                raise ValueError(f"{parent_key!r} is a point, not a parent")
        node = TreeNode(key, parent, is_leaf, 0, data)
        self._nodes[key] = node
        if parent is None:
            self._roots[key] = node
        else:
            parent.children[key] = node
            counts = parent.child_codes
            counts[0] = counts.get(0, 0) + 1
        return node

    def set_code(self, node: TreeNode, code: int) -> list[TreeNode]:
        """Set a leaf's code and roll it up; return the ancestors that changed."""
        old = node.code
        if old == code:
            return []
        node.code = code
        parent = node.parent
        if parent is None:
            return []
        return self._propagate(parent, old, code)

    def remove(self, key: str) -> list[TreeNode]:
        """Remove a leaf or a childless parent; return the ancestors that changed.

        Raises ``KeyError`` for an unknown key and ``ValueError`` for a parent
        that still has children.
        """
        node = self._nodes[key]
        if node.children:
            raise ValueError(f"{key!r} still has {len(node.children)} children")
        del self._nodes[key]
        parent = node.parent
        if parent is None:
            del self._roots[key]
            return []
        del parent.children[key]
        node.parent = None
        return self._propagate(parent, node.code, None)

    def reparent(self, key: str, parent_key: str | None) -> list[TreeNode]:
        """Move a node (and its subtree) under another parent."""
        node = self._nodes[key]
        new_parent = self._nodes[parent_key] if parent_key is not None else None
        if new_parent is not None and new_parent.is_leaf:
            raise ValueError(f"{parent_key!r} is a point, not a parent")
        ancestor = new_parent
        while ancestor is not None:
            if ancestor is node:
                raise ValueError(f"moving {key!r} under {parent_key!r} would make a cycle")
            ancestor = ancestor.parent
        old_parent = node.parent
        # Both sides may share ancestors that dip and recover during the move:
        # remember every ancestor's code and report only the net changes, once.
        before: dict[TreeNode, int] = {}
        for side in (old_parent, new_parent):
            while side is not None and side not in before:
                before[side] = side.code
                side = side.parent
        if old_parent is None:
            del self._roots[key]
        else:
            del old_parent.children[key]
            self._propagate(old_parent, node.code, None)
        node.parent = new_parent
        if new_parent is None:
            self._roots[key] = node
        else:
            new_parent.children[key] = node
            self._propagate(new_parent, None, node.code)
        return [ancestor for ancestor, code in before.items() if ancestor.code != code]

    # -- rollup ----------------------------------------------------------

    def _propagate(self, parent: TreeNode | None, old: int | None, new: int | None) -> list[TreeNode]:
        """A child of ``parent`` went from code ``old`` to ``new`` (``None``:
        the child was not there / is gone). Update histograms upwards until a
        parent's worst code stays put."""
        changed: list[TreeNode] = []
        while parent is not None:
            counts = parent.child_codes
            if old is not None:
                remaining = counts[old] - 1
                if remaining:
                    counts[old] = remaining
                else:
                    del counts[old]
            if new is not None:
                counts[new] = counts.get(new, 0) + 1
            # A parent never reads below NoAlert (0), whatever codes users invent:
            # that is also why adding a code-0 child never needs a rollup.
            worst = max(0, max(counts)) if counts else 0
            if worst == parent.code:
                break
            old, new = parent.code, worst
            parent.code = worst
            changed.append(parent)
            parent = parent.parent
        return changed


def _key(node: TreeNode) -> str:
    return node.key
