"""The fleet of ``make bench-scale``: up to a million known endpoints over 20 versions and 50
filters, seeded with bulk inserts of the documents otao's endpoint store writes.

The shape cannot drift from the store's: a few template endpoints (one per combination of
version and filter the fleet uses) are written by ``otao.store.endpoints.EndpointStore``
itself on the bench's database (a sighting, an applied report, EPR's filter membership: what
a known endpoint's document holds), read back, and every seeded endpoint is a copy of its
template with its own ids, inserted with ``insert_many``.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient

from bench import seed
from otao.domain.models import AppliedReport, EndpointKey
from otao.store.endpoints import EndpointStore, endpoint_doc_id
from otao.store.mongo import ENDPOINTS, SOFTWARE, Mongo

FLEET = seed.FLEET  # configured in otao by bench/stack.py; the baselines name it the same way
VERSIONS = 20
FILTERS = 50
PUSHED = "2.0.0"  # the general release of the push: upgradable from every fleet version
_TEMPLATES = "scale-templates"  # written by the store, copied, then deleted
CHUNK = 5_000
INSERTERS = 2  # concurrent insert_many calls: nx-27017 overlaps a little of its work


def version(index: int) -> str:
    return seed.chain_version(index)


NEWEST = version(VERSIONS - 1)


def endpoint_id(index: int) -> str:
    return f"ep-{index:07d}"


def version_index(index: int) -> int:
    return index % VERSIONS


def filter_id(index: int) -> str:
    return f"filter-{index % FILTERS:02d}"


def offered(index: int) -> str | None:
    """What a poll of endpoint ``index`` reporting its version gets: each definition is
    upgradable from the three before it (seed.chain) and the highest wins."""
    current = version_index(index)
    return None if current == VERSIONS - 1 else version(min(current + 3, VERSIONS - 1))


def definitions() -> list[dict[str, Any]]:
    return list(seed.chain(FLEET.name, VERSIONS))


def pushed_definition_sources() -> list[str]:
    return [version(i) for i in range(VERSIONS)]


# Version and filter both follow the endpoint's index modulo this: one template each.
_PERIOD = math.lcm(VERSIONS, FILTERS)


class FleetSeeder:
    def __init__(self, mongo_uri: str, database: str) -> None:
        self._uri, self._database = mongo_uri, database
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            mongo_uri, tz_aware=True, timeoutMS=300_000
        )
        self._db = self._client[database]
        self._templates: list[dict[str, Any]] = []
        self.seconds = 0.0
        self.known = 0

    async def definitions(self) -> None:
        await self._db[SOFTWARE].insert_many(definitions(), ordered=False)

    async def _write_templates(self) -> None:
        """One document per (version, filter) combination, written by the store itself."""
        mongo = Mongo(self._uri, self._database, 30_000)
        store = EndpointStore(mongo)
        now = datetime.now(UTC).replace(microsecond=0)
        try:
            for index in range(_PERIOD):
                key = EndpointKey(seed.TENANT, _TEMPLATES, endpoint_id(index))
                current = version(version_index(index))
                await store.record_sighting(key, FLEET.app_version, current, now)
                await store.apply_report(
                    key, FLEET.app_version, AppliedReport(current, 200, None, now)
                )
                await store.set_filters(key, frozenset({filter_id(index)}), now)
                document = await self._db[ENDPOINTS].find_one({"_id": endpoint_doc_id(key)})
                assert document is not None
                self._templates.append(document)
            await self._db[ENDPOINTS].delete_many({"application": _TEMPLATES})
        finally:
            await mongo.client.close()

    def document(self, index: int) -> dict[str, Any]:
        template = self._templates[index % _PERIOD]
        endpoint = endpoint_id(index)
        return {
            **template,
            "_id": endpoint_doc_id(EndpointKey(seed.TENANT, FLEET.name, endpoint)),
            "application": FLEET.name,
            "endpointId": endpoint,
        }

    async def grow(self, size: int) -> float:
        """Known endpoints up to ``size`` (from those already there); returns documents a
        second."""
        if not self._templates:
            await self._write_templates()
        start, started = self.known, time.perf_counter()

        async def inserter(lane: int) -> None:
            for first in range(start + lane * CHUNK, size, INSERTERS * CHUNK):
                chunk = [self.document(i) for i in range(first, min(first + CHUNK, size))]
                await self._db[ENDPOINTS].insert_many(chunk, ordered=False)

        await asyncio.gather(*(inserter(lane) for lane in range(INSERTERS)))
        took = time.perf_counter() - started
        self.seconds += took
        self.known = size
        return (size - start) / took if took else 0.0

    async def db_stats(self) -> dict[str, Any]:
        stats = await self._db.command("dbStats")
        keep = ("objects", "dataSize", "storageSize", "indexSize", "totalSize", "indexes")
        return {k: stats[k] for k in keep if k in stats}

    async def close(self) -> None:
        await self._client.close()
