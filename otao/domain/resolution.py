"""Which update an endpoint gets next, and why (docs/api.md, "Resolution and delivery").

Pure: the catalog, what otao knows of the endpoint and the time come in; a decision and a
verdict for every definition come out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

from otao.domain import rollout_progress
from otao.domain.catalog import Catalog
from otao.domain.models import EndpointState, FilterBelief, RolloutStrategy, Software
from otao.domain.rollout_plan import wave_for
from otao.domain.rollout_progress import GateState
from otao.domain.values import frozen


class VerdictKind(StrEnum):
    SELECTED = "selected"
    NOT_IN_GRAPH = "not_in_graph"
    SUSPENDED = "suspended"
    NO_MATCHING_FILTER = "no_matching_filter"
    ROLLOUT_DATE_PENDING = "rollout_date_pending"
    AWAITING_CONSENT = "awaiting_consent"
    PREVIOUSLY_FAILED = "previously_failed"
    ROLLOUT_PAUSED = "rollout_paused"
    NOT_IN_OPEN_WAVE = "not_in_open_wave"
    # Decided by the delivery service (a shared counter), never by ``blocker``.
    OFFER_BUDGET_EXHAUSTED = "offer_budget_exhausted"
    LOWER_THAN_SELECTED = "lower_than_selected"


@frozen
class Verdict:
    version: str
    kind: VerdictKind
    reason: str


@frozen
class EndpointFacts:
    """What resolution needs to know about one endpoint."""

    current_version: str | None = None
    # None: filter membership unknown (treated as matching no filter, never all).
    filters: frozenset[str] | None = None
    consented_versions: frozenset[str] = frozenset()
    consent_all: bool = False
    failed_versions: frozenset[str] = frozenset()
    # Where each filter in ``filters`` came from (an EFMP answer or an EFE event, and when).
    filter_beliefs: tuple[FilterBelief, ...] = ()
    # Places the endpoint in a rollout plan's waves; None: in no wave (held by every plan).
    endpoint_id: str | None = None

    @classmethod
    def of(
        cls,
        state: EndpointState | None,
        current_version: str | None,
        endpoint_id: str | None = None,
    ) -> EndpointFacts:
        if state is None:
            return cls(current_version=current_version, endpoint_id=endpoint_id)
        return cls(
            endpoint_id=state.endpoint_id,
            current_version=current_version or state.current_version,
            filters=state.filters,
            consented_versions=state.consented_versions,
            consent_all=state.consent_all,
            failed_versions=state.failed_versions,
            filter_beliefs=state.filter_beliefs,
        )


@frozen
class Explanation:
    current_version: str | None
    selected: Software | None
    verdicts: tuple[Verdict, ...]
    # The filters otao believes the endpoint matches, each with its source and time.
    filters: tuple[FilterBelief, ...] = ()


def blocker(
    definition: Software,
    facts: EndpointFacts,
    consent_required: bool,
    now: datetime,
    gates: Mapping[str, GateState] | None = None,
) -> Verdict | None:
    """Steps 2-4 for one candidate: why it cannot be delivered, or None if it can.
    ``gates`` (by version) completes a not_in_open_wave reason with the gate's state."""
    found = eligibility_blocker(definition, facts, consent_required, now)
    if found is not None or definition.spec.rollout_plan is None:
        return found
    return wave_blocker(definition, facts, gates)


def wave_blocker(
    definition: Software, facts: EndpointFacts, gates: Mapping[str, GateState] | None = None
) -> Verdict | None:
    """The rollout plan's hold on an otherwise eligible endpoint (docs/rollouts.md)."""
    plan, state = definition.spec.rollout_plan, definition.rollout
    if plan is None or state is None:
        return None
    version = definition.version
    if state.paused:
        return Verdict(
            version,
            VerdictKind.ROLLOUT_PAUSED,
            rollout_progress.rollout_paused_reason(state.changed_at, state.changed_by),
        )
    if not definition.waves_pending:
        return None  # every wave is open: no need to place the endpoint (no hash)
    if facts.endpoint_id is None:
        wave = plan.last_wave
    else:
        wave = wave_for(plan, definition.application, facts.endpoint_id, version)
    if wave <= state.current_wave:
        return None
    gate = (gates or {}).get(version) or GateState(False, "not judged here (see rollout status)")
    return Verdict(
        version,
        VerdictKind.NOT_IN_OPEN_WAVE,
        rollout_progress.not_in_open_wave_reason(plan, wave, state.current_wave, gate),
    )


