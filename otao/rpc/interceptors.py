"""The server's interceptors: domain errors -> gRPC status (the one place), and access.

``ServiceInterceptor`` is the only place that maps domain errors to gRPC status codes. It
turns ``InvalidArgument`` field violations into ``google.rpc.BadRequest`` details (which
Envoy's transcoder renders as the HTTP 400 JSON body), and any unexpected exception into
INTERNAL with a generic message and a log line: no traceback or exception text leaves.

Requests reach the wrapped methods as raw bytes and are parsed here: a message the protobuf
runtime refuses (a string field with invalid UTF-8, nesting beyond its recursion limit, plain
garbage) is the caller's error, INVALID_ARGUMENT, not grpc's own UNKNOWN with the parser's
exception text (which Envoy would turn into a 500 carrying that text).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any, cast

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from otao.domain import errors
from otao.domain.models import Caller
from otao.rpc.interception import (
    PREFIX,
    Behavior,
    Context,
    Handler,
    MethodInterceptor,
    StreamBehavior,
)
from otao.rpc.rest_query import ORIGINAL_PATH, query_rule
from otao.rpc.strict_json import fill_from_json_body, refuse_unknown_fields

log = logging.getLogger(__name__)

_STATUS: dict[type[errors.OtaoError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}

# The protection space named in WWW-Authenticate challenges.
REALM = "otao"

_caller: ContextVar[Caller] = ContextVar("otao_caller")

Authenticate = Callable[[str, Any, Context], Awaitable[Caller]]
Deserialize = Callable[[bytes], Any]

_UNPARSABLE = (
    "the request message cannot be parsed (malformed, a string that is not UTF-8, "
    "or nested too deeply)"
)


def current_caller() -> Caller:
    """The authenticated caller of the RPC being served."""
    return _caller.get()


def status_of(error: errors.OtaoError) -> grpc.StatusCode:
    for kind in type(error).__mro__:
        if kind in _STATUS:
            return _STATUS[kind]
    return grpc.StatusCode.INTERNAL


def _details(error: errors.OtaoError, code: grpc.StatusCode) -> bytes:
    status = status_pb2.Status(code=code.value[0], message=error.message)
    if isinstance(error, errors.InvalidArgument) and error.violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in error.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad_request)
        status.details.append(packed)
    return bytes(status.SerializeToString())


def _www_authenticate(context: Context) -> str:
    """RFC 6750 section 3: a request without credentials gets no error code, a request whose
    token was refused gets ``invalid_token``. Envoy passes it on as the REST 401's header."""
    sent_token = any(key == "authorization" for key, _ in context.invocation_metadata() or ())
    return f'Bearer realm="{REALM}"' + (', error="invalid_token"' if sent_token else "")


async def abort_with(context: Context, error: errors.OtaoError) -> None:
    code = status_of(error)
    trailing: tuple[tuple[str, str | bytes], ...] = (
        ("grpc-status-details-bin", _details(error, code)),
    )
    if code is grpc.StatusCode.UNAUTHENTICATED:
        trailing += (("www-authenticate", _www_authenticate(context)),)
    await context.abort(code, error.message, trailing_metadata=trailing)


def _parse(deserialize: Deserialize | None, raw: Any) -> Any:
    if deserialize is None:
        return raw
    try:
        return deserialize(raw)
    except Exception as exc:  # whatever the parser raises, the bytes are the caller's fault
        raise errors.InvalidArgument(_UNPARSABLE) from exc


# Headers Envoy adds to a request it accepted: not the client's, so not counted.
_GATEWAY_HEADERS = ("x-envoy-", "x-forwarded-", "x-request-id")


def _read_metadata(context: Context) -> tuple[int, str]:
    """The size of the client's own metadata, and the REST request's original path ("" for a
    gRPC call), in one pass: grpc builds the metadata tuple anew on every
    ``invocation_metadata()`` (2.6 µs a call, measured in-process), and a call read it twice."""
    size = 0
    path: str | None = None
    for key, value in context.invocation_metadata() or ():
        if key == ORIGINAL_PATH and path is None:
            path = value.decode("latin-1") if isinstance(value, bytes) else value
        if not key.startswith(_GATEWAY_HEADERS):
            size += len(key) + len(value)
    return size, path or ""


