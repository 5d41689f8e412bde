"""The overview page in headless Chromium, read back against the API: its totals equal GET /stats's,
its daily bars and cumulative line are the stats' days, each bot's row its lifetime `stats`, and the open
positions GET /portfolio's, following a new candle's price without a reload."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from tests.api_client import Api
from tests.browser.conftest import screenshot
from tests.browser.stack import Stack
from tests.browser.strategy_helpers import session_api
from tests.browser.test_dashboard import MINUTE_MS, candles, no_csp_violations, register
from tests.processes import wait_until

CENT = 0.0051  # the page shows two decimals


def number(text: str) -> float:
    return float(text.replace(",", "").replace("%", "").replace("+", ""))


def cell(page: Any, selector: str) -> float:
    return number(page.inner_text(selector))


def close_to(shown: float, expected: float, tolerance: float = CENT) -> bool:
    return abs(shown - expected) <= tolerance


def position_row(page: Any, bot_id: int) -> Any:
    return page.locator(f'#positions-table tr[data-bot-id="{bot_id}"]')


def shows_position(page: Any, api: Api, bot_id: int) -> bool:
    """The page's row of this bot's position equals GET /portfolio's, read right after it."""
    row = position_row(page, bot_id)
    if row.count() != 1:
        return False
    [expected] = [p for p in api.call("GET", "/portfolio", expect=200)["positions"] if p["bot_id"] == bot_id]
    try:
        shown = {col: number(row.locator(f'[data-col="{col}"]').inner_text()) for col in ("size", "entry", "last", "unrealized")}
    except ValueError:
        return False
    return (close_to(shown["size"], expected["size"], 1e-8) and close_to(shown["entry"], expected["entry_price"], 1e-4)
            and close_to(shown["last"], expected["last_price"], 1e-4)
            and close_to(shown["unrealized"], expected["unrealized_pnl"]))


def test_overview_numbers_equal_the_api(stack: Stack, page: Any) -> None:
    register(page, f"overview-{secrets.token_hex(4)}@example.com")
    api = session_api(page, stack)
    start = (int(time.time() * 1000) // MINUTE_MS - 60) * MINUTE_MS
    stack.sim.push_klines(candles(start, [100.0 - 0.05 * i for i in range(30)]))
    longs = api.create_bot(None, mode="paper", name="longs only", ema_period=2, allow_short=False,
                           max_daily_loss_pct=100)
    both = api.create_bot(None, mode="paper", name="both ways", ema_period=2, allow_short=True,
                          max_daily_loss_pct=100)
    for bot_id in (longs, both):
        api.start(bot_id)
    wait_until(lambda: all(api.state(b)["status"] == "running" for b in (longs, both)), 60, "both bots to run")

    # Up (both long), then down (longs closes at a loss, both turns short): trades with PnL and fees.
    stack.sim.push_klines(candles(start + 30 * MINUTE_MS, [104.0, 108.0, 96.0, 94.0]))

    def traded() -> bool:
        trades = api.call("GET", "/trades?limit=100", expect=200)["items"]
        done = (sum(t["bot_id"] == longs for t in trades) >= 2 and sum(t["bot_id"] == both for t in trades) >= 3
                and api.state(both)["position_side"] == "short" and not api.state(longs)["in_position"])
        if not done:
            progress.append((len(trades), api.state(longs), api.state(both)))
        return done

    progress: list[Any] = []

    try:
        wait_until(traded, 30, "both bots to trade the swing")
    except AssertionError:
        raise AssertionError(progress[-1]) from None
    stats = api.call("GET", "/stats?group=day", expect=200)
    bots = {b["id"]: b for b in api.call("GET", "/bots", expect=200)["items"]}
    assert stats["totals"]["trades_count"] >= 4

    page.goto("/overview")
    page.locator('#overview-totals [data-col="net-pnl"]').wait_for()
    totals = stats["totals"]
    for col, key in (("net-pnl", "net_pnl"), ("realized-pnl", "realized_pnl"), ("fees", "fees")):
        assert close_to(cell(page, f'#overview-totals [data-col="{col}"]'), totals[key]), col
    assert cell(page, '#overview-totals [data-col="trades"]') == totals["trades_count"]
    assert close_to(cell(page, '#overview-totals [data-col="win-rate"]'), 100 * totals["win_rate"], 0.051)

    # The charts hold the stats' days: the bars each day's net PnL, the line their running sum.
    page.locator("#daily-chart[data-points]").wait_for()
    days = [[int(time.mktime(time.strptime(i["period_start"][:10], "%Y-%m-%d"))) - time.timezone, i["net_pnl"]]
            for i in stats["items"]]
    bars = json.loads(page.get_attribute("#daily-chart", "data-points"))
    assert [b[0] for b in bars] == [d[0] for d in days]
    assert all(abs(b[1] - d[1]) < 1e-9 for b, d in zip(bars, days, strict=True))
    line = json.loads(page.get_attribute("#cumulative-chart", "data-points"))
    assert abs(line[-1][1] - totals["net_pnl"]) < 1e-9

    for bot_id, bot in bots.items():
        row = page.locator(f'#overview-bots tr[data-bot-id="{bot_id}"]')
        assert row.locator(".badge.paper").count() == 1
        figures = bot["stats"]
        assert cell(page, f'#overview-bots tr[data-bot-id="{bot_id}"] [data-col="trades"]') == figures["trades_count"]
        for col, key in (("realized-pnl", "realized_pnl"), ("fees", "fees"), ("net-pnl", "net_pnl"),
                         ("max-drawdown", "max_drawdown")):
            assert close_to(number(row.locator(f'[data-col="{col}"]').inner_text()), figures[key]), (bot_id, col)
        win = row.locator('[data-col="win-rate"]').inner_text()
        assert win == "—" if figures["win_rate"] is None else close_to(number(win), 100 * figures["win_rate"], 0.051)

    # The open position (the short), then the same row following a new close without a reload.
    assert position_row(page, longs).count() == 0
    wait_until(lambda: shows_position(page, api, both), 20, "the page's position to equal the portfolio's")
    assert position_row(page, both).locator(".badge.paper").count() == 1
    assert position_row(page, both).locator(".badge.short").count() == 1
    before = number(position_row(page, both).locator('[data-col="unrealized"]').inner_text())
    page.evaluate("window.__marker = 'same document'")
    stack.sim.push_klines(candles(start + 34 * MINUTE_MS, [90.0]))
    wait_until(lambda: close_to(number(position_row(page, both).locator('[data-col="last"]').inner_text()), 90.0, 1e-4)
               and shows_position(page, api, both), 30, "the position to follow the new close")
    assert number(position_row(page, both).locator('[data-col="unrealized"]').inner_text()) > before
    assert page.evaluate("window.__marker") == "same document"
    portfolio = api.call("GET", "/portfolio", expect=200)
    assert close_to(cell(page, '#portfolio-totals [data-col="unrealized"]'), portfolio["totals"]["unrealized_pnl"])
    screenshot(page, "31-overview")

    # Live only: this user has no live trades and no live positions.
    page.select_option("#overview-filter", "false")
    page.locator('#overview-totals [data-col="trades"]', has_text="0").wait_for()
    assert api.call("GET", "/stats?paper=false", expect=200)["totals"]["trades_count"] == 0
    page.locator("#positions-table .empty").wait_for()
    no_csp_violations(page)
