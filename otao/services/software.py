"""Managing software definitions and application settings: the operators' use cases."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime

from otao.domain import validation, versions
from otao.domain.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound
from otao.domain.models import (
    SYSTEM_ACTOR,
    ApplicationSettings,
    Caller,
    Change,
    JsonValue,
    RolloutHalt,
    RolloutStrategy,
    Software,
    SoftwareSpec,
)
from otao.domain.validation import SoftwareInput
from otao.services.applications import ApplicationDirectory
from otao.services.audit import AuditLog, changes, settings_fields, software_fields
from otao.services.catalogs import CatalogCache
from otao.store.software import SoftwareStore

log = logging.getLogger(__name__)

ChangeHandler = Callable[[Change], Awaitable[None]]
# (applied, failed) counts of a version: the baseline of a resumed rollout.
ReportCounts = Callable[[str, str, str], Awaitable[tuple[int, int]]]


# Writable fields by their JSON names, as an update mask names them.
MASKABLE = (
    "upgradableFrom",
    "specification",
    "metadata",
    "rolloutStrategy",
    "filters",
    "rolloutPolicy",
)
_MASK_ALIASES = {
    "upgradable_from": "upgradableFrom",
    "rollout_strategy": "rolloutStrategy",
    "rollout_policy": "rolloutPolicy",
}


def _new_etag() -> str:
    return uuid.uuid4().hex


def _as_input(software: Software) -> SoftwareInput:
    spec = software.spec
    return SoftwareInput(
        version=spec.version,
        upgradable_from=list(spec.upgradable_from),
        specification=_loads(spec.specification_json),
        has_specification=True,
        metadata=_loads(spec.metadata_json),
        has_metadata=True,
        rollout_strategy=spec.rollout_strategy.value,
        filters=[
            (f.filter_id, validation.format_utc_date(f.rollout_date) if f.rollout_date else "")
            for f in spec.filters
        ],
        rollout_policy=(
            (spec.rollout_policy.max_failure_ratio, spec.rollout_policy.min_reports)
            if spec.rollout_policy
            else None
        ),
    )


def _loads(text: str) -> JsonValue:
    value: JsonValue = json.loads(text)
    return value


class SoftwareService:
    def __init__(
        self,
        store: SoftwareStore,
        catalogs: CatalogCache,
        applications: ApplicationDirectory,
        audit: AuditLog,
        clock: Callable[[], datetime],
        on_change: ChangeHandler,
        report_counts: ReportCounts,
        settings_managed_externally: bool = False,
    ) -> None:
        self._store = store
        self._catalogs = catalogs
        self._applications = applications
        self._audit = audit
        self._clock = clock
        self._settings_managed_externally = settings_managed_externally
        self._on_change = on_change
        self._report_counts = report_counts

    def _application(self, caller: Caller, application: str) -> str:
        return self._applications.require(caller.tenant_id, application).name

    async def list_software(self, caller: Caller, application: str) -> list[Software]:
        self._application(caller, application)
        found = await self._store.list_definitions(caller.tenant_id, application)
        return sorted(found, key=lambda s: versions.sort_key(s.version), reverse=True)

    async def get(self, caller: Caller, application: str, version: str) -> Software:
        self._application(caller, application)
        validation.version(version)
        found = await self._store.get(caller.tenant_id, application, version)
        if found is None:
            raise NotFound(f"application {application} has no version {version}")
        return found

    async def create(self, caller: Caller, application: str, submitted: SoftwareInput) -> Software:
        self._application(caller, application)
        spec = validation.software(submitted)
        now = self._clock()
        created = Software(caller.tenant_id, application, spec, now, now, _new_etag())
        await self._store.insert(created)
        await self._changed(caller, Change(caller.tenant_id, application, None, created))
        await self._audit.record(
            caller.tenant_id,
            application,
            caller.subject,
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
        self._application(caller, application)
        validation.version(version)
        if submitted.version and submitted.version != version:
            raise InvalidArgument.of("version", "must equal the version in the path")
        submitted.version = version
        spec = validation.software(submitted)
        return await self._write(
            caller, application, version, etag, lambda _: spec, "software.replace"
        )

    async def update(
        self,
        caller: Caller,
        application: str,
        version: str,
        submitted: SoftwareInput,
        mask: Sequence[str],
        etag: str,
    ) -> Software:
        self._application(caller, application)
        validation.version(version)
        fields = self._mask(submitted, mask, version)

        def merged(existing: Software) -> SoftwareSpec:
            merged_input = _as_input(existing)
            for name in fields:
                _copy_field(name, submitted, merged_input)
            # Leaving "targeted" without naming filters drops them, rather than failing on
            # filters the operator did not mention.
            if (
                "rolloutStrategy" in fields
                and "filters" not in fields
                and merged_input.rollout_strategy != RolloutStrategy.TARGETED.value
            ):
                merged_input.filters = []
            return validation.software(merged_input)

        return await self._write(caller, application, version, etag, merged, "software.update")

    def _mask(self, submitted: SoftwareInput, mask: Sequence[str], version: str) -> list[str]:
        if submitted.version and submitted.version != version:
            raise InvalidArgument.of("version", "must equal the version in the path")
        if not mask:
            present = {
                "upgradableFrom": bool(submitted.upgradable_from),
                "specification": submitted.has_specification,
                "metadata": submitted.has_metadata,
                "rolloutStrategy": bool(submitted.rollout_strategy),
                "filters": bool(submitted.filters),
                "rolloutPolicy": submitted.rollout_policy is not None,
            }
            return [name for name, here in present.items() if here]
        fields: list[str] = []
        for path in mask:
            name = _MASK_ALIASES.get(path, path)
            if name == "version":
                continue
            if name not in MASKABLE:
                raise InvalidArgument.of("updateMask", f"unknown or read-only field {path!r}")
            fields.append(name)
        return fields

    async def _write(
        self,
        caller: Caller,
        application: str,
        version: str,
        etag: str,
        build: Callable[[Software], SoftwareSpec],
        action: str,
    ) -> Software:
        # Compare-and-set on the stored etag. With the caller's etag a lost race is a
        # conflict (409); without one, re-read and retry so the last writer wins cleanly.
        for _ in range(5):
            existing = await self.get(caller, application, version)
            if etag and existing.etag != etag:
                raise Aborted("the definition changed since it was read (etag mismatch)")
            spec = build(existing)
            strategy_set = action == "software.replace" or (
                spec.rollout_strategy is not existing.rollout_strategy
            )
            resumed = strategy_set and existing.halt is not None
            updated = replace(
                existing,
                spec=spec,
                updated_at=self._clock(),
                etag=_new_etag(),
                # An operator setting the strategy resumes a halted rollout; from then on the
                # policy judges only new reports.
                halt=None if strategy_set else existing.halt,
                policy_baseline=(
                    await self._report_counts(caller.tenant_id, application, version)
                    if resumed
                    else existing.policy_baseline
                ),
            )
            try:
                await self._store.replace(updated, existing.etag)
            except Aborted:
                if etag:
                    raise
                continue
            await self._changed(caller, Change(caller.tenant_id, application, existing, updated))
            await self._audit.record(
                caller.tenant_id,
                application,
                caller.subject,
                action,
                f"software/{version}",
                changes(software_fields(existing.spec), software_fields(spec)),
            )
            return updated
        raise Aborted("the definition is being changed concurrently; try again")

    async def delete(self, caller: Caller, application: str, version: str, etag: str) -> None:
        existing = await self.get(caller, application, version)
        if etag and existing.etag != etag:
            raise Aborted("the definition changed since it was read (etag mismatch)")
        await self._store.delete(caller.tenant_id, application, version, etag or None)
        await self._changed(caller, Change(caller.tenant_id, application, existing, None))
        await self._audit.record(
            caller.tenant_id,
            application,
            caller.subject,
            "software.delete",
            f"software/{version}",
        )

    async def halt(self, tenant_id: str, application: str, version: str, reason: str) -> None:
        """Suspend a rollout on otao's own account (rollout health), recording why."""
        system = Caller(tenant_id, SYSTEM_ACTOR)
        for _ in range(5):
            existing = await self._store.get(tenant_id, application, version)
            if existing is None or existing.halt is not None:
                return
            now = self._clock()
            halted = replace(
                existing,
                spec=replace(existing.spec, rollout_strategy=RolloutStrategy.SUSPENDED),
                updated_at=now,
                etag=_new_etag(),
                halt=RolloutHalt(reason, now),
            )
            try:
                await self._store.replace(halted, existing.etag)
            except Aborted:
                continue
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
            await self._audit.record(
                tenant_id,
                application,
                SYSTEM_ACTOR,
                "rollout.halt",
                f"software/{version}",
                {
                    "reason": reason,
                    **changes(software_fields(existing.spec), software_fields(halted.spec)),
                },
            )
            return

    async def get_settings(self, caller: Caller, application: str) -> ApplicationSettings:
        self._application(caller, application)
        return await self._catalogs.settings(caller.tenant_id, application)

    async def put_settings(
        self, caller: Caller, application: str, settings: ApplicationSettings
    ) -> ApplicationSettings:
        self._application(caller, application)
        if self._settings_managed_externally:
            raise FailedPrecondition("application settings come from Kaa Tekton; change them there")
        before = await self._catalogs.settings(caller.tenant_id, application)
        await self._store.put_settings(caller.tenant_id, application, settings, self._clock())
        await self._changed(
            caller,
            Change(caller.tenant_id, application, settings_before=before, settings_after=settings),
        )
        await self._audit.record(
            caller.tenant_id,
            application,
            caller.subject,
            "settings.update",
            "settings",
            changes(settings_fields(before), settings_fields(settings)),
        )
        return settings

    async def _changed(self, caller: Caller, change: Change) -> None:
        await self._catalogs.changed(change.tenant_id, change.application)
        await self._on_change(change)


def _copy_field(name: str, source: SoftwareInput, target: SoftwareInput) -> None:
    if name == "upgradableFrom":
        target.upgradable_from = list(source.upgradable_from)
    elif name == "specification":
        target.specification = source.specification
        target.has_specification = source.has_specification
    elif name == "metadata":
        target.metadata = source.metadata if source.has_metadata else {}
        target.has_metadata = True
    elif name == "rolloutStrategy":
        target.rollout_strategy = source.rollout_strategy
    elif name == "filters":
        target.filters = list(source.filters)
    elif name == "rolloutPolicy":
        target.rollout_policy = source.rollout_policy
