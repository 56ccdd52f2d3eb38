"""Pushing 6/CDTP ConfigUpdated when a change alters what endpoints should get.

A change becomes a durable job (MongoDB); one replica at a time works a job (a lease),
walking the application's endpoints in batches, saving its cursor after each, so a crash
resumes where it stopped and finished jobs are never resent. Each endpoint is resolved
with the catalog as it is now: a push goes only to an endpoint that is eligible now and
whose deliverable update differs from what it was before the change.

The walk reads the next batch while the current one is sent (EndpointStore.walk), decides
once per distinct set of endpoint facts in a batch, and records offers after the
notifications leave (see OFFERS_PENDING_MAX). The offers' own progress is saved beside them,
so a run that stops after sending but before recording resumes by recording them: neither a
notification batch nor an offer is lost, and resends stay within the batch in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from otao.domain import resolution
from otao.domain.catalog import Catalog
from otao.domain.errors import OtaoError
from otao.domain.models import Change, Consent, EndpointKey, EndpointState, Software
from otao.domain.resolution import EndpointFacts
from otao.services.applications import ApplicationDirectory
from otao.services.catalogs import CatalogCache
from otao.store.endpoints import EndpointStore, endpoint_doc_id
from otao.store.push_jobs import PushJob, PushJobStore
from otao.store.software import from_document, to_document

log = logging.getLogger(__name__)


# Offers (which endpoint was offered which version; rollout status counts them) are recorded
# after the notifications leave, in chunks of OFFER_CHUNK, with at most OFFERS_PENDING_MAX
# waiting in memory. Recording them in every batch would pace the notifications by the
# database's insert rate (on nx-27017 about 6,000 documents a second, against about 30,000
# endpoint documents read).
OFFER_CHUNK = 5_000
OFFERS_PENDING_MAX = 100_000
# Endpoints are read in pages of at least this many (the next while the current is worked).
READ_PAGE = 2_000


@dataclass
class _Run:
    """A job being worked: how far it sent, and the offers collected but not yet recorded."""

    job: PushJob
    cursor: str  # the last endpoint _id sent to (saved in the job after every batch)
    sent: int
    renewed: float  # time.monotonic() of the last lease renewal
    collected: str = ""  # the last endpoint _id whose offer is collected (or recorded)
    offers: dict[str, list[EndpointKey]] = field(default_factory=dict)
    pending: int = 0


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


# What EndpointFacts.of(state, None) depends on.
_Signature = tuple[str | None, frozenset[str] | None, frozenset[str], tuple[Consent, ...]]


def _doc_id(state: EndpointState) -> str:
    return endpoint_doc_id(EndpointKey(state.tenant_id, state.application, state.endpoint_id))


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
        if state is None or not state.seen:
            return False  # never pushed to an endpoint nobody has seen
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
            except Exception:
                # The worker must outlive any one job's surprise; the job stays pending and
                # is retried (its lease expires if this replica cannot take it up again).
                log.exception("push job failed unexpectedly; retrying later")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)

    def _lease_end(self) -> datetime:
        return self._clock() + self._lease

    async def _process(self, job: PushJob) -> None:
        after = await self._catalogs.get(job.tenant_id, job.application)
        before = self._catalog_before(job, after)
        run = _Run(job, job.cursor, job.sent, time.monotonic())
        started = time.monotonic()
        recorded = await self._endpoints.offers_recorded_through(
            job.tenant_id, job.application, job.id
        )
        run.collected = recorded
        # An earlier run sent through job.cursor: first record the offers it had not recorded.
        unrecorded = bool(job.cursor) and recorded < job.cursor
        if unrecorded and not await self._walk(run, before, after, recorded, through=job.cursor):
            return
        if not await self._walk(run, before, after, job.cursor, through=None):
            return
        if not await self._record_offers(run):
            return
        await self._jobs.finish(job.id, self._owner, run.sent, self._clock())
        await self._endpoints.forget_offer_progress(job.tenant_id, job.application, job.id)
        log.info(
            "push job done",
            extra={
                "job": job.id,
                "application": job.application,
                "sent": run.sent,
                "seconds": round(time.monotonic() - started, 3),
            },
        )

    async def _walk(
        self, run: _Run, before: Catalog, after: Catalog, start: str, through: str | None
    ) -> bool:
        """Send to the endpoints after ``start`` (saving the cursor after each batch); with
        ``through``, only collect the offers of endpoints up to it, already sent. False when
        the lease was lost."""
        job = run.job
        # Read in pages of at least READ_PAGE (fewer round trips), worked in job batches.
        size = self._batch_size
        walk = self._endpoints.walk(
            job.tenant_id, job.application, start or None, max(size, READ_PAGE)
        )
        async with contextlib.aclosing(walk) as pages:
            async for page in pages:
                for first in range(0, len(page), size):
                    done = await self._batch(
                        run, before, after, page[first : first + size], through
                    )
                    if done is None:
                        return False
                    if done:
                        return True
        return True

    async def _batch(
        self,
        run: _Run,
        before: Catalog,
        after: Catalog,
        batch: list[EndpointState],
        through: str | None,
    ) -> bool | None:
        """One batch of ``_walk``: True when ``through`` is reached, None when the lease was
        lost, else False."""
        sending = through is None
        now = self._clock()
        # Endpoints with the same facts get the same decision: decided once per batch, keyed
        # by the state fields EndpointFacts.of reads.
        decided: dict[_Signature, Software | None] = {}
        last = ""
        for state in batch:
            if through is not None:
                last = _doc_id(state)
                if last > through:
                    break
            signature = (
                state.current_version,
                state.filters,
                state.failed_versions,
                state.consents,
            )
            if signature in decided:
                offered = decided[signature]
            else:
                facts = EndpointFacts.of(state, None)
                offered = resolution.select(after, facts, now)
                if offered is not None and not _delivery_changed(
                    resolution.select(before, facts, now), offered
                ):
                    offered = None
                decided[signature] = offered
            if offered is None:
                continue
            if sending:
                await self._limiter.take()
                if not await self._send(state, offered):
                    continue
                run.sent += 1
            elif self._app_version(state) is None:
                continue  # _send skipped it: nothing was offered
            run.offers.setdefault(offered.version, []).append(
                EndpointKey(state.tenant_id, state.application, state.endpoint_id)
            )
            run.pending += 1
        if through is None:
            last = _doc_id(batch[-1])
        if sending:
            await self._publisher.flush()
            run.cursor = last
            if not await self._save(run):
                return None
        elif not await self._renew_if_due(run):
            return None
        run.collected = last if through is None else min(last, through)
        if run.pending >= OFFERS_PENDING_MAX and not await self._record_offers(run):
            return None
        return through is not None and last >= through

    async def _save(self, run: _Run) -> bool:
        """Save the cursor and count, renewing the lease; False when the lease was lost."""
        saved = await self._jobs.advance(
            run.job.id, self._owner, run.cursor, run.sent, self._lease_end()
        )
        run.renewed = time.monotonic()
        if not saved:
            log.warning("push job lease lost", extra={"job": run.job.id})
        return saved

    async def _renew_if_due(self, run: _Run) -> bool:
        if time.monotonic() - run.renewed < self._lease.total_seconds() / 3:
            return True
        return await self._save(run)

    async def _record_offers(self, run: _Run) -> bool:
        """Record the offers collected so far (in chunks, renewing the lease between them),
        then how far they are recorded."""
        job = run.job
        for version, keys in run.offers.items():
            for start in range(0, len(keys), OFFER_CHUNK):
                chunk = keys[start : start + OFFER_CHUNK]
                await self._endpoints.mark_offered(chunk, version, self._clock())
                if not await self._renew_if_due(run):
                    return False
        run.offers.clear()
        run.pending = 0
        if run.collected:
            await self._endpoints.record_offer_progress(
                job.tenant_id, job.application, job.id, run.collected
            )
        return True

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

    def _app_version(self, state: EndpointState) -> str | None:
        return state.app_version or self._default_app_version(state)

    async def _send(self, state: EndpointState, offered: Software) -> bool:
        app_version = self._app_version(state)
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
