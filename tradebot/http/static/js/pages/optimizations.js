// Optimisations: the form that queues a parameter search (the strategy's schema form for the values
// held fixed, a min/max/step row per parameter to search, objective and method) and the list.
import { api, listAll, timeframes } from "../api.js";
import { badge, clearErrors, field, formValues, h, mount, num, pageHead, showProblem, time } from "../dom.js";
import { strategies, strategyFields } from "../strategy_form.js";

// The sizing keys a search may vary beside the strategy's own parameters (README, Optimising).
const SIZING = [
  ["order_size_pct", "number", 10], ["leverage", "integer", 1], ["stop_loss_pct", "number", null], ["take_profit_pct", "number", null],
];
const NUMBERS = ["max_trials", "test_fraction", "seed", "initial_balance", "fee_rate", "slippage_bps"];
const OBJECTIVES = [["sharpe", "Sharpe ratio"], ["return_pct", "Return %"], ["calmar", "Calmar (return / max drawdown)"],
  ["profit_factor", "Profit factor"]];

function isoUtc(local) {
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(local) ? `${local}:00Z` : local;
}

function typed(raw) {
  const n = Number(raw);
  return raw !== "" && Number.isFinite(n) ? n : raw;
}

// One row per numeric parameter: searched when its box is ticked, over min..max by step. Inputs are
// named as the API's errors name them (space.<name>.min, …), so each message lands at its input.
function spaceRows(schema) {
  const props = Object.entries(schema?.parameters?.properties || {})
    .filter(([, spec]) => spec.type === "integer" || spec.type === "number")
    .map(([name, spec]) => [name, spec.type, spec.default ?? null]);
  return [...props, ...SIZING].map(([name, type, dflt]) => {
    const on = h("input", { type: "checkbox", name: `space.${name}`, dataset: { search: name } });
    const box = (part, value) => h("input", { name: `space.${name}.${part}`, value: value === null ? "" : String(value),
      inputmode: type === "integer" ? "numeric" : "decimal", dataset: { part } });
    return h("div", { class: "space-row", dataset: { param: name, type } },
      field(name, on),
      field("min", box("min", dflt)), field("max", box("max", dflt)), field("step", box("step", type === "integer" ? 1 : "")));
  });
}

export function optimizationRequest(form, strategy, spaceBox) {
  const v = formValues(form);
  const space = {};
  for (const row of spaceBox.querySelectorAll(".space-row")) {
    const name = row.dataset.param;
    if (!row.querySelector("input[data-search]").checked) continue;
    const dim = {};
    for (const part of ["min", "max", "step"]) {
      const raw = row.querySelector(`input[data-part="${part}"]`).value.trim();
      if (raw !== "") dim[part] = typed(raw);
    }
    space[name] = dim;
  }
  const fixed = strategy.values();
  for (const name of ["order_size_pct", "leverage", "stop_loss_pct", "take_profit_pct"]) {
    if (v[`fixed_${name}`] !== undefined && v[`fixed_${name}`] !== "") fixed[name] = typed(v[`fixed_${name}`]);
  }
  fixed.allow_short = v.fixed_allow_short;
  for (const name of Object.keys(space)) delete fixed[name]; // searched, so not fixed
  const body = { symbol: v.symbol, timeframe: v.timeframe, strategy: strategy.strategy(), start_time: isoUtc(v.start_time),
    end_time: isoUtc(v.end_time), space, fixed, objective: v.objective, method: v.method };
  for (const name of NUMBERS) if (v[name] !== "") body[name] = typed(v[name]);
  return body;
}

