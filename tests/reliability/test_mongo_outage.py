"""Fault: the database server crashes mid-traffic and comes back.

While it is down every call that needs it answers UNAVAILABLE (gRPC) / 503 (REST) / CDTP 503
(never a hang: ``mongodb_timeout_ms`` bounds each operation); health and Envoy's /healthz say not
serving, and polls the in-memory catalog can answer still get their answer. When it returns,
the same otao (never restarted) serves again, and every stored definition is whole: exactly
what one writer submitted, never a mix or a fragment.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from kaa.otao.v1 import (
    endpoint_pb2,
    endpoint_pb2_grpc,
    rollout_pb2,
    rollout_pb2_grpc,
    software_pb2,
    software_pb2_grpc,
)

from otao.domain.applications import ApplicationConfig
from tests.reliability.harness import (
    NOT_SERVING,
    SERVING,
    close_quietly,
    connect_cmx,
    dedicated_otao,
    eventually,
    health,
    software_message,
)
from tests.support.cmx import CmxPeer
from tests.support.otao import RunningOtao
from tests.support.stack import EnvoyFactory, MongoServer, NatsServer

pytestmark = pytest.mark.timeout(120)

# Once the driver knows the server is gone (health says NOT_SERVING by then), a call fails
# fast (otao.store.mongo.FAIL_FAST_SECONDS per operation); before that, one in flight waits out
# at most timeoutMS. How fast either is, is measured by bench/, not asserted here: a hang
# shows as the test's timeout.
TIMEOUT_MS = 1000
UNAVAILABLE_JSON_CODE = 14


def body(version: str, marker: int) -> dict[str, Any]:
    return {
        "version": version,
        "upgradableFrom": ["2.0.0", f"0.{marker}.0"],
        "specification": {"image": f"fw-{version}.bin", "marker": marker, "blob": "x" * 2000},
        "metadata": {"writer": marker},
        "rolloutStrategy": "general",
    }


async def outcome(call: Awaitable[Any]) -> Any:
    """The call's reply, or its status code when it failed."""
    try:
        return await call
    except grpc.aio.AioRpcError as error:
        return error.code()


async def test_mongodb_outage_is_unavailable_quickly_and_recovers_without_restart(
    nats_server: NatsServer, mongo_server: MongoServer, envoy_factory: EnvoyFactory
) -> None:
    async with dedicated_otao(nats_server.url, mongo_server.uri, mongodb_timeout_ms=TIMEOUT_MS) as (
        otao,
        names,
    ):
        application = otao.add_application()
        quiet = otao.add_application()
        envoy = envoy_factory(otao.port, health_check_interval=0.3)
        cmx = await connect_cmx(nats_server.url, names)
        channel = grpc.aio.insecure_channel(otao.grpc_target)
        rest = httpx.AsyncClient(base_url=envoy.base_url, timeout=30)
        try:
            world = World(otao, application, quiet, cmx, channel, rest)
            await _scenario(mongo_server, world)
        finally:
            await mongo_server.astart()
            await rest.aclose()
            await channel.close(None)
            await close_quietly(cmx)
            envoy.stop()


@dataclass
class World:
    otao: RunningOtao
    application: ApplicationConfig
    quiet: ApplicationConfig  # nobody writes to it: its catalog stays in memory
    cmx: CmxPeer
    channel: grpc.aio.Channel
    rest: httpx.AsyncClient


async def _scenario(mongo_server: MongoServer, world: World) -> None:
    otao, application, rest = world.otao, world.application, world.rest
    await _define_and_warm_the_catalogs(world)
    # Writers keep creating definitions while the database goes away and comes back.
    writers = Writers(rest, _software_path(application.name))
    writers.start()
    try:
        await eventually(lambda: len(writers.submitted) >= 10, 10, "writes flowing")
        await mongo_server.akill()
        await _while_down_every_door_is_unavailable(world)
    except BaseException:
        await writers.stop()
        raise
    finally:
        await mongo_server.astart()
    try:
        await _the_same_process_serves_again(world)
        await eventually(lambda: _outage_seen(writers.submitted), 10, "writes succeeding again")
    finally:
        await writers.stop()
    await _every_stored_definition_is_whole(rest, application.name, writers.submitted)
    assert not [t.get_name() for t in otao.app.tasks if t.done()], "a background task died"


