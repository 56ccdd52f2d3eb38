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

_JSON = "application/json"

# --- 6/CDTP, namespace org.kaaproject.ipc.cdtp.gen.v1 -------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigRequest:
    correlation_id: str
    timestamp: int
    timeout: int = 0
    app_version_name: str
    endpoint_id: str
    config_id: str | None = None
    config_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigResponse:
    correlation_id: str
    timestamp: int
    timeout: int = 0
    app_version_name: str
    endpoint_id: str
    config_id: str | None = None
    content_type: str = _JSON
    content: bytes | None = None
    status_code: int
    reason_phrase: str | None = None


# --- 6/CDTP events, namespace org.kaaproject.ipc.event.gen.v1.endpoint.config ------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigUpdated:
    correlation_id: str
    timestamp: int
    timeout: int = 0
    app_version_name: str
    endpoint_id: str
    config_id: str
    content_type: str = _JSON
    content: bytes
    originator_replica_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigApplied:
    correlation_id: str
    timestamp: int
    timeout: int = 0
    app_version_name: str
    endpoint_id: str
    config_id: str
    originator_replica_id: str | None = None
    status_code: int = 200
    reason_phrase: str | None = None


# --- 9/ELCE, namespace org.kaaproject.ipc.event.gen.v1.endpoint.lifecycle ----------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointUnregisteredEvent:
    """Avro ``...endpoint.lifecycle.UnregisteredEvent``."""

    correlation_id: str
    timestamp: int
    timeout: int = 0
    app_version_name: str
    endpoint_id: str
    originator_replica_id: str


# --- 18/EFE, namespace org.kaaproject.ipc.event.gen.v1.endpoint.filter -------------------------
# filter_name is nullable but has no default in the schema, so it is required here too.


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointMatchedFilterEvent:
    timestamp: int
    timeout: int = 0
    correlation_id: str
    originator_replica_id: str
    filter_id: str
    application_name: str
    app_version_name: str
    filter_name: str | None
    endpoint_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointUnmatchedFilterEvent:
    timestamp: int
    timeout: int = 0
    correlation_id: str
    originator_replica_id: str
    filter_id: str
    application_name: str
    app_version_name: str
    filter_name: str | None
    endpoint_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointFilterDeletedEvent:
    timestamp: int
    timeout: int = 0
    correlation_id: str
    originator_replica_id: str
    filter_id: str
    application_name: str
    filter_name: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointFilterActivatedEvent:
    timestamp: int
    timeout: int = 0
    correlation_id: str
    originator_replica_id: str
    filter_id: str
    application_name: str
    filter_name: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointFilterPendingEvent:
    timestamp: int
    timeout: int = 0
    correlation_id: str
    originator_replica_id: str
    filter_id: str
    application_name: str
    filter_name: str | None


# --- 20/EFMP, namespace org.kaaproject.ipc.efmp.gen.v1 -----------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointFiltersRequest:
    correlation_id: str
    timestamp: int
    timeout: int = 0
    endpoint_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointFiltersResponse:
    correlation_id: str
    timestamp: int
    timeout: int = 0
    endpoint_id: str
    filter_ids: tuple[str, ...]
    status_code: int
    reason_phrase: str | None = None


# --- 17/SCMP, namespace org.kaaproject.scmp.event.gen.v1.service.configuration -----------------
# All scope fields None = reload everything; tenant only = that tenant; tenant + app = that
# application; all three = that application version.


@dataclass(frozen=True, slots=True, kw_only=True)
class BroadcastConfigurationUpdateEvent:
    correlation_id: str
    timestamp: int
    originator_replica_id: str
    tenant_id: str | None = None
    app_name: str | None = None
    app_ver_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSpecificConfigurationUpdateEvent:
    correlation_id: str
    timestamp: int
    tenant_id: str
    app_name: str | None = None
    app_ver_name: str | None = None


# --- 21/TLE, namespace org.kaaproject.ipc.event.gen.v1.tenant.lifecycle ------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantUpdatedEvent:
    """Avro ``...tenant.lifecycle.UpdatedEvent``."""

    correlation_id: str
    timestamp: int
    timeout: int = 0
    tenant_id: str
    originator_replica_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantUnregisteredEvent:
    """Avro ``...tenant.lifecycle.UnregisteredEvent``."""

    correlation_id: str
    timestamp: int
    timeout: int = 0
    tenant_id: str
    originator_replica_id: str


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
