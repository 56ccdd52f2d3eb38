"""The push job's walk over an application's known endpoints: read ahead by a task of its
own, one database request at a time (see ``walk``), and the notification rate limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

from otao.domain.models import EndpointKey
from otao.store.endpoint_documents import endpoint_doc_id
from otao.store.endpoints import EndpointBatch, EndpointStore

# Batches read ahead of the one being sent.
READ_AHEAD = 2


async def walk(
    endpoints: EndpointStore,
    tenant_id: str,
    application: str,
    after: str,
    through: str | None,
    batch_size: int,
    database: asyncio.Lock,
) -> AsyncGenerator[EndpointBatch, None]:
    """The application's known endpoints after the cursor ``after`` ("": from the first) and,
    with ``through``, up to that cursor, in batches, each with the cursor of its last endpoint
    (its document id, as the store pages by). Read by a task of their own up to READ_AHEAD
    batches ahead, each read holding ``database`` (the job's one request at a time). Close it
    (``contextlib.aclosing``) when leaving early."""
    prefix = endpoint_doc_id(EndpointKey(tenant_id, application, ""))
    assert not after or after.startswith(prefix), after
    ready: asyncio.Queue[EndpointBatch | Exception | None] = asyncio.Queue(READ_AHEAD)
    closing = False

    async def read() -> None:
        endpoint = after.removeprefix(prefix) or None
        try:
            while not closing:
                async with database:
                    states = await endpoints.push_page(tenant_id, application, endpoint, batch_size)
                more = len(states) == batch_size
                if through is not None and states and prefix + states[-1].endpoint_id >= through:
                    states = [s for s in states if prefix + s.endpoint_id <= through]
                    more = False
                if states:
                    endpoint = states[-1].endpoint_id
                    await ready.put(EndpointBatch(states, prefix + endpoint))
                if not more:
                    break
        except Exception as error:  # the consumer raises it, in order
            await ready.put(error)
            return
        await ready.put(None)

    reader = asyncio.create_task(read())
    try:
        while True:
            item = await ready.get()
            if isinstance(item, Exception):
                raise item
            if item is None:
                return
            yield item
    finally:
        closing = True
        reader.cancel()
        while not reader.done():
            # Should the driver absorb the cancel, the reader must not block on a full queue.
            while not ready.empty():
                ready.get_nowait()
            await asyncio.wait({reader}, timeout=0.05)


class RateLimiter:
    """A token bucket: at most ``rate`` notifications per second; 0 means no limit."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self.limited = rate > 0
        self._tokens = rate
        self._last = time.monotonic()

    async def take(self) -> None:
        if self._rate <= 0:
            return
        while True:
            now = time.monotonic()
            self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await asyncio.sleep((1 - self._tokens) / self._rate)