def _software_path(app: str) -> str:
    return f"/api/v1/applications/{app}/software"


class Writers:
    """Three writers creating a definition each after the other until stopped: version ->
    (what was sent, the HTTP status it got)."""

    def __init__(self, rest: httpx.AsyncClient, path: str) -> None:
        self._rest = rest
        self._path = path
        self._stop = asyncio.Event()
        self._numbers = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self.submitted: dict[str, tuple[dict[str, Any], int]] = {}

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write()) for _ in range(3)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _write(self) -> None:
        while not self._stop.is_set():
            n = next(self._numbers)
            version = f"3.0.{n}"
            response = await self._rest.post(self._path, json=body(version, n))
            self.submitted[version] = (body(version, n), response.status_code)
            await asyncio.sleep(0.02)  # the writers' pace


async def _define_and_warm_the_catalogs(world: World) -> None:
    application, quiet, cmx, rest = world.application, world.quiet, world.cmx, world.rest
    initial = {**body("1.1.0", 0), "upgradableFrom": ["1.0.0"]}
    assert (await rest.post(_software_path(application.name), json=initial)).status_code == 200
    first = await cmx.request(application.app_versions[0], "ep-1", config_id="1.0.0")
    assert (first.status_code, first.config_id) == (200, "1.1.0")
    # An application nobody writes to: its catalog stays in memory through the outage.
    assert (await rest.post(_software_path(quiet.name), json=initial)).status_code == 200
    warm = await cmx.request(quiet.app_versions[0], "ep-q", config_id="1.1.0")
    assert (warm.status_code, warm.config_id) == (200, None)
    await eventually(lambda: _healthz(rest, 200), 10, "Envoy sees otao healthy")


def _grpc_calls(channel: grpc.aio.Channel, app: str) -> dict[str, Callable[[], Awaitable[Any]]]:
    """Every gRPC method that needs the database, by name."""
    software = software_pb2_grpc.SoftwareServiceStub(channel)
    endpoints = endpoint_pb2_grpc.EndpointServiceStub(channel)
    rollout = rollout_pb2_grpc.RolloutServiceStub(channel)
    return {
        "GetSoftware": lambda: software.GetSoftware(
            software_pb2.GetSoftwareRequest(application_name=app, version="1.1.0")
        ),
        "ListSoftware": lambda: software.ListSoftware(
            software_pb2.ListSoftwareRequest(application_name=app)
        ),
        "CreateSoftware": lambda: software.CreateSoftware(
            software_pb2.CreateSoftwareRequest(
                application_name=app, software=software_message("4.0.0", ["1.0.0"])
            )
        ),
        "ReplaceSoftware": lambda: software.ReplaceSoftware(
            software_pb2.ReplaceSoftwareRequest(
                application_name=app,
                version="1.1.0",
                software=software_message("1.1.0", ["1.0.0"], "suspended"),
            )
        ),
        "DeleteSoftware": lambda: software.DeleteSoftware(
            software_pb2.DeleteSoftwareRequest(application_name=app, version="1.1.0")
        ),
        "UpdateApplicationSettings": lambda: software.UpdateApplicationSettings(
            software_pb2.UpdateApplicationSettingsRequest(
                application_name=app,
                settings=software_pb2.ApplicationSettings(consent_required=True),
            )
        ),
        "GetEndpointSoftware": lambda: endpoints.GetEndpointSoftware(
            endpoint_pb2.GetEndpointSoftwareRequest(application_name=app, endpoint_id="ep-1")
        ),
        "ListEndpoints": lambda: endpoints.ListEndpoints(
            endpoint_pb2.ListEndpointsRequest(application_name=app)
        ),
        "GetRolloutStatus": lambda: rollout.GetRolloutStatus(
            rollout_pb2.GetRolloutStatusRequest(application_name=app, version="1.1.0")
        ),
    }


