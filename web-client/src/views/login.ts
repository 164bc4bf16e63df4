// The login screen.
import { LOGIN_WARNING_KEY, SIGNED_OUT_KEY, login } from "../api";
import { describeRefusal, retryText } from "../describe";
import { CampusError } from "../protocol";
import type { View } from "../router";
import { h } from "../ui/dom";

/** Username/password form; on success the router shows the user's view. */
export const loginView: View = {
  roles: [],
  mount(ctx) {
    const user = h("input#login-username", { name: "username", autocomplete: "username", required: true, autofocus: true });
    const pass = h("input#login-password", { name: "password", type: "password", autocomplete: "current-password", required: true });
    const submit = h("button.primary", { type: "submit" }, "Log in");
    const error = h("p.login-error", { role: "alert" });
    // Why the last session ended (signed out by the server, kicked), shown once.
    let signedOut: string | null = null;
    try {
      signedOut = sessionStorage.getItem(SIGNED_OUT_KEY);
      sessionStorage.removeItem(SIGNED_OUT_KEY);
    } catch {
      /* storage unavailable */
    }
    let timer: ReturnType<typeof setInterval> | null = null;
    const form = h(
      "form.login-card",
      { "aria-labelledby": "login-title" },
      h("h1#login-title", null, "Campus"),
      signedOut ? h("p.login-notice", { role: "alert" }, signedOut) : null,
      h("p.muted", null, "Log in to your workspace."),
      h("label", { for: "login-username" }, "Username"),
      user,
      h("label", { for: "login-password" }, "Password"),
      pass,
      submit,
      error,
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      submit.disabled = true;
      error.textContent = "";
      if (timer) clearInterval(timer);
      try {
        const { user: u, warning } = await login(user.value.trim(), pass.value);
        try {
          if (warning) sessionStorage.setItem(LOGIN_WARNING_KEY, JSON.stringify(warning));
          else sessionStorage.removeItem(LOGIN_WARNING_KEY);
        } catch {
          /* storage unavailable: the save refusals still say it */
        }
        ctx.refreshUser(u);
      } catch (err) {
        const ce = err instanceof CampusError ? err : new CampusError("internal", String(err));
        const base = ce.code === "unauthorized" ? "Wrong username or password." : describeRefusal(ce.code, ce.message);
        if (ce.retryAfterMs) {
          const until = Date.now() + ce.retryAfterMs;
          const tick = () => {
            error.textContent = `${base} ${retryText(until - Date.now())}`;
          };
          tick();
          timer = setInterval(tick, 500);
        } else error.textContent = base;
        pass.select();
      } finally {
        submit.disabled = false;
      }
    });
    ctx.root.append(h("main.login-page", null, form));
    user.focus();
    return () => {
      if (timer) clearInterval(timer);
    };
  },
};
