"""otao.services.push driven directly against a real database (nx-27017, or the MongoDB named
by OTAO_TEST_MONGODB_URI), with a publisher that records what it is asked to send: who gets a
push, a run that loses its lease, a run resumed from its saved progress, the offers an
interrupted run sent but did not record, and a create's push intent recovered by the worker.

Each job is worked by ``PushService.work_one`` (what the worker loop calls), so nothing waits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import pytest

from otao.domain.applications import ApplicationConfig
from otao.domain.models import (
    AppliedReport,
    Change,
    EndpointKey,
    RolloutStrategy,
    Software,
    SoftwareSpec,
)
from otao.domain.push import PushJob
from otao.services.applications import ApplicationDirectory
from otao.services.catalogs import CatalogCache
from otao.services.push import PushService
from otao.store.endpoints import EndpointStore
from otao.store.mongo import PUSH_JOBS, Mongo
from otao.store.offers import OfferStore
from otao.store.push_jobs import PushJobStore
from otao.store.software import SoftwareStore
from tests.support.database import fresh_database
from tests.support.stack import MongoServer
from tests.support.values import APP, T0, TENANT

pytestmark = pytest.mark.timeout(30)

APP_VERSION = "kettle-v1"
BATCH = 2
LEASE = timedelta(seconds=30)
ELIGIBLE = [f"a-{i:02d}" for i in range(7)]  # on 1.0.0: get 1.1.0 once it is released
OTHERS = [f"b-{i:02d}" for i in range(3)]  # on 0.9.0: nothing for them


@dataclass
class Recording:
    """A ConfigPublisher that records; ``on_send`` runs before each notification is taken."""

    sent: list[tuple[str, str, str]] = field(default_factory=list)
    flushes: int = 0
    on_send: Callable[[int], Awaitable[None]] | None = None
    on_flush: Callable[[int], Awaitable[None]] | None = None

    async def config_updated(
        self, app_version: str, endpoint_id: str, version: str, content: bytes
    ) -> None:
        if self.on_send is not None:
            await self.on_send(len(self.sent))
        self.sent.append((app_version, endpoint_id, version))

    async def config_updated_many(
        self, version: str, content: bytes, targets: Sequence[tuple[str, str]]
    ) -> None:
        for app_version, endpoint_id in targets:
            await self.config_updated(app_version, endpoint_id, version, content)

    async def flush(self) -> None:
        self.flushes += 1
        if self.on_flush is not None:
            await self.on_flush(self.flushes)

    def endpoints(self) -> list[str]:
        return [endpoint for _, endpoint, _ in self.sent]


class Crash(Exception):
    """The process dies mid-job (what SIGKILL is to the real worker)."""


@dataclass
class World:
    mongo: Mongo
    software: SoftwareStore
    jobs: PushJobStore
    endpoints: EndpointStore
    offers: OfferStore

    def replica(
        self,
        name: str,
        publisher: Recording,
        at: datetime = T0,
        offers_record_from: int = 100_000,
        offers_pending_max: int = 1_000_000,
    ) -> PushService:
        """``offers_record_from``/``offers_pending_max``: when its recorder starts writing
        offers beside the walk, and when the walk waits for it (defaults: never, here)."""
        directory = ApplicationDirectory([ApplicationConfig(APP, TENANT, (APP_VERSION,), False)])

        async def announce(tenant_id: str, application: str) -> None:
            return None

        return PushService(
            self.jobs,
            self.endpoints,
            self.offers,
            CatalogCache(self.software, directory, announce),
            directory,
            publisher,
            lambda: at,
            name,
            rate_per_second=0,
            batch_size=BATCH,
            lease_seconds=LEASE.total_seconds(),
            poll_interval_seconds=0.1,
            offers_record_from=offers_record_from,
            offers_pending_max=offers_pending_max,
        )

    async def job_document(self) -> dict[str, object]:
        docs = [doc async for doc in self.mongo.collection(PUSH_JOBS).find({})]
        assert len(docs) == 1, docs
        return docs[0]


@pytest.fixture
async def world(mongo_server: MongoServer) -> AsyncIterator[World]:
    async with fresh_database(mongo_server, "push") as mongo:
        world = World(
            mongo,
            SoftwareStore(mongo),
            PushJobStore(mongo),
            EndpointStore(mongo),
            OfferStore(mongo),
        )
        for endpoint in ELIGIBLE:
            await world.endpoints.apply_report(key(endpoint), APP_VERSION, applied("1.0.0"))
        for endpoint in OTHERS:
            await world.endpoints.apply_report(key(endpoint), APP_VERSION, applied("0.9.0"))
        yield world


def key(endpoint: str) -> EndpointKey:
    return EndpointKey(TENANT, APP, endpoint)


def applied(version: str) -> AppliedReport:
    return AppliedReport(version, 200, None, T0)


def definition(strategy: RolloutStrategy, etag: str) -> Software:
    spec = SoftwareSpec("1.1.0", ("1.0.0",), '{"url":"fw-1.1.0"}', "{}", strategy)
    return Software(TENANT, APP, spec, T0, T0, etag)


async def release(world: World, push: PushService) -> None:
    """1.1.0 goes from suspended to general: the change the tests push."""
    suspended = definition(RolloutStrategy.SUSPENDED, "e1")
    general = definition(RolloutStrategy.GENERAL, "e2")
    await world.software.insert(general)
    await push.on_change(Change(TENANT, APP, suspended, general))


async def test_a_change_pushes_the_endpoints_it_gives_a_new_update_and_records_offers(
    world: World,
) -> None:
    publisher = Recording()
    push = world.replica("r1", publisher)
    await release(world, push)

    assert await push.work_one() is True
    assert await push.work_one() is False  # nothing left

    assert publisher.sent == [(APP_VERSION, e, "1.1.0") for e in ELIGIBLE]
    assert await world.offers.offered_count(TENANT, APP, "1.1.0") == len(ELIGIBLE)
    job = await world.job_document()
    assert (job["state"], job["sent"]) == ("done", len(ELIGIBLE))
    # Both cursors live in the job: everything sent, every offer recorded.
    assert job["cursor"] == job["offersThrough"] != ""


async def test_a_change_that_alters_no_deliverable_update_makes_no_job(world: World) -> None:
    push = world.replica("r1", Recording())
    same = definition(RolloutStrategy.GENERAL, "e1")

    await push.on_change(Change(TENANT, APP, same, replace(same, etag="e2")))

    assert await push.work_one() is False


async def test_a_run_that_loses_its_lease_stops_and_the_holder_finishes_the_job(
    world: World,
) -> None:
    late = T0 + LEASE + timedelta(seconds=1)
    first, second = Recording(), Recording()

    async def taken_over(flushes: int) -> None:
        # While r1 works its first batch, its lease is seen as expired by r2, which takes it.
        if flushes == 1:
            assert await world.jobs.claim("r2", late, late + LEASE) is not None

    first.on_flush = taken_over
    r1, r2 = world.replica("r1", first), world.replica("r2", second, at=late)
    await release(world, r1)

    assert await r1.work_one() is True  # stopped at the lost lease, without raising
    assert await r2.work_one() is True

    assert first.endpoints() == ELIGIBLE[:BATCH]  # nothing after the lease was lost
    assert second.endpoints() == ELIGIBLE  # r1 saved no progress: the batch in flight again
    job = await world.job_document()
    assert (job["state"], job["sent"], job["leaseOwner"]) == ("done", len(ELIGIBLE), "r2")
    assert await world.offers.offered_count(TENANT, APP, "1.1.0") == len(ELIGIBLE)


async def test_a_resumed_run_sends_after_the_cursor_and_first_records_the_offers_before_it(
    world: World,
) -> None:
    crashed, resumed = Recording(), Recording()
    sent_before_crash = 2 * BATCH

    async def crash(already_sent: int) -> None:
        if already_sent == sent_before_crash:
            raise Crash

    crashed.on_send = crash
    r1 = world.replica("r1", crashed)
    r2 = world.replica("r2", resumed, at=T0 + LEASE + timedelta(seconds=1))
    await release(world, r1)

    with pytest.raises(Crash):
        await r1.work_one()
    job = await world.job_document()
    # Two batches sent and saved; their offers were still in memory: none recorded.
    assert (job["state"], job["sent"], job["offersThrough"]) == ("pending", 4, "")
    assert await world.offers.offered_count(TENANT, APP, "1.1.0") == 0

    assert await r2.work_one() is True

    assert crashed.endpoints() == ELIGIBLE[:sent_before_crash]
    assert resumed.endpoints() == ELIGIBLE[sent_before_crash:]  # no resend
    assert await world.offers.offered_count(TENANT, APP, "1.1.0") == len(ELIGIBLE)
    job = await world.job_document()
    assert (job["state"], job["sent"]) == ("done", len(ELIGIBLE))


async def test_offers_are_recorded_beside_the_walk_never_before_their_notification(
    world: World,
) -> None:
    publisher = Recording()
    recorded_when_sent: list[int] = []

    async def count_recorded(already_sent: int) -> None:
        recorded = await world.offers.offered_count(TENANT, APP, "1.1.0")
        assert recorded <= already_sent  # an offer is recorded only once its push has left
        recorded_when_sent.append(recorded)

    publisher.on_send = count_recorded
    # The recorder starts at 2 pending offers; the walk waits while 4 are.
    push = world.replica("r1", publisher, offers_record_from=2, offers_pending_max=4)
    await release(world, push)

    assert await push.work_one() is True

    assert publisher.endpoints() == ELIGIBLE  # each sent once, in walk order
    # The walk waited at 4 pending: by the fifth send the first batch's offers were written.
    assert recorded_when_sent[2 * BATCH] >= BATCH
    assert await world.offers.offered_count(TENANT, APP, "1.1.0") == len(ELIGIBLE)
    job = await world.job_document()
    assert (job["state"], job["sent"]) == ("done", len(ELIGIBLE))
    assert job["cursor"] == job["offersThrough"] != ""


async def test_a_run_resumed_after_its_recorder_fell_behind_records_the_rest_and_resends_none(
    world: World,
) -> None:
    crashed, resumed = Recording(), Recording()
    sent_before_crash = 3 * BATCH

    async def crash(already_sent: int) -> None:
        if already_sent == sent_before_crash:
            raise Crash

    crashed.on_send = crash
    r1 = world.replica("r1", crashed, offers_record_from=2, offers_pending_max=4)
    r2 = world.replica("r2", resumed, at=T0 + LEASE + timedelta(seconds=1))
    await release(world, r1)

    with pytest.raises(Crash):
        await r1.work_one()
    job = await world.job_document()
    assert (job["state"], job["sent"]) == ("pending", sent_before_crash)
    # Recorded (and saved) up to a batch's end while sending, never past what was sent.
    assert "" < str(job["offersThrough"]) < str(job["cursor"])
    assert await world.offers.offered_count(TENANT, APP, "1.1.0") >= BATCH

    assert await r2.work_one() is True

    assert resumed.endpoints() == ELIGIBLE[sent_before_crash:]  # no resend
    assert await world.offers.offered_count(TENANT, APP, "1.1.0") == len(ELIGIBLE)
    job = await world.job_document()
    assert (job["state"], job["sent"]) == ("done", len(ELIGIBLE))


async def test_a_create_whose_push_was_never_made_is_pushed_by_the_worker(
    world: World,
) -> None:
    publisher = Recording()
    push = world.replica("r1", publisher, at=T0 + LEASE + timedelta(seconds=1))
    created = definition(RolloutStrategy.GENERAL, "e1")
    change = Change(TENANT, APP, None, created)
    # A create (on a replica, a lease ago) wrote its intent and the definition, then failed
    # before making its push.
    await world.replica("r0", Recording()).prepare(change)
    await world.software.insert(created)
    intent = PushJob.for_change(change, T0)
    assert intent is not None

    assert await push.work_one() is True

    assert publisher.endpoints() == ELIGIBLE
    job = await world.job_document()
    assert (job["_id"], job["state"]) == (intent.id, "done")
