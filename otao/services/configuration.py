"""Application configuration from Kaa Tekton, reloaded per 17/SCMP scope without a restart.

A failed fetch keeps the last good configuration and is retried (the whole configuration,
so nothing announced meanwhile is missed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from otao.domain.applications import ApplicationConfig, ConfigScope
from otao.domain.errors import OtaoError
from otao.domain.push import PushJob
from otao.services.applications import ApplicationDirectory
from otao.services.catalogs import CatalogCache
from otao.services.ports import Clock
from otao.services.push import PushService
from otao.services.workers import when_woken

log = logging.getLogger(__name__)

Fetch = Callable[[ConfigScope | None], Awaitable[list[ApplicationConfig]]]


@dataclass(eq=False)
class TektonConfiguration:
    fetch: Fetch
    directory: ApplicationDirectory
    catalogs: CatalogCache
    push: PushService
    clock: Clock
    retry_seconds: float
    _retry: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    loaded: bool = field(init=False, default=False)

    async def run(self) -> None:
        """Load everything at start, then retry whenever a fetch failed."""
        self._retry.set()
        await when_woken(self._retry, self._load_all, retry_after=self.retry_seconds)

    async def _load_all(self) -> bool:
        return await self.reload(None, None, None, "start" if not self.loaded else "retry")

    async def reload(
        self,
        tenant_id: str | None,
        app_name: str | None,
        app_version: str | None,
        correlation_id: str,
    ) -> bool:
        scope = None if tenant_id is None else ConfigScope(tenant_id, app_name, app_version)
        try:
            fetched = await self.fetch(scope)
        except OtaoError as error:
            log.warning(
                "Tekton fetch failed, keeping the last good configuration: %s", error.message
            )
            self._retry.set()
            return False
        before = {(a.tenant_id, a.name): a for a in self.directory.all()}
        if scope is None:
            self.directory.replace_all(fetched)
            self.loaded = True
        elif app_version is not None:
            self._merge_version(tenant_id or "", app_name, app_version, fetched)
        else:
            self.directory.replace_where(scope.contains, fetched)
        await self._after_change(before, correlation_id)
        return True

    def _merge_version(
        self,
        tenant_id: str,
        app_name: str | None,
        app_version: str,
        fetched: list[ApplicationConfig],
    ) -> None:
        """A version scope: only that app version's membership is news."""
        merged = [
            _without_version(application, tenant_id, app_version)
            for application in self.directory.all()
        ]
        by_key = {(a.tenant_id, a.name): a for a in merged}
        for incoming in fetched:
            key = (incoming.tenant_id, incoming.name)
            by_key[key] = _with_versions_of(incoming, by_key.get(key))
        self.directory.replace_all(by_key.values())

    async def _after_change(
        self, before: dict[tuple[str, str], ApplicationConfig], correlation_id: str
    ) -> None:
        for application in self.directory.all():
            key = (application.tenant_id, application.name)
            previous = before.get(key)
            if previous is None or previous.consent_required == application.consent_required:
                continue
            self.catalogs.invalidate(*key)
            if previous.consent_required and not application.consent_required:
                # Endpoints that waited for consent may now get their update. The job id is
                # deterministic: every replica hears the event, one job results.
                await self.push.enqueue(
                    PushJob.for_consent_lifted(*key, correlation_id, self.clock())
                )


def _without_version(
    application: ApplicationConfig, tenant_id: str, app_version: str
) -> ApplicationConfig:
    if application.tenant_id != tenant_id or app_version not in application.app_versions:
        return application
    kept = tuple(v for v in application.app_versions if v != app_version)
    return replace(application, app_versions=kept)


def _with_versions_of(
    incoming: ApplicationConfig, known: ApplicationConfig | None
) -> ApplicationConfig:
    """``incoming`` keeping the app versions already known, then its new ones."""
    if known is None:
        return incoming
    new = tuple(v for v in incoming.app_versions if v not in known.app_versions)
    return replace(incoming, app_versions=known.app_versions + new)
