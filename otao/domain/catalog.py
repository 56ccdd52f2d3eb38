"""An application's definitions and settings, indexed for resolution.

Built once per change and kept in memory, so that the common poll (nothing new for this
endpoint) is answered from here without touching the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from otao.domain import versions
from otao.domain.models import ApplicationSettings, RolloutStrategy, Software


@dataclass(frozen=True)
class Catalog:
    tenant_id: str
    application: str
    settings: ApplicationSettings
    # Newest SemVer first.
    definitions: tuple[Software, ...]
    by_version: dict[str, Software] = field(repr=False)
    # Non-suspended definitions reachable from each source version, newest first.
    _candidates_by_source: dict[str, tuple[Software, ...]] = field(repr=False)
    _all_candidates: tuple[Software, ...] = field(repr=False)

    @classmethod
    def build(
        cls,
        tenant_id: str,
        application: str,
        settings: ApplicationSettings,
        definitions: Iterable[Software],
    ) -> Catalog:
        ordered = tuple(
            sorted(definitions, key=lambda d: versions.sort_key(d.version), reverse=True)
        )
        live = tuple(d for d in ordered if d.rollout_strategy is not RolloutStrategy.SUSPENDED)
        by_source: dict[str, list[Software]] = {}
        for definition in live:
            for source in definition.upgradable_from:
                by_source.setdefault(source, []).append(definition)
        return cls(
            tenant_id=tenant_id,
            application=application,
            settings=settings,
            definitions=ordered,
            by_version={d.version: d for d in ordered},
            _candidates_by_source={k: tuple(v) for k, v in by_source.items()},
            _all_candidates=live,
        )

    def candidates(self, current_version: str | None) -> tuple[Software, ...]:
        """Step 1 of resolution: non-suspended definitions an endpoint on this version may get.

        An unknown version makes every non-suspended definition a candidate.
        """
        if current_version is None:
            return self._all_candidates
        return self._candidates_by_source.get(current_version, ())

    def get(self, version: str) -> Software | None:
        return self.by_version.get(version)
