"""RollupTree: add/remove/reparent/set_code, incremental worst-child rollup."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gsmon.common.tree import RollupTree, TreeNode


def build(spec: dict[str, tuple[str | None, bool, int]]) -> RollupTree:
    """Build a tree from ``{key: (parent, is_leaf, code)}`` listed parents-first."""
    tree = RollupTree()
    for key, (parent, is_leaf, _) in spec.items():
        tree.add(key, parent, is_leaf=is_leaf)
    for key, (_, is_leaf, code) in spec.items():
        if is_leaf:
            tree.set_code(tree[key], code)
    return tree


def keys(nodes: list[TreeNode]) -> list[str]:
    return [node.key for node in nodes]


class Untouchable:
    """Stands in for a node that rollup must never look at."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"rollup touched a node off the ancestor path (.{name})")


# -- basic behaviour ------------------------------------------------------


def test_empty_tree() -> None:
    """An empty tree has no nodes, no roots and worst code 0."""
    tree = RollupTree()
    assert len(tree) == 0
    assert tree.roots() == []
    assert tree.worst_code() == 0
    assert list(tree.walk()) == []
    assert "x" not in tree
    assert tree.get("x") is None


def test_add_creates_code_zero_nodes_and_links() -> None:
    """add() links the node under its parent with code 0 and changes no ancestor."""
    tree = RollupTree()
    root = tree.add("Antenna", None, is_leaf=False, data="meta")
    leaf = tree.add("Azimuth", "Antenna", is_leaf=True)
    assert leaf.parent is root
    assert leaf.code == 0
    assert root.children == {"Azimuth": leaf}
    assert root.child_codes == {0: 1}
    assert root.data == "meta"
    assert tree.roots() == [root]
    assert "Azimuth" in tree
    assert len(tree) == 2


def test_set_code_rolls_up_to_every_ancestor() -> None:
    """A leaf turning Red makes its parent and grandparent Red, nearest first."""
    tree = build({"GS": (None, False, 0), "Ant": ("GS", False, 0), "Az": ("Ant", True, 10)})
    changed = tree.set_code(tree["Az"], 30)
    assert keys(changed) == ["Ant", "GS"]
    assert tree["Ant"].code == 30
    assert tree["GS"].code == 30
    assert tree.worst_code() == 30


def test_set_code_stops_at_first_unchanged_ancestor() -> None:
    """Rollup stops where a worse sibling already holds the ancestor's code."""
    tree = build(
        {
            "GS": (None, False, 0),
            "Ant": ("GS", False, 0),
            "Rack": ("GS", False, 0),
            "Az": ("Ant", True, 10),
            "Power": ("Rack", True, 100),
        }
    )
    assert tree["GS"].code == 100
    changed = tree.set_code(tree["Az"], 30)
    assert keys(changed) == ["Ant"]
    assert tree["GS"].code == 100


def test_set_code_same_code_changes_nothing() -> None:
    """Setting the code a leaf already has returns no changed ancestors."""
    tree = build({"P": (None, False, 0), "L": ("P", True, 20)})
    assert tree.set_code(tree["L"], 20) == []
    assert tree["P"].code == 20


def test_parent_drops_back_when_worst_child_recovers() -> None:
    """When the worst child improves, the parent falls to the next-worst child."""
    tree = build({"P": (None, False, 0), "a": ("P", True, 30), "b": ("P", True, 20), "c": ("P", True, 30)})
    assert tree.set_code(tree["a"], 10) == []  # c is still Red
    assert keys(tree.set_code(tree["c"], 10)) == ["P"]
    assert tree["P"].code == 20


def test_rollup_never_touches_siblings_or_cousins() -> None:
    """A change walks only the ancestors: siblings, uncles and cousins are never read."""
    tree = build(
        {
            "GS": (None, False, 0),
            "Ant": ("GS", False, 0),
            "Rack": ("GS", False, 0),
            "Az": ("Ant", True, 10),
            "El": ("Ant", True, 10),
            "Power": ("Rack", True, 10),
        }
    )
    tree["Ant"].children["El"] = Untouchable()  # type: ignore[assignment]
    tree["GS"].children["Rack"] = Untouchable()  # type: ignore[assignment]
    assert keys(tree.set_code(tree["Az"], 30)) == ["Ant", "GS"]
    assert keys(tree.set_code(tree["Az"], 10)) == ["Ant", "GS"]
    assert tree["GS"].code == 10


