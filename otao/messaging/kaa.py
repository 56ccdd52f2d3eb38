"""How otao talks with the Kaa platform over NATS: the connection, the Avro codec of Kaa's
records and this deployment's subjects.

The three always travel together (every Kaa handler and client subscribes or publishes on a
subject, in Avro), so they are handed over as one value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.msg import Msg

from otao.messaging.avro import AvroCodec, R
from otao.messaging.connection import NatsConnection, event_handler
from otao.messaging.subjects import Subjects


@dataclass(frozen=True, slots=True)
class KaaBus:
    connection: NatsConnection
    codec: AvroCodec
    subjects: Subjects

    def on_record(
        self,
        subject: str,
        record_type: type[R],
        what: str,
        handle: Callable[[R], Awaitable[object]],
        queue: str = "",
    ) -> None:
        """Hands ``handle`` each ``record_type`` event published on ``subject``, decoded from
        Avro; a failure (an undecodable payload too) is logged as ``what`` not handled
        (``event_handler``) and never reaches nats-py."""

        @event_handler(what)
        async def on_message(msg: Msg) -> None:
            await handle(self.codec.decode(record_type, msg.data))

        self.connection.subscribe(subject, on_message, queue=queue)
