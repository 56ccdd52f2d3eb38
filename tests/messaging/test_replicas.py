"""Broadcasts between otao's replicas (messaging/replicas.py) on a real nats-server: every
other replica hears a message, its sender does not, and an unreadable one is dropped."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from otao.messaging.connection import NatsConnection
from otao.messaging.replicas import ReplicaChannel
from tests.support.connections import connected
from tests.support.eventually import eventually
from tests.support.stack import NatsServer

pytestmark = pytest.mark.timeout(30)


class Replica:
    def __init__(self, nats_server: NatsServer, topic: str, name: str) -> None:
        self.connection = NatsConnection(nats_server.url, name)
        self.channel = ReplicaChannel(self.connection, "replicas-test", topic, name)
        self.heard: list[Mapping[str, Any]] = []
        # No reconnect happens here (tests/reliability/test_nats_restart.py has them).
        self.channel.listen(self.heard.append, lambda: None, "test broadcast")

    async def broadcast(self, payload: Mapping[str, object]) -> None:
        await self.channel.broadcast(payload)
        await self.connection.client.flush()


@pytest.fixture
async def pair(nats_server: NatsServer) -> AsyncIterator[tuple[Replica, Replica]]:
    topic = f"test.{secrets.token_hex(4)}"
    replicas = (Replica(nats_server, topic, "a"), Replica(nats_server, topic, "b"))
    async with connected(*(r.connection for r in replicas)):
        yield replicas


async def test_a_broadcast_reaches_the_other_replica_and_not_its_sender(
    pair: tuple[Replica, Replica],
) -> None:
    a, b = pair
    await a.broadcast({"n": 1})
    await b.broadcast({"n": 2})
    # a's own message reached a's subscription before b's did: a heard b's, so it handled both.
    await eventually(lambda: len(a.heard) == 1 and len(b.heard) == 1, "each heard the other")
    assert a.heard == [{"n": 2, "replica": "b"}]
    assert b.heard == [{"n": 1, "replica": "a"}]


async def test_an_unreadable_broadcast_is_logged_and_dropped(
    pair: tuple[Replica, Replica], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = pair
    with caplog.at_level(logging.WARNING, logger="otao.messaging.replicas"):
        await a.connection.client.publish(a.channel.subject, b"not json")
        await a.connection.client.publish(a.channel.subject, b"[1, 2]")  # JSON, not an object
        await a.broadcast({"n": 1})
        await b.broadcast({"n": 2})
        # Each replica gets the four messages in order: hearing the last, it handled them all.
        await eventually(lambda: len(a.heard) == 1 and len(b.heard) == 1, "each heard the other")
    assert (a.heard, b.heard) == ([{"n": 2, "replica": "b"}], [{"n": 1, "replica": "a"}])
    dropped = [r.getMessage() for r in caplog.records if r.name == "otao.messaging.replicas"]
    assert dropped == ["malformed test broadcast ignored"] * 4  # two on each replica
