"""The Avro writer (and the reader beside it) know exactly the shapes the Kaa schemas use.

Byte-exactness against fastavro is checked on every shipped schema in test_avro.py and
test_avro_read.py; here: a schema outside those shapes is refused when the codec is built,
never written or read wrongly at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from otao.messaging.avro_read import compile_decoder
from otao.messaging.avro_write import compile_encoder


@dataclass(frozen=True, slots=True)
class OneField:
    x: Any


UNSUPPORTED: list[Any] = [
    ["null", "string", "long"],  # a union of more than two branches
    ["string", "null"],  # an optional written the other way round
    {"type": "map", "values": "string"},
    {"type": "array", "items": ["null", "string"]},
    {"type": "record", "name": "Nested", "fields": []},
    "float",
]


@pytest.mark.parametrize("declared", UNSUPPORTED, ids=repr)
def test_a_type_outside_the_kaa_shapes_is_refused_when_the_codec_is_built(declared: Any) -> None:
    fields = [{"name": "x", "type": declared}]
    with pytest.raises(TypeError, match="unsupported Avro type"):
        compile_encoder(fields)
    with pytest.raises(TypeError, match="unsupported Avro type"):
        compile_decoder(OneField, ("x",), fields)


def test_primitives_optionals_and_arrays_are_written_as_avro_specifies() -> None:
    encode = compile_encoder(
        [
            {"name": "s", "type": "string"},
            {"name": "o", "type": ["null", "long"]},
            {"name": "a", "type": {"type": "array", "items": "string"}},
            {"name": "e", "type": {"type": "array", "items": "long"}},
        ]
    )
    # "hi"; branch 1 then 3; one block of two strings then the end block; an empty array.
    assert (
        encode(("hi", 3, ("a", "b"), ()))
        == b"\x04hi" + b"\x02\x06" + b"\x04\x02a\x02b\x00" + b"\x00"
    )
    assert encode(("", None, (), ()))[:2] == b"\x00\x00"


def test_a_value_that_does_not_fit_its_field_is_refused() -> None:
    encode = compile_encoder(
        [{"name": "n", "type": "int"}, {"name": "a", "type": {"type": "array", "items": "long"}}]
    )
    with pytest.raises(ValueError, match="int out of range"):
        encode((2**31, ()))
    with pytest.raises(TypeError, match="sequence expected"):
        encode((1, "12"))
    with pytest.raises(ValueError, match="wrong number of values"):
        encode((1,))
