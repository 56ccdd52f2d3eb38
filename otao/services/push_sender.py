"""Sending a push's 6/CDTP ConfigUpdated notifications: the publisher a push needs, and how
one endpoint or a walked batch is sent (per version offered in one call, or one at a time
when the rate limit or a rollout plan's budget paces the batch)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from otao.domain.models import EndpointKey, EndpointState, Software
from otao.domain.push import Walked
from otao.services.applications import ApplicationDirectory
from otao.services.offer_budget import OfferBudget, capped
from otao.services.push_walk import RateLimiter


class ConfigPublisher(Protocol):
    async def config_updated(
        self, app_version: str, endpoint_id: str, version: str, content: bytes
    ) -> None: ...

    async def config_updated_many(
        self, version: str, content: bytes, targets: Sequence[tuple[str, str]]
    ) -> None:
        """``config_updated`` of ``version`` to each (app version name, endpoint id)."""
        ...

    async def flush(self) -> None: ...


@dataclass(eq=False)
class PushSender:
    publisher: ConfigPublisher
    applications: ApplicationDirectory
    budget: OfferBudget | None
    rate_per_second: float
    _limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self._limiter = RateLimiter(self.rate_per_second)

    async def send(self, state: EndpointState, offered: Software) -> bool:
        """One endpoint's notification; False when it has no app version name to send to."""
        app_version = state.app_version or self.default_app_version(
            state.tenant_id, state.application
        )
        if app_version is None:
            return False
        await self.publisher.config_updated(
            app_version,
            state.endpoint_id,
            offered.version,
            offered.spec.specification_json.encode(),
        )
        return True

    async def send_batch(
        self,
        tenant_id: str,
        application: str,
        offers: list[tuple[Walked, Software]],
        keep_alive: Callable[[], Awaitable[None]],
    ) -> None:
        """A walked batch's notifications (each with an app version name or the application's
        default). Unpaced, per version offered in one call; paced by the rate limit or a
        rollout plan's budget, one at a time (``keep_alive`` while the budget holds one back)."""
        if not (self._limiter.limited or self._paced(offers)):
            await self._send_grouped(tenant_id, application, offers)
            return
        # Per endpoint only what differs: the content is the same for every endpoint offered
        # a version.
        contents: dict[str, bytes] = {}
        default = self.default_app_version(tenant_id, application)
        publish, limited = self.publisher.config_updated, self._limiter.limited
        for state, offered in offers:
            if limited:
                await self._limiter.take()
            if self.budget is not None and capped(offered):
                key = EndpointKey(tenant_id, application, state.endpoint_id)
                await self.budget.wait(key, offered, keep_alive)
            content = contents.get(offered.version)
            if content is None:
                content = offered.spec.specification_json.encode()
                contents[offered.version] = content
            app_version = state.app_version or default
            assert app_version is not None  # the push's deliveries leave out those without
            await publish(app_version, state.endpoint_id, offered.version, content)

    def _paced(self, offers: list[tuple[Walked, Software]]) -> bool:
        """Whether a rollout plan's maxOffersPerMinute paces any of these (its pushes too)."""
        budget = self.budget
        return budget is not None and any(capped(offered) for _, offered in offers)

    async def _send_grouped(
        self, tenant_id: str, application: str, offers: list[tuple[Walked, Software]]
    ) -> None:
        """An unpaced batch: per version offered, its endpoints in one call, the publisher
        encoding once what their messages share (the content, the version...)."""
        groups: dict[str, tuple[Software, list[tuple[str, str]]]] = {}
        default = self.default_app_version(tenant_id, application)
        for state, offered in offers:
            group = groups.get(offered.version)
            if group is None:
                group = groups[offered.version] = (offered, [])
            app_version = state.app_version or default
            assert app_version is not None  # the push's deliveries leave out those without
            group[1].append((app_version, state.endpoint_id))
        for offered, targets in groups.values():
            content = offered.spec.specification_json.encode()
            await self.publisher.config_updated_many(offered.version, content, targets)

    def default_app_version(self, tenant_id: str, application_name: str) -> str | None:
        application = self.applications.find(tenant_id, application_name)
        if application is None or not application.app_versions:
            return None
        return application.app_versions[0]
