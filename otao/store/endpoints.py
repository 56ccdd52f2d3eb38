"""What otao holds about endpoints: one document per (tenant, application, endpoint).

One document keyed by the natural ``_id`` holds the current version, the last report,
failed versions, consents and filter membership, so resolving an endpoint's update costs
one ``_id`` read, and forgetting an unregistered endpoint is one delete.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from otao.domain.models import AppliedReport, Consent, EndpointKey, EndpointState
from otao.store.mongo import ENDPOINTS, Document, Mongo, translated


def endpoint_doc_id(key: EndpointKey) -> str:
    return f"{key.tenant_id}/{key.application}/{key.endpoint_id}"


def _identity(key: EndpointKey, now: datetime) -> Document:
    return {
        "tenantId": key.tenant_id,
        "application": key.application,
        "endpointId": key.endpoint_id,
        "updatedAt": now,
    }


def from_document(doc: Document) -> EndpointState:
    report = doc.get("lastReport")
    filters = doc.get("filters")
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
        failed_versions=frozenset(doc.get("failedVersions", ())),
        consents=tuple(
            Consent(c.get("version"), bool(c.get("allVersions")), c["grantedAt"])
            for c in doc.get("consents", ())
        ),
        filters=frozenset(filters) if doc.get("filtersKnown") and filters is not None else None,
        updated_at=doc.get("updatedAt"),
        app_version=doc.get("appVersionName"),
    )


class EndpointStore:
    def __init__(self, mongo: Mongo) -> None:
        self._collection = mongo.collection(ENDPOINTS)

    async def get(self, key: EndpointKey) -> EndpointState | None:
        async with translated("endpoint lookup"):
            doc = await self._collection.find_one({"_id": endpoint_doc_id(key)})
        return from_document(doc) if doc else None

    async def record_sighting(
        self, key: EndpointKey, app_version: str, version: str | None, now: datetime
    ) -> None:
        """Record a consumer-known version when otao has none, and the app version name."""
        doc_id = endpoint_doc_id(key)
        fields = {**_identity(key, now), "appVersionName": app_version}
        async with translated("endpoint update"):
            if version is None:
                await self._collection.update_one({"_id": doc_id}, {"$set": fields}, upsert=True)
                return
            try:
                # Matches a missing document (upsert) or one without a version; a document
                # that has a version makes the upsert collide on _id, which means "known".
                await self._collection.update_one(
                    {"_id": doc_id, "currentVersion": None},
                    {"$set": {**fields, "currentVersion": version}},
                    upsert=True,
                )
            except DuplicateKeyError:
                await self._collection.update_one({"_id": doc_id}, {"$set": fields})

    async def apply_report(
        self, key: EndpointKey, app_version: str, report: AppliedReport
    ) -> None:
        """Record an applied report; idempotent, so redelivery changes nothing."""
        fields: Document = {
            **_identity(key, report.reported_at),
            "appVersionName": app_version,
            "lastReport": {
                "configId": report.config_id,
                "statusCode": report.status_code,
                "reasonPhrase": report.reason_phrase,
                "reportedAt": report.reported_at,
            },
        }
        update: dict[str, Any]
        if report.succeeded:
            fields["currentVersion"] = report.config_id
            update = {
                "$set": fields,
                "$pull": {"failedVersions": report.config_id},
                "$addToSet": {"appliedVersions": report.config_id},
            }
        elif report.failed:
            update = {"$set": fields, "$addToSet": {"failedVersions": report.config_id}}
        else:
            update = {"$set": fields}
        async with translated("endpoint report"):
            await self._collection.update_one(
                {"_id": endpoint_doc_id(key)}, update, upsert=True
            )

    async def clear_failure(self, key: EndpointKey, version: str, now: datetime) -> bool:
        async with translated("endpoint update"):
            result = await self._collection.update_one(
                {"_id": endpoint_doc_id(key), "failedVersions": version},
                {"$pull": {"failedVersions": version}, "$set": {"updatedAt": now}},
            )
        return result.modified_count > 0

    async def add_consent(self, key: EndpointKey, consent: Consent, now: datetime) -> None:
        state = await self.get(key)
        # A new consent replaces an equal one (same version, or both blanket).
        kept = [
            c
            for c in (state.consents if state else ())
            if (c.all_versions, c.version) != (consent.all_versions, consent.version)
        ]
        kept.append(consent)
        await self._set_consents(key, kept, now)

    async def remove_consent(
        self, key: EndpointKey, version: str | None, all_versions: bool, now: datetime
    ) -> bool:
        state = await self.get(key)
        if state is None:
            return False
        kept = [
            c
            for c in state.consents
            if not ((all_versions and c.all_versions) or (version and c.version == version))
        ]
        if len(kept) == len(state.consents):
            return False
        await self._set_consents(key, kept, now)
        return True

    async def _set_consents(self, key: EndpointKey, consents: list[Consent], now: datetime) -> None:
        async with translated("consent update"):
            await self._collection.update_one(
                {"_id": endpoint_doc_id(key)},
                {
                    "$set": {
                        **_identity(key, now),
                        "consents": [
                            {
                                "version": c.version,
                                "allVersions": c.all_versions,
                                "grantedAt": c.granted_at,
                            }
                            for c in consents
                        ],
                    }
                },
                upsert=True,
            )

    async def set_filters(self, key: EndpointKey, filters: frozenset[str], now: datetime) -> None:
        async with translated("filter membership update"):
            await self._collection.update_one(
                {"_id": endpoint_doc_id(key)},
                {"$set": {**_identity(key, now), "filters": sorted(filters), "filtersKnown": True}},
                upsert=True,
            )

    async def add_filter(self, key: EndpointKey, filter_id: str, now: datetime) -> None:
        async with translated("filter membership update"):
            await self._collection.update_one(
                {"_id": endpoint_doc_id(key)},
                {"$set": _identity(key, now), "$addToSet": {"filters": filter_id}},
                upsert=True,
            )

    async def remove_filter(self, key: EndpointKey, filter_id: str, now: datetime) -> None:
        async with translated("filter membership update"):
            await self._collection.update_one(
                {"_id": endpoint_doc_id(key)},
                {"$set": {"updatedAt": now}, "$pull": {"filters": filter_id}},
            )

    async def drop_filter(self, tenant_id: str, application: str, filter_id: str) -> int:
        async with translated("filter deletion"):
            result = await self._collection.update_many(
                {"tenantId": tenant_id, "application": application, "filters": filter_id},
                {"$pull": {"filters": filter_id}},
            )
        return result.modified_count

    async def mark_offered(self, keys: list[EndpointKey], version: str) -> None:
        """Remember that these endpoints were offered ``version`` (for rollout status)."""
        if not keys:
            return
        async with translated("offer tracking"):
            await self._collection.update_many(
                {"_id": {"$in": [endpoint_doc_id(k) for k in keys]}},
                {"$addToSet": {"offeredVersions": version}},
            )

    async def report_counts(self, tenant_id: str, application: str, version: str) -> tuple[int, int]:
        """(endpoints that applied ``version``, endpoints that failed it)."""
        scope = {"tenantId": tenant_id, "application": application}
        async with translated("report counts"):
            applied = await self._collection.count_documents({**scope, "appliedVersions": version})
            failed = await self._collection.count_documents({**scope, "failedVersions": version})
        return applied, failed

    async def offered_versions(self, tenant_id: str, application: str) -> dict[str, int]:
        pipeline: list[Document] = [
            {"$match": {"tenantId": tenant_id, "application": application}},
            {"$unwind": "$offeredVersions"},
            {"$group": {"_id": "$offeredVersions", "count": {"$sum": 1}}},
        ]
        async with translated("offer counts"):
            cursor = await self._collection.aggregate(pipeline)
            return {doc["_id"]: int(doc["count"]) async for doc in cursor}

    async def delete(self, key: EndpointKey) -> bool:
        async with translated("endpoint deletion"):
            result = await self._collection.delete_one({"_id": endpoint_doc_id(key)})
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
