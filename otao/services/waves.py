"""Staged rollouts in motion (docs/rollouts.md): each wave's counts, the gate to the next one,
and opening, pausing and resuming waves. What the counts make of a rollout (the waves'
status, the gate, whether judging could change anything) is ``wave_progress.py``.

The rollout state lives in the definition's document, so every change of it is a
compare-and-set on the definition's etag: when replicas race to open the same wave, one write
wins and the others re-read a state whose wave already moved (no double advance, one audit
entry). Any replica may judge a gate; only the write decides. Opening a wave makes a push job
whose id names the wave, and every later judgement makes sure it exists, so a crash between
the write and the job loses no push.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from otao.domain.catalog import Catalog
from otao.domain.errors import Aborted, FailedPrecondition, NotFound
from otao.domain.models import (
    SYSTEM_ACTOR,
    AppliedReport,
    Caller,
    EndpointKey,
    RolloutStrategy,
    Software,
)
from otao.domain.push import PushJob
from otao.domain.retry import LostRace, until_written
from otao.domain.rollout_plan import RolloutPlan
from otao.domain.rollout_progress import GateState, OutcomeCounts, should_advance
from otao.domain.rollout_state import RolloutState
from otao.services.applications import ApplicationDirectory
from otao.services.audit import AuditLog
from otao.services.catalogs import CatalogCache
from otao.services.ports import Clock, EventKind, Halt, RolloutEvents
from otao.services.rollout_counts import Counted, FleetCounts, FleetTally, Recounts
from otao.services.wave_progress import Progress, decides, halt_reason, progress, wave_outcomes
from otao.services.workers import every
from otao.store.offers import OfferStore
from otao.store.rollout_reads import RolloutReads
from otao.store.software import SoftwareStore

log = logging.getLogger(__name__)

Enqueue = Callable[[PushJob], Awaitable[bool]]
# Known endpoints up to which a wave action's reply makes a first eligible count itself.
SMALL_FLEET = 10_000


@dataclass(eq=False)
class WaveService:
    applications: ApplicationDirectory
    catalogs: CatalogCache
    software: SoftwareStore
    reads: RolloutReads
    offers: OfferStore
    audit: AuditLog
    enqueue: Enqueue
    halt: Halt
    clock: Clock
    # Watchers hear of waves opening and pauses; the metric counts each opening once (by
    # the replica whose write opened it).
    events: RolloutEvents
    on_wave_opened: Callable[[], None]
    interval: float = 5.0
    # Outcome and eligible counts, recounted as their cost allows (services/rollout_counts).
    _outcome_counts: Recounts[tuple[OutcomeCounts, ...]] = field(init=False)
    _fleet_counts: Recounts[FleetCounts] = field(init=False)
    _wake: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._outcome_counts = Recounts(self.clock)
        self._fleet_counts = Recounts(self.clock)

    async def progress(
        self,
        tenant_id: str,
        application: str,
        version: str,
        wait: float | None = None,
    ) -> Progress | None:
        """The rollout's waves and gate, as the gate worker and the actions judge them
        (without eligible counts: the status adds those, see ``assemble``); ``wait`` bounds
        the wait for a recount (then the last count is used)."""
        catalog = await self.catalogs.get(tenant_id, application)
        definition = catalog.get(version)
        if definition is None:
            return None
        return self.assemble(definition, await self.outcomes(definition, wait), None)

    def assemble(
        self,
        definition: Software,
        counted: Counted[tuple[OutcomeCounts, ...]] | None,
        fleet: Counted[FleetCounts] | None,
    ) -> Progress | None:
        """The progress from its counts (None: not counted yet, shown as 0)."""
        outcomes = counted.value if counted is not None else ()
        eligible = fleet.value.eligible_by_wave if fleet is not None else ()
        found = progress(definition, outcomes, eligible, self.clock())
        if found is None:
            return None
        return replace(
            found,
            counted_at=counted.at if counted is not None else None,
            eligible_counted_at=fleet.at if fleet is not None else None,
        )

    async def outcomes(
        self, definition: Software, wait: float | None = None
    ) -> Counted[tuple[OutcomeCounts, ...]] | None:
        """Each wave's outcome counts (None without a plan, or not counted within ``wait``)."""
        plan = definition.spec.rollout_plan
        if plan is None:
            return None
        tenant_id, application, version = (
            definition.tenant_id,
            definition.application,
            definition.version,
        )

        async def count() -> tuple[OutcomeCounts, ...]:
            offered = await self.reads.offered_at(tenant_id, application, version)
            installs = await self.reads.installs(tenant_id, application, version, offered)
            return wave_outcomes(definition, plan, installs, offered, self.clock())

        # The plan is in the key: a replaced plan (other waves, windows) is counted anew.
        key = (tenant_id, application, version, plan)
        return await self._outcome_counts.get(key, count, wait)

    async def fleet(
        self,
        catalog: Catalog,
        definition: Software,
        wait: float | None = None,
        recount: bool = True,
    ) -> Counted[FleetCounts] | None:
        """The eligible counts of the status (every known endpoint read, a page at a time).
        Without ``recount`` (a wave action's reply) a costly count is shown however old, and
        a first count is made only for a small fleet: on a large one it would compete with
        the push the action just started."""

        async def count() -> FleetCounts:
            tally = FleetTally(catalog, definition, self.clock())
            async for page in self.reads.known(definition.tenant_id, definition.application):
                tally.add(page)
            return tally.counts()

        if definition.rollout_strategy is RolloutStrategy.SUSPENDED:
            return Counted(FleetCounts(), self.clock(), 0.0, 0.0)  # nobody is a candidate
        # What eligibility depends on, besides the endpoints and the time: not the rollout
        # state, so opening a wave keeps the count.
        key = (
            definition.tenant_id,
            definition.application,
            definition.version,
            definition.spec,
            catalog.settings,
        )
        if recount:
            return await self._fleet_counts.get(key, count, wait)
        if self._fleet_counts.last(key) is None:
            known = await self.reads.known_count(definition.tenant_id, definition.application)
            if known > SMALL_FLEET:
                return None
        return await self._fleet_counts.get(key, count, wait, reuse_costly=True)

    async def gates(self, tenant_id: str, application: str) -> dict[str, GateState]:
        """Every planned definition's gate, for explain's not_in_open_wave reasons."""
        catalog = await self.catalogs.get(tenant_id, application)
        found: dict[str, GateState] = {}
        for definition in catalog.definitions:
            if definition.spec.rollout_plan is not None:
                # Explain answers promptly: with the last count while a recount is long.
                judged = await self.progress(tenant_id, application, definition.version, 1.0)
                if judged is not None:
                    found[definition.version] = judged.gate
        return found

    # --- operators' actions -----------------------------------------------------------

    async def advance(self, caller: Caller, application: str, version: str) -> Software:
        """Open the next wave now, whatever the gate says (an operator's decision)."""
        self.applications.require(caller.tenant_id, application)

        def opened(existing: Software, state: RolloutState) -> RolloutState:
            if state.current_wave >= len(_plan(existing).waves) - 1:
                raise FailedPrecondition("the last wave is open already")
            return state.advanced(caller.subject, self.clock())

        _, updated = await self._change(caller, application, version, opened, "rollout.advance")
        self._opened(caller.tenant_id, application, version)
        await self._push_wave(updated)
        return updated

    async def pause(self, caller: Caller, application: str, version: str) -> Software:
        self.applications.require(caller.tenant_id, application)

        def paused(_: Software, state: RolloutState) -> RolloutState:
            return state.with_pause(True, caller.subject, self.clock())

        updated = (await self._change(caller, application, version, paused, "rollout.pause"))[1]
        self.events.changed(caller.tenant_id, application, version, EventKind.PAUSED)
        return updated

    async def resume(self, caller: Caller, application: str, version: str) -> Software:
        self.applications.require(caller.tenant_id, application)

        def resumed(_: Software, state: RolloutState) -> RolloutState:
            return state.with_pause(False, caller.subject, self.clock())

        before, after = await self._change(caller, application, version, resumed, "rollout.resume")
        self.events.changed(caller.tenant_id, application, version, EventKind.UNPAUSED)
        if before.rollout is not None and before.rollout.paused:
            await self.enqueue(PushJob.for_rollout_resumed(before, after, self.clock()))
        return after

    async def _change(
        self,
        caller: Caller,
        application: str,
        version: str,
        change: Callable[[Software, RolloutState], RolloutState],
        action: str,
    ) -> tuple[Software, Software]:
        async def attempt() -> tuple[Software, Software]:
            existing = await self.software.get(caller.tenant_id, application, version)
            if existing is None:
                raise NotFound(f"application {application} has no version {version}")
            if existing.rollout is None or existing.spec.rollout_plan is None:
                raise FailedPrecondition(f"version {version} has no rolloutPlan")
            state = change(existing, existing.rollout)
            updated = replace(
                existing, rollout=state, updated_at=self.clock(), etag=uuid.uuid4().hex
            )
            try:
                await self.software.replace(updated, existing.etag)
            except Aborted:
                raise LostRace from None
            await self.catalogs.changed(caller.tenant_id, application)
            await self.audit.record(
                caller,
                application,
                action,
                f"software/{version}",
                {"currentWave": state.current_wave, "paused": state.paused},
            )
            return existing, updated

        return await until_written(attempt, "the rollout")

    async def _push_wave(self, definition: Software) -> None:
        job = PushJob.for_wave_opened(definition, self.clock())
        if job is not None:
            await self.enqueue(job)

    # --- the gate worker --------------------------------------------------------------

    async def on_report(self, key: EndpointKey, report: AppliedReport) -> None:
        catalog = await self.catalogs.get(key.tenant_id, key.application)
        definition = catalog.get(report.config_id)
        if definition is not None and definition.spec.rollout_plan is not None:
            # A report implies an offer: recorded now if it was not (an offer recorded off
            # the poll's path can be lost in a crash), so counting the version's outcomes
            # finds every endpoint that reported it among those offered it.
            await self.offers.mark_offered([key], report.config_id, report.reported_at)
        self._wake.set()

    async def run(self) -> None:
        # A burst of reports costs one judgement per second at most, not one each.
        settle = min(1.0, self.interval)
        await every(self.interval, self.judge_all, "rollout gates", wake=self._wake, settle=settle)

    async def judge_all(self) -> None:
        for app in self.applications.all():
            catalog = await self.catalogs.get(app.tenant_id, app.name)
            for definition in catalog.definitions:
                if definition.rollout is not None:
                    await self.judge(app.tenant_id, app.name, definition.version)

    async def judge(self, tenant_id: str, application: str, version: str) -> bool:
        """Judge one rollout: halt it by its rolloutPolicy, or open its next wave when the
        gate is met and the plan advances by itself. True when a wave opened."""
        catalog = await self.catalogs.get(tenant_id, application)
        found = catalog.get(version)
        if found is None or found.rollout_strategy is RolloutStrategy.SUSPENDED:
            return False
        # A wave opened by an earlier judgement, on any replica: its push exists (the id
        # names the wave, so this is a duplicate insert, not a second push).
        await self._push_wave(found)
        if not decides(found):
            return False  # manual, paused, the last wave open: nothing to count for
        judged = await self.progress(tenant_id, application, version)
        if judged is None:
            return False
        if await self._halted(judged):
            return False
        if not should_advance(judged.plan, judged.gate, judged.rollout.paused):
            return False
        wave = judged.rollout.current_wave
        system = Caller(tenant_id, SYSTEM_ACTOR)

        def opened(_: Software, state: RolloutState) -> RolloutState:
            if state.current_wave != wave or state.paused:
                raise _Moved  # another replica opened it (or an operator paused) meanwhile
            return state.advanced(SYSTEM_ACTOR, self.clock())

        try:
            _, updated = await self._change(system, application, version, opened, "rollout.advance")
        except _Moved:
            return False
        log.info(
            "rollout wave opened",
            extra={"application": application, "version": version, "wave": wave + 1},
        )
        self._opened(tenant_id, application, version)
        await self._push_wave(updated)
        return True

    def _opened(self, tenant_id: str, application: str, version: str) -> None:
        self.on_wave_opened()
        self.events.changed(tenant_id, application, version, EventKind.WAVE_OPENED)

    async def _halted(self, judged: Progress) -> bool:
        """rolloutPolicy.maxFailureRatio, judged on the same reports as the gates."""
        definition = judged.definition
        policy = definition.spec.rollout_policy
        if policy is None or definition.halt is not None:
            return False
        counts = judged.open_counts
        confirming = judged.plan.confirming
        reports = counts.reports(confirming)
        ratio = counts.failure_ratio(confirming)
        if reports < policy.min_reports or ratio is None or ratio <= policy.max_failure_ratio:
            return False
        reason = halt_reason(counts.failures, reports, policy.max_failure_ratio)
        await self.halt(definition.tenant_id, definition.application, definition.version, reason)
        return True


class _Moved(Exception):
    """The rollout changed since the gate was judged: nothing to open."""


def _plan(definition: Software) -> RolloutPlan:
    plan = definition.spec.rollout_plan
    if plan is None:
        raise FailedPrecondition(f"version {definition.version} has no rolloutPlan")
    return plan
