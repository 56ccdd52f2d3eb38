"""Compare-and-set retries: one loop and one bound for every read-modify-write.

A writer reads a record, computes the new one and writes it only if the record is unchanged
since the read (a revision or an etag). Losing that race means another writer got there
first: read again and recompute. The bound stops a livelock under heavy contention; the
caller then gets ABORTED ("try again").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from otao.domain.errors import Aborted

T = TypeVar("T")

ATTEMPTS = 10


class LostRace(Exception):
    """An attempt's write found the record changed since it was read: read again."""


async def until_written(attempt: Callable[[], Awaitable[T]], what: str) -> T:
    """``attempt()`` again while it raises ``LostRace``, at most ``ATTEMPTS`` times."""
    for _ in range(ATTEMPTS):
        try:
            return await attempt()
        except LostRace:
            continue
    raise Aborted(f"{what} is being changed concurrently; try again")
