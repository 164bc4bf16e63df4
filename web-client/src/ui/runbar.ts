// Run toolbar (Run, Run + REPL, REPL, Stop) and the status line with the
// run's phase and its ending in plain words, coloured by outcome (success,
// error, or neither), or a refused Run with its countdown.
import type { Connection } from "../connection";
import { describeEnding, describeRefusal, describeRunning, describeUsage, endingOutcome, retryText, runningOutcome } from "../describe";
import { CampusError, type Phase, type Request, type RunEnded, type RunMode, type ServerMsg } from "../protocol";
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

/** A Run the server (or the network) refused: shown until the next run starts. */
interface Refusal {
  code: string;
  text: string;
  /** When waiting is over (from `retry_after_ms`), if the server said. */
  until: number | null;
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
  /** The exception a hybrid script raised before its REPL opened. */
  scriptError: string | null = null;
  lastEnded: RunEnded | null = null;
  refusal: Refusal | null = null;
  private countdown: ReturnType<typeof setInterval> | null = null;

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
    await this.launch(async () => {
      await this.deps.saveAll();
      // The terminal is cleared when `run_started` arrives (see `handle`): a
      // refused Run leaves the previous output where it is.
      const { cols, rows } = this.deps.terminal.size();
      return { type: "run", path: path ?? "", mode, cols, rows };
    });
  }

  /** Send the run `make` builds (after its own preparation), and show the outcome. */
  private async launch(make: () => Promise<Request>): Promise<void> {
    this.setBusy(true);
    try {
      const reply = await this.deps.conn.request(await make());
      if (reply.type === "run_started" && reply.replaced_previous) this.deps.notices.show("The previous run was stopped to start this one.");
      this.deps.terminal.focus();
    } catch (e) {
      this.refused(e);
    } finally {
      this.setBusy(false);
    }
  }

  /** Run a course file (`/course/<slug>/<path>`, read-only; the working directory is the workspace). */
  async startCourse(course: string, path: string): Promise<void> {
    await this.launch(async () => {
      const { cols, rows } = this.deps.terminal.size();
      return { type: "run", path, mode: "script", cols, rows, course };
    });
  }

  /** Show why Run was refused, counting down when the server said how long to wait. */
  private refused(e: unknown): void {
    const err = e instanceof CampusError ? e : new CampusError("internal", String(e));
    const limits = this.deps.conn.hello?.limits;
    let text: string;
    if (err.code === "disconnected" || err.code === "timeout") text = "Not started: not connected to the server. Press Run again once it is back.";
    else if (err.code === "rate_limited") text = `Not started: you started too many programs in a short time${limits ? ` (limit ${limits.runs_per_min} a minute)` : ""}.`;
    else text = `Not started: ${describeRefusal(err.code, err.message, limits)}`;
    this.refusal = { code: err.code, text, until: err.retryAfterMs !== undefined ? Date.now() + err.retryAfterMs : null };
    this.render();
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
        // Our own run (the reply carries our request id): a clean terminal for it.
        // Its output follows this message, so nothing of it is cleared.
        if (msg.id !== undefined) this.deps.terminal.reset();
        this.running = true;
        this.mode = msg.mode;
        this.path = msg.path;
        this.phase = msg.mode === "repl" ? "repl" : "script";
        this.scriptError = null;
        this.lastEnded = null;
        this.refusal = null;
        break;
      case "phase":
        this.phase = msg.phase;
        this.scriptError = msg.script_error ?? null;
        if (msg.phase === "repl") this.deps.terminal.focus();
        break;
      case "warning":
        this.deps.notices.show(msg.message, "error", msg.stop_in_ms);
        return;
      case "run_ended": {
        this.running = false;
        this.refusal = null;
        this.lastEnded = msg;
        this.deps.terminal.note(`[${describeEnding(msg)}]`);
        break;
      }
      case "attached":
        this.running = msg.running;
        if (msg.mode) this.mode = msg.mode;
        if (msg.path !== undefined) this.path = msg.path;
        this.phase = msg.phase ?? null;
        this.scriptError = msg.script_error ?? null;
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
    this.stopCountdown();
    if (this.running && !this.refusal) {
      this.phaseBadge.textContent = this.phase === "repl" ? "REPL" : "Script";
      this.phaseBadge.dataset.phase = this.phase ?? "script";
      this.phaseBadge.hidden = false;
      this.statusText.textContent = this.mode ? describeRunning(this.mode, this.path, this.phase, this.scriptError) : "Program running";
      this.usage.textContent = "";
      this.status.dataset.ending = "";
      this.status.dataset.outcome = runningOutcome(this.scriptError);
    } else if (this.refusal) {
      const r = this.refusal;
      // A refused replacement leaves the live run as it is (Stop still works).
      this.phaseBadge.hidden = !this.running;
      this.usage.textContent = "";
      this.usage.title = "";
      this.status.dataset.ending = "refused";
      this.status.dataset.outcome = "refused";
      this.status.dataset.code = r.code;
      const tick = () => {
        const left = r.until === null ? null : r.until - Date.now();
        this.statusText.textContent = left === null ? r.text : `${r.text} ${retryText(left)}`;
        if (left !== null && left <= 0) this.stopCountdown();
      };
      tick();
      if (r.until !== null && r.until > Date.now()) this.countdown = setInterval(tick, 250);
    } else if (this.lastEnded) {
      this.phaseBadge.hidden = true;
      const ending = describeEnding(this.lastEnded, this.deps.conn.hello?.limits);
      // A hybrid run whose script raised stays an error after its REPL ends
      // cleanly: the REPL's exit code 0 must not turn the script's failure green.
      const raised = this.mode === "hybrid" && runningOutcome(this.scriptError) === "error" && endingOutcome(this.lastEnded) === "ok";
      this.statusText.textContent = raised ? `${this.path} raised ${this.scriptError}; REPL closed — ${ending}` : ending;
      this.usage.textContent = describeUsage(this.lastEnded);
      this.usage.title = this.lastEnded.message;
      this.status.dataset.ending = this.lastEnded.reason;
      this.status.dataset.outcome = raised ? "error" : endingOutcome(this.lastEnded);
    } else {
      this.setIdle("Ready. Press Run to run the open file.");
    }
    if (!this.refusal) delete this.status.dataset.code;
  }

  private stopCountdown(): void {
    if (this.countdown !== null) clearInterval(this.countdown);
    this.countdown = null;
  }

  private setIdle(text: string): void {
    this.phaseBadge.hidden = true;
    this.statusText.textContent = text;
    this.usage.textContent = "";
    this.status.dataset.ending = "";
    this.status.dataset.outcome = "";
  }
}
