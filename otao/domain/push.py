"""Push jobs as values, and the pure rule of who gets a push (docs/architecture.md, "Push").

A change that can alter what endpoints get becomes a ``PushJob``: the definition and settings
before and after the change. Jobs are made only by the factory methods below; each owns the
job's id, deterministic where the same change can be seen twice (every replica hears a
configuration event; every replica sees a rollout date pass; a create's intent is written
before the definition and made runnable after it), so one change makes one job.

``deliveries`` decides, for a batch of endpoints, which get a ConfigUpdated: those that are
eligible now and whose deliverable update differs from what it was before the change.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import field, replace
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol, TypeVar

from otao.domain import resolution
from otao.domain.catalog import Catalog
from otao.domain.models import (
    ApplicationSettings,
    Change,
    Consent,
    EndpointState,
    Software,
)
from otao.domain.resolution import EndpointFacts
from otao.domain.rollout_plan import wave_for
from otao.domain.values import frozen

# Before its date, a filter behaves as if its date were this far away.
_NOT_YET = timedelta(days=365 * 100)


class LeaseLost(Exception):
    """Another replica holds the job now (this one was too slow to renew): stop working it."""


@frozen
class PushProgress:
    """How far a job got. Cursors are the endpoint store's opaque positions ("" = start)."""

    sent_through: str = ""  # ConfigUpdated sent to every endpoint up to here
    offers_through: str = ""  # and their offers recorded up to here (never past sent_through)
    sent: int = 0


@frozen
class PushJob:
    id: str
    tenant_id: str
    application: str
    # The definition the change is about (None for a settings change), before and after it.
    version: str | None
    before: Software | None
    after: Software | None
    settings_before: ApplicationSettings | None
    settings_after: ApplicationSettings | None
    created_at: datetime
    progress: PushProgress = field(default_factory=PushProgress)

    @classmethod
    def for_change(cls, change: Change, now: datetime) -> PushJob | None:
        """The job of an operator's (or the halt monitor's) change; None when the change
        cannot alter any endpoint's deliverable update."""
        if not matters(change):
            return None
        changed = change.after or change.before
        if changed is None:  # a settings change: nothing identifies it but itself
            job_id = f"settings:{change.tenant_id}/{change.application}/{uuid.uuid4().hex}"
        else:
            # The etag is new with every write: one id per definition write, the same for
            # the intent recorded before a create and the job made after it.
            what = changed.etag if change.after else f"{changed.etag}-deleted"
            job_id = f"definition:{_scope(changed)}/{changed.version}/{what}"
        return cls(
            id=job_id,
            tenant_id=change.tenant_id,
            application=change.application,
            version=changed.version if changed else None,
            before=change.before,
            after=change.after,
            settings_before=change.settings_before,
            settings_after=change.settings_after,
            created_at=now,
        )

    @classmethod
    def for_rollout_date(cls, definition: Software, filter_index: int, now: datetime) -> PushJob:
        """The job of a targeted filter's rollout date that has passed: before it, the filter
        behaved as if its date were far away."""
        filters = list(definition.spec.filters)
        pending = filters[filter_index]
        filters[filter_index] = replace(
            pending, rollout_date=(pending.rollout_date or now) + _NOT_YET
        )
        before = replace(definition, spec=replace(definition.spec, filters=tuple(filters)))
        date = pending.rollout_date.isoformat() if pending.rollout_date else ""
        return cls._of_definition("date", f"{pending.filter_id}/{date}", before, definition, now)

    @classmethod
    def for_consent_lifted(
        cls, tenant_id: str, application: str, correlation_id: str, now: datetime
    ) -> PushJob:
        """Kaa Tekton no longer requires consent: endpoints that waited may get updates.
        Every replica hears the event; the id comes from it, so one job results."""
        return cls(
            id=f"settings:{tenant_id}/{application}/{correlation_id}",
            tenant_id=tenant_id,
            application=application,
            version=None,
            before=None,
            after=None,
            settings_before=ApplicationSettings(consent_required=True),
            settings_after=ApplicationSettings(consent_required=False),
            created_at=now,
        )

    @classmethod
    def for_wave_opened(cls, definition: Software, now: datetime) -> PushJob | None:
        """The job of a rollout's current wave having opened: before it, the wave before was
        the open one. The id names the wave and when it opened, so every replica (and every
        re-evaluation after a crash) makes the same one job; None on wave 0 (the definition's
        own write pushes that)."""
        state = definition.rollout
        if state is None or state.current_wave == 0:
            return None
        wave = state.current_wave
        before = replace(
            definition,
            rollout=replace(state, current_wave=wave - 1, opened_at=state.opened_at[:wave]),
        )
        opened = state.current_opened_at.isoformat()
        return cls._of_definition("wave", f"{wave}/{opened}", before, definition, now)

    @classmethod
    def for_rollout_resumed(cls, paused: Software, resumed: Software, now: datetime) -> PushJob:
        """The job of a paused rollout resumed: endpoints that polled meanwhile got nothing."""
        return cls._of_definition("resume", resumed.etag, paused, resumed, now)

    @classmethod
    def _of_definition(
        cls, kind: str, key: str, before: Software, after: Software, now: datetime
    ) -> PushJob:
        """A job about one definition's state (settings untouched), of id
        ``kind:tenant/application/version/key``."""
        return cls(
            id=f"{kind}:{_scope(after)}/{after.version}/{key}",
            tenant_id=after.tenant_id,
            application=after.application,
            version=after.version,
            before=before,
            after=after,
            settings_before=None,
            settings_after=None,
            created_at=now,
        )


