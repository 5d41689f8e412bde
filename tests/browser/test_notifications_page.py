"""The Notifications page in headless Chromium: a webhook's signing secret is shown once (at its
creation, never after a reload), its delivery log lists the test ping, and a Telegram chat is
linked with the /start command the page shows, against the tests' own Bot-API server."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import screenshot
from tests.browser.stack import Stack, dashboard_stack
from tests.browser.test_dashboard import no_csp_violations, register
from tests.processes import wait_until
from tests.telegram_server import TelegramServer


@pytest.fixture(scope="module")
def telegram() -> Iterator[TelegramServer]:
    server = TelegramServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(browser_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory,
          telegram: TelegramServer) -> Iterator[Stack]:
    env = {"TRADEBOT_TELEGRAM_BOT_TOKEN": telegram.token, "TRADEBOT_TELEGRAM_API_URL": telegram.url,
           "TRADEBOT_TELEGRAM_POLL_TIMEOUT_S": "2"}
    work: Path = tmp_path_factory.mktemp("notifications")
    with dashboard_stack(browser_database_url, redis_url, work, env) as s:
        yield s


def test_a_webhook_secret_is_shown_once_and_telegram_links(page: Any, telegram: TelegramServer) -> None:
    register(page, f"notify-{secrets.token_hex(4)}@example.com")
    page.goto("/notifications")
    page.locator("#webhooks-table").wait_for()
    page.fill("#webhook-form input[name=url]", "http://127.0.0.1:9/hooks/browser")
    page.click("#webhook-form button[type=submit]")
    secret = page.locator("#webhook-secret-value").inner_text()
    assert secret.startswith("whsec_") or len(secret) >= 24
    row = page.locator("#webhooks-table tbody tr", has_text="127.0.0.1:9/hooks/browser")
    row.wait_for()
    screenshot(page, "notifications-secret")

    row.get_by_role("button", name="Test").click()
    page.locator("#deliveries-table tbody tr", has_text="ping").wait_for()

    page.reload()
    page.locator("#webhooks-table tbody tr", has_text="127.0.0.1:9/hooks/browser").wait_for()
    assert secret not in page.content()  # shown once: never again after the page is left

    page.click("#telegram-link")
    command = page.locator("#telegram-command").inner_text()
    assert command.startswith("/start ")
    telegram.say(4242, command)
    wait_until(lambda: any(t.startswith("Linked") for t in telegram.texts(4242)), 30, "the chat linked")
    page.click("#telegram-check")
    page.locator("#telegram-status", has_text="Linked to @trader").wait_for()
    page.click("#telegram-unlink")
    page.locator("#telegram-status", has_text="Not linked.").wait_for()
    no_csp_violations(page)
