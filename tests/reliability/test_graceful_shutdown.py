"""Graceful shutdown: SIGTERM to a real ``python -m otao`` while RPCs and CDTP requests are in
flight (each waits about a second for EPR's membership answer over 20/EFMP).

Health says NOT_SERVING first (a Watch stream sees it before any in-flight call completes),
every in-flight RPC and CDTP request completes with its right answer (one still running when the
grace period ends would be cancelled), new RPCs are refused, and the process exits cleanly. With a
second replica in the queue group, no CDTP request sent during the shutdown is lost: the
stopping replica stops taking new ones and the other one answers them. The step that hands
them over (leaving the queue group) is also driven alone, at full speed, where a message lost
in it shows in every run rather than in one of many.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import nats
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kaa.otao.v1 import resolution_pb2, resolution_pb2_grpc
from nats.aio.client import Client
from nats.aio.msg import Msg

from otao.messaging.avro import AvroCodec
from otao.messaging.connection import NatsConnection
from otao.messaging.records import EndpointFiltersRequest, EndpointFiltersResponse
from otao.messaging.subjects import efmp_request_subject
from tests.reliability.harness import (
    NOT_SERVING,
    SERVING,
    KaaNames,
    OtaoSubprocess,
    close_quietly,
    connect_cmx,
    define,
    eventually,
)
from tests.support.cmx import CmxPeer
from tests.support.otao import start_otao as start_otao_in_process
from tests.support.stack import MongoServer, NatsServer

pytestmark = pytest.mark.timeout(120)

GRACE = 6.0
EPR_DELAY = 1.0
IN_FLIGHT = 8
CODEC = AvroCodec()


class SlowEpr:
    """Answers every membership query with filter "beta", after ``EPR_DELAY`` seconds."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.queries = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, url: str, names: KaaNames) -> AsyncIterator[SlowEpr]:
        epr = cls(await nats.connect(url))
        await epr.client.subscribe(efmp_request_subject(names.epr), cb=epr._on_query)
        await epr.client.flush()
        try:
            yield epr
        finally:
            await close_quietly(epr.client)

    async def _on_query(self, msg: Msg) -> None:
        self.queries += 1
        asyncio.get_running_loop().create_task(self._answer(msg))

    async def _answer(self, msg: Msg) -> None:
        request = CODEC.decode(EndpointFiltersRequest, msg.data)
        await asyncio.sleep(EPR_DELAY)
        response = EndpointFiltersResponse(
            correlation_id=request.correlation_id,
            timestamp=int(time.time() * 1000),
            endpoint_id=request.endpoint_id,
            filter_ids=("beta",),
            status_code=200,
        )
        await self.client.publish(msg.reply, CODEC.encode(response))


async def _started(
    nats_server: NatsServer, mongo_server: MongoServer, run_dir: Path
) -> OtaoSubprocess:
    """A started ``python -m otao`` serving "fleet", under fresh Kaa names (``.names``)."""
    otao = OtaoSubprocess(
        nats_server.url,
        mongo_server.uri,
        run_dir,
        KaaNames.fresh(),
        applications=[{"name": "fleet", "tenant_id": "default", "app_versions": ["fleet-v1"]}],
        env_overrides={
            "OTAO_GRACE_PERIOD_SECONDS": str(GRACE),
            "OTAO_KAA__EFMP_TIMEOUT_SECONDS": "4",
        },
    )
    await otao.start()
    return otao


async def _watch(channel: grpc.aio.Channel, seen: list[tuple[float, int]]) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
        async for reply in stub.Watch(health_pb2.HealthCheckRequest(service="")):
            seen.append((time.monotonic(), int(reply.status)))


async def _resolve(
    channel: grpc.aio.Channel, endpoint: str
) -> tuple[float, resolution_pb2.ResolveUpdateResponse]:
    stub = resolution_pb2_grpc.ResolutionServiceStub(channel)
    reply = await stub.ResolveUpdate(
        resolution_pb2.ResolveUpdateRequest(
            application_name="fleet", endpoint_id=endpoint, current_version="0.8.0"
        ),
        timeout=GRACE + 5,
    )
    return time.monotonic(), reply


