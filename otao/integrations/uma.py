"""Keycloak authorization decisions (UMA 2.0 grant with ``response_mode=decision``).

When a caller's access token carries no permissions, the tenant's Keycloak realm is asked
whether that token may use ``scope`` on ``resource`` of otao's resource server: a POST to the
realm's token endpoint, authenticated with the caller's own bearer token.
"""

from __future__ import annotations

import logging
from typing import Protocol

import httpx

from otao.domain.errors import Unauthenticated, Unavailable
from otao.integrations.http import json_body, sent
from otao.integrations.oidc import IDENTITY_PROVIDER, ProviderMetadata

_log = logging.getLogger(__name__)

UMA_TICKET_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"


class MetadataSource(Protocol):
    async def metadata(self, issuer: str) -> ProviderMetadata: ...


class UmaDecisionClient:
    """``audience`` is the client id of otao's resource server in the tenant realms."""

    def __init__(self, http: httpx.AsyncClient, metadata: MetadataSource, audience: str) -> None:
        self._http = http
        self._metadata = metadata
        self._audience = audience

    async def is_allowed(self, issuer: str, bearer_token: str, resource: str, scope: str) -> bool:
        """True if Keycloak grants ``resource#scope`` to the token's holder, False if it denies.

        Raises ``Unavailable`` when Keycloak cannot be asked, and ``Unauthenticated`` when
        Keycloak no longer accepts the token (e.g. the session was logged out).
        """
        endpoint = (await self._metadata.metadata(issuer)).token_endpoint
        form = {
            "grant_type": UMA_TICKET_GRANT,
            "audience": self._audience,
            "permission": f"{resource}#{scope}",
            "response_mode": "decision",
        }
        headers = {"Authorization": f"Bearer {bearer_token}"}
        request = self._http.post(endpoint, data=form, headers=headers)
        response = await sent(IDENTITY_PROVIDER, endpoint, request)
        status = response.status_code
        if status == 200:
            body = json_body(IDENTITY_PROVIDER, endpoint, response)
            return isinstance(body, dict) and body.get("result") is True
        if status == 403:
            return False
        if status == 401:
            raise Unauthenticated("invalid token")
        if status == 400:
            # Keycloak answers 400 invalid_resource / invalid_scope for a resource or scope its
            # resource server does not define: nobody holds that permission. Other 400s point
            # at our configuration (e.g. a wrong audience), so they are logged louder.
            error = _error_code(response)
            level = (
                logging.INFO if error in ("invalid_resource", "invalid_scope") else logging.WARNING
            )
            _log.log(level, "UMA decision for %s#%s answered 400 %s", resource, scope, error)
            return False
        _log.warning("UMA decision request to %s answered HTTP %d", endpoint, status)
        raise Unavailable(f"{IDENTITY_PROVIDER} unavailable")


def _error_code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "?"
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else "?"
