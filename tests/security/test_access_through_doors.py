"""Authentication and authorization of a secured otao, through gRPC and REST via a real Envoy.

Real protocols only: a fake Keycloak (discovery, JWKS, client credentials, UMA decisions) and a
fake Tenant Manager over loopback HTTP, tenant events over real NATS. Each 401 looks the same
to the caller whichever check failed; 403 follows Kaa's scopes from the token's permissions
claim or, without it, from the tenant realm's UMA decision.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import nats
import pytest

from otao.messaging.avro import AvroCodec
from otao.messaging.records import TenantUnregisteredEvent, TenantUpdatedEvent
from otao.messaging.subjects import TleEventType, tle_subject
from otao.rpc.access import DELETE, READ, UPDATE
from tests.security.doors import (
    DOORS,
    Door,
    Result,
    Secured,
    TenantUnderTest,
    eventually,
)
from tests.support.fake_keycloak import FakeKeycloak, b64url, hs256_token, unsigned_token

pytestmark = pytest.mark.timeout(60)

SOFTWARE = "/kaa.otao.v1.SoftwareService/"
GET_SETTINGS = SOFTWARE + "GetApplicationSettings"
LIST = SOFTWARE + "ListSoftwareJson"
CREATE = SOFTWARE + "CreateSoftware"
GET = SOFTWARE + "GetSoftware"
DELETE_SOFTWARE = SOFTWARE + "DeleteSoftware"
KETTLE = {"application_name": "kettle"}
# Words that would tell a caller which check failed.
TELLTALES = ("expire", "signature", "issuer", "tenant", "alg", "kid", "key", "before", "nbf")


def now() -> int:
    return int(time.time())


def definition(version: str) -> dict[str, object]:
    return {
        "version": version,
        "upgradable_from": [],
        "specification": {"image": f"fw-{version}.bin"},
        "rollout_strategy": "general",
    }


def create_fields(version: str) -> dict[str, object]:
    return {**KETTLE, "software": definition(version)}


def fresh_version(major: int) -> str:
    """A random version of kettle: not one another test (or door) is likely to have created."""
    return f"{major}.{uuid.uuid4().int % 10_000}.0"


async def read(stack: Secured, door: Door, token: str | None) -> Result:
    return await stack.call(door, GET_SETTINGS, KETTLE, token)


def assert_unauthenticated(result: Result, door: Door, reference: str) -> None:
    assert result.code == grpc.StatusCode.UNAUTHENTICATED, result
    if door == "rest":
        assert result.http_status == 401, result
    assert result.message == reference
    assert not any(word in result.message.lower() for word in TELLTALES), result.message


def assert_denied(result: Result, door: Door) -> None:
    assert result.code == grpc.StatusCode.PERMISSION_DENIED, result
    if door == "rest":
        assert result.http_status == 403, result


def assert_ok(result: Result, door: Door) -> None:
    assert result.code == grpc.StatusCode.OK, result
    if door == "rest":
        assert result.http_status == 200, result


@pytest.fixture(scope="module")
async def reference_message(secured: Secured) -> str:
    """What otao says to a caller without a valid token (every 401 must say exactly this)."""
    result = await secured.grpc(GET_SETTINGS, KETTLE, "garbage")
    assert result.code == grpc.StatusCode.UNAUTHENTICATED
    assert result.message
    return result.message


# ---------------------------------------------------------------------------------------------
# 401


@dataclass(frozen=True)
class BadCredential:
    token: str | None = None
    authorization: str = ""


def _tampered(tenant: TenantUnderTest) -> BadCredential:
    head, _, signature = tenant.token().split(".")
    claims = tenant.realm.claims("admin", authorization={"permissions": []})
    return BadCredential(f"{head}.{b64url(json.dumps(claims).encode())}.{signature}")


def _foreign_key_same_kid(stack: Secured) -> BadCredential:
    realm = stack.a.realm
    impostor = stack.keycloak.new_key()
    claims = realm.claims(authorization={"permissions": []})
    return BadCredential(realm.sign(claims, key=impostor, kid=realm.active_key.kid))


def _unpublished_key(stack: Secured) -> BadCredential:
    realm = stack.a.realm
    return BadCredential(realm.sign(realm.claims(), key=stack.keycloak.new_key()))


def _hmac_with_public_key(stack: Secured) -> BadCredential:
    realm = stack.a.realm
    public_pem = realm.active_key.as_pem(private=False)
    claims = realm.claims(authorization={"permissions": []})
    return BadCredential(hs256_token(public_pem, claims, kid=realm.active_key.kid))


BAD_CREDENTIALS: dict[str, Callable[[Secured], BadCredential]] = {
    "missing": lambda s: BadCredential(),
    "bearer without a token": lambda s: BadCredential(authorization="Bearer"),
    "basic scheme": lambda s: BadCredential(authorization="Basic b3RhbzpvdGFv"),
    "garbage": lambda s: BadCredential("garbage"),
    "three garbage parts": lambda s: BadCredential("a.b.c"),
    "expired": lambda s: BadCredential(s.a.token(iat=now() - 7200, exp=now() - 3600)),
    "not yet valid": lambda s: BadCredential(s.a.token(nbf=now() + 3600)),
    "issued in the future": lambda s: BadCredential(s.a.token(iat=now() + 3600)),
    "without expiry": lambda s: BadCredential(s.a.token(exp=None)),
    "realm of no tenant": lambda s: BadCredential(s.stranger.issue("user-a")),
    "tampered payload": lambda s: _tampered(s.a),
    "foreign key under the realm's kid": _foreign_key_same_kid,
    "unpublished key": _unpublished_key,
    "alg none": lambda s: BadCredential(
        unsigned_token({"alg": "none", "typ": "JWT"}, s.a.realm.claims())
    ),
    "HS256 keyed with the RSA public key": _hmac_with_public_key,
    "refresh token": lambda s: BadCredential(s.a.token(typ="Refresh")),
}


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("case", list(BAD_CREDENTIALS))
async def test_every_invalid_credential_is_unauthenticated_with_the_same_message(
    secured: Secured, reference_message: str, case: str, door: Door
) -> None:
    credential = BAD_CREDENTIALS[case](secured)
    if door == "grpc":
        result = await secured.grpc(
            GET_SETTINGS, KETTLE, credential.token, authorization=credential.authorization
        )
    else:
        result = await secured.rest_call(
            GET_SETTINGS, KETTLE, credential.token, authorization=credential.authorization
        )

    assert_unauthenticated(result, door, reference_message)


@pytest.mark.parametrize("door", DOORS)
async def test_a_valid_token_of_the_same_realm_is_accepted(secured: Secured, door: Door) -> None:
    """The control for the 401 cases: they fail for the reason named, not for another."""
    result = await read(secured, door, secured.a.token())

    assert_ok(result, door)
    assert result.body == {"consentRequired": False}


@pytest.mark.parametrize("door", DOORS)
async def test_a_token_of_a_realm_that_is_no_tenant_causes_no_request_to_that_realm(
    secured: Secured, reference_message: str, door: Door
) -> None:
    keycloak, stranger = secured.keycloak, secured.stranger.name
    # Signed correctly by that realm, and carrying every permission.
    token = secured.stranger.issue("user-a", authorization={"permissions": []})

    result = await read(secured, door, token)

    assert_unauthenticated(result, door, reference_message)
    assert keycloak.count(keycloak.discovery_path(stranger)) == 0
    assert keycloak.count(keycloak.certs_path(stranger)) == 0
    assert keycloak.count(keycloak.token_path(stranger)) == 0


@pytest.mark.parametrize("door", DOORS)
async def test_a_token_naming_an_issuer_elsewhere_causes_no_request_at_all(
    secured: Secured, reference_message: str, door: Door
) -> None:
    with FakeKeycloak() as elsewhere:
        realm = elsewhere.add_realm(secured.a.realm.name)
        # Same realm name as tenant A's, on another server: still not tenant A's issuer.
        token = realm.issue("user-a", authorization={"permissions": []})

        result = await read(secured, door, token)

        assert_unauthenticated(result, door, reference_message)
        assert elsewhere.total() == 0


# ---------------------------------------------------------------------------------------------
# 403


@pytest.mark.parametrize("door", DOORS)
async def test_a_read_only_token_reads_but_can_neither_create_nor_delete(
    secured: Secured, door: Door
) -> None:
    tenant = secured.a
    version = fresh_version(1)
    assert_ok(await secured.call(door, CREATE, create_fields(version), tenant.token()), door)
    read_only = tenant.token(f"reader-{door}", scopes=(READ,))
    uma_before = len(secured.keycloak.uma_requests)

    assert_ok(await secured.call(door, LIST, KETTLE, read_only), door)
    assert_denied(await secured.call(door, CREATE, create_fields("9.9.9"), read_only), door)
    assert_denied(
        await secured.call(door, DELETE_SOFTWARE, {**KETTLE, "version": version}, read_only), door
    )

    # The definition is still there; the token's claim decided, Keycloak was not asked.
    still = await secured.call(door, GET, {**KETTLE, "version": version}, read_only)
    assert_ok(still, door)
    assert still.body["version"] == version
    assert len(secured.keycloak.uma_requests) == uma_before


@pytest.mark.parametrize("door", DOORS)
async def test_permissions_on_another_application_do_not_count(
    secured: Secured, door: Door
) -> None:
    token = secured.a.token(application="boiler")

    assert_denied(await read(secured, door, token), door)


@pytest.mark.parametrize("door", DOORS)
async def test_an_empty_permissions_claim_denies_without_asking_keycloak(
    secured: Secured, door: Door
) -> None:
    uma_before = len(secured.keycloak.uma_requests)

    assert_denied(await read(secured, door, secured.a.token(scopes=())), door)
    assert len(secured.keycloak.uma_requests) == uma_before


@pytest.mark.parametrize("door", DOORS)
async def test_without_a_permissions_claim_the_tenant_realms_uma_decision_decides(
    secured: Secured, door: Door
) -> None:
    tenant = secured.a
    subject = f"uma-user-{door}"
    tenant.realm.grant(subject, "application-kettle", READ)
    token = tenant.token(subject, scopes=None)
    uma_before = len(secured.keycloak.uma_requests)
    version = fresh_version(2)

    assert_ok(await read(secured, door, token), door)
    assert_denied(await secured.call(door, CREATE, create_fields(version), token), door)

    asked = secured.keycloak.uma_requests[uma_before:]
    assert {
        (r["grant_type"], r["audience"], r["response_mode"], r["permission"]) for r in asked
    } == {
        (
            "urn:ietf:params:oauth:grant-type:uma-ticket",
            "otao",
            "decision",
            f"application-kettle#{scope}",
        )
        for scope in (READ, UPDATE)
    }
    # Nothing was created.
    missing = await secured.call(door, GET, {**KETTLE, "version": version}, tenant.token())
    assert missing.code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("door", DOORS)
async def test_a_uma_grant_of_delete_allows_the_delete(secured: Secured, door: Door) -> None:
    tenant = secured.a
    version = fresh_version(3)
    assert_ok(await secured.call(door, CREATE, create_fields(version), tenant.token()), door)
    subject = f"uma-deleter-{door}"
    tenant.realm.grant(subject, "application-kettle", DELETE)

    deleted = await secured.call(
        door, DELETE_SOFTWARE, {**KETTLE, "version": version}, tenant.token(subject, scopes=None)
    )

    assert_ok(deleted, door)
    gone = await secured.call(door, GET, {**KETTLE, "version": version}, tenant.token())
    assert gone.code == grpc.StatusCode.NOT_FOUND


# ---------------------------------------------------------------------------------------------
# Key rotation


@pytest.mark.parametrize("door", DOORS)
async def test_a_token_signed_with_a_rotated_in_key_works_without_a_restart(
    secured: Secured, door: Door
) -> None:
    tenant = secured.b
    keycloak = secured.keycloak
    assert_ok(await read(secured, door, tenant.token()), door)  # the old key is cached now
    certs_before = keycloak.count(keycloak.certs_path(tenant.realm.name))

    tenant.realm.rotate(keep_old=False)
    fresh = tenant.token()

    # otao may refetch keys for an unknown kid once per (test-shortened) rate-limit interval.
    async def accepted() -> bool:
        return (await read(secured, door, fresh)).code == grpc.StatusCode.OK

    await eventually(accepted, timeout=5, interval=0.1)
    assert keycloak.count(keycloak.certs_path(tenant.realm.name)) > certs_before


# ---------------------------------------------------------------------------------------------
# Tenant lifecycle (21/TLE)


async def publish(stack: Secured, subject: str, payload: bytes) -> None:
    client = await nats.connect(stack.nats_url)
    try:
        await client.publish(subject, payload)
        await client.flush()
    finally:
        await client.close()


async def test_an_unregistered_tenants_tokens_stop_working_at_once(secured: Secured) -> None:
    gone, other = secured.c, secured.a
    gone_token, other_token = gone.token(), other.token()
    for door in DOORS:
        assert_ok(await read(secured, door, gone_token), door)
    listings_before = len(secured.tenant_manager.queries)
    # The Tenant Manager forgets the tenant and tells everyone.
    secured.tenant_manager.remove_tenant(gone.id)
    event = TenantUnregisteredEvent(
        correlation_id=uuid.uuid4().hex,
        timestamp=int(time.time() * 1000),
        tenant_id=gone.id,
        originator_replica_id="tenant-manager-1",
    )

    await publish(
        secured,
        tle_subject("tenant-manager", TleEventType.UNREGISTERED),
        AvroCodec().encode(event),
    )

    async def rejected_everywhere() -> bool:
        results = [await read(secured, door, gone_token) for door in DOORS]
        return all(r.code == grpc.StatusCode.UNAUTHENTICATED for r in results)

    await eventually(rejected_everywhere, timeout=5)
    # The event did it, not a periodic refresh of the tenant list.
    assert len(secured.tenant_manager.queries) == listings_before
    for door in DOORS:
        result = await read(secured, door, gone_token)
        assert result.code == grpc.StatusCode.UNAUTHENTICATED
        assert_ok(await read(secured, door, other_token), door)
        # A fresh token from the gone tenant's realm does not work either.
        again = await read(secured, door, gone.token("someone-else"))
        assert again.code == grpc.StatusCode.UNAUTHENTICATED


async def test_a_tenant_registered_later_is_served_after_its_updated_event(
    secured: Secured,
) -> None:
    tenant_id = f"tenant-d-{secured.suffix}"
    realm = secured.keycloak.add_realm("realm-d")
    secured.otao.add_application("kettle", (f"kettle-d-{secured.suffix}-v1",), tenant_id)
    tenant = TenantUnderTest(tenant_id, realm, "kettle", f"kettle-d-{secured.suffix}-v1")
    assert (await read(secured, "rest", tenant.token())).code == grpc.StatusCode.UNAUTHENTICATED
    secured.tenant_manager.add_tenant(tenant_id, realm.name)
    event = TenantUpdatedEvent(
        correlation_id=uuid.uuid4().hex,
        timestamp=int(time.time() * 1000),
        tenant_id=tenant_id,
        originator_replica_id="tenant-manager-1",
    )

    await publish(
        secured, tle_subject("tenant-manager", TleEventType.UPDATED), AvroCodec().encode(event)
    )

    await secured.wait_for_tenants(tenant_id, timeout=5)
    for door in DOORS:
        assert_ok(await read(secured, door, tenant.token()), door)


# ---------------------------------------------------------------------------------------------
# Service-to-service calls


async def test_calls_to_the_tenant_manager_carry_a_client_credentials_token(
    secured: Secured,
) -> None:
    keycloak, service = secured.keycloak, secured.service_realm

    assert secured.tenant_manager.queries, "otao never listed the tenants"
    assert secured.service_tokens.seen
    # Every token the Tenant Manager saw was issued by the fake Keycloak's service realm to
    # otao's client (checked by the fake itself, see ServiceTokenCheck) ...
    assert all(secured.service_tokens.verdicts)
    # ... through the client credentials grant at that realm's token endpoint.
    assert keycloak.count(keycloak.token_path(service.name)) >= 1
