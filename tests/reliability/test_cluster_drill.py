"""Cluster drill: a 3-node NATS cluster, two otao replicas (real ``python -m otao`` processes)
on one database, each on a node of its own, and a CMX peer on the third node polling (6/CDTP)
and reporting (ConfigApplied) all along. Mid-push, the NATS node of the replica that is not
pushing is SIGKILLed (that replica fails over to another node), then the pushing replica is
SIGKILLed: the other one takes the job over once the lease expires and finishes it.

Checked: every report sent is recorded exactly once; polls are answered again after each fault;
every eligible endpoint gets a ConfigUpdated for exactly the right version, resends at most the
batch in flight at the crash; no ineligible endpoint gets anything.

Core NATS delivers at most once: a message inside a process that is SIGKILLed (a node's route
buffers, a replica's socket) is gone. So at each crash the peer holds its reports (not its
polls) from just before the kill, when everything it sent is recorded, until the node it
publishes to no longer routes to the dead process; a real CMX loses such a report the same way,
and the endpoint's next report repairs it. Polls keep flowing: a lost poll is a timeout, and CMX
retries.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
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
    eventually,
)
from tests.reliability.nats_cluster import NatsCluster, NatsNode
from tests.support.cmx import CmxPeer
from tests.support.software import define, set_strategy
from tests.support.stack import MongoServer

pytestmark = pytest.mark.timeout(180)

BATCH = 4
FLEET = MixedFleet.of(eligible=60, failed=4, other_branch=4, on_top=4)
SPEC = {"image": "fw-2.0.0.bin", "sha256": "cd" * 32}


async def test_nats_node_and_otao_replica_crash_mid_push(
    mongo_server: MongoServer, tmp_path: Path
) -> None:
    cluster = NatsCluster(tmp_path / "nats")
    await cluster.start()
    replicas: list[OtaoSubprocess] = []
    cmx: CmxPeer | None = None
    try:
        await eventually(cluster.fully_meshed, 20, "the NATS cluster meshed")
        names = KaaNames.fresh()
        n1, n2, n3 = cluster.nodes
        # Replica a gets two seeds (nats-py picks one); b the other node; the peer the third.
        a = _replica(tmp_path, "a", f"{n1.url},{n2.url}", names, mongo_server.uri, "")
        replicas.append(a)
        await a.start()
        await eventually(lambda: _on(cluster, a, [n1, n2]), 10, "replica a on n1 or n2")
        a_node = await cluster.where(_id(a), [n1, n2])
        b_node = cluster.node("n2" if a_node == "n1" else "n1")
        b = _replica(tmp_path, "b", b_node.url, names, mongo_server.uri, a.database)
        replicas.append(b)
        await b.start()
        cmx = await connect_cmx(n3.url, names)
        await _drill(cluster, n3, {_id(a): a, _id(b): b}, names, cmx, mongo_server.uri)
    finally:
        for replica in replicas:
            await replica.stop()
        if cmx is not None:
            await close_quietly(cmx)
        await asyncio.to_thread(cluster.stop)


def _replica(
    tmp: Path, tag: str, nats_url: str, names: KaaNames, mongo_uri: str, database: str
) -> OtaoSubprocess:
    return OtaoSubprocess(
        nats_url,
        mongo_uri,
        tmp / f"otao-{tag}",
        names,
        applications=[
            {"name": "drill", "tenant_id": "default", "app_versions": ["drill-v1"]},
            {"name": "traffic", "tenant_id": "default", "app_versions": ["traffic-v1"]},
        ],
        env_overrides={
            "OTAO_PUSH__RATE_PER_SECOND": "5",
            "OTAO_PUSH__BATCH_SIZE": str(BATCH),
            "OTAO_PUSH__LEASE_SECONDS": "2",
            "OTAO_PUSH__POLL_INTERVAL_SECONDS": "0.2",
            "OTAO_REPLICA_ID": f"{names.otao}-{tag}",
        },
        database=database,
    )


def _id(replica: OtaoSubprocess) -> str:
    return replica.env_overrides["OTAO_REPLICA_ID"]


async def _on(cluster: NatsCluster, replica: OtaoSubprocess, nodes: list[NatsNode]) -> bool:
    return await cluster.where(_id(replica), nodes) is not None


class Load:
    """Polls (a new endpoint each, needing the database) and reports (a new endpoint each)
    from the peer, until stopped. Reports pass ``gate``, which a crash holds."""

    def __init__(self, cmx: CmxPeer) -> None:
        self.cmx = cmx
        self.gate = asyncio.Lock()
        self.answers: list[tuple[float, int | None, str | None]] = []
        self.reported: dict[str, str] = {}  # endpoint -> the report's correlation id
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._polls()), asyncio.create_task(self._reports())]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def answered_since(self, since: float) -> int:
        return sum(1 for t, status, _ in self.answers if t > since and status == 200)

    async def _polls(self) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            try:
                response = await self.cmx.request("traffic-v1", f"p-{n:05d}", "1.0.0", timeout=1.0)
                self.answers.append((time.monotonic(), response.status_code, response.config_id))
            except TimeoutError:
                self.answers.append((time.monotonic(), None, None))
            await asyncio.sleep(0.02)  # the load's pace

    async def _reports(self) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            endpoint, correlation = f"r-{n:05d}", uuid.uuid4().hex
            async with self.gate:
                await self.cmx.applied("traffic-v1", endpoint, "1.0.0", correlation_id=correlation)
                self.reported[endpoint] = correlation
            await asyncio.sleep(0.02)  # the load's pace


async def _drill(
    cluster: NatsCluster,
    peer_node: NatsNode,
    replicas: dict[str, OtaoSubprocess],
    names: KaaNames,
    cmx: CmxPeer,
    mongo_uri: str,
) -> None:
    a = next(iter(replicas.values()))
    async with (
        grpc.aio.insecure_channel(a.target) as channel,
        database(mongo_uri, a.database) as db,
    ):
        await _seed(channel, cmx, db)
        load = Load(cmx)
        load.start()
        try:
            await eventually(lambda: load.answered_since(0) >= 20, 15, "polls answered")
            await set_strategy(channel, "drill", "2.0.0", "general")
            await eventually(lambda: len(cmx.updates) >= BATCH, 15, "the push under way")
            pusher_id = (await _the_job(db))["leaseOwner"]
            pusher = replicas[pusher_id]
            other_id = next(r for r in replicas if r != pusher_id)
            pusher_node = cluster.node(str(await cluster.where(pusher_id)))

            # 1. The NATS node of the replica that is not pushing dies.
            doomed = cluster.node(str(await cluster.where(other_id)))
            assert doomed is not peer_node and doomed is not pusher_node
            async with load.gate:
                await _all_recorded(db, load)
                await doomed.sigkill()
                await eventually(
                    lambda: _forgot_node(peer_node, doomed), 10, "the peer's node forgot it"
                )
            killed_at = time.monotonic()
            survivors = [n for n in cluster.nodes if n is not doomed]
            await eventually(
                lambda: _serving_from(peer_node, cluster, other_id, survivors, names),
                15,
                "the other replica reconnected to a live node",
            )
            await eventually(
                lambda: load.answered_since(killed_at) >= 10, 15, "polls answered after the kill"
            )

            # 2. The pushing replica dies mid-push.
            job = await _the_job(db)
            assert job["state"] == "pending" and job["sent"] < len(FLEET.eligible), job
            async with load.gate:
                await _all_recorded(db, load)
                await pusher.sigkill()
                other_node = await cluster.where(other_id, survivors)
                await eventually(
                    lambda: _forgot_replica(peer_node, pusher_node, pusher_id, other_node, names),
                    10,
                    "the cluster forgot the killed replica",
                )
            crashed_at = time.monotonic()
            at_crash = len(cmx.updates)
            await eventually(
                lambda: load.answered_since(crashed_at) >= 10, 15, "polls answered after the crash"
            )

            async def job_done() -> bool:
                return bool((await _the_job(db))["state"] == "done")

            await eventually(job_done, 60, "the surviving replica finished the job")
            await cmx.delivered()
        finally:
            await load.stop()
        await _reports_recorded_once(db, load)

    assert {(s, c) for _, s, c in load.answers if s is not None} == {(200, "1.1.0")}
    _pushed_exactly_the_eligible(cmx, at_crash)


async def _seed(channel: grpc.aio.Channel, cmx: CmxPeer, db: Any) -> None:
    await define(channel, "traffic", "1.1.0", ["1.0.0"])
    await define(channel, "drill", "1.5.0", ["0.5.0"])
    await define(channel, "drill", "2.0.0", ["1.0.0"], "suspended", specification=SPEC)
    await FLEET.report(cmx, "drill-v1")
    await FLEET.recorded(
        db, {"application": "drill"}, 20, "every drill endpoint's reports recorded"
    )


def _doc_ids(endpoints: list[str]) -> list[str]:
    return [f"default/traffic/{e}" for e in endpoints]


async def _all_recorded(db: Any, load: Load) -> None:
    ids = _doc_ids(list(load.reported))

    async def recorded() -> bool:
        return bool(await db.endpoints.count_documents({"_id": {"$in": ids}}) == len(ids))

    await eventually(recorded, 15, "every report sent so far recorded")


async def _forgot_node(peer_node: NatsNode, doomed: NatsNode) -> bool:
    return doomed.name not in await peer_node.route_names()


async def _serving_from(
    peer_node: NatsNode,
    cluster: NatsCluster,
    replica_id: str,
    survivors: list[NatsNode],
    names: KaaNames,
) -> bool:
    """The replica is connected to a live node, and the peer's node routes its work there."""
    node = await cluster.where(replica_id, survivors)
    if node is None:
        return False
    if node == peer_node.name:
        return True
    return _cdtp(names) in await peer_node.routed_subjects(node)


