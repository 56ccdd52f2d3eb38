"""The tenants otao serves, kept in memory and keyed by issuer and by id.

Token verification looks the issuer up here on every call, so the lookup is a dictionary read:
an unknown issuer never causes a network call (otherwise anyone could make otao fetch from
URLs of their choosing, or flood the Tenant Manager). The directory is refreshed from the Tenant
Manager at start, periodically, and on 21/TLE ``updated``; 21/TLE ``unregistered`` calls
``remove``, which takes effect for the very next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import Protocol

from otao.domain.errors import Unavailable
from otao.integrations.tenant_manager import Tenant

_log = logging.getLogger(__name__)


class TenantSource(Protocol):
    async def list_tenants(self) -> list[Tenant]: ...


@dataclass(eq=False)
class TenantDirectory:
    source: TenantSource
    _: KW_ONLY
    refresh_interval: float = 300.0
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._by_issuer: dict[str, Tenant] = {}
        self._by_id: dict[str, Tenant] = {}
        # tenant id -> when it was removed. A refresh whose listing was requested before the
        # removal may still contain the tenant; it must not bring it back.
        self._removed_at: dict[str, float] = {}
        self._refresh_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def by_issuer(self, issuer: str) -> Tenant | None:
        return self._by_issuer.get(issuer)

    def by_id(self, tenant_id: str) -> Tenant | None:
        return self._by_id.get(tenant_id)

    def knows_issuer(self, issuer: str) -> bool:
        return issuer in self._by_issuer

    def tenants(self) -> tuple[Tenant, ...]:
        return tuple(self._by_id.values())

    async def refresh(self) -> None:
        """Replace the directory with the Tenant Manager's current list.

        Raises ``Unavailable`` and keeps the previous contents when the Tenant Manager cannot be
        read: a passing outage must not lock every tenant out.
        """
        async with self._refresh_lock:
            requested_at = self.clock()
            listed = await self.source.list_tenants()
            kept = [
                tenant
                for tenant in listed
                if self._removed_at.get(tenant.id, float("-inf")) < requested_at
            ]
            self._replace(kept)
            # Removals older than this listing are reflected in it now.
            self._removed_at = {
                tenant_id: at for tenant_id, at in self._removed_at.items() if at >= requested_at
            }

    def remove(self, tenant_id: str) -> Tenant | None:
        """Forget an unregistered tenant now; its tokens fail from the next request on.

        Returns the tenant, so the caller can drop what else it caches for its issuer.
        """
        self._removed_at[tenant_id] = self.clock()
        tenant = self._by_id.pop(tenant_id, None)
        if tenant is not None:
            self._by_issuer.pop(tenant.issuer, None)
        return tenant

    def start(self) -> None:
        """Start refreshing every ``refresh_interval`` seconds (call ``refresh`` first)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._refresh_loop(), name="tenant-directory")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _replace(self, tenants: list[Tenant]) -> None:
        unique = {tenant.id: tenant for tenant in tenants}
        owners = Counter(tenant.issuer for tenant in unique.values())
        for issuer, count in owners.items():
            if count > 1:
                # Two tenants on one realm would let one tenant's users act in the other's
                # data. Serve neither until the Tenant Manager is fixed.
                _log.error("%d tenants share issuer %s; none of them is served", count, issuer)
        by_issuer = {t.issuer: t for t in unique.values() if owners[t.issuer] == 1}
        # Swap whole dicts: readers never see a half-built directory.
        self._by_issuer = by_issuer
        self._by_id = {tenant.id: tenant for tenant in by_issuer.values()}

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                await self.refresh()
            except Unavailable:
                _log.warning("tenant refresh failed; keeping the previous tenant list")
            except Exception:
                # The loop must outlive a bug in one refresh; the next one may succeed.
                _log.exception("tenant refresh failed unexpectedly")
