"""Endpoint filter membership (from EPR) and what it changes for targeted rollouts."""

from __future__ import annotations

from dataclasses import dataclass

from otao.domain import resolution
from otao.domain.models import EndpointKey
from otao.services.applications import ApplicationDirectory
from otao.services.catalogs import CatalogCache
from otao.services.ports import Clock, MembershipLookup, Notify
from otao.store.endpoints import EndpointStore


@dataclass(eq=False)
class FilterService:
    applications: ApplicationDirectory
    endpoints: EndpointStore
    catalogs: CatalogCache
    notify: Notify
    # EPR's answer alone (20/EFMP); this service stores it (``learn``).
    ask_epr: MembershipLookup
    clock: Clock

    async def matched(self, app_version_name: str, endpoint_id: str, filter_id: str) -> None:
        """The endpoint joined a filter: push if that changes its deliverable update.

        One event is one fact, not the endpoint's whole membership, but it always counts,
        whether or not EPR ever answered a membership query. For a known endpoint whose
        membership otao never learned, EPR is asked first (as a poll would), so the push
        decision sees every filter the endpoint matches; the fact is recorded after the
        answer, so the answer (which may predate the event) never overrides it. Endpoints otao
        has never seen keep the fact only; their first poll asks EPR. Events for an app
        version name otao does not serve are ignored.
        """
        key = self.applications.device_endpoint(app_version_name, endpoint_id)
        if key is None:
            return
        before_state = await self.endpoints.get(key)
        unknown = before_state is not None and not before_state.filters_known
        if unknown:
            await self.learn(key)  # None at once when EPR is absent (no responders)
            await self.endpoints.add_filter(key, filter_id, self.clock())
        elif not await self.endpoints.add_filter(key, filter_id, self.clock()):
            return
        after_state = await self.endpoints.get(key)
        catalog = await self.catalogs.get(key.tenant_id, key.application)
        if resolution.state_change_delivers(catalog, before_state, after_state, self.clock()):
            await self.notify(key)

    async def unmatched(self, app_version_name: str, endpoint_id: str, filter_id: str) -> None:
        key = self.applications.device_endpoint(app_version_name, endpoint_id)
        if key is not None:
            await self.endpoints.remove_filter(key, filter_id, self.clock())

    async def deleted(self, application_name: str, filter_id: str) -> int:
        """A filter was deleted: drop it from every endpoint of every such application."""
        dropped = 0
        for application in self.applications.all():
            if application.name != application_name:
                continue
            for endpoint_id in await self.endpoints.members(
                application.tenant_id, application.name, filter_id
            ):
                key = EndpointKey(application.tenant_id, application.name, endpoint_id)
                dropped += await self.endpoints.remove_filter(key, filter_id, self.clock())
        return dropped

    async def learn(self, key: EndpointKey) -> frozenset[str] | None:
        """Ask EPR for the endpoint's membership and store the answer, merged with the events
        that arrived after the question (they are newer); the membership otao now believes,
        or None when EPR did not answer."""
        asked_at = self.clock()
        answer = await self.ask_epr(key)
        if answer is None:
            return None
        return await self.endpoints.set_filters(key, answer, self.clock(), asked_at)
