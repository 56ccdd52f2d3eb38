"""Fault: otao (a real ``python -m otao`` process) is SIGKILLed half-way through a push job.

The restarted process finishes the job from its saved cursor: every eligible endpoint gets
ConfigUpdated for the right version at least once, resends are at most the batch in flight at
the crash, and no endpoint gets a version it is not eligible for.

The process comes back as a different replica (a new ``OTAO_REPLICA_ID``, as a new pod would):
it may take the job only once the dead replica's lease expires, and then finishes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.reliability.harness import (
    KaaNames,
    OtaoSubprocess,
    close_quietly,
    connect_cmx,
    database,
    define,
    eventually,
    set_strategy,
)
from tests.support.stack import MongoServer, NatsServer

pytestmark = pytest.mark.timeout(120)

BATCH = 4
ELIGIBLE = [f"a-{i:02d}" for i in range(30)]  # on 1.0.0: get 2.0.0
FAILED = [f"b-{i:02d}" for i in range(6)]  # on 1.0.0, reported 2.0.0 failed: not eligible
OTHER_BRANCH = [f"c-{i:02d}" for i in range(6)]  # on 0.5.0: 1.5.0 is theirs, not 2.0.0
ON_TOP = [f"d-{i:02d}" for i in range(4)]  # already on 2.0.0


async def test_sigkill_mid_push_then_restart_finishes_the_job(
    nats_server: NatsServer, mongo_server: MongoServer, tmp_path: Path
) -> None:
    names = KaaNames.fresh()
    app, app_version = "crash-app", f"crash-app-{names.otao}"
    otao = OtaoSubprocess(
        nats_server.url,
        mongo_server.uri,
        tmp_path / "otao",
        names,
        applications=[{"name": app, "tenant_id": "default", "app_versions": [app_version]}],
        env_overrides={
            "OTAO_PUSH__RATE_PER_SECOND": "15",
            "OTAO_PUSH__BATCH_SIZE": str(BATCH),
            "OTAO_PUSH__LEASE_SECONDS": "2",
            "OTAO_PUSH__POLL_INTERVAL_SECONDS": "0.2",
            "OTAO_REPLICA_ID": f"{names.otao}-0",
        },
    )
    cmx = await connect_cmx(nats_server.url, names)
    await otao.start()
    try:
        async with (
            grpc.aio.insecure_channel(otao.target) as channel,
            database(mongo_server.uri, otao.database) as db,
        ):
            await define(channel, app, "1.5.0", ["0.5.0"])
            spec = {"image": "fw-2.0.0.bin", "sha256": "ab" * 32}
            await define(channel, app, "2.0.0", ["1.0.0"], "suspended", specification=spec)
            for endpoint in ELIGIBLE + FAILED:
                await cmx.applied(app_version, endpoint, "1.0.0")
            for endpoint in FAILED:
                await cmx.applied(app_version, endpoint, "2.0.0", status_code=500, reason="boom")
            for endpoint in OTHER_BRANCH:
                await cmx.applied(app_version, endpoint, "0.5.0")
            for endpoint in ON_TOP:
                await cmx.applied(app_version, endpoint, "2.0.0")
            everyone = ELIGIBLE + FAILED + OTHER_BRANCH + ON_TOP

            async def recorded() -> bool:
                failed = await db.endpoints.count_documents({"failedVersions": "2.0.0"})
                known = await db.endpoints.count_documents({"currentVersion": {"$ne": None}})
                return bool(failed == len(FAILED) and known == len(everyone))

            await eventually(recorded, 15, "every endpoint's reports recorded")

            await set_strategy(channel, app, "2.0.0", "general")
            await eventually(lambda: len(cmx.updates) >= 6, 15, "the push under way")
        await otao.sigkill()
        at_kill = len(cmx.updates)

        async with database(mongo_server.uri, otao.database) as db:
            job = await _the_job(db)
            assert job["state"] == "pending", job
            assert job["sent"] < len(ELIGIBLE), job

            # A new replica: the dead one's lease (2 s) must expire before it takes the job.
            otao.env_overrides["OTAO_REPLICA_ID"] = f"{names.otao}-1"
            await otao.start()
            assert otao.process is not None and otao.process.running

            async def job_done() -> bool:
                return bool((await _the_job(db))["state"] == "done")

            await eventually(job_done, 30, "the restarted process finished the job")
            await eventually(
                lambda: set(ELIGIBLE) <= {u.endpoint_id for u in cmx.updates},
                5,
                "every eligible endpoint pushed",
            )
    finally:
        await otao.stop()
        await close_quietly(cmx)

    pushed = cmx.updates
    assert len(pushed) > at_kill, "nothing pushed after the restart"
    for update in pushed:
        assert update.endpoint_id in ELIGIBLE, update.endpoint_id
        assert (update.app_version_name, update.config_id) == (app_version, "2.0.0")
        assert json.loads(update.content) == spec
    assert {u.endpoint_id for u in pushed} == set(ELIGIBLE)
    # Resumed from the cursor, not from the start: resends are at most the batch in flight.
    assert len(pushed) - len(ELIGIBLE) <= BATCH, len(pushed)


async def _the_job(db: Any) -> dict[str, Any]:
    jobs = [
        doc
        async for doc in db.push_jobs.find({"version": "2.0.0"})
        if (doc.get("before") or {}).get("rolloutStrategy") == "suspended"
    ]
    assert len(jobs) == 1, jobs
    job: dict[str, Any] = jobs[0]
    return job
