"""Per-application configuration, as Kaa Tekton holds it for otao's service instance.

Pure value types: the Tekton integration builds them, services read them. New per-application
settings become new fields with defaults, so existing callers keep working.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
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
