"""Access token verification: who is calling, and for which tenant.

Order matters. The token's header and claims are first read WITHOUT trusting them, only to learn
the issuer and key id. An issuer that is not a known tenant's realm is rejected right there,
before any network call, so a forged token cannot steer otao's outbound requests. Only then are
the issuer's keys loaded and the signature and claims checked.

Every rejection is ``Unauthenticated("invalid token")``: which check failed is logged at debug
level for operators, never told to the caller.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any, Protocol

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

from otao.domain.errors import Unauthenticated
from otao.integrations.tenant_manager import Tenant

_log = logging.getLogger(__name__)

#: Asymmetric algorithms only: HMAC would let anyone holding the (public) key mint tokens,
#: and "none" has no signature at all.
ALLOWED_ALGORITHMS: tuple[str, ...] = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")

# Header parameters a plain signed JWT has no business carrying: "crit"/"b64" change how the
# signature is computed (RFC 7797), and we never fetch keys named by the token itself.
_FORBIDDEN_HEADERS = frozenset({"crit", "b64"})


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    tenant_id: str
    subject: str
    issuer: str
    claims: Mapping[str, Any]


class IssuerDirectory(Protocol):
    def by_issuer(self, issuer: str) -> Tenant | None: ...


class SigningKeys(Protocol):
    async def key_set(self, issuer: str, kid: str | None) -> KeySet: ...


class _Rejected(Exception):
    """Internal: why a token was rejected (logged, never sent)."""


@dataclass(eq=False)
class TokenVerifier:
    tenants: IssuerDirectory
    keys: SigningKeys
    _: KW_ONLY
    audience: str | None = None
    leeway: int = 30
    algorithms: Collection[str] = ALLOWED_ALGORITHMS
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        unsafe = {alg for alg in self.algorithms if alg == "none" or alg.startswith("HS")}
        if unsafe:
            raise ValueError(f"algorithms not allowed for access tokens: {sorted(unsafe)}")
        self.algorithms = tuple(self.algorithms)

    async def verify(self, token: str) -> VerifiedToken:
        """Verify a bearer token; raises ``Unauthenticated`` or (IdP down) ``Unavailable``."""
        try:
            return await self._verify(token)
        except _Rejected as exc:
            _log.debug("token rejected: %s", exc)
            raise Unauthenticated("invalid token") from None

    async def _verify(self, token: str) -> VerifiedToken:
        issuer, kid = self._peek(token)
        tenant = self.tenants.by_issuer(issuer)
        if tenant is None:
            raise _Rejected("issuer is not a known tenant")
        keys = await self.keys.key_set(issuer, kid)
        try:
            decoded = jwt.decode(token, keys, algorithms=self.algorithms)
            self._claims_registry(issuer).validate(decoded.claims)
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise _Rejected(f"{type(exc).__name__}: {exc}") from exc
        claims = decoded.claims
        token_type = claims.get("typ")
        # Keycloak marks ID and refresh tokens with another "typ"; only access tokens are
        # credentials for an API.
        if token_type is not None and str(token_type).lower() != "bearer":
            raise _Rejected(f"token type {token_type!r}")
        return VerifiedToken(
            tenant_id=tenant.id,
            subject=_subject(claims),
            issuer=issuer,
            claims=claims,
        )

    def _peek(self, token: str) -> tuple[str, str | None]:
        """Read ``iss`` and ``kid`` from the unverified token, and refuse obvious junk early."""
        try:
            unverified = jws.extract_compact(token.encode("ascii"))
            claims = json.loads(unverified.payload)
        except (JoseError, ValueError, TypeError, UnicodeError) as exc:
            raise _Rejected(f"malformed token: {type(exc).__name__}") from exc
        header = unverified.headers()
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise _Rejected(f"algorithm {alg!r} not allowed")
        if _FORBIDDEN_HEADERS & header.keys():
            raise _Rejected("forbidden header parameter")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _Rejected("kid is not a string")
        issuer = claims.get("iss") if isinstance(claims, dict) else None
        if not isinstance(issuer, str) or not issuer:
            raise _Rejected("no issuer")
        return issuer, kid

    def _claims_registry(self, issuer: str) -> JWTClaimsRegistry:
        options: dict[str, ClaimsOption] = {
            "iss": {"essential": True, "value": issuer},
            "exp": {"essential": True},
        }
        if self.audience is not None:
            options["aud"] = {"essential": True, "value": self.audience}
        return JWTClaimsRegistry(now=int(self.clock()), leeway=self.leeway, **options)


def _subject(claims: Mapping[str, Any]) -> str:
    # Keycloak "lightweight" access tokens may omit "sub"; "azp" (the client) is then the
    # most precise name for the caller we have.
    for name in ("sub", "azp"):
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return ""
