"""Durable push jobs: what to push, how far it got, and which replica holds it (a lease).

A job survives a crash: its progress (how far it sent, how far its offers are recorded) is
saved in the job document after each batch, and a job whose lease expired is taken over by
any replica.

A create writes its push intent first, as a *prepared* job, then the definition (an outbox:
the intent is durable before the write it guards). The create's own push makes it pending;
if that never happens (a database blip, a crash), ``promote_prepared`` does, once the
definition is there, or drops the intent when the definition never was written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from otao.domain.errors import AlreadyExists
from otao.domain.models import ApplicationSettings
from otao.domain.push import LeaseLost, PushJob, PushProgress
from otao.store import software
from otao.store.mongo import PUSH_JOBS, SOFTWARE, Document, Mongo

PENDING = "pending"
PREPARED = "prepared"


def _settings(consent_required: object) -> ApplicationSettings | None:
    if consent_required is None:
        return None
    return ApplicationSettings(consent_required=bool(consent_required))


def _job(doc: Document) -> PushJob:
    before, after = doc.get("before"), doc.get("after")
    return PushJob(
        id=doc["_id"],
        tenant_id=doc["tenantId"],
        application=doc["application"],
        version=doc.get("version"),
        before=software.from_document(before) if before else None,
        after=software.from_document(after) if after else None,
        settings_before=_settings(doc.get("consentRequiredBefore")),
        settings_after=_settings(doc.get("consentRequiredAfter")),
        created_at=doc["createdAt"],
        progress=PushProgress(
            sent_through=doc.get("cursor", ""),
            offers_through=doc.get("offersThrough", ""),
            sent=int(doc.get("sent", 0)),
        ),
    )


def _document(job: PushJob, state: str) -> Document:
    settings_before, settings_after = job.settings_before, job.settings_after
    return {
        "_id": job.id,
        "tenantId": job.tenant_id,
        "application": job.application,
        "version": job.version,
        "before": software.to_document(job.before) if job.before else None,
        "after": software.to_document(job.after) if job.after else None,
        "consentRequiredBefore": settings_before.consent_required if settings_before else None,
        "consentRequiredAfter": settings_after.consent_required if settings_after else None,
        "cursor": job.progress.sent_through,
        "offersThrough": job.progress.offers_through,
        "sent": job.progress.sent,
        "createdAt": job.created_at,
        "state": state,
        "leaseOwner": None,
        "leaseUntil": job.created_at,
        "rev": 0,
    }


class PushJobStore:
    def __init__(self, mongo: Mongo) -> None:
        self._mongo = mongo
        self._collection = mongo.collection(PUSH_JOBS)
        self._software = mongo.collection(SOFTWARE)
        # The job documents this store last wrote, by id: a lease holder saves its progress
        # after every batch, and replacing the document it wrote (compare-and-set on its
        # revision) takes one round trip instead of a read and a write.
        self._held: dict[str, Document] = {}

    async def create(self, job: PushJob) -> bool:
        """Make a job runnable; False when it exists already (made elsewhere). A prepared
        job of that id (the intent written before a create) becomes pending."""
        # Twice at most: the worker may drop a stale intent of this id between our insert
        # (refused: the intent exists) and our promote (nothing left): insert again then.
        for _ in range(2):
            try:
                async with self._mongo.call("push job"):
                    await self._collection.insert_one(_document(job, PENDING))
            except AlreadyExists:
                if await self._promote(job.id):
                    return True
                if await self._exists(job.id):
                    return False  # pending or done already: made elsewhere
                continue
            return True
        return False

    async def _exists(self, job_id: str) -> bool:
        async with self._mongo.call("push job lookup"):
            return await self._collection.find_one({"_id": job_id}, {"_id": 1}) is not None

    async def prepare(self, job: PushJob) -> None:
        """Record the intent to push before the write it is about (see the module doc)."""
        async with self._mongo.call("push job"):
            await self._collection.insert_one(_document(job, PREPARED))

    async def promote_prepared(self, written_before: datetime) -> list[PushJob]:
        """Settle the intents prepared before ``written_before`` (older than any write still in
        flight): pending when their definition was written, dropped when it was not. Returns
        the jobs that became pending."""
        # The date compared here, not in the query: nx-27017 compares dates in queries
        # unreliably (see _replace), and prepared jobs are few.
        async with self._mongo.call("push job lookup"):
            prepared = [
                doc
                async for doc in self._collection.find({"state": PREPARED})
                if doc["createdAt"] < written_before
            ]
        promoted: list[PushJob] = []
        for doc in prepared:
            job = _job(doc)
            if await self._written(job):
                if await self._promote(job.id):
                    promoted.append(job)
            else:
                async with self._mongo.call("push job deletion"):
                    await self._collection.delete_one({"_id": doc["_id"], "rev": doc.get("rev")})
        return promoted

    async def _written(self, job: PushJob) -> bool:
        """Whether the definition the intent is about was created (later changes keep its
        creation time; a delete and a new create change it)."""
        if job.after is None:
            return False
        doc_id = software.software_id(job.tenant_id, job.application, job.after.version)
        async with self._mongo.call("software lookup"):
            doc = await self._software.find_one({"_id": doc_id}, {"createdAt": 1})
        return doc is not None and doc.get("createdAt") == job.after.created_at

    async def _promote(self, job_id: str) -> bool:
        async with self._mongo.call("push job lookup"):
            doc = await self._collection.find_one({"_id": job_id})
        return bool(
            doc and doc.get("state") == PREPARED and await self._replace(doc, {"state": PENDING})
        )

    async def claim(self, owner: str, now: datetime, until: datetime) -> PushJob | None:
        """Take the oldest pending job whose lease is free, expired or already ours."""
        async with self._mongo.call("push job claim"):
            cursor = self._collection.find({"state": PENDING}).sort("createdAt", 1).limit(20)
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
        self, job_id: str, owner: str, progress: PushProgress, until: datetime
    ) -> None:
        """Save progress and extend the lease; LeaseLost when another replica holds it."""
        fields = {
            "cursor": progress.sent_through,
            "offersThrough": progress.offers_through,
            "sent": progress.sent,
            "leaseUntil": until,
        }
        if not await self._update_own(job_id, owner, fields):
            raise LeaseLost(job_id)

    async def finish(self, job_id: str, owner: str, sent: int, now: datetime) -> None:
        """Mark the job done; LeaseLost when another replica holds it."""
        done = await self._update_own(
            job_id, owner, {"state": "done", "sent": sent, "finishedAt": now}
        )
        self._held.pop(job_id, None)
        if not done:
            raise LeaseLost(job_id)

    async def _update_own(self, job_id: str, owner: str, fields: Document) -> bool:
        known = self._held.get(job_id)
        # Unchanged since we wrote it: still ours. Changed: read it to find out.
        owned = known is not None and known.get("leaseOwner") == owner
        if owned and known is not None and await self._replace(known, fields):
            return True
        for _ in range(5):
            async with self._mongo.call("push job lookup"):
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
        updated: dict[str, Any] = {**doc, **fields, "rev": revision + 1}
        async with self._mongo.call("push job update"):
            result = await self._collection.replace_one(
                {"_id": doc["_id"], "rev": doc.get("rev")}, updated
            )
        if result.matched_count != 1:
            self._held.pop(doc["_id"], None)
            return False
        if updated.get("leaseOwner") is not None:
            self._held[doc["_id"]] = updated
        return True

    async def pending_count(self) -> int:
        async with self._mongo.call("push job count"):
            return await self._collection.count_documents({"state": PENDING})
