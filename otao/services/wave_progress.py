"""A staged rollout's progress, computed from its counts (docs/rollouts.md): each wave's
status and outcomes, the gate to the next one, whether judging the rollout could change
anything, and the reason a halt by its rolloutPolicy gives. Pure: ``waves.py`` reads the
counts, judges and writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from otao.domain.models import RolloutStrategy, Software
from otao.domain.rollout_plan import Advance, RolloutPlan, WaveState, wave_for, wave_state
from otao.domain.rollout_progress import (
    GateState,
    InstallReport,
    Outcome,
    OutcomeCounts,
    Poll,
    gate,
    outcome,
)
from otao.domain.rollout_state import InstallRecord, RolloutState


@dataclass(frozen=True, slots=True)
class WaveStatus:
    percent: int
    state: WaveState
    opened_at: datetime | None
    eligible: int
    counts: OutcomeCounts


@dataclass(frozen=True, slots=True)
class Progress:
    definition: Software
    plan: RolloutPlan
    rollout: RolloutState
    waves: tuple[WaveStatus, ...]
    gate: GateState
    # When the waves' outcomes were counted, and their eligible endpoints (None: not yet;
    # every wave's eligible is 0 then). See docs/rollouts.md, "How fresh the counts are".
    counted_at: datetime | None = None
    eligible_counted_at: datetime | None = None

    @property
    def open_counts(self) -> OutcomeCounts:
        """The endpoints the gate and the halt judge: those of the open waves."""
        total = OutcomeCounts()
        for index, wave in enumerate(self.waves):
            if index <= self.rollout.current_wave:
                total = total + wave.counts
        return total


def endpoint_outcome(
    plan: RolloutPlan,
    version: str,
    record: InstallRecord | None,
    offered_at: datetime | None,
    now: datetime,
) -> Outcome | None:
    polls = (
        [Poll(record.poll_config_id, record.poll_at)]
        if record is not None and record.poll_at is not None
        else []
    )
    return outcome(
        version=version,
        offered_at=offered_at,
        report=InstallReport(record.succeeded, record.reported_at) if record else None,
        polls=polls,
        previous_version=record.previous_version if record else None,
        confirm_seconds=plan.confirm_seconds,
        apply_timeout_seconds=plan.apply_timeout_seconds,
        now=now,
    )


def wave_outcomes(
    definition: Software,
    plan: RolloutPlan,
    installs: Mapping[str, InstallRecord],
    offered_at: Mapping[str, datetime],
    now: datetime,
) -> tuple[OutcomeCounts, ...]:
    """Each wave's outcome counts. Only endpoints offered or reporting the version have an
    outcome, so these two are all that is read: never the rest of the fleet."""
    outcomes: list[list[Outcome | None]] = [[] for _ in plan.waves]
    version, application = definition.version, definition.application
    for endpoint_id in offered_at.keys() | installs.keys():
        wave = wave_for(plan, application, endpoint_id, version)
        outcomes[wave].append(
            endpoint_outcome(
                plan, version, installs.get(endpoint_id), offered_at.get(endpoint_id), now
            )
        )
    return tuple(OutcomeCounts.of(each) for each in outcomes)


def progress(
    definition: Software,
    outcomes: tuple[OutcomeCounts, ...],
    eligible: tuple[int, ...],
    now: datetime,
) -> Progress | None:
    """Every wave's eligible endpoints and outcomes, and the gate; None without a plan."""
    plan, rollout = definition.spec.rollout_plan, definition.rollout
    if plan is None or rollout is None:
        return None
    waves = tuple(
        WaveStatus(
            percent=w.percent,
            state=wave_state(index, rollout.current_wave),
            opened_at=rollout.opened_at[index] if index < len(rollout.opened_at) else None,
            eligible=eligible[index] if index < len(eligible) else 0,
            counts=outcomes[index] if index < len(outcomes) else OutcomeCounts(),
        )
        for index, w in enumerate(plan.waves)
    )
    judged = OutcomeCounts()
    for wave_status in waves[: rollout.current_wave + 1]:
        judged = judged + wave_status.counts
    state_of_gate = gate(plan, rollout.current_wave, rollout.current_opened_at, judged, now)
    return Progress(definition, plan, rollout, waves, state_of_gate)


def halt_reason(failures: int, reports: int, max_failure_ratio: float) -> str:
    """The reason a rollout halted by its rolloutPolicy gives (with or without a plan)."""
    return (
        f"failure ratio {failures}/{reports} = {failures / reports:.2f} exceeded "
        f"maxFailureRatio {max_failure_ratio} after {reports} reports"
    )


def decides(definition: Software) -> bool:
    """Whether judging the rollout could change anything: open a wave by itself, or halt it
    by its rolloutPolicy. Otherwise its gate is not judged (nothing read)."""
    plan, rollout = definition.spec.rollout_plan, definition.rollout
    if plan is None or rollout is None:
        return False
    if definition.rollout_strategy is RolloutStrategy.SUSPENDED:
        return False
    advancing = (
        plan.advance is Advance.AUTOMATIC
        and not rollout.paused
        and rollout.current_wave < plan.last_wave
    )
    halting = definition.spec.rollout_policy is not None and definition.halt is None
    return advancing or halting
