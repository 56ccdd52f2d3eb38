"""Database health as events, for the metrics: failed commands and heartbeats, reconnects.

pymongo's monitoring listeners, given to the client at construction (they cannot be added
later). Failed commands are what ``translated`` turns into domain errors; heartbeats fail
while the server is unreachable even when nothing asks it anything.
"""

from __future__ import annotations

from collections.abc import Callable

from pymongo import monitoring

ErrorCallback = Callable[[str], None]
# What Mongo takes (pymongo's listener base), under otao's own name for the wiring.
Listener = monitoring._EventListener


class _Failures:
    """A listener of events that start, then succeed or fail: only a failure is news, counted
    by ``kind``."""

    def __init__(self, on_error: ErrorCallback, kind: str) -> None:
        self._on_error = on_error
        self._kind = kind

    def started(self, event: object) -> None:
        return None

    def succeeded(self, event: object) -> None:
        return None

    def failed(self, event: object) -> None:
        self._on_error(self._kind)


class _Commands(_Failures, monitoring.CommandListener):
    pass


class _Heartbeats(_Failures, monitoring.ServerHeartbeatListener):
    pass


class _Topology(monitoring.TopologyListener):
    """A reconnect: a readable server again, after having had one (the first is no reconnect)."""

    def __init__(self, on_reconnect: Callable[[], None]) -> None:
        self._on_reconnect = on_reconnect
        self._was_up = False

    def opened(self, event: monitoring.TopologyOpenedEvent) -> None:
        return None

    def closed(self, event: monitoring.TopologyClosedEvent) -> None:
        return None

    def description_changed(self, event: monitoring.TopologyDescriptionChangedEvent) -> None:
        up = event.new_description.has_readable_server()
        if up and self._was_up and not event.previous_description.has_readable_server():
            self._on_reconnect()
        self._was_up = self._was_up or up


def database_listeners(on_error: ErrorCallback, on_reconnect: Callable[[], None]) -> list[Listener]:
    """The listeners to hand to ``Mongo``: errors by kind (command, heartbeat), reconnects."""
    return [
        _Commands(on_error, "command"),
        _Heartbeats(on_error, "heartbeat"),
        _Topology(on_reconnect),
    ]
