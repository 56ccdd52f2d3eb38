"""Rollout plans: validation with exact field paths, stable buckets, which wave includes whom."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otao.domain.errors import InvalidArgument
from otao.domain.rollout_plan import (
    BUCKET_CACHE_SIZE,
    BUCKETS,
    MAX_COUNT,
    MAX_SECONDS,
    MAX_WAVES,
    Advance,
    RolloutPlan,
    RolloutPlanInput,
    Wave,
    WaveInput,
    WaveState,
    bucket,
    check_rollout_plan,
    rollout_plan,
    wave_for,
    wave_of,
    wave_state,
)


def issue_example(**overrides: Any) -> RolloutPlanInput:
    """The plan of the issue: 5% and 25% gated waves, then everyone."""
    fields: dict[str, Any] = {
        "waves": [
            WaveInput(5, 20, 0.95, 3600),
            WaveInput(25, 100, 0.98, 7200),
            WaveInput(100),
        ],
        "advance": "automatic",
        "confirm_seconds": 900,
        "apply_timeout_seconds": 86400,
        "max_offers_per_minute": 0,
    }
    fields.update(overrides)
    return RolloutPlanInput(**fields)


def violations(submitted: RolloutPlanInput) -> list[tuple[str, str]]:
    with pytest.raises(InvalidArgument) as raised:
        rollout_plan(submitted)
    assert raised.value.message == "the rollout plan is invalid"
    return [(v.field, v.description) for v in raised.value.violations]


def violation_fields(submitted: RolloutPlanInput) -> list[str]:
    return [path for path, _ in violations(submitted)]


# --- validation -----------------------------------------------------------------------------


def test_the_issue_example_becomes_a_plan() -> None:
    plan = rollout_plan(issue_example())
    assert plan == RolloutPlan(
        waves=(Wave(5, 20, 0.95, 3600), Wave(25, 100, 0.98, 7200), Wave(100)),
        advance=Advance.AUTOMATIC,
        confirm_seconds=900,
        apply_timeout_seconds=86400,
        max_offers_per_minute=0,
        cohort_key=None,
    )
    assert plan.confirming
    assert plan.last_wave == 2


def test_absent_advance_means_automatic_and_absent_cohort_key_means_the_version() -> None:
    plan = rollout_plan(RolloutPlanInput(waves=[WaveInput(100)]))
    assert plan.advance is Advance.AUTOMATIC
    assert plan.cohort_key is None
    assert not plan.confirming


def test_a_cohort_key_is_shared_by_every_release_naming_it() -> None:
    plan = rollout_plan(issue_example(cohort_key="canaries-2024", advance="manual"))
    assert plan.advance is Advance.MANUAL
    assert plan.cohort_key == "canaries-2024"


def test_a_single_wave_of_100_is_a_plan() -> None:
    assert rollout_plan(RolloutPlanInput(waves=[WaveInput(100)])).waves == (Wave(100),)


def test_twenty_waves_are_allowed() -> None:
    waves = [WaveInput(p) for p in range(5, 101, 5)]
    assert len(waves) == MAX_WAVES
    assert len(rollout_plan(RolloutPlanInput(waves=waves)).waves) == MAX_WAVES


BAD_PLANS: list[tuple[str, RolloutPlanInput, list[str]]] = [
    ("no waves", RolloutPlanInput(), ["rolloutPlan.waves"]),
    (
        "too many waves",
        RolloutPlanInput(waves=[WaveInput(p) for p in range(1, 21)] + [WaveInput(100)]),
        ["rolloutPlan.waves"],
    ),
    (
        "zero percent",
        issue_example(waves=[WaveInput(0), WaveInput(100)]),
        ["rolloutPlan.waves[0].percent"],
    ),
    (
        "over 100",
        issue_example(waves=[WaveInput(5), WaveInput(101)]),
        ["rolloutPlan.waves[1].percent"],
    ),
    (
        "negative",
        issue_example(waves=[WaveInput(-5), WaveInput(100)]),
        ["rolloutPlan.waves[0].percent"],
    ),
    (
        "not increasing",
        issue_example(waves=[WaveInput(25), WaveInput(25), WaveInput(100)]),
        ["rolloutPlan.waves[1].percent"],
    ),
    (
        "decreasing",
        issue_example(waves=[WaveInput(50), WaveInput(10), WaveInput(100)]),
        ["rolloutPlan.waves[1].percent"],
    ),
    (
        "last below 100",
        issue_example(waves=[WaveInput(5), WaveInput(90)]),
        ["rolloutPlan.waves[1].percent"],
    ),
    (
        "ratio above 1",
        issue_example(waves=[WaveInput(5, 1, 1.5), WaveInput(100)]),
        ["rolloutPlan.waves[0].minSuccessRatio"],
    ),
    (
        "negative ratio",
        issue_example(waves=[WaveInput(5, 1, -0.1), WaveInput(100)]),
        ["rolloutPlan.waves[0].minSuccessRatio"],
    ),
    (
        "NaN ratio",
        issue_example(waves=[WaveInput(5, 1, math.nan), WaveInput(100)]),
        ["rolloutPlan.waves[0].minSuccessRatio"],
    ),
    (
        "negative minReports",
        issue_example(waves=[WaveInput(5, -1), WaveInput(100)]),
        ["rolloutPlan.waves[0].minReports"],
    ),
    (
        "huge minReports",
        issue_example(waves=[WaveInput(5, MAX_COUNT + 1), WaveInput(100)]),
        ["rolloutPlan.waves[0].minReports"],
    ),
    (
        "negative soak",
        issue_example(waves=[WaveInput(5, 1, 0.9, -1), WaveInput(100)]),
        ["rolloutPlan.waves[0].soakSeconds"],
    ),
    (
        "soak beyond a year",
        issue_example(waves=[WaveInput(5, 1, 0.9, MAX_SECONDS + 1), WaveInput(100)]),
        ["rolloutPlan.waves[0].soakSeconds"],
    ),
    (
        "a gate on the last wave",
        issue_example(waves=[WaveInput(5), WaveInput(100, 10, 0.9)]),
        ["rolloutPlan.waves[1]"],
    ),
    ("unknown advance", issue_example(advance="auto"), ["rolloutPlan.advance"]),
    ("advance in capitals", issue_example(advance="MANUAL"), ["rolloutPlan.advance"]),
    ("negative confirm", issue_example(confirm_seconds=-1), ["rolloutPlan.confirmSeconds"]),
    (
        "timeout beyond a year",
        issue_example(apply_timeout_seconds=MAX_SECONDS + 1),
        ["rolloutPlan.applyTimeoutSeconds"],
    ),
    (
        "negative budget",
        issue_example(max_offers_per_minute=-1),
        ["rolloutPlan.maxOffersPerMinute"],
    ),
    ("cohort key with a space", issue_example(cohort_key="my canaries"), ["rolloutPlan.cohortKey"]),
    ("cohort key too long", issue_example(cohort_key="c" * 129), ["rolloutPlan.cohortKey"]),
    (
        "everything at once, each reported",
        issue_example(
            waves=[WaveInput(10, -1), WaveInput(5, 0, 2.0), WaveInput(99)],
            advance="sometimes",
            confirm_seconds=-1,
            apply_timeout_seconds=-1,
            max_offers_per_minute=-1,
            cohort_key="-x",
        ),
        [
            "rolloutPlan.waves[0].minReports",
            "rolloutPlan.waves[1].percent",
            "rolloutPlan.waves[1].minSuccessRatio",
            "rolloutPlan.waves[2].percent",
            "rolloutPlan.advance",
            "rolloutPlan.confirmSeconds",
            "rolloutPlan.applyTimeoutSeconds",
            "rolloutPlan.maxOffersPerMinute",
            "rolloutPlan.cohortKey",
        ],
    ),
]


@pytest.mark.parametrize(
    ("submitted", "fields"), [(s, f) for _, s, f in BAD_PLANS], ids=[n for n, _, _ in BAD_PLANS]
)
def test_a_bad_plan_names_exactly_the_bad_fields(
    submitted: RolloutPlanInput, fields: list[str]
) -> None:
    assert violation_fields(submitted) == fields


def test_violations_say_what_is_wrong() -> None:
    found = dict(violations(issue_example(waves=[WaveInput(25), WaveInput(10), WaveInput(90)])))
    assert found == {
        "rolloutPlan.waves[1].percent": "must be greater than the previous wave's 25 (cumulative)",
        "rolloutPlan.waves[2].percent": "the last wave must be 100",
    }


def test_violations_are_reported_under_the_path_the_caller_names() -> None:
    problems: list[tuple[str, str]] = []
    plan = check_rollout_plan(
        issue_example(advance="x"), lambda path, text: problems.append((path, text)), "plan"
    )
    assert plan is None
    assert problems == [("plan.advance", "one of automatic, manual")]


def test_a_good_plan_reports_nothing_through_the_reporter() -> None:
    problems: list[tuple[str, str]] = []
    plan = check_rollout_plan(issue_example(), lambda path, text: problems.append((path, text)))
    assert problems == []
    assert plan == rollout_plan(issue_example())


@st.composite
def valid_percents(draw: st.DrawFn) -> list[int]:
    """1-20 strictly increasing whole percents ending at 100."""
    earlier = draw(st.lists(st.integers(1, 99), max_size=MAX_WAVES - 1, unique=True))
    return [*sorted(earlier), 100]


@st.composite
def valid_plans(draw: st.DrawFn) -> RolloutPlan:
    percents = draw(valid_percents())
    waves = [
        WaveInput(
            p,
            draw(st.integers(0, 1000)),
            draw(st.floats(0.0, 1.0)),
            draw(st.integers(0, MAX_SECONDS)),
        )
        for p in percents[:-1]
    ]
    return rollout_plan(
        RolloutPlanInput(
            waves=[*waves, WaveInput(100)],
            advance=draw(st.sampled_from(["", "automatic", "manual"])),
            confirm_seconds=draw(st.integers(0, MAX_SECONDS)),
            apply_timeout_seconds=draw(st.integers(0, MAX_SECONDS)),
            max_offers_per_minute=draw(st.integers(0, MAX_COUNT)),
        )
    )


@given(valid_plans())
def test_every_increasing_plan_ending_at_100_is_accepted_as_submitted(plan: RolloutPlan) -> None:
    percents = [w.percent for w in plan.waves]
    assert percents == sorted(set(percents))
    assert percents[-1] == 100


@given(st.lists(st.integers(-10, 110), min_size=1, max_size=MAX_WAVES))
def test_percents_not_strictly_increasing_to_100_are_rejected(percents: list[int]) -> None:
    good = all(1 <= p <= 100 for p in percents) and percents == sorted(set(percents))
    good = good and percents[-1] == 100
    submitted = RolloutPlanInput(waves=[WaveInput(p) for p in percents])
    if good:
        assert [w.percent for w in rollout_plan(submitted).waves] == percents
    else:
        assert all(f.endswith(".percent") for f in violation_fields(submitted))


# --- buckets --------------------------------------------------------------------------------


def test_buckets_are_pinned_so_cohorts_never_move_between_releases_of_otao() -> None:
    # Changing these numbers would silently move every endpoint to another wave mid-rollout.
    assert bucket("smart-kettle", "kettle-0001", "2.0.0") == PINNED[0]
    assert bucket("smart-kettle", "kettle-0002", "2.0.0") == PINNED[1]
    assert bucket("smart-kettle", "kettle-0001", "2.1.0") == PINNED[2]


PINNED = (3662, 39, 9875)


def test_the_parts_of_an_identity_cannot_run_into_each_other() -> None:
    assert bucket("ab", "c", "1.0.0") != bucket("a", "bc", "1.0.0")
    assert bucket("app", "ep1", "0.0") != bucket("app", "ep", "10.0")


@given(st.text(max_size=40), st.text(max_size=40), st.text(max_size=40))
def test_a_bucket_is_in_range_and_the_same_every_time(app: str, endpoint: str, key: str) -> None:
    first = bucket(app, endpoint, key)
    assert 0 <= first < BUCKETS
    assert bucket(app, endpoint, key) == first


def documented_bucket(app: str, endpoint: str, key: str) -> int:
    """docs/rollouts.md's formula, fed to sha256 part by part."""
    digest = hashlib.sha256(b"otao.rollout.bucket.v1")
    for part in (app, endpoint, key):
        data = part.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(4, "big") + data)
    return int.from_bytes(digest.digest()[:8], "big") % BUCKETS


