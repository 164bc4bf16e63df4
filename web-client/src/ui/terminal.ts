// The terminal: xterm.js + fit, output written with flow-control acks, keys
// sent as `input`, Ctrl-C as `interrupt`, size changes as `resize`.
import { FitAddon } from "@xterm/addon-fit";
import { Terminal, type ITheme } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import type { Connection } from "../connection";
import { keySent, outputArrived, outputRendered } from "../perf";
import { currentTheme, onThemeChange, type Theme } from "../theme";
import { h } from "./dom";
import { guardTerminal, safeLinkHandler } from "./termguard";

const THEMES: Record<Theme, ITheme> = {
  light: {
    background: "#ffffff",
    foreground: "#1f2328",
    cursor: "#1f2328",
    selectionBackground: "#b6d6fd",
    black: "#1f2328",
    red: "#b3261e",
    green: "#116329",
    yellow: "#7d4e00",
    blue: "#0550ae",
    magenta: "#8250df",
    cyan: "#1b7c83",
    white: "#6e7781",
    brightBlack: "#57606a",
  },
  dark: {
    background: "#0d1117",
    foreground: "#e6edf3",
    cursor: "#e6edf3",
    selectionBackground: "#264f78",
    red: "#ff7b72",
    green: "#7ee787",
    yellow: "#e3b341",
    blue: "#79c0ff",
    magenta: "#d2a8ff",
    cyan: "#76e3ea",
  },
};

/** The terminal pane. */
export class TerminalPane {
  readonly el = h("div.terminal", { role: "region", "aria-label": "Program output and input (terminal)" });
  readonly term: Terminal;
  private readonly fit = new FitAddon();
  private resizeTimer: ReturnType<typeof setTimeout> | null = null;
  private observer: ResizeObserver;
  /** True while a program runs (keys go to it); otherwise typing shows a hint. */
  running = false;
  onIdleKey: (() => void) | null = null;

  constructor(private readonly conn: Connection) {
    this.term = new Terminal({
      fontFamily: 'ui-monospace, "Cascadia Mono", "DejaVu Sans Mono", Menlo, monospace',
      fontSize: 14,
      scrollback: 10_000,
      convertEol: false,
      cursorBlink: true,
      theme: THEMES[currentTheme()],
      allowProposedApi: false,
      // OSC 8 hyperlinks from program output: http/https only, after a confirm.
      linkHandler: safeLinkHandler(),
    });
    // Clipboard, title and answer-back sequences from the program are dropped.
    guardTerminal(this.term);
    this.term.loadAddon(this.fit);
    this.term.onData((data) => this.onData(data));
    this.term.onResize(({ cols, rows }) => {
      if (this.resizeTimer) clearTimeout(this.resizeTimer);
      this.resizeTimer = setTimeout(() => {
        if (this.running) this.conn.send({ type: "resize", cols, rows });
      }, 100);
    });
    onThemeChange((t) => {
      this.term.options.theme = THEMES[t];
    });
    this.observer = new ResizeObserver(() => this.fitNow());
  }

  /** Attach to the DOM (after the element is in the document). */
  open(): void {
    this.term.open(this.el);
    this.observer.observe(this.el);
    this.fitNow();
  }

  /** Fit to the container. */
  fitNow(): void {
    try {
      this.fit.fit();
    } catch {
      /* not visible yet */
    }
  }

  /** Current size, for `run`. */
  size(): { cols: number; rows: number } {
    return { cols: this.term.cols, rows: this.term.rows };
  }

  private onData(data: string): void {
    if (!this.running) {
      this.onIdleKey?.();
      return;
    }
    if (data === "\x03" && !this.term.hasSelection()) {
      this.conn.send({ type: "interrupt" });
      return;
    }
    keySent();
    this.conn.send({ type: "input", data });
  }

  /** Write program output ending at offset `endSeq`; acked once xterm has processed it. */
  output(bytes: Uint8Array, endSeq: number): void {
    outputArrived();
    this.term.write(bytes, () => {
      this.conn.consumed(endSeq);
      outputRendered();
    });
  }

  /** A line from the IDE itself (not the program), dimmed. */
  note(text: string): void {
    this.term.write(`\r\n\x1b[2m${text.replace(/\n/g, "\r\n")}\x1b[0m\r\n`);
  }

  /** Clear before a new run. */
  reset(): void {
    this.term.reset();
  }

  /** Focus the terminal (keyboard users jump here after Run). */
  focus(): void {
    this.term.focus();
  }

  /** The whole buffer as text (used by the end-to-end tests). */
  text(): string {
    const buf = this.term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < buf.length; i++) {
      const line = buf.getLine(i);
      if (!line) continue;
      const s = line.translateToString(true);
      if (line.isWrapped && lines.length > 0) lines[lines.length - 1] += s;
      else lines.push(s);
    }
    return lines.join("\n");
  }

  /** Stop observing the container. */
  dispose(): void {
    this.observer.disconnect();
    this.term.dispose();
  }
}
