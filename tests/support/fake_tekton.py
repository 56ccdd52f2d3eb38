"""A fake Kaa Tekton serving otao's application configurations (route in docs/tekton.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support import FakeHttpServer, Request, Response, json_response


def app_configs_path(instance: str) -> str:
    return f"/api/v1/service-instances/{instance}/app-configs"


class FakeTekton(FakeHttpServer):
    def __init__(self, instance: str = "otao", accepts: Callable[[str], bool] = bool) -> None:
        super().__init__()
        self.instance = instance
        #: application entries as Tekton returns them (``tenantId``, ``appName``, ...)
        self.applications: list[dict[str, Any]] = []
        #: which bearer tokens are accepted (default: any non-empty one)
        self.accepts = accepts
        self.queries: list[dict[str, str]] = []
        self.tokens_seen: list[str] = []
        #: answer every query with everything, like a Tekton that ignores the filters
        self.ignore_filters = False

    @property
    def path(self) -> str:
        return app_configs_path(self.instance)

    def add_application(
        self,
        tenant_id: str,
        name: str,
        versions: list[str],
        consent_required: bool | None = None,
    ) -> None:
        config: dict[str, Any] = {}
        if consent_required is not None:
            config["consentRequired"] = consent_required
        self.applications.append(
            {
                "tenantId": tenant_id,
                "appName": name,
                "config": config,
                "appVersions": [{"name": v, "config": {}} for v in versions],
            }
        )

    def handle(self, request: Request) -> Response:
        if request.method != "GET" or request.path != self.path:
            return json_response(404, {"error": "not found"})
        token = request.bearer() or ""
        self.tokens_seen.append(token)
        if not self.accepts(token):
            return json_response(401, {"error": "unauthorized"})
        query = {k: v[0] for k, v in request.query.items()}
        self.queries.append(query)
        if self.ignore_filters:
            query = {}
        results = []
        for app in self.applications:
            if "tenantId" in query and app.get("tenantId") != query["tenantId"]:
                continue
            if "appName" in query and app.get("appName") != query["appName"]:
                continue
            if "appVersionName" in query:
                versions = [v for v in app["appVersions"] if v["name"] == query["appVersionName"]]
                app = {**app, "appVersions": versions}
            results.append(app)
        return json_response(200, {"results": results})
