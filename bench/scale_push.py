"""The push of ``make bench-scale``: a general release deliverable to every known endpoint,
against the walk-and-publish baseline (bench/baselines.py ``push``), with otao's memory.

otao's peak RSS during the job is its VmHWM after the job, the high-water mark having been
reset (``/proc/<pid>/clear_refs``) just before the release; a sampler of VmRSS every 0.1 s
gives the same figure where the reset is not allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from kaa.otao.v1 import rollout_pb2, rollout_pb2_grpc, software_pb2, software_pb2_grpc

from bench import baselines, report, seed
from bench import scale_fleet as fleet
from bench.load import ReceiveJob
from bench.run import CODEC, Bench, CpuMeter, PushTimes, finished_job_seconds, push_scenario
from bench.stack import DATABASE, OTAO_NAME, Stack
from otao.domain.rollout_plan import RolloutPlan, Wave, wave_for
from otao.messaging.records import ConfigUpdated
from otao.messaging.subjects import config_updated_subject


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (its peak) of ``pid`` in bytes (Linux /proc)."""
    values: dict[str, int] = {}
    for text in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = text.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) * 1024
    return values


class RssSampler(threading.Thread):
    """The largest VmRSS of a process seen every 0.1 s until ``stopped`` is set."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopped = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.1):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, proc_status(self.pid).get("VmRSS", 0))


def _reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# --wave: the release carries this manual plan; the measured push opens its second wave.
WAVE_PLAN = RolloutPlan(waves=(Wave(1), Wave(100)))


def _second_wave(size: int) -> int:
    """How many of the fleet's endpoints the second wave newly includes."""
    return sum(
        1
        for i in range(size)
        if wave_for(WAVE_PLAN, fleet.FLEET.name, fleet.endpoint_id(i), fleet.PUSHED) == 1
    )


async def _wave_job_seconds(stack: Stack, timeout: float) -> float | None:
    """Seconds from the wave job's creation to its end (the create's own job excluded)."""
    return await finished_job_seconds(stack.mongo_uri, fleet.FLEET.name, timeout, "wave:")


async def _status_reads(bench: Bench) -> dict[str, Any]:
    """--wave, after the push: how long GetRolloutStatus answers take on the whole fleet,
    and how long until its eligible counts are counted (docs/rollouts.md, "How fresh")."""
    assert bench.channel is not None
    stub = rollout_pb2_grpc.RolloutServiceStub(bench.channel)
    request = rollout_pb2.GetRolloutStatusRequest(
        application_name=fleet.FLEET.name, version=fleet.PUSHED
    )
    started = time.monotonic()
    replies: list[float] = []
    while time.monotonic() - started < 120:
        asked = time.monotonic()
        status = await stub.GetRolloutStatus(request, timeout=60)
        replies.append(round(time.monotonic() - asked, 3))
        if status.HasField("counted_at") and status.HasField("outcomes_counted_at"):
            break
        await asyncio.sleep(1)
    return {
        "reply_s": replies,
        "counted_after_s": round(time.monotonic() - started, 2),
        "eligible": sum(w.eligible for w in status.waves),
        "offered": sum(w.offered for w in status.waves),
    }


