"""The tolerant reader against fastavro: on whatever an RFC schema (or an older or newer form of
it) writes, otao's reader and fastavro never disagree."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otao.messaging.avro import FULL_NAMES, AvroCodec, MalformedPayload, load_schema
from otao.messaging.records import EndpointFiltersResponse, Record

RECORD_TYPES = sorted(FULL_NAMES, key=lambda t: FULL_NAMES[t])

_PRIMITIVE: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "string": st.text(max_size=30),
    "bytes": st.binary(max_size=30),
}


def values_of(declared: Any) -> st.SearchStrategy[Any]:
    if isinstance(declared, str):
        return _PRIMITIVE[declared]
    if isinstance(declared, list):
        return st.one_of(*(values_of(branch) for branch in declared))
    assert declared["type"] == "array"
    return st.lists(values_of(declared["items"]), max_size=5)


def datum_of(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({f["name"]: values_of(f["type"]) for f in schema["fields"]})


def fastavro_write(schema: dict[str, Any], datum: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), datum)
    return buffer.getvalue()


def fastavro_read(schema: dict[str, Any], payload: bytes) -> dict[str, Any]:
    datum = fastavro.schemaless_reader(io.BytesIO(payload), fastavro.parse_schema(schema), None)
    assert isinstance(datum, dict)
    return datum


def as_datum(record: Record, schema: dict[str, Any]) -> dict[str, Any]:
    """The record's values by Avro field name (arrays as lists, as fastavro reads them)."""
    values = [getattr(record, f.name) for f in dataclasses.fields(record)]
    return {
        field["name"]: list(value) if isinstance(value, tuple) else value
        for field, value in zip(schema["fields"], values, strict=True)
    }


def without_trailing_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as an older Kaa writer had it: its trailing defaulted fields removed."""
    fields = list(schema["fields"])
    while fields and "default" in fields[-1]:
        fields.pop()
    return {**schema, "fields": fields}


def with_appended_fields(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as a newer Kaa writer may have it: optional fields appended."""
    extra = [
        {"name": "futureNote", "type": ["null", "string"], "default": None},
        {"name": "futureCount", "type": "long", "default": 0},
        {"name": "futureTags", "type": {"type": "array", "items": "string"}, "default": []},
    ]
    return {**schema, "fields": [*schema["fields"], *extra]}


PropertyTest = Callable[..., None]


def each_record_type(max_examples: int) -> Callable[[PropertyTest], PropertyTest]:
    """The property test runs for each record type with its RFC schema (ids: the schema's full
    name), on ``max_examples`` draws of ``data`` each."""
    per_type = pytest.mark.parametrize(
        ("record_type", "schema"),
        [(record_type, load_schema(FULL_NAMES[record_type])) for record_type in RECORD_TYPES],
        ids=[FULL_NAMES[record_type] for record_type in RECORD_TYPES],
    )

    def decorate(test: PropertyTest) -> PropertyTest:
        drawn: PropertyTest = per_type(given(data=st.data())(test))
        return settings(max_examples=max_examples, deadline=None)(drawn)

    return decorate


@each_record_type(max_examples=40)
def test_reader_agrees_with_fastavro_on_what_the_rfc_schema_writes(
    record_type: type[Record], schema: dict[str, Any], data: st.DataObject
) -> None:
    datum = data.draw(datum_of(schema))
    payload = fastavro_write(schema, datum)
    record = AvroCodec().decode(record_type, payload)
    assert as_datum(record, schema) == fastavro_read(schema, payload)
    # And what otao writes is what fastavro writes, byte for byte.
    assert AvroCodec().encode(record) == payload


@each_record_type(max_examples=30)
def test_an_older_writer_without_the_trailing_defaulted_fields_reads_as_the_defaults(
    record_type: type[Record], schema: dict[str, Any], data: st.DataObject
) -> None:
    older = without_trailing_defaults(schema)
    payload = fastavro_write(older, data.draw(datum_of(older)))
    record = AvroCodec().decode(record_type, payload)
    # fastavro's own schema resolution (writer schema -> reader schema) is the reference.
    expected = fastavro.schemaless_reader(
        io.BytesIO(payload), fastavro.parse_schema(older), fastavro.parse_schema(schema)
    )
    assert as_datum(record, schema) == expected


@each_record_type(max_examples=30)
def test_a_newer_writer_with_appended_fields_reads_as_the_known_fields(
    record_type: type[Record], schema: dict[str, Any], data: st.DataObject
) -> None:
    newer = with_appended_fields(schema)
    datum = data.draw(datum_of(newer))
    payload = fastavro_write(newer, datum)
    codec = AvroCodec()
    record = codec.decode(record_type, payload)
    expected = fastavro.schemaless_reader(
        io.BytesIO(payload), fastavro.parse_schema(newer), fastavro.parse_schema(schema)
    )
    assert as_datum(record, schema) == expected
    assert codec.trailing_ignored == 1


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(RECORD_TYPES), st.binary(max_size=200))
def test_whatever_the_reader_accepts_fastavro_reads_the_same(
    record_type: type[Record], payload: bytes
) -> None:
    """On arbitrary bytes the reader may refuse what fastavro would take (it is stricter about
    varints and union indexes), but a record it returns is the one fastavro reads."""
    schema = load_schema(FULL_NAMES[record_type])
    codec = AvroCodec()
    try:
        record = codec.decode(record_type, payload)
    except MalformedPayload:
        return
    if codec.trailing_ignored or len(payload) < len(codec.encode(record)):
        return  # older/newer forms: covered above with fastavro's schema resolution
    assert as_datum(record, schema) == fastavro_read(schema, payload)


def test_an_array_written_in_several_blocks_reads_as_one() -> None:
    head = b"\x02c\x02\x00\x02e"  # correlationId "c", timestamp 1, timeout 0, endpointId "e"
    # Two blocks, the second with a negative count and its size in bytes, then the end.
    blocks = b"\x02\x04f1" + b"\x01\x06\x04f2" + b"\x00"
    record = AvroCodec().decode(EndpointFiltersResponse, head + blocks + b"\x90\x03\x00")
    assert record.filter_ids == ("f1", "f2")
    assert record.status_code == 200
