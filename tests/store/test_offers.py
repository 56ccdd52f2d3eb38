"""otao.store.offers against a real MongoDB-compatible server: one offer per (endpoint, version).

Each test has a database of its own (tests/store/conftest.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from otao.domain.models import EndpointKey
from otao.store.mongo import OFFERS, Mongo
from otao.store.offers import OfferStore
from tests.support.values import APP, T0, TENANT

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def store(mongo: Mongo) -> OfferStore:
    return OfferStore(mongo)


def key(endpoint: str = "ep-1", application: str = APP) -> EndpointKey:
    return EndpointKey(TENANT, application, endpoint)


async def test_an_offer_is_counted_once_per_endpoint_and_version(store: OfferStore) -> None:
    await store.mark_offered([key("a"), key("b")], "1.1.0", T0)
    await store.mark_offered([key("a"), key("c")], "1.1.0", T0)
    await store.mark_offered([key("a")], "1.1.0", T0 + timedelta(1))
    await store.mark_offered([key("a")], "1.2.0", T0)

    assert await store.offered_count(TENANT, APP, "1.1.0") == 3
    assert await store.offered_count(TENANT, APP, "1.2.0") == 1
    assert await store.offered_count(TENANT, "toaster", "1.1.0") == 0


async def test_offering_nobody_is_a_no_op(store: OfferStore) -> None:
    await store.mark_offered([], "1.1.0", T0)

    assert await store.offered_count(TENANT, APP, "1.1.0") == 0


async def test_forgetting_an_endpoint_drops_its_offers_only(
    mongo: Mongo, store: OfferStore
) -> None:
    await store.mark_offered([key(), key("other")], "1.2.0", T0)

    await store.forget(key())

    assert await mongo.collection(OFFERS).count_documents({"endpointId": "ep-1"}) == 0
    assert await store.offered_count(TENANT, APP, "1.2.0") == 1
