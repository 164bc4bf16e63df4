// Tabs of open files: CodeMirror for text (autosave, unsaved markers, conflict
// banner), viewers for images/PDF/CSV, and the reaction to `file_changed`.
import { EditorState } from "@codemirror/state";
import { EditorView } from "@codemirror/view";
import { Autosave, readDraft, type DraftStore, type SaveState } from "../autosave";
import { onFileChanged, resolveConflict, type Choice, type Conflict } from "../conflict";
import { fileKind, type FileKind } from "../filekinds";
import { CampusError, type ServerMsgOf } from "../protocol";
import { fileText, type WorkspaceApi } from "../workspace";
import { editorExtensions } from "./cm";
import { renderConflictBanner } from "./conflictBanner";
import { h } from "./dom";
import type { Notices } from "./notices";
import { renderViewer } from "./viewers";

/** One open tab. */
interface Tab {
  path: string;
  kind: FileKind;
  button: HTMLButtonElement;
  marker: HTMLSpanElement;
  state?: EditorState;
  autosave?: Autosave;
  viewer?: HTMLElement;
  version?: string;
  conflict?: Conflict;
}

/** What the editor needs from the rest of the IDE. */
export interface EditorDeps {
  ws: WorkspaceApi;
  notices: Notices;
  store: DraftStore;
  draftPrefix: string;
  exists: (path: string) => boolean;
  connectionId: () => string | undefined;
  onTabsChanged: (paths: string[], active: string | null) => void;
  onFilesChanged: () => void;
}

const STATE_LABEL: Record<SaveState, string> = {
  saved: "Saved",
  dirty: "Unsaved changes",
  saving: "Saving…",
  conflict: "Changed elsewhere — choose a version",
  offline: "Not saved yet (offline) — kept on this device",
  error: "Not saved — will retry",
};

/** The tab strip and the editor/viewer area. */
export class EditorPane {
  readonly el: HTMLElement;
  private readonly tabBar = h("div.tabs", { role: "tablist", "aria-label": "Open files" });
  private readonly bannerSlot = h("div.banner-slot");
  private readonly body = h("div.editor-body");
  private readonly cmHost = h("div.cm-host");
  private readonly empty = h("div.empty", null, h("p", null, "Open a file from the list on the left, or create one with “New file”."));
  private readonly saveStatus = h("span.save-status", { "aria-live": "polite" });
  private readonly view: EditorView;
  private tabs: Tab[] = [];
  private active: Tab | null = null;
  /** Set while the editor content is replaced programmatically (no autosave). */
  private replacing = false;

  constructor(private readonly deps: EditorDeps) {
    this.view = new EditorView({ parent: this.cmHost });
    this.el = h("section.editor-pane", { "aria-label": "Editor" }, h("div.tabs-row", null, this.tabBar, this.saveStatus), this.bannerSlot, this.body);
    this.showBody();
  }

  /** Paths of the open tabs. */
  openPaths(): string[] {
    return this.tabs.map((t) => t.path);
  }

  /** The active tab's path. */
  activePath(): string | null {
    return this.active?.path ?? null;
  }

  /** The active tab's editor text (tests read it). */
  activeText(): string | null {
    return this.active?.state ? this.view.state.doc.toString() : null;
  }

  /** The active text tab's base version. */
  activeVersion(): string | null {
    return this.active?.autosave?.baseVersion ?? null;
  }

  /** True if any tab has unsaved text. */
  hasUnsaved(): boolean {
    return this.tabs.some((t) => t.autosave?.dirty);
  }

