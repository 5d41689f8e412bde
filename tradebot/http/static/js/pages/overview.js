// The overview: how the user's bots are doing. Totals and daily net PnL from GET /stats (the same sums
// as GET /trades), cumulative profit, each bot's lifetime figures (its `stats`), and the open
// positions from GET /portfolio at the market's last price, kept live by the user's status stream
// (a bot's state or trade re-reads the portfolio) and re-read every few seconds for prices.
import { api, listAll, userStatusStream } from "../api.js";
import { profitCharts } from "../charts.js";
import { amount, badge, h, mount, num, pageHead, paperBadge, price, signClass, signed, time } from "../dom.js";

const PRICES_MS = 5000;

function stat(label, value, col, cls = "") {
  return h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: `value ${cls}`, dataset: { col } }, value));
}

function rate(value) {
  return value === null || value === undefined ? "—" : `${num(value * 100, 1)}%`;
}

export async function overviewPage() {
  const filter = h("select", { name: "paper", id: "overview-filter" },
    h("option", { value: "" }, "Paper and live"), h("option", { value: "true" }, "Paper only"), h("option", { value: "false" }, "Live only"));
  const totals = h("div", { class: "stats", id: "overview-totals" });
  const cumulativeEl = h("div", { class: "chart small", id: "cumulative-chart" });
  const dailyEl = h("div", { class: "chart small", id: "daily-chart" });
  const chartNote = h("span", { class: "muted", id: "overview-chart-note" });
  const botsBody = h("tbody");
  const positionsBody = h("tbody");
  const positionTotals = h("div", { class: "stats", id: "portfolio-totals" });
  const balancesBody = h("tbody");
  const liveDot = h("span", { class: "live-dot", title: "connecting" });

  mount(
    pageHead("Overview", filter),
    totals,
    h("div", { class: "grid-2" },
      h("section", { class: "panel" }, h("div", { class: "chart-head" }, h("h2", {}, "Cumulative net profit"), h("div", { class: "spacer" }), chartNote),
        cumulativeEl),
      h("section", { class: "panel" }, h("div", { class: "chart-head" }, h("h2", {}, "Net PnL per day (UTC)")), dailyEl)),
    h("section", { class: "panel flush" }, h("h2", {}, liveDot, "Open positions"),
      positionTotals,
      h("div", { class: "table-wrap" }, h("table", { id: "positions-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Bot"), h("th", {}, "Symbol"), h("th", {}, "Side"), h("th", { class: "num" }, "Size"),
          h("th", { class: "num" }, "Entry"), h("th", { class: "num" }, "Last price"), h("th", { class: "num" }, "Unrealized PnL"))),
        positionsBody))),
    h("section", { class: "panel flush" }, h("h2", {}, "Bots"),
      h("div", { class: "table-wrap" }, h("table", { id: "overview-bots" },
        h("thead", {}, h("tr", {}, h("th", {}, "Bot"), h("th", {}, "Market"), h("th", {}, "Status"), h("th", { class: "num" }, "Trades"),
          h("th", { class: "num" }, "Realized PnL"), h("th", { class: "num" }, "Fees"), h("th", { class: "num" }, "Net PnL"),
          h("th", { class: "num" }, "Win rate"), h("th", { class: "num" }, "Max drawdown"))),
        botsBody))),
    h("section", { class: "panel flush" }, h("h2", {}, "Balances per exchange key"),
      h("div", { class: "table-wrap" }, h("table", { id: "balances-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Key"), h("th", {}, "Asset"), h("th", { class: "num" }, "Free"), h("th", { class: "num" }, "Used"),
          h("th", { class: "num" }, "Total"), h("th", {}, "Read at"))),
        balancesBody))));

  const charts = profitCharts(cumulativeEl, dailyEl);
  const paperQuery = () => (filter.value ? `&paper=${filter.value}` : "");
  const wanted = (paper) => filter.value === "" || String(paper) === filter.value;

  async function loadStats() {
    const stats = await api("GET", `/stats?group=day${paperQuery()}`);
    const t = stats.totals;
    totals.replaceChildren(
      stat("Net PnL", signed(t.net_pnl), "net-pnl", signClass(t.net_pnl)),
      stat("Realized PnL", signed(t.realized_pnl), "realized-pnl", signClass(t.realized_pnl)),
      stat("Fees", num(t.fees), "fees"),
      stat("Trades", num(t.trades_count, 0), "trades"),
      stat("Win rate", rate(t.win_rate), "win-rate"),
      stat("Wins / losses", `${t.wins} / ${t.losses}`, "wins-losses"));
    charts.setItems(stats.items);
    chartNote.textContent = stats.items.length ? `${stats.items.length} day${stats.items.length === 1 ? "" : "s"} with trades` : "No trades yet.";
  }

  async function loadBots() {
    const bots = (await listAll("/bots")).filter((b) => wanted(b.mode === "paper"));
    botsBody.replaceChildren(...(bots.length ? bots.map((b) => h("tr", { dataset: { botId: b.id } },
      h("td", {}, h("a", { class: "bot-name", href: `/bots/${b.id}` }, b.name || `Bot #${b.id}`), " ", paperBadge(b.mode === "paper")),
      h("td", {}, b.symbol, " ", h("span", { class: "muted" }, b.timeframe)),
      h("td", {}, badge(b.state.status)),
      h("td", { class: "num", dataset: { col: "trades" } }, num(b.stats.trades_count, 0)),
      h("td", { class: `num ${signClass(b.stats.realized_pnl)}`, dataset: { col: "realized-pnl" } }, signed(b.stats.realized_pnl)),
      h("td", { class: "num", dataset: { col: "fees" } }, num(b.stats.fees)),
      h("td", { class: `num ${signClass(b.stats.net_pnl)}`, dataset: { col: "net-pnl" } }, signed(b.stats.net_pnl)),
      h("td", { class: "num", dataset: { col: "win-rate" } }, rate(b.stats.win_rate)),
      h("td", { class: "num down", dataset: { col: "max-drawdown" } }, num(b.stats.max_drawdown))))
      : [h("tr", {}, h("td", { colspan: 9, class: "empty" }, "No bots. ", h("a", { href: "/bots/new" }, "Create one"), "."))]));
  }

  async function loadPortfolio() {
    const p = await api("GET", "/portfolio");
    const positions = p.positions.filter((x) => wanted(x.paper));
    const unrealized = positions.reduce((sum, x) => sum + (x.unrealized_pnl === null ? 0 : x.unrealized_pnl), 0);
    const complete = positions.every((x) => x.unrealized_pnl !== null);
    positionTotals.replaceChildren(
      stat("Open positions", num(positions.length, 0), "positions"),
      stat(complete ? "Unrealized PnL" : "Unrealized PnL (prices missing)", signed(unrealized), "unrealized", signClass(unrealized)));
    positionsBody.replaceChildren(...(positions.length ? positions.map((x) => h("tr", { dataset: { botId: x.bot_id } },
      h("td", {}, h("a", { class: "bot-name", href: `/bots/${x.bot_id}` }, x.bot_name || `Bot #${x.bot_id}`), " ", paperBadge(x.paper)),
      h("td", {}, x.symbol),
      h("td", { dataset: { col: "side" } }, badge(x.side, x.side)),
      h("td", { class: "num", dataset: { col: "size" } }, amount(x.size)),
      h("td", { class: "num", dataset: { col: "entry" } }, price(x.entry_price)),
      h("td", { class: "num", dataset: { col: "last" } }, price(x.last_price)),
      h("td", { class: `num ${signClass(x.unrealized_pnl)}`, dataset: { col: "unrealized" } }, signed(x.unrealized_pnl))))
      : [h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No open positions."))]));
    const rows = [];
    for (const b of p.balances) {
      const assets = Object.entries(b.assets || {});
      if (b.error || !assets.length) {
        rows.push(h("tr", {}, h("td", {}, b.label), h("td", { colspan: 5, class: b.error ? "error-box" : "muted" }, b.error || "no assets")));
      }
      for (const [asset, a] of assets) {
        rows.push(h("tr", { dataset: { keyId: b.api_key_id, asset } }, h("td", {}, b.label), h("td", {}, asset),
          h("td", { class: "num" }, num(a.free)), h("td", { class: "num" }, num(a.used)), h("td", { class: "num" }, num(a.total)),
          h("td", { class: "muted" }, time(b.read_at))));
      }
    }
    balancesBody.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No exchange keys."))]));
  }

  // Many events arrive together (a decision moves several bots): one re-read per burst.
  const timers = {};
  function soon(name, load) {
    clearTimeout(timers[name]);
    timers[name] = setTimeout(() => load().catch(() => {}), 250);
  }

  filter.addEventListener("change", () => Promise.all([loadStats(), loadBots(), loadPortfolio()]).catch(() => {}));
  await Promise.all([loadStats(), loadBots(), loadPortfolio()]);

  const source = userStatusStream({
    open: () => { liveDot.classList.add("on"); liveDot.title = "live"; },
    error: () => { liveDot.classList.remove("on"); liveDot.title = "reconnecting"; },
    state: () => { soon("portfolio", loadPortfolio); soon("bots", loadBots); },
    trade: () => { soon("portfolio", loadPortfolio); soon("bots", loadBots); soon("stats", loadStats); },
  });
  setInterval(() => { if (document.visibilityState === "visible") loadPortfolio().catch(() => {}); }, PRICES_MS);
  addEventListener("pagehide", () => source.close());
}
