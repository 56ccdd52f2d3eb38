"""Watch streams through the real doors: gRPC, REST via Envoy (NDJSON), two replicas on one
database and one NATS, reports handled by the other replica."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from kaa.otao.v1 import (
    rollout_pb2,
    rollout_pb2_grpc,
    software_pb2,
    software_pb2_grpc,
    watch_pb2,
    watch_pb2_grpc,
)

from otao.domain.applications import ApplicationConfig
from otao.services.ports import EventKind
from tests.support.cmx import CmxPeer
from tests.support.eventually import eventually
from tests.support.otao import RunningOtao, start_otao
from tests.support.software import define
from tests.support.stack import EnvoyFactory, MongoServer, NatsServer

# Replica B hears reports on its own consumer subject, so they are B's to handle, never A's.
OTHER_CONSUMER = "cmx-b"
WAIT = 15.0  # a generous bound against a hang, not a latency


@pytest.fixture(scope="module")
async def replica_b(
    otao: RunningOtao, nats_server: NatsServer, mongo_server: MongoServer
) -> AsyncIterator[RunningOtao]:
    running = await start_otao(
        nats_server.url,
        mongo_server.uri,
        database=otao.settings.mongodb_database,
        kaa={"consumer": OTHER_CONSUMER},
    )
    yield running
    await running.stop()


@pytest.fixture(scope="module")
async def cmx_b(replica_b: RunningOtao, nats_server: NatsServer) -> AsyncIterator[CmxPeer]:
    peer = await CmxPeer.connect(nats_server.url, consumer=OTHER_CONSUMER)
    yield peer
    await peer.close()


@pytest.fixture
def shared_application(
    otao: RunningOtao, replica_b: RunningOtao, application: ApplicationConfig
) -> ApplicationConfig:
    replica_b.add_application(application.name, application.app_versions)
    return application


async def _next_matching(stream: Any, check: Any) -> Any:
    async def scan() -> Any:
        async for event in stream:
            if check(event):
                return event
        raise AssertionError("the stream ended first")

    return await asyncio.wait_for(scan(), WAIT)


async def test_watch_rollout_over_grpc_gets_the_counts_of_reports_another_replica_handled(
    otao: RunningOtao,
    grpc_channel: grpc.aio.Channel,
    shared_application: ApplicationConfig,
    cmx_b: CmxPeer,
) -> None:
    app = shared_application
    await define(grpc_channel, app.name, "1.1.0", ["1.0.0"])
    stub = watch_pb2_grpc.WatchServiceStub(grpc_channel)
    call = stub.WatchRollout(
        watch_pb2.WatchRolloutRequest(application_name=app.name, version="1.1.0")
    )
    opened = await _next_matching(call, lambda e: True)
    assert (opened.kind, opened.status.applied, opened.definition.version) == (
        "opened",
        0,
        "1.1.0",
    )

    await cmx_b.applied(app.app_versions[0], "ep-1", "1.1.0")
    await cmx_b.applied(app.app_versions[0], "ep-2", "1.1.0", status_code=500, reason="flash")

    event = await _next_matching(call, lambda e: e.status.applied + e.status.failed == 2)
    assert (event.kind, event.version, event.status.applied, event.status.failed) == (
        "counts",
        "1.1.0",
        1,
        1,
    )
    call.cancel()


async def test_watch_rollout_over_rest_streams_newline_delimited_json(
    otao: RunningOtao,
    grpc_channel: grpc.aio.Channel,
    envoy_factory: EnvoyFactory,
    shared_application: ApplicationConfig,
    cmx_b: CmxPeer,
) -> None:
    app = shared_application
    await define(grpc_channel, app.name, "1.1.0", ["1.0.0"])
    envoy = envoy_factory(otao.port)
    path = f"/api/v1/applications/{app.name}/software/1.1.0/rollout:watch"
    async with (
        httpx.AsyncClient(base_url=envoy.base_url, timeout=WAIT) as client,
        client.stream("GET", path) as response,
    ):
        assert response.status_code == 200
        lines = response.aiter_lines()
        opened = json.loads(await asyncio.wait_for(anext(lines), WAIT))
        assert (opened["kind"], opened["status"]["applied"]) == ("opened", "0")

        await cmx_b.applied(app.app_versions[0], "ep-1", "1.1.0")

        async def applied_once() -> dict[str, Any]:
            async for line in lines:
                event: dict[str, Any] = json.loads(line)
                if event["status"]["applied"] == "1":
                    return event
            raise AssertionError("the stream ended first")

        event = await asyncio.wait_for(applied_once(), WAIT)
        assert (event["kind"], event["version"], event["missed"]) == ("counts", "1.1.0", "0")


async def test_watching_an_unknown_version_is_not_found_through_the_error_mapping(
    grpc_channel: grpc.aio.Channel, application: ApplicationConfig
) -> None:
    stub = watch_pb2_grpc.WatchServiceStub(grpc_channel)
    call = stub.WatchRollout(
        watch_pb2.WatchRolloutRequest(application_name=application.name, version="9.9.9")
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call.read()
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND
    assert "9.9.9" in (raised.value.details() or "")


async def test_a_watcher_that_reads_nothing_holds_a_bounded_queue_and_is_told_it_missed_events(
    otao: RunningOtao,
    replica_b: RunningOtao,
    grpc_channel: grpc.aio.Channel,
    shared_application: ApplicationConfig,
) -> None:
    app = shared_application
    hub = otao.app.components.services.watch.hub
    stub = watch_pb2_grpc.WatchServiceStub(grpc_channel)
    call = stub.WatchApplication(watch_pb2.WatchApplicationRequest(application_name=app.name))
    await eventually(
        lambda: any(w.application == app.name for w in hub.watchers), "the watcher registered"
    )
    watcher = next(w for w in hub.watchers if w.application == app.name)
    seen_before = hub.changes_seen

    # 10,000 changes made on replica B, of as many versions: broadcast, delivered on A.
    events = replica_b.app.components.services.watch.events
    for i in range(10_000):
        events.changed("default", app.name, f"9.0.{i}", EventKind.COUNTS)
        if i % 1000 == 999:
            await asyncio.sleep(0)  # let B's broadcaster send now and then, as reports would
    await eventually(
        lambda: hub.changes_seen >= seen_before + 10_000, "A received every change", WAIT
    )

    assert watcher.high_water <= watcher.capacity
    assert len(watcher) <= watcher.capacity
    resync = await _next_matching(call, lambda e: e.kind == "resync")
    assert resync.missed > 0
    call.cancel()


async def test_a_watch_stream_ends_cleanly_on_shutdown_after_health_says_not_serving(
    nats_server: NatsServer, mongo_server: MongoServer
) -> None:
    replica = await start_otao(nats_server.url, mongo_server.uri)
    app = replica.add_application()
    async with grpc.aio.insecure_channel(replica.grpc_target) as channel:
        call = watch_pb2_grpc.WatchServiceStub(channel).WatchApplication(
            watch_pb2.WatchApplicationRequest(application_name=app.name)
        )
        opened = await asyncio.wait_for(call.read(), WAIT)
        assert isinstance(opened, watch_pb2.RolloutEvent)
        assert opened.kind == "opened"
        stopping = asyncio.create_task(replica.stop())
        ended = await asyncio.wait_for(call.read(), WAIT)
        serving_when_ended = replica.app.components.health.serving
        await stopping
    assert ended is grpc.aio.EOF  # type: ignore[attr-defined]  # missing from grpc-stubs
    assert await call.code() is grpc.StatusCode.OK
    assert serving_when_ended is False


async def test_watch_rollout_tells_when_a_wave_opens_and_when_the_rollout_pauses(
    grpc_channel: grpc.aio.Channel, application: ApplicationConfig
) -> None:
    software = software_pb2.Software(
        version="1.1.0", upgradable_from=["1.0.0"], rollout_strategy="general"
    )
    software.specification.string_value = "fw-1.1.0"
    software.rollout_plan.advance = "manual"
    software.rollout_plan.waves.add(percent=10)
    software.rollout_plan.waves.add(percent=100)
    await software_pb2_grpc.SoftwareServiceStub(grpc_channel).CreateSoftware(
        software_pb2.CreateSoftwareRequest(application_name=application.name, software=software)
    )
    call = watch_pb2_grpc.WatchServiceStub(grpc_channel).WatchRollout(
        watch_pb2.WatchRolloutRequest(application_name=application.name, version="1.1.0")
    )
    opened = await _next_matching(call, lambda e: True)
    assert (opened.kind, opened.status.current_wave) == ("opened", 0)
    rollouts = rollout_pb2_grpc.RolloutServiceStub(grpc_channel)
    target = {"application_name": application.name, "version": "1.1.0"}

    await rollouts.AdvanceRollout(rollout_pb2.AdvanceRolloutRequest(**target))
    advanced = await _next_matching(call, lambda e: e.kind != "counts")
    assert (advanced.kind, advanced.status.current_wave) == ("wave_opened", 1)

    await rollouts.PauseRollout(rollout_pb2.PauseRolloutRequest(**target))
    paused = await _next_matching(call, lambda e: e.kind != "counts")
    assert (paused.kind, paused.status.paused) == ("paused", True)
    call.cancel()
