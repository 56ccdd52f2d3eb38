"""Traces with the real OpenTelemetry SDK and its in-memory exporter (no mock of the SDK): a
gRPC call and a CDTP poll each make a span with database/NATS children, and the log lines
written meanwhile carry the trace id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otao.logs import JsonFormatter
from otao.observability import tracing
from tests.support.cmx import CmxPeer
from tests.support.eventually import eventually
from tests.support.otao import RunningOtao, start_otao
from tests.support.software import define
from tests.support.stack import MongoServer, NatsServer


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    tracing.use(provider)
    yield exported
    tracing.use(None)


@pytest.fixture(scope="module")
async def traced_otao(
    exporter: InMemorySpanExporter, nats_server: NatsServer, mongo_server: MongoServer
) -> AsyncIterator[RunningOtao]:
    # Its own instance: whether the gRPC server traces is decided when it is built.
    running = await start_otao(nats_server.url, mongo_server.uri, kaa={"otao": "otao-traced"})
    yield running
    await running.stop()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def _children(spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[ReadableSpan]:
    parent_id = parent.context.span_id
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent_id]


def _one(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    matching = [s for s in spans if s.name == name]
    assert len(matching) == 1, [s.name for s in spans]
    return matching[0]


async def test_a_grpc_call_is_one_span_with_database_children_and_its_log_lines_carry_its_trace_id(
    traced_otao: RunningOtao, exporter: InMemorySpanExporter, log_lines: io.StringIO
) -> None:
    application = traced_otao.add_application()
    exporter.clear()
    async with grpc.aio.insecure_channel(traced_otao.grpc_target) as channel:
        await define(channel, application.name, "1.1.0", ["1.0.0"])

    spans = exporter.get_finished_spans()
    call = _one(spans, "/kaa.otao.v1.SoftwareService/CreateSoftware")
    assert call.attributes is not None and call.attributes["rpc.grpc.status_code"] == "OK"
    database = [s for s in _children(spans, call) if s.attributes and "db.system" in s.attributes]
    assert database, "no database span under the call"
    trace_id = format(call.context.trace_id, "032x")
    audited = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    audited = [entry for entry in audited if entry["logger"] == "otao.services.audit"]
    assert audited and all(entry["traceId"] == trace_id for entry in audited)


async def test_a_cdtp_poll_is_one_trace_with_database_and_nats_children(
    traced_otao: RunningOtao, exporter: InMemorySpanExporter, nats_server: NatsServer
) -> None:
    application = traced_otao.add_application()
    async with grpc.aio.insecure_channel(traced_otao.grpc_target) as channel:
        await define(channel, application.name, "1.1.0", ["1.0.0"])
    peer = await CmxPeer.connect(nats_server.url, otao="otao-traced")
    try:
        exporter.clear()
        response = await peer.request(application.app_versions[0], "ep-1", "1.0.0")
        assert response.config_id == "1.1.0"
    finally:
        await peer.close()

    # Spans end just after the reply is sent: wait for them, not for a time.
    await eventually(lambda: _named(exporter, "cdtp ConfigRequest resolve"), "the poll's spans")
    spans = exporter.get_finished_spans()
    request = _one(spans, "cdtp ConfigRequest")
    in_trace = [s for s in spans if s.context.trace_id == request.context.trace_id]
    names = {s.name for s in in_trace}
    assert "publish" in names  # the ConfigResponse
    assert any(s.attributes and "db.system" in s.attributes for s in in_trace), names


def _named(exporter: InMemorySpanExporter, name: str) -> bool:
    return any(s.name == name for s in exporter.get_finished_spans())
