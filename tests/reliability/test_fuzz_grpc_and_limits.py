"""Bad input straight to otao's gRPC port, and the request size limits of every door.

- Raw bytes to every otao method (random, truncated/garbled protobuf, strings that are not
  UTF-8, nesting past the protobuf recursion limit): INVALID_ARGUMENT or another deliberate
  status, never UNKNOWN/INTERNAL, and the server answers a good call right after.
- Limits, set and agreeing with each other: Envoy refuses a REST body over 1 MiB with 413
  before otao sees it; otao's gRPC server refuses a message over ``max_message_bytes`` (4 MiB
  by default, above anything Envoy forwards) with RESOURCE_EXHAUSTED; NATS payloads are capped
  at 1 MiB by nats-server and by the Avro codec alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml
from google.protobuf import message_factory, symbol_database
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kaa.otao.v1 import software_pb2, software_pb2_grpc

from otao.domain.applications import ApplicationConfig
from otao.messaging.avro import DEFAULT_MAX_PAYLOAD_BYTES
from otao.rpc.server import SERVICE_NAMES
from otao.settings import Settings
from tests.reliability.harness import software_message
from tests.support.cmx import CmxPeer
from tests.support.otao import RunningOtao
from tests.support.rest import definition

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
DELIBERATE = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED,
}


def _methods() -> list[tuple[str, Any]]:
    """(full method path, request message class) of every otao method."""
    pool = symbol_database.Default().pool  # type: ignore[attr-defined]
    found = []
    for service_name in SERVICE_NAMES:
        service = pool.FindServiceByName(service_name)
        for method in service.methods:
            request_class = message_factory.GetMessageClass(method.input_type)
            found.append((f"/{service_name}/{method.name}", request_class))
    return found


METHODS = _methods()


def _deep_value(depth: int) -> bytes:
    """A CreateSoftwareRequest whose specification nests ``depth`` lists deep."""
    value = b""
    for _ in range(depth):
        list_value = b"\x0a" + _varint(len(value)) + value if value else b""  # ListValue.values
        value = b"\x32" + _varint(len(list_value)) + list_value  # Value.list_value (field 6)
    software = b"\x0a\x052.0.0" + b"\x1a" + _varint(len(value)) + value  # version, specification
    return b"\x0a\x03app" + b"\x12" + _varint(len(software)) + software


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _bad_utf8(field_number: int = 1) -> bytes:
    return bytes([field_number << 3 | 2, 2]) + b"\xff\xfe"


RAW_PAYLOADS = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            _bad_utf8(1),
            _bad_utf8(2),
            _bad_utf8(3),
            b"\x0a\x05ab",  # a length past the end
            b"\x0a\xff\xff\xff\xff\x0f",  # an absurd length
            b"\xff" * 12,  # an over-long varint tag
            b"\x07",  # a deprecated group end
            _deep_value(40),
            _deep_value(120),
        ]
    ),
)


def _parses(request_class: Any, data: bytes) -> bool:
    try:
        request_class.FromString(data)
    except Exception:
        return False
    return True


async def _call_raw(channel: grpc.aio.Channel, method: str, data: bytes) -> grpc.StatusCode:
    call = channel.unary_unary(
        method, request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    details = ""
    code = grpc.StatusCode.OK
    try:
        await call(data, timeout=10)
    except grpc.aio.AioRpcError as error:
        details, code = error.details() or "", error.code()
    # Never the parser's exception text or a traceback on the wire.
    assert "Traceback" not in details and "<class" not in details, details
    return code


async def _good_call(channel: grpc.aio.Channel, application: str) -> None:
    stub = software_pb2_grpc.SoftwareServiceStub(channel)
    settings_ = await stub.GetApplicationSettings(
        software_pb2.GetApplicationSettingsRequest(application_name=application), timeout=10
    )
    assert settings_.consent_required is False


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(method=st.sampled_from(METHODS), data=RAW_PAYLOADS)
async def test_raw_bytes_to_every_grpc_method_never_unknown_or_internal(
    grpc_channel: grpc.aio.Channel,
    application: ApplicationConfig,
    method: tuple[str, Any],
    data: bytes,
) -> None:
    path, request_class = method
    code = await _call_raw(grpc_channel, path, data)
    if not _parses(request_class, data):
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (path, data[:40], code)
    else:
        assert code in DELIBERATE, (path, data[:40], code)
    await _good_call(grpc_channel, application.name)


@pytest.mark.parametrize("depth", [30, 49, 50, 99, 150])
async def test_nesting_past_the_protobuf_limit_is_invalid_argument(
    grpc_channel: grpc.aio.Channel, depth: int
) -> None:
    """Two protobuf levels per JSON level: past 49 lists deep the runtime refuses to parse."""
    data = _deep_value(depth)
    code = await _call_raw(grpc_channel, "/kaa.otao.v1.SoftwareService/CreateSoftware", data)
    if _parses(software_pb2.CreateSoftwareRequest, data):
        assert code == grpc.StatusCode.NOT_FOUND, code  # parsed: application "app" is unknown
    else:
        assert depth >= 50
        assert code == grpc.StatusCode.INVALID_ARGUMENT, code


# ---------------------------------------------------------------------------------------------
# Size limits


def _envoy_limits() -> dict[str, int]:
    config = yaml.safe_load((REPO / "deploy" / "envoy.yaml").read_text(encoding="utf-8"))
    listener = config["static_resources"]["listeners"][0]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    filters = {f["name"]: f["typed_config"] for f in manager["http_filters"]}
    return {
        "buffer": filters["envoy.filters.http.buffer"]["max_request_bytes"],
        "transcoder": filters["envoy.filters.http.grpc_json_transcoder"]["max_request_body_size"],
    }


def test_the_limits_agree_and_are_documented() -> None:
    limits = _envoy_limits()
    assert limits == {"buffer": MIB, "transcoder": MIB}
    # A JSON body of at most 1 MiB becomes a protobuf message smaller than otao's limit, so
    # whatever Envoy lets through otao accepts (and only otao's validation says no).
    assert Settings.model_fields["max_message_bytes"].default == 4 * MIB
    assert Settings.model_fields["max_message_bytes"].default > limits["buffer"]
    # NATS: the codec refuses what nats-server would not carry anyway.
    assert DEFAULT_MAX_PAYLOAD_BYTES == MIB
    gateway = (REPO / "docs" / "gateway.md").read_text(encoding="utf-8")
    assert "request body | 1 MiB" in gateway


async def test_a_rest_body_over_1_mib_is_413_before_otao(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    body = json.dumps(definition("2.0.0", specification={"blob": "x" * (MIB + 10)}))
    response = await rest.post(
        f"/api/v1/applications/{application.name}/software",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413, response.text
    assert response.json()["code"] == 8  # RESOURCE_EXHAUSTED
    assert (await rest.get(f"/api/v1/applications/{application.name}/software")).json() == []


async def test_a_rest_body_under_1_mib_but_over_the_specification_limit_is_400(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    body = definition("2.0.0", specification={"blob": "x" * (MIB - 1000)})
    response = await rest.post(f"/api/v1/applications/{application.name}/software", json=body)
    assert response.status_code == 400, response.text
    fields = {v["field"] for d in response.json()["details"] for v in d.get("fieldViolations", [])}
    assert fields == {"specification"}


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (2 * MIB, grpc.StatusCode.INVALID_ARGUMENT),  # under the transport limit: validation
        (4 * MIB + 1024, grpc.StatusCode.RESOURCE_EXHAUSTED),  # over max_message_bytes
        (16 * MIB, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ],
)
async def test_an_oversized_grpc_message_is_refused_and_the_server_goes_on(
    otao: RunningOtao,
    application: ApplicationConfig,
    cmx: CmxPeer,
    size: int,
    expected: grpc.StatusCode,
) -> None:
    assert otao.settings.max_message_bytes == 4 * MIB
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    async with grpc.aio.insecure_channel(otao.grpc_target, options=options) as channel:
        stub = software_pb2_grpc.SoftwareServiceStub(channel)
        request = software_pb2.CreateSoftwareRequest(
            application_name=application.name,
            software=software_message("2.0.0", ["1.0.0"], specification={"blob": "x" * size}),
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.CreateSoftware(request, timeout=30)
        assert raised.value.code() == expected, raised.value.details()
        await _good_call(channel, application.name)
    # Nothing was stored; devices are not offered anything.
    polled = await cmx.request(application.app_versions[0], "ep-1", config_id="1.0.0")
    assert (polled.status_code, polled.config_id) == (200, None)


async def test_nats_server_and_codec_agree_on_the_payload_limit(cmx: CmxPeer) -> None:
    assert cmx.client.max_payload == DEFAULT_MAX_PAYLOAD_BYTES
