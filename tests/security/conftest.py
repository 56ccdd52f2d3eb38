"""One secured otao behind its real doors per test module (see tests/security/doors.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.security.doors import Secured, secured_stack
from tests.support.stack import EnvoyFactory, MongoServer, NatsServer


@pytest.fixture(scope="module")
async def secured(
    nats_server: NatsServer, mongo_server: MongoServer, envoy_factory: EnvoyFactory
) -> AsyncIterator[Secured]:
    async with secured_stack(nats_server, mongo_server, envoy_factory) as stack:
        yield stack
