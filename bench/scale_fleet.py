"""The fleet of ``make bench-scale``: up to a million known endpoints over 20 versions and 50
filters, seeded with bulk inserts of the documents otao's endpoint store writes.

The shape cannot drift from the store's: a few template endpoints (one per combination of
version and filter the fleet uses) are written by ``otao.store.endpoints.EndpointStore``
itself on the bench's database (a sighting, an applied report, EPR's filter membership: what
a known endpoint's document holds), read back, and every seeded endpoint is a copy of its
template with its own ids.

The copies go in one of two ways. On the bench's own nx-27017 (``sqlite_file`` given), they
are written straight into its SQLite file: nx-27017 (NeoSQLite) keeps a document as its JSON
text in the collection's table (``id``, ``_id``, ``data``), and its indexes are SQLite's own,
so a copy of the template's stored text with its own ids, inserted by SQLite in large
transactions, is the row the server would have written for the same ``insert_many``, at a
fraction of the cost (the server turns every document of a wire insert into JSON in Python,
one statement each: 2,000-5,000 a second). The database is in WAL mode: the server keeps
answering while a transaction is written. On any other database (a MongoDB given by a URI)
they go through the wire, ``insert_many``.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from bench import seed
from otao.domain.models import AppliedReport, EndpointKey
from otao.store.endpoint_documents import endpoint_doc_id
from otao.store.endpoints import EndpointStore
from otao.store.mongo import ENDPOINTS, SOFTWARE, Mongo

FLEET = seed.FLEET  # configured in otao by bench/stack.py; the baselines name it the same way
VERSIONS = 20
FILTERS = 50
PUSHED = "2.0.0"  # the general release of the push: upgradable from every fleet version
_TEMPLATES = "scale-templates"  # written by the store, copied, then deleted
CHUNK = 5_000
INSERTERS = 2  # concurrent insert_many calls: nx-27017 overlaps a little of its work
# Rows per SQLite transaction when writing nx-27017's file directly: large enough that the
# commit is noise, small enough that the server's own writes wait at most a fraction of a
# second for the lock.
SQLITE_CHUNK = 20_000


def version(index: int) -> str:
    return seed.chain_version(index)


NEWEST = version(VERSIONS - 1)


def endpoint_id(index: int) -> str:
    return f"ep-{index:07d}"


def version_index(index: int) -> int:
    return index % VERSIONS


def filter_id(index: int) -> str:
    return f"filter-{index % FILTERS:02d}"


def offered(index: int) -> str | None:
    """What a poll of endpoint ``index`` reporting its version gets: each definition is
    upgradable from the three before it (seed.chain) and the highest wins."""
    current = version_index(index)
    return None if current == VERSIONS - 1 else version(min(current + 3, VERSIONS - 1))


def definitions() -> list[dict[str, Any]]:
    return list(seed.chain(FLEET.name, VERSIONS))


def pushed_definition_sources() -> list[str]:
    return [version(i) for i in range(VERSIONS)]


# Version and filter both follow the endpoint's index modulo this: one template each.
_PERIOD = math.lcm(VERSIONS, FILTERS)


assert ENDPOINTS == "endpoints"  # the table the SQL below names


class SqliteFile:
    """nx-27017's SQLite file of the bench's database: endpoint rows written directly."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are begun and committed explicitly below. The long
        # busy timeout waits out a write the server is making.
        return sqlite3.connect(self.path, timeout=60, isolation_level=None)

    def stored(self, doc_ids: list[str]) -> list[dict[str, Any]]:
        """The stored JSON of these documents (as nx-27017 wrote them), in the given order."""
        connection = self._connect()
        try:
            columns = [row[1] for row in connection.execute("PRAGMA table_info(endpoints)")]
            # The layout NeoSQLite's own insert writes; refuse anything else rather than guess.
            if columns != ["id", "_id", "data"]:
                raise RuntimeError(f"unexpected NeoSQLite table layout: {columns}")
            select = "SELECT _id, data FROM endpoints WHERE _id = ?"
            rows = {i: connection.execute(select, (i,)).fetchone()[1] for i in doc_ids}
        finally:
            connection.close()
        return [json.loads(rows[doc_id]) for doc_id in doc_ids]

    def insert(self, rows: Iterator[tuple[str, str]]) -> None:
        """(``_id``, JSON text) rows, in transactions of SQLITE_CHUNK."""
        connection = self._connect()
        try:
            while True:
                chunk = [row for _, row in zip(range(SQLITE_CHUNK), rows, strict=False)]
                if not chunk:
                    return
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany("INSERT INTO endpoints(_id, data) VALUES (?, ?)", chunk)
                connection.execute("COMMIT")
        finally:
            connection.close()


