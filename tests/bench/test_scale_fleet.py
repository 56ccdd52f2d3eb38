"""bench/scale_fleet.py: the million-endpoint bench seeds what otao's endpoint store writes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench import scale_fleet as fleet
from bench.seed import TENANT
from otao.domain.models import AppliedReport, EndpointKey
from otao.store.endpoint_documents import endpoint_doc_id, from_document
from otao.store.endpoints import EndpointStore
from otao.store.mongo import ENDPOINTS
from tests.support.database import fresh_database
from tests.support.stack import MongoServer


@pytest.mark.parametrize("direct", [False, True], ids=["insert_many", "sqlite_file"])
async def test_seeded_endpoints_have_the_shape_the_store_writes_and_their_own_ids(
    mongo_server: MongoServer, direct: bool
) -> None:
    if direct and mongo_server.process is None:
        pytest.skip("an external MongoDB has no SQLite file to write")
    async with fresh_database(mongo_server, "scale") as mongo:
        sqlite_file = None
        if direct:
            assert mongo_server.process is not None
            sqlite_file = mongo_server.process.data_dir / f"{mongo.db.name}.db"
        seeder = fleet.FleetSeeder(mongo_server.uri, mongo.db.name, sqlite_file)
        try:
            await seeder.grow(150)
            await seeder.grow(250)  # grows from where it was
        finally:
            await seeder.close()
        index = 123
        store = EndpointStore(mongo)
        by_store = EndpointKey(TENANT, fleet.FLEET.name, "written-by-the-store")
        current = fleet.version(fleet.version_index(index))
        now = datetime.now(UTC)
        await store.record_sighting(by_store, fleet.FLEET.app_version, current, now)
        await store.apply_report(
            by_store, fleet.FLEET.app_version, AppliedReport(current, 200, None, now)
        )
        await store.set_filters(by_store, frozenset({fleet.filter_id(index)}), now)

        endpoints = mongo.collection(ENDPOINTS)
        seeded_key = EndpointKey(TENANT, fleet.FLEET.name, fleet.endpoint_id(index))
        seeded = await endpoints.find_one({"_id": endpoint_doc_id(seeded_key)})
        written = await endpoints.find_one({"_id": endpoint_doc_id(by_store)})
        assert seeded is not None and written is not None
        assert seeded.keys() == written.keys()
        # The same values as the store's document, but for its own ids and times.
        own = {"_id", "endpointId", "updatedAt", "lastReport", "installs", "filterFacts"}
        assert {k: v for k, v in seeded.items() if k not in own} == {
            k: v for k, v in written.items() if k not in own
        }
        state = from_document(seeded)
        assert (state.application, state.endpoint_id) == (fleet.FLEET.name, seeded_key.endpoint_id)
        assert state.current_version == current
        assert state.filters == frozenset({fleet.filter_id(index)})
        assert state.seen
        assert await endpoints.count_documents({"application": fleet.FLEET.name}) == 251
        assert await endpoints.count_documents({"application": {"$ne": fleet.FLEET.name}}) == 0
        # otao's indexes cover the seeded documents (SQLite keeps them on a direct write too).
        on_current = {"tenantId": TENANT, "application": fleet.FLEET.name}
        assert (
            await endpoints.count_documents({**on_current, "currentVersion": current})
            == len([i for i in range(250) if fleet.version_index(i) == fleet.version_index(index)])
            + 1
        )
