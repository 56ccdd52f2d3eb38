"""The upgrade graph: nodes are versions, edges go from each upgradableFrom to its definition.

Edges always point from a lower to a higher version, so the graph is a DAG by construction.
"""

from __future__ import annotations

from collections import deque

from otao.domain import versions
from otao.domain.catalog import Catalog
from otao.domain.errors import FailedPrecondition, NotFound
from otao.domain.values import frozen


@frozen
class Node:
    version: str
    defined: bool
    rollout_strategy: str


@frozen
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str], ...]


def graph(catalog: Catalog) -> Graph:
    nodes: dict[str, Node] = {}
    edges: list[tuple[str, str]] = []
    for definition in catalog.definitions:
        nodes[definition.version] = Node(
            definition.version, True, definition.rollout_strategy.value
        )
    for definition in catalog.definitions:
        for source in definition.upgradable_from:
            nodes.setdefault(source, Node(source, False, ""))
            edges.append((source, definition.version))
    ordered = sorted(nodes.values(), key=lambda n: versions.sort_key(n.version))
    edges.sort(key=lambda e: (versions.sort_key(e[0]), versions.sort_key(e[1])))
    return Graph(tuple(ordered), tuple(edges))


def upgrade_path(catalog: Catalog, start: str, target: str | None) -> list[str]:
    """The versions an endpoint on ``start`` installs, in order, to reach ``target``.

    Suspended definitions are not traversed. Without a target, the path is the one
    resolution takes when nothing else (filters, consent) stands in the way: the highest
    candidate at every hop. With a target, the path with the fewest hops, preferring higher
    versions at each hop.
    """
    if target is None:
        hops: list[str] = []
        current = start
        while candidates := catalog.candidates(current):
            current = candidates[0].version
            hops.append(current)
        return hops
    if catalog.get(target) is None:
        raise NotFound(f"version {target} is not defined")
    if target == start:
        return []
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        current = queue.popleft()
        for candidate in catalog.candidates(current):
            following = candidate.version
            if following in came_from or following == start:
                continue
            came_from[following] = current
            if following == target:
                path = [target]
                while path[-1] in came_from and came_from[path[-1]] != start:
                    path.append(came_from[path[-1]])
                return list(reversed(path))
            queue.append(following)
    raise FailedPrecondition(f"version {target} is not reachable from {start}")
