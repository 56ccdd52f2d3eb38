"""How otao talks with the Kaa platform over NATS: the connection, the Avro codec of Kaa's
records and this deployment's subjects.

The three always travel together (every Kaa handler and client subscribes or publishes on a
subject, in Avro), so they are handed over as one value.
"""

from __future__ import annotations

from dataclasses import dataclass

from otao.messaging.avro import AvroCodec
from otao.messaging.connection import NatsConnection
from otao.messaging.subjects import Subjects


@dataclass(frozen=True, slots=True)
class KaaBus:
    connection: NatsConnection
    codec: AvroCodec
    subjects: Subjects
