"""Kaa platform configuration events: tenants (21/TLE) and Tekton (17/SCMP).

Both are cache reloads, so every replica listens (no queue group, as 3/ISM prescribes for
reloads). Like every handler in messaging, these never let an exception escape to the NATS
client (which would report it without a traceback as a connection error).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg

from otao.messaging.connection import event_handler
from otao.messaging.kaa import KaaBus
from otao.messaging.records import (
    BroadcastConfigurationUpdateEvent,
    ServiceSpecificConfigurationUpdateEvent,
    TenantUnregisteredEvent,
    TenantUpdatedEvent,
)
from otao.messaging.subjects import ScmpAction, TleEventType

# (tenant id, application name, app version name, correlation id); None = any.
Reload = Callable[[str | None, str | None, str | None, str], Awaitable[object]]


class TenantEvents:
    def __init__(
        self,
        bus: KaaBus,
        updated: Callable[[str], Awaitable[None]],
        unregistered: Callable[[str], Awaitable[None]],
    ) -> None:
        self._bus = bus
        self._updated = updated
        self._unregistered = unregistered

    def register(self) -> None:
        subjects, subscribe = self._bus.subjects, self._bus.connection.subscribe
        subscribe(subjects.tle(TleEventType.UPDATED), self._on_updated)
        subscribe(subjects.tle(TleEventType.UNREGISTERED), self._on_unregistered)

    @event_handler("tenant update")
    async def _on_updated(self, msg: Msg) -> None:
        event = self._bus.codec.decode(TenantUpdatedEvent, msg.data)
        await self._updated(event.tenant_id)

    @event_handler("tenant unregistration")
    async def _on_unregistered(self, msg: Msg) -> None:
        event = self._bus.codec.decode(TenantUnregisteredEvent, msg.data)
        await self._unregistered(event.tenant_id)


class ConfigurationEvents:
    """17/SCMP: reload exactly the scope an event names (never acknowledged)."""

    def __init__(self, bus: KaaBus, reload: Reload) -> None:
        self._bus = bus
        self._reload = reload

    def register(self) -> None:
        subjects, subscribe = self._bus.subjects, self._bus.connection.subscribe
        for action in (ScmpAction.UPSERT, ScmpAction.DELETE):
            subscribe(subjects.scmp_broadcast(action), self._on_broadcast)
            subscribe(subjects.scmp_targeted(action), self._on_targeted)

    @event_handler("configuration reload")
    async def _on_broadcast(self, msg: Msg) -> None:
        event = self._bus.codec.decode(BroadcastConfigurationUpdateEvent, msg.data)
        await self._reload(
            event.tenant_id, event.app_name, event.app_ver_name, event.correlation_id
        )

    @event_handler("configuration reload")
    async def _on_targeted(self, msg: Msg) -> None:
        event = self._bus.codec.decode(ServiceSpecificConfigurationUpdateEvent, msg.data)
        await self._reload(
            event.tenant_id, event.app_name, event.app_ver_name, event.correlation_id
        )
