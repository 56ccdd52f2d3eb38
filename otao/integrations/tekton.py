"""Kaa Tekton client: otao's per-application configuration (see docs/tekton.md).

Tekton announces configuration changes with 17/SCMP, naming a scope (everything, a tenant, an
application, an application version); otao then fetches that scope here. A scope's answer is
complete: an application missing from it was deleted, so the caller can replace exactly the
scope it asked for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from urllib.parse import quote

import httpx

from otao.domain.applications import ApplicationConfig
from otao.domain.errors import Unavailable
from otao.integrations.client_credentials import BearerTokenSource, get_json

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TektonScope:
    """What to fetch; all ``None`` means everything. Narrower scopes need the wider names."""

    tenant_id: str | None = None
    app_name: str | None = None
    app_version_name: str | None = None

    def __post_init__(self) -> None:
        if self.app_name is not None and self.tenant_id is None:
            raise ValueError("an application scope needs its tenant")
        if self.app_version_name is not None and self.app_name is None:
            raise ValueError("an application version scope needs its application")

    def query(self) -> dict[str, str]:
        names = {
            "tenantId": self.tenant_id,
            "appName": self.app_name,
            "appVersionName": self.app_version_name,
        }
        return {key: value for key, value in names.items() if value is not None}


class TektonClient:
    """``GET {tekton_url}/api/v1/service-instances/{instance}/app-configs`` as otao."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        service_instance: str,
        tokens: BearerTokenSource,
    ) -> None:
        self._http = http
        instance = quote(service_instance, safe="")
        self._url = f"{base_url.rstrip('/')}/api/v1/service-instances/{instance}/app-configs"
        self._tokens = tokens

    async def fetch(self, scope: TektonScope | None = None) -> list[ApplicationConfig]:
        """The application configurations in ``scope`` (default: everything).

        For an application version scope, an application's ``app_versions`` holds only that
        version (or nothing if it was deleted); merge it into what is known. A malformed answer
        raises ``Unavailable`` as a whole: silently dropping one application would look like
        its deletion.
        """
        scope = scope or TektonScope()
        body = await get_json(
            self._http, self._url, self._tokens, params=scope.query(), what="tekton"
        )
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            _log.warning("tekton answered without a results list")
            raise Unavailable("tekton unavailable")
        configs = [_parse_application(item) for item in results]
        # Tekton should filter, but a config outside the asked scope must never be applied to it.
        configs = [config for config in configs if _in_scope(config, scope)]
        if scope.app_version_name is not None:
            wanted = scope.app_version_name
            configs = [
                replace(c, app_versions=tuple(v for v in c.app_versions if v == wanted))
                for c in configs
            ]
        return configs


def _parse_application(item: object) -> ApplicationConfig:
    if not isinstance(item, dict):
        raise _malformed("an application entry is not an object")
    name, tenant_id = item.get("appName"), item.get("tenantId")
    if not isinstance(name, str) or not name or not isinstance(tenant_id, str) or not tenant_id:
        raise _malformed("an application entry lacks appName or tenantId")
    config = item.get("config", {})
    if not isinstance(config, dict):
        raise _malformed(f"config of {name} is not an object")
    consent = config.get("consentRequired", False)
    if not isinstance(consent, bool):
        raise _malformed(f"consentRequired of {name} is not a boolean")
    versions = item.get("appVersions", [])
    if not isinstance(versions, list):
        raise _malformed(f"appVersions of {name} is not a list")
    version_names: list[str] = []
    for version in versions:
        version_name = version.get("name") if isinstance(version, dict) else None
        if not isinstance(version_name, str) or not version_name:
            raise _malformed(f"an application version of {name} has no name")
        version_names.append(version_name)
    return ApplicationConfig(
        name=name,
        tenant_id=tenant_id,
        app_versions=tuple(version_names),
        consent_required=consent,
    )


def _in_scope(config: ApplicationConfig, scope: TektonScope) -> bool:
    if scope.tenant_id is not None and config.tenant_id != scope.tenant_id:
        return False
    return scope.app_name is None or config.name == scope.app_name


def _malformed(reason: str) -> Unavailable:
    _log.warning("tekton answered malformed configuration: %s", reason)
    return Unavailable("tekton unavailable")
