"""Fault: devices report what they applied while the database is down.

Core NATS does not redeliver, so otao itself holds a ConfigApplied until the database answers
again (bounded), in order: nothing reported during an outage is lost.
"""

from __future__ import annotations

import pytest

from otao.domain.errors import OtaoError
from otao.domain.models import EndpointKey
from otao.messaging.subjects import config_applied_subject
from tests.reliability.harness import close_quietly, connect_cmx, dedicated_otao, eventually
from tests.support.eventually import received
from tests.support.stack import MongoServer, NatsServer

pytestmark = pytest.mark.timeout(90)


async def test_reports_sent_during_a_database_outage_are_recorded_after_it(
    nats_server: NatsServer, mongo_server: MongoServer
) -> None:
    async with dedicated_otao(nats_server.url, mongo_server.uri, mongodb_timeout_ms=1000) as (
        otao,
        names,
    ):
        application = otao.add_application()
        app_version = application.app_versions[0]
        cmx = await connect_cmx(nats_server.url, names)
        store = otao.app.components.storage.endpoints
        try:
            await mongo_server.akill()
            await eventually(
                lambda: not otao.app.components.health.serving, 10, "health not serving"
            )
            subject = config_applied_subject(names.consumer)
            before = received(otao.app.components.broker.nats.client, subject)
            for endpoint in ("ep-ok", "ep-bad"):
                status = 200 if endpoint == "ep-ok" else 500
                await cmx.applied(app_version, endpoint, "1.1.0", status_code=status)
            # The reports reach otao while the database is down (and wait there for it).
            await eventually(
                lambda: received(otao.app.components.broker.nats.client, subject) == before + 2,
                10,
                "otao holding both reports",
            )
            await mongo_server.astart()

            async def both_recorded() -> bool:
                try:
                    ok = await store.get(EndpointKey("default", application.name, "ep-ok"))
                    bad = await store.get(EndpointKey("default", application.name, "ep-bad"))
                except OtaoError:  # the database is still coming back
                    return False
                return (
                    ok is not None
                    and ok.current_version == "1.1.0"
                    and bad is not None
                    and bad.failed_versions == frozenset({"1.1.0"})
                )

            await eventually(both_recorded, 30, "the reports recorded after the outage")
        finally:
            await mongo_server.astart()
            await close_quietly(cmx)
