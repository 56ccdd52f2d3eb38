"""The upgrade graph page: one SVG node per version, one edge per upgradableFrom, the path."""

from __future__ import annotations

import re

import httpx

from otao.domain.applications import ApplicationConfig
from tests.support.browser import Console, expect
from tests.support.operator import create_software
from tests.support.rest import definition, ok


async def test_the_graph_has_a_node_per_version_and_an_edge_per_upgradable_from(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient
) -> None:
    base = f"/api/v1/applications/{application.name}/software"
    ok(await api.post(base, json=definition("1.0.0", ["0.9.0"])))
    ok(await api.post(base, json=definition("1.1.0", ["1.0.0", "0.9.0"])))
    ok(await api.post(base, json=definition("2.0.0", ["1.1.0"], strategy="suspended")))
    await console.open(f"#/apps/{application.name}/graph")
    svg = console.page.get_by_role("img", name=f"Upgrade graph of {application.name}")
    await expect(svg.locator("g.node")).to_have_count(4)
    await expect(svg.locator("path.edge")).to_have_count(4)
    for source, target in [
        ("0.9.0", "1.0.0"),
        ("0.9.0", "1.1.0"),
        ("1.0.0", "1.1.0"),
        ("1.1.0", "2.0.0"),
    ]:
        await expect(
            svg.locator(f"path.edge[data-from='{source}'][data-to='{target}']")
        ).to_have_count(1)
    # The factory version has no definition (dashed), the suspended one is styled apart.
    await expect(svg.locator("g.node[data-version='0.9.0']")).to_have_class("node undefined")
    await expect(svg.locator("g.node[data-version='2.0.0']")).to_have_class("node suspended")


async def test_entering_a_current_version_highlights_its_upgrade_path(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient
) -> None:
    base = f"/api/v1/applications/{application.name}/software"
    ok(await api.post(base, json=definition("1.0.0", ["0.9.0"])))
    ok(await api.post(base, json=definition("1.1.0", ["1.0.0"])))
    ok(await api.post(base, json=definition("1.2.0", ["0.9.0"], strategy="suspended")))
    await console.open(f"#/apps/{application.name}/graph")
    page = console.page
    await page.get_by_label("Current version").fill("0.9.0")
    await page.get_by_role("button", name="Show path").click()
    await expect(page.get_by_test_id("upgrade-path")).to_contain_text("1.0.0 → 1.1.0")
    svg = page.get_by_role("img", name=f"Upgrade graph of {application.name}")
    await expect(svg.locator("g.node.on-path")).to_have_count(3)
    await expect(svg.locator("path.edge.on-path")).to_have_count(2)
    await expect(svg.locator("g.node[data-version='1.2.0']")).not_to_have_class(
        re.compile(r"\bon-path\b")
    )


async def test_choosing_a_node_opens_its_definition(
    console: Console, application: ApplicationConfig, api: httpx.AsyncClient
) -> None:
    await create_software(api, application.name, "1.0.0", [])
    await console.open(f"#/apps/{application.name}/graph")
    await console.page.get_by_role("link", name="1.0.0, general").click()
    await expect(
        console.page.get_by_role("heading", name=f"Definition 1.0.0 · {application.name}")
    ).to_be_visible()
