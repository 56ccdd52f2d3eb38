"""``make bench-scale`` (``python -m bench.scale``): otao with up to a million known endpoints.

The same method as ``make bench`` (bench/run.py: same-run baselines, ABBA windows, answers
checked before measuring), over a fleet that grows 1k -> 10k -> 100k -> 1M known endpoints
(bench/scale_fleet.py). See bench/README.md, "make bench-scale". Writes
bench/results/scale.{json,md,png}.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import nats
from kaa.otao.v1 import resolution_pb2

from bench import report, scale_push, scale_report
from bench import scale_fleet as fleet
from bench.load import GRPC, HTTP, NATS, WorkerPool
from bench.run import (
    CODEC,
    RESULTS,
    Bench,
    Comparison,
    Options,
    cdtp_request,
    grpc_request,
    rest_path,
    write_results,
)
from bench.scale_push import proc_status
from bench.stack import DATABASE, Stack
from otao.messaging.records import ConfigResponse
from otao.services.push import OFFERS_RECORD_FROM

SIZES = [1_000, 10_000, 100_000, 1_000_000]


@dataclass
class ScaleOptions:
    sizes: list[int] = field(default_factory=lambda: list(SIZES))
    duration: float = 4.0  # measured seconds per side, in two windows (ABBA)
    warmup: float = 0.5
    pool: int = 20_000  # endpoints drawn (uniformly, from all known ones) per poll scenario
    doors: bool = True  # gRPC and REST at the largest size too (CPU per poll by door)
    push: bool = True
    # The measured push: a general release, or (--wave) the opening of a plan's second wave
    # (1% -> 100%) to the endpoints the first one left out.
    wave: bool = False
    job_wait: float = 15.0  # seconds to wait, after the last notification, for the job's end
    # Seconds for the whole run: a size that would end it later (its seeding estimated at the
    # rate of the size before) is skipped and reported, so a slow or busy machine cannot
    # stretch `make bench-scale` past 10 minutes.
    budget: float = 570.0
    # Seed through the wire (insert_many) even on the bench's own nx-27017, instead of
    # writing its SQLite file directly (bench/scale_fleet.py).
    wire_seed: bool = False
    out: Path = RESULTS
    keep: bool = False


def cpu_us_per_poll(scenario: dict[str, Any]) -> None:
    """CPU microseconds per poll of each process (cores used / polls a second)."""
    for side, rps in (("", scenario["otao_rps"]), ("baseline_", scenario["baseline_rps"])):
        cores = scenario.get(f"{side}server_cpu_cores", {})
        scenario[f"{side}cpu_us_per_poll"] = {
            name: round(value / rps * 1e6, 1) for name, value in cores.items() if rps
        }


class ScaleBench:
    def __init__(self, options: ScaleOptions, stack: Stack, bench: Bench) -> None:
        self.options, self.stack, self.bench = options, stack, bench
        direct = None if options.wire_seed else stack.database_file
        self.seeder = fleet.FleetSeeder(stack.mongo_uri, DATABASE, direct)
        self.sizes: list[dict[str, Any]] = []
        self.last_pools: tuple[list[int], list[int]] = ([], [])

    def memory(self) -> dict[str, Any]:
        otao = proc_status(self.stack.otao_pid)
        database = proc_status(self.bench.infrastructure_pids()["nx-27017"])
        return {"otao_rss_bytes": otao["VmRSS"], "nx27017_rss_bytes": database["VmRSS"]}

    def pools(self, size: int) -> tuple[list[int], list[int]]:
        """(steady-state, update-available) endpoint indexes drawn from all ``size`` known."""
        rng = random.Random(size)
        newest = range(fleet.VERSIONS - 1, size, fleet.VERSIONS)
        steady = rng.sample(newest, min(len(newest), self.options.pool))
        behind = [i for i in rng.sample(range(size), min(size, self.options.pool * 2))]
        update = [i for i in behind if fleet.offered(i) is not None][: self.options.pool]
        return steady, update

    async def one_size(self, size: int) -> None:
        stack, bench = self.stack, self.bench
        assert stack.baseline_config is not None
        rate = await self.seeder.grow(size)
        stats = await self.seeder.db_stats()
        record: dict[str, Any] = {"endpoints": size, "seeded_per_s": round(rate), "db": stats}
        record.update(self.memory())
        steady, update = self.pools(size)
        app_version = fleet.FLEET.app_version

        def payloads(indexes: list[int]) -> list[bytes]:
            return [
                cdtp_request(app_version, fleet.endpoint_id(i), fleet.version(i % fleet.VERSIONS))
                for i in indexes
            ]

        steady_payloads, update_payloads = payloads(steady), payloads(update)
        await bench.check_cdtp(steady_payloads[0], None)
        await bench.check_cdtp(update_payloads[0], fleet.offered(update[0]))
        otao, base = {"otao": stack.otao_pid}, {"baseline": stack.baselines_pid}
        common = {"door": "CDTP", "endpoints": size}
        scenarios = await bench.compare_all(
            [
                Comparison(
                    f"{size:,} known / CDTP steady-state",
                    bench.job(NATS, stack.nats_url, bench.subject, steady_payloads),
                    otao,
                    bench.job(
                        NATS, stack.nats_url, stack.baseline_config.noop_subject, steady_payloads
                    ),
                    base,
                    {**common, "path": "steady-state"},
                ),
                Comparison(
                    f"{size:,} known / CDTP update available",
                    bench.job(NATS, stack.nats_url, bench.subject, update_payloads),
                    otao,
                    bench.job(
                        NATS, stack.nats_url, stack.baseline_config.reads_subject, update_payloads
                    ),
                    base,
                    {**common, "path": "update-available", "id_reads_per_request": 1},
                ),
            ]
        )
        for scenario in scenarios:
            cpu_us_per_poll(scenario)
        record["otao_rss_after_bytes"] = proc_status(stack.otao_pid)["VmRSS"]
        record["db_bytes_per_endpoint"] = round(stats.get("totalSize", 0) / size, 1)
        self.sizes.append(record)
        print(scale_report.size_line(record), flush=True)
        self.last_pools = steady, update

    async def doors(self) -> None:
        """gRPC and REST polls at the largest size measured: CPU per poll by door."""
        stack, bench = self.stack, self.bench
        size, (steady, update) = self.seeder.known, self.last_pools
        config = stack.baseline_config
        assert config is not None and stack.otao_envoy is not None
        assert stack.baseline_envoy is not None
        app = fleet.FLEET.name
        indexes = steady[: self.options.pool]
        steady_grpc = [grpc_request(app, fleet.endpoint_id(i), fleet.NEWEST) for i in indexes]
        update_grpc = [
            grpc_request(app, fleet.endpoint_id(i), fleet.version(i % fleet.VERSIONS))
            for i in update
        ]
        steady_rest = [rest_path(app, fleet.endpoint_id(i), fleet.NEWEST) for i in indexes]
        await bench.check_grpc(steady_grpc[0], None)
        await bench.check_grpc(update_grpc[0], fleet.offered(update[0]))
        await bench.check_rest(stack.otao_envoy.base_url, steady_rest[0], None)
        otao, base = {"otao": stack.otao_pid}, {"baseline": stack.baselines_pid}
        noop, reads = f"127.0.0.1:{config.noop_grpc_port}", f"127.0.0.1:{config.reads_grpc_port}"
        method = "/kaa.otao.v1.ResolutionService/ResolveUpdate"
        common = {"endpoints": size}
        scenarios = await bench.compare_all(
            [
                Comparison(
                    f"{size:,} known / gRPC steady-state",
                    bench.job(GRPC, stack.otao_grpc, method, steady_grpc),
                    otao,
                    bench.job(GRPC, noop, method, steady_grpc),
                    base,
                    {**common, "door": "gRPC", "path": "steady-state"},
                ),
                Comparison(
                    f"{size:,} known / gRPC update available",
                    bench.job(GRPC, stack.otao_grpc, method, update_grpc),
                    otao,
                    bench.job(GRPC, reads, method, update_grpc),
                    base,
                    {**common, "door": "gRPC", "path": "update-available"},
                ),
                Comparison(
                    f"{size:,} known / REST via Envoy steady-state",
                    bench.job(HTTP, stack.otao_envoy.base_url, "", steady_rest),
                    {**otao, "envoy": stack.envoy_pid(stack.otao_envoy)},
                    bench.job(HTTP, stack.baseline_envoy.base_url, "", steady_rest),
                    {**base, "envoy": stack.envoy_pid(stack.baseline_envoy)},
                    {**common, "door": "REST", "path": "steady-state"},
                ),
            ]
        )
        for scenario in scenarios:
            cpu_us_per_poll(scenario)


# Rough costs of what follows a size's seeding (measured on the 2-core machine): its two
# poll scenarios, the gRPC/REST scenarios, and the push: baseline and otao each send about
# 5,000-10,000 notifications a second; otao records its offers beside the walk once
# OFFERS_RECORD_FROM are pending, on nx-27017 at about OFFERS_PER_S, and the run waits
# job_wait seconds for the job's end.
POLLS_S, DOORS_S, PUSH_PER_S, OFFERS_PER_S = 30.0, 40.0, 8_000.0, 5_000.0


def _rest_estimate(options: ScaleOptions, size: int) -> float:
    push = 0.0
    if options.push:
        walk = size / PUSH_PER_S
        # The offers recorded beside the walk slow it by at most their database time.
        recording = max(0, size - OFFERS_RECORD_FROM) / OFFERS_PER_S
        push = walk + max(walk, recording) + options.job_wait + 10
    return POLLS_S + (DOORS_S if options.doors else 0.0) + push


async def _run(options: ScaleOptions, run_dir: Path) -> dict[str, Any]:
    started = time.monotonic()
    stack = Stack(run_dir, [])
    pool = WorkerPool(2)
    run_options = Options(duration=options.duration, warmup=options.warmup, out=options.out)
    bench = Bench(run_options, stack, pool)
    timings: dict[str, float] = {}
    push: dict[str, Any] | None = None
    skipped: list[dict[str, Any]] = []
    try:
        print(f"bench-scale: run directory {run_dir}", flush=True)
        stack.start_infrastructure()
        scale = ScaleBench(options, stack, bench)
        await scale.seeder.definitions()  # before otao starts: it caches catalogs
        stack.start_otao()
        stack.start_baselines(
            grpc_reply=bytes(
                resolution_pb2.ResolveUpdateResponse(
                    current_version=fleet.NEWEST
                ).SerializeToString()
            ),
            cdtp_reply=CODEC.encode(
                ConfigResponse(
                    correlation_id=uuid.uuid4().hex,
                    timestamp=int(time.time() * 1000),
                    app_version_name=fleet.FLEET.app_version,
                    endpoint_id=fleet.endpoint_id(0),
                    status_code=200,
                )
            ),
        )
        if options.doors:
            stack.start_envoys()
        bench.nc = await nats.connect(stack.nats_url)
        bench.channel = grpc.aio.insecure_channel(stack.otao_grpc)
        print(report.header(), flush=True)
        for size in sorted(options.sizes):
            rate = scale.sizes[-1]["seeded_per_s"] if scale.sizes else 0
            seeding = (size - scale.seeder.known) / rate if rate else 0.0
            finish = time.monotonic() - started + seeding + _rest_estimate(options, size)
            if finish > options.budget:
                # At the seeding rate just measured, this size would not fit the budget.
                skipped.append(
                    {
                        "endpoints": size,
                        "seeding_estimate_s": round(seeding),
                        "run_estimate_s": round(finish),
                    }
                )
                print(
                    f"bench-scale: {size:,} skipped: seeding ~{seeding:.0f} s, the run "
                    f"~{finish:.0f} s (budget {options.budget:.0f} s)",
                    flush=True,
                )
                continue
            mark = time.monotonic()
            await scale.one_size(size)
            timings[f"size_{size}_s"] = round(time.monotonic() - mark, 1)
        if options.doors and scale.sizes:
            mark = time.monotonic()
            await scale.doors()
            timings["doors_s"] = round(time.monotonic() - mark, 1)
        if options.push and scale.sizes:
            mark = time.monotonic()
            push = await scale_push.measure(
                bench, stack, scale.seeder.known, options.job_wait, wave=options.wave
            )
            timings["push_s"] = round(time.monotonic() - mark, 1)
        timings["seed_seconds"] = round(scale.seeder.seconds, 1)
        await scale.seeder.close()
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
            "client_processes": 2,
            "in_flight": run_options.concurrency,
            "pool_per_scenario": options.pool,
            "fleet": {"versions": fleet.VERSIONS, "filters": fleet.FILTERS},
            "database": "nx-27017 (started by the bench)",
            "seeding": scale.seeder.method,
        },
        "timings": timings,
        "sizes": scale.sizes,
        "skipped_sizes": skipped,
        "scenarios": bench.scenarios,
        "push": push,
    }


def parse(argv: list[str] | None = None) -> ScaleOptions:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    parser.add_argument(
        "--max-size", type=int, help="drop the sizes above this one (and measure this one)"
    )
    parser.add_argument("--duration", type=float, default=ScaleOptions.duration)
    parser.add_argument("--warmup", type=float, default=ScaleOptions.warmup)
    parser.add_argument("--pool", type=int, default=ScaleOptions.pool)
    parser.add_argument("--no-doors", action="store_true", help="CDTP only")
    parser.add_argument("--no-push", action="store_true")
    parser.add_argument(
        "--wave", action="store_true", help="push by opening a plan's second wave (1%% -> 100%%)"
    )
    parser.add_argument("--job-wait", type=float, default=ScaleOptions.job_wait)
    parser.add_argument(
        "--budget",
        type=float,
        default=ScaleOptions.budget,
        help="seconds for the whole run: skip a size that would end it later (0: no limit)",
    )
    parser.add_argument(
        "--wire-seed",
        action="store_true",
        help="seed with insert_many through the wire, not straight into nx-27017's file",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    args = parser.parse_args(argv)
    sizes = sorted(set(args.sizes))
    if args.max_size:
        sizes = sorted({s for s in sizes if s < args.max_size} | {args.max_size})
    return ScaleOptions(
        sizes=sizes,
        duration=args.duration,
        warmup=args.warmup,
        pool=args.pool,
        doors=not args.no_doors,
        push=not args.no_push,
        wave=args.wave,
        job_wait=args.job_wait,
        budget=args.budget or float("inf"),
        wire_seed=args.wire_seed,
        out=args.out,
        keep=args.keep,
    )


def main(argv: list[str] | None = None) -> None:
    options = parse(argv)
    run_dir = Path(tempfile.mkdtemp(prefix="otao-bench-scale-"))
    results = asyncio.run(_run(options, run_dir))
    write_results(results, options.out, "scale", scale_report)
    if not options.keep:
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
