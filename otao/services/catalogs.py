"""The in-memory catalog of every application: definitions, graph and settings.

Reads come from memory; a change on any replica invalidates the entry everywhere (the
messaging layer carries invalidations between replicas). A generation counter keeps a load
that raced with an invalidation from caching stale data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from otao.domain.catalog import Catalog
from otao.domain.models import ApplicationSettings
from otao.services.applications import ApplicationDirectory
from otao.store.software import SoftwareStore

Key = tuple[str, str]
ChangeListener = Callable[[str, str], Awaitable[None]]


class CatalogCache:
    def __init__(
        self,
        store: SoftwareStore,
        applications: ApplicationDirectory,
        announce: ChangeListener,
        settings_from_configuration_only: bool = False,
        on_loaded: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        # Called after a catalog is cached: the process' memory policy (``python -m otao``
        # keeps long-lived data out of full garbage collections, see otao/__main__.py).
        self._on_loaded = on_loaded
        # With Kaa Tekton as the source, its consentRequired is the truth, not the database.
        self._configuration_only = settings_from_configuration_only
        self._applications = applications
        self._entries: dict[Key, Catalog] = {}
        self._generation: dict[Key, int] = {}
        self._locks: dict[Key, asyncio.Lock] = {}
        # Called after each change made by this replica (to tell the other replicas).
        self._announce = announce
        # Read by the metrics (otao/observability/metrics.Sampled): plain ints, hot path.
        self.hits = 0
        self.misses = 0
        self.loads = 0

    def cached(self, tenant_id: str, application: str) -> Catalog | None:
        """The catalog if it is in memory now, without loading it (None otherwise)."""
        catalog = self._entries.get((tenant_id, application))
        if catalog is not None:
            self.hits += 1  # a None is counted by the get() that follows it
        return catalog

    async def get(self, tenant_id: str, application: str) -> Catalog:
        key = (tenant_id, application)
        cached = self._entries.get(key)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._entries.get(key)
            if cached is not None:
                return cached
            generation = self._generation.get(key, 0)
            catalog = await self._load(tenant_id, application)
            self.loads += 1
            if self._generation.get(key, 0) == generation:
                self._entries[key] = catalog
                if self._on_loaded is not None:
                    self._on_loaded()
            return catalog

    async def _load(self, tenant_id: str, application: str) -> Catalog:
        definitions = await self._store.list_definitions(tenant_id, application)
        settings = await self.settings(tenant_id, application)
        return Catalog.build(tenant_id, application, settings, definitions)

    async def settings(self, tenant_id: str, application: str) -> ApplicationSettings:
        """Stored settings win over the configured default (the settings API writes them)."""
        if not self._configuration_only:
            stored = await self._store.get_settings(tenant_id, application)
            if stored is not None:
                return stored
        configured = self._applications.find(tenant_id, application)
        return ApplicationSettings(
            consent_required=configured.consent_required if configured else False
        )

    def invalidate(self, tenant_id: str, application: str) -> None:
        key = (tenant_id, application)
        self._generation[key] = self._generation.get(key, 0) + 1
        self._entries.pop(key, None)

    def invalidate_all(self) -> None:
        for key in list(self._entries):
            self.invalidate(*key)

    async def changed(self, tenant_id: str, application: str) -> None:
        """This replica changed the application: drop the entry here and everywhere."""
        self.invalidate(tenant_id, application)
        await self._announce(tenant_id, application)
