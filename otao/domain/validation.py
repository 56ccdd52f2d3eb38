"""Validation of what operators submit. Pure: raises InvalidArgument with every violation."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from otao.domain import versions
from otao.domain.errors import FieldViolation, InvalidArgument
from otao.domain.models import (
    JsonValue,
    RolloutFilter,
    RolloutPolicy,
    RolloutStrategy,
    SoftwareSpec,
    canonical_json,
)
from otao.domain.rollout_plan import RolloutPlanInput, check_rollout_plan

MAX_JSON_BYTES = 256 * 1024
MAX_VERSION_LENGTH = 128
MAX_UPGRADABLE_FROM = 1000
MAX_FILTERS = 100

# Records one field violation: (JSON path, description).
_Reporter = Callable[[str, str], None]

# Matched with fullmatch: "$" alone would also accept a trailing newline.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ENDPOINT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,255}")
_FILTER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
# ISO 8601 in UTC, as Kaa writes it (yyyy-MM-ddTHH:mm:ssZ), fractions tolerated. ASCII digits
# only: a Unicode \d would let e.g. Arabic-Indic digits through (and strptime accepts them).
_UTC_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z")


class SoftwareField(StrEnum):
    """A writable field of a definition, as an update names it (the doors map their wire
    names, such as an update mask's, onto these)."""

    UPGRADABLE_FROM = "upgradable_from"
    SPECIFICATION = "specification"
    METADATA = "metadata"
    ROLLOUT_STRATEGY = "rollout_strategy"
    FILTERS = "filters"
    ROLLOUT_POLICY = "rollout_policy"
    ROLLOUT_PLAN = "rollout_plan"


@dataclass
class SoftwareInput:
    """A definition as submitted, before validation. ``None`` marks an absent JSON field."""

    version: str = ""
    upgradable_from: list[str] = field(default_factory=list)
    specification: JsonValue = None
    has_specification: bool = False
    metadata: JsonValue = None
    has_metadata: bool = False
    rollout_strategy: str = ""
    filters: list[tuple[str, str]] = field(default_factory=list)
    rollout_policy: tuple[float, int] | None = None
    rollout_plan: RolloutPlanInput | None = None


def application_name(name: str, field_name: str = "applicationName") -> str:
    if not _NAME.fullmatch(name):
        raise InvalidArgument.of(
            field_name, "must be 1-128 characters of letters, digits, '.', '_' or '-'"
        )
    return name


def endpoint_id(value: str, field_name: str = "endpointId") -> str:
    if not _ENDPOINT_ID.fullmatch(value):
        raise InvalidArgument.of(
            field_name, "must be 1-256 characters of letters, digits, '.', '_', ':' or '-'"
        )
    return value


def version(value: str, field_name: str = "version") -> str:
    problem = _version_problem(value)
    if problem:
        raise InvalidArgument.of(field_name, problem)
    return value


def optional_version(value: str, field_name: str) -> str | None:
    return version(value, field_name) if value else None


def parse_utc_date(value: str) -> datetime:
    """Parse yyyy-MM-ddTHH:mm:ss[.fff]Z; raises ValueError otherwise."""
    if not _UTC_DATE.fullmatch(value):
        raise ValueError(value)
    seconds, _, fraction = value[:-1].partition(".")
    parsed = datetime.strptime(seconds, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    micros = int((fraction + "000000")[:6]) if fraction else 0
    return parsed.replace(microsecond=micros)


def format_utc_date(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def software(submitted: SoftwareInput) -> SoftwareSpec:
    """Validate a whole definition; every problem found is reported at once."""
    problems: list[FieldViolation] = []

    def bad(path: str, description: str) -> None:
        problems.append(FieldViolation(path, description))

    version_problem = _version_problem(submitted.version)
    if version_problem:
        bad("version", version_problem)

    if len(submitted.upgradable_from) > MAX_UPGRADABLE_FROM:
        bad("upgradableFrom", f"at most {MAX_UPGRADABLE_FROM} versions")
    seen: set[str] = set()
    for index, source in enumerate(submitted.upgradable_from):
        path = f"upgradableFrom[{index}]"
        problem = _version_problem(source)
        if problem:
            bad(path, problem)
        elif source in seen:
            bad(path, f"duplicate version {source!r}")
        elif not version_problem and versions.parse(source) >= versions.parse(submitted.version):
            bad(path, f"{source!r} must be lower than version {submitted.version!r}")
        seen.add(source)

    strategy: RolloutStrategy | None = None
    try:
        strategy = RolloutStrategy(submitted.rollout_strategy)
    except ValueError:
        bad("rolloutStrategy", "required; one of suspended, targeted, general")

    filters = _filters(submitted.filters, strategy, bad)
    policy = _policy(submitted.rollout_policy, bad)
    plan = (
        check_rollout_plan(submitted.rollout_plan, bad)
        if submitted.rollout_plan is not None
        else None
    )

    specification_json = ""
    if not submitted.has_specification:
        bad("specification", "required (any JSON value)")
    else:
        specification_json = _json_text(submitted.specification, "specification", bad)
    metadata_json = "{}"
    if submitted.has_metadata:
        metadata_json = _json_text(submitted.metadata, "metadata", bad)

    if problems or strategy is None:
        raise InvalidArgument("the software definition is invalid", problems)
    return SoftwareSpec(
        version=submitted.version,
        upgradable_from=tuple(submitted.upgradable_from),
        specification_json=specification_json,
        metadata_json=metadata_json,
        rollout_strategy=strategy,
        filters=filters,
        rollout_policy=policy,
        rollout_plan=plan,
    )


def _version_problem(value: str) -> str | None:
    if not value:
        return "required"
    if len(value) > MAX_VERSION_LENGTH:
        return f"at most {MAX_VERSION_LENGTH} characters"
    if not versions.is_valid(value):
        return f"{value!r} is not a Semantic Versioning 2.0 version"
    return None


def _filters(
    submitted: list[tuple[str, str]],
    strategy: RolloutStrategy | None,
    bad: _Reporter,
) -> tuple[RolloutFilter, ...]:
    if strategy is RolloutStrategy.TARGETED and not submitted:
        bad("filters", "required (at least one) with rolloutStrategy targeted")
    if strategy is not None and strategy is not RolloutStrategy.TARGETED and submitted:
        bad("filters", "only allowed with rolloutStrategy targeted")
    if len(submitted) > MAX_FILTERS:
        bad("filters", f"at most {MAX_FILTERS} filters")
    result: list[RolloutFilter] = []
    seen: set[str] = set()
    for index, (filter_id, rollout_date) in enumerate(submitted):
        if not _FILTER_ID.fullmatch(filter_id):
            bad(f"filters[{index}].filterId", "must be 1-128 letters, digits, '.', '_', ':', '-'")
        elif filter_id in seen:
            bad(f"filters[{index}].filterId", f"duplicate filter {filter_id!r}")
        seen.add(filter_id)
        date: datetime | None = None
        if rollout_date:
            try:
                date = parse_utc_date(rollout_date)
            except ValueError:
                bad(f"filters[{index}].rolloutDate", "must be ISO 8601 UTC: yyyy-MM-ddTHH:mm:ssZ")
        result.append(RolloutFilter(filter_id, date))
    return tuple(result)


def _policy(submitted: tuple[float, int] | None, bad: _Reporter) -> RolloutPolicy | None:
    if submitted is None:
        return None
    ratio, min_reports = submitted
    if not 0.0 <= ratio <= 1.0 or ratio != ratio:
        bad("rolloutPolicy.maxFailureRatio", "must be between 0 and 1")
    if min_reports < 1:
        bad("rolloutPolicy.minReports", "must be at least 1")
    return RolloutPolicy(ratio, min_reports)


def _json_text(value: JsonValue, path: str, bad: _Reporter) -> str:
    try:
        text = canonical_json(value)
    except (ValueError, TypeError, RecursionError):
        bad(path, "must be a JSON value (finite numbers only)")
        return ""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        # A lone surrogate (e.g. from the JSON escape "\ud800") cannot be stored or sent.
        bad(path, "must be valid Unicode (no unpaired surrogates)")
        return ""
    if size > MAX_JSON_BYTES:
        bad(path, f"at most {MAX_JSON_BYTES // 1024} KiB as JSON")
    return text
