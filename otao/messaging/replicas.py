"""otao's own broadcasts between its replicas, on ``kaa.v1.events.{otao}.{topic}``.

No queue group: every replica must hear them (3/ISM's way for cache reloads). Each message
names the replica that sent it, and that replica ignores it: it acted locally already. A
message that cannot be read is logged and dropped; what was broadcast while a replica was
disconnected is lost, so its listener's ``on_reconnect`` starts afresh.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from nats.aio.msg import Msg

from otao.messaging.connection import NatsConnection

log = logging.getLogger(__name__)

CATALOG_CHANGED = "application.catalog.changed"
ROLLOUT_CHANGED = "rollout.changed"


class ReplicaChannel:
    def __init__(self, connection: NatsConnection, otao: str, topic: str, replica: str) -> None:
        self._connection = connection
        self.subject = f"kaa.v1.events.{otao}.{topic}"
        self._replica = replica

    async def broadcast(self, payload: Mapping[str, object]) -> None:
        """To every other replica; ``OtaoError`` when the broker does not take it."""
        message = {**payload, "replica": self._replica}
        await self._connection.publish(self.subject, json.dumps(message).encode())

    def listen(
        self,
        on_message: Callable[[Mapping[str, Any]], None],
        on_reconnect: Callable[[], None],
        what: str,
    ) -> None:
        """``on_message`` gets the other replicas' payloads; a ``KeyError``, ``TypeError`` or
        ``ValueError`` from it is the message being malformed (``what`` names it in the log)."""

        async def received(msg: Msg) -> None:
            try:
                payload = json.loads(msg.data)
                if payload.get("replica") == self._replica:
                    return
                on_message(payload)
            except (ValueError, KeyError, TypeError, AttributeError):
                log.warning("malformed %s ignored", what)

        self._connection.subscribe(self.subject, received)
        self._connection.on_reconnect(on_reconnect)