async def _poll(cmx: CmxPeer, endpoint: str) -> tuple[float, int, str | None]:
    response = await cmx.request("fleet-v1", endpoint, config_id="0.8.0", timeout=GRACE + 5)
    return time.monotonic(), response.status_code, response.config_id


async def test_sigterm_finishes_in_flight_work_after_saying_not_serving(
    nats_server: NatsServer, mongo_server: MongoServer, tmp_path: Path
) -> None:
    otao = await _started(nats_server, mongo_server, tmp_path / "otao")
    names = otao.names
    cmx = await connect_cmx(nats_server.url, names)
    seen: list[tuple[float, int]] = []
    try:
        async with (
            SlowEpr.running(nats_server.url, names) as epr,
            grpc.aio.insecure_channel(otao.target) as channel,
            grpc.aio.insecure_channel(otao.target) as watch_channel,
        ):
            await define(
                channel, "fleet", "0.9.0", ["0.8.0"], "targeted", filters=[{"filterId": "beta"}]
            )
            watcher = asyncio.create_task(_watch(watch_channel, seen))
            await eventually(lambda: any(s == SERVING for _, s in seen), 5, "watching health")

            rpcs = [asyncio.create_task(_resolve(channel, f"rpc-{i}")) for i in range(IN_FLIGHT)]
            polls = [asyncio.create_task(_poll(cmx, f"cdtp-{i}")) for i in range(IN_FLIGHT)]
            await eventually(lambda: epr.queries >= 2 * IN_FLIGHT, 5, "all of them in flight")

            otao.sigterm()
            await eventually(lambda: any(s == NOT_SERVING for _, s in seen), 2, "NOT_SERVING")
            watcher.cancel()  # a client that saw NOT_SERVING goes away, as a balancer does
            not_serving_at = next(t for t, s in seen if s == NOT_SERVING)

            # New RPCs are refused at once.
            late = resolution_pb2_grpc.ResolutionServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await late.ResolveUpdate(
                    resolution_pb2.ResolveUpdateRequest(application_name="fleet", endpoint_id="x"),
                    timeout=2,
                )
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

            rpc_results = await asyncio.gather(*rpcs)
            poll_results = await asyncio.gather(*polls)
            exit_code = await otao.wait_exit(GRACE + 5)
    finally:
        await close_quietly(cmx)
        await otao.stop()

    # Every in-flight call answered rightly after health said NOT_SERVING: none was cut off
    # by the end of the grace period (how long the drain takes is for bench/, not a bound here).
    for done_at, reply in rpc_results:
        assert (reply.update_available, reply.version) == (True, "0.9.0")
        assert not_serving_at < done_at
    for done_at, status, version in poll_results:
        assert (status, version) == (200, "0.9.0")
        assert not_serving_at < done_at
    assert exit_code == 0, otao.log_tail()
    assert "Traceback" not in otao.log_tail(), otao.log_tail()


