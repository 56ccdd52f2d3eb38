"""OpenID Connect discovery and signing keys (JWKS) of the tenants' Keycloak realms.

Per issuer: ``{issuer}/.well-known/openid-configuration`` once, then its ``jwks_uri``. Keys are
cached. A token signed with a key we have not seen (``kid`` not in the cached set) makes us
fetch the set again, because that is how Keycloak key rotation looks from here; such refetches
are limited to one per ``kid_refetch_interval`` per issuer, so a stream of tokens with made-up
``kid`` values cannot turn otao into a load generator against Keycloak. The cached set is also
refreshed after ``jwks_max_age`` so that keys Keycloak withdrew stop being trusted.

Only issuers the caller says are known (tenants from the Tenant Manager) are ever fetched.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from otao.domain.errors import Unauthenticated, Unavailable
from otao.integrations.http import json_body, sent

_log = logging.getLogger(__name__)

IDENTITY_PROVIDER = "identity provider"  # as errors and logs name it


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    jwks_uri: str
    token_endpoint: str


@dataclass(slots=True)
class _IssuerState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    metadata: ProviderMetadata | None = None
    keys: KeySet | None = None
    # When the cached keys were loaded, and when a JWKS fetch was last tried (rate limit).
    loaded_at: float = float("-inf")
    attempted_at: float = float("-inf")


@dataclass(eq=False)
class OidcProvider:
    http: httpx.AsyncClient
    is_known_issuer: Callable[[str], bool]
    _: KW_ONLY
    kid_refetch_interval: float = 10.0
    jwks_max_age: float = 3600.0
    clock: Callable[[], float] = time.monotonic
    _states: dict[str, _IssuerState] = field(init=False, default_factory=dict)

    async def metadata(self, issuer: str) -> ProviderMetadata:
        state = self._state(issuer)
        if state.metadata is not None:
            return state.metadata
        async with state.lock:
            return await self._metadata_locked(issuer, state)

    async def key_set(self, issuer: str, kid: str | None) -> KeySet:
        """The issuer's signing keys, fetched again (rate-limited) if ``kid`` is not among them.

        The caller still has to handle a set without ``kid``: that is a token signed by a key
        the issuer does not publish, i.e. an invalid token.
        """
        state = self._state(issuer)
        if state.keys is not None and self._usable(state, state.keys, kid):
            return state.keys
        async with state.lock:
            keys = state.keys
            # Another caller may have refetched while we waited for the lock.
            if keys is None:
                return await self._fetch_keys(issuer, state)
            if self._usable(state, keys, kid):
                return keys
            if self.clock() - state.attempted_at < self.kid_refetch_interval:
                return keys
            try:
                return await self._fetch_keys(issuer, state)
            except Unavailable:
                if kid is not None and not _has_kid(keys, kid):
                    raise
                # Only the age of the set made us refetch: keep verifying with the keys we
                # have rather than failing every request while Keycloak is briefly down.
                return keys

    def forget(self, issuer: str) -> None:
        """Drop what is cached for an issuer (e.g. its tenant was unregistered)."""
        self._states.pop(issuer, None)

    def _state(self, issuer: str) -> _IssuerState:
        if not self.is_known_issuer(issuer):
            raise Unauthenticated("invalid token")
        return self._states.setdefault(issuer, _IssuerState())

    def _usable(self, state: _IssuerState, keys: KeySet, kid: str | None) -> bool:
        fresh = self.clock() - state.loaded_at < self.jwks_max_age
        return fresh and (kid is None or _has_kid(keys, kid))

    async def _metadata_locked(self, issuer: str, state: _IssuerState) -> ProviderMetadata:
        if state.metadata is None:
            body = await self._get_json(f"{issuer}/.well-known/openid-configuration")
            state.metadata = _parse_metadata(issuer, body)
        return state.metadata

    async def _fetch_keys(self, issuer: str, state: _IssuerState) -> KeySet:
        metadata = await self._metadata_locked(issuer, state)
        state.attempted_at = self.clock()
        body = await self._get_json(metadata.jwks_uri)
        try:
            keys = KeySet.import_key_set(body)
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            _log.warning("unusable JWKS at %s: %r", metadata.jwks_uri, exc)
            raise Unavailable("identity provider unavailable") from exc
        state.keys = keys
        state.loaded_at = state.attempted_at
        return keys

    async def _get_json(self, url: str) -> Any:
        response = await sent(IDENTITY_PROVIDER, url, self.http.get(url))
        return json_body(IDENTITY_PROVIDER, url, response)


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys)


def _parse_metadata(issuer: str, body: object) -> ProviderMetadata:
    if not isinstance(body, dict):
        raise Unavailable("identity provider unavailable")
    jwks_uri = body.get("jwks_uri")
    token_endpoint = body.get("token_endpoint")
    # OpenID Connect Discovery 1.0, section 4.3: the document's issuer MUST equal the one asked
    # for; anything else is a misconfigured or impersonating server.
    if body.get("issuer") != issuer:
        _log.warning("discovery document of %s names issuer %r", issuer, body.get("issuer"))
        raise Unavailable("identity provider unavailable")
    if not isinstance(jwks_uri, str) or not isinstance(token_endpoint, str):
        _log.warning("discovery document of %s lacks jwks_uri or token_endpoint", issuer)
        raise Unavailable("identity provider unavailable")
    return ProviderMetadata(issuer=issuer, jwks_uri=jwks_uri, token_endpoint=token_endpoint)
