// Charts on TradingView Lightweight Charts (vendored in /static/vendor/, Apache-2.0).
import {
  AreaSeries,
  CandlestickSeries,
  ColorType,
  createChart,
  createSeriesMarkers,
  HistogramSeries,
  LineSeries,
} from "/static/vendor/lightweight-charts.standalone.production.mjs";
import { h } from "./dom.js";

const COLORS = { up: "#0ecb81", down: "#f6465d", equity: "#3b82f6", text: "#848e9c", grid: "#1e2329", bg: "#161a1e" };

function baseChart(el, extra = {}) {
  return createChart(el, {
    autoSize: true,
    layout: { background: { type: ColorType.Solid, color: COLORS.bg }, textColor: COLORS.text, fontSize: 11, attributionLogo: false },
    grid: { vertLines: { color: COLORS.grid }, horzLines: { color: COLORS.grid } },
    rightPriceScale: { borderColor: "#2b3139" },
    timeScale: { borderColor: "#2b3139", timeVisible: true, secondsVisible: false, rightOffset: 4 },
    crosshair: { mode: 0 },
    ...extra,
  });
}

// Seconds since the epoch from ms numbers or ISO strings.
export function toSeconds(t) {
  const ms = typeof t === "number" ? (t < 1e11 ? t * 1000 : t) : Date.parse(t);
  return Math.floor(ms / 1000);
}

// Strictly ascending times (the library's rule): the last point of a repeated time wins.
function ascending(points) {
  const out = [];
  for (const p of [...points].sort((a, b) => a.time - b.time)) {
    if (out.length && out[out.length - 1].time === p.time) out[out.length - 1] = p;
    else out.push(p);
  }
  return out;
}

// What a bot's fill did, from the leg that ends its client order id (tradebot.runtime.client_order_id):
// o opens the target position; c closes on a signal, x on a stop loss / take profit / loss limit,
// m when the user stopped the bot with close_position.
const EXIT_REASON = { c: "exit", x: "risk exit", m: "manual exit" };

export function tradeLeg(trade) {
  const leg = String(trade.client_order_id || "").slice(-1);
  if (leg === "o") return trade.side === "buy" ? "long entry" : "short entry";
  if (EXIT_REASON[leg]) return `${trade.side === "sell" ? "long" : "short"} ${EXIT_REASON[leg]}`;
  return trade.side;
}

// Colours of indicator lines, in the order a strategy lists them (the legend's .swatch.line-N match).
const LINE_COLORS = ["#f0b90b", "#3b82f6", "#c084fc", "#22d3ee", "#f97316", "#a3e635"];
const LEVEL_COLOR = "#5e6673";

export function lineColor(i) {
  return LINE_COLORS[i % LINE_COLORS.length];
}

// Candles with the strategy's indicators and entry/exit markers for a bot's (or a backtest's) trades.
// Indicators are the API's {panes: [{name, label, levels}], lines: [{name, label, pane, values}]}: a
// line in pane "price" shares the candles' scale; each other pane sits under the price, with dashed
// lines at its levels. What the chart holds is written back to el.dataset.indicators (read from
// the library: each line's pane index and points), so tests see what is drawn without pixels.
export function priceChart(el) {
  const chart = baseChart(el);
  const candles = chart.addSeries(CandlestickSeries, {
    upColor: COLORS.up, downColor: COLORS.down, wickUpColor: COLORS.up, wickDownColor: COLORS.down, borderVisible: false,
  });
  const markers = createSeriesMarkers(candles, []);
  let bars = [];
  let fitted = false;
  let layout = null; // the panes and lines the series below were made for
  let lines = new Map(); // line name -> series

  function rebuild(indicators) {
    for (const series of lines.values()) chart.removeSeries(series);
    lines = new Map();
    const paneIndex = new Map([["price", 0]]);
    indicators.panes.forEach((p, i) => paneIndex.set(p.name, i + 1));
    indicators.lines.forEach((line, i) => {
      const series = chart.addSeries(LineSeries, {
        color: lineColor(i), lineWidth: line.pane === "price" ? 2 : 1.5, priceLineVisible: false, lastValueVisible: true,
        crosshairMarkerVisible: false, title: "",
      }, paneIndex.get(line.pane) ?? 0);
      lines.set(line.name, series);
    });
    // Levels on the first series of their pane; oscillator panes a third of the price pane's height.
    for (const p of indicators.panes) {
      const first = indicators.lines.find((line) => line.pane === p.name);
      if (!first) continue;
      for (const level of p.levels) {
        lines.get(first.name).createPriceLine({ price: level, color: LEVEL_COLOR, lineWidth: 1, lineStyle: 2, axisLabelVisible: true, title: "" });
      }
    }
    const panes = chart.panes();
    for (let i = 1; i < panes.length; i++) panes[i].setStretchFactor(0.35);
  }

  function record(indicators) {
    const drawn = { panes: chart.panes().length, lines: {} };
    for (const line of indicators.lines) {
      const series = lines.get(line.name);
      const points = series.data().filter((p) => p.value !== undefined);
      drawn.lines[line.name] = {
        pane: series.getPane().paneIndex(), points: points.length,
        last: points.length ? points[points.length - 1].value : null,
        levels: series.priceLines().map((pl) => pl.options().price),
      };
    }
    el.dataset.indicators = JSON.stringify(drawn);
  }

  return {
    // data: {candles: [{time, open, high, low, close}], indicators: {panes, lines}}
    setData(data) {
      const rows = data.candles;
      const times = rows.map((c) => toSeconds(c.time));
      bars = ascending(rows.map((c, i) => ({ time: times[i], open: c.open, high: c.high, low: c.low, close: c.close })));
      candles.setData(bars);
      const indicators = data.indicators || { panes: [], lines: [] };
      const key = JSON.stringify([indicators.panes, indicators.lines.map((l) => [l.name, l.label, l.pane])]);
      if (key !== layout) {
        rebuild(indicators);
        layout = key;
      }
      for (const line of indicators.lines) {
        lines.get(line.name).setData(ascending(times.map((t, i) =>
          (line.values[i] === null || line.values[i] === undefined ? { time: t } : { time: t, value: line.values[i] }))));
      }
      record(indicators);
      if (!fitted && bars.length) {
        chart.timeScale().fitContent();
        fitted = true;
      }
    },
    // Each trade sits on the candle it happened in (or the newest one, when it came after it);
    // {created_at, side, price, client_order_id} like the API's trades, `text` to replace its label.
    setTrades(trades) {
      if (!bars.length) return markers.setMarkers([]);
      const out = [];
      for (const t of trades) {
        const at = toSeconds(t.created_at);
        let bar = null;
        for (const b of bars) if (b.time <= at) bar = b;
        if (!bar) continue;
        const buy = t.side === "buy";
        out.push({
          time: bar.time, position: buy ? "belowBar" : "aboveBar", color: buy ? COLORS.up : COLORS.down,
          shape: buy ? "arrowUp" : "arrowDown", text: t.text ?? `${tradeLeg(t)} ${Number(t.price).toPrecision(6)}`,
        });
      }
      markers.setMarkers(out.sort((a, b) => a.time - b.time));
    },
    chart,
  };
}