@given(st.text(max_size=40), st.text(max_size=40), st.text(max_size=40))
def test_a_bucket_is_the_documented_hash(app: str, endpoint: str, key: str) -> None:
    assert bucket(app, endpoint, key) == documented_bucket(app, endpoint, key)


def test_a_bucket_the_cache_forgot_is_computed_to_the_same_value() -> None:
    remembered = [bucket("smart-kettle", "kettle-0001", "2.0.0")]
    for n in range(BUCKET_CACHE_SIZE + 1):  # pushes the pinned entry out (least recent)
        bucket("filler", f"ep-{n}", "1.0.0")
    assert [bucket("smart-kettle", "kettle-0001", "2.0.0")] == remembered == [PINNED[0]]


def share_in_first_tenth(app: str, key: str, endpoints: int) -> float:
    hits = sum(bucket(app, f"ep-{n:05d}", key) < 1000 for n in range(endpoints))
    return hits / endpoints


@pytest.mark.parametrize(
    "key", [f"{major}.{minor}.0" for major in range(1, 5) for minor in range(5)]
)
def test_a_10_percent_wave_of_1000_endpoints_holds_10_percent_give_or_take_3(key: str) -> None:
    assert 0.07 <= share_in_first_tenth("smart-kettle", key, 1000) <= 0.13


