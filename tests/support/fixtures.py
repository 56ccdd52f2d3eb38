"""Fixtures for tests that talk to otao through its real doors (gRPC, REST via Envoy, NATS).

Registered from tests/conftest.py (``pytest_plugins``). One otao, one Envoy and one CMX
peer serve the whole session; each test isolates itself with its own application
(``application`` fixture), which the running otao learns as its settings file would say.

Per test, for the integration and security tests: ``keycloak`` (a fake Keycloak, realms added
by the test), ``http`` (an outbound client like otao's) and ``clock`` (a manual clock).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import httpx
import pytest

from otao.domain.applications import ApplicationConfig
from tests.support import ManualClock, http_client
from tests.support.cmx import CmxPeer
from tests.support.fake_keycloak import FakeKeycloak
from tests.support.otao import RunningOtao, start_otao
from tests.support.stack import EnvoyFactory, MongoServer, NatsServer


@pytest.fixture(scope="session")
async def otao(nats_server: NatsServer, mongo_server: MongoServer) -> AsyncIterator[RunningOtao]:
    running = await start_otao(nats_server.url, mongo_server.uri)
    yield running
    await running.stop()


@pytest.fixture(scope="session")
async def grpc_channel(otao: RunningOtao) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(otao.grpc_target) as channel:
        yield channel


@pytest.fixture(scope="session")
async def rest(otao: RunningOtao, envoy_factory: EnvoyFactory) -> AsyncIterator[httpx.AsyncClient]:
    envoy = envoy_factory(otao.port)
    async with httpx.AsyncClient(base_url=envoy.base_url, timeout=15.0) as client:
        yield client


@pytest.fixture(scope="session")
async def cmx(otao: RunningOtao, nats_server: NatsServer) -> AsyncIterator[CmxPeer]:
    peer = await CmxPeer.connect(nats_server.url)
    yield peer
    await peer.close()


@pytest.fixture
def application(otao: RunningOtao) -> ApplicationConfig:
    """A fresh application (and app version name) of the default tenant, for one test."""
    return otao.add_application()


@pytest.fixture
def keycloak() -> Iterator[FakeKeycloak]:
    with FakeKeycloak() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with http_client() as client:
        yield client


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
