"""One span per call of otao's gRPC methods (unary and server-streaming), when tracing is on.

Outside the error interceptor, so authentication and every database or NATS call the method
makes are children of the call's span; the span ends with the status code the client gets.
Installed only when tracing is on (``build_server``): off, calls pay nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import grpc

from otao.observability import tracing
from otao.rpc.interception import (
    Behavior,
    Context,
    Handler,
    MethodInterceptor,
    StreamBehavior,
    status_name,
)


def _unary(method: str, behavior: Behavior) -> Behavior:
    async def run(request: Any, context: Context) -> Any:
        with tracing.span(method, "SERVER", **{"rpc.system": "grpc"}) as span:
            try:
                return await behavior(request, context)
            finally:
                tracing.set_attribute(span, "rpc.grpc.status_code", status_name(context))

    return run


def _stream(method: str, behavior: StreamBehavior) -> StreamBehavior:
    async def run(request: Any, context: Context) -> AsyncIterator[Any]:
        with tracing.span(method, "SERVER", **{"rpc.system": "grpc"}) as span:
            try:
                async for message in behavior(request, context):
                    yield message
            finally:
                tracing.set_attribute(span, "rpc.grpc.status_code", status_name(context))

    return run


class TracingInterceptor(MethodInterceptor):
    def wrap(self, method: str, handler: Handler) -> Handler | None:
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary(method, cast(Behavior, handler.unary_unary)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _stream(method, cast(StreamBehavior, handler.unary_stream)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return None
