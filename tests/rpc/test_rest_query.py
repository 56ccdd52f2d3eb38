"""REST query parameters and paths through a real Envoy in front of otao (otao/rpc/rest_query.py).

An unknown query parameter is a 400 naming it and the parameters the route accepts, without
proto type names; the accepted ones work in both spellings; an escaped slash in the path is a
400 that says so.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from otao.domain.applications import ApplicationConfig
from tests.support.operator import create_software
from tests.support.rest import INVALID_ARGUMENT, error, ok

pytestmark = pytest.mark.timeout(60)

APPS = "/api/v1/applications"
INTERNAL_NAMES = ("kaa.", "google.protobuf", "TYPE_", 'Request"', "in the type")


def clean_error(response: httpx.Response, status: int = 400) -> dict[str, object]:
    body = error(response, status, INVALID_ARGUMENT)
    text = response.text.replace("type.googleapis.com/google.rpc.BadRequest", "")
    assert not any(name in text for name in INTERNAL_NAMES), response.text
    return body


def stored_path(application: ApplicationConfig) -> str:
    """The path of the ``stored`` definition."""
    return f"{APPS}/{application.name}/software/1.1.0"


@pytest.fixture
async def stored(rest: httpx.AsyncClient, application: ApplicationConfig) -> dict[str, Any]:
    """Definition 1.1.0 of the test's application, as created."""
    return await create_software(rest, application.name, "1.1.0", [])


async def test_an_unknown_query_parameter_is_named_with_the_accepted_ones(
    rest: httpx.AsyncClient, application: ApplicationConfig, stored: dict[str, Any]
) -> None:
    get = await rest.get(stored_path(application), params={"etag": "x"})
    delete = await rest.delete(stored_path(application), params={"etg": "x"})

    assert clean_error(get)["message"] == "unknown query parameter etag (accepted: none)"
    assert clean_error(delete)["message"] == "unknown query parameter etg (accepted: etag)"
    ok(await rest.get(stored_path(application)))  # still there


async def test_a_misspelt_query_parameter_gets_a_hint(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    response = await rest.get(f"{APPS}/{application.name}/endpoints", params={"pagesize": "5"})

    body = clean_error(response)
    assert body["message"] == (
        "unknown query parameter pagesize (accepted: version, pageSize, pageToken)"
    )
    violation = body["details"][0]["fieldViolations"][0]  # type: ignore[index]
    assert violation["field"] == "pagesize"
    assert violation["description"] == "unknown query parameter; did you mean pageSize?"


async def test_a_query_parameter_may_not_reach_into_the_body(
    rest: httpx.AsyncClient, application: ApplicationConfig, stored: dict[str, Any]
) -> None:
    response = await rest.patch(
        f"{stored_path(application)}?software.version=3.0.0",
        json={"rolloutStrategy": "suspended"},
    )

    assert clean_error(response)["message"] == (
        "unknown query parameter software.version (accepted: updateMask, etag)"
    )
    assert ok(await rest.get(stored_path(application))) == stored


async def test_accepted_query_parameters_work_in_both_spellings(
    rest: httpx.AsyncClient, application: ApplicationConfig, stored: dict[str, Any]
) -> None:
    updated = await rest.patch(
        stored_path(application),
        params={"update_mask": "rolloutStrategy", "etag": stored["etag"]},
        json={"rolloutStrategy": "suspended"},
    )
    listed = await rest.get(f"{APPS}/{application.name}/endpoints", params={"page_size": "5"})

    assert ok(updated)["rolloutStrategy"] == "suspended"
    ok(listed)


async def test_an_escaped_slash_in_the_path_is_a_400_that_says_so(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    response = await rest.get(f"{APPS}/{application.name}/software/1.0.0%2F..%2Fx")

    assert "escaped slash" in str(clean_error(response)["message"])
