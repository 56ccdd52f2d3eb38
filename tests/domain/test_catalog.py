"""The in-memory catalog: ordering and resolution's step 1 (candidates)."""

from __future__ import annotations

from otao.domain.models import (
    RolloutFilter,
    RolloutStrategy,
    Software,
)
from tests.domain.builders import catalog, software


def versions_of(definitions: tuple[Software, ...]) -> list[str]:
    return [d.version for d in definitions]


def test_definitions_are_kept_newest_first_by_semver() -> None:
    built = catalog(
        software("1.9.0"), software("1.10.0"), software("1.10.0-rc.1"), software("0.1.0")
    )
    assert versions_of(built.definitions) == ["1.10.0", "1.10.0-rc.1", "1.9.0", "0.1.0"]


def test_the_catalog_keeps_tenant_application_and_settings() -> None:
    built = catalog(software("1.0.0"), consent_required=True)
    assert (built.tenant_id, built.application) == ("t", "app")
    assert built.settings.consent_required


def test_candidates_are_definitions_upgradable_from_the_version_newest_first() -> None:
    built = catalog(
        software("1.1.0", "1.0.0"),
        software("2.0.0", "1.0.0", "1.1.0"),
        software("1.2.0", "1.0.0"),
        software("3.0.0", "2.0.0"),
    )
    assert versions_of(built.candidates("1.0.0")) == ["2.0.0", "1.2.0", "1.1.0"]
    assert versions_of(built.candidates("1.1.0")) == ["2.0.0"]
    assert versions_of(built.candidates("2.0.0")) == ["3.0.0"]


def test_suspended_definitions_are_never_candidates() -> None:
    built = catalog(
        software("1.1.0", "1.0.0"),
        software("2.0.0", "1.0.0", strategy=RolloutStrategy.SUSPENDED),
    )
    assert versions_of(built.candidates("1.0.0")) == ["1.1.0"]
    assert versions_of(built.candidates(None)) == ["1.1.0"]
    assert versions_of(built.definitions) == ["2.0.0", "1.1.0"]


def test_targeted_definitions_are_candidates_before_filters_are_checked() -> None:
    built = catalog(
        software("2.0.0", "1.0.0", strategy=RolloutStrategy.TARGETED, filters=(RolloutFilter("b"),))
    )
    assert versions_of(built.candidates("1.0.0")) == ["2.0.0"]


def test_an_unknown_current_version_makes_every_live_definition_a_candidate() -> None:
    built = catalog(
        software("1.0.0"),
        software("2.0.0", "1.0.0"),
        software("1.5.0", strategy=RolloutStrategy.SUSPENDED),
        software("3.0.0", "2.0.0", strategy=RolloutStrategy.TARGETED),
    )
    assert versions_of(built.candidates(None)) == ["3.0.0", "2.0.0", "1.0.0"]


def test_a_version_nothing_upgrades_from_has_no_candidates() -> None:
    built = catalog(software("2.0.0", "1.0.0"))
    assert built.candidates("2.0.0") == ()
    assert built.candidates("9.9.9") == ()
    assert built.candidates("1.0.0+other-build") == ()


def test_get_finds_a_definition_by_its_exact_version() -> None:
    defined = software("2.0.0", "1.0.0")
    suspended = software("3.0.0", strategy=RolloutStrategy.SUSPENDED)
    built = catalog(defined, suspended)
    assert built.get("2.0.0") is defined
    assert built.get("3.0.0") is suspended
    assert built.get("1.0.0") is None
    assert built.by_version == {"2.0.0": defined, "3.0.0": suspended}


def test_an_empty_application_has_no_candidates() -> None:
    built = catalog()
    assert built.definitions == ()
    assert built.candidates(None) == ()
    assert built.candidates("1.0.0") == ()
