// Exchange API keys: add (the secret is typed once and never shown again), validate, delete.
import { api, listAll } from "../api.js";
import { badge, clearErrors, field, formValues, h, mount, pageHead, showProblem, time } from "../dom.js";

function validity(key) {
  if (key.is_valid === true) return badge("valid", "valid");
  if (key.is_valid === false) return badge("invalid", "invalid");
  return badge("unchecked", "unchecked");
}

export async function keysPage() {
  const tbody = h("tbody");
  const table = h("div", { class: "table-wrap" },
    h("table", { id: "keys-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Label"), h("th", {}, "Exchange"), h("th", {}, "API key"),
        h("th", {}, "Status"), h("th", {}, "Checked"), h("th", {}, "Added"), h("th", { class: "num" }, ""))),
      tbody));

  const form = h("form", { class: "form", id: "key-form", novalidate: true, autocomplete: "off" },
    field("Label", h("input", { name: "label", required: true, maxlength: 100, placeholder: "e.g. Main account" })),
    field("Exchange", h("select", { name: "exchange" }, h("option", { value: "binanceusdm" }, "Binance USD-M futures"))),
    field("API key", h("input", { name: "api_key", required: true, autocomplete: "off", spellcheck: "false" })),
    field("Secret key", h("input", { name: "secret_key", type: "password", required: true, autocomplete: "new-password" })),
    h("p", { class: "secret-note" }, "The secret is encrypted at rest and never shown again, not even to you."),
    h("div", { class: "form-actions" }, h("button", { class: "btn", type: "submit" }, "Add key")));

  async function refresh() {
    const keys = await listAll("/api-keys");
    tbody.replaceChildren();
    if (!keys.length) {
      tbody.append(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No exchange keys yet. Add one to run bots.")));
    }
    for (const key of keys) tbody.append(row(key));
  }

  function row(key) {
    const status = h("td", {}, validity(key));
    const checked = h("td", { class: "muted" }, time(key.validated_at));
    const validate = h("button", { class: "btn btn-ghost btn-sm", type: "button" }, "Validate");
    const remove = h("button", { class: "btn btn-ghost btn-sm", type: "button" }, "Delete");
    const tr = h("tr", { dataset: { keyId: key.id } },
      h("td", { class: "bot-name" }, key.label),
      h("td", {}, key.exchange),
      h("td", { class: "mono" }, `••••${key.api_key_hint}`),
      status, checked,
      h("td", { class: "muted" }, time(key.created_at)),
      h("td", { class: "num" }, h("div", { class: "actions" }, validate, remove)));
    validate.addEventListener("click", async () => {
      validate.disabled = true;
      validate.textContent = "Checking…";
      try {
        const fresh = await api("POST", `/api-keys/${key.id}/validate`);
        status.replaceChildren(validity(fresh));
        checked.textContent = time(fresh.validated_at);
      } catch (err) {
        status.replaceChildren(h("span", { class: "error-box" }, err.message));
      } finally {
        validate.disabled = false;
        validate.textContent = "Validate";
      }
    });
    remove.addEventListener("click", async () => {
      if (!confirm(`Delete the key “${key.label}”?`)) return;
      try {
        await api("DELETE", `/api-keys/${key.id}`);
        await refresh();
      } catch (err) {
        status.replaceChildren(h("span", { class: "error-box" }, err.message));
      }
    });
    return tr;
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    try {
      await api("POST", "/api-keys", formValues(form));
      form.reset(); // the secret leaves the page with the form's values
      await refresh();
    } catch (err) {
      showProblem(form, err);
    }
  });

  mount(
    pageHead("Exchange keys"),
    h("div", { class: "grid-main" },
      h("section", { class: "panel flush" }, h("h2", {}, "Your keys"), table),
      h("section", { class: "panel" }, h("h2", {}, "Add a key"), form)));
  await refresh();
}
