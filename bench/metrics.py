"""``python -m bench.metrics``: the steady-state CDTP and gRPC polls with metrics on vs off.

Two ``python -m otao`` processes on one nats-server and one nx-27017 database, identical but
for ``OTAO_METRICS__PORT`` (one with metrics on a free port, scraped once a second during the
windows as Prometheus would; one with metrics off) and their Kaa service names (so each CDTP
request reaches the one meant). The same requests as ``make bench``'s steady-state scenarios go
to each, in ABBA windows (off, on, on, off), answers checked first. Target (issue 15): on >= 0.95
of off, for both doors. Prints a table and writes ``bench/results/metrics.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench import baselines, seed
from bench.load import GRPC, NATS, LoadJob, WorkerPool
from bench.replicas import Replicas, check, request, summary, window
from bench.run import grpc_request
from bench.stack import DATABASE, Stack
from otao.devstack.processes import free_port
from otao.messaging.subjects import cdtp_request_subject

RESULTS = Path(__file__).resolve().parent / "results"
TARGET = 0.95
SIDES = {"metrics off": "plain", "metrics on": "metered"}


class Scraper:
    """Scrapes /metrics every second while running (a scraped replica is the real cost)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.scrapes = 0

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while not self._stop.wait(1.0):
                client.get(self._url).raise_for_status()
                self.scrapes += 1

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def add(stack: Replicas, service_name: str, env: dict[str, str]) -> Stack:
    """``Replicas.add`` with more settings (the metrics port)."""
    replica = Stack(stack.base.run_dir / f"otao-{len(stack.replicas)}", [])
    replica.run_dir.mkdir(parents=True)
    replica.nats, replica.mongo = stack.base.nats, stack.base.mongo
    replica.start_otao({"OTAO_KAA__OTAO": service_name, **env})
    stack.replicas.append(replica)
    return replica


async def main(duration: float, concurrency: int, processes: int) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix="otao-bench-metrics-"))
    stack = Replicas(run_dir)
    pool = WorkerPool(processes)
    metrics_port = free_port()
    try:
        stack.start()
        seeder = seed.Seeder(stack.base.mongo_uri, DATABASE)
        await seeder.basic()
        await seeder.close()
        replicas = {
            "metrics off": add(stack, SIDES["metrics off"], {}),
            "metrics on": add(
                stack, SIDES["metrics on"], {"OTAO_METRICS__PORT": str(metrics_port)}
            ),
        }
        nats_url = stack.base.nats_url
        cdtp = [request(e) for e in seed.STEADY_POOL]
        resolve = [grpc_request(seed.BASIC.name, e, seed.BASIC_NEW) for e in seed.STEADY_POOL]
        jobs: dict[tuple[str, str], LoadJob] = {}
        for side, replica in replicas.items():
            subject = cdtp_request_subject(SIDES[side])
            await check(nats_url, subject, cdtp)
            jobs[("CDTP", side)] = LoadJob(NATS, nats_url, subject, cdtp, 0, 0.75, duration / 2)
            jobs[("gRPC", side)] = LoadJob(
                GRPC, replica.otao_grpc, baselines.RESOLVE_METHOD, resolve, 0, 0.75, duration / 2
            )
            for door in ("CDTP", "gRPC"):  # unmeasured warm-up of each
                warm = jobs[(door, side)]
                pool.run(
                    LoadJob(warm.door, warm.target, warm.route, warm.payloads, 0, 0.5, 2.0),
                    concurrency,
                    time.time() + 1.0,
                )
        results: dict[str, Any] = {}
        scrape_url = f"http://127.0.0.1:{metrics_port}/metrics"
        with Scraper(scrape_url) as scraper:
            for door in ("CDTP", "gRPC"):
                windows: dict[str, list[dict[str, Any]]] = {side: [] for side in replicas}
                for side in ("metrics off", "metrics on", "metrics on", "metrics off"):  # ABBA
                    pids = {"otao": replicas[side].otao_pid}
                    windows[side].append(window(pool, jobs[(door, side)], concurrency, pids))
                sides = {side: summary(ws) for side, ws in windows.items()}
                off, on = sides["metrics off"]["rps"], sides["metrics on"]["rps"]
                results[door] = {
                    **sides,
                    "on_over_off": round(on / off, 3) if off else None,
                    "target": TARGET,
                }
        return {
            "scenario": "steady-state poll, metrics on (scraped every second) vs off",
            "cores": os.cpu_count(),
            "duration_s_per_side": duration,
            "concurrency": concurrency,
            "client_processes": processes,
            "scrapes": scraper.scrapes,
            "results": results,
        }
    finally:
        pool.close()
        stack.stop()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=8.0, help="measured s per side")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--processes", type=int, default=2, help="load client processes")
    parser.add_argument("--out", type=Path, default=RESULTS)
    options = parser.parse_args()
    started = time.monotonic()
    document = asyncio.run(main(options.duration, options.concurrency, options.processes))
    print(f"{'':18} {'polls/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'us/poll':>7}")
    for door, sides in document["results"].items():
        for side in ("metrics off", "metrics on"):
            r = sides[side]
            print(
                f"{door + ' ' + side:18} {r['rps']:>9} {r['p50_ms']:>7} {r['p99_ms']:>7} "
                f"{r['otao_cpu_us_per_poll']:>7}"
            )
        print(f"{door}: on / off = {sides['on_over_off']} (target >= {TARGET})")
    print(f"took {time.monotonic() - started:.0f} s, {document['scrapes']} scrapes")
    options.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2) + "\n"
    (options.out / "metrics.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    cli()
