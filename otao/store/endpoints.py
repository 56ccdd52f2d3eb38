"""What otao holds about endpoints: one document per (tenant, application, endpoint).

One document keyed by the natural ``_id`` holds the current version, the last report,
failed and applied versions, consents and filter membership, so resolving an endpoint's
update costs one ``_id`` read and forgetting an unregistered endpoint is one delete.

Writes are read-modify-replace with a revision check (optimistic concurrency): a whole
document replaced only if nobody changed it meanwhile. This keeps every write atomic on
MongoDB and avoids mixing update operators, which the embedded nx-27017 server applies
incompletely (measured: a top-level date in ``$set`` became a string; ``$addToSet`` in
``update_many`` was ignored).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime

from pymongo.errors import BulkWriteError, DuplicateKeyError

from otao.domain.errors import Aborted
from otao.domain.models import AppliedReport, Consent, EndpointKey, EndpointState
from otao.store.mongo import ENDPOINTS, OFFERS, Document, Mongo, translated

Change = Callable[[Document], bool]


def endpoint_doc_id(key: EndpointKey) -> str:
    return f"{key.tenant_id}/{key.application}/{key.endpoint_id}"


def from_document(doc: Document) -> EndpointState:
    report = doc.get("lastReport")
    return EndpointState(
        tenant_id=doc["tenantId"],
        application=doc["application"],
        endpoint_id=doc["endpointId"],
        current_version=doc.get("currentVersion"),
        last_report=(
            AppliedReport(
                report["configId"],
                int(report["statusCode"]),
                report.get("reasonPhrase"),
                report["reportedAt"],
            )
            if report
            else None
        ),
        failed_versions=frozenset(doc.get("failedVersions") or ()),
        consents=tuple(
            Consent(c.get("version"), bool(c.get("allVersions")), c["grantedAt"])
            for c in doc.get("consents") or ()
        ),
        filters=frozenset(doc.get("filters") or ()) if doc.get("filtersKnown") else None,
        updated_at=doc.get("updatedAt"),
        app_version=doc.get("appVersionName"),
    )


def _add(doc: Document, field: str, value: str) -> bool:
    values: list[str] = doc.setdefault(field, [])
    if value in values:
        return False
    values.append(value)
    return True


def _remove(doc: Document, field: str, value: str) -> bool:
    values: list[str] = doc.get(field) or []
    if value not in values:
        return False
    doc[field] = [v for v in values if v != value]
    return True


class EndpointStore:
    def __init__(self, mongo: Mongo) -> None:
        self._collection = mongo.collection(ENDPOINTS)
        self._offers = mongo.collection(OFFERS)

    async def get(self, key: EndpointKey) -> EndpointState | None:
        async with translated("endpoint lookup"):
            doc = await self._collection.find_one({"_id": endpoint_doc_id(key)})
        return from_document(doc) if doc else None

    async def _mutate(
        self, key: EndpointKey, change: Change, now: datetime, create: bool = True
    ) -> bool:
        """Apply ``change`` to the endpoint's document; False when it changed nothing."""
        doc_id = endpoint_doc_id(key)
        for _ in range(10):
            async with translated("endpoint lookup"):
                current = await self._collection.find_one({"_id": doc_id})
            if current is None and not create:
                return False
            fresh = current is None
            doc: Document = (
                copy.deepcopy(current)
                if current
                else {
                    "_id": doc_id,
                    "tenantId": key.tenant_id,
                    "application": key.application,
                    "endpointId": key.endpoint_id,
                }
            )
            if not change(doc) and not fresh:
                return False
            revision = int(doc.get("rev", 0))
            doc["rev"] = revision + 1
            doc["updatedAt"] = now
            async with translated("endpoint update"):
                if fresh:
                    try:
                        await self._collection.insert_one(doc)
                    except DuplicateKeyError:
                        continue
                    return True
                result = await self._collection.replace_one(
                    {"_id": doc_id, "rev": current.get("rev") if current else None}, doc
                )
            if result.matched_count == 1:
                return True
        raise Aborted("the endpoint is being changed concurrently; try again")

    async def record_sighting(
        self, key: EndpointKey, app_version: str, version: str | None, now: datetime
    ) -> None:
        """Record a consumer-known version when otao has none, and the app version name."""

        def change(doc: Document) -> bool:
            changed = doc.get("appVersionName") != app_version
            doc["appVersionName"] = app_version
            if version is not None and not doc.get("currentVersion"):
                doc["currentVersion"] = version
                changed = True
            return changed

        await self._mutate(key, change, now)

    async def apply_report(self, key: EndpointKey, app_version: str, report: AppliedReport) -> bool:
        """Record an applied report; idempotent: a redelivered report changes nothing."""
        version = report.config_id

        def change(doc: Document) -> bool:
            last = {
                "configId": version,
                "statusCode": report.status_code,
                "reasonPhrase": report.reason_phrase,
                "reportedAt": report.reported_at,
            }
            changed = doc.get("lastReport") != last or doc.get("appVersionName") != app_version
            doc["lastReport"] = last
            doc["appVersionName"] = app_version
            if report.succeeded:
                changed |= doc.get("currentVersion") != version
                doc["currentVersion"] = version
                changed |= _remove(doc, "failedVersions", version)
                changed |= _add(doc, "appliedVersions", version)
            elif report.failed:
                changed |= _add(doc, "failedVersions", version)
            return changed

        return await self._mutate(key, change, report.reported_at)

    async def clear_failure(self, key: EndpointKey, version: str, now: datetime) -> bool:
        return await self._mutate(
            key, lambda doc: _remove(doc, "failedVersions", version), now, create=False
        )

    async def add_consent(self, key: EndpointKey, consent: Consent, now: datetime) -> None:
        def change(doc: Document) -> bool:
            # A new consent replaces an equal one (same version, or both blanket).
            kept = [
                c
                for c in doc.get("consents") or []
                if (bool(c.get("allVersions")), c.get("version"))
                != (consent.all_versions, consent.version)
            ]
            kept.append(
                {
                    "version": consent.version,
                    "allVersions": consent.all_versions,
                    "grantedAt": consent.granted_at,
                }
            )
            doc["consents"] = kept
            return True

        await self._mutate(key, change, now)

    async def remove_consent(
        self, key: EndpointKey, version: str | None, all_versions: bool, now: datetime
    ) -> bool:
        def change(doc: Document) -> bool:
            before = doc.get("consents") or []
            kept = [
                c
                for c in before
                if not (
                    (all_versions and c.get("allVersions"))
                    or (version is not None and c.get("version") == version)
                )
            ]
            doc["consents"] = kept
            return len(kept) != len(before)

        return await self._mutate(key, change, now, create=False)

    async def set_filters(self, key: EndpointKey, filters: frozenset[str], now: datetime) -> None:
        def change(doc: Document) -> bool:
            doc["filters"] = sorted(filters)
            doc["filtersKnown"] = True
            return True

        await self._mutate(key, change, now)

    async def add_filter(self, key: EndpointKey, filter_id: str, now: datetime) -> bool:
        """The endpoint joined a filter; True when that is news."""
        return await self._mutate(key, lambda doc: _add(doc, "filters", filter_id), now)

    async def remove_filter(self, key: EndpointKey, filter_id: str, now: datetime) -> bool:
        return await self._mutate(
            key, lambda doc: _remove(doc, "filters", filter_id), now, create=False
        )

    async def members(self, tenant_id: str, application: str, filter_id: str) -> list[str]:
        """Endpoint ids of the application's endpoints known to match ``filter_id``."""
        # "$in" rather than array-element equality ({"filters": id}): the same on MongoDB,
        # and nx-27017 matches only the former (measured: equality found no document).
        async with translated("filter members"):
            cursor = self._collection.find(
                {
                    "tenantId": tenant_id,
                    "application": application,
                    "filters": {"$in": [filter_id]},
                },
                {"endpointId": 1},
            )
            return [doc["endpointId"] async for doc in cursor]

    async def delete(self, key: EndpointKey) -> bool:
        async with translated("endpoint deletion"):
            result = await self._collection.delete_one({"_id": endpoint_doc_id(key)})
            await self._offers.delete_many(
                {
                    "tenantId": key.tenant_id,
                    "application": key.application,
                    "endpointId": key.endpoint_id,
                }
            )
        return result.deleted_count > 0

    async def page(
        self,
        tenant_id: str,
        application: str,
        version: str | None,
        after_id: str | None,
        limit: int,
    ) -> list[EndpointState]:
        query: Document = {"tenantId": tenant_id, "application": application}
        if version:
            query["currentVersion"] = version
        if after_id:
            query["_id"] = {"$gt": after_id}
        async with translated("endpoint listing"):
            cursor = self._collection.find(query).sort("_id", 1).limit(limit)
            return [from_document(doc) async for doc in cursor]

    async def all_for_application(self, tenant_id: str, application: str) -> list[EndpointState]:
        async with translated("endpoint listing"):
            cursor = self._collection.find({"tenantId": tenant_id, "application": application})
            return [from_document(doc) async for doc in cursor]

    async def distribution(self, tenant_id: str, application: str) -> dict[str, int]:
        pipeline: list[Document] = [
            {"$match": {"tenantId": tenant_id, "application": application}},
            {"$group": {"_id": "$currentVersion", "count": {"$sum": 1}}},
        ]
        async with translated("endpoint distribution"):
            cursor = await self._collection.aggregate(pipeline)
            return {(doc["_id"] or ""): int(doc["count"]) async for doc in cursor}

    async def report_counts(
        self, tenant_id: str, application: str, version: str
    ) -> tuple[int, int]:
        """(endpoints that applied ``version``, endpoints that failed it)."""
        scope = {"tenantId": tenant_id, "application": application}
        async with translated("report counts"):
            applied = await self._collection.count_documents({**scope, "appliedVersions": version})
            failed = await self._collection.count_documents({**scope, "failedVersions": version})
        return applied, failed

    async def mark_offered(self, keys: list[EndpointKey], version: str, now: datetime) -> None:
        """Remember that these endpoints were offered ``version``; repeats are no-ops."""
        if not keys:
            return
        offers = [
            {
                "_id": f"{endpoint_doc_id(k)}|{version}",
                "tenantId": k.tenant_id,
                "application": k.application,
                "endpointId": k.endpoint_id,
                "version": version,
                "at": now,
            }
            for k in keys
        ]
        async with translated("offer tracking"):
            try:
                await self._offers.insert_many(offers, ordered=False)
            except BulkWriteError as exc:
                # Duplicates are offers already recorded; anything else is a real failure.
                if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                    raise

    async def offered_count(self, tenant_id: str, application: str, version: str) -> int:
        async with translated("offer counts"):
            return await self._offers.count_documents(
                {"tenantId": tenant_id, "application": application, "version": version}
            )
