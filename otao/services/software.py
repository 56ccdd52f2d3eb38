"""Managing software definitions and application settings: the operators' use cases."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from otao.domain import validation, versions
from otao.domain.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound
from otao.domain.models import (
    SYSTEM_ACTOR,
    ApplicationSettings,
    Caller,
    Change,
    RolloutHalt,
    RolloutStrategy,
    Software,
    SoftwareSpec,
)
from otao.domain.retry import LostRace, until_written
from otao.domain.rollout_state import RolloutState
from otao.domain.validation import SoftwareField, SoftwareInput
from otao.services.applications import ApplicationDirectory
from otao.services.audit import AuditLog, changes, settings_fields, software_fields
from otao.services.catalogs import CatalogCache
from otao.services.ports import ChangeHandler, Clock
from otao.services.software_merge import fields_given, merged
from otao.store.software import SoftwareStore

log = logging.getLogger(__name__)

# (applied, failed) counts of a version: the baseline of a resumed rollout.
ReportCounts = Callable[[str, str, str], Awaitable[tuple[int, int]]]


def _new_etag() -> str:
    return uuid.uuid4().hex


def rollout_after(
    spec: SoftwareSpec, existing: RolloutState | None, now: datetime
) -> RolloutState | None:
    """The rollout state under a (new) spec: a plan set for the first time starts with wave 0
    open now; a replaced plan keeps how far the rollout got; no plan, no state."""
    if spec.rollout_plan is None:
        return None
    if existing is None:
        return RolloutState.started(now)
    return existing.fitted(len(spec.rollout_plan.waves))


@dataclass(eq=False)
class SoftwareService:
    store: SoftwareStore
    catalogs: CatalogCache
    applications: ApplicationDirectory
    audit: AuditLog
    clock: Clock
    on_change: ChangeHandler
    prepare_push: ChangeHandler
    report_counts: ReportCounts
    settings_managed_externally: bool = False

    def _application(self, caller: Caller, application: str) -> str:
        return self.applications.require(caller.tenant_id, application).name

    async def list_software(self, caller: Caller, application: str) -> list[Software]:
        self._application(caller, application)
        found = await self.store.list_definitions(caller.tenant_id, application)
        return sorted(found, key=lambda s: versions.sort_key(s.version), reverse=True)

    async def get(self, caller: Caller, application: str, version: str) -> Software:
        self._application(caller, application)
        validation.version(version)
        found = await self.store.get(caller.tenant_id, application, version)
        if found is None:
            raise NotFound(f"application {application} has no version {version}")
        return found

    async def create(self, caller: Caller, application: str, submitted: SoftwareInput) -> Software:
        self._application(caller, application)
        spec = validation.software(submitted)
        now = self.clock()
        created = Software(
            caller.tenant_id,
            application,
            spec,
            now,
            now,
            _new_etag(),
            rollout=rollout_after(spec, None, now),
        )
        change = Change(caller.tenant_id, application, None, created)
        # The push intent is written before the definition (an outbox the push worker reads),
        # so a failure between the insert and the push below cannot lose the push.
        await self.prepare_push(change)
        await self.store.insert(created)
        await self._changed(caller, change)
        await self.audit.record(
            caller,
            application,
            "software.create",
            f"software/{spec.version}",
            {"rolloutStrategy": spec.rollout_strategy.value},
        )
        return created

    async def replace(
        self,
        caller: Caller,
        application: str,
        version: str,
        submitted: SoftwareInput,
        etag: str,
    ) -> Software:
        self._check_target(caller, application, version, submitted)
        submitted.version = version
        spec = validation.software(submitted)
        # A replacement always states the strategy, so it resumes a halted rollout.
        return await self._write(
            caller, application, version, etag, lambda _: spec, "software.replace", True
        )

    async def update(
        self,
        caller: Caller,
        application: str,
        version: str,
        submitted: SoftwareInput,
        fields: Sequence[SoftwareField] | None,
        etag: str,
    ) -> Software:
        """Change ``fields`` of the definition (None: the fields ``submitted`` gives)."""
        self._check_target(caller, application, version, submitted)
        named = fields_given(submitted) if fields is None else list(fields)
        return await self._write(
            caller,
            application,
            version,
            etag,
            lambda existing: merged(existing, submitted, named),
            "software.update",
            False,
        )

    def _check_target(
        self, caller: Caller, application: str, version: str, submitted: SoftwareInput
    ) -> None:
        """The definition a replace or update names: valid, and the body's version agrees."""
        self._application(caller, application)
        validation.version(version)
        if submitted.version and submitted.version != version:
            raise InvalidArgument.of("version", "must equal the version in the path")

    async def _write(
        self,
        caller: Caller,
        application: str,
        version: str,
        etag: str,
        build: Callable[[Software], SoftwareSpec],
        action: str,
        sets_strategy: bool,
    ) -> Software:
        """``sets_strategy``: the write states the strategy even if unchanged (a replace)."""

        # Compare-and-set on the stored etag. With the caller's etag a lost race is a
        # conflict (409); without one, re-read and retry so the last writer wins cleanly.
        async def attempt() -> Software:
            existing = await self.get(caller, application, version)
            if etag and existing.etag != etag:
                raise Aborted("the definition changed since it was read (etag mismatch)")
            spec = build(existing)
            strategy_set = sets_strategy or (spec.rollout_strategy is not existing.rollout_strategy)
            resumed = strategy_set and existing.halt is not None
            now = self.clock()
            updated = replace(
                existing,
                spec=spec,
                rollout=rollout_after(spec, existing.rollout, now),
                updated_at=now,
                etag=_new_etag(),
                # An operator setting the strategy resumes a halted rollout; from then on the
                # policy judges only new reports.
                halt=None if strategy_set else existing.halt,
                policy_baseline=(
                    await self.report_counts(caller.tenant_id, application, version)
                    if resumed
                    else existing.policy_baseline
                ),
            )
            await self._replace(updated, existing.etag, conflict_is_final=bool(etag))
            await self._changed(caller, Change(caller.tenant_id, application, existing, updated))
            await self.audit.record(
                caller,
                application,
                action,
                f"software/{version}",
                changes(software_fields(existing.spec), software_fields(spec)),
            )
            return updated

        return await until_written(attempt, "the definition")

    async def _replace(self, updated: Software, etag: str, conflict_is_final: bool) -> None:
        try:
            await self.store.replace(updated, etag)
        except Aborted:
            if conflict_is_final:
                raise
            raise LostRace from None

    async def delete(self, caller: Caller, application: str, version: str, etag: str) -> None:
        existing = await self.get(caller, application, version)
        if etag and existing.etag != etag:
            raise Aborted("the definition changed since it was read (etag mismatch)")
        await self.store.delete(caller.tenant_id, application, version, etag or None)
        await self._changed(caller, Change(caller.tenant_id, application, existing, None))
        await self.audit.record(
            caller,
            application,
            "software.delete",
            f"software/{version}",
        )

    async def halt(self, tenant_id: str, application: str, version: str, reason: str) -> None:
        """Suspend a rollout on otao's own account (rollout health), recording why."""
        system = Caller(tenant_id, SYSTEM_ACTOR)

        async def attempt() -> None:
            existing = await self.store.get(tenant_id, application, version)
            if existing is None or existing.halt is not None:
                return
            now = self.clock()
            halted = replace(
                existing,
                spec=replace(existing.spec, rollout_strategy=RolloutStrategy.SUSPENDED),
                updated_at=now,
                etag=_new_etag(),
                halt=RolloutHalt(reason, now),
            )
            await self._replace(halted, existing.etag, conflict_is_final=False)
            log.warning(
                "rollout halted",
                extra={
                    "tenant": tenant_id,
                    "application": application,
                    "version": version,
                    "reason": reason,
                },
            )
            await self._changed(system, Change(tenant_id, application, existing, halted))
            await self.audit.record(
                system,
                application,
                "rollout.halt",
                f"software/{version}",
                {
                    "reason": reason,
                    **changes(software_fields(existing.spec), software_fields(halted.spec)),
                },
            )

        await until_written(attempt, "the definition")

    async def get_settings(self, caller: Caller, application: str) -> ApplicationSettings:
        self._application(caller, application)
        return await self.catalogs.settings(caller.tenant_id, application)

    async def put_settings(
        self, caller: Caller, application: str, settings: ApplicationSettings
    ) -> ApplicationSettings:
        self._application(caller, application)
        if self.settings_managed_externally:
            raise FailedPrecondition("application settings come from Kaa Tekton; change them there")
        before = await self.catalogs.settings(caller.tenant_id, application)
        await self.store.put_settings(caller.tenant_id, application, settings, self.clock())
        await self._changed(
            caller,
            Change(caller.tenant_id, application, settings_before=before, settings_after=settings),
        )
        await self.audit.record(
            caller,
            application,
            "settings.update",
            "settings",
            changes(settings_fields(before), settings_fields(settings)),
        )
        return settings

    async def _changed(self, caller: Caller, change: Change) -> None:
        await self.catalogs.changed(change.tenant_id, change.application)
        await self.on_change(change)
