"""Strict JSON bodies (otao/rpc/strict_json.py) through a real Envoy in front of otao.

Every body route (POST/PUT/PATCH software, PUT settings, POST consents) refuses unknown
fields with a field violation naming the field and, when a known name is close, a hint; the
request changes nothing. Type errors and malformed JSON are otao's 400s too, and no answer
names a proto type.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import httpx
import pytest
from google.api import httpbody_pb2
from google.protobuf import json_format
from kaa.otao.v1 import software_pb2, software_pb2_grpc

from otao.domain.applications import ApplicationConfig
from tests.support.rest import INVALID_ARGUMENT, definition, error, ok

pytestmark = pytest.mark.timeout(60)

APPS = "/api/v1/applications"
INTERNAL_NAMES = ("kaa.", "google.protobuf", "google.api.", "TYPE_", "HttpBody", "_json")


def violations(response: httpx.Response) -> dict[str, str]:
    body = error(response, 400, INVALID_ARGUMENT)
    assert not any(name in response.text for name in INTERNAL_NAMES), response.text
    return {
        v["field"]: v["description"]
        for d in body["details"]
        if d["@type"] == "type.googleapis.com/google.rpc.BadRequest"
        for v in d["fieldViolations"]
    }


def software(application: ApplicationConfig, version: str | None = None) -> str:
    path = f"{APPS}/{application.name}/software"
    return path if version is None else f"{path}/{version}"


async def test_a_misspelt_settings_key_is_refused_and_consent_stays_as_it_was(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    path = f"{APPS}/{application.name}/settings"
    ok(await rest.put(path, json={"consentRequired": True}))

    response = await rest.put(path, json={"consentrequired": False})

    assert violations(response) == {
        "consentrequired": "unknown field; did you mean consentRequired?"
    }
    assert ok(await rest.get(path)) == {"consentRequired": True}


@pytest.mark.parametrize(
    ("misspelt", "hint"),
    [("upgradeableFrom", "upgradableFrom"), ("rolloutpolicy", "rolloutPolicy")],
)
async def test_a_misspelt_definition_key_is_refused_and_nothing_is_stored(
    rest: httpx.AsyncClient, application: ApplicationConfig, misspelt: str, hint: str
) -> None:
    body = definition("1.1.0", [])
    body[misspelt] = ["1.0.0"] if misspelt == "upgradeableFrom" else {"maxFailureRatio": 0.2}

    response = await rest.post(software(application), json=body)

    assert violations(response) == {misspelt: f"unknown field; did you mean {hint}?"}
    assert ok(await rest.get(software(application))) == []


async def test_unknown_nested_fields_are_named_by_their_json_path(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    body = definition(
        "1.1.0",
        [],
        strategy="targeted",
        filters=[{"filterId": "f1", "rolloutdate": "2030-01-01T00:00:00Z"}],
        rolloutPolicy={"maxFailureRatio": 0.2, "minReport": 3},
        colour="red",
    )

    found = violations(await rest.post(software(application), json=body))

    assert found["filters[0].rolloutdate"] == "unknown field; did you mean rolloutDate?"
    assert found["rolloutPolicy.minReport"] == "unknown field; did you mean minReports?"
    assert found["colour"].startswith("unknown field (known: version, upgradableFrom,")


async def test_an_unknown_field_in_a_replace_or_update_changes_nothing(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    stored = ok(await rest.post(software(application), json=definition("1.1.0", [])))
    path = software(application, "1.1.0")

    replaced = await rest.put(path, json={**definition("1.1.0", []), "rolloutStrategyy": "x"})
    updated = await rest.patch(path, json={"rollout_strategy": "suspended", "etagg": "x"})

    assert set(violations(replaced)) == {"rolloutStrategyy"}
    assert violations(updated) == {"etagg": "unknown field; did you mean etag?"}
    assert ok(await rest.get(path)) == stored


async def test_an_unknown_consent_field_is_refused_and_no_consent_is_recorded(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    path = f"{APPS}/{application.name}/endpoints/ep-1/consents"

    response = await rest.post(path, json={"version": "1.1.0", "allversions": True})

    assert violations(response) == {"allversions": "unknown field; did you mean allVersions?"}
    assert ok(await rest.get(path)).get("consents", []) == []


@pytest.mark.parametrize(
    ("body", "field", "description"),
    [
        ({"version": 1}, "version", "must be a JSON string"),
        ({"version": "1.0.0", "upgradableFrom": "1.0.0"}, "upgradableFrom", "must be a JSON array"),
        (
            {"version": "1.0.0", "upgradableFrom": [1]},
            "upgradableFrom[0]",
            "must be a JSON string",
        ),
        ({"version": "1.0.0", "rolloutPolicy": []}, "rolloutPolicy", "must be a JSON object"),
        (
            {"version": "1.0.0", "rolloutPolicy": {"minReports": "many"}},
            "",
            "a value is out of range or malformed",
        ),
        ([], "", "must be a JSON object"),
    ],
)
async def test_a_value_of_the_wrong_json_type_is_a_violation_of_that_field(
    rest: httpx.AsyncClient,
    application: ApplicationConfig,
    body: Any,
    field: str,
    description: str,
) -> None:
    response = await rest.post(software(application), json=body)

    assert violations(response) == {field: description}
    assert ok(await rest.get(software(application))) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"version": "1.0.0", ', "the request body is not valid JSON"),
        (b'{"version": "1.0.0", "version": "2.0.0"}', "invalid version: appears more than once"),
        (b"\xff\xfe", "the request body is not valid JSON"),
        (b'{"version": "1.0.0", "metadata": {"x": NaN}}', "the request body is not valid JSON"),
    ],
)
async def test_a_body_that_is_no_json_object_is_a_clear_400(
    rest: httpx.AsyncClient, application: ApplicationConfig, content: bytes, message: str
) -> None:
    response = await rest.post(
        software(application), content=content, headers={"content-type": "application/json"}
    )

    assert error(response, 400, INVALID_ARGUMENT)["message"] == message
    assert not any(name in response.text for name in INTERNAL_NAMES), response.text


async def test_a_valid_body_in_snake_case_is_accepted(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    body = {
        "version": "1.1.0",
        "upgradable_from": [],
        "rollout_strategy": "general",
        "specification": {"url": "https://fw.example.com/1.1.0.bin"},
    }

    created = ok(await rest.post(software(application), json=body))

    assert created["rolloutStrategy"] == "general"


async def test_a_grpc_client_may_not_set_both_the_typed_body_and_the_json_body(
    grpc_channel: grpc.aio.Channel, application: ApplicationConfig
) -> None:
    stub = software_pb2_grpc.SoftwareServiceStub(grpc_channel)
    request = software_pb2.CreateSoftwareRequest(
        application_name=application.name,
        software=json_format.ParseDict(definition("1.1.0", []), software_pb2.Software()),
        software_json=httpbody_pb2.HttpBody(data=json.dumps(definition("1.2.0", [])).encode()),
    )

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateSoftware(request, timeout=10)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == "set software or software_json, not both"


async def test_a_grpc_request_with_a_field_this_server_does_not_know_is_refused(
    grpc_channel: grpc.aio.Channel, application: ApplicationConfig
) -> None:
    # As a client built from a newer proto would send it: field 15 inside software.
    software_bytes = json_format.ParseDict(
        definition("1.1.0", []), software_pb2.Software()
    ).SerializeToString() + bytes([0x78, 0x01])
    raw = (
        software_pb2.CreateSoftwareRequest(application_name=application.name).SerializeToString()
        + bytes([0x12, len(software_bytes)])
        + software_bytes
    )
    call = grpc_channel.unary_unary(
        "/kaa.otao.v1.SoftwareService/CreateSoftware",
        request_serializer=lambda payload: payload,
        response_deserializer=software_pb2.Software.FromString,
    )

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(raw, timeout=10)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == "the request has fields this server does not know"
    stub = software_pb2_grpc.SoftwareServiceStub(grpc_channel)
    listed = await stub.ListSoftware(
        software_pb2.ListSoftwareRequest(application_name=application.name), timeout=10
    )
    assert list(listed.software) == []
