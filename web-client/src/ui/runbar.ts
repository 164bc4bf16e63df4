// Run toolbar (Run, Run + REPL, REPL, Stop) and the status line with the
// run's phase and its ending in plain words.
import type { Connection } from "../connection";
import { describeEnding, describeRunning, describeUsage } from "../describe";
import { CampusError, type Phase, type RunEnded, type RunMode, type ServerMsg } from "../protocol";
import { h } from "./dom";
import type { Notices } from "./notices";
import type { TerminalPane } from "./terminal";

/** What the toolbar needs from the IDE. */
export interface RunDeps {
  conn: Connection;
  terminal: TerminalPane;
  notices: Notices;
  /** The file to run (the active tab), or null. */
  activePath: () => string | null;
  /** Save every open tab before running. */
  saveAll: () => Promise<void>;
}

/** The run toolbar and status line. */
export class RunBar {
  readonly el: HTMLElement;
  private readonly status = h("div.run-status", { role: "status", "aria-live": "polite" });
  private readonly phaseBadge = h("span.phase-badge");
  private readonly statusText = h("span.status-text");
  private readonly usage = h("span.status-usage.muted");
  private readonly runBtn = h("button.primary", { title: "Run the open file (F5)", dataset: { action: "run" } }, "▶ Run");
  private readonly hybridBtn = h("button", { title: "Run the file, then a Python REPL with its variables", dataset: { action: "hybrid" } }, "Run + REPL");
  private readonly replBtn = h("button", { title: "Start a Python REPL", dataset: { action: "repl" } }, "REPL");
  private readonly stopBtn = h("button.danger", { title: "Stop the program", disabled: true, dataset: { action: "stop" } }, "■ Stop");
  running = false;
  mode: RunMode | null = null;
  path = "";
  phase: Phase | null = null;
  lastEnded: RunEnded | null = null;

  constructor(private readonly deps: RunDeps) {
    this.runBtn.addEventListener("click", () => void this.start("script"));
    this.hybridBtn.addEventListener("click", () => void this.start("hybrid"));
    this.replBtn.addEventListener("click", () => void this.start("repl"));
    this.stopBtn.addEventListener("click", () => void this.stop());
    this.status.append(this.phaseBadge, this.statusText, this.usage);
    this.el = h("div.runbar", { role: "toolbar", "aria-label": "Run" }, this.runBtn, this.hybridBtn, this.replBtn, this.stopBtn, this.status);
    this.setIdle("Ready. Press Run to run the open file.");
  }

  /** Start a run of the active file (or a REPL). */
  async start(mode: RunMode): Promise<void> {
    const path = mode === "repl" ? "" : this.deps.activePath();
    if (mode !== "repl" && !path) {
      this.deps.notices.show("Open a Python file first, then press Run.");
      return;
    }
    this.setBusy(true);
    try {
      await this.deps.saveAll();
      this.deps.terminal.reset();
      const { cols, rows } = this.deps.terminal.size();
      const reply = await this.deps.conn.request({ type: "run", path: path ?? "", mode, cols, rows });
      if (reply.type === "run_started" && reply.replaced_previous) this.deps.notices.show("The previous run was stopped to start this one.");
      this.deps.terminal.focus();
    } catch (e) {
      this.deps.notices.error("Could not start the program", e);
      this.render();
    } finally {
      this.setBusy(false);
    }
  }

  /** Stop the running program. */
  async stop(): Promise<void> {
    try {
      await this.deps.conn.request({ type: "stop" });
    } catch (e) {
      if (!(e instanceof CampusError && e.code === "not_found")) this.deps.notices.error("Could not stop the program", e);
    }
  }

  private setBusy(busy: boolean): void {
    for (const b of [this.runBtn, this.hybridBtn, this.replBtn]) b.disabled = busy;
  }

  /** Follow run events (from our requests and from other tabs). */
  handle(msg: ServerMsg): void {
    switch (msg.type) {
      case "run_started":
        this.running = true;
        this.mode = msg.mode;
        this.path = msg.path;
        this.phase = msg.mode === "repl" ? "repl" : "script";
        this.lastEnded = null;
        break;
      case "phase":
        this.phase = msg.phase;
        if (msg.phase === "repl") this.deps.terminal.focus();
        break;
      case "warning":
        this.deps.notices.show(msg.message, "error", msg.stop_in_ms);
        return;
      case "run_ended": {
        this.running = false;
        this.lastEnded = msg;
        this.deps.terminal.note(`[${describeEnding(msg)}]`);
        break;
      }
      case "attached":
        this.running = msg.running;
        this.phase = msg.phase ?? null;
        if (!msg.running && msg.last_ended) this.lastEnded = msg.last_ended;
        if (msg.dropped_bytes > 0) this.deps.terminal.note(`[${msg.dropped_bytes} bytes of earlier output are no longer kept]`);
        break;
      default:
        return;
    }
    this.render();
  }

  private render(): void {
    this.deps.terminal.running = this.running;
    this.stopBtn.disabled = !this.running;
    this.el.dataset.running = String(this.running);
    if (this.running) {
      this.phaseBadge.textContent = this.phase === "repl" ? "REPL" : "Script";
      this.phaseBadge.dataset.phase = this.phase ?? "script";
      this.phaseBadge.hidden = false;
      this.statusText.textContent = this.mode ? describeRunning(this.mode, this.path, this.phase) : "Program running";
      this.usage.textContent = "";
      this.status.dataset.ending = "";
    } else if (this.lastEnded) {
      this.phaseBadge.hidden = true;
      this.statusText.textContent = describeEnding(this.lastEnded, this.deps.conn.hello?.limits);
      this.usage.textContent = describeUsage(this.lastEnded);
      this.usage.title = this.lastEnded.message;
      this.status.dataset.ending = this.lastEnded.reason;
    } else {
      this.setIdle("Ready. Press Run to run the open file.");
    }
  }

  private setIdle(text: string): void {
    this.phaseBadge.hidden = true;
    this.statusText.textContent = text;
    this.usage.textContent = "";
    this.status.dataset.ending = "";
  }
}
