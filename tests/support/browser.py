"""Debian's Chromium driven by Playwright for Python, for the console's browser tests.

Playwright's own browser download cannot work on these machines; the tests launch the system
Chromium (``apt-get install chromium``, or ``make browser``) through ``executable_path``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

try:
    from playwright.async_api import expect as _expect
except ImportError:  # the browser fixture skips (or fails under CI) with the reason
    _expect = None  # type: ignore[assignment]

expect: Any = _expect

CHROMIUM = Path(os.environ.get("OTAO_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
FAILED = pytest.StashKey[bool]()


def browser_unavailable() -> str | None:
    if _expect is None:
        return "Playwright is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (make browser, or apt-get install chromium)"
    return None


def require_browser() -> None:
    """Skip with one loud reason, or fail under CI=true, when the browser cannot run."""
    reason = browser_unavailable()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run under CI=true: {reason}")
    pytest.skip(f"!!! BROWSER TESTS SKIPPED: {reason} !!!")


@dataclass
class Console:
    base_url: str
    page: Any
    errors: list[str] = field(default_factory=list)

    async def open(self, route: str = "#/") -> None:
        await self.page.goto(f"{self.base_url}/console/{route}")


async def open_console(
    browser: Any, base_url: str, request: pytest.FixtureRequest, init_script: str | None = None
) -> AsyncIterator[Console]:
    """A fresh 1280x800 page; a screenshot in tests/artifacts/ if the test failed."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    if init_script:
        await context.add_init_script(init_script)
    page = await context.new_page()
    console = Console(base_url, page)
    page.on("pageerror", lambda error: console.errors.append(str(error)))
    try:
        yield console
    finally:
        if request.node.stash.get(FAILED, False):
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        await context.close()
    # A script error is a failure even when the page still looked right.
    assert not console.errors, console.errors
