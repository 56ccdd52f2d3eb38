"""Permission checks with Kaa's names: scope ``application:software:<action>`` on the UMA
resource ``application-<appName>``.

A token that carries Keycloak permissions (an RPT: claim ``authorization.permissions``) is judged
from them alone. A plain access token is judged by the tenant's Keycloak (UMA decision), and
that answer is cached for ``decision_ttl`` seconds per token, resource and scope, so the usual
burst of calls from one UI page costs Keycloak one request per permission.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Protocol

from otao.domain.errors import PermissionDenied
from otao.security.tokens import VerifiedToken

_log = logging.getLogger(__name__)

SOFTWARE_READ = "application:software:read"
SOFTWARE_UPDATE = "application:software:update"
SOFTWARE_DELETE = "application:software:delete"
SCOPES = frozenset({SOFTWARE_READ, SOFTWARE_UPDATE, SOFTWARE_DELETE})

# "#" separates resource from scopes and "," separates scopes in a Keycloak permission request;
# a name containing them could ask Keycloak about a different permission than the one checked.
_FORBIDDEN_NAME_CHARS = frozenset("#,")


def application_resource(application_name: str) -> str:
    return f"application-{application_name}"


class DecisionSource(Protocol):
    async def is_allowed(
        self, issuer: str, bearer_token: str, resource: str, scope: str
    ) -> bool: ...


_CacheKey = tuple[str, str, str]


@dataclass(eq=False)
class Authorizer:
    decisions: DecisionSource
    _: KW_ONLY
    decision_ttl: float = 30.0
    max_cached: int = 10_000
    clock: Callable[[], float] = time.monotonic
    # (allowed, valid until) per hashed token, resource and scope.
    _cache: dict[_CacheKey, tuple[bool, float]] = field(init=False, default_factory=dict)
    _inflight: dict[_CacheKey, asyncio.Task[bool]] = field(init=False, default_factory=dict)

    async def require(
        self, verified: VerifiedToken, raw_token: str, application_name: str, scope: str
    ) -> None:
        """Raise ``PermissionDenied`` unless the caller holds ``scope`` on the application.

        ``Unavailable`` if the tenant's Keycloak has to be asked and cannot be reached.
        """
        if not await self.allows(verified, raw_token, application_name, scope):
            raise PermissionDenied("permission denied")

    async def allows(
        self, verified: VerifiedToken, raw_token: str, application_name: str, scope: str
    ) -> bool:
        """Whether the caller holds ``scope`` on the application (``require`` without raising,
        for listings that show only what the caller may see). ``Unavailable`` as ``require``."""
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}")
        if not _valid_name(application_name):
            return False
        resource = application_resource(application_name)
        if "authorization" in verified.claims:
            allowed = _granted_by_claims(verified.claims["authorization"], resource, scope)
        else:
            allowed = await self._decision(verified.issuer, raw_token, resource, scope)
        if not allowed:
            _log.debug("denied %s on %s to %s", scope, resource, verified.subject)
        return allowed

    async def _decision(self, issuer: str, raw_token: str, resource: str, scope: str) -> bool:
        # Hash the token: the cache must not become a store of live credentials.
        key = (hashlib.sha256(raw_token.encode()).hexdigest(), resource, scope)
        cached = self._cache.get(key)
        if cached is not None and self.clock() < cached[1]:
            return cached[0]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._ask(key, issuer, raw_token, resource, scope))
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        # Concurrent callers share one request; one of them giving up must not cancel it.
        return await asyncio.shield(task)

    async def _ask(
        self, key: _CacheKey, issuer: str, raw_token: str, resource: str, scope: str
    ) -> bool:
        allowed = await self.decisions.is_allowed(issuer, raw_token, resource, scope)
        self._store(key, allowed)
        return allowed

    def _store(self, key: _CacheKey, allowed: bool) -> None:
        now = self.clock()
        if len(self._cache) >= self.max_cached:
            self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
            while len(self._cache) >= self.max_cached:
                # Dicts keep insertion order: this drops the oldest decision.
                del self._cache[next(iter(self._cache))]
        self._cache[key] = (allowed, now + self.decision_ttl)


def _valid_name(name: str) -> bool:
    return (
        bool(name)
        and name.isprintable()
        and not any(c.isspace() or c in _FORBIDDEN_NAME_CHARS for c in name)
    )


def _granted_by_claims(authorization: object, resource: str, scope: str) -> bool:
    """Keycloak RPT shape: ``{"permissions": [{"rsname": ..., "scopes": [...]}, ...]}``.

    A permission without ``scopes`` is not taken as "all scopes": every check here is for a
    specific scope, and only an explicit grant of it counts.
    """
    if not isinstance(authorization, dict):
        return False
    permissions = authorization.get("permissions")
    if not isinstance(permissions, list):
        return False
    for permission in permissions:
        if not isinstance(permission, dict) or permission.get("rsname") != resource:
            continue
        scopes = permission.get("scopes")
        if isinstance(scopes, list) and scope in scopes:
            return True
    return False
