"""The Kaa wire records otao sends and receives, as plain immutable values.

One class per Avro record in ``schemas/`` (see docs/kaa-protocols.md). Attributes are the Avro
fields in snake_case, declared in schema order, with the schema's defaults; ``otao.messaging.avro``
checks both at import, so a drift between a class and its ``.avsc`` fails loudly instead of on the
wire.

The classes are keyword-only because Kaa schemas put defaulted fields (``timeout``) before
required ones, which positional dataclass fields cannot express. Arrays are tuples so that every
record stays immutable and hashable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

_JSON = "application/json"
_T = TypeVar("_T")


@dataclass_transform(frozen_default=True, kw_only_default=True)
def _wire(cls: type[_T]) -> type[_T]:
    """Every wire record is a frozen, slotted, keyword-only dataclass (see above)."""
    return dataclass(frozen=True, slots=True, kw_only=True)(cls)


# Most Kaa records open with the same header; it is declared once, and each record class adds
# its own fields after it (dataclass fields of a base come first, so schema order holds). The
# record classes stay distinct types: the codec binds one schema per class, equality is per class.


@_wire
class _Header:
    correlation_id: str
    timestamp: int
    timeout: int = 0


@_wire
class _EndpointHeader(_Header):
    app_version_name: str
    endpoint_id: str


# --- 6/CDTP, namespace org.kaaproject.ipc.cdtp.gen.v1 -------------------------------------------


@_wire
class ConfigRequest(_EndpointHeader):
    config_id: str | None = None
    config_name: str | None = None


@_wire
class ConfigResponse(_EndpointHeader):
    config_id: str | None = None
    content_type: str = _JSON
    content: bytes | None = None
    status_code: int
    reason_phrase: str | None = None


# --- 6/CDTP events, namespace org.kaaproject.ipc.event.gen.v1.endpoint.config ------------------


@_wire
class ConfigUpdated(_EndpointHeader):
    config_id: str
    content_type: str = _JSON
    content: bytes
    originator_replica_id: str | None = None


@_wire
class ConfigApplied(_EndpointHeader):
    config_id: str
    originator_replica_id: str | None = None
    status_code: int = 200
    reason_phrase: str | None = None


# --- 9/ELCE, namespace org.kaaproject.ipc.event.gen.v1.endpoint.lifecycle ----------------------


@_wire
class EndpointUnregisteredEvent(_EndpointHeader):
    """Avro ``...endpoint.lifecycle.UnregisteredEvent``."""

    originator_replica_id: str


# --- 18/EFE, namespace org.kaaproject.ipc.event.gen.v1.endpoint.filter -------------------------
# These schemas put the timestamp first, so they do not share the header. filter_name is nullable
# but has no default in the schema, so it is required here too. The five schemas come in two
# field layouts, each declared once.


@_wire
class _FilterEvent:
    timestamp: int
    timeout: int = 0
    correlation_id: str
    originator_replica_id: str
    filter_id: str
    application_name: str


@_wire
class _EndpointFilterEvent(_FilterEvent):
    app_version_name: str
    filter_name: str | None
    endpoint_id: str


@_wire
class EndpointMatchedFilterEvent(_EndpointFilterEvent):
    pass


@_wire
class EndpointUnmatchedFilterEvent(_EndpointFilterEvent):
    pass


@_wire
class _FilterOnlyEvent(_FilterEvent):
    filter_name: str | None


@_wire
class EndpointFilterDeletedEvent(_FilterOnlyEvent):
    pass


@_wire
class EndpointFilterActivatedEvent(_FilterOnlyEvent):
    pass


@_wire
class EndpointFilterPendingEvent(_FilterOnlyEvent):
    pass


# --- 20/EFMP, namespace org.kaaproject.ipc.efmp.gen.v1 -----------------------------------------


@_wire
class EndpointFiltersRequest(_Header):
    endpoint_id: str


@_wire
class EndpointFiltersResponse(_Header):
    endpoint_id: str
    filter_ids: tuple[str, ...]
    status_code: int
    reason_phrase: str | None = None


# --- 17/SCMP, namespace org.kaaproject.scmp.event.gen.v1.service.configuration -----------------
# All scope fields None = reload everything; tenant only = that tenant; tenant + app = that
# application; all three = that application version. Both schemas open with the correlation id
# and the timestamp, without the header's timeout.


@_wire
class _ScmpEvent:
    correlation_id: str
    timestamp: int


@_wire
class BroadcastConfigurationUpdateEvent(_ScmpEvent):
    originator_replica_id: str
    tenant_id: str | None = None
    app_name: str | None = None
    app_ver_name: str | None = None


@_wire
class ServiceSpecificConfigurationUpdateEvent(_ScmpEvent):
    tenant_id: str
    app_name: str | None = None
    app_ver_name: str | None = None


# --- 21/TLE, namespace org.kaaproject.ipc.event.gen.v1.tenant.lifecycle ------------------------


@_wire
class _TenantEvent(_Header):
    tenant_id: str
    originator_replica_id: str


@_wire
class TenantUpdatedEvent(_TenantEvent):
    """Avro ``...tenant.lifecycle.UpdatedEvent``."""


@_wire
class TenantUnregisteredEvent(_TenantEvent):
    """Avro ``...tenant.lifecycle.UnregisteredEvent``."""


Record = (
    ConfigRequest
    | ConfigResponse
    | ConfigUpdated
    | ConfigApplied
    | EndpointUnregisteredEvent
    | EndpointMatchedFilterEvent
    | EndpointUnmatchedFilterEvent
    | EndpointFilterDeletedEvent
    | EndpointFilterActivatedEvent
    | EndpointFilterPendingEvent
    | EndpointFiltersRequest
    | EndpointFiltersResponse
    | BroadcastConfigurationUpdateEvent
    | ServiceSpecificConfigurationUpdateEvent
    | TenantUpdatedEvent
    | TenantUnregisteredEvent
)
"""Any wire record."""
