"""6/CDTP through real NATS + Avro: a CMX peer polls, reports and listens for pushes."""

from __future__ import annotations

import io
import json
import time
import uuid
from typing import cast

import fastavro
import grpc
import pytest
from kaa.otao.v1 import endpoint_pb2, endpoint_pb2_grpc, software_pb2, software_pb2_grpc

from otao.domain.applications import ApplicationConfig
from otao.domain.models import AppliedReport, EndpointKey
from otao.messaging.avro import AvroCodec
from otao.messaging.cdtp import ConfigUpdatedPublisher
from otao.messaging.connection import NatsConnection
from otao.messaging.records import ConfigUpdated
from otao.messaging.subjects import Subjects
from tests.support.cmx import CmxPeer
from tests.support.eventually import eventually
from tests.support.otao import RunningOtao
from tests.support.software import define
from tests.support.stack import NatsServer


async def test_endpoint_walks_a_multi_hop_graph_by_pulling_and_reporting(
    cmx: CmxPeer, grpc_channel: grpc.aio.Channel, application: ApplicationConfig
) -> None:
    app_version = application.app_versions[0]
    await define(grpc_channel, application.name, "1.1.0", ["1.0.0"])
    await define(grpc_channel, application.name, "2.0.0", ["1.1.0"])

    first = await cmx.request(app_version, "ep-1", config_id="1.0.0")
    assert (first.status_code, first.config_id) == (200, "1.1.0")
    assert json.loads(first.content or b"") == {"image": "fw-1.1.0.bin"}
    await cmx.applied(app_version, "ep-1", "1.1.0")

    # After the report, otao knows the endpoint is on 1.1.0 even without a configId.
    async def next_offer() -> str | None:
        return (await cmx.request(app_version, "ep-1")).config_id

    async def offers_2_0_0() -> bool:
        return await next_offer() == "2.0.0"

    await eventually(offers_2_0_0, "the applied report taken into account")
    await cmx.applied(app_version, "ep-1", "2.0.0")

    top = await cmx.request(app_version, "ep-1", config_id="2.0.0")
    assert top.status_code == 200
    assert top.config_id is None and top.content is None


async def test_endpoint_on_the_newest_version_gets_nothing(
    cmx: CmxPeer, grpc_channel: grpc.aio.Channel, application: ApplicationConfig
) -> None:
    await define(grpc_channel, application.name, "1.0.0", [])
    response = await cmx.request(application.app_versions[0], "ep-top", config_id="1.0.0")
    assert (response.status_code, response.config_id, response.content) == (200, None, None)


async def test_fresh_endpoint_without_config_id_gets_the_latest_it_is_eligible_for(
    cmx: CmxPeer, grpc_channel: grpc.aio.Channel, application: ApplicationConfig
) -> None:
    await define(grpc_channel, application.name, "1.0.0", [])
    await define(grpc_channel, application.name, "1.1.0", ["1.0.0"])
    await define(grpc_channel, application.name, "2.0.0", ["1.1.0"], strategy="suspended")
    response = await cmx.request(application.app_versions[0], "ep-new")
    assert response.config_id == "1.1.0"


async def test_unknown_app_version_answers_404_with_a_reason(cmx: CmxPeer) -> None:
    response = await cmx.request("no-such-app-v9", "ep-1", config_id="1.0.0")
    assert response.status_code == 404
    assert response.reason_phrase and "no-such-app-v9" in response.reason_phrase
    assert response.content is None


async def test_garbage_payload_answers_400_and_the_next_good_request_succeeds(
    cmx: CmxPeer, grpc_channel: grpc.aio.Channel, application: ApplicationConfig
) -> None:
    await define(grpc_channel, application.name, "1.1.0", ["1.0.0"])
    bad = await cmx.send_raw(b"\xff\x00not avro at all")
    assert bad.status_code == 400
    assert bad.reason_phrase == "malformed ConfigRequest"
    good = await cmx.request(application.app_versions[0], "ep-1", config_id="1.0.0")
    assert (good.status_code, good.config_id) == (200, "1.1.0")


async def test_expired_request_gets_no_answer(cmx: CmxPeer, application: ApplicationConfig) -> None:
    an_hour_ago = int(time.time() * 1000) - 3_600_000
    with pytest.raises(TimeoutError):
        await cmx.request(
            application.app_versions[0],
            "ep-1",
            config_id="1.0.0",
            timeout=1.0,
            request_timeout_ms=1000,
            timestamp_ms=an_hour_ago,
        )


