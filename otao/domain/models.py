"""Domain models: software definitions, application settings and what otao knows of endpoints.

Pure data. Conversion to and from protobuf lives in ``otao.rpc``; to and from BSON in
``otao.store``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple, TypeAlias

from otao.domain.rollout_plan import RolloutPlan
from otao.domain.rollout_state import InstallRecord, RolloutState
from otao.domain.values import frozen

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None


def canonical_json(value: JsonValue) -> str:
    """The JSON text otao stores and sends: compact, unicode kept, key order kept."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class RolloutStrategy(StrEnum):
    SUSPENDED = "suspended"
    TARGETED = "targeted"
    GENERAL = "general"


@frozen
class RolloutFilter:
    filter_id: str
    # None means the filter's endpoints may update at once.
    rollout_date: datetime | None = None


@frozen
class RolloutPolicy:
    max_failure_ratio: float
    min_reports: int


@frozen
class RolloutHalt:
    reason: str
    halted_at: datetime


@frozen
class SoftwareSpec:
    """The writable fields of a definition, as an operator submits them (validated)."""

    version: str
    upgradable_from: tuple[str, ...]
    # Canonical JSON text (see canonical_json): stored as text so MongoDB's rules on field
    # names ($, .) cannot bite, and sent to endpoints byte for byte.
    specification_json: str
    metadata_json: str
    rollout_strategy: RolloutStrategy
    filters: tuple[RolloutFilter, ...] = ()
    rollout_policy: RolloutPolicy | None = None
    # Staged waves over the eligible endpoints (docs/rollouts.md); None: all at once.
    rollout_plan: RolloutPlan | None = None


@frozen
class Software:
    """A stored software update definition."""

    tenant_id: str
    application: str
    spec: SoftwareSpec
    created_at: datetime
    updated_at: datetime
    etag: str
    halt: RolloutHalt | None = None
    # (applied, failed) report counts when an operator resumed a halted rollout: the
    # rolloutPolicy judges only the reports that came after.
    policy_baseline: tuple[int, int] = (0, 0)
    # Where the plan's rollout stands; set exactly when spec.rollout_plan is.
    rollout: RolloutState | None = None

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def rollout_strategy(self) -> RolloutStrategy:
        return self.spec.rollout_strategy

    @property
    def upgradable_from(self) -> tuple[str, ...]:
        return self.spec.upgradable_from

    @property
    def waves_pending(self) -> bool:
        """Whether its rollout plan still holds endpoints back by wave (a wave not open yet):
        only then does an endpoint's wave, a hash of its id, matter."""
        plan, state = self.spec.rollout_plan, self.rollout
        return plan is not None and state is not None and state.current_wave < plan.last_wave


@frozen
class ApplicationSettings:
    consent_required: bool = False


@frozen
class AppliedReport:
    """What an endpoint last reported applying (6/CDTP ConfigApplied)."""

    config_id: str
    status_code: int
    reason_phrase: str | None
    reported_at: datetime

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def failed(self) -> bool:
        return self.status_code >= 400


@frozen
class Consent:
    # None with all_versions.
    version: str | None
    all_versions: bool
    granted_at: datetime


class FilterSource(StrEnum):
    EFMP = "efmp"  # EPR's answer to a membership query (the whole membership)
    EFE = "efe"  # one ep-matched event (one fact)


@frozen
class FilterBelief:
    """One filter otao believes an endpoint matches, and since when, on whose word."""

    filter_id: str
    source: FilterSource
    at: datetime


@frozen
class EndpointState:
    """Everything otao holds about one endpoint of one application: one record, one read."""

    tenant_id: str
    application: str
    endpoint_id: str
    current_version: str | None = None
    last_report: AppliedReport | None = None
    failed_versions: frozenset[str] = frozenset()
    consents: tuple[Consent, ...] = ()
    # The filters otao believes the endpoint matches; None: no fact about any filter yet.
    filters: frozenset[str] | None = None
    updated_at: datetime | None = None
    # The Kaa application version the endpoint last spoke under (for pushes).
    app_version: str | None = None
    # True once EPR answered a membership query (20/EFMP): ``filters`` is then the whole
    # membership, not only the facts single 18/EFE events gave.
    filters_known: bool = False
    # Where each belief in ``filters`` came from (explain shows them).
    filter_beliefs: tuple[FilterBelief, ...] = ()
    # False: known only from a pre-granted consent or an EPR filter event, never from the
    # endpoint itself; not a known endpoint (not listed, counted or pushed to) until it polls
    # or reports.
    seen: bool = True
    # Per version reported on under a rollout plan: report, previous version, settling poll.
    installs: tuple[InstallRecord, ...] = ()

    @property
    def consented_versions(self) -> frozenset[str]:
        return frozenset(c.version for c in self.consents if c.version is not None)

    @property
    def consent_all(self) -> bool:
        return any(c.all_versions for c in self.consents)


class EndpointKey(NamedTuple):
    """One endpoint of one tenant's application: the key of every per-endpoint map (sightings,
    offers, budget grants). A tuple, not a frozen dataclass: every CDTP poll builds one and
    looks it up twice, and a tuple is built, hashed and compared in C (0.29 vs 0.49 µs to
    build, 0.07 vs 0.14 µs to hash, measured in-process)."""

    tenant_id: str
    application: str
    endpoint_id: str


@frozen
class Caller:
    """Who is calling: the tenant comes from the verified token, never from the request.

    ``may_read`` answers whether the caller may read one of the tenant's applications, by the
    same permission check every per-application call passes (the access layer sets it), for
    listings that span applications. Without it the caller may read none (fails closed).
    """

    tenant_id: str
    subject: str
    may_read: Callable[[str], Awaitable[bool]] | None = field(
        default=None, compare=False, repr=False
    )


SYSTEM_ACTOR = "system"


@frozen
class AuditEntry:
    id: str
    tenant_id: str
    application: str
    time: datetime
    actor: str
    action: str
    resource: str
    details: dict[str, JsonValue]


@frozen
class Change:
    """A change that may alter what endpoints of an application should get."""

    tenant_id: str
    application: str
    before: Software | None = None
    after: Software | None = None
    settings_before: ApplicationSettings | None = None
    settings_after: ApplicationSettings | None = None
