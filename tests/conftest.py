"""Session fixtures for the real processes tests run against (see tests/support/stack.py).

- ``nats_server``: nats-server on a free port; ``.url``, ``.port``, ``.stop()``, ``.start()``.
- ``mongo_server``: nx-27017 on a free port (data under a pytest tmp dir), or the MongoDB named
  by ``OTAO_TEST_MONGODB_URI``; ``.uri``, ``.stop()``, ``.start()``.
- ``envoy_factory``: ``envoy_factory(grpc_port)`` -> a real Envoy with ``.base_url`` in front of
  a gRPC server on 127.0.0.1:<grpc_port>.
- ``unique_name``: a short random name per test (application, database, subject part).

A test that stopped nats or mongo and failed before starting it again does not leave the
server down for the rest of the session: it is started again after the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stack import (
    EnvoyFactory,
    MongoServer,
    NatsServer,
    new_unique_name,
    start_mongo_server,
    start_nats_server,
)

# The local stack's files (deploy/envoy.yaml, gen/otao.pb) come from this checkout, wherever
# pytest was started from (otao.devstack.envoy.checkout_root).
os.environ.setdefault("OTAO_DEV_ROOT", str(Path(__file__).resolve().parents[1]))

# otao itself, REST through Envoy, gRPC and a CMX peer: see tests/support/fixtures.py.
pytest_plugins = ["tests.support.fixtures"]


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = start_nats_server(tmp_path_factory.mktemp("nats"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    server = start_mongo_server(tmp_path_factory.mktemp("nx-27017"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def envoy_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvoyFactory]:
    factory = EnvoyFactory(tmp_path_factory.mktemp("envoy"))
    yield factory
    factory.close()


@pytest.fixture
def unique_name() -> str:
    return new_unique_name()


@pytest.fixture(autouse=True)
def _restart_servers_a_test_left_stopped(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    for name in ("nats_server", "mongo_server"):
        server = request.node.funcargs.get(name)
        if isinstance(server, NatsServer | MongoServer) and not server.running:
            server.start()
