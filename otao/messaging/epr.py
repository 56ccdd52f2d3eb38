"""Kaa EPR: endpoint filter events (18/EFE) and membership queries (20/EFMP)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass

from nats.aio.msg import Msg

from otao.domain.errors import InvalidArgument, OtaoError
from otao.domain.models import EndpointKey
from otao.messaging.kaa import KaaBus
from otao.messaging.records import (
    EndpointFilterDeletedEvent,
    EndpointFiltersRequest,
    EndpointFiltersResponse,
    EndpointMatchedFilterEvent,
    EndpointUnmatchedFilterEvent,
)
from otao.messaging.subjects import EfeEventType
from otao.services.filters import FilterService

log = logging.getLogger(__name__)

# The status header NATS puts on its reply to a request nobody subscribes to.
_NO_RESPONDERS = "503"


@dataclass(eq=False)
class FilterEvents:
    """Keeps filter membership from EPR's broadcasts (one replica handles each event)."""

    bus: KaaBus
    filters: FilterService

    def register(self) -> None:
        efe, on_record = self.bus.subjects.efe, self.bus.on_record
        group = self.bus.subjects.queue_group
        on_record(
            efe(EfeEventType.EP_MATCHED),
            EndpointMatchedFilterEvent,
            "ep-matched event",
            self._matched,
            group,
        )
        on_record(
            efe(EfeEventType.EP_UNMATCHED),
            EndpointUnmatchedFilterEvent,
            "ep-unmatched event",
            self._unmatched,
            group,
        )
        on_record(
            efe(EfeEventType.DELETED),
            EndpointFilterDeletedEvent,
            "filter deletion",
            self._deleted,
            group,
        )

    async def _matched(self, event: EndpointMatchedFilterEvent) -> None:
        await self.filters.matched(event.app_version_name, event.endpoint_id, event.filter_id)

    async def _unmatched(self, event: EndpointUnmatchedFilterEvent) -> None:
        await self.filters.unmatched(event.app_version_name, event.endpoint_id, event.filter_id)

    async def _deleted(self, event: EndpointFilterDeletedEvent) -> None:
        await self.filters.deleted(event.application_name, event.filter_id)


@dataclass(slots=True)
class _Question:
    endpoint_id: str
    answer: asyncio.Future[EndpointFiltersResponse | None]  # None: EPR is not there


class MembershipQueries:
    """Asks EPR which filters an endpoint matches (20/EFMP), replies on this replica.

    An unanswered query yields None: the endpoint matches no filter otao has no fact about
    (never all), and a later request asks again. A query never waits longer than the EFMP
    timeout, and not at all while EPR is known to be absent: NATS answers a request nobody
    subscribes to with a "no responders" status at once, which is taken as "EPR is not
    there": one warning, then no question for ``absent_backoff_seconds``.

    Counters (read by tests, logs and metrics): ``asked``, ``answered``, ``waited_out`` (queries
    that waited the whole timeout), ``no_responders``, ``skipped_absent`` (queries not asked in
    the backoff).
    """

    def __init__(
        self, bus: KaaBus, timeout_seconds: float, absent_backoff_seconds: float = 60.0
    ) -> None:
        self._bus = bus
        self._timeout = timeout_seconds
        self._backoff = absent_backoff_seconds
        self._pending: dict[str, _Question] = {}  # by correlationId
        self._absent_until = 0.0  # monotonic
        self._absent_warned = False
        self.asked = 0
        self.answered = 0
        self.waited_out = 0
        self.no_responders = 0
        self.skipped_absent = 0

    def register(self) -> None:
        self._bus.connection.subscribe(self._bus.subjects.efmp_reply, self._on_response)

    @property
    def epr_absent(self) -> bool:
        return time.monotonic() < self._absent_until

    async def _on_response(self, msg: Msg) -> None:
        if msg.headers and msg.headers.get("Status") == _NO_RESPONDERS:
            self._epr_is_absent()
            return
        try:
            response = self._bus.codec.decode(EndpointFiltersResponse, msg.data)
        except InvalidArgument:
            log.warning("malformed EndpointFiltersResponse ignored")
            return
        question = self._question_answered_by(response)
        if question is None:
            log.debug("EndpointFiltersResponse for no pending question ignored")
            return
        if self._absent_warned:
            log.info("EPR answers filter membership queries again")
            self._absent_warned = False
        if not question.answer.done():
            self.answered += 1
            question.answer.set_result(response)

    def _question_answered_by(self, response: EndpointFiltersResponse) -> _Question | None:
        # RFC 20 does not promise that EPR echoes correlationId: fall back on the endpoint.
        question = self._pending.pop(response.correlation_id, None)
        if question is not None:
            return question
        correlation = next(
            (c for c, q in self._pending.items() if q.endpoint_id == response.endpoint_id),
            None,
        )
        return self._pending.pop(correlation) if correlation is not None else None

    def forget_absence(self) -> None:
        """Ask EPR again at the next need, backoff or not (EPR is known to be back)."""
        self._absent_until = 0.0

    def _epr_is_absent(self) -> None:
        """The broker says nobody listens on the EFMP subject: stop asking for a while."""
        self.no_responders += 1
        self._absent_until = time.monotonic() + self._backoff
        if not self._absent_warned:
            log.warning(
                "no EPR answers filter membership queries (NATS: no responders); "
                "not asking again for %.0f s",
                self._backoff,
            )
            self._absent_warned = True
        # One status message stands for every question in flight: none can be answered.
        pending, self._pending = self._pending, {}
        for question in pending.values():
            if not question.answer.done():
                question.answer.set_result(None)

    async def ask(self, key: EndpointKey) -> frozenset[str] | None:
        """EPR's answer: the filters the endpoint matches (the caller stores it)."""
        if self.epr_absent:
            self.skipped_absent += 1
            return None
        correlation = uuid.uuid4().hex
        request = EndpointFiltersRequest(
            correlation_id=correlation,
            timestamp=int(time.time() * 1000),
            timeout=int(self._timeout * 1000),
            endpoint_id=key.endpoint_id,
        )
        answer: asyncio.Future[EndpointFiltersResponse | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[correlation] = _Question(key.endpoint_id, answer)
        self.asked += 1
        try:
            await self._bus.connection.publish(
                self._bus.subjects.efmp_request,
                self._bus.codec.encode(request),
                reply=self._bus.subjects.efmp_reply,
            )
            response = await asyncio.wait_for(answer, self._timeout)
        except TimeoutError:
            self.waited_out += 1
            log.warning("EPR did not answer a filter membership query in time")
            return None
        except OtaoError:
            log.warning("filter membership query not sent: the broker is unavailable")
            return None
        finally:
            self._pending.pop(correlation, None)
        if response is None:
            return None
        if not 200 <= response.status_code < 300:
            log.warning("EPR answered a filter membership query with %s", response.status_code)
            return None
        return frozenset(response.filter_ids)
