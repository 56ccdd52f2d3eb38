"""The endpoint page: current version, next update, every definition's verdict, consents."""

from __future__ import annotations

import httpx

from otao.domain.applications import ApplicationConfig
from tests.support.browser import Console, expect
from tests.support.cmx import CmxPeer
from tests.support.rest import definition, ok


async def test_an_endpoint_that_polled_over_cdtp_shows_its_verdicts(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient, cmx: CmxPeer
) -> None:
    base = f"/api/v1/applications/{application.name}/software"
    ok(await api.post(base, json=definition("1.1.0", ["1.0.0"])))
    ok(await api.post(base, json=definition("1.2.0", ["1.0.0"], strategy="suspended")))
    reply = await cmx.request(application.app_versions[0], "kettle-7", "1.0.0")
    assert reply.config_id == "1.1.0"

    await console.open(f"#/apps/{application.name}/endpoints")
    page = console.page
    await page.get_by_label("Endpoint ID").fill("kettle-7")
    await page.get_by_role("button", name="Look up").click()
    await expect(page.get_by_test_id("current-version")).to_have_text("1.0.0")
    await expect(page.get_by_test_id("next-update")).to_have_text("1.1.0")
    verdicts = page.get_by_role("table", name="Verdicts")
    await expect(verdicts.locator("tr[data-version='1.1.0']")).to_contain_text("selected")
    await expect(verdicts.locator("tr[data-version='1.2.0']")).to_contain_text("suspended")
    # The endpoint is listed among the known endpoints too.
    await expect(page.get_by_role("link", name="kettle-7")).to_be_visible()


async def test_consents_are_granted_and_revoked_from_the_page(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient, cmx: CmxPeer
) -> None:
    ok(
        await api.post(
            f"/api/v1/applications/{application.name}/software", json=definition("1.1.0", ["1.0.0"])
        )
    )
    await cmx.request(application.app_versions[0], "kettle-8", "1.0.0")
    await console.open(f"#/apps/{application.name}/endpoints/kettle-8")
    page = console.page
    await page.get_by_label("Consent version").fill("1.1.0")
    await page.get_by_role("button", name="Grant").click()
    revoke = page.get_by_role("button", name="Revoke consent for 1.1.0")
    await expect(revoke).to_be_visible()
    await revoke.click()
    await expect(page.get_by_text("No consents.")).to_be_visible()
