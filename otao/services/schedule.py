"""Rollout dates: when a targeted filter's date passes, its endpoints get their push, once.

Every replica looks; the push job for a passed date has a deterministic id, so exactly one
job exists however many replicas (or restarts) create it, and the job's lease makes
exactly one replica work it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from otao.domain.models import RolloutStrategy, Software
from otao.domain.push import PushJob
from otao.services.applications import ApplicationDirectory
from otao.services.catalogs import CatalogCache
from otao.services.ports import Clock
from otao.services.push import PushService
from otao.services.workers import every

log = logging.getLogger(__name__)


def passed_date_jobs(definition: Software, now: datetime) -> Iterator[PushJob]:
    """The push job of each of the definition's filters whose rollout date passed since the
    definition was written: a date already passed then was covered by that write's own push.
    Only a targeted definition has them."""
    if definition.rollout_strategy is not RolloutStrategy.TARGETED:
        return
    for index, rollout_filter in enumerate(definition.spec.filters):
        date = rollout_filter.rollout_date
        if date is not None and definition.updated_at < date <= now:
            yield PushJob.for_rollout_date(definition, index, now)


@dataclass(eq=False)
class RolloutDateScheduler:
    applications: ApplicationDirectory
    catalogs: CatalogCache
    push: PushService
    clock: Clock
    interval: float = 1.0
    _handled: set[str] = field(init=False, default_factory=set)
    # Completed rounds of ``run``: a round looked at every date (tests wait on it).
    rounds: int = field(init=False, default=0)

    async def run(self) -> None:
        await every(self.interval, self._round, "rollout date check")

    async def _round(self) -> None:
        await self.tick()
        self.rounds += 1

    async def tick(self) -> int:
        """Create the push job of every passed rollout date not handled yet."""
        now = self.clock()
        created = 0
        for application in self.applications.all():
            catalog = await self.catalogs.get(application.tenant_id, application.name)
            for definition in catalog.definitions:
                for job in passed_date_jobs(definition, now):
                    if job.id in self._handled:
                        continue
                    if await self.push.enqueue(job):
                        created += 1
                        log.info("rollout date passed", extra={"job": job.id})
                    self._handled.add(job.id)
        return created
