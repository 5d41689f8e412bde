"""The bots list keeps every row live on one status stream: with 12 running bots (more than the 6
connections a browser opens per host over HTTP/1.1) every row is live, and every row follows its
bot's state changes without a reload or polling."""

from __future__ import annotations

import secrets
import time
from typing import Any

from tests.api_client import Api
from tests.browser.stack import Stack
from tests.browser.test_dashboard import MINUTE_MS, candles, no_csp_violations, register
from tests.processes import wait_until

BOTS = 12


def test_every_row_of_twelve_running_bots_is_live(stack: Stack, page: Any) -> None:
    email = f"fleet-{secrets.token_hex(4)}@example.com"
    register(page, email)
    token = page.evaluate("sessionStorage.getItem('tradebot.token')")
    api = Api(stack.url, token=token, email=email)

    start = (int(time.time() * 1000) // MINUTE_MS - 40) * MINUTE_MS
    stack.sim.push_klines(candles(start, [100.0 - 0.05 * i for i in range(30)]))
    # One running bot per key and market: twelve keys.
    bot_ids = [api.create_bot(api.add_key(*stack.sim.create_account()), ema_period=2, name=f"fleet {i}")
               for i in range(BOTS)]
    for bot_id in bot_ids:
        api.start(bot_id)
    wait_until(lambda: all(api.state(b)["status"] == "running" for b in bot_ids), 60, "every bot to run")

    page.goto("/bots")
    rows = page.locator("#bots-table tbody tr[data-bot-id]")
    rows.nth(BOTS - 1).wait_for()
    assert rows.count() == BOTS
    page.locator("#bots-table .live-dot.on").nth(BOTS - 1).wait_for()
    assert page.locator("#bots-table .live-dot.on").count() == BOTS
    for bot_id in bot_ids:
        page.locator(f'#bots-table tr[data-bot-id="{bot_id}"] .badge.running').wait_for()

    # Every row follows its bot live: stopped through the API, each row shows it in the same document.
    page.evaluate("window.__marker = 'same document'")
    for bot_id in bot_ids:
        api.call("POST", f"/bots/{bot_id}/stop", {"close_position": False}, expect=202)
    for bot_id in bot_ids:
        page.locator(f'#bots-table tr[data-bot-id="{bot_id}"] .badge.stopped').wait_for(timeout=30_000)
    assert page.evaluate("window.__marker") == "same document"
    assert page.locator("#bots-table .live-dot.on").count() == BOTS
    no_csp_violations(page)
