// One backtest: progress while it runs, then the metrics, equity and drawdown charts, and its trades.
import { api } from "../api.js";
import { equityCharts } from "../charts.js";
import { amount, badge, h, mount, num, pct, price, signClass, signed, time } from "../dom.js";

const POLL_MS = 1000;

export async function backtestPage(id) {
  const statusSlot = h("span", { id: "backtest-status" });
  const body = h("div", { id: "backtest-body" });
  mount(
    h("div", { class: "crumbs" }, h("a", { href: "/backtests" }, "Backtests"), " / ", `#${id}`),
    h("div", { class: "page-head" }, h("h1", {}, `Backtest #${id}`), statusSlot, h("div", { class: "spacer" }),
      h("a", { class: "btn btn-ghost btn-sm", href: "/backtests" }, "New backtest")),
    body);

  let bt = await api("GET", `/backtests/${id}`);
  while (!["done", "failed", "error", "cancelled"].includes(bt.status)) {
    statusSlot.replaceChildren(badge(bt.status));
    body.replaceChildren(progressPanel(bt));
    await new Promise((r) => setTimeout(r, POLL_MS));
    bt = await api("GET", `/backtests/${id}`);
  }
  statusSlot.replaceChildren(badge(bt.status));
  if (bt.status !== "done") {
    body.replaceChildren(h("div", { class: "panel error-box", role: "alert" }, `This backtest failed: ${bt.error || bt.error_message || bt.detail || "no reason given"}`));
    return;
  }
  renderResult(body, bt);
}

function progressPanel(bt) {
  const p = typeof bt.progress === "number" ? bt.progress : null;
  const bar = h("div", { class: "progress" }, h("div", {}));
  if (p !== null) {
    bar.firstChild.style.animation = "none";
    bar.firstChild.style.width = `${Math.round((p > 1 ? p / 100 : p) * 100)}%`;
  }
  return h("section", { class: "panel", id: "backtest-progress" },
    h("h2", {}, bt.status === "pending" ? "Queued…" : "Running…"),
    bar,
    h("p", { class: "muted" }, `${bt.symbol} ${bt.timeframe}, ${time(bt.start_time)} → ${time(bt.end_time)}`));
}

function stat(label, value, cls = "") {
  return h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: `value ${cls}` }, value));
}

function renderResult(body, bt) {
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
      stat("Fees paid", num(bt.fees_paid))),
    h("div", { class: "grid-main" },
      h("div", {},
        h("section", { class: "panel" },
          h("div", { class: "chart-head" }, h("h2", {}, "Equity"),
            h("div", { class: "legend" }, h("span", {}, h("i", { class: "swatch equity" }), "balance + open PnL"))),
          equityEl),
        h("section", { class: "panel" }, h("div", { class: "chart-head" }, h("h2", {}, "Drawdown from peak")), drawdownEl)),
      h("aside", { class: "panel" }, h("h2", {}, "Parameters"),
        h("dl", { class: "kv" }, ...[
          ["Symbol", bt.symbol], ["Timeframe", bt.timeframe], ["From", time(bt.start_time)], ["To", time(bt.end_time)],
          ["Strategy", bt.strategy || "ema_cross"], ["EMA period", params.ema_period], ["Order size", `${num(params.order_size_pct)}%`],
          ["Leverage", `${params.leverage ?? 1}×`], ["Shorts", params.allow_short ? "allowed" : "no"],
          ["Stop loss", params.stop_loss_pct ? `${num(params.stop_loss_pct)}%` : "—"],
          ["Take profit", params.take_profit_pct ? `${num(params.take_profit_pct)}%` : "—"],
          ["Initial balance", num(bt.initial_balance)], ["Fee rate", bt.fee_rate ?? "—"], ["Slippage", bt.slippage_bps === undefined ? "—" : `${bt.slippage_bps} bps`],
        ].flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")])))),
    tradesPanel(trades));
  if (Array.isArray(bt.equity_curve) && bt.equity_curve.length) equityCharts(equityEl, drawdownEl, bt.equity_curve);
  else equityEl.replaceChildren(h("div", { class: "empty" }, "No equity curve."));
}

// The backtest's trades, as the API lists them (each open or close fill, or each round trip).
function tradesPanel(trades) {
  if (trades === null) return h("section", { class: "panel muted" }, "This backtest's trades are not listed by the API.");
  const rows = trades.map((t) => h("tr", {},
    h("td", { class: "muted" }, time(t.time ?? t.timestamp ?? t.entry_time ?? t.created_at)),
    h("td", { class: t.side === "buy" || t.side === "long" ? "up" : "down" }, String(t.side ?? "").toUpperCase()),
    h("td", { class: "num" }, price(t.price ?? t.entry_price)),
    h("td", { class: "num" }, t.exit_price === undefined ? "—" : price(t.exit_price)),
    h("td", { class: "num" }, amount(t.amount ?? t.size)),
    h("td", { class: "num" }, t.fee === undefined ? "—" : num(t.fee, 4)),
    h("td", { class: `num ${signClass(t.pnl ?? t.realized_pnl)}` }, signed(t.pnl ?? t.realized_pnl))));
  return h("section", { class: "panel flush" }, h("h2", {}, `Trades (${trades.length})`),
    h("div", { class: "table-wrap" }, h("table", { id: "backtest-trades" },
      h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", {}, "Side"), h("th", { class: "num" }, "Price"),
        h("th", { class: "num" }, "Exit"), h("th", { class: "num" }, "Amount"), h("th", { class: "num" }, "Fee"), h("th", { class: "num" }, "PnL"))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No trades in this period."))))));
}
