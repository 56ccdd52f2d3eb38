"""The Applications page: the applications the API lists for the caller (local development
mode: the default tenant's), by name, each opening its definitions; by name too."""

from __future__ import annotations

from tests.support.browser import Console, expect
from tests.support.otao import RunningOtao


async def test_the_page_lists_the_tenants_applications_from_the_api_and_opens_one(
    console: Console, otao: RunningOtao, unique_name: str
) -> None:
    # "0..." sorts before the session's other applications ("app-...", "t..."): first page.
    boiler = otao.add_application(f"0{unique_name}-boiler", (f"0{unique_name}-boiler-v1",))
    kettle = otao.add_application(f"0{unique_name}-kettle", consent_required=True)
    otao.add_application(f"0{unique_name}-elsewhere", tenant_id="another-tenant")
    await console.open("#/")
    page = console.page
    table = page.get_by_role("table", name="Applications")
    ours = table.locator("tbody tr").filter(has_text=f"0{unique_name}-")

    await expect(ours).to_have_count(2)
    await expect(ours.nth(0)).to_contain_text(f"{boiler.name}-v1")
    await expect(ours.nth(0)).to_contain_text("no")
    await expect(ours.nth(1)).to_contain_text(kettle.app_versions[0])
    await expect(ours.nth(1)).to_contain_text("yes")
    await expect(table).not_to_contain_text(f"0{unique_name}-elsewhere")

    await table.get_by_role("link", name=kettle.name, exact=True).click()
    await expect(page).to_have_url(f"{console.base_url}/console/#/apps/{kettle.name}/definitions")
    await expect(page.get_by_role("table", name="Definitions")).to_be_visible()


async def test_an_application_can_be_opened_by_name(console: Console, otao: RunningOtao) -> None:
    application = otao.add_application()
    await console.open("#/")
    page = console.page

    await page.get_by_label("Application name").fill(application.name)
    await page.get_by_role("button", name="Open").click()

    await expect(page).to_have_url(
        f"{console.base_url}/console/#/apps/{application.name}/definitions"
    )
