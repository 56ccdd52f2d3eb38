"""Counts and times every call of otao's own methods, by method and gRPC status code.

The outermost interceptor: it sees the call as the client does, the error interceptor's
status included (read from the context after an abort). One meter per method, made on the
method's first call and reused, like the wrapped handlers of ``ServiceInterceptor``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import grpc

from otao.services.meters import DoorMeter, MethodMeter

if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # the grpc runtime classes are not subscriptable
    Context = grpc.aio.ServicerContext
    Handler = grpc.RpcMethodHandler
    _ServerInterceptor = grpc.aio.ServerInterceptor

Behavior = Callable[[Any, Context], Awaitable[Any]]


def _code(context: Context) -> str:
    code = context.code()
    # An aborted call has its code set; one that returned normally has none (OK).
    return code.name if isinstance(code, grpc.StatusCode) else "OK"


def _metered(behavior: Behavior, meter: MethodMeter) -> Behavior:
    async def timed(request: Any, context: Context) -> Any:
        started = time.perf_counter()
        try:
            response = await behavior(request, context)
        except BaseException:
            # AbortError (the code is on the context) or the call's cancellation.
            code = _code(context)
            meter.done("CANCELLED" if code == "OK" else code, started)
            raise
        meter.done(_code(context), started)
        return response

    return timed


class MeteringInterceptor(_ServerInterceptor):
    def __init__(self, meter: DoorMeter, prefix: str = "/kaa.otao.v1.") -> None:
        self._meter = meter
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
        if handler is None or not method.startswith(self._prefix) or handler.unary_unary is None:
            return handler
        # "SoftwareService/GetSoftware": bounded (the methods of the proto), readable.
        meter = self._meter.method(method.removeprefix(self._prefix))
        wrapped = grpc.unary_unary_rpc_method_handler(
            _metered(cast(Behavior, handler.unary_unary), meter),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._wrapped[method] = wrapped
        return wrapped
