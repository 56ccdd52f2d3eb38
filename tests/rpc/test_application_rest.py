"""GET /api/v1/applications through a real Envoy: the caller's tenant's applications, sorted
by name, paged, with the settings in effect (local development mode: the default tenant's)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.otao import RunningOtao
from tests.support.rest import error, ok, violated_fields

pytestmark = pytest.mark.timeout(30)

APPS = "/api/v1/applications"


async def every_page(rest: httpx.AsyncClient, page_size: int) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    token = ""
    while True:
        listed = ok(await rest.get(APPS, params={"pageSize": page_size, "pageToken": token}))
        pages.append(listed["applications"])
        token = listed["nextPageToken"]
        if not token:
            return pages


async def test_the_list_holds_the_default_tenants_applications_by_name_and_no_other_tenants(
    rest: httpx.AsyncClient, otao: RunningOtao, unique_name: str
) -> None:
    second = otao.add_application(
        f"{unique_name}-b", (f"{unique_name}-b-v1", f"{unique_name}-b-v2")
    )
    first = otao.add_application(f"{unique_name}-a", consent_required=True)
    otao.add_application(f"{unique_name}-elsewhere", tenant_id="another-tenant")

    listed = ok(await rest.get(APPS, params={"pageSize": 1000}))["applications"]

    names = [a["name"] for a in listed]
    assert names == sorted(names)
    assert f"{unique_name}-elsewhere" not in names
    ours = [a for a in listed if a["name"].startswith(unique_name)]
    assert ours == [
        {"name": first.name, "appVersions": list(first.app_versions), "consentRequired": True},
        {"name": second.name, "appVersions": list(second.app_versions), "consentRequired": False},
    ]


async def test_consent_required_is_the_stored_setting_once_the_settings_api_wrote_one(
    rest: httpx.AsyncClient, otao: RunningOtao, unique_name: str
) -> None:
    application = otao.add_application(unique_name)
    path = f"{APPS}/{application.name}/settings"
    ok(await rest.put(path, json={"consentRequired": True}))

    listed = ok(await rest.get(APPS, params={"pageSize": 1000}))["applications"]

    assert {"name": unique_name, "appVersions": [f"{unique_name}-v1"], "consentRequired": True} in (
        listed
    )


async def test_pages_walk_every_application_once_in_order(
    rest: httpx.AsyncClient, otao: RunningOtao, unique_name: str
) -> None:
    for letter in "abcde":
        otao.add_application(f"{unique_name}-{letter}")

    pages = await every_page(rest, 2)

    assert all(len(page) == 2 for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= 2
    names = [a["name"] for page in pages for a in page]
    assert names == sorted(set(names))
    assert {f"{unique_name}-{letter}" for letter in "abcde"} <= set(names)


async def test_a_page_token_this_listing_did_not_return_is_a_400_naming_page_token(
    rest: httpx.AsyncClient, otao: RunningOtao, unique_name: str
) -> None:
    application = otao.add_application(unique_name)
    audit = ok(await rest.get(f"{APPS}/{application.name}/audit", params={"pageSize": 1}))
    foreign = audit["nextPageToken"] or "bm90LWEtdG9rZW4"

    for token in (foreign, "garbage!"):
        response = await rest.get(APPS, params={"pageToken": token})
        assert violated_fields(response) == {"pageToken"}


@pytest.mark.parametrize(
    ("query", "field"), [({"pageSize": -1}, "pageSize"), ({"page": 2}, "page")]
)
async def test_a_bad_or_unknown_query_parameter_is_a_400_naming_it(
    rest: httpx.AsyncClient, query: dict[str, Any], field: str
) -> None:
    response = await rest.get(APPS, params=query)

    assert violated_fields(response) == {field}


async def test_the_listing_takes_no_body_method_but_get(rest: httpx.AsyncClient) -> None:
    response = await rest.post(APPS, json={"name": "new"})

    error(response, 405, 12)
    assert response.headers["allow"] == "GET"
