"""Paged listings: one page size rule and one opaque page token shape for every listing.

A token names the listing, the tenant's application and the last item of the page; a token
this listing did not return for this application (another listing's, another tenant's,
garbage) is INVALID_ARGUMENT naming ``pageToken``, never a page of something else.
"""

from __future__ import annotations

import base64
import binascii

from otao.domain.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument.of("pageSize", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


class PageTokens:
    def __init__(self, listing: str) -> None:
        self._listing = listing

    def _prefix(self, tenant_id: str, application: str) -> str:
        return f"{self._listing}|{tenant_id}/{application}/"

    def encode(self, tenant_id: str, application: str, last: str) -> str:
        raw = self._prefix(tenant_id, application) + last
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def decode(self, token: str, tenant_id: str, application: str) -> str | None:
        """The last item of the page before (None for the first page, token "")."""
        if not token:
            return None
        prefix = self._prefix(tenant_id, application)
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raw = ""
        if not raw.startswith(prefix) or len(raw) == len(prefix):
            raise InvalidArgument.of("pageToken", "not a token this listing returned")
        return raw[len(prefix) :]
