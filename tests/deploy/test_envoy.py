"""deploy/envoy.yaml, proved with a real Envoy in front of a small real gRPC server.

The server implements kaa.otao.v1.SoftwareService from the generated stubs (plus the few
Resolution/Endpoint methods whose query parameters the gateway must let through) with canned
behaviour: it records every request it receives and echoes it back, so the tests see exactly
what the transcoder made of the HTTP request.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio
from google.api import annotations_pb2, httpbody_pb2
from google.protobuf import descriptor_pb2, json_format, struct_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2_grpc
from grpc_status import rpc_status
from kaa.otao.v1 import (
    application_pb2,
    endpoint_pb2,
    endpoint_pb2_grpc,
    resolution_pb2,
    resolution_pb2_grpc,
    rollout_pb2,
    software_pb2,
    software_pb2_grpc,
)

from otao.devstack.envoy import DESCRIPTOR_SET, ENVOY_TEMPLATE, checkout_root
from otao.devstack.processes import find_binary
from otao.devstack.processes import free_port as free_tcp_port
from otao.rpc.strict_json import fill_from_json_body
from tests.support.eventually import eventually
from tests.support.stack import EnvoyFactory

Context = grpc.aio.ServicerContext[Any, Any]

pytestmark = pytest.mark.timeout(60)

APP = "/api/v1/applications"
MIB = 1024 * 1024


# ---------------------------------------------------------------------------------------------
# The upstream: canned servicers that record and echo


@dataclass
class Recorder:
    calls: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)

    def record(self, rpc: str, request: Message, context: Context) -> struct_pb2.Value:
        fields = json_format.MessageToDict(request, preserving_proto_field_name=True)
        metadata = {k: str(v) for k, v in context.invocation_metadata() or ()}
        self.calls.append((rpc, fields, metadata))
        value = struct_pb2.Value()
        json_format.ParseDict({"rpc": rpc, "request": fields}, value)
        return value

    @property
    def last(self) -> tuple[str, dict[str, Any]]:
        rpc, fields, _ = self.calls[-1]
        return rpc, fields


def bad_request_status() -> grpc.Status:
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="invalid definition")
    violations = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field="version", description="must be a SemVer 2.0 version"
            ),
            error_details_pb2.BadRequest.FieldViolation(
                field="upgradable_from[0]", description="must be lower than version"
            ),
        ]
    )
    status.details.add().Pack(violations)
    return rpc_status.to_status(status)


@dataclass(eq=False)
class Recording:
    """What the fake servicers below share: every call they get goes to ``recorder``."""

    recorder: Recorder


class Software(Recording, software_pb2_grpc.SoftwareServiceServicer):
    """GetSoftware fails on demand: version ``fail-<grpc code name>`` aborts with that code,
    ``invalid`` with INVALID_ARGUMENT and google.rpc.BadRequest details."""

    async def GetSoftware(
        self, request: software_pb2.GetSoftwareRequest, context: Context
    ) -> software_pb2.Software:
        echo = self.recorder.record("GetSoftware", request, context)
        if request.version == "invalid":
            await context.abort_with_status(bad_request_status())  # type: ignore[attr-defined]
        if request.version.startswith("fail-"):
            code = grpc.StatusCode[request.version.removeprefix("fail-").upper()]
            await context.abort(code, f"failing with {code.name} as asked")
        return software_pb2.Software(version=request.version, metadata=echo)

    async def CreateSoftware(
        self, request: software_pb2.CreateSoftwareRequest, context: Context
    ) -> software_pb2.Software:
        echo = self.recorder.record("CreateSoftware", request, context)
        fill_from_json_body(request)  # otao's own strict parsing of the unparsed REST body
        software = software_pb2.Software()
        software.CopyFrom(request.software)
        software.metadata.CopyFrom(echo)
        return software

    async def UpdateSoftware(
        self, request: software_pb2.UpdateSoftwareRequest, context: Context
    ) -> software_pb2.Software:
        echo = self.recorder.record("UpdateSoftware", request, context)
        return software_pb2.Software(version=request.version, metadata=echo)

    async def ListSoftwareJson(
        self, request: software_pb2.ListSoftwareJsonRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        self.recorder.record("ListSoftwareJson", request, context)
        padding = dict(context.invocation_metadata() or ()).get("x-test-padding", "0")
        items = [
            {"version": "1.1.0", "upgradableFrom": ["1.0.0"], "rolloutStrategy": "general"},
            {"version": "1.0.0", "upgradableFrom": [], "note": "x" * int(padding)},
        ]
        return httpbody_pb2.HttpBody(
            content_type="application/json", data=json.dumps(items).encode()
        )

    async def GetApplicationSettings(
        self,
        request: software_pb2.GetApplicationSettingsRequest,
        context: Context,
    ) -> software_pb2.ApplicationSettings:
        self.recorder.record("GetApplicationSettings", request, context)
        return software_pb2.ApplicationSettings(consent_required=False)


class Resolution(Recording, resolution_pb2_grpc.ResolutionServiceServicer):
    async def ResolveUpdate(
        self, request: resolution_pb2.ResolveUpdateRequest, context: Context
    ) -> resolution_pb2.ResolveUpdateResponse:
        self.recorder.record("ResolveUpdate", request, context)
        return resolution_pb2.ResolveUpdateResponse(current_version=request.current_version)

    async def GetUpgradePath(
        self, request: resolution_pb2.GetUpgradePathRequest, context: Context
    ) -> resolution_pb2.UpgradePath:
        self.recorder.record("GetUpgradePath", request, context)
        return resolution_pb2.UpgradePath(
            from_version=request.from_version, to_version=request.to_version
        )


class Endpoints(Recording, endpoint_pb2_grpc.EndpointServiceServicer):
    async def ListEndpoints(
        self, request: endpoint_pb2.ListEndpointsRequest, context: Context
    ) -> endpoint_pb2.ListEndpointsResponse:
        self.recorder.record("ListEndpoints", request, context)
        return endpoint_pb2.ListEndpointsResponse(next_page_token="next")


@dataclass
class Upstream:
    port: int
    recorder: Recorder


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def upstream() -> AsyncIterator[Upstream]:
    recorder = Recorder()
    server = grpc.aio.server()
    software_pb2_grpc.add_SoftwareServiceServicer_to_server(Software(recorder), server)  # type: ignore[abstract]
    resolution_pb2_grpc.add_ResolutionServiceServicer_to_server(Resolution(recorder), server)  # type: ignore[abstract]
    endpoint_pb2_grpc.add_EndpointServiceServicer_to_server(Endpoints(recorder), server)  # type: ignore[abstract]
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)  # type: ignore[attr-defined]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield Upstream(port, recorder)
    await server.stop(grace=None)


@pytest.fixture(scope="module")
def gateway(upstream: Upstream, envoy_factory: EnvoyFactory) -> Iterator[str]:
    envoy = envoy_factory(upstream.port)
    yield envoy.base_url
    envoy.stop()


@pytest.fixture(scope="module")
def gateway_without_upstream(envoy_factory: EnvoyFactory) -> Iterator[str]:
    envoy = envoy_factory(free_tcp_port())  # nothing listens there
    yield envoy.base_url
    envoy.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def client(gateway: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway, timeout=10, trust_env=False) as http:
        yield http


def assert_json_error(response: httpx.Response, status: int, grpc_code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["code"] == grpc_code
    assert isinstance(body["message"], str)
    return body


def json_ok(response: httpx.Response) -> Any:
    """The JSON of a 200 answer whose content type is exactly application/json."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


