// Autosave of one open text file: debounced saves that always carry the base
// version, Ctrl/Cmd-S, unsaved edits mirrored to local storage, conflicts
// surfaced (never overwritten) and saves retried after a reconnect.
import { CampusError } from "./protocol";

/** A save refused for a full disk is tried again this often (the draft is kept meanwhile). */
export const DISK_FULL_RETRY_MS = 30_000;

/** Writes a file; rejects with a `CampusError` (code `conflict` carries `currentVersion`). */
export type SaveFn = (path: string, content: string, baseVersion: string | null) => Promise<{ version: string }>;

/** Where unsaved edits survive a reload or a lost connection (localStorage in the browser). */
export interface DraftStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** A draft kept in the store. */
export interface Draft {
  text: string;
  baseVersion: string | null;
  savedAt: number;
}

/** Timer functions, injectable for tests. */
export interface AutosaveTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** What the tab's unsaved marker shows. */
export type SaveState = "saved" | "dirty" | "saving" | "conflict" | "offline" | "error";

/** A write was refused because the file changed elsewhere. */
export interface ConflictInfo {
  path: string;
  mine: string;
  baseVersion: string | null;
  currentVersion: string | undefined;
}

/** Options of one file's autosave. */
export interface AutosaveOptions {
  path: string;
  /** The content as last loaded from (or saved to) the server. */
  text: string;
  /** Its version; null for a file that does not exist on the server yet. */
  baseVersion: string | null;
  save: SaveFn;
  store: DraftStore;
  /** Key prefix in the store, e.g. `campus.draft.<user id>.` */
  storePrefix: string;
  debounceMs?: number;
  timers?: AutosaveTimers;
  onState?: (s: SaveState, detail?: CampusError) => void;
  onConflict?: (c: ConflictInfo) => void;
  onSaved?: (version: string) => void;
}

/** Read a stored draft for `path`, if any. */
export function readDraft(store: DraftStore, prefix: string, path: string): Draft | null {
  const raw = store.getItem(prefix + path);
  if (!raw) return null;
  try {
    const d = JSON.parse(raw) as Draft;
    return typeof d.text === "string" ? d : null;
  } catch {
    return null;
  }
}

/** Autosave controller of one open file. */
export class Autosave {
  path: string;
  /** Current editor text. */
  text: string;
  /** Version the editor text is based on. */
  baseVersion: string | null;
  /** Content known to be on the server at `baseVersion`. */
  savedText: string;
  state: SaveState = "saved";

  private timer: unknown = null;
  private inFlight: Promise<void> | null = null;
  private readonly debounceMs: number;
  private readonly timers: AutosaveTimers;

  constructor(private readonly opts: AutosaveOptions) {
    this.path = opts.path;
    this.text = opts.text;
    this.savedText = opts.text;
    this.baseVersion = opts.baseVersion;
    this.debounceMs = opts.debounceMs ?? 1000;
    this.timers = opts.timers ?? {
      setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
      clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
    };
  }

  /** True when the editor holds text the server does not have. */
  get dirty(): boolean {
    return this.text !== this.savedText;
  }

  private setState(s: SaveState, detail?: CampusError): void {
    this.state = s;
    this.opts.onState?.(s, detail);
  }

  private persistDraft(): void {
    const key = this.opts.storePrefix + this.path;
    if (this.dirty) {
      const d: Draft = { text: this.text, baseVersion: this.baseVersion, savedAt: Date.now() };
      try {
        this.opts.store.setItem(key, JSON.stringify(d));
      } catch {
        /* storage full or disabled: the server save still runs */
      }
    } else {
      this.opts.store.removeItem(key);
    }
  }

  /** The editor text changed: remember it locally and save after the pause. */
  edit(text: string): void {
    this.text = text;
    this.persistDraft();
    if (this.state === "conflict") return; // wait for the user's choice
    if (!this.dirty) {
      this.cancelTimer();
      if (this.state !== "saving") this.setState("saved");
      return;
    }
    if (this.state !== "saving") this.setState("dirty");
    this.schedule(this.debounceMs);
  }

