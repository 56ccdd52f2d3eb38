"""Resolution (docs/api.md, "Resolution and delivery", steps 1-6): which update an endpoint
gets, and why."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from otao.domain import versions
from otao.domain.catalog import Catalog
from otao.domain.models import (
    AppliedReport,
    Consent,
    EndpointState,
    RolloutFilter,
    RolloutStrategy,
    Software,
)
from otao.domain.resolution import (
    EndpointFacts,
    VerdictKind,
    blocker,
    explain,
    select,
)
from tests.domain import builders
from tests.domain.builders import NOW, catalog

PAST = NOW - timedelta(days=1)
FUTURE = NOW + timedelta(days=1)
GENERAL = RolloutStrategy.GENERAL
TARGETED = RolloutStrategy.TARGETED
SUSPENDED = RolloutStrategy.SUSPENDED
SPEC = '{"url":"fw"}'


def software(
    version: str,
    *upgradable_from: str,
    strategy: RolloutStrategy = GENERAL,
    filters: tuple[RolloutFilter, ...] = (),
) -> Software:
    return builders.software(
        version, *upgradable_from, strategy=strategy, filters=filters, specification_json=SPEC
    )


def targeted(version: str, *upgradable_from: str, **dated: datetime | None) -> Software:
    """A targeted definition listing the filters named as keywords, with their rollout dates."""
    filters = tuple(RolloutFilter(name, date) for name, date in dated.items())
    return software(version, *upgradable_from, strategy=TARGETED, filters=filters)


def facts(
    current: str | None,
    *,
    filters: frozenset[str] | None = None,
    consented: frozenset[str] = frozenset(),
    consent_all: bool = False,
    failed: frozenset[str] = frozenset(),
) -> EndpointFacts:
    return EndpointFacts(current, filters, consented, consent_all, failed)


def selected_version(built: Catalog, endpoint: EndpointFacts, now: datetime = NOW) -> str | None:
    chosen = select(built, endpoint, now)
    return None if chosen is None else chosen.version


def verdicts(built: Catalog, endpoint: EndpointFacts, now: datetime = NOW) -> dict[str, str]:
    explanation = explain(built, endpoint, now)
    return {v.version: v.kind.value for v in explanation.verdicts}


# --- step 1: candidates ---------------------------------------------------------------------


def test_candidates_come_from_the_upgrade_graph() -> None:
    built = catalog(software("1.1.0", "1.0.0"), software("2.0.0", "1.5.0"))
    assert selected_version(built, facts("1.0.0")) == "1.1.0"
    assert selected_version(built, facts("1.5.0")) == "2.0.0"


def test_a_version_not_in_the_graph_gets_nothing() -> None:
    built = catalog(software("1.1.0", "1.0.0"))
    assert selected_version(built, facts("0.9.0")) is None


def test_endpoint_on_top_version_gets_nothing() -> None:
    built = catalog(software("1.1.0", "1.0.0"), software("2.0.0", "1.1.0"))
    assert selected_version(built, facts("2.0.0")) is None


def test_versions_are_matched_exactly_including_build_metadata() -> None:
    built = catalog(software("2.0.0", "1.0.0+factory"))
    assert selected_version(built, facts("1.0.0")) is None
    assert selected_version(built, facts("1.0.0+factory")) == "2.0.0"


def test_an_unknown_current_version_is_offered_the_latest_non_suspended_definition() -> None:
    built = catalog(
        software("1.0.0"),
        software("2.0.0", "1.0.0"),
        software("3.0.0", "2.0.0", strategy=SUSPENDED),
    )
    assert selected_version(built, facts(None)) == "2.0.0"


def test_an_unknown_current_version_still_needs_deliverability() -> None:
    built = catalog(
        software("1.0.0"),
        targeted("2.0.0", "1.0.0", beta=None),
        software("1.5.0", "1.0.0"),
    )
    assert selected_version(built, facts(None)) == "1.5.0"
    assert selected_version(built, facts(None, filters=frozenset({"beta"}))) == "2.0.0"


def test_a_suspended_definition_is_never_offered() -> None:
    built = catalog(software("2.0.0", "1.0.0", strategy=SUSPENDED))
    assert selected_version(built, facts("1.0.0")) is None
    assert selected_version(built, facts(None)) is None
    assert selected_version(built, facts("1.0.0", consent_all=True)) is None


def test_a_suspended_higher_version_falls_back_to_the_next_one() -> None:
    built = catalog(
        software("1.1.0", "1.0.0"),
        software("2.0.0", "1.0.0", strategy=SUSPENDED),
    )
    assert selected_version(built, facts("1.0.0")) == "1.1.0"


# --- step 2: targeting ----------------------------------------------------------------------


def test_general_is_eligible_whatever_the_filter_membership() -> None:
    built = catalog(software("2.0.0", "1.0.0"))
    assert selected_version(built, facts("1.0.0", filters=None)) == "2.0.0"
    assert selected_version(built, facts("1.0.0", filters=frozenset())) == "2.0.0"


def test_targeted_is_eligible_with_a_matching_filter_without_date() -> None:
    built = catalog(targeted("2.0.0", "1.0.0", beta=None))
    assert selected_version(built, facts("1.0.0", filters=frozenset({"beta"}))) == "2.0.0"


def test_targeted_is_not_eligible_without_a_matching_filter() -> None:
    built = catalog(targeted("2.0.0", "1.0.0", beta=None))
    assert selected_version(built, facts("1.0.0", filters=frozenset({"alpha"}))) is None
    assert selected_version(built, facts("1.0.0", filters=frozenset())) is None


def test_unknown_filter_membership_matches_no_filter() -> None:
    built = catalog(targeted("2.0.0", "1.0.0", beta=None))
    assert selected_version(built, facts("1.0.0", filters=None)) is None


def test_targeted_is_eligible_once_the_rollout_date_has_passed() -> None:
    built = catalog(targeted("2.0.0", "1.0.0", beta=PAST))
    assert selected_version(built, facts("1.0.0", filters=frozenset({"beta"}))) == "2.0.0"


def test_targeted_is_eligible_at_exactly_the_rollout_date() -> None:
    built = catalog(targeted("2.0.0", "1.0.0", beta=NOW))
    assert selected_version(built, facts("1.0.0", filters=frozenset({"beta"}))) == "2.0.0"


def test_targeted_is_not_eligible_before_the_rollout_date() -> None:
    built = catalog(targeted("2.0.0", "1.0.0", beta=FUTURE))
    beta = facts("1.0.0", filters=frozenset({"beta"}))
    assert selected_version(built, beta) is None
    assert selected_version(built, beta, now=FUTURE - timedelta(microseconds=1)) is None
    assert selected_version(built, beta, now=FUTURE) == "2.0.0"


def test_one_matching_filter_whose_date_passed_is_enough() -> None:
    built = catalog(targeted("2.0.0", "1.0.0", beta=FUTURE, canary=PAST, other=None))
    endpoint = facts("1.0.0", filters=frozenset({"beta", "canary"}))
    assert selected_version(built, endpoint) == "2.0.0"


def test_a_passed_date_of_a_filter_the_endpoint_is_not_in_does_not_count() -> None:
    built = catalog(targeted("2.0.0", "1.0.0", beta=FUTURE, canary=PAST))
    endpoint = facts("1.0.0", filters=frozenset({"beta"}))
    assert selected_version(built, endpoint) is None
    assert verdicts(built, endpoint)["2.0.0"] == "rollout_date_pending"


def test_a_targeted_higher_version_falls_back_to_a_general_one_for_others() -> None:
    built = catalog(targeted("2.0.0", "1.0.0", beta=None), software("1.1.0", "1.0.0"))
    assert selected_version(built, facts("1.0.0", filters=frozenset({"beta"}))) == "2.0.0"
    assert selected_version(built, facts("1.0.0", filters=frozenset({"other"}))) == "1.1.0"


# --- step 3: consent ------------------------------------------------------------------------


def test_without_required_consent_nothing_needs_consent() -> None:
    built = catalog(software("2.0.0", "1.0.0"), consent_required=False)
    assert selected_version(built, facts("1.0.0")) == "2.0.0"


def test_required_consent_blocks_a_version_without_consent() -> None:
    built = catalog(software("2.0.0", "1.0.0"), consent_required=True)
    assert selected_version(built, facts("1.0.0")) is None
    assert verdicts(built, facts("1.0.0"))["2.0.0"] == "awaiting_consent"


def test_consent_for_the_version_makes_it_deliverable() -> None:
    built = catalog(software("2.0.0", "1.0.0"), consent_required=True)
    endpoint = facts("1.0.0", consented=frozenset({"2.0.0"}))
    assert selected_version(built, endpoint) == "2.0.0"


def test_consent_for_another_version_does_not_count() -> None:
    built = catalog(software("2.0.0", "1.0.0"), software("2.1.0", "1.0.0"), consent_required=True)
    endpoint = facts("1.0.0", consented=frozenset({"2.0.0"}))
    assert selected_version(built, endpoint) == "2.0.0"
    assert verdicts(built, endpoint) == {"2.1.0": "awaiting_consent", "2.0.0": "selected"}


def test_blanket_consent_covers_every_version() -> None:
    built = catalog(software("2.0.0", "1.0.0"), software("2.1.0", "1.0.0"), consent_required=True)
    assert selected_version(built, facts("1.0.0", consent_all=True)) == "2.1.0"


def test_consent_does_not_override_targeting() -> None:
    built = catalog(targeted("2.0.0", "1.0.0", beta=None), consent_required=True)
    assert selected_version(built, facts("1.0.0", consent_all=True)) is None


# --- step 4: failures -----------------------------------------------------------------------


def test_a_previously_failed_version_is_not_offered_again() -> None:
    built = catalog(software("2.0.0", "1.0.0"))
    assert selected_version(built, facts("1.0.0", failed=frozenset({"2.0.0"}))) is None


def test_a_failed_higher_version_falls_back_to_the_next_deliverable_one() -> None:
    built = catalog(software("2.0.0", "1.0.0"), software("1.1.0", "1.0.0"))
    endpoint = facts("1.0.0", failed=frozenset({"2.0.0"}))
    assert selected_version(built, endpoint) == "1.1.0"
    assert verdicts(built, endpoint) == {"2.0.0": "previously_failed", "1.1.0": "selected"}


def test_a_failure_of_another_version_does_not_block() -> None:
    built = catalog(software("2.0.0", "1.0.0"))
    assert selected_version(built, facts("1.0.0", failed=frozenset({"1.5.0"}))) == "2.0.0"


# --- step 5: pick the highest, one hop at a time ---------------------------------------------


def test_the_highest_semver_among_deliverable_candidates_wins() -> None:
    built = catalog(
        software("1.9.0", "1.0.0"),
        software("1.10.0", "1.0.0"),
        software("1.10.0-rc.2", "1.0.0"),
    )
    assert selected_version(built, facts("1.0.0")) == "1.10.0"


def test_a_prerelease_loses_to_its_release() -> None:
    built = catalog(software("2.0.0-rc.1", "1.0.0"), software("2.0.0", "1.0.0"))
    assert selected_version(built, facts("1.0.0")) == "2.0.0"


def test_only_one_hop_is_taken_per_update() -> None:
    built = catalog(software("1.1.0", "1.0.0"), software("2.0.0", "1.1.0"))
    assert selected_version(built, facts("1.0.0")) == "1.1.0"


def test_an_endpoint_walks_the_graph_hop_by_hop() -> None:
    built = catalog(
        software("1.1.0", "1.0.0"),
        software("1.2.0", "1.1.0"),
        software("2.0.0", "1.1.0"),
        software("2.1.0", "1.2.0"),
    )
    walked: list[str] = []
    current: str | None = "1.0.0"
    while (chosen := select(built, facts(current), NOW)) is not None:
        walked.append(chosen.version)
        current = chosen.version
    assert walked == ["1.1.0", "2.0.0"]


def test_select_returns_the_stored_definition_itself() -> None:
    definition = software("2.0.0", "1.0.0")
    assert select(catalog(definition), facts("1.0.0"), NOW) is definition


# --- step 6: explain ------------------------------------------------------------------------


def test_explain_gives_one_verdict_per_definition_with_the_right_kind() -> None:
    built = catalog(
        software("0.5.0"),
        software("1.1.0", "1.0.0"),
        software("1.2.0", "1.0.0"),
        targeted("1.3.0", "1.0.0", beta=None),
        targeted("1.4.0", "1.0.0", canary=FUTURE),
        software("1.5.0", "1.0.0"),
        software("1.6.0", "1.0.0"),
        software("1.7.0", "1.0.0", strategy=SUSPENDED),
        software("3.0.0", "2.0.0"),
        consent_required=True,
    )
    endpoint = facts(
        "1.0.0",
        filters=frozenset({"canary"}),
        consented=frozenset({"1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.6.0", "3.0.0"}),
        failed=frozenset({"1.6.0"}),
    )
    explanation = explain(built, endpoint, NOW)
    assert explanation.current_version == "1.0.0"
    assert explanation.selected is not None
    assert explanation.selected.version == "1.2.0"
    assert [v.version for v in explanation.verdicts] == [d.version for d in built.definitions]
    assert verdicts(built, endpoint) == {
        "3.0.0": "not_in_graph",
        "1.7.0": "suspended",
        "1.6.0": "previously_failed",
        "1.5.0": "awaiting_consent",
        "1.4.0": "rollout_date_pending",
        "1.3.0": "no_matching_filter",
        "1.2.0": "selected",
        "1.1.0": "lower_than_selected",
        "0.5.0": "not_in_graph",
    }


def test_every_verdict_kind_is_exercised_by_explain() -> None:
    assert {kind.value for kind in VerdictKind} == {
        "selected",
        "not_in_graph",
        "suspended",
        "no_matching_filter",
        "rollout_date_pending",
        "awaiting_consent",
        "previously_failed",
        "lower_than_selected",
        # Staged rollouts: tests/domain/test_wave_resolution.py.
        "rollout_paused",
        "not_in_open_wave",
        "offer_budget_exhausted",
    }


def test_explain_names_the_selected_version_in_lower_verdicts() -> None:
    built = catalog(software("1.1.0", "1.0.0"), software("1.2.0", "1.0.0"))
    explanation = explain(built, facts("1.0.0"), NOW)
    lower = next(v for v in explanation.verdicts if v.version == "1.1.0")
    assert lower.kind is VerdictKind.LOWER_THAN_SELECTED
    assert "1.2.0" in lower.reason


def test_explain_reports_the_rollout_date_in_the_pending_reason() -> None:
    built = catalog(targeted("2.0.0", "1.0.0", beta=FUTURE))
    explanation = explain(built, facts("1.0.0", filters=frozenset({"beta"})), NOW)
    [pending] = explanation.verdicts
    assert pending.kind is VerdictKind.ROLLOUT_DATE_PENDING
    assert FUTURE.isoformat() in pending.reason


def test_explain_with_unknown_current_version_has_no_not_in_graph_verdicts() -> None:
    built = catalog(
        software("1.0.0"),
        software("2.0.0", "1.0.0"),
        software("3.0.0", "2.0.0", strategy=SUSPENDED),
    )
    explanation = explain(built, facts(None), NOW)
    assert explanation.current_version is None
    assert verdicts(built, facts(None)) == {
        "3.0.0": "suspended",
        "2.0.0": "selected",
        "1.0.0": "lower_than_selected",
    }


def test_explain_with_nothing_deliverable_selects_nothing() -> None:
    built = catalog(software("2.0.0", "1.0.0"), software("1.1.0", "1.0.0"))
    endpoint = facts("1.0.0", failed=frozenset({"2.0.0", "1.1.0"}))
    explanation = explain(built, endpoint, NOW)
    assert explanation.selected is None
    assert {v.kind for v in explanation.verdicts} == {VerdictKind.PREVIOUSLY_FAILED}


def test_explain_on_the_top_version_puts_everything_out_of_the_graph() -> None:
    built = catalog(software("1.1.0", "1.0.0"), software("2.0.0", "1.1.0"))
    explanation = explain(built, facts("2.0.0"), NOW)
    assert explanation.selected is None
    assert verdicts(built, facts("2.0.0")) == {"2.0.0": "not_in_graph", "1.1.0": "not_in_graph"}


def test_blocker_returns_none_for_a_deliverable_definition() -> None:
    definition = targeted("2.0.0", "1.0.0", beta=PAST)
    endpoint = facts("1.0.0", filters=frozenset({"beta"}), consented=frozenset({"2.0.0"}))
    assert blocker(definition, endpoint, True, NOW) is None
    assert blocker(definition, endpoint, False, NOW) is None


def test_blocker_names_the_version_it_blocks() -> None:
    verdict = blocker(software("2.0.0", "1.0.0"), facts("1.0.0"), True, NOW)
    assert verdict is not None
    assert (verdict.version, verdict.kind) == ("2.0.0", VerdictKind.AWAITING_CONSENT)
    assert verdict.reason


# --- endpoint facts -------------------------------------------------------------------------


def state(**fields: object) -> EndpointState:
    return EndpointState("t", "app", "ep-1", **fields)  # type: ignore[arg-type]


def test_facts_of_an_unknown_endpoint_carry_only_the_requested_version() -> None:
    assert EndpointFacts.of(None, "1.0.0") == EndpointFacts(current_version="1.0.0")
    assert EndpointFacts.of(None, None) == EndpointFacts()
    assert EndpointFacts.of(None, None).filters is None


def test_facts_prefer_the_requested_version_over_the_reported_one() -> None:
    known = state(current_version="1.0.0")
    assert EndpointFacts.of(known, "1.1.0").current_version == "1.1.0"
    assert EndpointFacts.of(known, None).current_version == "1.0.0"


def test_facts_carry_filters_consent_and_failures_of_the_endpoint() -> None:
    known = state(
        current_version="1.0.0",
        last_report=AppliedReport("2.0.0", 500, "boom", NOW),
        failed_versions=frozenset({"2.0.0"}),
        consents=(Consent("1.1.0", False, NOW), Consent(None, True, NOW)),
        filters=frozenset({"beta"}),
    )
    endpoint = EndpointFacts.of(known, None)
    assert endpoint.filters == frozenset({"beta"})
    assert endpoint.consented_versions == frozenset({"1.1.0"})
    assert endpoint.consent_all
    assert endpoint.failed_versions == frozenset({"2.0.0"})


def test_facts_without_blanket_consent_do_not_consent_to_all() -> None:
    known = state(consents=(Consent("1.1.0", False, NOW),))
    assert not EndpointFacts.of(known, None).consent_all


# --- property: select is the maximum of the unblocked candidates ------------------------------

FILTER_POOL = ["f1", "f2", "f3"]
DATES = [None, PAST, NOW, FUTURE]

semvers = st.builds(
    lambda major, minor, patch, pre: f"{major}.{minor}.{patch}" + (f"-{pre}" if pre else ""),
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 3),
    st.sampled_from([None, "alpha", "alpha.1", "beta", "rc.1", "rc.2", "0", "11"]),
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Catalog, EndpointFacts]:
    names = draw(st.lists(semvers, min_size=1, max_size=12, unique=True))
    ordered = sorted(names, key=versions.sort_key)
    definitions: list[Software] = []
    for index, version in enumerate(ordered):
        if not draw(st.booleans()) and index > 0:
            continue  # a version named only in upgradableFrom (e.g. a factory image)
        lower = ordered[:index]
        sources = draw(st.lists(st.sampled_from(lower), unique=True)) if lower else []
        strategy = draw(st.sampled_from(list(RolloutStrategy)))
        filters: tuple[RolloutFilter, ...] = ()
        if strategy is TARGETED:
            listed = draw(st.lists(st.sampled_from(FILTER_POOL), min_size=1, unique=True))
            filters = tuple(RolloutFilter(f, draw(st.sampled_from(DATES))) for f in listed)
        definitions.append(software(version, *sources, strategy=strategy, filters=filters))
    built = catalog(*definitions, consent_required=draw(st.booleans()))
    endpoint = EndpointFacts(
        current_version=draw(st.none() | st.sampled_from(ordered)),
        filters=draw(st.none() | st.frozensets(st.sampled_from(FILTER_POOL))),
        consented_versions=draw(st.frozensets(st.sampled_from(ordered))),
        consent_all=draw(st.booleans()),
        failed_versions=draw(st.frozensets(st.sampled_from(ordered))),
    )
    return built, endpoint


def deliverable_by_the_rules(definition: Software, built: Catalog, e: EndpointFacts) -> bool:
    """Steps 1-4 (docs/api.md) restated independently of the implementation."""
    if definition.rollout_strategy is SUSPENDED:
        return False
    if e.current_version is not None and e.current_version not in definition.upgradable_from:
        return False
    if definition.rollout_strategy is TARGETED and not any(
        f.filter_id in (e.filters or ()) and (f.rollout_date is None or f.rollout_date <= NOW)
        for f in definition.spec.filters
    ):
        return False
    if built.settings.consent_required and not (
        e.consent_all or definition.version in e.consented_versions
    ):
        return False
    return definition.version not in e.failed_versions


@settings(max_examples=300)
@given(scenarios())
def test_select_is_the_highest_unblocked_candidate(scenario: tuple[Catalog, EndpointFacts]) -> None:
    built, endpoint = scenario
    consent = built.settings.consent_required
    unblocked = [
        d
        for d in built.candidates(endpoint.current_version)
        if blocker(d, endpoint, consent, NOW) is None
    ]
    chosen = select(built, endpoint, NOW)
    if not unblocked:
        assert chosen is None
    else:
        assert chosen is max(unblocked, key=lambda d: versions.sort_key(d.version))
    by_the_rules = [d for d in built.definitions if deliverable_by_the_rules(d, built, endpoint)]
    assert {d.version for d in unblocked} == {d.version for d in by_the_rules}
    if chosen is not None:
        assert chosen.rollout_strategy is not SUSPENDED
        assert deliverable_by_the_rules(chosen, built, endpoint)


@settings(max_examples=300)
@given(scenarios())
def test_explain_agrees_with_select(scenario: tuple[Catalog, EndpointFacts]) -> None:
    built, endpoint = scenario
    explanation = explain(built, endpoint, NOW)
    chosen = select(built, endpoint, NOW)
    assert explanation.selected is chosen
    assert [v.version for v in explanation.verdicts] == [d.version for d in built.definitions]
    selected = [v.version for v in explanation.verdicts if v.kind is VerdictKind.SELECTED]
    assert selected == ([] if chosen is None else [chosen.version])
    for definition, verdict in zip(built.definitions, explanation.verdicts, strict=True):
        if verdict.kind is VerdictKind.LOWER_THAN_SELECTED:
            assert chosen is not None
            assert versions.sort_key(definition.version) < versions.sort_key(chosen.version)
            assert deliverable_by_the_rules(definition, built, endpoint)
        if verdict.kind is VerdictKind.SUSPENDED:
            assert definition.rollout_strategy is SUSPENDED