  /** Open (or focus) a file. */
  async open(path: string, mime?: string | null, focus = true): Promise<void> {
    const existing = this.tabs.find((t) => t.path === path);
    if (existing) {
      this.activate(existing, focus);
      return;
    }
    const kind = fileKind(path, mime);
    const tab = this.makeTab(path, kind);
    if (kind === "text") {
      let file: ServerMsgOf<"file">;
      try {
        file = await this.deps.ws.read(path);
      } catch (e) {
        tab.button.parentElement?.remove();
        this.tabs = this.tabs.filter((t) => t !== tab);
        this.deps.notices.error(`Could not open ${path}`, e);
        this.notifyTabs();
        return;
      }
      if (file.encoding === "base64") {
        tab.kind = "binary";
        tab.version = file.version;
      } else {
        this.initText(tab, file.content, file.version);
      }
    }
    this.activate(tab, focus);
  }

  private makeTab(path: string, kind: FileKind): Tab {
    const marker = h("span.unsaved-marker", { "aria-hidden": "true" });
    const label = h("span.tab-label", null, path.slice(path.lastIndexOf("/") + 1));
    const button = h("button.tab", { role: "tab", title: path, "aria-selected": "false", dataset: { path, state: "saved" } }, label, marker);
    const close = h("button.tab-close", { "aria-label": `Close ${path}`, title: "Close" }, "×");
    const wrap = h("div.tab-wrap", null, button, close);
    const tab: Tab = { path, kind, button, marker };
    button.addEventListener("click", () => this.activate(tab, true));
    button.addEventListener("auxclick", (e) => {
      if (e.button === 1) void this.close(tab.path);
    });
    close.addEventListener("click", () => void this.close(tab.path));
    this.tabBar.appendChild(wrap);
    this.tabs.push(tab);
    return tab;
  }

  private initText(tab: Tab, text: string, version: string): void {
    tab.version = version;
    tab.autosave = new Autosave({
      path: tab.path,
      text,
      baseVersion: version,
      save: (p, c, b) => this.deps.ws.write(p, c, b),
      store: this.deps.store,
      storePrefix: this.deps.draftPrefix,
      onState: (s, err) => this.onSaveState(tab, s, err),
      onConflict: () => void this.showConflict(tab),
      onSaved: (v) => {
        tab.version = v;
      },
    });
    tab.state = this.newState(tab, text);
    const draft = readDraft(this.deps.store, this.deps.draftPrefix, tab.path);
    if (draft && draft.text !== text) {
      // Unsaved edits from before a reload or a lost connection.
      tab.state = this.newState(tab, draft.text);
      tab.autosave.adoptDraft(draft);
      this.deps.notices.show(`Restored your unsaved changes to ${tab.path}.`);
    } else if (draft) {
      this.deps.store.removeItem(this.deps.draftPrefix + tab.path);
    }
  }

  private newState(tab: Tab, text: string): EditorState {
    return EditorState.create({
      doc: text,
      extensions: editorExtensions({
        python: tab.path.endsWith(".py") || tab.path.endsWith(".pyi"),
        onChange: (t) => {
          if (!this.replacing) tab.autosave?.edit(t);
        },
        onSave: () => void tab.autosave?.saveNow(),
      }),
    });
  }

  private onSaveState(tab: Tab, s: SaveState, err?: CampusError): void {
    tab.button.dataset.state = s;
    tab.marker.textContent = s === "saved" ? "" : "●";
    tab.marker.title = STATE_LABEL[s];
    tab.button.setAttribute("aria-label", `${tab.path}${s === "saved" ? "" : ` (${STATE_LABEL[s].toLowerCase()})`}`);
    if (tab === this.active) this.saveStatus.textContent = STATE_LABEL[s];
    if (s === "error" && err) this.deps.notices.error(`Could not save ${tab.path}`, err);
    if (s === "saved") this.deps.onFilesChanged();
  }

