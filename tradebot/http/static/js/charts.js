// Charts on TradingView Lightweight Charts (vendored in /static/vendor/, Apache-2.0).
import {
  AreaSeries,
  CandlestickSeries,
  ColorType,
  createChart,
  createSeriesMarkers,
  LineSeries,
} from "/static/vendor/lightweight-charts.standalone.production.mjs";

const COLORS = { up: "#0ecb81", down: "#f6465d", ema: "#f0b90b", equity: "#3b82f6", text: "#848e9c", grid: "#1e2329", bg: "#161a1e" };

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

// Candles with the EMA and entry/exit markers for a bot's trades.
export function priceChart(el) {
  const chart = baseChart(el);
  const candles = chart.addSeries(CandlestickSeries, {
    upColor: COLORS.up, downColor: COLORS.down, wickUpColor: COLORS.up, wickDownColor: COLORS.down, borderVisible: false,
  });
  const ema = chart.addSeries(LineSeries, { color: COLORS.ema, lineWidth: 2, priceLineVisible: false, crosshairMarkerVisible: false });
  const markers = createSeriesMarkers(candles, []);
  let bars = [];
  let fitted = false;
  return {
    setCandles(rows) {
      bars = ascending(rows.map((c) => ({ time: toSeconds(c.time), open: c.open, high: c.high, low: c.low, close: c.close })));
      candles.setData(bars);
      ema.setData(ascending(rows.map((c) => (c.ema === null ? { time: toSeconds(c.time) } : { time: toSeconds(c.time), value: c.ema }))));
      if (!fitted && bars.length) {
        chart.timeScale().fitContent();
        fitted = true;
      }
    },
    // Each trade sits on the candle it happened in (or the newest one, when it came after it).
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
          shape: buy ? "arrowUp" : "arrowDown", text: `${tradeLeg(t)} ${Number(t.price).toPrecision(6)}`,
        });
      }
      markers.setMarkers(out.sort((a, b) => a.time - b.time));
    },
    chart,
  };
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
