"""How a rollout is going, and the automatic halt when too many endpoints fail it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from otao.domain import validation
from otao.domain.errors import NotFound
from otao.domain.models import AppliedReport, Caller, EndpointKey, Software
from otao.services.applications import ApplicationDirectory
from otao.services.catalogs import CatalogCache
from otao.services.ports import Clock, Halt
from otao.services.rollout_counts import FleetCounts
from otao.services.wave_progress import Progress, halt_reason
from otao.services.waves import WaveService
from otao.services.workers import attempt, when_woken
from otao.store.endpoints import EndpointStore
from otao.store.offers import OfferStore

# How long a status read waits for a recount of a large fleet before showing the last count.
STATUS_WAIT = 5.0


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    definition: Software
    eligible: int
    offered: int
    applied: int
    failed: int
    awaiting_consent: int
    not_yet_eligible: int
    # With a rollout plan: its waves and gate.
    progress: Progress | None
    # When eligible, awaiting_consent and not_yet_eligible were counted (None: not yet).
    counted_at: datetime | None


@dataclass(eq=False)
class RolloutService:
    applications: ApplicationDirectory
    catalogs: CatalogCache
    endpoints: EndpointStore
    offers: OfferStore
    clock: Clock
    waves: WaveService

    async def status(
        self,
        caller: Caller,
        application: str,
        version: str,
        wait: float | None = STATUS_WAIT,
        recount: bool = True,
    ) -> RolloutStatus:
        """``wait`` bounds the wait for a recount of a large fleet (then the last count is
        shown, with when it was made: docs/rollouts.md, "How fresh the counts are"). A wave
        action's reply does not ``recount`` a large fleet (WaveService.fleet)."""
        self.applications.require(caller.tenant_id, application)
        validation.version(version)
        catalog = await self.catalogs.get(caller.tenant_id, application)
        definition = catalog.get(version)
        if definition is None:
            raise NotFound(f"application {application} has no version {version}")
        # One read after the other, not at once: nx-27017 answers a database's calls one at
        # a time, and a burst of them would hold up the push a wave action has just started
        # (measured: its first notification 1.2-1.8 s late at 100,000 endpoints).
        # ``wait`` is for the whole read: the two recounts share it.
        clock = asyncio.get_running_loop().time
        until = None if wait is None else clock() + wait

        def left() -> float | None:
            return None if until is None else max(0.0, until - clock())

        fleet = await self.waves.fleet(catalog, definition, left(), recount)
        outcomes = await self.waves.outcomes(definition, left())
        applied, failed = await self.endpoints.report_counts(caller.tenant_id, application, version)
        offered = await self.offers.offered_count(caller.tenant_id, application, version)
        counts = fleet.value if fleet is not None else FleetCounts()
        judged = self.waves.assemble(definition, outcomes, fleet)
        return RolloutStatus(
            definition,
            counts.eligible,
            offered,
            applied,
            failed,
            counts.awaiting_consent,
            counts.not_yet_eligible,
            judged,
            fleet.at if fleet is not None else None,
        )


@dataclass(eq=False)
class HaltMonitor:
    """Suspends a definition whose failure ratio crosses its rolloutPolicy.

    Reports only mark a definition for a check; one task checks marked definitions at
    most every ``interval`` seconds, so a burst of reports costs one count query.
    """

    catalogs: CatalogCache
    endpoints: EndpointStore
    halt: Halt
    interval: float = 0.5
    _marked: set[tuple[str, str, str]] = field(init=False, default_factory=set)
    _wake: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _checking: bool = field(init=False, default=False)
    # Reports handed to on_report so far: with ``idle``, the signal that every report
    # seen has been judged (tests wait on it instead of sleeping past the interval).
    reports_seen: int = field(init=False, default=0)

    @property
    def idle(self) -> bool:
        """No definition marked for a check and no check running."""
        return not self._marked and not self._checking

    async def on_report(self, key: EndpointKey, report: AppliedReport) -> None:
        try:
            catalog = await self.catalogs.get(key.tenant_id, key.application)
            definition = catalog.get(report.config_id)
            if definition is None or definition.spec.rollout_policy is None:
                return
            self._marked.add((key.tenant_id, key.application, report.config_id))
            self._wake.set()
        finally:
            self.reports_seen += 1  # counted once marked, so ``idle`` cannot come first

    async def run(self) -> None:
        interval = self.interval
        await when_woken(self._wake, self._check_marked, retry_after=interval, settle=interval)

    async def _check_marked(self) -> bool:
        """Whether every marked definition was checked; one that was not stays marked."""
        marked, self._marked = self._marked, set()
        checked = True
        self._checking = True
        try:
            for scope in marked:
                if not await attempt(self.check(*scope), "rollout health check"):
                    self._marked.add(scope)
                    checked = False
        finally:
            self._checking = False
        return checked

    async def check(self, tenant_id: str, application: str, version: str) -> bool:
        catalog = await self.catalogs.get(tenant_id, application)
        definition = catalog.get(version)
        if definition is None or definition.spec.rollout_policy is None or definition.halt:
            return False
        if definition.spec.rollout_plan is not None:
            return False  # judged with the plan's outcomes by the gate worker (services/waves)
        policy = definition.spec.rollout_policy
        applied, failed = await self.endpoints.report_counts(tenant_id, application, version)
        applied -= definition.policy_baseline[0]
        failed -= definition.policy_baseline[1]
        reports = applied + failed
        if reports < policy.min_reports or failed / reports <= policy.max_failure_ratio:
            return False
        reason = halt_reason(failed, reports, policy.max_failure_ratio)
        await self.halt(tenant_id, application, version, reason)
        return True
