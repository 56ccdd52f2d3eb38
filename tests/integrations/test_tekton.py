from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from otao.domain.applications import ApplicationConfig, ConfigScope
from otao.domain.errors import Unavailable
from otao.integrations.tekton import TektonClient
from tests.support.fake_tekton import FakeTekton

pytestmark = pytest.mark.timeout(20)


class CountingTokens:
    """A token source handing out numbered tokens, so tests see when a new one was taken."""

    def __init__(self) -> None:
        self.issued = 0
        self.current: str | None = None

    async def token(self) -> str:
        if self.current is None:
            self.issued += 1
            self.current = f"token-{self.issued}"
        return self.current

    def invalidate(self) -> None:
        self.current = None


@pytest.fixture
def tekton() -> Iterator[FakeTekton]:
    with FakeTekton(instance="otao") as server:
        server.add_application("t1", "meter", ["meter-v1", "meter-v2"], consent_required=True)
        server.add_application("t1", "valve", ["valve-v1"])
        server.add_application("t2", "meter", ["meter-v1"], consent_required=False)
        yield server


@pytest.fixture
def tokens() -> CountingTokens:
    return CountingTokens()


@pytest.fixture
def client(http: httpx.AsyncClient, tekton: FakeTekton, tokens: CountingTokens) -> TektonClient:
    return TektonClient(http, tekton.url, "otao", tokens)


async def test_fetching_everything_returns_every_application_of_every_tenant(
    client: TektonClient, tekton: FakeTekton
) -> None:
    configs = await client.fetch()

    assert configs == [
        ApplicationConfig("meter", "t1", ("meter-v1", "meter-v2"), consent_required=True),
        ApplicationConfig("valve", "t1", ("valve-v1",), consent_required=False),
        ApplicationConfig("meter", "t2", ("meter-v1",), consent_required=False),
    ]
    assert tekton.queries == [{}]


async def test_fetching_a_tenant_returns_only_its_applications(
    client: TektonClient, tekton: FakeTekton
) -> None:
    configs = await client.fetch(ConfigScope(tenant_id="t1"))

    assert [(c.tenant_id, c.name) for c in configs] == [("t1", "meter"), ("t1", "valve")]
    assert tekton.queries == [{"tenantId": "t1"}]


async def test_fetching_an_application_returns_that_application_only(
    client: TektonClient, tekton: FakeTekton
) -> None:
    configs = await client.fetch(ConfigScope(tenant_id="t2", app_name="meter"))

    assert configs == [ApplicationConfig("meter", "t2", ("meter-v1",))]
    assert tekton.queries == [{"tenantId": "t2", "appName": "meter"}]


async def test_fetching_an_application_version_returns_its_application_with_that_version(
    client: TektonClient, tekton: FakeTekton
) -> None:
    scope = ConfigScope(tenant_id="t1", app_name="meter", app_version_name="meter-v2")

    configs = await client.fetch(scope)

    assert configs == [ApplicationConfig("meter", "t1", ("meter-v2",), consent_required=True)]
    assert tekton.queries == [{"tenantId": "t1", "appName": "meter", "appVersionName": "meter-v2"}]


async def test_a_deleted_application_comes_back_as_an_empty_scope(
    client: TektonClient, tekton: FakeTekton
) -> None:
    assert await client.fetch(ConfigScope(tenant_id="t1", app_name="gone")) == []


async def test_entries_outside_the_asked_scope_are_dropped(
    client: TektonClient, tekton: FakeTekton
) -> None:
    # A Tekton that ignores the filter must not make otao apply t2's config to t1's scope.
    tekton.ignore_filters = True

    configs = await client.fetch(ConfigScope(tenant_id="t1"))

    assert {c.tenant_id for c in configs} == {"t1"}


def test_a_narrow_scope_without_its_wider_names_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="tenant"):
        ConfigScope(app_name="meter")
    with pytest.raises(ValueError, match="application"):
        ConfigScope(tenant_id="t1", app_version_name="meter-v1")


async def test_requests_carry_the_service_token(client: TektonClient, tekton: FakeTekton) -> None:
    await client.fetch()

    assert tekton.tokens_seen == ["token-1"]


async def test_a_rejected_service_token_is_replaced_and_the_request_retried_once(
    client: TektonClient, tekton: FakeTekton, tokens: CountingTokens
) -> None:
    tekton.accepts = lambda token: token != "token-1"

    configs = await client.fetch()

    assert len(configs) == 3
    assert tekton.tokens_seen == ["token-1", "token-2"]


async def test_a_token_rejected_twice_is_unavailable(
    client: TektonClient, tekton: FakeTekton
) -> None:
    tekton.accepts = lambda token: False

    with pytest.raises(Unavailable):
        await client.fetch()
    assert len(tekton.tokens_seen) == 2


@pytest.mark.parametrize("mode", ["error", "drop"])
async def test_a_failing_tekton_is_unavailable(
    client: TektonClient, tekton: FakeTekton, mode: str
) -> None:
    tekton.fail_mode = mode  # type: ignore[assignment]

    with pytest.raises(Unavailable, match="tekton unavailable"):
        await client.fetch(ConfigScope(tenant_id="t1"))


async def test_an_unreachable_tekton_is_unavailable(
    client: TektonClient, tekton: FakeTekton
) -> None:
    tekton.stop()

    with pytest.raises(Unavailable):
        await client.fetch()


async def test_an_unknown_service_instance_is_unavailable(
    http: httpx.AsyncClient, tekton: FakeTekton, tokens: CountingTokens
) -> None:
    client = TektonClient(http, tekton.url, "not-otao", tokens)

    with pytest.raises(Unavailable):
        await client.fetch()


@pytest.mark.parametrize(
    "entry",
    [
        "not an object",
        {"tenantId": "t1"},
        {"tenantId": "t1", "appName": "x", "config": {"consentRequired": "yes"}},
        {"tenantId": "t1", "appName": "x", "appVersions": [{"config": {}}]},
        {"tenantId": "t1", "appName": "x", "appVersions": "x-v1"},
    ],
)
async def test_a_malformed_entry_fails_the_whole_answer(
    client: TektonClient, tekton: FakeTekton, entry: object
) -> None:
    tekton.applications.append(entry)  # type: ignore[arg-type]

    with pytest.raises(Unavailable):
        await client.fetch()


async def test_missing_optional_fields_take_their_defaults(
    client: TektonClient, tekton: FakeTekton
) -> None:
    tekton.applications = [{"tenantId": "t3", "appName": "bare"}]

    assert await client.fetch() == [ApplicationConfig("bare", "t3", (), consent_required=False)]
