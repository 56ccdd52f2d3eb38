"""SemVer 2.0 parsing and precedence."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otao.domain import versions

# The precedence example of SemVer 2.0, section 11, plus releases around it.
IN_PRECEDENCE_ORDER = [
    "0.9.9",
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.2.0",
    "1.10.0",
    "2.0.0",
    "10.0.0",
]


def test_versions_sort_by_semver_precedence_not_by_text() -> None:
    shuffled = IN_PRECEDENCE_ORDER[:]
    random.Random(7).shuffle(shuffled)
    assert sorted(shuffled, key=versions.sort_key) == IN_PRECEDENCE_ORDER


def test_newest_first_is_reverse_precedence() -> None:
    shuffled = IN_PRECEDENCE_ORDER[:]
    random.Random(11).shuffle(shuffled)
    assert versions.newest_first(shuffled) == IN_PRECEDENCE_ORDER[::-1]


def test_a_prerelease_is_lower_than_its_release() -> None:
    assert versions.sort_key("1.0.0-rc.1") < versions.sort_key("1.0.0")
    assert versions.sort_key("1.0.0-rc.1") > versions.sort_key("0.99.99")


def test_numeric_identifiers_compare_numerically_and_below_alphanumeric_ones() -> None:
    assert versions.sort_key("1.0.0-beta.2") < versions.sort_key("1.0.0-beta.11")
    assert versions.sort_key("1.0.0-99") < versions.sort_key("1.0.0-a")
    assert versions.sort_key("1.9.0") < versions.sort_key("1.10.0")


def test_build_metadata_does_not_change_precedence() -> None:
    assert versions.sort_key("1.0.0+build.1") == versions.sort_key("1.0.0")
    assert versions.sort_key("1.0.0+b") == versions.sort_key("1.0.0+a")
    assert not versions.sort_key("1.0.0+a") < versions.sort_key("1.0.0+b")
    assert versions.sort_key("1.0.0-rc.1+b") < versions.sort_key("1.0.0+a")


@pytest.mark.parametrize(
    "value",
    ["1.0.0", "0.0.0", "1.0.0+build.1", "1.0.0-rc.1", "1.0.0-0a", "1.0.0+01", "1.2.3-a.b+c.d"],
)
def test_is_valid_accepts_semver(value: str) -> None:
    assert versions.is_valid(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "01.0.0",
        "1.0.0-",
        "1.0",
        "v1.0.0",
        "1.0.0-01",
        "1.0.0\n",
        " 1.0.0",
        "1.0.0+",
        "\u0661.0.0",
        "1.\uff10.0",
    ],
)
def test_is_valid_rejects_what_is_not_semver(value: str) -> None:
    assert not versions.is_valid(value)


def test_parse_raises_value_error_on_invalid_versions() -> None:
    with pytest.raises(ValueError, match="not valid SemVer"):
        versions.parse("1.0")


releases = st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))


@given(releases, releases)
def test_release_precedence_is_the_numeric_triple_order(
    a: tuple[int, int, int], b: tuple[int, int, int]
) -> None:
    first, second = "{}.{}.{}".format(*a), "{}.{}.{}".format(*b)
    assert (versions.sort_key(first) < versions.sort_key(second)) == (a < b)
    assert (versions.sort_key(first) == versions.sort_key(second)) == (a == b)
