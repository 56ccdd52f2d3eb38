"""``python -m bench``: every scenario, otao and its baseline in the same run.

See bench/README.md for the method. Writes bench/results/latest.json and latest.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import grpc
import httpx
import nats
from google.protobuf import json_format
from kaa.otao.v1 import resolution_pb2, software_pb2, software_pb2_grpc
from pymongo import AsyncMongoClient

from bench import baselines, profiles, report, seed
from bench.load import GRPC, HTTP, NATS, LoadJob, ReceiveJob, ReceiveResult, WorkerPool
from bench.stack import DATABASE, OTAO_NAME, Stack, command_pid, cpu_seconds
from otao.messaging.avro import AvroCodec
from otao.messaging.records import ConfigRequest, ConfigResponse, ConfigUpdated
from otao.messaging.subjects import cdtp_request_subject, config_updated_subject

RESULTS = Path(__file__).resolve().parent / "results"
CODEC = AvroCodec()


@dataclass
class Options:
    duration: float = 8.0  # measured seconds per side, in two windows (ABBA)
    warmup: float = 0.75
    processes: int = 2
    concurrency: int = 32
    definitions: list[int] = field(default_factory=lambda: [10, 100, 1_000, 10_000])
    endpoints: list[int] = field(default_factory=lambda: [1_000, 10_000, 100_000])
    push_endpoints: int = 100_000
    out: Path = RESULTS
    keep: bool = False
    only: list[str] = field(default_factory=list)  # scenario groups to run (default: all)
    profile: bool = False


@dataclass
class Measurement:
    completed: int
    seconds: float
    latencies: list[float]
    errors: int
    error_sample: str
    client_cpu_seconds: float
    server_cpu: dict[str, float]  # cores used by each server process during the window
    machine_busy: float  # cores busy on the whole machine during the window

    def merge(self, other: Measurement) -> Measurement:
        seconds = self.seconds + other.seconds
        return Measurement(
            completed=self.completed + other.completed,
            seconds=seconds,
            latencies=self.latencies + other.latencies,
            errors=self.errors + other.errors,
            error_sample=self.error_sample or other.error_sample,
            client_cpu_seconds=self.client_cpu_seconds + other.client_cpu_seconds,
            server_cpu={
                k: round(
                    (v * self.seconds + other.server_cpu.get(k, 0.0) * other.seconds) / seconds, 2
                )
                for k, v in self.server_cpu.items()
            },
            machine_busy=round(
                (self.machine_busy * self.seconds + other.machine_busy * other.seconds) / seconds,
                2,
            ),
        )

    @property
    def rps(self) -> float:
        return self.completed / self.seconds

    @property
    def p50_ms(self) -> float:
        return _percentile(self.latencies, 0.50) * 1000

    @property
    def p99_ms(self) -> float:
        return _percentile(self.latencies, 0.99) * 1000

    @property
    def client_cpu(self) -> float:
        return round(self.client_cpu_seconds / self.seconds, 2)


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _per_request(measured: Measurement) -> dict[str, float]:
    """Microseconds of CPU each server process spent per counted request."""
    rps = measured.rps
    return {
        k: round(cores * 1e6 / rps, 1) if rps else 0.0 for k, cores in measured.server_cpu.items()
    }


def _push_rate(result: ReceiveResult) -> float:
    """Notifications a second between the first and the last that arrived."""
    if result.count < 2 or result.first is None or result.last is None:
        return 0.0
    return (result.count - 1) / (result.last - result.first) if result.last > result.first else 0.0


@dataclass(frozen=True)
class PushTimes:
    """What one side of a push scenario received, from when it started, on how many cores."""

    received: ReceiveResult
    started: float
    cores: dict[str, float]


def push_scenario(name: str, endpoints: int, ours: PushTimes, base: PushTimes) -> dict[str, Any]:
    """A push scenario's result: otao's notifications against walk-and-publish's (make bench
    and make bench-scale report the same fields)."""
    ours_rate, base_rate = _push_rate(ours.received), _push_rate(base.received)
    got, sent = ours.received, base.received
    arrivals = [t - ours.started for t in got.arrivals]
    return {
        "name": name,
        "otao_rps": round(ours_rate, 1),
        "baseline_rps": round(base_rate, 1),
        "ratio": round(ours_rate / base_rate, 3) if base_rate else None,
        "p50_ms": round(_percentile(arrivals, 0.50) * 1000, 1),
        "p99_ms": round(_percentile(arrivals, 0.99) * 1000, 1),
        "door": "CDTP",
        "path": "push",
        "endpoints": endpoints,
        "notifications_per_s": round(ours_rate, 1),
        "notifications": got.count,
        "time_to_first_ms": round(((got.first or ours.started) - ours.started) * 1000, 1),
        "seconds_to_last": round((got.last or ours.started) - ours.started, 2),
        "baseline_notifications": sent.count,
        "baseline_time_to_first_ms": round(((sent.first or base.started) - base.started) * 1000, 1),
        "baseline_seconds_to_last": round((sent.last or base.started) - base.started, 2),
        "server_cpu_cores": ours.cores,
        "baseline_server_cpu_cores": base.cores,
    }


def _machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (Linux /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


class CpuSampler(threading.Thread):
    """CPU time of some processes, and of the machine, between two wall-clock instants."""

    def __init__(self, pids: dict[str, int], begin: float, end: float) -> None:
        super().__init__(daemon=True)
        self.pids, self.begin, self.end = pids, begin, end
        self.cores: dict[str, float] = {}
        self.machine_busy = 0.0

    def run(self) -> None:
        time.sleep(max(0.0, self.begin - time.time()))
        before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        busy_before, _ = _machine_busy_seconds()
        started = time.time()
        time.sleep(max(0.0, self.end - time.time()))
        elapsed = time.time() - started
        self.cores = {
            name: round((cpu_seconds(pid) - before[name]) / elapsed, 2)
            for name, pid in self.pids.items()
        }
        self.machine_busy = round((_machine_busy_seconds()[0] - busy_before) / elapsed, 2)


class CpuMeter:
    """Cores used by some processes from ``start()`` until ``stop()``."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._before: dict[str, float] = {}
        self._started = 0.0

    def start(self) -> CpuMeter:
        self._before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._started = time.time()
        return self

    def stop(self) -> dict[str, float]:
        elapsed = time.time() - self._started
        return {
            name: round((cpu_seconds(pid) - self._before[name]) / elapsed, 2)
            for name, pid in self.pids.items()
        }


