"""``otao device ...`` (otao.cli) run as a user runs it: a subprocess against real NATS, or
against a port where NATS is stopped or absent. Assertions are on exit codes and output;
the subprocess timeouts only stop a hang."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from otao.devstack.processes import free_port
from otao.devstack.servers import start_nats
from tests.support.eventually import eventually_sync
from tests.support.stack import NatsServer

pytestmark = pytest.mark.timeout(90)

HANG = 30  # seconds: far beyond any --timeout below; only a hang reaches it


def otao(*args: str, timeout: float = HANG) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otao.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stopped_nats_url(tmp_path: Path) -> str:
    """A port where a nats-server ran and was stopped."""
    process = start_nats(free_port(), tmp_path)
    process.stop()
    return process.url


@pytest.mark.parametrize("where", ["absent", "stopped"])
@pytest.mark.parametrize(
    "command",
    [
        ["poll", "--app-version", "kettle-v1", "--endpoint", "ep-1", "--config-id", "1.0.0"],
        ["applied", "--app-version", "kettle-v1", "--endpoint", "ep-1", "--config-id", "1.1.0"],
    ],
    ids=["poll", "applied"],
)
def test_a_device_command_with_nats_down_exits_non_zero_with_one_clear_line(
    tmp_path: Path, where: str, command: list[str]
) -> None:
    url = f"nats://127.0.0.1:{free_port()}" if where == "absent" else stopped_nats_url(tmp_path)

    done = otao("--nats", url, "device", *command, "--timeout", "3")

    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"otao device {command[0]}: cannot reach NATS at {url} (connection refused)"
    ]


def test_a_poll_nobody_answers_exits_1_with_one_line(nats_server: NatsServer) -> None:
    done = otao(
        "--nats",
        nats_server.url,
        "--otao",
        "nobody-serves-this",
        "device",
        "poll",
        "--app-version",
        "kettle-v1",
        "--endpoint",
        "ep-1",
        "--timeout",
        "0.5",
    )

    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "no answer: no otao named 'nobody-serves-this' serves this NATS"
    ]


def test_watch_says_once_that_it_lost_and_regained_nats_and_retries_quietly(
    tmp_path: Path,
) -> None:
    nats = start_nats(free_port(), tmp_path)
    err = tmp_path / "watch.err"
    with err.open("w") as sink:
        watch = subprocess.Popen(
            [sys.executable, "-m", "otao.cli", "--nats", nats.url, "device", "watch"],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            text=True,
        )
    try:

        def said(text: str) -> bool:
            return text in err.read_text()

        eventually_sync(lambda: said("watching ConfigUpdated"), "watch started", timeout=HANG)
        nats.stop()
        eventually_sync(lambda: said("lost the connection"), "the loss said", timeout=HANG)
        # While NATS is down, a listener that never speaks NATS counts watch's reconnect
        # attempts: each one fails, and none of them may print a line.
        with socket.socket() as impostor:
            impostor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            impostor.bind((nats.host, nats.port))
            impostor.listen()
            impostor.setblocking(False)
            attempts = 0

            def attempted_twice() -> bool:
                nonlocal attempts
                with contextlib.suppress(BlockingIOError):
                    impostor.accept()[0].close()
                    attempts += 1
                return attempts >= 2

            eventually_sync(attempted_twice, "two failed reconnect attempts", timeout=HANG)
        nats.start()
        eventually_sync(lambda: said("again; watching"), "the recovery said", timeout=HANG)
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=HANG) == 0
    finally:
        watch.kill()
        watch.wait()
        nats.stop()

    assert err.read_text().splitlines() == [
        "watching ConfigUpdated pushes; Ctrl-C to stop",
        f"lost the connection to NATS at {nats.url}; retrying quietly",
        f"connected to NATS at {nats.url} again; watching",
    ]


def test_watch_started_before_nats_says_so_once_and_watches_when_it_comes(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    err = tmp_path / "watch.err"
    with err.open("w") as sink:
        watch = subprocess.Popen(
            [sys.executable, "-m", "otao.cli", "--nats", url, "device", "watch"],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    nats = None
    try:
        eventually_sync(lambda: "cannot reach" in err.read_text(), "the wait said", timeout=HANG)
        nats = start_nats(port, tmp_path)
        eventually_sync(lambda: "watching ConfigUpdated" in err.read_text(), "up", timeout=HANG)
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=HANG) == 0
    finally:
        watch.kill()
        watch.wait()
        if nats is not None:
            nats.stop()

    assert err.read_text().splitlines() == [
        f"cannot reach NATS at {url}; retrying quietly until it answers",
        f"connected to NATS at {url} again; watching",
        "watching ConfigUpdated pushes; Ctrl-C to stop",
    ]
