"""Avro binary codec for the Kaa wire records (one schemaless record per NATS message).

Every schema is loaded from ``schemas/`` and parsed exactly once, at import, together with
everything else encode/decode need (field-name maps, getters, and for records of primitive
fields an encoder compiled for them), so the per-message cost is just the encoding work: CDTP
requests and responses go through here on every device poll.

Decoding is tolerant the way Kaa's own readers are (``avro_read``, docs/kaa-protocols.md):
records of older writers (fields missing at the end, all defaulted) and newer writers (unknown
fields appended) are read; trailing bytes are counted in ``AvroCodec.trailing_ignored``. It
still treats the payload as hostile: whatever is wrong inside the fields (too big, truncated in
a field, bad UTF-8, absurd length prefixes, out-of-range numbers, bad union indexes) surfaces as
``MalformedPayload`` (an ``InvalidArgument``) with a fixed message, carrying the
``correlationId`` when it could be read. Writing stays byte for byte what fastavro writes.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from importlib.resources import files
from operator import attrgetter
from types import MappingProxyType
from typing import Any, Final, TypeVar

from fastavro import parse_schema, schemaless_writer
from fastavro.types import Schema

from otao.domain.errors import InvalidArgument
from otao.messaging.avro_read import Decoder, compile_decoder
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
    decode: Decoder  # the tolerant reader compiled for this record (avro_read)
    correlation_index: int  # position of correlationId in schema order (echoed on errors)
    # Records whose fields are all primitives or unions of primitives (every CDTP record)
    # are written by a function compiled for them (_compile_flat) from their values in schema
    # order; None: fastavro writes.
    flat: _FlatEncoder | None


# ---------------------------------------------------------------------------------------------
# Flat records: written here, byte for byte what fastavro writes, at a fraction of the cost
# (no dict, no BytesIO, no per-call schema handling, straight-line code per record type). The
# CDTP hot path encodes every reply with it; reading is avro_read's.

_NULL, _BOOLEAN, _INT, _LONG, _STRING, _BYTES = range(6)
_PRIMITIVES: Final = {
    "null": _NULL,
    "boolean": _BOOLEAN,
    "int": _INT,
    "long": _LONG,
    "string": _STRING,
    "bytes": _BYTES,
}
_LONG_MIN: Final = -(1 << 63)
_LONG_MAX: Final = (1 << 63) - 1
_ONE_BYTE: Final = tuple(bytes((z,)) for z in range(128))
# A field's type: a primitive, or a union of primitives (its branches, in order).
_FieldType = int | tuple[int, ...]
# Appends one field's encoding to the output; raises for a value that does not fit.
_Writer = Callable[[Any, list[bytes]], None]
# A record's encoding from its values in schema order.
_FlatEncoder = Callable[[Sequence[Any]], bytes]


def _flat_encoder(avro_fields: list[dict[str, Any]]) -> _FlatEncoder | None:
    types: list[_FieldType] = []
    for field in avro_fields:
        declared = field["type"]
        if isinstance(declared, str) and declared in _PRIMITIVES:
            types.append(_PRIMITIVES[declared])
        elif (
            isinstance(declared, list)
            and declared
            and all(isinstance(b, str) and b in _PRIMITIVES for b in declared)
        ):
            types.append(tuple(_PRIMITIVES[b] for b in declared))
        else:
            return None
    return _compile_flat(tuple(types))


def _long(value: int) -> bytes:
    """Zigzag varint, as Avro writes int and long."""
    z = (value << 1) ^ (value >> 63)  # TypeError unless an int
    if 0 <= z < 0x80:  # Lengths, small numbers: one byte (z < 0 only out of range).
        return _ONE_BYTE[z]
    if not _LONG_MIN <= value <= _LONG_MAX:
        raise ValueError("long out of range")
    return _varint(z)


@functools.lru_cache(maxsize=4096)
def _varint(z: int) -> bytes:
    # Cached: the longer values are mostly timestamps in milliseconds, shared by every
    # message of the same millisecond.
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _write_string(value: Any, out: list[bytes]) -> None:
    encoded = value.encode()  # AttributeError unless a str
    size = len(encoded)
    out.append(_ONE_BYTE[size << 1] if size < 64 else _long(size))
    out.append(encoded)


def _write_bytes(value: Any, out: list[bytes]) -> None:
    if not isinstance(value, bytes | bytearray):
        raise TypeError("bytes expected")
    size = len(value)
    out.append(_ONE_BYTE[size << 1] if size < 64 else _long(size))
    out.append(bytes(value))


def _write_long(value: Any, out: list[bytes]) -> None:
    out.append(_long(value))  # TypeError unless an int (bool included, as fastavro)


def _write_int(value: Any, out: list[bytes]) -> None:
    if not _INT_MIN <= value <= _INT_MAX:
        raise ValueError("int out of range")
    out.append(_long(value))


def _write_boolean(value: Any, out: list[bytes]) -> None:
    if not isinstance(value, bool):
        raise TypeError("boolean expected")
    out.append(b"\x01" if value else b"\x00")


def _write_null(value: Any, out: list[bytes]) -> None:
    if value is not None:
        raise TypeError("null expected")


_WRITERS: Final[Mapping[int, _Writer]] = MappingProxyType(
    {
        _NULL: _write_null,
        _BOOLEAN: _write_boolean,
        _INT: _write_int,
        _LONG: _write_long,
        _STRING: _write_string,
        _BYTES: _write_bytes,
    }
)
_ACCEPTS: Final[Mapping[int, Callable[[object], bool]]] = MappingProxyType(
    {
        _NULL: lambda v: v is None,
        _BOOLEAN: lambda v: isinstance(v, bool),
        _INT: lambda v: isinstance(v, int) and not isinstance(v, bool),
        _LONG: lambda v: isinstance(v, int) and not isinstance(v, bool),
        _STRING: lambda v: isinstance(v, str),
        _BYTES: lambda v: isinstance(v, bytes | bytearray),
    }
)


def _writer(declared: _FieldType) -> _Writer:
    if isinstance(declared, int):
        return _WRITERS[declared]
    if len(declared) == 2 and declared[0] == _NULL:
        # ["null", T], the usual optional field: index 0 for None, else 1.
        write_some = _WRITERS[declared[1]]

        def write_optional(value: Any, out: list[bytes]) -> None:
            if value is None:
                out.append(b"\x00")
            else:
                out.append(b"\x02")
                write_some(value, out)

        return write_optional
    branches = [(_ONE_BYTE[i << 1], _ACCEPTS[k], _WRITERS[k]) for i, k in enumerate(declared)]

    def write_union(value: Any, out: list[bytes]) -> None:
        for index, accepts, write in branches:
            if accepts(value):
                out.append(index)
                write(value, out)
                return
        raise TypeError("no union branch matches")

    return write_union


# Statements writing the value ``x`` of one primitive type (the generated encoders' body).
_STATEMENTS: Final[Mapping[int, tuple[str, ...]]] = MappingProxyType(
    {
        _NULL: ("if x is not None: raise TypeError('null expected')",),
        _BOOLEAN: (
            "if not isinstance(x, bool): raise TypeError('boolean expected')",
            "a(b'\\x01' if x else b'\\x00')",
        ),
        _INT: (
            "if not INT_MIN <= x <= INT_MAX: raise ValueError('int out of range')",
            "a(L(x))",
        ),
        _LONG: ("a(L(x))",),
        _STRING: ("e = x.encode()", "n = len(e)", "a(ONE[n << 1] if n < 64 else L(n))", "a(e)"),
        _BYTES: (
            "if not isinstance(x, (bytes, bytearray)): raise TypeError('bytes expected')",
            "n = len(x)",
            "a(ONE[n << 1] if n < 64 else L(n))",
            "a(bytes(x))",
        ),
    }
)


def _compile_flat(types: tuple[_FieldType, ...]) -> _FlatEncoder:
    """A function writing a flat record from its values, generated once per record type.

    Straight-line code, one block per field: about twice as fast as a loop over per-field
    writers. The source is made of the fixed statements above and field indexes only.
    """
    lines = [
        "def encode(v):",
        f"    if len(v) != {len(types)}: raise ValueError('wrong number of values')",
        "    out = []",
        "    a = out.append",
    ]
    namespace: dict[str, Any] = {
        "L": _long,
        "ONE": _ONE_BYTE,
        "INT_MIN": _INT_MIN,
        "INT_MAX": _INT_MAX,
    }
    for index, declared in enumerate(types):
        lines.append(f"    x = v[{index}]")
        if isinstance(declared, int):
            lines += [f"    {statement}" for statement in _STATEMENTS[declared]]
        elif len(declared) == 2 and declared[0] == _NULL:
            # ["null", T], the usual optional field: index 0 for None, else 1.
            lines += [
                "    if x is None:",
                "        a(b'\\x00')",
                "    else:",
                "        a(b'\\x02')",
            ]
            lines += [f"        {statement}" for statement in _STATEMENTS[declared[1]]]
        else:
            namespace[f"w{index}"] = _writer(declared)
            lines.append(f"    w{index}(x, out)")
    lines.append("    return b''.join(out)")
    exec("\n".join(lines), namespace)  # noqa: S102 - generated from the fixed statements above
    encode: _FlatEncoder = namespace["encode"]
    return encode


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
        schema=parse_schema(raw),
        attr_to_field=tuple(zip(attr_names, field_names, strict=True)),
        field_names=field_names,
        get_values=attrgetter(*attr_names),
        int_fields=tuple(f["name"] for f in avro_fields if f["type"] == "int"),
        decode=compile_decoder(record_type, attr_names, avro_fields),
        correlation_index=field_names.index("correlationId"),
        flat=_flat_encoder(avro_fields),
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
    """Encodes records to, and tolerantly decodes them from, Avro binary (schemaless)."""

    __slots__ = ("_max_payload_bytes", "_trailing_ignored")

    def __init__(self, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        if max_payload_bytes <= 0:
            raise ValueError("max_payload_bytes must be positive")
        self._max_payload_bytes = max_payload_bytes
        self._trailing_ignored = 0

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
            if binding.flat is not None:
                return binding.flat(binding.get_values(record))
            datum = dict(zip(binding.field_names, binding.get_values(record), strict=True))
            if binding.int_fields and not _ints_in_range(binding, datum):
                raise ValueError("int out of range")
            return _write(binding.schema, datum)
        except Exception as exc:
            raise ValueError(f"{type(record).__name__} does not fit its Avro schema") from exc

    @property
    def trailing_ignored(self) -> int:
        """How many decoded payloads had bytes after the last known field (newer writers)."""
        return self._trailing_ignored

    def decode(self, record_type: type[R], data: bytes) -> R:
        """The ``record_type`` record encoded at the start of ``data``.

        Raises ``MalformedPayload`` (an ``InvalidArgument``) for any payload that is not a
        valid encoding, and ``TypeError`` if ``record_type`` is not a wire record class.
        """
        binding = _binding(record_type)
        if len(data) > self._max_payload_bytes:
            raise MalformedPayload(_TOO_LARGE)
        read: list[Any] = []
        try:
            record, end = binding.decode(data, read)
        except Exception as exc:
            # Deliberately broad: corrupted input makes the reader raise IndexError (truncated),
            # UnicodeDecodeError, ValueError, MemoryError...
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
