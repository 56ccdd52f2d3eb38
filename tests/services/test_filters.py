"""Targeted rollouts fed by Kaa EPR: 18/EFE events and 20/EFMP queries over real NATS + Avro.

A CMX peer polls and listens for pushes (6/CDTP); an EPR peer publishes filter events and
answers (or ignores) membership queries; operators act through REST via Envoy.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import nats
import pytest

from otao.domain.applications import ApplicationConfig
from otao.domain.models import FilterSource
from otao.messaging.records import EndpointFiltersResponse
from otao.messaging.subjects import efmp_reply_subject
from tests.support.cmx import CmxPeer, pushed
from tests.support.epr import EprPeer
from tests.support.eventually import eventually
from tests.support.operator import (
    create_software,
    patch_software,
    pushes_done,
    recorded,
    settled,
    stored,
    until,
)
from tests.support.otao import RunningOtao, start_otao
from tests.support.rig import Rig
from tests.support.software import define, define_targeted
from tests.support.stack import MongoServer, NatsServer

pytestmark = pytest.mark.timeout(30)


async def beta_rollout(rest: httpx.AsyncClient, application: ApplicationConfig) -> None:
    """1.1.0, upgradable from 1.0.0, targeted at the filter beta."""
    await create_software(
        rest, application.name, "1.1.0", ["1.0.0"], "targeted", [{"filterId": "beta"}]
    )


async def test_targeted_definition_is_pulled_only_by_endpoints_in_a_listed_filter(
    cmx: CmxPeer, epr: EprPeer, rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    app_version = application.app_versions[0]
    epr.membership = {"ep-in": ["beta"], "ep-other": ["gamma"]}
    await beta_rollout(rest, application)

    assert (await cmx.request(app_version, "ep-in", "1.0.0")).config_id == "1.1.0"
    assert (await cmx.request(app_version, "ep-other", "1.0.0")).config_id is None
    # EPR knows no filter of this one: it matches none, never all.
    assert (await cmx.request(app_version, "ep-none", "1.0.0")).config_id is None


async def test_widening_a_targeted_rollout_pushes_only_to_endpoints_of_the_added_filter(
    rig: Rig,
) -> None:
    rig.epr.membership = {"ep-beta": ["beta"], "ep-gamma": ["gamma"], "ep-none": []}
    await create_software(
        rig.rest, rig.application.name, "1.1.0", ["1.0.0"], "targeted", [{"filterId": "alpha"}]
    )
    for endpoint_id in rig.epr.membership:
        assert (await rig.cmx.request(rig.app_version, endpoint_id, "1.0.0")).config_id is None
        await recorded(rig.otao, rig.application.name, endpoint_id)

    await patch_software(
        rig.rest,
        rig.application.name,
        "1.1.0",
        filters=[{"filterId": "alpha"}, {"filterId": "beta"}],
    )

    await rig.cmx.wait_for(lambda: bool([u for u in rig.cmx.updates if u.endpoint_id == "ep-beta"]))
    await settled(rig.otao, rig.cmx)  # every push the change made has arrived
    assert pushed(rig.cmx, rig.app_version, "ep-beta") == ["1.1.0"]
    assert pushed(rig.cmx, rig.app_version, "ep-gamma") == []
    assert pushed(rig.cmx, rig.app_version, "ep-none") == []


async def events_handled(otao: RunningOtao, epr: EprPeer, application: ApplicationConfig) -> None:
    """Every EPR event published so far is handled: otao handles the events of one
    subscription in order, so once a probe event sent now is stored, those before it are."""
    probe = f"ep-probe-{uuid.uuid4().hex[:8]}"
    await epr.matched(application.name, application.app_versions[0], "probe", probe)

    async def probe_stored() -> bool:
        state = await stored(otao, application.name, probe)
        return state is not None and "probe" in (state.filters or ())

    await until(probe_stored, "the probe event handled")


async def test_ep_matched_for_a_listed_filter_pushes_the_update_to_that_endpoint(rig: Rig) -> None:
    await beta_rollout(rig.rest, rig.application)
    assert (await rig.cmx.request(rig.app_version, "ep-joins", "1.0.0")).config_id is None
    await recorded(rig.otao, rig.application.name, "ep-joins")
    await pushes_done(rig.otao)

    await rig.epr.matched(rig.application.name, rig.app_version, "beta", "ep-joins")
    await rig.cmx.wait_for(
        lambda: bool([u for u in rig.cmx.updates if u.endpoint_id == "ep-joins"]), 5
    )
    assert pushed(rig.cmx, rig.app_version, "ep-joins") == ["1.1.0"]
    assert (await rig.cmx.request(rig.app_version, "ep-joins", "1.0.0")).config_id == "1.1.0"


async def test_ep_matched_for_a_filter_no_definition_lists_pushes_nothing(rig: Rig) -> None:
    await beta_rollout(rig.rest, rig.application)
    assert (await rig.cmx.request(rig.app_version, "ep-elsewhere", "1.0.0")).config_id is None
    await recorded(rig.otao, rig.application.name, "ep-elsewhere")

    await rig.epr.matched(rig.application.name, rig.app_version, "gamma", "ep-elsewhere")

    async def joined() -> bool:
        state = await stored(rig.otao, rig.application.name, "ep-elsewhere")
        return state is not None and "gamma" in (state.filters or ())

    await until(joined, "membership of gamma stored")
    await events_handled(rig.otao, rig.epr, rig.application)
    await settled(rig.otao, rig.cmx)
    assert pushed(rig.cmx, rig.app_version, "ep-elsewhere") == []


async def test_ep_matched_for_an_endpoint_never_asked_about_pushes_the_update(rig: Rig) -> None:
    """otao saw the endpoint before any targeted definition, so it never asked EPR."""
    assert (await rig.cmx.request(rig.app_version, "ep-fresh", "1.0.0")).config_id is None
    await recorded(rig.otao, rig.application.name, "ep-fresh")
    await beta_rollout(rig.rest, rig.application)
    await pushes_done(rig.otao)  # the creation's own push job: nothing for ep-fresh yet

    await rig.epr.matched(rig.application.name, rig.app_version, "beta", "ep-fresh")

    await rig.cmx.wait_for(
        lambda: bool([u for u in rig.cmx.updates if u.endpoint_id == "ep-fresh"]), 5
    )
    assert pushed(rig.cmx, rig.app_version, "ep-fresh") == ["1.1.0"]


async def test_unmatched_endpoint_stops_getting_the_targeted_update(rig: Rig) -> None:
    rig.epr.membership = {"ep-leaves": ["beta"], "ep-stays": ["beta"]}
    await beta_rollout(rig.rest, rig.application)
    for endpoint_id in rig.epr.membership:
        assert (await rig.cmx.request(rig.app_version, endpoint_id, "1.0.0")).config_id == "1.1.0"
        await recorded(rig.otao, rig.application.name, endpoint_id)

    await rig.epr.unmatched(rig.application.name, rig.app_version, "beta", "ep-leaves")

    async def left() -> bool:
        return (await rig.cmx.request(rig.app_version, "ep-leaves", "1.0.0")).config_id is None

    await until(left, "ep-leaves no longer offered 1.1.0")
    # A new specification is pushed to the filter's endpoints: not to the one that left.
    await patch_software(
        rig.rest, rig.application.name, "1.1.0", specification={"image": "fixed.bin"}
    )
    await rig.cmx.wait_for(
        lambda: bool([u for u in rig.cmx.updates if u.endpoint_id == "ep-stays"])
    )
    await settled(rig.otao, rig.cmx)
    assert pushed(rig.cmx, rig.app_version, "ep-leaves") == []
    assert (await rig.cmx.request(rig.app_version, "ep-stays", "1.0.0")).config_id == "1.1.0"


async def test_deleted_filter_drops_its_memberships_in_that_application_only(rig: Rig) -> None:
    other = rig.otao.add_application()
    rig.epr.membership = {"ep-d1": ["beta", "gamma"], "ep-d2": ["beta"], "ep-o": ["beta"]}
    for app in (rig.application.name, other.name):
        await create_software(rig.rest, app, "1.1.0", ["1.0.0"], "targeted", [{"filterId": "beta"}])
    for endpoint_id in ("ep-d1", "ep-d2"):
        assert (await rig.cmx.request(rig.app_version, endpoint_id, "1.0.0")).config_id == "1.1.0"
    assert (await rig.cmx.request(other.app_versions[0], "ep-o", "1.0.0")).config_id == "1.1.0"

    await rig.epr.deleted(rig.application.name, "beta")

    async def dropped() -> bool:
        states = [await stored(rig.otao, rig.application.name, e) for e in ("ep-d1", "ep-d2")]
        return all(s is not None and "beta" not in (s.filters or ()) for s in states)

    await until(dropped, "beta dropped from the application's endpoints")
    d1 = await stored(rig.otao, rig.application.name, "ep-d1")
    assert d1 is not None and d1.filters == frozenset({"gamma"})
    for endpoint_id in ("ep-d1", "ep-d2"):
        assert (await rig.cmx.request(rig.app_version, endpoint_id, "1.0.0")).config_id is None
    kept = await stored(rig.otao, other.name, "ep-o")
    assert kept is not None and kept.filters == frozenset({"beta"})
    assert (await rig.cmx.request(other.app_versions[0], "ep-o", "1.0.0")).config_id == "1.1.0"


async def test_membership_is_asked_of_epr_on_first_sight_then_cached(rig: Rig) -> None:
    rig.epr.membership = {"ep-c": ["beta"]}
    await create_software(rig.rest, rig.application.name, "1.0.1", ["0.9.0"], "general")
    await beta_rollout(rig.rest, rig.application)

    # Only a general candidate (or none): no reason to ask EPR.
    assert (await rig.cmx.request(rig.app_version, "ep-g", "0.9.0")).config_id == "1.0.1"
    assert (await rig.cmx.request(rig.app_version, "ep-g", "2.0.0")).config_id is None
    assert rig.epr.requests_for("ep-g") == 0

    assert (await rig.cmx.request(rig.app_version, "ep-c", "1.0.0")).config_id == "1.1.0"
    assert rig.epr.requests_for("ep-c") == 1
    assert rig.epr.reply_subjects == [efmp_reply_subject(rig.otao.settings.replica_id)]
    assert (await rig.cmx.request(rig.app_version, "ep-c", "1.0.0")).config_id == "1.1.0"
    assert (await rig.cmx.request(rig.app_version, "ep-c", "1.0.0")).config_id == "1.1.0"
    assert rig.epr.requests_for("ep-c") == 1
    state = await stored(rig.otao, rig.application.name, "ep-c")
    assert state is not None and state.filters == frozenset({"beta"})


async def test_silent_epr_means_no_delivery_no_hang_and_a_later_poll_asks_again(rig: Rig) -> None:
    timeout = rig.otao.settings.kaa.efmp_timeout_seconds
    rig.epr.membership = {"ep-s": ["beta"], "ep-busy": ["beta"]}
    rig.epr.silent = {"ep-s"}
    await beta_rollout(rig.rest, rig.application)

    silent_poll = asyncio.create_task(
        rig.cmx.request(rig.app_version, "ep-s", "1.0.0", timeout + 3)
    )
    # Another endpoint's poll is not held up by the unanswered query.
    other = await rig.cmx.request(rig.app_version, "ep-busy", "1.0.0")
    assert other.config_id == "1.1.0"
    assert not silent_poll.done()

    silent = await silent_poll
    assert (silent.status_code, silent.config_id) == (200, None)
    assert rig.epr.requests_for("ep-s") == 1
    state = await stored(rig.otao, rig.application.name, "ep-s")
    assert state is None or state.filters is None  # nothing learned, nothing assumed

    rig.epr.silent = set()
    assert (await rig.cmx.request(rig.app_version, "ep-s", "1.0.0")).config_id == "1.1.0"
    assert rig.epr.requests_for("ep-s") == 2


@pytest.fixture
async def otao_without_epr_queries(
    nats_server: NatsServer, mongo_server: MongoServer
) -> AsyncIterator[RunningOtao]:
    """An otao of its own (own instance names, so no other test's peer hears it) whose EPR
    publishes 18/EFE events but serves no 20/EFMP: NATS answers its queries "no responders"."""
    suffix = uuid.uuid4().hex[:8]
    running = await start_otao(
        nats_server.url, mongo_server.uri, kaa={"otao": f"otao-{suffix}", "epr": f"epr-{suffix}"}
    )
    yield running
    await running.stop()


async def test_without_efmp_ep_matched_alone_pushes_and_no_poll_waits_for_epr(
    otao_without_epr_queries: RunningOtao, nats_server: NatsServer
) -> None:
    otao = otao_without_epr_queries
    names = otao.settings.kaa
    membership = otao.app.components.broker.membership
    application = otao.add_application()
    app_version = application.app_versions[0]
    cmx = await CmxPeer.connect(nats_server.url, otao=names.otao)
    # EPR's events only: this peer never subscribes to the EFMP request subject.
    epr = EprPeer(await nats.connect(nats_server.url), names.epr)
    try:
        async with grpc.aio.insecure_channel(otao.grpc_target) as channel:
            await define(channel, application.name, "1.0.1", ["1.0.0"])
            await define_targeted(channel, application.name, "1.1.0", ["1.0.0"], "beta")
        first = [await cmx.request(app_version, f"ep-{i}", "1.0.0") for i in range(5)]
        assert [r.config_id for r in first] == ["1.0.1"] * 5
        # The first query learned at once that nobody serves EFMP; the others were not asked.
        assert membership.no_responders == 1
        assert membership.asked == 1
        assert membership.skipped_absent == 4
        await recorded(otao, application.name, "ep-0")
        await pushes_done(otao)

        await epr.matched(application.name, app_version, "beta", "ep-0")

        await cmx.wait_for(lambda: bool(cmx.updates_for("ep-0")), 5)
        assert [u.config_id for u in cmx.updates_for("ep-0")] == ["1.1.0"]
        assert (await cmx.request(app_version, "ep-0", "1.0.0")).config_id == "1.1.0"
        assert (await cmx.request(app_version, "ep-1", "1.0.0")).config_id == "1.0.1"
        state = await stored(otao, application.name, "ep-0")
        assert state is not None and state.filters == frozenset({"beta"})
        assert [(b.filter_id, b.source) for b in state.filter_beliefs] == [
            ("beta", FilterSource.EFE)
        ]
        # Counted, not timed: no poll (nor the event) waited for the EFMP timeout.
        assert membership.waited_out == 0
    finally:
        await cmx.close()
        await epr.close()


async def test_a_late_efmp_answer_without_the_correlation_id_is_merged_with_newer_events(
    rig: Rig,
) -> None:
    await create_software(
        rig.rest, rig.application.name, "1.1.0", ["1.0.0"], "targeted", [{"filterId": "gamma"}]
    )
    rig.epr.silent = {"ep-m"}  # answered by hand below, late
    poll = asyncio.create_task(rig.cmx.request(rig.app_version, "ep-m", "1.0.0"))
    await eventually(lambda: rig.epr.requests_for("ep-m") >= 1, "EFMP question asked")
    question = next(r for r in rig.epr.requests if r.endpoint_id == "ep-m")

    # While the question is out, EPR says the endpoint joined gamma.
    await rig.epr.matched(rig.application.name, rig.app_version, "gamma", "ep-m")

    async def fact_stored() -> bool:
        state = await stored(rig.otao, rig.application.name, "ep-m")
        return state is not None and "gamma" in (state.filters or ())

    await until(fact_stored, "the ep-matched fact stored")
    # EPR's answer, computed before the event (no gamma), and without echoing correlationId.
    stale = EndpointFiltersResponse(
        correlation_id="",
        timestamp=int(time.time() * 1000),
        endpoint_id="ep-m",
        filter_ids=("beta",),
        status_code=200,
    )
    await rig.epr.client.publish(
        efmp_reply_subject(rig.otao.settings.replica_id), rig.epr.codec.encode(stale)
    )

    answer = await poll
    assert answer.config_id == "1.1.0"  # gamma survived the stale answer
    state = await stored(rig.otao, rig.application.name, "ep-m")
    assert state is not None and state.filters == frozenset({"beta", "gamma"})
    sources = {b.filter_id: b.source for b in state.filter_beliefs}
    assert sources == {"beta": FilterSource.EFMP, "gamma": FilterSource.EFE}
    assert question.correlation_id != stale.correlation_id
    explained = await rig.rest.get(
        f"/api/v1/applications/{rig.application.name}/endpoints/ep-m/software:explain"
    )
    assert explained.status_code == 200, explained.text
    beliefs = explained.json()["filters"]
    assert {(b["filterId"], b["source"]) for b in beliefs} == {("beta", "efmp"), ("gamma", "efe")}
    assert all(b["since"].endswith("Z") for b in beliefs)


async def test_a_filter_without_a_rollout_date_is_listed_without_one(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    await create_software(
        rest,
        application.name,
        "1.1.0",
        ["1.0.0"],
        "targeted",
        [{"filterId": "beta"}, {"filterId": "gamma", "rolloutDate": "2030-01-01T00:00:00Z"}],
    )
    listed = await rest.get(f"/api/v1/applications/{application.name}/software")
    assert listed.status_code == 200, listed.text
    assert listed.json()[0]["filters"] == [
        {"filterId": "beta"},
        {"filterId": "gamma", "rolloutDate": "2030-01-01T00:00:00Z"},
    ]


async def test_ep_matched_for_an_endpoint_never_seen_keeps_the_fact_but_makes_no_known_endpoint(
    rig: Rig,
) -> None:
    await beta_rollout(rig.rest, rig.application)

    await rig.epr.matched(rig.application.name, rig.app_version, "beta", "ep-unseen")
    await events_handled(rig.otao, rig.epr, rig.application)
    await settled(rig.otao, rig.cmx)

    assert pushed(rig.cmx, rig.app_version, "ep-unseen") == []
    listed = await rig.rest.get(f"/api/v1/applications/{rig.application.name}/endpoints")
    assert listed.status_code == 200, listed.text
    assert "ep-unseen" not in [e["endpointId"] for e in listed.json().get("endpoints", [])]
    # Its first poll gets the targeted update: the fact was kept.
    assert (await rig.cmx.request(rig.app_version, "ep-unseen", "1.0.0")).config_id == "1.1.0"
