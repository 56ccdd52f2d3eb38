"""The rollout page: status counts refreshed live, Halt/Resume, endpoints per version, and a
staged rollout's waves with Advance/Pause/Resume."""

from __future__ import annotations

from typing import Any

import httpx

from otao.domain.applications import ApplicationConfig
from otao.domain.rollout_plan import bucket
from tests.support.browser import Console, expect
from tests.support.cmx import CmxPeer
from tests.support.eventually import eventually
from tests.support.rest import definition, ok


async def test_halt_and_resume_through_the_buttons_change_the_badge(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient
) -> None:
    base = f"/api/v1/applications/{application.name}/software"
    ok(await api.post(base, json=definition("1.1.0", ["1.0.0"])))
    await console.open(f"#/apps/{application.name}/rollout/1.1.0")
    page = console.page
    state = page.get_by_test_id("rollout-state")
    await expect(state).to_have_text("general")
    await page.get_by_role("button", name="Halt").click()
    await expect(state).to_have_text("suspended")
    assert ok(await api.get(f"{base}/1.1.0"))["rolloutStrategy"] == "suspended"
    await page.get_by_role("button", name="Resume").click()
    await expect(state).to_have_text("general")
    assert ok(await api.get(f"{base}/1.1.0"))["rolloutStrategy"] == "general"


async def test_counts_and_the_distribution_follow_what_endpoints_report(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient, cmx: CmxPeer
) -> None:
    base = f"/api/v1/applications/{application.name}/software"
    ok(await api.post(base, json=definition("1.1.0", ["1.0.0"])))
    await console.open(f"#/apps/{application.name}/rollout/1.1.0")
    page = console.page
    await expect(page.locator("dd[data-count='applied']")).to_have_text("0")
    app_version = application.app_versions[0]
    reply = await cmx.request(app_version, "kettle-1", "1.0.0")
    assert reply.config_id == "1.1.0"
    await cmx.applied(app_version, "kettle-1", "1.1.0")
    # The page polls: the counts and the chart move without a reload.
    await expect(page.locator("dd[data-count='applied']")).to_have_text("1")
    chart = page.get_by_role("list", name="Endpoints per version")
    await expect(chart.get_by_role("listitem", name="1.1.0: 1 endpoints")).to_be_visible()


async def test_a_rollout_otao_halted_shows_its_reason_and_resumes_from_the_button(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient, cmx: CmxPeer
) -> None:
    base = f"/api/v1/applications/{application.name}/software"
    policy = {"maxFailureRatio": 0.0, "minReports": 1}
    ok(await api.post(base, json=definition("1.1.0", ["1.0.0"], rolloutPolicy=policy)))
    app_version = application.app_versions[0]
    await cmx.request(app_version, "kettle-9", "1.0.0")
    await cmx.applied(app_version, "kettle-9", "1.1.0", status_code=500, reason="flash failed")

    async def halted() -> bool:
        return bool(ok(await api.get(f"{base}/1.1.0")).get("halt"))

    await eventually(halted, "otao halted the rollout")
    await console.open(f"#/apps/{application.name}/definitions")
    page = console.page
    row = page.get_by_role("table", name="Definitions").locator("tr[data-version='1.1.0']")
    halt_badge = row.get_by_test_id("halt-badge")
    await expect(halt_badge).to_contain_text("halted:")
    await console.open(f"#/apps/{application.name}/rollout/1.1.0")
    await expect(page.get_by_test_id("rollout-state")).to_contain_text("halted:")
    await page.get_by_role("button", name="Resume").click()
    await expect(page.get_by_test_id("rollout-state")).to_have_text("general")


# Two waves, opened only by an operator: endpoints with a bucket below 5000 are in wave 0.
MANUAL_PLAN = {"waves": [{"percent": 50, "minReports": 1}, {"percent": 100}], "advance": "manual"}


def _endpoint_in_wave(application: str, version: str, wave: int) -> str:
    return next(
        f"kettle-{i}"
        for i in range(1000)
        if (bucket(application, f"kettle-{i}", version) < 5000) == (wave == 0)
    )


