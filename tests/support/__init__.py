"""Real HTTP servers on loopback standing in for Kaa's Keycloak, Tenant Manager and Tekton.

``FakeHttpServer`` is the shared part: a ``ThreadingHTTPServer`` on 127.0.0.1 with an ephemeral
port, running in a daemon thread, so it serves whatever event loop the test uses. Subclasses
implement ``handle``; requests are handled one at a time (under a lock), so tests can mutate a
fake's state between calls without racing its handler. Every response closes its connection:
a stopped server then really refuses, no kept-alive connection keeps serving.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections import Counter
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

import httpx

FailMode = Literal["error", "drop"] | None

# Building an SSL context loads the CA bundle (~50 ms); the fakes speak plain HTTP, so one
# shared context keeps a fresh client per test cheap.
_TLS = ssl.create_default_context()


def http_client() -> httpx.AsyncClient:
    """An outbound client like the one otao's wiring passes to the integrations."""
    return httpx.AsyncClient(timeout=5, verify=_TLS)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}

    def bearer(self) -> str | None:
        value = self.headers.get("Authorization", "")
        return value[7:] if value.startswith("Bearer ") else None


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload).encode())


class FakeHttpServer:
    def __init__(self) -> None:
        self.fail_mode: FailMode = None
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def count(self, path: str) -> int:
        with self._lock:
            return self.requests[path]

    def total(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket: later requests get "connection refused"."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def _dispatch(self, request: Request) -> Response | None:
        with self._lock:
            self.requests[request.path] += 1
            if self.fail_mode == "error":
                return json_response(500, {"error": "internal"})
            if self.fail_mode == "drop":
                return None
            try:
                return self.handle(request)
            except Exception as exc:  # a bug in a fake must show up as a 500, not a hang
                return json_response(500, {"error": repr(exc)})


def _handler_for(owner: FakeHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = Request(self.command, parts.path, parse_qs(parts.query), self.headers, body)
            response = owner._dispatch(request)
            self.close_connection = True
            if response is None:
                return  # "drop": close without answering
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Connection", "close")
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


class ManualClock:
    """A clock tests move by hand (``clock.now += 31``), for cache lifetimes and rate limits."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