async def answered_by_envoy(
    upstream: Upstream, request: Awaitable[httpx.Response]
) -> httpx.Response:
    """The answer to ``request`` (sent here), given by Envoy itself: no call reached otao."""
    calls = len(upstream.recorder.calls)
    response = await request
    assert len(upstream.recorder.calls) == calls
    return response


async def refused_by_envoy(
    client: httpx.AsyncClient, upstream: Upstream, url: str
) -> dict[str, Any]:
    """GET ``url``: Envoy's own 400 INVALID_ARGUMENT, no call reached otao; the error body."""
    response = await answered_by_envoy(upstream, client.get(url))
    return assert_json_error(response, 400, code_pb2.INVALID_ARGUMENT)


# ---------------------------------------------------------------------------------------------
# The config as committed


def test_the_committed_config_passes_envoys_own_validation() -> None:
    # As operators run it: from the repository root, with the relative gen/otao.pb.
    result = subprocess.run(
        [str(find_binary("envoy")), "--mode", "validate", "-c", str(ENVOY_TEMPLATE)],
        cwd=checkout_root(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_committed_descriptor_set_carries_the_error_detail_types() -> None:
    # convert_grpc_status can only render details whose types are in the descriptor set;
    # without google.rpc.BadRequest an INVALID_ARGUMENT with field violations reaches REST
    # clients as an empty 400. tools/gen.py is the descriptor's only writer.
    descriptor_set = descriptor_pb2.FileDescriptorSet()
    descriptor_set.ParseFromString((checkout_root() / DESCRIPTOR_SET).read_bytes())
    files = {f.name for f in descriptor_set.file}
    assert "google/rpc/error_details.proto" in files, (
        "gen/otao.pb lacks google/rpc/error_details.proto: add it to the descriptor set in "
        "tools/gen.py (see docs/gateway.md)"
    )


# ---------------------------------------------------------------------------------------------
# Transcoding


async def test_a_get_route_reaches_the_rpc_with_its_path_parameters(
    client: httpx.AsyncClient, upstream: Upstream
) -> None:
    response = await client.get(f"{APP}/smart-kettle/software/1.2.0")

    assert json_ok(response)["version"] == "1.2.0"
    assert upstream.recorder.last == (
        "GetSoftware",
        {"application_name": "smart-kettle", "version": "1.2.0"},
    )


async def test_a_path_parameter_keeps_semver_build_metadata(
    client: httpx.AsyncClient, upstream: Upstream
) -> None:
    response = await client.get(f"{APP}/smart-kettle/software/1.2.0-rc.1+build.7")

    assert response.status_code == 200
    assert upstream.recorder.last[1]["version"] == "1.2.0-rc.1+build.7"


async def test_a_json_post_body_reaches_the_rpc_unparsed_beside_its_path_parameters(
    client: httpx.AsyncClient, upstream: Upstream
) -> None:
    # Bound to the HttpBody field software_json: Envoy passes the bytes, otao parses them.
    definition = {
        "version": "1.3.0",
        "upgradableFrom": ["1.2.0", "1.1.0"],
        "specification": {"url": "https://example.com/fw.bin", "size": 1024, "signed": True},
        "metadata": {"notes": "faster boiling"},
        "rolloutStrategy": "targeted",
        "filters": [{"filterId": "beta", "rolloutDate": "2030-01-01T00:00:00Z"}],
    }

    response = await client.post(f"{APP}/smart-kettle/software", json=definition)

    assert response.status_code == 200, response.text
    rpc, request = upstream.recorder.last
    assert rpc == "CreateSoftware"
    assert request["application_name"] == "smart-kettle"
    assert "software" not in request
    assert request["software_json"]["content_type"] == "application/json"
    sent = base64.b64decode(request["software_json"]["data"])
    assert sent == response.request.content
    body = response.json()
    assert body["specification"] == definition["specification"]
    assert body["upgradableFrom"] == ["1.2.0", "1.1.0"]  # lowerCamelCase JSON names
    assert body["filters"] == [{"filterId": "beta", "rolloutDate": "2030-01-01T00:00:00Z"}]


async def test_primitive_fields_with_default_values_are_printed(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(f"{APP}/smart-kettle/settings")

    assert response.status_code == 200
    assert response.json() == {"consentRequired": False}


async def test_list_software_json_comes_out_as_the_bare_http_body_with_its_content_type(
    client: httpx.AsyncClient, upstream: Upstream
) -> None:
    body = json_ok(await client.get(f"{APP}/smart-kettle/software"))

    assert isinstance(body, list)
    assert [item["version"] for item in body] == ["1.1.0", "1.0.0"]
    assert upstream.recorder.last == ("ListSoftwareJson", {"application_name": "smart-kettle"})


async def test_a_response_of_several_mebibytes_passes_the_gateway(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(
        f"{APP}/smart-kettle/software", headers={"x-test-padding": str(3 * MIB)}
    )

    assert response.status_code == 200
    assert len(response.json()[1]["note"]) == 3 * MIB


async def test_grpc_only_headers_do_not_reach_rest_clients(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{APP}/smart-kettle/software/1.2.0")

    assert response.status_code == 200
    assert not [name for name in response.headers if name.startswith("grpc-")]


async def test_request_headers_reach_the_server_as_metadata(
    client: httpx.AsyncClient, upstream: Upstream
) -> None:
    await client.get(f"{APP}/smart-kettle/software/1.2.0", headers={"authorization": "Bearer abc"})

    _, _, metadata = upstream.recorder.calls[-1]
    assert metadata["authorization"] == "Bearer abc"
    assert metadata["x-envoy-original-path"] == f"{APP}/smart-kettle/software/1.2.0"


# ---------------------------------------------------------------------------------------------
# Query parameters


async def test_update_mask_and_etag_come_from_the_query_string(
    client: httpx.AsyncClient, upstream: Upstream
) -> None:
    response = await client.patch(
        f"{APP}/smart-kettle/software/1.2.0",
        params={"updateMask": "rolloutStrategy,upgradableFrom", "etag": "e-7"},
        json={"rolloutStrategy": "general", "upgradableFrom": ["1.0.0"]},
    )

    assert response.status_code == 200, response.text
    rpc, request = upstream.recorder.last
    assert rpc == "UpdateSoftware"
    assert request["etag"] == "e-7"
    assert request["version"] == "1.2.0"
    # MessageToDict prints a FieldMask in its JSON form: the paths, lowerCamelCase, joined.
    assert request["update_mask"] == "rolloutStrategy,upgradableFrom"


@pytest.mark.parametrize(
    "params",
    [
        {"updateMask": "rollout_strategy,upgradable_from"},
        {"update_mask": "rolloutStrategy,upgradableFrom"},
        [("updateMask", "rolloutStrategy"), ("updateMask", "upgradableFrom")],
    ],
    ids=["snake-case-paths", "snake-case-name", "repeated"],
)
async def test_update_mask_accepts_its_other_spellings(
    client: httpx.AsyncClient, upstream: Upstream, params: Any
) -> None:
    response = await client.patch(
        f"{APP}/smart-kettle/software/1.2.0", params=params, json={"rolloutStrategy": "general"}
    )

    assert response.status_code == 200, response.text
    assert upstream.recorder.last[1]["update_mask"] == "rolloutStrategy,upgradableFrom"


async def test_current_version_keeps_a_plus_sign_from_the_query_string(
    client: httpx.AsyncClient, upstream: Upstream
) -> None:
    response = await client.get(
        f"{APP}/smart-kettle/endpoints/ep-1/software:resolve?currentVersion=1.0.0+build.3"
    )

    assert response.status_code == 200, response.text
    assert upstream.recorder.last == (
        "ResolveUpdate",
        {
            "application_name": "smart-kettle",
            "endpoint_id": "ep-1",
            "current_version": "1.0.0+build.3",
        },
    )
    assert response.json()["currentVersion"] == "1.0.0+build.3"


async def test_from_and_to_reach_the_upgrade_path_request(
    client: httpx.AsyncClient, upstream: Upstream
) -> None:
    response = await client.get(
        f"{APP}/smart-kettle/upgrade-path", params={"from": "1.0.0", "to": "2.0.0"}
    )

    assert response.status_code == 200, response.text
    assert upstream.recorder.last[1] == {
        "application_name": "smart-kettle",
        "from_version": "1.0.0",
        "to_version": "2.0.0",
    }
    assert response.json() == {"from": "1.0.0", "to": "2.0.0", "hops": []}


async def test_list_endpoints_takes_version_and_paging_from_the_query_string(
    client: httpx.AsyncClient, upstream: Upstream
) -> None:
    response = await client.get(
        f"{APP}/smart-kettle/endpoints",
        params={"version": "1.0.0", "pageSize": "50", "pageToken": "abc"},
    )

    assert response.status_code == 200, response.text
    assert upstream.recorder.last == (
        "ListEndpoints",
        {
            "application_name": "smart-kettle",
            "version": "1.0.0",
            "page_size": 50,
            "page_token": "abc",
        },
    )


async def test_an_unknown_query_parameter_reaches_otao_unbound_in_the_original_path(
    client: httpx.AsyncClient, upstream: Upstream
) -> None:
    # The transcoder ignores it (its own 400 would name the proto type); otao refuses it by
    # name from x-envoy-original-path (tests/rpc/test_rest_query.py).
    response = await client.get(f"{APP}/smart-kettle/software/1.2.0", params={"colour": "red"})

    assert response.status_code == 200, response.text
    rpc, fields, metadata = upstream.recorder.calls[-1]
    assert (rpc, fields) == (
        "GetSoftware",
        {"application_name": "smart-kettle", "version": "1.2.0"},
    )
    assert metadata["x-envoy-original-path"].endswith("/software/1.2.0?colour=red")


@pytest.mark.parametrize(
    "query",
    [
        "version=9.9.9",
        "applicationName=other-app",
        "application_name=other-app",
        "application%5Fname=other-app",
        "%61pplicationName=other-app",
        "ver%73ion=9.9.9",
        "etag=x&version=9.9.9",
        "version",
        "endpointId=ep-2",
        "endpoint_id=ep-2",
    ],
)
async def test_a_query_parameter_cannot_override_a_path_parameter(
    client: httpx.AsyncClient, upstream: Upstream, query: str
) -> None:
    # Left alone, Envoy 1.40's transcoder binds query parameters after the path variables,
    # so the query value would win; the guard routes in deploy/envoy.yaml refuse instead.
    body = await refused_by_envoy(client, upstream, f"{APP}/smart-kettle/software/1.2.0?{query}")

    assert "path parameter" in body["message"]


@pytest.mark.parametrize(
    "path",
    [
        f"{APP}/smart-kettle/endpoints?applicationName=other-app",
        f"{APP}/smart-kettle/endpoints/ep-1/software:resolve?endpointId=ep-2",
        f"{APP}/smart-kettle/endpoints/ep-1/software:resolve?application_name=x",
        f"{APP}/smart-kettle/software?applicationName=other-app",
    ],
)
async def test_the_override_guard_covers_every_route(
    client: httpx.AsyncClient, upstream: Upstream, path: str
) -> None:
    await refused_by_envoy(client, upstream, path)


# ---------------------------------------------------------------------------------------------
# Errors


async def test_invalid_argument_with_bad_request_details_is_a_400_with_the_field_violations(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(f"{APP}/smart-kettle/software/invalid")

    body = assert_json_error(response, 400, code_pb2.INVALID_ARGUMENT)
    assert body["message"] == "invalid definition"
    assert body["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [
                {"field": "version", "description": "must be a SemVer 2.0 version", "reason": ""},
                {
                    "field": "upgradable_from[0]",
                    "description": "must be lower than version",
                    "reason": "",
                },
            ],
        }
    ]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.ABORTED, 409),
        (grpc.StatusCode.UNAUTHENTICATED, 401),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.FAILED_PRECONDITION, 400),
        (grpc.StatusCode.INTERNAL, 500),
    ],
    ids=lambda value: value.name if isinstance(value, grpc.StatusCode) else str(value),
)
async def test_a_grpc_error_becomes_its_http_status_with_a_json_body(
    client: httpx.AsyncClient, code: grpc.StatusCode, status: int
) -> None:
    response = await client.get(f"{APP}/smart-kettle/software/fail-{code.name.lower()}")

    body = assert_json_error(response, status, code.value[0])
    assert body == {
        "code": code.value[0],
        "message": f"failing with {code.name} as asked",
        "details": [],
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nothing/here"),
        ("GET", f"{APP}/smart-kettle/no-such-collection"),
        ("GET", "/"),
    ],
)
async def test_an_unknown_route_is_a_404_json_error(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)

    assert_json_error(response, 404, code_pb2.NOT_FOUND)


