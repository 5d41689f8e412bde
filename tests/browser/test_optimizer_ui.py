"""The optimiser in headless Chromium: a small grid over ema_crossover's two periods made through the
form (a bad range's message at its input), its progress to done, the trials table and the heatmap equal
to GET /optimizations/{id}, and a trial's "backtest this" and "create a paper bot" giving the same
parameters (the backtest over the train window the same return as the trial)."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import numpy as np

from tests.browser.conftest import screenshot
from tests.browser.stack import Stack
from tests.browser.strategy_helpers import session_api
from tests.browser.test_dashboard import MINUTE_MS, candles, no_csp_violations, register

SIZING = ("order_size_pct", "leverage", "allow_short", "stop_loss_pct", "take_profit_pct")


def number(text: str) -> float:
    return float(text.replace(",", "").replace("%", "").replace("+", ""))


def fill_range(page: Any, name: str, low: str, high: str, step: str) -> None:
    page.check(f'input[name="space.{name}"]')
    for part, value in (("min", low), ("max", high), ("step", step)):
        page.fill(f'input[name="space.{name}.{part}"]', value)


def test_a_grid_through_the_ui_matches_the_api(stack: Stack, page: Any) -> None:
    register(page, f"optimiser-{secrets.token_hex(4)}@example.com")
    api = session_api(page, stack)
    rng = np.random.default_rng(22)
    closes = [round(float(v), 2) for v in 100 * np.exp(np.cumsum(rng.normal(0, 0.006, 240)))]
    start = (int(time.time() * 1000) // MINUTE_MS - 300) * MINUTE_MS
    stack.sim.push_klines(candles(start, closes))

    page.goto("/optimizations")
    page.locator("#strategy-picker option[value=ema_crossover]").wait_for(state="attached")
    page.fill("input[name=symbol]", "BTC/USDT:USDT")
    page.fill("input[name=start_time]", time.strftime("%Y-%m-%dT%H:%M", time.gmtime(start / 1000)))
    page.fill("input[name=end_time]", time.strftime("%Y-%m-%dT%H:%M", time.gmtime((start + 240 * MINUTE_MS) / 1000)))
    page.select_option("select[name=objective]", "return_pct")
    page.select_option("#strategy-picker", "ema_crossover")
    page.locator('#optimization-space[data-strategy="ema_crossover"]').wait_for()
    fill_range(page, "fast_period", "3", "5", "1")
    fill_range(page, "slow_period", "20", "10", "5")  # max below min: the API's message at that input
    page.click("#optimization-form button[type=submit]")
    error = page.locator('.field[data-field="space.slow_period.max"] .field-error')
    error.wait_for()
    assert "at least min" in error.inner_text()
    page.fill('input[name="space.slow_period.min"]', "10")
    page.fill('input[name="space.slow_period.max"]', "20")
    screenshot(page, "32-optimization-form")
    page.click("#optimization-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/optimizations/\d+$"))
    opt_id = int(page.url.rsplit("/", 1)[1])

    page.locator("#optimization-status .badge.done").wait_for(timeout=120_000)
    opt = api.call("GET", f"/optimizations/{opt_id}", expect=200)
    assert opt["status"] == "done" and (opt["method"], opt["objective"]) == ("grid", "return_pct")
    assert opt["space"] == {"fast_period": {"min": 3, "max": 5, "step": 1}, "slow_period": {"min": 10, "max": 20, "step": 5}}
    trials = opt["trials"]
    assert len(trials) == 9 == opt["progress"]["total"]
    progress = page.locator("#optimization-progress-text")
    progress.filter(has_text="9 / 9 trials").wait_for()

    # The table: the API's ranking, row by row.
    rows = page.locator("#trials-table tbody tr[data-trial]")
    rows.nth(len(trials) - 1).wait_for()
    assert rows.count() == len(trials)
    for i, trial in enumerate(trials):
        row = rows.nth(i)
        assert int(row.get_attribute("data-trial")) == trial["trial"]
        for name in ("fast_period", "slow_period"):
            assert row.locator(f'[data-param="{name}"]').inner_text() == str(trial["parameters"][name])
        assert abs(number(row.locator('[data-col="score"]').inner_text()) - trial["score"]) <= 0.00005
        assert abs(number(row.locator('[data-col="return"]').inner_text()) - trial["train"]["return_pct"]) <= 0.0051
        assert number(row.locator('[data-col="trades"]').inner_text()) == trial["train"]["trades_count"]
        assert abs(number(row.locator('[data-col="test-return"]').inner_text()) - trial["test"]["return_pct"]) <= 0.0051

    # The heatmap: one cell per (fast, slow) pair, each the best score of that pair.
    cells = page.locator("#heatmap td[data-score]")
    assert cells.count() == 9
    for i in range(cells.count()):
        c = cells.nth(i)
        x, y = int(c.get_attribute("data-x")), int(c.get_attribute("data-y"))
        [expected] = [t for t in trials if (t["parameters"]["fast_period"], t["parameters"]["slow_period"]) == (x, y)]
        assert float(c.get_attribute("data-score")) == expected["score"]
        assert int(c.get_attribute("data-trial")) == expected["trial"]
    best = opt["best"]
    assert best["trial"] == trials[0]["trial"]
    page.locator(f'#heatmap td[data-trial="{best["trial"]}"].heat-9').wait_for()
    assert page.get_attribute("#selected-trial", "data-trial") == str(best["trial"])
    screenshot(page, "33-optimization-result")
    no_csp_violations(page)

    # A paper bot with the best trial's parameters.
    page.click("#selected-trial [data-action=paper-bot]")
    page.wait_for_url(re.compile(r".*/bots/\d+$"))
    bot = api.call("GET", f"/bots/{int(page.url.rsplit('/', 1)[1])}", expect=200)
    page.locator("#bot-mode .badge.paper").wait_for()
    assert (bot["mode"], bot["strategy"], bot["symbol"], bot["timeframe"]) == ("paper", "ema_crossover", "BTC/USDT:USDT", "1m")
    assert bot["parameters"] == {k: v for k, v in best["parameters"].items() if k not in SIZING}
    assert all(bot[k] == v for k, v in best["parameters"].items() if k in SIZING)
    assert bot["paper_balance"] == opt["initial_balance"]

    # "Backtest this" over the train window: the trial's own figures.
    page.goto(f"/optimizations/{opt_id}")
    page.click("#selected-trial [data-action=backtest-train]")
    page.wait_for_url(re.compile(r".*/backtests/\d+$"))
    page.locator("#backtest-status .badge.done").wait_for(timeout=60_000)
    backtest = api.call("GET", f"/backtests/{int(page.url.rsplit('/', 1)[1])}", expect=200)
    assert {k: v for k, v in backtest["parameters"].items() if v is not None} == best["parameters"]
    assert backtest["return_pct"] == best["train"]["return_pct"]
    assert backtest["trades_count"] == best["train"]["trades_count"]
    no_csp_violations(page)
