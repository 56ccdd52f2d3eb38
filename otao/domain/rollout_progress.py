"""Staged rollouts in motion: each endpoint's install outcome, wave gates, the offer budget,
and the reasons explain gives. Pure: facts and the time come in, states and texts come out.
See docs/rollouts.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from otao.domain.rollout_plan import Advance, RolloutPlan
from otao.domain.validation import format_utc_date
from otao.domain.values import frozen


class Outcome(StrEnum):
    """Where one endpoint stands with one version it was offered."""

    OFFERED = "offered"  # offered, no report yet
    APPLIED = "applied"  # reported success (awaiting its confirming poll when confirming)
    COMMITTED = "committed"  # then polled naming this version within confirmSeconds
    ROLLED_BACK = "rolledBack"  # then polled naming its previous version: an A/B fallback
    TIMED_OUT = "timedOut"  # no report within applyTimeoutSeconds of the offer
    UNCONFIRMED = "unconfirmed"  # reported success, no confirming poll within confirmSeconds
    FAILED = "failed"  # reported failure


@frozen
class InstallReport:
    """The endpoint's ConfigApplied for this version."""

    succeeded: bool
    at: datetime


@frozen
class Poll:
    """A ConfigRequest the endpoint sent; config_id None when it named no version."""

    config_id: str | None
    at: datetime


def outcome(
    *,
    version: str,
    offered_at: datetime | None,
    report: InstallReport | None,
    polls: Iterable[Poll],
    previous_version: str | None,
    confirm_seconds: int,
    apply_timeout_seconds: int,
    now: datetime,
) -> Outcome | None:
    """Classify one endpoint for one version; None when it was neither offered nor reported.

    A report implies an offer, even if recording the offer was lost. Only polls after a
    successful report count. A rollback is a fact whenever it is seen (even after the confirm
    window, even without confirmation): the device is not running what it said it applied.
    A poll naming some third version says nothing about this one and is ignored.
    """
    if report is None:
        if offered_at is None:
            return None
        if apply_timeout_seconds and now >= offered_at + timedelta(seconds=apply_timeout_seconds):
            return Outcome.TIMED_OUT
        return Outcome.OFFERED
    if not report.succeeded:
        return Outcome.FAILED
    deadline = report.at + timedelta(seconds=confirm_seconds)
    for poll in sorted((p for p in polls if p.at >= report.at), key=lambda p: p.at):
        if poll.config_id == version and confirm_seconds and poll.at <= deadline:
            return Outcome.COMMITTED
        if previous_version is not None and poll.config_id == previous_version:
            return Outcome.ROLLED_BACK
    if confirm_seconds and now > deadline:
        return Outcome.UNCONFIRMED
    return Outcome.APPLIED


