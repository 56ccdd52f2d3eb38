"""Watch streams: the hub of this replica's watchers and the NATS adapter that feeds it from
every replica (built after the broker, before the services that report changes to it)."""

from __future__ import annotations

from dataclasses import dataclass

from otao.components.broker import Broker
from otao.messaging.rollout_events import RolloutEventBroadcaster, RolloutEventListener
from otao.services.watch import WatchHub
from otao.settings import Settings


@dataclass(frozen=True, slots=True)
class Watch:
    hub: WatchHub
    # The RolloutEvents port every producer of rollout changes is handed.
    events: RolloutEventBroadcaster


def build_watch(settings: Settings, broker: Broker) -> Watch:
    hub = WatchHub()
    events = RolloutEventBroadcaster(broker.nats, hub, settings.kaa.otao, settings.replica_id)
    RolloutEventListener(broker.nats, hub, settings.kaa.otao, settings.replica_id).register()
    return Watch(hub, events)
