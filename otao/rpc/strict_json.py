"""REST request bodies, parsed strictly (unknown fields are refused, not dropped).

Envoy's gRPC-JSON transcoder parses JSON bodies with unknown fields ignored (hard-coded in
grpc-httpjson-transcoding; Envoy has no option against it), so a misspelt key silently became
a default value. REST routes therefore bind their body to a ``google.api.HttpBody`` field named
``<target>_json``, which Envoy passes unparsed; ``fill_from_json_body`` parses it here into the
typed ``<target>`` field. gRPC clients set ``<target>`` directly (docs/gateway.md).

Every problem is a field violation with the JSON path (lowerCamelCase) of the field; messages
name no proto types and carry no parser text.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, TypeVar, cast

from google.protobuf import json_format, unknown_fields
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from otao.domain.errors import FieldViolation, InvalidArgument

JSON_BODY_SUFFIX = "_json"
_HTTP_BODY = "google.api.HttpBody"
M = TypeVar("M", bound=Message)
# Messages whose JSON form is not an object of their fields: json_format checks their values.
_OPAQUE = frozenset(
    {
        "google.protobuf.Value",
        "google.protobuf.Struct",
        "google.protobuf.ListValue",
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
    }
)
_NUMERIC = frozenset(
    {
        FieldDescriptor.TYPE_DOUBLE,
        FieldDescriptor.TYPE_FLOAT,
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


def fill_from_json_body(request: Message) -> None:
    """Parse every set ``<target>_json`` HttpBody of ``request`` into its ``<target>`` field.

    An empty body leaves the target unset (otao's validation decides what is missing).
    """
    for field in request.DESCRIPTOR.fields:
        if field.message_type is None or field.message_type.full_name != _HTTP_BODY:
            continue
        if not field.name.endswith(JSON_BODY_SUFFIX) or not request.HasField(field.name):
            continue
        target = field.name.removesuffix(JSON_BODY_SUFFIX)
        if request.HasField(target):
            raise InvalidArgument(f"set {target} or {field.name}, not both")
        data = getattr(request, field.name).data
        if data.strip():
            getattr(request, target).CopyFrom(parse(data, type(getattr(request, target))))
        request.ClearField(field.name)


def parse(data: bytes, message_class: type[M]) -> M:
    """``data`` (a JSON object) as a ``message_class``, refusing unknown fields and values
    of the wrong JSON type, each as a field violation."""
    try:
        document = json.loads(data, object_pairs_hook=_no_duplicate_keys, parse_constant=_not_json)
    except _DuplicateKey as duplicate:
        raise InvalidArgument.of(duplicate.key, "appears more than once") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("the request body is not valid JSON") from None
    violations = _check_message(document, cast(Descriptor, message_class.DESCRIPTOR), "")
    if violations:
        unknown = any(v.description.startswith("unknown field") for v in violations)
        raise InvalidArgument(
            "the request body has unknown fields" if unknown else "the request body is invalid",
            violations,
        )
    message = message_class()
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=False)
    except (json_format.ParseError, ValueError, TypeError):
        # A value the checks above let through but the JSON mapping refuses (an integer out
        # of range, a malformed timestamp): the parser's text names proto types, so not it.
        raise InvalidArgument(
            "the request body is invalid",
            [FieldViolation("", "a value is out of range or malformed")],
        ) from None
    return message


def refuse_unknown_fields(request: Message) -> None:
    """gRPC's side of strictness: a field this server does not know (a client built from a
    newer proto) would be dropped silently by the protobuf runtime; refuse it instead."""
    violations = [
        FieldViolation(path, f"unknown field number {number}")
        for path, number in _unknown_numbers(request, "")
    ]
    if violations:
        raise InvalidArgument("the request has fields this server does not know", violations)


def _unknown_numbers(message: Message, path: str) -> list[tuple[str, int]]:
    unknown = unknown_fields.UnknownFieldSet(message)
    found = [(path, unknown[i].field_number) for i in range(len(unknown))]
    for field, value in message.ListFields():
        if field.message_type is None or field.message_type.GetOptions().map_entry:
            continue
        where = f"{path}.{field.name}" if path else field.name
        if field.is_repeated:
            for i, item in enumerate(value):
                found.extend(_unknown_numbers(item, f"{where}[{i}]"))
        else:
            found.extend(_unknown_numbers(value, where))
    return found


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _not_json(constant: str) -> Any:
    """Python's json reads NaN and Infinity, which JSON (RFC 8259) does not have."""
    raise ValueError(constant)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _DuplicateKey(key)
        document[key] = value
    return document


def _check_message(value: Any, descriptor: Descriptor, path: str) -> list[FieldViolation]:
    if not isinstance(value, dict):
        return [FieldViolation(path, "must be a JSON object")]
    by_name: dict[str, FieldDescriptor] = {}
    for field in descriptor.fields:
        by_name[field.json_name] = field
        by_name[field.name] = field
    violations: list[FieldViolation] = []
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        known = by_name.get(key)
        if known is None:
            violations.append(FieldViolation(where, _unknown(key, descriptor)))
        elif item is not None:  # proto3 JSON: null is the default value
            violations.extend(_check_field(item, known, where))
    return violations


def _check_field(value: Any, field: FieldDescriptor, path: str) -> list[FieldViolation]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return []  # a JSON object of entries, checked by json_format
    if field.is_repeated:
        if not isinstance(value, list):
            return [FieldViolation(path, "must be a JSON array")]
        return [
            v for i, item in enumerate(value) for v in _check_single(item, field, f"{path}[{i}]")
        ]
    return _check_single(value, field, path)


def _check_single(value: Any, field: FieldDescriptor, path: str) -> list[FieldViolation]:
    if field.message_type is not None:
        if field.message_type.full_name in _OPAQUE:
            return []
        return _check_message(value, field.message_type, path)
    if field.type == FieldDescriptor.TYPE_STRING and not isinstance(value, str):
        return [FieldViolation(path, "must be a JSON string")]
    if field.type == FieldDescriptor.TYPE_BOOL and not isinstance(value, bool):
        return [FieldViolation(path, "must be true or false")]
    if field.type in _NUMERIC and (
        isinstance(value, bool) or not isinstance(value, int | float | str)
    ):
        return [FieldViolation(path, "must be a number")]
    return []


def _unknown(key: str, descriptor: Descriptor) -> str:
    """``unknown field``, with the closest known name when one is close."""
    names = [field.json_name for field in descriptor.fields]
    close = hint(key, names)
    if close is None:
        return f"unknown field (known: {', '.join(names)})"
    return f"unknown field; did you mean {close}?"


def hint(name: str, known: list[str]) -> str | None:
    """The known name ``name`` most likely meant: the same but for case and underscores,
    else a close spelling; None when nothing is close."""
    folded = {k.lower().replace("_", ""): k for k in known}
    same = folded.get(name.lower().replace("_", ""))
    if same is not None:
        return same
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
    return close[0] if close else None
