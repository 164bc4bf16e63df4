// The Courses panel beside "My workspace": the user's courses, the sections
// open to them and their files (read-only), a viewer for each file, Run on a
// course script, and "Copy to my workspace" for a file or a folder. Staff get
// a link to the course page. Updates live on `course_changed`.
import { CoursesApi, localTime, materialUrl, ruleFor } from "../courses";
import { fileKind } from "../filekinds";
import type { CourseInfo, CourseSummary, FileEntry, SectionInfo, ServerMsg } from "../protocol";
import { h, setChildren } from "./dom";
import type { Notices } from "./notices";
import { renderViewer } from "./viewers";

export interface CoursePanelDeps {
  api: CoursesApi;
  notices: Notices;
  /** Run a course file in the IDE's terminal. */
  run(course: string, path: string): Promise<void>;
  /** A copy landed in the workspace (refresh the tree, open it). */
  copied(to: string): void;
  /** Go to a course's page (staff). */
  manage(course: string | null): void;
  /** May the user create courses (professors, admins)? */
  canCreate: boolean;
}

/** See the module comment. */
export class CoursePanel {
  readonly el: HTMLElement;
  private readonly list = h("div.course-list");
  private courses: CourseSummary[] = [];
  /** The expanded course, with what was last loaded for it. */
  private open: { slug: string; info: CourseInfo; files: FileEntry[] } | null = null;

  constructor(private readonly deps: CoursePanelDeps) {
    const create = deps.canCreate ? h("button.tool", { title: "Create a course", onclick: () => deps.manage(null) }, "New course") : null;
    this.el = h("nav.courses-panel", { "aria-label": "Courses" }, h("div.courses-head", null, h("h2.sidebar-title", null, "Courses"), create), this.list);
  }

  /** Load the list (and the expanded course). */
  async refresh(): Promise<void> {
    try {
      this.courses = await this.deps.api.list();
      if (this.open && this.courses.some((c) => c.slug === this.open!.slug)) await this.load(this.open.slug);
      else this.open = null;
    } catch (e) {
      this.deps.notices.error("Could not list your courses", e);
    }
    this.render();
  }

  /** A server event: a course changed. */
  handle(m: ServerMsg): void {
    if (m.type === "course_changed") void this.refresh();
  }

  private async load(slug: string): Promise<void> {
    const [info, files] = await Promise.all([this.deps.api.open(slug), this.deps.api.files(slug)]);
    this.open = { slug, info, files };
  }

  private async toggle(slug: string): Promise<void> {
    if (this.open?.slug === slug) {
      this.open = null;
      this.render();
      return;
    }
    try {
      await this.load(slug);
    } catch (e) {
      this.deps.notices.error("Could not open the course", e);
    }
    this.render();
  }

  private render(): void {
    if (this.courses.length === 0) {
      setChildren(this.list, h("p.muted.courses-empty", null, "You are not in any course yet."));
      return;
    }
    setChildren(
      this.list,
      this.courses.map((c) => {
        const expanded = this.open?.slug === c.slug;
        const head = h(
          "button.course-item",
          { "aria-expanded": String(expanded), dataset: { course: c.slug }, onclick: () => void this.toggle(c.slug) },
          h("span.course-title", null, c.title),
          h("span.muted", null, ` ${c.term}`),
        );
        return h("div.course", { dataset: { course: c.slug } }, head, expanded && this.open ? this.renderCourse(this.open.info, this.open.files) : null);
      }),
    );
  }

