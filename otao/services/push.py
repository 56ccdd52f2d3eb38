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
import functools
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from otao.domain import resolution
from otao.domain.errors import OtaoError
from otao.domain.models import Change, EndpointKey, Software
from otao.domain.push import LeaseLost, PushJob, Walked, catalog_before, deliveries
from otao.domain.resolution import EndpointFacts
from otao.services import push_walk
from otao.services.applications import ApplicationDirectory
from otao.services.catalogs import CatalogCache
from otao.services.offer_budget import OfferBudget
from otao.services.ports import Clock
from otao.services.push_run import PushRun
from otao.services.push_sender import ConfigPublisher, PushSender
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
    _sender: PushSender = field(init=False)
    _lease: timedelta = field(init=False)
    _wake: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    # Read by the metrics (otao/observability/metrics.Sampled).
    jobs_running: int = field(init=False, default=0)
    endpoints_walked: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        # The sender and the lease are made once from these fields: set them at construction.
        self._sender = PushSender(
            self.publisher, self.applications, self.budget, self.rate_per_second
        )
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
        if selected is None or not await self._sender.send(state, selected):
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
        run = PushRun(job, catalog_before(job, after), after, job.progress, time.monotonic())
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
        self, run: PushRun, after: str, through: str | None
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

    async def _recover_offers(self, run: PushRun) -> None:
        """First pass: queue (to be recorded) the offers of the endpoints an earlier run sent
        to but whose offers it did not record; nothing is sent."""
        progress = run.progress
        async with self._walk(run, progress.offers_through, progress.sent_through) as batches:
            async for batch in batches:
                run.queue(batch.cursor, self._deliveries(run, batch.states))
                await self._renew_if_due(run)
                await self._make_room(run)

    async def _send_all(self, run: PushRun) -> None:
        """Second pass: send to every endpoint after the send cursor, saving it per batch."""
        job, keep_alive = run.job, functools.partial(self._renew_if_due, run)
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
                await self._sender.send_batch(job.tenant_id, job.application, offers, keep_alive)
                await self.publisher.flush()
                run.progress = replace(
                    run.progress,
                    sent_through=batch.cursor,
                    sent=run.progress.sent + len(offers),
                )
                await self._save(run)
                run.queue(batch.cursor, offers)  # only now: an offer is never recorded unsent
                await self._make_room(run)

    def _deliveries(self, run: PushRun, states: list[Walked]) -> list[tuple[Walked, Software]]:
        """Who gets what in this batch; an endpoint without an app version name cannot be
        sent to, so it is not offered anything either."""
        offers = deliveries(run.before, run.after, states, self.clock())
        if self._sender.default_app_version(run.job.tenant_id, run.job.application) is not None:
            return offers
        return [(state, offered) for state, offered in offers if state.app_version]

    async def _save(self, run: PushRun) -> None:
        """Save the progress, renewing the lease; LeaseLost when another replica has it."""
        async with run.database:
            await self.jobs.advance(run.job.id, self.replica_id, run.progress, self._lease_end())
            run.renewed = time.monotonic()

    async def _renew_if_due(self, run: PushRun) -> None:
        if time.monotonic() - run.renewed >= self._lease.total_seconds() / 3:
            await self._save(run)

    async def _make_room(self, run: PushRun) -> None:
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

    async def _recorded(self, run: PushRun) -> None:
        """The walk is over: record what is still pending, then save how far offers are
        recorded (everything sent)."""
        run.walked = True
        run.queued.set()
        if run.recorder is None:
            run.recorder = asyncio.create_task(self._recorder(run))
        await run.recorder
        await self._save(run)

    async def _recorder(self, run: PushRun) -> None:
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
