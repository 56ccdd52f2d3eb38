"""Avro binary codec for the Kaa wire records (one schemaless record per NATS message).

Every schema is loaded from ``schemas/`` exactly once, at import, and turned into one writer
(``avro_write``) and one reader (``avro_read``) per record type, so the per-message cost is
just the encoding work: CDTP requests and responses go through here on every device poll.

Decoding is tolerant the way Kaa's own readers are (``avro_read``, docs/kaa-protocols.md):
records of older writers (fields missing at the end, all defaulted) and newer writers (unknown
fields appended) are read; trailing bytes are counted in ``AvroCodec.trailing_ignored``. It
still treats the payload as hostile: whatever is wrong inside the fields (too big, truncated in
a field, bad UTF-8, absurd length prefixes, out-of-range numbers, bad union indexes) surfaces as
``MalformedPayload`` (an ``InvalidArgument``) with a fixed message, carrying the
``correlationId`` when it could be read. Writing is byte for byte what fastavro writes (tested).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Callable, Mapping
from importlib.resources import files
from operator import attrgetter
from types import MappingProxyType
from typing import Any, Final, TypeVar

from otao.domain.errors import InvalidArgument
from otao.messaging.avro_read import Decoder, compile_decoder
from otao.messaging.avro_write import Encoder, compile_encoder
from otao.messaging.records import (
    BroadcastConfigurationUpdateEvent,
    ConfigApplied,
    ConfigRequest,
    ConfigResponse,
    ConfigUpdated,
    EndpointFilterActivatedEvent,
    EndpointFilterDeletedEvent,
    EndpointFilterPendingEvent,
    EndpointFiltersRequest,
    EndpointFiltersResponse,
    EndpointMatchedFilterEvent,
    EndpointUnmatchedFilterEvent,
    EndpointUnregisteredEvent,
    Record,
    ServiceSpecificConfigurationUpdateEvent,
    TenantUnregisteredEvent,
    TenantUpdatedEvent,
)

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "FULL_NAMES",
    "AvroCodec",
    "MalformedPayload",
    "load_schema",
]

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Record)

DEFAULT_MAX_PAYLOAD_BYTES: Final = 1 << 20
"""NATS' own default max_payload; nothing legitimate on these subjects comes near it."""

FULL_NAMES: Final[Mapping[type[Record], str]] = MappingProxyType(
    {
        ConfigRequest: "org.kaaproject.ipc.cdtp.gen.v1.ConfigRequest",
        ConfigResponse: "org.kaaproject.ipc.cdtp.gen.v1.ConfigResponse",
        ConfigUpdated: "org.kaaproject.ipc.event.gen.v1.endpoint.config.ConfigUpdated",
        ConfigApplied: "org.kaaproject.ipc.event.gen.v1.endpoint.config.ConfigApplied",
        EndpointUnregisteredEvent: (
            "org.kaaproject.ipc.event.gen.v1.endpoint.lifecycle.UnregisteredEvent"
        ),
        EndpointMatchedFilterEvent: (
            "org.kaaproject.ipc.event.gen.v1.endpoint.filter.EndpointMatchedFilterEvent"
        ),
        EndpointUnmatchedFilterEvent: (
            "org.kaaproject.ipc.event.gen.v1.endpoint.filter.EndpointUnmatchedFilterEvent"
        ),
        EndpointFilterDeletedEvent: (
            "org.kaaproject.ipc.event.gen.v1.endpoint.filter.EndpointFilterDeletedEvent"
        ),
        EndpointFilterActivatedEvent: (
            "org.kaaproject.ipc.event.gen.v1.endpoint.filter.EndpointFilterActivatedEvent"
        ),
        EndpointFilterPendingEvent: (
            "org.kaaproject.ipc.event.gen.v1.endpoint.filter.EndpointFilterPendingEvent"
        ),
        EndpointFiltersRequest: "org.kaaproject.ipc.efmp.gen.v1.EndpointFiltersRequest",
        EndpointFiltersResponse: "org.kaaproject.ipc.efmp.gen.v1.EndpointFiltersResponse",
        BroadcastConfigurationUpdateEvent: (
            "org.kaaproject.scmp.event.gen.v1.service.configuration."
            "BroadcastConfigurationUpdateEvent"
        ),
        ServiceSpecificConfigurationUpdateEvent: (
            "org.kaaproject.scmp.event.gen.v1.service.configuration."
            "ServiceSpecificConfigurationUpdateEvent"
        ),
        TenantUpdatedEvent: "org.kaaproject.ipc.event.gen.v1.tenant.lifecycle.UpdatedEvent",
        TenantUnregisteredEvent: (
            "org.kaaproject.ipc.event.gen.v1.tenant.lifecycle.UnregisteredEvent"
        ),
    }
)
"""The Avro full name of each record class; its schema file is ``schemas/<full name>.avsc``."""

_TOO_LARGE: Final = "Avro payload too large"
_MALFORMED: Final = "malformed Avro payload"
_NO_DEFAULT: Final = object()
# "tenantID" -> "tenant_id", "appVerName" -> "app_ver_name": the acronym rule keeps SCMP's
# upper-case "ID" a single word.
_WORD_BOUNDARY: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def load_schema(full_name: str) -> dict[str, Any]:
    """The unparsed schema ``schemas/<full_name>.avsc`` as shipped in the package."""
    text = (files("otao.messaging") / "schemas" / f"{full_name}.avsc").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@dataclasses.dataclass(frozen=True, slots=True)
