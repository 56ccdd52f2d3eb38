"""Fault: nats-server stops and starts again while a CMX peer keeps polling and reporting, and
a push job is half-way. otao reconnects on its own, health follows, CDTP answers resume, the
push job completes, no endpoint gets a version other than the one it is eligible for."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass

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
    endpoints = await _seed_the_rollout_and_the_traffic(otao, rollout, traffic, cmx, channel)
    load = Load(cmx, channel, traffic.app_versions[0])
    load.start()
    try:
        outage = await _restart_nats_mid_push(nats_server, otao, rollout, cmx, channel, load)
        await _wait_for_recovery(otao, load, outage)
    finally:
        await load.stop()
    _health_followed_the_broker(load.samples, outage)
    await _traffic_was_answered_and_recorded(otao, traffic, load, outage)
    await _the_push_completed_once(otao, rollout, cmx, endpoints)


@dataclass
class Outage:
    start: float
    end: float


class Load:
    """Health sampled continuously, and CDTP polls (needing the database) and applied reports
    from a new endpoint each, until stopped."""

    def __init__(self, cmx: CmxPeer, channel: grpc.aio.Channel, app_version: str) -> None:
        self._cmx = cmx
        self._channel = channel
        self._app_version = app_version
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.samples: list[tuple[float, int | None]] = []
        self.answers: list[tuple[float, int | None, str | None]] = []
        self.reported: list[tuple[float, str]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._watch_health()), asyncio.create_task(self._load())]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _watch_health(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), await health(self._channel, timeout=0.5)))
            await asyncio.sleep(0.05)  # the sampling rate, not a wait for something to happen

    async def _load(self) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            endpoint = f"load-{n:05d}"
            try:
                response = await self._cmx.request(
                    self._app_version, endpoint, config_id="1.0.0", timeout=1.0
                )
                self.answers.append((time.monotonic(), response.status_code, response.config_id))
            except TimeoutError:
                self.answers.append((time.monotonic(), None, None))
            # The peer's own flush fails while the broker is down: such a report is not counted.
            with contextlib.suppress(Exception):
                await self._cmx.applied(self._app_version, endpoint, "1.0.0")
                self.reported.append((time.monotonic(), endpoint))
            await asyncio.sleep(0.01)  # the load's pace


async def _seed_the_rollout_and_the_traffic(
    otao: RunningOtao,
    rollout: ApplicationConfig,
    traffic: ApplicationConfig,
    cmx: CmxPeer,
    channel: grpc.aio.Channel,
) -> list[str]:
    await define(channel, rollout.name, "2.0.0", ["1.0.0"], strategy="suspended")
    await define(channel, traffic.name, "1.1.0", ["1.0.0"])
    endpoints = [f"ep-{i:03d}" for i in range(PUSHED)]
    for endpoint in endpoints:
        await cmx.applied(rollout.app_versions[0], endpoint, "1.0.0")
    await eventually(
        lambda: _all_on(otao, rollout.name, endpoints, "1.0.0"),
        10,
        "the endpoints' applied reports recorded",
    )
    return endpoints


async def _restart_nats_mid_push(
    nats_server: NatsServer,
    otao: RunningOtao,
    rollout: ApplicationConfig,
    cmx: CmxPeer,
    channel: grpc.aio.Channel,
    load: Load,
) -> Outage:
    rollout_av = rollout.app_versions[0]
    await eventually(lambda: len(load.answers) >= 20, 10, "traffic flowing before the restart")
    updated = await set_strategy(channel, rollout.name, "2.0.0", "general")
    assert updated.rollout_strategy == "general"
    await eventually(
        lambda: len([u for u in cmx.updates if u.app_version_name == rollout_av]) >= 5,
        10,
        "the push job under way",
    )
    assert await otao.app.components.storage.push_jobs.pending_count() == 1, (
        "the job must be mid-way"
    )

    start = time.monotonic()
    await nats_server.astop()
    # The broker stays down until otao has said so on its health for a few samples (past the
    # detection delay the health check below allows for), instead of for a fixed time.
    await eventually(
        lambda: sum(1 for t, s in load.samples if t > start + 0.6 and s == NOT_SERVING) >= 3,
        15,
        "otao reporting NOT_SERVING while the broker is down",
    )
    await nats_server.astart()
    return Outage(start, time.monotonic())


async def _wait_for_recovery(otao: RunningOtao, load: Load, outage: Outage) -> None:
    await eventually(lambda: otao.app.components.health.serving, 15, "otao serving again")
    await eventually(
        lambda: sum(1 for t, s, _ in load.answers if t > outage.end and s == 200) >= 20,
        15,
        "CDTP answers resumed after the restart",
    )
    await eventually(lambda: _no_pending_job(otao), 25, "the push job finished")
    await eventually(
        lambda: any(t > outage.end + 1.5 for t, _ in load.reported),
        10,
        "reports after the restart",
    )


def _health_followed_the_broker(samples: list[tuple[float, int | None]], outage: Outage) -> None:
    # SERVING before, NOT_SERVING during the outage, SERVING after.
    before = [s for t, s in samples if t < outage.start]
    during = [s for t, s in samples if outage.start + 0.6 < t < outage.end]
    after = [s for t, s in samples if t > outage.end]
    assert before and set(before) == {SERVING}, before
    assert NOT_SERVING in during and SERVING not in during, during
    assert after and after[-1] == SERVING, after


async def _traffic_was_answered_and_recorded(
    otao: RunningOtao, traffic: ApplicationConfig, load: Load, outage: Outage
) -> None:
    # Every answer was a correct one; none was an error (timeouts are the outage itself).
    assert {(s, c) for _, s, c in load.answers if s is not None} == {(200, "1.1.0")}
    # Reports sent once everything had reconnected are all recorded.
    settled = [e for t, e in load.reported if t > outage.end + 1.0][-50:]
    assert settled, "no reports after the restart"
    await eventually(
        lambda: _all_on(otao, traffic.name, settled, "1.0.0"),
        10,
        "reports after the restart recorded",
    )


async def _the_push_completed_once(
    otao: RunningOtao, rollout: ApplicationConfig, cmx: CmxPeer, endpoints: list[str]
) -> None:
    # Only 2.0.0, only to the rollout's endpoints. A ConfigUpdated published while the broker
    # was down may be lost (core NATS); such an endpoint still pulls 2.0.0.
    rollout_av = rollout.app_versions[0]
    pushes = [u for u in cmx.updates if u.app_version_name == rollout_av]
    assert {u.config_id for u in pushes} == {"2.0.0"}
    assert {u.endpoint_id for u in pushes} <= set(endpoints)
    for endpoint in set(endpoints) - {u.endpoint_id for u in pushes}:
        response = await cmx.request(rollout_av, endpoint)
        assert (response.status_code, response.config_id) == (200, "2.0.0"), endpoint
    job_docs = otao.app.components.storage.push_jobs._collection.find(
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


async def _all_on(otao: RunningOtao, application: str, endpoints: list[str], version: str) -> bool:
    for endpoint in endpoints:
        state = await otao.app.components.storage.endpoints.get(
            EndpointKey("default", application, endpoint)
        )
        if state is None or state.current_version != version:
            return False
    return True


async def _no_pending_job(otao: RunningOtao) -> bool:
    return await otao.app.components.storage.push_jobs.pending_count() == 0
