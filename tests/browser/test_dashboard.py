"""The dashboard end to end in headless Chromium: a trader registers, adds a simulator key, creates and
starts a bot, watches a trade arrive live, stops the bot, and runs a backtest; plus XSS and reset checks."""

from __future__ import annotations

import re
import secrets
import time
from email import policy
from email.parser import BytesParser
from typing import Any

from tests.browser.conftest import screenshot
from tests.browser.stack import Stack
from tests.processes import http_get

MINUTE_MS = 60_000
email_parser = BytesParser(policy=policy.default)
PASSWORD = "correct horse battery staple"
EMA_PERIOD = 'input[name="parameters.ema_period"]'  # the strategy form's input (ema_cross, the default)


def candles(start_ms: int, closes: list[float]) -> list[list[float]]:
    rows, prev = [], closes[0]
    for i, close in enumerate(closes):
        rows.append([start_ms + i * MINUTE_MS, prev, max(prev, close) + 0.5, min(prev, close) - 0.5, close, 10.0])
        prev = close
    return rows


def register(page: Any, email: str, picture: str | None = None) -> None:
    page.goto("/register")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    if picture:
        screenshot(page, picture)
    page.click("button[type=submit]")
    page.wait_for_url("**/keys")


def add_key(page: Any, stack: Stack, label: str = "Simulator") -> None:
    api_key, secret = stack.sim.create_account()
    page.goto("/keys")
    page.fill("input[name=label]", label)
    page.fill("input[name=api_key]", api_key)
    page.fill("input[name=secret_key]", secret)
    page.click("#key-form button[type=submit]")
    page.locator("#keys-table tbody tr", has_text=label).wait_for()
    assert page.input_value("input[name=secret_key]") == ""  # the secret left the page with the form


def no_csp_violations(page: Any) -> None:
    assert page.problems.csp_violations() == []
    assert page.problems.page_errors == []


def test_pages_carry_a_strict_content_security_policy(stack: Stack) -> None:
    import urllib.request

    with urllib.request.urlopen(stack.url + "/login", timeout=5) as r:
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert "<script>" not in r.read().decode()  # no inline script in the shell
    assert http_get(stack.url + "/static/vendor/lightweight-charts.standalone.production.mjs")[0] == 200


ALL_TIMEFRAMES = "1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M".split()


