// Version history of a file: list, preview (read_version) and restore.
import { fileKind } from "../filekinds";
import type { VersionInfo } from "../protocol";
import { fileText, type WorkspaceApi } from "../workspace";
import { h } from "./dom";
import type { Notices } from "./notices";

/** The history side panel. */
export class HistoryPanel {
  readonly el = h("aside.history", { "aria-label": "Version history", hidden: true });
  private path: string | null = null;

  constructor(
    private readonly ws: WorkspaceApi,
    private readonly notices: Notices,
    /** Save pending edits before a restore, reload the tab after it. */
    private readonly hooks: { beforeRestore: (path: string) => Promise<void>; afterRestore: (path: string) => Promise<void> },
  ) {}

  /** The file shown, if open. */
  get current(): string | null {
    return this.el.hidden ? null : this.path;
  }

  /** Show the versions of `path`. */
  async show(path: string): Promise<void> {
    this.path = path;
    this.el.hidden = false;
    const close = h("button.icon", { "aria-label": "Close history", title: "Close" }, "×");
    close.addEventListener("click", () => this.hide());
    const list = h("ol.version-list", null, h("li.muted", null, "Loading…"));
    const preview = h("div.version-preview");
    this.el.replaceChildren(h("div.history-head", null, h("h2", null, "History"), close), h("p.muted.history-path", null, path), list, preview);
    let versions: VersionInfo[];
    try {
      versions = await this.ws.versions(path);
    } catch (e) {
      list.replaceChildren(h("li.muted", null, "Could not load the history."));
      return this.notices.error(`Could not list versions of ${path}`, e);
    }
    if (versions.length === 0) {
      list.replaceChildren(h("li.muted", null, "No earlier versions yet. Each save keeps the previous one here."));
      return;
    }
    list.replaceChildren(
      ...versions.map((v, i) => {
        const when = new Date(v.saved_at_ms).toLocaleString();
        const pv = h("button", { dataset: { version: v.version } }, "Preview");
        const rs = h("button.restore", { dataset: { version: v.version } }, "Restore");
        pv.addEventListener("click", () => void this.preview(path, v, preview));
        rs.addEventListener("click", () => void this.restore(path, v));
        return h("li.version", null, h("div", null, h("strong", null, i === 0 ? "Previous save" : `${i + 1} saves ago`), h("div.muted", null, `${when} · ${v.size} bytes`)), h("div.version-actions", null, pv, rs));
      }),
    );
  }

  /** Hide the panel. */
  hide(): void {
    this.el.hidden = true;
  }

  private async preview(path: string, v: VersionInfo, into: HTMLElement): Promise<void> {
    if (fileKind(path) !== "text") {
      into.replaceChildren(h("p.muted", null, "Preview is available for text files; restore to see this version."));
      return;
    }
    try {
      const f = await this.ws.readVersion(path, v.version);
      into.replaceChildren(h("h3", null, `Version from ${new Date(v.saved_at_ms).toLocaleString()}`), h("pre.version-text", { tabIndex: 0 }, fileText(f)));
    } catch (e) {
      this.notices.error("Could not load that version", e);
    }
  }

  private async restore(path: string, v: VersionInfo): Promise<void> {
    try {
      await this.hooks.beforeRestore(path);
      await this.ws.restoreVersion(path, v.version);
      await this.hooks.afterRestore(path);
      this.notices.show(`Restored ${path}. The replaced content is in the history too.`);
      await this.show(path);
    } catch (e) {
      this.notices.error(`Could not restore ${path}`, e);
    }
  }
}
