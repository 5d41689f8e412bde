// The strategy picker and its parameter form, generated from each strategy's JSON Schema
// (GET /api/v1/strategies: type, minimum, maximum, default, description), for bots and backtests.
// Inputs are named "parameters.<name>", the field the API's 422 errors name, so showProblem puts
// each message next to its input. The API validates; the form only turns numbers into numbers.
import { api } from "./api.js";
import { field, h } from "./dom.js";

let strategiesPromise = null;

// The registered strategies (built-ins and this replica's plugins), fetched once per page.
export function strategies() {
  strategiesPromise ??= api("GET", "/strategies")
    .then((page) => page.items)
    .catch((e) => {
      strategiesPromise = null;
      throw e;
    });
  return strategiesPromise;
}

function label(name) {
  const text = name.replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function hint(spec) {
  const parts = [];
  if (spec.description) parts.push(spec.description);
  if (spec.minimum !== undefined && spec.maximum !== undefined) parts.push(`${spec.minimum} – ${spec.maximum}`);
  if (spec.default !== undefined) parts.push(`default ${spec.default}`);
  return parts.join(" · ");
}

function parameterInput(name, spec, value) {
  const attrs = { name: `parameters.${name}`, dataset: { param: name, type: spec.type } };
  if (spec.type === "boolean") return h("input", { ...attrs, type: "checkbox", checked: Boolean(value) });
  const shown = value === undefined || value === null ? "" : String(value);
  return h("input", {
    ...attrs,
    value: shown,
    placeholder: spec.default === undefined ? "" : String(spec.default),
    inputmode: spec.type === "integer" ? "numeric" : "decimal",
    spellcheck: "false",
  });
}

// A number typed as a number; anything else as typed, so the API's own message names the problem.
function parameterValue(input) {
  if (input.dataset.type === "boolean") return input.checked;
  const raw = input.value.trim();
  if (raw === "") return undefined; // omitted: the API fills in the default and echoes it
  if (input.dataset.type === "integer" || input.dataset.type === "number") {
    const n = Number(raw);
    return Number.isFinite(n) ? n : raw;
  }
  return raw;
}

// A picker (select name="strategy") and the parameters of the chosen strategy below it.
// `initial` is {strategy, parameters} (a bot or backtest being edited or repeated).
export function strategyFields(items, initial = {}) {
  const byName = new Map(items.map((s) => [s.name, s]));
  // A bot of a strategy this replica does not have (a plugin uninstalled) keeps it and its
  // parameters as they are: picking another one is the user's decision, never the form's.
  const missing = initial.strategy && !byName.has(initial.strategy);
  if (missing) {
    items = [...items, { name: initial.strategy, title: `${initial.strategy} (not installed)`, parameters: { properties: {} }, defaults: {},
      description: "This strategy is not installed on this replica: its parameters cannot be edited here." }];
    byName.set(initial.strategy, items[items.length - 1]);
  }
  const first = byName.has(initial.strategy) ? initial.strategy : (byName.has("ema_cross") ? "ema_cross" : items[0]?.name);
  const select = h("select", { name: "strategy", id: "strategy-picker" },
    items.map((s) => h("option", { value: s.name, selected: s.name === first }, s.title || s.name)));
  const about = h("small", { class: "hint", id: "strategy-description" });
  const box = h("div", { class: "form-grid strategy-parameters", id: "strategy-parameters" });

  function render(name) {
    const s = byName.get(name);
    about.textContent = s ? s.description : "";
    box.dataset.strategy = name || "";
    const props = (s && s.parameters && s.parameters.properties) || {};
    // The bot's own values when it is shown with its own strategy; otherwise the new one's defaults.
    const values = name === initial.strategy ? { ...(s?.defaults || {}), ...(initial.parameters || {}) } : { ...(s?.defaults || {}) };
    box.replaceChildren(...Object.entries(props).map(([p, spec]) =>
      field(label(p), parameterInput(p, spec, values[p]), hint(spec))));
    if (!Object.keys(props).length && !(missing && name === initial.strategy)) {
      box.append(h("p", { class: "muted" }, "This strategy has no parameters."));
    }
  }

  select.addEventListener("change", () => render(select.value));
  render(first);

  return {
    picker: h("div", { class: "strategy-picker" }, field("Strategy", select), about),
    parameters: box,
    strategy: () => select.value,
    // The typed parameters of the chosen strategy (omitted ones left to the API's defaults).
    values() {
      if (missing && select.value === initial.strategy) return { ...(initial.parameters || {}) };
      const out = {};
      for (const input of box.querySelectorAll("input[data-param]")) {
        const v = parameterValue(input);
        if (v !== undefined) out[input.dataset.param] = v;
      }
      return out;
    },
  };
}

// A strategy and its parameters in a few characters, for lists: "macd_cross 12/26/9".
export function strategyLabel(name, parameters) {
  const values = Object.values(parameters || {});
  return values.length ? `${name} ${values.join("/")}` : String(name || "");
}
