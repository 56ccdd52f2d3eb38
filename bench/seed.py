"""What the bench puts in the database: applications, definitions and known endpoints.

Documents have exactly the shape otao's stores write (``otao.store.software.to_document`` for
definitions; the endpoint shape of ``otao.store.endpoint_documents``), inserted with
``insert_many``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from otao.domain.models import RolloutStrategy, Software, SoftwareSpec, canonical_json
from otao.domain.rollout_plan import RolloutPlan, Wave
from otao.domain.rollout_state import RolloutState
from otao.store.mongo import ENDPOINTS, SOFTWARE
from otao.store.software import to_document

TENANT = "default"
CHUNK = 5_000


@dataclass(frozen=True)
class Application:
    name: str

    @property
    def app_version(self) -> str:
        # The CDTP reads baseline relies on this naming (see baselines.py).
        return f"{self.name}-v1"


# Steady state and update available: two definitions, two pools of known endpoints.
BASIC = Application("bench")
BASIC_OLD, BASIC_NEW = "1.0.0", "1.1.0"
STEADY_POOL = [f"st-{i:04d}" for i in range(1000)]  # on BASIC_NEW: nothing new for them
UPDATE_POOL = [f"up-{i:04d}" for i in range(1000)]  # on BASIC_OLD: BASIC_NEW is offered
# Update available under a 3-wave rollout plan (every wave open, so every poll is offered the
# version, as in UPDATE_POOL, after placing the endpoint in its wave): same application.
PLANNED_OLD, PLANNED_NEW = "1.5.0", "2.0.0"
PLANNED_POOL = [f"pl-{i:04d}" for i in range(1000)]
PLAN = RolloutPlan(waves=(Wave(5, min_reports=20), Wave(25, min_reports=100), Wave(100)))

# Known endpoints sweep and push: a fleet on FLEET_OLD, offered FLEET_NEW; push adds PUSHED.
FLEET = Application("fleet")
FLEET_OLD, FLEET_NEW, FLEET_PUSHED = "1.0.0", "1.1.0", "1.2.0"


def fleet_endpoint(index: int) -> str:
    return f"ep-{index:06d}"


def definitions_app(count: int) -> Application:
    return Application(f"defs-{count}")


def chain_version(index: int) -> str:
    return f"1.{index}.0"


DEFINITIONS_POOL = 1000


def definitions_pool(count: int) -> list[tuple[str, str]]:
    """(endpoint id, the version it reports) for the definitions sweep."""
    return [(f"ep-{i:04d}", chain_version(i % (count - 1))) for i in range(DEFINITIONS_POOL)]


def specification(application: str, version: str) -> str:
    digest = hashlib.sha256(f"{application}/{version}".encode()).hexdigest()
    return canonical_json(
        {
            "url": f"https://firmware.example.com/{application}/{version}/image.bin",
            "checksum": {"algorithm": "sha256", "value": digest},
            "size": 7_340_032,
        }
    )


def software(
    application: str, version: str, upgradable_from: list[str], plan: RolloutPlan | None = None
) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    spec = SoftwareSpec(
        version=version,
        upgradable_from=tuple(upgradable_from),
        specification_json=specification(application, version),
        metadata_json=json.dumps({"notes": f"release {version}"}),
        rollout_strategy=RolloutStrategy.GENERAL,
        rollout_plan=plan,
    )
    etag = hashlib.sha256(version.encode()).hexdigest()[:32]
    # With a plan, its last wave is open: the poll decides waves but is offered the version.
    rollout = RolloutState(len(plan.waves) - 1, (now,) * len(plan.waves)) if plan else None
    return to_document(Software(TENANT, application, spec, now, now, etag, rollout=rollout))


def endpoint(application: Application, endpoint_id: str, version: str) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    return {
        "_id": f"{TENANT}/{application.name}/{endpoint_id}",
        "tenantId": TENANT,
        "application": application.name,
        "endpointId": endpoint_id,
        "appVersionName": application.app_version,
        "currentVersion": version,
        "lastReport": {
            "configId": version,
            "statusCode": 200,
            "reasonPhrase": None,
            "reportedAt": now,
        },
        "appliedVersions": [version],
        "rev": 1,
        "updatedAt": now,
    }


def chain(application: str, count: int) -> Iterator[dict[str, Any]]:
    """``count`` definitions 1.0.0, 1.1.0, ...; each upgradable from the three before it."""
    for index in range(count):
        sources = [chain_version(i) for i in range(max(0, index - 3), index)] or ["0.9.0"]
        yield software(application, chain_version(index), sources)


class Seeder:
    def __init__(self, mongo_uri: str, database: str, sqlite_file: Path | None = None) -> None:
        """``sqlite_file``: nx-27017's file of ``database``, for ``fleet`` to write into."""
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            mongo_uri, tz_aware=True, timeoutMS=120_000
        )
        self._db = self._client[database]
        self._sqlite_file = sqlite_file
        self.seconds = 0.0
        self.documents = 0

    async def _insert(self, collection: str, documents: Iterator[dict[str, Any]]) -> None:
        started = time.perf_counter()
        chunk: list[dict[str, Any]] = []
        for document in documents:
            chunk.append(document)
            if len(chunk) == CHUNK:
                await self._db[collection].insert_many(chunk, ordered=False)
                self.documents += len(chunk)
                chunk = []
        if chunk:
            await self._db[collection].insert_many(chunk, ordered=False)
            self.documents += len(chunk)
        self.seconds += time.perf_counter() - started

    async def basic(self) -> None:
        await self._insert(
            SOFTWARE,
            iter(
                [
                    software(BASIC.name, BASIC_OLD, ["0.9.0"]),
                    software(BASIC.name, BASIC_NEW, [BASIC_OLD]),
                    software(BASIC.name, PLANNED_NEW, [PLANNED_OLD], PLAN),
                    software(FLEET.name, FLEET_OLD, ["0.9.0"]),
                    software(FLEET.name, FLEET_NEW, [FLEET_OLD]),
                ]
            ),
        )
        await self._insert(
            ENDPOINTS,
            (
                endpoint(BASIC, e, v)
                for pool, v in (
                    (STEADY_POOL, BASIC_NEW),
                    (UPDATE_POOL, BASIC_OLD),
                    (PLANNED_POOL, PLANNED_OLD),
                )
                for e in pool
            ),
        )

    async def definitions(self, count: int) -> None:
        application = definitions_app(count)
        await self._insert(SOFTWARE, chain(application.name, count))
        await self._insert(
            ENDPOINTS, (endpoint(application, e, v) for e, v in definitions_pool(count))
        )

    async def fleet(self, start: int, stop: int) -> None:
        """Known endpoints ``start`` .. ``stop - 1`` of the fleet application.

        With nx-27017's SQLite file, only the first goes through the wire: the others are
        copies of its stored row with their own ids, written straight into the file as
        ``make bench-scale`` does (bench/scale_fleet.py, ``SqliteFile``): the server turns
        each document of an ``insert_many`` into JSON in Python, about 7,000 a second."""
        if self._sqlite_file is None or stop - start < 2:
            await self._insert(
                ENDPOINTS,
                (endpoint(FLEET, fleet_endpoint(i), FLEET_OLD) for i in range(start, stop)),
            )
            return
        await self._insert(ENDPOINTS, iter([endpoint(FLEET, fleet_endpoint(start), FLEET_OLD)]))
        started = time.perf_counter()
        from bench.scale_fleet import SqliteFile  # here: scale_fleet imports this module

        file = SqliteFile(self._sqlite_file)
        stored = file.stored([f"{TENANT}/{FLEET.name}/{fleet_endpoint(start)}"])[0]

        def rows() -> Iterator[tuple[str, str]]:
            for index in range(start + 1, stop):
                endpoint_id = fleet_endpoint(index)
                doc_id = f"{TENANT}/{FLEET.name}/{endpoint_id}"
                yield doc_id, json.dumps({**stored, "_id": doc_id, "endpointId": endpoint_id})

        await asyncio.to_thread(file.insert, rows())
        self.documents += stop - start - 1
        self.seconds += time.perf_counter() - started

    async def close(self) -> None:
        await self._client.close()
