"""Waiting on signals the code under test gives, instead of sleeping.

- ``eventually(check, what)``: poll ``check`` (sync or async) until it holds; an
  ``AssertionError`` naming ``what`` when it does not within ``timeout``. The timeout is a
  generous bound against a hang, never a latency assertion.
- ``eventually_sync``: the same for plain (non-async) tests.
- ``delivered(client, subscriptions)``: every message published to these NATS subscriptions
  before the call has been handled by its callback. Use it after waiting for otao to say it
  sent everything (``pushes_done``) to assert that nothing *else* arrived, without a sleep.
- ``received(client, subject)``: how many messages on ``subject`` reached ``client``'s
  subscriptions (queued, handled or not): "otao has the message" while its handler is
  still waiting (for a database that is down, say).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable

from nats.aio.client import Client
from nats.aio.subscription import Subscription

Check = Callable[[], bool | Awaitable[bool]]

DEFAULT_TIMEOUT = 10.0
INTERVAL = 0.02


async def _holds(check: Check) -> bool:
    result = check()
    if inspect.isawaitable(result):
        return bool(await result)
    return bool(result)


async def eventually(
    check: Check,
    what: str = "condition",
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = INTERVAL,
) -> None:
    deadline = time.monotonic() + timeout
    while not await _holds(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"not in time: {what}")
        await asyncio.sleep(interval)


def eventually_sync(
    check: Callable[[], bool],
    what: str = "condition",
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = INTERVAL,
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in time: {what}")
        time.sleep(interval)


async def delivered(client: Client, subscriptions: Iterable[Subscription]) -> None:
    # The server answers our PING after it queued to us every message it routed before, and
    # a publisher that flushed has had its messages routed: after the PONG every such message
    # sits in a subscription's queue, and join() returns once each callback has handled it.
    await client.flush()
    for subscription in subscriptions:
        await subscription._pending_queue.join()


def received(client: Client, subject: str) -> int:
    # nats-py counts a message when it reaches the client, before it is queued to the callback.
    return sum(sub.delivered for sub in client._subs.values() if sub.subject == subject)
