"""Avro binary codec for the Kaa wire records (one schemaless record per NATS message).

Every schema is loaded from ``schemas/`` and parsed exactly once, at import, together with
everything else encode/decode need (field-name maps, getters), so the per-message cost is just
fastavro's own work: CDTP requests and responses go through here on every device poll.

Decoding treats the payload as hostile. Whatever is wrong with it (too big, truncated, trailing
bytes, a foreign schema, bad UTF-8, absurd length prefixes, out-of-range numbers) surfaces as
``InvalidArgument`` with a fixed message; fastavro's exception text never leaves this module.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections.abc import Callable, Mapping
from importlib.resources import files
from operator import attrgetter
from types import MappingProxyType
from typing import Any, Final, TypeVar

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.types import Schema

from otao.domain.errors import InvalidArgument
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

__all__ = ["DEFAULT_MAX_PAYLOAD_BYTES", "FULL_NAMES", "AvroCodec", "load_schema"]

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

_INT_MIN: Final = -(1 << 31)
_INT_MAX: Final = (1 << 31) - 1
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

    schema: Schema
    attr_to_field: tuple[tuple[str, str], ...]  # (python attribute, Avro field), schema order
    field_names: tuple[str, ...]
    get_values: Callable[[Any], tuple[Any, ...]]
    int_fields: tuple[str, ...]  # Avro 32-bit "int" fields: fastavro does not range-check them
    array_attrs: tuple[str, ...]  # fastavro decodes arrays as lists; records hold tuples
    # Only the canonical (shortest) encoding is accepted, checked by re-encoding. Records with
    # arrays are exempt because a writer may legally split an array into several blocks.
    canonical_only: bool


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
    arrays = tuple(
        a.name
        for f, a in zip(avro_fields, attrs, strict=True)
        if isinstance(f["type"], dict) and f["type"].get("type") == "array"
    )
    return _Binding(
        schema=parse_schema(raw),
        attr_to_field=tuple(zip(attr_names, field_names, strict=True)),
        field_names=field_names,
        get_values=attrgetter(*attr_names),
        int_fields=tuple(f["name"] for f in avro_fields if f["type"] == "int"),
        array_attrs=arrays,
        canonical_only=not arrays,
    )


_BINDINGS: Final[Mapping[type[object], _Binding]] = MappingProxyType(
    {record_type: _bind(record_type, name) for record_type, name in FULL_NAMES.items()}
)


def _ints_in_range(binding: _Binding, datum: Mapping[str, Any]) -> bool:
    return all(_INT_MIN <= datum[name] <= _INT_MAX for name in binding.int_fields)


def _write(schema: Schema, datum: Mapping[str, Any]) -> bytes:
    buffer = io.BytesIO()
    schemaless_writer(buffer, schema, datum)
    return buffer.getvalue()


class AvroCodec:
    """Encodes records to, and strictly decodes them from, Avro binary (schemaless)."""

    __slots__ = ("_max_payload_bytes",)

    def __init__(self, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        if max_payload_bytes <= 0:
            raise ValueError("max_payload_bytes must be positive")
        self._max_payload_bytes = max_payload_bytes

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
        datum = dict(zip(binding.field_names, binding.get_values(record), strict=True))
        try:
            if binding.int_fields and not _ints_in_range(binding, datum):
                raise ValueError("int out of range")
            return _write(binding.schema, datum)
        except Exception as exc:
            raise ValueError(f"{type(record).__name__} does not fit its Avro schema") from exc

    def decode(self, record_type: type[R], data: bytes) -> R:
        """The ``record_type`` record encoded in ``data``, which must hold exactly one.

        Raises ``InvalidArgument`` for any payload that is not a valid encoding, and
        ``TypeError`` if ``record_type`` is not a wire record class.
        """
        binding = _binding(record_type)
        if len(data) > self._max_payload_bytes:
            raise InvalidArgument(_TOO_LARGE)
        buffer = io.BytesIO(data)
        try:
            datum = schemaless_reader(buffer, binding.schema, None)
            if not isinstance(datum, dict):
                raise InvalidArgument(_MALFORMED)
            if binding.canonical_only:
                # Catches what fastavro lets through: trailing bytes, negative union indexes
                # (Python indexing picks the last branch), over-long varints.
                if _write(binding.schema, datum) != data:
                    raise InvalidArgument(_MALFORMED)
            elif buffer.tell() != len(data):
                raise InvalidArgument(_MALFORMED)
            if binding.int_fields and not _ints_in_range(binding, datum):
                raise InvalidArgument(_MALFORMED)
            values = {attr: datum[field] for attr, field in binding.attr_to_field}
            for attr in binding.array_attrs:
                values[attr] = tuple(values[attr])
            record: R = record_type(**values)
        except InvalidArgument:
            raise
        except Exception as exc:
            # Deliberately broad: corrupted input makes fastavro raise EOFError, IndexError,
            # UnicodeDecodeError, ValueError, MemoryError, OverflowError, RecursionError...
            raise InvalidArgument(_MALFORMED) from exc
        return record


def _binding(record_type: type[object]) -> _Binding:
    binding = _BINDINGS.get(record_type)
    if binding is None:
        raise TypeError(f"{record_type!r} is not a Kaa wire record")
    return binding
