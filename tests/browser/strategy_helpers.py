"""What the strategy browser tests share: candle history on the simulator, the page's API session, and
reading what the page's price chart draws (its data-indicators, written from the charting library's
own state) against what the API computes."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from tests.api_client import Api
from tests.browser.stack import Stack
from tests.browser.test_dashboard import MINUTE_MS, candles


def push_history(stack: Stack) -> None:
    """Closed 1m candles up to a few minutes ago: a walk long enough for every indicator to be defined."""
    rng = np.random.default_rng(17)
    closes = [round(float(v), 2) for v in 100 * np.exp(np.cumsum(rng.normal(0, 0.004, 120)))]
    start = (int(time.time() * 1000) // MINUTE_MS - 125) * MINUTE_MS
    stack.sim.push_klines(candles(start, closes))


def session_api(page: Any, stack: Stack) -> Api:
    return Api(stack.url, token=page.evaluate("sessionStorage.getItem('tradebot.token')"))


def drawn_indicators(page: Any) -> dict[str, Any]:
    chart = page.locator("#price-chart[data-indicators]")
    chart.wait_for()
    drawn: dict[str, Any] = json.loads(chart.get_attribute("data-indicators"))
    return drawn


def check_chart(page: Any, chart: dict[str, Any]) -> None:
    """The page draws exactly the API's indicators: every line in its pane, every point, every level."""
    drawn = drawn_indicators(page)
    panes = {p["name"]: (i + 1, p["levels"]) for i, p in enumerate(chart["indicators"]["panes"])}
    assert drawn["panes"] == 1 + len(panes)
    lines = chart["indicators"]["lines"]
    assert list(drawn["lines"]) == [line["name"] for line in lines]
    for i, line in enumerate(lines):
        got = drawn["lines"][line["name"]]
        defined = [v for v in line["values"] if v is not None]
        assert len(defined) > 0, line["name"]
        assert (got["points"], got["last"]) == (len(defined), defined[-1]), line["name"]
        pane, levels = panes.get(line["pane"], (0, []))
        assert got["pane"] == pane, line["name"]
        first_in_pane = next(x for x in lines if x["pane"] == line["pane"])
        assert got["levels"] == (levels if line is first_in_pane else []), line["name"]
        legend = page.locator(f'#chart-legend [data-line="{line["name"]}"]')
        assert line["label"] in legend.inner_text()
        assert legend.locator(f".swatch.line-{i}").count() == 1
