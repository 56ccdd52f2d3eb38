"""What runs, and the one order in which it starts, drains and closes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import KW_ONLY, dataclass, field
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


@dataclass(eq=False, slots=True)
class Readiness:
    """Health follows the dependencies: MongoDB (indexes made) and NATS."""

    mongo: Mongo
    nats: NatsConnection
    health: Health
    indexes_ready: bool = field(init=False, default=False)

    async def run(self) -> None:
        while True:
            database_ok = await self.mongo.ping()
            if database_ok and not self.indexes_ready:
                try:
                    await self.mongo.ensure_indexes()
                    self.indexes_ready = True
                except Exception:
                    log.exception("index creation failed; retrying")
            self.health.set(database_ok and self.indexes_ready and self.nats.connected)
            await asyncio.sleep(0.5)


@dataclass(eq=False, slots=True)
class Lifecycle:
    """start: ``starts`` in order, then readiness and the workers. stop (graceful): readiness
    first (it would say SERVING again), ``stop_serving``, ``drains`` together within the
    grace period, workers cancelled, ``flush``, then ``closes`` in order."""

    _: KW_ONLY
    grace_seconds: float
    starts: Sequence[Step]
    readiness: Readiness
    workers: Sequence[Worker]
    stop_serving: Step
    drains: Sequence[Drain]
    flush: Step
    closes: Sequence[Step]
    readiness_task: asyncio.Task[None] | None = field(init=False, default=None)
    worker_tasks: list[asyncio.Task[None]] = field(init=False, default_factory=list)

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """Every background task started (tests check that none died)."""
        started = [self.readiness_task] if self.readiness_task is not None else []
        return [*started, *self.worker_tasks]

    async def start(self) -> None:
        for step in self.starts:
            await step()
        self.readiness_task = asyncio.create_task(self.readiness.run(), name="readiness")
        self.worker_tasks = [
            asyncio.create_task(worker.run(), name=worker.name) for worker in self.workers
        ]

    async def stop(self) -> None:
        grace = self.grace_seconds
        if self.readiness_task is not None:
            self.readiness_task.cancel()
        await self.stop_serving()
        await asyncio.gather(*(drain(grace) for drain in self.drains))
        tasks = self.tasks
        for task in tasks:
            task.cancel()
        failures = await _finish(tasks, grace)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout=grace)
        for close in self.closes:
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
