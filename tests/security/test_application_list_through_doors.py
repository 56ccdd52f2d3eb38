"""ListApplications with security on, over gRPC and REST through Envoy: a caller sees only its
own tenant's applications, and of those only the ones it may read (application:software:read
from the token's permissions claim or, without one, from the tenant realm's UMA decision)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from otao.rpc.access import READ, UPDATE
from tests.security.doors import (
    DOORS,
    Door,
    Result,
    Secured,
    new_suffix,
    secured_stack,
    tenant_id,
)
from tests.support.stack import EnvoyFactory, MongoServer, NatsServer

pytestmark = pytest.mark.timeout(60)

LIST = "/kaa.otao.v1.ApplicationService/ListApplications"


def configured(name: str, letter: str, suffix: str) -> dict[str, Any]:
    return {
        "name": name,
        "tenant_id": tenant_id(letter, suffix),
        "app_versions": [f"{name}-{letter}-{suffix}-v1"],
    }


@pytest.fixture(scope="module")
async def secured(
    nats_server: NatsServer, mongo_server: MongoServer, envoy_factory: EnvoyFactory
) -> AsyncIterator[Secured]:
    """Tenant a has kettle and toaster; tenant b has oven only."""
    suffix = new_suffix()
    applications = [
        configured("toaster", "a", suffix),
        configured("kettle", "a", suffix),
        configured("oven", "b", suffix),
    ]
    async with secured_stack(
        nats_server,
        mongo_server,
        envoy_factory,
        letters=("a", "b"),
        suffix=suffix,
        applications=applications,
    ) as stack:
        yield stack


def grants(*names: str, scopes: tuple[str, ...] = (READ,)) -> dict[str, Any]:
    return {
        "permissions": [{"rsname": f"application-{name}", "scopes": list(scopes)} for name in names]
    }


async def names(stack: Secured, door: Door, token: str, page_size: int = 0) -> list[str]:
    result = await stack.call(door, LIST, {"page_size": page_size}, token)
    assert result.code == grpc.StatusCode.OK, result
    return [a["name"] for a in result.body["applications"]]


@pytest.mark.parametrize("door", DOORS)
async def test_read_permission_on_one_of_two_applications_lists_only_that_one(
    secured: Secured, door: Door
) -> None:
    token = secured.a.realm.issue("reader", authorization=grants("toaster"))

    assert await names(secured, door, token) == ["toaster"]


@pytest.mark.parametrize("door", DOORS)
async def test_read_permission_on_both_lists_both_by_name(secured: Secured, door: Door) -> None:
    token = secured.a.realm.issue("reader", authorization=grants("toaster", "kettle"))

    assert await names(secured, door, token) == ["kettle", "toaster"]


@pytest.mark.parametrize("door", DOORS)
async def test_another_scope_than_read_lists_nothing(secured: Secured, door: Door) -> None:
    token = secured.a.realm.issue("writer", authorization=grants("kettle", scopes=(UPDATE,)))

    assert await names(secured, door, token) == []


@pytest.mark.parametrize("door", DOORS)
async def test_another_tenant_sees_none_of_them_even_holding_permissions_of_those_names(
    secured: Secured, door: Door
) -> None:
    token = secured.b.realm.issue("b-user", authorization=grants("kettle", "toaster", "oven"))

    assert await names(secured, door, token) == ["oven"]


@pytest.mark.parametrize("door", DOORS)
async def test_without_a_permissions_claim_the_realms_uma_decisions_filter_the_list(
    secured: Secured, door: Door
) -> None:
    subject = f"uma-reader-{door}"
    secured.a.realm.grant(subject, "application-kettle", READ)
    uma_before = len(secured.keycloak.uma_requests)

    listed = await names(secured, door, secured.a.realm.issue(subject))

    assert listed == ["kettle"]
    asked = {r.get("permission") for r in secured.keycloak.uma_requests[uma_before:]}
    assert asked == {f"application-kettle#{READ}", f"application-toaster#{READ}"}


async def test_pages_hold_only_readable_applications_and_end_exactly(secured: Secured) -> None:
    token = secured.a.realm.issue("reader", authorization=grants("toaster", "kettle"))

    first = await secured.call("rest", LIST, {"page_size": 1}, token)
    second = await secured.call(
        "rest", LIST, {"page_size": 1, "page_token": first.body["nextPageToken"]}, token
    )

    assert [a["name"] for a in first.body["applications"]] == ["kettle"]
    assert [a["name"] for a in second.body["applications"]] == ["toaster"]
    assert second.body["nextPageToken"] == ""


async def test_a_page_token_of_another_tenant_is_refused(secured: Secured) -> None:
    a_token = secured.a.realm.issue("reader", authorization=grants("toaster", "kettle"))
    first = await secured.call("rest", LIST, {"page_size": 1}, a_token)
    b_token = secured.b.realm.issue("b-user", authorization=grants("oven"))

    result = await secured.call("rest", LIST, {"page_token": first.body["nextPageToken"]}, b_token)

    assert result.code == grpc.StatusCode.INVALID_ARGUMENT, result
    assert "pageToken" in result.message


@pytest.mark.parametrize("door", DOORS)
async def test_without_a_token_the_listing_is_unauthenticated(secured: Secured, door: Door) -> None:
    result: Result = await secured.call(door, LIST, {}, None)

    assert result.code == grpc.StatusCode.UNAUTHENTICATED, result
