"""Pushing 6/CDTP ConfigUpdated when a change alters what endpoints should get.

A change becomes a durable job (``PushJob``, stored by PushJobStore); one replica at a time
works a job (a lease), walking the application's endpoints in batches and saving its progress
in the job after each, so a crash resumes where it stopped and finished jobs are never
resent. Who gets a push is ``otao.domain.push.deliveries``: eligible now, and the deliverable
update differs from what it was before the change.

Offers are recorded after the notifications leave, by a recorder beside the sender (see
OFFERS_RECORD_FROM), so the job saves two cursors: how far it sent, and how far its offers are
recorded. A run therefore has two passes: first record the offers an earlier run sent but did
not record (up to its send cursor, nothing sent again), then send after that cursor. Neither a
notification batch nor an offer is lost, and resends stay within the batch in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from otao.domain import resolution
from otao.domain.catalog import Catalog
from otao.domain.errors import OtaoError
from otao.domain.models import Change, EndpointKey, EndpointState, Software
from otao.domain.push import (
    LeaseLost,
    PushJob,
    PushProgress,
    Walked,
    catalog_before,
    deliveries,
)
from otao.domain.resolution import EndpointFacts
from otao.services import push_walk
from otao.services.applications import ApplicationDirectory
from otao.services.catalogs import CatalogCache
from otao.services.offer_budget import OfferBudget, capped
from otao.services.ports import Clock
from otao.services.push_walk import RateLimiter
from otao.store.endpoints import EndpointBatch, EndpointStore
from otao.store.offers import OfferStore
from otao.store.push_jobs import PushJobStore

log = logging.getLogger(__name__)


# Offers (which endpoint was offered which version; rollout status counts them) are recorded
# after their notifications leave, never before, by a recorder task beside the sender. Up to
# OFFERS_RECORD_FROM they wait in memory for the walk's end: recording them meanwhile would
# pace the notifications by the database's insert rate (nx-27017, which answers one request
# at a time, writes 5,000-15,000 offers a second against 15,000-30,000 endpoints read; a
# MongoDB does both at once, and a lower value costs it nothing). Past it the recorder works
# while the walk goes on, one write in flight; the walk waits only when OFFERS_PENDING_MAX
# are pending, which bounds the memory: an offer is kept as its endpoint id joined with the
# batch's others, the id's length plus about one byte (12 MB a million for the bench's ids).
OFFERS_RECORD_FROM = 1_000_000
OFFERS_PENDING_MAX = 2_000_000
OFFER_CHUNK = 5_000  # offers per write at most


@dataclass(slots=True)
class _Sent:
    """The offers of one walked batch, sent but not yet recorded: endpoint ids joined by
    newlines, per version offered, and the cursor the batch ends at."""

    cursor: str
    offers: dict[str, str]
    count: int


@dataclass
class _Run:
    """A job being worked: its catalogs, its progress, and the offers sent but not yet
    recorded (a queue of batches in walk order, drained by the recorder task)."""

    job: PushJob
    before: Catalog
    after: Catalog
    progress: PushProgress
    renewed: float  # time.monotonic() of the last lease renewal
    unrecorded: deque[_Sent] = field(default_factory=deque)
    pending: int = 0
    walked: bool = False  # nothing more will be queued
    abandoned: bool = False  # the run failed: record nothing more
    recorder: asyncio.Task[None] | None = None
    queued: asyncio.Event = field(default_factory=asyncio.Event)
    room: asyncio.Event = field(default_factory=asyncio.Event)
    # One database request of the job at a time: its reads, its progress writes (each of the
    # progress as it is when written) and its offer writes. nx-27017 answers requests in
    # threads of one Python process: two at once slow each other down (the GIL), so that the
    # walk's read and the batch's progress write overlapping took 30-45 ms each where one
    # alone takes 25 and 3 (measured). The read still overlaps the sending.
    database: asyncio.Lock = field(default_factory=asyncio.Lock)

    def queue(self, cursor: str, offered: list[tuple[Walked, Software]]) -> None:
        ids: dict[str, list[str]] = {}
        for state, software in offered:
            ids.setdefault(software.version, []).append(state.endpoint_id)
        joined = {version: "\n".join(endpoints) for version, endpoints in ids.items()}
        self.unrecorded.append(_Sent(cursor, joined, len(offered)))
        self.pending += len(offered)
        self.queued.set()


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
class PushService:
    jobs: PushJobStore
    endpoints: EndpointStore
    offers: OfferStore
    catalogs: CatalogCache
    applications: ApplicationDirectory
    publisher: ConfigPublisher
    clock: Clock
    replica_id: str  # the owner of the jobs this replica leases
    rate_per_second: float
    batch_size: int
    lease_seconds: float
    poll_interval_seconds: float
    budget: OfferBudget | None = None
    offers_record_from: int = OFFERS_RECORD_FROM
    offers_pending_max: int = OFFERS_PENDING_MAX
    _limiter: RateLimiter = field(init=False)
    _lease: timedelta = field(init=False)
    _wake: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    # Read by the metrics (otao/observability/metrics.Sampled).
    jobs_running: int = field(init=False, default=0)
    endpoints_walked: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._limiter = RateLimiter(self.rate_per_second)
        self._lease = timedelta(seconds=self.lease_seconds)

    async def prepare(self, change: Change) -> None:
        """Record, before the write, that the change will need its push (an outbox entry:
        if the push is not made after the write, the worker makes it; see PushJobStore)."""
        job = PushJob.for_change(change, self.clock())
        if job is not None:
            await self.jobs.prepare(job)

    async def on_change(self, change: Change) -> None:
        job = PushJob.for_change(change, self.clock())
        if job is not None:
            await self.enqueue(job)

    async def enqueue(self, job: PushJob) -> bool:
        created = await self.jobs.create(job)
        self._wake.set()
        return created

    async def notify_endpoint(self, key: EndpointKey) -> bool:
        """Push one endpoint its deliverable update now (consent granted, filter joined...)."""
        catalog = await self.catalogs.get(key.tenant_id, key.application)
        state = await self.endpoints.get(key)
        if state is None or not state.seen:
            return False  # never pushed to an endpoint nobody has seen
        selected = resolution.select(catalog, EndpointFacts.of(state, None), self.clock())
        if selected is None or not await self._send(state, selected):
            return False
        await self.publisher.flush()
        await self.offers.mark_offered([key], selected.version, self.clock())
        return True

    async def run(self) -> None:
        """Work jobs forever: claim, process, repeat; sleep when there is nothing to do."""
        while True:
            try:
                if await self.work_one():
                    continue
            except OtaoError as error:
                log.warning("push worker postponed: %s", error.message)
            except Exception:
                # The worker must outlive any one job's surprise; the job stays pending and
                # is retried (its lease expires if this replica cannot take it up again).
                log.exception("push job failed unexpectedly; retrying later")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_seconds)

    async def work_one(self) -> bool:
        """Settle old push intents, then claim and work one job; False when there was none."""
        # An intent older than a lease is older than any definition write still in flight.
        for recovered in await self.jobs.promote_prepared(self.clock() - self._lease):
            # The write it guards may not have told the replicas either: their catalogs too.
            await self.catalogs.changed(recovered.tenant_id, recovered.application)
            log.info("push intent recovered", extra={"job": recovered.id})
        job = await self.jobs.claim(self.replica_id, self.clock(), self._lease_end())
        if job is None:
            return False
        self.jobs_running += 1
        try:
            await self._process(job)
        except LeaseLost:
            log.warning("push job lease lost", extra={"job": job.id})
        finally:
            self.jobs_running -= 1
        return True

    def _lease_end(self) -> datetime:
        return self.clock() + self._lease

    async def _process(self, job: PushJob) -> None:
        after = await self.catalogs.get(job.tenant_id, job.application)
        run = _Run(job, catalog_before(job, after), after, job.progress, time.monotonic())
        started = time.monotonic()
        try:
            if job.progress.sent_through:
                await self._recover_offers(run)
            await self._send_all(run)
            await self._recorded(run)
        finally:
            if run.recorder is not None and not run.recorder.done():
                # A flag as well as the cancel: the driver may absorb a cancellation that
                # lands inside one of its operations (seen with pymongo's inserts).
                run.abandoned = True
                run.queued.set()
                run.recorder.cancel()
                with contextlib.suppress(asyncio.CancelledError, LeaseLost, OtaoError):
                    await run.recorder
        await self.jobs.finish(job.id, self.replica_id, run.progress.sent, self.clock())
        log.info(
            "push job done",
            extra={
                "job": job.id,
                "application": job.application,
                "sent": run.progress.sent,
                "seconds": round(time.monotonic() - started, 3),
            },
        )

    def _walk(
        self, run: _Run, after: str, through: str | None
    ) -> contextlib.aclosing[AsyncGenerator[EndpointBatch, None]]:
        job = run.job
        batches = push_walk.walk(
            self.endpoints,
            job.tenant_id,
            job.application,
            after,
            through,
            self.batch_size,
            run.database,
        )
        return contextlib.aclosing(batches)

    async def _recover_offers(self, run: _Run) -> None:
        """First pass: queue (to be recorded) the offers of the endpoints an earlier run sent
        to but whose offers it did not record; nothing is sent."""
        progress = run.progress
        async with self._walk(run, progress.offers_through, progress.sent_through) as batches:
            async for batch in batches:
                run.queue(batch.cursor, self._deliveries(run, batch.states))
                await self._renew_if_due(run)
                await self._make_room(run)

    async def _send_all(self, run: _Run) -> None:
        """Second pass: send to every endpoint after the send cursor, saving it per batch."""
        async with self._walk(run, run.progress.sent_through, None) as batches:
            async for batch in batches:
                self.endpoints_walked += len(batch.states)
                offers = self._deliveries(run, batch.states)
                # Publishing does not suspend: without this turn of the event loop, the walk's
                # reader would not even ask for the next page until the batch is flushed.
                # Only one: each turn also lets nats-py write what is pending, and a socket
                # write per 100 notifications instead of one per batch cost a third of the
                # process' time (py-spy).
                await asyncio.sleep(0)
                if self._limiter.limited or self._paced(offers):
                    await self._send_each(run, offers)
                else:
                    await self._send_grouped(run, offers)
                await self.publisher.flush()
                run.progress = replace(
                    run.progress,
                    sent_through=batch.cursor,
                    sent=run.progress.sent + len(offers),
                )
                await self._save(run)
                run.queue(batch.cursor, offers)  # only now: an offer is never recorded unsent
                await self._make_room(run)

    def _paced(self, offers: list[tuple[Walked, Software]]) -> bool:
        """Whether a rollout plan's maxOffersPerMinute paces any of these (its pushes too)."""
        budget = self.budget
        return budget is not None and any(capped(offered) for _, offered in offers)

    async def _send_grouped(self, run: _Run, offers: list[tuple[Walked, Software]]) -> None:
        """An unpaced batch: per version offered, its endpoints in one call, the publisher
        encoding once what their messages share (the content, the version...)."""
        groups: dict[str, tuple[Software, list[tuple[str, str]]]] = {}
        default = self._default_app_version(run.job.tenant_id, run.job.application)
        for state, offered in offers:
            group = groups.get(offered.version)
            if group is None:
                group = groups[offered.version] = (offered, [])
            app_version = state.app_version or default
            assert app_version is not None  # _deliveries leaves out those without
            group[1].append((app_version, state.endpoint_id))
        for offered, targets in groups.values():
            content = offered.spec.specification_json.encode()
            await self.publisher.config_updated_many(offered.version, content, targets)

    async def _send_each(self, run: _Run, offers: list[tuple[Walked, Software]]) -> None:
        """A batch paced by the rate limit or a rollout plan's budget: one at a time."""
        # Per endpoint only what differs: the content is the same for every endpoint offered
        # a version.
        contents: dict[str, bytes] = {}
        default = self._default_app_version(run.job.tenant_id, run.job.application)
        publish, limited = self.publisher.config_updated, self._limiter.limited
        for state, offered in offers:
            if limited:
                await self._limiter.take()
            if self.budget is not None and capped(offered):
                key = EndpointKey(run.job.tenant_id, run.job.application, state.endpoint_id)
                await self.budget.wait(key, offered, lambda: self._renew_if_due(run))
            content = contents.get(offered.version)
            if content is None:
                content = offered.spec.specification_json.encode()
                contents[offered.version] = content
            app_version = state.app_version or default
            assert app_version is not None  # _deliveries leaves out those without
            await publish(app_version, state.endpoint_id, offered.version, content)

    def _deliveries(self, run: _Run, states: list[Walked]) -> list[tuple[Walked, Software]]:
        """Who gets what in this batch; an endpoint without an app version name cannot be
        sent to, so it is not offered anything either."""
        offers = deliveries(run.before, run.after, states, self.clock())
        if self._default_app_version(run.job.tenant_id, run.job.application) is not None:
            return offers
        return [(state, offered) for state, offered in offers if state.app_version]

    async def _save(self, run: _Run) -> None:
        """Save the progress, renewing the lease; LeaseLost when another replica has it."""
        async with run.database:
            await self.jobs.advance(run.job.id, self.replica_id, run.progress, self._lease_end())
            run.renewed = time.monotonic()

    async def _renew_if_due(self, run: _Run) -> None:
        if time.monotonic() - run.renewed >= self._lease.total_seconds() / 3:
            await self._save(run)

    async def _make_room(self, run: _Run) -> None:
        """Start the recorder once OFFERS_RECORD_FROM offers are pending; wait while
        OFFERS_PENDING_MAX are (the recorder renews the lease meanwhile)."""
        if run.pending >= self.offers_record_from and run.recorder is None:
            run.recorder = asyncio.create_task(self._recorder(run))
        while run.pending >= self.offers_pending_max:
            assert run.recorder is not None
            if run.recorder.done():
                run.recorder.result()  # its failure (LeaseLost, Unavailable) is the job's
                return
            run.room.clear()
            await run.room.wait()
        if run.recorder is not None and run.recorder.done():
            run.recorder.result()

    async def _recorded(self, run: _Run) -> None:
        """The walk is over: record what is still pending, then save how far offers are
        recorded (everything sent)."""
        run.walked = True
        run.queued.set()
        if run.recorder is None:
            run.recorder = asyncio.create_task(self._recorder(run))
        await run.recorder
        await self._save(run)

    async def _recorder(self, run: _Run) -> None:
        """Record the queued offers in walk order, one write in flight, moving the recorded
        cursor past each batch once its offers are all written (saved with the next progress
        write: the sender's, a lease renewal, or the end's)."""
        job = run.job
        try:
            while not run.abandoned and (run.unrecorded or not run.walked):
                if not run.unrecorded:
                    run.queued.clear()
                    await run.queued.wait()
                    continue
                done = run.unrecorded[0]
                for version, joined in done.offers.items():
                    keys = [
                        EndpointKey(job.tenant_id, job.application, endpoint)
                        for endpoint in joined.split("\n")
                    ]
                    for start in range(0, len(keys), OFFER_CHUNK):
                        chunk = keys[start : start + OFFER_CHUNK]
                        async with run.database:
                            await self.offers.mark_offered(chunk, version, self.clock())
                        await self._renew_if_due(run)
                run.unrecorded.popleft()
                run.pending -= done.count
                run.progress = replace(run.progress, offers_through=done.cursor)
                run.room.set()
        finally:
            run.room.set()  # a sender waiting for room learns of the end (or the failure)

    def _app_version(self, state: EndpointState) -> str | None:
        return state.app_version or self._default_app_version(state.tenant_id, state.application)

    async def _send(self, state: EndpointState, offered: Software) -> bool:
        app_version = self._app_version(state)
        if app_version is None:
            return False
        await self.publisher.config_updated(
            app_version,
            state.endpoint_id,
            offered.version,
            offered.spec.specification_json.encode(),
        )
        return True

    def _default_app_version(self, tenant_id: str, application_name: str) -> str | None:
        application = self.applications.find(tenant_id, application_name)
        if application is None or not application.app_versions:
            return None
        return application.app_versions[0]
