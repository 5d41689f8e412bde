// One backtest: progress while it runs, then the metrics, the price chart with its strategy's
// indicators and its round trips, the equity and drawdown charts, and its trades.
import { api } from "../api.js";
import { equityCharts, indicatorLegend, priceChart } from "../charts.js";
import { amount, badge, h, mount, num, pct, price, signClass, signed, time } from "../dom.js";

const POLL_MS = 1000;
// The sizing keys among a backtest's parameters (shown on their own rows); the rest are the strategy's.
const SIZING = new Set(["order_size_pct", "leverage", "allow_short", "stop_loss_pct", "take_profit_pct"]);

export async function backtestPage(id) {
  document.title = `Backtest #${id} · tradebot`;
  const statusSlot = h("span", { id: "backtest-status" });
  const body = h("div", { id: "backtest-body" });
  mount(
    h("div", { class: "crumbs" }, h("a", { href: "/backtests" }, "Backtests"), " / ", `#${id}`),
    h("div", { class: "page-head" }, h("h1", {}, `Backtest #${id}`), statusSlot, h("div", { class: "spacer" }),
      h("a", { class: "btn btn-ghost btn-sm", href: "/backtests" }, "New backtest")),
    body);

  let bt = await api("GET", `/backtests/${id}`);
  while (bt.status === "pending" || bt.status === "running") {
    statusSlot.replaceChildren(badge(bt.status));
    body.replaceChildren(progressPanel(bt));
    await new Promise((r) => setTimeout(r, POLL_MS));
    bt = await api("GET", `/backtests/${id}`);
  }
  statusSlot.replaceChildren(badge(bt.status));
  if (bt.status !== "done") {
    body.replaceChildren(h("div", { class: "panel error-box", role: "alert" }, `This backtest failed: ${bt.error_message || "no reason given"}`));
    return;
  }
  renderResult(body, bt);
}

function progressPanel(bt) {
  return h("section", { class: "panel", id: "backtest-progress" },
    h("h2", {}, bt.status === "pending" ? "Queued…" : `Running since ${time(bt.started_at)}…`),
    h("div", { class: "progress" }, h("div", {})),
    h("p", { class: "muted" }, `${bt.symbol} ${bt.timeframe}, ${time(bt.start_time)} → ${time(bt.end_time)}`));
}

function stat(label, value, cls = "") {
  return h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: `value ${cls}` }, value));
}

// Each round trip as two fills on the price chart, its entry and its exit: arrows without labels
// (a backtest has many; the table below has their figures).
function fills(trades) {
  return trades.flatMap((t) => {
    const entry = t.side === "short" ? "sell" : "buy";
    const exit = entry === "buy" ? "sell" : "buy";
    return [
      { created_at: t.entry_time, side: entry, price: t.entry_price, text: "" },
      { created_at: t.exit_time, side: exit, price: t.exit_price, text: "" },
    ];
  });
}

// The last candles of the period (the API sends at most 1000 here) with the indicators.
async function loadPriceChart(bt, el, legend, note, trades) {
  try {
    const data = await api("GET", `/backtests/${bt.id}/candles?limit=1000`);
    if (!data.candles.length) {
      note.textContent = "The candles of this backtest are not cached.";
      return;
    }
    el.classList.toggle("with-panes", data.indicators.panes.length > 0);
    const chart = priceChart(el);
    chart.setData(data);
    chart.setTrades(fills(trades || []));
    legend.replaceChildren(...indicatorLegend(data.indicators),
      h("span", {}, h("i", { class: "swatch buy" }), "buy"), h("span", {}, h("i", { class: "swatch sell" }), "sell"));
    const shown = data.candles.length;
    note.textContent = bt.candles_count > shown ? `the last ${shown} of ${num(bt.candles_count, 0)} candles` : "";
  } catch (err) {
    note.textContent = `Candles unavailable: ${err.message}`;
  }
}

