"""The jurisdiction tree's decisions (org/tree.py): placement rules and moves, with a Hypothesis
property over random trees and random moves."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from org.tree import (
    GRID_PARENTS,
    LEVELS,
    Node,
    TreeError,
    all_paths,
    ancestors,
    check_nodes,
    check_placement,
    move,
    path,
    subtree,
)

CITY = {
    1: Node(1, None, "city", "350100"),
    2: Node(2, 1, "district", "350102"),
    3: Node(3, 2, "township", "350102001"),
    4: Node(4, 3, "grid"),
    5: Node(5, 1, "district", "350103"),
    6: Node(6, 5, "township", "350103002"),
}


def test_paths_and_subtrees() -> None:
    assert path(CITY, 4) == (1, 2, 3, 4)
    assert subtree(CITY, 2) == {2, 3, 4}
    assert list(ancestors(CITY, 1)) == []


@pytest.mark.parametrize(("node", "reason"), [
    (Node(7, 99, "grid"), "does not exist"),
    (Node(7, 4, "grid"), "leaf"),
    (Node(7, 3, "district", "350104"), "cannot hang under"),
    (Node(7, 2, "township", "350103001"), "does not lie inside"),
    (Node(7, 3, "grid", "350102001001"), "no administrative division code"),
    (Node(7, 3, "hamlet"), "unknown level"),
    (Node(7, 2, "grid"), "under a township or a community"),
    (Node(7, 1, "district", "35010x"), "6, 9 or 12 digits"),
])
def test_placements_refused_with_a_reason(node: Node, reason: str) -> None:
    with pytest.raises(TreeError, match=reason):
        check_placement(CITY, node)


def test_a_move_takes_the_subtree_and_refuses_cycles() -> None:
    grid_moved = move(CITY, 4, 6)
    assert path(grid_moved, 4) == (1, 5, 6, 4)
    with pytest.raises(TreeError, match="own subtree"):
        move(CITY, 2, 3)
    with pytest.raises(TreeError, match="own subtree"):
        move(CITY, 2, 2)
    # a township with a code cannot move under a district whose code does not contain it
    with pytest.raises(TreeError, match="does not lie inside"):
        move(CITY, 3, 5)


@st.composite
def trees(draw: st.DrawFn) -> dict[int, Node]:
    """Random trees with no codes: each node under a random earlier node of a higher level."""
    n = draw(st.integers(1, 25))
    tree: dict[int, Node] = {}
    for i in range(n):
        candidates = [m for m in tree.values() if m.level != "grid"]
        parent = draw(st.sampled_from([None, *candidates])) if candidates else None
        low = 0 if parent is None else LEVELS.index(parent.level) + 1
        choices = [lv for lv in LEVELS[low:]
                   if lv != "grid" or (parent is not None and parent.level in GRID_PARENTS)]
        if not choices:
            parent, choices = None, list(LEVELS[:-1])
        level = draw(st.sampled_from(choices))
        tree[i] = Node(i, None if parent is None else parent.id, level)
    return tree


@given(trees(), st.lists(st.tuples(st.integers(0, 24), st.one_of(st.none(), st.integers(0, 24))),
                         max_size=30))
def test_any_sequence_of_moves_keeps_a_forest(tree: dict[int, Node],
                                              moves: list[tuple[int, int | None]]) -> None:
    """Whatever is asked, every node keeps a path to a root; a move is refused exactly when it
    would close a cycle or break a level rule; an accepted one moves the whole subtree."""
    for node_id, target in moves:
        if node_id not in tree or (target is not None and target not in tree):
            continue
        before = subtree(tree, node_id)
        cycle = target is not None and target in before
        # the bulk check (linear, for imports) agrees with the single one
        asked = {**tree, node_id: Node(node_id, target, tree[node_id].level)}
        bulk_refused = node_id in check_nodes(asked, [node_id])
        try:
            after = move(tree, node_id, target)
        except TreeError:
            assert bulk_refused
            if not cycle and target is not None:
                parent, node = tree[target], tree[node_id]
                assert parent.level == "grid" or LEVELS.index(node.level) <= LEVELS.index(
                    parent.level) or (node.level == "grid" and parent.level not in GRID_PARENTS)
            else:
                assert cycle
            continue
        assert not cycle and not bulk_refused
        tree = after
        assert all_paths(tree) == {n: path(tree, n) for n in tree}
        assert subtree(tree, node_id) == before
        for n in tree:
            p = path(tree, n)
            assert tree[p[0]].parent_id is None
            assert all(LEVELS.index(tree[a].level) < LEVELS.index(tree[b].level)
                       for a, b in pairwise(p))
