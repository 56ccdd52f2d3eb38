"""Semantic Versioning 2.0 parsing and precedence, delegated to the ``semver`` package."""

from __future__ import annotations

from functools import lru_cache

import semver


@lru_cache(maxsize=65536)
def parse(version: str) -> semver.Version:
    """Parse a SemVer 2.0 string; raises ValueError when it is not one."""
    # semver.Version.parse accepts only strict SemVer (no leading zeros, no "v" prefix).
    return semver.Version.parse(version)


def is_valid(version: str) -> bool:
    try:
        parse(version)
    except (ValueError, TypeError):
        return False
    return True


def sort_key(version: str) -> semver.Version:
    """Key for sorting versions by SemVer precedence (build metadata ignored)."""
    return parse(version)


def newest_first(versions: list[str]) -> list[str]:
    return sorted(versions, key=sort_key, reverse=True)
