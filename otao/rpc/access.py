"""Who may call what: the Kaa permission each method needs, and the caller of each RPC."""

from __future__ import annotations

import logging
from typing import Any

from otao.domain.errors import PermissionDenied, Unauthenticated
from otao.domain.models import Caller
from otao.rpc.interception import Context
from otao.rpc.interceptors import Authenticate
from otao.security.permissions import Authorizer
from otao.security.tokens import TokenVerifier

log = logging.getLogger(__name__)

READ = "application:software:read"
UPDATE = "application:software:update"
DELETE = "application:software:delete"

# Every method of every otao service, with the Kaa scope it needs on the resource
# application-<applicationName>. A method missing here is refused (see scope_of).
METHOD_SCOPES: dict[str, str] = {
    "/kaa.otao.v1.SoftwareService/ListSoftware": READ,
    "/kaa.otao.v1.SoftwareService/ListSoftwareJson": READ,
    "/kaa.otao.v1.SoftwareService/GetSoftware": READ,
    "/kaa.otao.v1.SoftwareService/CreateSoftware": UPDATE,
    "/kaa.otao.v1.SoftwareService/ReplaceSoftware": UPDATE,
    "/kaa.otao.v1.SoftwareService/UpdateSoftware": UPDATE,
    "/kaa.otao.v1.SoftwareService/DeleteSoftware": DELETE,
    "/kaa.otao.v1.SoftwareService/GetApplicationSettings": READ,
    "/kaa.otao.v1.SoftwareService/UpdateApplicationSettings": UPDATE,
    "/kaa.otao.v1.ResolutionService/ResolveUpdate": READ,
    "/kaa.otao.v1.ResolutionService/ExplainResolution": READ,
    "/kaa.otao.v1.ResolutionService/GetUpgradePath": READ,
    "/kaa.otao.v1.ResolutionService/GetUpgradeGraph": READ,
    "/kaa.otao.v1.EndpointService/GetEndpointSoftware": READ,
    "/kaa.otao.v1.EndpointService/ListEndpoints": READ,
    "/kaa.otao.v1.EndpointService/GetSoftwareDistribution": READ,
    "/kaa.otao.v1.EndpointService/DeleteEndpointFailure": DELETE,
    "/kaa.otao.v1.EndpointService/CreateConsent": UPDATE,
    "/kaa.otao.v1.EndpointService/ListConsents": READ,
    "/kaa.otao.v1.EndpointService/DeleteConsent": DELETE,
    "/kaa.otao.v1.RolloutService/GetRolloutStatus": READ,
    "/kaa.otao.v1.RolloutService/ListAuditEntries": READ,
    "/kaa.otao.v1.RolloutService/AdvanceRollout": UPDATE,
    "/kaa.otao.v1.RolloutService/PauseRollout": UPDATE,
    "/kaa.otao.v1.RolloutService/ResumeRollout": UPDATE,
    "/kaa.otao.v1.WatchService/WatchRollout": READ,
    "/kaa.otao.v1.WatchService/WatchApplication": READ,
    "/kaa.otao.v1.ApplicationService/ListApplications": READ,
}

# Methods that span the caller's tenant rather than name one application: they need a valid
# token only, and show just the applications the caller may read (Caller.may_read, the same
# READ check as above, per application).
TENANT_METHODS = frozenset({"/kaa.otao.v1.ApplicationService/ListApplications"})


def local_development_access(tenant_id: str) -> Authenticate:
    """No security: every call runs as the default tenant. Only with an explicit setting."""

    async def may_read(application: str) -> bool:
        return True

    caller = Caller(tenant_id=tenant_id, subject="local-development", may_read=may_read)

    async def authenticate(method: str, request: Any, context: Context) -> Caller:
        return caller

    return authenticate


def bearer_token(context: Context) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    # The same text as every other rejected credential: the caller learns nothing more.
    raise Unauthenticated("invalid token")


def token_access(verifier: TokenVerifier, authorizer: Authorizer) -> Authenticate:
    """Every call: a valid bearer token of a known tenant, with the method's Kaa scope.

    The tenant comes from the verified token only; request fields never choose it.
    """

    async def authenticate(method: str, request: Any, context: Context) -> Caller:
        token = bearer_token(context)
        verified = await verifier.verify(token)

        async def may_read(application: str) -> bool:
            return await authorizer.allows(verified, token, application, READ)

        caller = Caller(tenant_id=verified.tenant_id, subject=verified.subject, may_read=may_read)
        if method in TENANT_METHODS:
            return caller
        scope = METHOD_SCOPES.get(method)
        application = getattr(request, "application_name", "")
        if scope is None or not isinstance(application, str):
            raise PermissionDenied("permission denied")
        await authorizer.require(verified, token, application, scope)
        return caller

    return authenticate
