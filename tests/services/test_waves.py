"""Staged rollouts through the real doors: waves over stable cohorts, gates that open the next
wave by themselves (or wait for rollout:advance), pause, A/B fallbacks, stuck endpoints, and
one advance per wave across replicas (docs/rollouts.md)."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import pytest
from kaa.otao.v1 import rollout_pb2, rollout_pb2_grpc

from otao.domain.applications import ApplicationConfig
from otao.domain.models import Caller
from otao.domain.rollout_plan import RolloutPlan, RolloutPlanInput, Wave, WaveInput, wave_for
from otao.domain.rollout_progress import budget_window
from otao.domain.validation import SoftwareInput
from tests.support.cmx import CmxPeer
from tests.support.epr import EprPeer
from tests.support.operator import (
    APPS,
    audit,
    explain,
    ok,
    rollout_status,
    settled,
    until,
)
from tests.support.otao import RunningOtao, start_otao
from tests.support.rest import definition
from tests.support.software import define_targeted
from tests.support.stack import MongoServer, NatsServer

pytestmark = pytest.mark.timeout(90)

FLEET = [f"ep-{n:04d}" for n in range(1000)]
# Recording FLEET's sightings (one write each, off the poll path) takes seconds on a loaded
# machine: the waits for them are bounded by this, a hang bound rather than a latency.
FLEET_SETTLES = 45.0


async def create_planned(
    rest: httpx.AsyncClient, application: str, plan: dict[str, Any], version: str = "1.1.0"
) -> dict[str, Any]:
    body = definition(version, rolloutPlan=plan)
    created: dict[str, Any] = ok(await rest.post(f"{APPS}/{application}/software", json=body))
    return created


def one_wave(**settings: int) -> dict[str, Any]:
    """A plan of one wave of everyone (the gates not in play), with these plan settings."""
    return {"waves": [{"percent": 100}], **settings}


async def poll_all(
    cmx: CmxPeer, app_version: str, endpoints: list[str], config_id: str
) -> set[str]:
    """Every endpoint polls (50 at a time); the ones offered 1.1.0."""
    offered: set[str] = set()
    for start in range(0, len(endpoints), 50):
        chunk = endpoints[start : start + 50]
        answers = await asyncio.gather(*(cmx.request(app_version, e, config_id) for e in chunk))
        offered |= {e for e, a in zip(chunk, answers, strict=True) if a.config_id == "1.1.0"}
    return offered


def wave_of(application: str, endpoint_id: str, percents: tuple[int, ...]) -> int:
    plan = RolloutPlan(waves=tuple(Wave(p) for p in percents))
    return wave_for(plan, application, endpoint_id, "1.1.0")


async def current_wave(rest: httpx.AsyncClient, application: str) -> int:
    return int((await rollout_status(rest, application, "1.1.0"))["currentWave"])


async def test_a_first_wave_of_ten_percent_offers_to_the_same_tenth_and_opens_the_next_itself(
    otao: RunningOtao, cmx: CmxPeer, rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    app_version = application.app_versions[0]
    plan = {
        "waves": [{"percent": 10, "minReports": 20, "minSuccessRatio": 0.9}, {"percent": 100}],
        "confirmSeconds": 600,
    }
    created = await create_planned(rest, application.name, plan)
    assert created["rolloutPlan"]["waves"][0]["percent"] == 10
    # The create's own push is done before any endpoint is known: worked late (the session's
    # worker busy with earlier tests' jobs), it would push the wave-0 endpoints polled by then.
    await settled(otao, cmx)

    first = await poll_all(cmx, app_version, FLEET, "1.0.0")
    # About a tenth. The application's name is new each run, so the count is binomial
    # (1000, 0.1; sd 9.5): +/- 60 cannot fail by chance (6 sd), an all-or-nothing bucketing
    # still does. The exact shares are the domain tests' (fixed names); the next line checks
    # the door offers exactly the plan's wave 0.
    assert 40 <= len(first) <= 160
    assert first == {e for e in FLEET if wave_of(application.name, e, (10, 100)) == 0}
    assert await poll_all(cmx, app_version, FLEET, "1.0.0") == first  # the same on a repoll
    later = sorted(set(FLEET) - first)
    verdicts = await explain(rest, application.name, later[0])
    assert verdicts["1.1.0"] == "not_in_open_wave"
    await settled(otao, cmx, FLEET_SETTLES)
    assert await current_wave(rest, application.name) == 0

    # Applied and confirmed by the next poll: committed, and the gate opens wave 1.
    for endpoint_id in sorted(first):
        await cmx.applied(app_version, endpoint_id, "1.1.0")
    await until(lambda: _committable(otao, application.name, len(first)), "reports recorded", 20)
    await poll_all(cmx, app_version, sorted(first), "1.1.0")
    await until(lambda: _opened(rest, application.name, 1), "wave 1 opened", 20)

    async def all_committed() -> bool:
        status = await rollout_status(rest, application.name, "1.1.0")
        return int(status["waves"][0]["committed"]) == len(first)

    # The gate opened on the first 20 confirmations; the rest are recorded by now or soon.
    await until(all_committed, "every confirming poll recorded", 20)
    status = await rollout_status(rest, application.name, "1.1.0")
    assert [w["state"] for w in status["waves"]] == ["done", "open"]
    entries = (await audit(rest, application.name))["entries"]
    advances = [e for e in entries if e["action"] == "rollout.advance"]
    assert [e["actor"] for e in advances] == ["system"]

    # The endpoints wave 1 newly includes get a push, and only they.
    await until(lambda: _pushed(otao, cmx, app_version, set(later)), "wave 1 pushed", 20)
    assert not {u.endpoint_id for u in cmx.updates if u.app_version_name == app_version} & first


async def _committable(otao: RunningOtao, application: str, reports: int) -> bool:
    states = await otao.app.components.storage.endpoints.page(
        "default", application, None, None, len(FLEET)
    )
    return sum(1 for s in states for i in s.installs if i.version == "1.1.0") >= reports


async def _opened(rest: httpx.AsyncClient, application: str, wave: int) -> bool:
    return await current_wave(rest, application) >= wave


async def _pushed(otao: RunningOtao, cmx: CmxPeer, app_version: str, expected: set[str]) -> bool:
    await settled(otao, cmx, FLEET_SETTLES)
    got = {u.endpoint_id for u in cmx.updates if u.app_version_name == app_version}
    return expected <= got


async def test_a_manual_plan_waits_for_advance_and_pause_holds_every_offer(
    otao: RunningOtao, cmx: CmxPeer, rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    app_version = application.app_versions[0]
    plan = {"waves": [{"percent": 10}, {"percent": 100}], "advance": "manual"}
    await create_planned(rest, application.name, plan)
    fleet = FLEET[:200]
    first = await poll_all(cmx, app_version, fleet, "1.0.0")
    rollout = f"{APPS}/{application.name}/software/1.1.0/rollout"

    status = await rollout_status(rest, application.name, "1.1.0")
    assert status["gate"]["met"] is True
    assert "waits for rollout:advance" in status["gate"]["reason"]
    # A fleet this small is counted for every read: the counts are as of now.
    opened = datetime.fromisoformat(status["waves"][0]["openedAt"])
    assert datetime.fromisoformat(status["countedAt"]) >= opened
    assert datetime.fromisoformat(status["outcomesCountedAt"]) >= opened
    await otao.app.components.services.waves.judge("default", application.name, "1.1.0")
    assert await current_wave(rest, application.name) == 0  # met, but manual

    paused = ok(await rest.post(f"{rollout}:pause", json={}))
    assert paused["paused"] is True
    assert await poll_all(cmx, app_version, fleet, "1.0.0") == set()
    assert (await explain(rest, application.name, sorted(first)[0]))["1.1.0"] == "rollout_paused"
    ok(await rest.post(f"{rollout}:resume", json={}))
    assert await poll_all(cmx, app_version, fleet, "1.0.0") == first

    advanced = ok(await rest.post(f"{rollout}:advance", json={}))
    assert advanced["currentWave"] == 1
    assert await poll_all(cmx, app_version, fleet, "1.0.0") == set(fleet)
    last = await rest.post(f"{rollout}:advance", json={})
    assert last.status_code == 400, last.text  # FAILED_PRECONDITION: the last wave is open
    actions = [e["action"] for e in (await audit(rest, application.name))["entries"]]
    assert actions[:3] == ["rollout.advance", "rollout.resume", "rollout.pause"]


async def test_success_then_a_poll_with_the_old_version_is_a_rollback_never_offered_again(
    otao: RunningOtao, cmx: CmxPeer, rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    app_version = application.app_versions[0]
    await create_planned(rest, application.name, one_wave())
    assert (await cmx.request(app_version, "kettle-1", "1.0.0")).config_id == "1.1.0"
    await settled(otao, cmx)
    await cmx.applied(app_version, "kettle-1", "1.1.0")
    await until(lambda: _committable(otao, application.name, 1), "the success report recorded")
    # The device fell back to its A slot: it polls naming 1.0.0 again.
    assert (await cmx.request(app_version, "kettle-1", "1.0.0")).config_id is None
    await settled(otao, cmx)
    status = await rollout_status(rest, application.name, "1.1.0")
    assert int(status["waves"][0]["rolledBack"]) == 1
    assert (await cmx.request(app_version, "kettle-1", "1.0.0")).config_id is None
    assert (await explain(rest, application.name, "kettle-1"))["1.1.0"] == "previously_failed"
    # An operator clears it: offered again.
    cleared = await rest.delete(f"{APPS}/{application.name}/endpoints/kettle-1/failures/1.1.0")
    assert cleared.status_code == 200, cleared.text
    assert (await cmx.request(app_version, "kettle-1", "1.0.0")).config_id == "1.1.0"


async def test_a_report_from_an_endpoint_whose_offer_went_unrecorded_still_counts(
    otao: RunningOtao, cmx: CmxPeer, rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    app_version = application.app_versions[0]
    await create_planned(rest, application.name, one_wave())
    await settled(otao, cmx)
    # It reports 1.1.0 without otao having recorded an offer of it (lost in a crash).
    await cmx.applied(app_version, "stray-1", "1.1.0")

    async def counted() -> bool:
        status = await rollout_status(rest, application.name, "1.1.0")
        return int(status["waves"][0]["applied"]) == 1

    await until(counted, "the report counted as the wave's", 10)


async def test_an_offered_endpoint_without_a_report_in_time_has_timed_out(
    otao: RunningOtao, cmx: CmxPeer, rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    app_version = application.app_versions[0]
    await create_planned(rest, application.name, one_wave(applyTimeoutSeconds=1))
    assert (await cmx.request(app_version, "stuck-1", "1.0.0")).config_id == "1.1.0"
    await settled(otao, cmx)

    async def timed_out() -> bool:
        status = await rollout_status(rest, application.name, "1.1.0")
        return int(status["waves"][0]["timedOut"]) == 1

    await until(timed_out, "stuck-1 timed out", 10)


async def test_a_bad_plan_is_refused_naming_the_field(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    plan = {"waves": [{"percent": 50}, {"percent": 40}, {"percent": 100}]}
    body = definition("1.1.0", specification={}, rolloutPlan=plan)
    refused = await rest.post(f"{APPS}/{application.name}/software", json=body)
    assert refused.status_code == 400
    fields = [v["field"] for d in refused.json()["details"] for v in d["fieldViolations"]]
    assert fields == ["rolloutPlan.waves[1].percent"]
    assert (await rest.get(f"{APPS}/{application.name}/software/1.1.0")).status_code == 404


async def test_two_replicas_open_each_wave_once_and_a_restart_keeps_the_rollout(
    nats_server: NatsServer, mongo_server: MongoServer
) -> None:
    database = f"otao_{secrets.token_hex(4)}"
    replicas = [await start_otao(nats_server.url, mongo_server.uri, database) for _ in range(2)]
    try:
        name = f"app-{secrets.token_hex(4)}"
        for replica in replicas:
            replica.add_application(name)
        caller = replicas[0].app.components.services.software
        plan = RolloutPlanInput(waves=[WaveInput(10), WaveInput(50), WaveInput(100)])
        await caller.create(
            Caller("default", "alice"),
            name,
            SoftwareInput(
                version="1.1.0",
                upgradable_from=["1.0.0"],
                specification={},
                has_specification=True,
                rollout_strategy="general",
                rollout_plan=plan,
            ),
        )
        # Both replicas judge the same gates (no reports needed, no soak) at once.
        for _ in range(3):
            await asyncio.gather(
                *(r.app.components.services.waves.judge("default", name, "1.1.0") for r in replicas)
            )
        entries, _ = await replicas[0].app.components.services.audit.page(
            Caller("default", "alice"), name, 100, ""
        )
        advances = [e for e in entries if e.action == "rollout.advance"]
        assert sorted(int(str(e.details["currentWave"])) for e in advances) == [1, 2]
        await replicas[1].stop()
        replicas.pop()
        await replicas[0].stop()
        replicas.pop()
        restarted = await start_otao(nats_server.url, mongo_server.uri, database)
        replicas.append(restarted)
        restarted.add_application(name)
        progress = await restarted.app.components.services.waves.progress("default", name, "1.1.0")
        assert progress is not None and progress.rollout.current_wave == 2
        assert len(progress.rollout.opened_at) == 3
    finally:
        for replica in replicas:
            await replica.stop()


async def test_the_offer_budget_caps_first_offers_per_minute_and_repeats_are_free(
    otao: RunningOtao, cmx: CmxPeer, rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    app_version = application.app_versions[0]
    await create_planned(rest, application.name, one_wave(maxOffersPerMinute=3))
    # The create's own push done first: worked late (a busy worker), it would push the
    # endpoints polled so far and spend the minute's budget the polls are counted against.
    await settled(otao, cmx)
    fleet = [f"b-{n}" for n in range(10)]
    window = budget_window(datetime.now(UTC))
    offered = await poll_all(cmx, app_version, fleet, "1.0.0")
    if budget_window(datetime.now(UTC)) != window:
        pytest.skip("a minute began during the polls; the budget's window moved")
    assert len(offered) == 3
    await settled(otao, cmx)
    assert await poll_all(cmx, app_version, sorted(offered), "1.0.0") == offered
    held = sorted(set(fleet) - offered)[0]
    found = ok(await rest.get(f"{APPS}/{application.name}/endpoints/{held}/software:explain"))
    (verdict,) = found["verdicts"]
    if budget_window(datetime.now(UTC)) == window:
        assert verdict["verdict"] == "offer_budget_exhausted"
        assert "budget of 3 first offers is used" in verdict["reason"]


async def test_targeted_with_waves_over_grpc_offers_the_open_share_of_the_filters_members(
    otao: RunningOtao, cmx: CmxPeer, epr: EprPeer, application: ApplicationConfig
) -> None:
    app_version = application.app_versions[0]
    fleet = [f"k-{n:03d}" for n in range(100)]
    epr.membership = {e: ["beta"] if n % 2 == 0 else ["gamma"] for n, e in enumerate(fleet)}
    beta = {e for n, e in enumerate(fleet) if n % 2 == 0}
    plan = {"waves": [{"percent": 50}, {"percent": 100}], "advance": "manual"}
    async with grpc.aio.insecure_channel(otao.grpc_target) as channel:
        await define_targeted(
            channel, application.name, "1.1.0", ["1.0.0"], "beta", rolloutPlan=plan
        )
        first = await poll_all(cmx, app_version, fleet, "1.0.0")
        assert first == {e for e in beta if wave_of(application.name, e, (50, 100)) == 0}
        assert 0 < len(first) < len(beta)
        await settled(otao, cmx)

        stub = rollout_pb2_grpc.RolloutServiceStub(channel)
        request = rollout_pb2.AdvanceRolloutRequest(
            application_name=application.name, version="1.1.0"
        )
        status = await stub.AdvanceRollout(request, timeout=10)
        assert status.current_wave == 1
        assert [w.state for w in status.waves] == ["done", "open"]
        assert sum(w.eligible for w in status.waves) == len(beta)
    assert await poll_all(cmx, app_version, fleet, "1.0.0") == beta
