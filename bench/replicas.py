"""``python -m bench.replicas``: steady-state CDTP poll throughput, one otao replica vs two.

Three ``python -m otao`` processes on one nats-server and one nx-27017 database: two share the
Kaa service name ``otao`` (one queue group: NATS hands each request to one of them), the third
is alone under the name ``solo``. The same load (``bench.load`` workers, the same steady-state
requests as ``make bench``) goes to ``solo`` (one replica) or to ``otao`` (two replicas), in
ABBA windows after an unmeasured warm-up of each; answers are checked first. No baseline and
no target: on a 2-core machine the clients, nats-server and the replicas share the cores, so
the figure says how much a second replica adds *here*, not how otao scales on more cores.
Prints a table and writes ``bench/results/replicas.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import nats

from bench import seed
from bench.load import NATS, LoadJob, LoadResult, WorkerPool
from bench.stack import DATABASE, OTAO_NAME, Stack, command_pid, cpu_seconds
from otao.messaging.avro import AvroCodec
from otao.messaging.records import ConfigRequest, ConfigResponse
from otao.messaging.subjects import cdtp_request_subject

RESULTS = Path(__file__).resolve().parent / "results"
SOLO = "solo"
CODEC = AvroCodec()


def request(endpoint_id: str) -> bytes:
    return CODEC.encode(
        ConfigRequest(
            correlation_id=uuid.uuid4().hex,
            timestamp=int(time.time() * 1000),
            app_version_name=seed.BASIC.app_version,
            endpoint_id=endpoint_id,
            config_id=seed.BASIC_NEW,
        )
    )


def machine_busy_seconds() -> float:
    """CPU seconds (all cores) the machine spent not idle so far (Linux /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class Replicas:
    """Infrastructure once, then otao replicas as Stacks sharing it (each its own run dir)."""

    def __init__(self, run_dir: Path) -> None:
        self.base = Stack(run_dir, [])
        self.replicas: list[Stack] = []

    def start(self) -> None:
        self.base.start_infrastructure()

    def add(self, service_name: str) -> Stack:
        replica = Stack(self.base.run_dir / f"otao-{len(self.replicas)}", [])
        replica.run_dir.mkdir(parents=True)
        replica.nats, replica.mongo = self.base.nats, self.base.mongo
        replica.start_otao({"OTAO_KAA__OTAO": service_name})
        self.replicas.append(replica)
        return replica

    def stop(self) -> None:
        for replica in self.replicas:
            if replica.otao is not None:
                replica.otao.stop()
        self.base.stop()


async def check(nats_url: str, subject: str, payloads: list[bytes]) -> None:
    """Every answer (enough requests to reach each replica) is the steady-state one."""
    client = await nats.connect(nats_url)
    try:
        for payload in payloads[:50]:
            reply = await client.request(subject, payload, timeout=30)
            response = CODEC.decode(ConfigResponse, reply.data)
            if response.status_code != 200 or response.config_id is not None:
                raise RuntimeError(f"unexpected CDTP answer {response!r}")
    finally:
        await client.close()


def window(
    pool: WorkerPool, job: LoadJob, concurrency: int, pids: dict[str, int]
) -> dict[str, Any]:
    start_at = time.time() + 1.0
    begin = start_at + job.warmup
    marks: list[tuple[dict[str, float], float]] = []

    def sample() -> None:
        # CPU of each process and of the machine at the window's start and end, exactly.
        for at in (begin, begin + job.duration):
            time.sleep(max(0.0, at - time.time()))
            marks.append(({n: cpu_seconds(p) for n, p in pids.items()}, machine_busy_seconds()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result: LoadResult = pool.run(job, concurrency, start_at)
    sampler.join()
    (cpu_start, busy_start), (cpu_end, busy_end) = marks
    return {
        "completed": result.completed,
        "errors": result.errors,
        "seconds": job.duration,
        "latencies": result.latencies,
        "cores": {n: (cpu_end[n] - cpu_start[n]) / job.duration for n in pids},
        "client_cores": result.cpu_seconds / job.duration,
        "machine_busy_cores": (busy_end - busy_start) / job.duration,
    }


def summary(windows: list[dict[str, Any]]) -> dict[str, Any]:
    completed = sum(w["completed"] for w in windows)
    seconds = sum(w["seconds"] for w in windows)
    latencies = sorted(x for w in windows for x in w["latencies"])
    cores: dict[str, float] = {}
    for w in windows:
        for name, value in w["cores"].items():
            cores[name] = cores.get(name, 0.0) + value / len(windows)
    otao_cores = sum(v for k, v in cores.items() if k.startswith("otao"))
    return {
        "rps": round(completed / seconds, 1),
        # CPU of the replicas together per answered poll.
        "otao_cpu_us_per_poll": round(otao_cores * seconds / completed * 1e6, 1)
        if completed
        else None,
        "p50_ms": round(statistics.median(latencies) * 1000, 2) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2) if latencies else None,
        "errors": sum(w["errors"] for w in windows),
        "server_cores": {k: round(v, 2) for k, v in cores.items()},
        "client_cores": round(sum(w["client_cores"] for w in windows) / len(windows), 2),
        "machine_busy_cores": round(
            sum(w["machine_busy_cores"] for w in windows) / len(windows), 2
        ),
        # The machine is shared: busy cores beyond these were other work during the window.
        "ours_cores": round(
            sum(cores.values()) + sum(w["client_cores"] for w in windows) / len(windows), 2
        ),
    }


async def main(duration: float, concurrency: int, processes: int) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix="otao-bench-replicas-"))
    stack = Replicas(run_dir)
    pool = WorkerPool(processes)
    try:
        stack.start()
        seeder = seed.Seeder(stack.base.mongo_uri, DATABASE)
        await seeder.basic()
        await seeder.close()
        pair = [stack.add(OTAO_NAME), stack.add(OTAO_NAME)]
        solo = stack.add(SOLO)
        payloads = [request(e) for e in seed.STEADY_POOL]
        nats_url = stack.base.nats_url
        assert stack.base.nats is not None and stack.base.nats.pid is not None
        nats_pid = command_pid(stack.base.nats.pid)
        configs = {
            "1 replica": (cdtp_request_subject(SOLO), {"otao": solo.otao_pid}),
            "2 replicas": (
                cdtp_request_subject(OTAO_NAME),
                {"otao-1": pair[0].otao_pid, "otao-2": pair[1].otao_pid},
            ),
        }
        windows: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
        for subject, _ in configs.values():
            await check(nats_url, subject, payloads)
            # Warm-up: every replica's sighting memory knows the pool before anything counts.
            warm = LoadJob(NATS, nats_url, subject, payloads, 0, 0.5, 3.0)
            pool.run(warm, concurrency, time.time() + 1.0)
        for name in ("1 replica", "2 replicas", "2 replicas", "1 replica"):  # ABBA
            subject, pids = configs[name]
            job = LoadJob(NATS, nats_url, subject, payloads, 0, 0.75, duration / 2)
            windows[name].append(window(pool, job, concurrency, {**pids, "nats-server": nats_pid}))
        results = {name: summary(ws) for name, ws in windows.items()}
        one, two = results["1 replica"]["rps"], results["2 replicas"]["rps"]
        document = {
            "scenario": "steady-state poll / CDTP, 1 vs 2 otao replicas (one queue group)",
            "cores": os.cpu_count(),
            "duration_s_per_side": duration,
            "concurrency": concurrency,
            "client_processes": processes,
            "results": results,
            "two_over_one": round(two / one, 3) if one else None,
        }
        return document
    finally:
        pool.close()
        stack.stop()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=10.0, help="measured s per side")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--processes", type=int, default=2, help="load client processes")
    parser.add_argument("--out", type=Path, default=RESULTS)
    options = parser.parse_args()
    started = time.monotonic()
    document = asyncio.run(main(options.duration, options.concurrency, options.processes))
    print(f"{'':12} {'polls/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'us/poll':>7} {'busy':>5}  cores")
    for name, r in document["results"].items():
        print(
            f"{name:12} {r['rps']:>9} {r['p50_ms']:>7} {r['p99_ms']:>7} "
            f"{r['otao_cpu_us_per_poll']:>7} {r['machine_busy_cores']:>5}  "
            f"{r['server_cores']} clients {r['client_cores']} (ours {r['ours_cores']})"
        )
    print(f"2 replicas / 1 replica: {document['two_over_one']}")
    print(f"took {time.monotonic() - started:.0f} s")
    options.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2) + "\n"
    (options.out / "replicas.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    cli()
