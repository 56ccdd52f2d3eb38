"""Tenant isolation through every route, and path parameters that cannot be spoofed.

Tenants A and B both have an application ``kettle``. B holds definitions, an endpoint with an
applied and a failed report (6/CDTP over NATS), a consent and audit entries. With A's token (all
scopes on ``kettle``), every RPC, over gRPC and over REST via Envoy, sees only A's data or 404,
and B's data is unchanged afterwards. The route table below must name exactly the methods otao
serves, so a new route cannot be forgotten.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from kaa.otao.v1 import watch_pb2, watch_pb2_grpc

from otao.rpc.access import METHOD_SCOPES
from tests.security.doors import (
    DOORS,
    Door,
    Result,
    Secured,
    all_methods,
    eventually,
    http_rule,
)
from tests.support.cmx import CmxPeer

pytestmark = pytest.mark.timeout(60)

SW = "/kaa.otao.v1.SoftwareService/"
RES = "/kaa.otao.v1.ResolutionService/"
EP = "/kaa.otao.v1.EndpointService/"
RO = "/kaa.otao.v1.RolloutService/"
AP = "/kaa.otao.v1.ApplicationService/"
WA = "/kaa.otao.v1.WatchService/"
KETTLE = {"application_name": "kettle"}
ENDPOINT = {**KETTLE, "endpoint_id": "ep-b"}
B_APPLIED, B_FAILED = "7.1.0", "7.2.0"
A_VERSION = "3.0.0"
SECRET = "b-secret"


def definition(version: str, upgradable_from: list[str], owner: str) -> dict[str, Any]:
    return {
        "version": version,
        "upgradable_from": upgradable_from,
        "specification": {"image": f"{owner}-{version}.bin"},
        "metadata": {"owner": owner},
        "rollout_strategy": "general",
    }


@dataclass(frozen=True)
class Seeded:
    stack: Secured
    a_token: str
    b_token: str

    async def b_snapshot(self) -> dict[str, Any]:
        """Everything of B's that A might reach, as B sees it (REST, B's token)."""
        calls: dict[str, tuple[str, dict[str, Any]]] = {
            "software": (SW + "ListSoftwareJson", KETTLE),
            "settings": (SW + "GetApplicationSettings", KETTLE),
            "endpoint": (EP + "GetEndpointSoftware", ENDPOINT),
            "endpoints": (EP + "ListEndpoints", KETTLE),
            "distribution": (EP + "GetSoftwareDistribution", KETTLE),
            "consents": (EP + "ListConsents", ENDPOINT),
            "rollout": (RO + "GetRolloutStatus", {**KETTLE, "version": B_FAILED}),
            "audit": (RO + "ListAuditEntries", {**KETTLE, "page_size": 1000}),
        }
        results = await asyncio.gather(
            *(
                self.stack.rest_call(method, fields, self.b_token)
                for method, fields in calls.values()
            )
        )
        snapshot = {}
        for name, result in zip(calls, results, strict=True):
            assert result.code == grpc.StatusCode.OK, (name, result)
            snapshot[name] = result.body
        # When the rollout's counts were made is the time of this read (a small fleet is
        # counted on every read), not B's data: everything else must stay the same.
        for stamp in ("countedAt", "outcomesCountedAt"):
            snapshot["rollout"].pop(stamp, None)
        return snapshot

    async def a_software(self) -> list[str]:
        result = await self.stack.rest_call(SW + "ListSoftwareJson", KETTLE, self.a_token)
        assert result.code == grpc.StatusCode.OK, result
        return [s["version"] for s in result.body]


@pytest.fixture(scope="module")
async def seeded(secured: Secured) -> Seeded:
    a, b = secured.a, secured.b
    seeded = Seeded(secured, a.token(), b.token())
    for fields, token in (
        ({**KETTLE, "software": definition(B_APPLIED, [], SECRET)}, seeded.b_token),
        ({**KETTLE, "software": definition(B_FAILED, [B_APPLIED], SECRET)}, seeded.b_token),
        ({**KETTLE, "software": definition(A_VERSION, ["2.9.0"], "a")}, seeded.a_token),
    ):
        created = await secured.rest_call(SW + "CreateSoftware", fields, token)
        assert created.code == grpc.StatusCode.OK, created
    # B's endpoint reports one version applied and one failed, as a device would (6/CDTP).
    cmx = await CmxPeer.connect(
        secured.nats_url, otao=f"otao-{secured.suffix}", consumer=f"cmx-{secured.suffix}"
    )
    try:
        await cmx.applied(b.app_version, "ep-b", B_APPLIED)
        await cmx.applied(b.app_version, "ep-b", B_FAILED, status_code=500, reason="flash full")
    finally:
        await cmx.close()

    async def reported() -> bool:
        result = await secured.rest_call(EP + "GetEndpointSoftware", ENDPOINT, seeded.b_token)
        body = result.body or {}
        return body.get("currentVersion") == B_APPLIED and body.get("failedVersions") == [B_FAILED]

    await eventually(reported)
    consent = await secured.rest_call(
        EP + "CreateConsent", {**ENDPOINT, "consent": {"version": B_FAILED}}, seeded.b_token
    )
    assert consent.code == grpc.StatusCode.OK, consent
    snapshot = await seeded.b_snapshot()
    # The seed is what the table below assumes.
    assert [s["version"] for s in snapshot["software"]] == [B_FAILED, B_APPLIED]
    assert snapshot["settings"] == {"consentRequired": True}
    assert [c["version"] for c in snapshot["consents"]["consents"]] == [B_FAILED]
    assert snapshot["distribution"]["totalEndpoints"] == "1"
    assert snapshot["audit"]["entries"]
    assert await seeded.a_software() == [A_VERSION]
    return seeded


# ---------------------------------------------------------------------------------------------
# The route table: every RPC, what A asks of "kettle" (named like B's data), what A may see.

Check = Callable[[Any, Secured], None]


@dataclass(frozen=True)
class Route:
    fields: dict[str, Any]
    #: OK with this check of the body, or the error code A must get
    expect: Check | grpc.StatusCode
    #: A's own call that undoes what an allowed write did to A's data
    undo: tuple[str, dict[str, Any]] | None = None


def no_b_versions(body: Any, stack: Secured) -> None:
    text = json.dumps(body)
    assert B_APPLIED not in text and B_FAILED not in text, body


def only_a_software(key: str | None) -> Check:
    def check(body: Any, stack: Secured) -> None:
        items = body[key] if key else body
        assert [s["version"] for s in items] == [A_VERSION], body

    return check


def a_settings(body: Any, stack: Secured) -> None:
    assert body == {"consentRequired": False}


def created_in_a(body: Any, stack: Secured) -> None:
    # Created, not 409: B's definition of that version is not in A's way, nor touched.
    assert body["version"] == B_APPLIED
    assert body["specification"] == {"image": f"a-{B_APPLIED}.bin"}


def unknown_endpoint(body: Any, stack: Secured) -> None:
    assert body.get("currentVersion", "") == "", body
    no_b_versions(body, stack)


def a_endpoints(body: Any, stack: Secured) -> None:
    for endpoint in body["endpoints"]:
        assert endpoint.get("currentVersion", "") == "" and "lastReport" not in endpoint, body


def a_distribution(body: Any, stack: Secured) -> None:
    assert all(v.get("version", "") == "" for v in body["versions"]), body


def consent_in_a(body: Any, stack: Secured) -> None:
    assert body["version"] == B_FAILED


def a_audit(body: Any, stack: Secured) -> None:
    assert body["entries"], body
    for entry in body["entries"]:
        assert entry["tenantId"] == stack.a.id, entry
        assert entry["actor"] != f"user-{stack.b.id}", entry


def only_a_kettle(body: Any, stack: Secured) -> None:
    # B's kettle has B's app version and requires consent: neither may show.
    assert body["applications"] == [
        {"name": "kettle", "appVersions": [stack.a.app_version], "consentRequired": False}
    ], body


NOT_FOUND = grpc.StatusCode.NOT_FOUND

ROUTES: dict[str, Route] = {
    SW + "ListSoftware": Route(KETTLE, only_a_software("software")),
    SW + "ListSoftwareJson": Route(KETTLE, only_a_software(None)),
    SW + "GetSoftware": Route({**KETTLE, "version": B_APPLIED}, NOT_FOUND),
    SW + "CreateSoftware": Route(
        {**KETTLE, "software": definition(B_APPLIED, [], "a")},
        created_in_a,
        undo=(SW + "DeleteSoftware", {**KETTLE, "version": B_APPLIED}),
    ),
    SW + "ReplaceSoftware": Route(
        {**KETTLE, "version": B_APPLIED, "software": definition(B_APPLIED, [], "a")}, NOT_FOUND
    ),
    SW + "UpdateSoftware": Route(
        {**KETTLE, "version": B_APPLIED, "software": {"rollout_strategy": "suspended"}},
        NOT_FOUND,
    ),
    SW + "DeleteSoftware": Route({**KETTLE, "version": B_APPLIED}, NOT_FOUND),
    SW + "GetApplicationSettings": Route(KETTLE, a_settings),
    # A writes A's own current value: any effect on B's (True) would show.
    SW + "UpdateApplicationSettings": Route(
        {**KETTLE, "settings": {"consent_required": False}}, a_settings
    ),
    RES + "ResolveUpdate": Route(ENDPOINT, unknown_endpoint),
    RES + "ExplainResolution": Route(ENDPOINT, unknown_endpoint),
    RES + "GetUpgradePath": Route(
        {**KETTLE, "from_version": B_APPLIED, "to_version": B_FAILED}, NOT_FOUND
    ),
    RES + "GetUpgradeGraph": Route(KETTLE, no_b_versions),
    EP + "GetEndpointSoftware": Route(ENDPOINT, unknown_endpoint),
    EP + "ListEndpoints": Route(KETTLE, a_endpoints),
    EP + "GetSoftwareDistribution": Route(KETTLE, a_distribution),
    EP + "DeleteEndpointFailure": Route({**ENDPOINT, "version": B_FAILED}, NOT_FOUND),
    EP + "CreateConsent": Route(
        {**ENDPOINT, "consent": {"version": B_FAILED}},
        consent_in_a,
        undo=(EP + "DeleteConsent", {**ENDPOINT, "version": B_FAILED}),
    ),
    EP + "ListConsents": Route(ENDPOINT, no_b_versions),
    EP + "DeleteConsent": Route({**ENDPOINT, "version": B_FAILED}, NOT_FOUND),
    RO + "GetRolloutStatus": Route({**KETTLE, "version": B_FAILED}, NOT_FOUND),
    RO + "ListAuditEntries": Route({**KETTLE, "page_size": 1000}, a_audit),
    RO + "AdvanceRollout": Route({**KETTLE, "version": B_FAILED}, NOT_FOUND),
    RO + "PauseRollout": Route({**KETTLE, "version": B_FAILED}, NOT_FOUND),
    RO + "ResumeRollout": Route({**KETTLE, "version": B_FAILED}, NOT_FOUND),
    AP + "ListApplications": Route({"page_size": 1000}, only_a_kettle),
    # A stream on B's version ends at once with NOT_FOUND, like the unary reads.
    WA + "WatchRollout": Route({**KETTLE, "version": B_FAILED}, NOT_FOUND),
}
# Streams that stay open on A's own data: tried by their own test below.
OPEN_STREAMS = {WA + "WatchApplication"}

CASES = [
    pytest.param(method, door, id=f"{method.rsplit('/', 1)[1]}-{door}")
    for method in ROUTES
    for door in DOORS
    if door == "grpc" or http_rule(method) is not None
]


def test_the_route_table_covers_exactly_the_methods_otao_serves() -> None:
    assert set(ROUTES) | OPEN_STREAMS == set(METHOD_SCOPES)
    # METHOD_SCOPES itself names every method of otao's services (from the protos).
    assert set(METHOD_SCOPES) == all_methods()
    # Every method with a REST route is tried through Envoy too.
    rest_cases = {p.values[0] for p in CASES if p.values[1] == "rest"}
    assert rest_cases == {m for m in ROUTES if http_rule(m) is not None}
    assert len(rest_cases) >= len(ROUTES) - 1


@pytest.mark.parametrize(("method", "door"), CASES)
async def test_a_token_of_tenant_a_neither_sees_nor_changes_tenant_bs_data(
    seeded: Seeded, method: str, door: Door
) -> None:
    stack = seeded.stack
    route = ROUTES[method]
    before = await seeded.b_snapshot()

    result = await stack.call(door, method, route.fields, seeded.a_token)
    try:
        if isinstance(route.expect, grpc.StatusCode):
            assert result.code == route.expect, result
            if door == "rest":
                assert result.http_status == 404, result
        else:
            assert result.code == grpc.StatusCode.OK, result
            route.expect(result.body, stack)
            text = json.dumps(result.body)
            assert SECRET not in text and stack.b.id not in text, result.body
    finally:
        if route.undo is not None and result.code == grpc.StatusCode.OK:
            undone = await stack.call(door, *route.undo, seeded.a_token)
            assert undone.code == grpc.StatusCode.OK, undone

    assert await seeded.b_snapshot() == before
    assert await seeded.a_software() == [A_VERSION]


async def test_a_watch_of_tenant_as_application_sees_none_of_tenant_bs_rollouts(
    seeded: Seeded,
) -> None:
    stack = seeded.stack
    call = watch_pb2_grpc.WatchServiceStub(stack.channel).WatchApplication(
        watch_pb2.WatchApplicationRequest(application_name="kettle"),
        metadata=[("authorization", f"Bearer {seeded.a_token}")],
    )
    try:
        opened = await asyncio.wait_for(call.read(), 10)
        assert isinstance(opened, watch_pb2.RolloutEvent)
        assert opened.kind == "opened"
        text = json.dumps(json_format.MessageToDict(opened))
        assert SECRET not in text and B_APPLIED not in text and B_FAILED not in text
    finally:
        call.cancel()


# ---------------------------------------------------------------------------------------------
# Spoofing path parameters through Envoy: the query string and the body cannot rebind them.

APPS = "/api/v1/applications"


@dataclass(frozen=True)
class Spoof:
    method: str
    url: str
    body: Any = None
    headers: dict[str, str] | None = None


QUERY_SPOOFS = {
    "applicationName": Spoof("GET", f"{APPS}/kettle/software/{A_VERSION}?applicationName=x"),
    "application_name": Spoof("GET", f"{APPS}/kettle/settings?application_name=boiler"),
    "encoded name": Spoof("GET", f"{APPS}/kettle/settings?application%5Fname=boiler"),
    "version on a delete": Spoof(
        "DELETE", f"{APPS}/kettle/software/{A_VERSION}?version={B_APPLIED}"
    ),
    "endpointId on a delete": Spoof(
        "DELETE", f"{APPS}/kettle/endpoints/ep-a/consents/{B_FAILED}?endpointId=ep-b"
    ),
    "endpoint_id on a read": Spoof(
        "GET", f"{APPS}/kettle/endpoints/ep-a/software?endpoint_id=ep-b"
    ),
    "second parameter": Spoof("GET", f"{APPS}/kettle/audit?pageSize=5&applicationName=kettle"),
}


@pytest.mark.parametrize("case", list(QUERY_SPOOFS))
async def test_a_query_parameter_naming_a_path_parameter_is_rejected(
    seeded: Seeded, case: str
) -> None:
    response = await sent_leaving_b_unchanged(seeded, QUERY_SPOOFS[case])

    assert response.status_code == 400, response.text
    assert response.json()["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert await seeded.a_software() == [A_VERSION]


BODY_SPOOFS = {
    "applicationName in a created definition": Spoof(
        "POST",
        f"{APPS}/kettle/software",
        {
            "version": "3.1.0",
            "upgradableFrom": [A_VERSION],
            "specification": {"image": "a-3.1.0.bin"},
            "rolloutStrategy": "general",
            "applicationName": "boiler",
        },
    ),
    "another version in a patch body": Spoof(
        "PATCH",
        f"{APPS}/kettle/software/{A_VERSION}",
        {"version": B_APPLIED, "rolloutStrategy": "suspended"},
    ),
    "another version in a put body": Spoof(
        "PUT",
        f"{APPS}/kettle/software/{A_VERSION}",
        {
            "version": B_APPLIED,
            "upgradableFrom": [],
            "specification": {"image": "spoofed"},
            "rolloutStrategy": "suspended",
        },
    ),
    "applicationName in settings": Spoof(
        "PUT", f"{APPS}/kettle/settings", {"consentRequired": False, "applicationName": "kettle"}
    ),
    "endpointId in a consent": Spoof(
        "POST",
        f"{APPS}/kettle/endpoints/ep-a/consents",
        {"version": B_FAILED, "endpointId": "ep-b", "applicationName": "kettle"},
    ),
    "tenant headers": Spoof(
        "PUT",
        f"{APPS}/kettle/settings",
        {"consentRequired": False},
        headers={"X-Tenant-Id": "{b}", "Tenant-Id": "{b}", "X-Kaa-Tenant": "{b}"},
    ),
}


async def send(seeded: Seeded, spoof: Spoof, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token or seeded.a_token}"}
    for name, value in (spoof.headers or {}).items():
        headers[name] = value.format(b=seeded.stack.b.id)
    return await seeded.stack.rest.request(
        spoof.method, spoof.url, json=spoof.body, headers=headers
    )


async def sent_leaving_b_unchanged(seeded: Seeded, spoof: Spoof) -> httpx.Response:
    """The answer to ``spoof`` sent as A, after checking that B's data is as it was."""
    before = await seeded.b_snapshot()
    response = await send(seeded, spoof)
    assert await seeded.b_snapshot() == before
    return response


