// Create or edit a bot. The strategy picker and its parameters come from GET /strategies (each
// strategy's JSON Schema); the API validates, and its problem+json errors[] are shown next to each
// field (a strategy parameter's as `parameters.<name>`). A new bot trades on paper unless the user
// picks live; going live is an edit of a stopped bot, confirmed with the name of the key that will trade.
import { api, listAll, timeframes } from "../api.js";
import { clearErrors, field, formValues, h, mount, pageHead, showProblem } from "../dom.js";
import { strategies, strategyFields } from "../strategy_form.js";

const INTS = new Set(["api_key_id", "leverage", "max_daily_trades"]);
const FLOATS = new Set(["order_size_pct", "max_daily_loss_pct", "stop_loss_pct", "take_profit_pct",
  "paper_balance", "paper_fee_rate", "paper_slippage_bps"]);
const PAPER_FIELDS = ["paper_balance", "paper_fee_rate", "paper_slippage_bps"];
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

function settingsFrom(form, strategy) {
  const out = {};
  const values = formValues(form);
  for (const [name, raw] of Object.entries(values)) {
    if (name.startsWith("parameters.")) continue; // the strategy's own, typed by its schema
    // A live bot's paper settings stay as they are (hidden, so never what the user meant to send).
    if (values.mode !== "paper" && PAPER_FIELDS.includes(name)) continue;
    const v = coerce(name, raw);
    if (v !== undefined) out[name] = v;
  }
  out.strategy = strategy.strategy();
  out.parameters = strategy.values();
  return out;
}

function sameParameters(a, b) {
  return Object.entries(a).every(([k, v]) => b && b[k] === v);
}

function keyName(key) {
  return `${key.label} (••••${key.api_key_hint})`;
}

