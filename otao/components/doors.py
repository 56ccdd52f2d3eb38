"""The gRPC door: otao's servicers behind the interceptor, on the configured address."""

from __future__ import annotations

import logging

from otao.components.services import Services
from otao.observability import tracing
from otao.platform import Platform
from otao.rpc.access import local_development_access
from otao.rpc.application_servicer import ApplicationServicer
from otao.rpc.endpoint_servicer import EndpointServicer
from otao.rpc.interceptors import Authenticate
from otao.rpc.resolution_servicer import ResolutionServicer
from otao.rpc.rollout_servicer import RolloutServicer
from otao.rpc.server import Health, Server, build_server
from otao.rpc.software_servicer import SoftwareServicer
from otao.rpc.watch_servicer import WatchServicer
from otao.services.application_list import ApplicationList
from otao.services.meters import DoorMeter
from otao.services.watch import WatchService
from otao.settings import Settings

log = logging.getLogger(__name__)


class GrpcDoor:
    def __init__(
        self,
        settings: Settings,
        services: Services,
        platform: Platform,
        health: Health,
        meter: DoorMeter | None = None,
    ) -> None:
        self._settings = settings
        self._meter = meter
        self._platform = platform
        self._health = health
        self._software = SoftwareServicer(services.software)
        self._resolution = ResolutionServicer(services.resolution)
        self._endpoints = EndpointServicer(services.endpoints)
        self._rollout = RolloutServicer(services.rollout, services.audit, services.waves)
        self._applications = ApplicationServicer(
            ApplicationList(services.applications, services.catalogs)
        )
        self._watch = WatchServicer(
            WatchService(services.watch.hub, services.applications, services.rollout)
        )
        self._server: Server | None = None
        self.port = 0

    def _authenticate(self) -> Authenticate:
        security = self._settings.security
        if not security.enabled:
            return local_development_access(security.default_tenant)
        return self._platform.access()

    async def start(self) -> None:
        """Listen (the server needs the running event loop, so it is made here)."""
        settings = self._settings
        if not settings.security.enabled:
            log.warning(
                "SECURITY IS OFF: local development mode, every call runs as tenant %r "
                "without authentication. Never expose this instance.",
                settings.security.default_tenant,
            )
        self._health.set(False)
        self._server = build_server(
            software=self._software,
            resolution=self._resolution,
            endpoints=self._endpoints,
            rollout=self._rollout,
            watch=self._watch,
            traced=tracing.enabled(),
            applications=self._applications,
            health_state=self._health,
            authenticate=self._authenticate(),
            max_message_bytes=settings.max_message_bytes,
            max_metadata_bytes=settings.max_metadata_bytes,
            meter=self._meter,
        )
        self.port = self._server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
        await self._server.start()
        log.info("otao gRPC listening", extra={"address": f"{settings.grpc_host}:{self.port}"})

    async def stop(self, grace: float) -> None:
        if self._server is not None:
            await self._server.stop(grace)
