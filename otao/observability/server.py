"""The /metrics HTTP listener of one replica, on its own port.

It runs the client's WSGI app on a daemon thread, apart from the event loop: a scrape
never waits for the loop, and a busy loop never makes a scrape time out. Only ``/metrics``
is served; anything else is a 404.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

log = logging.getLogger(__name__)

PATH = "/metrics"

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Environ = dict[str, Any]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None  # one line per scrape on stderr is noise


class MetricsServer:
    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self._app = make_wsgi_app(registry)
        self._host = host
        self._port = port
        self._server: ThreadingWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def _only_metrics(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: metrics are at /metrics\n"]
        result: Iterable[bytes] = self._app(environ, start_response)
        return result

    @property
    def port(self) -> int:
        return self._server.server_port if self._server is not None else 0

    async def start(self) -> None:
        server = make_server(
            self._host, self._port, self._only_metrics, ThreadingWSGIServer, handler_class=_Quiet
        )
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="metrics-http", daemon=True
        )
        self._thread.start()
        log.info("metrics listening", extra={"address": f"{self._host}:{self.port}{PATH}"})

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        # shutdown() blocks until serve_forever's loop notices (up to its poll interval).
        await asyncio.to_thread(server.shutdown)
        server.server_close()
