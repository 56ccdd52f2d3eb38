"""First offers of a version per minute, counted across replicas (a rollout plan's
maxOffersPerMinute, docs/rollouts.md): one counter document per (definition, minute window),
taken by a conditional ``$inc``, so two replicas can never both take the last unit."""

from __future__ import annotations

from pymongo import ReturnDocument

from otao.domain.errors import AlreadyExists
from otao.store.mongo import OFFER_BUDGETS, Mongo


def budget_id(tenant_id: str, application: str, version: str, window: int) -> str:
    return f"{tenant_id}/{application}/{version}|{window}"


class OfferBudgetStore:
    def __init__(self, mongo: Mongo) -> None:
        self._mongo = mongo
        self._collection = mongo.collection(OFFER_BUDGETS)

    async def take(
        self, tenant_id: str, application: str, version: str, window: int, limit: int
    ) -> bool:
        """One unit of the window's budget; False when ``limit`` units are taken already."""
        doc_id = budget_id(tenant_id, application, version, window)
        for _ in range(2):
            try:
                async with self._mongo.call("offer budget"):
                    taken = await self._collection.find_one_and_update(
                        {"_id": doc_id, "count": {"$lt": limit}},
                        {"$inc": {"count": 1}},
                        upsert=True,
                        return_document=ReturnDocument.AFTER,
                    )
            except AlreadyExists:
                # The document exists and is full, or another replica inserted it just now
                # (then the second try increments it).
                continue
            return taken is not None
        return False

    async def used(self, tenant_id: str, application: str, version: str, window: int) -> int:
        async with self._mongo.call("offer budget"):
            doc = await self._collection.find_one(
                {"_id": budget_id(tenant_id, application, version, window)}
            )
        return int(doc["count"]) if doc else 0
