"""Rollout dates: nothing before a listed filter's date, one push per endpoint once it passes,
even with two replicas sharing the database and a replica restarting afterwards."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from kaa.otao.v1 import software_pb2, software_pb2_grpc

from otao.messaging.records import ConfigUpdated
from tests.support.cmx import CmxPeer
from tests.support.epr import EprPeer
from tests.support.eventually import eventually
from tests.support.operator import (
    create_software,
    explain,
    pushes_done,
    recorded,
    settled,
    utc_date,
)
from tests.support.otao import RunningOtao, start_otao
from tests.support.rig import Rig
from tests.support.stack import MongoServer, NatsServer

pytestmark = pytest.mark.timeout(40)


async def scheduler_rounds(otao: RunningOtao, rounds: int) -> None:
    """Wait until the replica's rollout date scheduler completed ``rounds`` more rounds."""
    scheduler = otao.app.components.services.scheduler
    target = scheduler.rounds + rounds
    await eventually(lambda: scheduler.rounds >= target, f"{rounds} scheduler rounds")


def updates(cmx: CmxPeer, app_version: str, endpoint_id: str) -> list[ConfigUpdated]:
    return [
        u for u in cmx.updates if u.app_version_name == app_version and u.endpoint_id == endpoint_id
    ]


async def test_future_rollout_date_offers_nothing_then_pushes_once_when_it_passes(rig: Rig) -> None:
    rig.epr.membership = {"ep-dated": ["beta"], "ep-outside": ["gamma"]}
    text, date = utc_date(2)
    await create_software(
        rig.rest,
        rig.application.name,
        "1.1.0",
        ["1.0.0"],
        "targeted",
        [{"filterId": "beta", "rolloutDate": text}],
    )
    for endpoint_id in rig.epr.membership:
        assert (await rig.cmx.request(rig.app_version, endpoint_id, "1.0.0")).config_id is None
        await recorded(rig.otao, rig.application.name, endpoint_id)
    assert (await explain(rig.rest, rig.application.name, "ep-dated"))[
        "1.1.0"
    ] == "rollout_date_pending"
    assert updates(rig.cmx, rig.app_version, "ep-dated") == []

    await rig.cmx.wait_for(lambda: bool(updates(rig.cmx, rig.app_version, "ep-dated")), timeout=10)
    arrived = datetime.now(UTC)
    assert arrived >= date, "pushed before the rollout date"

    # Several more scheduler rounds: still exactly one push, none outside the filter.
    await scheduler_rounds(rig.otao, 2)
    await settled(rig.otao, rig.cmx)
    assert [u.config_id for u in updates(rig.cmx, rig.app_version, "ep-dated")] == ["1.1.0"]
    assert updates(rig.cmx, rig.app_version, "ep-outside") == []
    assert (await rig.cmx.request(rig.app_version, "ep-dated", "1.0.0")).config_id == "1.1.0"
    assert (await explain(rig.rest, rig.application.name, "ep-dated"))["1.1.0"] == "selected"


async def create_dated(target: str, application: str, date: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        software = json_format.ParseDict(
            {
                "version": "1.1.0",
                "upgradableFrom": ["1.0.0"],
                "specification": {"image": "fw-1.1.0.bin"},
                "rolloutStrategy": "targeted",
                "filters": [{"filterId": "beta", "rolloutDate": date}],
            },
            software_pb2.Software(),
        )
        await software_pb2_grpc.SoftwareServiceStub(channel).CreateSoftware(
            software_pb2.CreateSoftwareRequest(application_name=application, software=software)
        )


async def test_rollout_date_push_happens_exactly_once_with_two_replicas_and_a_restart(
    nats_server: NatsServer, mongo_server: MongoServer, unique_name: str
) -> None:
    # A separate otao instance (own subjects, own database) with two replicas sharing it.
    names = {"otao": f"otao-{unique_name}", "epr": f"epr-{unique_name}"}
    settings: dict[str, Any] = {
        "database": f"otao_{unique_name}",
        "kaa": names,
        "push": {
            "rate_per_second": 0,
            "poll_interval_seconds": 0.2,
            "lease_seconds": 3,
            "rollout_date_check_seconds": 0.2,
        },
    }
    replicas = [await start_otao(nats_server.url, mongo_server.uri, **settings) for _ in range(2)]
    cmx = await CmxPeer.connect(nats_server.url, otao=names["otao"])
    epr = await EprPeer.connect(nats_server.url, epr=names["epr"])
    try:
        application = replicas[0].add_application()
        replicas[1].add_application(application.name, application.app_versions)
        app_version = application.app_versions[0]
        endpoints = [f"ep-{i}" for i in range(6)]
        epr.membership = {e: ["beta"] for e in endpoints}
        text, date = utc_date(2)
        await create_dated(replicas[0].grpc_target, application.name, text)

        for endpoint_id in endpoints:
            assert (await cmx.request(app_version, endpoint_id, "1.0.0")).config_id is None
        for endpoint_id in endpoints:
            await recorded(replicas[0], application.name, endpoint_id)
        assert cmx.updates == []

        await cmx.wait_for(lambda: len(cmx.updates) >= len(endpoints), timeout=10)
        assert datetime.now(UTC) >= date
        for replica in replicas:
            await scheduler_rounds(replica, 3)
        for replica in replicas:
            await pushes_done(replica)
        await cmx.delivered()
        assert sorted(u.endpoint_id for u in cmx.updates) == endpoints
        assert {u.config_id for u in cmx.updates} == {"1.1.0"}

        # A replica restarting after the date creates no second job and no second push.
        await replicas[0].stop()
        replicas[0] = await start_otao(nats_server.url, mongo_server.uri, **settings)
        replicas[0].add_application(application.name, application.app_versions)
        await scheduler_rounds(replicas[0], 3)
        await pushes_done(replicas[0])
        await cmx.delivered()
        assert len(cmx.updates) == len(endpoints)
        jobs = replicas[1].app.components.storage.mongo.collection("push_jobs")
        dated = [doc async for doc in jobs.find({}) if str(doc["_id"]).startswith("date:")]
        assert len(dated) == 1
        assert dated[0]["state"] == "done" and dated[0]["sent"] == len(endpoints)
    finally:
        await cmx.close()
        await epr.close()
        for replica in replicas:
            await replica.stop()
