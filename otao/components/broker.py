"""NATS: what services send through (built before them) and the handlers that call them
(registered after them)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from otao.messaging.avro import AvroCodec
from otao.messaging.catalog_sync import CatalogAnnouncer, CatalogSync
from otao.messaging.cdtp import CdtpProvider, ConfigUpdatedPublisher
from otao.messaging.connection import NatsConnection
from otao.messaging.epr import FilterEvents, MembershipQueries
from otao.messaging.kaa import KaaBus
from otao.messaging.platform import ConfigurationEvents
from otao.messaging.subjects import Subjects
from otao.services.meters import NO_CDTP_METER, CdtpMeter
from otao.settings import Settings

if TYPE_CHECKING:  # services are built from the broker: no import cycle at run time
    from otao.components.services import Services


@dataclass(frozen=True, slots=True)
class Broker:
    kaa: KaaBus
    config_updated: ConfigUpdatedPublisher
    catalog_announcer: CatalogAnnouncer
    membership: MembershipQueries

    @property
    def nats(self) -> NatsConnection:
        return self.kaa.connection

    async def start(self) -> None:
        self.nats.start()


def build_broker(settings: Settings) -> Broker:
    codec = AvroCodec()
    subjects = Subjects(
        otao=settings.kaa.otao,
        replica=settings.replica_id,
        consumer=settings.kaa.consumer,
        epr=settings.kaa.epr,
        tekton=settings.kaa.tekton,
    )
    nats = NatsConnection(settings.nats_url, settings.replica_id)
    kaa = KaaBus(nats, codec, subjects)
    membership = MembershipQueries(
        kaa, settings.kaa.efmp_timeout_seconds, settings.kaa.efmp_absent_backoff_seconds
    )
    membership.register()
    return Broker(
        kaa,
        ConfigUpdatedPublisher(nats, codec, subjects),
        CatalogAnnouncer(nats, settings.kaa.otao, settings.replica_id),
        membership,
    )


@dataclass(frozen=True, slots=True)
class Handlers:
    nats: NatsConnection
    cdtp: CdtpProvider

    async def drain(self, grace: float) -> None:
        """Take no new shared work (other replicas get it), then finish the CDTP requests
        taken, including those received just before leaving the queue groups."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        await self.nats.leave_queue_groups(grace)
        await self.cdtp.drain(max(0.0, deadline - loop.time()))


def register_handlers(
    settings: Settings, broker: Broker, services: Services, meter: CdtpMeter = NO_CDTP_METER
) -> Handlers:
    """Subscribe every handler on the connection (made when it connects)."""
    kaa = broker.kaa
    nats = kaa.connection
    cdtp = CdtpProvider(nats, kaa.codec, kaa.subjects, services.delivery, meter=meter)
    cdtp.register()
    CatalogSync(nats, services.catalogs, settings.kaa.otao, settings.replica_id).register()
    FilterEvents(kaa, services.filters).register()
    if services.tekton is not None:
        ConfigurationEvents(kaa, services.tekton.reload).register()
    return Handlers(nats, cdtp)
