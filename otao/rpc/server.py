"""The grpc.aio server: otao's services, health, reflection and the interceptor."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from grpc_health.v1 import _async as health_aio  # the asyncio servicer, public as health.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from kaa.otao.v1 import (
    application_pb2,
    application_pb2_grpc,
    endpoint_pb2,
    endpoint_pb2_grpc,
    resolution_pb2,
    resolution_pb2_grpc,
    rollout_pb2,
    rollout_pb2_grpc,
    software_pb2,
    software_pb2_grpc,
    watch_pb2,
    watch_pb2_grpc,
)

from otao.rpc.interceptors import Authenticate, ServiceInterceptor
from otao.rpc.metering import MeteringInterceptor
from otao.rpc.tracing import TracingInterceptor
from otao.services.meters import DoorMeter

# The server's type under otao's own name, so the wiring holds one without importing grpc.
Server = grpc.aio.Server

SERVICE_NAMES = (
    software_pb2.DESCRIPTOR.services_by_name["SoftwareService"].full_name,
    resolution_pb2.DESCRIPTOR.services_by_name["ResolutionService"].full_name,
    endpoint_pb2.DESCRIPTOR.services_by_name["EndpointService"].full_name,
    rollout_pb2.DESCRIPTOR.services_by_name["RolloutService"].full_name,
    application_pb2.DESCRIPTOR.services_by_name["ApplicationService"].full_name,
    watch_pb2.DESCRIPTOR.services_by_name["WatchService"].full_name,
)


# See build_server: room for the headers Envoy adds to a request within the shared limit.
METADATA_HEADROOM_BYTES = 8 * 1024

_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_SERVING = health_pb2.HealthCheckResponse.SERVING


class _HealthServicer(health_aio.HealthServicer):  # type: ignore[misc]
    """The asyncio health servicer, starting NOT_SERVING for every name (its default is ""
    SERVING); no Watch stream exists yet, so setting the map is all ``set`` would do."""

    def __init__(self) -> None:
        super().__init__()
        self._server_status = {name: _NOT_SERVING for name in ("", *SERVICE_NAMES)}


class Health:
    """Serving when every dependency is ready; not serving otherwise or while stopping.

    Backed by the asyncio servicer. The synchronous one served each Watch stream as a blocking
    generator on a thread of the event loop's default executor that nothing released (not even
    the client cancelling): every Watch pinned a thread, and one Watch open at shutdown kept
    ``asyncio.run`` waiting for that thread for ever, so a SIGTERMed otao never exited.
    """

    def __init__(self) -> None:
        self.servicer = _HealthServicer()
        self._serving: bool | None = None
        # The servicer's set() is a coroutine (it wakes Watch streams): changes are published
        # by tasks, one at a time, each publishing the latest state.
        self._publishing = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def set(self, serving: bool) -> None:
        if serving == self._serving:
            return
        self._serving = serving
        task = asyncio.get_running_loop().create_task(self._publish())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self) -> None:
        async with self._publishing:
            status = _SERVING if self._serving else _NOT_SERVING
            for name in ("", *SERVICE_NAMES):
                await self.servicer.set(name, status)

    async def shutdown(self) -> None:
        """NOT_SERVING for good, published before this returns (graceful shutdown)."""
        self._serving = False
        async with self._publishing:
            await self.servicer.enter_graceful_shutdown()

    @property
    def serving(self) -> bool:
        return bool(self._serving)


def build_server(
    *,
    software: software_pb2_grpc.SoftwareServiceServicer,
    resolution: resolution_pb2_grpc.ResolutionServiceServicer | None,
    endpoints: endpoint_pb2_grpc.EndpointServiceServicer | None,
    rollout: rollout_pb2_grpc.RolloutServiceServicer | None,
    health_state: Health,
    applications: application_pb2_grpc.ApplicationServiceServicer | None = None,
    authenticate: Authenticate,
    max_message_bytes: int,
    max_metadata_bytes: int = 64 * 1024,
    meter: DoorMeter | None = None,
    watch: watch_pb2_grpc.WatchServiceServicer | None = None,
    traced: bool = False,
) -> grpc.aio.Server:
    # grpc's defaults are a soft limit of 8 KiB and a hard one of 16 KiB, with requests in
    # between refused at random (as RESOURCE_EXHAUSTED listing every header): soft and hard
    # are set equal, so a request passes or not. The headroom covers what Envoy adds to a
    # request it accepted within the same max_metadata_bytes (x-forwarded-for, x-request-id,
    # x-envoy-original-path, ...) and grpc's 32 bytes of accounting per entry; the interceptor
    # holds otao's own methods to max_metadata_bytes exactly, with a clean message.
    metadata_limit = max_metadata_bytes + METADATA_HEADROOM_BYTES
    interceptors: list[grpc.aio.ServerInterceptor[Any, Any]] = [
        ServiceInterceptor(authenticate, max_metadata_bytes=max_metadata_bytes)
    ]
    if traced:  # outside the error interceptor: authentication is inside the call's span
        interceptors.insert(0, TracingInterceptor())
    if meter is not None:  # outermost: it sees the status the client gets
        interceptors.insert(0, MeteringInterceptor(meter))
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_metadata_size", metadata_limit),
            ("grpc.absolute_max_metadata_size", metadata_limit),
            ("grpc.so_reuseport", 0),
        ],
    )
    software_pb2_grpc.add_SoftwareServiceServicer_to_server(software, server)
    if resolution is not None:
        resolution_pb2_grpc.add_ResolutionServiceServicer_to_server(resolution, server)
    if endpoints is not None:
        endpoint_pb2_grpc.add_EndpointServiceServicer_to_server(endpoints, server)
    if rollout is not None:
        rollout_pb2_grpc.add_RolloutServiceServicer_to_server(rollout, server)
    if applications is not None:
        application_pb2_grpc.add_ApplicationServiceServicer_to_server(applications, server)
    if watch is not None:
        watch_pb2_grpc.add_WatchServiceServicer_to_server(watch, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_state.servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    return server
