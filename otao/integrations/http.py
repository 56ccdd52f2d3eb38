"""The outbound HTTP client the integrations share (one connection pool, one timeout), and how
every client in this package reads a dependency's answer.

A transport failure, a status other than 200 or a body that is not JSON is the dependency
failing: ``Unavailable`` naming the dependency (``what``), logged with the URL, and never the
response body on the wire.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import httpx

from otao.domain.errors import Unavailable

_log = logging.getLogger(__name__)

# Keycloak, the Tenant Manager and Tekton are each asked inside a request otao is answering:
# a peer that has not answered in 5 s is treated as down rather than held on to.
TIMEOUT_SECONDS = 5.0


def shared_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(TIMEOUT_SECONDS))


async def sent(what: str, url: str, request: Awaitable[httpx.Response]) -> httpx.Response:
    """The response to ``request`` (a call on an ``httpx.AsyncClient`` for ``url``)."""
    try:
        return await request
    except httpx.HTTPError as exc:
        _log.warning("%s request to %s failed: %r", what, url, exc)
        raise Unavailable(f"{what} unavailable") from exc


def json_body(what: str, url: str, response: httpx.Response) -> object:
    """The decoded body of a 200 answer."""
    if response.status_code != 200:
        _log.warning("%s answered HTTP %d for %s", what, response.status_code, url)
        raise Unavailable(f"{what} unavailable")
    try:
        return response.json()
    except ValueError as exc:
        _log.warning("%s answered non-JSON for %s", what, url)
        raise Unavailable(f"{what} unavailable") from exc
