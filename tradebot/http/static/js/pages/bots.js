// The bots list with live status: one status stream for all the user's bots (a browser allows only a
// few connections per host, so one stream per bot left most rows without it); polled only while that
// stream is down.
import { api, listAll, userStatusStream } from "../api.js";
import { amount, badge, h, mount, num, pageHead, paperBadge, price, signClass, signed } from "../dom.js";
import { strategyLabel } from "../strategy_form.js";

const POLL_MS = 5000;

export function lifecycleButtons(bot, status, onDone, onError) {
  const running = ["running", "starting", "paused", "error"].includes(status);
  const busy = status === "stopping" || status === "starting";
  const buttons = [];
  const act = (label, cls, path, body) => {
    const b = h("button", { class: `btn btn-sm ${cls}`, type: "button", dataset: { action: label.toLowerCase().replace(/[^a-z]+/g, "-") } }, label);
    b.disabled = busy;
    b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        await api("POST", `/bots/${bot.id}/${path}`, body);
        onDone();
      } catch (err) {
        onError(err);
        b.disabled = false;
      }
    });
    return b;
  };
  if (!running || status === "error") buttons.push(act("Start", "btn-up", "start"));
  if (running) {
    buttons.push(act("Stop", "btn-ghost", "stop", { close_position: false }));
    buttons.push(act("Stop & close", "btn-down", "stop", { close_position: true }));
  }
  return buttons;
}

export function positionCell(state) {
  if (!state.in_position) return h("span", { class: "muted" }, "flat");
  return h("span", {}, badge(state.position_side, state.position_side), " ", h("span", { class: "num" }, amount(state.position_size)));
}

export async function botsPage() {
  const tbody = h("tbody");
  const summary = h("div", { class: "stats", id: "bots-summary" });
  let source = null;
  let streamed = new Set(); // the bots the open stream carries: the user's bots when it connected
  const rows = new Map();
  mount(
    pageHead("Bots", h("a", { class: "btn", href: "/bots/new" }, "+ New bot")),
    summary,
    h("section", { class: "panel flush" },
      h("div", { class: "table-wrap" },
        h("table", { id: "bots-table" },
          h("thead", {}, h("tr", {},
            h("th", {}, "Bot"), h("th", {}, "Market"), h("th", {}, "Status"), h("th", {}, "Position"),
            h("th", { class: "num" }, "Entry price"), h("th", { class: "num" }, "Daily PnL"),
            h("th", { class: "num" }, "Daily trades"), h("th", { class: "num" }, "Paper equity"), h("th", {}, "Last error"),
            h("th", { class: "num" }, ""))),
          tbody))));

  function renderSummary() {
    const states = [...bots.values()].map((b) => b.state);
    const pnl = states.reduce((sum, s) => sum + Number(s.daily_pnl || 0), 0);
    const stat = (label, value, cls = "") => h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: `value ${cls}` }, value));
    summary.replaceChildren(
      stat("Bots", num(states.length, 0)),
      stat("Running", num(states.filter((s) => s.status === "running").length, 0), states.some((s) => s.status === "running") ? "up" : ""),
      stat("In position", num(states.filter((s) => s.in_position).length, 0)),
      stat("Daily PnL", signed(pnl), signClass(pnl)),
      stat("Trades today", num(states.reduce((sum, s) => sum + Number(s.daily_trades_count || 0), 0), 0)),
      stat("With errors", num(states.filter((s) => s.status === "error").length, 0), states.some((s) => s.status === "error") ? "down" : ""));
  }

  function render(bot, state) {
    const tr = rows.get(bot.id) || h("tr", { dataset: { botId: bot.id } });
    rows.set(bot.id, tr);
    const live = isLive(bot.id);
    renderSummary();
    const errorCell = h("td", { class: "error-box", dataset: { col: "error" } }, state.last_error_message || "");
    tr.replaceChildren(
      h("td", {}, h("span", { class: `live-dot${live ? " on" : ""}`, title: live ? "live" : "polling" }),
        h("a", { class: "bot-name", href: `/bots/${bot.id}` }, bot.name || `Bot #${bot.id}`), " ", paperBadge(bot.mode === "paper")),
      h("td", {}, h("span", {}, bot.symbol), " ", h("span", { class: "muted" }, `${bot.timeframe} · ${strategyLabel(bot.strategy, bot.parameters)}`)),
      h("td", { dataset: { col: "status" } }, badge(state.status)),
      h("td", { dataset: { col: "position" } }, positionCell(state)),
      h("td", { class: "num", dataset: { col: "entry" } }, price(state.entry_price)),
      h("td", { class: `num ${signClass(state.daily_pnl)}`, dataset: { col: "pnl" } }, signed(state.daily_pnl)),
      h("td", { class: "num", dataset: { col: "trades" } }, num(state.daily_trades_count, 0)),
      h("td", { class: "num", dataset: { col: "equity" } }, bot.mode === "paper" ? num(state.equity) : ""),
      errorCell,
      h("td", { class: "num" }, h("div", { class: "actions" },
        ...lifecycleButtons(bot, state.status, () => refresh(), (err) => { errorCell.textContent = err.message; }),
        h("a", { class: "btn btn-ghost btn-sm", href: `/bots/${bot.id}/edit` }, "Edit"))));
    return tr;
  }

  const bots = new Map();
  const isLive = (botId) => source !== null && source.readyState === EventSource.OPEN && streamed.has(botId);

  function connect() {
    if (source) source.close();
    streamed = new Set(bots.keys());
    source = userStatusStream({
      state: (state) => {
        const entry = bots.get(state.bot_id);
        if (!entry) return;
        entry.state = state;
        render(entry.bot, state);
      },
      open: () => { for (const entry of bots.values()) render(entry.bot, entry.state); },
      error: () => { for (const entry of bots.values()) render(entry.bot, entry.state); },
    });
  }

  async function refresh() {
    const list = await listAll("/bots");
    tbody.replaceChildren();
    renderSummary();
    if (!list.length) {
      tbody.append(h("tr", {}, h("td", { colspan: 10, class: "empty" }, "No bots yet. ", h("a", { href: "/bots/new" }, "Create your first bot"), ".")));
    }
    for (const bot of list) {
      const known = bots.get(bot.id);
      bots.set(bot.id, { bot, state: known && isLive(bot.id) ? known.state : bot.state });
      tbody.append(render(bot, bots.get(bot.id).state));
    }
    for (const id of [...bots.keys()]) if (!list.some((b) => b.id === id)) bots.delete(id);
    // A bot the stream does not carry (created since it connected): connect again to include it.
    const closed = source === null || source.readyState === EventSource.CLOSED;
    if (closed || list.some((b) => !streamed.has(b.id))) connect();
  }

  await refresh();
  setInterval(() => { if (!source || source.readyState !== EventSource.OPEN) refresh().catch(() => {}); }, POLL_MS);
  addEventListener("pagehide", () => { if (source) source.close(); });
}
