"""Pushing 6/CDTP ConfigUpdated when a change alters what endpoints should get.

A change becomes a durable job (MongoDB); one replica at a time works a job (a lease),
walking the application's endpoints in batches, saving its cursor after each, so a crash
resumes where it stopped and finished jobs are never resent. Each endpoint is resolved
with the catalog as it is now: a push goes only to an endpoint that is eligible now and
whose deliverable update differs from what it was before the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from otao.domain import resolution
from otao.domain.catalog import Catalog
from otao.domain.errors import OtaoError
from otao.domain.models import Change, EndpointKey, EndpointState, Software
from otao.domain.resolution import EndpointFacts
from otao.services.applications import ApplicationDirectory
from otao.services.catalogs import CatalogCache
from otao.store.endpoints import EndpointStore, endpoint_doc_id
from otao.store.push_jobs import PushJob, PushJobStore
from otao.store.software import from_document, to_document

log = logging.getLogger(__name__)


class ConfigPublisher(Protocol):
    async def config_updated(
        self, app_version: str, endpoint_id: str, version: str, content: bytes
    ) -> None: ...

    async def flush(self) -> None: ...


class RateLimiter:
    """A token bucket: at most ``rate`` notifications per second; 0 means no limit."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._tokens = rate
        self._last = time.monotonic()

    async def take(self) -> None:
        if self._rate <= 0:
            return
        while True:
            now = time.monotonic()
            self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await asyncio.sleep((1 - self._tokens) / self._rate)


def _delivery_changed(before: Software | None, after: Software | None) -> bool:
    if after is None:
        return False
    if before is None:
        return True
    return (before.version, before.spec.specification_json) != (
        after.version,
        after.spec.specification_json,
    )


def _matters(change: Change) -> bool:
    """Whether a change can alter any endpoint's deliverable update."""
    if change.settings_before is not None or change.settings_after is not None:
        return change.settings_before != change.settings_after
    before, after = change.before, change.after
    if before is None or after is None:
        return True
    a, b = before.spec, after.spec
    return (a.upgradable_from, a.specification_json, a.rollout_strategy, a.filters) != (
        b.upgradable_from,
        b.specification_json,
        b.rollout_strategy,
        b.filters,
    )


class PushService:
    def __init__(
        self,
        jobs: PushJobStore,
        endpoints: EndpointStore,
        catalogs: CatalogCache,
        applications: ApplicationDirectory,
        publisher: ConfigPublisher,
        clock: Callable[[], datetime],
        replica_id: str,
        rate_per_second: float,
        batch_size: int,
        lease_seconds: float,
        poll_interval_seconds: float,
    ) -> None:
        self._jobs = jobs
        self._endpoints = endpoints
        self._catalogs = catalogs
        self._applications = applications
        self._publisher = publisher
        self._clock = clock
        self._owner = replica_id
        self._limiter = RateLimiter(rate_per_second)
        self._batch_size = batch_size
        self._lease = timedelta(seconds=lease_seconds)
        self._poll_interval = poll_interval_seconds
        self._wake = asyncio.Event()

    async def on_change(self, change: Change) -> None:
        if not _matters(change):
            return
        before = change.before
        changed = change.after or before
        version = changed.version if changed else None
        await self.enqueue(
            PushJob(
                id=uuid.uuid4().hex,
                tenant_id=change.tenant_id,
                application=change.application,
                version=version,
                before=to_document(before) if before else None,
                consent_required_before=(
                    change.settings_before.consent_required if change.settings_before else None
                ),
                cursor="",
                sent=0,
                created_at=self._clock(),
            )
        )

    async def enqueue(self, job: PushJob) -> bool:
        created = await self._jobs.create(job)
        self._wake.set()
        return created

    async def notify_endpoint(self, key: EndpointKey) -> bool:
        """Push one endpoint its deliverable update now (consent granted, filter joined...)."""
        catalog = await self._catalogs.get(key.tenant_id, key.application)
        state = await self._endpoints.get(key)
        if state is None:
            return False
        selected = resolution.select(catalog, EndpointFacts.of(state, None), self._clock())
        if selected is None or not await self._send(state, selected):
            return False
        await self._publisher.flush()
        await self._endpoints.mark_offered([key], selected.version, self._clock())
        return True

    async def run(self) -> None:
        """Work jobs forever: claim, process, repeat; sleep when there is nothing to do."""
        while True:
            try:
                job = await self._jobs.claim(self._owner, self._clock(), self._lease_end())
                if job is not None:
                    await self._process(job)
                    continue
            except OtaoError as error:
                log.warning("push worker postponed: %s", error.message)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)

    def _lease_end(self) -> datetime:
        return self._clock() + self._lease

    async def _process(self, job: PushJob) -> None:
        after = await self._catalogs.get(job.tenant_id, job.application)
        before = self._catalog_before(job, after)
        cursor, sent = job.cursor, job.sent
        started = time.monotonic()
        while True:
            batch = await self._endpoints.page(
                job.tenant_id, job.application, None, cursor or None, self._batch_size
            )
            if not batch:
                break
            now = self._clock()
            offers: dict[str, list[EndpointKey]] = {}
            for state in batch:
                facts = EndpointFacts.of(state, None)
                offered = resolution.select(after, facts, now)
                if offered is None:
                    continue
                if _delivery_changed(resolution.select(before, facts, now), offered):
                    await self._limiter.take()
                    if await self._send(state, offered):
                        sent += 1
                        offers.setdefault(offered.version, []).append(
                            EndpointKey(state.tenant_id, state.application, state.endpoint_id)
                        )
            await self._publisher.flush()
            for version, keys in offers.items():
                await self._endpoints.mark_offered(keys, version, now)
            cursor = endpoint_doc_id(
                EndpointKey(job.tenant_id, job.application, batch[-1].endpoint_id)
            )
            if not await self._jobs.advance(job.id, self._owner, cursor, sent, self._lease_end()):
                log.warning("push job lease lost", extra={"job": job.id})
                return
        await self._jobs.finish(job.id, self._owner, sent, self._clock())
        log.info(
            "push job done",
            extra={
                "job": job.id,
                "application": job.application,
                "sent": sent,
                "seconds": round(time.monotonic() - started, 3),
            },
        )

    def _catalog_before(self, job: PushJob, after: Catalog) -> Catalog:
        definitions = {d.version: d for d in after.definitions}
        if job.version is not None:
            definitions.pop(job.version, None)
            if job.before is not None:
                definitions[job.version] = from_document(job.before)
        settings = after.settings
        if job.consent_required_before is not None:
            settings = replace(settings, consent_required=job.consent_required_before)
        return Catalog.build(job.tenant_id, job.application, settings, definitions.values())

    async def _send(self, state: EndpointState, offered: Software) -> bool:
        app_version = state.app_version or self._default_app_version(state)
        if app_version is None:
            return False
        await self._publisher.config_updated(
            app_version,
            state.endpoint_id,
            offered.version,
            offered.spec.specification_json.encode(),
        )
        return True

    def _default_app_version(self, state: EndpointState) -> str | None:
        application = self._applications.find(state.tenant_id, state.application)
        if application is None or not application.app_versions:
            return None
        return application.app_versions[0]