def test_trader_journey(stack: Stack, page: Any) -> None:
    email = f"trader-{secrets.token_hex(4)}@example.com"
    page.goto("/")
    page.wait_for_url("**/login?next=%2F")
    screenshot(page, "00-login")

    register(page, email, picture="01-register")
    add_key(page, stack)
    row = page.locator("#keys-table tbody tr", has_text="Simulator")
    row.get_by_role("button", name="Validate").click()
    row.locator(".badge.valid").wait_for()
    screenshot(page, "02-keys")

    # History before the bot starts: a slow decline, closes under the EMA(5), so the bot stays flat.
    start = (int(time.time() * 1000) // MINUTE_MS - 40) * MINUTE_MS
    stack.sim.push_klines(candles(start, [100.0 - 0.05 * i for i in range(30)]))

    page.goto("/bots/new")
    page.locator("select[name=timeframe] option[value='1M']").wait_for(state="attached")
    assert page.locator("select[name=timeframe] option").all_inner_texts() == ALL_TIMEFRAMES
    assert page.locator("select[name=timeframe]").input_value() == "1m"
    page.fill("input[name=name]", "BTC momentum")
    page.fill(EMA_PERIOD, "1")  # out of range: the API's own message shows at the field
    page.click("#bot-form button[type=submit]")
    error = page.locator('.field[data-field="parameters.ema_period"] .field-error')
    error.wait_for()
    assert "must be between 2 and 1000" in error.inner_text()
    screenshot(page, "03-bot-form-errors")
    page.fill(EMA_PERIOD, "5")
    page.fill("input[name=order_size_pct]", "50")
    # A live bot (the form's default is paper): creating it is confirmed, naming the key that will trade.
    page.select_option("select[name=mode]", "live")
    confirmations: list[str] = []

    def accept(dialog: Any) -> None:
        confirmations.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.click("#bot-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/bots/\d+$"))
    assert len(confirmations) == 1 and "Simulator" in confirmations[0]
    bot_id = int(page.url.rsplit("/", 1)[1])

    page.click("#bot-actions [data-action=start]")
    page.locator("#bot-status .badge.running").wait_for(timeout=30_000)
    page.locator("#trades-table .empty").wait_for()
    assert page.locator("#bot-mode .badge.paper").count() == 0

    # A cross up: the bot buys; the trade must appear without a reload.
    page.evaluate("window.__marker = 'same document'")
    stack.sim.push_klines(candles(start + 30 * MINUTE_MS, [104.0, 108.0]))
    page.locator("#trades-table tbody tr[data-trade-id]").first.wait_for(timeout=20_000)
    assert page.evaluate("window.__marker") == "same document"
    first = page.locator("#trades-table tbody tr[data-trade-id]").first.inner_text()
    assert "BUY" in first and "long entry" in first
    page.locator('#bot-stats [data-col="position"] .badge.long').wait_for()
    entry = float(page.inner_text('#bot-stats [data-col="entry"]').replace(",", ""))
    assert entry >= 104  # filled on the pushed candles, not on the history
    # The chart followed: its newest candle is the pushed 108 (the stat reads the chart's data).
    # (Polled by locators: the page's CSP forbids the eval that wait_for_function needs.)
    page.locator('#bot-stats [data-col="last-close"]', has_text=re.compile(r"^108\.0000$")).wait_for()
    page.locator("#price-chart canvas").first.wait_for()
    page.wait_for_timeout(300)  # one animation frame or so for the markers before the picture
    screenshot(page, "04-bot-running")

    page.goto("/bots")
    row = page.locator(f'#bots-table tr[data-bot-id="{bot_id}"]')
    row.locator(".badge.running").wait_for()
    row.locator(".badge.long").wait_for()
    assert row.locator('[data-col="trades"]').inner_text() == "1"
    screenshot(page, "05-bots")

    row.locator("[data-action=stop-close]").click()
    row.locator(".badge.stopped").wait_for(timeout=30_000)
    assert "flat" in row.locator('[data-col="position"]').inner_text()
    no_csp_violations(page)

    # The closing fill is on the bot's page as a manual exit.
    page.goto(f"/bots/{bot_id}")
    page.locator("#trades-table tbody tr", has_text="long manual exit").wait_for()
    page.locator("#bot-status .badge.stopped").wait_for()
    page.locator('#bot-stats [data-col="last-close"]', has_text=re.compile(r"\d")).wait_for()  # candles drawn
    screenshot(page, "13-bot-stopped")


