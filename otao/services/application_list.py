"""The applications a caller may see: the tenant's, filtered by the caller's read permission.

Sorted by name and paged like every listing (``services/paging.py``). Permission is asked per
application (``Caller.may_read``: token claims or the tenant's Keycloak, cached), so only as
many applications are judged as the page needs: a page of ``n`` stops at the ``n + 1``-th
readable one, which also says, exactly, whether a next page exists.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from otao.domain.applications import ApplicationConfig
from otao.domain.models import Caller
from otao.services.applications import ApplicationDirectory
from otao.services.catalogs import CatalogCache
from otao.services.paging import PageTokens, page_size

_TOKENS = PageTokens("applications")
# Permission questions asked at once: enough for a page in one round trip to Keycloak, few
# enough not to flood it for a tenant with thousands of applications.
_BATCH = 50


@dataclass(eq=False)
class ApplicationList:
    applications: ApplicationDirectory
    catalogs: CatalogCache

    async def page(
        self, caller: Caller, size: int, token: str
    ) -> tuple[list[ApplicationConfig], str]:
        """Up to ``size`` readable applications after the one ``token`` names, by name, with
        the settings in effect (stored settings win over the configured default); and the
        token of the next page ("" on the last)."""
        limit = page_size(size)
        # The listing spans the tenant: its token is bound to the tenant, no application.
        after = _TOKENS.decode(token, caller.tenant_id, "")
        candidates = sorted(
            (
                a
                for a in self.applications.all()
                if a.tenant_id == caller.tenant_id and (after is None or a.name > after)
            ),
            key=lambda a: a.name,
        )
        readable = await _readable(caller, candidates, limit + 1)
        following = ""
        if len(readable) > limit:
            readable = readable[:limit]
            following = _TOKENS.encode(caller.tenant_id, "", readable[-1].name)
        settings = await asyncio.gather(
            *(self.catalogs.settings(a.tenant_id, a.name) for a in readable)
        )
        return [
            replace(a, consent_required=s.consent_required)
            for a, s in zip(readable, settings, strict=True)
        ], following


async def _readable(
    caller: Caller, candidates: list[ApplicationConfig], wanted: int
) -> list[ApplicationConfig]:
    """The first ``wanted`` candidates the caller may read, in order."""
    may_read = caller.may_read
    if may_read is None:
        return []
    found: list[ApplicationConfig] = []
    start = 0
    while start < len(candidates) and len(found) < wanted:
        batch = candidates[start : start + min(_BATCH, wanted - len(found))]
        start += len(batch)
        verdicts = await asyncio.gather(*(may_read(a.name) for a in batch))
        found.extend(a for a, allowed in zip(batch, verdicts, strict=True) if allowed)
    return found[:wanted]
