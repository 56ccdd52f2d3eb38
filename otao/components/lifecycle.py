"""What runs, and the one order in which it starts, drains and closes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from otao.messaging.connection import NatsConnection
from otao.rpc.server import Health
from otao.store.mongo import Mongo

log = logging.getLogger(__name__)

Step = Callable[[], Awaitable[object]]
Drain = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Worker:
    """Background work that runs until cancelled; the name is for logs only."""

    name: str
    run: Callable[[], Coroutine[Any, Any, None]]


class Readiness:
    """Health follows the dependencies: MongoDB (indexes made) and NATS."""

    def __init__(self, mongo: Mongo, nats: NatsConnection, health: Health) -> None:
        self._mongo = mongo
        self._nats = nats
        self._health = health
        self._indexes_ready = False

    async def run(self) -> None:
        while True:
            database_ok = await self._mongo.ping()
            if database_ok and not self._indexes_ready:
                try:
                    await self._mongo.ensure_indexes()
                    self._indexes_ready = True
                except Exception:
                    log.exception("index creation failed; retrying")
            self._health.set(database_ok and self._indexes_ready and self._nats.connected)
            await asyncio.sleep(0.5)


class Lifecycle:
    """start: ``starts`` in order, then readiness and the workers. stop (graceful): readiness
    first (it would say SERVING again), ``stop_serving``, ``drains`` together within the
    grace period, workers cancelled, ``flush``, then ``closes`` in order."""

    def __init__(
        self,
        *,
        grace_seconds: float,
        starts: Sequence[Step],
        readiness: Readiness,
        workers: Sequence[Worker],
        stop_serving: Step,
        drains: Sequence[Drain],
        flush: Step,
        closes: Sequence[Step],
    ) -> None:
        self._grace = grace_seconds
        self._starts = starts
        self._readiness = readiness
        self._workers = workers
        self._stop_serving = stop_serving
        self._drains = drains
        self._flush = flush
        self._closes = closes
        self._readiness_task: asyncio.Task[None] | None = None
        self._worker_tasks: list[asyncio.Task[None]] = []

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """Every background task started (tests check that none died)."""
        started = [self._readiness_task] if self._readiness_task is not None else []
        return [*started, *self._worker_tasks]

    async def start(self) -> None:
        for step in self._starts:
            await step()
        self._readiness_task = asyncio.create_task(self._readiness.run(), name="readiness")
        self._worker_tasks = [
            asyncio.create_task(worker.run(), name=worker.name) for worker in self._workers
        ]

    async def stop(self) -> None:
        grace = self._grace
        if self._readiness_task is not None:
            self._readiness_task.cancel()
        await self._stop_serving()
        await asyncio.gather(*(drain(grace) for drain in self._drains))
        tasks = self.tasks
        for task in tasks:
            task.cancel()
        failures = await _finish(tasks, grace)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._flush(), timeout=grace)
        for close in self._closes:
            await close()
        if failures:
            # Closed everything first; a background task that died still fails the stop.
            raise failures[0]


async def _finish(tasks: list[asyncio.Task[None]], timeout: float) -> list[BaseException]:
    """Wait (at most ``timeout``) for cancelled tasks to end; the errors they died of.

    A cancellation can be lost: ``asyncio.wait_for``, which the database driver uses for its
    socket I/O, may swallow one on Python 3.11 when the I/O completes at the same moment. So
    a task still running is asked again, rather than awaited for ever (a stop that hung).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = {task for task in tasks if not task.done()}
    while pending:
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.error("background tasks did not stop: %s", sorted(t.get_name() for t in pending))
            break
        _, pending = await asyncio.wait(pending, timeout=min(0.2, remaining))
        for task in pending:
            task.cancel()
    return [error for task in tasks if (error := _died_of(task)) is not None]


def _died_of(task: asyncio.Task[None]) -> BaseException | None:
    if not task.done() or task.cancelled():
        return None
    return task.exception()
