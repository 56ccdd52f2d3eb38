"""Kaa Tekton client: otao's per-application configuration (see docs/tekton.md).

Tekton announces configuration changes with 17/SCMP, naming a scope (everything, a tenant, an
application, an application version); otao then fetches that scope here. A scope's answer is
complete: an application missing from it was deleted, so the caller can replace exactly the
scope it asked for.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from urllib.parse import quote

import httpx

from otao.domain.applications import ApplicationConfig, ConfigScope
from otao.domain.errors import Unavailable
from otao.integrations.client_credentials import BearerTokenSource, get_json

_log = logging.getLogger(__name__)


def _query(scope: ConfigScope) -> dict[str, str]:
    names = {
        "tenantId": scope.tenant_id,
        "appName": scope.app_name,
        "appVersionName": scope.app_version_name,
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

    async def fetch(self, scope: ConfigScope | None = None) -> list[ApplicationConfig]:
        """The application configurations in ``scope`` (default: everything).

        For an application version scope, an application's ``app_versions`` holds only that
        version (or nothing if it was deleted); merge it into what is known. A malformed answer
        raises ``Unavailable`` as a whole: silently dropping one application would look like
        its deletion.
        """
        scope = scope or ConfigScope()
        body = await get_json(
            self._http, self._url, self._tokens, params=_query(scope), what="tekton"
        )
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            _log.warning("tekton answered without a results list")
            raise Unavailable("tekton unavailable")
        return _within(scope, [_parse_application(item) for item in results])


def _within(scope: ConfigScope, configs: list[ApplicationConfig]) -> list[ApplicationConfig]:
    """Tekton should filter, but a config outside the asked scope must never be applied to it."""
    configs = [config for config in configs if scope.contains(config)]
    wanted = scope.app_version_name
    if wanted is None:
        return configs
    return [
        replace(c, app_versions=tuple(v for v in c.app_versions if v == wanted)) for c in configs
    ]


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
    return ApplicationConfig(
        name=name,
        tenant_id=tenant_id,
        app_versions=_version_names(name, item.get("appVersions", [])),
        consent_required=consent,
    )


def _version_names(name: str, versions: object) -> tuple[str, ...]:
    if not isinstance(versions, list):
        raise _malformed(f"appVersions of {name} is not a list")
    version_names: list[str] = []
    for version in versions:
        version_name = version.get("name") if isinstance(version, dict) else None
        if not isinstance(version_name, str) or not version_name:
            raise _malformed(f"an application version of {name} has no name")
        version_names.append(version_name)
    return tuple(version_names)


def _malformed(reason: str) -> Unavailable:
    _log.warning("tekton answered malformed configuration: %s", reason)
    return Unavailable("tekton unavailable")
