// One bot: live state from its status stream, price chart with its strategy's indicators and trade
// markers, trades, orders.
import { api, statusStream } from "../api.js";
import { indicatorLegend, priceChart, tradeLeg } from "../charts.js";
import { driftPanel } from "../drift.js";
import { amount, badge, h, mount, num, paperBadge, price, signClass, signed, time } from "../dom.js";
import { lifecycleButtons, positionCell } from "./bots.js";

export async function botPage(id) {
  let bot = await api("GET", `/bots/${id}`);
  let state = bot.state;
  let trades = [];
  let lastClose = null;

  const title = h("h1", { id: "bot-title" }, bot.name || `Bot #${bot.id}`);
  const modeSlot = h("span", { id: "bot-mode" }, paperBadge(bot.mode === "paper"));
  document.title = `${bot.name || `Bot #${bot.id}`} · tradebot`;
  const statusSlot = h("span", { id: "bot-status" });
  const liveDot = h("span", { class: "live-dot", title: "connecting" });
  const actions = h("div", { class: "form-actions", id: "bot-actions" });
  const actionError = h("div", { class: "error-box" });
  const deleteButton = h("button", { class: "btn btn-ghost btn-sm", type: "button", dataset: { action: "delete" } }, "Delete");
  deleteButton.addEventListener("click", async () => {
    if (!confirm("Delete this bot? A running bot is stopped first, leaving any position open; its trades stay in your history.")) return;
    try {
      await api("DELETE", `/bots/${bot.id}`);
      location.assign("/bots");
    } catch (err) {
      actionError.textContent = err.message;
    }
  });
  const stats = h("div", { class: "stats", id: "bot-stats" });
  const errorPanel = h("div", { class: "panel error-box", id: "bot-error", hidden: true });
  const chartEl = h("div", { class: "chart", id: "price-chart" });
  const chartNote = h("span", { class: "muted" });
  const legend = h("div", { class: "legend", id: "chart-legend" });
  const tradeKeys = [h("span", {}, h("i", { class: "swatch buy" }), "buy"), h("span", {}, h("i", { class: "swatch sell" }), "sell")];
  legend.append(...tradeKeys);
  const tradesBody = h("tbody");
  const ordersBody = h("tbody");
  const settings = h("dl", { class: "kv" });

  mount(
    h("div", { class: "crumbs" }, h("a", { href: "/bots" }, "Bots"), " / ", bot.name || `Bot #${bot.id}`),
    h("div", { class: "page-head" }, liveDot, title, modeSlot, statusSlot, h("div", { class: "spacer" }), actions,
      h("a", { class: "btn btn-ghost btn-sm", href: `/bots/${bot.id}/edit` }, "Edit"), deleteButton),
    actionError,
    stats,
    errorPanel,
    h("div", { class: "grid-main" },
      h("div", {},
        h("section", { class: "panel" },
          h("div", { class: "chart-head" }, h("h2", {}, `${bot.symbol} · ${bot.timeframe}`),
            legend, h("div", { class: "spacer" }), chartNote),
          chartEl),
        h("section", { class: "panel flush" }, h("h2", {}, "Trades"),
          h("div", { class: "table-wrap" }, h("table", { id: "trades-table" },
            h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", {}, "Side"), h("th", {}, "Leg"), h("th", { class: "num" }, "Price"),
              h("th", { class: "num" }, "Amount"), h("th", { class: "num" }, "Fee"), h("th", { class: "num" }, "Realized PnL"),
              h("th", {}, "Client order id"))),
            tradesBody))),
        h("section", { class: "panel flush" }, h("h2", {}, "Orders"),
          h("div", { class: "table-wrap" }, h("table", { id: "orders-table" },
            h("thead", {}, h("tr", {}, h("th", {}, "Created"), h("th", {}, "Side"), h("th", { class: "num" }, "Amount"),
              h("th", {}, "Status"), h("th", {}, "Client order id"), h("th", {}, "Exchange id"))),
            ordersBody))),
        driftPanel(bot.id)),
      h("aside", { class: "panel" }, h("h2", {}, "Settings"), settings)));

  function stat(label, value, cls = "", col = "") {
    return h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: `value ${cls}`, dataset: { col } }, value));
  }

  function renderState() {
    statusSlot.replaceChildren(badge(state.status));
    stats.replaceChildren(...[
      h("div", { class: "stat" }, h("div", { class: "label" }, "Position"), h("div", { class: "value", dataset: { col: "position" } }, positionCell(state))),
      stat("Entry price", price(state.entry_price), "", "entry"),
      stat("Last close", price(lastClose), "", "last-close"),
      stat("Unrealized PnL", signed(unrealized()), signClass(unrealized()), "unrealized"),
      stat("Daily PnL", signed(state.daily_pnl), signClass(state.daily_pnl), "pnl"),
      stat("Daily trades", num(state.daily_trades_count, 0), "", "trades"),
      stat("Last decision", time(state.last_run_at), "", "last-run"),
      // A paper bot's virtual account, as its state reports it (null for live bots).
      bot.mode === "paper" ? stat("Paper balance", num(state.paper_balance), "", "paper-balance") : null,
      bot.mode === "paper" ? stat("Equity", num(state.equity), "", "equity") : null].filter(Boolean));
    const problems = [state.last_error_message ? `Last error: ${state.last_error_message}` : null,
      state.drift_warning ? `Drift: ${state.drift_warning}` : null].filter(Boolean);
    errorPanel.hidden = !problems.length;
    errorPanel.textContent = problems.join(" · ");
    actions.replaceChildren(...[...lifecycleButtons(bot, state.status, () => { actionError.textContent = ""; },
      (err) => { actionError.textContent = err.message; }),
    // Going live is an edit of the stopped bot (the form confirms it, naming the key that will trade).
    bot.mode === "paper" && state.status === "stopped"
      ? h("a", { class: "btn btn-sm btn-ghost", href: `/bots/${bot.id}/edit?mode=live`, dataset: { action: "go-live" } }, "Go live…") : null]
      .filter(Boolean));
  }

  // Marked to the last closed candle: an estimate between decisions, not the exchange's figure.
  function unrealized() {
    // A paper bot's own figure: its equity is marked to the close it last decided on.
    if (state.in_position && state.equity != null && state.paper_balance != null) {
      return state.equity - state.paper_balance;
    }
    if (!state.in_position || state.entry_price === null || lastClose === null) return null;
    const sign = state.position_side === "short" ? -1 : 1;
    return sign * (lastClose - state.entry_price) * state.position_size;
  }

  function renderSettings() {
    const rows = [
      ["Mode", bot.mode === "paper" ? "paper" : "live"],
      ...(bot.mode === "paper" ? [["Paper start balance", num(bot.paper_balance)], ["Paper fee rate", bot.paper_fee_rate],
        ["Paper slippage", `${bot.paper_slippage_bps} bps`]] : []),
      ["Symbol", bot.symbol], ["Timeframe", bot.timeframe], ["Strategy", bot.strategy],
      ...Object.entries(bot.parameters || {}).map(([k, x]) => [k, x, k]), // every parameter, defaults included
      ["Leverage", `${bot.leverage}×`], ["Order size", `${num(bot.order_size_pct)}%`], ["Shorts", bot.allow_short ? "allowed" : "no"],
      ["Max trades / day", bot.max_daily_trades], ["Max daily loss", `${num(bot.max_daily_loss_pct)}%`],
      ["Stop loss", bot.stop_loss_pct === null ? "—" : `${num(bot.stop_loss_pct)}%`],
      ["Take profit", bot.take_profit_pct === null ? "—" : `${num(bot.take_profit_pct)}%`],
      ["Replica", state.replica_id || "—"], ["Created", time(bot.created_at)],
    ];
    settings.replaceChildren(...rows.flatMap(([k, v, param]) => [h("dt", {}, k), h("dd", param ? { dataset: { param } } : {}, v)]));
  }

  function tradeRow(t) {
    return h("tr", { dataset: { tradeId: t.id } },
      h("td", { class: "muted" }, time(t.created_at), " ", paperBadge(t.paper)),
      h("td", { class: t.side === "buy" ? "up" : "down" }, t.side.toUpperCase()),
      h("td", { class: "muted" }, tradeLeg(t)),
      h("td", { class: "num" }, price(t.price)),
      h("td", { class: "num" }, amount(t.amount)),
      h("td", { class: "num" }, num(t.fee, 4)),
      h("td", { class: `num ${signClass(t.realized_pnl)}` }, signed(t.realized_pnl)),
      h("td", { class: "mono muted" }, t.client_order_id));
  }

  function renderTrades() {
    tradesBody.replaceChildren(...(trades.length ? trades.map(tradeRow)
      : [h("tr", {}, h("td", { colspan: 8, class: "empty" }, "No trades yet."))]));
    chart.setTrades(trades);
  }

  async function loadOrders() {
    const page = await api("GET", `/bots/${bot.id}/orders?limit=100`);
    ordersBody.replaceChildren(...(page.items.length ? page.items.map((o) => h("tr", {},
      h("td", { class: "muted" }, time(o.created_at), " ", paperBadge(o.paper)),
      h("td", { class: o.side === "buy" ? "up" : "down" }, o.side.toUpperCase()),
      h("td", { class: "num" }, amount(o.amount)),
      h("td", {}, badge(o.status, o.status === "filled" ? "done" : o.status === "rejected" ? "error" : "pending")),
      h("td", { class: "mono muted" }, o.client_order_id),
      h("td", { class: "mono muted" }, o.exchange_order_id || "—")))
      : [h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No orders yet."))]));
  }

  async function loadCandles() {
    try {
      const data = await api("GET", `/bots/${bot.id}/candles?limit=300`);
      chartEl.classList.toggle("with-panes", data.indicators.panes.length > 0);
      chart.setData(data);
      legend.replaceChildren(...indicatorLegend(data.indicators), ...tradeKeys);
      if (data.candles.length) {
        lastClose = data.candles[data.candles.length - 1].close;
        renderState();
      }
      chartNote.textContent = data.candles.length ? "" : "No closed candles yet.";
      chart.setTrades(trades);
    } catch (err) {
      chartNote.textContent = `Candles unavailable: ${err.message}`;
    }
  }

  let candleTimer = null;
  function refreshCandlesSoon() {
    clearTimeout(candleTimer);
    candleTimer = setTimeout(() => loadCandles(), 300);
  }

  const chart = priceChart(chartEl);
  renderState();
  renderSettings();
  trades = (await api("GET", `/bots/${bot.id}/trades?limit=200`)).items;
  renderTrades();
  await Promise.all([loadOrders(), loadCandles()]);

  const source = statusStream(bot.id, {
    open: () => { liveDot.classList.add("on"); liveDot.title = "live"; },
    error: () => { liveDot.classList.remove("on"); liveDot.title = "reconnecting"; },
    state: (s) => {
      const changedRun = s.last_run_at !== state.last_run_at;
      state = s;
      renderState();
      if (changedRun) refreshCandlesSoon(); // a decision means a new closed candle
    },
    trade: (t) => {
      if (!trades.some((x) => x.id === t.id)) trades.unshift(t);
      renderTrades();
      loadOrders().catch(() => {});
      refreshCandlesSoon();
    },
  });
  // Settings may change elsewhere; keep the side panel current without a reload.
  setInterval(async () => {
    try {
      bot = await api("GET", `/bots/${bot.id}`);
      renderSettings();
      modeSlot.replaceChildren(...[paperBadge(bot.mode === "paper")].filter(Boolean));
    } catch { /* shown on the next successful refresh */ }
  }, 30000);
  addEventListener("pagehide", () => source.close());
}
