"""Rollout dates: when a targeted filter's date passes, its endpoints get their push, once.

Every replica looks; the push job for a passed date has a deterministic id, so exactly one
job exists however many replicas (or restarts) create it, and the job's lease makes
exactly one replica work it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from otao.domain.errors import OtaoError
from otao.domain.models import RolloutStrategy, Software
from otao.services.applications import ApplicationDirectory
from otao.services.catalogs import CatalogCache
from otao.services.push import PushService
from otao.store.push_jobs import PushJob
from otao.store.software import to_document

log = logging.getLogger(__name__)

# Before its date, a filter behaves as if its date were this far away.
_NOT_YET = timedelta(days=365 * 100)


class RolloutDateScheduler:
    def __init__(
        self,
        applications: ApplicationDirectory,
        catalogs: CatalogCache,
        push: PushService,
        clock: Callable[[], datetime],
        interval: float = 1.0,
    ) -> None:
        self._applications = applications
        self._catalogs = catalogs
        self._push = push
        self._clock = clock
        self._interval = interval
        self._handled: set[str] = set()
        # Completed rounds of ``run``: a round looked at every date (tests wait on it).
        self.rounds = 0

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
                self.rounds += 1
            except OtaoError as error:
                log.warning("rollout date check postponed: %s", error.message)
            await asyncio.sleep(self._interval)

    async def tick(self) -> int:
        """Create the push job of every passed rollout date not handled yet."""
        now = self._clock()
        created = 0
        for application in self._applications.all():
            catalog = await self._catalogs.get(application.tenant_id, application.name)
            for definition in catalog.definitions:
                if definition.rollout_strategy is not RolloutStrategy.TARGETED:
                    continue
                for index, rollout_filter in enumerate(definition.spec.filters):
                    date = rollout_filter.rollout_date
                    # A date already passed when the definition was written was covered by
                    # that write's own push.
                    if date is None or date > now or date <= definition.updated_at:
                        continue
                    job_id = (
                        f"date:{definition.tenant_id}/{definition.application}/"
                        f"{definition.version}/{rollout_filter.filter_id}/{date.isoformat()}"
                    )
                    if job_id in self._handled:
                        continue
                    if await self._push.enqueue(self._job(job_id, definition, index, now)):
                        created += 1
                        log.info("rollout date passed", extra={"job": job_id})
                    self._handled.add(job_id)
        return created

    def _job(self, job_id: str, definition: Software, index: int, now: datetime) -> PushJob:
        filters = list(definition.spec.filters)
        pending = filters[index]
        filters[index] = replace(pending, rollout_date=(pending.rollout_date or now) + _NOT_YET)
        before = replace(definition, spec=replace(definition.spec, filters=tuple(filters)))
        return PushJob(
            id=job_id,
            tenant_id=definition.tenant_id,
            application=definition.application,
            version=definition.version,
            before=to_document(before),
            consent_required_before=None,
            cursor="",
            sent=0,
            created_at=now,
        )
