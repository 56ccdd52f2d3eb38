from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from otao.domain.errors import PermissionDenied, Unauthenticated, Unavailable
from otao.integrations.oidc import OidcProvider
from otao.integrations.tenant_manager import Tenant
from otao.integrations.uma import UmaDecisionClient
from otao.security.permissions import (
    SOFTWARE_DELETE,
    SOFTWARE_READ,
    SOFTWARE_UPDATE,
    Authorizer,
)
from otao.security.tenants import TenantDirectory
from otao.security.tokens import TokenVerifier, VerifiedToken
from tests.support import ManualClock
from tests.support.fake_keycloak import UMA_GRANT, FakeKeycloak, Realm
from tests.support.fake_tenant_manager import StaticTenants

pytestmark = pytest.mark.timeout(20)

METER = "application-meter"


@pytest.fixture
def realm(keycloak: FakeKeycloak) -> Realm:
    realm = keycloak.add_realm("tenant-a")
    realm.resource_server = "otao"
    return realm


@pytest.fixture
async def directory(realm: Realm) -> TenantDirectory:
    directory = TenantDirectory(StaticTenants([Tenant("t-a", realm.name, realm.issuer)]))
    await directory.refresh()
    return directory


@pytest.fixture
def oidc(http: httpx.AsyncClient, directory: TenantDirectory) -> OidcProvider:
    return OidcProvider(http, directory.knows_issuer)


@pytest.fixture
def verifier(directory: TenantDirectory, oidc: OidcProvider) -> TokenVerifier:
    return TokenVerifier(directory, oidc)


@pytest.fixture
def authorizer(http: httpx.AsyncClient, oidc: OidcProvider, clock: ManualClock) -> Authorizer:
    return Authorizer(UmaDecisionClient(http, oidc, "otao"), decision_ttl=30, clock=clock)


class Caller:
    """A verified caller: what the interceptor hands to ``Authorizer.require``."""

    def __init__(self, verified: VerifiedToken, raw: str) -> None:
        self.verified = verified
        self.raw = raw


CallerFactory = Callable[..., Awaitable[Caller]]


@pytest.fixture
def caller_factory(verifier: TokenVerifier, realm: Realm) -> CallerFactory:
    async def make(subject: str = "alice", **claims: Any) -> Caller:
        raw = realm.issue(subject, **claims)
        return Caller(await verifier.verify(raw), raw)

    return make


@pytest.fixture
async def reader(realm: Realm, caller_factory: CallerFactory) -> Caller:
    """alice, granted software read on the meter."""
    realm.grant("alice", METER, SOFTWARE_READ)
    return await caller_factory("alice")


def uma_calls(keycloak: FakeKeycloak) -> int:
    return keycloak.count(keycloak.token_path("tenant-a"))


async def require(authorizer: Authorizer, caller: Caller, app: str, scope: str) -> None:
    await authorizer.require(caller.verified, caller.raw, app, scope)


async def denied(authorizer: Authorizer, caller: Caller, app: str, scope: str) -> None:
    with pytest.raises(PermissionDenied) as raised:
        await require(authorizer, caller, app, scope)
    assert raised.value.message == "permission denied"


def rpt(*permissions: object) -> dict[str, Any]:
    return {"permissions": list(permissions)}


class TestPermissionsCarriedByTheToken:
    async def test_a_granted_scope_is_allowed_without_asking_keycloak(
        self, authorizer: Authorizer, caller_factory: CallerFactory, keycloak: FakeKeycloak
    ) -> None:
        caller = await caller_factory(
            authorization=rpt({"rsname": METER, "scopes": [SOFTWARE_READ, SOFTWARE_UPDATE]})
        )

        await require(authorizer, caller, "meter", SOFTWARE_READ)
        await require(authorizer, caller, "meter", SOFTWARE_UPDATE)
        assert uma_calls(keycloak) == 0

    async def test_a_scope_not_granted_is_denied_without_asking_keycloak(
        self, authorizer: Authorizer, caller_factory: CallerFactory, keycloak: FakeKeycloak
    ) -> None:
        caller = await caller_factory(
            authorization=rpt({"rsname": METER, "scopes": [SOFTWARE_READ]})
        )

        await denied(authorizer, caller, "meter", SOFTWARE_DELETE)
        await denied(authorizer, caller, "valve", SOFTWARE_READ)
        assert uma_calls(keycloak) == 0

    @pytest.mark.parametrize(
        "authorization",
        [
            rpt({"rsname": METER}),
            rpt({"rsname": METER, "scopes": SOFTWARE_READ}),
            rpt({"rsid": "x", "scopes": [SOFTWARE_READ]}),
            rpt("application-meter#application:software:read"),
            {"permissions": "all"},
            {},
            "yes",
        ],
    )
    async def test_incomplete_or_malformed_permissions_grant_nothing(
        self, authorizer: Authorizer, caller_factory: CallerFactory, authorization: Any
    ) -> None:
        caller = await caller_factory(authorization=authorization)

        await denied(authorizer, caller, "meter", SOFTWARE_READ)


@dataclass
class Decisions:
    """The authorizer under test with what its tests arrange and count: the realm's grants, the
    callers it issues tokens to, and the UMA requests Keycloak received."""

    authorizer: Authorizer
    caller: CallerFactory
    realm: Realm
    keycloak: FakeKeycloak

    async def require(self, caller: Caller, app: str, scope: str) -> None:
        await require(self.authorizer, caller, app, scope)

    async def denied(self, caller: Caller, app: str, scope: str) -> None:
        await denied(self.authorizer, caller, app, scope)

    def uma_calls(self) -> int:
        return uma_calls(self.keycloak)


