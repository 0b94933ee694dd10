"""The jurisdiction tree as pure decisions: where a node may hang, what a move takes with it.

Levels run from the city down to the grid (any of them may be skipped, none reversed): a node
hangs only under a node of a higher level, a grid hangs under a township or a community and
has no children, and where both carry an
administrative division code (org/codes.py) the child's code lies inside the parent's. Moving
a node moves its subtree; a move under the node itself or one of its descendants is a cycle
and is refused. The database keeps the same rules (migrations); these functions give the
reasons in words and are what the API calls before it writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from org.codes import CodeError, admin_level, admin_within

LEVELS = ("province", "city", "district", "township", "community", "grid")
LEVEL_RANK = {name: rank for rank, name in enumerate(LEVELS)}
# Grids cut a township (street) or a village (community) into patrol areas
GRID_PARENTS = ("township", "community")


class TreeError(ValueError):
    """A change the tree refuses, with the reason in words."""


@dataclass(frozen=True)
class Node:
    id: int
    parent_id: int | None
    level: str
    code: str | None = None  # administrative division code where one exists (grids: none)


def ancestors(tree: Mapping[int, Node], node_id: int) -> Iterator[int]:
    """The node's parent, grandparent, ... up to its root (not the node itself)."""
    seen = {node_id}
    parent = tree[node_id].parent_id
    while parent is not None:
        if parent in seen:  # a stored cycle: never written by this module
            raise TreeError(f"cycle through node {parent}")
        seen.add(parent)
        yield parent
        parent = tree[parent].parent_id


def path(tree: Mapping[int, Node], node_id: int) -> tuple[int, ...]:
    """Root first, the node last."""
    return (*reversed(list(ancestors(tree, node_id))), node_id)


def all_paths(tree: Mapping[int, Node]) -> dict[int, tuple[int, ...]]:
    """Every node's path, each parent's computed once (the tree must have no cycle)."""
    out: dict[int, tuple[int, ...]] = {}

    def of(node_id: int) -> tuple[int, ...]:
        todo = []
        n: int | None = node_id
        while n is not None and n not in out:
            todo.append(n)
            n = tree[n].parent_id
        base = () if n is None else out[n]
        for m in reversed(todo):
            base = (*base, m)
            out[m] = base
        return out[node_id]

    for node_id in tree:
        of(node_id)
    return out


def subtree(tree: Mapping[int, Node], node_id: int) -> set[int]:
    """The node and everything under it."""
    children: dict[int | None, list[int]] = {}
    for n in tree.values():
        children.setdefault(n.parent_id, []).append(n.id)
    out: set[int] = set()
    stack = [node_id]
    while stack:
        nid = stack.pop()
        if nid not in out:
            out.add(nid)
            stack.extend(children.get(nid, ()))
    return out


def check_placement(tree: Mapping[int, Node], node: Node) -> None:
    """Refuse (TreeError) a node that may not hang where `node.parent_id` says: the node is new
    or is being moved, or its level or code is changing. Its children (for a node already in
    the tree) must still fit under it."""
    if node.level not in LEVEL_RANK:
        raise TreeError(f"unknown level {node.level!r}: one of {', '.join(LEVELS)}")
    if node.code is not None:
        if node.level == "grid":
            raise TreeError("a grid has no administrative division code")
        try:
            admin_level(node.code)
        except CodeError as exc:
            raise TreeError(str(exc)) from None
    if node.parent_id is not None:
        parent = tree.get(node.parent_id)
        if parent is None:
            raise TreeError(f"parent {node.parent_id} does not exist")
        if node.id in tree and node.parent_id in subtree(tree, node.id):
            raise TreeError(f"node {node.id} cannot move under itself or its own subtree "
                            f"(node {node.parent_id})")
        _fits(parent, node)
    for child in (n for n in tree.values() if n.parent_id == node.id and n.id != node.id):
        _fits(node, child)


def check_nodes(tree: Mapping[int, Node], ids: list[int]) -> dict[int, str]:
    """`check_placement` for many nodes of one tree at once (a bulk import): the reason each
    refused node is refused, by id. Linear in the tree, not quadratic: one index of children,
    and a cycle shows as a path that never reaches a root."""
    children: dict[int, list[Node]] = {}
    for n in tree.values():
        if n.parent_id is not None:
            children.setdefault(n.parent_id, []).append(n)
    refused: dict[int, str] = {}
    for node_id in ids:
        node = tree[node_id]
        try:
            if node.level not in LEVEL_RANK:
                raise TreeError(f"unknown level {node.level!r}: one of {', '.join(LEVELS)}")
            if node.parent_id is not None:
                parent = tree.get(node.parent_id)
                if parent is None:
                    raise TreeError(f"parent {node.parent_id} does not exist")
                _fits(parent, node)
            for child in children.get(node_id, ()):
                _fits(node, child)
            for _ in ancestors(tree, node_id):
                pass
        except (TreeError, CodeError) as exc:
            refused[node_id] = str(exc)
    return refused


def _fits(parent: Node, child: Node) -> None:
    if parent.level == "grid":
        raise TreeError(f"grid {parent.id} is a leaf: nothing hangs under a grid")
    if LEVEL_RANK[child.level] <= LEVEL_RANK[parent.level]:
        raise TreeError(f"a {child.level} cannot hang under a {parent.level}: levels run "
                        f"{' > '.join(LEVELS)}")
    if child.level == "grid" and parent.level not in GRID_PARENTS:
        raise TreeError(f"a grid hangs under a township or a community, not a {parent.level}")
    if parent.code is not None and child.code is not None \
            and not admin_within(child.code, parent.code):
        raise TreeError(f"code {child.code} does not lie inside its parent's code {parent.code}")


def move(tree: Mapping[int, Node], node_id: int, new_parent: int | None) -> dict[int, Node]:
    """The tree after moving `node_id` (and its subtree) under `new_parent`, or TreeError."""
    moved = Node(node_id, new_parent, tree[node_id].level, tree[node_id].code)
    check_placement(tree, moved)
    return {**tree, node_id: moved}
