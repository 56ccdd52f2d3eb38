"""A test peer that plays Kaa CMX over real NATS + Avro (6/CDTP consumer side)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from otao.messaging.avro import AvroCodec
from otao.messaging.records import ConfigApplied, ConfigRequest, ConfigResponse, ConfigUpdated
from tests.support import eventually as waiting


class CmxPeer:
    def __init__(self, client: Client, otao: str = "otao", consumer: str = "cmx-ota") -> None:
        self.client = client
        self.codec = AvroCodec()
        self.otao = otao
        self.consumer = consumer
        self.replica = f"cmx-{uuid.uuid4().hex[:8]}"
        self.updates: list[ConfigUpdated] = []
        self._waiting: dict[str, asyncio.Future[ConfigResponse]] = {}
        self._raw_replies: asyncio.Queue[ConfigResponse] = asyncio.Queue()
        self._subscriptions: list[Subscription] = []

    @classmethod
    async def connect(cls, url: str, otao: str = "otao", consumer: str = "cmx-ota") -> CmxPeer:
        peer = cls(
            await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2),
            otao,
            consumer,
        )
        peer._subscriptions = [
            await peer.client.subscribe(peer.reply_subject, cb=peer._on_response),
            await peer.client.subscribe(
                f"kaa.v1.events.{otao}.endpoint.config.updated", cb=peer._on_update
            ),
        ]
        await peer.client.flush()
        return peer

    @property
    def reply_subject(self) -> str:
        return f"kaa.v1.replica.{self.replica}.cdtp.response"

    async def _on_response(self, msg: Msg) -> None:
        response = self.codec.decode(ConfigResponse, msg.data)
        waiter = self._waiting.pop(response.correlation_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(response)
        else:
            await self._raw_replies.put(response)

    async def _on_update(self, msg: Msg) -> None:
        self.updates.append(self.codec.decode(ConfigUpdated, msg.data))

    async def request(
        self,
        app_version: str,
        endpoint_id: str,
        config_id: str | None = None,
        timeout: float = 5.0,
        request_timeout_ms: int = 0,
        timestamp_ms: int | None = None,
    ) -> ConfigResponse:
        correlation = uuid.uuid4().hex
        request = ConfigRequest(
            correlation_id=correlation,
            timestamp=timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
            timeout=request_timeout_ms,
            app_version_name=app_version,
            endpoint_id=endpoint_id,
            config_id=config_id,
        )
        future: asyncio.Future[ConfigResponse] = asyncio.get_running_loop().create_future()
        self._waiting[correlation] = future
        await self.client.publish(
            f"kaa.v1.service.{self.otao}.cdtp.request",
            self.codec.encode(request),
            reply=self.reply_subject,
        )
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(correlation, None)

    async def send_raw(self, payload: bytes, timeout: float = 5.0) -> ConfigResponse:
        """Send any bytes as a ConfigRequest; the reply has no correlation id we know."""
        await self.client.publish(
            f"kaa.v1.service.{self.otao}.cdtp.request", payload, reply=self.reply_subject
        )
        return await asyncio.wait_for(self._raw_replies.get(), timeout)

    async def applied(
        self,
        app_version: str,
        endpoint_id: str,
        config_id: str,
        status_code: int = 200,
        reason: str | None = None,
        correlation_id: str | None = None,
    ) -> None:
        event = ConfigApplied(
            correlation_id=correlation_id or uuid.uuid4().hex,
            timestamp=int(time.time() * 1000),
            app_version_name=app_version,
            endpoint_id=endpoint_id,
            config_id=config_id,
            originator_replica_id=self.replica,
            status_code=status_code,
            reason_phrase=reason,
        )
        await self.client.publish(
            f"kaa.v1.events.{self.consumer}.endpoint.config.applied", self.codec.encode(event)
        )
        await self.client.flush()

    def updates_for(self, endpoint_id: str) -> list[ConfigUpdated]:
        return [u for u in self.updates if u.endpoint_id == endpoint_id]

    async def wait_for(
        self, condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05
    ) -> None:
        await waiting.eventually(condition, "condition", timeout, interval)

    async def delivered(self) -> None:
        """Every ConfigUpdated otao published (and flushed) before this call is in ``updates``."""
        await waiting.delivered(self.client, self._subscriptions)

    async def close(self) -> None:
        await self.client.close()


def pushed(cmx: CmxPeer, app_version: str, endpoint_id: str) -> list[str]:
    """The versions otao pushed (ConfigUpdated) to one endpoint, in order."""
    return [
        u.config_id
        for u in cmx.updates
        if u.app_version_name == app_version and u.endpoint_id == endpoint_id
    ]
