"""What otao's server interceptors share (errors and access, metering, tracing).

Each wraps only otao's own methods (those under the package prefix; health and reflection pass
through untouched), and each method's wrapped handler is built on its first call and reused, so
a request builds no handler or closure of its own.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # the grpc runtime classes are not subscriptable
    Context = grpc.aio.ServicerContext
    Handler = grpc.RpcMethodHandler
    _ServerInterceptor = grpc.aio.ServerInterceptor

Behavior = Callable[[Any, Context], Awaitable[Any]]
StreamBehavior = Callable[[Any, Context], AsyncIterator[Any]]

PREFIX = "/kaa.otao.v1."


def status_name(context: Context) -> str:
    """The status code the client gets, read from the context after the call."""
    code = context.code()
    # An aborted call has its code set; one that returned normally has none (OK).
    return code.name if isinstance(code, grpc.StatusCode) else "OK"


class MethodInterceptor(_ServerInterceptor):
    def __init__(self, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self._wrapped: dict[str, Handler] = {}

    @abstractmethod
    def wrap(self, method: str, handler: Handler) -> Handler | None:
        """The handler that serves ``method`` from now on; None serves ``handler`` unwrapped."""

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
        if handler is None or not method.startswith(self.prefix):
            return handler
        wrapped = self.wrap(method, handler)
        if wrapped is None:
            return handler
        self._wrapped[method] = wrapped
        return wrapped
