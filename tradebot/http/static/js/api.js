// The API client: bearer token in sessionStorage (this tab only; never a cookie), JSON in and out,
// problem+json errors thrown as ApiError.

const TOKEN_KEY = "tradebot.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }

  // The field errors of a 422: [{field, message}], empty otherwise.
  get errors() {
    return Array.isArray(this.problem.errors) ? this.problem.errors : [];
  }
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(`/api/v1${path}`, init);
  const type = resp.headers.get("Content-Type") || "";
  const data = type.includes("json") && resp.status !== 204 ? await resp.json() : null;
  if (!resp.ok) {
    if (resp.status === 401 && t) {
      setToken(null);
      const next = encodeURIComponent(location.pathname + location.search);
      location.assign(`/login?next=${next}`);
    }
    throw new ApiError(resp.status, data);
  }
  return data;
}

// Every item of a paginated list (follows next_cursor up to `max` items).
export async function listAll(path, max = 500) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api("GET", `${path}${sep}limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

// A bot's status stream (EventSource cannot send headers: the token goes in the query string).
export function statusStream(botId, handlers) {
  return eventStream(`/api/v1/bots/${encodeURIComponent(botId)}/status-stream`, handlers);
}

// One stream of every event of all the user's bots (each event's data carries bot_id): what lists
// use, since a browser opens only a few connections per host.
export function userStatusStream(handlers) {
  return eventStream("/api/v1/status-stream", handlers);
}

function eventStream(path, handlers) {
  const source = new EventSource(`${path}?access_token=${encodeURIComponent(token() || "")}`);
  for (const [event, handler] of Object.entries(handlers)) {
    if (event === "open" || event === "error") source.addEventListener(event, handler);
    else source.addEventListener(event, (e) => handler(JSON.parse(e.data)));
  }
  return source;
}

// The candle timeframes the API accepts, read from its own OpenAPI document (the one table in
// tradebot/timeframes.py), so the dashboard's selects never fall out of step with the server.
let timeframesPromise = null;
export function timeframes() {
  timeframesPromise ??= fetch("/api/openapi.json", { credentials: "omit" })
    .then((resp) => (resp.ok ? resp.json() : Promise.reject(new Error(`HTTP ${resp.status}`))))
    .then((doc) => {
      const values = doc?.components?.schemas?.BotCreate?.properties?.timeframe?.enum;
      if (!Array.isArray(values) || !values.length) throw new Error("no timeframe enum in the OpenAPI document");
      return values;
    })
    .catch((e) => {
      timeframesPromise = null;
      throw e;
    });
  return timeframesPromise;
}