async def _forgot_replica(
    peer_node: NatsNode,
    pusher_node: NatsNode,
    pusher_id: str,
    other_node: str | None,
    names: KaaNames,
) -> bool:
    """The killed replica's node dropped its connection, and the peer's node no longer sends
    shared work to that node unless the surviving replica is there to take it."""
    if pusher_id in await pusher_node.client_names():
        return False
    if other_node == pusher_node.name:
        return True
    routed = await peer_node.routed_subjects(pusher_node.name)
    return _cdtp(names) not in routed and _applied(names) not in routed


def _cdtp(names: KaaNames) -> str:
    return f"kaa.v1.service.{names.otao}.cdtp.request"


def _applied(names: KaaNames) -> str:
    return f"kaa.v1.events.{names.consumer}.endpoint.config.applied"


async def _reports_recorded_once(db: Any, load: Load) -> None:
    await _all_recorded(db, load)
    ids = _doc_ids(list(load.reported))
    docs = [doc async for doc in db.endpoints.find({"_id": {"$in": ids}})]
    assert len(docs) == len(load.reported) > 20, len(docs)
    for doc in docs:
        # One report, one write: a second delivery would be a no-op, never a second record.
        assert doc["rev"] == 1, doc
        assert doc["lastReport"]["configId"] == "1.0.0", doc
        assert doc["currentVersion"] == "1.0.0", doc


def _pushed_exactly_the_eligible(cmx: CmxPeer, at_crash: int) -> None:
    pushed = cmx.updates
    assert len(pushed) > at_crash, "nothing pushed after the crash"
    for update in pushed:
        assert update.endpoint_id in FLEET.eligible, update.endpoint_id
        assert (update.app_version_name, update.config_id) == ("drill-v1", "2.0.0")
        assert json.loads(update.content) == SPEC
    assert {u.endpoint_id for u in pushed} == set(FLEET.eligible)
    # Resumed from the cursor: resends are at most the batch in flight at the crash.
    assert len(pushed) - len(FLEET.eligible) <= BATCH, len(pushed)


async def _the_job(db: Any) -> dict[str, Any]:
    jobs = [
        doc
        async for doc in db.push_jobs.find({"application": "drill", "version": "2.0.0"})
        if (doc.get("before") or {}).get("rolloutStrategy") == "suspended"
    ]
    assert len(jobs) == 1, jobs
    job: dict[str, Any] = jobs[0]
    return job
