// The connection banner: visible whenever the socket is not open.
import type { Connection, ConnState } from "../connection";
import { h } from "./dom";

/** Banner showing connecting/reconnecting with a countdown and "Retry now". */
export class ConnBanner {
  readonly el = h("div.conn-banner", { role: "alert", hidden: true });
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(private readonly conn: Connection) {
    conn.on("state", (s) => this.render(s));
  }

  private render(s: ConnState): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.el.dataset.state = s.kind;
    if (s.kind === "closed" && s.reason === "replaced") {
      // Another tab or device of this account took this connection's place:
      // reconnect only when asked (that closes the account's oldest one).
      this.el.hidden = false;
      const again = h("button", { onclick: () => this.conn.start() }, "Reconnect here");
      this.el.replaceChildren(
        h("span", null, "This tab was disconnected because your account has too many tabs or devices connected. Your edits are kept on this device."),
        " ",
        again,
      );
      return;
    }
    if (s.kind === "open" || s.kind === "closed") {
      this.el.hidden = true;
      return;
    }
    this.el.hidden = false;
    if (s.kind === "connecting") {
      this.el.replaceChildren(h("span", null, s.attempt === 0 ? "Connecting to the server…" : "Reconnecting…"));
      return;
    }
    const text = h("span");
    const retry = h("button", { onclick: () => this.conn.retryNow() }, "Retry now");
    const tick = () => {
      const left = Math.max(0, Math.ceil((s.retryAt - Date.now()) / 1000));
      text.textContent = `Connection lost. Your edits are kept on this device. Reconnecting in ${left} s (attempt ${s.attempt})…`;
    };
    tick();
    this.timer = setInterval(tick, 500);
    this.el.replaceChildren(text, " ", retry);
  }
}
