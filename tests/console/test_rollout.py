"""The rollout page: status counts refreshed live, Halt/Resume, endpoints per version."""

from __future__ import annotations

import httpx

from otao.domain.applications import ApplicationConfig
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