@settings(max_examples=20, deadline=None)
@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_any_application_and_cohort_put_about_10_percent_in_a_10_percent_wave(
    app: str, key: str
) -> None:
    # 4,000 endpoints: 3 points either side is over 6 standard deviations, so this never flakes.
    assert 0.07 <= share_in_first_tenth(app, key, 4000) <= 0.13


def test_a_new_cohort_key_draws_different_canaries() -> None:
    first = {n for n in range(1000) if bucket("app", f"ep-{n}", "2.0.0") < 1000}
    second = {n for n in range(1000) if bucket("app", f"ep-{n}", "3.0.0") < 1000}
    # Independent draws of ~100 each overlap in about 10; the same key would overlap fully.
    assert len(first & second) < 40


# --- waves ----------------------------------------------------------------------------------

EXAMPLE = rollout_plan(issue_example())


def test_an_endpoint_is_in_the_first_wave_whose_percent_covers_its_bucket() -> None:
    assert [wave_of(EXAMPLE, b) for b in (0, 499, 500, 2499, 2500, 9999)] == [0, 0, 1, 1, 2, 2]


def test_an_endpoints_wave_comes_from_its_bucket_in_the_plans_cohort() -> None:
    shared = rollout_plan(issue_example(cohort_key="canaries"))
    for n in range(50):
        endpoint = f"kettle-{n}"
        assert wave_for(EXAMPLE, "app", endpoint, "2.0.0") == wave_of(
            EXAMPLE, bucket("app", endpoint, "2.0.0")
        )
        assert wave_for(shared, "app", endpoint, "2.0.0") == wave_for(
            shared, "app", endpoint, "9.0.0"
        )


def test_the_worked_example_of_the_docs_puts_94_407_and_1499_kettles_in_its_waves() -> None:
    waves = [wave_for(EXAMPLE, "smart-kettle", f"kettle-{n:04d}", "2.0.0") for n in range(2000)]
    assert [waves.count(w) for w in range(3)] == [94, 407, 1499]
    assert (waves[5], waves[2]) == (1, 0)


def test_each_wave_newly_includes_exactly_its_share_of_the_buckets() -> None:
    per_wave = [sum(wave_of(EXAMPLE, b) == w for b in range(BUCKETS)) for w in range(3)]
    assert per_wave == [500, 2000, 7500]


def test_waves_before_the_open_one_are_done_and_later_ones_pending() -> None:
    assert [wave_state(w, 1) for w in range(3)] == [
        WaveState.DONE,
        WaveState.OPEN,
        WaveState.PENDING,
    ]
    assert wave_state(2, 2) is WaveState.OPEN
