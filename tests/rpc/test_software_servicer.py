"""kaa.otao.v1.SoftwareService over real gRPC: CRUD, errors, etag preconditions, validation.

The running otao (in-process App, real nats-server and nx-27017/MongoDB) is reached through
its gRPC port; every test works in an application of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from kaa.otao.v1 import software_pb2, software_pb2_grpc

from otao.domain.applications import ApplicationConfig
from tests.support.rest import DOOR_VIOLATIONS, definition

pytestmark = pytest.mark.timeout(30)

KIB = 1024
# {"blob":"<n x's>"} is 11 bytes plus n as JSON text.
BLOB_OVERHEAD = len('{"blob":""}')


@pytest.fixture
def stub(grpc_channel: grpc.aio.Channel) -> software_pb2_grpc.SoftwareServiceAsyncStub:
    return software_pb2_grpc.SoftwareServiceStub(grpc_channel)


def as_proto(body: dict[str, Any]) -> software_pb2.Software:
    return json_format.ParseDict(body, software_pb2.Software())


def as_json(message: software_pb2.Software) -> dict[str, Any]:
    return json_format.MessageToDict(message)


async def create(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: str, **fields: Any
) -> software_pb2.Software:
    return await stub.CreateSoftware(
        software_pb2.CreateSoftwareRequest(
            application_name=application, software=as_proto(definition(**fields))
        )
    )


async def listed_software(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: str
) -> list[software_pb2.Software]:
    response = await stub.ListSoftware(
        software_pb2.ListSoftwareRequest(application_name=application)
    )
    return list(response.software)


def replace(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub,
    application: str,
    version: str,
    body: dict[str, Any],
) -> Awaitable[software_pb2.Software]:
    """The ReplaceSoftware call (awaited by the caller, or by ``failure``)."""
    return stub.ReplaceSoftware(
        software_pb2.ReplaceSoftwareRequest(
            application_name=application, version=version, software=as_proto(body)
        )
    )


def update(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub,
    application: str,
    version: str,
    body: dict[str, Any],
    mask: list[str] | None = None,
) -> Awaitable[software_pb2.Software]:
    """The UpdateSoftware call, with an update mask of these paths when given."""
    request = software_pb2.UpdateSoftwareRequest(
        application_name=application, version=version, software=as_proto(body)
    )
    if mask is not None:
        request.update_mask.paths.extend(mask)
    return stub.UpdateSoftware(request)


async def fetch(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: str, version: str
) -> software_pb2.Software:
    request = software_pb2.GetSoftwareRequest(application_name=application, version=version)
    return await stub.GetSoftware(request)


async def set_consent_required(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: str, required: bool
) -> software_pb2.ApplicationSettings:
    settings = software_pb2.ApplicationSettings(consent_required=required)
    return await stub.UpdateApplicationSettings(
        software_pb2.UpdateApplicationSettingsRequest(
            application_name=application, settings=settings
        )
    )


async def settings_of(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: str
) -> software_pb2.ApplicationSettings:
    request = software_pb2.GetApplicationSettingsRequest(application_name=application)
    return await stub.GetApplicationSettings(request)


async def failure(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The google.rpc.BadRequest field violations of an INVALID_ARGUMENT error: field -> text."""
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, error
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status in the trailers"
    found: dict[str, str] = {}
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            for violation in bad_request.field_violations:
                assert violation.description, f"violation of {violation.field} without a text"
                found[violation.field] = violation.description
    return found


