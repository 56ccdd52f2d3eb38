"""Rollouts in motion: install outcomes, wave gates, the offer budget and explain's reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otao.domain.rollout_plan import Advance, RolloutPlan, Wave
from otao.domain.rollout_progress import (
    GateState,
    InstallReport,
    Outcome,
    OutcomeCounts,
    Poll,
    budget_window,
    budget_window_end,
    gate,
    not_in_open_wave_reason,
    offer_budget_exhausted_reason,
    outcome,
    rollout_paused_reason,
    should_advance,
)
from tests.domain.builders import NOW

OFFERED = NOW - timedelta(hours=2)
REPORTED = OFFERED + timedelta(minutes=10)
CONFIRM = 900
TIMEOUT = 86400


def tally(**by_name: int) -> OutcomeCounts:
    """Outcome counts by the outcomes' names (``rolled_back=1``)."""
    return OutcomeCounts({Outcome[name.upper()]: n for name, n in by_name.items()})


def at(seconds_after_report: int) -> datetime:
    return REPORTED + timedelta(seconds=seconds_after_report)


def classify(
    report: InstallReport | None = None,
    polls: tuple[Poll, ...] = (),
    *,
    offered_at: datetime | None = OFFERED,
    confirm_seconds: int = CONFIRM,
    apply_timeout_seconds: int = TIMEOUT,
    now: datetime = NOW,
) -> Outcome | None:
    return outcome(
        version="2.0.0",
        offered_at=offered_at,
        report=report,
        polls=polls,
        previous_version="1.0.0",
        confirm_seconds=confirm_seconds,
        apply_timeout_seconds=apply_timeout_seconds,
        now=now,
    )


SUCCESS = InstallReport(True, REPORTED)
FAILURE = InstallReport(False, REPORTED)


# --- outcomes -------------------------------------------------------------------------------


def test_an_endpoint_never_offered_nor_reporting_has_no_outcome() -> None:
    assert classify(offered_at=None) is None


def test_an_offered_endpoint_without_a_report_is_offered() -> None:
    assert classify() is Outcome.OFFERED


def test_no_report_within_the_apply_timeout_is_timed_out() -> None:
    assert classify(now=OFFERED + timedelta(seconds=TIMEOUT)) is Outcome.TIMED_OUT
    assert classify(now=OFFERED + timedelta(seconds=TIMEOUT - 1)) is Outcome.OFFERED


def test_without_an_apply_timeout_an_offer_waits_forever() -> None:
    assert classify(apply_timeout_seconds=0, now=OFFERED + timedelta(days=400)) is Outcome.OFFERED


def test_a_late_report_replaces_a_timeout() -> None:
    late = InstallReport(True, OFFERED + timedelta(seconds=TIMEOUT + 5))
    assert classify(late, confirm_seconds=0, now=late.at + timedelta(days=1)) is Outcome.APPLIED


def test_a_failure_report_is_failed() -> None:
    assert classify(FAILURE) is Outcome.FAILED


def test_a_report_without_a_recorded_offer_still_counts() -> None:
    assert classify(FAILURE, offered_at=None) is Outcome.FAILED


def test_success_awaiting_its_confirming_poll_is_applied() -> None:
    assert classify(SUCCESS, now=at(CONFIRM - 1)) is Outcome.APPLIED


def test_a_poll_naming_the_version_within_the_window_commits() -> None:
    assert classify(SUCCESS, (Poll("2.0.0", at(CONFIRM)),)) is Outcome.COMMITTED


def test_no_confirming_poll_within_the_window_is_unconfirmed() -> None:
    assert classify(SUCCESS, (Poll("2.0.0", at(CONFIRM + 1)),)) is Outcome.UNCONFIRMED
    assert classify(SUCCESS, now=at(CONFIRM + 1)) is Outcome.UNCONFIRMED


def test_a_poll_naming_the_previous_version_after_success_is_a_rollback() -> None:
    assert classify(SUCCESS, (Poll("1.0.0", at(60)),)) is Outcome.ROLLED_BACK


def test_a_rollback_seen_after_the_window_is_still_a_rollback() -> None:
    assert classify(SUCCESS, (Poll("1.0.0", at(CONFIRM * 4)),)) is Outcome.ROLLED_BACK