@pytest.mark.parametrize("case", list(BODY_SPOOFS))
async def test_a_body_naming_other_path_parameters_is_rejected_or_ignored(
    seeded: Seeded, case: str
) -> None:
    spoof = BODY_SPOOFS[case]

    response = await sent_leaving_b_unchanged(seeded, spoof)

    # Either refused, or applied to A's own path-named data only.
    assert response.status_code in (200, 400), response.text
    versions = await seeded.a_software()
    assert B_APPLIED not in versions
    assert A_VERSION in versions
    if response.status_code == 200:
        # Whatever was changed is A's, named by the path.
        assert seeded.stack.b.id not in response.text and SECRET not in response.text
        await restore_a(seeded)
        if spoof.url.endswith("/consents"):
            # The consent went to the endpoint the path names, in A's tenant, and only there.
            assert await a_consents(seeded, "ep-a") == [B_FAILED]
            assert await a_consents(seeded, "ep-b") == []
            revoked = await seeded.stack.rest_call(
                EP + "DeleteConsent",
                {**KETTLE, "endpoint_id": "ep-a", "version": B_FAILED},
                seeded.a_token,
            )
            assert revoked.code == grpc.StatusCode.OK, revoked
    else:
        assert response.json()["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]


async def a_consents(seeded: Seeded, endpoint_id: str) -> list[str]:
    result = await seeded.stack.rest_call(
        EP + "ListConsents", {**KETTLE, "endpoint_id": endpoint_id}, seeded.a_token
    )
    assert result.code == grpc.StatusCode.OK, result
    return [c.get("version", "") for c in result.body["consents"]]


async def restore_a(seeded: Seeded) -> None:
    """Put A's data back as the seed left it (after an ignored spoof changed A's own data)."""
    stack = seeded.stack
    for version in await seeded.a_software():
        if version != A_VERSION:
            deleted = await stack.rest_call(
                SW + "DeleteSoftware", {**KETTLE, "version": version}, seeded.a_token
            )
            assert deleted.code == grpc.StatusCode.OK, deleted
    replaced = await stack.rest_call(
        SW + "ReplaceSoftware",
        {**KETTLE, "version": A_VERSION, "software": definition(A_VERSION, ["2.9.0"], "a")},
        seeded.a_token,
    )
    assert replaced.code == grpc.StatusCode.OK, replaced


async def test_a_tenant_claim_in_a_token_does_not_choose_the_tenant(seeded: Seeded) -> None:
    stack = seeded.stack
    token = stack.a.token(tenant_id=stack.b.id, tenantId=stack.b.id, tenant=stack.b.id)

    for door in DOORS:
        result: Result = await stack.call(door, SW + "GetApplicationSettings", KETTLE, token)
        assert result.code == grpc.StatusCode.OK, result
        assert result.body == {"consentRequired": False}
        listed = await stack.call(door, SW + "ListSoftwareJson", KETTLE, token)
        assert [s["version"] for s in listed.body] == [A_VERSION]
