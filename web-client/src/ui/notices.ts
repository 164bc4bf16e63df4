// Refusals and other messages as dismissable notices, with a countdown when
// the server said how long to wait (retry_after_ms).
import { describeRefusal, retryText } from "../describe";
import { CampusError, type Limits } from "../protocol";
import { h } from "./dom";

/** The notice area (an aria-live region). */
export class Notices {
  readonly el = h("div.notices", { role: "status", "aria-live": "polite" });
  limits: Limits | null = null;

  /** Show an error from any operation. */
  error(what: string, e: unknown): void {
    const err = e instanceof CampusError ? e : new CampusError("internal", String(e));
    this.show(`${what}: ${describeRefusal(err.code, err.message, this.limits)}`, "error", err.retryAfterMs, err.code);
  }

  /** Show a message; `retryAfterMs` adds a live countdown. The same message again replaces the old one. */
  show(text: string, kind: "info" | "error" = "info", retryAfterMs?: number, code?: string): HTMLElement {
    // A save retried every 30 s on a full disk must not stack up a column of notices.
    for (const old of Array.from(this.el.children)) {
      if (old instanceof HTMLElement && old.dataset.text === text) old.querySelector<HTMLButtonElement>("button.icon")?.click();
    }
    const countdown = h("span.countdown");
    const close = h("button.icon", { "aria-label": "Dismiss", title: "Dismiss" }, "×");
    const el = h(`div.notice.${kind}`, { dataset: { code: code ?? "", text } }, h("span", null, text), " ", countdown, close);
    let timer: ReturnType<typeof setInterval> | null = null;
    const remove = () => {
      if (timer) clearInterval(timer);
      el.remove();
    };
    close.addEventListener("click", remove);
    if (retryAfterMs !== undefined) {
      const until = Date.now() + retryAfterMs;
      const tick = () => {
        const left = until - Date.now();
        countdown.textContent = retryText(left);
        if (left <= 0 && timer) {
          clearInterval(timer);
          timer = null;
          setTimeout(remove, 4000);
        }
      };
      tick();
      timer = setInterval(tick, 250);
    } else if (kind === "info") {
      setTimeout(remove, 6000);
    }
    this.el.appendChild(el);
    return el;
  }
}
