"""A real replica's /metrics, scraped over HTTP while it serves both doors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from kaa.otao.v1 import software_pb2, software_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from otao.devstack.processes import free_port
from tests.support.cmx import CmxPeer
from tests.support.eventually import eventually
from tests.support.otao import RunningOtao, start_otao
from tests.support.software import define
from tests.support.stack import MongoServer, NatsServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
async def metered(nats_server: NatsServer, mongo_server: MongoServer) -> AsyncIterator[RunningOtao]:
    # Its own kaa.otao name: the session's otao shares the broker and would answer too.
    running = await start_otao(
        nats_server.url, mongo_server.uri, metrics={"port": free_port()}, kaa={"otao": "metered"}
    )
    yield running
    await running.stop()


async def scrape(otao: RunningOtao) -> Samples:
    port = otao.settings.metrics.port
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_counters_move_by_exactly_the_polls_calls_and_reports_made(
    metered: RunningOtao, nats_server: NatsServer
) -> None:
    application = metered.add_application()
    app_version = application.app_versions[0]
    n, m, k = 7, 5, 3
    async with grpc.aio.insecure_channel(metered.grpc_target) as channel:
        await define(channel, application.name, "1.0.0", [])
        cmx = await CmxPeer.connect(nats_server.url, otao="metered")
        try:
            before = await scrape(metered)
            for i in range(n):
                response = await cmx.request(app_version, f"ep-{i}", config_id="1.0.0")
                assert response.status_code == 200 and response.config_id is None
            stub = software_pb2_grpc.SoftwareServiceStub(channel)
            for _ in range(m):
                await stub.ListSoftware(
                    software_pb2.ListSoftwareRequest(application_name=application.name)
                )
            for i in range(k):
                await cmx.applied(app_version, f"ep-{i}", "1.0.0")

            async def reports_counted() -> bool:
                now = await scrape(metered)
                return (
                    value(now, "otao_config_applied_reports_total", outcome="success")
                    - value(before, "otao_config_applied_reports_total", outcome="success")
                    >= k
                )

            await eventually(reports_counted, "the reports counted")
            after = await scrape(metered)
        finally:
            await cmx.close()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("otao_cdtp_polls_total", result="nothing_new") == n
    assert moved("otao_requests_total", door="cdtp", method="ConfigRequest", code="200") == n
    assert moved("otao_request_duration_seconds_count", door="cdtp", method="ConfigRequest") == n
    grpc_method = "SoftwareService/ListSoftware"
    assert moved("otao_requests_total", door="grpc", method=grpc_method, code="OK") == m
    assert moved("otao_request_duration_seconds_count", door="grpc", method=grpc_method) == m
    assert moved("otao_config_applied_reports_total", outcome="success") == k
    assert moved("otao_requests_total", door="cdtp", method="ConfigApplied", code="200") == k
    assert moved("otao_config_applied_reports_total", outcome="failure") == 0


async def test_a_refused_grpc_call_is_counted_under_its_status_code(
    metered: RunningOtao,
) -> None:
    before = await scrape(metered)
    async with grpc.aio.insecure_channel(metered.grpc_target) as channel:
        stub = software_pb2_grpc.SoftwareServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ListSoftware(software_pb2.ListSoftwareRequest(application_name="nope"))
    code = refused.value.code().name
    after = await scrape(metered)
    labels = {"door": "grpc", "method": "SoftwareService/ListSoftware", "code": code}
    moved = value(after, "otao_requests_total", **labels) - value(
        before, "otao_requests_total", **labels
    )
    assert moved == 1


async def test_the_process_and_sampled_metrics_are_exported(metered: RunningOtao) -> None:
    names = {name for name, _ in await scrape(metered)}
    for expected in (
        "process_cpu_seconds_total",
        "otao_catalog_cache_hits_total",
        "otao_efmp_questions_total",
        "otao_messages_dropped_total",
        "otao_push_jobs_running",
        "otao_rollout_gauges_left_out",
    ):
        assert expected in names


async def test_only_the_metrics_path_is_served(metered: RunningOtao) -> None:
    port = metered.settings.metrics.port
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/")
    assert response.status_code == 404
