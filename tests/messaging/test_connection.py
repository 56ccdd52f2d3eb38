"""NatsConnection against a real nats-server: several comma-separated seeds (cluster members)."""

from __future__ import annotations

import pytest

from otao.devstack.processes import free_port
from otao.messaging.connection import NatsConnection
from tests.support.eventually import eventually
from tests.support.stack import NatsServer

pytestmark = pytest.mark.timeout(30)


async def test_a_seed_that_is_down_does_not_stop_the_connection(nats_server: NatsServer) -> None:
    down = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    connection = NatsConnection(f"{down}, {nats_server.url},", "seeds-test")
    connection.start()
    try:
        await eventually(lambda: connection.connected, "connected through the live seed", 10)
        assert connection.client.connected_url is not None
        assert connection.client.connected_url.port == nats_server.port
    finally:
        await connection.close()
