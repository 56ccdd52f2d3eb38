"""The MongoDB stores (one client shared by all)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from otao.settings import Settings
from otao.store.audit import AuditStore
from otao.store.endpoints import EndpointStore
from otao.store.mongo import Mongo
from otao.store.monitoring import Listener
from otao.store.offers import OfferStore
from otao.store.push_jobs import PushJobStore
from otao.store.software import SoftwareStore


@dataclass(frozen=True, slots=True)
class Storage:
    mongo: Mongo
    software: SoftwareStore
    endpoints: EndpointStore
    push_jobs: PushJobStore
    audit: AuditStore
    offers: OfferStore


def build_storage(settings: Settings, listeners: Sequence[Listener] = ()) -> Storage:
    mongo = Mongo(
        settings.mongodb_uri,
        settings.mongodb_database,
        settings.mongodb_timeout_ms,
        listeners,
    )
    return Storage(
        mongo,
        SoftwareStore(mongo),
        EndpointStore(mongo),
        PushJobStore(mongo),
        AuditStore(mongo),
        OfferStore(mongo),
    )