  private activate(tab: Tab, focus: boolean): void {
    if (this.active?.state && this.active !== tab) this.active.state = this.view.state;
    this.active = tab;
    for (const t of this.tabs) {
      t.button.setAttribute("aria-selected", String(t === tab));
      t.button.tabIndex = t === tab ? 0 : -1;
    }
    if (tab.state) {
      this.view.setState(tab.state);
      this.saveStatus.textContent = STATE_LABEL[tab.autosave?.state ?? "saved"];
    } else {
      this.saveStatus.textContent = "";
      tab.viewer = renderViewer(tab.kind, tab.path, tab.version, (e) => this.deps.notices.error(`Could not show ${tab.path}`, e));
    }
    this.showBody();
    this.renderBanner();
    if (focus && tab.state) this.view.focus();
    this.notifyTabs();
  }

  private showBody(): void {
    const tab = this.active;
    if (!tab) this.body.replaceChildren(this.empty);
    else if (tab.state) this.body.replaceChildren(this.cmHost);
    else if (tab.viewer) this.body.replaceChildren(tab.viewer);
  }

  private notifyTabs(): void {
    this.deps.onTabsChanged(this.openPaths(), this.activePath());
  }

  /** Close a tab (saving first; unsaved text stays in local storage if the save fails). */
  async close(path: string): Promise<void> {
    const tab = this.tabs.find((t) => t.path === path);
    if (!tab) return;
    if (tab === this.active && tab.state) tab.state = this.view.state;
    if (tab.autosave?.dirty) await tab.autosave.saveNow();
    const saved = !tab.autosave?.dirty;
    tab.autosave?.dispose(saved);
    if (!saved) this.deps.notices.show(`${path} is not saved yet; your text is kept on this device and comes back when you open it.`);
    const idx = this.tabs.indexOf(tab);
    tab.button.parentElement?.remove();
    this.tabs.splice(idx, 1);
    if (this.active === tab) {
      this.active = null;
      const next = this.tabs[Math.min(idx, this.tabs.length - 1)];
      if (next) this.activate(next, false);
      else {
        this.showBody();
        this.renderBanner();
        this.saveStatus.textContent = "";
        this.notifyTabs();
      }
    } else this.notifyTabs();
  }

  /** Save every tab now (before a run). */
  async saveAll(): Promise<void> {
    if (this.active?.state) this.active.state = this.view.state;
    await Promise.all(this.tabs.map((t) => t.autosave?.saveNow()));
  }

  /** Save the active tab now. */
  async saveActive(): Promise<void> {
    await this.active?.autosave?.saveNow();
  }

  /** Replace the text of a tab without triggering autosave. */
  private setText(tab: Tab, text: string): void {
    if (tab === this.active && tab.state) {
      const sel = this.view.state.selection.main.head;
      this.replacing = true;
      try {
        this.view.dispatch({
          changes: { from: 0, to: this.view.state.doc.length, insert: text },
          selection: { anchor: Math.min(sel, text.length) },
        });
      } finally {
        this.replacing = false;
      }
      tab.state = this.view.state;
    } else if (tab.state) {
      this.replacing = true;
      try {
        tab.state = tab.state.update({ changes: { from: 0, to: tab.state.doc.length, insert: text } }).state;
      } finally {
        this.replacing = false;
      }
    }
  }

  /** Reload a clean tab from the server (changed elsewhere, or after a restore). */
  async reload(path: string): Promise<void> {
    const tab = this.tabs.find((t) => t.path === path);
    if (!tab) return;
    if (!tab.autosave) {
      tab.version = undefined;
      if (tab === this.active) this.activate(tab, false);
      return;
    }
    try {
      const f = await this.deps.ws.read(path);
      if (tab.autosave.dirty) {
        if (f.version !== tab.autosave.baseVersion) void this.showConflict(tab);
        return;
      }
      const text = fileText(f);
      this.setText(tab, text);
      tab.autosave.rebase(text, f.version);
      tab.version = f.version;
    } catch (e) {
      this.deps.notices.error(`Could not reload ${path}`, e);
    }
  }

