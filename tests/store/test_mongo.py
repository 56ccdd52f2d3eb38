"""otao.store.mongo: a database that stops answering is Unavailable, never a hung call.

The driver's own socket timeouts are off (their cost per operation, see ``Mongo``); the bound
is the client's own (``Mongo.call``: 2 x its timeout_ms). A proxy in front of the test server
that holds every reply stands for a server that accepts requests and never answers. How soon
the call gives up is not asserted (2 x this client's timeout_ms, whatever other clients the
process has); a hang shows as the test's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from otao.domain.errors import Unavailable
from otao.store.mongo import Mongo
from tests.support.stack import MongoServer, new_unique_name

pytestmark = pytest.mark.timeout(60)


class HoldingProxy:
    """Forwards TCP both ways; after ``hold()``, a connection that sends a ``find`` gets no
    reply from then on. Only finds: the driver's monitor (hello) keeps being answered, so the
    server still looks up to the driver and only the call's bound can end the call."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._holding = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        self._server = server
        self.port = server.sockets[0].getsockname()[1]

    def hold(self) -> None:
        self._holding = True

    async def close(self) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, up_writer]
        passing = asyncio.Event()
        passing.set()
        for pump in (
            self._requests(reader, up_writer, passing),
            self._replies(up_reader, writer, passing),
        ):
            task = asyncio.create_task(pump)
            self._tasks.add(task)

    async def _requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, passing: asyncio.Event
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if self._holding and b"find\x00" in data:
                    passing.clear()
                writer.write(data)
                await writer.drain()

    async def _replies(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, passing: asyncio.Event
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                await passing.wait()
                writer.write(data)
                await writer.drain()


@pytest.fixture
async def proxy(mongo_server: MongoServer) -> AsyncIterator[HoldingProxy]:
    target = urlsplit(mongo_server.uri)
    if target.hostname is None or target.port is None or "," in target.netloc:
        pytest.skip("the test server's URI names no single host:port to proxy")
    holding = HoldingProxy(target.hostname, target.port)
    await holding.start()
    yield holding
    await holding.close()


async def test_a_database_that_stops_answering_makes_the_call_unavailable(
    proxy: HoldingProxy,
) -> None:
    database = Mongo(
        f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true", new_unique_name("hold"), 300
    )
    collection = database.collection("things")
    try:
        async with database.call("thing insert"):
            await collection.insert_one({"_id": "a"})
        proxy.hold()
        with pytest.raises(Unavailable):
            async with database.call("thing lookup"):
                await collection.find_one({"_id": "a"})
    finally:
        await database.close()
