"""Wiring: ``build(settings)`` makes every part of otao, in dependency order, by constructor.

Each area has its own small builder (storage, broker, services, doors); every object is
complete when constructed, so nothing is patched afterwards. ``Lifecycle`` owns what runs:
it starts, drains and closes the parts in an order written down in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from otao.components.broker import Broker, Handlers, build_broker, register_handlers
from otao.components.doors import GrpcDoor
from otao.components.lifecycle import Lifecycle, Readiness, Worker
from otao.components.observability import (
    Observability,
    build_observability,
    database_listeners,
    observe,
)
from otao.components.services import Services, build_services
from otao.components.storage import Storage, build_storage
from otao.components.watch import build_watch
from otao.observability import tracing
from otao.platform import Platform
from otao.rpc.server import Health
from otao.settings import Settings


def utc_now() -> datetime:
    # Millisecond precision: what BSON dates keep, so a write's reply equals a later read.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True, slots=True)
class Components:
    settings: Settings
    storage: Storage
    broker: Broker
    platform: Platform
    services: Services
    handlers: Handlers
    health: Health
    grpc: GrpcDoor
    lifecycle: Lifecycle
    observability: Observability


def build(settings: Settings, on_catalog_loaded: Callable[[], None] | None = None) -> Components:
    tracing.configure(settings.tracing.endpoint, "otao", settings.replica_id)
    observability = build_observability(settings)
    storage = build_storage(settings, database_listeners(observability))
    broker = build_broker(settings)
    watch = build_watch(settings, broker)
    platform = Platform(settings, broker.kaa)
    services = build_services(
        settings, storage, broker, platform, utc_now, on_catalog_loaded, observability, watch=watch
    )
    handlers = register_handlers(settings, broker, services, observability.cdtp_meter)
    health = Health()
    grpc = GrpcDoor(settings, services, platform, health, observability.grpc_meter)
    metrics_workers = observe(observability, settings, storage, broker, services)
    # The one start/drain/close order.
    lifecycle = Lifecycle(
        grace_seconds=settings.grace_period_seconds,
        # Serve first (health says NOT_SERVING until Readiness finds every dependency).
        # Metrics first and closed last: a replica that is starting or draining is watched.
        starts=[observability.start, grpc.start, broker.start, platform.start],
        readiness=Readiness(storage.mongo, broker.nats, health),
        workers=_workers(services) + metrics_workers,
        stop_serving=health.shutdown,
        # Together within the grace period: in-flight CDTP requests and RPCs. Watch streams
        # end at once (health says NOT_SERVING by then), so they never hold the stop.
        drains=[handlers.drain, services.watch.hub.drain, grpc.stop],
        flush=services.recorder.flush,
        closes=[broker.nats.close, platform.close, storage.mongo.close, observability.stop],
    )
    return Components(
        settings,
        storage,
        broker,
        platform,
        services,
        handlers,
        health,
        grpc,
        lifecycle,
        observability,
    )


def _workers(services: Services) -> list[Worker]:
    workers = [
        Worker("sightings", services.recorder.run),
        Worker("push", services.push.run),
        Worker("rollout-health", services.halts.run),
        Worker("rollout-gates", services.waves.run),
        Worker("rollout-dates", services.scheduler.run),
        Worker("rollout-events", services.watch.events.run),
    ]
    if services.tekton is not None:
        workers.insert(0, Worker("tekton", services.tekton.run))
    return workers
