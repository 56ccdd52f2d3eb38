"""A push job as a run of the worker works it: the catalogs before and after its change, its
progress, and the offers sent but not yet recorded (see ``otao.services.push``)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from otao.domain.catalog import Catalog
from otao.domain.models import Software
from otao.domain.push import PushJob, PushProgress, Walked


@dataclass(slots=True)
class SentOffers:
    """The offers of one walked batch, sent but not yet recorded: endpoint ids joined by
    newlines, per version offered, and the cursor the batch ends at."""

    cursor: str
    offers: dict[str, str]
    count: int


@dataclass
class PushRun:
    """A job being worked: its catalogs, its progress, and the offers sent but not yet
    recorded (a queue of batches in walk order, drained by the recorder task)."""

    job: PushJob
    before: Catalog
    after: Catalog
    progress: PushProgress
    renewed: float  # time.monotonic() of the last lease renewal
    unrecorded: deque[SentOffers] = field(default_factory=deque)
    pending: int = 0
    walked: bool = False  # nothing more will be queued
    abandoned: bool = False  # the run failed: record nothing more
    recorder: asyncio.Task[None] | None = None
    queued: asyncio.Event = field(default_factory=asyncio.Event)
    room: asyncio.Event = field(default_factory=asyncio.Event)
    # One database request of the job at a time: its reads, its progress writes (each of the
    # progress as it is when written) and its offer writes. nx-27017 answers requests in
    # threads of one Python process: two at once slow each other down (the GIL), so that the
    # walk's read and the batch's progress write overlapping took 30-45 ms each where one
    # alone takes 25 and 3 (measured). The read still overlaps the sending.
    database: asyncio.Lock = field(default_factory=asyncio.Lock)

    def queue(self, cursor: str, offered: list[tuple[Walked, Software]]) -> None:
        ids: dict[str, list[str]] = {}
        for state, software in offered:
            ids.setdefault(software.version, []).append(state.endpoint_id)
        joined = {version: "\n".join(endpoints) for version, endpoints in ids.items()}
        self.unrecorded.append(SentOffers(cursor, joined, len(offered)))
        self.pending += len(offered)
        self.queued.set()
