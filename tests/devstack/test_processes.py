"""otao.devstack: child processes that start, fail loudly, stop, restart and never linger."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest

from otao.devstack.envoy import checkout_root
from otao.devstack.processes import ManagedProcess, ProcessError, free_port, tcp_accepting
from tests.support.eventually import eventually_sync
from tests.support.stack import MongoServer, NatsServer, render_sample_envoy_config

pytestmark = pytest.mark.timeout(90)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    try:
        eventually_sync(condition, "condition", timeout)
    except AssertionError:
        return False
    return True


def test_a_stopped_nats_server_starts_again_on_the_same_port(nats_server: NatsServer) -> None:
    port = nats_server.port

    nats_server.stop()
    assert not tcp_accepting("127.0.0.1", port)
    nats_server.start()

    assert nats_server.port == port
    assert nats_server.url == f"nats://127.0.0.1:{port}"
    assert tcp_accepting("127.0.0.1", port)


def test_mongo_keeps_its_data_across_a_crash_and_a_restart(
    mongo_server: MongoServer, unique_name: str
) -> None:
    if mongo_server.external:
        pytest.skip("an external MongoDB cannot be crashed by tests")
    with pymongo.MongoClient[dict[str, Any]](
        mongo_server.uri, serverSelectionTimeoutMS=5000
    ) as client:
        client[unique_name].things.insert_one({"_id": "kettle"})

    mongo_server.kill()
    mongo_server.start()

    with pymongo.MongoClient[dict[str, Any]](
        mongo_server.uri, serverSelectionTimeoutMS=5000
    ) as client:
        assert client[unique_name].things.find_one({"_id": "kettle"}) == {"_id": "kettle"}


def test_unique_names_differ_and_suit_databases_and_applications(unique_name: str) -> None:
    assert unique_name.isalnum()
    assert unique_name.islower()
    assert len(unique_name) <= 16


def shell(
    run_dir: Path,
    name: str,
    script: str,
    ready: Callable[[], bool] = lambda: False,
    ready_timeout: float = 30.0,
    stop_timeout: float = 10.0,
) -> ManagedProcess:
    """A managed ``sh -c script`` logging to <run_dir>/<name>.log; never ready unless ``ready``."""
    return ManagedProcess(
        name,
        ["sh", "-c", script],
        run_dir / f"{name}.log",
        ready=ready,
        ready_timeout=ready_timeout,
        stop_timeout=stop_timeout,
    )


def test_a_process_that_dies_before_it_is_ready_reports_the_tail_of_its_log(
    tmp_path: Path,
) -> None:
    process = shell(
        tmp_path, "doomed", "echo 'cannot bind: address in use'; exit 3", ready_timeout=10
    )

    with pytest.raises(ProcessError, match=r"(?s)doomed exited with code 3.*address in use"):
        process.start()


def test_a_process_that_never_gets_ready_is_stopped_after_its_timeout(tmp_path: Path) -> None:
    process = shell(tmp_path, "sleepy", "echo still starting; exec sleep 60", ready_timeout=0.5)

    with pytest.raises(
        ProcessError, match=r"(?s)sleepy was not ready within 0.5 s.*still starting"
    ):
        process.start()
    assert not process.running


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    process = shell(
        tmp_path,
        "stubborn",
        "trap '' TERM; echo up; while true; do sleep 0.1; done",
        ready=lambda: "up" in log.read_text(),
        stop_timeout=0.5,
    )
    process.start()

    process.stop()  # a hang here ends in the test's timeout

    assert not process.running


def test_children_do_not_outlive_a_parent_that_was_killed(tmp_path: Path) -> None:
    port = free_port()
    parent_code = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from otao.devstack.servers import start_nats
        start_nats({port}, Path({str(tmp_path)!r}))
        print("up", flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "up"
        assert tcp_accepting("127.0.0.1", port)

        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=5)

        assert wait_for(lambda: not tcp_accepting("127.0.0.1", port), timeout=10)
    finally:
        parent.kill()
        parent.wait()


def test_the_rendered_envoy_config_carries_the_given_ports_and_descriptor(
    tmp_path: Path,
) -> None:
    config = render_sample_envoy_config(tmp_path, health_check_interval=1)
    listener = config["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 18080}
    assert config["admin"]["address"]["socket_address"]["port_value"] == 19901
    cluster = config["static_resources"]["clusters"][0]
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"]["port_value"] == 15051
    assert cluster["health_checks"][0]["interval"] == "1s"
    http_filters = listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
    transcoder = next(f for f in http_filters if f["name"].endswith("grpc_json_transcoder"))
    assert transcoder["typed_config"]["proto_descriptor"] == "/somewhere/otao.pb"


def test_the_devstack_starts_and_stops_cleanly_without_otao(tmp_path: Path) -> None:
    ports = {
        "OTAO_DEV_REST_PORT": free_port(),
        "OTAO_GRPC_PORT": free_port(),
        "OTAO_DEV_NATS_PORT": free_port(),
        "OTAO_DEV_MONGO_PORT": free_port(),
        "OTAO_DEV_ENVOY_ADMIN_PORT": free_port(),
    }
    env = {k: v for k, v in os.environ.items() if k != "OTAO_MONGODB_URI"}
    env.update({name: str(port) for name, port in ports.items()})
    out = tmp_path / "devstack.out"
    with out.open("w") as sink:
        devstack = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "otao.devstack",
                "--no-otao",
                "--var-dir",
                str(tmp_path / "var"),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        assert wait_for(lambda: "Ctrl-C stops everything" in out.read_text(), timeout=60), (
            out.read_text()
        )
        banner = out.read_text()
        assert "SECURITY IS OFF" in banner
        assert f"http://127.0.0.1:{ports['OTAO_DEV_REST_PORT']}" in banner
        assert "curl -sS -X POST" in banner
        assert (tmp_path / "var" / "mongo" / "nx-27017.pid").exists()
        assert "smart-kettle-v1" in (tmp_path / "var" / "otao.yaml").read_text()

        base = f"http://127.0.0.1:{ports['OTAO_DEV_REST_PORT']}"
        with httpx.Client(base_url=base, trust_env=False, timeout=10) as http:
            response = http.get("/api/v1/applications/smart-kettle/software")
            # The console is Envoy's alone: it loads without otao, its config names the sign-in
            # client (the applications come from otao's API).
            assert f"{base}/console/" in banner
            assert http.get("/console/config.json").json()["clientId"] == "otao-console"
        # otao is not running: Envoy answers for it.
        assert response.status_code == 503
        assert response.json()["code"] == 14

        devstack.send_signal(signal.SIGTERM)
        assert devstack.wait(timeout=30) == 0
    finally:
        devstack.kill()
        devstack.wait()

    assert "stopped: nats-server" in out.read_text()
    for port in ports.values():
        assert not tcp_accepting("127.0.0.1", port)


def test_the_checkout_is_the_root_given_else_otao_dev_root_else_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = checkout_root()  # tests/conftest.py names this checkout in OTAO_DEV_ROOT
    assert (repo / "deploy" / "envoy.yaml").is_file()
    monkeypatch.delenv("OTAO_DEV_ROOT")
    monkeypatch.chdir(repo)
    assert checkout_root() == repo
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProcessError, match="not an otao checkout"):
        checkout_root()
    assert checkout_root(repo) == repo
    monkeypatch.setenv("OTAO_DEV_ROOT", str(repo))
    assert checkout_root() == repo
