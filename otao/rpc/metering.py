"""Counts and times every call of otao's own methods, by method and gRPC status code.

The outermost interceptor: it sees the call as the client does, the error interceptor's
status included (read from the context after an abort). One meter per method, made on the
method's first call and reused, like the wrapped handlers (``rpc/interception.py``).
"""

from __future__ import annotations

import time
from typing import Any, cast

import grpc

from otao.rpc.interception import PREFIX, Behavior, Context, Handler, MethodInterceptor, status_name
from otao.services.meters import DoorMeter, MethodMeter


def _metered(behavior: Behavior, meter: MethodMeter) -> Behavior:
    async def timed(request: Any, context: Context) -> Any:
        started = time.perf_counter()
        try:
            response = await behavior(request, context)
        except BaseException:
            # AbortError (the code is on the context) or the call's cancellation.
            code = status_name(context)
            meter.done("CANCELLED" if code == "OK" else code, started)
            raise
        meter.done(status_name(context), started)
        return response

    return timed


class MeteringInterceptor(MethodInterceptor):
    def __init__(self, meter: DoorMeter, prefix: str = PREFIX) -> None:
        super().__init__(prefix)
        self._meter = meter

    def wrap(self, method: str, handler: Handler) -> Handler | None:
        if handler.unary_unary is None:
            return None
        # "SoftwareService/GetSoftware": bounded (the methods of the proto), readable.
        meter = self._meter.method(method.removeprefix(self.prefix))
        return grpc.unary_unary_rpc_method_handler(
            _metered(cast(Behavior, handler.unary_unary), meter),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