  private renderCourse(info: CourseInfo, files: FileEntry[]): HTMLElement {
    const staff = info.can.includes("drafts");
    const manage = staff ? h("button.tool", { onclick: () => this.deps.manage(info.slug) }, "Course page") : null;
    const progress =
      !staff && info.sections.some((s) => s.kind === "assignment")
        ? h("a.button.progress-link", { href: `#/progress/${info.slug}`, title: `Your scores in every assignment of ${info.title}` }, "My progress")
        : null;
    const sections = info.sections.map((s) => {
      const mine = files.filter((f) => f.path === s.folder || f.path.startsWith(s.folder + "/"));
      const state =
        s.state === "open"
          ? s.close_at_ms
            ? `open until ${localTime(s.close_at_ms)}`
            : ""
          : s.state === "scheduled" && s.release_at_ms
            ? `opens ${localTime(s.release_at_ms)}`
            : s.state;
      return h(
        "section.course-section",
        { dataset: { folder: s.folder, state: s.state } },
        h(
          "div.section-head",
          null,
          h("span.section-title", null, s.title),
          h("span.badge", { dataset: { kind: s.kind } }, s.kind),
          state ? h("span.muted.section-state", null, state) : null,
          h("button.tool.copy-folder", { title: `Copy the folder ${s.folder} into my workspace`, onclick: () => void this.copy(info.slug, s.folder) }, "Copy folder"),
          s.kind === "assignment"
            ? h("a.button.assignment-link", { href: `#/assignment/${info.slug}/${s.folder}`, title: `Check and submit ${s.title}` }, "Check & submit")
            : null,
        ),
        h(
          "ul.material",
          { "aria-label": `Files of ${s.title}` },
          mine
            .filter((f) => f.kind === "file")
            .map((f) =>
              h(
                "li.material-item",
                { dataset: { path: f.path } },
                h("button.linklike", { title: `View ${f.path} (read-only)`, onclick: () => void this.view(info.slug, f) }, f.path.slice(s.folder.length + 1)),
                fileUntil(s, f.path),
                f.path.endsWith(".py") ? h("button.tool.run-material", { title: `Run ${f.path}`, onclick: () => void this.deps.run(info.slug, f.path) }, "Run") : null,
                h("button.tool.copy-material", { title: `Copy ${f.path} into my workspace`, onclick: () => void this.copy(info.slug, f.path) }, "Copy"),
              ),
            ),
        ),
      );
    });
    return h(
      "div.course-body",
      null,
      h("p.readonly-note", null, "Read-only course material. Copy it to your workspace to change it."),
      manage,
      progress,
      sections.length > 0 ? sections : h("p.muted", null, "Nothing released yet."),
    );
  }

  private async copy(course: string, path: string): Promise<void> {
    try {
      const r = await this.deps.api.copy(course, path);
      this.deps.notices.show(r.renamed ? `Copied to ${r.to}: ${path.slice(path.lastIndexOf("/") + 1)} already exists in your workspace, so nothing was overwritten.` : `Copied to ${r.to} in your workspace.`);
      this.deps.copied(r.to);
    } catch (e) {
      this.deps.notices.error("Could not copy", e);
    }
  }

  /** Show a material file in a read-only viewer. */
  private async view(course: string, f: FileEntry): Promise<void> {
    const kind = fileKind(f.path, f.mime);
    let body: HTMLElement;
    if (kind === "text") {
      try {
        const file = await this.deps.api.read(course, f.path);
        const text = file.encoding === "utf8" ? file.content : "(not text)";
        body = h("pre.material-text", { tabIndex: 0, "aria-label": `${f.path}, read-only` }, text);
      } catch (e) {
        this.deps.notices.error("Could not open the file", e);
        return;
      }
    } else {
      body = renderViewer(kind, f.path, f.version, (e) => this.deps.notices.error("Could not show the file", e), (p) => materialUrl(course, p));
    }
    const close = h("button", { type: "button" }, "Close");
    const run = f.path.endsWith(".py") ? h("button.primary", { type: "button" }, "Run") : null;
    const copy = h("button", { type: "button" }, "Copy to my workspace");
    const dlg = h(
      "dialog.material-viewer",
      { "aria-label": `${f.path} (read-only)` },
      h("div.viewer-head", null, h("h2", null, f.path), h("span.badge.readonly", null, "read-only")),
      body,
      h("div.dialog-buttons", null, run, copy, close),
    );
    const done = () => {
      dlg.close();
      dlg.remove();
    };
    close.addEventListener("click", done);
    dlg.addEventListener("cancel", done);
    run?.addEventListener("click", () => {
      done();
      void this.deps.run(course, f.path);
    });
    copy.addEventListener("click", () => {
      done();
      void this.copy(course, f.path);
    });
    document.body.appendChild(dlg);
    dlg.showModal();
  }
}

/** "until …" for a file (or a file in a folder) that closes before its section does. */
function fileUntil(s: SectionInfo, path: string): HTMLElement | null {
  const rule = ruleFor(s, path);
  if (!rule?.close_at_ms || rule.close_at_ms === s.close_at_ms) return null;
  return h("span.muted.file-until", { title: `Closes ${localTime(rule.close_at_ms)}` }, `until ${localTime(rule.close_at_ms)}`);
}
