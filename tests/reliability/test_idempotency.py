"""Idempotency: a redelivered ConfigApplied or 18/EFE filter event (the very same bytes, as a
broker or a consumer retrying would resend them) changes nothing.

The state compared before and after the replays is everything an outcome depends on: the
endpoint's stored document (revision and update time included), offers, the application's
definitions (a double-counted failure would halt a rollout and change its etag), the audit
trail, rollout status, resolution, and the ConfigUpdated pushes the endpoint received.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import nats
import pytest
from google.protobuf import json_format
from kaa.otao.v1 import resolution_pb2, resolution_pb2_grpc, rollout_pb2, rollout_pb2_grpc
from nats.aio.client import Client
from nats.aio.msg import Msg

from otao.messaging.avro import AvroCodec
from otao.messaging.records import (
    EndpointFilterDeletedEvent,
    EndpointFiltersRequest,
    EndpointFiltersResponse,
    EndpointMatchedFilterEvent,
    EndpointUnmatchedFilterEvent,
)
from otao.messaging.subjects import (
    EfeEventType,
    config_applied_subject,
    efe_subject,
    efmp_request_subject,
)
from tests.reliability.harness import (
    KaaNames,
    applied_report,
    close_quietly,
    connect_cmx,
    database,
    dedicated_otao,
    define,
    now_ms,
)
from tests.reliability.harness import eventually as wait_until
from tests.support.cmx import CmxPeer
from tests.support.eventually import eventually
from tests.support.operator import settled
from tests.support.otao import RunningOtao
from tests.support.stack import MongoServer, NatsServer

pytestmark = pytest.mark.timeout(90)

CODEC = AvroCodec()
REPLAYS = 5


@dataclass
class World:
    otao: RunningOtao
    names: KaaNames
    cmx: CmxPeer
    client: Client
    channel: grpc.aio.Channel
    db: Any
    app: str
    app_version: str
    membership: dict[str, list[str]]
    sentinels: itertools.count[int]

    async def publish(self, subject: str, payload: bytes) -> None:
        await self.client.publish(subject, payload)
        await self.client.flush()

    def applied(self, endpoint: str, version: str, status: int = 200) -> bytes:
        return CODEC.encode(applied_report(self.app_version, endpoint, version, status))

    def efe(self, kind: EfeEventType, endpoint: str, filter_id: str) -> tuple[str, bytes]:
        subject = efe_subject(self.names.epr, kind, filter_id)
        common: dict[str, Any] = {
            "timestamp": now_ms(),
            "correlation_id": uuid.uuid4().hex,
            "originator_replica_id": "epr-1",
            "filter_id": filter_id,
            "application_name": self.app,
            "filter_name": None,
        }
        if kind is EfeEventType.DELETED:
            return subject, CODEC.encode(EndpointFilterDeletedEvent(**common))
        records: dict[EfeEventType, type[EndpointMatchedFilterEvent | EndpointUnmatchedFilterEvent]]
        records = {
            EfeEventType.EP_MATCHED: EndpointMatchedFilterEvent,
            EfeEventType.EP_UNMATCHED: EndpointUnmatchedFilterEvent,
        }
        record = records[kind]
        return subject, CODEC.encode(
            record(**common, app_version_name=self.app_version, endpoint_id=endpoint)
        )

    async def doc(self, endpoint: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self.db.endpoints.find_one(
            {"_id": f"default/{self.app}/{endpoint}"}
        )
        return found

    async def settle_applied(self) -> None:
        """Everything published on the ConfigApplied subject so far has been handled."""
        endpoint = f"sentinel-{next(self.sentinels)}"
        await self.publish(
            config_applied_subject(self.names.consumer), self.applied(endpoint, "0.0.1")
        )
        await wait_until(lambda: self._exists(endpoint), 5, "sentinel report handled")

    async def settle_efe(self, kind: EfeEventType) -> None:
        """Everything published on this EFE subscription so far has been handled.

        The subscription covers every filter id (``*``), so the sentinel uses a filter no
        definition names: it cannot change what is compared.
        """
        endpoint, filter_id = f"sentinel-{next(self.sentinels)}", "sentinel"
        await self.publish(*self.efe(EfeEventType.EP_MATCHED, endpoint, filter_id))
        await wait_until(lambda: self._has_filter(endpoint, filter_id), 5, "sentinel member")
        if kind is EfeEventType.EP_MATCHED:
            return
        await self.publish(*self.efe(kind, endpoint, filter_id))
        await wait_until(lambda: self._lacks_filter(endpoint, filter_id), 5, "sentinel removed")

    async def handled(
        self, message: tuple[str, bytes], kind: EfeEventType, endpoint: str, version: str
    ) -> dict[str, Any]:
        """Publishes an EFE event once and waits until it is handled: the snapshot then."""
        await self.publish(*message)
        await self.settle_efe(kind)
        return await self.snapshot(endpoint, version)

    async def replays_change_nothing(
        self,
        message: tuple[str, bytes],
        kind: EfeEventType,
        before: dict[str, Any],
        endpoint: str,
        version: str,
    ) -> None:
        """The handled event published ``REPLAYS`` times more leaves the snapshot as it was."""
        for _ in range(REPLAYS):
            await self.publish(*message)
        await self.settle_efe(kind)
        assert await self.snapshot(endpoint, version) == before

    async def _exists(self, endpoint: str) -> bool:
        return await self.doc(endpoint) is not None

    async def _has_filter(self, endpoint: str, filter_id: str) -> bool:
        return filter_id in ((await self.doc(endpoint)) or {}).get("filters", [])

    async def _lacks_filter(self, endpoint: str, filter_id: str) -> bool:
        return filter_id not in ((await self.doc(endpoint)) or {}).get("filters", [])

    async def snapshot(self, endpoint: str, version: str) -> dict[str, Any]:
        resolution = resolution_pb2_grpc.ResolutionServiceStub(self.channel)
        rollout = rollout_pb2_grpc.RolloutServiceStub(self.channel)
        resolved = await resolution.ResolveUpdate(
            resolution_pb2.ResolveUpdateRequest(application_name=self.app, endpoint_id=endpoint)
        )
        status = await rollout.GetRolloutStatus(
            rollout_pb2.GetRolloutStatusRequest(application_name=self.app, version=version)
        )
        status.ClearField("counted_at")  # when the counts were made, not what they say
        scope = {"tenantId": "default", "application": self.app}
        return {
            "endpoint": await self.doc(endpoint),
            "offers": sorted(
                [d["_id"] async for d in self.db.offers.find({**scope, "endpointId": endpoint})]
            ),
            "definitions": sorted(
                [d async for d in self.db.software.find(scope)], key=lambda d: d["_id"]
            ),
            "audit": await self.db.audit.count_documents(scope),
            "resolved": json_format.MessageToDict(resolved),
            "rollout": json_format.MessageToDict(status),
            "pushes": [(u.config_id, u.content) for u in self.cmx.updates_for(endpoint)],
        }


@pytest.fixture
async def world(nats_server: NatsServer, mongo_server: MongoServer) -> AsyncIterator[World]:
    async with dedicated_otao(
        nats_server.url, mongo_server.uri, kaa={"efmp_timeout_seconds": 2.0}
    ) as (otao, names):
        application = otao.add_application()
        client = await nats.connect(nats_server.url)
        membership: dict[str, list[str]] = {}

        async def epr(msg: Msg) -> None:  # EPR answers from ``membership``
            request = CODEC.decode(EndpointFiltersRequest, msg.data)
            response = EndpointFiltersResponse(
                correlation_id=request.correlation_id,
                timestamp=now_ms(),
                endpoint_id=request.endpoint_id,
                filter_ids=tuple(membership.get(request.endpoint_id, ())),
                status_code=200,
            )
            await client.publish(msg.reply, CODEC.encode(response))

        await client.subscribe(efmp_request_subject(names.epr), cb=epr)
        cmx = await connect_cmx(nats_server.url, names)
        async with (
            grpc.aio.insecure_channel(otao.grpc_target) as channel,
            database(mongo_server.uri, otao.settings.mongodb_database) as db,
        ):
            yield World(
                otao,
                names,
                cmx,
                client,
                channel,
                db,
                application.name,
                application.app_versions[0],
                membership,
                itertools.count(),
            )
        await close_quietly(cmx)
        await close_quietly(client)


async def test_replayed_config_applied_changes_nothing(world: World) -> None:
    policy = {"maxFailureRatio": 0.5, "minReports": 2}
    await define(world.channel, world.app, "1.1.0", ["1.0.0"], rolloutPolicy=policy)
    await define(world.channel, world.app, "2.0.0", ["1.1.0"])
    subject = config_applied_subject(world.names.consumer)
    for endpoint in ("ok", "failing", "other"):
        await world.publish(subject, world.applied(endpoint, "1.0.0"))
    await world.settle_applied()

    success = world.applied("ok", "1.1.0")
    failure = world.applied("failing", "1.1.0", status=500)
    await world.publish(subject, success)
    await world.publish(subject, failure)
    await world.settle_applied()
    await health_checked(world)
    before = {e: await world.snapshot(e, "1.1.0") for e in ("ok", "failing")}
    assert before["ok"]["endpoint"]["currentVersion"] == "1.1.0"
    assert before["failing"]["endpoint"]["failedVersions"] == ["1.1.0"]
    assert before["ok"]["rollout"]["applied"] == "1" and before["ok"]["rollout"]["failed"] == "1"
    assert before["ok"]["rollout"]["rolloutStrategy"] == "general"  # 1 of 2 failed: no halt

    for _ in range(REPLAYS):
        await world.publish(subject, success)
        await world.publish(subject, failure)
    await world.settle_applied()
    await health_checked(world)
    after = {e: await world.snapshot(e, "1.1.0") for e in ("ok", "failing")}
    assert after == before


async def health_checked(world: World) -> None:
    """The rollout health monitor judged every report handled so far."""
    halts = world.otao.app.components.services.halts
    await eventually(lambda: halts.idle, "the rollout health checked")


async def test_replayed_filter_events_change_nothing(world: World) -> None:
    await define(
        world.channel, world.app, "2.0.0", ["1.0.0"], "targeted", filters=[{"filterId": "beta"}]
    )
    subject = config_applied_subject(world.names.consumer)
    await world.publish(subject, world.applied("f1", "1.0.0"))
    await world.settle_applied()
    # otao learns f1's membership (no filter yet) the way a poll does.
    first = await world.cmx.request(world.app_version, "f1")
    assert (first.status_code, first.config_id) == (200, None)

    # ep-matched: the endpoint joins "beta" and gets 2.0.0 pushed, once.
    world.membership["f1"] = ["beta"]
    matched = world.efe(EfeEventType.EP_MATCHED, "f1", "beta")
    await world.publish(*matched)
    await wait_until(lambda: len(world.cmx.updates_for("f1")) == 1, 5, "the push after joining")
    await world.settle_efe(EfeEventType.EP_MATCHED)
    before = await world.snapshot("f1", "2.0.0")
    assert "beta" in before["endpoint"]["filters"]
    assert before["pushes"] == [("2.0.0", b'{"image":"fw-2.0.0.bin"}')]
    for _ in range(REPLAYS):
        await world.publish(*matched)
    await world.settle_efe(EfeEventType.EP_MATCHED)
    await settled(world.otao, world.cmx)  # a push a replay caused would be in by now
    assert await world.snapshot("f1", "2.0.0") == before

    # ep-unmatched: leaves "beta"; replays change nothing.
    world.membership["f1"] = []
    unmatched = world.efe(EfeEventType.EP_UNMATCHED, "f1", "beta")
    before = await world.handled(unmatched, EfeEventType.EP_UNMATCHED, "f1", "2.0.0")
    assert "beta" not in before["endpoint"]["filters"]
    await world.replays_change_nothing(unmatched, EfeEventType.EP_UNMATCHED, before, "f1", "2.0.0")

    # deleted: the filter goes away for every member; replays change nothing.
    world.membership["f1"] = ["gamma"]
    await world.publish(*world.efe(EfeEventType.EP_MATCHED, "f1", "gamma"))
    await world.settle_efe(EfeEventType.EP_MATCHED)
    deleted = world.efe(EfeEventType.DELETED, "", "gamma")
    before = await world.handled(deleted, EfeEventType.DELETED, "f1", "2.0.0")
    assert "gamma" not in before["endpoint"]["filters"]
    await world.replays_change_nothing(deleted, EfeEventType.DELETED, before, "f1", "2.0.0")
