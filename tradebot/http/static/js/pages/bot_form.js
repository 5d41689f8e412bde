// Create or edit a bot. The API validates; its problem+json errors[] are shown next to each field.
import { api, listAll, timeframes } from "../api.js";
import { clearErrors, field, formValues, h, mount, pageHead, showProblem } from "../dom.js";

const INTS = new Set(["api_key_id", "ema_period", "leverage", "max_daily_trades"]);
const FLOATS = new Set(["order_size_pct", "max_daily_loss_pct", "stop_loss_pct", "take_profit_pct"]);
const NULLABLE = new Set(["stop_loss_pct", "take_profit_pct"]);

// Numbers as numbers, anything else as typed, so the API's own message names the problem.
function coerce(name, raw) {
  if (typeof raw !== "string") return raw;
  if (INTS.has(name) || FLOATS.has(name)) {
    if (raw === "") return NULLABLE.has(name) ? null : undefined;
    const n = Number(raw);
    return Number.isFinite(n) ? n : raw;
  }
  return raw;
}

function settingsFrom(form) {
  const out = {};
  for (const [name, raw] of Object.entries(formValues(form))) {
    const v = coerce(name, raw);
    if (v !== undefined) out[name] = v;
  }
  return out;
}

export async function botFormPage(id) {
  const [keys, bot, markets, tfs] = await Promise.all([
    listAll("/api-keys"),
    id ? api("GET", `/bots/${id}`) : null,
    api("GET", "/markets?limit=500").then((p) => p.items).catch(() => []),
    timeframes().catch(() => null),
  ]);
  const v = bot || { name: "", symbol: "BTC/USDT:USDT", strategy: "ema_cross", timeframe: "1m", ema_period: 20, leverage: 1,
    order_size_pct: 10, allow_short: false, max_daily_trades: 50, max_daily_loss_pct: 5, stop_loss_pct: null, take_profit_pct: null,
    api_key_id: keys.length ? keys[0].id : "" };
  const val = (x) => (x === null || x === undefined ? "" : String(x));

  const keySelect = h("select", { name: "api_key_id" },
    keys.map((k) => h("option", { value: k.id, selected: k.id === v.api_key_id }, `${k.label} (••••${k.api_key_hint})`)));
  const datalist = h("datalist", { id: "symbols" }, markets.map((m) => h("option", { value: m.symbol })));
  const form = h("form", { class: "form", id: "bot-form", novalidate: true },
    h("div", { class: "form-grid" },
      field("Name", h("input", { name: "name", value: v.name, maxlength: 200, placeholder: "My BTC bot" })),
      field("Exchange key", keySelect, keys.length ? null : "Add an exchange key first"),
      field("Symbol", h("input", { name: "symbol", value: v.symbol, list: "symbols", spellcheck: "false" }), "BTC/USDT:USDT or BTCUSDT"),
      field("Strategy", h("select", { name: "strategy" }, h("option", { value: "ema_cross" }, "EMA cross"))),
      field("Timeframe", h("select", { name: "timeframe" }, (tfs || [v.timeframe]).map((t) => h("option", { value: t, selected: t === v.timeframe }, t)))),
      field("EMA period", h("input", { name: "ema_period", value: val(v.ema_period), inputmode: "numeric" }), "2 – 1000"),
      field("Leverage", h("input", { name: "leverage", value: val(v.leverage), inputmode: "numeric" })),
      field("Order size, % of balance", h("input", { name: "order_size_pct", value: val(v.order_size_pct), inputmode: "decimal" })),
      field("Max trades a day", h("input", { name: "max_daily_trades", value: val(v.max_daily_trades), inputmode: "numeric" })),
      field("Max daily loss, %", h("input", { name: "max_daily_loss_pct", value: val(v.max_daily_loss_pct), inputmode: "decimal" })),
      field("Stop loss, %", h("input", { name: "stop_loss_pct", value: val(v.stop_loss_pct), inputmode: "decimal", placeholder: "none" })),
      field("Take profit, %", h("input", { name: "take_profit_pct", value: val(v.take_profit_pct), inputmode: "decimal", placeholder: "none" })),
      field("Allow short positions", h("input", { name: "allow_short", type: "checkbox", checked: v.allow_short }))),
    datalist,
    h("div", { class: "form-actions" },
      h("button", { class: "btn", type: "submit" }, bot ? "Save changes" : "Create bot"),
      h("a", { class: "btn btn-ghost", href: bot ? `/bots/${bot.id}` : "/bots" }, "Cancel")));

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const settings = settingsFrom(form);
    try {
      let saved;
      if (bot) {
        // Only what changed: symbol and key may change only while the bot is stopped.
        const changes = {};
        for (const [k, x] of Object.entries(settings)) if (x !== bot[k]) changes[k] = x;
        saved = Object.keys(changes).length ? await api("PATCH", `/bots/${bot.id}`, changes) : bot;
      } else {
        for (const name of NULLABLE) if (settings[name] === null) delete settings[name];
        saved = await api("POST", "/bots", settings);
      }
      location.assign(`/bots/${saved.id}`);
    } catch (err) {
      showProblem(form, err);
    }
  });

  mount(
    h("div", { class: "crumbs" }, h("a", { href: "/bots" }, "Bots"), " / ", bot ? (bot.name || `Bot #${bot.id}`) : "New"),
    pageHead(bot ? "Edit bot" : "New bot"),
    h("section", { class: "panel" }, form));
}
