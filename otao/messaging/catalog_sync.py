"""Tells every replica when an application's catalog changed, so caches never go stale.

Broadcast without a queue group (every replica must hear it), as 3/ISM prescribes for
cache reloads. A replica ignores its own announcements: it already invalidated locally.
Two halves, so the wiring builds them in dependency order: the announcer exists before the
catalog cache (which calls it), the listener after it (it invalidates the cache).
"""

from __future__ import annotations

import json
import logging

from nats.aio.msg import Msg

from otao.domain.errors import OtaoError
from otao.messaging.connection import NatsConnection
from otao.services.catalogs import CatalogCache

log = logging.getLogger(__name__)


def _subject(otao: str) -> str:
    return f"kaa.v1.events.{otao}.application.catalog.changed"


class CatalogAnnouncer:
    def __init__(self, connection: NatsConnection, otao: str, replica: str) -> None:
        self._connection = connection
        self._subject = _subject(otao)
        self._replica = replica

    async def announce(self, tenant_id: str, application: str) -> None:
        payload = {"tenantId": tenant_id, "application": application, "replica": self._replica}
        try:
            await self._connection.publish(self._subject, json.dumps(payload).encode())
        except OtaoError as error:
            # Replicas that miss it reload everything when they reconnect; say so loudly.
            log.error("catalog change not announced to other replicas: %s", error.message)


class CatalogSync:
    """Invalidates this replica's catalogs on the other replicas' announcements."""

    def __init__(
        self, connection: NatsConnection, catalogs: CatalogCache, otao: str, replica: str
    ) -> None:
        self._connection = connection
        self._catalogs = catalogs
        self._subject = _subject(otao)
        self._replica = replica

    def register(self) -> None:
        self._connection.subscribe(self._subject, self._on_changed)
        # Announcements sent while this replica was disconnected are lost: start afresh.
        self._connection.on_reconnect(self._catalogs.invalidate_all)

    async def _on_changed(self, msg: Msg) -> None:
        try:
            payload = json.loads(msg.data)
            if payload.get("replica") == self._replica:
                return
            self._catalogs.invalidate(str(payload["tenantId"]), str(payload["application"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("malformed catalog change announcement ignored")