def eligibility_blocker(
    definition: Software,
    facts: EndpointFacts,
    consent_required: bool,
    now: datetime,
) -> Verdict | None:
    """What the strategy, consent and failures say, regardless of any rollout plan."""
    version = definition.version
    if definition.rollout_strategy is RolloutStrategy.TARGETED:
        listed = {f.filter_id: f for f in definition.spec.filters}
        matched = [listed[f] for f in (facts.filters or frozenset()) if f in listed]
        if not matched:
            return Verdict(
                version,
                VerdictKind.NO_MATCHING_FILTER,
                "targeted rollout; the endpoint matches none of its filters",
            )
        if all(f.rollout_date is not None and f.rollout_date > now for f in matched):
            first = min(f.rollout_date for f in matched if f.rollout_date is not None)
            return Verdict(
                version,
                VerdictKind.ROLLOUT_DATE_PENDING,
                f"the endpoint's filters roll out from {first.isoformat()}",
            )
    if consent_required and not (facts.consent_all or version in facts.consented_versions):
        return Verdict(version, VerdictKind.AWAITING_CONSENT, "the application requires consent")
    if version in facts.failed_versions:
        return Verdict(
            version,
            VerdictKind.PREVIOUSLY_FAILED,
            "the endpoint reported that applying this version failed",
        )
    return None


def select(catalog: Catalog, facts: EndpointFacts, now: datetime) -> Software | None:
    """Step 5: the highest deliverable candidate (candidates come newest first)."""
    consent_required = catalog.settings.consent_required
    for candidate in catalog.candidates(facts.current_version):
        if blocker(candidate, facts, consent_required, now) is None:
            return candidate
    return None


def delivery_changed(before: Software | None, after: Software | None) -> bool:
    """Whether an endpoint to be offered ``after`` now was offered something else before:
    the one rule for "push it" (a change of definitions, of a consent, of a filter)."""
    if after is None:
        return False
    if before is None:
        return True
    return (before.version, before.spec.specification_json) != (
        after.version,
        after.spec.specification_json,
    )


def state_change_delivers(
    catalog: Catalog, before: EndpointState | None, after: EndpointState | None, now: datetime
) -> bool:
    """Whether a change of what otao knows of an endpoint (a consent, a filter) changes the
    update it is to be offered (``delivery_changed`` for one endpoint, one catalog)."""
    return delivery_changed(
        select(catalog, EndpointFacts.of(before, None), now),
        select(catalog, EndpointFacts.of(after, None), now),
    )


def explain(
    catalog: Catalog,
    facts: EndpointFacts,
    now: datetime,
    gates: Mapping[str, GateState] | None = None,
) -> Explanation:
    """Step 6: a verdict and a reason for every definition of the application."""
    current = facts.current_version
    consent_required = catalog.settings.consent_required
    selected = select(catalog, facts, now)
    verdicts: list[Verdict] = []
    for definition in catalog.definitions:
        version = definition.version
        if definition.rollout_strategy is RolloutStrategy.SUSPENDED:
            verdicts.append(Verdict(version, VerdictKind.SUSPENDED, "the rollout is suspended"))
        elif current is not None and current not in definition.upgradable_from:
            verdicts.append(
                Verdict(
                    version,
                    VerdictKind.NOT_IN_GRAPH,
                    f"not upgradable from the endpoint's version {current}",
                )
            )
        elif definition is selected:
            verdicts.append(
                Verdict(version, VerdictKind.SELECTED, "the highest deliverable version")
            )
        else:
            reason = blocker(definition, facts, consent_required, now, gates)
            verdicts.append(
                reason
                or Verdict(
                    version,
                    VerdictKind.LOWER_THAN_SELECTED,
                    f"lower than the selected version {selected.version if selected else ''}",
                )
            )
    believed = facts.filters or frozenset()
    beliefs = tuple(
        sorted(
            (b for b in facts.filter_beliefs if b.filter_id in believed),
            key=lambda b: b.filter_id,
        )
    )
    return Explanation(current, selected, tuple(verdicts), beliefs)
