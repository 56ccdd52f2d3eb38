"""Rollout changes for watch streams, carried between replicas (``services/watch.py``).

A change is delivered to this replica's watchers at once, and broadcast (no queue group:
every replica's watchers may care) on ``kaa.v1.events.{otao}.rollout.changed``, otao's own
namespace like the catalog announcements. At once, because a write's reply must come after
its event reached local watchers: a watch opened after a create returned shows the create
in its first status, and a late "definition" event would otherwise pass for a later change.
Broadcasts are coalesced: a burst of reports for one rollout is one message per
``interval`` per replica, not one per report. A replica ignores its own broadcasts
(delivered locally already), and after a reconnect tells every watcher to resync (what
was broadcast meanwhile is lost).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from otao.domain.errors import OtaoError
from otao.messaging.connection import NatsConnection
from otao.messaging.replicas import ROLLOUT_CHANGED, ReplicaChannel
from otao.services.ports import EventKind
from otao.services.watch import WatchHub

log = logging.getLogger(__name__)

# Changes per message: far below NATS' 1 MiB default payload limit.
_BATCH = 500


Key = tuple[str, str, str, EventKind]


class RolloutEventBroadcaster:
    """The ``RolloutEvents`` port: ``changed`` delivers locally and records the change for
    the other replicas; ``run`` broadcasts what was recorded, every interval."""

    def __init__(
        self,
        connection: NatsConnection,
        hub: WatchHub,
        otao: str,
        replica: str,
        interval_seconds: float = 0.2,
    ) -> None:
        self._channel = ReplicaChannel(connection, otao, ROLLOUT_CHANGED, replica)
        self._hub = hub
        self._interval = interval_seconds
        # A dict as an ordered set: bounded by the rollouts changed within one interval.
        self._pending: dict[Key, None] = {}
        self._wake = asyncio.Event()

    def changed(self, tenant_id: str, application: str, version: str, kind: EventKind) -> None:
        self._hub.deliver(tenant_id, application, version, kind)
        self._pending[(tenant_id, application, version, kind)] = None
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()
            await asyncio.sleep(self._interval)

    async def flush(self) -> None:
        changes, self._pending = list(self._pending), {}
        for start in range(0, len(changes), _BATCH):
            batch = [
                {"tenantId": t, "application": a, "version": v, "kind": k.value}
                for t, a, v, k in changes[start : start + _BATCH]
            ]
            try:
                await self._channel.broadcast({"changes": batch})
            except OtaoError as error:
                # Rare: the client buffers while reconnecting. Other replicas' watchers miss it.
                log.warning("rollout change not broadcast to other replicas: %s", error.message)
                return


class RolloutEventListener:
    """Hands the other replicas' rollout changes to this replica's watchers."""

    def __init__(self, connection: NatsConnection, hub: WatchHub, otao: str, replica: str) -> None:
        self._channel = ReplicaChannel(connection, otao, ROLLOUT_CHANGED, replica)
        self._hub = hub

    def register(self) -> None:
        self._channel.listen(self._on_changed, self._hub.resync_all, "rollout change broadcast")

    def _on_changed(self, payload: Mapping[str, Any]) -> None:
        # All read before any is delivered: a malformed broadcast delivers nothing.
        changes = [
            (str(c["tenantId"]), str(c["application"]), str(c["version"]), EventKind(c["kind"]))
            for c in payload["changes"]
        ]
        for tenant_id, application, version, kind in changes:
            self._hub.deliver(tenant_id, application, version, kind)
