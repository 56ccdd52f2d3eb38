"""otao.store.offer_budgets against a real MongoDB-compatible server: at most ``limit`` first
offers per window, even when many takers race."""

from __future__ import annotations

import asyncio

import pytest

from otao.store.mongo import Mongo
from otao.store.offer_budgets import OfferBudgetStore

pytestmark = pytest.mark.timeout(30)


async def test_a_window_gives_exactly_its_limit_even_to_racing_takers(mongo: Mongo) -> None:
    store = OfferBudgetStore(mongo)
    taken = await asyncio.gather(*(store.take("t", "app", "2.0.0", 7, 5) for _ in range(20)))
    assert taken.count(True) == 5
    assert await store.used("t", "app", "2.0.0", 7) == 5
    assert await store.take("t", "app", "2.0.0", 7, 5) is False


async def test_the_next_window_and_another_version_have_budgets_of_their_own(
    mongo: Mongo,
) -> None:
    store = OfferBudgetStore(mongo)
    assert await store.take("t", "app", "2.0.0", 7, 1) is True
    assert await store.take("t", "app", "2.0.0", 7, 1) is False
    assert await store.take("t", "app", "2.0.0", 8, 1) is True
    assert await store.take("t", "app", "3.0.0", 7, 1) is True
    assert await store.used("t", "app", "2.0.0", 9) == 0
