"""The background loops' shapes (services/workers.py): a failed round is postponed, not fatal,
and wake-ups coalesce into rounds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from otao.domain.errors import Unavailable
from otao.services.workers import attempt, every, when_woken
from tests.support.eventually import eventually


@asynccontextmanager
async def running(loop: Awaitable[object]) -> AsyncIterator[None]:
    task = asyncio.ensure_future(loop)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def rounds_that(
    *outcomes: bool | Exception,
) -> tuple[list[int], asyncio.Event, Callable[[], Awaitable[bool]]]:
    """Rounds with these outcomes in turn (an exception is raised); ``done`` is set by the
    last one."""
    calls: list[int] = []
    done = asyncio.Event()

    async def work() -> bool:
        calls.append(len(calls) + 1)
        outcome = outcomes[min(len(calls), len(outcomes)) - 1]
        if len(calls) == len(outcomes):
            done.set()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return calls, done, work


async def test_attempt_says_whether_the_work_got_done_and_logs_a_postponement(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fails() -> None:
        raise Unavailable("database unavailable")

    async def succeeds() -> None:
        return None

    with caplog.at_level(logging.WARNING, logger="otao.services.workers"):
        assert not await attempt(fails(), "the check")
        assert await attempt(succeeds(), "the check")
    assert [r.getMessage() for r in caplog.records] == ["the check postponed: database unavailable"]


async def test_attempt_lets_an_unexpected_error_through() -> None:
    async def broken() -> None:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        await attempt(broken(), "the check")


async def test_every_runs_the_next_round_after_one_that_failed() -> None:
    calls, done, work = rounds_that(Unavailable("down"), True)
    async with running(every(0.0, work, "the check")):
        await asyncio.wait_for(done.wait(), 10)
    assert calls[:2] == [1, 2]


async def test_every_with_a_wake_up_runs_the_next_round_before_its_period() -> None:
    calls, done, work = rounds_that(True, True)
    wake = asyncio.Event()
    # A period no test outlasts: only the wake-up can start the second round.
    async with running(every(3600.0, work, "the check", wake=wake)):
        await eventually(lambda: len(calls) == 1, "the first round")
        wake.set()
        await asyncio.wait_for(done.wait(), 10)
    assert calls == [1, 2]


async def test_a_woken_round_that_left_work_runs_again_without_another_wake_up() -> None:
    calls, done, work = rounds_that(False, True)
    wake = asyncio.Event()
    async with running(when_woken(wake, work, retry_after=0.0)):
        wake.set()
        await asyncio.wait_for(done.wait(), 10)
    assert calls == [1, 2]


async def test_wake_ups_during_a_round_make_one_more_round_not_one_each() -> None:
    gate = asyncio.Event()
    started = asyncio.Event()
    second = asyncio.Event()
    calls: list[int] = []
    wake = asyncio.Event()

    async def work() -> bool:
        calls.append(len(calls) + 1)
        if len(calls) == 1:
            started.set()
            await gate.wait()
        else:
            second.set()
        return True

    async with running(when_woken(wake, work, retry_after=0.0)):
        wake.set()
        await asyncio.wait_for(started.wait(), 10)
        for _ in range(3):
            wake.set()
        gate.set()
        await asyncio.wait_for(second.wait(), 10)
        # Cleared as the second round began and not set since: no third round is owed.
        assert not wake.is_set()
    assert calls == [1, 2]
