"""An operator's REST calls through Envoy, and waiting helpers, for the rollout tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from otao.domain.models import EndpointKey, EndpointState
from tests.support.cmx import CmxPeer
from tests.support.eventually import eventually
from tests.support.otao import RunningOtao

APPS = "/api/v1/applications"


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, f"{response.status_code} {response.text}"
    return response.json()


def utc_date(seconds_from_now: float) -> tuple[str, datetime]:
    """A rolloutDate (second precision, as Kaa writes it) at least ``seconds_from_now`` ahead."""
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds_from_now + 1)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ"), moment


async def create_software(
    rest: httpx.AsyncClient,
    application: str,
    version: str,
    upgradable_from: list[str],
    strategy: str = "general",
    filters: list[dict[str, str]] | None = None,
    policy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": version,
        "upgradableFrom": upgradable_from,
        "specification": {"image": f"fw-{version}.bin"},
        "rolloutStrategy": strategy,
    }
    if filters is not None:
        body["filters"] = filters
    if policy is not None:
        body["rolloutPolicy"] = policy
    created: dict[str, Any] = ok(await rest.post(f"{APPS}/{application}/software", json=body))
    return created


async def patch_software(
    rest: httpx.AsyncClient, application: str, version: str, **fields: Any
) -> dict[str, Any]:
    updated: dict[str, Any] = ok(
        await rest.patch(f"{APPS}/{application}/software/{version}", json=fields)
    )
    return updated


async def get_software(rest: httpx.AsyncClient, application: str, version: str) -> dict[str, Any]:
    found: dict[str, Any] = ok(await rest.get(f"{APPS}/{application}/software/{version}"))
    return found


async def put_settings(
    rest: httpx.AsyncClient, application: str, consent_required: bool
) -> dict[str, Any]:
    body = {"consentRequired": consent_required}
    settings: dict[str, Any] = ok(await rest.put(f"{APPS}/{application}/settings", json=body))
    return settings


async def explain(rest: httpx.AsyncClient, application: str, endpoint_id: str) -> dict[str, str]:
    """Each version's verdict for the endpoint, e.g. {"1.1.0": "awaiting_consent"}."""
    found = ok(await rest.get(f"{APPS}/{application}/endpoints/{endpoint_id}/software:explain"))
    return {v["version"]: v["verdict"] for v in found["verdicts"]}


async def rollout_status(rest: httpx.AsyncClient, application: str, version: str) -> dict[str, Any]:
    found: dict[str, Any] = ok(await rest.get(f"{APPS}/{application}/software/{version}/rollout"))
    return found


COUNTS = ("eligible", "offered", "applied", "failed", "awaitingConsent", "notYetEligible")


def counts(status: dict[str, Any]) -> dict[str, int]:
    """The rollout status counts as ints (int64 comes as a JSON string)."""
    return {name: int(status[name]) for name in COUNTS}


async def audit(rest: httpx.AsyncClient, application: str, **query: Any) -> dict[str, Any]:
    found: dict[str, Any] = ok(await rest.get(f"{APPS}/{application}/audit", params=query))
    return found


async def until(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = 8.0, interval: float = 0.05
) -> None:
    await eventually(check, what, timeout, interval)


async def stored(otao: RunningOtao, application: str, endpoint_id: str) -> EndpointState | None:
    return await otao.app.components.storage.endpoints.get(
        EndpointKey("default", application, endpoint_id)
    )


async def recorded(
    otao: RunningOtao, application: str, endpoint_id: str, version: str | None = None
) -> None:
    """Wait until otao recorded the endpoint's sighting (so pushes can reach it)."""

    async def check() -> bool:
        state = await stored(otao, application, endpoint_id)
        return (
            state is not None
            and state.app_version is not None
            and (version is None or state.current_version == version)
        )

    await until(check, f"endpoint {endpoint_id} recorded")


async def pushes_done(otao: RunningOtao, timeout: float = 8.0) -> None:
    """Wait until otao worked every push job queued so far (a change's pushes were sent)."""

    async def check() -> bool:
        return await otao.app.components.storage.push_jobs.pending_count() == 0

    await until(check, "push jobs worked", timeout)


async def settled(otao: RunningOtao, cmx: CmxPeer, timeout: float = 8.0) -> None:
    """Every push otao queued so far is sent and arrived at ``cmx``, and every sighting and
    offer is recorded: what has not arrived now was not sent. ``timeout`` bounds each wait
    (a hang bound, not a latency: a thousand sightings take longer on a loaded machine)."""
    await pushes_done(otao, timeout)
    await until(lambda: _recorder_idle(otao), "sightings recorded", timeout)
    await cmx.delivered()


async def _recorder_idle(otao: RunningOtao) -> bool:
    return otao.app.components.services.recorder.pending == 0