def utc(message_time: Any) -> datetime:
    return message_time.ToDatetime(tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# Create, get, list


async def test_create_returns_the_definition_with_server_set_times_and_etag(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    created = await create(
        stub,
        application.name,
        version="1.1.0",
        upgradable_from=["1.0.0", "0.9.0"],
        specification={"image": "fw.bin", "sha256": "ab" * 32, "size": 5},
        metadata={"notes": "first"},
    )

    assert as_json(created) | {"createdAt": None, "updatedAt": None, "etag": None} == {
        "version": "1.1.0",
        "upgradableFrom": ["1.0.0", "0.9.0"],
        "specification": {"image": "fw.bin", "sha256": "ab" * 32, "size": 5.0},
        "metadata": {"notes": "first"},
        "rolloutStrategy": "general",
        "createdAt": None,
        "updatedAt": None,
        "etag": None,
    }
    assert created.etag
    assert before <= utc(created.created_at) <= datetime.now(UTC) + timedelta(seconds=1)
    assert created.updated_at == created.created_at


async def test_get_returns_exactly_what_create_returned(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    created = await create(
        stub,
        application.name,
        strategy="targeted",
        filters=[
            {"filterId": "beta-testers", "rolloutDate": "2030-01-02T03:04:05Z"},
            {"filterId": "lab"},
        ],
    )

    fetched = await fetch(stub, application.name, "1.1.0")

    assert fetched == created
    assert [(f.filter_id, f.rollout_date) for f in fetched.filters] == [
        ("beta-testers", "2030-01-02T03:04:05Z"),
        ("lab", ""),
    ]


async def test_list_software_is_a_typed_list_newest_semver_first(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    created = [
        "1.9.0",
        "1.10.0",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "0.2.0",
    ]
    for version in created:
        await create(stub, application.name, version=version, upgradable_from=["0.1.0"])

    listed = await stub.ListSoftware(
        software_pb2.ListSoftwareRequest(application_name=application.name)
    )

    assert isinstance(listed, software_pb2.ListSoftwareResponse)
    assert [s.version for s in listed.software] == [
        "1.10.0",
        "1.9.0",
        "1.0.0",
        "1.0.0-rc.1",
        "1.0.0-beta.11",
        "1.0.0-beta.2",
        "0.2.0",
    ]
    assert all(s.etag and s.specification.HasField("struct_value") for s in listed.software)


async def test_list_software_of_an_application_without_definitions_is_empty(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    assert await listed_software(stub, application.name) == []


async def test_list_software_holds_only_the_applications_own_definitions(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub,
    application: ApplicationConfig,
    otao: Any,
) -> None:
    other = otao.add_application()
    await create(stub, application.name, version="1.1.0")
    await create(stub, other.name, version="2.0.0")

    listed = await stub.ListSoftware(
        software_pb2.ListSoftwareRequest(application_name=application.name)
    )

    assert [s.version for s in listed.software] == ["1.1.0"]


# ---------------------------------------------------------------------------------------------
# Replace (PUT) and update (PATCH)


async def test_replace_sets_every_writable_field_and_keeps_created_at(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    created = await create(stub, application.name, metadata={"owner": "team-a"})

    replaced = await replace(
        stub,
        application.name,
        "1.1.0",
        {
            "upgradableFrom": ["0.9.0"],
            "specification": ["a", 1],
            "rolloutStrategy": "suspended",
        },
    )

    assert replaced.version == "1.1.0"
    assert list(replaced.upgradable_from) == ["0.9.0"]
    assert json_format.MessageToDict(replaced.specification) == ["a", 1.0]  # type: ignore[comparison-overlap]
    # Full replace: metadata that the request left out is gone.
    assert json_format.MessageToDict(replaced.metadata) == {}
    assert replaced.rollout_strategy == "suspended"
    assert replaced.created_at == created.created_at
    assert utc(replaced.updated_at) >= utc(created.updated_at)
    assert replaced.etag and replaced.etag != created.etag
    fetched = await fetch(stub, application.name, "1.1.0")
    assert fetched == replaced


async def test_replace_of_an_unknown_version_is_not_found_and_creates_nothing(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    error = await failure(replace(stub, application.name, "3.0.0", definition(version="3.0.0")))

    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert await listed_software(stub, application.name) == []


async def test_replace_with_another_version_in_the_body_names_the_version_field(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    await create(stub, application.name)

    error = await failure(replace(stub, application.name, "1.1.0", definition(version="1.2.0")))

    assert set(violations(error)) == {"version"}


async def test_update_with_a_mask_changes_only_the_masked_fields(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    created = await create(stub, application.name, metadata={"owner": "team-a"})

    updated = await stub.UpdateSoftware(
        software_pb2.UpdateSoftwareRequest(
            application_name=application.name,
            version="1.1.0",
            # Everything is present, only metadata is masked.
            software=as_proto(
                definition(
                    upgradable_from=["0.5.0"],
                    specification={"image": "other.bin"},
                    strategy="suspended",
                    metadata={"owner": "team-b"},
                )
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["metadata"]),
        )
    )

    assert json_format.MessageToDict(updated.metadata) == {"owner": "team-b"}
    assert list(updated.upgradable_from) == ["1.0.0"]
    assert json_format.MessageToDict(updated.specification) == {"image": "fw-1.1.0.bin"}
    assert updated.rollout_strategy == "general"
    assert updated.created_at == created.created_at
    assert updated.etag != created.etag


async def test_update_mask_takes_proto_field_names_too(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    await create(stub, application.name)

    updated = await update(
        stub,
        application.name,
        "1.1.0",
        {"upgradableFrom": ["1.0.0", "1.0.1"], "rolloutStrategy": "x"},
        mask=["upgradable_from"],
    )

    assert list(updated.upgradable_from) == ["1.0.0", "1.0.1"]
    assert updated.rollout_strategy == "general"


async def test_update_without_a_mask_changes_the_fields_present_in_the_request(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    await create(stub, application.name, metadata={"owner": "team-a"})

    updated = await update(
        stub, application.name, "1.1.0", {"rolloutStrategy": "suspended", "specification": None}
    )

    assert updated.rollout_strategy == "suspended"
    assert updated.specification.WhichOneof("kind") == "null_value"
    # Absent fields are kept.
    assert list(updated.upgradable_from) == ["1.0.0"]
    assert json_format.MessageToDict(updated.metadata) == {"owner": "team-a"}


async def test_update_mask_naming_a_read_only_field_names_the_update_mask(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    await create(stub, application.name)

    error = await failure(
        update(stub, application.name, "1.1.0", {"etag": "mine"}, mask=["created_at"])
    )

    assert set(violations(error)) == {"updateMask"}


async def test_update_that_leaves_an_invalid_definition_is_refused_and_changes_nothing(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    created = await create(stub, application.name)

    error = await failure(update(stub, application.name, "1.1.0", {"upgradableFrom": ["1.2.0"]}))

    assert set(violations(error)) == {"upgradableFrom[0]"}
    fetched = await fetch(stub, application.name, "1.1.0")
    assert fetched == created


# ---------------------------------------------------------------------------------------------
# Delete


async def test_delete_removes_the_definition(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    await create(stub, application.name, version="1.1.0")
    await create(stub, application.name, version="1.2.0")

    reply = await stub.DeleteSoftware(
        software_pb2.DeleteSoftwareRequest(application_name=application.name, version="1.1.0")
    )

    assert reply == software_pb2.DeleteSoftwareResponse()
    error = await failure(
        stub.GetSoftware(
            software_pb2.GetSoftwareRequest(application_name=application.name, version="1.1.0")
        )
    )
    assert error.code() is grpc.StatusCode.NOT_FOUND
    listed = await listed_software(stub, application.name)
    assert [s.version for s in listed] == ["1.2.0"]
    # The version is free again.
    again = await create(stub, application.name, version="1.1.0")
    assert again.version == "1.1.0"


# ---------------------------------------------------------------------------------------------
# 404 and 409


def every_call(application: str, version: str) -> list[tuple[str, Any]]:
    software = as_proto(definition(version=version))
    return [
        ("ListSoftware", software_pb2.ListSoftwareRequest(application_name=application)),
        (
            "CreateSoftware",
            software_pb2.CreateSoftwareRequest(application_name=application, software=software),
        ),
        (
            "GetSoftware",
            software_pb2.GetSoftwareRequest(application_name=application, version=version),
        ),
        (
            "ReplaceSoftware",
            software_pb2.ReplaceSoftwareRequest(
                application_name=application, version=version, software=software
            ),
        ),
        (
            "UpdateSoftware",
            software_pb2.UpdateSoftwareRequest(
                application_name=application, version=version, software=software
            ),
        ),
        (
            "DeleteSoftware",
            software_pb2.DeleteSoftwareRequest(application_name=application, version=version),
        ),
        (
            "GetApplicationSettings",
            software_pb2.GetApplicationSettingsRequest(application_name=application),
        ),
        (
            "UpdateApplicationSettings",
            software_pb2.UpdateApplicationSettingsRequest(
                application_name=application,
                settings=software_pb2.ApplicationSettings(consent_required=True),
            ),
        ),
    ]


@pytest.mark.parametrize("method", [name for name, _ in every_call("x", "1.0.0")])
async def test_every_call_on_an_unknown_application_is_not_found(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, method: str
) -> None:
    request = dict(every_call("no-such-application", "1.1.0"))[method]

    error = await failure(getattr(stub, method)(request))

    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert "no-such-application" in (error.details() or "")


@pytest.mark.parametrize(
    "method", ["GetSoftware", "ReplaceSoftware", "UpdateSoftware", "DeleteSoftware"]
)
async def test_every_call_on_an_unknown_version_is_not_found(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig, method: str
) -> None:
    await create(stub, application.name, version="1.1.0")
    request = dict(every_call(application.name, "1.2.0"))[method]

    error = await failure(getattr(stub, method)(request))

    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert "1.2.0" in (error.details() or "")


async def test_a_duplicate_version_is_already_exists_and_keeps_the_first(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    first = await create(stub, application.name, specification={"image": "first.bin"})

    error = await failure(create(stub, application.name, specification={"image": "second.bin"}))

    assert error.code() is grpc.StatusCode.ALREADY_EXISTS
    fetched = await fetch(stub, application.name, "1.1.0")
    assert fetched == first


# ---------------------------------------------------------------------------------------------
# etag preconditions


def conditional_write(method: str, application: str, etag: str, where: str) -> tuple[str, Any]:
    """A write of 1.1.0 carrying ``etag`` in the request field or in the software message."""
    in_request = etag if where == "request" else ""
    body = definition(metadata={"changed": True})
    if where == "software":
        body["etag"] = etag
    software = as_proto(body)
    if method == "ReplaceSoftware":
        return method, software_pb2.ReplaceSoftwareRequest(
            application_name=application, version="1.1.0", software=software, etag=in_request
        )
    if method == "UpdateSoftware":
        return method, software_pb2.UpdateSoftwareRequest(
            application_name=application,
            version="1.1.0",
            software=software,
            update_mask=field_mask_pb2.FieldMask(paths=["metadata"]),
            etag=in_request,
        )
    return method, software_pb2.DeleteSoftwareRequest(
        application_name=application, version="1.1.0", etag=etag
    )


WRITES = [
    ("ReplaceSoftware", "request"),
    ("ReplaceSoftware", "software"),
    ("UpdateSoftware", "request"),
    ("UpdateSoftware", "software"),
    ("DeleteSoftware", "request"),
]


@pytest.mark.parametrize(("method", "where"), WRITES)
async def test_a_write_with_a_stale_etag_is_aborted_and_changes_nothing(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub,
    application: ApplicationConfig,
    method: str,
    where: str,
) -> None:
    created = await create(stub, application.name)
    # Someone else writes: the etag the caller holds is stale now.
    await update(stub, application.name, "1.1.0", {"metadata": {"by": "someone else"}})
    current = await fetch(stub, application.name, "1.1.0")
    assert current.etag != created.etag
    name, request = conditional_write(method, application.name, created.etag, where)

    error = await failure(getattr(stub, name)(request))

    assert error.code() is grpc.StatusCode.ABORTED
    after = await fetch(stub, application.name, "1.1.0")
    assert after == current


@pytest.mark.parametrize(("method", "where"), WRITES)
async def test_a_write_with_the_current_etag_succeeds(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub,
    application: ApplicationConfig,
    method: str,
    where: str,
) -> None:
    created = await create(stub, application.name)
    name, request = conditional_write(method, application.name, created.etag, where)

    reply = await getattr(stub, name)(request)

    if name == "DeleteSoftware":
        assert await listed_software(stub, application.name) == []
    else:
        assert json_format.MessageToDict(reply.metadata) == {"changed": True}
        assert reply.etag and reply.etag != created.etag
        fetched = await fetch(stub, application.name, "1.1.0")
        assert fetched.etag == reply.etag


async def test_an_etag_is_single_use_the_second_writer_with_it_is_aborted(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    created = await create(stub, application.name)
    first = software_pb2.UpdateSoftwareRequest(
        application_name=application.name,
        version="1.1.0",
        software=as_proto({"metadata": {"writer": 1}}),
        etag=created.etag,
    )
    second = software_pb2.UpdateSoftwareRequest(
        application_name=application.name,
        version="1.1.0",
        software=as_proto({"metadata": {"writer": 2}}),
        etag=created.etag,
    )

    await stub.UpdateSoftware(first)
    error = await failure(stub.UpdateSoftware(second))

    assert error.code() is grpc.StatusCode.ABORTED
    fetched = await fetch(stub, application.name, "1.1.0")
    assert json_format.MessageToDict(fetched.metadata) == {"writer": 1}


# ---------------------------------------------------------------------------------------------
# Application settings


async def test_settings_default_to_no_consent_required(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    settings = await settings_of(stub, application.name)
    assert settings == software_pb2.ApplicationSettings(consent_required=False)


async def test_settings_put_is_returned_and_read_back(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    for wanted in (True, False, True):
        stored = await set_consent_required(stub, application.name, wanted)
        fetched = await settings_of(stub, application.name)
        assert stored.consent_required is wanted
        assert fetched.consent_required is wanted


async def test_settings_are_per_application(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig, otao: Any
) -> None:
    other = otao.add_application()
    await set_consent_required(stub, application.name, True)

    fetched = await settings_of(stub, other.name)

    assert fetched.consent_required is False


# ---------------------------------------------------------------------------------------------
# Validation: INVALID_ARGUMENT with google.rpc.BadRequest naming each bad field


@pytest.mark.parametrize(("body", "field"), DOOR_VIOLATIONS.values(), ids=DOOR_VIOLATIONS.keys())
async def test_an_invalid_definition_names_exactly_the_bad_field(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub,
    application: ApplicationConfig,
    body: dict[str, Any],
    field: str,
) -> None:
    error = await failure(
        stub.CreateSoftware(
            software_pb2.CreateSoftwareRequest(
                application_name=application.name, software=as_proto(body)
            )
        )
    )

    assert set(violations(error)) == {field}
    assert await listed_software(stub, application.name) == []


async def test_a_missing_specification_names_the_specification(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    body = definition()
    del body["specification"]

    error = await failure(
        stub.CreateSoftware(
            software_pb2.CreateSoftwareRequest(
                application_name=application.name, software=as_proto(body)
            )
        )
    )

    assert set(violations(error)) == {"specification"}


@pytest.mark.parametrize("size", [256 * KIB - BLOB_OVERHEAD, 1])
async def test_a_specification_up_to_256_kib_is_accepted_whole(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig, size: int
) -> None:
    blob = "x" * size

    created = await create(stub, application.name, specification={"blob": blob})

    assert json_format.MessageToDict(created.specification) == {"blob": blob}


async def test_a_rollout_date_with_fractions_of_a_second_is_accepted(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    created = await create(
        stub,
        application.name,
        strategy="targeted",
        filters=[{"filterId": "lab", "rolloutDate": "2030-01-02T03:04:05.250Z"}],
    )
    assert created.filters[0].rollout_date.startswith("2030-01-02T03:04:05")


async def test_several_violations_are_reported_together(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig
) -> None:
    body = {
        "version": "1.0",
        "upgradableFrom": ["x.y.z", "0.1.0", "0.1.0"],
        "rolloutStrategy": "targeted",
        "filters": [{"filterId": "no spaces allowed", "rolloutDate": "tomorrow"}],
        "metadata": {"blob": "x" * (256 * KIB)},
    }

    error = await failure(
        stub.CreateSoftware(
            software_pb2.CreateSoftwareRequest(
                application_name=application.name, software=as_proto(body)
            )
        )
    )

    assert set(violations(error)) == {
        "version",
        "upgradableFrom[0]",
        "upgradableFrom[2]",
        "filters[0].filterId",
        "filters[0].rolloutDate",
        "specification",
        "metadata",
    }


@pytest.mark.parametrize(
    "name", ["-starts-with-a-dash", "has space", "a" * 129, "slash/inside", "ünicode"]
)
async def test_a_bad_application_name_names_the_application_name(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, name: str
) -> None:
    error = await failure(
        stub.CreateSoftware(
            software_pb2.CreateSoftwareRequest(
                application_name=name, software=as_proto(definition())
            )
        )
    )

    assert set(violations(error)) == {"applicationName"}


@pytest.mark.parametrize("version", ["01.0.0", "1.0.0-", "latest"])
async def test_a_bad_version_in_the_request_names_the_version(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, application: ApplicationConfig, version: str
) -> None:
    error = await failure(
        stub.GetSoftware(
            software_pb2.GetSoftwareRequest(application_name=application.name, version=version)
        )
    )

    assert set(violations(error)) == {"version"}
