"""The NATS connection: connects in the background, reconnects forever, reports readiness.

otao starts even when the broker is down (health says not serving until it connects), and
never gives up reconnecting: a broker restart must not need an otao restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import ParamSpec

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from otao.domain.errors import OtaoError, Unavailable
from otao.observability import tracing

log = logging.getLogger(__name__)

Handler = Callable[[Msg], Awaitable[None]]
P = ParamSpec("P")


def event_handler(
    what: str,
) -> Callable[[Callable[P, Awaitable[None]]], Callable[P, Awaitable[None]]]:
    """Guards a handler of events (never answered), so no failure escapes into nats-py.

    A domain error (undecodable payload, database unavailable...) is logged as a warning;
    anything else with its traceback. Either way the subscription goes on.
    """

    def wrap(handle: Callable[P, Awaitable[None]]) -> Callable[P, Awaitable[None]]:
        @functools.wraps(handle)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
            try:
                await handle(*args, **kwargs)
            except OtaoError as error:
                log.warning("%s not handled: %s", what, error.message)
            except Exception:
                log.exception("unexpected error handling %s", what)

        return guarded

    return wrap


class NatsConnection:
    def __init__(self, url: str, name: str) -> None:
        self._url = url
        # Several seeds, comma-separated (members of one NATS cluster): the first connect
        # succeeds while any of them is up. nats-py shuffles them, spreading replicas.
        self._servers = [seed.strip() for seed in url.split(",") if seed.strip()]
        self._name = name
        self._client: Client | None = None
        self._subscriptions: list[tuple[str, str, Handler]] = []
        self._task: asyncio.Task[None] | None = None
        self._on_reconnect: list[Callable[[], None]] = []
        self._on_error: list[Callable[[], None]] = []
        self._active: list[Subscription] = []

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    @property
    def client(self) -> Client:
        if self._client is None:
            raise Unavailable("the message broker is not connected")
        return self._client

    def subscribe(self, subject: str, handler: Handler, queue: str = "") -> None:
        """Register a subscription; made on connect (nats-py restores it on reconnect)."""
        self._subscriptions.append((subject, queue, handler))

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Called after a reconnect: broadcasts sent meanwhile were missed."""
        self._on_reconnect.append(callback)

    def on_error(self, callback: Callable[[], None]) -> None:
        """Called for every error the client reports (metrics count them)."""
        self._on_error.append(callback)

    def start(self) -> None:
        self._task = asyncio.create_task(self._connect_forever(), name="nats-connect")

    async def _connect_forever(self) -> None:
        delay = 0.2
        while True:
            try:
                client = await nats.connect(
                    self._servers,
                    name=self._name,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    connect_timeout=2,
                    ping_interval=5,
                    max_outstanding_pings=2,
                    # Keep publishing while reconnecting, up to 64 MiB buffered.
                    pending_size=64 * 1024 * 1024,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                    error_cb=self._error,
                )
            except (OSError, NatsError, TimeoutError) as exc:
                log.warning("cannot reach NATS at %s (%s); retrying", self._url, type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            for subject, queue, handler in self._subscriptions:
                self._active.append(
                    await client.subscribe(
                        subject, queue=queue, cb=handler, pending_msgs_limit=100_000
                    )
                )
            self._client = client
            log.info("connected to NATS", extra={"url": self._url})
            return

    async def _disconnected(self) -> None:
        if self._client is not None and self._client.is_closed:
            return  # closed by ``close`` (a graceful stop): nothing reconnects
        log.warning("disconnected from NATS; reconnecting")

    async def _reconnected(self) -> None:
        log.info("reconnected to NATS")
        for callback in self._on_reconnect:
            callback()

    async def _error(self, error: Exception) -> None:
        log.warning("NATS error: %s", type(error).__name__)
        for callback in self._on_error:
            callback()

    async def publish(self, subject: str, payload: bytes, reply: str = "") -> None:
        # Every reply comes through here: off, tracing costs one check (no span, no context
        # manager), and the client is read without the property.
        client = self._client
        if client is None:
            raise Unavailable("the message broker is not connected")
        try:
            if tracing.enabled():
                destination = {"messaging.destination.name": subject}
                with tracing.span("publish", "PRODUCER", **destination):
                    await client.publish(subject, payload, reply=reply)
            else:
                await client.publish(subject, payload, reply=reply)
        except NatsError as exc:
            raise Unavailable("the message broker is unavailable") from exc

    async def publish_many(self, subject: str, payloads: Iterable[bytes]) -> None:
        """``publish`` of each payload, in order (a push's batch, 10,000s a second): with
        tracing off, the client is looked up once and no per-message call is added."""
        if tracing.enabled():
            for payload in payloads:
                await self.publish(subject, payload)  # a span each
            return
        publish = self.client.publish
        try:
            for payload in payloads:
                await publish(subject, payload)
        except NatsError as exc:
            raise Unavailable("the message broker is unavailable") from exc

    async def flush(self, timeout: int = 5) -> None:
        """Returns once the server has everything published before (a PING/PONG fence)."""
        client = self.client
        try:
            await write_buffered(client)
            await client.flush(timeout=timeout)
        except (NatsError, TimeoutError) as exc:
            raise Unavailable("the message broker is unavailable") from exc

    async def leave_queue_groups(self, timeout: float) -> None:
        """Graceful shutdown, first step: stop taking shared work.

        Unsubscribes from every queue-group subject, so the broker hands new messages to the
        other replicas, and waits (at most ``timeout``) until the messages this replica already
        received are handled. Replies, broadcasts and publishing keep working until ``close``.
        """
        shared = [s for s in self._active if s.queue]
        self._active = [s for s in self._active if not s.queue]
        client = self._client
        if not shared or client is None or not client.is_connected:
            return
        try:
            await asyncio.wait_for(_drain_in_order(client, shared), timeout)
        except (NatsError, TimeoutError) as exc:
            log.warning("leaving the queue groups did not complete: %s", type(exc).__name__)

    async def close(self) -> None:
        """Drain: finish handling received messages, flush what was published, then close.

        Only the replica's own subscriptions are left by then (replies, broadcasts): a
        message the client's drain drops there (see ``_drain_in_order``) was sent to every
        replica, or answers a question nobody waits for any more.
        """
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None and not self._client.is_closed:
            try:
                await self._client.drain()
            except (NatsError, TimeoutError):
                await self._client.close()


async def write_buffered(client: Client) -> bool:
    """Returns once nats-py wrote what it buffered; False when this nats-py cannot say.

    nats-py (2.10 to 2.16) buffers commands (PUB, SUB, UNSUB) for its flusher task, but writes
    a PING straight to the socket, ahead of them: its PONG fences only what was written. So a
    fence writes the buffer first (a forced flush returns once the flusher wrote it).
    """
    flush_pending = getattr(client, "_flush_pending", None)
    if flush_pending is None:
        return False
    await flush_pending(force_flush=True)
    return True


async def _drain_in_order(client: Client, subscriptions: list[Subscription]) -> None:
    """Drain ``subscriptions`` with their UNSUBs on the wire before the PING that fences them.

    ``Subscription.drain`` buffers its UNSUB but sends its PING at once (see
    ``write_buffered``). The PONG can then come back before the server has read the UNSUB;
    the drain ends, the client forgets the subscription, and a request the server handed
    this replica in between is dropped as one for no subscription: nobody answers it, and
    core NATS never redelivers. So the UNSUBs are sent and written first; drain's own UNSUB
    then finds nothing left at the server, and its PONG comes after every message the server
    sent this replica, each of which is handled before the drain ends.
    """
    unsubscribe = getattr(client, "_send_unsubscribe", None)
    if unsubscribe is not None:
        for subscription in subscriptions:
            await unsubscribe(subscription._id)
    if unsubscribe is None or not await write_buffered(client):
        # A nats-py without these: its own order, rather than no graceful stop at all.
        log.warning("nats-py changed: queue groups are left in its own (lossy) order")
    drains = (s.drain() for s in subscriptions)  # type: ignore[no-untyped-call]
    await asyncio.gather(*drains)
