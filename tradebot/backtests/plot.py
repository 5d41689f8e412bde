"""``tradebot backtest … --plot FILE.html``: one self-contained HTML file of a backtest, the way
backtesting.py's ``plot()`` draws one: candles with the strategy's indicators and the entries and
exits, then the equity curve and its drawdown, on linked time axes.

Self-contained: the vendored chart library (TradingView Lightweight Charts, Apache-2.0, see
tradebot/http/static/vendor/README.md) is inlined, and so is the data, as JSON in a
``<script type="application/json" id="backtest-data">`` tag; the page loads nothing from any
network and works from a file:// URL. The library is an ES module: its closing ``export{…}`` is
turned into a local object, so page and library are one inline module script.

Indicators: a strategy that offers ``indicators(candles, params)`` gets its lines drawn (one value
per candle, NaN while undefined): over the candles, or in panes of their own with their fixed
levels (an oscillator's scale is not the price's); one that does not gets none.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson

from tradebot.strategies import BacktestResult, Candles, get_strategy
from tradebot.strategies.render import result_to_dict, trades_to_records

__all__ = ["plot_data", "render_html", "write_plot"]

# The dashboard's own copy (read as a file: nothing of the HTTP package is imported).
_LIBRARY: Final = Path(__file__).resolve().parents[1] / "http" / "static" / "vendor" / (
    "lightweight-charts.standalone.production.mjs"
)
_EXPORT: Final = re.compile(r"export\s*\{([^}]*)\}\s*;?\s*$")


@cache
def _library() -> str:
    """The vendored library with its ``export{a as B, …}`` made ``const LightweightCharts = {B: a, …}``."""
    source = _LIBRARY.read_text(encoding="utf-8").rstrip()
    match = _EXPORT.search(source)
    if match is None:
        raise RuntimeError(f"{_LIBRARY.name}: no closing export statement to inline")
    pairs = []
    for item in match.group(1).split(","):
        local, _, exported = item.strip().partition(" as ")
        pairs.append(f"{(exported or local).strip()}:{local.strip()}")
    return source[: match.start()] + "const LightweightCharts={" + ",".join(pairs) + "};"


def _finite(values: Any) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).tolist()]


PRICE_PANE: Final = "price"  # the pane of the candles (a strategy's lines name it or a pane of their own)


def _indicators(candles: Candles, strategy: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The strategy's indicator lines and extra panes, as ``{"lines": [{name, label, pane, values}],
    "panes": [{name, label, levels}]}``. Read by shape, not by type (the optional method may return
    an object with ``lines`` and ``panes``, or a plain mapping of name to values for the price pane),
    so a plugin of either kind, or one without the method, plots."""
    impl = get_strategy(strategy)
    offer = getattr(impl, "indicators", None)
    lines: list[dict[str, Any]] = []
    panes: list[dict[str, Any]] = []
    if callable(offer):
        found = offer(candles, impl.parse_params(params))
        if isinstance(found, Mapping):
            raw_lines = [(str(name), str(name), values, PRICE_PANE) for name, values in found.items()]
        else:
            raw_lines = [(str(line.name), str(getattr(line, "label", line.name)), line.values,
                          str(getattr(line, "pane", PRICE_PANE))) for line in getattr(found, "lines", ())]
            panes = [{"name": str(pane.name), "label": str(getattr(pane, "label", pane.name)),
                      "levels": [float(v) for v in getattr(pane, "levels", ())]}
                     for pane in getattr(found, "panes", ())]
        known = {PRICE_PANE, *(pane["name"] for pane in panes)}
        for name, label, values, pane in raw_lines:
            arr = np.asarray(values, dtype=np.float64)
            if arr.shape == (len(candles),) and pane in known:  # one value per candle, on a pane drawn
                lines.append({"name": name, "label": label, "pane": pane, "values": _finite(arr)})
    return {"lines": lines, "panes": panes}