def test_a_rollback_is_seen_without_confirmation_too() -> None:
    polls = (Poll("1.0.0", at(60)),)
    assert classify(SUCCESS, polls, confirm_seconds=0) is Outcome.ROLLED_BACK


def test_the_first_telling_poll_decides() -> None:
    committed_then_old = (Poll("1.0.0", at(120)), Poll("2.0.0", at(60)))
    assert classify(SUCCESS, committed_then_old) is Outcome.COMMITTED
    old_then_new = (Poll("2.0.0", at(120)), Poll("1.0.0", at(60)))
    assert classify(SUCCESS, old_then_new) is Outcome.ROLLED_BACK


def test_polls_before_the_report_and_polls_naming_nothing_or_another_version_tell_nothing() -> None:
    polls = (
        Poll("1.0.0", REPORTED - timedelta(seconds=1)),
        Poll(None, at(10)),
        Poll("1.5.0", at(20)),
    )
    assert classify(SUCCESS, polls, now=at(30)) is Outcome.APPLIED


def test_without_confirmation_a_success_is_applied_for_good() -> None:
    polls = (Poll("2.0.0", at(60)),)
    assert classify(SUCCESS, polls, confirm_seconds=0, now=at(10**6)) is Outcome.APPLIED


@given(
    st.booleans(),
    st.lists(
        st.tuples(st.sampled_from([None, "1.0.0", "2.0.0", "3.0.0"]), st.integers(-100, 5000)),
        max_size=5,
    ),
    st.integers(0, 3000),
    st.integers(0, 6000),
)
def test_outcomes_follow_from_the_facts(
    succeeded: bool, raw_polls: list[tuple[str | None, int]], confirm: int, later: int
) -> None:
    polls = tuple(Poll(config, at(offset)) for config, offset in raw_polls)
    found = classify(
        InstallReport(succeeded, REPORTED), polls, confirm_seconds=confirm, now=at(later)
    )
    if not succeeded:
        assert found is Outcome.FAILED
    if found is Outcome.COMMITTED:
        assert confirm and any(p.config_id == "2.0.0" and p.at <= at(confirm) for p in polls)
    if found is Outcome.ROLLED_BACK:
        assert any(p.config_id == "1.0.0" and p.at >= REPORTED for p in polls)
    if not confirm:
        assert found not in (Outcome.COMMITTED, Outcome.UNCONFIRMED)
    # A reported endpoint never waits for an offer answer nor times out.
    assert found not in (Outcome.OFFERED, Outcome.TIMED_OUT, None)


# --- counts ---------------------------------------------------------------------------------


def test_counts_tally_each_endpoint_once_and_add_up() -> None:
    counts = OutcomeCounts.of(
        [Outcome.OFFERED, Outcome.COMMITTED, Outcome.COMMITTED, Outcome.ROLLED_BACK, None]
    )
    assert counts == tally(offered=1, committed=2, rolled_back=1)
    assert counts.total == 4
    both = counts + tally(failed=1, timed_out=1, unconfirmed=1, applied=1)
    assert both.total == 8
    assert both.failures == 3


def test_confirming_counts_committed_as_success_and_waits_for_applied() -> None:
    counts = tally(applied=5, committed=10, unconfirmed=2, failed=1, rolled_back=1)
    assert counts.successes(confirming=True) == 10
    assert counts.reports(confirming=True) == 14
    # Without confirmation nothing is ever committed or unconfirmed, so applied is success.
    plain = tally(applied=10, failed=1, timed_out=1, offered=4)
    assert plain.successes(confirming=False) == 10
    assert plain.reports(confirming=False) == 12


def test_the_failure_ratio_is_judged_on_the_same_reports_as_the_gates() -> None:
    counts = tally(applied=5, committed=6, unconfirmed=1, rolled_back=1, timed_out=1, failed=1)
    assert counts.failure_ratio(confirming=True) == 3 / 10
    assert counts.failure_ratio(confirming=False) == 3 / 8
    assert tally(offered=3).failure_ratio(confirming=True) is None


# --- gates ----------------------------------------------------------------------------------

PLAN = RolloutPlan(
    waves=(Wave(5, 20, 0.95, 3600), Wave(25, 100, 0.98, 7200), Wave(100)),
    confirm_seconds=CONFIRM,
    apply_timeout_seconds=TIMEOUT,
)
OPENED = NOW - timedelta(hours=2)


