"""A database of its own for one test, on the session's MongoDB-compatible server, with
otao's indexes made as at start; dropped afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from otao.store.mongo import Mongo
from tests.support.stack import MongoServer, new_unique_name


@asynccontextmanager
async def fresh_database(server: MongoServer, prefix: str = "store") -> AsyncIterator[Mongo]:
    database = Mongo(server.uri, new_unique_name(prefix), timeout_ms=5000)
    await database.ensure_indexes()
    try:
        yield database
    finally:
        await database.client.drop_database(database.db.name)
        await database.close()
