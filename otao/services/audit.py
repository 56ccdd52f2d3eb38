"""Appends who changed what, and when, to the audit log."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from otao.domain.models import AuditEntry, JsonValue
from otao.store.audit import AuditStore

log = logging.getLogger(__name__)


class AuditLog:
    def __init__(self, store: AuditStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    async def record(
        self,
        tenant_id: str,
        application: str,
        actor: str,
        action: str,
        resource: str,
        details: dict[str, JsonValue] | None = None,
    ) -> None:
        now = self._clock()
        # Sortable by time, unique across replicas.
        entry_id = f"{int(now.timestamp() * 1_000_000):020d}-{uuid.uuid4().hex[:12]}"
        await self._store.append(
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
            },
        )

    async def page(
        self, tenant_id: str, application: str, before_id: str | None, limit: int
    ) -> list[AuditEntry]:
        return await self._store.page(tenant_id, application, before_id, limit)
