"""gRPC clients through Envoy (deploy/envoy.yaml, route ``grpc``): two real otao replicas behind
one real Envoy, reached on Envoy's REST port by a real grpc client.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import grpc
import httpx
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from kaa.otao.v1 import software_pb2, software_pb2_grpc

from otao.devstack.envoy import EnvoyProcess
from otao.rpc.server import SERVICE_NAMES
from tests.support.otao import RunningOtao, start_otao
from tests.support.rest import definition
from tests.support.stack import EnvoyFactory, MongoServer, NatsServer

pytestmark = pytest.mark.timeout(60)


@dataclass
class Replicas:
    first: RunningOtao
    second: RunningOtao
    application: str


@pytest.fixture(scope="module")
async def replicas(
    otao: RunningOtao, nats_server: NatsServer, mongo_server: MongoServer
) -> AsyncIterator[Replicas]:
    second = await start_otao(
        nats_server.url, mongo_server.uri, database=otao.settings.mongodb_database
    )
    application = otao.add_application()
    second.add_application(application.name, application.app_versions)
    yield Replicas(otao, second, application.name)
    await second.stop()


@pytest.fixture(scope="module")
def envoy(replicas: Replicas, envoy_factory: EnvoyFactory) -> Iterator[EnvoyProcess]:
    envoy = envoy_factory(replicas.first.port, extra_upstream_ports=(replicas.second.port,))
    yield envoy
    envoy.stop()


@pytest.fixture
async def channel(envoy: EnvoyProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"{envoy.host}:{envoy.port}") as channel:
        yield channel


def requests_per_replica(envoy: EnvoyProcess, replicas: Replicas) -> dict[int, int]:
    """Envoy's count of successful requests per upstream host (admin /clusters)."""
    text = httpx.get(f"{envoy.admin_url}/clusters", timeout=5, trust_env=False).text
    counts = {replicas.first.port: 0, replicas.second.port: 0}
    for port, value in re.findall(r"^otao::127\.0\.0\.1:(\d+)::rq_success::(\d+)$", text, re.M):
        counts[int(port)] = int(value)
    return counts


async def test_the_health_check_works_through_envoy(channel: grpc.aio.Channel) -> None:
    answer = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=10
    )

    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_list_software_works_through_envoy(
    channel: grpc.aio.Channel, replicas: Replicas
) -> None:
    stub = software_pb2_grpc.SoftwareServiceStub(channel)
    created = await stub.CreateSoftware(
        software_pb2.CreateSoftwareRequest(
            application_name=replicas.application,
            software=json_format.ParseDict(definition("1.0.0", []), software_pb2.Software()),
        ),
        timeout=10,
    )

    listed = await stub.ListSoftware(
        software_pb2.ListSoftwareRequest(application_name=replicas.application), timeout=10
    )

    assert created.version == "1.0.0"
    assert [s.version for s in listed.software] == ["1.0.0"]


async def test_an_otao_error_reaches_the_grpc_client_with_its_code_and_message(
    channel: grpc.aio.Channel, replicas: Replicas
) -> None:
    stub = software_pb2_grpc.SoftwareServiceStub(channel)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetSoftware(
            software_pb2.GetSoftwareRequest(application_name=replicas.application, version="9.9.9"),
            timeout=10,
        )

    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert refused.value.details()


async def test_reflection_lists_every_service_on_a_stream_kept_open(
    channel: grpc.aio.Channel,
) -> None:
    # As grpcurl does: several requests on one open stream (Envoy's REST-side buffer filter
    # would wait for the end of the stream for ever).
    call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(timeout=10)
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    listed = await call.read()
    await call.write(
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAMES[0])
    )
    described = await call.read()
    await call.done_writing()

    names = {service.name for service in listed.list_services_response.service}
    assert names >= {*SERVICE_NAMES, "grpc.health.v1.Health"}
    assert described.file_descriptor_response.file_descriptor_proto


async def test_requests_on_one_connection_are_balanced_across_the_replicas(
    channel: grpc.aio.Channel, envoy: EnvoyProcess, replicas: Replicas
) -> None:
    stub = software_pb2_grpc.SoftwareServiceStub(channel)
    request = software_pb2.ListSoftwareRequest(application_name=replicas.application)
    before = requests_per_replica(envoy, replicas)

    for _ in range(20):
        await stub.ListSoftware(request, timeout=10)

    after = requests_per_replica(envoy, replicas)
    served = {port: after[port] - before[port] for port in after}
    # Round robin per request: about 10 each (active health checks are not counted).
    assert all(count >= 5 for count in served.values()), served
    assert sum(served.values()) >= 20
