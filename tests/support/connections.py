"""otao's own NATS connections (messaging/connection.py) started for a test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from otao.messaging.connection import NatsConnection
from tests.support.eventually import eventually


@asynccontextmanager
async def connected(*connections: NatsConnection) -> AsyncIterator[None]:
    """Each connection started, connected and its subscriptions made at the server inside;
    all closed on the way out."""
    for connection in connections:
        connection.start()
    try:
        await eventually(lambda: all(c.connected for c in connections), "connected", 10)
        for connection in connections:
            await connection.flush()  # their subscriptions are at the server, not only sent
        yield
    finally:
        for connection in connections:
            await connection.close()
