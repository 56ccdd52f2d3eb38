"""Wires otao together from one Settings object: the only place that knows every part."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

import grpc

from otao.domain.applications import ApplicationConfig
from otao.rpc.access import local_development_access
from otao.rpc.interceptors import Authenticate
from otao.rpc.server import Health, build_server
from otao.rpc.software_servicer import SoftwareServicer
from otao.services.applications import ApplicationDirectory
from otao.services.audit import AuditLog
from otao.services.catalogs import CatalogCache
from otao.services.software import SoftwareService
from otao.settings import Settings
from otao.store.audit import AuditStore
from otao.store.mongo import Mongo
from otao.store.software import SoftwareStore

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    # Millisecond precision: what BSON dates keep, so a write's reply equals a later read.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class App:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.mongo = Mongo(settings.mongodb_uri, settings.mongodb_database, settings.mongodb_timeout_ms)
        self.applications = ApplicationDirectory(
            ApplicationConfig(a.name, a.tenant_id, tuple(a.app_versions), a.consent_required)
            for a in settings.applications
        )
        software_store = SoftwareStore(self.mongo)
        self.catalogs = CatalogCache(software_store, self.applications)
        self.audit = AuditLog(AuditStore(self.mongo), utc_now)
        self.software = SoftwareService(
            software_store,
            self.catalogs,
            self.applications,
            self.audit,
            utc_now,
            settings_managed_externally=settings.tekton.enabled,
        )
        self.health = Health()
        self._indexes_ready = False
        self._tasks: list[asyncio.Task[None]] = []
        self.server: grpc.aio.Server | None = None
        self.port = 0

    def _authenticate(self) -> Authenticate:
        if not self.settings.security.enabled:
            return local_development_access(self.settings.security.default_tenant)
        raise NotImplementedError("security wiring")

    async def start(self) -> None:
        if not self.settings.security.enabled:
            log.warning(
                "SECURITY IS OFF: local development mode, every call runs as tenant %r "
                "without authentication. Never expose this instance.",
                self.settings.security.default_tenant,
            )
        self.health.set(False)
        self.server = build_server(
            software=SoftwareServicer(self.software),
            resolution=None,
            endpoints=None,
            rollout=None,
            health_state=self.health,
            authenticate=self._authenticate(),
            max_message_bytes=self.settings.max_message_bytes,
        )
        self.port = self.server.add_insecure_port(
            f"{self.settings.grpc_host}:{self.settings.grpc_port}"
        )
        await self.server.start()
        self._tasks.append(asyncio.create_task(self._watch_readiness(), name="readiness"))
        log.info("otao gRPC listening", extra={"address": f"{self.settings.grpc_host}:{self.port}"})

    async def _watch_readiness(self) -> None:
        """Health follows the dependencies: MongoDB (indexes made) and NATS."""
        while True:
            database_ok = await self.mongo.ping()
            if database_ok and not self._indexes_ready:
                try:
                    await self.mongo.ensure_indexes()
                    self._indexes_ready = True
                except Exception:
                    log.exception("index creation failed; retrying")
            self.health.set(database_ok and self._indexes_ready)
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        """Graceful: not serving first, then drain in-flight calls within the grace period."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.health.set(False)
        if self.server is not None:
            await self.server.stop(self.settings.grace_period_seconds)
        await self.mongo.close()
