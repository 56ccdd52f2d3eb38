"""A fake Kaa Tenant Manager: ``GET /api/v1/tenants?offset=&limit=`` from mutable state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otao.integrations.tenant_manager import Tenant
from tests.support import FakeHttpServer, Request, Response, json_response

TENANTS_PATH = "/api/v1/tenants"


class StaticTenants:
    """A fixed tenant list, for a TenantDirectory without a Tenant Manager."""

    def __init__(self, tenants: list[Tenant]) -> None:
        self.tenants = tenants

    async def list_tenants(self) -> list[Tenant]:
        return list(self.tenants)


class FakeTenantManager(FakeHttpServer):
    def __init__(self, accepts: Callable[[str], bool] = bool) -> None:
        super().__init__()
        #: raw tenant records as the Tenant Manager returns them
        self.tenants: list[dict[str, Any]] = []
        #: which bearer tokens are accepted (default: any non-empty one)
        self.accepts = accepts
        self.queries: list[dict[str, list[str]]] = []

    def add_tenant(self, tenant_id: str, realm_name: str, **extra: Any) -> None:
        self.tenants.append({"id": tenant_id, "realm_name": realm_name, **extra})

    def remove_tenant(self, tenant_id: str) -> None:
        self.tenants = [t for t in self.tenants if t.get("id") != tenant_id]

    def handle(self, request: Request) -> Response:
        if request.method != "GET" or request.path != TENANTS_PATH:
            return json_response(404, {"error": "not found"})
        if not self.accepts(request.bearer() or ""):
            return json_response(401, {"error": "unauthorized"})
        self.queries.append(request.query)
        offset = int(request.arg("offset") or 0)
        limit = int(request.arg("limit") or 0)
        page = self.tenants[offset:] if limit == 0 else self.tenants[offset : offset + limit]
        return json_response(200, {"count": len(self.tenants), "results": page})
