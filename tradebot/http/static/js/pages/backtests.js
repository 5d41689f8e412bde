// Backtests: the list and the form that queues a new one (the strategy picker and its parameters
// from GET /strategies, as on the bot form).
import { api, listAll, timeframes } from "../api.js";
import { badge, clearErrors, field, formValues, h, mount, num, pageHead, pct, showProblem, signClass, time } from "../dom.js";
import { strategies, strategyFields, strategyLabel } from "../strategy_form.js";

// The sizing keys that travel in "parameters" beside the strategy's own (CONTRACT.md, backtests).
const SIZING = ["order_size_pct", "leverage", "allow_short", "stop_loss_pct", "take_profit_pct"];
function strategyParameters(parameters) {
  return Object.fromEntries(Object.entries(parameters || {}).filter(([k]) => !SIZING.includes(k)));
}

const NUMBERS = new Set(["order_size_pct", "leverage", "stop_loss_pct", "take_profit_pct", "initial_balance", "fee_rate", "slippage_bps"]);

// "2026-01-02T03:04" typed in UTC becomes "2026-01-02T03:04:00Z".
function isoUtc(local) {
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(local) ? `${local}:00Z` : local;
}

function localInput(date) {
  return date.toISOString().slice(0, 16);
}

export function backtestRequest(form, strategy) {
  const v = formValues(form);
  const body = { symbol: v.symbol, timeframe: v.timeframe, strategy: strategy.strategy(), start_time: isoUtc(v.start_time),
    end_time: isoUtc(v.end_time), parameters: strategy.values() };
  for (const [name, raw] of Object.entries(v)) {
    if (!NUMBERS.has(name) && name !== "allow_short") continue;
    let value = raw;
    if (NUMBERS.has(name)) {
      if (raw === "") continue;
      value = Number.isFinite(Number(raw)) ? Number(raw) : raw;
    }
    if (SIZING.includes(name)) body.parameters[name] = value;
    else body[name] = value;
  }
  return body;
}

export async function backtestsPage() {
  const [tfs, choices] = await Promise.all([timeframes().catch(() => ["1m"]), strategies()]);
  const strategy = strategyFields(choices);
  const now = new Date();
  const dayAgo = new Date(now.getTime() - 24 * 3600 * 1000);
  const form = h("form", { class: "form", id: "backtest-form", novalidate: true },
    h("div", { class: "form-grid" },
      field("Symbol", h("input", { name: "symbol", value: "BTC/USDT:USDT", spellcheck: "false" })),
      field("Timeframe", h("select", { name: "timeframe" }, tfs.map((t) => h("option", { value: t }, t)))),
      field("From (UTC)", h("input", { name: "start_time", type: "datetime-local", value: localInput(dayAgo) })),
      field("To (UTC)", h("input", { name: "end_time", type: "datetime-local", value: localInput(now) })),
      field("Order size, %", h("input", { name: "order_size_pct", value: "10", inputmode: "decimal" })),
      field("Leverage", h("input", { name: "leverage", value: "1", inputmode: "numeric" })),
      field("Stop loss, %", h("input", { name: "stop_loss_pct", inputmode: "decimal", placeholder: "none" })),
      field("Take profit, %", h("input", { name: "take_profit_pct", inputmode: "decimal", placeholder: "none" })),
      field("Initial balance", h("input", { name: "initial_balance", value: "10000", inputmode: "decimal" })),
      field("Fee rate", h("input", { name: "fee_rate", value: "0.0004", inputmode: "decimal" })),
      field("Slippage, bps", h("input", { name: "slippage_bps", value: "0", inputmode: "decimal" })),
      field("Allow short positions", h("input", { name: "allow_short", type: "checkbox" }))),
    h("h2", { class: "form-section" }, "Strategy"),
    strategy.picker,
    strategy.parameters,
    h("div", { class: "form-actions" }, h("button", { class: "btn", type: "submit" }, "Run backtest")));

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    try {
      const created = await api("POST", "/backtests", backtestRequest(form, strategy));
      location.assign(`/backtests/${created.id}`);
    } catch (err) {
      showProblem(form, err);
    }
  });

  const tbody = h("tbody", {}, h("tr", {}, h("td", { colspan: 9, class: "empty" }, "Loading…")));
  mount(
    pageHead("Backtests"),
    h("section", { class: "panel" }, h("h2", {}, "New backtest"), form),
    h("section", { class: "panel flush" }, h("h2", {}, "History"),
      h("div", { class: "table-wrap" }, h("table", { id: "backtests-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Market"), h("th", {}, "Period"), h("th", {}, "Status"),
          h("th", { class: "num" }, "Return"), h("th", { class: "num" }, "Trades"), h("th", { class: "num" }, "Win rate"),
          h("th", { class: "num" }, "Max drawdown"), h("th", {}, "Created"))),
        tbody))));

  let items = [];
  try {
    items = await listAll("/backtests", 200);
    tbody.replaceChildren();
  } catch (err) {
    tbody.replaceChildren(h("tr", {}, h("td", { colspan: 9, class: "empty" }, `Backtests unavailable: ${err.message}`)));
    return;
  }
  if (!items.length) tbody.append(h("tr", {}, h("td", { colspan: 9, class: "empty" }, "No backtests yet.")));
  for (const b of items) {
    tbody.append(h("tr", { dataset: { backtestId: b.id } },
      h("td", {}, h("a", { href: `/backtests/${b.id}` }, `#${b.id}`)),
      h("td", {}, `${b.symbol} `, h("span", { class: "muted" }, `${b.timeframe} · ${strategyLabel(b.strategy, strategyParameters(b.parameters))}`)),
      h("td", { class: "muted" }, `${time(b.start_time)} → ${time(b.end_time)}`),
      h("td", {}, badge(b.status)),
      h("td", { class: `num ${signClass(b.return_pct)}` }, b.status === "done" ? pct(b.return_pct) : "—"),
      h("td", { class: "num" }, b.status === "done" ? num(b.trades_count, 0) : "—"),
      h("td", { class: "num" }, b.status === "done" && b.win_rate !== null ? `${num(b.win_rate * 100, 1)}%` : "—"),
      h("td", { class: "num down" }, b.status === "done" && b.max_drawdown_pct !== null ? `${num(b.max_drawdown_pct)}%` : "—"),
      h("td", { class: "muted" }, time(b.created_at))));
  }
}