function renderResult(body, bt) {
  const priceEl = h("div", { class: "chart", id: "price-chart" });
  const priceLegend = h("div", { class: "legend", id: "chart-legend" });
  const priceNote = h("span", { class: "muted" });
  const equityEl = h("div", { class: "chart", id: "equity-chart" });
  const drawdownEl = h("div", { class: "chart small", id: "drawdown-chart" });
  const params = bt.parameters || {};
  const trades = Array.isArray(bt.trades) ? bt.trades : null;
  body.replaceChildren(
    h("div", { class: "stats", id: "backtest-stats" },
      stat("Final balance", num(bt.final_balance)),
      stat("Total PnL", signed(bt.total_pnl), signClass(bt.total_pnl)),
      stat("Return", pct(bt.return_pct), signClass(bt.return_pct)),
      stat("Round trips", num(bt.trades_count, 0)),
      stat("Win rate", bt.win_rate === null || bt.win_rate === undefined ? "—" : `${num(bt.win_rate * 100, 1)}%`),
      stat("Max drawdown", bt.max_drawdown_pct === null || bt.max_drawdown_pct === undefined ? "—" : `${num(bt.max_drawdown_pct)}%`, "down"),
      stat("Sharpe", bt.sharpe === null || bt.sharpe === undefined ? "—" : num(bt.sharpe)),
      stat("Fees paid", num(bt.fees_paid)),
      stat("Time in market", bt.exposure_pct === null || bt.exposure_pct === undefined ? "—" : `${num(bt.exposure_pct, 1)}%`),
      stat("Candles", bt.missing_candles ? `${num(bt.candles_count, 0)} (${num(bt.missing_candles, 0)} missing)` : num(bt.candles_count, 0))),
    h("div", { class: "grid-main" },
      h("div", {},
        h("section", { class: "panel" },
          h("div", { class: "chart-head" }, h("h2", {}, `${bt.symbol} · ${bt.timeframe}`), priceLegend,
            h("div", { class: "spacer" }), priceNote),
          priceEl),
        h("section", { class: "panel" },
          h("div", { class: "chart-head" }, h("h2", {}, "Equity"),
            h("div", { class: "legend" }, h("span", {}, h("i", { class: "swatch equity" }), "balance + open PnL"))),
          equityEl),
        h("section", { class: "panel" }, h("div", { class: "chart-head" }, h("h2", {}, "Drawdown from peak"),
          h("div", { class: "legend" }, h("span", {}, "of the plotted equity points; the max drawdown above is exact"))), drawdownEl)),
      h("aside", { class: "panel" }, h("h2", {}, "Parameters"),
        h("dl", { class: "kv" }, ...[
          ["Symbol", bt.symbol], ["Timeframe", bt.timeframe], ["From", time(bt.start_time)], ["To", time(bt.end_time)],
          ["Strategy", bt.strategy],
          ...Object.entries(params).filter(([k]) => !SIZING.has(k)).map(([k, x]) => [k, x]),
          ["Order size", `${num(params.order_size_pct)}%`],
          ["Leverage", `${params.leverage ?? 1}×`], ["Shorts", params.allow_short ? "allowed" : "no"],
          ["Stop loss", params.stop_loss_pct ? `${num(params.stop_loss_pct)}%` : "—"],
          ["Take profit", params.take_profit_pct ? `${num(params.take_profit_pct)}%` : "—"],
          ["Initial balance", num(bt.initial_balance)], ["Fee rate", bt.fee_rate ?? "—"], ["Slippage", bt.slippage_bps === undefined ? "—" : `${bt.slippage_bps} bps`],
        ].flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")])))),
    tradesPanel(trades, bt.trades_truncated));
  const curve = (bt.equity_curve || []).filter(([, v]) => v !== null && v !== undefined);
  if (curve.length) equityCharts(equityEl, drawdownEl, curve);
  else equityEl.replaceChildren(h("div", { class: "empty" }, "No equity curve."));
  loadPriceChart(bt, priceEl, priceLegend, priceNote, trades);
}

// The backtest's round trips, oldest first (the API lists at most the first 10,000).
function tradesPanel(trades, truncated) {
  if (trades === null) return h("section", { class: "panel muted" }, "This backtest's trades are not listed.");
  const rows = trades.map((t) => h("tr", {},
    h("td", { class: "muted" }, t.n),
    h("td", {}, badge(t.side, t.side)),
    h("td", { class: "muted" }, time(t.entry_time)),
    h("td", { class: "num" }, price(t.entry_price)),
    h("td", { class: "muted" }, time(t.exit_time)),
    h("td", { class: "num" }, price(t.exit_price)),
    h("td", { class: "num" }, amount(t.amount)),
    h("td", { class: "num" }, num(t.fees, 4)),
    h("td", { class: `num ${signClass(t.pnl)}` }, signed(t.pnl)),
    h("td", { class: "num" }, num(t.balance_after)),
    h("td", { class: "muted" }, String(t.exit_reason || "").replace("_", " "))));
  const title = `Round trips (${trades.length}${truncated ? ", the first ones only" : ""})`;
  return h("section", { class: "panel flush" }, h("h2", {}, title),
    h("div", { class: "table-wrap" }, h("table", { id: "backtest-trades" },
      h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Side"), h("th", {}, "Entry time"), h("th", { class: "num" }, "Entry"),
        h("th", {}, "Exit time"), h("th", { class: "num" }, "Exit"), h("th", { class: "num" }, "Amount"), h("th", { class: "num" }, "Fees"),
        h("th", { class: "num" }, "PnL"), h("th", { class: "num" }, "Balance after"), h("th", {}, "Exit reason"))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 11, class: "empty" }, "No trades in this period."))))));
}
