from __future__ import annotations

import asyncio

import httpx
import pytest

from otao.domain.errors import Unauthenticated, Unavailable
from otao.integrations.oidc import OidcProvider
from tests.support import ManualClock
from tests.support.fake_keycloak import FakeKeycloak, Realm

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def realm(keycloak: FakeKeycloak) -> Realm:
    return keycloak.add_realm("tenant-a")


@pytest.fixture
def known() -> set[str]:
    return set()


@pytest.fixture
def provider(
    http: httpx.AsyncClient, realm: Realm, clock: ManualClock, known: set[str]
) -> OidcProvider:
    known.add(realm.issuer)
    return OidcProvider(
        http, known.__contains__, kid_refetch_interval=10, jwks_max_age=3600, clock=clock
    )


def kid_of(realm: Realm) -> str:
    kid = realm.active_key.kid
    assert kid is not None
    return kid


async def test_discovery_and_keys_are_fetched_once_and_cached(
    provider: OidcProvider, keycloak: FakeKeycloak, realm: Realm
) -> None:
    for _ in range(3):
        keys = await provider.key_set(realm.issuer, kid_of(realm))
        assert [k.kid for k in keys] == [kid_of(realm)]

    assert keycloak.count(keycloak.discovery_path("tenant-a")) == 1
    assert keycloak.count(keycloak.certs_path("tenant-a")) == 1


async def test_metadata_names_the_realms_token_endpoint(
    provider: OidcProvider, keycloak: FakeKeycloak, realm: Realm
) -> None:
    metadata = await provider.metadata(realm.issuer)

    assert metadata.token_endpoint == keycloak.token_url("tenant-a")
    assert metadata.jwks_uri == keycloak.url + keycloak.certs_path("tenant-a")


async def test_concurrent_first_uses_share_one_fetch(
    provider: OidcProvider, keycloak: FakeKeycloak, realm: Realm
) -> None:
    await asyncio.gather(*(provider.key_set(realm.issuer, kid_of(realm)) for _ in range(10)))

    assert keycloak.count(keycloak.certs_path("tenant-a")) == 1


async def test_an_unknown_issuer_is_refused_without_any_request(
    provider: OidcProvider, keycloak: FakeKeycloak
) -> None:
    other = keycloak.add_realm("not-a-tenant")

    with pytest.raises(Unauthenticated):
        await provider.key_set(other.issuer, None)
    with pytest.raises(Unauthenticated):
        await provider.metadata(other.issuer)
    assert keycloak.total() == 0


async def test_a_rotated_key_is_fetched_once_when_a_token_names_it(
    provider: OidcProvider, keycloak: FakeKeycloak, realm: Realm, clock: ManualClock
) -> None:
    await provider.key_set(realm.issuer, kid_of(realm))
    clock.now += 11
    realm.rotate()

    keys = await provider.key_set(realm.issuer, kid_of(realm))
    await provider.key_set(realm.issuer, kid_of(realm))

    assert kid_of(realm) in [k.kid for k in keys]
    assert keycloak.count(keycloak.certs_path("tenant-a")) == 2


async def test_unknown_kids_refetch_at_most_once_per_interval(
    provider: OidcProvider, keycloak: FakeKeycloak, realm: Realm, clock: ManualClock
) -> None:
    await provider.key_set(realm.issuer, kid_of(realm))
    clock.now += 11

    for i in range(5):
        keys = await provider.key_set(realm.issuer, f"made-up-{i}")
        assert f"made-up-{i}" not in [k.kid for k in keys]
    assert keycloak.count(keycloak.certs_path("tenant-a")) == 2

    clock.now += 9  # still within 10 s of the last fetch
    await provider.key_set(realm.issuer, "made-up-again")
    assert keycloak.count(keycloak.certs_path("tenant-a")) == 2

    clock.now += 1
    await provider.key_set(realm.issuer, "made-up-again")
    assert keycloak.count(keycloak.certs_path("tenant-a")) == 3


async def test_old_keys_are_refreshed_after_their_maximum_age(
    provider: OidcProvider, keycloak: FakeKeycloak, realm: Realm, clock: ManualClock
) -> None:
    old = kid_of(realm)
    await provider.key_set(realm.issuer, old)
    realm.rotate(keep_old=False)
    clock.now += 3600

    keys = await provider.key_set(realm.issuer, None)

    assert [k.kid for k in keys] == [kid_of(realm)]


async def test_stale_keys_stay_in_use_while_the_identity_provider_is_down(
    provider: OidcProvider, keycloak: FakeKeycloak, realm: Realm, clock: ManualClock
) -> None:
    kid = kid_of(realm)
    await provider.key_set(realm.issuer, kid)
    clock.now += 3600
    keycloak.fail_mode = "error"

    keys = await provider.key_set(realm.issuer, kid)

    assert [k.kid for k in keys] == [kid]


async def test_an_unknown_kid_while_the_identity_provider_is_down_is_unavailable(
    provider: OidcProvider, keycloak: FakeKeycloak, realm: Realm, clock: ManualClock
) -> None:
    await provider.key_set(realm.issuer, kid_of(realm))
    clock.now += 11
    keycloak.fail_mode = "drop"

    with pytest.raises(Unavailable):
        await provider.key_set(realm.issuer, "new-kid")


async def test_an_unreachable_identity_provider_is_unavailable(
    provider: OidcProvider, keycloak: FakeKeycloak, realm: Realm
) -> None:
    keycloak.stop()

    with pytest.raises(Unavailable):
        await provider.key_set(realm.issuer, None)


async def test_a_discovery_document_for_another_issuer_is_refused(
    http: httpx.AsyncClient, keycloak: FakeKeycloak, realm: Realm
) -> None:
    # The realm is reachable under a second name (127.0.0.1 vs localhost); its discovery
    # document names the first one, which must not be accepted for the second.
    alias = realm.issuer.replace("127.0.0.1", "localhost")
    provider = OidcProvider(http, {alias}.__contains__)

    with pytest.raises(Unavailable):
        await provider.key_set(alias, None)


async def test_forget_drops_cached_keys(
    provider: OidcProvider, keycloak: FakeKeycloak, realm: Realm
) -> None:
    await provider.key_set(realm.issuer, None)
    provider.forget(realm.issuer)
    await provider.key_set(realm.issuer, None)

    assert keycloak.count(keycloak.certs_path("tenant-a")) == 2
