// The dashboard's entry point: picks the page from the path, keeps the top bar in step with the session.
import { api, setToken, token } from "./api.js";
import { h, mount, setText } from "./dom.js";

const PUBLIC = {
  "/login": () => import("./pages/auth.js").then((m) => m.loginPage()),
  "/register": () => import("./pages/auth.js").then((m) => m.registerPage()),
  "/forgot-password": () => import("./pages/auth.js").then((m) => m.forgotPage()),
  "/reset-password": () => import("./pages/auth.js").then((m) => m.resetPage()),
};

const PRIVATE = [
  [/^\/(bots)?$/, "bots", () => import("./pages/bots.js").then((m) => m.botsPage())],
  [/^\/bots\/new$/, "bots", () => import("./pages/bot_form.js").then((m) => m.botFormPage(null))],
  [/^\/bots\/(\d+)\/edit$/, "bots", (id) => import("./pages/bot_form.js").then((m) => m.botFormPage(id))],
  [/^\/bots\/(\d+)$/, "bots", (id) => import("./pages/bot.js").then((m) => m.botPage(id))],
  [/^\/overview$/, "overview", () => import("./pages/overview.js").then((m) => m.overviewPage())],
  [/^\/optimizations(?:\/new)?$/, "optimizations", () => import("./pages/optimizations.js").then((m) => m.optimizationsPage())],
  [/^\/optimizations\/(\d+)$/, "optimizations", (id) => import("./pages/optimization.js").then((m) => m.optimizationPage(id))],
  [/^\/keys$/, "keys", () => import("./pages/keys.js").then((m) => m.keysPage())],
  [/^\/notifications$/, "notifications", () => import("./pages/notifications.js").then((m) => m.notificationsPage())],
  [/^\/backtests$/, "backtests", () => import("./pages/backtests.js").then((m) => m.backtestsPage())],
  [/^\/backtests\/new$/, "backtests", () => import("./pages/backtests.js").then((m) => m.backtestsPage())],
  [/^\/backtests\/(\d+)$/, "backtests", (id) => import("./pages/backtest.js").then((m) => m.backtestPage(id))],
];

async function route() {
  const path = location.pathname.replace(/\/+$/, "") || "/";
  if (PUBLIC[path]) {
    document.body.dataset.page = path.slice(1);
    return PUBLIC[path]();
  }
  if (!token()) {
    location.replace(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    return;
  }
  for (const [pattern, section, load] of PRIVATE) {
    const m = path.match(pattern);
    if (!m) continue;
    document.body.dataset.page = section;
    showSession(section);
    return load(m[1]);
  }
  mount(h("div", { class: "panel empty" }, "No such page. ", h("a", { href: "/" }, "Back to the dashboard")));
}

async function showSession(section) {
  document.getElementById("nav").hidden = false;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.section === section);
  const account = document.getElementById("account");
  account.hidden = false;
  try {
    const me = await api("GET", "/auth/me");
    setText(document.getElementById("account-email"), me.email);
  } catch {
    /* a 401 already sent us to the login page */
  }
}

document.getElementById("logout").addEventListener("click", async () => {
  try {
    await api("POST", "/auth/logout");
  } catch {
    /* the token is dropped either way */
  }
  setToken(null);
  location.assign("/login");
});

route().catch((err) => {
  mount(h("div", { class: "panel form-error", role: "alert" }, `Could not load this page: ${err.message}`));
});