async def measure(
    bench: Bench, stack: Stack, size: int, job_wait: float, wave: bool = False
) -> dict[str, Any]:
    example = CODEC.encode(
        ConfigUpdated(
            correlation_id=uuid.uuid4().hex,
            timestamp=int(time.time() * 1000),
            app_version_name=fleet.FLEET.app_version,
            endpoint_id=fleet.endpoint_id(0),
            config_id=fleet.PUSHED,
            content=seed.specification(fleet.FLEET.name, fleet.PUSHED).encode(),
            originator_replica_id="otao-0123456789ab",
        )
    )
    timeout = max(240.0, size / 1_000)
    pool = bench.pool

    # Baseline: the same walk over the same documents, one publish per endpoint.
    receiver = pool.start_receiver(ReceiveJob(stack.nats_url, "bench.baseline.push", size, timeout))
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    config = baselines.PushBaselineConfig(
        stack.nats_url,
        stack.mongo_uri,
        DATABASE,
        seed.TENANT,
        fleet.FLEET.name,
        "bench.baseline.push",
        example,
        500,
    )
    pusher = context.Process(target=baselines.push, args=(config, child))
    pusher.start()
    assert pusher.pid is not None
    meter = CpuMeter({"baseline": pusher.pid, **bench.infrastructure_pids()}).start()
    base = await asyncio.to_thread(pool.receiver_result, receiver)
    base_cores = meter.stop()
    base_started, _ = await asyncio.to_thread(parent.recv)
    pusher.join()

    # otao: one general release upgradable from every version the fleet runs.
    created = software_pb2.Software(
        version=fleet.PUSHED,
        upgradable_from=fleet.pushed_definition_sources(),
        rollout_strategy="general",
    )
    json_format.Parse(seed.specification(fleet.FLEET.name, fleet.PUSHED), created.specification)
    assert bench.channel is not None
    stub = software_pb2_grpc.SoftwareServiceStub(bench.channel)
    subject = config_updated_subject(OTAO_NAME)
    expected = size
    if wave:
        created.rollout_plan.advance = "manual"
        created.rollout_plan.waves.add(percent=1)
        created.rollout_plan.waves.add(percent=100)
        # The first wave's push is the create's: done before the measured one starts.
        await stub.CreateSoftware(
            software_pb2.CreateSoftwareRequest(application_name=fleet.FLEET.name, software=created),
            timeout=60,
        )
        assert await bench._push_job_seconds(timeout) is not None, "first wave not pushed"
        expected = _second_wave(size)
    # otao stops sending while it records pending offers (17 s or so for 100,000 on
    # nx-27017): the receiver must not take such a pause for the end.
    receiver = pool.start_receiver(ReceiveJob(stack.nats_url, subject, expected, timeout, idle=90))
    rss_before = proc_status(stack.otao_pid)["VmRSS"]
    reset = _reset_peak(stack.otao_pid)
    sampler = RssSampler(stack.otao_pid)
    sampler.start()
    changed_at = time.time()
    advance_reply = "OK"
    advance_seconds = None
    if wave:
        asked = time.monotonic()
        try:
            await rollout_pb2_grpc.RolloutServiceStub(bench.channel).AdvanceRollout(
                rollout_pb2.AdvanceRolloutRequest(
                    application_name=fleet.FLEET.name, version=fleet.PUSHED
                ),
                timeout=60,
            )
        except grpc.aio.AioRpcError as error:
            # The wave opens (and its push job is made) before the reply's status is counted;
            # that count scans the fleet and may outlast the database bound on a large one.
            # Recorded, and the push still measured.
            advance_reply = error.code().name
        advance_seconds = round(time.monotonic() - asked, 3)
    else:
        await stub.CreateSoftware(
            software_pb2.CreateSoftwareRequest(application_name=fleet.FLEET.name, software=created),
            timeout=60,
        )
    meter = CpuMeter({"otao": stack.otao_pid, **bench.infrastructure_pids()}).start()
    ours = await asyncio.to_thread(pool.receiver_result, receiver)
    ours_cores = meter.stop()
    job_seconds = (
        await _wave_job_seconds(stack, job_wait)
        if wave
        else await bench._push_job_seconds(job_wait)
    )
    status_reads = await _status_reads(bench) if wave else None
    sampler.stopped.set()
    await asyncio.to_thread(sampler.join)
    hwm = proc_status(stack.otao_pid)["VmHWM"]

    push = push_scenario(
        f"push {size:,} endpoints / CDTP ConfigUpdated "
        + ("(second wave opened, 1% -> 100%)" if wave else "(general release)"),
        size,
        PushTimes(ours, changed_at, ours_cores),
        PushTimes(base, base_started, base_cores),
    )
    push.update(
        {
            "expected_notifications": expected,
            "advance_reply": advance_reply if wave else None,
            "advance_reply_s": advance_seconds,
            "status_reads": status_reads,
            # None: the job (offers recorded after the notifications) had not finished
            # job_wait seconds after the last notification.
            "job_seconds": job_seconds,
            "job_wait_s": job_wait,
            "otao_rss_before_bytes": rss_before,
            "otao_peak_rss_bytes": hwm if reset else sampler.peak,
            "otao_peak_rss_sampled_bytes": sampler.peak,
            "peak_from": "VmHWM after clear_refs" if reset else "VmRSS sampled every 0.1 s",
        }
    )
    print(report.line(push), flush=True)
    return push