class FleetSeeder:
    def __init__(self, mongo_uri: str, database: str, sqlite_file: Path | None = None) -> None:
        """``sqlite_file``: nx-27017's file of ``database``, written directly (module doc);
        None: insert through the wire."""
        self._uri, self._database = mongo_uri, database
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            mongo_uri, tz_aware=True, timeoutMS=300_000
        )
        self._db = self._client[database]
        self._templates: list[dict[str, Any]] = []
        self._file = SqliteFile(sqlite_file) if sqlite_file is not None else None
        self._stored: list[dict[str, Any]] = []  # the templates as stored (direct writes)
        self.seconds = 0.0
        self.known = 0
        self.method = "sqlite" if sqlite_file is not None else "insert_many"

    async def definitions(self) -> None:
        await self._db[SOFTWARE].insert_many(definitions(), ordered=False)

    async def _write_templates(self) -> None:
        """One document per (version, filter) combination, written by the store itself."""
        mongo = Mongo(self._uri, self._database, 30_000)
        store = EndpointStore(mongo)
        now = datetime.now(UTC).replace(microsecond=0)
        try:
            for index in range(_PERIOD):
                key = EndpointKey(seed.TENANT, _TEMPLATES, endpoint_id(index))
                current = version(version_index(index))
                await store.record_sighting(key, FLEET.app_version, current, now)
                await store.apply_report(
                    key, FLEET.app_version, AppliedReport(current, 200, None, now)
                )
                await store.set_filters(key, frozenset({filter_id(index)}), now)
                document = await self._db[ENDPOINTS].find_one({"_id": endpoint_doc_id(key)})
                assert document is not None
                self._templates.append(document)
            if self._file is not None:
                ids = [document["_id"] for document in self._templates]
                self._stored = await asyncio.to_thread(self._file.stored, ids)
            await self._db[ENDPOINTS].delete_many({"application": _TEMPLATES})
        finally:
            await mongo.client.close()

    def document(self, index: int) -> dict[str, Any]:
        template = self._templates[index % _PERIOD]
        endpoint = endpoint_id(index)
        return {
            **template,
            "_id": endpoint_doc_id(EndpointKey(seed.TENANT, FLEET.name, endpoint)),
            "application": FLEET.name,
            "endpointId": endpoint,
        }

    def _rows(self, start: int, stop: int) -> Iterator[tuple[str, str]]:
        """The stored rows of endpoints ``start`` .. ``stop - 1``: their template's stored
        JSON with their own ids (keys in the template's order, as the server writes them)."""
        for index in range(start, stop):
            endpoint = endpoint_id(index)
            doc_id = endpoint_doc_id(EndpointKey(seed.TENANT, FLEET.name, endpoint))
            document = {
                **self._stored[index % _PERIOD],
                "_id": doc_id,
                "application": FLEET.name,
                "endpointId": endpoint,
            }
            yield doc_id, json.dumps(document)

    async def grow(self, size: int) -> float:
        """Known endpoints up to ``size`` (from those already there); returns documents a
        second."""
        if not self._templates:
            await self._write_templates()
        start, started = self.known, time.perf_counter()
        if self._file is not None:
            await asyncio.to_thread(self._file.insert, self._rows(start, size))
            return self._grown(start, size, started)

        async def inserter(lane: int) -> None:
            for first in range(start + lane * CHUNK, size, INSERTERS * CHUNK):
                chunk = [self.document(i) for i in range(first, min(first + CHUNK, size))]
                await self._db[ENDPOINTS].insert_many(chunk, ordered=False)

        await asyncio.gather(*(inserter(lane) for lane in range(INSERTERS)))
        return self._grown(start, size, started)

    def _grown(self, start: int, size: int, started: float) -> float:
        took = time.perf_counter() - started
        self.seconds += took
        self.known = size
        return (size - start) / took if took else 0.0

    async def db_stats(self) -> dict[str, Any]:
        stats = await self._db.command("dbStats")
        keep = ("objects", "dataSize", "storageSize", "indexSize", "totalSize", "indexes")
        return {k: stats[k] for k in keep if k in stats}

    async def close(self) -> None:
        await self._client.close()
