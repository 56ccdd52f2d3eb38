"""Rollout status counts, and the automatic halt when too many endpoints fail a version."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from otao.domain.applications import ApplicationConfig
from tests.support.cmx import CmxPeer
from tests.support.eventually import eventually
from tests.support.operator import (
    APPS,
    counts,
    create_software,
    get_software,
    ok,
    patch_software,
    put_settings,
    recorded,
    rollout_status,
    settled,
    stored,
    until,
    utc_date,
)
from tests.support.otao import RunningOtao
from tests.support.rig import Rig

pytestmark = pytest.mark.timeout(30)


def pushed(cmx: CmxPeer, app_version: str) -> list[tuple[str, str]]:
    return [(u.endpoint_id, u.config_id) for u in cmx.updates if u.app_version_name == app_version]


async def reported(
    otao: RunningOtao, application: str, endpoint_id: str, version: str, failed: bool
) -> None:
    async def check() -> bool:
        state = await stored(otao, application, endpoint_id)
        if state is None:
            return False
        if failed:
            return version in state.failed_versions
        return state.current_version == version

    await until(check, f"report of {endpoint_id} recorded")


async def health_checked(otao: RunningOtao, reports: int) -> None:
    """The rollout health monitor has seen ``reports`` reports in all and judged them."""
    halts = otao.app.components.services.halts
    await eventually(
        lambda: halts.reports_seen >= reports and halts.idle, "the rollout health checked"
    )


async def test_failure_ratio_crossing_halts_the_rollout_and_an_operator_resumes_it(
    otao: RunningOtao,
    cmx: CmxPeer,
    rest: httpx.AsyncClient,
    application: ApplicationConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app_version = application.app_versions[0]
    policy = {"maxFailureRatio": 0.2, "minReports": 5}
    await create_software(rest, application.name, "1.1.0", ["1.0.0"], policy=policy)
    outcomes = {"ep-1": 500, "ep-2": 500, "ep-3": 200, "ep-4": 200, "ep-5": 200}
    for endpoint_id in outcomes:
        assert (await cmx.request(app_version, endpoint_id, "1.0.0")).config_id == "1.1.0"

    await _below_min_reports_the_rollout_goes_on(otao, cmx, rest, application, outcomes)
    await _the_fifth_report_halts_it(cmx, rest, application, caplog)
    await _halted_nobody_gets_it(otao, cmx, rest, application)
    await _resuming_restarts_delivery_and_lasts(otao, cmx, rest, application)


async def _below_min_reports_the_rollout_goes_on(
    otao: RunningOtao,
    cmx: CmxPeer,
    rest: httpx.AsyncClient,
    application: ApplicationConfig,
    outcomes: dict[str, int],
) -> None:
    # Four reports, half failed: below minReports, so the rollout goes on.
    seen = otao.app.components.services.halts.reports_seen
    for endpoint_id in ("ep-1", "ep-2", "ep-3", "ep-4"):
        code = outcomes[endpoint_id]
        await cmx.applied(application.app_versions[0], endpoint_id, "1.1.0", status_code=code)
        await reported(otao, application.name, endpoint_id, "1.1.0", failed=code >= 400)
    await health_checked(otao, seen + 4)
    assert (await get_software(rest, application.name, "1.1.0"))["rolloutStrategy"] == "general"


async def _the_fifth_report_halts_it(
    cmx: CmxPeer,
    rest: httpx.AsyncClient,
    application: ApplicationConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await cmx.applied(application.app_versions[0], "ep-5", "1.1.0")

    async def halted() -> bool:
        found = await get_software(rest, application.name, "1.1.0")
        return bool(found["rolloutStrategy"] == "suspended")

    await until(halted, "the rollout halted itself", timeout=5)
    found = await get_software(rest, application.name, "1.1.0")
    assert "2/5" in found["halt"]["reason"] and "0.2" in found["halt"]["reason"]
    assert found["halt"]["haltedAt"]
    status = await rollout_status(rest, application.name, "1.1.0")
    assert status["rolloutStrategy"] == "suspended"
    assert status["halt"]["reason"] == found["halt"]["reason"]
    assert counts(status)["applied"] == 3 and counts(status)["failed"] == 2
    logged = [r for r in caplog.records if r.getMessage() == "rollout halted"]
    assert [getattr(r, "application", None) for r in logged] == [application.name]


async def _halted_nobody_gets_it(
    otao: RunningOtao, cmx: CmxPeer, rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    # Halted: nobody is offered or pushed 1.1.0 any more.
    app_version = application.app_versions[0]
    before = len(pushed(cmx, app_version))
    assert (await cmx.request(app_version, "ep-late", "1.0.0")).config_id is None
    await recorded(otao, application.name, "ep-late", "1.0.0")
    await patch_software(rest, application.name, "1.1.0", specification={"image": "again.bin"})
    await settled(otao, cmx)
    assert pushed(cmx, app_version)[before:] == []
    assert (await get_software(rest, application.name, "1.1.0"))["rolloutStrategy"] == "suspended"


async def _resuming_restarts_delivery_and_lasts(
    otao: RunningOtao, cmx: CmxPeer, rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    # The operator resumes by setting the strategy: the halt is cleared, delivery restarts.
    app_version = application.app_versions[0]
    resumed = await patch_software(rest, application.name, "1.1.0", rolloutStrategy="general")
    assert resumed["rolloutStrategy"] == "general"
    assert resumed.get("halt") in (None, {})
    await cmx.wait_for(lambda: ("ep-late", "1.1.0") in pushed(cmx, app_version), timeout=5)
    assert (await cmx.request(app_version, "ep-late", "1.0.0")).config_id == "1.1.0"
    status = await rollout_status(rest, application.name, "1.1.0")
    assert status["rolloutStrategy"] == "general" and status.get("halt") in (None, {})

    # The resume lasts: the policy judges only reports made after it, so one more report
    # (the old failures still on record) does not halt the rollout again.
    seen = otao.app.components.services.halts.reports_seen
    await cmx.applied(app_version, "ep-late", "1.1.0")
    await reported(otao, application.name, "ep-late", "1.1.0", failed=False)
    await health_checked(otao, seen + 1)
    assert (await get_software(rest, application.name, "1.1.0"))["rolloutStrategy"] == "general"


async def test_rollout_status_counts_match_what_happened(rig: Rig) -> None:
    name = rig.application.name
    later, _ = utc_date(3600)
    await put_settings(rig.rest, name, consent_required=True)
    await create_software(
        rig.rest,
        name,
        "1.1.0",
        ["1.0.0"],
        "targeted",
        [{"filterId": "beta"}, {"filterId": "gamma", "rolloutDate": later}],
    )
    rig.epr.membership = {
        "ep-applied": ["beta"],
        "ep-failed": ["beta"],
        "ep-offered": ["beta"],
        "ep-no-consent": ["beta"],
        "ep-dated": ["gamma"],
        "ep-no-filter": [],
    }
    consenting = ["ep-applied", "ep-failed", "ep-offered", "ep-dated"]
    for endpoint_id in consenting:
        body: dict[str, Any] = {"version": "1.1.0"}
        ok(await rig.rest.post(f"{APPS}/{name}/endpoints/{endpoint_id}/consents", json=body))
    for endpoint_id in rig.epr.membership:
        await rig.cmx.request(rig.app_version, endpoint_id, "1.0.0")
    await rig.cmx.request(rig.app_version, "ep-old", "0.9.0")  # not in the graph
    await rig.cmx.applied(rig.app_version, "ep-applied", "1.1.0")
    await rig.cmx.applied(rig.app_version, "ep-failed", "1.1.0", status_code=500)

    expected = {
        "eligible": 1,  # ep-offered: deliverable, not applied yet
        "offered": 3,  # ep-applied, ep-failed, ep-offered
        "applied": 1,
        "failed": 1,
        "awaitingConsent": 1,  # ep-no-consent
        "notYetEligible": 1,  # ep-dated
    }
    found: dict[str, int] = {}

    async def settled() -> bool:
        nonlocal found
        found = counts(await rollout_status(rig.rest, name, "1.1.0"))
        return found == expected

    try:
        await until(settled, "rollout status counts", timeout=5)
    except AssertionError:
        assert found == expected
    status = await rollout_status(rig.rest, name, "1.1.0")
    assert (status["version"], status["rolloutStrategy"]) == ("1.1.0", "targeted")
    assert status.get("halt") in (None, {})