class Profiler(threading.Thread):
    """py-spy on otao for one measured window; writes raw stacks and a summary beside."""

    def __init__(self, pid: int, begin: float, seconds: float, raw: Path) -> None:
        super().__init__(daemon=True)
        self.pid, self.begin, self.seconds, self.raw = pid, begin, seconds, raw

    def run(self) -> None:
        time.sleep(max(0.0, self.begin - time.time()))
        process = profiles.start(self.pid, self.seconds, self.raw)
        if process is None:
            return
        process.wait()
        if self.raw.exists():
            self.raw.with_suffix(".txt").write_text(profiles.summarize(self.raw))


# ---------------------------------------------------------------------------------------------
# Requests


def cdtp_request(app_version: str, endpoint_id: str, version: str | None) -> bytes:
    return CODEC.encode(
        ConfigRequest(
            correlation_id=uuid.uuid4().hex,
            timestamp=int(time.time() * 1000),
            app_version_name=app_version,
            endpoint_id=endpoint_id,
            config_id=version,
        )
    )


def grpc_request(application: str, endpoint_id: str, version: str) -> bytes:
    return bytes(
        resolution_pb2.ResolveUpdateRequest(
            application_name=application, endpoint_id=endpoint_id, current_version=version
        ).SerializeToString()
    )