class _Binding:
    """What encode/decode need for one record type, computed once at import."""

    get_values: Callable[[Any], tuple[Any, ...]]  # the record's values in schema order
    encode: Encoder  # the writer for this record (avro_write)
    decode: Decoder  # the tolerant reader compiled for this record (avro_read)
    correlation_index: int  # position of correlationId in schema order (echoed on errors)


def _bind(record_type: type[Record], full_name: str) -> _Binding:
    raw = load_schema(full_name)
    if f"{raw['namespace']}.{raw['name']}" != full_name:
        raise RuntimeError(f"{full_name}.avsc declares another record")
    avro_fields: list[dict[str, Any]] = raw["fields"]
    attrs = dataclasses.fields(record_type)
    expected = [_WORD_BOUNDARY.sub("_", f["name"]).lower() for f in avro_fields]
    if expected != [a.name for a in attrs]:
        raise RuntimeError(f"{record_type.__name__} fields do not follow {full_name}.avsc")
    for field, attr in zip(avro_fields, attrs, strict=True):
        default = attr.default if attr.default is not dataclasses.MISSING else _NO_DEFAULT
        if field.get("default", _NO_DEFAULT) != default:
            raise RuntimeError(f"{record_type.__name__}.{attr.name} default differs from schema")
    field_names = tuple(f["name"] for f in avro_fields)
    attr_names = tuple(a.name for a in attrs)
    return _Binding(
        get_values=attrgetter(*attr_names),
        encode=compile_encoder(avro_fields),
        decode=compile_decoder(record_type, attr_names, avro_fields),
        correlation_index=field_names.index("correlationId"),
    )


_BINDINGS: Final[Mapping[type[object], _Binding]] = MappingProxyType(
    {record_type: _bind(record_type, name) for record_type, name in FULL_NAMES.items()}
)


class AvroCodec:
    """Encodes records to, and tolerantly decodes them from, Avro binary (schemaless)."""

    __slots__ = ("_max_payload_bytes", "_trailing_ignored", "_undecodable")

    def __init__(self, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        if max_payload_bytes <= 0:
            raise ValueError("max_payload_bytes must be positive")
        self._max_payload_bytes = max_payload_bytes
        self._trailing_ignored = 0
        self._undecodable = 0

    @property
    def max_payload_bytes(self) -> int:
        return self._max_payload_bytes

    def encode(self, record: Record) -> bytes:
        """The record's binary encoding.

        Raises ``TypeError`` for a class that is not a wire record and ``ValueError`` if a value
        does not fit the schema (e.g. a status code beyond 32 bits): both are bugs in the caller,
        never caused by a peer.
        """
        binding = _binding(type(record))
        try:
            return binding.encode(binding.get_values(record))
        except Exception as exc:
            raise ValueError(f"{type(record).__name__} does not fit its Avro schema") from exc

    def encode_values(self, record_type: type[Record], values: tuple[Any, ...]) -> bytes:
        """``encode(record_type(...))`` from the values in schema order, without building the
        record: a frozen record costs more to build than to encode (the steady-state reply)."""
        binding = _binding(record_type)
        try:
            return binding.encode(values)
        except Exception as exc:
            raise ValueError(f"{record_type.__name__} does not fit its Avro schema") from exc

    @property
    def trailing_ignored(self) -> int:
        """How many decoded payloads had bytes after the last known field (newer writers)."""
        return self._trailing_ignored

    @property
    def undecodable(self) -> int:
        """How many payloads could not be decoded (each one dropped or refused)."""
        return self._undecodable

    def decode(self, record_type: type[R], data: bytes) -> R:
        """The ``record_type`` record encoded at the start of ``data``.

        Raises ``MalformedPayload`` (an ``InvalidArgument``) for any payload that is not a
        valid encoding, and ``TypeError`` if ``record_type`` is not a wire record class.
        """
        binding = _binding(record_type)
        if len(data) > self._max_payload_bytes:
            self._undecodable += 1
            raise MalformedPayload(_TOO_LARGE)
        read: list[Any] = []
        try:
            record, end = binding.decode(data, read)
        except Exception as exc:
            # Deliberately broad: corrupted input makes the reader raise IndexError (truncated),
            # UnicodeDecodeError, ValueError, MemoryError...
            self._undecodable += 1
            index = binding.correlation_index
            correlation = read[index] if len(read) > index else None
            raise MalformedPayload(_MALFORMED, correlation) from exc
        if end != len(data):
            self._trailing_ignored += 1
            log.debug(
                "ignored %d bytes after a %s (a newer writer's fields)",
                len(data) - end,
                record_type.__name__,
            )
        result: R = record
        return result


class MalformedPayload(InvalidArgument):
    """A payload that is not a valid encoding; ``correlation_id`` when it could be read."""

    def __init__(self, message: str, correlation_id: str | None = None) -> None:
        super().__init__(message)
        self.correlation_id = correlation_id


def _binding(record_type: type[object]) -> _Binding:
    binding = _BINDINGS.get(record_type)
    if binding is None:
        raise TypeError(f"{record_type!r} is not a Kaa wire record")
    return binding
