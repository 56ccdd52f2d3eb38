"""Metrics wiring: the registry and its listener when ``metrics.port`` is set, hooks on the
parts that report to it, and the gauge refresher. With metrics off nothing here costs a
request anything (the doors get the do-nothing meters)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from otao.components.lifecycle import Worker
from otao.observability.metrics import Metrics, Sampled
from otao.observability.rollouts import GaugeRefresher
from otao.observability.server import MetricsServer
from otao.services.meters import NO_CDTP_METER, CdtpMeter, DoorMeter
from otao.services.ports import Halt
from otao.services.push_sender import ConfigPublisher
from otao.settings import Settings
from otao.store.monitoring import Listener
from otao.store.monitoring import database_listeners as store_listeners

if TYPE_CHECKING:  # built before them: no import cycle at run time
    from otao.components.broker import Broker
    from otao.components.services import Services
    from otao.components.storage import Storage


@dataclass(frozen=True, slots=True)
class Observability:
    metrics: Metrics | None
    server: MetricsServer | None

    @property
    def cdtp_meter(self) -> CdtpMeter:
        return self.metrics.cdtp() if self.metrics is not None else NO_CDTP_METER

    @property
    def grpc_meter(self) -> DoorMeter | None:
        return self.metrics.grpc() if self.metrics is not None else None

    async def start(self) -> None:
        if self.server is not None:
            await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()

    def counted_publisher(self, publisher: ConfigPublisher) -> ConfigPublisher:
        return publisher if self.metrics is None else _CountedPublisher(publisher, self.metrics)

    def wave_opened(self) -> None:
        """A staged rollout's next wave opened (call once per opening, by the replica whose
        write opened it)."""
        if self.metrics is not None:
            self.metrics.wave_advances.inc()

    def counted_halt(self, halt: Halt) -> Halt:
        metrics = self.metrics
        if metrics is None:
            return halt

        async def counted(tenant_id: str, application: str, version: str, reason: str) -> None:
            await halt(tenant_id, application, version, reason)
            metrics.halts.inc()

        return counted


def build_observability(settings: Settings) -> Observability:
    port = settings.metrics.port
    if port == 0:
        return Observability(None, None)
    metrics = Metrics.with_own_registry()
    host = settings.metrics.host or settings.grpc_host
    return Observability(metrics, MetricsServer(metrics.registry, host, port))


class _CountedPublisher:
    def __init__(self, publisher: ConfigPublisher, metrics: Metrics) -> None:
        self._publisher = publisher
        self._sent = metrics.pushes_sent

    async def config_updated(
        self, app_version: str, endpoint_id: str, version: str, content: bytes
    ) -> None:
        await self._publisher.config_updated(app_version, endpoint_id, version, content)
        self._sent.inc()

    async def config_updated_many(
        self, version: str, content: bytes, targets: Sequence[tuple[str, str]]
    ) -> None:
        await self._publisher.config_updated_many(version, content, targets)
        self._sent.inc(len(targets))

    async def flush(self) -> None:
        await self._publisher.flush()


def observe(
    observability: Observability,
    settings: Settings,
    storage: Storage,
    broker: Broker,
    services: Services,
) -> list[Worker]:
    """Let the metrics read the counts the parts keep; the workers that refresh gauges."""
    metrics = observability.metrics
    if metrics is None:
        return []
    metrics.registry.register(
        Sampled(services.catalogs, broker.membership, [broker.kaa.codec], services.push)
    )
    broker.nats.on_reconnect(metrics.nats_reconnects.inc)
    broker.nats.on_error(metrics.nats_errors.inc)
    refresher = GaugeRefresher(
        metrics,
        services.applications,
        services.catalogs,
        storage.endpoints,
        storage.offers,
        storage.push_jobs,
        interval=settings.metrics.refresh_seconds,
        max_rollouts=settings.metrics.max_rollouts,
    )
    return [Worker("metrics-gauges", refresher.run)]


def database_listeners(observability: Observability) -> list[Listener]:
    metrics = observability.metrics
    if metrics is None:
        return []
    return store_listeners(metrics.database_error, metrics.database_reconnects.inc)