def plot_data(
    candles: Candles, result: BacktestResult, *, strategy: str, params: Mapping[str, Any], symbol: str | None
) -> dict[str, Any]:
    """Everything the page draws, JSON-safe: times in ms, one equity and drawdown value per candle."""
    equity = result.equity
    peak = np.maximum.accumulate(equity) if equity.size else equity
    drawdown = np.where(peak > 0, (equity / np.where(peak > 0, peak, 1.0) - 1.0) * 100.0, 0.0)
    summary = result_to_dict(result, max_points=2, include_trades=False)
    summary.pop("equity_curve")
    return {
        "symbol": symbol,
        "summary": summary,
        "ts": candles.ts.tolist(),
        "open": _finite(candles.open),
        "high": _finite(candles.high),
        "low": _finite(candles.low),
        "close": _finite(candles.close),
        "indicators": _indicators(candles, strategy, params),
        "trades": trades_to_records(result),
        "equity": _finite(equity),
        "drawdown_pct": _finite(drawdown),
    }


def _json_for_html(data: Mapping[str, Any]) -> str:
    # "</" would end the script element early; "\u003c" is the same string to JSON.
    return orjson.dumps(data).decode().replace("<", "\\u003c")


def render_html(data: Mapping[str, Any]) -> str:
    s = data["summary"]
    title = f"{data['symbol'] or 'backtest'} {s['timeframe']} · {s['strategy']}"
    return _PAGE.replace("{{title}}", _escape(title)).replace("{{data}}", _json_for_html(data)).replace(
        "{{library}}", _library()
    )


