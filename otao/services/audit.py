"""Appends who changed what, and when, to the audit log.

An update's ``details`` name each changed field with its value before and after
(``{"rolloutStrategy": {"before": "suspended", "after": "general"}}``), in the REST JSON
shape, so an entry says what changed without the entries before it. Listings page newest
first with an opaque ``pageToken``, like the endpoint listing: a token it did not return is
INVALID_ARGUMENT.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from otao.domain.models import ApplicationSettings, AuditEntry, Caller, JsonValue, SoftwareSpec
from otao.domain.rollout_plan import plan_fields as rollout_plan_fields
from otao.domain.validation import format_utc_date
from otao.services.applications import ApplicationDirectory
from otao.services.paging import PageTokens, page_size
from otao.services.ports import Clock
from otao.store.audit import AuditStore

log = logging.getLogger(__name__)

_TOKENS = PageTokens("audit")


def software_fields(spec: SoftwareSpec) -> dict[str, JsonValue]:
    """A definition's writable fields as the REST API names and shows them."""
    policy = spec.rollout_policy
    return {
        "upgradableFrom": list(spec.upgradable_from),
        "specification": json.loads(spec.specification_json),
        "metadata": json.loads(spec.metadata_json),
        "rolloutStrategy": spec.rollout_strategy.value,
        "filters": [
            {
                "filterId": f.filter_id,
                "rolloutDate": format_utc_date(f.rollout_date) if f.rollout_date else "",
            }
            for f in spec.filters
        ],
        "rolloutPolicy": (
            {"maxFailureRatio": policy.max_failure_ratio, "minReports": policy.min_reports}
            if policy is not None
            else None
        ),
        "rolloutPlan": plan_fields(spec),
    }


def plan_fields(spec: SoftwareSpec) -> JsonValue:
    plan = spec.rollout_plan
    if plan is None:
        return None
    # The API shows an unset cohort key as "" (the version is the cohort).
    return {**rollout_plan_fields(plan), "cohortKey": plan.cohort_key or ""}


def settings_fields(settings: ApplicationSettings) -> dict[str, JsonValue]:
    return {"consentRequired": settings.consent_required}


def changes(
    before: Mapping[str, JsonValue], after: Mapping[str, JsonValue]
) -> dict[str, JsonValue]:
    """``{field: {"before": old, "after": new}}`` for each field whose value differs."""
    return {
        name: {"before": before.get(name), "after": after.get(name)}
        for name in [*before, *(n for n in after if n not in before)]
        if before.get(name) != after.get(name)
    }


@dataclass(eq=False)
class AuditLog:
    store: AuditStore
    applications: ApplicationDirectory
    clock: Clock

    async def record(
        self,
        caller: Caller,
        application: str,
        action: str,
        resource: str,
        details: dict[str, JsonValue] | None = None,
    ) -> None:
        """``caller`` (its tenant and subject) did ``action`` on ``resource``."""
        tenant_id, actor = caller.tenant_id, caller.subject
        now = self.clock()
        # Sortable by time, unique across replicas.
        entry_id = f"{int(now.timestamp() * 1_000_000):020d}-{uuid.uuid4().hex[:12]}"
        await self.store.append(
            AuditEntry(
                entry_id, tenant_id, application, now, actor, action, resource, details or {}
            )
        )
        log.info(
            "audit",
            extra={
                "tenant": tenant_id,
                "application": application,
                "actor": actor,
                "action": action,
                "resource": resource,
                # Names only: a changed specification may be large.
                "changed": ",".join(details or {}),
            },
        )

    async def page(
        self, caller: Caller, application: str, size: int, token: str
    ) -> tuple[list[AuditEntry], str]:
        """Up to ``size`` entries newest first, after the one ``token`` names; and the
        token of the next page ("" on the last)."""
        tenant_id = caller.tenant_id
        self.applications.require(tenant_id, application)
        limit = page_size(size)
        before_id = _TOKENS.decode(token, tenant_id, application)
        entries = await self.store.page(tenant_id, application, before_id, limit + 1)
        if len(entries) <= limit:
            return entries, ""
        entries = entries[:limit]
        return entries, _TOKENS.encode(tenant_id, application, entries[-1].id)
