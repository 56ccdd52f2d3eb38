"""The Definitions page: the table, the "New version" form and its field violations."""

from __future__ import annotations

import re
from typing import Any

import httpx

from otao.domain.applications import ApplicationConfig
from tests.support.browser import Console, expect
from tests.support.operator import create_software
from tests.support.rest import definition, ok


async def open_definitions(console: Console, application: ApplicationConfig) -> Any:
    """The Definitions page of ``application``, opened: its page."""
    await console.open(f"#/apps/{application.name}/definitions")
    return console.page


async def new_version_form(console: Console, application: ApplicationConfig) -> Any:
    """The "New version" form on ``application``'s Definitions page, opened."""
    page = await open_definitions(console, application)
    return page.get_by_role("form", name="New version")


async def test_a_version_created_through_the_form_appears_in_the_table(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient
) -> None:
    await create_software(api, application.name, "1.0.0", [])
    page = await open_definitions(console, application)
    form = page.get_by_role("form", name="New version")
    await form.get_by_label("Version", exact=True).fill("1.1.0")
    await form.get_by_role("button", name="Add 1.0.0 to Upgradable from").click()
    await expect(form.get_by_role("textbox", name="Upgradable from")).to_have_value("1.0.0")
    await form.get_by_label("Rollout strategy").select_option("suspended")
    await form.get_by_label("Specification").fill('{"url": "https://fw.example.com/1.1.0.bin"}')
    await form.get_by_label("Metadata").fill('{"notes": "from the console"}')
    await form.get_by_label("Rollout policy").fill('{"maxFailureRatio": 0.5, "minReports": 2}')
    await form.get_by_role("button", name="Create").click()

    table = page.get_by_role("table", name="Definitions")
    row = table.locator("tr[data-version='1.1.0']")
    await expect(row).to_contain_text("suspended")
    # Newest first.
    await expect(table.locator("tbody tr").first).to_have_attribute("data-version", "1.1.0")
    stored = ok(await api.get(f"/api/v1/applications/{application.name}/software/1.1.0"))
    assert stored["upgradableFrom"] == ["1.0.0"]
    assert stored["metadata"] == {"notes": "from the console"}
    assert stored["rolloutPolicy"] == {"maxFailureRatio": 0.5, "minReports": 2}


async def test_a_bad_version_shows_the_servers_violation_next_to_the_version_field(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient
) -> None:
    form = await new_version_form(console, application)
    await form.get_by_label("Version", exact=True).fill("not-a-version")
    await form.get_by_role("button", name="Create").click()
    version_field = form.locator("[data-field='version']")
    await expect(version_field.locator(".violation")).to_contain_text(
        "not a Semantic Versioning 2.0 version"
    )
    await expect(form.get_by_label("Version", exact=True)).to_have_attribute("aria-invalid", "true")
    # Nothing was created.
    assert ok(await api.get(f"/api/v1/applications/{application.name}/software")) == []


async def test_json_editors_show_parse_errors_while_typing(
    console: Console, application: ApplicationConfig
) -> None:
    form = await new_version_form(console, application)
    await form.get_by_label("Specification").fill('{"url": ')
    await expect(form.locator("[data-field='specification'] .parse-error")).to_contain_text(
        "Not valid JSON"
    )
    await form.get_by_label("Specification").fill('{"url": "x"}')
    await expect(form.locator("[data-field='specification'] .parse-error")).to_be_empty()


async def test_editing_with_a_stale_etag_explains_the_conflict(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient
) -> None:
    base = f"/api/v1/applications/{application.name}/software"
    ok(await api.post(base, json=definition("1.0.0", [])))
    await console.open(f"#/apps/{application.name}/software/1.0.0")
    form = console.page.get_by_role("form", name="Edit 1.0.0")
    await expect(form.get_by_label("Version", exact=True)).to_have_value("1.0.0")
    # Someone else changes the definition after the page loaded it.
    ok(await api.patch(f"{base}/1.0.0", params={"updateMask": "metadata"}, json={"metadata": 1}))
    await form.get_by_label("Metadata").fill('{"by": "console"}')
    await form.get_by_role("button", name="Save").click()
    await expect(form.get_by_role("alert")).to_contain_text(
        "Someone changed it since you loaded it"
    )


async def test_delete_asks_first_and_then_removes_the_row(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient
) -> None:
    await create_software(api, application.name, "1.0.0", [])
    page = await open_definitions(console, application)
    await page.get_by_role("button", name="Delete 1.0.0").click()
    dialog = page.get_by_role("dialog", name="Delete definition 1.0.0?")
    await dialog.get_by_role("button", name="Delete").click()
    await expect(page.get_by_role("table", name="Definitions")).to_contain_text(
        "No definitions yet"
    )


