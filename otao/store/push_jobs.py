"""Durable push jobs: what to push, how far it got, and which replica holds it (a lease).

A job survives a crash: its cursor (the last endpoint ``_id`` handled) is saved after each
batch, and a job whose lease expired is taken over by any replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from otao.domain.errors import AlreadyExists
from otao.store.mongo import PUSH_JOBS, Document, Mongo, translated


@dataclass(frozen=True, slots=True)
class PushJob:
    id: str
    tenant_id: str
    application: str
    # The definition as it was before the change (a store document), or None.
    version: str | None
    before: Document | None
    consent_required_before: bool | None
    cursor: str
    sent: int
    created_at: datetime


def _job(doc: Document) -> PushJob:
    return PushJob(
        id=doc["_id"],
        tenant_id=doc["tenantId"],
        application=doc["application"],
        version=doc.get("version"),
        before=doc.get("before"),
        consent_required_before=doc.get("consentRequiredBefore"),
        cursor=doc.get("cursor", ""),
        sent=int(doc.get("sent", 0)),
        created_at=doc["createdAt"],
    )


class PushJobStore:
    def __init__(self, mongo: Mongo) -> None:
        self._collection = mongo.collection(PUSH_JOBS)

    async def create(self, job: PushJob) -> bool:
        """Insert a job; False when a job with that id exists already (made elsewhere)."""
        doc: dict[str, Any] = {
            "_id": job.id,
            "tenantId": job.tenant_id,
            "application": job.application,
            "version": job.version,
            "before": job.before,
            "consentRequiredBefore": job.consent_required_before,
            "cursor": job.cursor,
            "sent": job.sent,
            "createdAt": job.created_at,
            "state": "pending",
            "leaseOwner": None,
            "leaseUntil": job.created_at,
        }
        try:
            async with translated("push job"):
                await self._collection.insert_one(doc)
        except AlreadyExists:
            return False
        return True

    async def claim(self, owner: str, now: datetime, until: datetime) -> PushJob | None:
        """Take the oldest pending job whose lease is free or ours."""
        async with translated("push job claim"):
            cursor = self._collection.find({"state": "pending"}).sort("createdAt", 1).limit(20)
            candidates = [doc async for doc in cursor]
            for doc in candidates:
                if doc.get("leaseOwner") not in (None, owner) and doc["leaseUntil"] > now:
                    continue
                # Compare-and-set on the lease we saw: exactly one replica wins it.
                result = await self._collection.update_one(
                    {
                        "_id": doc["_id"],
                        "leaseUntil": doc["leaseUntil"],
                        "leaseOwner": doc.get("leaseOwner"),
                    },
                    {"$set": {"leaseOwner": owner, "leaseUntil": until}},
                )
                if result.modified_count == 1:
                    return _job(doc)
        return None

    async def advance(
        self, job_id: str, owner: str, cursor: str, sent: int, until: datetime
    ) -> bool:
        """Save progress and extend the lease; False when the lease was lost."""
        async with translated("push job progress"):
            result = await self._collection.update_one(
                {"_id": job_id, "leaseOwner": owner},
                {"$set": {"cursor": cursor, "sent": sent, "leaseUntil": until}},
            )
        return result.matched_count == 1

    async def finish(self, job_id: str, owner: str, sent: int, now: datetime) -> None:
        async with translated("push job completion"):
            await self._collection.update_one(
                {"_id": job_id, "leaseOwner": owner},
                {"$set": {"state": "done", "sent": sent, "finishedAt": now}},
            )

    async def get(self, job_id: str) -> Document | None:
        async with translated("push job lookup"):
            return await self._collection.find_one({"_id": job_id})

    async def pending_count(self) -> int:
        async with translated("push job count"):
            return await self._collection.count_documents({"state": "pending"})
