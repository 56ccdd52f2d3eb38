"""An update of a software definition: the fields it changes when it names none (those the
body gives), and the stored definition with those fields copied over from the body, validated
as a whole (``otao.services.software.SoftwareService.update``)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from otao.domain import validation
from otao.domain.models import JsonValue, RolloutStrategy, Software, SoftwareSpec
from otao.domain.rollout_plan import input_of
from otao.domain.validation import SoftwareField, SoftwareInput


def merged(
    existing: Software, submitted: SoftwareInput, named: Sequence[SoftwareField]
) -> SoftwareSpec:
    """``existing``'s spec with the ``named`` fields of ``submitted``."""
    merged_input = _as_input(existing)
    for name in named:
        _copy_field(name, submitted, merged_input)
    # Leaving "targeted" without naming filters drops them, rather than failing on
    # filters the operator did not mention.
    if (
        SoftwareField.ROLLOUT_STRATEGY in named
        and SoftwareField.FILTERS not in named
        and merged_input.rollout_strategy != RolloutStrategy.TARGETED.value
    ):
        merged_input.filters = []
    return validation.software(merged_input)


def fields_given(submitted: SoftwareInput) -> list[SoftwareField]:
    """The fields an update without a mask changes: those the body gives."""
    present = {
        SoftwareField.UPGRADABLE_FROM: bool(submitted.upgradable_from),
        SoftwareField.SPECIFICATION: submitted.has_specification,
        SoftwareField.METADATA: submitted.has_metadata,
        SoftwareField.ROLLOUT_STRATEGY: bool(submitted.rollout_strategy),
        SoftwareField.FILTERS: bool(submitted.filters),
        SoftwareField.ROLLOUT_POLICY: submitted.rollout_policy is not None,
        SoftwareField.ROLLOUT_PLAN: submitted.rollout_plan is not None,
    }
    return [name for name, here in present.items() if here]


def _copy_field(name: SoftwareField, source: SoftwareInput, target: SoftwareInput) -> None:
    if name is SoftwareField.UPGRADABLE_FROM:
        target.upgradable_from = list(source.upgradable_from)
    elif name is SoftwareField.SPECIFICATION:
        target.specification = source.specification
        target.has_specification = source.has_specification
    elif name is SoftwareField.METADATA:
        target.metadata = source.metadata if source.has_metadata else {}
        target.has_metadata = True
    elif name is SoftwareField.ROLLOUT_STRATEGY:
        target.rollout_strategy = source.rollout_strategy
    elif name is SoftwareField.FILTERS:
        target.filters = list(source.filters)
    elif name is SoftwareField.ROLLOUT_POLICY:
        target.rollout_policy = source.rollout_policy
    elif name is SoftwareField.ROLLOUT_PLAN:
        target.rollout_plan = source.rollout_plan


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
        rollout_plan=input_of(spec.rollout_plan) if spec.rollout_plan else None,
    )


def _loads(text: str) -> JsonValue:
    value: JsonValue = json.loads(text)
    return value
