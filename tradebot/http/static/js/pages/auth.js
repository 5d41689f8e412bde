// Login, registration and the password-reset pages (the mailed link lands on /reset-password?token=…).
import { api, ApiError, setToken } from "../api.js";
import { field, formValues, h, mount, showOk, showProblem } from "../dom.js";

function card(title, subtitle, form, links) {
  document.title = `${title} · tradebot`;
  mount(
    h("div", { class: "auth-wrap" },
      h("div", { class: "panel auth-card" },
        h("h1", {}, title),
        h("p", { class: "sub muted" }, subtitle),
        form,
        h("div", { class: "auth-links" }, ...links))));
}

function safeNext() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  // Same-origin paths only: never an absolute or protocol-relative URL.
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/";
}

function input(name, type, attrs = {}) {
  return h("input", { name, type, id: `f-${name}`, ...attrs });
}

async function login(email, password, remember) {
  const body = { email, password };
  if (remember) body.remember_me = true;
  const res = await api("POST", "/auth/login", body);
  setToken(res.access_token);
}

export function loginPage() {
  const form = h("form", { class: "form", novalidate: true },
    field("Email", input("email", "email", { autocomplete: "username", required: true, autofocus: true })),
    field("Password", input("password", "password", { autocomplete: "current-password", required: true })),
    field("Keep me signed in longer", input("remember_me", "checkbox")),
    h("button", { class: "btn btn-block", type: "submit" }, "Log in"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const v = formValues(form);
    try {
      await login(v.email, v.password, v.remember_me);
      location.assign(safeNext());
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) err.message = "Wrong email or password.";
      if (err instanceof ApiError && err.status === 429) err.message = "Too many attempts; wait a minute and try again.";
      showProblem(form, err);
    }
  });
  card("Log in", "Trade with your EMA bots.", form, [
    h("a", { href: "/register" }, "Create an account"),
    h("a", { href: "/forgot-password" }, "Forgot password?"),
  ]);
}

export function registerPage() {
  const form = h("form", { class: "form", novalidate: true },
    field("Email", input("email", "email", { autocomplete: "username", required: true, autofocus: true })),
    field("Password", input("password", "password", { autocomplete: "new-password", required: true }), "8 to 1024 characters, not a common password or your email"),
    h("button", { class: "btn btn-block", type: "submit" }, "Create account"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const v = formValues(form);
    try {
      await api("POST", "/auth/register", { email: v.email, password: v.password });
      await login(v.email, v.password, false);
      location.assign("/keys");
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) err.message = "An account with this email already exists.";
      showProblem(form, err);
    }
  });
  card("Create account", "Register to run bots and backtests.", form, [
    h("a", { href: "/login" }, "Already registered? Log in"),
  ]);
}

export function forgotPage() {
  const form = h("form", { class: "form", novalidate: true },
    field("Email", input("email", "email", { autocomplete: "username", required: true, autofocus: true })),
    h("button", { class: "btn btn-block", type: "submit" }, "Send reset link"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("POST", "/auth/password-reset/request", { email: formValues(form).email });
      showOk(form, "If that address has an account, a reset link is on its way. It is valid for 30 minutes.");
    } catch (err) {
      showProblem(form, err);
    }
  });
  card("Reset password", "We will mail you a single-use link.", form, [h("a", { href: "/login" }, "Back to log in")]);
}

export function resetPage() {
  const resetToken = new URLSearchParams(location.search).get("token") || "";
  // Keep the token out of the address bar (and out of any later Referer) once it is read.
  history.replaceState(null, "", "/reset-password");
  const form = h("form", { class: "form", novalidate: true },
    field("New password", input("new_password", "password", { autocomplete: "new-password", required: true, autofocus: true }), "8 to 1024 characters, not a common password or your email"),
    h("button", { class: "btn btn-block", type: "submit" }, "Set new password"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("POST", "/auth/password-reset/confirm", { token: resetToken, new_password: formValues(form).new_password });
      setToken(null);
      showOk(form, "Password changed. You can log in with it now.");
      form.querySelector("button").disabled = true;
    } catch (err) {
      if (err instanceof ApiError && err.status === 400) err.message = "This reset link is invalid, expired or already used. Ask for a new one.";
      showProblem(form, err);
    }
  });
  const links = [h("a", { href: "/login" }, "Log in"), h("a", { href: "/forgot-password" }, "Ask for a new link")];
  if (!resetToken) {
    form.prepend(h("div", { class: "form-error" }, "This page needs the link from the reset email."));
  }
  card("Choose a new password", "Every session signed in with the old password ends.", form, links);
}
