"""Service-to-service access tokens: OAuth 2.0 client credentials (RFC 6749, section 4.4).

otao calls the Tenant Manager and Tekton as itself, with a token from its own Keycloak client.
The token is cached until shortly before it expires, and concurrent callers share one fetch,
so a burst of calls after expiry costs the identity provider one request, not one per caller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Protocol

import httpx
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from otao.domain.errors import Unavailable
from otao.integrations.http import json_body, sent

_log = logging.getLogger(__name__)


class BearerTokenSource(Protocol):
    """What the REST clients need: a current token, and a way to drop one a server rejected."""

    async def token(self) -> str: ...

    def invalidate(self) -> None: ...


@dataclass(eq=False)
class ServiceTokenSource:
    """Access tokens for otao's own Keycloak client (``client_credentials`` grant).

    ``refresh_margin`` seconds before the token expires it is fetched again, so a token handed
    out is never about to expire in flight. A response without ``expires_in`` is used once and
    not cached: we cannot know how long it stays valid.
    """

    token_url: str
    client_id: str
    # Not in the repr: a logged object must not carry the credential.
    client_secret: str = field(repr=False)
    _: KW_ONLY
    scope: str | None = None
    auth_method: str = "client_secret_basic"
    refresh_margin: float = 30.0
    timeout: float = 10.0
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._client = AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=self.client_secret,
            token_endpoint_auth_method=self.auth_method,
            scope=self.scope,
            timeout=self.timeout,
        )
        self._lock = asyncio.Lock()
        self._access_token: str | None = None
        self._valid_until = 0.0

    async def token(self) -> str:
        cached = self._cached()
        if cached is not None:
            return cached
        async with self._lock:
            # Another caller may have fetched while we waited for the lock.
            cached = self._cached()
            if cached is not None:
                return cached
            return await self._fetch()

    def invalidate(self) -> None:
        """Forget the cached token (e.g. a server answered 401 to it)."""
        self._access_token = None
        self._valid_until = 0.0

    async def aclose(self) -> None:
        await self._client.aclose()

    def _cached(self) -> str | None:
        if self._access_token is not None and self.clock() < self._valid_until:
            return self._access_token
        return None

    async def _fetch(self) -> str:
        # Expiry counts from before the request: the server's clock started no earlier.
        started = self.clock()
        try:
            response = await self._client.fetch_token(
                self.token_url, grant_type="client_credentials"
            )
        except (httpx.HTTPError, OAuthError, ValueError) as exc:
            _log.warning("service token request to %s failed: %r", self.token_url, exc)
            raise Unavailable("identity provider unavailable") from exc
        access_token = response.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            _log.warning("token endpoint %s answered without an access token", self.token_url)
            raise Unavailable("identity provider unavailable")
        expires_in = response.get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            self._access_token = access_token
            self._valid_until = started + float(expires_in) - self.refresh_margin
        else:
            self.invalidate()
        return access_token


async def get_json(
    http: httpx.AsyncClient,
    url: str,
    tokens: BearerTokenSource,
    *,
    params: dict[str, str] | None = None,
    what: str,
) -> object:
    """GET ``url`` as otao and return the decoded JSON body.

    A 401 means our cached token was revoked or the server's clock is ahead of ours: drop it
    and try once more with a fresh one. Anything else that is not a 200 with JSON is the
    dependency failing, reported as ``Unavailable`` naming ``what`` (never the response body).
    """
    response = await _get(http, url, tokens, params, what)
    if response.status_code == 401:
        tokens.invalidate()
        response = await _get(http, url, tokens, params, what)
    return json_body(what, url, response)


async def _get(
    http: httpx.AsyncClient,
    url: str,
    tokens: BearerTokenSource,
    params: dict[str, str] | None,
    what: str,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {await tokens.token()}"}
    return await sent(what, url, http.get(url, params=params, headers=headers))
