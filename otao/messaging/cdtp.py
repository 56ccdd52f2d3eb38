"""6/CDTP provider: answers ConfigRequests, takes ConfigApplied, publishes ConfigUpdated.

A poll the in-memory catalog decides (the steady state: nothing new for the endpoint) is
answered inside the subscription's callback: no task, no suspension, and replies published in
the same turn of the event loop leave in one socket write. A poll that needs the database is
handled in its own task (bounded), so one slow read never holds up the polls behind it;
nats-py would otherwise run a subscription's callbacks one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime

from nats.aio.msg import Msg

from otao.domain.errors import OtaoError, Unavailable
from otao.messaging.avro import AvroCodec, MalformedPayload
from otao.messaging.avro_write import long_bytes, string_bytes
from otao.messaging.connection import NatsConnection, event_handler
from otao.messaging.records import (
    ConfigApplied,
    ConfigRequest,
    ConfigResponse,
    ConfigUpdated,
    EndpointUnregisteredEvent,
)
from otao.messaging.status import cdtp_status
from otao.messaging.subjects import Subjects
from otao.observability import tracing
from otao.services.delivery import DeliveryService, Offer
from otao.services.meters import NO_CDTP_METER, CdtpMeter, MethodMeter, PollResult

log = logging.getLogger(__name__)


_SEQUENCE_MASK = (1 << 64) - 1
# ConfigRequest.configName: absent (every Kaa 1.0-1.5 CMX) or "default" is the OTA software.
_OTA_CONFIG_NAMES = frozenset({None, "default"})
_CONTENT_TYPE = "application/json"  # ConfigResponse.contentType's default (records.py)
_NOTHING_NEW = PollResult.NOTHING_NEW


def _now_ms() -> int:
    return int(time.time() * 1000)


class CdtpProvider:
    def __init__(
        self,
        connection: NatsConnection,
        codec: AvroCodec,
        subjects: Subjects,
        delivery: DeliveryService,
        max_in_flight: int = 512,
        meter: CdtpMeter = NO_CDTP_METER,
    ) -> None:
        self._connection = connection
        self._meter = meter
        self._polls = meter.method("ConfigRequest")
        self._reports = meter.method("ConfigApplied")
        self._unregistrations = meter.method("EndpointUnregistered")
        self._codec = codec
        self._subjects = subjects
        self._delivery = delivery
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Task[None]] = set()

    def register(self) -> None:
        group = self._subjects.queue_group
        # Traced or not is decided here, before the connection subscribes (tests and the
        # entry point configure tracing before otao is built).
        on_request = tracing.handler("cdtp ConfigRequest", "CONSUMER", self._on_request)
        self._connection.subscribe(self._subjects.cdtp_request, on_request, queue=group)
        self._connection.subscribe(self._subjects.config_applied, self._on_applied, queue=group)
        self._connection.subscribe(
            self._subjects.elce_unregistered, self._on_unregistered, queue=group
        )

    async def _on_request(self, msg: Msg) -> None:
        started = time.perf_counter()
        reply = msg.reply
        if not reply:
            log.warning("ConfigRequest without a reply subject dropped")
            return
        try:
            request = self._codec.decode(ConfigRequest, msg.data)
        except MalformedPayload as error:
            await self._answered(
                reply, _failure(None, 400, "malformed ConfigRequest", error), started
            )
            return
        if request.config_name not in _OTA_CONFIG_NAMES:
            # otao serves one configuration, the OTA software; another name is not ours.
            reason = f"unknown configuration {request.config_name!r}: otao serves only 'default'"
            await self._answered(reply, _failure(request, 404, reason), started)
            return
        if request.timeout > 0 and request.timestamp + request.timeout < _now_ms():
            self._polls.done("expired", started)
            return  # Expired: the consumer stopped waiting; no work for nobody.
        # The common poll is decided from the in-memory catalog: answered right here, with
        # no task and no suspension. Anything that needs the database gets a task.
        try:
            steady = self._delivery.poll_from_catalog(
                request.app_version_name, request.endpoint_id, request.config_id
            )
        except Exception as error:
            await self._answered(reply, _error_response(request, error), started)
            return
        if steady:
            try:
                await self._connection.publish(reply, self._nothing_new(request))
            except OtaoError as error:
                log.warning("ConfigResponse not sent: %s", error.message)
            self._polls.done("200", started)
            self._meter.poll(_NOTHING_NEW)
            return
        await self._slots.acquire()
        task = asyncio.create_task(self._answer(reply, request, started))
        self._in_flight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slots.release()

    async def drain(self, timeout: float) -> None:
        """Let requests already being answered finish (graceful shutdown)."""
        if self._in_flight:
            _, unfinished = await asyncio.wait(set(self._in_flight), timeout=timeout)
            if unfinished:
                # The connection closes under them: their consumers get no answer.
                log.warning(
                    "%d ConfigRequests unanswered at the grace period's end", len(unfinished)
                )

    @tracing.traced("cdtp ConfigRequest resolve", "INTERNAL")
    async def _answer(self, reply: str, request: ConfigRequest, started: float) -> None:
        try:
            offer = await self._delivery.poll(
                request.app_version_name, request.endpoint_id, request.config_id
            )
            response = _success(request, offer)
        except Exception as error:
            response = _error_response(request, error)
        await self._answered(reply, response, started)

    async def _answered(self, subject: str, response: ConfigResponse, started: float) -> None:
        await self._reply(subject, response)
        status = response.status_code
        self._polls.done(str(status), started)
        self._meter.poll(_poll_result(status, response.config_id))

    def _nothing_new(self, request: ConfigRequest) -> bytes:
        """``encode(_success(request, Offer(known)))`` for a steady-state poll, encoded from its
        values (in the schema's order) without building the ConfigResponse."""
        values = (
            request.correlation_id,
            _now_ms(),
            0,  # timeout
            request.app_version_name,
            request.endpoint_id,
            None,  # configId: nothing new
            _CONTENT_TYPE,
            None,  # content
            200,
            None,
        )
        return self._codec.encode_values(ConfigResponse, values)

    async def _reply(self, subject: str, response: ConfigResponse) -> None:
        try:
            await self._connection.publish(subject, self._codec.encode(response))
        except OtaoError as error:
            log.warning("ConfigResponse not sent: %s", error.message)

    @event_handler("ConfigApplied")
    async def _on_applied(self, msg: Msg) -> None:
        started = time.perf_counter()
        with _metered(self._reports, started):
            event = self._codec.decode(ConfigApplied, msg.data)
            await _until_the_database_answers(
                lambda: self._delivery.applied(
                    event.app_version_name,
                    event.endpoint_id,
                    event.config_id,
                    event.status_code,
                    event.reason_phrase,
                    datetime.fromtimestamp(event.timestamp / 1000, UTC),
                )
            )
        self._meter.report(200 <= event.status_code < 300)

    @event_handler("endpoint unregistration")
    async def _on_unregistered(self, msg: Msg) -> None:
        with _metered(self._unregistrations, time.perf_counter()):
            event = self._codec.decode(EndpointUnregisteredEvent, msg.data)
            await _until_the_database_answers(
                lambda: self._delivery.unregistered(event.app_version_name, event.endpoint_id)
            )


def _poll_result(status: int, config_id: str | None) -> PollResult:
    if status == 200:
        return PollResult.NOTHING_NEW if config_id is None else PollResult.UPDATE
    return PollResult.NOT_FOUND if status == 404 else PollResult.ERROR


@contextlib.contextmanager
def _metered(meter: MethodMeter, started: float) -> Iterator[None]:
    """An event's outcome as the CDTP status a reply would carry (events get none)."""
    try:
        yield
    except OtaoError as error:
        meter.done(str(cdtp_status(error)), started)
        raise
    except Exception:
        meter.done("500", started)
        raise
    meter.done("200", started)


async def _until_the_database_answers(
    work: Callable[[], Awaitable[None]], patience_seconds: float = 60.0
) -> None:
    """Events are never redelivered by core NATS, so a database outage must not lose them.

    Retries while the database is unavailable, for a bounded time. nats-py runs one
    subscription's callbacks one after the other, so later events wait, in order, behind
    this one (buffered by the client) instead of being dropped.
    """
    delay = 0.2
    deadline = time.monotonic() + patience_seconds
    while True:
        try:
            await work()
            return
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def _success(request: ConfigRequest, offer: Offer) -> ConfigResponse:
    return ConfigResponse(
        correlation_id=request.correlation_id,
        timestamp=_now_ms(),
        app_version_name=request.app_version_name,
        endpoint_id=request.endpoint_id,
        config_id=offer.version,
        content=offer.content,
        status_code=200,
    )


def _error_response(request: ConfigRequest, error: Exception) -> ConfigResponse:
    if isinstance(error, OtaoError):
        return _failure(request, cdtp_status(error), error.message)
    log.error("unexpected error answering a ConfigRequest", exc_info=error)
    return _failure(request, 500, "internal error")


def _failure(
    request: ConfigRequest | None,
    status: int,
    reason: str,
    malformed: MalformedPayload | None = None,
) -> ConfigResponse:
    # A malformed request's correlationId is echoed when it could be read, so the consumer
    # can still match the error to its request.
    echoed = malformed.correlation_id if malformed is not None else None
    return ConfigResponse(
        correlation_id=request.correlation_id if request else (echoed or ""),
        timestamp=_now_ms(),
        app_version_name=request.app_version_name if request else "",
        endpoint_id=request.endpoint_id if request else "",
        status_code=status,
        reason_phrase=reason,
    )


class ConfigUpdatedPublisher:
    """Publishes pushes; flushes once per batch rather than once per message."""

    def __init__(self, connection: NatsConnection, codec: AvroCodec, subjects: Subjects) -> None:
        self._connection = connection
        self._codec = codec
        self._subject = subjects.config_updated
        self._replica = subjects.replica
        # Correlation ids: 32 hex digits like a UUID's, a random half per publisher and a
        # counter (a push sends thousands a second; uuid4 costs a system call each).
        self._id_prefix = secrets.token_hex(8)
        self._sequence = itertools.count(secrets.randbits(48))
        # config_updated_many's: the correlation id's length (32) and its random half.
        self._id_head = long_bytes(32) + self._id_prefix.encode()

    async def config_updated(
        self, app_version: str, endpoint_id: str, version: str, content: bytes
    ) -> None:
        await self.config_updated_many(version, content, ((app_version, endpoint_id),))

    async def config_updated_many(
        self, version: str, content: bytes, targets: Sequence[tuple[str, str]]
    ) -> None:
        """A ConfigUpdated of ``version`` to each (app version name, endpoint id), from what
        the messages share encoded once: a push publishes 10,000s a second, and building and
        encoding each record was an eighth of the process (py-spy). One timestamp for the
        batch: it is published in one go."""
        # Every field but the correlation id, the app version and the endpoint id is the
        # same in each message; its encoding is cut from the codec's own (so it cannot drift
        # from the schema): with those three and the timestamp empty, they encode as zeros.
        template = self._codec.encode(
            ConfigUpdated(
                correlation_id="",
                timestamp=0,
                app_version_name="",
                endpoint_id="",
                config_id=version,
                content=content,
                originator_replica_id=self._replica,
            )
        )
        assert template.startswith(_FIVE_EMPTY), "ConfigUpdated's schema order changed"
        tail = template[len(_FIVE_EMPTY) :]
        stamp = long_bytes(_now_ms()) + b"\x00"  # and the timeout, 0
        names: dict[str, bytes] = {}
        ids, sequence = self._id_head, self._sequence

        def payloads() -> Iterator[bytes]:
            for app_version, endpoint_id in targets:
                name = names.get(app_version)
                if name is None:
                    name = names[app_version] = string_bytes(app_version)
                yield b"".join(
                    (
                        ids,
                        b"%016x" % (next(sequence) & _SEQUENCE_MASK),
                        stamp,
                        name,
                        string_bytes(endpoint_id),
                        tail,
                    )
                )

        await self._connection.publish_many(self._subject, payloads())

    async def flush(self) -> None:
        await self._connection.flush()


# A ConfigUpdated's first five fields (correlation id, timestamp, timeout, app version name,
# endpoint id) when all are empty or 0.
_FIVE_EMPTY = b"\x00" * 5
