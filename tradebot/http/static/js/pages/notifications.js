// Notifications: webhooks (the signing secret shown once, at creation), each webhook's delivery log
// with a retry button for failed deliveries, Telegram linking (the /start code) and the channels'
// event preferences.
import { api, listAll } from "../api.js";
import { badge, clearErrors, field, h, mount, pageHead, showProblem, time } from "../dom.js";

const EVENTS = {
  webhook: ["trade", "state", "error"],
  mail: ["error", "paused"],
  telegram: ["trade", "state", "error"],
};
const EVENT_LABELS = { trade: "Trades", state: "Status changes", error: "Errors", paused: "Paused by a daily limit" };

export async function notificationsPage() {
  const hooksBody = h("tbody");
  const hooksTable = h("div", { class: "table-wrap" },
    h("table", { id: "webhooks-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "URL"), h("th", {}, "Events"), h("th", {}, "Description"),
        h("th", {}, "Added"), h("th", { class: "num" }, ""))),
      hooksBody));
  const log = h("div", { id: "delivery-log" });
  const secretBox = h("div", { id: "webhook-secret", hidden: true });

  const hookForm = h("form", { class: "form", id: "webhook-form", novalidate: true, autocomplete: "off" },
    field("URL", h("input", { name: "url", required: true, maxlength: 2048, placeholder: "https://example.com/hooks/tradebot" })),
    h("div", { class: "field", dataset: { field: "events" } }, h("span", {}, "Events"),
      ...EVENTS.webhook.map((e) => h("label", { class: "check" },
        h("input", { type: "checkbox", name: `event-${e}`, checked: true }), h("span", {}, EVENT_LABELS[e])))),
    field("Description", h("input", { name: "description", maxlength: 500 })),
    h("div", { class: "form-actions" }, h("button", { class: "btn", type: "submit" }, "Add webhook")));

  async function refreshHooks() {
    const hooks = await listAll("/webhooks");
    hooksBody.replaceChildren();
    if (!hooks.length) hooksBody.append(h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No webhooks yet.")));
    for (const hook of hooks) hooksBody.append(hookRow(hook));
  }

  function hookRow(hook) {
    const show = h("button", { class: "btn btn-ghost btn-sm", type: "button" }, "Deliveries");
    const ping = h("button", { class: "btn btn-ghost btn-sm", type: "button" }, "Test");
    const remove = h("button", { class: "btn btn-ghost btn-sm", type: "button" }, "Delete");
    show.addEventListener("click", () => showLog(hook));
    ping.addEventListener("click", async () => {
      await api("POST", `/webhooks/${hook.id}/test`);
      await showLog(hook);
    });
    remove.addEventListener("click", async () => {
      if (!confirm(`Delete the webhook to ${hook.url}?`)) return;
      await api("DELETE", `/webhooks/${hook.id}`);
      log.replaceChildren();
      await refreshHooks();
    });
    return h("tr", { dataset: { webhookId: hook.id } },
      h("td", { class: "mono" }, hook.url), h("td", {}, hook.events.join(", ")),
      h("td", {}, hook.description || ""), h("td", { class: "muted" }, time(hook.created_at)),
      h("td", { class: "num" }, h("div", { class: "actions" }, show, ping, remove)));
  }

  async function showLog(hook) {
    const page = await api("GET", `/webhooks/${hook.id}/deliveries?limit=50`);
    const body = h("tbody");
    for (const d of page.items) {
      const actions = h("td", { class: "num" });
      if (d.status === "failed") {
        const retry = h("button", { class: "btn btn-ghost btn-sm", type: "button", dataset: { retry: d.id } }, "Retry");
        retry.addEventListener("click", async () => {
          retry.disabled = true;
          await api("POST", `/webhooks/${hook.id}/deliveries/${d.id}/retry`);
          await showLog(hook);
        });
        actions.append(retry);
      }
      body.append(h("tr", { dataset: { deliveryId: d.id } },
        h("td", { class: "mono" }, String(d.id)), h("td", {}, d.event), h("td", {}, badge(d.status)),
        h("td", { class: "num" }, String(d.attempts)), h("td", { class: "muted" }, d.last_error || ""),
        h("td", { class: "muted" }, time(d.created_at)), actions));
    }
    if (!page.items.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No deliveries yet.")));
    log.replaceChildren(h("h3", {}, `Deliveries to ${hook.url}`),
      h("div", { class: "table-wrap" }, h("table", { id: "deliveries-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Id"), h("th", {}, "Event"), h("th", {}, "Status"),
          h("th", { class: "num" }, "Attempts"), h("th", {}, "Last error"), h("th", {}, "Created"), h("th", {}, ""))),
        body)));
  }

  hookForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(hookForm);
    const events = EVENTS.webhook.filter((ev) => hookForm.elements[`event-${ev}`].checked);
    try {
      const created = await api("POST", "/webhooks", {
        url: hookForm.elements.url.value.trim(), events, description: hookForm.elements.description.value.trim(),
      });
      hookForm.reset();
      // Shown this once: the API never returns it again.
      secretBox.hidden = false;
      secretBox.replaceChildren(h("p", { class: "secret-note" }, "Signing secret — copy it now, it is not shown again:"),
        h("code", { class: "mono", id: "webhook-secret-value" }, created.secret));
      await refreshHooks();
    } catch (err) {
      showProblem(hookForm, err);
    }
  });

  // ---- Telegram
  const telegram = h("div", { id: "telegram-panel" });

  async function refreshTelegram(code) {
    const status = await api("GET", "/notifications/telegram/link");
    telegram.replaceChildren();
    if (!status.enabled) {
      telegram.append(h("p", { class: "muted" }, "Telegram is not set up on this deployment."));
      return;
    }
    if (status.linked) {
      const unlink = h("button", { class: "btn btn-ghost", type: "button", id: "telegram-unlink" }, "Unlink");
      unlink.addEventListener("click", async () => {
        await api("DELETE", "/notifications/telegram/link");
        await refreshTelegram();
      });
      telegram.append(h("p", { id: "telegram-status" },
        `Linked${status.username ? ` to @${status.username}` : ""} since ${time(status.linked_at)}.`), unlink);
      return;
    }
    const link = h("button", { class: "btn", type: "button", id: "telegram-link" }, "Link Telegram");
    const check = h("button", { class: "btn btn-ghost", type: "button", id: "telegram-check" }, "I sent it");
    link.addEventListener("click", async () => {
      const fresh = await api("POST", "/notifications/telegram/link");
      await refreshTelegram(fresh);
    });
    check.addEventListener("click", () => refreshTelegram());
    telegram.append(h("p", { id: "telegram-status" }, "Not linked."), link);
    if (code) {
      telegram.append(h("p", {}, "Send this to the tradebot bot from your Telegram chat (it works once, until ",
        time(code.expires_at), "):"), h("code", { class: "mono", id: "telegram-command" }, code.command), check);
    }
  }

  // ---- preferences
  const prefsForm = h("form", { class: "form", id: "preferences-form" });

  async function refreshPrefs() {
    const prefs = await api("GET", "/notifications/preferences");
    prefsForm.replaceChildren();
    for (const [channel, events] of Object.entries(EVENTS)) {
      prefsForm.append(h("div", { class: "field", dataset: { field: channel } }, h("span", {}, channel),
        ...events.map((e) => {
          const box = h("input", { type: "checkbox", name: `${channel}-${e}`, checked: (prefs[channel] || []).includes(e) });
          box.addEventListener("change", async () => {
            const chosen = events.filter((ev) => prefsForm.elements[`${channel}-${ev}`].checked);
            try {
              await api("PUT", "/notifications/preferences", { [channel]: chosen });
            } catch (err) {
              showProblem(prefsForm, err);
            }
          });
          return h("label", { class: "check" }, box, h("span", {}, EVENT_LABELS[e]));
        })));
    }
  }

  mount(
    pageHead("Notifications"),
    h("div", { class: "grid-main" },
      h("section", { class: "panel flush" }, h("h2", {}, "Webhooks"), hooksTable, log),
      h("section", { class: "panel" }, h("h2", {}, "Add a webhook"), secretBox, hookForm)),
    h("div", { class: "grid-main" },
      h("section", { class: "panel" }, h("h2", {}, "Telegram"), telegram),
      h("section", { class: "panel" }, h("h2", {}, "Which events go where"), prefsForm)));
  await Promise.all([refreshHooks(), refreshTelegram(), refreshPrefs()]);
}
