"""Staged rollouts: a definition's waves, their validation, and which wave an endpoint is in.

Pure. A plan splits the endpoints a strategy makes eligible into cumulative shares (waves). An
endpoint's place is a stable bucket in [0, 10000) hashed from its identity and a cohort key, so
it is in the same wave on every poll, on every replica, and endpoints that appear later join
their wave without any frozen group. See docs/rollouts.md.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from otao.domain.errors import FieldViolation, InvalidArgument
from otao.domain.values import frozen

if TYPE_CHECKING:  # models imports this module at run time
    from otao.domain.models import JsonValue

BUCKETS = 10_000
# One percent of the buckets: wave percents are whole numbers, so every wave is a whole range.
BUCKETS_PER_PERCENT = BUCKETS // 100
MAX_WAVES = 20
# Upper bounds keep datetime arithmetic and counters far from overflow (a year; ten million).
MAX_SECONDS = 366 * 24 * 3600
MAX_COUNT = 10_000_000

# Bumping the prefix would reshuffle every cohort: never change it for a running fleet.
_BUCKET_DOMAIN = b"otao.rollout.bucket.v1"
_COHORT_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}")

# Records one field violation: (JSON path, description); the same shape validation.py uses.
Reporter = Callable[[str, str], None]


class Advance(StrEnum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


@frozen
class Wave:
    """A cumulative share of the eligible endpoints and the gate that opens the next wave."""

    percent: int
    # The gate judged while this wave is the open one (the last wave has no gate).
    min_reports: int = 0
    min_success_ratio: float = 0.0
    soak_seconds: int = 0

    @property
    def bucket_limit(self) -> int:
        """Buckets below this are in this wave or an earlier one."""
        return self.percent * BUCKETS_PER_PERCENT


@frozen
class RolloutPlan:
    waves: tuple[Wave, ...]
    advance: Advance = Advance.AUTOMATIC
    # 0: no confirmation; a successful report counts as success by itself.
    confirm_seconds: int = 0
    # 0: an offered endpoint never times out.
    apply_timeout_seconds: int = 0
    # 0: no cap on first offers.
    max_offers_per_minute: int = 0
    # None: the definition's version is the cohort key (every release draws new canaries).
    cohort_key: str | None = None
    # Each wave's bucket_limit, computed once: wave_of runs on every poll with a candidate.
    bucket_limits: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bucket_limits", tuple(w.bucket_limit for w in self.waves))

    @property
    def last_wave(self) -> int:
        return len(self.waves) - 1

    @property
    def confirming(self) -> bool:
        return self.confirm_seconds > 0


@dataclass
class WaveInput:
    """One wave as submitted, before validation (absent JSON fields are 0)."""

    percent: int = 0
    min_reports: int = 0
    min_success_ratio: float = 0.0
    soak_seconds: int = 0


@dataclass
class RolloutPlanInput:
    """A rolloutPlan as submitted, before validation. Empty strings mark absent fields."""

    waves: list[WaveInput] = field(default_factory=list)
    advance: str = ""
    confirm_seconds: int = 0
    apply_timeout_seconds: int = 0
    max_offers_per_minute: int = 0
    cohort_key: str = ""


def input_of(plan: RolloutPlan) -> RolloutPlanInput:
    """What a client submits to get ``plan`` (``rollout_plan`` of it is ``plan`` again)."""
    return RolloutPlanInput(
        waves=[
            WaveInput(w.percent, w.min_reports, w.min_success_ratio, w.soak_seconds)
            for w in plan.waves
        ],
        advance=plan.advance.value,
        confirm_seconds=plan.confirm_seconds,
        apply_timeout_seconds=plan.apply_timeout_seconds,
        max_offers_per_minute=plan.max_offers_per_minute,
        cohort_key=plan.cohort_key or "",
    )


def plan_fields(plan: RolloutPlan) -> dict[str, JsonValue]:
    """The plan in the API's field names: the shape the store keeps and the audit log shows."""
    return {
        "waves": [
            {
                "percent": w.percent,
                "minReports": w.min_reports,
                "minSuccessRatio": w.min_success_ratio,
                "soakSeconds": w.soak_seconds,
            }
            for w in plan.waves
        ],
        "advance": plan.advance.value,
        "confirmSeconds": plan.confirm_seconds,
        "applyTimeoutSeconds": plan.apply_timeout_seconds,
        "maxOffersPerMinute": plan.max_offers_per_minute,
        "cohortKey": plan.cohort_key,
    }


def rollout_plan(submitted: RolloutPlanInput, path: str = "rolloutPlan") -> RolloutPlan:
    """Validate a plan on its own; raises InvalidArgument with every violation at once."""
    problems: list[FieldViolation] = []

    def bad(field_path: str, description: str) -> None:
        problems.append(FieldViolation(field_path, description))

    plan = check_rollout_plan(submitted, bad, path)
    if problems or plan is None:
        raise InvalidArgument("the rollout plan is invalid", problems)
    return plan


