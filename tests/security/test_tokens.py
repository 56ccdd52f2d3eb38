from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from otao.domain.errors import Unauthenticated, Unavailable
from otao.integrations.oidc import OidcProvider
from otao.integrations.tenant_manager import Tenant
from otao.security.tenants import TenantDirectory
from otao.security.tokens import TokenVerifier, VerifiedToken
from tests.support import ManualClock
from tests.support.fake_keycloak import (
    FakeKeycloak,
    Realm,
    b64url,
    hs256_token,
    unsigned_token,
)
from tests.support.fake_tenant_manager import StaticTenants

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def realm(keycloak: FakeKeycloak) -> Realm:
    return keycloak.add_realm("tenant-a")


@pytest.fixture
def ec_realm(keycloak: FakeKeycloak) -> Realm:
    return keycloak.add_realm("tenant-b", alg="ES256")


@pytest.fixture
def stranger(keycloak: FakeKeycloak) -> Realm:
    """A realm on the same Keycloak that is no tenant of otao."""
    return keycloak.add_realm("stranger")


@pytest.fixture
async def directory(realm: Realm, ec_realm: Realm) -> TenantDirectory:
    directory = TenantDirectory(
        StaticTenants(
            [
                Tenant("tenant-a-id", realm.name, realm.issuer),
                Tenant("tenant-b-id", ec_realm.name, ec_realm.issuer),
            ]
        )
    )
    await directory.refresh()
    return directory


@pytest.fixture
def key_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def keys(
    http: httpx.AsyncClient, directory: TenantDirectory, key_clock: ManualClock
) -> OidcProvider:
    return OidcProvider(http, directory.knows_issuer, kid_refetch_interval=10, clock=key_clock)


@pytest.fixture
def verifier(directory: TenantDirectory, keys: OidcProvider) -> TokenVerifier:
    return TokenVerifier(directory, keys, leeway=30)


async def rejected(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(Unauthenticated) as raised:
        await verifier.verify(token)
    # The caller learns nothing about which check failed.
    assert raised.value.message == "invalid token"


def now() -> int:
    return int(time.time())


async def test_a_valid_token_yields_its_tenant_and_subject(
    verifier: TokenVerifier, realm: Realm
) -> None:
    verified = await verifier.verify(realm.issue("alice"))

    assert verified == VerifiedToken(
        tenant_id="tenant-a-id",
        subject="alice",
        issuer=realm.issuer,
        claims=verified.claims,
    )
    assert verified.claims["sub"] == "alice"


async def test_an_es256_token_is_accepted(verifier: TokenVerifier, ec_realm: Realm) -> None:
    verified = await verifier.verify(ec_realm.issue("bob"))

    assert (verified.tenant_id, verified.subject) == ("tenant-b-id", "bob")


async def test_an_expired_token_is_rejected(verifier: TokenVerifier, realm: Realm) -> None:
    await rejected(verifier, realm.sign(realm.claims(exp=now() - 31)))


async def test_a_token_expired_within_the_leeway_is_accepted(
    verifier: TokenVerifier, realm: Realm
) -> None:
    assert await verifier.verify(realm.sign(realm.claims(exp=now() - 10)))


async def test_a_token_without_expiry_is_rejected(verifier: TokenVerifier, realm: Realm) -> None:
    await rejected(verifier, realm.sign(realm.claims(exp=None)))


async def test_a_token_not_yet_valid_is_rejected(verifier: TokenVerifier, realm: Realm) -> None:
    await rejected(verifier, realm.sign(realm.claims(nbf=now() + 120)))


async def test_a_token_issued_in_the_future_is_rejected(
    verifier: TokenVerifier, realm: Realm
) -> None:
    await rejected(verifier, realm.sign(realm.claims(iat=now() + 120)))


async def test_a_token_from_a_realm_that_is_no_tenant_is_rejected_without_any_request(
    verifier: TokenVerifier, keycloak: FakeKeycloak, stranger: Realm
) -> None:
    await rejected(verifier, stranger.issue())

    assert keycloak.total() == 0


async def test_a_token_from_an_unknown_issuer_is_rejected_without_any_request(
    verifier: TokenVerifier, keycloak: FakeKeycloak, realm: Realm
) -> None:
    claims = realm.claims(iss="https://attacker.example/realms/tenant-a")

    await rejected(verifier, realm.sign(claims))
    assert keycloak.total() == 0


async def test_a_token_naming_a_tenant_issuer_but_signed_by_another_realm_is_rejected(
    verifier: TokenVerifier, realm: Realm, stranger: Realm
) -> None:
    forged = stranger.sign(realm.claims("admin"), key=stranger.active_key, kid=realm.active_key.kid)

    await rejected(verifier, forged)


async def test_a_token_with_a_tampered_payload_is_rejected(
    verifier: TokenVerifier, realm: Realm
) -> None:
    head, _, signature = realm.issue("alice").split(".")
    payload = b64url(json.dumps(realm.claims("admin")).encode())

    await rejected(verifier, f"{head}.{payload}.{signature}")


async def test_an_unsigned_token_is_rejected_without_any_request(
    verifier: TokenVerifier, keycloak: FakeKeycloak, realm: Realm
) -> None:
    for alg in ("none", "None", "NONE"):
        await rejected(verifier, unsigned_token({"alg": alg, "typ": "JWT"}, realm.claims()))
    assert keycloak.total() == 0


async def test_an_hmac_token_keyed_with_the_public_rsa_key_is_rejected(
    verifier: TokenVerifier, keycloak: FakeKeycloak, realm: Realm
) -> None:
    public_pem = realm.active_key.as_pem(private=False)
    jwks_n = realm.jwks()["keys"][0]["n"].encode()

    for secret in (public_pem, jwks_n):
        await rejected(verifier, hs256_token(secret, realm.claims(), kid=realm.active_key.kid))
    assert keycloak.total() == 0


async def test_a_token_with_critical_header_parameters_is_rejected(
    verifier: TokenVerifier, realm: Realm
) -> None:
    # Validly signed, but "crit"/"b64" (RFC 7797) have no place in an access token.
    await rejected(verifier, realm.sign(realm.claims(), b64=True, crit=["b64"]))


async def test_an_id_token_is_not_accepted_as_an_access_token(
    verifier: TokenVerifier, realm: Realm
) -> None:
    await rejected(verifier, realm.issue(typ="ID"))


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "not-a-token",
        "a.b.c",
        "a.b",
        "a.b.c.d.e",
        "ä.ö.ü",
        f"{b64url(b'[]')}.{b64url(b'[]')}.",
        f"{b64url(json.dumps({'alg': 'RS256'}).encode())}.{b64url(b'not json')}.c2ln",
        f"{b64url(json.dumps({'alg': 'RS256'}).encode())}.{b64url(b'[1]')}.c2ln",
        "x" * 200_000,
    ],
)
async def test_garbage_is_rejected_without_any_request(
    verifier: TokenVerifier, keycloak: FakeKeycloak, garbage: str
) -> None:
    await rejected(verifier, garbage)

    assert keycloak.total() == 0