def test_a_gate_waits_for_enough_reports() -> None:
    state = gate(PLAN, 0, OPENED, tally(committed=3, offered=30), NOW)
    assert state == GateState(False, "3 of 20 reports needed")


def test_a_gate_waits_for_the_success_ratio_printed_rounded_down() -> None:
    # 21 of 23 is 0.913: shown to the threshold's two places, rounded down.
    state = gate(PLAN, 0, OPENED, tally(committed=21, failed=1, rolled_back=1), NOW)
    assert state == GateState(False, "success 0.91 < 0.95")
    just_under = gate(PLAN, 1, OPENED, tally(committed=979, timed_out=21), NOW)
    assert just_under == GateState(False, "success 0.97 < 0.98")


def test_a_ratio_just_below_the_threshold_never_prints_as_the_threshold() -> None:
    plan = RolloutPlan(waves=(Wave(5, 1, 0.995), Wave(100)))
    state = gate(plan, 0, OPENED, tally(applied=1989, failed=11), NOW)
    assert state == GateState(False, "success 0.994 < 0.995")


def test_a_gate_soaks_from_when_the_wave_opened() -> None:
    state = gate(PLAN, 1, NOW - timedelta(hours=1), tally(committed=100), NOW)
    assert state == GateState(False, "soaking until 2024-06-01T13:00:00Z")


def test_every_unmet_condition_is_named() -> None:
    state = gate(PLAN, 0, NOW, tally(committed=2, failed=1), NOW)
    assert state.reason == (
        "3 of 20 reports needed; success 0.66 < 0.95; soaking until 2024-06-01T13:00:00Z"
    )


def test_confirming_plans_wait_for_confirmation_not_for_applied() -> None:
    state = gate(PLAN, 0, OPENED, tally(applied=25), NOW)
    assert state == GateState(False, "0 of 20 reports needed")
    unconfirming = RolloutPlan(waves=PLAN.waves)
    assert gate(unconfirming, 0, OPENED, tally(applied=25), NOW).met


def test_unconfirmed_endpoints_weigh_against_the_ratio() -> None:
    state = gate(PLAN, 0, OPENED, tally(committed=19, unconfirmed=2), NOW)
    assert state == GateState(False, "success 0.90 < 0.95")


def test_a_met_gate_opens_the_next_wave_by_itself_when_automatic() -> None:
    state = gate(PLAN, 0, OPENED, tally(committed=20, offered=7), NOW)
    assert state == GateState(True, "met (20 reports, success 1.00); opening wave 1")
    assert should_advance(PLAN, state, paused=False)
    assert not should_advance(PLAN, state, paused=True)


def test_a_met_gate_of_a_manual_plan_waits_for_an_operator() -> None:
    manual = RolloutPlan(waves=PLAN.waves, advance=Advance.MANUAL, confirm_seconds=CONFIRM)
    state = gate(manual, 0, OPENED, tally(committed=20), NOW)
    assert state == GateState(
        True, "met (20 reports, success 1.00); wave 1 waits for rollout:advance"
    )
    assert not should_advance(manual, state, paused=False)


def test_a_time_only_gate_needs_no_reports() -> None:
    phased = RolloutPlan(waves=(Wave(10, 0, 0.0, 600), Wave(100)))
    assert gate(phased, 0, NOW - timedelta(seconds=600), OutcomeCounts(), NOW) == GateState(
        True, "met (0 reports); opening wave 1"
    )


def test_the_last_wave_has_nothing_to_open() -> None:
    state = gate(PLAN, 2, OPENED, tally(committed=1000), NOW)
    assert state == GateState(False, "the last wave is open: every eligible endpoint is included")
    assert not should_advance(PLAN, state, paused=False)


@given(st.integers(0, 500), st.integers(0, 500), st.integers(0, 500), st.integers(0, 10_000))
def test_a_gate_is_met_exactly_when_reports_ratio_and_soak_all_are(
    committed: int, failed: int, unconfirmed: int, soaked: int
) -> None:
    counts = tally(committed=committed, failed=failed, unconfirmed=unconfirmed)
    state = gate(PLAN, 0, NOW - timedelta(seconds=soaked), counts, NOW)
    reports = committed + failed + unconfirmed
    expected = reports >= 20 and (reports == 0 or committed / reports >= 0.95) and soaked >= 3600
    assert state.met == expected
    assert state.reason


