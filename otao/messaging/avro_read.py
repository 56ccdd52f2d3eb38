"""The tolerant Avro reader: decodes what any released Kaa writer sends (docs/kaa-protocols.md).

Kaa evolves its schemas by appending optional fields, and its Java services read the fields
they know and ignore the rest of the buffer. So, reading in schema order:

- a payload that ends exactly at a field boundary after which every field has a default is a
  record written by an older schema: the defaults apply;
- bytes after the last known field come from a newer writer: ignored (counted by the caller).

Everything else stays an error: truncation inside a field, a varint longer than 10 bytes or
beyond 64 bits, an ``int`` beyond 32 bits, a union index out of range, a boolean other than
0/1, a negative length, invalid UTF-8. The values read before the error are kept, so a reply
can echo the request's ``correlationId``.

One decoding function per record type is generated at import from its schema (straight-line
code, no per-message schema walk): several times faster than fastavro plus the re-encode check
it replaces. ``tests/messaging/test_avro_read.py`` checks it against fastavro. Like the writer
(``avro_write``) it knows the shapes the Kaa schemas use: primitives, ``["null", T]`` and arrays
of primitives; any other type fails at import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

__all__ = ["Decoder", "compile_decoder"]

_INT_MIN: Final = -(1 << 31)
_INT_MAX: Final = (1 << 31) - 1
_U64: Final = 1 << 64
_NO_DEFAULT: Final = object()

# decode(data, read) -> (record, end): ``read`` collects each field's value as it is read (what
# an error leaves there is the prefix that was valid); ``end`` is where the record ended.
Decoder = Callable[[bytes, list[Any]], tuple[Any, int]]


class _Bad(ValueError):
    """An invalid encoding (the caller turns any failure into one fixed message)."""


def _varint(data: bytes, pos: int, first: int) -> tuple[int, int]:
    """The rest of a multi-byte zigzag varint whose first byte (>= 0x80) was ``first``."""
    z = first & 0x7F
    shift = 7
    while True:
        byte = data[pos]  # IndexError: truncated
        pos += 1
        z |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift > 63:
            raise _Bad("varint longer than 10 bytes")
    if z >= _U64:
        raise _Bad("varint beyond 64 bits")
    return (z >> 1) ^ -(z & 1), pos


def _array(data: bytes, pos: int, item: Callable[[bytes, int], tuple[Any, int]]) -> tuple[Any, int]:
    """An array in blocks (a negative count is followed by the block's size in bytes)."""
    items: list[Any] = []
    end = len(data)
    while True:
        first = data[pos]
        pos += 1
        count, pos = (
            ((first >> 1) ^ -(first & 1), pos) if first < 0x80 else _varint(data, pos, first)
        )
        if count == 0:
            return tuple(items), pos
        if count < 0:
            count = -count
            first = data[pos]  # the block's size in bytes: not needed to read it
            pos += 1
            if first >= 0x80:
                _, pos = _varint(data, pos, first)
        # Every item takes at least one byte: refuse a count the payload cannot hold before
        # allocating anything for it.
        if count > end - pos:
            raise _Bad("array count beyond the payload")
        for _ in range(count):
            value, pos = item(data, pos)
            items.append(value)


# Statements reading one primitive value at ``p`` into ``x``; ``b`` and ``k`` are scratch.
_STATEMENTS: Final[dict[str, tuple[str, ...]]] = {
    "null": ("x = None",),
    "boolean": ("b = d[p]", "p += 1", "if b > 1: raise BAD('boolean')", "x = b == 1"),
    "long": (
        "b = d[p]",
        "p += 1",
        "if b < 128: x = (b >> 1) ^ -(b & 1)",
        "else: x, p = V(d, p, b)",
    ),
    "int": (
        "b = d[p]",
        "p += 1",
        "if b < 128: x = (b >> 1) ^ -(b & 1)",
        "else: x, p = V(d, p, b)",
        "if not INT_MIN <= x <= INT_MAX: raise BAD('int')",
    ),
    "string": (
        "b = d[p]",
        "p += 1",
        "if b < 128: k = (b >> 1) ^ -(b & 1)",
        "else: k, p = V(d, p, b)",
        "if k < 0 or p + k > n: raise BAD('length')",
        "x = d[p:p + k].decode()",
        "p += k",
    ),
    "bytes": (
        "b = d[p]",
        "p += 1",
        "if b < 128: k = (b >> 1) ^ -(b & 1)",
        "else: k, p = V(d, p, b)",
        "if k < 0 or p + k > n: raise BAD('length')",
        "x = bytes(d[p:p + k])",
        "p += k",
    ),
}


def _item_reader(kind: str) -> Callable[[bytes, int], tuple[Any, int]]:
    """A reader function of one primitive (array items)."""
    lines = ["def read(d, p):", "    n = len(d)"]
    lines += [f"    {s}" for s in _STATEMENTS[kind]]
    lines.append("    return x, p")
    return _exec(lines, "read")  # type: ignore[no-any-return]


def nullable(declared: Any, known: Mapping[str, object]) -> str | None:
    """T when ``declared`` is ``["null", T]`` (the only union Kaa's schemas use) and T is
    ``known``; else None. The reader and the writer both recognise their types so."""
    if (
        isinstance(declared, list)
        and len(declared) == 2
        and declared[0] == "null"
        and isinstance(declared[1], str)
        and declared[1] in known
    ):
        return declared[1]
    return None


def array_items(declared: Any, known: Mapping[str, object]) -> str | None:
    """The item type when ``declared`` is an array of a ``known`` type; else None."""
    if (
        isinstance(declared, dict)
        and declared.get("type") == "array"
        and isinstance(declared.get("items"), str)
        and declared["items"] in known
    ):
        return str(declared["items"])
    return None


def primitive_statements(
    declared: Any, statements: Mapping[str, Sequence[str]], union_head: Sequence[str]
) -> list[str] | None:
    """The straight-line statements of a primitive field, or of ``["null", T]``:
    ``union_head``, then T's statements under its ``else:``. None for any other shape. The
    reader and the writer both compile their fields so."""
    if isinstance(declared, str) and declared in statements:
        return list(statements[declared])
    inner = nullable(declared, statements)
    if inner is not None:
        return [*union_head, *(f"    {s}" for s in statements[inner])]
    return None


# A union's index: 0 is null, 1 is T.
_UNION_HEAD: Final = (
    "b = d[p]",
    "p += 1",
    "if b == 0: x = None",
    "elif b != 2: raise BAD('union index')",
    "else:",
)


def _field_statements(declared: Any, index: int, namespace: dict[str, Any]) -> list[str]:
    primitive = primitive_statements(declared, _STATEMENTS, _UNION_HEAD)
    if primitive is not None:
        return primitive
    items = array_items(declared, _STATEMENTS)
    if items is not None:
        namespace[f"i{index}"] = _item_reader(items)
        return [f"x, p = A(d, p, i{index})"]
    raise TypeError(f"unsupported Avro type {declared!r}")


def compile_decoder(
    record_type: type[Any], attrs: Sequence[str], avro_fields: Sequence[dict[str, Any]]
) -> Decoder:
    """The decoding function of one record type, from its schema's fields.

    Generated source is made of the fixed statements above, field indexes and the record's
    attribute names (checked identifiers: they are dataclass fields).
    """
    namespace: dict[str, Any] = {
        "R": record_type,
        "NEW": object.__new__,
        "V": _varint,
        "A": _array,
        "BAD": _Bad,
        "INT_MIN": _INT_MIN,
        "INT_MAX": _INT_MAX,
    }
    defaults = [f.get("default", _NO_DEFAULT) for f in avro_fields]
    # An array's default would have to become a tuple; no Kaa record has one, so a record
    # may end early only where no array field follows.
    arrays = {i for i, f in enumerate(avro_fields) if isinstance(f["type"], dict)}
    # Built without __init__: a frozen dataclass' __init__ costs a generic object.__setattr__
    # per field, the slot descriptors' own setters are about three times cheaper.
    for i, attr in enumerate(attrs):
        namespace[f"S{i}"] = getattr(record_type, attr).__set__
    build = "; ".join(["o = NEW(R)", *(f"S{i}(o, v[{i}])" for i in range(len(attrs)))])
    lines = ["def decode(d, v):", "    n = len(d)", "    p = 0", "    a = v.append"]
    for index, field in enumerate(avro_fields):
        rest = defaults[index:]
        if all(d is not _NO_DEFAULT for d in rest) and not arrays.intersection(
            range(index, len(defaults))
        ):
            # An older writer's record ends here: the remaining fields take their defaults.
            namespace[f"D{index}"] = tuple(rest)
            lines += [
                "    if p == n:",
                f"        v.extend(D{index})",
                f"        {build}",
                "        return o, p",
            ]
        body = _field_statements(field["type"], index, namespace)
        lines += [f"    {s}" for s in body]
        lines.append("    a(x)")
    lines += [f"    {build}", "    return o, p"]
    return _exec(lines, "decode", namespace)  # type: ignore[no-any-return]


def _exec(lines: list[str], name: str, namespace: dict[str, Any] | None = None) -> Any:
    scope: dict[str, Any] = {
        "V": _varint,
        "A": _array,
        "BAD": _Bad,
        "INT_MIN": _INT_MIN,
        "INT_MAX": _INT_MAX,
    }
    if namespace:
        scope.update(namespace)
    exec("\n".join(lines), scope)  # noqa: S102 - generated from the fixed statements above
    return scope[name]
