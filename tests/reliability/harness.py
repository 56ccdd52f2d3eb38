"""Helpers of the reliability suite: dedicated otao instances (in-process or real processes),
health probes, definitions over gRPC, and peers that speak the Kaa subjects otao listens to.

Every dedicated otao gets Kaa instance names of its own (otao, consumer, EPR, Tekton), so its
queue groups and subjects never mix with the session otao that shares the same nats-server.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymongo import AsyncMongoClient

from otao.devstack.processes import free_port, tcp_accepting
from otao.devstack.servers import OtaoProcess, start_otao
from otao.messaging.records import ConfigApplied
from tests.support.cmx import CmxPeer
from tests.support.eventually import eventually as shared_eventually
from tests.support.otao import RunningOtao
from tests.support.otao import start_otao as start_otao_in_process

# Re-exported: the reliability scenarios take their gRPC definitions from here.
from tests.support.software import define as define
from tests.support.software import set_strategy as set_strategy
from tests.support.software import software_message as software_message

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class KaaNames:
    otao: str
    consumer: str
    epr: str
    tekton: str

    @classmethod
    def fresh(cls) -> KaaNames:
        tag = secrets.token_hex(4)
        return cls(f"otao-{tag}", f"cmx-{tag}", f"epr-{tag}", f"tekton-{tag}")

    def settings(self) -> dict[str, str]:
        return {
            "otao": self.otao,
            "consumer": self.consumer,
            "epr": self.epr,
            "tekton": self.tekton,
        }


async def eventually(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> None:
    """Wait until ``condition()`` (sync or async) is true; AssertionError after ``timeout``
    (the shared ``tests.support.eventually``, with this module's argument order)."""
    await shared_eventually(condition, what, timeout, interval)


def now_ms() -> int:
    """A Kaa record timestamp: milliseconds since the epoch."""
    return int(time.time() * 1000)


def applied_report(
    app_version: str, endpoint: str, version: str, status: int = 200
) -> ConfigApplied:
    """A fresh ConfigApplied (own correlation id, timestamp now), as an endpoint would send."""
    return ConfigApplied(
        correlation_id=uuid.uuid4().hex,
        timestamp=now_ms(),
        app_version_name=app_version,
        endpoint_id=endpoint,
        config_id=version,
        status_code=status,
    )


# ---------------------------------------------------------------------------------------------
# otao in this process


@asynccontextmanager
async def dedicated_otao(
    nats_url: str, mongo_uri: str, **overrides: Any
) -> AsyncIterator[tuple[RunningOtao, KaaNames]]:
    """A fresh otao (own database, own Kaa names) for one test; stopped afterwards."""
    names = KaaNames.fresh()
    overrides["kaa"] = {**names.settings(), **overrides.get("kaa", {})}
    running = await start_otao_in_process(nats_url, mongo_uri, **overrides)
    try:
        yield running, names
    finally:
        await running.stop()


async def connect_cmx(nats_url: str, names: KaaNames) -> CmxPeer:
    return await CmxPeer.connect(nats_url, otao=names.otao, consumer=names.consumer)


async def close_quietly(client: Any, timeout: float = 5.0) -> None:
    """Close a test's own NATS client or peer (``.close()``), bounded: nats-py's close can
    hang after the server was restarted under it, and a test must not hang on its cleanup."""
    with suppress(TimeoutError):
        await asyncio.wait_for(client.close(), timeout)


# ---------------------------------------------------------------------------------------------
# otao as a real process (``python -m otao``)


@dataclass
class OtaoSubprocess:
    """Settings for ``python -m otao``; ``start()`` (re)starts it on the same port."""

    nats_url: str
    mongo_uri: str
    run_dir: Path
    names: KaaNames
    applications: list[dict[str, Any]]
    env_overrides: dict[str, str]
    database: str = ""
    port: int = 0
    process: OtaoProcess | None = None

    def __post_init__(self) -> None:
        self.database = self.database or f"otao_{secrets.token_hex(4)}"
        self.port = self.port or free_port()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config = self.run_dir / "otao.yaml"
        config.write_text(
            yaml.safe_dump({"applications": self.applications, "kaa": self.names.settings()}),
            encoding="utf-8",
        )
        self._config = config

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTAO_")}
        env.update(
            OTAO_NATS_URL=self.nats_url,
            OTAO_MONGODB_URI=self.mongo_uri,
            OTAO_MONGODB_DATABASE=self.database,
            OTAO_MONGODB_TIMEOUT_MS="2000",
            OTAO_SECURITY__ENABLED="false",
            OTAO_CONFIG_FILE=str(self._config),
            OTAO_LOG_JSON="false",
        )
        env.update(self.env_overrides)
        return env

    async def start(self) -> None:
        log = self.run_dir / "otao.log"
        self.process = await asyncio.to_thread(
            start_otao, self.port, log, env=self.env(), ready_timeout=30.0
        )

    @property
    def otao_pid(self) -> int:
        """The pid of ``python -m otao`` itself (the managed pid is its watchdog)."""
        assert self.process is not None and self.process.pid is not None
        watchdog = self.process.pid
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with suppress(OSError, IndexError, ValueError):
                # After "pid (comm)": state, ppid, ...
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == watchdog:
                    children.append(int(stat.parent.name))
        assert len(children) == 1, children
        return children[0]

    async def sigkill(self) -> None:
        """A crash: SIGKILL to otao and its watchdog at once, no chance to clean up."""
        assert self.process is not None and self.process.pid is not None
        otao_pid = self.otao_pid
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await asyncio.to_thread(self.process.stop, 5.0)
        # Gone for good (its listening socket with it) before anything restarts on the port.
        await eventually(lambda: not _alive(otao_pid), 10, "the killed otao gone")
        await eventually(lambda: not tcp_accepting("127.0.0.1", self.port), 10, "port free")

    def sigterm(self) -> None:
        """SIGTERM to otao itself (what an orchestrator sends); does not wait."""
        os.kill(self.otao_pid, signal.SIGTERM)

    async def wait_exit(self, timeout: float) -> int | None:
        """The exit code once the process ended, or None after ``timeout``."""
        assert self.process is not None
        popen = self.process._popen
        assert popen is not None
        with suppress(AssertionError):
            await eventually(lambda: popen.poll() is not None, timeout, "otao exited")
        return popen.poll()

    async def stop(self) -> None:
        if self.process is not None:
            await asyncio.to_thread(self.process.stop, 5.0)

    def log_tail(self) -> str:
        return self.process.log_tail(80) if self.process is not None else ""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not count: it holds no sockets)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


