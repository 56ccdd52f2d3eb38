"""A test peer that plays Kaa EPR over real NATS + Avro (18/EFE events, 20/EFMP answers).

- ``matched`` / ``unmatched`` / ``deleted`` publish EFE events on
  ``kaa.v1.events.{epr}.endpoint-filter.{filter-id}.{type}``.
- EFMP ``EndpointFiltersRequest``s on ``kaa.v1.service.{epr}.efmp.ep-filters-request`` are
  answered on the request's reply subject from ``membership`` (endpoint id -> filter ids); an
  endpoint in ``silent`` (or any endpoint while ``silent_all``) gets no answer, one absent from
  ``membership`` gets an empty list. Every request received is kept in ``requests``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from otao.messaging.avro import AvroCodec
from otao.messaging.records import (
    EndpointFilterDeletedEvent,
    EndpointFiltersRequest,
    EndpointFiltersResponse,
    EndpointMatchedFilterEvent,
    EndpointUnmatchedFilterEvent,
)
from otao.messaging.subjects import EfeEventType, efe_subject, efmp_request_subject


def _now_ms() -> int:
    return int(time.time() * 1000)


class EprPeer:
    def __init__(self, client: Client, epr: str = "epr") -> None:
        self.client = client
        self.codec = AvroCodec()
        self.epr = epr
        self.replica = f"epr-{uuid.uuid4().hex[:8]}"
        self.membership: dict[str, list[str]] = {}
        self.silent: set[str] = set()
        self.silent_all = False
        self.requests: list[EndpointFiltersRequest] = []
        self.reply_subjects: list[str] = []

    @classmethod
    async def connect(cls, url: str, epr: str = "epr") -> EprPeer:
        peer = cls(await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2), epr)
        await peer.client.subscribe(efmp_request_subject(epr), cb=peer._on_request)
        await peer.client.flush()
        return peer

    def requests_for(self, endpoint_id: str) -> int:
        return sum(1 for r in self.requests if r.endpoint_id == endpoint_id)

    async def _on_request(self, msg: Msg) -> None:
        request = self.codec.decode(EndpointFiltersRequest, msg.data)
        self.requests.append(request)
        self.reply_subjects.append(msg.reply)
        if self.silent_all or request.endpoint_id in self.silent or not msg.reply:
            return
        response = EndpointFiltersResponse(
            correlation_id=request.correlation_id,
            timestamp=_now_ms(),
            endpoint_id=request.endpoint_id,
            filter_ids=tuple(self.membership.get(request.endpoint_id, ())),
            status_code=200,
        )
        await self.client.publish(msg.reply, self.codec.encode(response))

    async def matched(
        self, application: str, app_version: str, filter_id: str, endpoint_id: str
    ) -> None:
        """EPR says the endpoint now matches the filter (and remembers it for EFMP)."""
        filters = self.membership.setdefault(endpoint_id, [])
        if filter_id not in filters:
            filters.append(filter_id)
        event = self._membership(
            EndpointMatchedFilterEvent, application, app_version, filter_id, endpoint_id
        )
        await self._publish(EfeEventType.EP_MATCHED, filter_id, self.codec.encode(event))

    async def unmatched(
        self, application: str, app_version: str, filter_id: str, endpoint_id: str
    ) -> None:
        filters = self.membership.get(endpoint_id, [])
        if filter_id in filters:
            filters.remove(filter_id)
        event = self._membership(
            EndpointUnmatchedFilterEvent, application, app_version, filter_id, endpoint_id
        )
        await self._publish(EfeEventType.EP_UNMATCHED, filter_id, self.codec.encode(event))

    def _membership(
        self,
        record: type[EndpointMatchedFilterEvent | EndpointUnmatchedFilterEvent],
        application: str,
        app_version: str,
        filter_id: str,
        endpoint_id: str,
    ) -> EndpointMatchedFilterEvent | EndpointUnmatchedFilterEvent:
        return record(
            **self._filter_event(application, filter_id),
            app_version_name=app_version,
            endpoint_id=endpoint_id,
        )

    def _filter_event(self, application: str, filter_id: str) -> dict[str, Any]:
        """The fields every EFE event of this peer carries: fresh ids and time."""
        return {
            "timestamp": _now_ms(),
            "correlation_id": uuid.uuid4().hex,
            "originator_replica_id": self.replica,
            "filter_id": filter_id,
            "application_name": application,
            "filter_name": None,
        }

    async def deleted(self, application: str, filter_id: str) -> None:
        for filters in self.membership.values():
            if filter_id in filters:
                filters.remove(filter_id)
        event = EndpointFilterDeletedEvent(**self._filter_event(application, filter_id))
        await self._publish(EfeEventType.DELETED, filter_id, self.codec.encode(event))

    async def _publish(self, event_type: EfeEventType, filter_id: str, payload: bytes) -> None:
        await self.client.publish(efe_subject(self.epr, event_type, filter_id), payload)
        await self.client.flush()

    async def close(self) -> None:
        await self.client.close()