def test_root_leaf_counts_in_worst_code() -> None:
    """A top-level point counts towards the tree's worst code."""
    tree = build({"P": (None, False, 0), "a": ("P", True, 20), "top": (None, True, 100)})
    assert tree.worst_code() == 100
    assert tree.set_code(tree["top"], 0) == []
    assert tree.worst_code() == 20


def test_add_refuses_duplicates_unknown_parents_and_leaf_parents() -> None:
    """add() refuses an existing key, a missing parent and a leaf as parent, changing nothing."""
    tree = build({"P": (None, False, 0), "L": ("P", True, 10)})
    with pytest.raises(KeyError, match="already exists"):
        tree.add("L", None, is_leaf=True)
    with pytest.raises(KeyError, match="does not exist"):
        tree.add("x", "nope", is_leaf=True)
    with pytest.raises(ValueError, match="is a point"):
        tree.add("x", "L", is_leaf=True)
    assert len(tree) == 2
    assert tree["P"].child_codes == {10: 1}


def test_remove_leaf_rolls_parent_back() -> None:
    """Removing the worst leaf lowers its parent; removing the last leaf makes it 0."""
    tree = build({"P": (None, False, 0), "a": ("P", True, 30), "b": ("P", True, 10)})
    assert keys(tree.remove("a")) == ["P"]
    assert tree["P"].code == 10
    assert "a" not in tree
    assert keys(tree.remove("b")) == ["P"]
    assert tree["P"].code == 0
    assert tree["P"].child_codes == {}


def test_remove_refuses_parent_with_children() -> None:
    """A parent that still has children cannot be removed; nothing changes."""
    tree = build({"P": (None, False, 0), "a": ("P", True, 30)})
    with pytest.raises(ValueError, match="still has 1 children"):
        tree.remove("P")
    assert "P" in tree
    assert tree["P"].code == 30
    with pytest.raises(KeyError):
        tree.remove("nope")


def test_remove_root_nodes() -> None:
    """Top-level leaves and childless parents can be removed."""
    tree = build({"P": (None, False, 0), "top": (None, True, 30)})
    assert tree.remove("top") == []
    assert tree.remove("P") == []
    assert len(tree) == 0
    assert tree.worst_code() == 0


def test_reparent_moves_subtree_and_rolls_both_sides() -> None:
    """Moving a Red subtree lowers the old parent and raises the new one."""
    tree = build(
        {
            "A": (None, False, 0),
            "B": (None, False, 0),
            "sub": ("A", False, 0),
            "x": ("sub", True, 30),
            "y": ("B", True, 10),
        }
    )
    changed = tree.reparent("sub", "B")
    assert set(keys(changed)) == {"A", "B"}
    assert tree["A"].code == 0
    assert tree["B"].code == 30
    assert tree["sub"].parent is tree["B"]
    assert "sub" not in tree["A"].children


def test_reparent_to_and_from_top_level() -> None:
    """A node can move to the top level and back."""
    tree = build({"A": (None, False, 0), "x": ("A", True, 20)})
    assert keys(tree.reparent("x", None)) == ["A"]
    assert tree["x"] in tree.roots()
    assert tree["A"].code == 0
    assert keys(tree.reparent("x", "A")) == ["A"]
    assert tree["A"].code == 20
    assert tree["x"] not in tree.roots()


def test_reparent_within_same_ancestor_reports_only_net_changes() -> None:
    """Moving a Red leaf between two siblings of one grandparent leaves the grandparent unreported."""
    tree = build(
        {
            "G": (None, False, 0),
            "A": ("G", False, 0),
            "B": ("G", False, 0),
            "x": ("A", True, 30),
        }
    )
    changed = tree.reparent("x", "B")
    assert sorted(keys(changed)) == ["A", "B"]
    assert tree["G"].code == 30


