"""Strategies in the dashboard, in headless Chromium: a bot of each built-in made through the picker and
its schema-generated form (the API's message at a bad parameter's input, every parameter echoed on the
bot's page), the bot's chart drawing that strategy's indicator series, and a backtest's chart likewise.

What a chart draws is read from the page's DOM: the chart writes back what the charting library holds
(each line's pane and points, each pane's levels) to #price-chart's data-indicators.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

import numpy as np
import pytest

from tests.browser.conftest import screenshot
from tests.browser.stack import Stack
from tests.browser.strategy_helpers import check_chart, drawn_indicators, push_history, session_api
from tests.browser.test_dashboard import MINUTE_MS, add_key, candles, no_csp_violations, register

# name -> (what the test types, a value out of range for the first of them)
BUILTINS: dict[str, tuple[dict[str, str], tuple[str, str]]] = {
    "ema_cross": ({"ema_period": "9"}, ("ema_period", "1001")),
    "ema_crossover": ({"fast_period": "5", "slow_period": "13"}, ("fast_period", "1")),
    "macd_cross": ({"signal_period": "4"}, ("signal_period", "1")),
    "rsi_reversion": ({"rsi_period": "7", "oversold": "25"}, ("rsi_period", "101")),
    "bollinger_reversion": ({"bb_std": "1.5"}, ("bb_std", "10.5")),
}


@pytest.fixture(scope="module")
def history(stack: Stack) -> None:
    push_history(stack)


@pytest.mark.parametrize("name", list(BUILTINS))
def test_a_bot_of_each_builtin_through_the_picker(stack: Stack, page: Any, history: None, name: str) -> None:
    typed, (bad_param, bad_value) = BUILTINS[name]
    register(page, f"picker-{name.replace('_', '-')}-{secrets.token_hex(3)}@example.com")
    add_key(page, stack)
    api = session_api(page, stack)
    schema = next(s for s in api.call("GET", "/strategies", expect=200)["items"] if s["name"] == name)

    page.goto("/bots/new")
    page.locator(f"#strategy-picker option[value={name}]").wait_for(state="attached")
    page.select_option("#strategy-picker", name)
    # The form is the strategy's schema: its parameters, in order, at their defaults.
    page.locator(f'#strategy-parameters[data-strategy="{name}"]').wait_for()
    inputs = page.locator("#strategy-parameters input[data-param]")
    assert [inputs.nth(i).get_attribute("data-param") for i in range(inputs.count())] == list(
        schema["parameters"]["properties"])
    for param, default in schema["defaults"].items():
        assert json.loads(page.input_value(f'input[name="parameters.{param}"]')) == default
        hint = page.locator(f'.field[data-field="parameters.{param}"] .hint').inner_text()
        assert schema["parameters"]["properties"][param]["description"] in hint
    assert page.inner_text("#strategy-description") == schema["description"]

    page.fill("input[name=name]", f"{name} bot")
    for param, value in typed.items():
        page.fill(f'input[name="parameters.{param}"]', value)
    # A bad parameter: the API's own message, at that input.
    page.fill(f'input[name="parameters.{bad_param}"]', bad_value)
    page.click("#bot-form button[type=submit]")
    error = page.locator(f'.field[data-field="parameters.{bad_param}"] .field-error')
    error.wait_for()
    key_id = api.call("GET", "/api-keys", expect=200)["items"][0]["id"]
    refused = api.call("POST", "/bots", {"api_key_id": key_id, "symbol": "BTCUSDT", "timeframe": "1m", "strategy": name,
                                         "parameters": {bad_param: json.loads(bad_value)}}, expect=422)
    [expected] = [e for e in refused["errors"] if e["field"] == f"parameters.{bad_param}"]
    assert error.inner_text() == expected["message"]
    assert page.locator(".field-error").count() == 1
    screenshot(page, f"20-strategy-form-{name}")

    page.fill(f'input[name="parameters.{bad_param}"]', typed.get(bad_param, str(schema["defaults"][bad_param])))
    page.click("#bot-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/bots/\d+$"))
    bot_id = int(page.url.rsplit("/", 1)[1])
    bot = api.call("GET", f"/bots/{bot_id}", expect=200)
    expected_params = {**schema["defaults"], **{k: json.loads(v) for k, v in typed.items()}}
    assert (bot["strategy"], bot["parameters"]) == (name, expected_params)
    # Every parameter echoed on the bot's page, defaults included.
    for param, value in expected_params.items():
        assert json.loads(page.inner_text(f'aside dd[data-param="{param}"]')) == value

    # The chart draws this strategy's indicators, as the API computes them.
    drawn_indicators(page)
    check_chart(page, api.call("GET", f"/bots/{bot_id}/candles?limit=300", expect=200))
    page.wait_for_timeout(300)
    screenshot(page, f"21-bot-chart-{name}")

    # Edit: the form comes back with this strategy and its values.
    page.goto(f"/bots/{bot_id}/edit")
    page.locator(f'#strategy-parameters[data-strategy="{name}"]').wait_for()
    assert page.input_value("#strategy-picker") == name
    for param, value in expected_params.items():
        assert json.loads(page.input_value(f'input[name="parameters.{param}"]')) == value
    no_csp_violations(page)


def test_changing_a_bots_strategy_starts_from_the_new_defaults(stack: Stack, page: Any, history: None) -> None:
    register(page, f"switch-{secrets.token_hex(4)}@example.com")
    add_key(page, stack)
    api = session_api(page, stack)
    page.goto("/bots/new")
    page.locator('#strategy-parameters[data-strategy="ema_cross"]').wait_for()
    page.fill('input[name="parameters.ema_period"]', "7")
    page.click("#bot-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/bots/\d+$"))
    bot_id = int(page.url.rsplit("/", 1)[1])

    page.goto(f"/bots/{bot_id}/edit")
    page.locator('#strategy-parameters[data-strategy="ema_cross"]').wait_for()
    page.select_option("#strategy-picker", "macd_cross")
    page.locator('#strategy-parameters[data-strategy="macd_cross"]').wait_for()
    assert page.input_value('input[name="parameters.slow_period"]') == "26"
    # fast < slow is the contract's rule, named at fast_period.
    page.fill('input[name="parameters.fast_period"]', "30")
    page.click("#bot-form button[type=submit]")
    error = page.locator('.field[data-field="parameters.fast_period"] .field-error')
    error.wait_for()
    assert "less than slow_period" in error.inner_text()
    page.fill('input[name="parameters.fast_period"]', "8")
    page.click("#bot-form button[type=submit]")
    page.wait_for_url(re.compile(rf".*/bots/{bot_id}$"))
    bot = api.call("GET", f"/bots/{bot_id}", expect=200)
    assert (bot["strategy"], bot["parameters"]) == ("macd_cross", {"fast_period": 8, "slow_period": 26,
                                                                   "signal_period": 9})
    drawn = drawn_indicators(page)
    assert list(drawn["lines"]) == ["macd", "signal"] and drawn["panes"] == 2
    assert drawn["lines"]["macd"]["levels"] == [0]
    no_csp_violations(page)


def test_a_backtest_through_the_picker_draws_its_indicators(stack: Stack, page: Any) -> None:
    register(page, f"quant-rsi-{secrets.token_hex(4)}@example.com")
    api = session_api(page, stack)
    start = (int(time.time() * 1000) // MINUTE_MS - 400) * MINUTE_MS
    rng = np.random.default_rng(23)
    closes = [round(float(v), 2) for v in 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))]
    stack.sim.push_klines(candles(start, closes), symbol="ETHUSDT")

    page.goto("/backtests")
    page.locator("#strategy-picker option[value=rsi_reversion]").wait_for(state="attached")
    page.fill("input[name=symbol]", "ETH/USDT:USDT")
    page.fill("input[name=start_time]", time.strftime("%Y-%m-%dT%H:%M", time.gmtime(start / 1000)))
    page.fill("input[name=end_time]", time.strftime("%Y-%m-%dT%H:%M", time.gmtime((start + 300 * MINUTE_MS) / 1000)))
    page.select_option("#strategy-picker", "rsi_reversion")
    page.locator('#strategy-parameters[data-strategy="rsi_reversion"]').wait_for()
    page.fill('input[name="parameters.overbought"]', "50")  # 51-99: the API's message at the field
    page.click("#backtest-form button[type=submit]")
    error = page.locator('.field[data-field="parameters.overbought"] .field-error')
    error.wait_for()
    assert "must be between 51 and 99" in error.inner_text()
    page.fill('input[name="parameters.overbought"]', "65")
    page.fill('input[name="parameters.oversold"]', "35")
    page.click("#backtest-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/backtests/\d+$"))
    backtest_id = int(page.url.rsplit("/", 1)[1])
    page.locator("#backtest-status .badge.done").wait_for(timeout=60_000)
    bt = api.call("GET", f"/backtests/{backtest_id}", expect=200)
    assert bt["strategy"] == "rsi_reversion"
    assert {k: bt["parameters"][k] for k in ("rsi_period", "oversold", "overbought", "exit_level")} == {
        "rsi_period": 14, "oversold": 35, "overbought": 65, "exit_level": 50}

    chart = api.call("GET", f"/backtests/{backtest_id}/candles?limit=1000", expect=200)
    assert len(chart["candles"]) == 300
    check_chart(page, chart)
    drawn = drawn_indicators(page)
    assert drawn["panes"] == 2 and drawn["lines"]["rsi"]["pane"] == 1
    assert drawn["lines"]["rsi"]["levels"] == [35, 50, 65]
    page.wait_for_timeout(300)
    screenshot(page, "22-backtest-chart-rsi")
    no_csp_violations(page)
