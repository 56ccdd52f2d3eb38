"""The append-only audit log."""

from __future__ import annotations

from otao.domain.models import AuditEntry
from otao.store.mongo import AUDIT, Document, Mongo


class AuditStore:
    def __init__(self, mongo: Mongo) -> None:
        self._mongo = mongo
        self._collection = mongo.collection(AUDIT)

    async def append(self, entry: AuditEntry) -> None:
        async with self._mongo.call("audit entry"):
            await self._collection.insert_one(
                {
                    "_id": entry.id,
                    "tenantId": entry.tenant_id,
                    "application": entry.application,
                    "time": entry.time,
                    "actor": entry.actor,
                    "action": entry.action,
                    "resource": entry.resource,
                    "details": entry.details,
                }
            )

    async def page(
        self, tenant_id: str, application: str, before_id: str | None, limit: int
    ) -> list[AuditEntry]:
        """Newest first; ids sort by time (they start with a zero-padded timestamp)."""
        query: Document = {"tenantId": tenant_id, "application": application}
        if before_id:
            query["_id"] = {"$lt": before_id}
        async with self._mongo.call("audit listing"):
            cursor = self._collection.find(query).sort("_id", -1).limit(limit)
            return [
                AuditEntry(
                    id=doc["_id"],
                    tenant_id=doc["tenantId"],
                    application=doc["application"],
                    time=doc["time"],
                    actor=doc["actor"],
                    action=doc["action"],
                    resource=doc["resource"],
                    details=doc.get("details") or {},
                )
                async for doc in cursor
            ]
