"""The software REST routes through a real Envoy (gRPC-JSON transcoding) in front of otao.

CRUD, Envoy's mapping of otao's errors (404, 409, 400 with google.rpc.BadRequest field
violations), etag preconditions from the query string or the body, the bare-array listing,
application settings, and the fidelity of specifications from REST to a device over 6/CDTP.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from otao.domain.applications import ApplicationConfig
from tests.support.cmx import CmxPeer
from tests.support.otao import RunningOtao
from tests.support.rest import DOOR_VIOLATIONS, definition, error, ok

pytestmark = pytest.mark.timeout(60)

APPS = "/api/v1/applications"
KIB = 1024
BLOB_OVERHEAD = len('{"blob":""}')
# gRPC codes in the google.rpc.Status JSON bodies.
INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, ABORTED = 3, 5, 6, 9, 10


def software_path(application: str, version: str | None = None) -> str:
    path = f"{APPS}/{application}/software"
    return f"{path}/{version}" if version is not None else path


def field_violations(response: httpx.Response) -> dict[str, str]:
    body = error(response, 400, INVALID_ARGUMENT)
    found: dict[str, str] = {}
    for detail in body["details"]:
        if detail["@type"] == "type.googleapis.com/google.rpc.BadRequest":
            for violation in detail["fieldViolations"]:
                assert violation["description"], violation
                found[violation["field"]] = violation["description"]
    return found


async def create(rest: httpx.AsyncClient, application: str, **fields: Any) -> dict[str, Any]:
    created: dict[str, Any] = ok(
        await rest.post(software_path(application), json=definition(**fields))
    )
    return created


async def patch_definition(
    rest: httpx.AsyncClient, application: ApplicationConfig, body: Any, mask: str | None = None
) -> dict[str, Any]:
    """PATCH of the test's definition 1.1.0 (with ``updateMask`` when given): the answer."""
    params = {} if mask is None else {"updateMask": mask}
    path = software_path(application.name, "1.1.0")
    updated: dict[str, Any] = ok(await rest.patch(path, params=params, json=body))
    return updated


async def put_definition(
    rest: httpx.AsyncClient, application: ApplicationConfig, body: Any
) -> dict[str, Any]:
    """PUT of the test's definition 1.1.0: the answer."""
    answer: dict[str, Any] = ok(await rest.put(software_path(application.name, "1.1.0"), json=body))
    return answer


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# ---------------------------------------------------------------------------------------------
# Create, get, list


async def test_post_returns_the_stored_definition_in_kaas_json_shape(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)

    created = await create(
        rest,
        application.name,
        upgradable_from=["1.0.0", "0.9.0"],
        specification={"image": "fw.bin", "size": 1024, "ratio": 0.5},
        metadata={"notes": "first"},
        strategy="targeted",
        filters=[{"filterId": "beta", "rolloutDate": "2030-01-02T03:04:05Z"}, {"filterId": "lab"}],
    )

    assert {k: v for k, v in created.items() if k not in ("createdAt", "updatedAt", "etag")} == {
        "version": "1.1.0",
        "upgradableFrom": ["1.0.0", "0.9.0"],
        "specification": {"image": "fw.bin", "size": 1024, "ratio": 0.5},
        "metadata": {"notes": "first"},
        "rolloutStrategy": "targeted",
        "filters": [
            {"filterId": "beta", "rolloutDate": "2030-01-02T03:04:05Z"},
            {"filterId": "lab"},
        ],
    }
    # An integer stays an integer in the JSON (not 1024.0).
    assert isinstance(created["specification"]["size"], int)
    assert isinstance(created["etag"], str) and created["etag"]
    assert before <= parse_time(created["createdAt"]) <= datetime.now(UTC) + timedelta(seconds=1)
    assert created["updatedAt"] == created["createdAt"]