def test_reparent_refuses_cycles_and_leaf_parents() -> None:
    """A node cannot move under itself, its descendant, or a leaf; nothing changes."""
    tree = build({"A": (None, False, 0), "B": ("A", False, 0), "x": ("B", True, 30)})
    with pytest.raises(ValueError, match="cycle"):
        tree.reparent("A", "B")
    with pytest.raises(ValueError, match="cycle"):
        tree.reparent("A", "A")
    with pytest.raises(ValueError, match="is a point"):
        tree.reparent("B", "x")
    with pytest.raises(KeyError):
        tree.reparent("B", "nope")
    assert tree["B"].parent is tree["A"]
    assert tree["A"].code == 30


def test_walk_is_depth_first_sorted_with_depths() -> None:
    """walk() yields (depth, node) depth first, children sorted by key."""
    tree = build(
        {
            "b": (None, False, 0),
            "a": (None, False, 0),
            "z": ("a", True, 0),
            "y": ("a", False, 0),
            "k": ("y", True, 0),
            "c": ("b", True, 0),
        }
    )
    assert [(d, n.key) for d, n in tree.walk()] == [(0, "a"), (1, "y"), (2, "k"), (1, "z"), (0, "b"), (1, "c")]
    assert [(d, n.key) for d, n in tree.walk(tree["a"])] == [(0, "y"), (1, "k"), (0, "z")]
    assert {n.key for _, n in tree.walk(sort=False)} == set("abzykc")


def test_negative_user_code_never_drags_parent_below_zero() -> None:
    """A parent reads 0 (not -1) over a negative-code child, so adding a code-0 sibling needs no rollup."""
    tree = build({"P": (None, False, 0), "a": ("P", True, 0)})
    assert tree.set_code(tree["a"], -1) == []
    assert tree["P"].code == 0
    tree.add("b", "P", is_leaf=True)
    assert tree["P"].code == 0
    assert tree.remove("b") == []
    assert keys(tree.set_code(tree["a"], 20)) == ["P"]
    assert tree["P"].code == 20


def test_tree_node_repr() -> None:
    """A node's repr says its key, kind and code."""
    tree = build({"P": (None, False, 0), "L": ("P", True, 20)})
    assert repr(tree["L"]) == "TreeNode('L', leaf, code=20)"
    assert repr(tree["P"]) == "TreeNode('P', parent, code=20)"


# -- the property test ----------------------------------------------------

KEYS = st.sampled_from([f"n{i}" for i in range(8)])
CODES = st.sampled_from([-1, 0, 5, 10, 15, 20, 30, 50, 100])


