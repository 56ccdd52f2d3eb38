"""kaa.otao.v1.WatchService: server-streaming watches of rollouts (see services/watch.py).

Each stream sends its first event at once (the caller knows it is subscribed), then at most
one batch of events per pacing interval: the debounce that keeps a stream to a few events a
second however many changes happen. A stream ends (OK) when otao shuts down or the caller
goes away; either way the watcher is removed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from kaa.otao.v1 import watch_pb2, watch_pb2_grpc

from otao.rpc import convert
from otao.rpc.door import Door
from otao.rpc.interception import Context
from otao.rpc.interceptors import current_caller
from otao.rpc.rollout_servicer import status_to_proto
from otao.services.watch import Watcher, WatchEvent, WatchService


def event_to_proto(event: WatchEvent) -> watch_pb2.RolloutEvent:
    message = watch_pb2.RolloutEvent(kind=event.kind.value, version=event.version)
    if event.status is not None:
        message.status.CopyFrom(status_to_proto(event.status))
    if event.definition is not None:
        message.definition.CopyFrom(convert.software_to_proto(event.definition))
    message.missed = event.missed
    message.time.GetCurrentTime()
    return message


class WatchServicer(Door[WatchService], watch_pb2_grpc.WatchServiceServicer):
    async def WatchRollout(
        self, request: watch_pb2.WatchRolloutRequest, context: Context
    ) -> AsyncIterator[watch_pb2.RolloutEvent]:
        watcher, opened = await self.service.open_rollout(
            current_caller(), request.application_name, request.version
        )
        async for message in self._stream(watcher, opened):
            yield message

    async def WatchApplication(
        self, request: watch_pb2.WatchApplicationRequest, context: Context
    ) -> AsyncIterator[watch_pb2.RolloutEvent]:
        watcher, opened = self.service.open_application(current_caller(), request.application_name)
        async for message in self._stream(watcher, opened):
            yield message

    async def _stream(
        self, watcher: Watcher, opened: WatchEvent
    ) -> AsyncIterator[watch_pb2.RolloutEvent]:
        service, hub, caller = self.service, self.service.hub, current_caller()
        try:
            yield event_to_proto(opened)
            while (batch := await hub.take(watcher)) is not None:
                for event in await service.events(caller, watcher, batch):
                    yield event_to_proto(event)
                await hub.pace()
        finally:
            hub.remove(watcher)
