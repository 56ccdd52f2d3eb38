"""The resolution REST routes through a real Envoy: explain, resolve, upgrade path and graph.

Definitions are created over REST; endpoint facts come from a CMX peer over real NATS + Avro
(applied reports), and filter membership, which EPR feeds, is written to otao's endpoint
store directly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from otao.domain.applications import ApplicationConfig
from otao.domain.models import EndpointKey
from tests.support.cmx import CmxPeer
from tests.support.eventually import eventually
from tests.support.operator import create_software
from tests.support.otao import RunningOtao
from tests.support.rest import NOT_FOUND, error, ok, violated_fields

pytestmark = pytest.mark.timeout(30)

APPS = "/api/v1/applications"
FAILED_PRECONDITION = 9


def explain_path(application: str, endpoint: str) -> str:
    return f"{APPS}/{application}/endpoints/{endpoint}/software:explain"


def resolve_path(application: str, endpoint: str) -> str:
    return f"{APPS}/{application}/endpoints/{endpoint}/software:resolve"


def verdicts(explanation: dict[str, Any]) -> list[tuple[str, str]]:
    for verdict in explanation["verdicts"]:
        assert verdict["reason"], verdict
    return [(v["version"], v["verdict"]) for v in explanation["verdicts"]]


# ---------------------------------------------------------------------------------------------
# software:explain


async def test_explain_with_a_current_version_gives_every_definition_its_verdict(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    await create_software(rest, application.name, "1.0.5", ["1.0.0"])
    await create_software(rest, application.name, "1.1.0", ["1.0.0"])
    await create_software(rest, application.name, "1.2.0", ["1.0.0", "1.1.0"], strategy="suspended")
    await create_software(rest, application.name, "2.0.0", ["1.1.0"])

    explanation = ok(
        await rest.get(explain_path(application.name, "ep-1"), params={"currentVersion": "1.0.0"})
    )

    assert explanation["endpointId"] == "ep-1"
    assert explanation["currentVersion"] == "1.0.0"
    assert explanation["selectedVersion"] == "1.1.0"
    assert verdicts(explanation) == [
        ("2.0.0", "not_in_graph"),
        ("1.2.0", "suspended"),
        ("1.1.0", "selected"),
        ("1.0.5", "lower_than_selected"),
    ]


async def test_explain_without_a_current_version_treats_every_live_definition_as_a_candidate(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    await create_software(rest, application.name, "1.1.0", ["1.0.0"])
    await create_software(rest, application.name, "2.0.0", ["1.1.0"])
    await create_software(rest, application.name, "3.0.0", ["2.0.0"], strategy="suspended")

    explanation = ok(await rest.get(explain_path(application.name, "ep-new")))

    assert explanation["currentVersion"] == ""
    assert explanation["selectedVersion"] == "2.0.0"
    assert verdicts(explanation) == [
        ("3.0.0", "suspended"),
        ("2.0.0", "selected"),
        ("1.1.0", "lower_than_selected"),
    ]


async def test_explain_uses_the_version_the_endpoint_last_reported(
    rest: httpx.AsyncClient, application: ApplicationConfig, cmx: CmxPeer
) -> None:
    await create_software(rest, application.name, "1.1.0", ["1.0.0"])
    await create_software(rest, application.name, "2.0.0", ["1.1.0"])
    await cmx.applied(application.app_versions[0], "ep-r", "1.1.0")

    async def reported() -> bool:
        explanation = ok(await rest.get(explain_path(application.name, "ep-r")))
        return bool(explanation["currentVersion"] == "1.1.0")

    await eventually(reported, "the applied report recorded")
    explanation = ok(await rest.get(explain_path(application.name, "ep-r")))
    assert explanation["selectedVersion"] == "2.0.0"
    assert verdicts(explanation) == [("2.0.0", "selected"), ("1.1.0", "not_in_graph")]


async def test_explain_names_failed_targeted_pending_and_consent_blockers(
    rest: httpx.AsyncClient, application: ApplicationConfig, otao: RunningOtao, cmx: CmxPeer
) -> None:
    future = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    past = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    name = application.name
    await create_software(rest, name, "1.1.0", ["1.0.0"])
    await create_software(rest, name, "1.2.0", ["1.0.0"], "targeted", [{"filterId": "lab"}])
    await create_software(
        rest, name, "1.3.0", ["1.0.0"], "targeted", [{"filterId": "beta", "rolloutDate": future}]
    )
    await create_software(
        rest, name, "1.4.0", ["1.0.0"], "targeted", [{"filterId": "beta", "rolloutDate": past}]
    )
    await otao.app.components.storage.endpoints.set_filters(
        EndpointKey("default", name, "ep-t"), frozenset({"beta"}), datetime.now(UTC)
    )
    await cmx.applied(application.app_versions[0], "ep-t", "1.4.0", status_code=500)

    async def failed() -> bool:
        found = ok(await rest.get(f"{APPS}/{name}/endpoints/ep-t/software"))
        return bool(found["failedVersions"] == ["1.4.0"])

    await eventually(failed, "the failure report recorded")

    explanation = ok(await rest.get(explain_path(name, "ep-t"), params={"currentVersion": "1.0.0"}))

    assert explanation["selectedVersion"] == "1.1.0"
    assert verdicts(explanation) == [
        ("1.4.0", "previously_failed"),
        ("1.3.0", "rollout_date_pending"),
        ("1.2.0", "no_matching_filter"),
        ("1.1.0", "selected"),
    ]

    ok(await rest.put(f"{APPS}/{name}/settings", json={"consentRequired": True}))
    explanation = ok(await rest.get(explain_path(name, "ep-t"), params={"currentVersion": "1.0.0"}))

    assert explanation["selectedVersion"] == ""
    assert dict(verdicts(explanation))["1.1.0"] == "awaiting_consent"


@pytest.mark.parametrize("current", ["01.0.0", "1.0", "latest"])
async def test_explain_with_a_bad_current_version_is_a_400_naming_it(
    rest: httpx.AsyncClient, application: ApplicationConfig, current: str
) -> None:
    response = await rest.get(
        explain_path(application.name, "ep-1"), params={"currentVersion": current}
    )

    assert violated_fields(response) == {"currentVersion"}


# ---------------------------------------------------------------------------------------------
# software:resolve


async def test_resolve_offers_the_next_hop_with_its_specification(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    await create_software(rest, application.name, "1.1.0", ["1.0.0"])
    await create_software(rest, application.name, "2.0.0", ["1.1.0"])

    resolved = ok(
        await rest.get(resolve_path(application.name, "ep-1"), params={"currentVersion": "1.0.0"})
    )

    assert resolved == {
        "currentVersion": "1.0.0",
        "updateAvailable": True,
        "version": "1.1.0",
        "specification": {"image": "fw-1.1.0.bin"},
    }


async def test_resolve_at_the_top_of_the_graph_offers_nothing(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    await create_software(rest, application.name, "1.1.0", ["1.0.0"])

    resolved = ok(
        await rest.get(resolve_path(application.name, "ep-1"), params={"currentVersion": "1.1.0"})
    )

    assert resolved["currentVersion"] == "1.1.0"
    assert resolved["updateAvailable"] is False
    assert resolved["version"] == ""
    assert resolved.get("specification") is None


async def test_resolve_records_nothing_about_the_endpoint(
    rest: httpx.AsyncClient, otao: RunningOtao, application: ApplicationConfig
) -> None:
    await create_software(rest, application.name, "1.1.0", ["1.0.0"])

    ok(await rest.get(resolve_path(application.name, "ep-q"), params={"currentVersion": "1.0.0"}))
    # A sighting is queued before the answer goes out: once none is pending, all are written.
    await eventually(
        lambda: otao.app.components.services.recorder.pending == 0, "every queued sighting written"
    )

    assert ok(await rest.get(f"{APPS}/{application.name}/endpoints"))["endpoints"] == []


# ---------------------------------------------------------------------------------------------
# upgrade-path


async def upgrade_path(rest: httpx.AsyncClient, application: str, **query: str) -> httpx.Response:
    return await rest.get(f"{APPS}/{application}/upgrade-path", params=query)


async def multi_hop_graph(rest: httpx.AsyncClient, application: str) -> None:
    await create_software(rest, application, "1.1.0", ["1.0.0"])
    await create_software(rest, application, "1.2.0", ["1.1.0"], strategy="suspended")
    await create_software(rest, application, "2.0.0", ["1.1.0"])
    await create_software(rest, application, "3.0.0", ["2.0.0", "1.2.0"])


async def test_upgrade_path_without_to_walks_to_the_highest_reachable_version(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    await multi_hop_graph(rest, application.name)

    path = ok(await upgrade_path(rest, application.name, **{"from": "1.0.0"}))

    assert path == {"from": "1.0.0", "to": "3.0.0", "hops": ["1.1.0", "2.0.0", "3.0.0"]}


async def test_upgrade_path_to_a_version_stops_there(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    await multi_hop_graph(rest, application.name)

    path = ok(await upgrade_path(rest, application.name, **{"from": "1.0.0", "to": "2.0.0"}))

    assert path == {"from": "1.0.0", "to": "2.0.0", "hops": ["1.1.0", "2.0.0"]}


async def test_upgrade_path_from_the_top_has_no_hops(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    await multi_hop_graph(rest, application.name)

    path = ok(await upgrade_path(rest, application.name, **{"from": "3.0.0"}))

    assert path == {"from": "3.0.0", "to": "3.0.0", "hops": []}


async def test_upgrade_path_without_to_takes_the_highest_candidate_at_every_hop(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    # docs/api.md: without "to", the path an unconstrained endpoint takes (greedy), which can
    # end below the highest version the graph reaches (3.0.0 via 1.5.0 here).
    await create_software(rest, application.name, "2.0.0", ["1.0.0"])
    await create_software(rest, application.name, "1.5.0", ["1.0.0"])
    await create_software(rest, application.name, "3.0.0", ["1.5.0"])

    greedy = ok(await upgrade_path(rest, application.name, **{"from": "1.0.0"}))
    targeted = ok(await upgrade_path(rest, application.name, **{"from": "1.0.0", "to": "3.0.0"}))

    assert greedy == {"from": "1.0.0", "to": "2.0.0", "hops": ["2.0.0"]}
    assert targeted == {"from": "1.0.0", "to": "3.0.0", "hops": ["1.5.0", "3.0.0"]}


async def test_an_unreachable_target_is_failed_precondition_which_envoy_maps_to_400(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    await multi_hop_graph(rest, application.name)

    # 1.2.0 is suspended: nobody gets there. 1.1.0 is below 2.0.0.
    for query in ({"from": "1.0.0", "to": "1.2.0"}, {"from": "2.0.0", "to": "1.1.0"}):
        response = await upgrade_path(rest, application.name, **query)

        body = error(response, 400, FAILED_PRECONDITION)
        assert query["to"] in body["message"]
        assert body["details"] == []


async def test_an_unknown_target_version_is_404(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    await multi_hop_graph(rest, application.name)

    response = await upgrade_path(rest, application.name, **{"from": "1.0.0", "to": "9.0.0"})

    assert "9.0.0" in error(response, 404, NOT_FOUND)["message"]


@pytest.mark.parametrize(
    ("query", "field"),
    [({}, "from"), ({"from": "1.0"}, "from"), ({"from": "1.0.0", "to": "02.0.0"}, "to")],
)
async def test_upgrade_path_with_a_missing_or_bad_version_is_a_400_naming_it(
    rest: httpx.AsyncClient, application: ApplicationConfig, query: dict[str, str], field: str
) -> None:
    await multi_hop_graph(rest, application.name)

    response = await upgrade_path(rest, application.name, **query)

    assert violated_fields(response) == {field}


# ---------------------------------------------------------------------------------------------
# upgrade-graph


async def test_upgrade_graph_has_every_version_including_undefined_factory_ones(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    await create_software(rest, application.name, "1.1.0", ["1.0.0", "0.9.0"])
    await create_software(rest, application.name, "2.0.0", ["1.1.0"], strategy="suspended")
    await create_software(rest, application.name, "1.10.0", ["1.1.0"])

    graph = ok(await rest.get(f"{APPS}/{application.name}/upgrade-graph"))

    assert graph == {
        "nodes": [
            {"version": "0.9.0", "defined": False, "rolloutStrategy": ""},
            {"version": "1.0.0", "defined": False, "rolloutStrategy": ""},
            {"version": "1.1.0", "defined": True, "rolloutStrategy": "general"},
            {"version": "1.10.0", "defined": True, "rolloutStrategy": "general"},
            {"version": "2.0.0", "defined": True, "rolloutStrategy": "suspended"},
        ],
        "edges": [
            {"from": "0.9.0", "to": "1.1.0"},
            {"from": "1.0.0", "to": "1.1.0"},
            {"from": "1.1.0", "to": "1.10.0"},
            {"from": "1.1.0", "to": "2.0.0"},
        ],
    }


async def test_upgrade_graph_of_an_application_without_definitions_is_empty(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    graph = ok(await rest.get(f"{APPS}/{application.name}/upgrade-graph"))

    assert graph == {"nodes": [], "edges": []}


async def test_upgrade_graph_follows_a_deleted_definition(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    await create_software(rest, application.name, "1.1.0", ["1.0.0"])
    await create_software(rest, application.name, "2.0.0", ["1.1.0"])

    ok(await rest.delete(f"{APPS}/{application.name}/software/2.0.0"))
    graph = ok(await rest.get(f"{APPS}/{application.name}/upgrade-graph"))

    assert [n["version"] for n in graph["nodes"]] == ["1.0.0", "1.1.0"]
    assert graph["edges"] == [{"from": "1.0.0", "to": "1.1.0"}]


# ---------------------------------------------------------------------------------------------
# Unknown applications


@pytest.mark.parametrize(
    "path",
    [
        "endpoints/ep-1/software:explain",
        "endpoints/ep-1/software:resolve",
        "upgrade-path?from=1.0.0",
        "upgrade-graph",
    ],
)
async def test_every_resolution_route_of_an_unknown_application_is_404(
    rest: httpx.AsyncClient, path: str
) -> None:
    response = await rest.get(f"{APPS}/no-such-application/{path}")

    assert "no-such-application" in error(response, 404, NOT_FOUND)["message"]
