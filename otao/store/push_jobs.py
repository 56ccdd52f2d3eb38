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
            "rev": 0,
        }
        try:
            async with translated("push job"):
                await self._collection.insert_one(doc)
        except AlreadyExists:
            return False
        return True

    async def claim(self, owner: str, now: datetime, until: datetime) -> PushJob | None:
        """Take the oldest pending job whose lease is free, expired or already ours."""
        async with translated("push job claim"):
            cursor = self._collection.find({"state": "pending"}).sort("createdAt", 1).limit(20)
            candidates = [doc async for doc in cursor]
        for doc in candidates:
            lease = doc.get("leaseUntil")
            held = isinstance(lease, datetime) and lease > now
            if doc.get("leaseOwner") not in (None, owner) and held:
                continue
            # Compare-and-set on the revision we saw: exactly one replica wins the lease.
            if await self._replace(doc, {"leaseOwner": owner, "leaseUntil": until}):
                return _job(doc)
        return None

    async def advance(
        self, job_id: str, owner: str, cursor: str, sent: int, until: datetime
    ) -> bool:
        """Save progress and extend the lease; False when the lease was lost."""
        return await self._update_own(
            job_id, owner, {"cursor": cursor, "sent": sent, "leaseUntil": until}
        )

    async def finish(self, job_id: str, owner: str, sent: int, now: datetime) -> None:
        await self._update_own(job_id, owner, {"state": "done", "sent": sent, "finishedAt": now})

    async def _update_own(self, job_id: str, owner: str, fields: Document) -> bool:
        for _ in range(5):
            async with translated("push job lookup"):
                doc = await self._collection.find_one({"_id": job_id})
            if doc is None or doc.get("leaseOwner") != owner:
                return False
            if await self._replace(doc, fields):
                return True
        return False

    async def _replace(self, doc: Document, fields: Document) -> bool:
        """Replace the whole job document if nobody changed it since ``doc`` was read.

        Whole documents rather than ``$set``: nx-27017 stores a top-level date written by
        ``$set`` as a string, which would break lease comparisons (measured).
        """
        revision = int(doc.get("rev", 0))
        updated = {**doc, **fields, "rev": revision + 1}
        async with translated("push job update"):
            result = await self._collection.replace_one(
                {"_id": doc["_id"], "rev": doc.get("rev")}, updated
            )
        return result.matched_count == 1

    async def get(self, job_id: str) -> Document | None:
        async with translated("push job lookup"):
            return await self._collection.find_one({"_id": job_id})

    async def pending_count(self) -> int:
        async with translated("push job count"):
            return await self._collection.count_documents({"state": "pending"})
