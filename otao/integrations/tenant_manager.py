"""Kaa Tenant Manager client: which tenants exist, and which OAuth 2.0 issuer each one has.

A tenant's issuer is its Keycloak realm, ``{keycloak_url}/realms/{realm_name}``: the ``iss``
of every access token the tenant's users hold.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx

from otao.domain.errors import Unavailable
from otao.integrations.client_credentials import BearerTokenSource, get_json

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    realm_name: str
    issuer: str


def issuer_for(keycloak_url: str, realm_name: str) -> str:
    return f"{keycloak_url.rstrip('/')}/realms/{realm_name}"


class TenantManagerClient:
    """``GET {tm_url}/api/v1/tenants?offset=0&limit=0`` (limit 0 = all) as otao."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        keycloak_url: str,
        tokens: BearerTokenSource,
    ) -> None:
        self._http = http
        self._url = f"{base_url.rstrip('/')}/api/v1/tenants"
        self._keycloak_url = keycloak_url
        self._tokens = tokens

    async def list_tenants(self) -> list[Tenant]:
        body = await get_json(
            self._http,
            self._url,
            self._tokens,
            params={"offset": "0", "limit": "0"},
            what="tenant manager",
        )
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            _log.warning("tenant manager answered without a results list")
            raise Unavailable("tenant manager unavailable")
        tenants: list[Tenant] = []
        for item in results:
            tenant_id = item.get("id") if isinstance(item, dict) else None
            realm = item.get("realm_name") if isinstance(item, dict) else None
            # One malformed record must not cost every other tenant its access: skip it.
            if not isinstance(tenant_id, str) or not tenant_id:
                _log.warning("tenant manager listed a tenant without an id; skipped")
                continue
            if not isinstance(realm, str) or not realm or "/" in realm:
                _log.warning("tenant %s has no usable realm_name; skipped", tenant_id)
                continue
            tenants.append(Tenant(tenant_id, realm, issuer_for(self._keycloak_url, realm)))
        return tenants
