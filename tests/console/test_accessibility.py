"""Every control has an accessible name, pages fit a 200% zoom of 1280x800, the graph works
from the keyboard."""

from __future__ import annotations

import httpx

from otao.domain.applications import ApplicationConfig
from tests.support.browser import Console, expect
from tests.support.cmx import CmxPeer
from tests.support.rest import definition, ok

# Controls (and SVG nodes one can focus) without a label, aria-label or text, as "tag#name".
UNNAMED = """() => [...document.querySelectorAll(
    'input, select, textarea, button, a[href], [tabindex]:not([tabindex="-1"])')]
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !(el.textContent || '').trim() && el.id !== 'main')
  .map((el) => `${el.tagName}#${el.getAttribute('name') || ''}`)"""
FITS = "() => document.documentElement.scrollWidth <= window.innerWidth"


async def _seed(api: httpx.AsyncClient, cmx: CmxPeer, application: ApplicationConfig) -> None:
    base = f"/api/v1/applications/{application.name}/software"
    ok(await api.post(base, json=definition("1.1.0", ["1.0.0"])))
    ok(await api.post(base, json=definition("2.0.0", ["1.1.0"], strategy="suspended")))
    await cmx.request(application.app_versions[0], "kettle-a11y", "1.0.0")


def _pages(app: str) -> dict[str, str]:
    return {
        "#/": "Applications",
        f"#/apps/{app}/definitions": "Definitions",
        f"#/apps/{app}/software/1.1.0": "Definition 1.1.0",
        f"#/apps/{app}/graph": "Upgrade graph",
        f"#/apps/{app}/rollout/1.1.0": "Rollout",
        f"#/apps/{app}/endpoints/kettle-a11y": "Endpoints",
        f"#/apps/{app}/audit": "Audit",
    }


async def test_every_control_on_every_page_has_an_accessible_name(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient, cmx: CmxPeer
) -> None:
    await _seed(api, cmx, application)
    for route, heading in _pages(application.name).items():
        await console.open(route)
        await expect(console.page.get_by_role("heading", level=2)).to_contain_text(heading)
        await expect(
            console.page.locator(".loading, [aria-live] .muted:text('Loading…')")
        ).to_have_count(0)
        assert await console.page.evaluate(UNNAMED) == [], route


async def test_pages_fit_a_1280x800_window_at_200_percent_zoom(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient, cmx: CmxPeer
) -> None:
    await _seed(api, cmx, application)
    # 200% zoom of 1280x800 lays out like a 640x400 viewport.
    await console.page.set_viewport_size({"width": 640, "height": 400})
    for route, heading in _pages(application.name).items():
        await console.open(route)
        await expect(console.page.get_by_role("heading", level=2)).to_contain_text(heading)
        await expect(console.page.locator("main")).to_have_attribute("aria-busy", "false")
        assert await console.page.evaluate(FITS), route


async def test_the_graph_opens_a_definition_from_the_keyboard(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient, cmx: CmxPeer
) -> None:
    await _seed(api, cmx, application)
    await console.open(f"#/apps/{application.name}/graph")
    node = console.page.get_by_role("link", name="1.1.0, general")
    await node.focus()
    await expect(node).to_be_focused()
    await console.page.keyboard.press("Enter")
    await expect(
        console.page.get_by_role("heading", name=f"Definition 1.1.0 · {application.name}")
    ).to_be_visible()
