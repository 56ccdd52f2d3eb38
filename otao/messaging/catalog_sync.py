"""Tells every replica when an application's catalog changed, so caches never go stale.

A broadcast between replicas (``messaging/replicas.py``): every replica hears it, and a
replica ignores its own announcements (it already invalidated locally).
Two halves, so the wiring builds them in dependency order: the announcer exists before the
catalog cache (which calls it), the listener after it (it invalidates the cache).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from otao.domain.errors import OtaoError
from otao.messaging.connection import NatsConnection
from otao.messaging.replicas import CATALOG_CHANGED, ReplicaChannel
from otao.services.catalogs import CatalogCache

log = logging.getLogger(__name__)


class CatalogAnnouncer:
    def __init__(self, connection: NatsConnection, otao: str, replica: str) -> None:
        self._channel = ReplicaChannel(connection, otao, CATALOG_CHANGED, replica)

    async def announce(self, tenant_id: str, application: str) -> None:
        try:
            await self._channel.broadcast({"tenantId": tenant_id, "application": application})
        except OtaoError as error:
            # Replicas that miss it reload everything when they reconnect; say so loudly.
            log.error("catalog change not announced to other replicas: %s", error.message)


class CatalogSync:
    """Invalidates this replica's catalogs on the other replicas' announcements."""

    def __init__(
        self, connection: NatsConnection, catalogs: CatalogCache, otao: str, replica: str
    ) -> None:
        self._channel = ReplicaChannel(connection, otao, CATALOG_CHANGED, replica)
        self._catalogs = catalogs

    def register(self) -> None:
        # Announcements sent while this replica was disconnected are lost: start afresh.
        self._channel.listen(
            self._on_changed, self._catalogs.invalidate_all, "catalog change announcement"
        )

    def _on_changed(self, payload: Mapping[str, Any]) -> None:
        self._catalogs.invalidate(str(payload["tenantId"]), str(payload["application"]))
