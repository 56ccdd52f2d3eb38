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
    MixedFleet,
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
FLEET = MixedFleet.of(eligible=30, failed=6, other_branch=6, on_top=4)


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
            await FLEET.report(cmx, app_version)
            await FLEET.recorded(db, {}, 15, "every endpoint's reports recorded")

            await set_strategy(channel, app, "2.0.0", "general")
            await eventually(lambda: len(cmx.updates) >= 6, 15, "the push under way")
        await otao.sigkill()
        at_kill = len(cmx.updates)

        async with database(mongo_server.uri, otao.database) as db:
            job = await _the_job(db)
            assert job["state"] == "pending", job
            assert job["sent"] < len(FLEET.eligible), job

            # A new replica: the dead one's lease (2 s) must expire before it takes the job.
            otao.env_overrides["OTAO_REPLICA_ID"] = f"{names.otao}-1"
            await otao.start()
            assert otao.process is not None and otao.process.running

            async def job_done() -> bool:
                return bool((await _the_job(db))["state"] == "done")

            await eventually(job_done, 30, "the restarted process finished the job")
            await eventually(
                lambda: set(FLEET.eligible) <= {u.endpoint_id for u in cmx.updates},
                5,
                "every eligible endpoint pushed",
            )
    finally:
        await otao.stop()
        await close_quietly(cmx)

    pushed = cmx.updates
    assert len(pushed) > at_kill, "nothing pushed after the restart"
    for update in pushed:
        assert update.endpoint_id in FLEET.eligible, update.endpoint_id
        assert (update.app_version_name, update.config_id) == (app_version, "2.0.0")
        assert json.loads(update.content) == spec
    assert {u.endpoint_id for u in pushed} == set(FLEET.eligible)
    # Resumed from the cursor, not from the start: resends are at most the batch in flight.
    assert len(pushed) - len(FLEET.eligible) <= BATCH, len(pushed)


async def _the_job(db: Any) -> dict[str, Any]:
    jobs = [
        doc
        async for doc in db.push_jobs.find({"version": "2.0.0"})
        if (doc.get("before") or {}).get("rolloutStrategy") == "suspended"
    ]
    assert len(jobs) == 1, jobs
    job: dict[str, Any] = jobs[0]
    return job
