"""Load generators: persistent client processes, each an asyncio loop with requests in flight.

The orchestrator starts ``processes`` workers once (``spawn``, so no state leaks from the
parent) and hands every measurement to all of them at once. A job names its door (NATS
request/reply, gRPC unary, HTTP/1.1 GET on keep-alive connections), its target and the
payloads to cycle through; every worker waits for the same wall-clock start, runs a warm-up,
then a measured window. A request counts when it both starts and completes inside the window;
its latency is kept.

Clients stay as cheap as their libraries allow: request payloads are encoded beforehand
(Avro for CDTP, protobuf for gRPC; the gRPC call passes raw bytes), replies are not decoded
while measuring (the orchestrator checks sample answers before each measurement).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import random
import time
from dataclasses import dataclass, field
from typing import Any

NATS = "nats"
GRPC = "grpc"
HTTP = "http"


@dataclass(frozen=True)
class LoadJob:
    door: str
    target: str  # NATS URL, gRPC host:port or HTTP base URL
    route: str  # NATS subject, gRPC method path; unused for HTTP (payloads are paths)
    payloads: list[bytes] | list[str]
    concurrency: int
    warmup: float
    duration: float
    start_at: float = 0.0  # wall clock (time.time()); set by the pool


@dataclass(frozen=True)
class ReceiveJob:
    """Count messages on a subject until ``expected`` arrived or ``idle`` seconds pass."""

    nats_url: str
    subject: str
    expected: int
    timeout: float
    idle: float = 5.0


@dataclass
class LoadResult:
    completed: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds
    duration: float = 0.0
    cpu_seconds: float = 0.0
    error_sample: str = ""


@dataclass
class ReceiveResult:
    count: int = 0
    first: float | None = None  # wall clock of the first message
    last: float | None = None
    arrivals: list[float] = field(default_factory=list)  # wall clock of every message


async def _nats_client(job: LoadJob) -> tuple[Any, Any]:
    import nats

    client = await nats.connect(job.target, max_reconnect_attempts=-1, pending_size=1 << 26)

    async def call(payload: bytes) -> None:
        await client.request(job.route, payload, timeout=10)

    return call, client.close


async def _grpc_client(job: LoadJob) -> tuple[Any, Any]:
    import grpc

    channel = grpc.aio.insecure_channel(job.target)
    await channel.channel_ready()
    method = channel.unary_unary(job.route, request_serializer=None, response_deserializer=None)

    async def call(payload: bytes) -> None:
        await method(payload, timeout=10)

    return call, channel.close


class _Http11Connection:
    """One HTTP/1.1 keep-alive connection: GET, read the status, headers and body.

    Hand-written on asyncio streams because httpx, measured against the same Envoy on this
    machine, tops out at a few hundred requests per second with 16 connections in one
    process (about 3 ms of client time per request) while this does well over a thousand;
    with httpx the REST scenario measured httpx rather than otao.
    """

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> int:
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._reader, self._writer
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            "Accept: application/json\r\n\r\n".encode()
        )
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            headers = {}
            for raw in lines[1:]:
                name, _, value = raw.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if b"content-length" in headers:
                await reader.readexactly(int(headers[b"content-length"]))
            elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            if headers.get(b"connection", b"").lower() == b"close":
                await self.close()
        except BaseException:
            await self.close()
            raise
        return status

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def _http_client(job: LoadJob) -> tuple[Any, Any]:
    from urllib.parse import urlsplit

    target = urlsplit(job.target)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    idle: list[_Http11Connection] = [_Http11Connection(host, port) for _ in range(job.concurrency)]
    every = list(idle)

    async def call(path: str) -> None:
        connection = idle.pop()
        try:
            status = await connection.get(path)
        finally:
            idle.append(connection)
        if status != 200:
            raise RuntimeError(f"HTTP {status}")

    async def close() -> None:
        for connection in every:
            await connection.close()

    return call, close


_CLIENTS = {NATS: _nats_client, GRPC: _grpc_client, HTTP: _http_client}


async def _run_load(job: LoadJob) -> LoadResult:
    call, close = await _CLIENTS[job.door](job)
    result = LoadResult(duration=job.duration)
    # Wall-clock start shared by all workers, mapped onto this process' perf_counter.
    begin = time.perf_counter() + (job.start_at - time.time()) + job.warmup
    end = begin + job.duration
    payloads = job.payloads
    cpu_at_begin = 0.0

    async def worker(index: int) -> None:
        position = random.randrange(len(payloads))
        while True:
            started = time.perf_counter()
            if started >= end:
                return
            payload = payloads[position]
            position = (position + 1 + index) % len(payloads)
            try:
                await call(payload)
            except Exception as exc:
                result.errors += 1
                if not result.error_sample:
                    result.error_sample = f"{type(exc).__name__}: {exc}"[:300]
                await asyncio.sleep(0.01)
                continue
            finished = time.perf_counter()
            if started >= begin and finished <= end:
                result.latencies.append(finished - started)

    async def cpu_mark() -> None:
        nonlocal cpu_at_begin
        await asyncio.sleep(max(0.0, begin - time.perf_counter()))
        cpu_at_begin = time.process_time()

    await asyncio.sleep(max(0.0, job.start_at - time.time()))
    marker = asyncio.create_task(cpu_mark())
    await asyncio.gather(*(worker(i) for i in range(job.concurrency)))
    await marker
    result.cpu_seconds = time.process_time() - cpu_at_begin
    result.completed = len(result.latencies)
    await close()
    return result


async def _run_receive(job: ReceiveJob, ready: multiprocessing.connection.Connection) -> Any:
    import nats

    client = await nats.connect(job.nats_url, pending_size=1 << 26)
    result = ReceiveResult()
    done = asyncio.Event()

    async def on_message(_msg: Any) -> None:
        now = time.time()
        if result.first is None:
            result.first = now
        result.last = now
        result.count += 1
        result.arrivals.append(now)
        if result.count >= job.expected:
            done.set()

    await client.subscribe(
        job.subject, cb=on_message, pending_msgs_limit=2_000_000, pending_bytes_limit=1 << 30
    )
    await client.flush()
    ready.send("ready")
    deadline = time.monotonic() + job.timeout
    while not done.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        if result.last is not None and time.time() - result.last > job.idle:
            break  # Nothing more is coming.
    await client.close()
    return result


def _worker_main(connection: multiprocessing.connection.Connection) -> None:
    while True:
        job = connection.recv()
        if job is None:
            return
        try:
            if isinstance(job, ReceiveJob):
                outcome: Any = asyncio.run(_run_receive(job, connection))
            else:
                outcome = asyncio.run(_run_load(job))
        except Exception as exc:
            outcome = exc
        connection.send(outcome)


class WorkerPool:
    """``size`` persistent client processes; ``run`` spreads one load over all of them."""

    def __init__(self, size: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._connections: list[multiprocessing.connection.Connection] = []
        self._processes: list[Any] = []
        for index in range(size):
            parent, child = context.Pipe()
            process = context.Process(
                target=_worker_main, args=(child,), name=f"bench-client-{index}", daemon=True
            )
            process.start()
            self._connections.append(parent)
            self._processes.append(process)

    @property
    def size(self) -> int:
        return len(self._processes)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes]

    def run(self, job: LoadJob, total_concurrency: int, start_at: float) -> LoadResult:
        """Run ``job`` on every worker with ``total_concurrency`` split between them, all
        starting at ``start_at`` (wall clock; leave about a second to connect)."""
        share, extra = divmod(total_concurrency, self.size)
        for index, connection in enumerate(self._connections):
            concurrency = share + (1 if index < extra else 0)
            connection.send(
                LoadJob(
                    door=job.door,
                    target=job.target,
                    route=job.route,
                    payloads=job.payloads,
                    concurrency=concurrency,
                    warmup=job.warmup,
                    duration=job.duration,
                    start_at=start_at,
                )
            )
        merged = LoadResult(duration=job.duration)
        for connection in self._connections:
            outcome = connection.recv()
            if isinstance(outcome, Exception):
                raise RuntimeError(f"load client failed: {outcome!r}") from outcome
            merged.completed += outcome.completed
            merged.errors += outcome.errors
            merged.latencies.extend(outcome.latencies)
            merged.cpu_seconds += outcome.cpu_seconds
            merged.error_sample = merged.error_sample or outcome.error_sample
        return merged

    def start_receiver(self, job: ReceiveJob) -> multiprocessing.connection.Connection:
        """Start counting on the first worker; returns once it is subscribed."""
        connection = self._connections[0]
        connection.send(job)
        if connection.recv() != "ready":
            raise RuntimeError("receiver did not start")
        return connection

    @staticmethod
    def receiver_result(connection: multiprocessing.connection.Connection) -> ReceiveResult:
        outcome = connection.recv()
        if isinstance(outcome, Exception):
            raise RuntimeError(f"receiver failed: {outcome!r}") from outcome
        assert isinstance(outcome, ReceiveResult)
        return outcome

    def close(self) -> None:
        for connection in self._connections:
            with contextlib.suppress(BrokenPipeError, OSError):
                connection.send(None)
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