@pytest.fixture
def decisions(
    authorizer: Authorizer, caller_factory: CallerFactory, realm: Realm, keycloak: FakeKeycloak
) -> Decisions:
    return Decisions(authorizer, caller_factory, realm, keycloak)


class TestKeycloakDecisions:
    async def test_a_grant_in_keycloak_allows_the_call(self, decisions: Decisions) -> None:
        decisions.realm.grant("alice", METER, SOFTWARE_UPDATE)
        caller = await decisions.caller("alice")

        await decisions.require(caller, "meter", SOFTWARE_UPDATE)

        assert decisions.keycloak.uma_requests == [
            {
                "grant_type": UMA_GRANT,
                "audience": "otao",
                "permission": f"{METER}#{SOFTWARE_UPDATE}",
                "response_mode": "decision",
            }
        ]

    async def test_no_grant_in_keycloak_denies_the_call(self, decisions: Decisions) -> None:
        decisions.realm.grant("alice", METER, SOFTWARE_READ)
        caller = await decisions.caller("bob")

        await decisions.denied(caller, "meter", SOFTWARE_READ)

    @pytest.mark.parametrize("granted", [True, False])
    async def test_a_decision_is_cached_so_the_second_call_makes_no_request(
        self, decisions: Decisions, granted: bool
    ) -> None:
        if granted:
            decisions.realm.grant("alice", METER, SOFTWARE_READ)
        caller = await decisions.caller("alice")

        for _ in range(2):
            if granted:
                await decisions.require(caller, "meter", SOFTWARE_READ)
            else:
                await decisions.denied(caller, "meter", SOFTWARE_READ)
        assert decisions.uma_calls() == 1

    async def test_a_cached_decision_expires_after_its_ttl(
        self, decisions: Decisions, clock: ManualClock
    ) -> None:
        decisions.realm.grant("alice", METER, SOFTWARE_DELETE)
        caller = await decisions.caller("alice")
        await decisions.require(caller, "meter", SOFTWARE_DELETE)

        decisions.realm.grants.clear()
        clock.now += 29
        await decisions.require(caller, "meter", SOFTWARE_DELETE)
        clock.now += 1
        await decisions.denied(caller, "meter", SOFTWARE_DELETE)
        assert decisions.uma_calls() == 2

    async def test_decisions_are_cached_per_token_resource_and_scope(
        self, decisions: Decisions
    ) -> None:
        decisions.realm.grant("alice", METER, SOFTWARE_READ)
        first = await decisions.caller("alice")
        second = await decisions.caller("alice", jti="another-token")

        await decisions.require(first, "meter", SOFTWARE_READ)
        await decisions.denied(first, "meter", SOFTWARE_UPDATE)
        await decisions.denied(first, "valve", SOFTWARE_READ)
        await decisions.require(second, "meter", SOFTWARE_READ)
        assert decisions.uma_calls() == 4

    async def test_concurrent_identical_checks_share_one_request(
        self,
        authorizer: Authorizer,
        reader: Caller,
        keycloak: FakeKeycloak,
    ) -> None:
        caller = reader

        await asyncio.gather(
            *(require(authorizer, caller, "meter", SOFTWARE_READ) for _ in range(10))
        )
        assert uma_calls(keycloak) == 1

    @pytest.mark.parametrize("mode", ["error", "drop"])
    async def test_a_keycloak_outage_is_unavailable_and_not_cached(
        self,
        authorizer: Authorizer,
        reader: Caller,
        keycloak: FakeKeycloak,
        mode: str,
    ) -> None:
        caller = reader
        keycloak.fail_mode = mode  # type: ignore[assignment]

        with pytest.raises(Unavailable):
            await require(authorizer, caller, "meter", SOFTWARE_READ)

        keycloak.fail_mode = None
        await require(authorizer, caller, "meter", SOFTWARE_READ)

    async def test_a_token_keycloak_no_longer_accepts_is_unauthenticated(
        self, authorizer: Authorizer, caller_factory: CallerFactory, realm: Realm
    ) -> None:
        realm.grant("alice", METER, SOFTWARE_READ)
        caller = await caller_factory("alice")
        realm.rotate(keep_old=False)  # the fake can no longer verify the caller's token

        with pytest.raises(Unauthenticated):
            await require(authorizer, caller, "meter", SOFTWARE_READ)

    async def test_a_misconfigured_audience_denies(
        self,
        http: httpx.AsyncClient,
        oidc: OidcProvider,
        caller_factory: CallerFactory,
        realm: Realm,
    ) -> None:
        realm.grant("alice", METER, SOFTWARE_READ)
        authorizer = Authorizer(UmaDecisionClient(http, oidc, "not-otao"))
        caller = await caller_factory("alice")

        await denied(authorizer, caller, "meter", SOFTWARE_READ)


@pytest.mark.parametrize(
    "name", ["", "meter#application:software:delete", "a,b", "me ter", "meter\n", "\x00"]
)
async def test_application_names_that_could_alter_the_permission_are_denied_without_a_request(
    authorizer: Authorizer, caller_factory: CallerFactory, keycloak: FakeKeycloak, name: str
) -> None:
    caller = await caller_factory("alice")

    await denied(authorizer, caller, name, SOFTWARE_READ)
    assert uma_calls(keycloak) == 0


async def test_an_unknown_scope_is_a_programming_error(
    authorizer: Authorizer, caller_factory: CallerFactory
) -> None:
    caller = await caller_factory("alice")

    with pytest.raises(ValueError, match="scope"):
        await require(authorizer, caller, "meter", "application:software:admin")