def check_rollout_plan(
    submitted: RolloutPlanInput, bad: Reporter, path: str = "rolloutPlan"
) -> RolloutPlan | None:
    """Report every problem of a plan through ``bad``; the plan if there was none.

    Shaped like validation.py's helpers so a definition's validation can collect a plan's
    violations together with its own.
    """
    reported = False

    def report(field_path: str, description: str) -> None:
        nonlocal reported
        reported = True
        bad(field_path, description)

    waves = _waves(submitted.waves, report, f"{path}.waves")
    advance = Advance.AUTOMATIC
    if submitted.advance:
        try:
            advance = Advance(submitted.advance)
        except ValueError:
            report(f"{path}.advance", "one of automatic, manual")
    _seconds(submitted.confirm_seconds, f"{path}.confirmSeconds", report)
    _seconds(submitted.apply_timeout_seconds, f"{path}.applyTimeoutSeconds", report)
    _count(submitted.max_offers_per_minute, f"{path}.maxOffersPerMinute", report)
    cohort_key = submitted.cohort_key or None
    if cohort_key is not None and not _COHORT_KEY.fullmatch(cohort_key):
        report(
            f"{path}.cohortKey",
            "must be 1-128 characters of letters, digits, '.', '_', ':', '+' or '-'",
        )
    if reported:
        return None
    return RolloutPlan(
        waves=waves,
        advance=advance,
        confirm_seconds=submitted.confirm_seconds,
        apply_timeout_seconds=submitted.apply_timeout_seconds,
        max_offers_per_minute=submitted.max_offers_per_minute,
        cohort_key=cohort_key,
    )


def _waves(submitted: list[WaveInput], bad: Reporter, path: str) -> tuple[Wave, ...]:
    if not submitted:
        bad(path, f"required: 1-{MAX_WAVES} waves, the last with percent 100")
        return ()
    if len(submitted) > MAX_WAVES:
        bad(path, f"at most {MAX_WAVES} waves")
    last = len(submitted) - 1
    previous = 0
    for index, wave in enumerate(submitted):
        at = f"{path}[{index}]"
        if not 1 <= wave.percent <= 100:
            bad(f"{at}.percent", "must be a whole number from 1 to 100")
        elif wave.percent <= previous:
            bad(
                f"{at}.percent", f"must be greater than the previous wave's {previous} (cumulative)"
            )
        elif index == last and wave.percent != 100:
            bad(f"{at}.percent", "the last wave must be 100")
        previous = max(previous, wave.percent)
        ratio = wave.min_success_ratio
        if math.isnan(ratio) or not 0.0 <= ratio <= 1.0:
            bad(f"{at}.minSuccessRatio", "must be between 0 and 1")
        _count(wave.min_reports, f"{at}.minReports", bad)
        _seconds(wave.soak_seconds, f"{at}.soakSeconds", bad)
        # The gate on a wave decides when the *next* one opens; on the last it could never
        # matter, and accepting it would hide that misunderstanding.
        if index == last and (wave.min_reports or ratio or wave.soak_seconds):
            bad(at, "the last wave opens no further wave: no minReports, minSuccessRatio, soak")
    return tuple(
        Wave(w.percent, w.min_reports, w.min_success_ratio, w.soak_seconds) for w in submitted
    )


def _seconds(value: int, path: str, bad: Reporter) -> None:
    if not 0 <= value <= MAX_SECONDS:
        bad(path, f"must be a whole number of seconds from 0 to {MAX_SECONDS}")


def _count(value: int, path: str, bad: Reporter) -> None:
    if not 0 <= value <= MAX_COUNT:
        bad(path, f"must be a whole number from 0 to {MAX_COUNT}")


# --- cohorts --------------------------------------------------------------------------------


# Buckets remembered per (application, endpoint, cohort key): a poll with a candidate under a
# plan asks for its endpoint's bucket (twice: select and the membership check), and a hit is
# ~0.1 µs against ~1.3 µs for the hash. Bounded (least recently used out): about 17 MB at
# the bound; an endpoint beyond it is hashed again, with the same result.
BUCKET_CACHE_SIZE = 1 << 16


@functools.lru_cache(maxsize=BUCKET_CACHE_SIZE)
def bucket(application: str, endpoint_id: str, cohort_key: str) -> int:
    """The endpoint's stable place in [0, 10000) for a cohort.

    sha256, not hash(): Python salts str hashes per process, and every replica (and every
    restart) must agree. Each part is length-prefixed so ("ab", "c") and ("a", "bc") differ.
    """
    app = application.encode("utf-8", "surrogatepass")
    endpoint = endpoint_id.encode("utf-8", "surrogatepass")
    cohort = cohort_key.encode("utf-8", "surrogatepass")
    # One sha256 call over the whole input: the same bytes as feeding the parts one by one.
    digest = hashlib.sha256(
        b"".join(
            (
                _BUCKET_DOMAIN,
                len(app).to_bytes(4, "big"),
                app,
                len(endpoint).to_bytes(4, "big"),
                endpoint,
                len(cohort).to_bytes(4, "big"),
                cohort,
            )
        )
    ).digest()
    # 2**64 is not a multiple of 10000, but the bias (< 1e-15) is far below anything a gate sees.
    return int.from_bytes(digest[:8], "big") % BUCKETS


def wave_of(plan: RolloutPlan, endpoint_bucket: int) -> int:
    """Index of the first wave whose share covers the bucket."""
    # Only an unvalidated plan (last percent below 100) has buckets above its last limit;
    # such buckets wait for the end.
    return min(bisect.bisect_right(plan.bucket_limits, endpoint_bucket), plan.last_wave)


def wave_for(plan: RolloutPlan, application: str, endpoint_id: str, version: str) -> int:
    """The wave an endpoint of the application is in for this version's plan."""
    # wave_of inlined: this runs on every poll with a candidate under a plan.
    cohort = version if plan.cohort_key is None else plan.cohort_key
    found = bisect.bisect_right(plan.bucket_limits, bucket(application, endpoint_id, cohort))
    return min(found, len(plan.waves) - 1)


class WaveState(StrEnum):
    PENDING = "pending"
    OPEN = "open"
    DONE = "done"


def wave_state(wave: int, current_wave: int) -> WaveState:
    """A wave before the current one is done (its gate was passed); later ones are pending."""
    if wave < current_wave:
        return WaveState.DONE
    return WaveState.OPEN if wave == current_wave else WaveState.PENDING
