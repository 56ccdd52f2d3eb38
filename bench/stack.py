"""The processes under test: nats-server, nx-27017, otao, the baselines and two Envoys.

Everything runs on loopback on free ports, under a fresh directory (logs, data, configs).
otao is the real ``python -m otao`` configured through ``OTAO_*`` variables and a YAML file,
as an operator would run it; the baselines run in a process of their own (baselines.py).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from bench import baselines
from bench.seed import BASIC, FLEET, TENANT, Application, definitions_app
from otao.devstack.envoy import EnvoyProcess, checkout_root, start_envoy
from otao.devstack.processes import free_port
from otao.devstack.servers import MongoProcess, NatsProcess, OtaoProcess, start_mongo, start_nats

OTAO_NAME = "otao"
DATABASE = "otao_bench"


def applications(definition_sizes: list[int]) -> list[Application]:
    return [BASIC, FLEET, *(definitions_app(n) for n in definition_sizes)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def command_pid(watchdog_pid: int) -> int:
    """The command run by a devstack watchdog (its only child)."""
    children = Path(f"/proc/{watchdog_pid}/task/{watchdog_pid}/children").read_text().split()
    return int(children[0]) if children else watchdog_pid


class Stack:
    def __init__(self, run_dir: Path, definition_sizes: list[int]) -> None:
        self.run_dir = run_dir
        self.definition_sizes = definition_sizes
        self.nats: NatsProcess | None = None
        self.mongo: MongoProcess | None = None
        self.otao: OtaoProcess | None = None
        self.otao_pid = 0
        self.otao_envoy: EnvoyProcess | None = None
        self.baseline_envoy: EnvoyProcess | None = None
        self.baselines: Any = None
        self.baseline_config: baselines.BaselineConfig | None = None

    # -- infrastructure

    def start_infrastructure(self) -> None:
        self.nats = start_nats(free_port(), self.run_dir)
        self.mongo = start_mongo(free_port(), self.run_dir / "mongo")

    @property
    def nats_url(self) -> str:
        assert self.nats is not None
        return self.nats.url

    @property
    def mongo_uri(self) -> str:
        assert self.mongo is not None
        return self.mongo.uri

    @property
    def database_file(self) -> Path:
        """nx-27017's SQLite file of the bench's database (NeoSQLite: one file a database)."""
        assert self.mongo is not None
        return self.mongo.data_dir / f"{DATABASE}.db"

    # -- otao

    def start_otao(self, extra_env: dict[str, str] | None = None) -> None:
        config = {
            "applications": [
                {"name": a.name, "tenant_id": TENANT, "app_versions": [a.app_version]}
                for a in applications(self.definition_sizes)
            ]
        }
        config_file = self.run_dir / "otao.yaml"
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        port = free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith("OTAO_")}
        env.update(
            OTAO_CONFIG_FILE=str(config_file),
            OTAO_GRPC_HOST="127.0.0.1",
            OTAO_GRPC_PORT=str(port),
            OTAO_NATS_URL=self.nats_url,
            OTAO_MONGODB_URI=self.mongo_uri,
            OTAO_MONGODB_DATABASE=DATABASE,
            OTAO_SECURITY__ENABLED="false",
            OTAO_PUSH__RATE_PER_SECOND="0",
            OTAO_LOG_LEVEL="WARNING",
            OTAO_LOG_JSON="false",
            OTAO_KAA__OTAO=OTAO_NAME,
            # Off unless a scenario asks (several replicas would want the same default port).
            OTAO_METRICS__PORT="0",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra_env or {})
        self.otao = OtaoProcess(
            "127.0.0.1",
            port,
            [sys.executable, "-m", "otao"],
            self.run_dir / "otao.log",
            env=env,
            ready_timeout=60.0,
            cwd=checkout_root(),
        )
        self.otao.start()
        assert self.otao.pid is not None
        self.otao_pid = command_pid(self.otao.pid)

    @property
    def otao_grpc(self) -> str:
        assert self.otao is not None
        return self.otao.grpc_target

    # -- baselines

    def start_baselines(self, grpc_reply: bytes, cdtp_reply: bytes) -> None:
        self.baseline_config = baselines.BaselineConfig(
            nats_url=self.nats_url,
            mongo_uri=self.mongo_uri,
            database=DATABASE,
            tenant=TENANT,
            noop_grpc_port=free_port(),
            reads_grpc_port=free_port(),
            noop_subject="bench.baseline.noop",
            reads_subject="bench.baseline.reads",
            grpc_reply=grpc_reply,
            cdtp_reply=cdtp_reply,
        )
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self.baselines = context.Process(
            target=baselines.serve, args=(self.baseline_config, child), name="bench-baselines"
        )
        self.baselines.start()
        if not parent.poll(60) or parent.recv() != "ready":
            raise RuntimeError("the baseline servers did not start")

    @property
    def baselines_pid(self) -> int:
        return int(self.baselines.pid)

    def start_envoys(self) -> None:
        assert self.baseline_config is not None
        self.otao_envoy = start_envoy(
            free_port(), int(self.otao_grpc.rsplit(":", 1)[1]), run_dir=self.run_dir / "envoy"
        )
        self.baseline_envoy = start_envoy(
            free_port(), self.baseline_config.noop_grpc_port, run_dir=self.run_dir / "envoy"
        )

    def envoy_pid(self, envoy: EnvoyProcess) -> int:
        assert envoy.pid is not None
        return command_pid(envoy.pid)

    def stop(self) -> None:
        for process in (self.otao_envoy, self.baseline_envoy, self.otao):
            if process is not None:
                with contextlib.suppress(Exception):
                    process.stop()
        if self.baselines is not None and self.baselines.is_alive():
            self.baselines.terminate()
            self.baselines.join(timeout=10)
        for server in (self.nats, self.mongo):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
