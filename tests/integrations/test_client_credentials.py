from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from otao.domain.errors import Unavailable
from otao.integrations.client_credentials import ServiceTokenSource
from tests.support import ManualClock
from tests.support.fake_keycloak import FakeKeycloak, Realm

pytestmark = pytest.mark.timeout(20)

REALM = "kaa"


@pytest.fixture
def realm(keycloak: FakeKeycloak) -> Realm:
    realm = keycloak.add_realm(REALM)
    realm.clients["otao"] = "s3cret"
    realm.token_lifetime = 300
    return realm


@pytest.fixture
async def source(
    keycloak: FakeKeycloak, realm: Realm, clock: ManualClock
) -> AsyncIterator[ServiceTokenSource]:
    tokens = ServiceTokenSource(
        keycloak.token_url(REALM), "otao", "s3cret", refresh_margin=30, timeout=5, clock=clock
    )
    yield tokens
    await tokens.aclose()


async def test_a_token_is_fetched_with_client_credentials_and_is_signed_by_the_realm(
    source: ServiceTokenSource, keycloak: FakeKeycloak, realm: Realm
) -> None:
    from joserfc import jwt
    from joserfc.jwk import KeySet

    token = await source.token()

    claims = jwt.decode(token, KeySet(list(realm.keys))).claims
    assert claims["sub"] == "service-account-otao"
    assert keycloak.count(keycloak.token_path(REALM)) == 1


async def test_the_token_is_reused_until_shortly_before_it_expires(
    source: ServiceTokenSource, keycloak: FakeKeycloak, clock: ManualClock
) -> None:
    first = await source.token()
    clock.now += 300 - 30 - 1  # one second before the refresh margin starts
    assert await source.token() == first
    assert keycloak.count(keycloak.token_path(REALM)) == 1

    clock.now += 1  # inside the margin: fetch a new one
    await source.token()
    assert keycloak.count(keycloak.token_path(REALM)) == 2


async def test_concurrent_callers_share_one_token_request(
    source: ServiceTokenSource, keycloak: FakeKeycloak
) -> None:
    tokens = await asyncio.gather(*(source.token() for _ in range(20)))

    assert len(set(tokens)) == 1
    assert keycloak.count(keycloak.token_path(REALM)) == 1


async def test_invalidate_forces_a_new_token_on_the_next_call(
    source: ServiceTokenSource, keycloak: FakeKeycloak
) -> None:
    await source.token()
    source.invalidate()
    await source.token()

    assert keycloak.count(keycloak.token_path(REALM)) == 2


async def test_a_token_without_lifetime_is_not_cached(
    source: ServiceTokenSource, keycloak: FakeKeycloak, realm: Realm
) -> None:
    realm.token_lifetime = None
    await source.token()
    await source.token()

    assert keycloak.count(keycloak.token_path(REALM)) == 2


async def test_client_secret_sent_in_the_form_body_also_works(
    keycloak: FakeKeycloak, realm: Realm
) -> None:
    tokens = ServiceTokenSource(
        keycloak.token_url(REALM), "otao", "s3cret", auth_method="client_secret_post"
    )
    try:
        assert await tokens.token()
    finally:
        await tokens.aclose()


async def test_a_rejected_client_secret_is_reported_as_unavailable(
    keycloak: FakeKeycloak, realm: Realm
) -> None:
    tokens = ServiceTokenSource(keycloak.token_url(REALM), "otao", "wrong", timeout=5)
    try:
        with pytest.raises(Unavailable) as raised:
            await tokens.token()
    finally:
        await tokens.aclose()
    assert "s3cret" not in raised.value.message
    assert "wrong" not in raised.value.message


@pytest.mark.parametrize("mode", ["error", "drop"])
async def test_a_failing_identity_provider_is_reported_as_unavailable(
    source: ServiceTokenSource, keycloak: FakeKeycloak, mode: str
) -> None:
    keycloak.fail_mode = mode  # type: ignore[assignment]

    with pytest.raises(Unavailable):
        await source.token()


async def test_an_unreachable_identity_provider_is_reported_as_unavailable(
    source: ServiceTokenSource, keycloak: FakeKeycloak
) -> None:
    keycloak.stop()

    with pytest.raises(Unavailable):
        await source.token()


async def test_a_failed_fetch_does_not_poison_the_cache(
    source: ServiceTokenSource, keycloak: FakeKeycloak
) -> None:
    keycloak.fail_mode = "error"
    with pytest.raises(Unavailable):
        await source.token()

    keycloak.fail_mode = None
    assert await source.token()