def test_backtest_shows_equity_and_drawdown(stack: Stack, page: Any) -> None:
    status, body = http_get(stack.url + "/api/openapi.json")
    assert status == 200 and b'"/api/v1/backtests"' in body, "the API documents no /api/v1/backtests"
    register(page, f"quant-{secrets.token_hex(4)}@example.com")
    start = (int(time.time() * 1000) // MINUTE_MS - 300) * MINUTE_MS
    closes = [100 + 5 * ((i // 10) % 2) + (i % 10) * 0.3 for i in range(200)]
    stack.sim.push_klines(candles(start, closes), symbol="ETHUSDT")
    page.goto("/backtests")
    page.locator("select[name=timeframe] option[value='1M']").wait_for(state="attached")
    assert page.locator("select[name=timeframe] option").all_inner_texts() == ALL_TIMEFRAMES
    page.fill("input[name=symbol]", "ETH/USDT:USDT")
    page.fill("input[name=start_time]", time.strftime("%Y-%m-%dT%H:%M", time.gmtime(start / 1000)))
    page.fill("input[name=end_time]", time.strftime("%Y-%m-%dT%H:%M", time.gmtime((start + 199 * MINUTE_MS) / 1000)))
    page.fill(EMA_PERIOD, "1")
    page.click("#backtest-form button[type=submit]")
    page.locator('.field[data-field="parameters.ema_period"] .field-error').wait_for()
    page.fill(EMA_PERIOD, "5")
    screenshot(page, "06-backtest-form")
    page.click("#backtest-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/backtests/\d+$"))
    page.locator("#backtest-status .badge.done").wait_for(timeout=60_000)
    page.locator("#equity-chart canvas").first.wait_for()
    page.locator("#drawdown-chart canvas").first.wait_for()
    page.wait_for_timeout(500)
    screenshot(page, "07-backtest-result")
    backtest_id = page.url.rsplit("/", 1)[1]
    no_csp_violations(page)

    page.goto("/backtests")
    row = page.locator(f'#backtests-table tr[data-backtest-id="{backtest_id}"]')
    row.locator(".badge.done").wait_for()
    assert "ETH/USDT:USDT" in row.inner_text()
    screenshot(page, "12-backtests")


def test_malicious_bot_name_renders_as_text(stack: Stack, page: Any) -> None:
    register(page, f"mallory-{secrets.token_hex(4)}@example.com")
    add_key(page, stack, label="<b>key</b>")
    payload = "<img src=x onerror=window.__pwned=1>"
    page.goto("/bots/new")
    page.fill("input[name=name]", payload)
    page.fill(EMA_PERIOD, "5")
    page.click("#bot-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/bots/\d+$"))
    assert page.inner_text("#bot-title") == payload
    page.goto("/bots")
    link = page.locator("#bots-table a.bot-name").first
    assert link.inner_text() == payload
    assert page.locator("#bots-table img").count() == 0
    assert page.locator("#keys-table b, #bots-table b").count() == 0
    assert page.evaluate("window.__pwned") is None
    screenshot(page, "08-xss-as-text")

    # Editing shows the API's messages at the fields too, and saves only what changed.
    link.click()
    page.click("text=Edit")
    page.wait_for_url(re.compile(r".*/bots/\d+/edit$"))
    page.fill("input[name=order_size_pct]", "250")
    page.fill("input[name=stop_loss_pct]", "abc")
    page.click("#bot-form button[type=submit]")
    page.locator('.field[data-field="order_size_pct"] .field-error').wait_for()
    page.locator('.field[data-field="stop_loss_pct"] .field-error').wait_for()
    screenshot(page, "10-bot-edit-errors")
    page.fill("input[name=order_size_pct]", "25")
    page.fill("input[name=stop_loss_pct]", "2.5")
    page.click("#bot-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/bots/\d+$"))
    settings = page.inner_text("aside")
    assert "25.00%" in settings and "2.50%" in settings
    assert page.inner_text("#bot-title") == payload
    assert page.title() == f"{payload} · tradebot"
    no_csp_violations(page)

    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#bot-actions ~ [data-action=delete]")
    page.wait_for_url("**/bots")
    page.locator("#bots-table .empty").wait_for()


def test_keys_can_be_deleted(stack: Stack, page: Any) -> None:
    register(page, f"tidy-{secrets.token_hex(4)}@example.com")
    add_key(page, stack, label="Old key")
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("#keys-table tbody tr", has_text="Old key").get_by_role("button", name="Delete").click()
    page.locator("#keys-table .empty").wait_for()


def test_password_reset_link_lands_on_the_reset_page(stack: Stack, page: Any) -> None:
    email = f"forgetful-{secrets.token_hex(4)}@example.com"
    register(page, email)
    page.goto("/forgot-password")
    page.fill("input[name=email]", email)
    page.click("button[type=submit]")
    page.locator(".form-ok").wait_for()
    screenshot(page, "09-forgot-password")

    def mailed_link() -> str | None:
        for eml in stack.outbox.glob("*.eml"):
            with eml.open("rb") as f:
                message = email_parser.parse(f)
            if email not in str(message["To"]):
                continue
            for part in message.walk():
                if part.get_content_type() == "text/plain":
                    m = re.search(r"https?://\S+/reset-password\?token=[\w.~-]+", part.get_content())
                    if m:
                        return m.group(0)
        return None

    deadline = time.monotonic() + 10
    while (link := mailed_link()) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert link is not None, "no reset mail in the outbox"
    path = link[link.index("/reset-password"):]
    page.goto(path)
    page.locator("input[name=new_password]").wait_for()
    assert page.url.endswith("/reset-password")  # the token is read, then dropped from the address bar
    page.fill("input[name=new_password]", "a brand new password")
    screenshot(page, "11-reset-password")
    page.click("button[type=submit]")
    page.locator(".form-ok").wait_for()
    page.goto("/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "a brand new password")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))
    page.locator("#bots-table").wait_for()
    no_csp_violations(page)
