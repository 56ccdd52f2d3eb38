"""How a rollout is going, and the automatic halt when too many endpoints fail it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from otao.domain import resolution, validation
from otao.domain.errors import NotFound
from otao.domain.models import AppliedReport, Caller, EndpointKey, Software
from otao.domain.resolution import EndpointFacts, VerdictKind
from otao.services.applications import ApplicationDirectory
from otao.services.catalogs import CatalogCache
from otao.services.waves import Progress, WaveService
from otao.services.workers import attempt, when_woken
from otao.store.endpoints import EndpointStore
from otao.store.offers import OfferStore

Halt = Callable[[str, str, str, str], Awaitable[None]]


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
    progress: Progress | None = None


class RolloutService:
    def __init__(
        self,
        applications: ApplicationDirectory,
        catalogs: CatalogCache,
        endpoints: EndpointStore,
        offers: OfferStore,
        clock: Callable[[], datetime],
        waves: WaveService,
    ) -> None:
        self._waves = waves
        self._applications = applications
        self._catalogs = catalogs
        self._endpoints = endpoints
        self._offers = offers
        self._clock = clock

    async def status(self, caller: Caller, application: str, version: str) -> RolloutStatus:
        self._applications.require(caller.tenant_id, application)
        validation.version(version)
        catalog = await self._catalogs.get(caller.tenant_id, application)
        definition = catalog.get(version)
        if definition is None:
            raise NotFound(f"application {application} has no version {version}")
        now = self._clock()
        consent_required = catalog.settings.consent_required
        eligible = awaiting = pending = 0
        states = await self._endpoints.all_for_application(caller.tenant_id, application)
        for state in states:
            facts = EndpointFacts.of(state, None)
            if definition not in catalog.candidates(facts.current_version):
                continue
            blocked = resolution.eligibility_blocker(definition, facts, consent_required, now)
            if blocked is None:
                eligible += 1
            elif blocked.kind is VerdictKind.AWAITING_CONSENT:
                awaiting += 1
            elif blocked.kind is VerdictKind.ROLLOUT_DATE_PENDING:
                pending += 1
        applied, failed = await self._endpoints.report_counts(
            caller.tenant_id, application, version
        )
        offered = await self._offers.offered_count(caller.tenant_id, application, version)
        judged = await self._waves.progress(caller.tenant_id, application, version)
        return RolloutStatus(
            definition, eligible, offered, applied, failed, awaiting, pending, judged
        )


class HaltMonitor:
    """Suspends a definition whose failure ratio crosses its rolloutPolicy.

    Reports only mark a definition for a check; one task checks marked definitions at
    most every ``interval`` seconds, so a burst of reports costs one count query.
    """

    def __init__(
        self,
        catalogs: CatalogCache,
        endpoints: EndpointStore,
        halt: Halt,
        interval: float = 0.5,
    ) -> None:
        self._catalogs = catalogs
        self._endpoints = endpoints
        self._halt = halt
        self._interval = interval
        self._marked: set[tuple[str, str, str]] = set()
        self._wake = asyncio.Event()
        self._checking = False
        # Reports handed to on_report so far: with ``idle``, the signal that every report
        # seen has been judged (tests wait on it instead of sleeping past the interval).
        self.reports_seen = 0

    @property
    def idle(self) -> bool:
        """No definition marked for a check and no check running."""
        return not self._marked and not self._checking

    async def on_report(self, key: EndpointKey, report: AppliedReport) -> None:
        try:
            catalog = await self._catalogs.get(key.tenant_id, key.application)
            definition = catalog.get(report.config_id)
            if definition is None or definition.spec.rollout_policy is None:
                return
            self._marked.add((key.tenant_id, key.application, report.config_id))
            self._wake.set()
        finally:
            self.reports_seen += 1  # counted once marked, so ``idle`` cannot come first

    async def run(self) -> None:
        interval = self._interval
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
        catalog = await self._catalogs.get(tenant_id, application)
        definition = catalog.get(version)
        if definition is None or definition.spec.rollout_policy is None or definition.halt:
            return False
        if definition.spec.rollout_plan is not None:
            return False  # judged with the plan's outcomes by the gate worker (services/waves)
        policy = definition.spec.rollout_policy
        applied, failed = await self._endpoints.report_counts(tenant_id, application, version)
        applied -= definition.policy_baseline[0]
        failed -= definition.policy_baseline[1]
        reports = applied + failed
        if reports < policy.min_reports or failed / reports <= policy.max_failure_ratio:
            return False
        reason = (
            f"failure ratio {failed}/{reports} = {failed / reports:.2f} exceeded "
            f"maxFailureRatio {policy.max_failure_ratio} after {reports} reports"
        )
        await self._halt(tenant_id, application, version, reason)
        return True
