"""Fixtures for the store tests: each test has a database of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from otao.store.mongo import Mongo
from tests.support.database import fresh_database
from tests.support.stack import MongoServer


@pytest.fixture
async def mongo(mongo_server: MongoServer) -> AsyncIterator[Mongo]:
    async with fresh_database(mongo_server) as database:
        yield database
