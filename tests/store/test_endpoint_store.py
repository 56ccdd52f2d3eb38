"""otao.store.endpoints against a real MongoDB-compatible server (nx-27017, or the MongoDB named
by OTAO_TEST_MONGODB_URI): one document per endpoint, written by revision-checked replaces.

Each test has a database of its own, with otao's indexes made as at start
(tests/store/conftest.py).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from otao.domain.models import AppliedReport, Consent, EndpointKey
from otao.store.endpoints import EndpointStore
from otao.store.mongo import ENDPOINTS, Mongo
from tests.support.values import APP, T0, TENANT

pytestmark = pytest.mark.timeout(30)

APP_VERSION = "kettle-v1"


@pytest.fixture
def store(mongo: Mongo) -> EndpointStore:
    return EndpointStore(mongo)


def key(endpoint: str = "ep-1", tenant: str = TENANT, application: str = APP) -> EndpointKey:
    return EndpointKey(tenant, application, endpoint)


def report(
    version: str, status: int = 200, at: datetime = T0, reason: str | None = None
) -> AppliedReport:
    return AppliedReport(version, status, reason, at)


async def raw(mongo: Mongo, endpoint: EndpointKey) -> dict[str, object] | None:
    doc_id = f"{endpoint.tenant_id}/{endpoint.application}/{endpoint.endpoint_id}"
    return await mongo.collection(ENDPOINTS).find_one({"_id": doc_id})


# ---------------------------------------------------------------------------------------------
# Applied reports


async def test_a_successful_report_sets_the_current_version_and_last_report(
    store: EndpointStore,
) -> None:
    changed = await store.apply_report(key(), APP_VERSION, report("1.1.0", reason="installed"))

    state = await store.get(key())
    assert changed is True
    assert state is not None
    assert (state.tenant_id, state.application, state.endpoint_id) == (TENANT, APP, "ep-1")
    assert state.current_version == "1.1.0"
    assert state.last_report == report("1.1.0", reason="installed")
    assert state.app_version == APP_VERSION
    assert state.failed_versions == frozenset()
    assert state.updated_at == T0


async def test_a_redelivered_report_changes_nothing(mongo: Mongo, store: EndpointStore) -> None:
    await store.apply_report(key(), APP_VERSION, report("1.1.0"))
    before = await raw(mongo, key())

    again = await store.apply_report(key(), APP_VERSION, report("1.1.0"))

    assert again is False
    assert await raw(mongo, key()) == before


async def test_a_late_older_report_does_not_roll_the_endpoint_back(
    mongo: Mongo, store: EndpointStore
) -> None:
    await store.apply_report(key(), APP_VERSION, report("2.0.0", at=T0 + timedelta(minutes=5)))
    before = await raw(mongo, key())

    late = await store.apply_report(key(), APP_VERSION, report("1.1.0", at=T0))

    assert late is False
    assert await raw(mongo, key()) == before
    state = await store.get(key())
    assert state is not None and state.current_version == "2.0.0"


async def test_a_redelivered_failure_is_recorded_once(mongo: Mongo, store: EndpointStore) -> None:
    await store.apply_report(key(), APP_VERSION, report("1.0.0"))
    assert await store.apply_report(key(), APP_VERSION, report("1.1.0", 500)) is True
    before = await raw(mongo, key())

    assert await store.apply_report(key(), APP_VERSION, report("1.1.0", 500)) is False

    assert await raw(mongo, key()) == before
    assert before is not None and before["failedVersions"] == ["1.1.0"]


async def test_a_failed_report_records_the_failure_and_keeps_the_current_version(
    store: EndpointStore,
) -> None:
    await store.apply_report(key(), APP_VERSION, report("1.0.0"))

    await store.apply_report(key(), APP_VERSION, report("1.1.0", 500, reason="flash failed"))

    state = await store.get(key())
    assert state is not None
    assert state.current_version == "1.0.0"
    assert state.failed_versions == frozenset({"1.1.0"})
    assert state.last_report == report("1.1.0", 500, reason="flash failed")


async def test_a_report_between_300_and_399_is_neither_applied_nor_failed(
    store: EndpointStore,
) -> None:
    await store.apply_report(key(), APP_VERSION, report("1.0.0"))

    await store.apply_report(key(), APP_VERSION, report("1.1.0", 304))

    state = await store.get(key())
    assert state is not None
    assert state.current_version == "1.0.0"
    assert state.failed_versions == frozenset()


async def test_a_later_success_clears_the_failure_of_that_version(store: EndpointStore) -> None:
    await store.apply_report(key(), APP_VERSION, report("1.1.0", 500))
    await store.apply_report(key(), APP_VERSION, report("1.2.0", 500))

    await store.apply_report(key(), APP_VERSION, report("1.1.0", 200, at=T0 + timedelta(1)))

    state = await store.get(key())
    assert state is not None
    assert state.current_version == "1.1.0"
    assert state.failed_versions == frozenset({"1.2.0"})


async def test_clearing_a_failure_reports_whether_there_was_one(store: EndpointStore) -> None:
    await store.apply_report(key(), APP_VERSION, report("1.1.0", 500))

    assert await store.clear_failure(key(), "1.1.0", T0) is True
    assert await store.clear_failure(key(), "1.1.0", T0) is False
    state = await store.get(key())
    assert state is not None and state.failed_versions == frozenset()


async def test_clearing_a_failure_of_an_unknown_endpoint_creates_no_record(
    store: EndpointStore,
) -> None:
    assert await store.clear_failure(key("ghost"), "1.1.0", T0) is False

    assert await store.get(key("ghost")) is None


async def test_applied_and_failed_versions_are_counted_per_version(store: EndpointStore) -> None:
    for endpoint in ("a", "b", "c"):
        await store.apply_report(key(endpoint), APP_VERSION, report("1.1.0"))
    await store.apply_report(key("d"), APP_VERSION, report("1.1.0", 500))
    await store.apply_report(key("e"), APP_VERSION, report("1.2.0", 500))
    await store.apply_report(key("f", application="toaster"), "toaster-v1", report("1.1.0"))

    assert await store.report_counts(TENANT, APP, "1.1.0") == (3, 1)
    assert await store.report_counts(TENANT, APP, "1.2.0") == (0, 1)


# ---------------------------------------------------------------------------------------------
# Sightings (6/CDTP polls)


async def test_a_sighting_records_the_consumer_known_version_only_when_none_is_known(
    store: EndpointStore,
) -> None:
    await store.record_sighting(key(), APP_VERSION, "1.0.0", T0)
    await store.record_sighting(key(), "kettle-v2", "0.9.0", T0)

    state = await store.get(key())
    assert state is not None
    assert state.current_version == "1.0.0"
    assert state.app_version == "kettle-v2"


async def test_a_sighting_without_a_version_makes_the_endpoint_known(
    store: EndpointStore,
) -> None:
    await store.record_sighting(key(), APP_VERSION, None, T0)

    state = await store.get(key())
    assert state is not None
    assert state.current_version is None
    assert state.last_report is None


# ---------------------------------------------------------------------------------------------
# Consents


async def test_consents_are_added_replaced_and_removed(store: EndpointStore) -> None:
    await store.add_consent(key(), Consent("1.1.0", False, T0), T0)
    await store.add_consent(key(), Consent(None, True, T0), T0)
    later = T0 + timedelta(hours=1)
    # Consenting to the same version again replaces the earlier consent.
    await store.add_consent(key(), Consent("1.1.0", False, later), later)

    state = await store.get(key())
    assert state is not None
    assert sorted(state.consents, key=lambda c: c.all_versions) == [
        Consent("1.1.0", False, later),
        Consent(None, True, T0),
    ]
    assert state.consented_versions == frozenset({"1.1.0"})
    assert state.consent_all is True

    assert await store.remove_consent(key(), "1.1.0", False, T0) is True
    assert await store.remove_consent(key(), "1.1.0", False, T0) is False
    assert await store.remove_consent(key(), None, True, T0) is True

    state = await store.get(key())
    assert state is not None
    assert state.consents == ()
    assert state.consent_all is False


async def test_removing_a_consent_of_an_unknown_endpoint_creates_no_record(
    store: EndpointStore,
) -> None:
    assert await store.remove_consent(key("ghost"), "1.1.0", False, T0) is False

    assert await store.get(key("ghost")) is None


# ---------------------------------------------------------------------------------------------
# Filter membership


async def test_filter_membership_is_unknown_until_learned(store: EndpointStore) -> None:
    await store.apply_report(key(), APP_VERSION, report("1.0.0"))

    state = await store.get(key())
    assert state is not None and state.filters is None

    await store.set_filters(key(), frozenset(), T0)

    state = await store.get(key())
    assert state is not None and state.filters == frozenset()


async def test_filters_are_set_joined_and_left(store: EndpointStore) -> None:
    await store.set_filters(key(), frozenset({"beta", "lab"}), T0)

    assert await store.add_filter(key(), "eu", T0) is True
    assert await store.add_filter(key(), "eu", T0) is False
    assert await store.remove_filter(key(), "lab", T0) is True
    assert await store.remove_filter(key(), "lab", T0) is False

    state = await store.get(key())
    assert state is not None and state.filters == frozenset({"beta", "eu"})


async def test_the_members_of_a_filter_are_found(store: EndpointStore) -> None:
    await store.set_filters(key("a"), frozenset({"beta", "lab"}), T0)
    await store.set_filters(key("b"), frozenset({"beta"}), T0)
    await store.set_filters(key("c"), frozenset({"lab"}), T0)
    await store.set_filters(key("d", application="toaster"), frozenset({"beta"}), T0)

    assert sorted(await store.members(TENANT, APP, "beta")) == ["a", "b"]
    assert sorted(await store.members(TENANT, APP, "lab")) == ["a", "c"]
    assert await store.members(TENANT, APP, "nobody") == []


async def test_concurrent_changes_to_a_new_endpoint_are_all_kept(store: EndpointStore) -> None:
    versions = [f"1.{i}.0" for i in range(5)]

    # Every writer finds no record and races to create it; the losers retry.
    await asyncio.gather(
        *(store.add_consent(key("fresh"), Consent(v, False, T0), T0) for v in versions)
    )

    state = await store.get(key("fresh"))
    assert state is not None
    assert state.consented_versions == frozenset(versions)


async def test_concurrent_changes_to_a_known_endpoint_are_all_kept(store: EndpointStore) -> None:
    await store.set_filters(key(), frozenset(), T0)
    filters = [f"f{i}" for i in range(5)]

    results = await asyncio.gather(*(store.add_filter(key(), f, T0) for f in filters))

    assert all(results)
    state = await store.get(key())
    assert state is not None and state.filters == frozenset(filters)


# ---------------------------------------------------------------------------------------------
# Delete (endpoint unregistered)


async def test_delete_forgets_the_endpoint(mongo: Mongo, store: EndpointStore) -> None:
    await store.apply_report(key(), APP_VERSION, report("1.1.0", 500))
    await store.add_consent(key(), Consent("1.2.0", False, T0), T0)
    await store.set_filters(key(), frozenset({"beta"}), T0)

    assert await store.delete(key()) is True

    assert await store.get(key()) is None
    assert await raw(mongo, key()) is None
    assert await store.delete(key()) is False


# ---------------------------------------------------------------------------------------------
# Paging and distribution


async def test_pages_follow_the_endpoint_order_from_a_cursor(store: EndpointStore) -> None:
    ids = [f"ep-{i:02d}" for i in range(7)]
    for endpoint in reversed(ids):
        await store.apply_report(key(endpoint), APP_VERSION, report("1.0.0"))
    await store.apply_report(key("x", application="toaster"), "toaster-v1", report("1.0.0"))

    first = await store.page(TENANT, APP, None, None, 3)
    second = await store.page(TENANT, APP, None, first[-1].endpoint_id, 3)
    third = await store.page(TENANT, APP, None, second[-1].endpoint_id, 3)

    assert [s.endpoint_id for s in first] == ids[0:3]
    assert [s.endpoint_id for s in second] == ids[3:6]
    assert [s.endpoint_id for s in third] == ids[6:7]


async def test_pages_can_be_restricted_to_one_version(store: EndpointStore) -> None:
    for i in range(4):
        await store.apply_report(key(f"old-{i}"), APP_VERSION, report("1.0.0"))
        await store.apply_report(key(f"new-{i}"), APP_VERSION, report("1.1.0"))

    page = await store.page(TENANT, APP, "1.1.0", None, 10)

    assert [s.endpoint_id for s in page] == [f"new-{i}" for i in range(4)]
    assert {s.current_version for s in page} == {"1.1.0"}


async def test_distribution_counts_endpoints_per_version_with_unknown_as_empty(
    store: EndpointStore,
) -> None:
    for endpoint in ("a", "b"):
        await store.apply_report(key(endpoint), APP_VERSION, report("1.0.0"))
    await store.apply_report(key("c"), APP_VERSION, report("1.1.0"))
    await store.record_sighting(key("d"), APP_VERSION, None, T0)
    await store.apply_report(key("e", tenant="tenant-b"), APP_VERSION, report("9.0.0"))

    assert await store.distribution(TENANT, APP) == {"1.0.0": 2, "1.1.0": 1, "": 1}
    assert await store.distribution(TENANT, "toaster") == {}


# --- install records (staged rollouts, docs/rollouts.md): the report, the version before it,
# and the first poll after a success naming either.

INSTALL_KEY = EndpointKey(TENANT, APP, "ep-installs")
INSTALLED_AT = T0


async def installed(store: EndpointStore) -> EndpointStore:
    await store.record_sighting(INSTALL_KEY, APP_VERSION, "1.0.0", INSTALLED_AT)
    await store.apply_report(
        INSTALL_KEY, APP_VERSION, AppliedReport("1.1.0", 200, None, INSTALLED_AT)
    )
    return store


async def test_a_success_report_records_the_version_it_replaced(store: EndpointStore) -> None:
    state = await (await installed(store)).get(INSTALL_KEY)
    assert state is not None
    (record,) = state.installs
    assert (record.version, record.succeeded, record.previous_version) == ("1.1.0", True, "1.0.0")
    assert record.awaiting_poll


async def test_a_poll_naming_the_new_version_settles_it(store: EndpointStore) -> None:
    await (await installed(store)).record_sighting(
        INSTALL_KEY, APP_VERSION, "1.1.0", INSTALLED_AT + timedelta(seconds=5)
    )
    state = await store.get(INSTALL_KEY)
    assert state is not None
    (record,) = state.installs
    assert record.poll_config_id == "1.1.0"
    assert "1.1.0" not in state.failed_versions


async def test_a_poll_naming_the_old_version_is_a_fallback_that_fails_the_version(
    store: EndpointStore,
) -> None:
    await (await installed(store)).record_sighting(
        INSTALL_KEY, APP_VERSION, "1.0.0", INSTALLED_AT + timedelta(seconds=5)
    )
    state = await store.get(INSTALL_KEY)
    assert state is not None
    assert state.installs[0].poll_config_id == "1.0.0"
    assert "1.1.0" in state.failed_versions
    assert state.current_version == "1.0.0"
    applied, failed = await store.report_counts(TENANT, APP, "1.1.0")
    assert (applied, failed) == (0, 1)


async def test_a_redelivered_report_keeps_the_settling_poll(store: EndpointStore) -> None:
    await (await installed(store)).record_sighting(
        INSTALL_KEY, APP_VERSION, "1.1.0", INSTALLED_AT + timedelta(seconds=5)
    )
    await store.apply_report(
        INSTALL_KEY, APP_VERSION, AppliedReport("1.1.0", 200, None, INSTALLED_AT)
    )
    state = await store.get(INSTALL_KEY)
    assert state is not None
    assert state.installs[0].poll_config_id == "1.1.0"
