"""The in-memory catalog across replicas: a change made through one is seen by the other's
CDTP answers promptly.

Two otao replicas run in this process on the same database and the same NATS, as one service
(same service name, so the same CDTP queue group and the same catalog-change broadcasts). The
polls used are steady-state polls, answered from the replica's cached catalog without the
database: a replica whose cache was not invalidated would keep answering "nothing new".
Each replica counts the polls it answered, so the test knows the other replica answered too.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, json_format
from kaa.otao.v1 import software_pb2, software_pb2_grpc

from otao.domain.applications import ApplicationConfig
from otao.messaging.records import ConfigResponse
from tests.support.cmx import CmxPeer
from tests.support.eventually import eventually
from tests.support.otao import RunningOtao, start_otao
from tests.support.stack import MongoServer, NatsServer

pytestmark = pytest.mark.timeout(60)

# Only a bound against a hang: the cache has no expiry, so without the invalidation broadcast
# the other replica would never see a change. How fast it does is measured by bench/.
HANG = 10.0


@dataclass
class Replica:
    otao: RunningOtao
    channel: grpc.aio.Channel
    answered: int = 0

    @property
    def software(self) -> software_pb2_grpc.SoftwareServiceAsyncStub:
        return software_pb2_grpc.SoftwareServiceStub(self.channel)

    def count_cdtp_answers(self) -> None:
        """Count the polls this replica's CDTP provider answers (each goes through here)."""
        delivery = self.otao.app.components.services.delivery
        answer = delivery.poll_from_catalog

        def counted(*args: Any) -> Any:
            self.answered += 1
            return answer(*args)

        delivery.poll_from_catalog = counted  # type: ignore[method-assign,assignment]


@pytest.fixture
async def replicas(
    nats_server: NatsServer, mongo_server: MongoServer
) -> AsyncIterator[tuple[Replica, Replica, ApplicationConfig, CmxPeer]]:
    # One service of two replicas, on names of their own (no other otao of the session
    # shares their queue group or their broadcasts).
    service = f"otao{secrets.token_hex(3)}"
    database = f"catalogs_{secrets.token_hex(4)}"
    started: list[Replica] = []
    cmx: CmxPeer | None = None
    try:
        for index in range(2):
            running = await start_otao(
                nats_server.url,
                mongo_server.uri,
                database,
                kaa={"otao": service},
                replica_id=f"{service}-{index}",
            )
            started.append(Replica(running, grpc.aio.insecure_channel(running.grpc_target)))
        name = f"app{secrets.token_hex(4)}"
        application = ApplicationConfig(name, "default", (f"{name}-v1",), False)
        for replica in started:
            # Both replicas are configured with the application, as by one settings file.
            replica.otao.add_application(name, application.app_versions)
            replica.count_cdtp_answers()
        cmx = await CmxPeer.connect(nats_server.url, otao=service)
        yield started[0], started[1], application, cmx
    finally:
        if cmx is not None:
            await cmx.close()
        for replica in started:
            await replica.channel.close(None)
            await replica.otao.stop()


def definition(version: str, upgradable_from: list[str], strategy: str) -> software_pb2.Software:
    software = software_pb2.Software(
        version=version, upgradable_from=upgradable_from, rollout_strategy=strategy
    )
    json_format.ParseDict({"image": f"fw-{version}.bin"}, software.specification)
    return software


async def polls(cmx: CmxPeer, app_version: str, count: int) -> list[ConfigResponse]:
    """``count`` steady-state polls of endpoints on 1.0.0, all at once."""
    answers = await asyncio.gather(
        *(cmx.request(app_version, f"ep-{i}", config_id="1.0.0") for i in range(count))
    )
    for answer in answers:
        assert answer.status_code == 200, answer
    return list(answers)


async def until_every_answer(
    cmx: CmxPeer, app_version: str, expected: str | None, replica: Replica
) -> None:
    """Poll until a round of answers all offer ``expected`` and ``replica`` answered some."""

    async def round_agrees() -> bool:
        before = replica.answered
        answers = await polls(cmx, app_version, 20)
        return all(a.config_id == expected for a in answers) and replica.answered > before

    await eventually(round_agrees, f"every answer offering {expected}", HANG, interval=0)


async def both_answer(cmx: CmxPeer, app_version: str, a: Replica, b: Replica) -> None:
    """Poll until each replica answered at least once (queue groups spread the polls)."""

    async def each_answered() -> bool:
        answers = await polls(cmx, app_version, 20)
        assert all(x.config_id is None for x in answers), answers
        return bool(a.answered and b.answered)

    if not (a.answered and b.answered):
        await eventually(each_answered, "each replica answering", interval=0)


async def pushes_done(replica: Replica) -> None:
    """Wait until the push jobs of the changes made so far are finished (either replica may
    work them), so that each step starts from a settled state."""
    jobs = replica.otao.app.components.storage.push_jobs
    await eventually(lambda: _none(jobs.pending_count()), "push jobs worked")


async def _none(count: Awaitable[int]) -> bool:
    return await count == 0


def cached_versions(replica: Replica, application: str) -> Callable[[], list[str] | None]:
    def versions() -> list[str] | None:
        catalog = replica.otao.app.components.services.catalogs.cached("default", application)
        return None if catalog is None else [d.version for d in catalog.definitions]

    return versions


async def test_a_change_through_one_replica_reaches_the_others_cdtp_answers_promptly(
    replicas: tuple[Replica, Replica, ApplicationConfig, CmxPeer],
) -> None:
    a, b, application, cmx = replicas
    app_version = application.app_versions[0]
    await a.software.CreateSoftware(
        software_pb2.CreateSoftwareRequest(
            application_name=application.name, software=definition("1.0.0", ["0.9.0"], "general")
        ),
        timeout=10,
    )

    await pushes_done(a)

    # Both replicas answer from their cached catalogs: nothing is upgradable from 1.0.0.
    await both_answer(cmx, app_version, a, b)
    assert cached_versions(b, application.name)() == ["1.0.0"]
    assert cached_versions(a, application.name)() == ["1.0.0"]

    # A change through replica A: 1.1.0 upgrades 1.0.0. B's answers offer it at once.
    await a.software.CreateSoftware(
        software_pb2.CreateSoftwareRequest(
            application_name=application.name, software=definition("1.1.0", ["1.0.0"], "general")
        ),
        timeout=10,
    )
    await until_every_answer(cmx, app_version, "1.1.0", b)
    assert cached_versions(b, application.name)() in (None, ["1.1.0", "1.0.0"])
    await pushes_done(a)

    # And the other way round: B suspends 1.1.0; A's answers stop offering it.
    await b.software.UpdateSoftware(
        software_pb2.UpdateSoftwareRequest(
            application_name=application.name,
            version="1.1.0",
            software=software_pb2.Software(rollout_strategy="suspended"),
            update_mask=field_mask_pb2.FieldMask(paths=["rollout_strategy"]),
        ),
        timeout=10,
    )
    await until_every_answer(cmx, app_version, None, a)
    await pushes_done(b)