class RollupMachine(RuleBasedStateMachine):
    """Random add/set_code/remove/reparent sequences checked against a naive model."""

    def __init__(self) -> None:
        super().__init__()
        self.tree = RollupTree()
        # The model: key -> parent key, and the leaves' own codes.
        self.parent_of: dict[str, str | None] = {}
        self.leaf_code: dict[str, int] = {}

    # model helpers
    def children(self, key: str | None) -> list[str]:
        return [k for k, p in self.parent_of.items() if p == key]

    def model_code(self, key: str) -> int:
        if key in self.leaf_code:
            return self.leaf_code[key]
        # The worst child; a parent never reads below NoAlert (0), even with negative user codes.
        return max([0, *(self.model_code(kid) for kid in self.children(key))])

    def all_codes(self) -> dict[str, int]:
        return {key: self.model_code(key) for key in self.parent_of}

    def parents(self) -> list[str]:
        return sorted(k for k in self.parent_of if k not in self.leaf_code)

    def descendants(self, key: str) -> set[str]:
        found = {key}
        for kid in self.children(key):
            found |= self.descendants(kid)
        return found

    def check_changed(self, before: dict[str, int], changed: list[TreeNode], exclude: str) -> None:
        """The returned list is exactly the nodes (other than ``exclude``) whose code moved."""
        after = self.all_codes()
        expected = {k for k in before if k in after and k != exclude and before[k] != after[k]}
        returned = keys(changed)
        assert len(returned) == len(set(returned)), f"duplicates in {returned}"
        assert set(returned) == expected
        for node in changed:
            assert node.code == after[node.key]

    @initialize(links=st.lists(st.integers(-1, 4), max_size=5))
    def skeleton(self, links: list[int]) -> None:
        """Start from a random nest of parents: g<i> sits under an earlier g<j> (or at the top)."""
        for i, up in enumerate(links):
            parent = f"g{up}" if 0 <= up < i else None
            self.tree.add(f"g{i}", parent, is_leaf=False)
            self.parent_of[f"g{i}"] = parent

    def some_parent(self, data: st.DataObject) -> str | None:
        """An existing parent or the top level (so that deep, shared branches actually get built)."""
        return data.draw(st.sampled_from([None, *self.parents()]))

    # rules
    @rule(data=st.data(), key=KEYS, is_leaf=st.booleans())
    def add(self, data: st.DataObject, key: str, is_leaf: bool) -> None:
        parent = self.some_parent(data)
        if key in self.parent_of:
            with pytest.raises(KeyError):
                self.tree.add(key, parent, is_leaf=is_leaf)
            return
        node = self.tree.add(key, parent, is_leaf=is_leaf)
        assert node.code == 0
        self.parent_of[key] = parent
        if is_leaf:
            self.leaf_code[key] = 0

    @rule(data=st.data(), key=KEYS)
    def add_under_leaf_or_unknown_is_refused(self, data: st.DataObject, key: str) -> None:
        bad = data.draw(st.sampled_from(["missing", *sorted(self.leaf_code)]))
        with pytest.raises((KeyError, ValueError)):
            self.tree.add(key, bad, is_leaf=True)

    @precondition(lambda self: bool(self.leaf_code))
    @rule(data=st.data(), code=CODES)
    def set_code(self, data: st.DataObject, code: int) -> None:
        key = data.draw(st.sampled_from(sorted(self.leaf_code)))
        before = self.all_codes()
        self.leaf_code[key] = code
        changed = self.tree.set_code(self.tree[key], code)
        self.check_changed(before, changed, exclude=key)

    @precondition(lambda self: bool(self.parent_of))
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.parent_of)))
        if self.children(key):
            with pytest.raises(ValueError, match="children"):
                self.tree.remove(key)
            return
        before = self.all_codes()
        del self.parent_of[key]
        self.leaf_code.pop(key, None)
        changed = self.tree.remove(key)
        self.check_changed(before, changed, exclude=key)

    @precondition(lambda self: bool(self.parent_of))
    @rule(data=st.data())
    def reparent(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.parent_of)))
        new_parent = self.some_parent(data)
        if new_parent is not None and new_parent in self.descendants(key):
            with pytest.raises(ValueError, match="cycle"):
                self.tree.reparent(key, new_parent)
            return
        before = self.all_codes()
        self.parent_of[key] = new_parent
        changed = self.tree.reparent(key, new_parent)
        self.check_changed(before, changed, exclude=key)

    @precondition(lambda self: bool(self.leaf_code))
    @rule(data=st.data())
    def reparent_under_leaf_is_refused(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.parent_of)))
        leaf = data.draw(st.sampled_from(sorted(self.leaf_code)))
        with pytest.raises(ValueError, match=r"point|cycle"):
            self.tree.reparent(key, leaf)

    # invariants
    @invariant()
    def every_parent_is_its_worst_child(self) -> None:
        for key, node in ((k, self.tree[k]) for k in self.parent_of):
            if node.is_leaf:
                continue
            assert node.code == max([0, *(kid.code for kid in node.children.values())]), key
            histogram: dict[int, int] = {}
            for kid in node.children.values():
                histogram[kid.code] = histogram.get(kid.code, 0) + 1
            assert node.child_codes == histogram, key

    @invariant()
    def tree_matches_model(self) -> None:
        assert len(self.tree) == len(self.parent_of)
        codes = self.all_codes()
        for key, parent in self.parent_of.items():
            node = self.tree[key]
            assert node.code == codes[key], key
            assert (node.parent.key if node.parent else None) == parent
            assert node.is_leaf == (key in self.leaf_code)
        assert {n.key for n in self.tree.roots()} == {k for k, p in self.parent_of.items() if p is None}
        tops = [codes[k] for k, p in self.parent_of.items() if p is None]
        assert self.tree.worst_code() == max(tops, default=0)
        assert sorted(n.key for _, n in self.tree.walk()) == sorted(self.parent_of)


RollupMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestRollupProperty = RollupMachine.TestCase
TestRollupProperty.__doc__ = "After any update sequence every parent is its worst child and changes are exact."