async def test_failed_version_is_not_offered_again_until_an_operator_clears_it(
    cmx: CmxPeer, grpc_channel: grpc.aio.Channel, application: ApplicationConfig
) -> None:
    app_version = application.app_versions[0]
    await define(grpc_channel, application.name, "1.1.0", ["1.0.0"])
    assert (await cmx.request(app_version, "ep-f", config_id="1.0.0")).config_id == "1.1.0"
    await cmx.applied(app_version, "ep-f", "1.1.0", status_code=500, reason="flash failed")

    endpoints = endpoint_pb2_grpc.EndpointServiceStub(grpc_channel)
    request = endpoint_pb2.GetEndpointSoftwareRequest(
        application_name=application.name, endpoint_id="ep-f"
    )

    async def failed_versions() -> list[str]:
        return list((await endpoints.GetEndpointSoftware(request)).failed_versions)

    async def failure_recorded() -> bool:
        return await failed_versions() == ["1.1.0"]

    await eventually(failure_recorded, "the failure report recorded")
    assert (await cmx.request(app_version, "ep-f", config_id="1.0.0")).config_id is None

    await endpoints.DeleteEndpointFailure(
        endpoint_pb2.DeleteEndpointFailureRequest(
            application_name=application.name, endpoint_id="ep-f", version="1.1.0"
        )
    )
    assert (await cmx.request(app_version, "ep-f", config_id="1.0.0")).config_id == "1.1.0"


async def test_suspended_to_general_pushes_config_updated_to_eligible_endpoints_only(
    cmx: CmxPeer, grpc_channel: grpc.aio.Channel, application: ApplicationConfig
) -> None:
    app_version = application.app_versions[0]
    await define(grpc_channel, application.name, "1.1.0", ["1.0.0"], strategy="suspended")
    await cmx.request(app_version, "ep-a", config_id="1.0.0")
    await cmx.request(app_version, "ep-b", config_id="0.9.0")  # not in the graph
    await cmx.applied(app_version, "ep-c", "1.0.0")

    stub = software_pb2_grpc.SoftwareServiceStub(grpc_channel)
    await eventually_known(stub, grpc_channel, application, 3)
    await stub.UpdateSoftware(
        software_pb2.UpdateSoftwareRequest(
            application_name=application.name,
            version="1.1.0",
            software=software_pb2.Software(rollout_strategy="general"),
        )
    )
    await cmx.wait_for(
        lambda: (
            {u.endpoint_id for u in cmx.updates if u.app_version_name == app_version}
            >= {"ep-a", "ep-c"}
        )
    )
    pushed = [u for u in cmx.updates if u.app_version_name == app_version]
    assert {u.endpoint_id for u in pushed} == {"ep-a", "ep-c"}
    assert all(u.config_id == "1.1.0" for u in pushed)
    assert json.loads(pushed[0].content) == {"image": "fw-1.1.0.bin"}
    assert all(u.originator_replica_id for u in pushed)


async def eventually_known(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub,
    channel: grpc.aio.Channel,
    application: ApplicationConfig,
    count: int,
) -> None:
    endpoints = endpoint_pb2_grpc.EndpointServiceStub(channel)

    async def recorded() -> bool:
        listed = await endpoints.ListEndpoints(
            endpoint_pb2.ListEndpointsRequest(application_name=application.name)
        )
        return len(listed.endpoints) >= count

    await eventually(recorded, "the endpoints recorded")


async def test_unregistered_endpoint_is_forgotten(
    cmx: CmxPeer,
    otao: RunningOtao,
    grpc_channel: grpc.aio.Channel,
    application: ApplicationConfig,
) -> None:
    app_version = application.app_versions[0]
    await define(grpc_channel, application.name, "1.1.0", ["1.0.0"])
    await cmx.applied(app_version, "ep-gone", "1.1.0", status_code=500)
    key = EndpointKey("default", application.name, "ep-gone")
    store = otao.app.components.storage.endpoints

    async def known() -> bool:
        return await store.get(key) is not None

    await eventually(known, "the endpoint recorded")
    from otao.messaging.records import EndpointUnregisteredEvent

    event = EndpointUnregisteredEvent(
        correlation_id="c-1",
        timestamp=int(time.time() * 1000),
        app_version_name=app_version,
        endpoint_id="ep-gone",
        originator_replica_id="epr-1",
    )
    await cmx.client.publish(
        "kaa.v1.events.epr.endpoint.lifecycle.unregistered", cmx.codec.encode(event)
    )

    async def forgotten() -> bool:
        return await store.get(key) is None

    await eventually(forgotten, "the endpoint forgotten")
    raw = await otao.app.components.storage.mongo.collection("endpoints").count_documents(
        {"endpointId": "ep-gone"}
    )
    assert raw == 0


