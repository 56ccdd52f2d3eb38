"""One span per call of otao's gRPC methods (unary and server-streaming), when tracing is on.

Outside the error interceptor, so authentication and every database or NATS call the method
makes are children of the call's span; the span ends with the status code the client gets.
Installed only when tracing is on (``build_server``): off, calls pay nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import grpc

from otao.observability import tracing

if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[Any, Any]
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # the grpc runtime classes are not subscriptable
    Context = grpc.aio.ServicerContext
    _ServerInterceptor = grpc.aio.ServerInterceptor

Behavior = Callable[[Any, Context], Awaitable[Any]]
StreamBehavior = Callable[[Any, Context], AsyncIterator[Any]]
if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
else:
    Handler = grpc.RpcMethodHandler


def _code(context: Context) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "OK"


def _unary(method: str, behavior: Behavior) -> Behavior:
    async def run(request: Any, context: Context) -> Any:
        with tracing.span(method, "SERVER", **{"rpc.system": "grpc"}) as span:
            try:
                return await behavior(request, context)
            finally:
                tracing.set_attribute(span, "rpc.grpc.status_code", _code(context))

    return run


def _stream(method: str, behavior: StreamBehavior) -> StreamBehavior:
    async def run(request: Any, context: Context) -> AsyncIterator[Any]:
        with tracing.span(method, "SERVER", **{"rpc.system": "grpc"}) as span:
            try:
                async for message in behavior(request, context):
                    yield message
            finally:
                tracing.set_attribute(span, "rpc.grpc.status_code", _code(context))

    return run


class TracingInterceptor(_ServerInterceptor):
    def __init__(self, prefix: str = "/kaa.otao.v1.") -> None:
        self._prefix = prefix
        self._wrapped: dict[str, Handler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None or not method.startswith(self._prefix):
            return handler
        if handler.unary_unary is not None:
            wrapped = grpc.unary_unary_rpc_method_handler(
                _unary(method, cast(Behavior, handler.unary_unary)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        elif handler.unary_stream is not None:
            wrapped = grpc.unary_stream_rpc_method_handler(
                _stream(method, cast(StreamBehavior, handler.unary_stream)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        else:
            return handler
        self._wrapped[method] = wrapped
        return wrapped
