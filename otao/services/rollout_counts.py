"""Counts a rollout's status and gates need, and how fresh they are (docs/rollouts.md, "How
fresh the counts are").

Two counts cost more than one read: the outcomes of a version (its offers and install
records, O(endpoints offered it)) and the eligible counts (every known endpoint of the
application, O(fleet)). A count that was cheap (under ``CHEAP`` seconds) is made again for
every read, so small fleets always see the present. One that took longer is reused for
``FACTOR`` times what it took (at most ``CEILING``): on 100,000 endpoints a count of a few
seconds is made about once a minute whatever the number of readers, instead of once per
status read and gate judgement, and readers share the count under way. Every count says
when it began; the status shows it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from otao.domain import resolution
from otao.domain.catalog import Catalog
from otao.domain.models import EndpointState, Software
from otao.domain.resolution import EndpointFacts, VerdictKind
from otao.domain.rollout_plan import wave_for
from otao.services.ports import Clock

T = TypeVar("T")

CHEAP = 0.25
FACTOR = 20.0
CEILING = 60.0


@dataclass(frozen=True, slots=True)
class Counted(Generic[T]):
    value: T
    # When the count began: it reflects at least everything done before then.
    at: datetime
    took: float
    started: float  # time.monotonic() at ``at``


@dataclass(eq=False)
class Recounts(Generic[T]):
    """Counts by key, made again when older than their cost allows (see the module)."""

    clock: Clock
    cheap: float = CHEAP
    factor: float = FACTOR
    ceiling: float = CEILING
    remembered: int = 1024
    _entries: dict[Hashable, Counted[T]] = field(init=False, default_factory=dict)
    _running: dict[Hashable, asyncio.Future[Counted[T]]] = field(init=False, default_factory=dict)

    def _max_age(self, took: float) -> float:
        return 0.0 if took < self.cheap else min(self.ceiling, self.factor * took)

    async def get(
        self,
        key: Hashable,
        count: Callable[[], Awaitable[T]],
        wait: float | None = None,
        reuse_costly: bool = False,
    ) -> Counted[T] | None:
        """The count for ``key``: the last one while it is fresh enough (a costly one
        however old with ``reuse_costly``), else a new one. ``wait`` bounds how long to wait
        for a new one (None: until done); past it, the last count is returned (None if there
        is none) and the new one finishes alone."""
        last = self._entries.get(key)
        running = self._running.get(key)
        if last is not None and last.took >= self.cheap:
            if reuse_costly or time.monotonic() - last.started <= self._max_age(last.took):
                return last
            task = running or self._start(key, count)
        elif last is None and running is not None:
            task = running  # the first count under way: two at once would cost twice
        else:
            task = self._start(key, count)  # cheap: counted for this very read
        try:
            return await asyncio.wait_for(asyncio.shield(task), wait)
        except TimeoutError:
            return last

    def last(self, key: Hashable) -> Counted[T] | None:
        """The last count made for ``key``, however old; nothing is counted."""
        return self._entries.get(key)

    def _start(
        self, key: Hashable, count: Callable[[], Awaitable[T]]
    ) -> asyncio.Future[Counted[T]]:
        at, started = self.clock(), time.monotonic()

        async def run() -> Counted[T]:
            value = await count()
            made = Counted(value, at, time.monotonic() - started, started)
            kept = self._entries.get(key)
            if kept is None or kept.started <= started:
                self._entries.pop(key, None)
                self._entries[key] = made
                while len(self._entries) > self.remembered:
                    del self._entries[next(iter(self._entries))]
            return made

        task = asyncio.ensure_future(run())
        self._running[key] = task
        task.add_done_callback(lambda done: self._finished(key, done))
        return task

    def _finished(self, key: Hashable, task: asyncio.Future[Counted[T]]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved: a reader that stopped waiting has seen it, or not


@dataclass(frozen=True, slots=True)
class FleetCounts:
    """Where the application's known endpoints stand with one definition."""

    eligible: int = 0
    awaiting_consent: int = 0
    not_yet_eligible: int = 0
    # With a rollout plan: the eligible endpoints of each wave.
    eligible_by_wave: tuple[int, ...] = ()


class FleetTally:
    """FleetCounts added up a page of endpoints at a time."""

    def __init__(self, catalog: Catalog, definition: Software, now: datetime) -> None:
        self._catalog = catalog
        self._definition = definition
        self._now = now
        plan = definition.spec.rollout_plan
        self._plan = plan
        self.eligible = self.awaiting = self.pending = 0
        self.by_wave = [0] * (len(plan.waves) if plan else 0)

    def add(self, states: list[EndpointState]) -> None:
        definition, catalog, plan = self._definition, self._catalog, self._plan
        consent_required = catalog.settings.consent_required
        for state in states:
            facts = EndpointFacts.of(state, None)
            if definition not in catalog.candidates(facts.current_version):
                continue
            blocked = resolution.eligibility_blocker(definition, facts, consent_required, self._now)
            if blocked is None:
                self.eligible += 1
                if plan is not None:
                    wave = wave_for(
                        plan, definition.application, state.endpoint_id, definition.version
                    )
                    self.by_wave[wave] += 1
            elif blocked.kind is VerdictKind.AWAITING_CONSENT:
                self.awaiting += 1
            elif blocked.kind is VerdictKind.ROLLOUT_DATE_PENDING:
                self.pending += 1

    def counts(self) -> FleetCounts:
        return FleetCounts(self.eligible, self.awaiting, self.pending, tuple(self.by_wave))