# --- What released Kaa services send: records written by fastavro from the RFC schemas as the
# kaa-rfcs history has them (docs/kaa-protocols.md, "Kaa releases").


def _rfc_schema(name: str, namespace: str, fields: list[dict[str, object]]) -> dict[str, object]:
    return {"type": "record", "name": name, "namespace": namespace, "fields": fields}


_HEAD: list[dict[str, object]] = [
    {"name": "correlationId", "type": "string"},
    {"name": "timestamp", "type": "long"},
    {"name": "timeout", "type": "long", "default": 0},
    {"name": "appVersionName", "type": "string"},
    {"name": "endpointId", "type": "string"},
]
_OPTIONAL_STRING: list[object] = ["null", "string"]
_CDTP = "org.kaaproject.ipc.cdtp.gen.v1"
_CONFIG_EVENTS = "org.kaaproject.ipc.event.gen.v1.endpoint.config"
# 6/CDTP ConfigRequest from 2017-09-03 until configName was appended on 2026-01-15 (Kaa 1.0-1.5).
CONFIG_REQUEST_PRE_2026 = _rfc_schema(
    "ConfigRequest",
    _CDTP,
    [*_HEAD, {"name": "configId", "type": _OPTIONAL_STRING, "default": None}],
)
CONFIG_REQUEST_2026 = _rfc_schema(
    "ConfigRequest",
    _CDTP,
    [
        *_HEAD,
        {"name": "configId", "type": _OPTIONAL_STRING, "default": None},
        {"name": "configName", "type": _OPTIONAL_STRING, "default": None},
    ],
)
# ConfigApplied before statusCode/reasonPhrase were appended on 2020-05-08 (Kaa 1.1 and older).
CONFIG_APPLIED_PRE_2020 = _rfc_schema(
    "ConfigApplied",
    _CONFIG_EVENTS,
    [
        *_HEAD,
        {"name": "configId", "type": "string"},
        {"name": "originatorReplicaId", "type": _OPTIONAL_STRING, "default": None},
    ],
)
# A newer writer than otao knows: one more optional field appended.
CONFIG_APPLIED_NEWER = _rfc_schema(
    "ConfigApplied",
    _CONFIG_EVENTS,
    [
        *cast(list[dict[str, object]], CONFIG_APPLIED_PRE_2020["fields"]),
        {"name": "statusCode", "type": "int", "default": 200},
        {"name": "reasonPhrase", "type": _OPTIONAL_STRING, "default": None},
        {"name": "appliedAt", "type": ["null", "long"], "default": None},
    ],
)


def written_by_fastavro(schema: dict[str, object], datum: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), datum)
    return buffer.getvalue()


def kaa_request(app_version: str, endpoint_id: str, **more: object) -> dict[str, object]:
    return {
        "correlationId": uuid.uuid4().hex,
        "timestamp": int(time.time() * 1000),
        "timeout": 0,
        "appVersionName": app_version,
        "endpointId": endpoint_id,
        **more,
    }


async def test_a_kaa_1_x_cmx_request_without_config_name_gets_the_update_and_its_correlation_id(
    cmx: CmxPeer, grpc_channel: grpc.aio.Channel, application: ApplicationConfig
) -> None:
    await define(grpc_channel, application.name, "1.1.0", ["1.0.0"])
    datum = kaa_request(application.app_versions[0], "ep-old-cmx", configId="1.0.0")
    response = await cmx.send_raw(written_by_fastavro(CONFIG_REQUEST_PRE_2026, datum))
    assert (response.status_code, response.config_id) == (200, "1.1.0")
    assert response.correlation_id == datum["correlationId"]
    assert json.loads(response.content or b"") == {"image": "fw-1.1.0.bin"}


@pytest.mark.parametrize("config_name", [None, "default"])
async def test_a_current_request_for_the_default_configuration_gets_the_update(
    cmx: CmxPeer,
    grpc_channel: grpc.aio.Channel,
    application: ApplicationConfig,
    config_name: str | None,
) -> None:
    await define(grpc_channel, application.name, "1.1.0", ["1.0.0"])
    datum = kaa_request(
        application.app_versions[0], "ep-new-cmx", configId="1.0.0", configName=config_name
    )
    response = await cmx.send_raw(written_by_fastavro(CONFIG_REQUEST_2026, datum))
    assert (response.status_code, response.config_id) == (200, "1.1.0")
    assert response.correlation_id == datum["correlationId"]


