"""A rollout plan's offer budget (``maxOffersPerMinute``, docs/rollouts.md): first offers of a
version per UTC minute across all replicas. Repeat offers to an endpoint already offered the
version are free; only definitions whose plan sets a cap pay a lookup, everything else is
decided without one."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from otao.domain.models import EndpointKey, Software
from otao.domain.rollout_progress import budget_window, budget_window_end
from otao.services.ports import Clock
from otao.store.offer_budgets import OfferBudgetStore
from otao.store.offers import OfferStore

# Grants an OfferBudget keeps in memory (bounded: a forgotten one costs a lookup, no more).
GRANTS_REMEMBERED = 100_000


def capped(definition: Software) -> int:
    """The definition's cap on first offers per minute; 0: none."""
    plan = definition.spec.rollout_plan
    return plan.max_offers_per_minute if plan is not None else 0


@dataclass(eq=False)
class OfferBudget:
    budgets: OfferBudgetStore
    offers: OfferStore
    clock: Clock
    # Offers this replica granted (or saw recorded), the latest GRANTS_REMEMBERED: their
    # repeats need no lookup.
    _granted: OrderedDict[tuple[EndpointKey, str], None] = field(
        init=False, default_factory=OrderedDict
    )

    async def allow(self, key: EndpointKey, definition: Software) -> bool:
        """Whether the endpoint may be offered the version now; takes one unit of this
        minute's budget for a first offer."""
        limit = capped(definition)
        if not limit or await self._offered_before(key, definition.version):
            return True
        window = budget_window(self.clock())
        scope = (key.tenant_id, key.application, definition.version)
        if not await self.budgets.take(*scope, window, limit):
            return False
        self._remember(key, definition.version)
        return True

    async def exhausted(self, key: EndpointKey, definition: Software) -> bool:
        """``allow`` would say no (explain's question; takes nothing)."""
        limit = capped(definition)
        if not limit or await self._offered_before(key, definition.version):
            return False
        window = budget_window(self.clock())
        scope = (key.tenant_id, key.application, definition.version)
        return await self.budgets.used(*scope, window) >= limit

    async def wait(
        self, key: EndpointKey, definition: Software, keep_alive: Callable[[], Awaitable[None]]
    ) -> None:
        """Until the endpoint may be offered the version (a push paced by the budget),
        calling ``keep_alive`` at least every few seconds while waiting."""
        while not await self.allow(key, definition):
            until = budget_window_end(budget_window(self.clock()))
            while self.clock() < until:
                await keep_alive()
                await asyncio.sleep(min(1.0, max(0.01, (until - self.clock()).total_seconds())))

    async def _offered_before(self, key: EndpointKey, version: str) -> bool:
        if (key, version) in self._granted:
            return True
        if await self.offers.was_offered(key, version):
            self._remember(key, version)
            return True
        return False

    def _remember(self, key: EndpointKey, version: str) -> None:
        self._granted[(key, version)] = None
        while len(self._granted) > GRANTS_REMEMBERED:
            self._granted.popitem(last=False)
