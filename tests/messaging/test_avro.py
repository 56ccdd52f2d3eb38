from __future__ import annotations

import dataclasses
import io
from importlib.resources import files
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otao.domain.errors import InvalidArgument
from otao.messaging import avro
from otao.messaging.avro import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    FULL_NAMES,
    AvroCodec,
    MalformedPayload,
    load_schema,
)
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

CODEC = AvroCodec()
CORRELATION = "07d78e95-2c4d-4899-957c-b9e5a3701fbb"
ENDPOINT = "b197e391-1d13-403b-83f5-87bdd44888cf"
TS = 1490303342158
# What the records of one family share, spread into each sample below.
ENDPOINT_HEADER: dict[str, Any] = {
    "correlation_id": CORRELATION,
    "timestamp": TS,
    "app_version_name": "kettle-v1",
    "endpoint_id": ENDPOINT,
}
EPR_HEADER: dict[str, Any] = {
    "timestamp": TS,
    "correlation_id": CORRELATION,
    "originator_replica_id": "epr-1",
}

SAMPLES: list[Record] = [
    ConfigRequest(
        **ENDPOINT_HEADER,
        timeout=3000,
        config_id="1.0.0",
        config_name="firmware",
    ),
    ConfigResponse(
        **ENDPOINT_HEADER,
        config_id="1.1.0",
        content=b'{"url": "https://example.com/fw.bin"}',
        status_code=200,
        reason_phrase="OK",
    ),
    ConfigUpdated(
        **ENDPOINT_HEADER,
        config_id="1.1.0",
        content=b"{}",
        originator_replica_id="otao-1",
    ),
    ConfigApplied(
        **ENDPOINT_HEADER,
        config_id="1.1.0",
        status_code=500,
        reason_phrase="flash failed: é",
    ),
    EndpointUnregisteredEvent(
        **ENDPOINT_HEADER,
        originator_replica_id="epr-1",
    ),
    EndpointMatchedFilterEvent(
        **EPR_HEADER,
        filter_id="f1",
        application_name="kettle",
        app_version_name="kettle-v1",
        filter_name="beta",
        endpoint_id=ENDPOINT,
    ),
    EndpointUnmatchedFilterEvent(
        timestamp=TS,
        timeout=10,
        correlation_id=CORRELATION,
        originator_replica_id="epr-1",
        filter_id="f1",
        application_name="kettle",
        app_version_name="kettle-v1",
        filter_name=None,
        endpoint_id=ENDPOINT,
    ),
    EndpointFilterDeletedEvent(
        **EPR_HEADER,
        filter_id="f1",
        application_name="kettle",
        filter_name="beta",
    ),
    EndpointFilterActivatedEvent(
        **EPR_HEADER,
        filter_id="f2",
        application_name="kettle",
        filter_name=None,
    ),
    EndpointFilterPendingEvent(
        **EPR_HEADER,
        filter_id="f3",
        application_name="kettle",
        filter_name="gamma",
    ),
    EndpointFiltersRequest(correlation_id=CORRELATION, timestamp=TS, endpoint_id=ENDPOINT),
    EndpointFiltersResponse(
        correlation_id=CORRELATION,
        timestamp=TS,
        endpoint_id=ENDPOINT,
        filter_ids=("f1", "f2"),
        status_code=200,
    ),
    BroadcastConfigurationUpdateEvent(
        correlation_id=CORRELATION, timestamp=TS, originator_replica_id="tekton-1", tenant_id="t1"
    ),
    ServiceSpecificConfigurationUpdateEvent(
        correlation_id=CORRELATION,
        timestamp=TS,
        tenant_id="t1",
        app_name="kettle",
        app_ver_name="kettle-v1",
    ),
    TenantUpdatedEvent(
        correlation_id=CORRELATION, timestamp=TS, tenant_id="t1", originator_replica_id="tm-1"
    ),
    TenantUnregisteredEvent(
        correlation_id=CORRELATION, timestamp=TS, tenant_id="t1", originator_replica_id="tm-1"
    ),
]


def sample_id(record: Record) -> str:
    return type(record).__name__


