"""The endpoint REST routes through a real Envoy: an endpoint's software, listing with paging,
software distribution and clearing recorded failures.

Endpoints come to otao's knowledge the way they do in Kaa: a CMX peer over real NATS + Avro
reports applied versions (6/CDTP ConfigApplied) and polls (ConfigRequest).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from otao.domain.applications import ApplicationConfig
from tests.support.cmx import CmxPeer
from tests.support.eventually import eventually
from tests.support.operator import create_software
from tests.support.otao import RunningOtao
from tests.support.rest import NOT_FOUND, error, ok, violated_fields

pytestmark = pytest.mark.timeout(30)

APPS = "/api/v1/applications"


def software_path(application: str, endpoint: str) -> str:
    return f"{APPS}/{application}/endpoints/{endpoint}/software"


async def endpoint_software(
    rest: httpx.AsyncClient, application: str, endpoint: str
) -> dict[str, Any]:
    found: dict[str, Any] = ok(await rest.get(software_path(application, endpoint)))
    return found


async def list_endpoints(rest: httpx.AsyncClient, application: str, **query: Any) -> dict[str, Any]:
    found: dict[str, Any] = ok(await rest.get(f"{APPS}/{application}/endpoints", params=query))
    return found


async def known_endpoints(rest: httpx.AsyncClient, application: str, count: int) -> None:
    async def enough() -> bool:
        listed = await list_endpoints(rest, application, pageSize=1000)
        return len(listed["endpoints"]) >= count

    await eventually(enough, "the endpoints recorded")


# ---------------------------------------------------------------------------------------------
# GET .../endpoints/{endpointId}/software


async def test_an_endpoint_otao_never_heard_of_has_no_version_and_gets_the_latest(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    await create_software(rest, application.name, "1.1.0", ["1.0.0"])
    latest = await create_software(rest, application.name, "2.0.0", ["1.1.0"])

    found = await endpoint_software(rest, application.name, "ep-unknown")

    assert found["endpointId"] == "ep-unknown"
    assert found["currentVersion"] == ""
    assert "lastReport" not in found
    assert found["nextUpdate"] == latest
    assert found["failedVersions"] == []


async def test_an_applied_report_sets_the_current_version_last_report_and_next_update(
    rest: httpx.AsyncClient, application: ApplicationConfig, cmx: CmxPeer
) -> None:
    await create_software(rest, application.name, "1.1.0", ["1.0.0"])
    following = await create_software(rest, application.name, "2.0.0", ["1.1.0"])
    before = datetime.now(UTC) - timedelta(seconds=2)
    await cmx.applied(application.app_versions[0], "ep-a", "1.1.0", reason="installed")

    async def reported() -> bool:
        found = await endpoint_software(rest, application.name, "ep-a")
        return bool(found["currentVersion"] == "1.1.0")

    await eventually(reported, "the applied report recorded")
    found = await endpoint_software(rest, application.name, "ep-a")

    report = found["lastReport"]
    assert {k: v for k, v in report.items() if k != "reportedAt"} == {
        "configId": "1.1.0",
        "statusCode": 200,
        "reasonPhrase": "installed",
    }
    reported_at = datetime.fromisoformat(report["reportedAt"].replace("Z", "+00:00"))
    assert before <= reported_at <= datetime.now(UTC) + timedelta(seconds=2)
    assert found["nextUpdate"] == following
    assert found["failedVersions"] == []


async def test_a_failed_report_is_listed_and_blocks_the_version_until_the_failure_is_cleared(
    rest: httpx.AsyncClient, application: ApplicationConfig, cmx: CmxPeer
) -> None:
    name, app_version = application.name, application.app_versions[0]
    following = await create_software(rest, name, "1.1.0", ["1.0.0"])
    await cmx.applied(app_version, "ep-f", "1.0.0")
    await cmx.applied(app_version, "ep-f", "1.1.0", status_code=500, reason="flash failed")

    async def failed() -> bool:
        found = await endpoint_software(rest, name, "ep-f")
        return bool(found["failedVersions"] == ["1.1.0"])

    await eventually(failed, "the failure report recorded")
    found = await endpoint_software(rest, name, "ep-f")
    assert found["currentVersion"] == "1.0.0"
    assert found["lastReport"]["statusCode"] == 500
    assert found["lastReport"]["reasonPhrase"] == "flash failed"
    assert "nextUpdate" not in found

    cleared = await rest.delete(f"{APPS}/{name}/endpoints/ep-f/failures/1.1.0")

    assert ok(cleared) == {}
    found = await endpoint_software(rest, name, "ep-f")
    assert found["failedVersions"] == []
    assert found["nextUpdate"] == following
    offer = await cmx.request(app_version, "ep-f", config_id="1.0.0")
    assert offer.config_id == "1.1.0"


async def test_clearing_a_failure_that_is_not_recorded_is_404(
    rest: httpx.AsyncClient, application: ApplicationConfig, cmx: CmxPeer
) -> None:
    name, app_version = application.name, application.app_versions[0]
    await create_software(rest, name, "1.1.0", ["1.0.0"])
    await cmx.applied(app_version, "ep-g", "1.1.0", status_code=500)

    async def failed() -> bool:
        found = await endpoint_software(rest, name, "ep-g")
        return bool(found["failedVersions"] == ["1.1.0"])

    await eventually(failed, "the failure report recorded")

    # Another version of a known endpoint, then an endpoint otao never heard of.
    error(await rest.delete(f"{APPS}/{name}/endpoints/ep-g/failures/1.0.0"), 404, NOT_FOUND)
    error(await rest.delete(f"{APPS}/{name}/endpoints/ep-none/failures/1.1.0"), 404, NOT_FOUND)
    # Cleared once; the second time there is nothing to clear.
    ok(await rest.delete(f"{APPS}/{name}/endpoints/ep-g/failures/1.1.0"))
    error(await rest.delete(f"{APPS}/{name}/endpoints/ep-g/failures/1.1.0"), 404, NOT_FOUND)


async def test_clearing_a_failure_of_an_endpoint_otao_never_heard_of_records_nothing(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    response = await rest.delete(f"{APPS}/{application.name}/endpoints/ep-x/failures/1.0.0")

    error(response, 404, NOT_FOUND)
    assert (await list_endpoints(rest, application.name))["endpoints"] == []


@pytest.mark.parametrize("endpoint", ["-dash", "a" * 257, "semi;colon"])
async def test_a_bad_endpoint_id_is_a_400_naming_it(
    rest: httpx.AsyncClient, application: ApplicationConfig, endpoint: str
) -> None:
    response = await rest.get(software_path(application.name, endpoint))

    assert violated_fields(response) == {"endpointId"}


# ---------------------------------------------------------------------------------------------
# GET .../endpoints?version=&pageSize=&pageToken=


async def test_listing_pages_through_every_endpoint_once_in_order(
    rest: httpx.AsyncClient, application: ApplicationConfig, cmx: CmxPeer
) -> None:
    ids = [f"ep-{i:02d}" for i in range(8)]
    for endpoint in reversed(ids):
        await cmx.applied(application.app_versions[0], endpoint, "1.0.0")
    await known_endpoints(rest, application.name, len(ids))

    pages: list[list[str]] = []
    token = ""
    while True:
        query: dict[str, Any] = {"pageSize": 3}
        if token:
            query["pageToken"] = token
        page = await list_endpoints(rest, application.name, **query)
        pages.append([e["endpointId"] for e in page["endpoints"]])
        token = page["nextPageToken"]
        if not token:
            break
        assert len(pages) < 10, "paging does not end"

    assert pages == [ids[0:3], ids[3:6], ids[6:8]]


async def test_a_listed_endpoint_carries_its_version_and_last_report(
    rest: httpx.AsyncClient, application: ApplicationConfig, cmx: CmxPeer
) -> None:
    await cmx.applied(application.app_versions[0], "ep-l", "1.2.0", reason="ok")
    await known_endpoints(rest, application.name, 1)

    listed = await list_endpoints(rest, application.name)

    assert listed["nextPageToken"] == ""
    [endpoint] = listed["endpoints"]
    assert endpoint["endpointId"] == "ep-l"
    assert endpoint["currentVersion"] == "1.2.0"
    assert endpoint["lastReport"]["configId"] == "1.2.0"
    assert endpoint["lastReport"]["statusCode"] == 200
    assert endpoint["updatedAt"]


async def test_listing_by_version_pages_through_only_that_versions_endpoints(
    rest: httpx.AsyncClient, application: ApplicationConfig, cmx: CmxPeer
) -> None:
    app_version = application.app_versions[0]
    on_new = [f"new-{i}" for i in range(5)]
    for i in range(4):
        await cmx.applied(app_version, f"old-{i}", "1.0.0")
    for endpoint in on_new:
        await cmx.applied(app_version, endpoint, "1.1.0+build.7")
    await known_endpoints(rest, application.name, 9)

    pages: list[dict[str, Any]] = []
    token = ""
    for _ in range(3):  # 5 endpoints, 2 a page
        query = {"version": "1.1.0+build.7", "pageSize": 2} | (
            {"pageToken": token} if token else {}
        )
        page = await list_endpoints(rest, application.name, **query)
        pages.append(page)
        token = page["nextPageToken"]
    first, second, third = pages

    listed = [e["endpointId"] for p in (first, second, third) for e in p["endpoints"]]
    assert listed == on_new
    assert third["nextPageToken"] == ""
    assert {e["currentVersion"] for p in (first, second, third) for e in p["endpoints"]} == {
        "1.1.0+build.7"
    }


async def test_a_page_size_larger_than_the_endpoints_gives_one_page(
    rest: httpx.AsyncClient, application: ApplicationConfig, cmx: CmxPeer
) -> None:
    for i in range(3):
        await cmx.applied(application.app_versions[0], f"ep-{i}", "1.0.0")
    await known_endpoints(rest, application.name, 3)

    page = await list_endpoints(rest, application.name, pageSize=3)

    assert len(page["endpoints"]) == 3
    assert page["nextPageToken"] == ""


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        "%%%",
        base64.urlsafe_b64encode(b"default/another-application/ep-1").decode().rstrip("="),
        base64.urlsafe_b64encode(b"other-tenant/x/ep-1").decode(),
    ],
)
async def test_a_page_token_this_listing_did_not_return_is_a_400_naming_it(
    rest: httpx.AsyncClient, application: ApplicationConfig, token: str
) -> None:
    response = await rest.get(f"{APPS}/{application.name}/endpoints", params={"pageToken": token})

    assert violated_fields(response) == {"pageToken"}


async def test_a_page_token_of_another_application_is_refused(
    rest: httpx.AsyncClient, application: ApplicationConfig, otao: RunningOtao, cmx: CmxPeer
) -> None:
    other = otao.add_application()
    for i in range(3):
        await cmx.applied(other.app_versions[0], f"ep-{i}", "1.0.0")
    await known_endpoints(rest, other.name, 3)
    token = (await list_endpoints(rest, other.name, pageSize=1))["nextPageToken"]
    assert token

    response = await rest.get(f"{APPS}/{application.name}/endpoints", params={"pageToken": token})

    assert violated_fields(response) == {"pageToken"}


async def test_a_negative_page_size_is_a_400_naming_it(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    response = await rest.get(f"{APPS}/{application.name}/endpoints", params={"pageSize": -1})

    assert violated_fields(response) == {"pageSize"}


async def test_listing_by_a_version_that_is_not_semver_is_a_400_naming_it(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    response = await rest.get(f"{APPS}/{application.name}/endpoints", params={"version": "1.0"})

    assert violated_fields(response) == {"version"}


# ---------------------------------------------------------------------------------------------
# GET .../software-distribution


async def test_distribution_counts_endpoints_per_version_newest_first_unknown_last(
    rest: httpx.AsyncClient, application: ApplicationConfig, cmx: CmxPeer
) -> None:
    app_version = application.app_versions[0]
    await create_software(rest, application.name, "1.1.0", ["1.0.0"])
    for endpoint in ("a", "b", "c"):
        await cmx.applied(app_version, endpoint, "1.0.0")
    await cmx.applied(app_version, "d", "1.10.0")
    await cmx.applied(app_version, "e", "1.9.0")
    await cmx.applied(app_version, "f", "1.9.0")
    # A fresh endpoint polling without a configId: known, version unknown.
    await cmx.request(app_version, "g")
    await known_endpoints(rest, application.name, 7)

    distribution = ok(await rest.get(f"{APPS}/{application.name}/software-distribution"))

    # int64 counts: the proto3 JSON mapping prints them as strings.
    assert [(v["version"], int(v["endpointCount"])) for v in distribution["versions"]] == [
        ("1.10.0", 1),
        ("1.9.0", 2),
        ("1.0.0", 3),
        ("", 1),
    ]
    assert int(distribution["totalEndpoints"]) == 7


async def test_distribution_follows_endpoints_moving_between_versions(
    rest: httpx.AsyncClient, application: ApplicationConfig, cmx: CmxPeer
) -> None:
    app_version = application.app_versions[0]
    await cmx.applied(app_version, "a", "1.0.0")
    await cmx.applied(app_version, "b", "1.0.0")
    await known_endpoints(rest, application.name, 2)

    await cmx.applied(app_version, "a", "1.1.0")

    async def moved() -> bool:
        distribution = ok(await rest.get(f"{APPS}/{application.name}/software-distribution"))
        counts = [(v["version"], int(v["endpointCount"])) for v in distribution["versions"]]
        return counts == [("1.1.0", 1), ("1.0.0", 1)]

    await eventually(moved, "the endpoint moved")


async def test_distribution_of_an_application_without_endpoints_is_empty(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    distribution = ok(await rest.get(f"{APPS}/{application.name}/software-distribution"))

    assert distribution["versions"] == []
    assert int(distribution["totalEndpoints"]) == 0


# ---------------------------------------------------------------------------------------------
# Unknown applications


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "endpoints/ep-1/software"),
        ("GET", "endpoints"),
        ("GET", "software-distribution"),
        ("DELETE", "endpoints/ep-1/failures/1.0.0"),
    ],
)
async def test_every_endpoint_route_of_an_unknown_application_is_404(
    rest: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await rest.request(method, f"{APPS}/no-such-application/{path}")

    assert "no-such-application" in error(response, 404, NOT_FOUND)["message"]