export async function botFormPage(id) {
  const [keys, bot, markets, tfs, items] = await Promise.all([
    listAll("/api-keys"),
    id ? api("GET", `/bots/${id}`) : null,
    api("GET", "/markets?limit=500").then((p) => p.items).catch(() => []),
    timeframes().catch(() => null),
    strategies(),
  ]);
  const v = bot || { name: "", symbol: "BTC/USDT:USDT", strategy: "ema_cross", parameters: {}, timeframe: "1m", leverage: 1,
    order_size_pct: 10, allow_short: false, max_daily_trades: 50, max_daily_loss_pct: 5, stop_loss_pct: null, take_profit_pct: null,
    mode: "paper", paper_balance: 10000, paper_fee_rate: 0.0004, paper_slippage_bps: 1,
    api_key_id: keys.length ? keys[0].id : "" };
  const val = (x) => (x === null || x === undefined ? "" : String(x));

  // "No key" is a choice only on paper (the API asks a live bot for its key, naming api_key_id).
  const noKey = h("option", { value: "", selected: v.api_key_id === null || v.api_key_id === "" }, "No key (paper only)");
  const keySelect = h("select", { name: "api_key_id" }, noKey,
    keys.map((k) => h("option", { value: k.id, selected: k.id === v.api_key_id }, keyName(k))));
  const modeSelect = h("select", { name: "mode", id: "bot-mode" },
    h("option", { value: "paper", selected: v.mode === "paper" }, "Paper (virtual balance, no exchange orders)"),
    h("option", { value: "live", selected: v.mode === "live" }, "Live (real orders with the key below)"));
  const paperBox = h("div", { class: "form-grid", id: "paper-settings" },
    field("Paper balance", h("input", { name: "paper_balance", value: val(v.paper_balance), inputmode: "decimal" }), "starting free balance, quote currency"),
    field("Paper fee rate", h("input", { name: "paper_fee_rate", value: val(v.paper_fee_rate), inputmode: "decimal" }), "× notional per fill"),
    field("Paper slippage, bps", h("input", { name: "paper_slippage_bps", value: val(v.paper_slippage_bps), inputmode: "decimal" })));
  const modeNote = h("small", { class: "hint", id: "mode-note" });
  function showMode() {
    const paper = modeSelect.value === "paper";
    paperBox.hidden = !paper;
    noKey.disabled = !paper;
    if (!paper && keySelect.value === "" && keys.length) keySelect.value = String(keys[0].id);
    modeNote.textContent = paper ? "Paper: fills are simulated at the candle's close; nothing reaches the exchange."
      : "Live: this bot places real orders on the exchange with the selected key.";
  }
  modeSelect.addEventListener("change", showMode);
  // "Go live…" on a stopped paper bot's page lands here with live chosen; saving still asks.
  if (bot && bot.mode === "paper" && new URLSearchParams(location.search).get("mode") === "live") modeSelect.value = "live";
  const datalist = h("datalist", { id: "symbols" }, markets.map((m) => h("option", { value: m.symbol })));
  const strategy = strategyFields(items, { strategy: v.strategy, parameters: v.parameters });
  const form = h("form", { class: "form", id: "bot-form", novalidate: true },
    h("div", { class: "form-grid" },
      field("Mode", modeSelect),
      field("Name", h("input", { name: "name", value: v.name, maxlength: 200, placeholder: "My BTC bot" })),
      field("Exchange key", keySelect, keys.length ? null : "Paper bots need none; live ones need a key"),
      field("Symbol", h("input", { name: "symbol", value: v.symbol, list: "symbols", spellcheck: "false" }), "BTC/USDT:USDT or BTCUSDT"),
      field("Timeframe", h("select", { name: "timeframe" }, (tfs || [v.timeframe]).map((t) => h("option", { value: t, selected: t === v.timeframe }, t)))),
      field("Leverage", h("input", { name: "leverage", value: val(v.leverage), inputmode: "numeric" })),
      field("Order size, % of balance", h("input", { name: "order_size_pct", value: val(v.order_size_pct), inputmode: "decimal" })),
      field("Max trades a day", h("input", { name: "max_daily_trades", value: val(v.max_daily_trades), inputmode: "numeric" })),
      field("Max daily loss, %", h("input", { name: "max_daily_loss_pct", value: val(v.max_daily_loss_pct), inputmode: "decimal" })),
      field("Stop loss, %", h("input", { name: "stop_loss_pct", value: val(v.stop_loss_pct), inputmode: "decimal", placeholder: "none" })),
      field("Take profit, %", h("input", { name: "take_profit_pct", value: val(v.take_profit_pct), inputmode: "decimal", placeholder: "none" })),
      field("Allow short positions", h("input", { name: "allow_short", type: "checkbox", checked: v.allow_short }))),
    modeNote,
    paperBox,
    h("h2", { class: "form-section" }, "Strategy"),
    strategy.picker,
    strategy.parameters,
    datalist,
    h("div", { class: "form-actions" },
      h("button", { class: "btn", type: "submit" }, bot ? "Save changes" : "Create bot"),
      h("a", { class: "btn btn-ghost", href: bot ? `/bots/${bot.id}` : "/bots" }, "Cancel")));

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const settings = settingsFrom(form, strategy);
    try {
      let saved;
      if (bot) {
        // Only what changed: symbol and key may change only while the bot is stopped. PATCH merges
        // parameters key by key, and a new strategy starts from its defaults plus those sent.
        const changes = {};
        for (const [k, x] of Object.entries(settings)) {
          if (k === "parameters") {
            if (settings.strategy !== bot.strategy || !sameParameters(x, bot.parameters)) changes.parameters = x;
          } else if (x !== bot[k]) changes[k] = x;
        }
        if (changes.mode === "live" && !confirmGoLive(bot, changes, keys)) return;
        saved = Object.keys(changes).length ? await api("PATCH", `/bots/${bot.id}`, changes) : bot;
      } else {
        for (const name of NULLABLE) if (settings[name] === null) delete settings[name];
        if (settings.mode === "live" && !confirmLive(settings, keys)) return;
        saved = await api("POST", "/bots", settings);
      }
      location.assign(`/bots/${saved.id}`);
    } catch (err) {
      showProblem(form, err);
    }
  });

  showMode();
  mount(
    h("div", { class: "crumbs" }, h("a", { href: "/bots" }, "Bots"), " / ", bot ? (bot.name || `Bot #${bot.id}`) : "New"),
    pageHead(bot ? "Edit bot" : "New bot"),
    h("section", { class: "panel" }, form));
}

function keyLabel(keys, id) {
  const key = keys.find((k) => k.id === id);
  return key ? keyName(key) : `key #${id}`;
}

// Going live on an existing bot: an explicit step, named with the key whose money will trade. A live
// bot without a key is left to the API, whose 422 names api_key_id.
function confirmGoLive(bot, changes, keys) {
  const id = changes.api_key_id ?? bot.api_key_id;
  if (id === null || id === undefined) return true;
  return confirm(`Go live with "${bot.name || `Bot #${bot.id}`}"? From its next start it places real orders on the exchange `
    + `with the API key ${keyLabel(keys, id)}. Its paper trades stay in the history.`);
}

function confirmLive(settings, keys) {
  if (settings.api_key_id === undefined) return true;
  return confirm(`Create a live bot? Once started it places real orders on the exchange with the API key ${keyLabel(keys, settings.api_key_id)}.`);
}
