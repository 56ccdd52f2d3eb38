"""The callables services are given at construction, named once (item: one home per concept)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from otao.domain.models import AppliedReport, Change, EndpointKey

# The time now (components.utc_now in production: UTC, to the millisecond BSON keeps).
Clock = Callable[[], datetime]
# Push one endpoint its deliverable update now; True when something was sent.
Notify = Callable[[EndpointKey], Awaitable[bool]]
# An endpoint's whole filter membership (20/EFMP); None when it could not be learned.
MembershipLookup = Callable[[EndpointKey], Awaitable[frozenset[str] | None]]
# Told of a stored definition or settings write (push, watchers).
ChangeHandler = Callable[[Change], Awaitable[None]]
# Told of a stored applied report (the halt monitor, the wave gates, watchers).
ReportHandler = Callable[[EndpointKey, AppliedReport], Awaitable[None]]
# Halt a rollout: tenant, application, version, reason.
Halt = Callable[[str, str, str, str], Awaitable[None]]


class EventKind(StrEnum):
    OPENED = "opened"
    COUNTS = "counts"
    DEFINITION = "definition"
    DELETED = "deleted"
    HALTED = "halted"
    RESUMED = "resumed"
    WAVE_OPENED = "wave_opened"
    PAUSED = "paused"
    UNPAUSED = "unpaused"
    RESYNC = "resync"


class RolloutEvents(Protocol):
    """What changes a rollout: called by whoever changed it (never blocks, never fails)."""

    def changed(self, tenant_id: str, application: str, version: str, kind: EventKind) -> None:
        """``version`` of ``application`` changed in the way ``kind`` says."""