export async function optimizationsPage() {
  const [tfs, choices] = await Promise.all([timeframes().catch(() => ["1m"]), strategies()]);
  const strategy = strategyFields(choices);
  const spaceBox = h("div", { class: "space", id: "optimization-space" });
  const renderSpace = () => {
    const schema = choices.find((s) => s.name === strategy.strategy());
    spaceBox.replaceChildren(...spaceRows(schema));
    spaceBox.dataset.strategy = strategy.strategy();
  };
  strategy.picker.querySelector("select").addEventListener("change", renderSpace);
  renderSpace();
  const now = new Date();
  const dayAgo = new Date(now.getTime() - 24 * 3600 * 1000);
  const local = (d) => d.toISOString().slice(0, 16);
  const form = h("form", { class: "form", id: "optimization-form", novalidate: true },
    h("div", { class: "form-grid" },
      field("Symbol", h("input", { name: "symbol", value: "BTC/USDT:USDT", spellcheck: "false" })),
      field("Timeframe", h("select", { name: "timeframe" }, tfs.map((t) => h("option", { value: t }, t)))),
      field("From (UTC)", h("input", { name: "start_time", type: "datetime-local", value: local(dayAgo) })),
      field("To (UTC)", h("input", { name: "end_time", type: "datetime-local", value: local(now) })),
      field("Objective", h("select", { name: "objective" }, OBJECTIVES.map(([k, label]) => h("option", { value: k }, label)))),
      field("Method", h("select", { name: "method" }, h("option", { value: "grid" }, "Grid (every point)"),
        h("option", { value: "random" }, "Random"), h("option", { value: "tpe" }, "TPE (Optuna)"))),
      field("Max trials", h("input", { name: "max_trials", value: "100", inputmode: "numeric" })),
      field("Held-out share", h("input", { name: "test_fraction", value: "0.3", inputmode: "decimal" }), "the last part of the range, never searched"),
      field("Seed", h("input", { name: "seed", value: "0", inputmode: "numeric" })),
      field("Initial balance", h("input", { name: "initial_balance", value: "10000", inputmode: "decimal" })),
      field("Fee rate", h("input", { name: "fee_rate", value: "0.0004", inputmode: "decimal" })),
      field("Slippage, bps", h("input", { name: "slippage_bps", value: "0", inputmode: "decimal" }))),
    h("h2", { class: "form-section" }, "Strategy and the values held fixed"),
    strategy.picker,
    strategy.parameters,
    h("div", { class: "form-grid" },
      field("Order size, %", h("input", { name: "fixed_order_size_pct", value: "10", inputmode: "decimal" })),
      field("Leverage", h("input", { name: "fixed_leverage", value: "1", inputmode: "numeric" })),
      field("Stop loss, %", h("input", { name: "fixed_stop_loss_pct", inputmode: "decimal", placeholder: "none" })),
      field("Take profit, %", h("input", { name: "fixed_take_profit_pct", inputmode: "decimal", placeholder: "none" })),
      field("Allow short positions", h("input", { name: "fixed_allow_short", type: "checkbox" }))),
    h("h2", { class: "form-section" }, "Search space: tick what to search, from min to max by step"),
    spaceBox,
    h("div", { class: "form-actions" }, h("button", { class: "btn", type: "submit" }, "Run optimisation")));

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    try {
      const created = await api("POST", "/optimizations", optimizationRequest(form, strategy, spaceBox));
      location.assign(`/optimizations/${created.id}`);
    } catch (err) {
      // A fixed value's error names fixed.<name>: the strategy's input, or the sizing input beside it.
      if (err.errors) for (const x of err.errors) x.field = String(x.field || "").replace(/^fixed\.(order_size_pct|leverage|stop_loss_pct|take_profit_pct|allow_short)$/, "fixed_$1").replace(/^fixed\./, "parameters.");
      showProblem(form, err);
    }
  });

  const tbody = h("tbody", {}, h("tr", {}, h("td", { colspan: 7, class: "empty" }, "Loading…")));
  mount(
    pageHead("Optimise"),
    h("section", { class: "panel" }, h("h2", {}, "New optimisation"), form),
    h("section", { class: "panel flush" }, h("h2", {}, "History"),
      h("div", { class: "table-wrap" }, h("table", { id: "optimizations-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Market"), h("th", {}, "Search"), h("th", {}, "Status"),
          h("th", { class: "num" }, "Trials"), h("th", { class: "num" }, "Best score"), h("th", {}, "Created"))),
        tbody))));

  let items;
  try {
    items = await listAll("/optimizations", 200);
  } catch (err) {
    tbody.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "empty" }, `Optimisations unavailable: ${err.message}`)));
    return;
  }
  tbody.replaceChildren(...(items.length ? items.map((o) => h("tr", { dataset: { optimizationId: o.id } },
    h("td", {}, h("a", { href: `/optimizations/${o.id}` }, `#${o.id}`)),
    h("td", {}, `${o.symbol} `, h("span", { class: "muted" }, `${o.timeframe} · ${o.strategy}`)),
    h("td", { class: "muted" }, `${o.method} · ${o.objective} · ${Object.keys(o.space).join(", ")}`),
    h("td", {}, badge(o.status)),
    h("td", { class: "num" }, `${o.progress.done} / ${o.progress.total}`),
    h("td", { class: "num" }, o.best && o.best.score !== null ? num(o.best.score, 4) : "—"),
    h("td", { class: "muted" }, time(o.created_at))))
    : [h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No optimisations yet."))]));
}
