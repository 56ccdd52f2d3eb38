"""Watch streams: who watches which rollout on this replica, and what each has yet to see.

Producers (reports, definition writes, halts, waves) call the ``RolloutEvents`` port; its
adapter (``messaging/rollout_events.py``) delivers each change to this replica's ``WatchHub``
and to every other replica's. The hub hands a change to every watcher of that rollout, or of
its whole application.

A watcher never holds more than ``capacity`` pending versions: a change to a version already
pending is folded into it (counted as missed, since the status is read when the event is
sent, so intermediate states are not seen), and a change to yet another version when full
drops everything pending for one "resync" event. So a watcher that reads nothing costs a
bounded amount of memory however many changes happen, and it is told that it missed some.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from otao.domain.errors import NotFound, Unavailable
from otao.domain.models import AppliedReport, Caller, Change, EndpointKey, Software
from otao.services.applications import ApplicationDirectory
from otao.services.ports import ChangeHandler, EventKind, ReportHandler, RolloutEvents
from otao.services.rollout import RolloutService, RolloutStatus

T = TypeVar("T")


def change_kind(change: Change) -> tuple[str, EventKind] | None:
    """The event a definition write is (None for a settings change: no version of its own)."""
    before, after = change.before, change.after
    if after is None:
        return (before.version, EventKind.DELETED) if before is not None else None
    if before is not None and before.halt is None and after.halt is not None:
        return after.version, EventKind.HALTED
    if before is not None and before.halt is not None and after.halt is None:
        return after.version, EventKind.RESUMED
    return after.version, EventKind.DEFINITION


@dataclass(frozen=True, slots=True)
class Pending:
    """What a watcher has yet to see of one version: the latest kind and how many changes."""

    version: str
    kind: EventKind
    changes: int
    # The hub's generation of this version when taken: a status read started at or after it
    # shows every change counted here (see SharedReads).
    generation: int


@dataclass(frozen=True, slots=True)
class Batch:
    """What a watcher takes at once: pending versions, or one resync when it overflowed."""

    pending: tuple[Pending, ...]
    resync: int  # > 0: this many changes were dropped; send one resync event instead


class Watcher:
    def __init__(self, tenant_id: str, application: str, version: str | None, capacity: int):
        self.tenant_id = tenant_id
        self.application = application
        self.version = version  # None: every version of the application
        self.capacity = capacity
        self._pending: dict[str, tuple[EventKind, int]] = {}
        self._dropped = 0
        self._wake = asyncio.Event()
        self._closed = False
        # The most versions ever pending at once (tests check the bound held).
        self.high_water = 0

    def __len__(self) -> int:
        return len(self._pending)

    def offer(self, version: str, kind: EventKind) -> None:
        if self._dropped:
            self._dropped += 1  # one resync covers everything until it is sent
        elif version in self._pending:
            _, changes = self._pending[version]
            self._pending[version] = (kind, changes + 1)
        elif len(self._pending) >= self.capacity:
            self._dropped = sum(changes for _, changes in self._pending.values()) + 1
            self._pending.clear()
        else:
            self._pending[version] = (kind, 1)
            self.high_water = max(self.high_water, len(self._pending))
        self._wake.set()

    def resync(self) -> None:
        """Changes were lost upstream (the broker reconnected): the watcher must re-read."""
        self._dropped = max(self._dropped, 1)
        self._pending.clear()
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    async def take(self, generation: Callable[[str], int]) -> Batch | None:
        """Wait for something to send; None once the watcher is closed (shutdown)."""
        while not self._closed and not self._pending and not self._dropped:
            self._wake.clear()
            await self._wake.wait()
        if self._closed:
            return None
        dropped, self._dropped = self._dropped, 0
        pending, self._pending = self._pending, {}
        return Batch(
            tuple(Pending(v, kind, n, generation(v)) for v, (kind, n) in pending.items()),
            dropped,
        )


class SharedReads(Generic[T]):
    """One read per (key, generation) for all watchers: a hundred watchers of one rollout cost
    one status query per change, not a hundred. A read started after generation g shows every
    change up to g, so any watcher needing g or less may share it."""

    def __init__(self) -> None:
        self._reads: dict[tuple[str, ...], tuple[int, asyncio.Future[T]]] = {}

    async def read(
        self, key: tuple[str, ...], generation: int, load: Callable[[], Awaitable[T]]
    ) -> T:
        current = self._reads.get(key)
        if current is None or current[0] < generation:
            future = asyncio.ensure_future(load())
            entry = (generation, future)
            self._reads[key] = current = entry
            future.add_done_callback(lambda _: self._forget(key, entry))
        # Shielded: one watcher going away does not cancel the read the others wait for.
        return await asyncio.shield(current[1])

    def _forget(self, key: tuple[str, ...], entry: tuple[int, asyncio.Future[T]]) -> None:
        # A finished read is not a cache: the next change starts a new one.
        if self._reads.get(key) is entry:
            del self._reads[key]


class WatchHub:
    """This replica's watchers, and the one place that hands them changes."""

    def __init__(self, capacity: int = 64, interval_seconds: float = 0.25) -> None:
        self.capacity = capacity
        self.interval_seconds = interval_seconds
        self._watchers: dict[tuple[str, str], set[Watcher]] = {}
        self._generation: dict[tuple[str, str, str], int] = {}
        self._closing = asyncio.Event()
        # Changes handed to the hub (tests wait on it instead of sleeping).
        self.changes_seen = 0

    @property
    def watchers(self) -> list[Watcher]:
        return [w for group in self._watchers.values() for w in group]

    def open(self, tenant_id: str, application: str, version: str | None) -> Watcher:
        if self._closing.is_set():
            raise Unavailable("otao is shutting down")
        watcher = Watcher(tenant_id, application, version, self.capacity)
        self._watchers.setdefault((tenant_id, application), set()).add(watcher)
        return watcher

    def remove(self, watcher: Watcher) -> None:
        key = (watcher.tenant_id, watcher.application)
        group = self._watchers.get(key)
        if group is None:
            return
        group.discard(watcher)
        if not group:
            del self._watchers[key]
            for generation_key in [k for k in self._generation if k[:2] == key]:
                del self._generation[generation_key]

    def generation(self, tenant_id: str, application: str, version: str) -> int:
        return self._generation.get((tenant_id, application, version), 0)

    def deliver(self, tenant_id: str, application: str, version: str, kind: EventKind) -> None:
        self.changes_seen += 1
        group = self._watchers.get((tenant_id, application))
        if not group:
            return
        key = (tenant_id, application, version)
        self._generation[key] = self._generation.get(key, 0) + 1
        for watcher in group:
            if watcher.version is None or watcher.version == version:
                watcher.offer(version, kind)

    async def take(self, watcher: Watcher) -> Batch | None:
        tenant_id, application = watcher.tenant_id, watcher.application
        return await watcher.take(lambda v: self.generation(tenant_id, application, v))

    def resync_all(self) -> None:
        for watcher in self.watchers:
            watcher.resync()

    async def pace(self) -> None:
        """Between two events of one stream (the debounce); returns at once when closing."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), self.interval_seconds)

    async def drain(self, grace: float) -> None:
        """Shutdown (after health says NOT_SERVING): every stream ends, no new one opens."""
        self._closing.set()
        for watcher in self.watchers:
            watcher.close()


@dataclass(frozen=True, slots=True)
class WatchEvent:
    kind: EventKind
    version: str
    status: RolloutStatus | None
    definition: Software | None
    missed: int


@dataclass(eq=False)
class WatchService:
    """Opens watches for a caller (the same checks as reading the status) and turns what a
    watcher takes into events carrying the state as it is now."""

    hub: WatchHub
    applications: ApplicationDirectory
    rollout: RolloutService
    _reads: SharedReads[RolloutStatus] = field(init=False, default_factory=SharedReads)

    async def open_rollout(
        self, caller: Caller, application: str, version: str
    ) -> tuple[Watcher, WatchEvent]:
        # Watch first, then read: a change between the two is sent again, never lost.
        self.applications.require(caller.tenant_id, application)
        watcher = self.hub.open(caller.tenant_id, application, version)
        try:
            status = await self.rollout.status(caller, application, version)
        except BaseException:
            self.hub.remove(watcher)
            raise
        return watcher, WatchEvent(EventKind.OPENED, version, status, status.definition, 0)

    def open_application(self, caller: Caller, application: str) -> tuple[Watcher, WatchEvent]:
        self.applications.require(caller.tenant_id, application)
        watcher = self.hub.open(caller.tenant_id, application, None)
        return watcher, WatchEvent(EventKind.OPENED, "", None, None, 0)

    async def events(self, caller: Caller, watcher: Watcher, batch: Batch) -> list[WatchEvent]:
        if batch.resync:
            return [WatchEvent(EventKind.RESYNC, "", None, None, batch.resync)]
        return [await self._event(caller, watcher.application, p) for p in batch.pending]

    async def _event(self, caller: Caller, application: str, pending: Pending) -> WatchEvent:
        missed = pending.changes - 1
        try:
            status = await self._reads.read(
                (caller.tenant_id, application, pending.version),
                pending.generation,
                lambda: self.rollout.status(caller, application, pending.version),
            )
        except NotFound:
            return WatchEvent(EventKind.DELETED, pending.version, None, None, missed)
        # Deleted, then written again before this was sent: it exists, so it is a definition.
        kind = EventKind.DEFINITION if pending.kind is EventKind.DELETED else pending.kind
        return WatchEvent(kind, pending.version, status, status.definition, missed)


def announcing_changes(events: RolloutEvents, handle: ChangeHandler) -> ChangeHandler:
    """``handle`` (the push service's), then the definition write told to watchers."""

    async def changed(change: Change) -> None:
        await handle(change)
        event = change_kind(change)
        if event is not None:
            events.changed(change.tenant_id, change.application, *event)

    return changed


def announcing_reports(events: RolloutEvents, handle: ReportHandler) -> ReportHandler:
    """``handle`` (the halt monitor's), then the report told to watchers of its version."""

    async def reported(key: EndpointKey, report: AppliedReport) -> None:
        try:
            await handle(key, report)
        finally:  # stored already: the counts changed whatever the monitor made of it
            events.changed(key.tenant_id, key.application, report.config_id, EventKind.COUNTS)

    return reported
