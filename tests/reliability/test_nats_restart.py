"""Fault: nats-server stops and starts again while a CMX peer keeps polling and reporting, and
a push job is half-way. otao reconnects on its own, health follows, CDTP answers resume, the
push job completes, no endpoint gets a version other than the one it is eligible for."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

import grpc
import pytest

from otao.domain.applications import ApplicationConfig
from otao.domain.models import EndpointKey
from tests.reliability.harness import (
    NOT_SERVING,
    SERVING,
    close_quietly,
    connect_cmx,
    dedicated_otao,
    define,
    eventually,
    health,
    set_strategy,
)
from tests.support.cmx import CmxPeer
from tests.support.otao import RunningOtao
from tests.support.stack import MongoServer, NatsServer

pytestmark = pytest.mark.timeout(90)

PUSHED = 40  # endpoints on 1.0.0 that the 2.0.0 rollout is pushed to


async def test_nats_restart_under_load(nats_server: NatsServer, mongo_server: MongoServer) -> None:
    push = {
        "rate_per_second": 20,
        "batch_size": 5,
        "poll_interval_seconds": 0.2,
        "lease_seconds": 3,
    }
    async with dedicated_otao(nats_server.url, mongo_server.uri, push=push) as (otao, names):
        rollout = otao.add_application()
        traffic = otao.add_application()
        cmx = await connect_cmx(nats_server.url, names)
        channel = grpc.aio.insecure_channel(otao.grpc_target)
        try:
            await _scenario(nats_server, otao, rollout, traffic, cmx, channel)
        finally:
            await nats_server.astart()
            await channel.close(None)
            await close_quietly(cmx)


async def _scenario(
    nats_server: NatsServer,
    otao: RunningOtao,
    rollout: ApplicationConfig,
    traffic: ApplicationConfig,
    cmx: CmxPeer,
    channel: grpc.aio.Channel,
) -> None:
    rollout_av, traffic_av = rollout.app_versions[0], traffic.app_versions[0]
    await define(channel, rollout.name, "2.0.0", ["1.0.0"], strategy="suspended")
    await define(channel, traffic.name, "1.1.0", ["1.0.0"])
    endpoints = [f"ep-{i:03d}" for i in range(PUSHED)]
    for endpoint in endpoints:
        await cmx.applied(rollout_av, endpoint, "1.0.0")
    store = otao.app.endpoint_store

    async def all_known() -> bool:
        for endpoint in endpoints:
            state = await store.get(EndpointKey("default", rollout.name, endpoint))
            if state is None or state.current_version != "1.0.0":
                return False
        return True

    await eventually(all_known, 10, "the endpoints' applied reports recorded")

    # Health, sampled continuously.
    samples: list[tuple[float, int | None]] = []
    stop = asyncio.Event()

    async def watch_health() -> None:
        while not stop.is_set():
            samples.append((time.monotonic(), await health(channel, timeout=0.5)))
            await asyncio.sleep(0.05)

    # CDTP load: polls that need the database and applied reports, each from a new endpoint.
    answers: list[tuple[float, int | None, str | None]] = []
    reported: list[tuple[float, str]] = []
    counter = itertools.count()

    async def load() -> None:
        while not stop.is_set():
            n = next(counter)
            endpoint = f"load-{n:05d}"
            try:
                response = await cmx.request(traffic_av, endpoint, config_id="1.0.0", timeout=1.0)
                answers.append((time.monotonic(), response.status_code, response.config_id))
            except TimeoutError:
                answers.append((time.monotonic(), None, None))
            # The peer's own flush fails while the broker is down: such a report is not counted.
            with contextlib.suppress(Exception):
                await cmx.applied(traffic_av, endpoint, "1.0.0")
                reported.append((time.monotonic(), endpoint))
            await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(watch_health()), asyncio.create_task(load())]
    try:
        await eventually(lambda: len(answers) >= 20, 10, "traffic flowing before the restart")
        updated = await set_strategy(channel, rollout.name, "2.0.0", "general")
        assert updated.rollout_strategy == "general"
        await eventually(
            lambda: len([u for u in cmx.updates if u.app_version_name == rollout_av]) >= 5,
            10,
            "the push job under way",
        )
        assert await otao.app.push_jobs.pending_count() == 1, "the job must be mid-way"

        outage_start = time.monotonic()
        await nats_server.astop()
        await asyncio.sleep(1.5)
        await nats_server.astart()
        outage_end = time.monotonic()

        await eventually(lambda: otao.app.health.serving, 15, "otao serving again")
        await eventually(
            lambda: sum(1 for t, s, _ in answers if t > outage_end and s == 200) >= 20,
            15,
            "CDTP answers resumed after the restart",
        )
        await eventually(lambda: _no_pending_job(otao), 25, "the push job finished")
        await eventually(
            lambda: any(t > outage_end + 1.5 for t, _ in reported), 10, "reports after the restart"
        )
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    # Health: SERVING before, NOT_SERVING during the outage, SERVING after.
    before = [s for t, s in samples if t < outage_start]
    during = [s for t, s in samples if outage_start + 0.6 < t < outage_end]
    after = [s for t, s in samples if t > outage_end]
    assert before and set(before) == {SERVING}, before
    assert NOT_SERVING in during and SERVING not in during, during
    assert after and after[-1] == SERVING, after

    # Every answer was a correct one; none was an error (timeouts are the outage itself).
    assert {(s, c) for _, s, c in answers if s is not None} == {(200, "1.1.0")}
    # Reports sent once everything had reconnected are all recorded.
    settled = [e for t, e in reported if t > outage_end + 1.0][-50:]
    assert settled, "no reports after the restart"

    async def recorded() -> bool:
        for endpoint in settled:
            state = await otao.app.endpoint_store.get(
                EndpointKey("default", traffic.name, endpoint)
            )
            if state is None or state.current_version != "1.0.0":
                return False
        return True

    await eventually(recorded, 10, "reports after the restart recorded")

    # The push: only 2.0.0, only to the rollout's endpoints. A ConfigUpdated published while
    # the broker was down may be lost (core NATS); such an endpoint still pulls 2.0.0.
    pushes = [u for u in cmx.updates if u.app_version_name == rollout_av]
    assert {u.config_id for u in pushes} == {"2.0.0"}
    assert {u.endpoint_id for u in pushes} <= set(endpoints)
    for endpoint in set(endpoints) - {u.endpoint_id for u in pushes}:
        response = await cmx.request(rollout_av, endpoint)
        assert (response.status_code, response.config_id) == (200, "2.0.0"), endpoint
    job_docs = otao.app.push_jobs._collection.find(
        {"application": rollout.name, "version": "2.0.0"}
    )
    jobs = [
        doc
        async for doc in job_docs
        if doc["before"] and doc["before"]["rolloutStrategy"] == "suspended"
    ]
    assert [j["state"] for j in jobs] == ["done"]
    assert jobs[0]["sent"] >= PUSHED
    assert not [t.get_name() for t in otao.app.tasks if t.done()], "a background task died"


async def _no_pending_job(otao: RunningOtao) -> bool:
    return await otao.app.push_jobs.pending_count() == 0