// The legend of a chart's indicators: a swatch per line in its colour, and each pane's levels.
export function indicatorLegend(indicators) {
  const panes = new Map((indicators.panes || []).map((p) => [p.name, p]));
  return indicators.lines.map((line, i) => {
    const pane = panes.get(line.pane);
    const firstInPane = indicators.lines.find((l) => l.pane === line.pane) === line;
    const where = firstInPane && pane && pane.levels.length ? ` (levels ${pane.levels.join(" / ")})` : "";
    // A class per colour (css/app.css holds LINE_COLORS too): the page's CSP allows no inline style.
    return h("span", { dataset: { line: line.name, pane: line.pane } },
      h("i", { class: `swatch line-${i % LINE_COLORS.length}` }), `${line.label}${where}`);
  });
}

// A backtest's equity curve, and its drawdown from the running peak (in %) under it.
export function equityCharts(equityEl, drawdownEl, curve) {
  const points = ascending(curve.map(([t, v]) => ({ time: toSeconds(t), value: Number(v) })));
  const eq = baseChart(equityEl);
  eq.addSeries(AreaSeries, {
    lineColor: COLORS.equity, topColor: "rgba(59, 130, 246, 0.35)", bottomColor: "rgba(59, 130, 246, 0.02)", lineWidth: 2,
  }).setData(points);
  eq.timeScale().fitContent();

  let peak = -Infinity;
  const drawdown = points.map((p) => {
    peak = Math.max(peak, p.value);
    return { time: p.time, value: peak > 0 ? ((p.value - peak) / peak) * 100 : 0 };
  });
  const dd = baseChart(drawdownEl);
  dd.addSeries(AreaSeries, {
    lineColor: COLORS.down, topColor: "rgba(246, 70, 93, 0.05)", bottomColor: "rgba(246, 70, 93, 0.35)", lineWidth: 1,
    invertFilledArea: true, priceFormat: { type: "custom", formatter: (v) => `${v.toFixed(2)}%` },
  }).setData(drawdown);
  dd.timeScale().fitContent();
  // Scroll and zoom the two together.
  eq.timeScale().subscribeVisibleLogicalRangeChange((r) => r && dd.timeScale().setVisibleLogicalRange(r));
  dd.timeScale().subscribeVisibleLogicalRangeChange((r) => r && eq.timeScale().setVisibleLogicalRange(r));
  return { eq, dd, maxDrawdown: Math.min(0, ...drawdown.map((d) => d.value)) };
}

// The overview's profit charts from GET /stats items (oldest first): net PnL per period as bars
// (green up, red down) and its running sum as a line. What each chart holds is written back to its
// element's data-points ([[seconds, value], …], read from the library), so tests read what is drawn.
export function profitCharts(cumulativeEl, dailyEl) {
  const cum = baseChart(cumulativeEl);
  const line = cum.addSeries(AreaSeries, {
    lineColor: COLORS.equity, topColor: "rgba(59, 130, 246, 0.35)", bottomColor: "rgba(59, 130, 246, 0.02)", lineWidth: 2,
  });
  const daily = baseChart(dailyEl);
  const bars = daily.addSeries(HistogramSeries, { priceLineVisible: false });
  const written = (el, series) => {
    el.dataset.points = JSON.stringify(series.data().map((p) => [p.time, p.value]));
  };
  return {
    setItems(items) {
      let sum = 0;
      const points = ascending(items.map((it) => {
        sum += Number(it.net_pnl);
        return { time: toSeconds(it.period_start), value: sum };
      }));
      line.setData(points);
      bars.setData(ascending(items.map((it) => ({
        time: toSeconds(it.period_start), value: Number(it.net_pnl), color: Number(it.net_pnl) < 0 ? COLORS.down : COLORS.up,
      }))));
      cum.timeScale().fitContent();
      daily.timeScale().fitContent();
      written(cumulativeEl, line);
      written(dailyEl, bars);
    },
  };
}