class _Guard:
    """What every call of one of otao's methods goes through before its behavior runs, and
    the one mapping of what it raises (unary and server-streaming alike)."""

    def __init__(
        self,
        method: str,
        authenticate: Authenticate | None,
        deserialize: Deserialize | None,
        max_metadata_bytes: int | None,
    ) -> None:
        self.method = method
        self._authenticate = authenticate
        self._deserialize = deserialize
        self._max_metadata_bytes = max_metadata_bytes
        self._rest_query = query_rule(method)

    async def request(self, raw: Any, context: Context) -> Any:
        # The same limit as Envoy's max_request_headers_kb, exactly: grpc's own limit (a little
        # higher, see server.build_server) would answer with its transport's text.
        limit = self._max_metadata_bytes
        metadata_bytes, original_path = _read_metadata(context)
        if limit is not None and metadata_bytes > limit:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the request metadata exceeds {limit // 1024} KiB",
            )
        request = _parse(self._deserialize, raw)
        if self._authenticate is not None:
            _caller.set(await self._authenticate(self.method, request, context))
        # After authentication: an unauthenticated caller learns nothing about the API.
        if self._rest_query is not None:
            self._rest_query.check(original_path)
        refuse_unknown_fields(request)
        fill_from_json_body(request)
        return request

    async def fail(self, context: Context, error: BaseException) -> None:
        if isinstance(error, errors.OtaoError):
            await abort_with(context, error)
        if isinstance(error, (grpc.aio.AbortError, grpc.aio.BaseError)):
            raise error
        log.exception("unexpected error in %s", self.method, exc_info=error)
        internal = status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")
        await context.abort(
            grpc.StatusCode.INTERNAL,
            "internal error",
            trailing_metadata=(("grpc-status-details-bin", internal.SerializeToString()),),
        )


def _wrap_unary(guard: _Guard, behavior: Behavior) -> Behavior:
    async def guarded(raw: Any, context: Context) -> Any:
        try:
            return await behavior(await guard.request(raw, context), context)
        except Exception as error:
            await guard.fail(context, error)

    return guarded


def _wrap_stream(guard: _Guard, behavior: StreamBehavior) -> StreamBehavior:
    """A server-streaming method: the same checks before the first message, and the same
    mapping of an error raised before or between messages."""

    async def guarded(raw: Any, context: Context) -> AsyncIterator[Any]:
        try:
            request = await guard.request(raw, context)
            async for message in behavior(request, context):
                yield message
        except Exception as error:
            await guard.fail(context, error)

    return guarded


class ServiceInterceptor(MethodInterceptor):
    """Authenticates and authorizes otao's own methods and maps every error they raise.

    Health and reflection are served without authentication (they are not otao's
    methods, so they pass through untouched).
    """

    def __init__(
        self,
        authenticate: Authenticate,
        prefix: str = PREFIX,
        max_metadata_bytes: int | None = None,
    ) -> None:
        super().__init__(prefix)
        self._authenticate = authenticate
        self._max_metadata_bytes = max_metadata_bytes

    def wrap(self, method: str, handler: Handler) -> Handler | None:
        guard = _Guard(
            method, self._authenticate, handler.request_deserializer, self._max_metadata_bytes
        )
        # No request_deserializer: the wrapper parses, so a parse failure is mapped like any
        # other error (see _parse).
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(guard, cast(Behavior, handler.unary_unary)),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(guard, cast(StreamBehavior, handler.unary_stream)),
                response_serializer=handler.response_serializer,
            )
        # No client-streaming method exists; refused rather than served unguarded.
        raise RuntimeError(f"{method}: client-streaming methods are not guarded")
