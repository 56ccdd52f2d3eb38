"""Domain values for the domain tests: definitions and catalogs with the fields a test names."""

from __future__ import annotations

from datetime import UTC, datetime

from otao.domain.catalog import Catalog
from otao.domain.models import (
    ApplicationSettings,
    RolloutFilter,
    RolloutStrategy,
    Software,
    SoftwareSpec,
)

CREATED = datetime(2024, 1, 1, tzinfo=UTC)
# The moment the domain tests resolve, push and judge rollouts at (after CREATED).
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def software(
    version: str,
    *upgradable_from: str,
    strategy: RolloutStrategy = RolloutStrategy.GENERAL,
    filters: tuple[RolloutFilter, ...] = (),
    specification_json: str = "{}",
) -> Software:
    spec = SoftwareSpec(
        version=version,
        upgradable_from=upgradable_from,
        specification_json=specification_json,
        metadata_json="{}",
        rollout_strategy=strategy,
        filters=filters,
    )
    return Software("t", "app", spec, CREATED, CREATED, f"etag-{version}")


def catalog(*definitions: Software, consent_required: bool = False) -> Catalog:
    return Catalog.build("t", "app", ApplicationSettings(consent_required), definitions)
