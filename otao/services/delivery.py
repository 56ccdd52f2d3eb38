"""The device-facing use cases behind 6/CDTP: answering polls and taking applied reports."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from otao.domain.errors import InvalidArgument, NotFound
from otao.domain.models import AppliedReport, EndpointKey
from otao.services.applications import ApplicationDirectory
from otao.services.offer_budget import OfferBudget
from otao.services.ports import ReportHandler
from otao.services.recorder import SightingRecorder
from otao.services.resolution import Decision, ResolutionService
from otao.store.endpoints import EndpointStore
from otao.store.offers import OfferStore


@dataclass(frozen=True, slots=True)
class Offer:
    """An answer to a poll: the version to install and its specification, or nothing."""

    current_version: str | None
    version: str | None = None
    content: bytes | None = None


@dataclass(eq=False)
class DeliveryService:
    applications: ApplicationDirectory
    resolution: ResolutionService
    endpoints: EndpointStore
    recorder: SightingRecorder
    on_report: ReportHandler
    offers: OfferStore
    budget: OfferBudget

    def endpoint_of(self, app_version_name: str, endpoint_id: str) -> EndpointKey:
        key = self.applications.device_endpoint(app_version_name, endpoint_id)
        if key is None:
            raise NotFound(f"unknown application version {app_version_name!r}")
        return key

    async def poll(self, app_version_name: str, endpoint_id: str, known: str | None) -> Offer:
        """A consumer asks for an endpoint's configuration; ``known`` is its configId."""
        key = self.endpoint_of(app_version_name, endpoint_id)
        decision = await self.resolution.decide(key, known)
        selected = decision.selected
        if selected is not None and not await self.budget.allow(key, selected):
            # This minute's first offers of the version are used up: nothing new for now.
            decision = replace(decision, selected=None)
        return self._answer(key, app_version_name, known, decision)

    def poll_from_catalog(self, app_version_name: str, endpoint_id: str, known: str | None) -> bool:
        """True when the in-memory catalog alone answers the poll, without suspending: then
        nothing is upgradable from ``known`` (the steady-state poll), so the answer is
        ``Offer(known)``, nothing new. False when answering needs ``poll``.

        No Decision is looked at and no Offer is built: the steady-state poll is most of a
        fleet's traffic, and those objects were about 1.5 of otao's 13 µs a poll (measured
        in-process). The sighting is noted as ``_answer`` notes it for a decision that read
        no endpoint record.
        """
        key = self.endpoint_of(app_version_name, endpoint_id)
        if not self.resolution.steady_from_catalog(key, known):
            return False
        self.recorder.seen(key, app_version_name, known)
        return True

    def _answer(
        self, key: EndpointKey, app_version_name: str, known: str | None, decision: Decision
    ) -> Offer:
        # Sightings and offers are recorded off the response path; see SightingRecorder.
        state = decision.state
        if state is not None and any(i.settles(known) for i in state.installs):
            # A poll after a success report: committed, or an A/B fallback (docs/rollouts.md).
            self.recorder.seen(key, app_version_name, known, force=True)
        elif known is not None and state is not None:
            if state.app_version == app_version_name and state.current_version:
                # The record just read already holds what this sighting would write.
                self.recorder.known(key, app_version_name, known)
            else:
                self.recorder.seen(key, app_version_name, known)
        elif known is not None or (decision.state_read and state is None):
            self.recorder.seen(key, app_version_name, known)
        if decision.selected is None:
            return Offer(decision.current_version)
        spec = decision.selected.spec
        self.recorder.offered(key, spec.version)
        return Offer(decision.current_version, spec.version, spec.specification_json.encode())

    async def unregistered(self, app_version_name: str, endpoint_id: str) -> None:
        """EPR unregistered the endpoint: forget everything held about it."""
        key = self.endpoint_of(app_version_name, endpoint_id)
        self.recorder.forget(key)
        await self.endpoints.delete(key)
        await self.offers.forget(key)

    async def applied(
        self,
        app_version_name: str,
        endpoint_id: str,
        config_id: str,
        status_code: int,
        reason_phrase: str | None,
        reported_at: datetime,
    ) -> None:
        key = self.endpoint_of(app_version_name, endpoint_id)
        if not config_id:
            raise InvalidArgument.of("configId", "required")
        report = AppliedReport(config_id, status_code, reason_phrase, reported_at)
        await self.endpoints.apply_report(key, app_version_name, report)
        await self.on_report(key, report)