# --- offer budget ---------------------------------------------------------------------------


def test_every_replica_names_the_same_minute_window() -> None:
    start = datetime(2024, 6, 1, 12, 3, tzinfo=UTC)
    window = budget_window(start)
    assert budget_window(start + timedelta(seconds=59.9)) == window
    assert budget_window(start + timedelta(seconds=60)) == window + 1
    assert budget_window(start.astimezone(tz=None)) == window
    assert budget_window_end(window) == datetime(2024, 6, 1, 12, 4, tzinfo=UTC)


# --- explain --------------------------------------------------------------------------------


def test_not_in_open_wave_names_both_waves_and_the_gate() -> None:
    waiting = GateState(False, "3 of 20 reports needed")
    assert not_in_open_wave_reason(PLAN, 1, 0, waiting) == (
        "the endpoint is in wave 1 (25%), which opens next; open: wave 0 (5%); "
        "gate: 3 of 20 reports needed"
    )
    assert not_in_open_wave_reason(PLAN, 2, 0, waiting).startswith(
        "the endpoint is in wave 2 (100%), which opens after wave 1; open: wave 0 (5%)"
    )


@pytest.mark.parametrize(
    ("paused_at", "paused_by", "reason"),
    [
        (None, None, "the rollout was paused; nothing new is offered until rollout:resume"),
        (
            NOW,
            "alice",
            "the rollout was paused by alice at 2024-06-01T12:00:00Z; "
            "nothing new is offered until rollout:resume",
        ),
    ],
)
def test_a_paused_rollout_says_who_paused_it_and_how_to_resume(
    paused_at: datetime | None, paused_by: str | None, reason: str
) -> None:
    assert rollout_paused_reason(paused_at, paused_by) == reason


def test_an_exhausted_budget_says_when_offers_resume() -> None:
    assert offer_budget_exhausted_reason(50, NOW + timedelta(seconds=30)) == (
        "this minute's budget of 50 first offers is used; more from 2024-06-01T12:01:00Z"
    )


def test_the_worked_example_of_the_docs_reads_as_documented() -> None:
    """docs/rollouts.md, steps 2-6: the gate as the operator sees it."""
    plan = RolloutPlan(waves=PLAN.waves, confirm_seconds=CONFIRM, apply_timeout_seconds=TIMEOUT)
    noon = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    one = noon + timedelta(hours=1)

    def minutes(m: int) -> datetime:
        return noon + timedelta(minutes=m)

    steps = [
        (0, noon, tally(offered=40, applied=22, committed=15, failed=1), minutes(20)),
        (0, noon, tally(offered=5, applied=3, committed=83, failed=2, rolled_back=1), minutes(45)),
        (
            0,
            noon,
            tally(applied=1, committed=89, rolled_back=1, unconfirmed=1, failed=2),
            minutes(60),
        ),
        (
            1,
            one,
            tally(applied=1, committed=89, rolled_back=1, unconfirmed=1, failed=2),
            minutes(60),
        ),
        (
            1,
            one,
            tally(offered=21, applied=20, committed=450, rolled_back=6, unconfirmed=1, failed=3),
            minutes(150),
        ),
        (
            1,
            one,
            tally(applied=1, committed=490, rolled_back=6, unconfirmed=1, failed=3),
            minutes(190),
        ),
        (2, minutes(190), OutcomeCounts(), minutes(190)),
    ]
    assert [gate(plan, *step).reason for step in steps] == [
        "16 of 20 reports needed; success 0.93 < 0.95; soaking until 2024-06-01T13:00:00Z",
        "soaking until 2024-06-01T13:00:00Z",
        "met (93 reports, success 0.95); opening wave 1",
        "93 of 100 reports needed; success 0.95 < 0.98; soaking until 2024-06-01T15:00:00Z",
        "success 0.97 < 0.98; soaking until 2024-06-01T15:00:00Z",
        "met (500 reports, success 0.98); opening wave 2",
        "the last wave is open: every eligible endpoint is included",
    ]