@frozen
class OutcomeCounts:
    """How many endpoints are in each outcome; each endpoint counts in exactly one.
    ``counts[outcome]`` reads one (0 for an outcome no endpoint is in)."""

    by_outcome: Mapping[Outcome, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # An outcome counted 0 is left out, so equal counts are equal however they were built.
        counted = {outcome: n for outcome, n in self.by_outcome.items() if n}
        object.__setattr__(self, "by_outcome", counted)

    def __hash__(self) -> int:
        return hash(frozenset(self.by_outcome.items()))

    def __getitem__(self, outcome: Outcome) -> int:
        return self.by_outcome.get(outcome, 0)

    @classmethod
    def of(cls, outcomes: Iterable[Outcome | None]) -> OutcomeCounts:
        return cls(Counter(each for each in outcomes if each is not None))

    def __add__(self, other: OutcomeCounts) -> OutcomeCounts:
        return OutcomeCounts({outcome: self[outcome] + other[outcome] for outcome in Outcome})

    @property
    def total(self) -> int:
        """Every endpoint offered the version, whatever became of it (status's ``offered``)."""
        return sum(self.by_outcome.values())

    @property
    def failures(self) -> int:
        """What gates and the maxFailureRatio halt count against a rollout."""
        return self[Outcome.FAILED] + self[Outcome.ROLLED_BACK] + self[Outcome.TIMED_OUT]

    def successes(self, confirming: bool) -> int:
        return self[Outcome.COMMITTED] if confirming else self[Outcome.APPLIED]

    def reports(self, confirming: bool) -> int:
        """Settled endpoints. When confirming, an applied endpoint is still waiting for its
        confirming poll, and an unconfirmed one is settled without being a success: a wave
        does not advance on devices that vanished after installing."""
        if confirming:
            return self[Outcome.COMMITTED] + self[Outcome.UNCONFIRMED] + self.failures
        return self[Outcome.APPLIED] + self.failures

    def failure_ratio(self, confirming: bool) -> float | None:
        """For the rolloutPolicy halt, judged on the same reports as the gates."""
        reports = self.reports(confirming)
        return self.failures / reports if reports else None


# --- gates ----------------------------------------------------------------------------------


@frozen
class GateState:
    met: bool
    reason: str


def gate(
    plan: RolloutPlan,
    current_wave: int,
    opened_at: datetime,
    counts: OutcomeCounts,
    now: datetime,
) -> GateState:
    """Whether the next wave may open. ``counts`` covers the endpoints of the open waves
    (0..current_wave) that were offered this version."""
    if current_wave >= plan.last_wave:
        return GateState(False, "the last wave is open: every eligible endpoint is included")
    wave = plan.waves[current_wave]
    confirming = plan.confirming
    reports = counts.reports(confirming)
    successes = counts.successes(confirming)
    soaked_at = opened_at + timedelta(seconds=wave.soak_seconds)
    unmet: list[str] = []
    if reports < wave.min_reports:
        unmet.append(f"{reports} of {wave.min_reports} reports needed")
    # No reports yet and none required: there is nothing to judge, only time to wait.
    if reports and successes / reports < wave.min_success_ratio:
        shown = _floor_ratio(successes, reports, wave.min_success_ratio)
        unmet.append(f"success {shown} < {wave.min_success_ratio:g}")
    if now < soaked_at:
        unmet.append(f"soaking until {format_utc_date(soaked_at)}")
    if unmet:
        return GateState(False, "; ".join(unmet))
    judged = f"{reports} reports"
    if reports:
        judged += f", success {_floor_ratio(successes, reports, wave.min_success_ratio)}"
    then = (
        f"opening wave {current_wave + 1}"
        if plan.advance is Advance.AUTOMATIC
        else f"wave {current_wave + 1} waits for rollout:advance"
    )
    return GateState(True, f"met ({judged}); {then}")


def should_advance(plan: RolloutPlan, state: GateState, paused: bool) -> bool:
    """Whether the system opens the next wave by itself now."""
    return state.met and not paused and plan.advance is Advance.AUTOMATIC


def _floor_ratio(successes: int, reports: int, threshold: float) -> str:
    """The ratio rounded down, to the threshold's precision (at least 2 places): rounding up
    could print 0.95 for 0.9499 and read as if the gate were met."""
    text = f"{threshold:.6f}".rstrip("0")
    places = max(2, len(text.partition(".")[2]))
    # Integer arithmetic: a float product (0.57 * 100 == 56.99...) would floor one digit low.
    scaled = successes * 10**places // reports
    whole, fraction = divmod(scaled, 10**places)
    return f"{whole}.{fraction:0{places}d}"


# --- offer budget ---------------------------------------------------------------------------


def budget_window(now: datetime) -> int:
    """The minute a first offer counts against: whole minutes since the epoch (UTC), so every
    replica names the same window without talking to the others."""
    return int(now.timestamp()) // 60


def budget_window_end(window: int) -> datetime:
    return datetime.fromtimestamp((window + 1) * 60, UTC)


# --- explain --------------------------------------------------------------------------------


def _wave_name(plan: RolloutPlan, wave: int) -> str:
    return f"wave {wave} ({plan.waves[wave].percent}%)"


def not_in_open_wave_reason(
    plan: RolloutPlan, endpoint_wave: int, current_wave: int, state: GateState
) -> str:
    """Why an eligible endpoint is not offered yet: its wave, the open wave, the gate."""
    waiting = (
        "opens next"
        if endpoint_wave == current_wave + 1
        else f"opens after wave {endpoint_wave - 1}"
    )
    return (
        f"the endpoint is in {_wave_name(plan, endpoint_wave)}, which {waiting}; "
        f"open: {_wave_name(plan, current_wave)}; gate: {state.reason}"
    )


def rollout_paused_reason(paused_at: datetime | None = None, paused_by: str | None = None) -> str:
    who = f" by {paused_by}" if paused_by else ""
    when = f" at {format_utc_date(paused_at)}" if paused_at else ""
    return f"the rollout was paused{who}{when}; nothing new is offered until rollout:resume"


def offer_budget_exhausted_reason(max_offers_per_minute: int, now: datetime) -> str:
    more_at = format_utc_date(budget_window_end(budget_window(now)))
    return (
        f"this minute's budget of {max_offers_per_minute} first offers is used; more from {more_at}"
    )
