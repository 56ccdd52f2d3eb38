"""Per-application configuration, as Kaa Tekton holds it for otao's service instance.

Pure value types: the Tekton integration builds them, services read them. New per-application
settings become new fields with defaults, so existing callers keep working.
"""

from __future__ import annotations

from otao.domain.values import frozen


@frozen
class ApplicationConfig:
    """One Kaa application otao serves.

    ``app_versions`` are the Kaa application version names (the ``appVersionName`` of CDTP
    messages) that belong to the application. ``consent_required`` says whether updates need
    the endpoint's consent before they are delivered.
    """

    name: str
    tenant_id: str
    app_versions: tuple[str, ...]
    consent_required: bool = False


@frozen
class ConfigScope:
    """A part of the configuration (17/SCMP names one in a reload event): all ``None`` means
    everything; narrower scopes need the wider names."""

    tenant_id: str | None = None
    app_name: str | None = None
    app_version_name: str | None = None

    def __post_init__(self) -> None:
        if self.app_name is not None and self.tenant_id is None:
            raise ValueError("an application scope needs its tenant")
        if self.app_version_name is not None and self.app_name is None:
            raise ValueError("an application version scope needs its application")

    def contains(self, config: ApplicationConfig) -> bool:
        """Whether the application is in the scope (an app version scope: its application)."""
        if self.tenant_id is not None and config.tenant_id != self.tenant_id:
            return False
        return self.app_name is None or config.name == self.app_name
