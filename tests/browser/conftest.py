"""Browser fixtures: headless Debian Chromium driven by Playwright, against a real replica and simulator.

Every test here is marked `browser` and skips (with the reason) when /usr/bin/chromium or the
playwright package is missing. Screenshots go to test-artifacts/browser/ (gitignored).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.browser.stack import Stack, dashboard_stack
from tradebot.services import ResolvedServices, drop_database, ensure_database

CHROMIUM = Path(os.environ.get("TRADEBOT_CHROMIUM", "/usr/bin/chromium"))
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
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.browser)


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install playwright)"
    return None


@pytest.fixture(scope="module")
def browser_database_url(services: ResolvedServices) -> Iterator[str]:
    """A database of the browser tests' own: what they leave behind (users, bots, ids) touches no other test."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    name = f"tradebot_browser_{secrets.token_hex(4)}"
    url = urlunsplit(urlsplit(services.database_url)._replace(path=f"/{name}"))
    asyncio.run(ensure_database(url))
    yield url

    asyncio.run(drop_database(url))


@pytest.fixture(scope="module")
def stack(browser_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The replica applies the migrations itself (`tradebot run` migrates first).
    with dashboard_stack(browser_database_url, redis_url, tmp_path_factory.mktemp("dashboard")) as s:
        yield s


@pytest.fixture(scope="module")
def browser_context(stack: Stack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    user_data = tempfile.mkdtemp(prefix="tradebot-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                user_data,
                executable_path=str(CHROMIUM),
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1440, "height": 900},
                base_url=stack.url,
            )
            context.set_default_timeout(15_000)
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(user_data, ignore_errors=True)


class PageProblems:
    """Console errors and failed requests seen by a page (a CSP violation shows up as a console error)."""

    def __init__(self, page: Any) -> None:
        self.console: list[str] = []
        self.page_errors: list[str] = []
        page.on("console", lambda m: self.console.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))

    def csp_violations(self) -> list[str]:
        return [m for m in self.console if "Content Security Policy" in m]


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    """A new tab: its sessionStorage (and so its login) is its own."""
    tab = browser_context.new_page()
    tab.problems = PageProblems(tab)
    try:
        yield tab
    finally:
        tab.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
