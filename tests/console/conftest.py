"""Browser fixtures: the console in Debian's Chromium (tests/support/browser.py) against the
real stack: an Envoy serving /console/ and /api/v1 in front of the session's otao."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from otao.devstack.envoy import EnvoyProcess
from tests.support.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    FAILED,
    Console,
    browser_unavailable,
    expect,
    open_console,
    require_browser,
)
from tests.support.otao import RunningOtao
from tests.support.stack import EnvoyFactory


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True


def pytest_terminal_summary(terminalreporter: Any) -> None:
    # The one loud line: a skipped browser test must not pass unnoticed among "N skipped".
    reason = browser_unavailable()
    if reason is not None:
        terminalreporter.write_line(f"!!! BROWSER TESTS SKIPPED: {reason} !!!", red=True, bold=True)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    require_browser()
    from playwright.async_api import async_playwright

    expect.set_options(timeout=10_000)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest.fixture(scope="session")
def console_envoy(otao: RunningOtao, envoy_factory: EnvoyFactory) -> EnvoyProcess:
    return envoy_factory(otao.port)


@pytest.fixture(scope="session")
async def api(console_envoy: EnvoyProcess) -> AsyncIterator[httpx.AsyncClient]:
    """The REST API behind the console's Envoy, to set up what a test looks at."""
    async with httpx.AsyncClient(base_url=console_envoy.base_url, timeout=15.0) as client:
        yield client


@pytest.fixture
async def console(
    browser: Any, console_envoy: EnvoyProcess, request: pytest.FixtureRequest
) -> AsyncIterator[Console]:
    async for opened in open_console(browser, console_envoy.base_url, request):
        yield opened