async def manual_rollout_waves(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient
) -> tuple[str, Any]:
    """Defines 1.1.0 with the two-wave manual plan and opens its rollout page: the software
    collection's path and the page's Waves region."""
    base = f"/api/v1/applications/{application.name}/software"
    ok(await api.post(base, json=definition("1.1.0", ["1.0.0"], rolloutPlan=MANUAL_PLAN)))
    await console.open(f"#/apps/{application.name}/rollout/1.1.0")
    return base, console.page.get_by_role("region", name="Waves")


async def test_a_two_wave_manual_plan_shows_two_wave_bars_with_wave_0_open(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient, cmx: CmxPeer
) -> None:
    _, section = await manual_rollout_waves(console, application, api)
    waves = section.get_by_role("list", name="Waves").get_by_role("listitem")
    await expect(waves).to_have_count(2)
    await expect(waves.nth(0)).to_contain_text("Wave 0 · 50%")
    await expect(waves.nth(0).get_by_test_id("wave-state")).to_have_text("open")
    await expect(waves.nth(1).get_by_test_id("wave-state")).to_have_text("pending")
    await expect(section.get_by_test_id("gate")).to_contain_text("gate not met 0 of 1 reports")
    await expect(section).to_contain_text("advance manual")
    # An endpoint of wave 0 installs: the page polls and wave 0's counts move.
    app_version = application.app_versions[0]
    endpoint = _endpoint_in_wave(application.name, "1.1.0", 0)
    assert (await cmx.request(app_version, endpoint, "1.0.0")).config_id == "1.1.0"
    await cmx.applied(app_version, endpoint, "1.1.0")
    await expect(waves.nth(0).locator("[data-wave-count='applied']")).to_have_text("1")
    await expect(section.get_by_test_id("gate")).to_contain_text("gate met")


async def test_advance_opens_wave_1_and_is_disabled_on_the_last_wave(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient
) -> None:
    base, section = await manual_rollout_waves(console, application, api)
    waves = section.get_by_role("listitem")
    await expect(waves.nth(1).get_by_test_id("wave-state")).to_have_text("pending")
    await section.get_by_role("button", name="Advance", exact=True).click()
    await expect(waves.nth(1).get_by_test_id("wave-state")).to_have_text("open")
    await expect(waves.nth(0).get_by_test_id("wave-state")).to_have_text("done")
    await expect(section.get_by_test_id("current-wave")).to_contain_text("wave 1")
    await expect(section.get_by_role("button", name="Advance", exact=True)).to_be_disabled()
    assert ok(await api.get(f"{base}/1.1.0/rollout"))["currentWave"] == 1


async def test_pause_shows_paused_and_resume_clears_it(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient
) -> None:
    base, section = await manual_rollout_waves(console, application, api)
    paused = section.get_by_test_id("rollout-paused")
    await section.get_by_role("button", name="Pause", exact=True).click()
    await expect(paused).to_have_text("paused")
    assert ok(await api.get(f"{base}/1.1.0/rollout"))["paused"] is True
    resume = section.get_by_role("button", name="Resume", exact=True)
    # The button that replaced Pause has the keyboard focus.
    await expect(resume).to_be_focused()
    await resume.click()
    await expect(section.get_by_role("button", name="Pause", exact=True)).to_be_visible()
    await expect(paused).to_have_count(0)
    assert ok(await api.get(f"{base}/1.1.0/rollout"))["paused"] is False


async def test_a_definition_without_a_plan_shows_no_waves(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient
) -> None:
    base = f"/api/v1/applications/{application.name}/software"
    ok(await api.post(base, json=definition("1.1.0", ["1.0.0"])))
    # The API prints "waves": [] for it; that is no staged rollout.
    assert ok(await api.get(f"{base}/1.1.0/rollout"))["waves"] == []
    await console.open(f"#/apps/{application.name}/rollout/1.1.0")
    page = console.page
    await expect(page.get_by_test_id("rollout-state")).to_have_text("general")
    await expect(page.get_by_role("region", name="Waves")).to_have_count(0)
    await expect(page.get_by_role("button", name="Advance")).to_have_count(0)
