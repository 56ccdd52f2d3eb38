"""The upgrade graph and upgrade paths."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otao.domain import versions
from otao.domain.catalog import Catalog
from otao.domain.errors import FailedPrecondition, NotFound
from otao.domain.graph import Graph, Node, graph, upgrade_path
from otao.domain.models import (
    RolloutFilter,
    RolloutStrategy,
    Software,
)
from tests.domain import builders
from tests.domain.builders import catalog

SUSPENDED = RolloutStrategy.SUSPENDED
TARGETED = RolloutStrategy.TARGETED


def software(
    version: str, *upgradable_from: str, strategy: RolloutStrategy = RolloutStrategy.GENERAL
) -> Software:
    filters = (RolloutFilter("beta"),) if strategy is TARGETED else ()
    return builders.software(version, *upgradable_from, strategy=strategy, filters=filters)


# 1.0.0 is a factory image: named in upgradableFrom, never defined.
#
#   1.0.0 -> 1.1.0 -> 1.2.0 -> 2.0.0 -> 3.0.0
#        \-> 1.5.0 ----------/
#   1.1.0 -> 1.9.0 (suspended) -> 2.1.0
DIAMOND = catalog(
    software("1.1.0", "1.0.0"),
    software("1.2.0", "1.1.0"),
    software("1.5.0", "1.0.0"),
    software("2.0.0", "1.2.0", "1.5.0"),
    software("3.0.0", "2.0.0"),
    software("1.9.0", "1.1.0", strategy=SUSPENDED),
    software("2.1.0", "1.9.0"),
)


# --- graph ----------------------------------------------------------------------------------


def test_nodes_include_versions_named_only_in_upgradable_from() -> None:
    built = graph(catalog(software("2.0.0", "1.0.0", "1.5.0"), software("1.5.0", "1.0.0")))
    assert built.nodes == (
        Node("1.0.0", False, ""),
        Node("1.5.0", True, "general"),
        Node("2.0.0", True, "general"),
    )


def test_nodes_are_in_semver_order_and_carry_their_strategy() -> None:
    built = graph(
        catalog(
            software("1.10.0", "1.9.0"),
            software("1.9.0", strategy=SUSPENDED),
            software("1.10.0-rc.1", "1.9.0", strategy=TARGETED),
        )
    )
    assert [(n.version, n.defined, n.rollout_strategy) for n in built.nodes] == [
        ("1.9.0", True, "suspended"),
        ("1.10.0-rc.1", True, "targeted"),
        ("1.10.0", True, "general"),
    ]


def test_edges_go_from_each_upgradable_from_to_its_definition() -> None:
    built = graph(DIAMOND)
    assert built.edges == (
        ("1.0.0", "1.1.0"),
        ("1.0.0", "1.5.0"),
        ("1.1.0", "1.2.0"),
        ("1.1.0", "1.9.0"),
        ("1.2.0", "2.0.0"),
        ("1.5.0", "2.0.0"),
        ("1.9.0", "2.1.0"),
        ("2.0.0", "3.0.0"),
    )


def test_suspended_definitions_stay_in_the_graph() -> None:
    built = graph(DIAMOND)
    assert Node("1.9.0", True, "suspended") in built.nodes
    assert ("1.1.0", "1.9.0") in built.edges


def test_every_edge_goes_from_a_lower_to_a_higher_version() -> None:
    for source, target in graph(DIAMOND).edges:
        assert versions.sort_key(source) < versions.sort_key(target)


def test_an_empty_catalog_has_an_empty_graph() -> None:
    assert graph(catalog()) == Graph((), ())


# --- upgrade_path without a target ----------------------------------------------------------


def test_without_target_the_path_follows_the_highest_candidate_to_the_top() -> None:
    assert upgrade_path(DIAMOND, "1.0.0", None) == ["1.5.0", "2.0.0", "3.0.0"]


def test_without_target_the_path_is_what_resolution_picks_hop_by_hop() -> None:
    assert upgrade_path(DIAMOND, "1.1.0", None) == ["1.2.0", "2.0.0", "3.0.0"]


def test_without_target_a_top_version_has_an_empty_path() -> None:
    assert upgrade_path(DIAMOND, "3.0.0", None) == []
    assert upgrade_path(DIAMOND, "9.9.9", None) == []


def test_without_target_a_suspended_definition_is_not_traversed() -> None:
    built = catalog(
        software("1.1.0", "1.0.0"),
        software("2.0.0", "1.0.0", strategy=SUSPENDED),
        software("3.0.0", "2.0.0"),
    )
    assert upgrade_path(built, "1.0.0", None) == ["1.1.0"]


# --- upgrade_path with a target -------------------------------------------------------------


def test_with_target_the_path_has_the_fewest_hops() -> None:
    built = catalog(
        software("1.1.0", "1.0.0"),
        software("1.2.0", "1.1.0"),
        software("1.3.0", "1.2.0"),
        software("2.0.0", "1.3.0", "1.0.0"),
        software("1.9.0", "1.0.0"),
    )
    assert upgrade_path(built, "1.0.0", "2.0.0") == ["2.0.0"]
    assert upgrade_path(built, "1.0.0", "1.3.0") == ["1.1.0", "1.2.0", "1.3.0"]


def test_with_target_the_path_prefers_higher_versions_among_equally_short_ones() -> None:
    assert upgrade_path(DIAMOND, "1.0.0", "2.0.0") == ["1.5.0", "2.0.0"]
    assert upgrade_path(DIAMOND, "1.0.0", "3.0.0") == ["1.5.0", "2.0.0", "3.0.0"]


def test_with_target_the_path_may_leave_the_highest_route() -> None:
    assert upgrade_path(DIAMOND, "1.0.0", "1.2.0") == ["1.1.0", "1.2.0"]


def test_the_path_to_the_current_version_is_empty() -> None:
    assert upgrade_path(DIAMOND, "2.0.0", "2.0.0") == []


@pytest.mark.parametrize(("current", "target"), [("1.0.0", "1.0.0"), ("1.0.0", "4.0.0")])
def test_an_undefined_target_is_not_found(current: str, target: str) -> None:
    with pytest.raises(NotFound):
        upgrade_path(DIAMOND, current, target)


@pytest.mark.parametrize(
    ("current", "target"), [("1.5.0", "1.2.0"), ("3.0.0", "1.1.0"), ("0.1.0", "1.1.0")]
)
def test_an_unreachable_target_is_a_failed_precondition(current: str, target: str) -> None:
    with pytest.raises(FailedPrecondition):
        upgrade_path(DIAMOND, current, target)


@pytest.mark.parametrize(("current", "target"), [("1.1.0", "2.1.0"), ("1.1.0", "1.9.0")])
def test_with_target_suspended_definitions_are_not_traversed(current: str, target: str) -> None:
    with pytest.raises(FailedPrecondition):
        upgrade_path(DIAMOND, current, target)


def test_with_target_a_suspended_shortcut_is_avoided() -> None:
    built = catalog(
        software("1.1.0", "1.0.0"),
        software("1.2.0", "1.1.0"),
        software("1.5.0", "1.0.0", strategy=SUSPENDED),
        software("2.0.0", "1.5.0", "1.2.0"),
    )
    assert upgrade_path(built, "1.0.0", "2.0.0") == ["1.1.0", "1.2.0", "2.0.0"]


# --- property: shortest and valid ------------------------------------------------------------

semvers = st.builds(
    lambda major, minor, pre: f"{major}.{minor}.0" + (f"-{pre}" if pre else ""),
    st.integers(0, 4),
    st.integers(0, 4),
    st.sampled_from([None, "rc.1", "beta"]),
)


@st.composite
def catalogs(draw: st.DrawFn) -> tuple[Catalog, list[str], str]:
    """A random catalog, its versions (defined or only named) and a start among them."""
    names = sorted(
        draw(st.lists(semvers, min_size=2, max_size=12, unique=True)), key=versions.sort_key
    )
    definitions = []
    for index, version in enumerate(names[1:], start=1):
        sources = draw(st.lists(st.sampled_from(names[:index]), unique=True))
        strategy = draw(st.sampled_from([RolloutStrategy.GENERAL, TARGETED, SUSPENDED]))
        definitions.append(software(version, *sources, strategy=strategy))
    return catalog(*definitions), names, draw(st.sampled_from(names))


def live_edges(built: Catalog) -> set[tuple[str, str]]:
    return {
        (source, d.version)
        for d in built.definitions
        if d.rollout_strategy is not SUSPENDED
        for source in d.upgradable_from
    }


def distances(built: Catalog, start: str) -> dict[str, int]:
    edges = live_edges(built)
    seen = {start: 0}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        for source, target in edges:
            if source == here and target not in seen:
                seen[target] = seen[here] + 1
                queue.append(target)
    return seen


@settings(max_examples=300)
@given(catalogs(), st.data())
def test_a_path_to_a_target_is_a_shortest_path_over_live_edges(
    scenario: tuple[Catalog, list[str], str], data: st.DataObject
) -> None:
    built, names, start = scenario
    target = data.draw(st.sampled_from(names))
    reachable = distances(built, start)
    if built.get(target) is None:
        with pytest.raises(NotFound):
            upgrade_path(built, start, target)
    elif target not in reachable:
        with pytest.raises(FailedPrecondition):
            upgrade_path(built, start, target)
    else:
        path = upgrade_path(built, start, target)
        assert len(path) == reachable[target]
        assert all(step in live_edges(built) for step in zip([start, *path], path, strict=False))


@settings(max_examples=300)
@given(catalogs())
def test_a_path_without_target_takes_the_highest_candidate_each_hop(
    scenario: tuple[Catalog, list[str], str],
) -> None:
    built, _, start = scenario
    path = upgrade_path(built, start, None)
    here = start
    for step in path:
        candidates = [d.version for d in built.candidates(here)]
        assert step == max(candidates, key=versions.sort_key)
        here = step
    assert built.candidates(here) == ()
