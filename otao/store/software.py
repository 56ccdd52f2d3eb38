"""Software definitions and application settings in MongoDB.

A definition is keyed by the natural ``_id`` tenant/application/version (the cheapest
lookup), with a unique index on (tenantId, application, version) as well. Specification and
metadata are stored as JSON text so MongoDB's field-name rules ($, .) cannot bite.
"""

from __future__ import annotations

from datetime import datetime

from otao.domain.errors import Aborted, NotFound
from otao.domain.models import (
    ApplicationSettings,
    RolloutFilter,
    RolloutHalt,
    RolloutPolicy,
    RolloutStrategy,
    Software,
    SoftwareSpec,
)
from otao.domain.rollout_plan import Advance, RolloutPlan, Wave, plan_fields
from otao.domain.rollout_state import RolloutState
from otao.store.mongo import SETTINGS, SOFTWARE, Document, Mongo


def software_id(tenant_id: str, application: str, version: str) -> str:
    return f"{tenant_id}/{application}/{version}"


def to_document(software: Software) -> Document:
    spec = software.spec
    return {
        "_id": software_id(software.tenant_id, software.application, spec.version),
        "tenantId": software.tenant_id,
        "application": software.application,
        "version": spec.version,
        "upgradableFrom": list(spec.upgradable_from),
        "specification": spec.specification_json,
        "metadata": spec.metadata_json,
        "rolloutStrategy": spec.rollout_strategy.value,
        "filters": [{"filterId": f.filter_id, "rolloutDate": f.rollout_date} for f in spec.filters],
        "rolloutPolicy": (
            {
                "maxFailureRatio": spec.rollout_policy.max_failure_ratio,
                "minReports": spec.rollout_policy.min_reports,
            }
            if spec.rollout_policy
            else None
        ),
        "halt": (
            {"reason": software.halt.reason, "haltedAt": software.halt.halted_at}
            if software.halt
            else None
        ),
        "policyBaseline": list(software.policy_baseline),
        "rolloutPlan": _plan_document(spec.rollout_plan),
        "rollout": _rollout_document(software.rollout),
        "createdAt": software.created_at,
        "updatedAt": software.updated_at,
        "etag": software.etag,
    }


def from_document(doc: Document) -> Software:
    policy = doc.get("rolloutPolicy")
    halt = doc.get("halt")
    return Software(
        tenant_id=doc["tenantId"],
        application=doc["application"],
        spec=SoftwareSpec(
            version=doc["version"],
            upgradable_from=tuple(doc.get("upgradableFrom", ())),
            specification_json=doc["specification"],
            metadata_json=doc.get("metadata", "{}"),
            rollout_strategy=RolloutStrategy(doc["rolloutStrategy"]),
            filters=tuple(
                RolloutFilter(f["filterId"], f.get("rolloutDate")) for f in doc.get("filters", ())
            ),
            rollout_policy=(
                RolloutPolicy(float(policy["maxFailureRatio"]), int(policy["minReports"]))
                if policy
                else None
            ),
            rollout_plan=_plan(doc.get("rolloutPlan")),
        ),
        created_at=doc["createdAt"],
        updated_at=doc["updatedAt"],
        etag=doc["etag"],
        halt=RolloutHalt(halt["reason"], halt["haltedAt"]) if halt else None,
        policy_baseline=_baseline(doc.get("policyBaseline")),
        rollout=_rollout(doc.get("rollout")),
    )


def _plan_document(plan: RolloutPlan | None) -> Document | None:
    return None if plan is None else plan_fields(plan)


def _plan(doc: Document | None) -> RolloutPlan | None:
    if not doc:
        return None
    return RolloutPlan(
        waves=tuple(
            Wave(
                int(w["percent"]),
                int(w.get("minReports", 0)),
                float(w.get("minSuccessRatio", 0.0)),
                int(w.get("soakSeconds", 0)),
            )
            for w in doc["waves"]
        ),
        advance=Advance(doc.get("advance", Advance.AUTOMATIC.value)),
        confirm_seconds=int(doc.get("confirmSeconds", 0)),
        apply_timeout_seconds=int(doc.get("applyTimeoutSeconds", 0)),
        max_offers_per_minute=int(doc.get("maxOffersPerMinute", 0)),
        cohort_key=doc.get("cohortKey"),
    )


