"""The baselines otao is compared with, served from one process of their own.

- ``noop`` gRPC: a ``grpc.aio`` server whose ResolveUpdate handler returns a constant reply
  (raw bytes in, raw bytes out: no interceptor, no parsing); it also serves grpc.health.v1
  so that an Envoy can sit in front of it exactly as it sits in front of otao.
- ``reads`` gRPC: the same, but the handler parses the request and does one ``_id`` read of
  the endpoint's document on the same database otao uses, then returns a constant reply.
- ``noop`` NATS: a nats-py subscription answering every request with a constant payload.
- ``reads`` NATS: decodes the Avro request (to learn the endpoint), does one ``_id`` read,
  answers a constant payload; one task per request, like otao's CDTP provider, so reads
  overlap.
- ``push``: reads every endpoint document of an application from the same database in
  pages of the same size otao uses and publishes one ConfigUpdated-sized message for each.

Every constant reply is the same size as otao's reply in the matching scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import multiprocessing.connection
import signal
import time
from dataclasses import dataclass
from typing import Any

RESOLUTION_SERVICE = "kaa.otao.v1.ResolutionService"
RESOLVE_METHOD = f"/{RESOLUTION_SERVICE}/ResolveUpdate"


@dataclass(frozen=True)
class BaselineConfig:
    nats_url: str
    mongo_uri: str
    database: str
    tenant: str
    noop_grpc_port: int
    reads_grpc_port: int
    noop_subject: str
    reads_subject: str
    grpc_reply: bytes
    cdtp_reply: bytes


def _endpoint_id(tenant: str, application: str, endpoint: str) -> str:
    return f"{tenant}/{application}/{endpoint}"


async def _serve(config: BaselineConfig, ready: multiprocessing.connection.Connection) -> None:
    import grpc
    import nats
    from fastavro import parse_schema, schemaless_reader
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from kaa.otao.v1 import resolution_pb2
    from pymongo import AsyncMongoClient

    from otao.messaging.avro import FULL_NAMES, load_schema
    from otao.messaging.records import ConfigRequest

    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        config.mongo_uri, tz_aware=True, serverSelectionTimeoutMS=3000
    )
    endpoints = mongo[config.database]["endpoints"]

    async def noop(_request: bytes, _context: Any) -> bytes:
        return config.grpc_reply

    async def reads(request: bytes, _context: Any) -> bytes:
        parsed = resolution_pb2.ResolveUpdateRequest.FromString(request)
        await endpoints.find_one(
            {"_id": _endpoint_id(config.tenant, parsed.application_name, parsed.endpoint_id)}
        )
        return config.grpc_reply

    servers = []
    for port, behavior in ((config.noop_grpc_port, noop), (config.reads_grpc_port, reads)):
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    RESOLUTION_SERVICE,
                    {"ResolveUpdate": grpc.unary_unary_rpc_method_handler(behavior)},
                ),
            )
        )
        checker = health.HealthServicer()
        checker.set("", health_pb2.HealthCheckResponse.SERVING)
        checker.set(RESOLUTION_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(checker, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        servers.append(server)

    client = await nats.connect(config.nats_url, pending_size=1 << 26)
    request_schema = parse_schema(load_schema(FULL_NAMES[ConfigRequest]))
    in_flight: set[asyncio.Task[None]] = set()

    async def on_noop(msg: Any) -> None:
        await client.publish(msg.reply, config.cdtp_reply)

    async def answer_after_read(msg: Any) -> None:
        request = schemaless_reader(io.BytesIO(msg.data), request_schema, None)
        assert isinstance(request, dict)
        # ConfigRequest carries the app version name; the bench names applications after it.
        application = str(request["appVersionName"]).removesuffix("-v1")
        await endpoints.find_one(
            {"_id": _endpoint_id(config.tenant, application, str(request["endpointId"]))}
        )
        await client.publish(msg.reply, config.cdtp_reply)

    async def on_reads(msg: Any) -> None:
        task = asyncio.create_task(answer_after_read(msg))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)

    await client.subscribe(config.noop_subject, cb=on_noop, pending_msgs_limit=1_000_000)
    await client.subscribe(config.reads_subject, cb=on_reads, pending_msgs_limit=1_000_000)
    await client.flush()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    ready.send("ready")
    await stop.wait()
    for server in servers:
        await server.stop(0)
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await client.close()
    await mongo.close()


def serve(config: BaselineConfig, ready: multiprocessing.connection.Connection) -> None:
    asyncio.run(_serve(config, ready))


# ---------------------------------------------------------------------------------------------
# Push baseline


@dataclass(frozen=True)
class PushBaselineConfig:
    nats_url: str
    mongo_uri: str
    database: str
    tenant: str
    application: str
    subject: str
    payload: bytes
    batch_size: int


async def _push(config: PushBaselineConfig) -> tuple[float, int]:
    import nats
    from pymongo import AsyncMongoClient

    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        config.mongo_uri, tz_aware=True, serverSelectionTimeoutMS=3000
    )
    client = await nats.connect(config.nats_url, pending_size=1 << 26)
    collection = mongo[config.database]["endpoints"]
    prefix = f"{config.tenant}/{config.application}/"
    # Same walk as otao's push: pages in _id order, bounded by the application's _id prefix.
    started = time.time()
    lower, sent = prefix, 0
    while True:
        query = (
            collection.find({"tenantId": config.tenant, "application": config.application})
            .sort("_id", 1)
            .hint([("_id", 1)])
            .min([("_id", lower)])
            .max([("_id", prefix[:-1] + "0")])
            .limit(config.batch_size + 1)
        )
        batch = [doc async for doc in query if doc["_id"] != lower]
        if not batch:
            break
        for _doc in batch:
            await client.publish(config.subject, config.payload)
            sent += 1
        await client.flush()
        lower = batch[-1]["_id"]
    await client.close()
    await mongo.close()
    return started, sent


def push(config: PushBaselineConfig, result: multiprocessing.connection.Connection) -> None:
    result.send(asyncio.run(_push(config)))
