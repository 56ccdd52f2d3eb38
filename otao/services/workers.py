"""The background loops of services/ and messaging/: rounds of work, for as long as otao runs.

A worker must outlive an outage: a round that fails with an ``OtaoError`` (the database or
the broker is away) is logged as postponed, and the work is tried again later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn

from otao.domain.errors import OtaoError

log = logging.getLogger(__name__)


async def attempt(work: Awaitable[object], what: str) -> bool:
    """Whether ``work`` got done; False, logged as ``what`` postponed, on an ``OtaoError``."""
    try:
        await work
    except OtaoError as error:
        log.warning("%s postponed: %s", what, error.message)
        return False
    return True


async def every(
    seconds: float,
    work: Callable[[], Awaitable[object]],
    what: str,
    *,
    wake: asyncio.Event | None = None,
    settle: float = 0.0,
) -> NoReturn:
    """``work`` now and then every ``seconds`` after the last round ended; with ``wake``,
    sooner when it is set, though not before ``settle`` seconds (a burst of wake-ups, also
    those during a round, is one round)."""
    while True:
        await attempt(work(), what)
        if wake is None:
            await asyncio.sleep(seconds)
            continue
        await asyncio.sleep(settle)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds - settle)
        wake.clear()


async def when_woken(
    wake: asyncio.Event,
    work: Callable[[], Awaitable[bool]],
    *,
    retry_after: float,
    settle: float = 0.0,
) -> NoReturn:
    """``work`` each time ``wake`` is set; wake-ups while it runs make one more round, not one
    each. A round that returns False (something is left: the database or broker failed) runs
    again after ``retry_after`` seconds. ``settle`` seconds after each round let a burst of
    wake-ups be one round."""
    while True:
        await wake.wait()
        wake.clear()
        if not await work():
            await asyncio.sleep(retry_after)
            wake.set()
        elif settle:
            await asyncio.sleep(settle)
