"""Large bearer tokens and 401 challenges through every door of a secured otao.

One metadata limit everywhere (64 KiB: Envoy's max_request_headers_kb, otao's
``max_metadata_bytes``): a token of a large tenant (permissions for 50 applications, about
13 kB) passes every request, over REST, gRPC to otao and gRPC through Envoy; a request over the
limit gets a clean refusal, never grpc's own text about metadata sizes.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kaa.otao.v1 import software_pb2, software_pb2_grpc

from otao.rpc.access import DELETE, READ, UPDATE
from tests.security.doors import Secured, TenantUnderTest

pytestmark = pytest.mark.timeout(120)

REPEATS = 50


def large_token(tenant: TenantUnderTest) -> str:
    """Permissions for 50 applications with long names: a token of about 13 kB."""
    names = [tenant.application] + [
        f"application-of-a-large-tenant-with-a-long-name-{i:03d}-eu-west" for i in range(49)
    ]
    claim = {
        "permissions": [
            {"rsname": f"application-{name}", "scopes": [READ, UPDATE, DELETE]} for name in names
        ]
    }
    return tenant.realm.issue(f"user-{tenant.id}", authorization=claim)


def software_path(tenant: TenantUnderTest) -> str:
    return f"/api/v1/applications/{tenant.application}/software"


async def list_software(channel: grpc.aio.Channel, tenant: TenantUnderTest, token: str) -> None:
    """ListSoftware of ``tenant``'s application over ``channel`` with ``token`` as the bearer."""
    stub = software_pb2_grpc.SoftwareServiceStub(channel)
    request = software_pb2.ListSoftwareRequest(application_name=tenant.application)
    await stub.ListSoftware(request, metadata=(("authorization", f"Bearer {token}"),), timeout=10)


def test_the_large_token_is_about_13_kb(secured: Secured) -> None:
    assert 12_500 <= len(large_token(secured.a)) <= 16_000


async def test_a_13_kb_token_works_on_every_rest_request(secured: Secured) -> None:
    headers = {"authorization": f"Bearer {large_token(secured.a)}"}

    statuses = [
        (await secured.rest.get(software_path(secured.a), headers=headers)).status_code
        for _ in range(REPEATS)
    ]

    assert statuses == [200] * REPEATS


async def test_a_13_kb_token_works_on_every_grpc_request(secured: Secured) -> None:
    token = large_token(secured.a)

    for _ in range(REPEATS):
        await list_software(secured.channel, secured.a, token)


async def test_a_13_kb_token_works_on_every_grpc_request_through_envoy(secured: Secured) -> None:
    token = large_token(secured.a)
    target = secured.rest.base_url.netloc.decode()
    async with grpc.aio.insecure_channel(target) as channel:
        for _ in range(REPEATS):
            await list_software(channel, secured.a, token)


async def test_headers_over_64_kib_are_a_431_over_rest(secured: Secured) -> None:
    headers = {"authorization": f"Bearer {'a' * (65 * 1024)}"}

    response = await secured.rest.get(software_path(secured.a), headers=headers)

    assert response.status_code == 431
    assert response.json() == {
        "code": 8,
        "message": "the request headers exceed 64 KiB",
        "details": [],
    }


@pytest.mark.parametrize("kib", [65, 70])
async def test_metadata_over_64_kib_is_refused_cleanly_over_grpc(
    secured: Secured, kib: int
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await list_software(secured.channel, secured.a, "a" * (kib * 1024))

    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.details() == "the request metadata exceeds 64 KiB"


async def test_metadata_just_under_64_kib_reaches_authentication_over_grpc(
    secured: Secured,
) -> None:
    # The control of the case above: refused as a token, not for its size.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await list_software(secured.channel, secured.a, "a" * (63 * 1024))

    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_the_health_check_needs_no_token_even_with_a_large_one(secured: Secured) -> None:
    metadata = (("authorization", f"Bearer {large_token(secured.a)}"),)
    stub = health_pb2_grpc.HealthStub(secured.channel)

    answer = await stub.Check(health_pb2.HealthCheckRequest(), metadata=metadata, timeout=10)

    assert answer.status == health_pb2.HealthCheckResponse.SERVING


# ---------------------------------------------------------------------------------------------
# RFC 6750 section 3: a 401 says how to authenticate


async def test_a_rest_request_without_a_token_gets_a_bearer_challenge(secured: Secured) -> None:
    response = await secured.rest.get(software_path(secured.a))

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="otao"'


async def test_a_rest_request_with_a_bad_token_gets_an_invalid_token_challenge(
    secured: Secured,
) -> None:
    response = await secured.rest.get(
        software_path(secured.a), headers={"authorization": "Bearer not-a-token"}
    )

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="otao", error="invalid_token"'
    assert response.json()["message"] == "invalid token"


async def test_a_grpc_call_without_a_token_carries_the_challenge_as_metadata(
    secured: Secured,
) -> None:
    stub = software_pb2_grpc.SoftwareServiceStub(secured.channel)
    request = software_pb2.ListSoftwareRequest(application_name=secured.a.application)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ListSoftware(request, timeout=10)

    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    trailing: dict[str, Any] = dict(refused.value.trailing_metadata() or ())  # type: ignore[arg-type]
    assert trailing["www-authenticate"] == 'Bearer realm="otao"'
