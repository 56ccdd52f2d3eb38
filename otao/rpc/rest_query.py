"""REST query parameters: only those a route accepts, refused by name otherwise.

Envoy's transcoder refuses an unknown query parameter with its own text, which names the
request's proto type (``Could not find field "etag" in the type "kaa.otao.v1.GetSoftwareRequest"``).
deploy/envoy.yaml therefore lets the transcoder ignore unknown parameters, and otao checks the
query string as the client sent it (``x-envoy-original-path``, set by the transcoder) against
the parameters the method's ``google.api.http`` route accepts: the fields bound neither by the
path nor by the body, in lowerCamelCase or snake_case. gRPC calls carry no such header.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import parse_qsl

from google.api import annotations_pb2
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from otao.domain.errors import FieldViolation, InvalidArgument
from otao.rpc.strict_json import JSON_BODY_SUFFIX, hint

ORIGINAL_PATH = "x-envoy-original-path"
_PATH_VARIABLE = re.compile(r"\{([a-z_][a-z0-9_.]*)")
# Message types a query parameter may fill as a whole (FieldMask: ?updateMask=a,b).
_QUERY_MESSAGES = frozenset({"google.protobuf.FieldMask"})


class QueryRule:
    """The query parameters one method's REST route accepts."""

    def __init__(self, accepted: Sequence[FieldDescriptor]) -> None:
        self.shown = [field.json_name for field in accepted]
        self._names = {name for field in accepted for name in (field.name, field.json_name)}

    def check(self, original_path: str) -> None:
        _, _, query = original_path.partition("?")
        if not query:
            return
        unknown: list[str] = []
        for name, _value in parse_qsl(query, keep_blank_values=True):
            if name not in self._names and name not in unknown:
                unknown.append(name)
        if unknown:
            accepted = ", ".join(self.shown) if self.shown else "none"
            raise InvalidArgument(
                f"unknown query parameter {', '.join(unknown)} (accepted: {accepted})",
                [FieldViolation(name, self._describe(name)) for name in unknown],
            )

    def _describe(self, name: str) -> str:
        close = hint(name, self.shown)
        if close is not None:
            return f"unknown query parameter; did you mean {close}?"
        accepted = ", ".join(self.shown) if self.shown else "none"
        return f"unknown query parameter (accepted: {accepted})"


def query_rule(method: str) -> QueryRule | None:
    """The rule of ``/package.Service/Method``, or None when it has no REST route."""
    try:
        descriptor = descriptor_pool.Default().FindMethodByName(method.strip("/").replace("/", "."))
    except KeyError:
        return None
    options = descriptor.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return None
    rule = options.Extensions[annotations_pb2.http]
    template = getattr(rule, rule.WhichOneof("pattern") or "get", "")
    return QueryRule(
        _accepted(descriptor.input_type, set(_PATH_VARIABLE.findall(template)), rule.body)
    )


def _accepted(request: Descriptor, path_bound: set[str], body: str) -> list[FieldDescriptor]:
    if body == "*":
        return []
    bound = {name.split(".")[0] for name in path_bound} | {body}
    if body.endswith(JSON_BODY_SUFFIX):
        bound.add(body.removesuffix(JSON_BODY_SUFFIX))  # the typed twin of the JSON body
    return [
        field
        for field in request.fields
        if field.name not in bound
        and (field.message_type is None or field.message_type.full_name in _QUERY_MESSAGES)
    ]