def _rollout_document(state: RolloutState | None) -> Document | None:
    if state is None:
        return None
    return {
        "currentWave": state.current_wave,
        "openedAt": list(state.opened_at),
        "paused": state.paused,
        "changedBy": state.changed_by,
        "changedAt": state.changed_at,
    }


def _rollout(doc: Document | None) -> RolloutState | None:
    if not doc:
        return None
    return RolloutState(
        current_wave=int(doc["currentWave"]),
        opened_at=tuple(doc.get("openedAt") or ()),
        paused=bool(doc.get("paused")),
        changed_by=doc.get("changedBy"),
        changed_at=doc.get("changedAt"),
    )


def _baseline(stored: object) -> tuple[int, int]:
    if isinstance(stored, list) and len(stored) == 2:
        return int(stored[0]), int(stored[1])
    return (0, 0)


class SoftwareStore:
    def __init__(self, mongo: Mongo) -> None:
        self._mongo = mongo
        self._collection = mongo.collection(SOFTWARE)
        self._settings = mongo.collection(SETTINGS)

    async def list_definitions(self, tenant_id: str, application: str) -> list[Software]:
        async with self._mongo.call("software listing"):
            cursor = self._collection.find({"tenantId": tenant_id, "application": application})
            return [from_document(doc) async for doc in cursor]

    async def get(self, tenant_id: str, application: str, version: str) -> Software | None:
        async with self._mongo.call("software lookup"):
            doc = await self._collection.find_one(
                {"_id": software_id(tenant_id, application, version)}
            )
        return from_document(doc) if doc else None

    async def insert(self, software: Software) -> None:
        async with self._mongo.call(f"version {software.version}"):
            await self._collection.insert_one(to_document(software))

    async def replace(self, software: Software, expected_etag: str) -> None:
        """Replace a stored definition only if its etag is still ``expected_etag``."""
        doc = to_document(software)
        async with self._mongo.call("software update"):
            result = await self._collection.replace_one(
                {"_id": doc["_id"], "etag": expected_etag}, doc
            )
        if result.matched_count == 0:
            await self._raise_missing_or_conflict(software.tenant_id, software.application, doc)

    async def delete(
        self, tenant_id: str, application: str, version: str, expected_etag: str | None
    ) -> None:
        key = software_id(tenant_id, application, version)
        query: Document = {"_id": key}
        if expected_etag:
            query["etag"] = expected_etag
        async with self._mongo.call("software deletion"):
            result = await self._collection.delete_one(query)
        if result.deleted_count == 0:
            await self._raise_missing_or_conflict(tenant_id, application, {"_id": key})

    async def _raise_missing_or_conflict(
        self, tenant_id: str, application: str, doc: Document
    ) -> None:
        async with self._mongo.call("software lookup"):
            exists = await self._collection.find_one({"_id": doc["_id"]}, {"_id": 1})
        if exists is None:
            raise NotFound(f"application {application} has no such version")
        raise Aborted("the definition changed since it was read (etag mismatch)")

    async def get_settings(self, tenant_id: str, application: str) -> ApplicationSettings | None:
        async with self._mongo.call("settings lookup"):
            doc = await self._settings.find_one({"_id": f"{tenant_id}/{application}"})
        if doc is None:
            return None
        return ApplicationSettings(consent_required=bool(doc.get("consentRequired", False)))

    async def put_settings(
        self, tenant_id: str, application: str, settings: ApplicationSettings, now: datetime
    ) -> None:
        async with self._mongo.call("settings update"):
            await self._settings.replace_one(
                {"_id": f"{tenant_id}/{application}"},
                {
                    "_id": f"{tenant_id}/{application}",
                    "tenantId": tenant_id,
                    "application": application,
                    "consentRequired": settings.consent_required,
                    "updatedAt": now,
                },
                upsert=True,
            )
