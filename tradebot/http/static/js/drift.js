// A bot's drift report (live versus a backtest replay of its own candles): the nightly job's last one
// (GET /bots/{id}/drift/last) on load, and a fresh one over the last 24 h on request (GET /bots/{id}/drift).
import { api } from "./api.js";
import { amount, badge, h, num, price, signClass, signed, time } from "./dom.js";

function stat(label, value, col, cls = "") {
  return h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: `value ${cls}`, dataset: { col } }, value));
}

const STATUS_KIND = { matched: "done", missing: "error", extra: "pending" };

function renderReport(box, report, origin) {
  const s = report.summary;
  const rows = report.trades.map((t) => h("tr", { dataset: { status: t.status } },
    h("td", { class: "muted" }, time(t.decided_at)),
    h("td", { class: t.side === "buy" ? "up" : "down" }, t.side.toUpperCase()),
    h("td", {}, badge(t.status, STATUS_KIND[t.status] || t.status)),
    h("td", { class: "num" }, amount(t.amount)),
    h("td", { class: "num" }, price(t.expected_price)),
    h("td", { class: "num" }, price(t.actual_price)),
    h("td", { class: "num" }, t.slippage_bps === null ? "—" : num(t.slippage_bps, 2)),
    h("td", { class: "num" }, t.fee_difference === null ? "—" : num(t.fee_difference, 4))));
  box.replaceChildren(...[
    h("p", { class: "muted", id: "drift-window" }, `${origin}: ${time(report.since)} → ${time(report.until)}`),
    report.warning ? h("div", { class: "error-box", role: "alert" }, report.warning) : null,
    h("div", { class: "stats", id: "drift-summary" },
      stat("Matched fills", num(s.matched, 0), "matched"),
      stat("Missing signals", num(s.missing_signals, 0), "missing", s.missing_signals ? "down" : ""),
      stat("Extra signals", num(s.extra_signals, 0), "extra", s.extra_signals ? "down" : ""),
      stat("Mean slippage, bps", s.mean_slippage_bps === null ? "—" : num(s.mean_slippage_bps, 2), "slippage"),
      stat("Fee difference", num(s.fee_difference, 4), "fees"),
      stat("PnL gap", signed(s.pnl_gap), "pnl-gap", signClass(s.pnl_gap)),
      stat("PnL gap, bps", num(s.pnl_gap_bps, 2), "pnl-gap-bps")),
    h("div", { class: "table-wrap" }, h("table", { id: "drift-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Decided at"), h("th", {}, "Side"), h("th", {}, "Fill"), h("th", { class: "num" }, "Amount"),
        h("th", { class: "num" }, "Backtest price"), h("th", { class: "num" }, "Bot's price"), h("th", { class: "num" }, "Slippage, bps"),
        h("th", { class: "num" }, "Fee difference"))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 8, class: "empty" }, "No fills in this window.")))))].filter(Boolean));
}

export function driftPanel(botId) {
  const box = h("div", { id: "drift-report" }, h("p", { class: "muted" }, "Loading…"));
  const button = h("button", { class: "btn btn-sm btn-ghost", type: "button", dataset: { action: "drift" } }, "Compare the last 24 h");
  button.addEventListener("click", async () => {
    button.disabled = true;
    box.replaceChildren(h("p", { class: "muted" }, "Replaying the bot's candles…"));
    try {
      renderReport(box, await api("GET", `/bots/${botId}/drift`), "Last 24 h");
    } catch (err) {
      box.replaceChildren(h("p", { class: "error-box", role: "alert" }, `Drift report unavailable: ${err.message}`));
    } finally {
      button.disabled = false;
    }
  });
  api("GET", `/bots/${botId}/drift/last`)
    .then((report) => renderReport(box, report, "Last nightly report"))
    .catch((err) => box.replaceChildren(h("p", { class: "muted" },
      err.status === 404 ? "No nightly report yet." : `Nightly report unavailable: ${err.message}`)));
  return h("section", { class: "panel", id: "drift-panel" },
    h("div", { class: "chart-head" }, h("h2", {}, "Drift versus backtest"), h("div", { class: "spacer" }), button),
    box);
}