def zigzag_varint(n: int) -> bytes:
    """Avro's long encoding, written out here so tests can build payloads fastavro never would."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def avro_string(text: str) -> bytes:
    raw = text.encode()
    return zigzag_varint(len(raw)) + raw


def config_request_head() -> bytes:
    """correlationId, timestamp, timeout, appVersionName, endpointId of a ConfigRequest."""
    return avro_string("c") + zigzag_varint(TS) + zigzag_varint(0) + avro_string("a")


def test_there_is_a_sample_of_every_record_type() -> None:
    assert {type(s) for s in SAMPLES} == set(FULL_NAMES)


@pytest.mark.parametrize("record", SAMPLES, ids=sample_id)
def test_every_record_type_round_trips_through_binary_avro(record: Record) -> None:
    assert CODEC.decode(type(record), CODEC.encode(record)) == record


def test_every_schema_file_belongs_to_exactly_one_record_type() -> None:
    shipped = {
        entry.name.removesuffix(".avsc")
        for entry in (files("otao.messaging") / "schemas").iterdir()
        if entry.name.endswith(".avsc")
    }
    assert shipped == set(FULL_NAMES.values())
    assert len(set(FULL_NAMES.values())) == len(FULL_NAMES)


@pytest.mark.parametrize("full_name", sorted(FULL_NAMES.values()))
def test_each_schema_file_declares_the_record_it_is_named_after(full_name: str) -> None:
    schema = load_schema(full_name)
    assert schema["type"] == "record"
    assert f"{schema['namespace']}.{schema['name']}" == full_name


def test_documented_defaults_are_in_the_schemas() -> None:
    def fields(record_type: type[Record]) -> dict[str, dict[str, Any]]:
        return {f["name"]: f for f in load_schema(FULL_NAMES[record_type])["fields"]}

    assert fields(ConfigRequest)["timeout"]["default"] == 0
    assert fields(ConfigRequest)["configId"]["type"] == ["null", "string"]
    assert fields(ConfigRequest)["configId"]["default"] is None
    assert fields(ConfigResponse)["contentType"]["default"] == "application/json"
    assert "default" not in fields(ConfigResponse)["statusCode"]
    assert fields(ConfigApplied)["statusCode"]["default"] == 200
    assert fields(BroadcastConfigurationUpdateEvent)["tenantID"]["default"] is None
    for efe in (EndpointMatchedFilterEvent, EndpointFilterDeletedEvent):
        assert fields(efe)["filterName"]["type"] == ["null", "string"]
        assert "default" not in fields(efe)["filterName"]


HAND_WRITTEN_CONFIG_REQUEST: dict[str, Any] = {
    "type": "record",
    "name": "ConfigRequest",
    "namespace": "org.kaaproject.ipc.cdtp.gen.v1",
    "fields": [
        {"name": "correlationId", "type": "string"},
        {"name": "timestamp", "type": "long"},
        {"name": "timeout", "type": "long", "default": 0},
        {"name": "appVersionName", "type": "string"},
        {"name": "endpointId", "type": "string"},
        {"name": "configId", "type": ["null", "string"], "default": None},
        {"name": "configName", "type": ["null", "string"], "default": None},
    ],
}


def test_config_request_encoding_equals_fastavro_with_the_hand_written_kaa_schema() -> None:
    record = SAMPLES[0]
    assert isinstance(record, ConfigRequest)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(
        buffer,
        fastavro.parse_schema(HAND_WRITTEN_CONFIG_REQUEST),
        {
            "correlationId": record.correlation_id,
            "timestamp": record.timestamp,
            "timeout": record.timeout,
            "appVersionName": record.app_version_name,
            "endpointId": record.endpoint_id,
            "configId": record.config_id,
            "configName": record.config_name,
        },
    )
    assert CODEC.encode(record) == buffer.getvalue()
    assert CODEC.decode(ConfigRequest, buffer.getvalue()) == record


def test_absent_optional_fields_decode_to_the_schema_defaults() -> None:
    payload = config_request_head() + avro_string("e") + b"\x00\x00"
    assert CODEC.decode(ConfigRequest, payload) == ConfigRequest(
        correlation_id="c", timestamp=TS, app_version_name="a", endpoint_id="e"
    )


texts = st.text(max_size=40)
longs = st.integers(min_value=-(2**63), max_value=2**63 - 1)
ints = st.integers(min_value=-(2**31), max_value=2**31 - 1)
common = {
    "correlation_id": texts,
    "timestamp": longs,
    "timeout": longs,
    "app_version_name": texts,
    "endpoint_id": texts,
}
config_requests = st.builds(
    ConfigRequest, **common, config_id=st.none() | texts, config_name=st.none() | texts
)
config_responses = st.builds(
    ConfigResponse,
    **common,
    config_id=st.none() | texts,
    content_type=texts,
    content=st.none() | st.binary(max_size=200),
    status_code=ints,
    reason_phrase=st.none() | texts,
)
config_applied = st.builds(
    ConfigApplied,
    **common,
    config_id=texts,
    originator_replica_id=st.none() | texts,
    status_code=ints,
    reason_phrase=st.none() | texts,
)


@given(st.one_of(config_requests, config_responses, config_applied))
def test_any_cdtp_record_round_trips_through_binary_avro(record: Record) -> None:
    assert CODEC.decode(type(record), CODEC.encode(record)) == record


def schema_defaults(record_type: type[Record]) -> dict[str, Any]:
    """Python attribute -> schema default, for the fields that have one."""
    return {
        field.name: field.default
        for field in dataclasses.fields(record_type)
        if field.default is not dataclasses.MISSING
    }


@pytest.mark.parametrize("record", SAMPLES, ids=sample_id)
def test_a_truncated_payload_is_refused_unless_only_defaulted_fields_are_missing(
    record: Record,
) -> None:
    payload = CODEC.encode(record)
    defaults = schema_defaults(type(record))
    for end in range(len(payload)):
        try:
            older = CODEC.decode(type(record), payload[:end])
        except MalformedPayload:
            continue
        # Accepted: an older writer's record; what it lacks takes the schema defaults.
        assert CODEC.encode(older)[:end] == payload[:end]
        for field in dataclasses.fields(record):
            ours, theirs = getattr(older, field.name), getattr(record, field.name)
            assert ours == theirs or ours == defaults[field.name], field.name


@pytest.mark.parametrize("record", SAMPLES, ids=sample_id)
def test_bytes_after_the_last_known_field_are_ignored_and_counted(record: Record) -> None:
    codec = AvroCodec()
    payload = CODEC.encode(record)
    for count, garbage in enumerate((b"\x00", b"\x02x", b"trailing garbage"), start=1):
        assert codec.decode(type(record), payload + garbage) == record
        assert codec.trailing_ignored == count
    codec.decode(type(record), payload)
    assert codec.trailing_ignored == 3


def test_decode_error_carries_the_correlation_id_when_it_was_read() -> None:
    truncated = config_request_head() + zigzag_varint(40) + b"short"
    with pytest.raises(MalformedPayload) as caught:
        CODEC.decode(ConfigRequest, truncated)
    assert caught.value.correlation_id == "c"
    with pytest.raises(MalformedPayload) as nothing:
        CODEC.decode(ConfigRequest, zigzag_varint(10) + b"abc")
    assert nothing.value.correlation_id is None


@settings(max_examples=300)
@given(st.sampled_from(list(FULL_NAMES)), st.binary(max_size=300))
def test_decode_of_random_bytes_returns_a_record_or_raises_invalid_argument(
    record_type: type[Record], data: bytes
) -> None:
    outcome: Record | InvalidArgument
    try:
        outcome = CODEC.decode(record_type, data)
    except InvalidArgument as exc:
        outcome = exc
    if isinstance(outcome, InvalidArgument):
        assert outcome.message in ("malformed Avro payload", "Avro payload too large")
    else:
        assert type(outcome) is record_type


@settings(max_examples=300)
@given(st.sampled_from(SAMPLES), st.data())
def test_decode_of_a_corrupted_payload_returns_a_record_or_raises_invalid_argument(
    record: Record, data: st.DataObject
) -> None:
    payload = bytearray(CODEC.encode(record))
    index = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
    payload[index] = data.draw(st.integers(min_value=0, max_value=255))
    try:
        decoded = CODEC.decode(type(record), bytes(payload))
    except InvalidArgument:
        return
    assert type(decoded) is type(record)


def test_decode_rejects_a_payload_of_another_record_type() -> None:
    with pytest.raises(InvalidArgument):
        CODEC.decode(ConfigRequest, CODEC.encode(SAMPLES[1]))
    with pytest.raises(InvalidArgument):
        CODEC.decode(ConfigResponse, CODEC.encode(SAMPLES[0]))


def test_decode_rejects_invalid_utf8_in_a_string() -> None:
    payload = config_request_head() + zigzag_varint(2) + b"\xff\xfe" + b"\x00\x00"
    with pytest.raises(InvalidArgument):
        CODEC.decode(ConfigRequest, payload)


@pytest.mark.parametrize("length", [2**62, 2**63 - 1, -(2**62), -1])
def test_decode_rejects_absurd_string_lengths(length: int) -> None:
    payload = config_request_head() + zigzag_varint(length) + b"endpoint\x00\x00"
    with pytest.raises(InvalidArgument):
        CODEC.decode(ConfigRequest, payload)


@pytest.mark.parametrize("count", [2**62, 2**63 - 1, -(2**62)])
def test_decode_rejects_absurd_array_lengths(count: int) -> None:
    head = avro_string("c") + zigzag_varint(TS) + zigzag_varint(0) + avro_string("e")
    payload = head + zigzag_varint(count) + avro_string("f1") + b"\x00" + zigzag_varint(200)
    with pytest.raises(InvalidArgument):
        CODEC.decode(EndpointFiltersResponse, payload)


def test_decode_rejects_a_negative_union_branch_index() -> None:
    # fastavro alone would read index -1 as the last branch ("string").
    payload = config_request_head() + avro_string("e") + zigzag_varint(-1) + avro_string("x")
    with pytest.raises(InvalidArgument):
        CODEC.decode(ConfigRequest, payload + b"\x00")


def test_decode_rejects_a_non_minimal_union_index() -> None:
    canonical = config_request_head() + avro_string("e") + b"\x00\x00"
    padded = canonical[:-1] + b"\x80\x00"
    with pytest.raises(InvalidArgument):
        CODEC.decode(ConfigRequest, padded)


def test_decode_rejects_an_int_field_beyond_32_bits() -> None:
    record = SAMPLES[3]
    assert isinstance(record, ConfigApplied)
    payload = CODEC.encode(record)
    status = zigzag_varint(record.status_code)
    bigger = payload.replace(status + b"\x02", zigzag_varint(2**40) + b"\x02")
    assert bigger != payload
    with pytest.raises(InvalidArgument):
        CODEC.decode(ConfigApplied, bigger)


def test_decode_refuses_payloads_over_the_size_limit_before_parsing() -> None:
    assert DEFAULT_MAX_PAYLOAD_BYTES == 1 << 20
    payload = CODEC.encode(SAMPLES[0])
    small = AvroCodec(max_payload_bytes=len(payload))
    assert small.decode(ConfigRequest, payload) == SAMPLES[0]
    with pytest.raises(InvalidArgument, match=r"^Avro payload too large$"):
        small.decode(ConfigRequest, payload + b"\x00")
    with pytest.raises(InvalidArgument, match="too large"):
        CODEC.decode(ConfigRequest, bytes(DEFAULT_MAX_PAYLOAD_BYTES + 1))


def test_codec_refuses_a_non_positive_size_limit() -> None:
    with pytest.raises(ValueError, match="positive"):
        AvroCodec(max_payload_bytes=0)


@pytest.mark.parametrize("error", [MemoryError, OverflowError, RecursionError, KeyError("x")])
def test_decode_turns_any_decoder_failure_into_a_generic_invalid_argument(
    monkeypatch: pytest.MonkeyPatch, error: BaseException | type[BaseException]
) -> None:
    def explode(payload: bytes, names: list[Any]) -> tuple[Any, int]:
        raise error

    binding = dataclasses.replace(avro._binding(ConfigRequest), decode=explode)
    monkeypatch.setattr(avro, "_binding", lambda record_type: binding)
    with pytest.raises(InvalidArgument) as caught:
        CODEC.decode(ConfigRequest, CODEC.encode(SAMPLES[0]))
    assert caught.value.message == "malformed Avro payload"
    assert caught.value.violations == []
    assert caught.value.__cause__ is not None


def test_error_messages_never_carry_decoder_text() -> None:
    bad_utf8 = config_request_head() + zigzag_varint(2) + b"\xff\xfe" + b"\x00\x00"
    with pytest.raises(InvalidArgument) as caught:
        CODEC.decode(ConfigRequest, bad_utf8)
    assert str(caught.value) == "malformed Avro payload"


def test_decode_and_encode_refuse_classes_that_are_not_wire_records() -> None:
    with pytest.raises(TypeError):
        CODEC.decode(dict, b"")  # type: ignore[type-var]
    with pytest.raises(TypeError):
        CODEC.encode(object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(
            ConfigApplied(**ENDPOINT_HEADER, config_id="1.0.0", status_code=2**31),
            id="a status code that does not fit an Avro int",
        ),
        pytest.param(
            ConfigUpdated(**ENDPOINT_HEADER, config_id="1.0.0", content=None),  # type: ignore[arg-type]
            id="a missing required value",
        ),
    ],
)
def test_encode_refuses_a_value_that_does_not_fit_the_schema(record: Record) -> None:
    with pytest.raises(ValueError, match="does not fit its Avro schema"):
        CODEC.encode(record)
