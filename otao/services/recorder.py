"""Records what consumers tell otao about endpoints, off the response path.

A CDTP poll must not wait for a database write that its answer does not need. Sightings
(endpoint, app version name, consumer-known version) go into a pending map drained by one
background task; a key already recorded by this process is skipped, so the steady-state
poll costs no write at all. A write that fails stays pending and is retried; sightings
still pending at a crash are recorded again by the endpoint's next poll.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import OrderedDict
from dataclasses import dataclass, field

from otao.domain.errors import OtaoError
from otao.domain.models import EndpointKey
from otao.services.ports import Clock
from otao.services.workers import when_woken
from otao.store.endpoints import EndpointStore
from otao.store.offers import OfferStore

log = logging.getLogger(__name__)

Sighting = tuple[str, str | None]

# Offers recorded per write. Small on purpose: the database serves the polls' reads between
# these writes, and on nx-27017 (one writer at a time, about 6,000 documents a second) a
# write of 500 held every read behind it for almost 0.1 s, the polls' p99. 50 still did:
# bench --only endpoints, p99 at 10,000 known endpoints 173-424 ms in four runs with 50 a
# write, 53-117 ms in three with 10 (29 ms with no offers recorded), throughput no lower.
OFFER_BATCH = 10


@dataclass(eq=False)
class SightingRecorder:
    store: EndpointStore
    offers: OfferStore
    clock: Clock
    remembered: int = 200_000
    _recorded: OrderedDict[EndpointKey, Sighting] = field(init=False, default_factory=OrderedDict)
    _pending: dict[EndpointKey, Sighting] = field(init=False, default_factory=dict)
    _offers_pending: dict[tuple[EndpointKey, str], None] = field(init=False, default_factory=dict)
    _offers_recorded: OrderedDict[tuple[EndpointKey, str], None] = field(
        init=False, default_factory=OrderedDict
    )
    _wake: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def seen(
        self, key: EndpointKey, app_version: str, version: str | None, force: bool = False
    ) -> None:
        """``force``: write even a sighting recorded before (the poll settles an install,
        docs/rollouts.md, which the stored record does not know yet)."""
        sighting = (app_version, version)
        if self._pending.get(key) == sighting:
            return
        if not force and self._recorded.get(key) == sighting:
            return
        self._pending[key] = sighting
        self._wake.set()

    def known(self, key: EndpointKey, app_version: str, version: str | None) -> None:
        """The endpoint's stored record, just read, already holds this sighting: nothing to
        write, and later polls with the same sighting are skipped as if it was written."""
        if key in self._pending:
            self.seen(key, app_version, version)
            return
        self._remember(key, (app_version, version))

    def offered(self, key: EndpointKey, version: str) -> None:
        """A poll offered ``version`` to the endpoint (counted in rollout status)."""
        offer = (key, version)
        if offer in self._offers_recorded or offer in self._offers_pending:
            return
        self._offers_pending[offer] = None
        self._wake.set()

    def forget(self, key: EndpointKey) -> None:
        """The endpoint was deleted: a later sighting must be recorded again."""
        self._recorded.pop(key, None)
        self._pending.pop(key, None)
        for offer in [o for o in self._offers_recorded if o[0] == key]:
            del self._offers_recorded[offer]

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        await when_woken(self._wake, self.flush, retry_after=1.0)

    async def flush(self) -> bool:
        """Write everything pending; False when the database failed (kept for a retry)."""
        return await self._flush_sightings() and await self._flush_offers()

    async def _flush_offers(self) -> bool:
        while self._offers_pending:
            batch = list(itertools.islice(self._offers_pending, OFFER_BATCH))
            by_version: dict[str, list[EndpointKey]] = {}
            for key, version in batch:
                by_version.setdefault(version, []).append(key)
            try:
                for version, keys in by_version.items():
                    await self.offers.mark_offered(keys, version, self.clock())
            except OtaoError as error:
                log.warning("recording offers postponed: %s", error.message)
                return False
            for offer in batch:
                self._offers_pending.pop(offer, None)
                self._offers_recorded[offer] = None
            while len(self._offers_recorded) > self.remembered:
                self._offers_recorded.popitem(last=False)
        return True

    async def _flush_sightings(self) -> bool:
        while self._pending:
            key, sighting = next(iter(self._pending.items()))
            try:
                await self.store.record_sighting(key, sighting[0], sighting[1], self.clock())
            except OtaoError as error:
                log.warning("recording endpoint sightings postponed: %s", error.message)
                return False
            if self._pending.get(key) == sighting:
                del self._pending[key]
            self._remember(key, sighting)
        return True

    def _remember(self, key: EndpointKey, sighting: Sighting) -> None:
        self._recorded[key] = sighting
        self._recorded.move_to_end(key)
        while len(self._recorded) > self.remembered:
            self._recorded.popitem(last=False)