def rest_path(application: str, endpoint_id: str, version: str) -> str:
    return (
        f"/api/v1/applications/{application}/endpoints/{endpoint_id}/software:resolve"
        f"?currentVersion={version}"
    )


@dataclass
class Comparison:
    """One scenario: otao's load and its baseline's, with the processes serving each."""

    name: str
    otao: LoadJob
    otao_pids: dict[str, int]
    baseline: LoadJob
    baseline_pids: dict[str, int]
    extra: dict[str, Any]


class Bench:
    def __init__(self, options: Options, stack: Stack, pool: WorkerPool) -> None:
        self.options = options
        self.stack = stack
        self.pool = pool
        self.scenarios: list[dict[str, Any]] = []
        self.subject = cdtp_request_subject(OTAO_NAME)
        self.nc: Any = None
        self.channel: grpc.aio.Channel | None = None

    # -- measuring

    async def measure(
        self, job: LoadJob, pids: dict[str, int], profile: str | None = None
    ) -> Measurement:
        start_at = time.time() + 0.5
        begin = start_at + job.warmup
        sampler = CpuSampler(pids, begin, begin + job.duration)
        sampler.start()
        profiler = None
        if profile is not None:
            path = self.profile_path(profile)
            profiler = Profiler(self.stack.otao_pid, begin, job.duration, path)
            profiler.start()
        result = await asyncio.to_thread(self.pool.run, job, self.options.concurrency, start_at)
        await asyncio.to_thread(sampler.join)
        if profiler is not None:
            await asyncio.to_thread(profiler.join)
        return Measurement(
            completed=result.completed,
            seconds=job.duration,
            latencies=result.latencies,
            errors=result.errors,
            error_sample=result.error_sample,
            client_cpu_seconds=result.cpu_seconds,
            server_cpu=sampler.cores,
            machine_busy=sampler.machine_busy,
        )

    def infrastructure_pids(self) -> dict[str, int]:
        assert self.stack.nats is not None and self.stack.mongo is not None
        assert self.stack.nats.pid is not None and self.stack.mongo.pid is not None
        return {
            "nx-27017": command_pid(self.stack.mongo.pid),
            "nats-server": command_pid(self.stack.nats.pid),
        }

    def profile_path(self, name: str) -> Path:
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        return self.options.out / "profiles" / f"{slug}.raw"

    def job(self, door: str, target: str, route: str, payloads: list[Any]) -> LoadJob:
        return LoadJob(
            door=door,
            target=target,
            route=route,
            payloads=payloads,
            concurrency=0,
            warmup=self.options.warmup,
            duration=self.options.duration / 2,
        )

    async def compare(
        self,
        name: str,
        otao: LoadJob,
        otao_pids: dict[str, int],
        baseline: LoadJob,
        baseline_pids: dict[str, int],
        **extra: Any,
    ) -> dict[str, Any]:
        item = Comparison(name, otao, otao_pids, baseline, baseline_pids, extra)
        return (await self.compare_all([item]))[0]

    async def compare_all(self, items: list[Comparison]) -> list[dict[str, Any]]:
        """Windows in the order B1 O1 B2 O2 ... Bn On, then On Bn ... O1 B1: every item is
        measured ABBA (baseline, otao, otao, baseline), and drift in the machine's load (it is
        shared) falls alike on otao and its baseline, and across the items of a sweep."""
        first: list[tuple[Measurement, Measurement]] = []
        for item in items:
            base = await self.measure(item.baseline, item.baseline_pids)
            ours = await self.measure(item.otao, item.otao_pids)
            first.append((base, ours))
        merged: dict[int, tuple[Measurement, Measurement]] = {}
        for index in reversed(range(len(items))):
            item = items[index]
            profile = item.name if self.options.profile else None
            ours = first[index][1].merge(await self.measure(item.otao, item.otao_pids, profile))
            base = first[index][0].merge(await self.measure(item.baseline, item.baseline_pids))
            merged[index] = (base, ours)
        scenarios = []
        for index, item in enumerate(items):
            base, ours = merged[index]
            scenario = self.scenario(item, base, ours)
            self.scenarios.append(scenario)
            print(report.line(scenario), flush=True)
            scenarios.append(scenario)
        return scenarios

    @staticmethod
    def scenario(item: Comparison, base: Measurement, ours: Measurement) -> dict[str, Any]:
        scenario: dict[str, Any] = {
            "name": item.name,
            "otao_rps": round(ours.rps, 1),
            "baseline_rps": round(base.rps, 1),
            "ratio": round(ours.rps / base.rps, 3) if base.rps else None,
            "p50_ms": round(ours.p50_ms, 2),
            "p99_ms": round(ours.p99_ms, 2),
            **item.extra,
            "baseline_p50_ms": round(base.p50_ms, 2),
            "baseline_p99_ms": round(base.p99_ms, 2),
            "errors": ours.errors,
            "baseline_errors": base.errors,
            "server_cpu_cores": ours.server_cpu,
            "baseline_server_cpu_cores": base.server_cpu,
            # CPU of each server process per counted request: on this shared machine it moves
            # far less between runs than throughput does (issue 16's comparisons use it).
            "server_cpu_us_per_request": _per_request(ours),
            "baseline_server_cpu_us_per_request": _per_request(base),
            "client_cpu_cores": ours.client_cpu,
            "baseline_client_cpu_cores": base.client_cpu,
            "machine_busy_cores": ours.machine_busy,
            "baseline_machine_busy_cores": base.machine_busy,
        }
        if ours.error_sample or base.error_sample:
            scenario["error_sample"] = ours.error_sample or base.error_sample
        return scenario

    # -- checks: every scenario's answers are verified before they are measured

    async def cdtp(self, subject: str, payload: bytes) -> ConfigResponse:
        reply = await self.nc.request(subject, payload, timeout=30)
        return CODEC.decode(ConfigResponse, reply.data)

    async def check_cdtp(self, payload: bytes, offered: str | None) -> None:
        response = await self.cdtp(self.subject, payload)
        if response.status_code != 200 or response.config_id != offered:
            raise RuntimeError(f"unexpected CDTP answer {response!r}, expected {offered!r}")

    async def check_grpc(self, payload: bytes, offered: str | None) -> None:
        assert self.channel is not None
        method = self.channel.unary_unary(
            baselines.RESOLVE_METHOD, request_serializer=None, response_deserializer=None
        )
        raw = await method(payload, timeout=30)
        response = resolution_pb2.ResolveUpdateResponse.FromString(raw)
        if response.update_available != (offered is not None) or (
            offered and response.version != offered
        ):
            raise RuntimeError(f"unexpected gRPC answer {response}, expected {offered!r}")

    async def check_rest(self, base_url: str, path: str, offered: str | None) -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            response = await client.get(path)
        body = response.json()
        if response.status_code != 200 or body.get("updateAvailable") != (offered is not None):
            raise RuntimeError(f"unexpected REST answer {response.status_code} {body}")

    async def prime(self, payloads: list[bytes]) -> None:
        """Poll each endpoint once (otao records first sightings and offers off the response
        path); then give those background writes time to finish."""
        semaphore = asyncio.Semaphore(32)

        async def one(payload: bytes) -> None:
            async with semaphore:
                await self.cdtp(self.subject, payload)

        await asyncio.gather(*(one(p) for p in payloads))
        await asyncio.sleep(2.0)

    # -- scenarios

    async def steady_and_update(self) -> None:
        stack = self.stack
        assert stack.baseline_config is not None
        assert stack.otao_envoy is not None and stack.baseline_envoy is not None
        app, app_version = seed.BASIC.name, seed.BASIC.app_version
        otao = {"otao": stack.otao_pid}
        base = {"baseline": stack.baselines_pid}

        steady_cdtp = [cdtp_request(app_version, e, seed.BASIC_NEW) for e in seed.STEADY_POOL]
        await self.check_cdtp(steady_cdtp[0], None)
        await self.prime(steady_cdtp)
        await self.compare(
            "steady-state poll / CDTP",
            self.job(NATS, stack.nats_url, self.subject, steady_cdtp),
            otao,
            self.job(NATS, stack.nats_url, stack.baseline_config.noop_subject, steady_cdtp),
            base,
            door="CDTP",
            path="steady-state",
        )

        steady_grpc = [grpc_request(app, e, seed.BASIC_NEW) for e in seed.STEADY_POOL]
        await self.check_grpc(steady_grpc[0], None)
        await self.compare(
            "steady-state poll / gRPC",
            self.job(GRPC, stack.otao_grpc, baselines.RESOLVE_METHOD, steady_grpc),
            otao,
            self.job(
                GRPC,
                f"127.0.0.1:{stack.baseline_config.noop_grpc_port}",
                baselines.RESOLVE_METHOD,
                steady_grpc,
            ),
            base,
            door="gRPC",
            path="steady-state",
        )

        steady_rest = [rest_path(app, e, seed.BASIC_NEW) for e in seed.STEADY_POOL]
        await self.check_rest(stack.otao_envoy.base_url, steady_rest[0], None)
        await self.compare(
            "steady-state poll / REST via Envoy",
            self.job(HTTP, stack.otao_envoy.base_url, "", steady_rest),
            {**otao, "envoy": stack.envoy_pid(stack.otao_envoy)},
            self.job(HTTP, stack.baseline_envoy.base_url, "", steady_rest),
            {**base, "envoy": stack.envoy_pid(stack.baseline_envoy)},
            door="REST",
            path="steady-state",
        )

        update_cdtp = [cdtp_request(app_version, e, seed.BASIC_OLD) for e in seed.UPDATE_POOL]
        await self.check_cdtp(update_cdtp[0], seed.BASIC_NEW)
        await self.prime(update_cdtp)
        await self.compare(
            "update available / CDTP",
            self.job(NATS, stack.nats_url, self.subject, update_cdtp),
            otao,
            self.job(NATS, stack.nats_url, stack.baseline_config.reads_subject, update_cdtp),
            base,
            door="CDTP",
            path="update-available",
            id_reads_per_request=1,
        )

        # The same poll with a 3-wave plan against itself without one (issue 13: >= 0.9).
        planned_cdtp = [cdtp_request(app_version, e, seed.PLANNED_OLD) for e in seed.PLANNED_POOL]
        await self.check_cdtp(planned_cdtp[0], seed.PLANNED_NEW)
        await self.prime(planned_cdtp)
        await self.compare(
            "update available, 3-wave plan / CDTP (baseline: no plan)",
            self.job(NATS, stack.nats_url, self.subject, planned_cdtp),
            otao,
            self.job(NATS, stack.nats_url, self.subject, update_cdtp),
            otao,
            door="CDTP",
            path="update-available-planned",
            id_reads_per_request=1,
        )

        update_grpc = [grpc_request(app, e, seed.BASIC_OLD) for e in seed.UPDATE_POOL]
        await self.check_grpc(update_grpc[0], seed.BASIC_NEW)
        await self.compare(
            "update available / gRPC",
            self.job(GRPC, stack.otao_grpc, baselines.RESOLVE_METHOD, update_grpc),
            otao,
            self.job(
                GRPC,
                f"127.0.0.1:{stack.baseline_config.reads_grpc_port}",
                baselines.RESOLVE_METHOD,
                update_grpc,
            ),
            base,
            door="gRPC",
            path="update-available",
            id_reads_per_request=1,
        )

    async def definitions_sweep(self) -> None:
        stack = self.stack
        assert stack.baseline_config is not None
        items = []
        for count in self.options.definitions:
            application = seed.definitions_app(count)
            pool = seed.definitions_pool(count)
            payloads = [cdtp_request(application.app_version, e, v) for e, v in pool]
            # Endpoint 0 reports 1.0.0; 1.1.0, 1.2.0 and 1.3.0 upgrade it: the highest wins.
            await self.check_cdtp(payloads[0], seed.chain_version(min(count - 1, 3)))
            await self.prime(payloads)
            items.append(
                Comparison(
                    f"definitions {count:,} / CDTP update available",
                    self.job(NATS, stack.nats_url, self.subject, payloads),
                    {"otao": stack.otao_pid},
                    self.job(NATS, stack.nats_url, stack.baseline_config.reads_subject, payloads),
                    {"baseline": stack.baselines_pid},
                    {"door": "CDTP", "path": "update-available", "definitions": count},
                )
            )
        # Every size in the same stretch of time (see compare_all): the machine's load drifts.
        await self.compare_all(items)

    async def endpoints_sweep(self, seeder: seed.Seeder) -> None:
        stack = self.stack
        assert stack.baseline_config is not None
        known = 0
        app_version = seed.FLEET.app_version
        for count in self.options.endpoints:
            await seeder.fleet(known, count)
            known = count
            indexes = list(range(count))
            random.Random(count).shuffle(indexes)
            payloads = [
                cdtp_request(app_version, seed.fleet_endpoint(i), seed.FLEET_OLD) for i in indexes
            ]
            await self.check_cdtp(payloads[0], seed.FLEET_NEW)
            await self.compare(
                f"endpoints {count:,} / CDTP update available",
                self.job(NATS, stack.nats_url, self.subject, payloads),
                {"otao": stack.otao_pid},
                self.job(NATS, stack.nats_url, stack.baseline_config.reads_subject, payloads),
                {"baseline": stack.baselines_pid},
                door="CDTP",
                path="update-available",
                endpoints=count,
            )

    async def push(self, endpoints: int) -> None:
        stack = self.stack
        subject = config_updated_subject(OTAO_NAME)
        example = CODEC.encode(
            ConfigUpdated(
                correlation_id=uuid.uuid4().hex,
                timestamp=int(time.time() * 1000),
                app_version_name=seed.FLEET.app_version,
                endpoint_id=seed.fleet_endpoint(0),
                config_id=seed.FLEET_PUSHED,
                content=seed.specification(seed.FLEET.name, seed.FLEET_PUSHED).encode(),
                originator_replica_id="otao-0123456789ab",
            )
        )
        timeout = 240.0

        # Baseline: the same walk over the same documents, one publish per endpoint.
        receiver = self.pool.start_receiver(
            ReceiveJob(stack.nats_url, "bench.baseline.push", endpoints, timeout)
        )
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        pusher = context.Process(
            target=baselines.push,
            args=(
                baselines.PushBaselineConfig(
                    stack.nats_url,
                    stack.mongo_uri,
                    DATABASE,
                    seed.TENANT,
                    seed.FLEET.name,
                    "bench.baseline.push",
                    example,
                    500,
                ),
                child,
            ),
        )
        pusher.start()
        assert pusher.pid is not None
        meter = CpuMeter({"baseline": pusher.pid, **self.infrastructure_pids()}).start()
        base = await asyncio.to_thread(self.pool.receiver_result, receiver)
        base_cores = meter.stop()
        base_started, _ = await asyncio.to_thread(parent.recv)
        pusher.join()

        # otao: one definition change makes every endpoint of the fleet eligible for it.
        receiver = self.pool.start_receiver(ReceiveJob(stack.nats_url, subject, endpoints, timeout))
        assert self.channel is not None
        stub = software_pb2_grpc.SoftwareServiceStub(self.channel)
        created = software_pb2.Software(
            version=seed.FLEET_PUSHED,
            upgradable_from=[seed.FLEET_OLD],
            rollout_strategy="general",
        )
        json_format.Parse(
            seed.specification(seed.FLEET.name, seed.FLEET_PUSHED), created.specification
        )
        changed_at = time.time()
        if self.options.profile:
            Profiler(
                stack.otao_pid, changed_at, 8.0, self.profile_path(f"push {endpoints}")
            ).start()
        await stub.CreateSoftware(
            software_pb2.CreateSoftwareRequest(application_name=seed.FLEET.name, software=created),
            timeout=30,
        )
        meter = CpuMeter({"otao": stack.otao_pid, **self.infrastructure_pids()}).start()
        ours = await asyncio.to_thread(self.pool.receiver_result, receiver)
        ours_cores = meter.stop()
        job_seconds = await self._push_job_seconds(timeout)

        scenario = push_scenario(
            f"push {endpoints:,} endpoints / CDTP ConfigUpdated",
            endpoints,
            PushTimes(ours, changed_at, ours_cores),
            PushTimes(base, base_started, base_cores),
        )
        scenario["job_seconds"] = job_seconds
        self.scenarios.append(scenario)
        print(report.line(scenario), flush=True)

    async def _push_job_seconds(self, timeout: float) -> float | None:
        """Seconds from the job's creation until it finished (offers recorded too)."""
        return await finished_job_seconds(self.stack.mongo_uri, seed.FLEET.name, timeout)