def rest_routes() -> dict[str, set[str]]:
    """Every REST path template of the API (from the descriptor set) -> its HTTP methods."""
    routes: dict[str, set[str]] = {}
    for module in (software_pb2, resolution_pb2, endpoint_pb2, rollout_pb2, application_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                options = method.GetOptions()
                if options.HasExtension(annotations_pb2.http):
                    rule = options.Extensions[annotations_pb2.http]
                    verb = rule.WhichOneof("pattern")
                    routes.setdefault(getattr(rule, verb), set()).add(verb.upper())
    return routes


WRONG_METHODS = [
    pytest.param(verb, template, allowed, id=f"{verb} {template.removeprefix(APP)}")
    for template, allowed in rest_routes().items()
    for verb in ("GET", "POST", "PUT", "PATCH", "DELETE")
    if verb not in allowed
]


@pytest.mark.parametrize(("verb", "template", "allowed"), WRONG_METHODS)
async def test_a_route_asked_with_another_method_is_a_405_with_allow(
    client: httpx.AsyncClient, upstream: Upstream, verb: str, template: str, allowed: set[str]
) -> None:
    path = re.sub(r"\{[^}]+\}", "x1", template)
    request = client.request(verb, path, json={} if verb != "GET" else None)

    response = await answered_by_envoy(upstream, request)

    body = assert_json_error(response, 405, code_pb2.UNIMPLEMENTED)
    assert set(response.headers["allow"].split(", ")) == allowed
    assert body["message"].startswith("method not allowed here; allowed: ")


@pytest.mark.parametrize("value", ["abc", "--1", "1-2", "-", "1.5", "", "9999999999"])
async def test_a_page_size_that_is_no_whole_number_is_a_clear_400(
    client: httpx.AsyncClient, upstream: Upstream, value: str
) -> None:
    body = await refused_by_envoy(
        client, upstream, f"{APP}/smart-kettle/endpoints?pageSize={value}"
    )

    assert body["message"] == "pageSize must be a whole number of at most 9 digits"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{APP}/smart-kettle/no-such-collection"),
        ("PUT", f"{APP}/smart-kettle/endpoints"),
        ("GET", f"{APP}/smart-kettle/endpoints?pageSize=abc"),
        ("GET", f"{APP}/smart-kettle/endpoints?page_size=1e3"),
        ("GET", f"{APP}/smart%2Fkettle/software"),
        ("GET", f"{APP}/smart-kettle/software/1.0.0?version=2"),
        ("POST", f"{APP}/smart-kettle/software"),  # the body below is over 1 MiB
    ],
)
async def test_no_envoy_error_names_an_internal_type(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    content = b"x" * (MIB + 1) if method == "POST" else None

    response = await client.request(method, path, content=content)

    assert response.status_code >= 400
    assert response.json()["message"]
    for internal in ("kaa.", "google.", "TYPE_", "in the type", "Request"):
        assert internal not in response.text, response.text


async def test_a_body_reaches_otao_byte_for_byte_unknown_fields_and_bad_json_included(
    client: httpx.AsyncClient, upstream: Upstream
) -> None:
    # Envoy parses no body any more: otao refuses what is wrong (tests/rpc/test_strict_json.py).
    for content in (b'{"version": "1.0.0", "colour": "red"}', b'{"version": "1.0.0", '):
        await client.patch(
            f"{APP}/smart-kettle/software/1.2.0",
            content=content,
            headers={"content-type": "application/json"},
        )
        rpc, fields, _ = upstream.recorder.calls[-1]
        assert rpc == "UpdateSoftware"
        assert base64.b64decode(fields["software_json"]["data"]) == content


async def test_a_body_over_one_mebibyte_is_a_413_json_error(
    client: httpx.AsyncClient, upstream: Upstream
) -> None:
    body = json.dumps({"version": "1.0.0", "metadata": {"blob": "x" * MIB}}).encode()
    request = client.post(
        f"{APP}/smart-kettle/software",
        content=body,
        headers={"content-type": "application/json"},
    )

    response = await answered_by_envoy(upstream, request)

    assert_json_error(response, 413, code_pb2.RESOURCE_EXHAUSTED)


async def test_a_body_just_under_one_mebibyte_passes(client: httpx.AsyncClient) -> None:
    body = json.dumps({"version": "1.0.0", "metadata": {"blob": "x" * (MIB - 1000)}}).encode()
    assert len(body) < MIB

    response = await client.post(
        f"{APP}/smart-kettle/software",
        content=body,
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 200


async def test_an_escaped_slash_in_a_path_parameter_is_refused(
    client: httpx.AsyncClient, upstream: Upstream
) -> None:
    await refused_by_envoy(client, upstream, f"{APP}/smart%2Fkettle/software/1.2.0")


async def test_an_upstream_that_is_down_gives_a_503_json_error(
    gateway_without_upstream: str,
) -> None:
    async with httpx.AsyncClient(
        base_url=gateway_without_upstream, timeout=10, trust_env=False
    ) as http:
        get = await http.get(f"{APP}/smart-kettle/software/1.2.0")
        post = await http.post(f"{APP}/smart-kettle/software", json={"version": "1.0.0"})

    assert_json_error(get, 503, code_pb2.UNAVAILABLE)
    assert_json_error(post, 503, code_pb2.UNAVAILABLE)


# ---------------------------------------------------------------------------------------------
# Health


async def test_healthz_is_ok_while_the_upstream_reports_serving(
    client: httpx.AsyncClient,
) -> None:
    # Envoy learns it by active grpc.health.v1 checks (every second in tests).
    async def healthy() -> bool:
        return (await client.get("/healthz")).status_code == 200

    await eventually(healthy, "Envoy seeing the upstream SERVING")
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "SERVING"}


async def test_healthz_is_503_while_the_upstream_is_down(gateway_without_upstream: str) -> None:
    async with httpx.AsyncClient(
        base_url=gateway_without_upstream, timeout=10, trust_env=False
    ) as http:
        response = await http.get("/healthz")

    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "NOT_SERVING"}
