"""Rollout changes for watch streams, carried between replicas (``services/watch.py``).

A write (a definition written, halted, resumed, deleted, a wave opened, a pause) reaches
this replica's watchers at once, together with everything recorded before it, in order: a
write's reply must come after its event reached local watchers, or a watch opened after a
create returned would get the create later as if it were a new change. Report counts wait
for the next flush, every ``interval``: a burst of reports is one change per rollout there,
so all watchers of it share one status read (``SharedReads``). Every change is also
broadcast (no queue group: every replica's watchers may care) on
``kaa.v1.events.{otao}.rollout.changed``, otao's own namespace like the catalog
announcements, coalesced the same way: one message per ``interval`` per replica, not one
per report. A replica ignores its own broadcasts (delivered locally already), and after a
reconnect tells every watcher to resync (what was broadcast meanwhile is lost).
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
    """The ``RolloutEvents`` port: ``changed`` records (and delivers a write locally at
    once); ``run`` delivers and broadcasts what was recorded, every interval."""

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
        # Dicts as ordered sets, bounded by the rollouts changed within one interval: what
        # this replica's watchers have yet to get, and what the other replicas' have.
        self._local: dict[Key, None] = {}
        self._pending: dict[Key, None] = {}
        self._wake = asyncio.Event()

    def changed(self, tenant_id: str, application: str, version: str, kind: EventKind) -> None:
        key = (tenant_id, application, version, kind)
        self._local[key] = None
        self._pending[key] = None
        if kind is not EventKind.COUNTS:
            self._deliver_local()
        self._wake.set()

    def _deliver_local(self) -> None:
        changes, self._local = list(self._local), {}
        for tenant_id, application, version, kind in changes:
            self._hub.deliver(tenant_id, application, version, kind)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()
            await asyncio.sleep(self._interval)

    async def flush(self) -> None:
        self._deliver_local()
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
