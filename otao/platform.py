"""The Kaa platform around otao: tenants and their issuers, tokens, Tekton.

Built only when security or Tekton is on; the local development mode needs none of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from otao.domain.errors import OtaoError
from otao.integrations.client_credentials import ServiceTokenSource
from otao.integrations.http import shared_client
from otao.integrations.oidc import OidcProvider
from otao.integrations.tekton import TektonClient
from otao.integrations.tenant_manager import TenantManagerClient
from otao.integrations.uma import UmaDecisionClient
from otao.messaging.kaa import KaaBus
from otao.messaging.platform import TenantEvents
from otao.rpc.access import token_access
from otao.rpc.interceptors import Authenticate
from otao.security.permissions import Authorizer
from otao.security.tenants import TenantDirectory
from otao.security.tokens import TokenVerifier
from otao.services.configuration import Fetch
from otao.settings import Settings

log = logging.getLogger(__name__)


class Platform:
    def __init__(self, settings: Settings, kaa: KaaBus) -> None:
        self._settings = settings
        security = settings.security
        self._initial: asyncio.Task[None] | None = None
        self.http = shared_client()
        keycloak = security.keycloak_url.rstrip("/")
        self.tokens = ServiceTokenSource(
            f"{keycloak}/realms/{security.service_realm}/protocol/openid-connect/token",
            security.client_id,
            security.client_secret,
        )
        self.tenants = TenantDirectory(
            TenantManagerClient(self.http, security.tenant_manager_url, keycloak, self.tokens),
            refresh_interval=security.tenant_refresh_seconds,
        )
        self.oidc = OidcProvider(
            self.http,
            self.tenants.knows_issuer,
            kid_refetch_interval=security.jwks_refetch_min_interval_seconds,
        )
        if security.enabled:
            TenantEvents(kaa, self._tenant_updated, self._tenant_gone).register()

    def access(self) -> Authenticate:
        security = self._settings.security
        verifier = TokenVerifier(
            self.tenants,
            self.oidc,
            audience=security.token_audience,
            leeway=security.leeway_seconds,
        )
        authorizer = Authorizer(
            UmaDecisionClient(self.http, self.oidc, security.client_id),
            decision_ttl=security.uma_decision_ttl_seconds,
        )
        return token_access(verifier, authorizer)

    def tekton_fetch(self) -> Fetch:
        client = TektonClient(
            self.http, self._settings.tekton.url, self._settings.kaa.otao, self.tokens
        )
        return client.fetch

    async def start(self) -> None:
        if self._settings.security.enabled:
            self._initial = asyncio.create_task(self._first_tenants(), name="tenants")

    async def _first_tenants(self) -> None:
        """Until the Tenant Manager answers once, retry quickly; then refresh periodically."""
        delay = 0.5
        while True:
            try:
                await self.tenants.refresh()
                break
            except OtaoError as error:
                log.warning("tenant list unavailable (%s); retrying", error.message)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        self.tenants.start()

    async def _tenant_updated(self, tenant_id: str) -> None:
        await self.tenants.refresh()

    async def _tenant_gone(self, tenant_id: str) -> None:
        removed = self.tenants.remove(tenant_id)
        if removed is not None:
            self.oidc.forget(removed.issuer)
            log.info("tenant unregistered; its tokens stop working", extra={"tenant": tenant_id})

    async def close(self) -> None:
        if self._initial is not None:
            self._initial.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._initial
        if self._settings.security.enabled:
            await self.tenants.stop()
        await self.tokens.aclose()
        await self.http.aclose()