async def finished_job_seconds(
    mongo_uri: str, application: str, timeout: float, id_prefix: str = ""
) -> float | None:
    """Seconds from a done push job's creation to its end (offers recorded too): the first
    done job of ``application`` whose id starts with ``id_prefix``; None if none is done
    within ``timeout``."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cursor = client[DATABASE]["push_jobs"].find(
                {"application": application, "state": "done"}
            )
            async for job in cursor:
                if str(job["_id"]).startswith(id_prefix) and job.get("finishedAt"):
                    took = _date(job["finishedAt"]) - _date(job["createdAt"])
                    return round(took.total_seconds(), 2)
            await asyncio.sleep(0.25)
        return None
    finally:
        await client.close()


def _date(value: Any) -> datetime:
    # nx-27017 stores a date written with $set as its ISO text.
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(parsed, datetime)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def _run(options: Options, run_dir: Path) -> dict[str, Any]:
    started = time.monotonic()
    stack = Stack(run_dir, options.definitions)
    pool = WorkerPool(options.processes)
    bench = Bench(options, stack, pool)
    timings: dict[str, float] = {}
    try:
        print(f"bench: run directory {run_dir}", flush=True)
        stack.start_infrastructure()
        # Definitions first: otao caches catalogs and learns of changes made through it (or
        # another replica), not of documents written behind its back.
        seeder = seed.Seeder(stack.mongo_uri, DATABASE, stack.database_file)
        mark = time.monotonic()
        await seeder.basic()
        for count in options.definitions:
            await seeder.definitions(count)
        timings["seed_definitions_s"] = round(time.monotonic() - mark, 1)
        stack.start_otao()
        stack.start_baselines(
            grpc_reply=bytes(
                resolution_pb2.ResolveUpdateResponse(
                    current_version=seed.BASIC_NEW
                ).SerializeToString()
            ),
            cdtp_reply=CODEC.encode(
                ConfigResponse(
                    correlation_id=uuid.uuid4().hex,
                    timestamp=int(time.time() * 1000),
                    app_version_name=seed.BASIC.app_version,
                    endpoint_id=seed.STEADY_POOL[0],
                    status_code=200,
                )
            ),
        )
        stack.start_envoys()
        bench.nc = await nats.connect(stack.nats_url)
        bench.channel = grpc.aio.insecure_channel(stack.otao_grpc)
        print(report.header(), flush=True)

        def wanted(group: str) -> bool:
            return not options.only or group in options.only

        mark = time.monotonic()
        if wanted("requests"):
            await bench.steady_and_update()
        if wanted("definitions"):
            await bench.definitions_sweep()
        timings["request_scenarios_s"] = round(time.monotonic() - mark, 1)
        mark = time.monotonic()
        if wanted("endpoints"):
            await bench.endpoints_sweep(seeder)
        timings["endpoint_sweep_s"] = round(time.monotonic() - mark, 1)
        if options.push_endpoints and wanted("push"):
            seeded = max(options.endpoints) if wanted("endpoints") else 0
            if options.push_endpoints > seeded:
                await seeder.fleet(seeded, options.push_endpoints)
            mark = time.monotonic()
            await bench.push(options.push_endpoints)
            timings["push_s"] = round(time.monotonic() - mark, 1)
        timings["seed_seconds"] = round(seeder.seconds, 1)
        await seeder.close()
        await bench.nc.close()
        await bench.channel.close(None)
    finally:
        pool.close()
        stack.stop()
    timings["total_s"] = round(time.monotonic() - started, 1)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": report.machine(),
        "method": {
            "measured_seconds": options.duration,
            "warmup_seconds": options.warmup,
            "client_processes": options.processes,
            "in_flight": options.concurrency,
            "http_client": (
                "asyncio HTTP/1.1 keep-alive client (bench/load.py), "
                "one connection per request in flight"
            ),
            "grpc_client": "grpc.aio, raw bytes (pre-serialized requests)",
            "nats_client": "nats-py request/reply, pre-encoded Avro requests",
            "database": "nx-27017 (started by the bench)",
        },
        "timings": timings,
        "scenarios": bench.scenarios,
    }


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--duration", type=float, default=Options.duration)
    parser.add_argument("--warmup", type=float, default=Options.warmup)
    parser.add_argument("--processes", type=int, default=Options.processes)
    parser.add_argument("--concurrency", type=int, default=Options.concurrency)
    parser.add_argument("--definitions", type=int, nargs="+")
    parser.add_argument("--endpoints", type=int, nargs="+")
    parser.add_argument("--push-endpoints", type=int, default=Options.push_endpoints)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record otao with py-spy in one window per scenario (bench/results/profiles/)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["requests", "definitions", "endpoints", "push"],
        default=[],
        help="run only these scenario groups",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and short windows (a smoke test)"
    )
    args = parser.parse_args(argv)
    options = Options(
        duration=args.duration,
        warmup=args.warmup,
        processes=args.processes,
        concurrency=args.concurrency,
        push_endpoints=args.push_endpoints,
        out=args.out,
        keep=args.keep,
        only=args.only,
        profile=args.profile,
    )
    if options.profile and profiles.py_spy() is None:
        parser.error("--profile needs py-spy: .venv/bin/pip install py-spy")
    if args.quick:
        options.duration, options.warmup = 2.0, 0.5
        options.definitions, options.endpoints = [10, 1_000], [1_000, 5_000]
        options.push_endpoints = 5_000
    if args.definitions:
        options.definitions = args.definitions
    if args.endpoints:
        options.endpoints = args.endpoints
    return options


class Reporter(Protocol):
    """What make bench's and make bench-scale's report modules both offer."""

    def targets(self, results: dict[str, Any]) -> list[dict[str, Any]]: ...
    def chart(self, results: dict[str, Any], path: Path) -> Path: ...
    def markdown(self, results: dict[str, Any]) -> str: ...
    def summary(self, results: dict[str, Any]) -> str: ...


def write_results(results: dict[str, Any], out: Path, stem: str, reporter: Reporter) -> None:
    """Judge the targets, then write <stem>.json, .png and .md under ``out`` and say so."""
    results["targets"] = reporter.targets(results)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    chart = reporter.chart(results, out / f"{stem}.png")
    (out / f"{stem}.md").write_text(reporter.markdown(results), encoding="utf-8")
    print(reporter.summary(results), flush=True)
    label = "bench" if stem == "latest" else "bench-scale"
    print(f"{label}: wrote {json_path} and {chart} in {results['timings']['total_s']} s")


def main(argv: list[str] | None = None) -> None:
    options = parse(argv)
    run_dir = Path(tempfile.mkdtemp(prefix="otao-bench-"))
    results = asyncio.run(_run(options, run_dir))
    write_results(results, options.out, "latest", report)
    if not options.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
