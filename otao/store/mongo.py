"""The MongoDB connection, index creation and translation of driver errors.

This package is the only importer of pymongo. Everything above it sees domain errors:
``translated()`` turns driver exceptions into ``AlreadyExists`` or ``Unavailable``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, IndexModel, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    PyMongoError,
    ServerSelectionTimeoutError,
    WTimeoutError,
)

from otao.domain.errors import AlreadyExists, Unavailable
from otao.observability import tracing

log = logging.getLogger(__name__)

Document = dict[str, Any]

SOFTWARE = "software"
SETTINGS = "application_settings"
ENDPOINTS = "endpoints"
PUSH_JOBS = "push_jobs"
AUDIT = "audit"
OFFERS = "offers"
OFFER_BUDGETS = "offer_budgets"

# Inside Mongo.fail_fast: tells translated() whether the database is known to be down.
_known_down: ContextVar[Callable[[], bool] | None] = ContextVar("otao_db_known_down", default=None)

_INDEXES: Mapping[str, list[IndexModel]] = {
    SOFTWARE: [
        IndexModel(
            [("tenantId", ASCENDING), ("application", ASCENDING), ("version", ASCENDING)],
            unique=True,
            name="tenant_application_version",
        ),
    ],
    ENDPOINTS: [
        IndexModel(
            [("tenantId", ASCENDING), ("application", ASCENDING), ("currentVersion", ASCENDING)],
            name="tenant_application_version",
        ),
        IndexModel([("filters", ASCENDING)], name="filters"),
        IndexModel([("appliedVersions", ASCENDING)], name="applied_versions"),
        IndexModel([("failedVersions", ASCENDING)], name="failed_versions"),
    ],
    PUSH_JOBS: [IndexModel([("state", ASCENDING)], name="state")],
    OFFERS: [
        IndexModel(
            [("tenantId", ASCENDING), ("application", ASCENDING), ("version", ASCENDING)],
            name="tenant_application_version",
        ),
    ],
    AUDIT: [
        IndexModel(
            [("tenantId", ASCENDING), ("application", ASCENDING), ("time", ASCENDING)],
            name="tenant_application_time",
        ),
    ],
}


async def id_range(
    collection: AsyncCollection[Document],
    query: Document,
    after_id: str | None,
    limit: int,
    projection: Document | None = None,
) -> list[Document]:
    """Up to ``limit`` documents matching ``query`` (which names tenantId and application)
    whose ``_id`` (``tenant/application/...``) follows ``after_id``, in ``_id`` order.

    The range is given as index bounds on ``_id`` (min/max with a hint), not as an
    ``_id`` comparison in the filter: the same index range scan on MongoDB, and on the
    embedded nx-27017 the difference between an index range (milliseconds) and a scan of
    the whole collection in Python (seconds per page at 100,000 endpoints).
    """
    prefix = f"{query['tenantId']}/{query['application']}/"
    upper = prefix[:-1] + "0"  # "0" follows "/": every _id with the prefix is below
    lower = after_id if after_id is not None and after_id >= prefix else prefix
    if lower >= upper or limit <= 0:
        return []
    exclusive = lower == after_id  # min() is inclusive
    cursor = (
        collection.find(query, projection)
        .sort("_id", 1)
        .hint([("_id", 1)])
        .min([("_id", lower)])
        .max([("_id", upper)])
        .limit(limit + 1 if exclusive else limit)
    )
    docs = [doc async for doc in cursor if not (exclusive and doc["_id"] == lower)]
    return docs[:limit]


@asynccontextmanager
async def translated(what: str, bound_seconds: float) -> AsyncIterator[None]:
    """One database call (``Mongo.call``): a child span when tracing is on, bounded in time,
    errors translated (below)."""
    with tracing.span(what, "CLIENT", **{"db.system": "mongodb"}):
        async with _translated(what, bound_seconds):
            yield


@asynccontextmanager
async def _translated(what: str, bound_seconds: float) -> AsyncIterator[None]:
    """Translate driver errors raised inside into domain errors, at the adapter boundary.

    Inside ``Mongo.fail_fast`` an operation is not even tried while the database is known to
    be down: Unavailable at once.
    """
    known_down = _known_down.get()
    if known_down is not None and known_down():
        raise Unavailable("the database is unavailable")
    try:
        async with asyncio.timeout(bound_seconds):
            yield
    except TimeoutError as exc:
        raise Unavailable("the database did not answer in time") from exc
    except DuplicateKeyError as exc:
        raise AlreadyExists(f"{what} already exists") from exc
    except (ConnectionFailure, ServerSelectionTimeoutError, ExecutionTimeout, WTimeoutError) as exc:
        raise Unavailable("the database is unavailable") from exc
    except PyMongoError as exc:
        log.warning("database error during %s: %s", what, exc)
        raise Unavailable("the database failed to answer") from exc


class Mongo:
    """Owns the client; hands out collections."""

    def __init__(
        self,
        uri: str,
        database: str,
        timeout_ms: int,
        listeners: Sequence[monitoring._EventListener] = (),
    ) -> None:
        # Bounded timeouts everywhere: a database outage must turn into UNAVAILABLE quickly,
        # never into a hung request. Server selection and connecting are bounded by the
        # driver; a whole call by translated() (asyncio.timeout, 2 x timeout_ms), not by the
        # driver's socketTimeoutMS or timeoutMS: with either, async pymongo wraps every send
        # and receive in a timed asyncio.wait_for / asyncio.wait, 25-30 µs of CPU per
        # operation (an _id find_one: 238 µs without, 264-273 with; in-process, nx-27017),
        # where one asyncio.timeout per call costs about 2.
        self._call_bound_seconds = timeout_ms * 2 / 1000
        self._timeout_seconds = timeout_ms / 1000
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            uri,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            retryWrites=True,
            tz_aware=True,
            event_listeners=list(listeners),  # store/monitoring.py (metrics)
        )
        self.db: AsyncDatabase[Document] = self.client[database]

    def collection(self, name: str) -> AsyncCollection[Document]:
        return self.db[name]

    def call(self, what: str) -> AbstractAsyncContextManager[None]:
        """Wraps one database call of the stores: bounded by this client's timeout, driver
        errors translated into domain errors."""
        return translated(what, self._call_bound_seconds)

    async def count(self, collection: AsyncCollection[Document], match: Document, what: str) -> int:
        """How many documents match, counted by the database (an aggregation's $count)."""
        pipeline: list[Document] = [{"$match": match}, {"$count": "n"}]
        async with self.call(what):
            cursor = await collection.aggregate(pipeline)
            found = [doc async for doc in cursor]
        return int(found[0]["n"]) if found else 0

    @contextmanager
    def fail_fast(self) -> Iterator[None]:
        """Code run inside this, and in every task it starts, fails fast on a database known
        to be down.

        While the driver knows no server that could answer (it learns that from the first
        failed operation or readiness ping, and learns the recovery from the next ping, which
        ``ping`` does without this check), every operation raises Unavailable at once instead
        of each waiting out server selection and a retry: up to 2 x timeout_ms apiece, several
        per request, and meanwhile holding locks other requests wait on. Answers that need no
        database (the in-memory catalog) still work; a database that is up but slow is still
        waited for.
        """
        token = _known_down.set(self._known_down)
        try:
            yield
        finally:
            _known_down.reset(token)

    def _known_down(self) -> bool:
        """No server could answer, and that was found out (not merely not checked yet)."""
        topology = self.client.topology_description
        if topology.has_readable_server():
            return False
        return any(s.error is not None for s in topology.server_descriptions().values())

    async def ensure_indexes(self) -> None:
        async with self.call("index creation"):
            for name, indexes in _INDEXES.items():
                await self.db[name].create_indexes(indexes)

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout_seconds):  # no driver socket timeout
                await self.db.command("ping")
        except (PyMongoError, TimeoutError):
            return False
        return True

    async def close(self) -> None:
        await self.client.close()
