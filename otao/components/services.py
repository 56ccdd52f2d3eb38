"""The use cases, built in dependency order: each gets what it calls at construction.

push before the services that notify it; software before the halt monitor that halts
through it; filters (which store EPR's answers) before resolution (which asks for them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from otao.components.broker import Broker
from otao.components.observability import Observability
from otao.components.storage import Storage
from otao.components.watch import Watch
from otao.domain.applications import ApplicationConfig
from otao.domain.models import AppliedReport, EndpointKey
from otao.platform import Platform
from otao.services.applications import ApplicationDirectory
from otao.services.audit import AuditLog
from otao.services.catalogs import CatalogCache
from otao.services.configuration import TektonConfiguration
from otao.services.delivery import DeliveryService
from otao.services.endpoints import EndpointsService
from otao.services.filters import FilterService
from otao.services.offer_budget import OfferBudget
from otao.services.ports import Clock
from otao.services.push import PushService
from otao.services.recorder import SightingRecorder
from otao.services.resolution import ResolutionService
from otao.services.rollout import HaltMonitor, RolloutService
from otao.services.schedule import RolloutDateScheduler
from otao.services.software import SoftwareService
from otao.services.watch import announcing_changes, announcing_reports
from otao.services.waves import WaveService
from otao.settings import Settings
from otao.store.offer_budgets import OfferBudgetStore
from otao.store.rollout_reads import RolloutReads


@dataclass(frozen=True, slots=True)
class Services:
    applications: ApplicationDirectory
    catalogs: CatalogCache
    audit: AuditLog
    push: PushService
    software: SoftwareService
    halts: HaltMonitor
    filters: FilterService
    resolution: ResolutionService
    recorder: SightingRecorder
    delivery: DeliveryService
    endpoints: EndpointsService
    rollout: RolloutService
    scheduler: RolloutDateScheduler
    waves: WaveService
    watch: Watch  # this replica's watchers and the RolloutEvents port
    tekton: TektonConfiguration | None  # only when Kaa Tekton is the configuration source


def build_services(
    settings: Settings,
    storage: Storage,
    broker: Broker,
    platform: Platform,
    clock: Clock,
    on_catalog_loaded: Callable[[], None] | None = None,
    observability: Observability | None = None,
    *,
    watch: Watch,
) -> Services:
    observed = observability or Observability(None, None)
    applications = ApplicationDirectory(
        ApplicationConfig(a.name, a.tenant_id, tuple(a.app_versions), a.consent_required)
        for a in settings.applications
    )
    catalogs = CatalogCache(
        storage.software,
        applications,
        broker.catalog_announcer.announce,
        settings_from_configuration_only=settings.tekton.enabled,
        on_loaded=on_catalog_loaded,
    )
    audit = AuditLog(storage.audit, applications, clock)
    budget = OfferBudget(OfferBudgetStore(storage.mongo), storage.offers, clock)
    push = _push(settings, storage, broker, catalogs, applications, clock, observed, budget)
    software = SoftwareService(
        storage.software,
        catalogs,
        applications,
        audit,
        clock,
        on_change=announcing_changes(watch.events, push.on_change),
        prepare_push=push.prepare,
        report_counts=storage.endpoints.report_counts,
        settings_managed_externally=settings.tekton.enabled,
    )
    halts = HaltMonitor(catalogs, storage.endpoints, observed.counted_halt(software.halt))
    waves = WaveService(
        applications,
        catalogs,
        storage.software,
        RolloutReads(storage.mongo),
        storage.offers,
        audit,
        push.enqueue,
        software.halt,
        clock,
        events=watch.events,
        on_wave_opened=observed.wave_opened,
        interval=settings.push.rollout_gate_check_seconds,
    )

    async def on_report(key: EndpointKey, report: AppliedReport) -> None:
        await halts.on_report(key, report)
        await waves.on_report(key, report)

    filters = FilterService(
        applications,
        storage.endpoints,
        catalogs,
        notify=push.notify_endpoint,
        ask_epr=broker.membership.ask,
        clock=clock,
    )
    resolution = ResolutionService(
        applications, catalogs, storage.endpoints, clock, filters.learn, waves.gates, budget
    )
    recorder = SightingRecorder(storage.endpoints, storage.offers, clock)
    delivery = DeliveryService(
        applications,
        resolution,
        storage.endpoints,
        recorder,
        on_report=announcing_reports(watch.events, on_report),
        offers=storage.offers,
        budget=budget,
    )
    return Services(
        applications,
        catalogs,
        audit,
        push,
        software,
        halts,
        filters,
        resolution,
        recorder,
        delivery,
        EndpointsService(
            applications, storage.endpoints, resolution, audit, clock, push.notify_endpoint
        ),
        RolloutService(applications, catalogs, storage.endpoints, storage.offers, clock, waves),
        RolloutDateScheduler(
            applications, catalogs, push, clock, interval=settings.push.rollout_date_check_seconds
        ),
        waves,
        watch,
        (
            TektonConfiguration(
                platform.tekton_fetch(),
                applications,
                catalogs,
                push,
                clock,
                settings.tekton.retry_seconds,
            )
            if settings.tekton.enabled
            else None
        ),
    )


def _push(
    settings: Settings,
    storage: Storage,
    broker: Broker,
    catalogs: CatalogCache,
    applications: ApplicationDirectory,
    clock: Clock,
    observed: Observability,
    budget: OfferBudget,
) -> PushService:
    return PushService(
        storage.push_jobs,
        storage.endpoints,
        storage.offers,
        catalogs,
        applications,
        observed.counted_publisher(broker.config_updated),
        clock,
        settings.replica_id,
        rate_per_second=settings.push.rate_per_second,
        batch_size=settings.push.batch_size,
        lease_seconds=settings.push.lease_seconds,
        poll_interval_seconds=settings.push.poll_interval_seconds,
        budget=budget,
    )
