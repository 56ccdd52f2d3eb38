"""Which applications otao serves, for which tenant, under which Kaa app version names.

The source is the settings file in the local setup, or Kaa Tekton when enabled; either way
the directory is replaced wholesale or per scope, and reads are pure in-memory lookups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from otao.domain import validation
from otao.domain.applications import ApplicationConfig
from otao.domain.errors import NotFound
from otao.domain.models import EndpointKey


class ApplicationDirectory:
    def __init__(self, applications: Iterable[ApplicationConfig] = ()) -> None:
        self._by_name: dict[tuple[str, str], ApplicationConfig] = {}
        self._by_app_version: dict[str, ApplicationConfig] = {}
        self.replace_all(applications)

    def replace_all(self, applications: Iterable[ApplicationConfig]) -> None:
        self._rebuild(list(applications))

    def replace_where(
        self,
        selects: Callable[[ApplicationConfig], bool],
        applications: Iterable[ApplicationConfig],
    ) -> None:
        """Replace the applications ``selects`` picks with ``applications`` (a scoped reload)."""
        kept = [a for a in self._by_name.values() if not selects(a)]
        self._rebuild(kept + list(applications))

    def _rebuild(self, applications: list[ApplicationConfig]) -> None:
        by_name = {(a.tenant_id, a.name): a for a in applications}
        by_app_version = {v: a for a in by_name.values() for v in a.app_versions}
        # Swap whole dicts: readers never see a half-built directory.
        self._by_name, self._by_app_version = by_name, by_app_version

    def get(self, tenant_id: str, name: str) -> ApplicationConfig:
        application = self._by_name.get((tenant_id, name))
        if application is None:
            raise NotFound(f"application {name} not found")
        return application

    def require(self, tenant_id: str, name: str) -> ApplicationConfig:
        """The tenant's application named in a request: a valid name, and known (else 404)."""
        validation.application_name(name)
        return self.get(tenant_id, name)

    def endpoint(self, tenant_id: str, name: str, endpoint_id: str) -> EndpointKey:
        """An endpoint of the tenant's application named in a request, both validated."""
        validation.endpoint_id(endpoint_id)
        return EndpointKey(tenant_id, self.require(tenant_id, name).name, endpoint_id)

    def device_endpoint(self, app_version_name: str, endpoint_id: str) -> EndpointKey | None:
        """The endpoint a Kaa message names (by app version name), its id validated; None
        when no application has that app version name."""
        application = self._by_app_version.get(app_version_name)
        if application is None:
            return None
        validation.endpoint_id(endpoint_id)
        return EndpointKey(application.tenant_id, application.name, endpoint_id)

    def find(self, tenant_id: str, name: str) -> ApplicationConfig | None:
        return self._by_name.get((tenant_id, name))

    def by_app_version(self, app_version_name: str) -> ApplicationConfig | None:
        return self._by_app_version.get(app_version_name)

    def all(self) -> list[ApplicationConfig]:
        return list(self._by_name.values())
