"""What a rollout's status and gates read (docs/rollouts.md, "How fresh the counts are").

Counting reads: the offers of one version and the install records of the endpoints offered
it (an endpoint with neither has no outcome, so a gate never reads the rest of the fleet),
and the fleet's endpoints for the eligible counts. Each is read in pages (``_id`` index
ranges, or ``_id`` lookups), one bounded database call per page, so a count of 100,000
endpoints is never one call outlasting the database bound; between pages the reader rests
as long as the page took, so a count competes with a push walk for at most half the
database's time. (Plain totals, such as the offered count, are counted by the database:
``store.mongo.Mongo.count``.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from datetime import datetime

from pymongo.asynchronous.collection import AsyncCollection

from otao.domain.models import EndpointState
from otao.domain.rollout_state import InstallRecord
from otao.store.endpoint_documents import KNOWN, from_document, install_record
from otao.store.mongo import ENDPOINTS, OFFERS, Document, Mongo, id_range

PAGE = 2_000
LOOKUP = 500
# What EndpointFacts.of reads of an endpoint (eligibility), nothing more.
_ELIGIBILITY: Document = {
    "tenantId": 1,
    "application": 1,
    "endpointId": 1,
    "currentVersion": 1,
    "failedVersions": 1,
    "consents": 1,
    "filters": 1,
    "filtersKnown": 1,
    "filterFacts": 1,
}


class RolloutReads:
    def __init__(
        self, mongo: Mongo, page: int = PAGE, lookup: int = LOOKUP, rest: float = 1.0
    ) -> None:
        self._mongo = mongo
        self._endpoints = mongo.collection(ENDPOINTS)
        self._offers = mongo.collection(OFFERS)
        self._page = page
        self._lookup = lookup
        # Pause after each page, as a multiple of the time the page took (0: none).
        self._rest = rest

    async def installs(
        self, tenant_id: str, application: str, version: str, endpoint_ids: Iterable[str]
    ) -> dict[str, InstallRecord]:
        """The install records of ``version`` of these endpoints (those offered it: every
        endpoint that reported it was, see WaveService.on_report), by endpoint id.

        Read by ``_id`` (the primary key; ``lookup`` ids per call), not by a query on
        the install records: nx-27017 matches no dotted path into an array of documents and
        answers ``$elemMatch`` by decoding every endpoint of the application (measured: 1 s
        in one call over 100,000, holding up the push walk); this is work in proportion to
        the endpoints offered the version."""
        prefix = f"{tenant_id}/{application}/"
        ids = [prefix + e for e in endpoint_ids]
        found: dict[str, InstallRecord] = {}
        for first in range(0, len(ids), self._lookup):
            started = time.monotonic()
            cursor = self._endpoints.find(
                {"_id": {"$in": ids[first : first + self._lookup]}},
                {"endpointId": 1, "installs": 1},
            )
            async with self._mongo.call("install records"):
                docs = [doc async for doc in cursor]
            for doc in docs:
                for install in doc.get("installs") or ():
                    if install["version"] == version:
                        found[doc["endpointId"]] = install_record(install)
            await self._rest_after(time.monotonic() - started)
        return found

    async def offered_at(
        self, tenant_id: str, application: str, version: str
    ) -> dict[str, datetime]:
        """When each endpoint (by id) was first offered ``version``."""
        query = {"tenantId": tenant_id, "application": application, "version": version}
        found: dict[str, datetime] = {}
        projection = {"endpointId": 1, "at": 1}
        async for page in self._pages(self._offers, query, projection, "offer listing"):
            found.update((doc["endpointId"], doc["at"]) for doc in page)
        return found

    async def known(self, tenant_id: str, application: str) -> AsyncIterator[list[EndpointState]]:
        """The application's known endpoints with what eligibility needs, a page at a time."""
        query: Document = {"tenantId": tenant_id, "application": application, **KNOWN}
        async for page in self._pages(self._endpoints, query, _ELIGIBILITY, "endpoint listing"):
            yield [from_document(doc) for doc in page]

    async def known_count(self, tenant_id: str, application: str) -> int:
        """How many known endpoints the application has (counted by the database)."""
        scope = {"tenantId": tenant_id, "application": application, **KNOWN}
        return await self._mongo.count(self._endpoints, scope, "endpoint counts")

    async def _pages(
        self,
        collection: AsyncCollection[Document],
        query: Document,
        projection: Document,
        what: str,
    ) -> AsyncIterator[list[Document]]:
        """Documents matching ``query`` (which names tenantId and application) in ``_id``
        order, a page per database call (``store.mongo.id_range``: an index range on
        nx-27017, not a scan of the collection per page)."""
        after: str | None = None
        while True:
            started = time.monotonic()
            async with self._mongo.call(what):
                docs = await id_range(collection, query, after, self._page, projection)
            took = time.monotonic() - started
            if docs:
                yield docs
            if len(docs) < self._page:
                return
            after = docs[-1]["_id"]
            await self._rest_after(took)

    async def _rest_after(self, took: float) -> None:
        if self._rest:
            await asyncio.sleep(self._rest * took)
