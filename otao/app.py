"""Wires otao together from one Settings object: the only place that knows every part."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import grpc

from otao.domain.applications import ApplicationConfig
from otao.messaging.avro import AvroCodec
from otao.messaging.catalog_sync import CatalogSync
from otao.messaging.cdtp import CdtpProvider, ConfigUpdatedPublisher
from otao.messaging.connection import NatsConnection
from otao.messaging.epr import FilterEvents, MembershipQueries
from otao.messaging.platform import ConfigurationEvents
from otao.messaging.subjects import Subjects
from otao.platform import Platform
from otao.rpc.access import local_development_access
from otao.rpc.endpoint_servicer import EndpointServicer
from otao.rpc.interceptors import Authenticate
from otao.rpc.resolution_servicer import ResolutionServicer
from otao.rpc.rollout_servicer import RolloutServicer
from otao.rpc.server import Health, build_server
from otao.rpc.software_servicer import SoftwareServicer
from otao.services.applications import ApplicationDirectory
from otao.services.audit import AuditLog
from otao.services.catalogs import CatalogCache
from otao.services.configuration import TektonConfiguration
from otao.services.delivery import DeliveryService
from otao.services.endpoints import EndpointsService
from otao.services.filters import FilterService
from otao.services.push import PushService
from otao.services.recorder import SightingRecorder
from otao.services.resolution import ResolutionService
from otao.services.rollout import HaltMonitor, RolloutService
from otao.services.schedule import RolloutDateScheduler
from otao.services.software import SoftwareService
from otao.settings import Settings
from otao.store.audit import AuditStore
from otao.store.endpoints import EndpointStore
from otao.store.mongo import Mongo
from otao.store.push_jobs import PushJobStore
from otao.store.software import SoftwareStore

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    # Millisecond precision: what BSON dates keep, so a write's reply equals a later read.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class App:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        clock = utc_now
        self.mongo = Mongo(
            settings.mongodb_uri, settings.mongodb_database, settings.mongodb_timeout_ms
        )
        self.applications = ApplicationDirectory(
            ApplicationConfig(a.name, a.tenant_id, tuple(a.app_versions), a.consent_required)
            for a in settings.applications
        )
        software_store = SoftwareStore(self.mongo)
        self.endpoint_store = EndpointStore(self.mongo)
        self.push_jobs = PushJobStore(self.mongo)
        self.catalogs = CatalogCache(
            software_store,
            self.applications,
            settings_from_configuration_only=settings.tekton.enabled,
        )
        self.audit = AuditLog(AuditStore(self.mongo), clock)
        self.software = SoftwareService(
            software_store,
            self.catalogs,
            self.applications,
            self.audit,
            clock,
            settings_managed_externally=settings.tekton.enabled,
        )
        self.resolution = ResolutionService(self.catalogs, self.endpoint_store, clock)
        self.recorder = SightingRecorder(self.endpoint_store, clock)
        self.delivery = DeliveryService(
            self.applications, self.resolution, self.endpoint_store, self.recorder
        )
        self.endpoints = EndpointsService(
            self.applications, self.endpoint_store, self.resolution, self.audit, clock
        )
        self.rollout = RolloutService(self.applications, self.catalogs, self.endpoint_store, clock)

        self.codec = AvroCodec()
        self.subjects = Subjects(
            otao=settings.kaa.otao,
            replica=settings.replica_id,
            consumer=settings.kaa.consumer,
            epr=settings.kaa.epr,
            tekton=settings.kaa.tekton,
        )
        self.nats = NatsConnection(settings.nats_url, settings.replica_id)
        self.push = PushService(
            self.push_jobs,
            self.endpoint_store,
            self.catalogs,
            self.applications,
            ConfigUpdatedPublisher(self.nats, self.codec, self.subjects),
            clock,
            settings.replica_id,
            rate_per_second=settings.push.rate_per_second,
            batch_size=settings.push.batch_size,
            lease_seconds=settings.push.lease_seconds,
            poll_interval_seconds=settings.push.poll_interval_seconds,
        )
        self.software.on_change(self.push.on_change)
        self.software.use_report_counts(self.endpoint_store.report_counts)
        self.endpoints.use_notifier(self.push.notify_endpoint)
        self.halts = HaltMonitor(self.catalogs, self.endpoint_store, self.software.halt)
        self.delivery.on_report(self.halts.on_report)
        self.cdtp = CdtpProvider(self.nats, self.codec, self.subjects, self.delivery)
        self.cdtp.register()
        CatalogSync(self.nats, self.catalogs, settings.kaa.otao, settings.replica_id).register()
        self.filters = FilterService(
            self.applications, self.endpoint_store, self.catalogs, self.push.notify_endpoint, clock
        )
        FilterEvents(self.nats, self.codec, self.subjects, self.filters).register()
        self.membership = MembershipQueries(
            self.nats,
            self.codec,
            self.subjects,
            self.filters,
            settings.kaa.efmp_timeout_seconds,
            settings.kaa.efmp_absent_backoff_seconds,
        )
        self.membership.register()
        self.resolution.use_membership_lookup(self.membership.lookup)
        self.scheduler = RolloutDateScheduler(
            self.applications,
            self.catalogs,
            self.push,
            clock,
            interval=settings.push.rollout_date_check_seconds,
        )

        self.health = Health()
        self._indexes_ready = False
        self._tasks: list[asyncio.Task[None]] = []
        self.server: grpc.aio.Server | None = None
        self.port = 0

        self.platform = Platform(settings, self.nats, self.codec, self.subjects)
        if settings.tekton.enabled:
            self.tekton = TektonConfiguration(
                self.platform.tekton_fetch(),
                self.applications,
                self.catalogs,
                self.push,
                clock,
                settings.tekton.retry_seconds,
            )
            ConfigurationEvents(self.nats, self.codec, self.subjects, self.tekton.reload).register()

    def _authenticate(self) -> Authenticate:
        if not self.settings.security.enabled:
            return local_development_access(self.settings.security.default_tenant)
        return self.platform.access()

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(work, name=name))

    async def start(self) -> None:
        # Everything started here (RPC and NATS handlers, background work) runs in tasks that
        # inherit this: no database operation waits for a database known to be down.
        with self.mongo.fail_fast():
            await self._start()

    async def _start(self) -> None:
        if not self.settings.security.enabled:
            log.warning(
                "SECURITY IS OFF: local development mode, every call runs as tenant %r "
                "without authentication. Never expose this instance.",
                self.settings.security.default_tenant,
            )
        self.health.set(False)
        self.server = build_server(
            software=SoftwareServicer(self.software),
            resolution=ResolutionServicer(self.resolution, self.applications),
            endpoints=EndpointServicer(self.endpoints),
            rollout=RolloutServicer(self.rollout, self.audit, self.applications),
            health_state=self.health,
            authenticate=self._authenticate(),
            max_message_bytes=self.settings.max_message_bytes,
            max_metadata_bytes=self.settings.max_metadata_bytes,
        )
        self.port = self.server.add_insecure_port(
            f"{self.settings.grpc_host}:{self.settings.grpc_port}"
        )
        await self.server.start()
        self.nats.start()
        await self.platform.start()
        if self.settings.tekton.enabled:
            self._spawn(self.tekton.run(), "tekton")
        self._spawn(self._watch_readiness(), "readiness")
        self._spawn(self.recorder.run(), "sightings")
        self._spawn(self.push.run(), "push")
        self._spawn(self.halts.run(), "rollout-health")
        self._spawn(self.scheduler.run(), "rollout-dates")
        log.info("otao gRPC listening", extra={"address": f"{self.settings.grpc_host}:{self.port}"})

    async def _watch_readiness(self) -> None:
        """Health follows the dependencies: MongoDB (indexes made) and NATS."""
        while True:
            database_ok = await self.mongo.ping()
            if database_ok and not self._indexes_ready:
                try:
                    await self.mongo.ensure_indexes()
                    self._indexes_ready = True
                except Exception:
                    log.exception("index creation failed; retrying")
            self.health.set(database_ok and self._indexes_ready and self.nats.connected)
            await asyncio.sleep(0.5)

    async def _drain_messages(self, grace: float) -> None:
        """Take no new shared work (other replicas get it), then finish the CDTP requests
        taken, including those received just before leaving the queue groups."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        await self.nats.leave_queue_groups(grace)
        await self.cdtp.drain(max(0.0, deadline - loop.time()))

    async def stop(self) -> None:
        """Graceful: not serving first, then drain in-flight work within the grace period."""
        grace = self.settings.grace_period_seconds
        for task in self._tasks:
            if task.get_name() == "readiness":
                task.cancel()
        await self.health.shutdown()
        stopping = [self._drain_messages(grace)]
        if self.server is not None:
            stopping.append(self.server.stop(grace))
        await asyncio.gather(*stopping)
        for task in self._tasks:
            task.cancel()
        failures = await _finish(self._tasks, grace)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.recorder.flush(), timeout=grace)
        await self.nats.close()
        await self.platform.close()
        await self.mongo.close()
        if failures:
            # Closed everything first; a background task that died still fails the stop.
            raise failures[0]


async def _finish(tasks: list[asyncio.Task[None]], timeout: float) -> list[BaseException]:
    """Wait (at most ``timeout``) for cancelled tasks to end; the errors they died of.

    A cancellation can be lost: ``asyncio.wait_for``, which the database driver uses for its
    socket I/O, may swallow one on Python 3.11 when the I/O completes at the same moment. So
    a task still running is asked again, rather than awaited for ever (a stop that hung).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = {task for task in tasks if not task.done()}
    while pending:
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.error("background tasks did not stop: %s", sorted(t.get_name() for t in pending))
            break
        _, pending = await asyncio.wait(pending, timeout=min(0.2, remaining))
        for task in pending:
            task.cancel()
    return [
        error
        for task in tasks
        if task.done() and not task.cancelled() and (error := task.exception()) is not None
    ]