async def test_suspend_and_resume_from_the_table(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient
) -> None:
    base = f"/api/v1/applications/{application.name}/software"
    ok(await api.post(base, json=definition("1.0.0", [])))
    page = await open_definitions(console, application)
    row = page.get_by_role("table", name="Definitions").locator("tr[data-version='1.0.0']")
    await page.get_by_role("button", name="Suspend 1.0.0").click()
    await expect(row.get_by_label("strategy suspended")).to_be_visible()
    await page.get_by_role("button", name="Resume 1.0.0").click()
    await expect(row.get_by_label("strategy general")).to_be_visible()
    assert ok(await api.get(f"{base}/1.0.0"))["rolloutStrategy"] == "general"


async def test_the_consent_setting_is_changed_from_the_page(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient
) -> None:
    page = await open_definitions(console, application)
    box = page.get_by_role("checkbox", name="Consent required")
    await expect(box).not_to_be_checked()
    await box.check()
    await expect(page.get_by_text("Endpoints need consent.")).to_be_visible()
    settings = ok(await api.get(f"/api/v1/applications/{application.name}/settings"))
    assert settings == {"consentRequired": True}


async def test_a_definition_with_a_plan_shows_a_bar_per_wave_in_the_table(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient
) -> None:
    base = f"/api/v1/applications/{application.name}/software"
    plan = {"waves": [{"percent": 10}, {"percent": 50}, {"percent": 100}], "advance": "manual"}
    ok(await api.post(base, json=definition("1.1.0", ["1.0.0"], rolloutPlan=plan)))
    ok(await api.post(base, json=definition("1.2.0", ["1.0.0"])))
    page = await open_definitions(console, application)
    table = page.get_by_role("table", name="Definitions")
    waves = table.locator("tr[data-version='1.1.0']").get_by_role("listitem")
    await expect(waves).to_have_count(3)
    await expect(waves.get_by_test_id("wave-state")).to_have_text(["open", "pending", "pending"])
    await expect(waves.nth(2)).to_contain_text("Wave 2 · 100%")
    # Without a plan: the single offered/applied/failed bar, no wave list.
    plain = table.locator("tr[data-version='1.2.0']")
    await expect(plain).to_contain_text("offered 0 · applied 0 · failed 0")
    await expect(plain.get_by_role("list", name="Waves")).to_have_count(0)


async def test_a_rollout_plan_typed_into_the_form_is_stored(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient
) -> None:
    form = await new_version_form(console, application)
    plan_editor = form.get_by_label("Rollout plan")
    await form.get_by_label("Version", exact=True).fill("1.1.0")
    await form.get_by_label("Specification").fill('{"url": "https://fw.example.com/1.1.0.bin"}')
    await plan_editor.fill('{"waves": [{"percent": 20}, ')
    await expect(form.locator("[data-field='rolloutPlan'] .parse-error")).to_contain_text(
        "Not valid JSON"
    )
    await plan_editor.fill('{"waves": [{"percent": 20, "minReports": 5}, {"percent": 100}]}')
    await expect(form.locator("[data-field='rolloutPlan'] .parse-error")).to_be_empty()
    await form.get_by_role("button", name="Create").click()
    await expect(form.get_by_role("status")).to_have_text("Created 1.1.0.")
    stored = ok(await api.get(f"/api/v1/applications/{application.name}/software/1.1.0"))
    assert [w["percent"] for w in stored["rolloutPlan"]["waves"]] == [20, 100]
    assert stored["rolloutPlan"]["waves"][0]["minReports"] == 5
    # The edit form shows the plan as stored, and saving it unchanged is accepted.
    await console.open(f"#/apps/{application.name}/software/1.1.0")
    edit = console.page.get_by_role("form", name="Edit 1.1.0")
    await expect(edit.get_by_label("Rollout plan")).to_have_value(re.compile('"minReports": 5'))
    await edit.get_by_role("button", name="Save").click()
    await expect(edit.get_by_role("status")).to_have_text("Saved 1.1.0.")


async def test_a_bad_rollout_plan_shows_the_servers_violation_next_to_rollout_plan(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient
) -> None:
    form = await new_version_form(console, application)
    await form.get_by_label("Version", exact=True).fill("1.1.0")
    await form.get_by_label("Rollout plan").fill('{"waves": [{"percent": 50}, {"percent": 40}]}')
    await form.get_by_role("button", name="Create").click()
    violation = form.locator("[data-field='rolloutPlan'] .violation")
    await expect(violation).to_contain_text("rolloutPlan.waves[1].percent: must be greater")
    await expect(form.get_by_label("Rollout plan")).to_have_attribute("aria-invalid", "true")
    await expect(form.locator("[data-field='version'] .violation")).to_be_empty()
    assert ok(await api.get(f"/api/v1/applications/{application.name}/software")) == []