  /**
   * Adopt a draft from local storage (unsaved edits from before a reload):
   * the editor shows it and it is saved with its own base version, so a change
   * made elsewhere in the meantime becomes a conflict, not an overwrite.
   */
  adoptDraft(d: Draft): void {
    this.baseVersion = d.baseVersion;
    this.text = d.text;
    if (this.dirty) {
      this.setState("dirty");
      this.schedule(0);
    }
  }

  private cancelTimer(): void {
    if (this.timer !== null) {
      this.timers.clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private schedule(ms: number): void {
    this.cancelTimer();
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      void this.saveNow();
    }, ms);
  }

  /** Save now (Ctrl/Cmd-S, before a run); resolves when the text is saved or cannot be. */
  async saveNow(): Promise<void> {
    this.cancelTimer();
    while (this.inFlight) await this.inFlight;
    if (!this.dirty || this.state === "conflict") return;
    const content = this.text;
    const base = this.baseVersion;
    this.setState("saving");
    const run = (async () => {
      try {
        const { version } = await this.opts.save(this.path, content, base);
        this.baseVersion = version;
        this.savedText = content;
        this.persistDraft();
        this.opts.onSaved?.(version);
        this.setState(this.dirty ? "dirty" : "saved");
        if (this.dirty) this.schedule(this.debounceMs);
      } catch (e) {
        const err = e instanceof CampusError ? e : new CampusError("internal", String(e));
        if (err.code === "conflict") {
          this.setState("conflict", err);
          this.opts.onConflict?.({
            path: this.path,
            mine: this.text,
            baseVersion: base,
            currentVersion: err.currentVersion,
          });
        } else if (err.code === "disconnected" || err.code === "timeout") {
          // Kept in local storage; `connectionReady` saves it again.
          this.setState("offline", err);
        } else if (err.code === "rate_limited" || err.code === "busy") {
          this.setState("error", err);
          this.schedule(Math.max(err.retryAfterMs ?? 1000, 100));
        } else if (err.code === "insufficient_storage") {
          // The disk may be freed at any time: the draft stays in local
          // storage and is offered again every half minute.
          this.setState("error", err);
          this.schedule(DISK_FULL_RETRY_MS);
        } else {
          this.setState("error", err);
        }
      }
    })();
    this.inFlight = run;
    try {
      await run;
    } finally {
      this.inFlight = null;
    }
  }

  /** Another device changed the file while we have edits: stop saving until the user chooses. */
  markConflict(): void {
    this.cancelTimer();
    if (this.state !== "conflict") this.setState("conflict");
  }

  /** The connection is (back) up: save whatever is pending. */
  connectionReady(): void {
    if (this.dirty && this.state !== "conflict" && this.state !== "saving") {
      this.schedule(0);
    }
  }

  /**
   * The server has new content (a refresh, or the user's conflict choice): it
   * becomes the base; `editorText` is what the editor shows afterwards.
   */
  rebase(serverText: string, version: string, editorText: string = serverText): void {
    this.cancelTimer();
    this.savedText = serverText;
    this.baseVersion = version;
    this.text = editorText;
    this.persistDraft();
    this.setState(this.dirty ? "dirty" : "saved");
    if (this.dirty) this.schedule(this.debounceMs);
  }

  /** The file was renamed: move the draft key along. */
  rename(newPath: string): void {
    this.opts.store.removeItem(this.opts.storePrefix + this.path);
    this.path = newPath;
    this.persistDraft();
  }

  /** The tab is closing (after a save or the user's discard). */
  dispose(discardDraft: boolean): void {
    this.cancelTimer();
    if (discardDraft) this.opts.store.removeItem(this.opts.storePrefix + this.path);
  }
}
