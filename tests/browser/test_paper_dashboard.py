"""Paper trading in the dashboard, in headless Chromium: a new bot is paper by default and needs no key,
its PAPER badge shows on the bot, its trades, its orders and the bots list, its paper balance and equity
read back equal to the state API's, its drift report on its page equals GET /bots/{id}/drift, and going live is an edit of the stopped bot whose confirmation
names the key that will trade (dismissed: nothing changes)."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from tests.browser.conftest import screenshot
from tests.browser.stack import Stack
from tests.browser.strategy_helpers import session_api
from tests.browser.test_dashboard import EMA_PERIOD, MINUTE_MS, add_key, candles, no_csp_violations, register
from tests.processes import wait_until


def shown_number(page: Any, selector: str) -> float:
    return float(page.inner_text(selector).replace(",", "").replace("%", ""))


def test_paper_bot_through_the_form_and_going_live(stack: Stack, page: Any) -> None:
    register(page, f"paper-{secrets.token_hex(4)}@example.com")
    api = session_api(page, stack)
    start = (int(time.time() * 1000) // MINUTE_MS - 40) * MINUTE_MS
    stack.sim.push_klines(candles(start, [100.0 - 0.05 * i for i in range(30)]))

    # Paper by default, and no key needed: this user has none.
    page.goto("/bots/new")
    page.locator("#paper-settings").wait_for()
    assert page.input_value("select[name=mode]") == "paper"
    assert page.input_value("select[name=api_key_id]") == ""
    assert page.input_value("input[name=paper_balance]") == "10000"
    page.fill("input[name=name]", "Paper momentum")
    page.fill(EMA_PERIOD, "5")
    page.fill("input[name=order_size_pct]", "50")
    page.fill("input[name=paper_balance]", "5000")
    page.click("#bot-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/bots/\d+$"))
    bot_id = int(page.url.rsplit("/", 1)[1])
    bot = api.call("GET", f"/bots/{bot_id}", expect=200)
    assert (bot["mode"], bot["api_key_id"], bot["paper_balance"]) == ("paper", None, 5000)
    page.locator("#bot-mode .badge.paper", has_text="PAPER").wait_for()
    assert shown_number(page, '#bot-stats [data-col="paper-balance"]') == 5000

    page.click("#bot-actions [data-action=start]")
    page.locator("#bot-status .badge.running").wait_for(timeout=30_000)
    stack.sim.push_klines(candles(start + 30 * MINUTE_MS, [104.0, 108.0]))
    trade_row = page.locator("#trades-table tbody tr[data-trade-id]").first
    trade_row.wait_for(timeout=20_000)
    assert trade_row.locator(".badge.paper").count() == 1
    assert "BUY" in trade_row.inner_text()
    page.locator("#orders-table tbody tr .badge.paper").first.wait_for()

    # The virtual account as the state reports it, read back from the page.
    def page_matches_state() -> bool:
        state = api.state(bot_id)
        if not state["in_position"]:
            return False
        try:
            shown = (shown_number(page, '#bot-stats [data-col="paper-balance"]'),
                     shown_number(page, '#bot-stats [data-col="equity"]'))
        except ValueError:
            return False
        return bool(abs(shown[0] - state["paper_balance"]) < 0.006 and abs(shown[1] - state["equity"]) < 0.006)

    wait_until(page_matches_state, 20, "the page's paper balance and equity to equal the state's")
    assert api.state(bot_id)["paper_balance"] < 5000  # the fee came out of it
    screenshot(page, "30-paper-bot")

    page.goto("/bots")
    row = page.locator(f'#bots-table tr[data-bot-id="{bot_id}"]')
    row.locator(".badge.paper", has_text="PAPER").wait_for()
    wait_until(lambda: abs(float(row.locator('[data-col="equity"]').inner_text().replace(",", ""))
                           - api.state(bot_id)["equity"]) < 0.006, 20, "the list's equity to be the state's")
    row.locator("[data-action=stop-close]").click()
    row.locator(".badge.stopped").wait_for(timeout=30_000)

    # The drift report on the bot's page: none stored yet, then a fresh one equal to the API's.
    page.goto(f"/bots/{bot_id}")
    page.locator("#drift-report", has_text="No nightly report yet.").wait_for()
    page.click("[data-action=drift]")
    page.locator('#drift-summary [data-col="matched"]').wait_for(timeout=60_000)
    report = api.call("GET", f"/bots/{bot_id}/drift", expect=200)
    summary = report["summary"]
    assert summary["actual_fills"] == 2  # the entry and the closing fill
    for col, key in (("matched", "matched"), ("missing", "missing_signals"), ("extra", "extra_signals")):
        assert shown_number(page, f'#drift-summary [data-col="{col}"]') == summary[key], col
    assert abs(shown_number(page, '#drift-summary [data-col="pnl-gap"]') - summary["pnl_gap"]) < 0.006
    assert page.locator("#drift-table tbody tr[data-status]").count() == len(report["trades"])
    screenshot(page, "34-drift")

    # Going live: an edit of the stopped bot, confirmed with the key's name.
    add_key(page, stack, label="Real money")
    key = api.call("GET", "/api-keys", expect=200)["items"][0]
    page.goto(f"/bots/{bot_id}")
    page.click("[data-action=go-live]")
    page.wait_for_url(re.compile(rf".*/bots/{bot_id}/edit\?mode=live$"))
    page.locator("#bot-form").wait_for()
    assert page.input_value("select[name=mode]") == "live"
    assert page.input_value("select[name=api_key_id]") == str(key["id"])
    assert page.locator("#paper-settings").is_hidden()

    messages: list[str] = []
    answers = [False, True]

    def answer(dialog: Any) -> None:
        messages.append(dialog.message)
        if answers.pop(0):
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", answer)
    page.click("#bot-form button[type=submit]")
    wait_until(lambda: len(messages) == 1, 10, "the go-live confirmation")
    assert "Real money" in messages[0] and f"••••{key['api_key_hint']}" in messages[0]
    assert "real orders" in messages[0]
    assert api.call("GET", f"/bots/{bot_id}", expect=200)["mode"] == "paper"  # dismissed: nothing sent
    assert page.url.endswith("/edit?mode=live")

    page.click("#bot-form button[type=submit]")
    page.wait_for_url(re.compile(rf".*/bots/{bot_id}$"))
    assert len(messages) == 2 and "Real money" in messages[1]
    live = api.call("GET", f"/bots/{bot_id}", expect=200)
    assert (live["mode"], live["api_key_id"]) == ("live", key["id"])
    page.locator("#bot-title").wait_for()
    assert page.locator("#bot-mode .badge.paper").count() == 0
    assert page.locator('#bot-stats [data-col="paper-balance"]').count() == 0
    assert page.locator("[data-action=go-live]").count() == 0
    # Its paper trades stay in the history, still marked.
    page.locator("#trades-table tbody tr[data-trade-id] .badge.paper").first.wait_for()
    no_csp_violations(page)
