"""otao's settings: one object, built once at start and handed to the wiring in ``app``.

Sources, highest priority first: constructor arguments, ``OTAO_*`` environment variables
(nested with ``__``, e.g. ``OTAO_SECURITY__ENABLED``), the YAML file named by
``OTAO_CONFIG_FILE``, then the defaults below.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


class ApplicationEntry(BaseModel):
    """One application of the local application configuration (when Tekton is off)."""

    name: str
    tenant_id: str = "default"
    app_versions: list[str] = Field(default_factory=list)
    consent_required: bool = False


class KaaNames(BaseModel):
    """Kaa service instance names used in NATS subjects (3/ISM)."""

    otao: str = "otao"
    consumer: str = "cmx-ota"
    epr: str = "epr"
    tekton: str = "tekton"
    # How long to wait for EPR's answer to a filter membership query (20/EFMP).
    efmp_timeout_seconds: float = 2.0
    # After NATS answered "no responders" (no EPR on the subject): how long to ask no more.
    efmp_absent_backoff_seconds: float = 60.0


class SecuritySettings(BaseModel):
    # Off only in the explicit local development mode; otao says so loudly at start.
    enabled: bool = True
    default_tenant: str = "default"
    keycloak_url: str = "http://127.0.0.1:8180"
    # The realm of otao's own client, for service-to-service tokens (client credentials).
    service_realm: str = "kaa"
    tenant_manager_url: str = "http://127.0.0.1:8280"
    client_id: str = "otao"
    # Never in a repr: settings are held by dataclasses (the gRPC door, components) whose
    # generated repr would print it into a log or a traceback.
    client_secret: str = Field(default="", repr=False)
    token_audience: str | None = None
    leeway_seconds: int = 30
    tenant_refresh_seconds: float = 300.0
    jwks_refetch_min_interval_seconds: float = 10.0
    uma_decision_ttl_seconds: float = 30.0


class TektonSettings(BaseModel):
    enabled: bool = False
    url: str = "http://127.0.0.1:8380"
    retry_seconds: float = 10.0


class PushSettings(BaseModel):
    # Notifications per second across this replica; 0 disables the limit.
    rate_per_second: float = 1000.0
    batch_size: int = 500
    poll_interval_seconds: float = 1.0
    lease_seconds: float = 15.0
    # How often replicas look for rollout dates that have passed.
    rollout_date_check_seconds: float = 1.0
    # How often replicas judge the gates of staged rollouts (and on every report).
    rollout_gate_check_seconds: float = 5.0


class MetricsSettings(BaseModel):
    # Prometheus metrics on their own HTTP port (path /metrics); 0 turns them off.
    port: int = 9464
    # None: the gRPC listener's host.
    host: str | None = None
    # The gauges that need the database (pending push jobs, per-rollout counts): how often
    # they are refreshed, and at most how many non-suspended definitions get rollout gauges.
    refresh_seconds: float = 15.0
    max_rollouts: int = 200


class TracingSettings(BaseModel):
    # OTLP/gRPC collector, e.g. http://127.0.0.1:4317; None: no traces (docs/observability.md).
    endpoint: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OTAO_", env_nested_delimiter="__")

    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    grace_period_seconds: float = 10.0
    max_message_bytes: int = 4 * 1024 * 1024
    # Request metadata (headers) a gRPC call may carry: large bearer tokens fit. Envoy's
    # max_request_headers_kb in deploy/envoy.yaml is the same 64 KiB (docs/gateway.md).
    max_metadata_bytes: int = 64 * 1024

    mongodb_uri: str = Field(default="mongodb://127.0.0.1:27017", repr=False)  # may hold a password
    mongodb_database: str = "otao"
    mongodb_timeout_ms: int = 3000

    # One URL, or several members of a NATS cluster separated by commas (docs/scaling.md).
    nats_url: str = "nats://127.0.0.1:4222"
    replica_id: str = Field(default_factory=lambda: f"otao-{uuid.uuid4().hex[:12]}")
    kaa: KaaNames = Field(default_factory=KaaNames)

    security: SecuritySettings = Field(default_factory=SecuritySettings)
    tekton: TektonSettings = Field(default_factory=TektonSettings)
    push: PushSettings = Field(default_factory=PushSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    applications: list[ApplicationEntry] = Field(default_factory=list)

    log_level: str = "INFO"
    log_json: bool = True

    def startup_problems(self) -> list[str]:
        """Why otao must not start with these settings (checked by ``python -m otao``)."""
        problems: list[str] = []
        if self.security.enabled and not self.security.client_secret.strip():
            # Service calls (Tenant Manager, EPR's platform APIs, UMA) would fail one by one
            # at run time with a 401 from Keycloak; refuse at start instead.
            problems.append(
                "security is on but OTAO_SECURITY__CLIENT_SECRET is empty: set the secret of "
                f"client {self.security.client_id!r} in realm {self.security.service_realm!r} "
                "(or OTAO_SECURITY__ENABLED=false for local development only)"
            )
        return problems

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlFileSource(settings_cls))


class _YamlFileSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by OTAO_CONFIG_FILE, if any."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = os.environ.get("OTAO_CONFIG_FILE")
        self._data: dict[str, Any] = {}
        if path:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            self._data = loaded if isinstance(loaded, dict) else {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)
