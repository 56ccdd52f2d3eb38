"""An otao under test: the real App, in this process, on free ports, with real NATS/MongoDB."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from otao.app import App
from otao.domain.applications import ApplicationConfig
from otao.settings import Settings
from tests.support.eventually import eventually


@dataclass
class RunningOtao:
    app: App
    settings: Settings

    @property
    def port(self) -> int:
        return self.app.port

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.app.port}"

    def add_application(
        self,
        name: str | None = None,
        app_versions: tuple[str, ...] | None = None,
        tenant_id: str = "default",
        consent_required: bool = False,
    ) -> ApplicationConfig:
        """Configure one more application, as the settings file or Tekton would."""
        name = name or f"app-{secrets.token_hex(4)}"
        application = ApplicationConfig(
            name, tenant_id, app_versions or (f"{name}-v1",), consent_required
        )
        directory = self.app.components.services.applications
        directory.replace_all([*directory.all(), application])
        return application

    async def stop(self) -> None:
        await self.app.stop()


async def start_otao(
    nats_url: str, mongo_uri: str, database: str | None = None, **overrides: Any
) -> RunningOtao:
    values: dict[str, Any] = {
        "grpc_port": 0,
        "nats_url": nats_url,
        "mongodb_uri": mongo_uri,
        "mongodb_database": database or f"otao_{secrets.token_hex(4)}",
        "mongodb_timeout_ms": 2000,
        "security": {"enabled": False},
        "push": {
            "rate_per_second": 0,
            "poll_interval_seconds": 0.2,
            "lease_seconds": 3,
            "rollout_gate_check_seconds": 0.2,
        },
        "log_json": False,
        # Off (several replicas per test run); tests/observability turns it on, on a free port.
        "metrics": {"port": 0},
    }
    values.update(overrides)
    settings = Settings(**values)
    app = App(settings)
    await app.start()
    try:
        await eventually(
            lambda: app.components.health.serving, "otao ready (MongoDB and NATS reachable?)"
        )
    except AssertionError:
        await app.stop()
        raise
    return RunningOtao(app, settings)