class TestAudience:
    @pytest.fixture
    def verifier(self, directory: TenantDirectory, keys: OidcProvider) -> TokenVerifier:
        return TokenVerifier(directory, keys, audience="otao")

    async def test_a_token_for_another_audience_is_rejected(
        self, verifier: TokenVerifier, realm: Realm
    ) -> None:
        await rejected(verifier, realm.issue(aud="account"))

    async def test_a_token_without_audience_is_rejected(
        self, verifier: TokenVerifier, realm: Realm
    ) -> None:
        await rejected(verifier, realm.issue())

    @pytest.mark.parametrize("aud", ["otao", ["account", "otao"]])
    async def test_a_token_for_otao_is_accepted(
        self, verifier: TokenVerifier, realm: Realm, aud: Any
    ) -> None:
        assert await verifier.verify(realm.issue(aud=aud))


async def test_a_rotated_key_is_fetched_once_and_then_verifies_tokens(
    verifier: TokenVerifier, keycloak: FakeKeycloak, realm: Realm, key_clock: ManualClock
) -> None:
    await verifier.verify(realm.issue())
    key_clock.now += 11
    realm.rotate()

    await verifier.verify(realm.issue("after-rotation"))
    await verifier.verify(realm.issue("again"))

    assert keycloak.count(keycloak.certs_path("tenant-a")) == 2


async def test_tokens_with_unknown_keys_trigger_at_most_one_refetch_per_interval(
    verifier: TokenVerifier, keycloak: FakeKeycloak, realm: Realm, key_clock: ManualClock
) -> None:
    await verifier.verify(realm.issue())
    key_clock.now += 11
    unpublished = keycloak.new_key()

    for _ in range(10):
        await rejected(verifier, realm.sign(realm.claims(), key=unpublished))

    assert keycloak.count(keycloak.certs_path("tenant-a")) == 2


async def test_a_removed_tenant_stops_working_immediately(
    verifier: TokenVerifier, directory: TenantDirectory, keycloak: FakeKeycloak, realm: Realm
) -> None:
    token = realm.issue()
    await verifier.verify(token)
    requests = keycloak.total()

    directory.remove("tenant-a-id")

    await rejected(verifier, token)
    assert keycloak.total() == requests


async def test_an_unreachable_identity_provider_is_unavailable_not_unauthenticated(
    verifier: TokenVerifier, keycloak: FakeKeycloak, realm: Realm
) -> None:
    token = realm.issue()
    keycloak.fail_mode = "error"

    with pytest.raises(Unavailable):
        await verifier.verify(token)


def test_symmetric_or_unsigned_algorithms_cannot_be_configured(
    directory: TenantDirectory, keys: OidcProvider
) -> None:
    for algorithms in (["RS256", "HS256"], ["none"]):
        with pytest.raises(ValueError, match="not allowed"):
            TokenVerifier(directory, keys, algorithms=algorithms)
