"""Rollout changes for watchers (messaging/rollout_events.py) on a real nats-server: this
replica's watchers get a change at once, the other replicas' through the coalesced
broadcast, and the sender does not get its own change twice."""

from __future__ import annotations

import secrets

import pytest

from otao.messaging.connection import NatsConnection
from otao.messaging.rollout_events import RolloutEventBroadcaster, RolloutEventListener
from otao.services.ports import EventKind
from otao.services.watch import Watcher, WatchHub
from tests.support.connections import connected
from tests.support.eventually import eventually
from tests.support.stack import NatsServer

pytestmark = pytest.mark.timeout(30)


class Replica:
    def __init__(self, nats_server: NatsServer, otao: str, name: str) -> None:
        self.connection = NatsConnection(nats_server.url, name)
        self.hub = WatchHub()
        # An interval no test waits out: only an explicit flush broadcasts.
        self.events = RolloutEventBroadcaster(self.connection, self.hub, otao, name, 3600.0)
        RolloutEventListener(self.connection, self.hub, otao, name).register()


def two_replicas(nats_server: NatsServer) -> tuple[Replica, Replica]:
    """Replicas a and b of one otao instance of a name no other test uses."""
    otao = f"otao-{secrets.token_hex(4)}"
    return Replica(nats_server, otao, "a"), Replica(nats_server, otao, "b")


@pytest.fixture
def watched(nats_server: NatsServer) -> tuple[Replica, Watcher]:
    """Replica a, not connected, and a watcher of version 1.1.0 on it."""
    a, _ = two_replicas(nats_server)
    return a, a.hub.open("t1", "app", "1.1.0")


async def test_a_change_reaches_this_replicas_watchers_before_it_is_broadcast(
    watched: tuple[Replica, Watcher],
) -> None:
    a, watcher = watched
    a.events.changed("t1", "app", "1.1.0", EventKind.DEFINITION)
    # No flush ran, no connection is even up: a write's reply (which follows ``changed``)
    # comes after its event reached this replica's watchers.
    assert len(watcher) == 1


async def test_report_counts_wait_for_the_flush_and_a_write_carries_them_along_in_order(
    watched: tuple[Replica, Watcher],
) -> None:
    a, watcher = watched
    a.events.changed("t1", "app", "1.1.0", EventKind.COUNTS)
    a.events.changed("t1", "app", "1.1.0", EventKind.COUNTS)
    # Coalesced until the flush: all watchers of the rollout then share one status read.
    assert (len(watcher), a.hub.changes_seen) == (0, 0)
    a.events.changed("t1", "app", "1.1.0", EventKind.HALTED)
    # The halt came last, so it is what the watcher is told (the counts went first).
    batch = await a.hub.take(watcher)
    assert batch is not None
    assert [(p.kind, p.changes) for p in batch.pending] == [(EventKind.HALTED, 2)]
    a.events.changed("t1", "app", "1.1.0", EventKind.COUNTS)
    await a.events.flush()  # not connected: the broadcast is lost, the local delivery is not
    batch = await a.hub.take(watcher)
    assert batch is not None
    assert [(p.kind, p.changes) for p in batch.pending] == [(EventKind.COUNTS, 1)]


async def test_the_broadcast_reaches_other_replicas_and_not_the_sender_again(
    nats_server: NatsServer,
) -> None:
    a, b = two_replicas(nats_server)
    async with connected(a.connection, b.connection):
        mine = a.hub.open("t1", "app", "1.1.0")
        theirs = b.hub.open("t1", "app", "1.1.0")
        a.events.changed("t1", "app", "1.1.0", EventKind.COUNTS)
        a.events.changed("t1", "app", "1.1.0", EventKind.COUNTS)  # coalesced into one broadcast
        await a.events.flush()
        await eventually(lambda: b.hub.changes_seen == 1, "b heard the one broadcast change")
        batch = await b.hub.take(theirs)
        assert batch is not None
        assert [(p.version, p.kind, p.changes) for p in batch.pending] == [
            ("1.1.0", EventKind.COUNTS, 1)
        ]
        # a's own broadcast reached a's subscription before anything b sends after hearing it:
        # once a heard b's change, it handled its own too, and ignored it.
        b.events.changed("t1", "app", "1.2.0", EventKind.DEFINITION)
        await b.events.flush()
        await eventually(lambda: a.hub.changes_seen >= 2, "a heard b's change")
        assert a.hub.changes_seen == 2  # its own (coalesced) and b's: not its own again
        local = await a.hub.take(mine)
        assert local is not None
        assert [(p.kind, p.changes) for p in local.pending] == [(EventKind.COUNTS, 1)]
