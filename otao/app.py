"""otao as one object: the parts ``otao.components.build`` makes, started and stopped.

The entry point starts and stops it; the tests reach the parts through ``components`` (built
in ``otao/components/``, which holds the wiring).
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
        self.components = build(settings, on_catalog_loaded)

    @property
    def port(self) -> int:
        return self.components.grpc.port

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return self.components.lifecycle.tasks

    async def start(self) -> None:
        # Everything started here (RPC and NATS handlers, background work) runs in tasks that
        # inherit this: no database operation waits for a database known to be down.
        with self.components.storage.mongo.fail_fast():
            await self.components.lifecycle.start()

    async def stop(self) -> None:
        """Graceful: not serving first, then drain in-flight work within the grace period."""
        await self.components.lifecycle.stop()


__all__ = ["App", "Components"]