# ---------------------------------------------------------------------------------------------
# gRPC


async def health(channel: grpc.aio.Channel, timeout: float = 1.0) -> int | None:
    """grpc.health.v1 overall status, or None when the server does not answer."""
    try:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=timeout
        )
    except grpc.aio.AioRpcError:
        return None
    return int(reply.status)


# ---------------------------------------------------------------------------------------------
# MongoDB, read directly (what otao stored, not what it answers)


@asynccontextmanager
async def database(mongo_uri: str, name: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_uri, serverSelectionTimeoutMS=5000, tz_aware=True
    )
    try:
        yield client[name]
    finally:
        await client.close()


# ---------------------------------------------------------------------------------------------
# A fleet before a 2.0.0 push


@dataclass(frozen=True)
class MixedFleet:
    """The endpoints of one application as a 2.0.0 push finds them, each group named by prefix:
    ``eligible`` (a-) on 1.0.0 get 2.0.0; ``failed`` (b-) on 1.0.0 reported 2.0.0 failed, so are
    not eligible; ``other_branch`` (c-) on 0.5.0, where 1.5.0 is theirs; ``on_top`` (d-) are
    already on 2.0.0."""

    eligible: list[str]
    failed: list[str]
    other_branch: list[str]
    on_top: list[str]

    @classmethod
    def of(cls, eligible: int, failed: int, other_branch: int, on_top: int) -> MixedFleet:
        def named(prefix: str, count: int) -> list[str]:
            return [f"{prefix}-{i:02d}" for i in range(count)]

        return cls(
            named("a", eligible), named("b", failed), named("c", other_branch), named("d", on_top)
        )

    @property
    def everyone(self) -> list[str]:
        return self.eligible + self.failed + self.other_branch + self.on_top

    async def report(self, cmx: CmxPeer, app_version: str) -> None:
        """Each endpoint reports what it runs (and the failed ones their failed 2.0.0)."""
        for endpoint in self.eligible + self.failed:
            await cmx.applied(app_version, endpoint, "1.0.0")
        for endpoint in self.failed:
            await cmx.applied(app_version, endpoint, "2.0.0", status_code=500, reason="boom")
        for endpoint in self.other_branch:
            await cmx.applied(app_version, endpoint, "0.5.0")
        for endpoint in self.on_top:
            await cmx.applied(app_version, endpoint, "2.0.0")

    async def recorded(self, db: Any, scope: dict[str, Any], timeout: float, what: str) -> None:
        """Waits until otao has stored every report (the endpoints ``scope`` selects in ``db``)."""

        async def done() -> bool:
            failed = await db.endpoints.count_documents({**scope, "failedVersions": "2.0.0"})
            known = await db.endpoints.count_documents({**scope, "currentVersion": {"$ne": None}})
            return bool(failed == len(self.failed) and known == len(self.everyone))

        await eventually(done, timeout, what)
