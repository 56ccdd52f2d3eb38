"""Resolution under a rollout plan: the open waves decide who is offered, pause holds all."""

from __future__ import annotations

from dataclasses import replace

from otao.domain.models import EndpointState, Software
from otao.domain.push import deliveries
from otao.domain.resolution import EndpointFacts, VerdictKind, explain, select
from otao.domain.rollout_plan import RolloutPlan, Wave, bucket, wave_for
from otao.domain.rollout_progress import GateState
from otao.domain.rollout_state import RolloutState
from tests.domain.builders import NOW, catalog, software

PLAN = RolloutPlan(waves=(Wave(10, min_reports=5), Wave(100)))
ENDPOINTS = [f"ep-{n:04d}" for n in range(1000)]


def planned(state: RolloutState) -> Software:
    base = software("2.0.0", "1.0.0")
    return replace(base, spec=replace(base.spec, rollout_plan=PLAN), rollout=state)


def offered(definition: Software) -> set[str]:
    built = catalog(definition)
    return {
        e
        for e in ENDPOINTS
        if select(built, EndpointFacts(current_version="1.0.0", endpoint_id=e), NOW)
    }


def test_only_the_open_wave_is_offered_and_it_is_the_waves_own_endpoints() -> None:
    first = offered(planned(RolloutState.started(NOW)))
    assert 70 <= len(first) <= 130
    assert first == {e for e in ENDPOINTS if wave_for(PLAN, "app", e, "2.0.0") == 0}


def test_opening_the_next_wave_adds_endpoints_and_drops_none() -> None:
    state = RolloutState.started(NOW)
    first = offered(planned(state))
    both = offered(planned(state.advanced("alice", NOW)))
    assert first < both
    assert both == set(ENDPOINTS)


def test_a_paused_rollout_offers_nothing_and_says_who_paused_it() -> None:
    definition = planned(RolloutState.started(NOW).with_pause(True, "alice", NOW))
    assert offered(definition) == set()
    facts = EndpointFacts(current_version="1.0.0", endpoint_id=ENDPOINTS[0])
    (verdict,) = explain(catalog(definition), facts, NOW).verdicts
    assert verdict.kind is VerdictKind.ROLLOUT_PAUSED
    assert "alice" in verdict.reason


def test_an_endpoint_of_a_later_wave_is_told_its_wave_the_open_wave_and_the_gate() -> None:
    definition = planned(RolloutState.started(NOW))
    later = next(e for e in ENDPOINTS if wave_for(PLAN, "app", e, "2.0.0") == 1)
    facts = EndpointFacts(current_version="1.0.0", endpoint_id=later)
    gate = GateState(False, "3 of 5 reports needed")
    (verdict,) = explain(catalog(definition), facts, NOW, {"2.0.0": gate}).verdicts
    assert verdict.kind is VerdictKind.NOT_IN_OPEN_WAVE
    assert verdict.reason == (
        "the endpoint is in wave 1 (100%), which opens next; open: wave 0 (10%); "
        "gate: 3 of 5 reports needed"
    )


def test_a_wave_opening_pushes_exactly_the_endpoints_it_newly_includes() -> None:
    # Endpoints alike in every fact but their wave: deliveries must tell them apart.
    state = RolloutState.started(NOW)
    states = [EndpointState("t", "app", e, current_version="1.0.0") for e in ENDPOINTS]
    pushed = deliveries(
        catalog(planned(state)), catalog(planned(state.advanced("alice", NOW))), states, NOW
    )
    assert {s.endpoint_id for s, _ in pushed} == {
        e for e in ENDPOINTS if wave_for(PLAN, "app", e, "2.0.0") == 1
    }


def test_a_push_under_a_plan_with_every_wave_open_places_no_endpoint_in_a_wave() -> None:
    # Every wave open before and after (a new version beside it): waves decide nothing, so
    # no endpoint id is hashed, and every endpoint is one kind of endpoint.
    everyone = RolloutState.started(NOW).advanced("alice", NOW)
    other = software("2.1.0", "1.0.0")
    states = [EndpointState("t", "app", f"open-{e}", current_version="1.0.0") for e in ENDPOINTS]
    hashed = bucket.cache_info().misses
    pushed = deliveries(catalog(planned(everyone)), catalog(planned(everyone), other), states, NOW)
    assert bucket.cache_info().misses == hashed
    assert {s.endpoint_id for s, _ in pushed} == {s.endpoint_id for s in states}
    assert {o.version for _, o in pushed} == {"2.1.0"}
