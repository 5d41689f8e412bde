// DOM helpers. Text from the API only ever goes in through text nodes (textContent), never innerHTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function setText(el, value) {
  el.textContent = value === null || value === undefined ? "" : String(value);
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function mount(...children) {
  const root = document.getElementById("app");
  root.replaceChildren();
  append(root, children);
  return root;
}

// ---- formatting -------------------------------------------------------------------------------

export function num(value, digits = 2) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "—";
  return Number(value).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function price(value) {
  if (value === null || value === undefined) return "—";
  const v = Number(value);
  const digits = Math.abs(v) >= 1000 ? 2 : Math.abs(v) >= 1 ? 4 : 6;
  return num(v, digits);
}

export function amount(value) {
  if (value === null || value === undefined) return "—";
  return Number(value).toLocaleString("en-US", { maximumFractionDigits: 8 });
}

export function signed(value, digits = 2) {
  if (value === null || value === undefined) return "—";
  const v = Number(value);
  return (v > 0 ? "+" : "") + num(v, digits);
}

export function pct(value, digits = 2) {
  if (value === null || value === undefined) return "—";
  return `${signed(value, digits)}%`;
}

export function signClass(value) {
  const v = Number(value);
  return v > 0 ? "up" : v < 0 ? "down" : "";
}

export function time(value) {
  if (!value) return "—";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toISOString().replace("T", " ").slice(0, 19);
}

export function badge(text, kind = text) {
  return h("span", { class: `badge ${String(kind || "").replace(/[^a-z_-]/gi, "")}` }, text);
}

// The mark of everything virtual: a paper bot, and its trades, orders and positions.
export function paperBadge(paper) {
  return paper ? h("span", { class: "badge paper", title: "paper trading: virtual balance, nothing on the exchange" }, "PAPER") : null;
}

// ---- forms ----------------------------------------------------------------------------------

// A labelled field; `name` ties it to the API's errors[].field.
export function field(label, input, hint) {
  const wrap = h("label", { class: input.type === "checkbox" ? "field check" : "field", dataset: { field: input.name } });
  if (input.type === "checkbox") wrap.append(input, h("span", {}, label));
  else wrap.append(h("span", {}, label), input);
  if (hint) wrap.append(h("small", { class: "hint" }, hint));
  return wrap;
}

export function clearErrors(form) {
  for (const el of form.querySelectorAll(".field-error, .form-error, .form-ok")) el.remove();
  for (const el of form.querySelectorAll(".field.invalid")) el.classList.remove("invalid");
}

// The field an error names: its exact input ("parameters.rsi_period"), else the one named by its
// last part (a backtest's "parameters.leverage" is the form's "leverage" input).
function fieldFor(form, path) {
  if (!path) return null;
  const exact = form.querySelector(`.field[data-field="${CSS.escape(path)}"]`);
  if (exact) return exact;
  const name = path.split(".").pop();
  return form.querySelector(`.field[data-field="${CSS.escape(name)}"]`);
}

// Render a problem: each errors[] entry next to its field, the rest (and the detail) at the top.
export function showProblem(form, err) {
  clearErrors(form);
  const errors = err && err.errors ? err.errors : [];
  const unplaced = [];
  for (const e of errors) {
    const wrap = fieldFor(form, String(e.field || ""));
    if (wrap) {
      wrap.classList.add("invalid");
      wrap.append(h("small", { class: "field-error", role: "alert" }, e.message));
    } else {
      unplaced.push(e.field ? `${e.field}: ${e.message}` : e.message);
    }
  }
  if (!errors.length || unplaced.length) {
    const text = unplaced.length ? unplaced.join("; ") : (err && err.message) || "Something went wrong";
    form.prepend(h("div", { class: "form-error", role: "alert" }, text));
  }
}

export function showOk(form, text) {
  clearErrors(form);
  form.prepend(h("div", { class: "form-ok", role: "status" }, text));
}

export function formValues(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === "checkbox") out[el.name] = el.checked;
    else out[el.name] = el.value.trim();
  }
  return out;
}

export function pageHead(title, ...right) {
  document.title = `${title} · tradebot`;
  return h("div", { class: "page-head" }, h("h1", {}, title), h("div", { class: "spacer" }), ...right);
}
