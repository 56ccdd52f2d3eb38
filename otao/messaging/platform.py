"""Kaa platform configuration events: tenants (21/TLE) and Tekton (17/SCMP).

Both are cache reloads, so every replica listens (no queue group, as 3/ISM prescribes for
reloads). Like every handler in messaging, these never let an exception escape to the NATS
client (which would report it without a traceback as a connection error).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

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


@dataclass(eq=False)
class TenantEvents:
    bus: KaaBus
    updated: Callable[[str], Awaitable[None]]
    unregistered: Callable[[str], Awaitable[None]]

    def register(self) -> None:
        tle, on_record = self.bus.subjects.tle, self.bus.on_record
        on_record(tle(TleEventType.UPDATED), TenantUpdatedEvent, "tenant update", self._updated)
        on_record(
            tle(TleEventType.UNREGISTERED),
            TenantUnregisteredEvent,
            "tenant unregistration",
            self._unregistered,
        )

    async def _updated(self, event: TenantUpdatedEvent) -> None:
        await self.updated(event.tenant_id)

    async def _unregistered(self, event: TenantUnregisteredEvent) -> None:
        await self.unregistered(event.tenant_id)


@dataclass(eq=False)
class ConfigurationEvents:
    """17/SCMP: reload exactly the scope an event names (never acknowledged)."""

    bus: KaaBus
    reload: Reload

    def register(self) -> None:
        subjects, on_record = self.bus.subjects, self.bus.on_record
        for action in (ScmpAction.UPSERT, ScmpAction.DELETE):
            on_record(
                subjects.scmp_broadcast(action),
                BroadcastConfigurationUpdateEvent,
                "configuration reload",
                self._reload_scope,
            )
            on_record(
                subjects.scmp_targeted(action),
                ServiceSpecificConfigurationUpdateEvent,
                "configuration reload",
                self._reload_scope,
            )

    async def _reload_scope(
        self, event: BroadcastConfigurationUpdateEvent | ServiceSpecificConfigurationUpdateEvent
    ) -> None:
        await self.reload(event.tenant_id, event.app_name, event.app_ver_name, event.correlation_id)
