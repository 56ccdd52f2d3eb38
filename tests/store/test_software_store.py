"""otao.store.software against a real MongoDB-compatible server (nx-27017, or the MongoDB named
by OTAO_TEST_MONGODB_URI): definitions with etag compare-and-set, and application settings.

Each test has a database of its own, with otao's indexes made as at start
(tests/store/conftest.py).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from pymongo.errors import DuplicateKeyError

from otao.domain.errors import Aborted, AlreadyExists, NotFound
from otao.domain.models import (
    ApplicationSettings,
    JsonValue,
    RolloutFilter,
    RolloutHalt,
    RolloutPolicy,
    RolloutStrategy,
    Software,
    SoftwareSpec,
    canonical_json,
)
from otao.store.mongo import SOFTWARE, Mongo
from otao.store.software import SoftwareStore
from tests.support.values import APP, T0, TENANT

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def store(mongo: Mongo) -> SoftwareStore:
    return SoftwareStore(mongo)


def software(
    version: str = "1.1.0",
    specification: JsonValue = None,
    tenant: str = TENANT,
    application: str = APP,
    etag: str = "etag-1",
    **spec_fields: Any,
) -> Software:
    spec = SoftwareSpec(
        version=version,
        upgradable_from=("1.0.0",),
        specification_json=canonical_json(
            {"image": f"fw-{version}.bin"} if specification is None else specification
        ),
        metadata_json=canonical_json({"owner": "ops"}),
        rollout_strategy=RolloutStrategy.GENERAL,
    )
    return Software(tenant, application, replace(spec, **spec_fields), T0, T0, etag)


# ---------------------------------------------------------------------------------------------
# insert, get, list


async def test_an_inserted_definition_is_read_back_equal(store: SoftwareStore) -> None:
    stored = replace(
        software(
            rollout_strategy=RolloutStrategy.TARGETED,
            filters=(RolloutFilter("beta", T0 + timedelta(days=1)), RolloutFilter("lab", None)),
            rollout_policy=RolloutPolicy(0.25, 10),
            upgradable_from=("1.0.0", "0.9.0"),
        ),
        halt=RolloutHalt("too many failures", T0),
    )

    await store.insert(stored)

    assert await store.get(TENANT, APP, "1.1.0") == stored


async def test_an_unknown_version_reads_as_none(store: SoftwareStore) -> None:
    await store.insert(software("1.1.0"))

    assert await store.get(TENANT, APP, "1.2.0") is None
    assert await store.get(TENANT, "other-app", "1.1.0") is None
    assert await store.get("tenant-b", APP, "1.1.0") is None


async def test_a_duplicate_version_is_already_exists_and_keeps_the_first(
    store: SoftwareStore,
) -> None:
    first = software(specification={"image": "first.bin"})
    await store.insert(first)

    with pytest.raises(AlreadyExists):
        await store.insert(software(specification={"image": "second.bin"}, etag="etag-2"))

    assert await store.get(TENANT, APP, "1.1.0") == first


async def test_the_same_version_may_exist_in_other_tenants_and_applications(
    store: SoftwareStore,
) -> None:
    mine = software()
    other_tenant = software(tenant="tenant-b")
    other_application = software(application="toaster")

    for definition in (mine, other_tenant, other_application):
        await store.insert(definition)

    assert await store.get(TENANT, APP, "1.1.0") == mine
    assert await store.get("tenant-b", APP, "1.1.0") == other_tenant
    assert await store.get(TENANT, "toaster", "1.1.0") == other_application


async def test_the_unique_index_on_tenant_application_version_is_enforced(
    mongo: Mongo, store: SoftwareStore
) -> None:
    await store.insert(software())
    raw = await mongo.collection(SOFTWARE).find_one({"version": "1.1.0"})
    assert raw is not None
    raw["_id"] = "another-id"

    with pytest.raises(DuplicateKeyError):
        await mongo.collection(SOFTWARE).insert_one(raw)


async def test_listing_holds_only_the_applications_definitions_of_the_tenant(
    store: SoftwareStore,
) -> None:
    for version in ("1.1.0", "1.2.0", "2.0.0"):
        await store.insert(software(version))
    await store.insert(software("3.0.0", tenant="tenant-b"))
    await store.insert(software("4.0.0", application="toaster"))

    listed = await store.list_definitions(TENANT, APP)

    assert sorted(s.version for s in listed) == ["1.1.0", "1.2.0", "2.0.0"]
    assert all((s.tenant_id, s.application) == (TENANT, APP) for s in listed)


async def test_listing_an_application_without_definitions_is_empty(store: SoftwareStore) -> None:
    assert await store.list_definitions(TENANT, APP) == []


# ---------------------------------------------------------------------------------------------
# Specification fidelity: stored as JSON text, so MongoDB's field-name rules cannot bite

AWKWARD: list[JsonValue] = [
    {"$set": {"a.b": 1}, "$": None, ".": [], "": {"": ""}, "_id": "not an id"},
    {"nested": {"$where": "1 == 1", "a.b.c": [{"$ref": "x", "$id": 2}]}},
    {"unicode": "ключ 🔑 \u0000 \n", "ünï": -0.5, "big": 2**53, "tiny": 5e-324},
    "bare string",
    42,
    None,
    True,
    [],
    {},
]


@pytest.mark.parametrize("specification", AWKWARD, ids=lambda v: json.dumps(v)[:30])
async def test_a_specification_with_any_keys_is_stored_as_text_and_read_back_whole(
    mongo: Mongo, store: SoftwareStore, specification: JsonValue
) -> None:
    text = canonical_json(specification)
    definition = software(specification_json=text, metadata_json=text)

    await store.insert(definition)

    found = await store.get(TENANT, APP, "1.1.0")
    assert found is not None
    assert found.spec.specification_json == definition.spec.specification_json
    assert json.loads(found.spec.specification_json) == specification
    assert found.spec.metadata_json == definition.spec.metadata_json
    raw = await mongo.collection(SOFTWARE).find_one({"_id": f"{TENANT}/{APP}/1.1.0"})
    assert raw is not None
    assert isinstance(raw["specification"], str)
    assert isinstance(raw["metadata"], str)


# ---------------------------------------------------------------------------------------------
# replace: compare-and-set on the etag


@pytest.fixture
async def current(store: SoftwareStore) -> Software:
    """Definition 1.1.0 as stored under etag-2: a writer holding etag-1 is stale."""
    stored = software(etag="etag-2")
    await store.insert(stored)
    return stored


async def test_replace_with_the_stored_etag_writes_the_new_definition(
    store: SoftwareStore,
) -> None:
    await store.insert(software(etag="etag-1"))
    later = T0 + timedelta(minutes=5)
    changed = replace(
        software(specification={"image": "new.bin"}, rollout_strategy=RolloutStrategy.SUSPENDED),
        updated_at=later,
        etag="etag-2",
    )

    await store.replace(changed, "etag-1")

    assert await store.get(TENANT, APP, "1.1.0") == changed


async def test_replace_with_a_stale_etag_is_aborted_and_changes_nothing(
    store: SoftwareStore, current: Software
) -> None:
    with pytest.raises(Aborted):
        await store.replace(software(specification={"image": "lost.bin"}, etag="etag-3"), "etag-1")

    assert await store.get(TENANT, APP, "1.1.0") == current


async def test_only_one_of_two_writers_holding_the_same_etag_wins(store: SoftwareStore) -> None:
    await store.insert(software(etag="etag-1"))
    first = software(specification={"writer": 1}, etag="etag-a")
    second = software(specification={"writer": 2}, etag="etag-b")

    await store.replace(first, "etag-1")
    with pytest.raises(Aborted):
        await store.replace(second, "etag-1")

    assert await store.get(TENANT, APP, "1.1.0") == first


async def test_replace_of_a_missing_definition_is_not_found_and_creates_nothing(
    store: SoftwareStore,
) -> None:
    with pytest.raises(NotFound):
        await store.replace(software(), "etag-1")

    assert await store.get(TENANT, APP, "1.1.0") is None


# ---------------------------------------------------------------------------------------------
# delete


async def test_delete_without_an_etag_removes_the_definition(store: SoftwareStore) -> None:
    await store.insert(software("1.1.0"))
    await store.insert(software("1.2.0"))

    await store.delete(TENANT, APP, "1.1.0", None)

    assert await store.get(TENANT, APP, "1.1.0") is None
    assert [s.version for s in await store.list_definitions(TENANT, APP)] == ["1.2.0"]


async def test_delete_with_the_stored_etag_removes_the_definition(store: SoftwareStore) -> None:
    await store.insert(software(etag="etag-1"))

    await store.delete(TENANT, APP, "1.1.0", "etag-1")

    assert await store.get(TENANT, APP, "1.1.0") is None


async def test_delete_with_a_stale_etag_is_aborted_and_keeps_the_definition(
    store: SoftwareStore, current: Software
) -> None:
    with pytest.raises(Aborted):
        await store.delete(TENANT, APP, "1.1.0", "etag-1")

    assert await store.get(TENANT, APP, "1.1.0") == current


async def test_delete_of_a_missing_definition_is_not_found(store: SoftwareStore) -> None:
    await store.insert(software("1.1.0", tenant="tenant-b"))

    with pytest.raises(NotFound):
        await store.delete(TENANT, APP, "1.1.0", None)
    with pytest.raises(NotFound):
        await store.delete(TENANT, APP, "1.1.0", "etag-1")

    assert await store.get("tenant-b", APP, "1.1.0") is not None


async def test_a_deleted_version_can_be_inserted_again(store: SoftwareStore) -> None:
    await store.insert(software(etag="etag-1"))
    await store.delete(TENANT, APP, "1.1.0", None)
    again = software(specification={"image": "again.bin"}, etag="etag-9")

    await store.insert(again)

    assert await store.get(TENANT, APP, "1.1.0") == again


# ---------------------------------------------------------------------------------------------
# Application settings


async def test_settings_never_written_read_as_none(store: SoftwareStore) -> None:
    assert await store.get_settings(TENANT, APP) is None


async def test_settings_are_written_read_back_and_overwritten(store: SoftwareStore) -> None:
    await store.put_settings(TENANT, APP, ApplicationSettings(consent_required=True), T0)
    assert await store.get_settings(TENANT, APP) == ApplicationSettings(consent_required=True)

    await store.put_settings(TENANT, APP, ApplicationSettings(consent_required=False), T0)
    assert await store.get_settings(TENANT, APP) == ApplicationSettings(consent_required=False)


async def test_settings_are_per_tenant_and_application(store: SoftwareStore) -> None:
    await store.put_settings(TENANT, APP, ApplicationSettings(consent_required=True), T0)

    assert await store.get_settings("tenant-b", APP) is None
    assert await store.get_settings(TENANT, "toaster") is None
