"""The real infrastructure processes behind the session fixtures in ``tests/conftest.py``.

- ``NatsServer``: a real nats-server on a free loopback port (``.url``, ``.port``).
- ``MongoServer``: nx-27017 on a free loopback port with its data under a pytest tmp dir, or the
  real MongoDB named by ``OTAO_TEST_MONGODB_URI`` (then nothing is started and it cannot be
  stopped: ``.stop()`` skips the calling test).
- ``EnvoyFactory``: ``envoy_factory(upstream_grpc_port)`` starts a real Envoy with a rendered copy
  of deploy/envoy.yaml in front of a gRPC server on 127.0.0.1:<port> and returns it (``.base_url``).

``stop()``/``start()`` stop and start a server again on the same port, to simulate outages; the
``a``-prefixed twins (``await nats_server.astop()``) do the same without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from otao.devstack.envoy import EnvoyProcess, render_envoy_config, start_envoy
from otao.devstack.processes import free_port
from otao.devstack.servers import MongoProcess, NatsProcess, start_mongo, start_nats

TEST_MONGODB_URI_ENV = "OTAO_TEST_MONGODB_URI"


class _Outages:
    """``restart()`` and the ``a``-prefixed twins, from a server's own stop/kill/start."""

    def stop(self) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        self.stop()
        self.start()

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def akill(self) -> None:
        await asyncio.to_thread(self.kill)

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)


class NatsServer(_Outages):
    def __init__(self, process: NatsProcess) -> None:
        self.process = process

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def running(self) -> bool:
        return self.process.running

    def stop(self) -> None:
        """Graceful stop (SIGTERM); clients see their connection closed."""
        self.process.stop()

    def kill(self) -> None:
        """Crash (SIGKILL)."""
        self.process.kill()

    def start(self) -> None:
        """Start again on the same port (no-op when running)."""
        if not self.process.running:
            self.process.start()

    def close(self) -> None:
        self.process.stop()


class MongoServer(_Outages):
    def __init__(self, uri: str, process: MongoProcess | None) -> None:
        self.uri = uri
        self.process = process

    @property
    def external(self) -> bool:
        """True for a MongoDB from OTAO_TEST_MONGODB_URI: tests cannot stop or restart it."""
        return self.process is None

    @property
    def running(self) -> bool:
        return self.process is None or self.process.running

    def _own(self) -> MongoProcess:
        if self.process is None:
            pytest.skip(f"{TEST_MONGODB_URI_ENV} names an external MongoDB that tests cannot stop")
        return self.process

    def stop(self) -> None:
        """Graceful stop (SIGTERM); data stays in the data dir."""
        self._own().stop()

    def kill(self) -> None:
        """Crash (SIGKILL); data stays in the data dir."""
        self._own().kill()

    def start(self) -> None:
        """Start again on the same port with the same data (no-op when running)."""
        if self.process is not None and not self.process.running:
            self.process.start()

    def close(self) -> None:
        if self.process is not None:
            self.process.stop()


class EnvoyFactory:
    """Starts Envoys on free ports in front of gRPC servers; stops leftovers on ``close()``."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.started: list[EnvoyProcess] = []

    def __call__(
        self,
        upstream_port: int,
        *,
        descriptor_path: Path | None = None,
        health_check_interval: float = 1.0,
        extra_upstream_ports: tuple[int, ...] = (),
    ) -> EnvoyProcess:
        """A running Envoy: REST on ``.base_url`` -> gRPC on 127.0.0.1:``upstream_port`` (and
        the ``extra_upstream_ports`` replicas, balanced per request).

        Call ``.stop()`` on it when done, or leave it to the end of the session.
        """
        envoy = start_envoy(
            free_port(),
            upstream_port,
            descriptor_path,
            run_dir=self.run_dir,
            health_check_interval=health_check_interval,
            extra_grpc_ports=extra_upstream_ports,
        )
        self.started.append(envoy)
        return envoy

    def close(self) -> None:
        for envoy in reversed(self.started):
            envoy.stop()
        self.started.clear()


def start_nats_server(log_dir: Path) -> NatsServer:
    return NatsServer(start_nats(free_port(), log_dir))


def start_mongo_server(data_dir: Path) -> MongoServer:
    external = os.environ.get(TEST_MONGODB_URI_ENV)
    if external:
        return MongoServer(external, None)
    process = start_mongo(free_port(), data_dir)
    return MongoServer(process.uri, process)


def new_unique_name(prefix: str = "t") -> str:
    """A short random name (lowercase letters and digits) that is valid as an application
    name and as a MongoDB database name: ``t`` + 10 hex digits."""
    return f"{prefix}{secrets.token_hex(5)}"


def render_sample_envoy_config(run_dir: Path, **options: Any) -> dict[str, Any]:
    """deploy/envoy.yaml rendered (not started) for ports 18080 (listener), 15051 (gRPC) and 19901
    (admin) and the descriptor /somewhere/otao.pb, with ``options``; the parsed result."""
    path = render_envoy_config(
        run_dir / "envoy.yaml",
        listen_port=18080,
        grpc_port=15051,
        admin_port=19901,
        descriptor_path=Path("/somewhere/otao.pb"),
        **options,
    )
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    return config
