"""Kaa EPR: endpoint filter events (18/EFE) and membership queries (20/EFMP)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from nats.aio.msg import Msg

from otao.domain.errors import InvalidArgument, OtaoError
from otao.domain.models import EndpointKey
from otao.messaging.avro import AvroCodec
from otao.messaging.connection import NatsConnection, event_handler
from otao.messaging.records import (
    EndpointFilterDeletedEvent,
    EndpointFiltersRequest,
    EndpointFiltersResponse,
    EndpointMatchedFilterEvent,
    EndpointUnmatchedFilterEvent,
)
from otao.messaging.subjects import EfeEventType, Subjects
from otao.services.filters import FilterService

log = logging.getLogger(__name__)


class FilterEvents:
    """Keeps filter membership from EPR's broadcasts (one replica handles each event)."""

    def __init__(
        self,
        connection: NatsConnection,
        codec: AvroCodec,
        subjects: Subjects,
        filters: FilterService,
    ) -> None:
        self._connection = connection
        self._codec = codec
        self._subjects = subjects
        self._filters = filters

    def register(self) -> None:
        group = self._subjects.queue_group
        subscribe = self._connection.subscribe
        subscribe(self._subjects.efe(EfeEventType.EP_MATCHED), self._on_matched, queue=group)
        subscribe(self._subjects.efe(EfeEventType.EP_UNMATCHED), self._on_unmatched, queue=group)
        subscribe(self._subjects.efe(EfeEventType.DELETED), self._on_deleted, queue=group)

    @event_handler("ep-matched event")
    async def _on_matched(self, msg: Msg) -> None:
        event = self._codec.decode(EndpointMatchedFilterEvent, msg.data)
        key = self._filters.endpoint(event.app_version_name, event.endpoint_id)
        if key is not None:
            await self._filters.matched(key, event.filter_id)

    @event_handler("ep-unmatched event")
    async def _on_unmatched(self, msg: Msg) -> None:
        event = self._codec.decode(EndpointUnmatchedFilterEvent, msg.data)
        key = self._filters.endpoint(event.app_version_name, event.endpoint_id)
        if key is not None:
            await self._filters.unmatched(key, event.filter_id)

    @event_handler("filter deletion")
    async def _on_deleted(self, msg: Msg) -> None:
        event = self._codec.decode(EndpointFilterDeletedEvent, msg.data)
        await self._filters.deleted(event.application_name, event.filter_id)


class MembershipQueries:
    """Asks EPR which filters an endpoint matches (20/EFMP), replies on this replica.

    An unanswered query yields None: the endpoint matches no filter for this request (never
    all), and the next request asks again.
    """

    def __init__(
        self,
        connection: NatsConnection,
        codec: AvroCodec,
        subjects: Subjects,
        filters: FilterService,
        timeout_seconds: float,
    ) -> None:
        self._connection = connection
        self._codec = codec
        self._subjects = subjects
        self._filters = filters
        self._timeout = timeout_seconds
        self._waiting: dict[str, asyncio.Future[EndpointFiltersResponse]] = {}

    def register(self) -> None:
        self._connection.subscribe(self._subjects.efmp_reply, self._on_response)
        # An ep-matched event for an endpoint of unknown membership asks EPR the same way.
        self._filters.use_membership_lookup(self.lookup)

    async def _on_response(self, msg: Msg) -> None:
        try:
            response = self._codec.decode(EndpointFiltersResponse, msg.data)
        except InvalidArgument:
            log.warning("malformed EndpointFiltersResponse ignored")
            return
        waiter = self._waiting.pop(response.correlation_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    async def lookup(self, key: EndpointKey) -> frozenset[str] | None:
        correlation = uuid.uuid4().hex
        request = EndpointFiltersRequest(
            correlation_id=correlation,
            timestamp=int(time.time() * 1000),
            timeout=int(self._timeout * 1000),
            endpoint_id=key.endpoint_id,
        )
        waiter: asyncio.Future[EndpointFiltersResponse] = asyncio.get_running_loop().create_future()
        self._waiting[correlation] = waiter
        try:
            await self._connection.publish(
                self._subjects.efmp_request,
                self._codec.encode(request),
                reply=self._subjects.efmp_reply,
            )
            response = await asyncio.wait_for(waiter, self._timeout)
        except (TimeoutError, OtaoError):
            log.warning("EPR did not answer a filter membership query in time")
            return None
        finally:
            self._waiting.pop(correlation, None)
        if not 200 <= response.status_code < 300:
            log.warning("EPR answered a filter membership query with %s", response.status_code)
            return None
        learned = frozenset(response.filter_ids)
        await self._filters.learned(key, learned)
        return learned
