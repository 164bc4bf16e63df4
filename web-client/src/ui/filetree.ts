// The file tree: folders, create, rename, delete to trash (+ restore), upload
// (button and drag-and-drop, via PUT /api/files) and download.
import { putFile } from "../api";
import { CampusError, type FileEntry } from "../protocol";
import type { WorkspaceApi } from "../workspace";
import { askText, confirmDialog, showModal } from "./dialog";
import { filesUrl, h } from "./dom";
import type { Notices } from "./notices";

/** What the tree tells the rest of the IDE. */
export interface TreeDeps {
  ws: WorkspaceApi;
  notices: Notices;
  openFile: (path: string, mime?: string | null) => void;
  renamed: (from: string, to: string) => void;
  deleting: (path: string) => Promise<void>;
  showHistory: (path: string) => void;
}

const parentOf = (p: string) => (p.includes("/") ? p.slice(0, p.lastIndexOf("/")) : "");
const nameOf = (p: string) => p.slice(p.lastIndexOf("/") + 1);

/** The workspace file tree. */
export class FileTree {
  readonly el: HTMLElement;
  entries = new Map<string, FileEntry>();
  private selected: string | null = null;
  private expanded = new Set<string>([""]);
  private readonly list = h("ul.tree", { role: "tree", "aria-label": "My workspace" });
  private readonly fileInput = h("input", { type: "file", multiple: true, hidden: true, "aria-hidden": "true" });
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly deps: TreeDeps) {
    const btn = (label: string, title: string, fn: () => void, cls = "") => h(`button.tool${cls}`, { title, "aria-label": title, onclick: fn }, label);
    const toolbar = h(
      "div.tree-toolbar",
      { role: "toolbar", "aria-label": "File actions" },
      btn("New file", "New file", () => void this.newFile()),
      btn("New folder", "New folder", () => void this.newFolder()),
      btn("Upload", "Upload files", () => this.fileInput.click()),
      btn("Rename", "Rename the selected file or folder", () => void this.rename()),
      btn("Delete", "Move the selected file or folder to the trash", () => void this.remove()),
      btn("Download", "Download the selected file", () => this.download()),
      btn("History", "Versions of the selected file", () => this.selected && this.deps.showHistory(this.selected)),
      btn("Trash", "Deleted files (restorable for 7 days)", () => void this.showTrash()),
    );
    this.fileInput.addEventListener("change", () => {
      const files = [...(this.fileInput.files ?? [])];
      this.fileInput.value = "";
      void this.upload(files);
    });
    const drop = h("div.tree-scroll", null, this.list, h("p.drop-hint", null, "Drop files here to upload"));
    drop.addEventListener("dragover", (e) => {
      if (e.dataTransfer?.types.includes("Files")) {
        e.preventDefault();
        drop.classList.add("dragging");
      }
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
    drop.addEventListener("drop", (e) => {
      drop.classList.remove("dragging");
      const files = [...(e.dataTransfer?.files ?? [])];
      if (files.length === 0) return;
      e.preventDefault();
      void this.upload(files);
    });
    this.el = h("nav.sidebar", { "aria-label": "Files" }, h("h2.sidebar-title", null, "My workspace"), toolbar, drop, this.fileInput);
  }

  /** True if the path exists. */
  exists(path: string): boolean {
    return this.entries.has(path);
  }

  /** Re-list the workspace (debounced: several changes → one listing). */
  refreshSoon(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => void this.refresh(), 150);
  }

  /** Re-list the workspace now. */
  async refresh(): Promise<void> {
    try {
      const entries = await this.deps.ws.listAll();
      this.entries = new Map(entries.map((e) => [e.path, e]));
      this.render();
    } catch (e) {
      if (!(e instanceof CampusError && e.code === "disconnected")) this.deps.notices.error("Could not list your files", e);
    }
  }

  /** The folder new files go to: the selected folder, or the selected file's folder. */
  private targetDir(): string {
    if (!this.selected) return "";
    const e = this.entries.get(this.selected);
    return e?.kind === "dir" ? this.selected : parentOf(this.selected);
  }

  private join(dir: string, name: string): string {
    return dir ? `${dir}/${name}` : name;
  }

  /** Create a file (empty) and open it. */
  async newFile(name?: string): Promise<void> {
    const n = name ?? (await askText("New file name", "main.py", "Create"));
    if (!n) return;
    const path = this.join(this.targetDir(), n);
    try {
      await this.deps.ws.write(path, "", null);
      this.selected = path;
      await this.refresh();
      this.deps.openFile(path);
    } catch (e) {
      this.deps.notices.error(`Could not create ${path}`, e);
    }
  }

  private async newFolder(): Promise<void> {
    const n = await askText("New folder name", "", "Create");
    if (!n) return;
    const path = this.join(this.targetDir(), n);
    try {
      await this.deps.ws.mkdir(path);
      this.expanded.add(path);
      this.selected = path;
      await this.refresh();
    } catch (e) {
      this.deps.notices.error(`Could not create ${path}`, e);
    }
  }

  private async rename(): Promise<void> {
    const from = this.selected;
    if (!from) {
      this.deps.notices.show("Select a file or folder first.");
      return;
    }
    const n = await askText(`Rename ${from}`, nameOf(from), "Rename");
    if (!n || n === nameOf(from)) return;
    const to = n.includes("/") ? n : this.join(parentOf(from), n);
    try {
      await this.deps.ws.rename(from, to);
      this.deps.renamed(from, to);
      this.selected = to;
      await this.refresh();
    } catch (e) {
      this.deps.notices.error(`Could not rename ${from}`, e);
    }
  }

  private async remove(): Promise<void> {
    const path = this.selected;
    if (!path) {
      this.deps.notices.show("Select a file or folder first.");
      return;
    }
    const ok = await confirmDialog("Move to trash?", `${path} goes to the trash. You can restore it for 7 days.`, "Move to trash");
    if (!ok) return;
    try {
      await this.deps.deleting(path);
      await this.deps.ws.delete(path);
      this.selected = null;
      await this.refresh();
      this.deps.notices.show(`${path} moved to the trash.`);
    } catch (e) {
      this.deps.notices.error(`Could not delete ${path}`, e);
    }
  }

  private download(): void {
    const path = this.selected;
    const e = path ? this.entries.get(path) : undefined;
    if (!path || e?.kind !== "file") {
      this.deps.notices.show("Select a file first.");
      return;
    }
    const a = h("a", { href: filesUrl(path), download: nameOf(path) });
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  /** Upload files into the target folder (asks before replacing). */
  async upload(files: File[]): Promise<void> {
    const dir = this.targetDir();
    for (const f of files) {
      const path = this.join(dir, f.name);
      try {
        const existing = this.entries.get(path);
        if (existing) {
          const ok = await confirmDialog("Replace file?", `${path} exists. Replace it? (The old content stays in its version history.)`, "Replace");
          if (!ok) continue;
        }
        await putFile(path, f, existing?.version);
        this.deps.notices.show(`Uploaded ${path}.`);
        this.selected = path;
      } catch (e) {
        this.deps.notices.error(`Could not upload ${path}`, e);
      }
    }
    await this.refresh();
  }

  private async showTrash(): Promise<void> {
    let items;
    try {
      items = await this.deps.ws.trash();
    } catch (e) {
      return this.deps.notices.error("Could not list the trash", e);
    }
    const body = h("div.trash-list");
    if (items.length === 0) body.append(h("p.muted", null, "The trash is empty."));
    const modal = showModal("Trash", body);
    for (const it of items) {
      const restore = h("button", null, "Restore");
      restore.addEventListener("click", async () => {
        try {
          await this.deps.ws.restoreTrash(it.trash_id);
          this.deps.notices.show(`Restored ${it.original_path}.`);
          modal.close();
          await this.refresh();
        } catch (e) {
          this.deps.notices.error(`Could not restore ${it.original_path}`, e);
        }
      });
      body.append(
        h("div.trash-item", null, h("span", null, it.original_path), h("span.muted", null, ` deleted ${new Date(it.deleted_at_ms).toLocaleString()}`), restore),
      );
    }
  }

  /** Highlight a path (e.g. the active tab). */
  select(path: string | null): void {
    this.selected = path;
    for (const b of this.list.querySelectorAll<HTMLElement>(".tree-item")) {
      const on = b.dataset.path === path;
      b.classList.toggle("selected", on);
      b.setAttribute("aria-selected", String(on));
    }
  }

  private render(): void {
    const children = new Map<string, FileEntry[]>();
    for (const e of this.entries.values()) {
      const p = parentOf(e.path);
      if (!children.has(p)) children.set(p, []);
      children.get(p)!.push(e);
    }
    const build = (dir: string, depth: number): HTMLElement[] => {
      const list = (children.get(dir) ?? []).sort((a, b) => (a.kind === "dir" ? 0 : 1) - (b.kind === "dir" ? 0 : 1) || a.path.localeCompare(b.path));
      const out: HTMLElement[] = [];
      for (const e of list) {
        const isDir = e.kind === "dir";
        const open = this.expanded.has(e.path);
        const item = h(
          "button.tree-item",
          {
            role: "treeitem",
            dataset: { path: e.path, kind: e.kind },
            "aria-selected": String(e.path === this.selected),
            "aria-expanded": isDir ? String(open) : undefined,
            style: { paddingLeft: `${0.5 + depth * 1}rem` },
            title: e.path,
          },
          h("span.tree-icon", { "aria-hidden": "true" }, isDir ? (open ? "▾" : "▸") : "·"),
          nameOf(e.path),
        );
        if (e.path === this.selected) item.classList.add("selected");
        item.addEventListener("click", () => {
          this.select(e.path);
          if (isDir) {
            if (open) this.expanded.delete(e.path);
            else this.expanded.add(e.path);
            this.render();
            this.list.querySelector<HTMLElement>(`[data-path="${CSS.escape(e.path)}"]`)?.focus();
          } else {
            this.deps.openFile(e.path, e.mime);
          }
        });
        out.push(h("li", { role: "none" }, item));
        if (isDir && open) out.push(h("li", { role: "none" }, h("ul", { role: "group" }, build(e.path, depth + 1))));
      }
      return out;
    };
    const items = build("", 0);
    this.list.replaceChildren(...items);
    if (items.length === 0) this.list.append(h("li.muted.tree-empty", null, "No files yet. Create one with “New file”."));
  }
}
