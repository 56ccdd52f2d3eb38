"""What operators see and change about endpoints: state, failures, consents."""

from __future__ import annotations

from dataclasses import dataclass

from otao.domain import validation
from otao.domain.errors import InvalidArgument, NotFound
from otao.domain.models import Caller, Consent, EndpointKey, EndpointState, Software
from otao.domain.resolution import state_change_delivers
from otao.services.applications import ApplicationDirectory
from otao.services.audit import AuditLog
from otao.services.paging import PageTokens, page_size
from otao.services.ports import Clock, Notify
from otao.services.resolution import ResolutionService
from otao.store.endpoints import EndpointStore


@dataclass(frozen=True, slots=True)
class EndpointSoftware:
    endpoint_id: str
    current_version: str | None
    state: EndpointState | None
    next_update: Software | None


_TOKENS = PageTokens("endpoints")


@dataclass(eq=False)
class EndpointsService:
    applications: ApplicationDirectory
    endpoints: EndpointStore
    resolution: ResolutionService
    audit: AuditLog
    clock: Clock
    notify: Notify

    def key(self, caller: Caller, application: str, endpoint_id: str) -> EndpointKey:
        return self.applications.endpoint(caller.tenant_id, application, endpoint_id)

    def application(self, caller: Caller, application: str) -> str:
        return self.applications.require(caller.tenant_id, application).name

    async def software(
        self, caller: Caller, application: str, endpoint_id: str
    ) -> EndpointSoftware:
        key = self.key(caller, application, endpoint_id)
        decision = await self.resolution.decide(key, None)
        state = decision.state if decision.state_read else await self.endpoints.get(key)
        return EndpointSoftware(endpoint_id, decision.current_version, state, decision.selected)

    async def page(
        self, caller: Caller, application: str, version: str, size: int, token: str
    ) -> tuple[list[EndpointState], str]:
        self.application(caller, application)
        if version:
            validation.version(version)
        limit = page_size(size)
        tenant_id = caller.tenant_id
        after_id = _TOKENS.decode(token, tenant_id, application)
        found = await self.endpoints.page(
            tenant_id, application, version or None, after_id, limit + 1
        )
        if len(found) <= limit:
            return found, ""
        found = found[:limit]
        return found, _TOKENS.encode(tenant_id, application, found[-1].endpoint_id)

    async def distribution(self, caller: Caller, application: str) -> dict[str, int]:
        self.application(caller, application)
        return await self.endpoints.distribution(caller.tenant_id, application)

    async def clear_failure(
        self, caller: Caller, application: str, endpoint_id: str, version: str
    ) -> None:
        key = self.key(caller, application, endpoint_id)
        validation.version(version)
        if not await self.endpoints.clear_failure(key, version, self.clock()):
            raise NotFound(f"endpoint {endpoint_id} has no recorded failure of {version}")
        await self.audit.record(
            caller,
            application,
            "failure.clear",
            f"endpoints/{endpoint_id}/failures/{version}",
        )
        await self.notify(key)

    async def grant_consent(
        self,
        caller: Caller,
        application: str,
        endpoint_id: str,
        version: str,
        all_versions: bool,
    ) -> Consent:
        key = self.key(caller, application, endpoint_id)
        if all_versions and version:
            raise InvalidArgument.of("version", "give either version or allVersions, not both")
        if not all_versions:
            validation.version(version)
        consent = Consent(None if all_versions else version, all_versions, self.clock())
        before = await self.endpoints.get(key)
        await self.endpoints.add_consent(key, consent, self.clock())
        await self.audit.record(
            caller,
            application,
            "consent.create",
            f"endpoints/{endpoint_id}/consents/{version or 'all'}",
        )
        # Push only when the consent makes a different update deliverable (not when consent
        # is not required, or was already given).
        if await self._deliverable_changed(key, before):
            await self.notify(key)
        return consent

    async def _deliverable_changed(self, key: EndpointKey, before: EndpointState | None) -> bool:
        catalog = await self.resolution.catalog(key.tenant_id, key.application)
        after = await self.endpoints.get(key)
        return state_change_delivers(catalog, before, after, self.clock())

    async def consents(self, caller: Caller, application: str, endpoint_id: str) -> list[Consent]:
        key = self.key(caller, application, endpoint_id)
        state = await self.endpoints.get(key)
        return list(state.consents) if state else []

    async def revoke_consent(
        self, caller: Caller, application: str, endpoint_id: str, version: str
    ) -> None:
        key = self.key(caller, application, endpoint_id)
        all_versions = version == "all"
        if not all_versions:
            validation.version(version)
        removed = await self.endpoints.remove_consent(
            key, None if all_versions else version, all_versions, self.clock()
        )
        if not removed:
            raise NotFound(f"endpoint {endpoint_id} has no consent {version}")
        await self.audit.record(
            caller,
            application,
            "consent.delete",
            f"endpoints/{endpoint_id}/consents/{version}",
        )
