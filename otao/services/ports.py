"""The callables services are given at construction, named once (item: one home per concept)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from otao.domain.models import EndpointKey

# Push one endpoint its deliverable update now; True when something was sent.
Notify = Callable[[EndpointKey], Awaitable[bool]]
# An endpoint's whole filter membership (20/EFMP); None when it could not be learned.
MembershipLookup = Callable[[EndpointKey], Awaitable[frozenset[str] | None]]
