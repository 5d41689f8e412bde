"""Plugin strategies in the dashboard: a replica started with the example plugin (sma_cross) and a
plugin written before ``indicators`` existed (ema_plain) offers both in the picker with their schema's
form; sma_cross's bot page draws its SMA, ema_plain's draws its candles and no indicator."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.stack import Stack, dashboard_stack
from tests.browser.strategy_helpers import check_chart, drawn_indicators, push_history, session_api
from tests.browser.test_dashboard import add_key, no_csp_violations, register
from tests.plugin_helpers import fake_install, plugin_env

PLUGINS = {"sma_cross": "tradebot_sma_cross:SMA_CROSS", "ema_plain": "tests.browser.plain_plugin:EMA_PLAIN"}


@pytest.fixture(scope="module")
def stack(browser_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("plugins")
    site = fake_install(work / "site", PLUGINS)
    with dashboard_stack(browser_database_url, redis_url, work, {"PYTHONPATH": plugin_env(site)["PYTHONPATH"]}) as s:
        push_history(s)
        yield s


def _new_bot(page: Any, name: str, params: dict[str, str]) -> int:
    page.goto("/bots/new")
    page.locator(f"#strategy-picker option[value={name}]").wait_for(state="attached")
    page.select_option("#strategy-picker", name)
    page.locator(f'#strategy-parameters[data-strategy="{name}"]').wait_for()
    page.fill("input[name=name]", f"{name} bot")
    for param, value in params.items():
        page.fill(f'input[name="parameters.{param}"]', value)
    page.click("#bot-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/bots/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def test_plugin_strategies_in_the_picker_and_on_the_chart(stack: Stack, page: Any, tmp_path: Path) -> None:
    register(page, f"plugins-{secrets.token_hex(4)}@example.com")
    add_key(page, stack)
    api = session_api(page, stack)
    page.goto("/bots/new")
    page.locator("#strategy-picker option[value=sma_cross]").wait_for(state="attached")
    titles = page.locator("#strategy-picker option").all_inner_texts()
    assert "SMA cross" in titles and "EMA cross (no indicators)" in titles

    sma_bot = _new_bot(page, "sma_cross", {"sma_period": "9"})
    assert api.call("GET", f"/bots/{sma_bot}", expect=200)["parameters"] == {"sma_period": 9}
    assert page.inner_text('aside dd[data-param="sma_period"]') == "9"
    check_chart(page, api.call("GET", f"/bots/{sma_bot}/candles?limit=300", expect=200))
    assert list(drawn_indicators(page)["lines"]) == ["sma"]

    plain_bot = _new_bot(page, "ema_plain", {"ema_period": "6"})
    page.locator('#bot-stats [data-col="last-close"]', has_text=re.compile(r"\d")).wait_for()  # candles drawn
    chart = api.call("GET", f"/bots/{plain_bot}/candles?limit=300", expect=200)
    assert chart["candles"] and chart["indicators"] == {"panes": [], "lines": []}
    assert drawn_indicators(page) == {"panes": 1, "lines": {}}
    assert page.locator("#chart-legend [data-line]").count() == 0
    no_csp_violations(page)