def _scope(definition: Software) -> str:
    return f"{definition.tenant_id}/{definition.application}"


def matters(change: Change) -> bool:
    """Whether a change can alter any endpoint's deliverable update."""
    if change.settings_before is not None or change.settings_after is not None:
        return change.settings_before != change.settings_after
    before, after = change.before, change.after
    if before is None or after is None:
        return True
    a, b = before.spec, after.spec
    return (
        a.upgradable_from,
        a.specification_json,
        a.rollout_strategy,
        a.filters,
        a.rollout_plan,
    ) != (
        b.upgradable_from,
        b.specification_json,
        b.rollout_strategy,
        b.filters,
        b.rollout_plan,
    )


def catalog_before(job: PushJob, after: Catalog) -> Catalog:
    """The catalog as it was before the job's change: today's, with the change undone."""
    definitions = {d.version: d for d in after.definitions}
    if job.version is not None:
        definitions.pop(job.version, None)
        if job.before is not None:
            definitions[job.version] = job.before
    settings = after.settings
    if job.settings_before is not None:
        settings = job.settings_before
    return Catalog.build(job.tenant_id, job.application, settings, definitions.values())


class Walked(NamedTuple):
    """One endpoint as a push's walk reads it: what ``deliveries`` decides by and what the
    push sends to. A tuple: a push builds one per endpoint (a frozen EndpointState of fifteen
    fields cost 9% of the push's process, py-spy)."""

    endpoint_id: str
    current_version: str | None
    failed_versions: frozenset[str]
    consents: tuple[Consent, ...]
    filters: frozenset[str] | None
    app_version: str | None


class _Decided(Protocol):
    """What ``deliveries`` reads of an endpoint (an EndpointState or a Walked)."""

    @property
    def endpoint_id(self) -> str: ...
    @property
    def current_version(self) -> str | None: ...
    @property
    def failed_versions(self) -> frozenset[str]: ...
    @property
    def consents(self) -> tuple[Consent, ...]: ...
    @property
    def filters(self) -> frozenset[str] | None: ...


E = TypeVar("E", bound=_Decided)

# What EndpointFacts.of(state, None) depends on: endpoints alike in these get one decision.
_Signature = tuple[
    str | None, frozenset[str] | None, frozenset[str], tuple[Consent, ...], tuple[int, ...]
]


def deliveries(
    before: Catalog, after: Catalog, states: Iterable[E], now: datetime
) -> list[tuple[E, Software]]:
    """The endpoints to push, each with what it gets: eligible for an update now, and that
    update differs from the one before the change. Decided once per distinct set of facts
    (a fleet has few), since resolution is the cost of a push walk."""
    decided: dict[_Signature, Software | None] = {}
    pushed: list[tuple[E, Software]] = []
    # A rollout plan places each endpoint by its id, in a wave: the endpoint's waves under
    # every plan still holding some back are part of its facts (a wave opening: two kinds of
    # endpoint, not 100,000). A plan with every wave open, before and after, places nobody.
    plans = list(
        dict.fromkeys(  # once each: before and after mostly hold the same plan
            (d.spec.rollout_plan, d.application, d.version)
            for c in (before, after)
            for d in c.definitions
            if d.waves_pending and d.spec.rollout_plan is not None
        )
    )
    for state in states:
        signature = (
            state.current_version,
            state.filters,
            state.failed_versions,
            state.consents,
            # No plan (most pushes): no generator per endpoint either.
            tuple(wave_for(p, a, state.endpoint_id, v) for p, a, v in plans) if plans else (),
        )
        if signature in decided:
            offered = decided[signature]
        else:
            offered = decided[signature] = _offered(before, after, state, now)
        if offered is not None:
            pushed.append((state, offered))
    return pushed


def _offered(before: Catalog, after: Catalog, state: _Decided, now: datetime) -> Software | None:
    # Once per kind of endpoint: the facts from a state of only what they are made of.
    facts = EndpointFacts.of(
        EndpointState(
            "",
            "",
            state.endpoint_id,
            state.current_version,
            failed_versions=state.failed_versions,
            consents=state.consents,
            filters=state.filters,
        ),
        None,
    )
    offered = resolution.select(after, facts, now)
    if offered is None or not resolution.delivery_changed(
        resolution.select(before, facts, now), offered
    ):
        return None
    return offered
