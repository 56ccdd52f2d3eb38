"""The console with security on: sign-in with authorization code + PKCE against the tenant's
issuer (the fake Keycloak), Bearer tokens on every call, 401 -> sign in, 403 explained."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from otao.rpc.access import READ, UPDATE
from tests.security.doors import Secured, secured_stack
from tests.support.browser import Console, expect, open_console
from tests.support.eventually import eventually
from tests.support.stack import EnvoyFactory, MongoServer, NatsServer

CLIENT = "otao-console"


@pytest.fixture(scope="module")
async def secured(
    nats_server: NatsServer, mongo_server: MongoServer, envoy_factory: EnvoyFactory
) -> AsyncIterator[Secured]:
    async with secured_stack(nats_server, mongo_server, envoy_factory, letters=("a",)) as stack:
        yield stack


def _base_url(secured: Secured) -> str:
    return str(secured.rest.base_url).rstrip("/")


@pytest.fixture
async def signed_out(
    browser: Any, secured: Secured, request: pytest.FixtureRequest
) -> AsyncIterator[Console]:
    async for console in open_console(browser, _base_url(secured), request):
        yield console


async def test_a_read_only_operator_is_told_which_permission_creating_needs(
    browser: Any, secured: Secured, request: pytest.FixtureRequest
) -> None:
    # Test hook (docs/console.md): a token placed on window before the console starts.
    token = secured.a.token(scopes=(READ,))
    hook = f"window.__OTAO_CONSOLE_TOKEN__ = {json.dumps(token)};"
    async for console in open_console(browser, _base_url(secured), request, init_script=hook):
        await console.open("#/apps/kettle/definitions")
        page = console.page
        await expect(page.get_by_role("table", name="Definitions")).to_contain_text(
            "No definitions yet"
        )
        form = page.get_by_role("form", name="New version")
        await form.get_by_label("Version", exact=True).fill("1.0.0")
        await form.get_by_role("button", name="Create").click()
        alert = form.get_by_role("alert")
        await expect(alert).to_contain_text("permission denied")
        await expect(alert).to_contain_text(
            "This needs the permission application:software:update on resource application-kettle"
        )
        await expect(form.get_by_role("button", name="Create")).to_be_disabled()


async def test_the_applications_page_lists_only_what_the_token_may_read(
    browser: Any, secured: Secured, request: pytest.FixtureRequest
) -> None:
    for readable, shown in (("kettle", "kettle"), ("boiler", None)):
        token = secured.a.token(scopes=(READ,), application=readable)
        hook = f"window.__OTAO_CONSOLE_TOKEN__ = {json.dumps(token)};"
        async for console in open_console(browser, _base_url(secured), request, init_script=hook):
            await console.open("#/")
            table = console.page.get_by_role("table", name="Applications")
            if shown is None:
                await expect(table).to_contain_text("You may read no application")
            else:
                await expect(table.get_by_role("link", name=shown, exact=True)).to_be_visible()


async def _sign_in_as_alice(console: Console, secured: Secured, lifetime: int = 300) -> None:
    """Through the sign-in page and the fake Keycloak's authorization endpoint (code + PKCE)."""
    realm = secured.a.realm
    realm.public_clients[CLIENT] = f"{_base_url(secured)}/console/"
    realm.login_subject = "alice"
    realm.login_token_lifetime = lifetime
    realm.login_claims = {
        "authorization": {
            "permissions": [{"rsname": "application-kettle", "scopes": [READ, UPDATE]}]
        },
        "preferred_username": "alice",
    }
    await console.open("#/apps/kettle/definitions")
    page = console.page
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("Issuer").fill(realm.issuer)
    await page.get_by_label("Client ID").fill(CLIENT)
    await page.get_by_role("button", name="Sign in").click()
    # Back from the issuer with a code: exchanged (PKCE), then the page the operator asked for.
    await expect(page.get_by_text("Signed in as alice")).to_be_visible()
    await expect(page).to_have_url(f"{_base_url(secured)}/console/#/apps/kettle/definitions")


async def test_without_a_session_the_console_asks_to_sign_in_and_pkce_signs_in(
    signed_out: Console, secured: Secured
) -> None:
    await _sign_in_as_alice(signed_out, secured)
    page = signed_out.page
    form = page.get_by_role("form", name="New version")
    await form.get_by_label("Version", exact=True).fill("1.0.0")
    await form.get_by_label("Specification").fill('{"url": "https://fw.example.com/1.0.0.bin"}')
    await form.get_by_role("button", name="Create").click()
    await expect(
        page.get_by_role("table", name="Definitions").locator("tr[data-version='1.0.0']")
    ).to_be_visible()
    # The token never reached storage.
    stored = await page.evaluate("JSON.stringify([localStorage, sessionStorage])")
    assert "eyJ" not in stored


async def test_a_rejected_token_sends_the_operator_back_to_sign_in(
    browser: Any, secured: Secured, request: pytest.FixtureRequest
) -> None:
    token = secured.a.realm.issue("bob", lifetime=-60)  # expired
    hook = f"window.__OTAO_CONSOLE_TOKEN__ = {json.dumps(token)};"
    async for console in open_console(browser, _base_url(secured), request, init_script=hook):
        await console.open("#/apps/kettle/definitions")
        await expect(console.page.get_by_role("heading", name="Sign in")).to_be_visible()
        await expect(console.page.get_by_role("alert")).to_contain_text("sign in again")


async def test_the_console_refreshes_its_token_before_it_expires(
    signed_out: Console, secured: Secured
) -> None:
    # A 36 s token is refreshed 30 s before it expires, i.e. after about 6 s.
    await _sign_in_as_alice(signed_out, secured, lifetime=36)
    before = secured.a.realm.refreshes
    await eventually(lambda: secured.a.realm.refreshes > before, "a refresh grant", timeout=30)
    await signed_out.page.get_by_role("link", name="Audit").click()
    await expect(signed_out.page.locator("main")).to_have_attribute("aria-busy", "false")
    await expect(signed_out.page.get_by_text("Signed in as alice")).to_be_visible()
    await expect(signed_out.page.get_by_role("alert")).to_have_count(0)