async def test_a_request_for_another_configuration_gets_404_naming_it(
    cmx: CmxPeer, grpc_channel: grpc.aio.Channel, application: ApplicationConfig
) -> None:
    await define(grpc_channel, application.name, "1.1.0", ["1.0.0"])
    datum = kaa_request(
        application.app_versions[0], "ep-net", configId="1.0.0", configName="network"
    )
    response = await cmx.send_raw(written_by_fastavro(CONFIG_REQUEST_2026, datum))
    assert response.status_code == 404
    assert response.reason_phrase and "network" in response.reason_phrase
    assert response.correlation_id == datum["correlationId"]
    assert (response.config_id, response.content) == (None, None)


async def test_a_request_broken_after_its_correlation_id_gets_400_echoing_it(
    cmx: CmxPeer, application: ApplicationConfig
) -> None:
    datum = kaa_request(application.app_versions[0], "ep-broken", configId="1.0.0")
    payload = written_by_fastavro(CONFIG_REQUEST_PRE_2026, datum)
    response = await cmx.send_raw(payload[:-3])  # cut inside configId
    assert (response.status_code, response.reason_phrase) == (400, "malformed ConfigRequest")
    assert response.correlation_id == datum["correlationId"]


async def last_report(otao: RunningOtao, application: str, endpoint_id: str) -> AppliedReport:
    key = EndpointKey("default", application, endpoint_id)

    async def recorded() -> bool:
        state = await otao.app.components.storage.endpoints.get(key)
        return state is not None and state.last_report is not None

    await eventually(recorded, "the report recorded")
    state = await otao.app.components.storage.endpoints.get(key)
    assert state is not None and state.last_report is not None
    return state.last_report


async def publish_applied(cmx: CmxPeer, payload: bytes) -> None:
    await cmx.client.publish(f"kaa.v1.events.{cmx.consumer}.endpoint.config.applied", payload)
    await cmx.client.flush()


async def test_a_report_from_a_newer_writer_with_an_appended_field_is_recorded(
    cmx: CmxPeer, otao: RunningOtao, application: ApplicationConfig
) -> None:
    datum = kaa_request(
        application.app_versions[0],
        "ep-newer",
        configId="1.1.0",
        originatorReplicaId="cmx-9",
        statusCode=500,
        reasonPhrase="flash failed",
        appliedAt=int(time.time() * 1000),
    )
    ignored_before = otao.app.components.broker.kaa.codec.trailing_ignored
    await publish_applied(cmx, written_by_fastavro(CONFIG_APPLIED_NEWER, datum))
    report = await last_report(otao, application.name, "ep-newer")
    assert (report.config_id, report.status_code, report.reason_phrase) == (
        "1.1.0",
        500,
        "flash failed",
    )
    assert otao.app.components.broker.kaa.codec.trailing_ignored > ignored_before


async def test_a_pre_2020_report_without_a_status_code_counts_as_applied(
    cmx: CmxPeer, otao: RunningOtao, application: ApplicationConfig
) -> None:
    datum = kaa_request(
        application.app_versions[0], "ep-older", configId="1.1.0", originatorReplicaId=None
    )
    await publish_applied(cmx, written_by_fastavro(CONFIG_APPLIED_PRE_2020, datum))
    report = await last_report(otao, application.name, "ep-older")
    assert (report.config_id, report.status_code, report.reason_phrase) == ("1.1.0", 200, None)


async def test_a_push_batch_publishes_exactly_what_the_codec_encodes(
    nats_server: NatsServer,
) -> None:
    codec = AvroCodec()
    subjects = Subjects(otao="otao", replica="r-7", consumer="cmx", epr="epr", tekton="tekton")
    connection = NatsConnection(nats_server.url, "config-updated-test")
    connection.start()
    received: list[bytes] = []
    try:
        await eventually(lambda: connection.connected, "connected", 10)
        subscription = await connection.client.subscribe(subjects.config_updated)
        publisher = ConfigUpdatedPublisher(connection, codec, subjects)
        # An id of 64 bytes and more takes a two-byte length; a non-ASCII one more bytes
        # than characters.
        targets = [("kettle-v1", "e-1"), ("kettle-v2", "ü" * 40), ("kettle-v1", "x" * 200)]
        await publisher.config_updated_many("2.0.0", b'{"url": "https://a/b"}', targets)
        await publisher.flush()
        for _ in targets:
            received.append((await subscription.next_msg(timeout=5)).data)
    finally:
        await connection.close()
    events = [codec.decode(ConfigUpdated, data) for data in received]
    assert [(e.app_version_name, e.endpoint_id) for e in events] == targets
    assert {(e.config_id, e.content, e.originator_replica_id) for e in events} == {
        ("2.0.0", b'{"url": "https://a/b"}', "r-7")
    }
    assert len({e.correlation_id for e in events}) == 3
    assert all(len(e.correlation_id) == 32 and e.timestamp > 0 for e in events)
    assert [codec.encode(e) for e in events] == received  # byte for byte
