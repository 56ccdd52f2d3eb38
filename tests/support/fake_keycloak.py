"""A fake Keycloak serving several realms over real HTTP.

Per realm: the discovery document, the JWKS (keys made with joserfc, rotatable), and a token
endpoint doing ``client_credentials`` (issuing signed JWTs) and UMA decisions
(``response_mode=decision``) from grants the test configures. Requests are counted per path
(``count``), so tests can assert that something made no network call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from itertools import count
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import ECKey, KeyParameters, KeySet, RSAKey

from tests.support import FakeHttpServer, Request, Response, json_response

UMA_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"
_kids = count(1)

SigningKey = RSAKey | ECKey


def _cors_json(status: int, payload: Any) -> Response:
    """What a browser may read cross-origin (Keycloak's "Web origins" of a public client)."""
    response = json_response(status, payload)
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A token assembled by hand, for shapes joserfc refuses to produce."""
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(signature)}"


def hs256_token(secret: bytes, claims: dict[str, Any], kid: str | None = None) -> str:
    header: dict[str, Any] = {"alg": "HS256", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(mac)}"


# Generated key material, reused across FakeKeycloak instances: RSA generation costs ~0.1 s,
# and keys only have to differ within one instance (one test), never between tests.
_material: dict[str, list[SigningKey]] = {}


def _generate(alg: str) -> SigningKey:
    if alg.startswith("ES"):
        return ECKey.generate_key({"ES256": "P-256", "ES384": "P-384"}[alg])
    return RSAKey.generate_key(2048)


class KeyFactory:
    """Signing keys distinct from every other key this factory made, each with a new kid."""

    def __init__(self) -> None:
        self._used: dict[str, int] = {}

    def __call__(self, alg: str = "RS256") -> SigningKey:
        pool = _material.setdefault(alg, [])
        index = self._used.get(alg, 0)
        self._used[alg] = index + 1
        if index == len(pool):
            pool.append(_generate(alg))
        params: KeyParameters = {"kid": f"kid-{next(_kids)}", "alg": alg, "use": "sig"}
        material = pool[index]
        # Importing the key object (not its JWK form) skips a slow validation of the numbers.
        if isinstance(material, ECKey):
            ec_private = material.private_key
            assert ec_private is not None
            return ECKey.import_key(ec_private, parameters=params)
        rsa_private = material.private_key
        assert rsa_private is not None
        return RSAKey.import_key(rsa_private, parameters=params)


@dataclass
class Realm:
    name: str
    issuer: str
    new_key: KeyFactory
    keys: list[SigningKey] = field(default_factory=list)
    clients: dict[str, str] = field(default_factory=dict)
    #: lifetime of client-credentials tokens; None = answer without ``expires_in``
    token_lifetime: int | None = 300
    #: the resource server (client id) UMA decisions are asked for
    resource_server: str = "otao"
    #: (subject, resource, scope) triples the realm grants
    grants: set[tuple[str, str, str]] = field(default_factory=set)
    #: the user an authorization-code sign-in logs in (no login form): subject and extra claims
    login_subject: str = "operator-1"
    login_claims: dict[str, Any] = field(default_factory=dict)
    #: ``expires_in`` of the tokens those sign-ins get; refresh grants answered so far
    login_token_lifetime: int = 300
    refreshes: int = 0
    #: public clients allowed to sign in with authorization code + PKCE: id -> redirect URI prefix
    public_clients: dict[str, str] = field(default_factory=dict)
    #: issued codes and refresh tokens (single use)
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    refresh_tokens: set[str] = field(default_factory=set)

    @property
    def active_key(self) -> SigningKey:
        return self.keys[-1]

    def rotate(self, alg: str = "RS256", *, keep_old: bool = True) -> SigningKey:
        """Publish a new signing key and sign with it from now on."""
        key = self.new_key(alg)
        self.keys = [*self.keys, key] if keep_old else [key]
        return key

    def jwks(self) -> dict[str, Any]:
        return dict(KeySet(list(self.keys)).as_dict(private=False))

    def claims(self, subject: str = "user-1", lifetime: int = 300, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "iat": now,
            "exp": now + lifetime,
            "typ": "Bearer",
            "azp": "web-ui",
        }
        claims.update(extra)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: dict[str, Any], key: SigningKey | None = None, **header: Any) -> str:
        key = key or self.active_key
        head = {"alg": key.alg, "kid": key.kid, **header}
        return jwt.encode(head, claims, key)

    def issue(self, subject: str = "user-1", lifetime: int = 300, **extra: Any) -> str:
        return self.sign(self.claims(subject, lifetime, **extra))

    def grant(self, subject: str, resource: str, scope: str) -> None:
        self.grants.add((subject, resource, scope))


class FakeKeycloak(FakeHttpServer):
    def __init__(self) -> None:
        super().__init__()
        self.realms: dict[str, Realm] = {}
        #: makes keys no other realm of this server has (e.g. for "unpublished key" tests)
        self.new_key = KeyFactory()
        self.uma_requests: list[dict[str, str]] = []

    def add_realm(self, name: str, alg: str = "RS256") -> Realm:
        realm = Realm(name, f"{self.url}/realms/{name}", self.new_key, [self.new_key(alg)])
        self.realms[name] = realm
        return realm

    def discovery_path(self, realm: str) -> str:
        return f"/realms/{realm}/.well-known/openid-configuration"

    def certs_path(self, realm: str) -> str:
        return f"/realms/{realm}/protocol/openid-connect/certs"

    def token_path(self, realm: str) -> str:
        return f"/realms/{realm}/protocol/openid-connect/token"

    def token_url(self, realm: str) -> str:
        return self.url + self.token_path(realm)

    def handle(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "realms" or parts[1] not in self.realms:
            return json_response(404, {"error": "Realm does not exist"})
        realm = self.realms[parts[1]]
        rest = "/".join(parts[2:])
        if request.method == "GET" and rest == ".well-known/openid-configuration":
            base = f"{realm.issuer}/protocol/openid-connect"
            return _cors_json(
                200,
                {
                    "issuer": realm.issuer,
                    "jwks_uri": f"{base}/certs",
                    "token_endpoint": f"{base}/token",
                    "authorization_endpoint": f"{base}/auth",
                    "grant_types_supported": ["client_credentials", UMA_GRANT],
                },
            )
        if request.method == "GET" and rest == "protocol/openid-connect/auth":
            return self._authorize(realm, request)
        if request.method == "GET" and rest == "protocol/openid-connect/certs":
            return json_response(200, realm.jwks())
        if request.method == "POST" and rest == "protocol/openid-connect/token":
            form = request.form()
            if form.get("grant_type") == "client_credentials":
                return self._client_credentials(realm, request, form)
            if form.get("grant_type") == UMA_GRANT:
                return self._uma(realm, request, form)
            if form.get("grant_type") in ("authorization_code", "refresh_token"):
                return self._user_token(realm, form)
            return json_response(400, {"error": "unsupported_grant_type"})
        return json_response(404, {"error": "not found"})

    def _client_credentials(self, realm: Realm, request: Request, form: dict[str, str]) -> Response:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        if client_id is None or realm.clients.get(client_id) != secret:
            return json_response(401, {"error": "unauthorized_client"})
        lifetime = realm.token_lifetime
        token = realm.issue(f"service-account-{client_id}", lifetime or 300, azp=client_id)
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if lifetime is not None:
            body["expires_in"] = lifetime
        return json_response(200, body)

    def _authorize(self, realm: Realm, request: Request) -> Response:
        """Authorization code + PKCE (S256): logs ``realm.login_subject`` in at once."""
        client_id, redirect = request.arg("client_id") or "", request.arg("redirect_uri") or ""
        allowed = realm.public_clients.get(client_id)
        if allowed is None or not redirect.startswith(allowed):
            return json_response(400, {"error": "invalid_redirect_uri"})
        if request.arg("code_challenge_method") != "S256" or not request.arg("code_challenge"):
            return json_response(400, {"error": "invalid_request", "error_description": "PKCE"})
        code = secrets.token_urlsafe(16)
        realm.codes[code] = {
            "client_id": client_id,
            "redirect_uri": redirect,
            "challenge": request.arg("code_challenge") or "",
        }
        query = urlencode({"code": code, "state": request.arg("state") or ""})
        return Response(302, b"", "text/plain", {"Location": f"{redirect}?{query}"})

    def _user_token(self, realm: Realm, form: dict[str, str]) -> Response:
        if form.get("grant_type") == "refresh_token":
            if form.get("refresh_token") not in realm.refresh_tokens:
                return _cors_json(400, {"error": "invalid_grant"})
            realm.refresh_tokens.discard(form["refresh_token"])
            realm.refreshes += 1
        else:
            issued = realm.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "").encode()
            challenge = b64url(hashlib.sha256(verifier).digest())
            if (
                issued is None
                or issued["redirect_uri"] != form.get("redirect_uri")
                or issued["client_id"] != form.get("client_id")
                or issued["challenge"] != challenge
            ):
                return _cors_json(400, {"error": "invalid_grant"})
        refresh = secrets.token_urlsafe(16)
        realm.refresh_tokens.add(refresh)
        lifetime = realm.login_token_lifetime
        claims = {"azp": form.get("client_id"), **realm.login_claims}
        token = realm.issue(realm.login_subject, lifetime, **claims)
        body = {"access_token": token, "refresh_token": refresh, "expires_in": lifetime}
        return _cors_json(200, body)

    def _uma(self, realm: Realm, request: Request, form: dict[str, str]) -> Response:
        self.uma_requests.append(form)
        bearer = request.bearer()
        try:
            claims = jwt.decode(bearer or "", KeySet(list(realm.keys))).claims
            jwt.JWTClaimsRegistry(exp={"essential": True}).validate(claims)
        except Exception:
            return json_response(401, {"error": "invalid_grant"})
        if form.get("audience") != realm.resource_server:
            return json_response(400, {"error": "invalid_client"})
        resource, _, scope = form.get("permission", "").partition("#")
        if (claims.get("sub"), resource, scope) in realm.grants:
            return json_response(200, {"result": True})
        return json_response(403, {"error": "access_denied", "error_description": "not_authorized"})
