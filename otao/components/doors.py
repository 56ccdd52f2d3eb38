"""The gRPC door: otao's servicers behind the interceptor, on the configured address."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

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


def _authenticate(settings: Settings, platform: Platform) -> Authenticate:
    """Every call as the default tenant when security is off (said loudly), else the
    platform's token check."""
    security = settings.security
    if not security.enabled:
        log.warning(
            "SECURITY IS OFF: local development mode, every call runs as tenant %r "
            "without authentication. Never expose this instance.",
            security.default_tenant,
        )
        return local_development_access(security.default_tenant)
    return platform.access()


@dataclass(eq=False)
class GrpcDoor:
    settings: Settings
    services: Services
    platform: Platform
    health: Health
    meter: DoorMeter | None = None
    _server: Server | None = field(init=False, default=None)
    port: int = field(init=False, default=0)

    async def start(self) -> None:
        """Listen (the server needs the running event loop, so it is made here)."""
        settings, services = self.settings, self.services
        self.health.set(False)
        self._server = build_server(
            software=SoftwareServicer(services.software),
            resolution=ResolutionServicer(services.resolution),
            endpoints=EndpointServicer(services.endpoints),
            rollout=RolloutServicer(services.rollout, services.audit, services.waves),
            watch=WatchServicer(
                WatchService(services.watch.hub, services.applications, services.rollout)
            ),
            traced=tracing.enabled(),
            applications=ApplicationServicer(
                ApplicationList(services.applications, services.catalogs)
            ),
            health_state=self.health,
            authenticate=_authenticate(settings, self.platform),
            max_message_bytes=settings.max_message_bytes,
            max_metadata_bytes=settings.max_metadata_bytes,
            meter=self.meter,
        )
        self.port = self._server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
        await self._server.start()
        log.info("otao gRPC listening", extra={"address": f"{settings.grpc_host}:{self.port}"})

    async def stop(self, grace: float) -> None:
        if self._server is not None:
            await self._server.stop(grace)
