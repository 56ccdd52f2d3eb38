"""otao.store.push_jobs against a real MongoDB-compatible server: jobs as domain values, their
leases and progress, and the push intent a create writes before its definition.

Each test has a database of its own (tests/store/conftest.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from otao.domain.models import (
    ApplicationSettings,
    Change,
    RolloutStrategy,
    Software,
    SoftwareSpec,
)
from otao.domain.push import LeaseLost, PushJob, PushProgress
from otao.store.mongo import PUSH_JOBS, Mongo
from otao.store.push_jobs import PushJobStore
from otao.store.software import SoftwareStore
from tests.support.values import APP, T0, TENANT

pytestmark = pytest.mark.timeout(30)

LATER = T0 + timedelta(minutes=1)


@pytest.fixture
def jobs(mongo: Mongo) -> PushJobStore:
    return PushJobStore(mongo)


def definition(version: str = "1.1.0", etag: str = "e1", created: datetime = T0) -> Software:
    spec = SoftwareSpec(version, ("1.0.0",), '{"url":"u"}', "{}", RolloutStrategy.GENERAL)
    return Software(TENANT, APP, spec, created, created, etag)


def create_job(software: Software | None = None, at: datetime = T0) -> PushJob:
    job = PushJob.for_change(Change(TENANT, APP, None, software or definition()), at)
    assert job is not None
    return job


async def state_of(mongo: Mongo, job: PushJob) -> str | None:
    doc = await mongo.collection(PUSH_JOBS).find_one({"_id": job.id})
    return None if doc is None else str(doc["state"])


async def test_a_job_comes_back_from_a_claim_as_the_value_it_was(jobs: PushJobStore) -> None:
    after = definition(etag="e1")
    before = replace(after, spec=replace(after.spec, rollout_strategy=RolloutStrategy.SUSPENDED))
    change = Change(TENANT, APP, before, after)
    job = PushJob.for_change(change, T0)
    settings = PushJob.for_consent_lifted(TENANT, APP, "corr-1", T0 + timedelta(seconds=1))
    assert job is not None

    assert await jobs.create(job) is True
    assert await jobs.create(settings) is True
    assert await jobs.create(job) is False  # made elsewhere already

    assert await jobs.claim("r1", T0, LATER) == job
    claimed = await jobs.claim("r2", T0, LATER)  # the first is r1's now
    assert claimed == settings
    assert claimed is not None and claimed.settings_before == ApplicationSettings(
        consent_required=True
    )


async def test_progress_is_saved_in_the_job_and_a_lost_lease_raises(
    jobs: PushJobStore,
) -> None:
    job = create_job()
    await jobs.create(job)
    await jobs.claim("r1", T0, T0 + timedelta(seconds=2))
    progress = PushProgress(sent_through="c-4", offers_through="c-2", sent=3)

    await jobs.advance(job.id, "r1", progress, T0 + timedelta(seconds=2))
    # r1's lease expired: r2 takes the job over, from where r1 got.
    taken = await jobs.claim("r2", T0 + timedelta(seconds=3), LATER)

    assert taken is not None and taken.progress == progress
    with pytest.raises(LeaseLost):
        await jobs.advance(job.id, "r1", PushProgress("c-9", "c-9", 9), LATER)
    with pytest.raises(LeaseLost):
        await jobs.finish(job.id, "r1", 9, LATER)
    await jobs.finish(job.id, "r2", 3, LATER)
    assert await jobs.pending_count() == 0


async def test_a_prepared_intent_is_not_worked_until_its_push_is_made(
    mongo: Mongo, jobs: PushJobStore
) -> None:
    job = create_job()
    await jobs.prepare(job)

    assert await jobs.claim("r1", T0, LATER) is None
    assert await jobs.create(job) is True  # the create's own push, after the definition
    assert await state_of(mongo, job) == "pending"
    assert await jobs.claim("r1", T0, LATER) == job


async def test_old_intents_become_jobs_when_their_definition_was_written_else_go(
    mongo: Mongo, jobs: PushJobStore
) -> None:
    software = SoftwareStore(mongo)
    written, never_written = definition("1.1.0", "e1"), definition("1.2.0", "e2")
    # Same version as one that exists, but that create failed (a different creation time).
    duplicate = definition("1.1.0", "e3", created=T0 + timedelta(seconds=1))
    recent = definition("1.3.0", "e4", created=LATER)
    for version in (written, never_written, duplicate, recent):
        await jobs.prepare(create_job(version, at=version.created_at))
    await software.insert(written)
    await software.insert(recent)

    promoted = await jobs.promote_prepared(written_before=T0 + timedelta(seconds=30))

    assert promoted == [create_job(written)]

    assert await state_of(mongo, create_job(written)) == "pending"
    assert await state_of(mongo, create_job(never_written)) is None
    assert await state_of(mongo, create_job(duplicate)) is None
    assert await state_of(mongo, create_job(recent)) == "prepared"  # may be in flight still


async def test_a_create_slower_than_a_lease_still_makes_its_push(
    mongo: Mongo, jobs: PushJobStore
) -> None:
    # The worker judged the intent before the definition was written and dropped it; the
    # create's own push comes after and must still make the job.
    job = create_job()
    await jobs.prepare(job)
    assert await jobs.promote_prepared(written_before=LATER) == []
    assert await state_of(mongo, job) is None

    assert await jobs.create(job) is True
    assert await state_of(mongo, job) == "pending"
    assert await jobs.create(job) is False  # made already: not made twice
