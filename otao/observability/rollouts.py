"""Refreshes the gauges that need the database: pending push jobs and per-rollout counts.

Counting is several queries per definition, so it runs every ``interval`` seconds in the
background (never at scrape time). Cardinality is bounded: only non-suspended definitions of
configured applications, at most ``max_rollouts`` of them (newest versions of each application
first, applications in name order); the rest are counted in ``otao_rollout_gauges_left_out``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from otao.domain.errors import OtaoError
from otao.domain.models import RolloutStrategy
from otao.observability.metrics import Metrics, RolloutCounts
from otao.services.applications import ApplicationDirectory
from otao.services.catalogs import CatalogCache
from otao.store.endpoints import EndpointStore
from otao.store.offers import OfferStore
from otao.store.push_jobs import PushJobStore

log = logging.getLogger(__name__)


@dataclass(eq=False)
class GaugeRefresher:
    metrics: Metrics
    applications: ApplicationDirectory
    catalogs: CatalogCache
    endpoints: EndpointStore
    offers: OfferStore
    push_jobs: PushJobStore
    interval: float
    max_rollouts: int

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except OtaoError as error:
                log.debug("metrics gauges not refreshed: %s", error.message)
            await asyncio.sleep(self.interval)

    async def refresh(self) -> None:
        self.metrics.pending_push_jobs.set(await self.push_jobs.pending_count())
        rollouts: list[RolloutCounts] = []
        left_out = 0
        for app in sorted(self.applications.all(), key=lambda a: (a.tenant_id, a.name)):
            catalog = await self.catalogs.get(app.tenant_id, app.name)
            for definition in catalog.definitions:
                if definition.rollout_strategy is RolloutStrategy.SUSPENDED:
                    continue
                if len(rollouts) >= self.max_rollouts:
                    left_out += 1
                    continue
                version = definition.version
                applied, failed = await self.endpoints.report_counts(
                    app.tenant_id, app.name, version
                )
                offered = await self.offers.offered_count(app.tenant_id, app.name, version)
                rollouts.append(
                    RolloutCounts(app.tenant_id, app.name, version, offered, applied, failed)
                )
        self.metrics.rollouts.replace(rollouts, left_out)