async def _while_down_every_door_is_unavailable(world: World) -> None:
    otao, application, quiet, cmx = world.otao, world.application, world.quiet, world.cmx
    channel, rest = world.channel, world.rest
    app, path = application.name, _software_path(application.name)
    await eventually(
        lambda: _status_is(channel, NOT_SERVING), 2 * TIMEOUT_MS / 1000 + 1, "NOT_SERVING"
    )
    # gRPC: every call needing the database is UNAVAILABLE. All at once: concurrent calls
    # fail cleanly too, not only one at a time.
    calls = _grpc_calls(channel, app)
    results = await asyncio.gather(*(outcome(call()) for call in calls.values()))
    for name, result in zip(calls, results, strict=True):
        assert result == grpc.StatusCode.UNAVAILABLE, (name, result)

    # REST through Envoy: 503 with the google.rpc.Status JSON.
    rest_calls = [
        ("GET", f"{path}/1.1.0", None),
        ("GET", path, None),
        ("POST", path, body("4.0.1", 99)),
        ("PATCH", f"{path}/1.1.0?updateMask=rolloutStrategy", {"rolloutStrategy": "suspended"}),
        ("PUT", f"/api/v1/applications/{app}/settings", {"consentRequired": True}),
        ("GET", f"/api/v1/applications/{app}/endpoints/ep-1/software", None),
    ]
    answers = await asyncio.gather(
        *(rest.request(method, url, json=payload) for method, url, payload in rest_calls)
    )
    for (method, url, _), response in zip(rest_calls, answers, strict=True):
        assert response.status_code == 503, (method, url, response.text)
        assert response.json()["code"] == UNAVAILABLE_JSON_CODE, response.text

    # CDTP: a poll that needs the endpoint's state is a 503...
    needs_state = await cmx.request(
        application.app_versions[0], "ep-1", config_id="1.0.0", timeout=10
    )
    assert needs_state.status_code == 503, needs_state
    # ...one the in-memory catalog answers (nothing newer than 1.1.0) still succeeds.
    up_to_date = await cmx.request(quiet.app_versions[0], "ep-q", config_id="1.1.0")
    assert (up_to_date.status_code, up_to_date.config_id) == (200, None)

    await eventually(lambda: _healthz(rest, 503), 5, "Envoy's /healthz reflects the outage")
    assert otao.app.components.health.serving is False


async def _the_same_process_serves_again(world: World) -> None:
    application, cmx, channel, rest = world.application, world.cmx, world.channel, world.rest
    # Health, gRPC, REST and CDTP, without a restart.
    await eventually(lambda: _status_is(channel, SERVING), 10, "SERVING after the outage")
    await eventually(lambda: _healthz(rest, 200), 10, "Envoy's /healthz back to 200")
    got = await software_pb2_grpc.SoftwareServiceStub(channel).GetSoftware(
        software_pb2.GetSoftwareRequest(application_name=application.name, version="1.1.0")
    )
    assert got.rollout_strategy == "general"
    again = await cmx.request(application.app_versions[0], "ep-1", config_id="1.0.0")
    assert (again.status_code, again.config_id) == (200, "1.1.0")


async def _every_stored_definition_is_whole(
    rest: httpx.AsyncClient, app: str, submitted: dict[str, tuple[dict[str, Any], int]]
) -> None:
    # Each stored definition is exactly one writer's submission; every write answered 200 is
    # stored; a write answered 503 is either absent or whole.
    path = _software_path(app)
    listed = (await rest.get(path)).json()
    stored = {item["version"]: item for item in listed}
    assert "4.0.0" not in stored and "4.0.1" not in stored
    statuses = {status for _, status in submitted.values()}
    assert statuses <= {200, 503}, statuses
    assert 503 in statuses, "no write hit the outage"
    for version, (sent, status) in submitted.items():
        if status == 200:
            assert version in stored, version
        if version in stored:
            item = stored[version]
            for field in ("version", "upgradableFrom", "specification", "metadata"):
                assert item[field] == sent[field], (version, field)
            assert item["rolloutStrategy"] == "general" and item["etag"]
            fetched = (await rest.get(f"{path}/{version}")).json()
            assert fetched == item
    assert set(stored) <= {"1.1.0", *submitted}


async def _status_is(channel: grpc.aio.Channel, status: int) -> bool:
    return await health(channel) == status


async def _healthz(rest: httpx.AsyncClient, status: int) -> bool:
    return (await rest.get("/healthz")).status_code == status


def _outage_seen(submitted: dict[str, tuple[dict[str, Any], int]]) -> bool:
    """Writes failed during the outage and the latest ones succeed again."""
    statuses = [status for _, status in submitted.values()]
    return 503 in statuses and statuses[-3:] == [200, 200, 200]