def write_plot(
    path: str | Path,
    candles: Candles,
    result: BacktestResult,
    *,
    strategy: str,
    params: Mapping[str, Any],
    symbol: str | None,
) -> None:
    """Writes the page to ``path`` (whole or not at all: a temporary file renamed into place).
    Raises OSError."""
    target = Path(path)
    page = render_html(plot_data(candles, result, strategy=strategy, params=params, symbol=symbol))
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}}</title>
<style>
  body { margin: 0; background: #161a1e; color: #eaecef; font: 13px/1.4 system-ui, sans-serif; }
  header { padding: 10px 16px; }
  h1 { font-size: 16px; margin: 0 0 6px; }
  dl { display: flex; flex-wrap: wrap; gap: 4px 18px; margin: 0; }
  dt { color: #848e9c; } dd { margin: 0 0 0 4px; }
  .pair { display: flex; }
  .chart { position: relative; margin: 0 8px; }
  .chart h2 { position: absolute; z-index: 2; left: 8px; top: 2px; margin: 0; font-size: 11px; color: #848e9c; font-weight: normal; }
  #price { height: 55vh; } #equity { height: 20vh; } #drawdown { height: 15vh; } .pane { height: 15vh; }
  footer { padding: 6px 16px; color: #848e9c; font-size: 11px; }
  footer a { color: #848e9c; }
</style>
</head>
<body>
<header><h1>{{title}}</h1><dl id="summary"></dl></header>
<div class="chart" id="price"><h2>price</h2></div>
<div id="panes"></div>
<div class="chart" id="equity"><h2>equity</h2></div>
<div class="chart" id="drawdown"><h2>drawdown %</h2></div>
<footer>Charts by <a href="https://www.tradingview.com/">TradingView</a> Lightweight Charts™ (Apache-2.0), inlined.</footer>
<script type="application/json" id="backtest-data">{{data}}</script>
<script type="module">
{{library}}
{ // A block of its own: the library's minified top-level names share this module's scope.
const { createChart, CandlestickSeries, LineSeries, AreaSeries, ColorType, createSeriesMarkers } = LightweightCharts;
const data = JSON.parse(document.getElementById("backtest-data").textContent);
const C = { up: "#0ecb81", down: "#f6465d", equity: "#3b82f6", dd: "#f6465d", text: "#848e9c", grid: "#1e2329", bg: "#161a1e" };
const LINES = ["#f0b90b", "#a78bfa", "#22d3ee", "#f472b6", "#84cc16", "#fb923c"];
const sec = (ms) => Math.floor(ms / 1000);
const s = data.summary;
const shown = [["candles", s.candles_count], ["trades", s.trades_count], ["return", s.return_pct.toFixed(2) + " %"],
  ["final balance", s.final_balance.toFixed(2)], ["win rate", (s.win_rate * 100).toFixed(1) + " %"],
  ["max drawdown", s.max_drawdown_pct.toFixed(2) + " %"], ["sharpe", s.sharpe.toFixed(2)],
  ["fees paid", s.fees_paid.toFixed(2)], ["parameters", JSON.stringify(s.parameters)]];
const dl = document.getElementById("summary");
for (const [k, v] of shown) {
  const pair = document.createElement("div"); pair.className = "pair";
  const dt = document.createElement("dt"); dt.textContent = k;
  const dd = document.createElement("dd"); dd.textContent = String(v);
  pair.append(dt, dd); dl.append(pair);
}
function chart(id) {
  return createChart(document.getElementById(id), {
    autoSize: true,
    layout: { background: { type: ColorType.Solid, color: C.bg }, textColor: C.text, fontSize: 11, attributionLogo: false },
    grid: { vertLines: { color: C.grid }, horzLines: { color: C.grid } },
    timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#2b3139" },
    rightPriceScale: { borderColor: "#2b3139", minimumWidth: 80 },
  });
}
// Every chart gets a point per candle (an undefined value is the library's "whitespace" point), so
// the charts' logical ranges are the same candles and the time axes can be linked through them.
const series = (values) => data.ts.map((t, i) => values[i] === null ? { time: sec(t) } : { time: sec(t), value: values[i] });
const price = chart("price");
const candles = price.addSeries(CandlestickSeries, { upColor: C.up, downColor: C.down, wickUpColor: C.up, wickDownColor: C.down, borderVisible: false });
candles.setData(data.ts.map((t, i) => ({ time: sec(t), open: data.open[i], high: data.high[i], low: data.low[i], close: data.close[i] })));
const paneCharts = {};
for (const pane of data.indicators.panes) {
  const el = document.createElement("div");
  el.className = "chart pane"; el.id = `pane-${pane.name}`;
  const h = document.createElement("h2"); h.textContent = pane.label;
  el.append(h); document.getElementById("panes").append(el);
  paneCharts[pane.name] = { chart: chart(el.id), levels: pane.levels, drawn: false };
}
data.indicators.lines.forEach((ind, k) => {
  const target = ind.pane === "price" ? price : paneCharts[ind.pane].chart;
  const line = target.addSeries(LineSeries, { color: LINES[k % LINES.length], lineWidth: 2, title: ind.label, priceLineVisible: false, lastValueVisible: false });
  line.setData(series(ind.values));
  const pane = paneCharts[ind.pane];
  if (pane && !pane.drawn) {  // a pane's fixed levels (oversold, overbought, zero), once
    for (const level of pane.levels) line.createPriceLine({ price: level, color: C.text, lineWidth: 1, lineStyle: 2, axisLabelVisible: true, title: "" });
    pane.drawn = true;
  }
});
const markers = [];
const labelled = data.trades.length <= 40;  // past that, labels hide the candles: arrows and dots only
for (const t of data.trades) {
  const long = t.side === "long";
  markers.push({ time: sec(t.entry_ts), position: long ? "belowBar" : "aboveBar", color: long ? C.up : C.down,
                 shape: long ? "arrowUp" : "arrowDown", text: labelled ? `#${t.n} ${t.side}` : "" });
  markers.push({ time: sec(t.exit_ts), position: long ? "aboveBar" : "belowBar", color: t.pnl >= 0 ? C.up : C.down,
                 shape: "circle", text: labelled ? `${t.exit_reason} ${t.pnl >= 0 ? "+" : ""}${t.pnl.toFixed(2)}` : "" });
}
markers.sort((a, b) => a.time - b.time);
createSeriesMarkers(candles, markers);
const equity = chart("equity");
equity.addSeries(LineSeries, { color: C.equity, lineWidth: 2, priceLineVisible: false }).setData(series(data.equity));
const drawdown = chart("drawdown");
drawdown.addSeries(AreaSeries, { lineColor: C.dd, topColor: "rgba(246,70,93,0.05)", bottomColor: "rgba(246,70,93,0.4)",
                                 lineWidth: 1, priceLineVisible: false, invertFilledArea: true }).setData(series(data.drawdown_pct));
// One time axis for the three charts: scrolling or zooming any of them moves the others.
const charts = [price, ...Object.values(paneCharts).map((p) => p.chart), equity, drawdown];
let syncing = false;
for (const c of charts) {
  c.timeScale().subscribeVisibleLogicalRangeChange((range) => {
    if (syncing || range === null) return;
    syncing = true;
    for (const other of charts) if (other !== c) other.timeScale().setVisibleLogicalRange(range);
    syncing = false;
  });
}
price.timeScale().fitContent();
document.body.dataset.rendered = "true";
}
</script>
</body>
</html>
"""
