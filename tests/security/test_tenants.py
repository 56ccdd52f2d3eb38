from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from otao.domain.errors import Unavailable
from otao.integrations.tenant_manager import Tenant, TenantManagerClient
from otao.security.tenants import TenantDirectory
from tests.support import ManualClock
from tests.support.eventually import eventually
from tests.support.fake_tenant_manager import TENANTS_PATH, FakeTenantManager

pytestmark = pytest.mark.timeout(20)

KEYCLOAK = "https://kc.example/auth"


class StaticTokens:
    async def token(self) -> str:
        return "service-token"

    def invalidate(self) -> None:
        pass


@pytest.fixture
def tenant_manager() -> Iterator[FakeTenantManager]:
    with FakeTenantManager() as server:
        server.add_tenant("t1", "realm-one", name="Tenant one")
        server.add_tenant("t2", "realm-two")
        yield server


@pytest.fixture
def client(http: httpx.AsyncClient, tenant_manager: FakeTenantManager) -> TenantManagerClient:
    return TenantManagerClient(http, tenant_manager.url, KEYCLOAK + "/", StaticTokens())


@pytest.fixture
async def directory(
    client: TenantManagerClient, clock: ManualClock
) -> AsyncIterator[TenantDirectory]:
    directory = TenantDirectory(client, refresh_interval=0.05, clock=clock)
    yield directory
    await directory.stop()


@pytest.fixture
async def refreshed(directory: TenantDirectory) -> TenantDirectory:
    """The directory after its first refresh."""
    await directory.refresh()
    return directory


async def test_tenants_are_listed_with_their_realm_issuer(
    client: TenantManagerClient, tenant_manager: FakeTenantManager
) -> None:
    tenants = await client.list_tenants()

    assert tenants == [
        Tenant("t1", "realm-one", f"{KEYCLOAK}/realms/realm-one"),
        Tenant("t2", "realm-two", f"{KEYCLOAK}/realms/realm-two"),
    ]
    assert tenant_manager.queries == [{"offset": ["0"], "limit": ["0"]}]


async def test_malformed_tenant_records_are_skipped(
    client: TenantManagerClient, tenant_manager: FakeTenantManager
) -> None:
    tenant_manager.tenants += [{"id": "t3"}, {"realm_name": "r"}, {"id": "t4", "realm_name": "a/b"}]

    assert [t.id for t in await client.list_tenants()] == ["t1", "t2"]


@pytest.mark.parametrize("mode", ["error", "drop"])
async def test_a_failing_tenant_manager_is_unavailable(
    client: TenantManagerClient, tenant_manager: FakeTenantManager, mode: str
) -> None:
    tenant_manager.fail_mode = mode  # type: ignore[assignment]

    with pytest.raises(Unavailable):
        await client.list_tenants()


async def test_a_refreshed_directory_finds_tenants_by_issuer_and_by_id(
    directory: TenantDirectory,
) -> None:
    await directory.refresh()

    tenant = directory.by_issuer(f"{KEYCLOAK}/realms/realm-one")
    assert tenant is not None
    assert tenant.id == "t1"
    assert directory.by_id("t2") == Tenant("t2", "realm-two", f"{KEYCLOAK}/realms/realm-two")
    assert directory.knows_issuer(f"{KEYCLOAK}/realms/realm-two")
    assert {t.id for t in directory.tenants()} == {"t1", "t2"}


async def test_looking_up_an_unknown_issuer_makes_no_request(
    refreshed: TenantDirectory, tenant_manager: FakeTenantManager
) -> None:
    assert refreshed.by_issuer(f"{KEYCLOAK}/realms/unknown") is None
    assert refreshed.by_issuer("https://attacker.example/realms/x") is None
    assert tenant_manager.count(TENANTS_PATH) == 1


async def test_a_removed_tenant_is_gone_immediately(refreshed: TenantDirectory) -> None:
    removed = refreshed.remove("t1")

    assert removed == Tenant("t1", "realm-one", f"{KEYCLOAK}/realms/realm-one")
    assert refreshed.by_id("t1") is None
    assert refreshed.by_issuer(f"{KEYCLOAK}/realms/realm-one") is None
    assert refreshed.remove("t1") is None
    assert refreshed.by_id("t2") is not None


class GatedSource:
    """Answers with the tenants as they were when asked, once ``gate`` opens."""

    def __init__(self, tenants: list[Tenant]) -> None:
        self.tenants = tenants
        self.asked = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()

    async def list_tenants(self) -> list[Tenant]:
        snapshot = list(self.tenants)
        self.asked.set()
        await self.gate.wait()
        return snapshot


async def test_a_refresh_requested_before_a_removal_does_not_bring_the_tenant_back(
    clock: ManualClock,
) -> None:
    t1 = Tenant("t1", "realm-one", f"{KEYCLOAK}/realms/realm-one")
    source = GatedSource([t1])
    directory = TenantDirectory(source, clock=clock)
    await directory.refresh()

    source.asked.clear()
    source.gate.clear()
    refresh = asyncio.create_task(directory.refresh())
    await source.asked.wait()  # the listing still holds t1 ...
    clock.now += 1
    directory.remove("t1")  # ... when the tenant is unregistered
    source.tenants = []
    source.gate.set()
    await refresh

    assert directory.by_id("t1") is None


async def test_a_tenant_registered_again_comes_back_with_a_later_refresh(
    refreshed: TenantDirectory, clock: ManualClock
) -> None:
    refreshed.remove("t1")
    clock.now += 1

    await refreshed.refresh()

    assert refreshed.by_id("t1") is not None


async def test_a_failed_refresh_keeps_the_previous_tenants(
    refreshed: TenantDirectory, tenant_manager: FakeTenantManager
) -> None:
    tenant_manager.fail_mode = "error"

    with pytest.raises(Unavailable):
        await refreshed.refresh()
    assert refreshed.by_id("t1") is not None


async def test_tenants_sharing_one_issuer_are_not_served(
    directory: TenantDirectory, tenant_manager: FakeTenantManager
) -> None:
    tenant_manager.add_tenant("t3", "realm-one")

    await directory.refresh()

    assert directory.by_issuer(f"{KEYCLOAK}/realms/realm-one") is None
    assert directory.by_id("t1") is None
    assert directory.by_id("t3") is None
    assert directory.by_id("t2") is not None


async def test_the_refresh_loop_picks_up_new_tenants_and_survives_failures(
    refreshed: TenantDirectory, tenant_manager: FakeTenantManager
) -> None:
    tenant_manager.fail_mode = "error"
    listings = tenant_manager.count(TENANTS_PATH)
    refreshed.start()
    await eventually(
        lambda: tenant_manager.count(TENANTS_PATH) >= listings + 2, "a couple of failed refreshes"
    )

    tenant_manager.fail_mode = None
    tenant_manager.add_tenant("t9", "realm-nine")
    await eventually(lambda: refreshed.by_id("t9") is not None, "the new tenant picked up")

    await refreshed.stop()
    calls = tenant_manager.count(TENANTS_PATH)
    # Nothing can refresh any more: the loop's task (named by the directory) is gone.
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "tenant-directory"]
    assert tenant_manager.count(TENANTS_PATH) == calls
