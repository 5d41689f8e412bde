// One optimisation: live progress from its stream (GET /optimizations/{id}/stream), the ranked trials
// with their train and held-out figures, a heatmap of the score over two searched parameters, and,
// for a chosen trial, "backtest this" and "create a paper bot with these parameters".
import { api, token } from "../api.js";
import { badge, h, mount, num, pct, time } from "../dom.js";

const SIZING = ["order_size_pct", "leverage", "allow_short", "stop_loss_pct", "take_profit_pct"];
const LIVE = new Set(["pending", "running"]);
const HEAT_STEPS = 10; // .heat-0 … .heat-9 in css/app.css (the CSP allows no inline style)

function figure(value, digits = 2) {
  return value === null || value === undefined ? "—" : num(value, digits);
}

function stat(label, value, col) {
  return h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: "value", dataset: { col } }, value));
}

export async function optimizationPage(id) {
  document.title = `Optimisation #${id} · tradebot`;
  const statusSlot = h("span", { id: "optimization-status" });
  const progressText = h("span", { class: "muted", id: "optimization-progress-text" });
  const bar = h("div", { class: "progress-fill", id: "optimization-progress" });
  const cancel = h("button", { class: "btn btn-sm btn-ghost", type: "button", dataset: { action: "cancel" }, hidden: true }, "Cancel");
  const summary = h("div", { class: "stats", id: "optimization-summary" });
  const errorBox = h("div", { class: "panel error-box", role: "alert", hidden: true });
  const selected = h("section", { class: "panel", id: "selected-trial", hidden: true });
  const heat = h("section", { class: "panel", id: "heatmap-panel", hidden: true });
  const trialsBody = h("tbody");
  const trialsHead = h("thead");
  mount(
    h("div", { class: "crumbs" }, h("a", { href: "/optimizations" }, "Optimise"), " / ", `#${id}`),
    h("div", { class: "page-head" }, h("h1", {}, `Optimisation #${id}`), statusSlot, h("div", { class: "spacer" }), cancel),
    h("section", { class: "panel" }, h("div", { class: "chart-head" }, h("h2", {}, "Progress"), progressText),
      h("div", { class: "progress determinate" }, bar)),
    errorBox,
    summary,
    selected,
    heat,
    h("section", { class: "panel flush" }, h("h2", {}, "Trials, best first"),
      h("div", { class: "table-wrap" }, h("table", { id: "trials-table" }, trialsHead, trialsBody))));

  let opt = await api("GET", `/optimizations/${id}`);
  let chosen = null;

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      await api("DELETE", `/optimizations/${id}`);
    } catch (err) {
      errorBox.hidden = false;
      errorBox.textContent = err.message;
    }
  });

  function showProgress(status, progress) {
    statusSlot.replaceChildren(badge(status));
    progressText.textContent = `${progress.done} / ${progress.total} trials`;
    progressText.dataset.done = progress.done;
    progressText.dataset.total = progress.total;
    const share = progress.total ? Math.min(1, progress.done / progress.total) : 0;
    bar.style.width = `${(share * 100).toFixed(1)}%`; // CSSOM, which the CSP allows (no style attribute)
    cancel.hidden = !LIVE.has(status);
  }

  const searched = () => Object.keys(opt.space || {});

  function render() {
    showProgress(opt.status, opt.progress);
    errorBox.hidden = !opt.error_message;
    errorBox.textContent = opt.error_message ? `This optimisation failed: ${opt.error_message}` : "";
    const best = opt.best;
    summary.replaceChildren(
      stat("Strategy", opt.strategy, "strategy"),
      stat("Market", `${opt.symbol} ${opt.timeframe}`, "market"),
      stat("Objective", opt.objective, "objective"),
      stat("Method", opt.method, "method"),
      stat("Candles", opt.candles_count === null ? "—" : num(opt.candles_count, 0), "candles"),
      stat("Train window", `${time(opt.train_window.start_time)} → ${time(opt.train_window.end_time)}`, "train-window"),
      stat("Held out", opt.test_window ? `${time(opt.test_window.start_time)} → ${time(opt.test_window.end_time)}` : "none", "test-window"),
      stat("Best score", best && best.score !== null ? num(best.score, 4) : "—", "best-score"));
    const trials = opt.trials || [];
    const names = searched();
    trialsHead.replaceChildren(h("tr", {}, h("th", { class: "num" }, "Rank"), h("th", { class: "num" }, "Trial"),
      ...names.map((n) => h("th", { class: "num" }, n)), h("th", { class: "num" }, "Score"),
      h("th", { class: "num" }, "Return"), h("th", { class: "num" }, "Sharpe"), h("th", { class: "num" }, "Max DD"),
      h("th", { class: "num" }, "Trades"), h("th", { class: "num" }, "Win rate"),
      h("th", { class: "num" }, "Test return"), h("th", { class: "num" }, "Test Sharpe"), h("th", {}, "")));
    trialsBody.replaceChildren(...(trials.length ? trials.map((t, i) => {
      const use = h("button", { class: "btn btn-sm btn-ghost", type: "button", dataset: { action: "use" } }, "Use");
      use.addEventListener("click", () => choose(t));
      return h("tr", { dataset: { trial: t.trial } },
        h("td", { class: "num" }, i + 1), h("td", { class: "num muted" }, t.trial),
        ...names.map((n) => h("td", { class: "num", dataset: { param: n } }, String(t.parameters[n]))),
        h("td", { class: "num", dataset: { col: "score" } }, figure(t.score, 4)),
        h("td", { class: "num", dataset: { col: "return" } }, pct(t.train.return_pct)),
        h("td", { class: "num", dataset: { col: "sharpe" } }, figure(t.train.sharpe)),
        h("td", { class: "num", dataset: { col: "max-drawdown" } }, `${figure(t.train.max_drawdown_pct)}%`),
        h("td", { class: "num", dataset: { col: "trades" } }, num(t.train.trades_count, 0)),
        h("td", { class: "num", dataset: { col: "win-rate" } }, `${figure(t.train.win_rate * 100, 1)}%`),
        h("td", { class: "num", dataset: { col: "test-return" } }, t.test ? pct(t.test.return_pct) : "—"),
        h("td", { class: "num", dataset: { col: "test-sharpe" } }, t.test ? figure(t.test.sharpe) : "—"),
        h("td", {}, use));
    }) : [h("tr", {}, h("td", { colspan: names.length + 11, class: "empty" }, LIVE.has(opt.status) ? "No trial finished yet." : "No trials."))]));
    renderHeatmap(trials);
    if (!chosen && best) choose(best);
  }

  // The score over two searched parameters: each cell the best trial with that pair (the others vary).
  let axes = null;
  function renderHeatmap(trials) {
    const names = searched().filter((n) => new Set(trials.map((t) => JSON.stringify(t.parameters[n]))).size > 1);
    if (names.length < 2) {
      heat.hidden = true;
      return;
    }
    heat.hidden = false;
    if (!axes || !names.includes(axes[0]) || !names.includes(axes[1]) || axes[0] === axes[1]) axes = [names[0], names[1]];
    const pick = (i) => {
      const sel = h("select", { name: i ? "heat_y" : "heat_x", id: i ? "heatmap-y" : "heatmap-x" },
        names.map((n) => h("option", { value: n, selected: n === axes[i] }, n)));
      sel.addEventListener("change", () => { axes[i] = sel.value; renderHeatmap(trials); });
      return sel;
    };
    const [xName, yName] = axes;
    const sortNum = (a, b) => a - b;
    const xs = [...new Set(trials.map((t) => t.parameters[xName]))].sort(sortNum);
    const ys = [...new Set(trials.map((t) => t.parameters[yName]))].sort(sortNum);
    const cells = new Map();
    for (const t of trials) {
      if (t.score === null) continue;
      const key = `${t.parameters[xName]}|${t.parameters[yName]}`;
      if (!cells.has(key) || cells.get(key).score < t.score) cells.set(key, t);
    }
    const scores = [...cells.values()].map((t) => t.score);
    const lo = Math.min(...scores);
    const hi = Math.max(...scores);
    const table = h("table", { class: "heatmap", id: "heatmap" },
      h("thead", {}, h("tr", {}, h("th", {}, `${yName} \\ ${xName}`), ...xs.map((x) => h("th", { class: "num" }, String(x))))),
      h("tbody", {}, ys.map((y) => h("tr", {}, h("th", { class: "num" }, String(y)), xs.map((x) => {
        const t = cells.get(`${x}|${y}`);
        if (!t) return h("td", { class: "heat-none", dataset: { x, y } }, "—");
        const step = hi > lo ? Math.min(HEAT_STEPS - 1, Math.floor(((t.score - lo) / (hi - lo)) * HEAT_STEPS)) : HEAT_STEPS - 1;
        const td = h("td", { class: `num heat-${step}`, dataset: { x, y, score: t.score, trial: t.trial }, title: `trial ${t.trial}` },
          num(t.score, 3));
        td.addEventListener("click", () => choose(t));
        return td;
      })))));
    heat.replaceChildren(
      h("div", { class: "chart-head" }, h("h2", {}, `Best ${opt.objective} by ${xName} and ${yName}`), h("div", { class: "spacer" }),
        field2("x", pick(0)), field2("y", pick(1))),
      h("div", { class: "table-wrap" }, table));
  }

  function field2(label, select) {
    return h("label", { class: "inline-field" }, h("span", { class: "muted" }, label), select);
  }

  function choose(t) {
    chosen = t;
    const note = h("div", { class: "error-box" });
    const strategyParams = Object.fromEntries(Object.entries(t.parameters).filter(([k]) => !SIZING.includes(k)));
    const act = (label, action, run) => {
      const b = h("button", { class: "btn btn-sm", type: "button", dataset: { action } }, label);
      b.addEventListener("click", async () => {
        b.disabled = true;
        try {
          location.assign(await run());
        } catch (err) {
          note.textContent = err.message;
          b.disabled = false;
        }
      });
      return b;
    };
    const backtest = (window) => async () => {
      const body = { symbol: opt.symbol, timeframe: opt.timeframe, strategy: opt.strategy, start_time: window.start_time,
        end_time: window.end_time, parameters: t.parameters, initial_balance: opt.initial_balance };
      if (opt.fee_rate !== null) body.fee_rate = opt.fee_rate;
      if (opt.slippage_bps !== null) body.slippage_bps = opt.slippage_bps;
      const created = await api("POST", "/backtests", body);
      return `/backtests/${created.id}`;
    };
    const paperBot = async () => {
      const body = { name: `${opt.strategy} · optimisation #${opt.id} trial ${t.trial}`, mode: "paper", symbol: opt.symbol,
        timeframe: opt.timeframe, strategy: opt.strategy, parameters: strategyParams, paper_balance: opt.initial_balance };
      for (const k of SIZING) if (t.parameters[k] !== undefined && t.parameters[k] !== null) body[k] = t.parameters[k];
      if (opt.fee_rate !== null) body.paper_fee_rate = opt.fee_rate;
      if (opt.slippage_bps !== null) body.paper_slippage_bps = opt.slippage_bps;
      const created = await api("POST", "/bots", body);
      return `/bots/${created.id}`;
    };
    selected.hidden = false;
    selected.dataset.trial = t.trial;
    selected.replaceChildren(
      h("h2", {}, `Trial ${t.trial}`, t === opt.best || (opt.best && opt.best.trial === t.trial) ? " (best)" : ""),
      h("dl", { class: "kv kv-inline", id: "selected-parameters" },
        ...Object.entries(t.parameters).flatMap(([k, v]) => [h("dt", {}, k), h("dd", { dataset: { param: k } }, String(v))])),
      h("div", { class: "form-actions" },
        act("Backtest this (train window)", "backtest-train", backtest(opt.train_window)),
        opt.test_window ? act("Backtest the held-out window", "backtest-test", backtest(opt.test_window)) : null,
        act("Create a paper bot with these parameters", "paper-bot", paperBot)),
      note);
  }

  render();
  if (!LIVE.has(opt.status)) return;
  // Live progress; the full figures are read when a chunk lands and once the search has ended.
  let reading = null;
  const reread = () => {
    reading ??= api("GET", `/optimizations/${id}`).then((o) => { opt = o; render(); }).catch(() => {}).finally(() => { reading = null; });
    return reading;
  };
  const source = new EventSource(`/api/v1/optimizations/${encodeURIComponent(id)}/stream?access_token=${encodeURIComponent(token() || "")}`);
  source.addEventListener("progress", (e) => {
    const p = JSON.parse(e.data);
    showProgress(p.status, p.progress);
    if (!LIVE.has(p.status)) {
      source.close();
      // The final read may race the last reread in flight: read again after it.
      Promise.resolve(reading).then(() => reread());
    } else if (p.progress.done !== opt.progress.done) reread();
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) reread();
  });
  addEventListener("pagehide", () => source.close());
}