async def test_get_returns_what_post_returned(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    created = await create(rest, application.name, metadata={"owner": "ops"})

    fetched = ok(await rest.get(software_path(application.name, "1.1.0")))

    assert fetched == created


async def test_list_is_a_bare_json_array_newest_semver_first(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    for version in ["1.9.0", "1.10.0", "1.0.0-rc.1", "1.0.0", "1.0.0-beta.11", "1.0.0-beta.2"]:
        await create(rest, application.name, version=version, upgradable_from=["0.1.0"])

    response = await rest.get(software_path(application.name))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    listed = json.loads(response.content)
    assert isinstance(listed, list)
    assert [s["version"] for s in listed] == [
        "1.10.0",
        "1.9.0",
        "1.0.0",
        "1.0.0-rc.1",
        "1.0.0-beta.11",
        "1.0.0-beta.2",
    ]


async def test_every_listed_item_equals_its_get(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    await create(rest, application.name, version="1.1.0", specification={"n": 5, "f": 2.5})
    await create(
        rest,
        application.name,
        version="1.2.0",
        specification="bare",
        strategy="targeted",
        filters=[{"filterId": "lab"}],
        metadata=[1, None],
    )

    listed = ok(await rest.get(software_path(application.name)))

    for item in listed:
        assert item == ok(await rest.get(software_path(application.name, item["version"])))


async def test_list_of_an_application_without_definitions_is_an_empty_array(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    response = await rest.get(software_path(application.name))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == []


# ---------------------------------------------------------------------------------------------
# PUT (full replace) and PATCH (update mask or present fields)


async def test_put_replaces_the_whole_definition(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    created = await create(rest, application.name, metadata={"owner": "ops"})

    replaced = await put_definition(
        rest,
        application,
        {
            "upgradableFrom": ["0.9.0"],
            "specification": {"image": "new.bin"},
            "rolloutStrategy": "suspended",
        },
    )

    assert replaced["version"] == "1.1.0"
    assert replaced["upgradableFrom"] == ["0.9.0"]
    assert replaced["specification"] == {"image": "new.bin"}
    assert replaced["metadata"] == {}
    assert replaced["rolloutStrategy"] == "suspended"
    assert replaced["createdAt"] == created["createdAt"]
    assert parse_time(replaced["updatedAt"]) >= parse_time(created["updatedAt"])
    assert replaced["etag"] != created["etag"]
    assert ok(await rest.get(software_path(application.name, "1.1.0"))) == replaced


async def test_put_of_an_unknown_version_is_404_and_creates_nothing(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    response = await rest.put(
        software_path(application.name, "3.0.0"), json=definition(version="3.0.0")
    )

    error(response, 404, NOT_FOUND)
    assert ok(await rest.get(software_path(application.name))) == []


async def test_patch_with_an_update_mask_changes_only_the_masked_fields(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    created = await create(rest, application.name, metadata={"owner": "ops"})

    updated = await patch_definition(
        rest,
        application,
        {
            "upgradableFrom": ["1.0.0", "1.0.1"],
            "metadata": {"owner": "dev"},
            "specification": {"image": "ignored.bin"},
            "rolloutStrategy": "suspended",
        },
        mask="metadata,upgradableFrom",
    )

    assert updated["metadata"] == {"owner": "dev"}
    assert updated["upgradableFrom"] == ["1.0.0", "1.0.1"]
    assert updated["specification"] == created["specification"]
    assert updated["rolloutStrategy"] == "general"
    assert updated["etag"] != created["etag"]
    assert ok(await rest.get(software_path(application.name, "1.1.0"))) == updated


async def test_patch_with_a_mask_naming_an_absent_field_clears_it(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    await create(rest, application.name, metadata={"owner": "ops"})

    updated = await patch_definition(rest, application, {}, mask="metadata")

    assert updated["metadata"] == {}


async def test_patch_without_a_mask_changes_the_fields_present(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    created = await create(rest, application.name, metadata={"owner": "ops"})

    updated = await patch_definition(
        rest, application, {"rolloutStrategy": "targeted", "filters": [{"filterId": "lab"}]}
    )

    assert updated["rolloutStrategy"] == "targeted"
    assert updated["filters"] == [{"filterId": "lab"}]
    assert updated["metadata"] == {"owner": "ops"}
    assert updated["specification"] == created["specification"]
    assert updated["upgradableFrom"] == created["upgradableFrom"]


async def test_patch_leaving_targeted_without_naming_filters_drops_them(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    await create(rest, application.name, strategy="targeted", filters=[{"filterId": "lab"}])

    updated = await patch_definition(rest, application, {"rolloutStrategy": "general"})

    assert (updated["rolloutStrategy"], updated["filters"]) == ("general", [])


async def test_patch_with_a_mask_naming_a_read_only_field_is_a_400(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    await create(rest, application.name)

    response = await rest.patch(
        software_path(application.name, "1.1.0"), params={"updateMask": "createdAt"}, json={}
    )

    assert set(field_violations(response)) == {"updateMask"}


# ---------------------------------------------------------------------------------------------
# DELETE


async def test_delete_removes_the_definition(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    await create(rest, application.name, version="1.1.0")
    await create(rest, application.name, version="1.2.0")

    assert ok(await rest.delete(software_path(application.name, "1.1.0"))) == {}

    error(await rest.get(software_path(application.name, "1.1.0")), 404, NOT_FOUND)
    assert [s["version"] for s in ok(await rest.get(software_path(application.name)))] == ["1.2.0"]
    error(await rest.delete(software_path(application.name, "1.1.0")), 404, NOT_FOUND)


async def test_devices_see_a_change_at_once(
    rest: httpx.AsyncClient, application: ApplicationConfig, cmx: CmxPeer
) -> None:
    app_version = application.app_versions[0]
    await create(rest, application.name, version="1.1.0")
    await create(rest, application.name, version="1.2.0")
    assert (await cmx.request(app_version, "ep-c", config_id="1.0.0")).config_id == "1.2.0"

    ok(
        await rest.patch(
            software_path(application.name, "1.2.0"), json={"rolloutStrategy": "suspended"}
        )
    )
    assert (await cmx.request(app_version, "ep-c", config_id="1.0.0")).config_id == "1.1.0"

    await put_definition(
        rest, application, definition(version="1.1.0", specification={"image": "replaced.bin"})
    )
    offer = await cmx.request(app_version, "ep-c", config_id="1.0.0")
    assert offer.content is not None and json.loads(offer.content) == {"image": "replaced.bin"}

    ok(await rest.delete(software_path(application.name, "1.1.0")))
    offer = await cmx.request(app_version, "ep-c", config_id="1.0.0")
    assert (offer.status_code, offer.config_id, offer.content) == (200, None, None)


# ---------------------------------------------------------------------------------------------
# 404 and 409 through Envoy


def every_route(application: str, version: str) -> dict[str, tuple[str, str, Any]]:
    return {
        "list": ("GET", software_path(application), None),
        "create": ("POST", software_path(application), definition(version=version)),
        "get": ("GET", software_path(application, version), None),
        "put": ("PUT", software_path(application, version), definition(version=version)),
        "patch": ("PATCH", software_path(application, version), {"metadata": {}}),
        "delete": ("DELETE", software_path(application, version), None),
        "get settings": ("GET", f"{APPS}/{application}/settings", None),
        "put settings": ("PUT", f"{APPS}/{application}/settings", {"consentRequired": True}),
    }


@pytest.mark.parametrize("route", list(every_route("x", "1.0.0")))
async def test_every_route_of_an_unknown_application_is_404(
    rest: httpx.AsyncClient, route: str
) -> None:
    method, path, body = every_route("no-such-application", "1.1.0")[route]

    response = await rest.request(method, path, json=body)

    assert "no-such-application" in error(response, 404, NOT_FOUND)["message"]


@pytest.mark.parametrize("route", ["get", "put", "patch", "delete"])
async def test_every_route_of_an_unknown_version_is_404(
    rest: httpx.AsyncClient, application: ApplicationConfig, route: str
) -> None:
    await create(rest, application.name, version="1.1.0")
    method, path, body = every_route(application.name, "1.2.0")[route]

    response = await rest.request(method, path, json=body)

    assert "1.2.0" in error(response, 404, NOT_FOUND)["message"]


async def test_a_duplicate_version_is_409_already_exists_and_keeps_the_first(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    first = await create(rest, application.name, specification={"image": "first.bin"})

    response = await rest.post(
        software_path(application.name), json=definition(specification={"image": "second.bin"})
    )

    error(response, 409, ALREADY_EXISTS)
    assert ok(await rest.get(software_path(application.name, "1.1.0"))) == first


# ---------------------------------------------------------------------------------------------
# etag preconditions: ?etag= or "etag" in the body


def conditional(application: str, etag: str, method: str, where: str) -> dict[str, Any]:
    path = software_path(application, "1.1.0")
    params = {"etag": etag} if where == "query" else {}
    if method == "DELETE":
        return {"method": method, "url": path, "params": params}
    body: dict[str, Any] = (
        definition(metadata={"changed": True}) if method == "PUT" else {"metadata": {"x": 1}}
    )
    if where == "body":
        body["etag"] = etag
    return {"method": method, "url": path, "params": params, "json": body}


PRECONDITIONED = [
    ("PUT", "query"),
    ("PUT", "body"),
    ("PATCH", "query"),
    ("PATCH", "body"),
    ("DELETE", "query"),
]


@pytest.mark.parametrize(("method", "where"), PRECONDITIONED)
async def test_a_stale_etag_is_409_aborted_and_changes_nothing(
    rest: httpx.AsyncClient, application: ApplicationConfig, method: str, where: str
) -> None:
    created = await create(rest, application.name)
    current = await patch_definition(rest, application, {"metadata": {"by": "someone else"}})

    response = await rest.request(**conditional(application.name, created["etag"], method, where))

    error(response, 409, ABORTED)
    assert ok(await rest.get(software_path(application.name, "1.1.0"))) == current


@pytest.mark.parametrize(("method", "where"), PRECONDITIONED)
async def test_the_current_etag_lets_the_write_through_with_a_new_etag(
    rest: httpx.AsyncClient, application: ApplicationConfig, method: str, where: str
) -> None:
    created = await create(rest, application.name)

    response = await rest.request(**conditional(application.name, created["etag"], method, where))

    if method == "DELETE":
        assert ok(response) == {}
        assert ok(await rest.get(software_path(application.name))) == []
        return
    written = ok(response)
    assert written["etag"] and written["etag"] != created["etag"]
    assert written["metadata"] != created["metadata"]
    assert ok(await rest.get(software_path(application.name, "1.1.0"))) == written


# ---------------------------------------------------------------------------------------------
# Settings


async def test_settings_default_to_consent_not_required(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    assert ok(await rest.get(f"{APPS}/{application.name}/settings")) == {"consentRequired": False}


async def test_settings_put_is_returned_and_read_back(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    path = f"{APPS}/{application.name}/settings"
    for wanted in (True, False):
        assert ok(await rest.put(path, json={"consentRequired": wanted})) == {
            "consentRequired": wanted
        }
        assert ok(await rest.get(path)) == {"consentRequired": wanted}


# ---------------------------------------------------------------------------------------------
# Validation: HTTP 400 with the google.rpc.BadRequest field violations as JSON

SPEC_TOO_BIG = {"blob": "x" * (256 * KIB - BLOB_OVERHEAD + 1)}


@pytest.mark.parametrize(("body", "field"), DOOR_VIOLATIONS.values(), ids=DOOR_VIOLATIONS.keys())
async def test_an_invalid_definition_is_a_400_naming_exactly_the_bad_field(
    rest: httpx.AsyncClient, application: ApplicationConfig, body: dict[str, Any], field: str
) -> None:
    response = await rest.post(software_path(application.name), json=body)

    assert set(field_violations(response)) == {field}
    assert ok(await rest.get(software_path(application.name))) == []


async def test_a_missing_specification_is_a_400_naming_the_specification(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    body = definition()
    del body["specification"]

    response = await rest.post(software_path(application.name), json=body)

    assert set(field_violations(response)) == {"specification"}


async def test_an_invalid_put_is_a_400_and_changes_nothing(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    created = await create(rest, application.name)

    response = await rest.put(
        software_path(application.name, "1.1.0"),
        json={"upgradableFrom": ["2.0.0"], "specification": {}},
    )

    assert set(field_violations(response)) == {"upgradableFrom[0]", "rolloutStrategy"}
    assert ok(await rest.get(software_path(application.name, "1.1.0"))) == created


async def test_several_violations_are_reported_in_one_400(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    response = await rest.post(
        software_path(application.name),
        json={
            "version": "2.0.0",
            "upgradableFrom": ["2.0.0", "1.0", "1.0.0", "1.0.0"],
            "specification": SPEC_TOO_BIG,
            "filters": [{"filterId": "lab", "rolloutDate": "soon"}],
        },
    )

    assert set(field_violations(response)) == {
        "upgradableFrom[0]",
        "upgradableFrom[1]",
        "upgradableFrom[3]",
        "rolloutStrategy",
        "filters[0].rolloutDate",
        "specification",
    }


@pytest.mark.parametrize("name", ["-dash-first", "a" * 129, "under_score!"])
async def test_a_bad_application_name_in_the_path_is_a_400_naming_it(
    rest: httpx.AsyncClient, name: str
) -> None:
    response = await rest.post(software_path(name), json=definition())

    assert set(field_violations(response)) == {"applicationName"}


@pytest.mark.parametrize("version", ["01.0.0", "1.0.0-", "1.0"])
async def test_a_bad_version_in_the_path_is_a_400_naming_it(
    rest: httpx.AsyncClient, application: ApplicationConfig, version: str
) -> None:
    response = await rest.get(software_path(application.name, version))

    assert set(field_violations(response)) == {"version"}


# ---------------------------------------------------------------------------------------------
# Specification fidelity: REST in, REST out, and to a device over 6/CDTP

SAFE_INTEGER = 2**53
KEYS = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["$", "$set", "a.b", ".", "$where.x", "_id", "", "ключ", "🔑"]),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-SAFE_INTEGER, max_value=SAFE_INTEGER),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=4)
    ),
    max_leaves=16,
)


def same_json(expected: Any, actual: Any, path: str = "$") -> None:
    """Equal as JSON: like ==, but True is not 1, 1 is 1.0, and -0.0 is 0."""
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        assert type(actual) is type(expected) and actual == expected, (path, expected, actual)
    elif isinstance(expected, int | float):
        assert isinstance(actual, int | float) and not isinstance(actual, bool), (path, actual)
        assert actual == expected, (path, expected, actual)
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (path, actual)
        for index, (wanted, got) in enumerate(zip(expected, actual, strict=True)):
            same_json(wanted, got, f"{path}[{index}]")
    else:
        assert isinstance(actual, dict) and set(actual) == set(expected), (path, actual)
        for key, wanted in expected.items():
            same_json(wanted, actual[key], f"{path}.{key}")


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(specification=JSON_VALUES)
@example(specification={})
@example(specification="just a string")
@example(specification=-12.5)
@example(specification=SAFE_INTEGER)
@example(specification=-SAFE_INTEGER)
@example(specification=False)
@example(specification=None)
@example(specification=[])
@example(specification={"$set": {"a.b": [None, True, 0, "ü\u0000\n"]}, "": {"": ""}})
async def test_a_specification_comes_back_and_reaches_the_device_as_posted(
    rest: httpx.AsyncClient, otao: RunningOtao, cmx: CmxPeer, specification: Any
) -> None:
    application = otao.add_application()
    body = {
        "version": "2.0.0",
        "upgradableFrom": ["1.0.0"],
        "specification": specification,
        "rolloutStrategy": "general",
    }

    created = ok(await rest.post(software_path(application.name), json=body))
    fetched = ok(await rest.get(software_path(application.name, "2.0.0")))
    listed = ok(await rest.get(software_path(application.name)))
    delivered = await cmx.request(application.app_versions[0], "ep-spec", config_id="1.0.0")

    same_json(specification, created["specification"])
    same_json(specification, fetched["specification"])
    same_json(specification, listed[0]["specification"])
    assert (delivered.status_code, delivered.config_id) == (200, "2.0.0")
    assert delivered.content is not None
    same_json(specification, json.loads(delivered.content.decode("utf-8")))


async def test_a_specification_of_exactly_256_kib_is_accepted_and_delivered_whole(
    rest: httpx.AsyncClient, application: ApplicationConfig, cmx: CmxPeer
) -> None:
    specification = {"blob": "é" * ((256 * KIB - BLOB_OVERHEAD) // 2)}

    created = await create(rest, application.name, specification=specification)
    delivered = await cmx.request(application.app_versions[0], "ep-big", config_id="1.0.0")

    assert created["specification"] == specification
    assert delivered.content is not None
    assert json.loads(delivered.content) == specification
