"""otao as one object: the parts ``otao.components.build`` makes, started and stopped.

The names below are what the entry point and the tests reach for; the wiring itself is in
``otao/components/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from otao.components import Components, build
from otao.settings import Settings


class App:
    def __init__(
        self, settings: Settings, on_catalog_loaded: Callable[[], None] | None = None
    ) -> None:
        self.settings = settings
        self.components = c = build(settings, on_catalog_loaded)
        self.mongo = c.storage.mongo
        self.endpoint_store = c.storage.endpoints
        self.push_jobs = c.storage.push_jobs
        self.nats = c.broker.nats
        self.codec = c.broker.codec
        self.membership = c.broker.membership
        self.platform = c.platform
        self.applications = c.services.applications
        self.catalogs = c.services.catalogs
        self.software = c.services.software
        self.delivery = c.services.delivery
        self.recorder = c.services.recorder
        self.halts = c.services.halts
        self.waves = c.services.waves
        self.scheduler = c.services.scheduler
        self.tekton = c.services.tekton
        self.cdtp = c.handlers.cdtp
        self.health = c.health

    @property
    def port(self) -> int:
        return self.components.grpc.port

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return self.components.lifecycle.tasks

    async def start(self) -> None:
        # Everything started here (RPC and NATS handlers, background work) runs in tasks that
        # inherit this: no database operation waits for a database known to be down.
        with self.mongo.fail_fast():
            await self.components.lifecycle.start()

    async def stop(self) -> None:
        """Graceful: not serving first, then drain in-flight work within the grace period."""
        await self.components.lifecycle.stop()


__all__ = ["App", "Components"]
