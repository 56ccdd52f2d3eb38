"""The outbound HTTP client the integrations share (one connection pool, one timeout)."""

from __future__ import annotations

import httpx

# Keycloak, the Tenant Manager and Tekton are each asked inside a request otao is answering:
# a peer that has not answered in 5 s is treated as down rather than held on to.
TIMEOUT_SECONDS = 5.0


def shared_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(TIMEOUT_SECONDS))