async def test_no_cdtp_request_is_lost_when_one_of_two_replicas_stops(
    nats_server: NatsServer, mongo_server: MongoServer, tmp_path: Path
) -> None:
    stopping = await _started(nats_server, mongo_server, tmp_path / "otao")
    names = stopping.names
    staying = await start_otao_in_process(
        nats_server.url,
        mongo_server.uri,
        database=stopping.database,
        kaa={**names.settings(), "efmp_timeout_seconds": 4.0},
        grace_period_seconds=GRACE,
    )
    staying.add_application("fleet", ("fleet-v1",))
    cmx = await connect_cmx(nats_server.url, names)
    try:
        async with (
            SlowEpr.running(nats_server.url, names) as epr,
            grpc.aio.insecure_channel(stopping.target) as channel,
        ):
            await define(
                channel, "fleet", "0.9.0", ["0.8.0"], "targeted", filters=[{"filterId": "beta"}]
            )
            # Continuous traffic across the shutdown: each poll waits ~1 s for EPR.
            sent: list[asyncio.Task[tuple[float, int, str | None]]] = []
            stop_sending = asyncio.Event()

            async def traffic() -> None:
                while not stop_sending.is_set():
                    sent.append(asyncio.create_task(_poll(cmx, f"ep-{uuid.uuid4().hex[:8]}")))
                    await asyncio.sleep(0.02)

            sender = asyncio.create_task(traffic())
            # Polls in flight (waiting for EPR) before the stop, and more sent after the exit,
            # which only the staying replica can answer: counted, not timed.
            await eventually(lambda: epr.queries >= 2 * IN_FLIGHT, 10, "polls in flight")
            stopping.sigterm()
            exit_code = await stopping.wait_exit(GRACE + 5)
            after_exit = len(sent)
            await eventually(
                lambda: len(sent) > max(after_exit + 2 * IN_FLIGHT, 50), 10, "polls after the exit"
            )
            stop_sending.set()
            await sender
            results = await asyncio.gather(*sent, return_exceptions=True)
    finally:
        await close_quietly(cmx)
        await stopping.stop()
        await staying.stop()

    assert exit_code == 0, stopping.log_tail()
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(results) > 50
    assert not lost, (
        f"{len(lost)} of {len(results)} CDTP requests got no answer\n{stopping.log_tail()}"
    )
    answered = [r for r in results if not isinstance(r, BaseException)]
    assert {(status, version) for _, status, version in answered} == {(200, "0.9.0")}


ROUNDS = 10


async def test_a_member_leaving_its_queue_group_leaves_every_message_to_a_handler(
    nats_server: NatsServer,
) -> None:
    """The step of the stop above that hands the CDTP requests over, with the window made
    wide: messages are published as fast as the client can while one of two members leaves
    the queue group, again and again. Each must reach the handler of one of them; a message
    the server handed the leaving member after the PONG its drain waited for, but before it
    read the UNSUB, was dropped by the client (for a subscription it had forgotten)."""
    subject, group = f"shutdown.{uuid.uuid4().hex}", "replicas"
    handled = {"staying": 0, "leaving": 0}
    staying = NatsConnection(nats_server.url, "staying")
    staying.subscribe(subject, _counter(handled, "staying"), queue=group)
    staying.start()
    publisher = await nats.connect(nats_server.url)
    sent = 0
    try:
        await eventually(lambda: staying.connected, 5, "the staying member connected")
        for _ in range(ROUNDS):
            sent += await _publish_while_one_leaves(
                nats_server.url, publisher, subject, group, handled
            )
        await publisher.flush()
        with contextlib.suppress(AssertionError):
            await eventually(lambda: sum(handled.values()) == sent, 5, "every message handled")
    finally:
        await close_quietly(publisher)
        await staying.close()

    assert sum(handled.values()) == sent, (
        f"{sent - sum(handled.values())} of {sent} messages handled by no member ({handled})"
    )


def _counter(handled: dict[str, int], member: str) -> Callable[[Msg], Awaitable[None]]:
    async def handle(msg: Msg) -> None:
        handled[member] += 1

    return handle


async def _publish_while_one_leaves(
    url: str, publisher: Client, subject: str, group: str, handled: dict[str, int]
) -> int:
    """A member joins, takes messages, and leaves while they flow on; how many were sent."""
    leaving = NatsConnection(url, "leaving")
    leaving.subscribe(subject, _counter(handled, "leaving"), queue=group)
    leaving.start()
    await eventually(lambda: leaving.connected, 5, "the leaving member connected")
    stop = asyncio.Event()
    sent = 0

    async def publish() -> None:
        nonlocal sent
        while not stop.is_set():
            for _ in range(20):
                await publisher.publish(subject, b"%d" % sent)
                sent += 1
            await asyncio.sleep(0)  # the members' reads run between the batches

    flow = asyncio.create_task(publish())
    try:
        taken = handled["leaving"]
        await eventually(lambda: handled["leaving"] > taken, 5, "messages to the leaving one")
        await leaving.leave_queue_groups(5)
        left_at = handled["staying"]
        await eventually(lambda: handled["staying"] > left_at + 100, 5, "messages after it left")
    finally:
        stop.set()
        await flow
        await leaving.close()
    return sent
