"""The audit page: newest first, paged with the API's page tokens."""

from __future__ import annotations

import httpx

from otao.domain.applications import ApplicationConfig
from tests.support.browser import Console, expect
from tests.support.rest import definition, ok


async def test_the_audit_log_pages_forward_and_back_with_page_tokens(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient
) -> None:
    base = f"/api/v1/applications/{application.name}/software"
    for patch in range(27):  # one page is 25 entries
        ok(await api.post(base, json=definition(f"1.0.{patch}", [])))
    await console.open(f"#/apps/{application.name}/audit")
    page = console.page
    rows = page.locator("table tbody tr")
    await expect(rows).to_have_count(25)
    await expect(rows.first).to_contain_text("software/1.0.26")
    await page.get_by_role("button", name="Next page").click()
    await expect(rows).to_have_count(2)
    await expect(rows.last).to_contain_text("software/1.0.0")
    await expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    await page.get_by_role("button", name="Previous page").click()
    await expect(rows).to_have_count(25)
    await expect(rows.first).to_contain_text("software/1.0.26")