  /** React to another connection's change. */
  handleFileChanged(ev: ServerMsgOf<"file_changed">): void {
    for (const tab of [...this.tabs]) {
      const state = { path: tab.path, baseVersion: tab.autosave?.baseVersion ?? tab.version ?? null, dirty: tab.autosave?.dirty ?? false };
      const action = onFileChanged(state, ev, this.deps.connectionId());
      switch (action.kind) {
        case "reload":
          void this.reload(tab.path);
          break;
        case "conflict":
          void this.showConflict(tab);
          break;
        case "renamed":
          this.renamed(tab.path, action.to);
          break;
        case "deleted":
          this.deps.notices.show(`${tab.path} was deleted elsewhere. Your tab keeps its text; close it or keep editing to save it again.`);
          break;
        case "ignore":
          break;
      }
    }
  }

  /** Follow a rename made here or elsewhere. */
  renamed(from: string, to: string): void {
    for (const tab of this.tabs) {
      if (tab.path === from || tab.path.startsWith(from + "/")) {
        const np = to + tab.path.slice(from.length);
        tab.autosave?.rename(np);
        tab.path = np;
        tab.button.dataset.path = np;
        tab.button.title = np;
        const label = tab.button.querySelector(".tab-label");
        if (label) label.textContent = np.slice(np.lastIndexOf("/") + 1);
      }
    }
    this.notifyTabs();
  }

  /** Close tabs under a deleted path (their unsaved text, if any, is saved first). */
  async closeUnder(path: string): Promise<void> {
    for (const t of [...this.tabs]) if (t.path === path || t.path.startsWith(path + "/")) await this.close(t.path);
  }

  /** The connection is back: save pending edits and pick up changes made meanwhile. */
  reconnected(): void {
    for (const tab of this.tabs) {
      if (!tab.autosave) continue;
      if (tab.autosave.dirty) tab.autosave.connectionReady();
      else if (tab.autosave.state !== "conflict") void this.reload(tab.path);
    }
  }

  private async showConflict(tab: Tab): Promise<void> {
    try {
      const f = await this.deps.ws.read(tab.path);
      tab.conflict = { path: tab.path, mine: this.textOf(tab), theirs: fileText(f), theirsVersion: f.version };
      tab.autosave?.markConflict();
    } catch (e) {
      this.deps.notices.error(`Could not load the other version of ${tab.path}`, e);
      return;
    }
    if (tab === this.active) this.renderBanner();
  }

  private textOf(tab: Tab): string {
    if (tab === this.active && tab.state) return this.view.state.doc.toString();
    return tab.state?.doc.toString() ?? "";
  }

  private renderBanner(): void {
    const tab = this.active;
    if (!tab?.conflict) {
      this.bannerSlot.replaceChildren();
      return;
    }
    const c = { ...tab.conflict, mine: this.textOf(tab) };
    this.bannerSlot.replaceChildren(renderConflictBanner(c, (choice) => void this.resolve(tab, choice)));
  }

  private async resolve(tab: Tab, choice: Choice): Promise<void> {
    if (!tab.conflict || !tab.autosave) return;
    const c: Conflict = { ...tab.conflict, mine: this.textOf(tab) };
    try {
      const r = await resolveConflict(choice, c, {
        write: (p, content, base) => this.deps.ws.write(p, content, base),
        exists: this.deps.exists,
      });
      tab.conflict = undefined;
      this.setText(tab, r.text);
      tab.autosave.rebase(r.text, r.version);
      tab.version = r.version;
      this.renderBanner();
      this.deps.onFilesChanged();
      if (r.copyPath) this.deps.notices.show(`Kept both: your version is saved as ${r.copyPath}.`);
      else if (choice === "theirs") this.deps.notices.show("Took the other version. Yours is in the version history.");
      else this.deps.notices.show("Kept your version. The other one is in the version history.");
    } catch (e) {
      if (e instanceof CampusError && e.code === "conflict") {
        // It changed yet again: show the newest other version.
        await this.showConflict(tab);
      } else this.deps.notices.error("Could not resolve the conflict", e);
    }
  }

  /** Focus the editor. */
  focus(): void {
    this.view.focus();
  }
}
