"""Recounts: a cheap count is made for every read, a costly one is reused for a while and
shared while under way, and a reader with a bounded wait gets the last count meanwhile."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from otao.services.rollout_counts import Recounts


def clock() -> datetime:
    return datetime.now(UTC)


class Counter:
    """A count that says how many times it was made, optionally held until released."""

    def __init__(self) -> None:
        self.made = 0
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> int:
        self.made += 1
        made = self.made
        await self.release.wait()
        return made


async def test_a_cheap_count_is_made_again_for_every_read() -> None:
    counts: Recounts[int] = Recounts(clock, cheap=3600.0)
    counter = Counter()
    first = await counts.get("k", counter)
    second = await counts.get("k", counter)
    assert first is not None and second is not None
    assert (first.value, second.value) == (1, 2)
    assert first.at <= second.at


async def test_a_costly_count_is_reused_while_young_enough() -> None:
    counts: Recounts[int] = Recounts(clock, cheap=0.0, factor=1e6, ceiling=3600.0)
    counter = Counter()
    first = await counts.get("k", counter)
    assert first is not None and first.value == 1
    assert await counts.get("k", counter) is first
    other = await counts.get("other key", counter)
    assert other is not None and other.value == 2


async def test_readers_share_a_recount_under_way_and_a_bounded_wait_gets_the_last_count() -> None:
    # Costly (cheap=0) and never young enough (ceiling=0): every read asks for a recount.
    counts: Recounts[int] = Recounts(clock, cheap=0.0, ceiling=0.0)
    counter = Counter()
    first = await counts.get("k", counter)
    counter.release.clear()

    impatient = await counts.get("k", counter, wait=0)
    also_impatient = await counts.get("k", counter, wait=0)
    assert impatient is first and also_impatient is first
    assert counter.made == 2  # one recount, shared

    patient = asyncio.ensure_future(counts.get("k", counter))
    counter.release.set()
    recounted = await patient
    assert recounted is not None and recounted.value == 2
    assert counter.made == 2


async def test_a_first_count_that_is_not_done_in_time_gives_nothing_yet() -> None:
    counts: Recounts[int] = Recounts(clock)
    counter = Counter()
    counter.release.clear()
    assert await counts.get("k", counter, wait=0) is None
    waiting = asyncio.ensure_future(counts.get("k", counter))
    counter.release.set()
    done = await waiting
    assert done is not None and done.value == 1
    assert counter.made == 1  # the reader joined the first count rather than making another


async def test_a_costly_count_may_be_reused_however_old() -> None:
    counts: Recounts[int] = Recounts(clock, cheap=0.0, ceiling=0.0)
    counter = Counter()
    first = await counts.get("k", counter)
    assert await counts.get("k", counter, reuse_costly=True) is first
    assert counter.made == 1
    assert counts.last("k") is first and counts.last("other") is None
