"""The local stack's servers as child processes: nats-server, nx-27017 and otao itself.

Each is a ``ServerProcess`` (``processes.py``: found, logged, watched, made ready, stopped)
with what its kind adds (its address, nx-27017's pid file, otao's gRPC health probe) and a
``start_*`` function that builds its command line and starts it. Envoy's is ``envoy.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict, Unpack

from otao.devstack.processes import (
    LOOPBACK,
    ProcessError,
    ServerProcess,
    find_binary,
    grpc_serving,
)

# ---------------------------------------------------------------------------------------------
# nats-server


class NatsProcess(ServerProcess):
    def __init__(
        self, host: str, port: int, log_path: Path, argv: Sequence[str], **kw: Any
    ) -> None:
        super().__init__("nats-server", host, port, argv, log_path, **kw)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"


class ServerOptions(TypedDict, total=False):
    """What ``start_nats`` and ``start_mongo`` take besides the port and their directory: the
    ``host`` (``LOOPBACK`` unless given), ``extra_args`` for the command line, and how long
    the server may take to be ready (``ready_timeout``, each function's default unless given)."""

    host: str
    extra_args: Sequence[str]
    ready_timeout: float


def start_nats(port: int, log_dir: Path, **options: Unpack[ServerOptions]) -> NatsProcess:
    """Start nats-server on ``host:port`` (core NATS; JetStream via ``extra_args``), ready
    within 20 s unless ``ready_timeout``."""
    host = options.get("host", LOOPBACK)
    extra_args = options.get("extra_args", ())
    argv = [str(find_binary("nats-server")), "-a", host, "-p", str(port), *extra_args]
    process = NatsProcess(
        host,
        port,
        log_dir / "nats-server.log",
        argv,
        ready_timeout=options.get("ready_timeout", 20.0),
    )
    process.start()
    return process


# ---------------------------------------------------------------------------------------------
# nx-27017 (MongoDB wire protocol on SQLite)


class MongoProcess(ServerProcess):
    def __init__(
        self, host: str, port: int, data_dir: Path, argv: Sequence[str], **kw: Any
    ) -> None:
        self.data_dir = data_dir
        self.pid_file = data_dir / "nx-27017.pid"
        super().__init__(
            "nx-27017",
            host,
            port,
            argv,
            data_dir / "nx-27017.out",
            before_start=self._clear_stale_pid_file,
            after_stop=self._remove_pid_file,
            **kw,
        )

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}"

    def _clear_stale_pid_file(self) -> None:
        # nx-27017 refuses to start while its pid file names a live process.
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            self._remove_pid_file()
            return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            self._remove_pid_file()
            return
        except PermissionError:
            pass
        raise ProcessError(
            f"nx-27017 (pid {pid}, per {self.pid_file}) already uses {self.data_dir}; stop it first"
        )

    def _remove_pid_file(self) -> None:
        # A SIGKILLed server leaves its pid file behind.
        self.pid_file.unlink(missing_ok=True)


def start_mongo(port: int, data_dir: Path, **options: Unpack[ServerOptions]) -> MongoProcess:
    """Start nx-27017 in the foreground on ``host:port`` with one SQLite file per database
    under ``data_dir`` (its pid file and log file live there too), ready within 30 s unless
    ``ready_timeout``."""
    host = options.get("host", LOOPBACK)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(find_binary("nx-27017")),
        "--host",
        host,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--pid-file",
        str(data_dir / "nx-27017.pid"),
        "--log-file",
        str(data_dir / "nx-27017.log"),
        *options.get("extra_args", ()),
    ]
    process = MongoProcess(
        host, port, data_dir, argv, ready_timeout=options.get("ready_timeout", 30.0)
    )
    process.start()
    return process


# ---------------------------------------------------------------------------------------------
# otao itself


class OtaoProcess(ServerProcess):
    """``python -m otao``: ready when its gRPC health service says SERVING."""

    def __init__(
        self, host: str, port: int, argv: Sequence[str], log_path: Path, **kw: Any
    ) -> None:
        super().__init__("otao", host, port, argv, log_path, **kw)

    @property
    def grpc_target(self) -> str:
        return f"{self.host}:{self.port}"

    def _is_ready(self) -> bool:
        return super()._is_ready() and grpc_serving(self.host, self.port)

    def _own_ports(self) -> list[tuple[str, int, str]]:
        return [(self.host, self.port, "otao (gRPC)")]


def start_otao(
    grpc_port: int,
    log_path: Path,
    *,
    env: Mapping[str, str],
    host: str = LOOPBACK,
    ready_timeout: float = 30.0,
    cwd: Path | None = None,
) -> OtaoProcess:
    """Start ``python -m otao`` with ``env`` (its whole environment; settings come from
    ``OTAO_*``) and wait for grpc.health.v1 SERVING on ``host:grpc_port``."""
    child_env = dict(env)
    child_env.update(OTAO_GRPC_HOST=host, OTAO_GRPC_PORT=str(grpc_port), PYTHONUNBUFFERED="1")
    # Several replicas on one host would all want metrics' default port: off unless asked for.
    child_env.setdefault("OTAO_METRICS__PORT", "0")
    process = OtaoProcess(
        host,
        grpc_port,
        [sys.executable, "-m", "otao"],
        log_path,
        env=child_env,
        ready_timeout=ready_timeout,
        cwd=cwd,
    )
    process.start()
    return process
