// The course page (#/course/<slug>) for its staff, and the course list with
// "create a course" (#/course): sections with publish toggles, release and
// close times and per-student exceptions; each section's material (upload by
// button or drag-and-drop, edit in the IDE's editor, delete); the roster with
// CSV import showing each line's result; and a read-only view of any enrolled
// student's workspace and recent runs. What a TA may not change is not shown
// as changeable (the server refuses it anyway).
import { EditorState } from "@codemirror/state";
import { EditorView } from "@codemirror/view";
import { me } from "../api";
import { Connection } from "../connection";
import { CoursesApi, fromLocalInput, localTime, materialUrl, toLocalInput } from "../courses";
import { fileKind } from "../filekinds";
import { CampusError, type CourseInfo, type CourseRole, type FileEntry, type SectionInfo } from "../protocol";
import type { View } from "../router";
import { editorExtensions } from "../ui/cm";
import { askText, confirmDialog } from "../ui/dialog";
import { h, setChildren } from "../ui/dom";
import { Notices } from "../ui/notices";

/** Hooks for tests (`window.campusCourse`). */
declare global {
  interface Window {
    campusCourse?: { conn: Connection; info(): CourseInfo | null };
  }
}

export const courseView: View = {
  roles: ["student", "professor", "admin"],
  mount(ctx) {
    const user = ctx.user!;
    const wsUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
    const conn = new Connection({ url: wsUrl, checkAuth: async () => (await me().catch(() => user)) !== null });
    const api = new CoursesApi(conn);
    const notices = new Notices();
    const slug = ctx.param;
    const main = h("main.course-page", { tabIndex: -1 }, h("p.muted", null, "Loading…"));
    const back = h("a.button", { href: "#/ide" }, "← My workspace");
    const header = h("header.topbar", null, h("span.brand", null, "Campus"), back, h("span.spacer"), h("span.user", null, user.username));
    ctx.root.append(h("div.course-view", null, header, main, notices.el));
    let info: CourseInfo | null = null;
    const fail = (what: string) => (e: unknown) => notices.error(what, e);

    const renderList = async () => {
      const courses = await api.list();
      const slugIn = h("input#new-course-slug", { placeholder: "cs101", pattern: "[a-z0-9][a-z0-9-]*", required: true, "aria-label": "Short name" });
      const titleIn = h("input#new-course-title", { placeholder: "Introduction to Programming", required: true, "aria-label": "Title" });
      const termIn = h("input#new-course-term", { placeholder: "2026 Fall", "aria-label": "Term" });
      const form = h(
        "form.course-create",
        null,
        h("h2", null, "New course"),
        h("label", null, "Short name ", slugIn),
        h("label", null, "Title ", titleIn),
        h("label", null, "Term ", termIn),
        h("button.primary", { type: "submit" }, "Create course"),
      );
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        api.create(slugIn.value.trim(), titleIn.value.trim(), termIn.value.trim()).then((c) => ctx.navigate(`course/${c.slug}`), fail("Could not create the course"));
      });
      setChildren(
        main,
        h("h1", null, "Courses"),
        h("ul.course-links", null, courses.map((c) => h("li", null, h("a", { href: `#/course/${c.slug}` }, c.title), ` ${c.term} `, c.role ? h("span.badge", null, c.role) : null))),
        user.role !== "student" ? form : null,
      );
    };

    const render = async () => {
      info = await api.open(slug);
      const staff = info.can.includes("drafts");
      const edit = info.can.includes("edit");
      const files = await api.files(slug);
      const parts: (HTMLElement | null)[] = [
        h("h1", null, info.title, " ", h("span.muted", null, info.term)),
        h("p.muted", null, `You are ${info.role ?? "an administrator"} here. Times are shown in your time zone (${Intl.DateTimeFormat().resolvedOptions().timeZone}).`),
        h("h2", null, "Sections"),
        ...info.sections.map((s) => sectionCard(s, files, edit)),
        edit ? newSectionForm() : null,
      ];
      if (info.can.includes("students")) parts.push(await rosterPanel(edit), await studentsPanel());
      if (!staff) parts.push(h("p", null, "Open the course from the Courses panel of your workspace to read and run its material."));
      setChildren(main, parts);
    };

    const refresh = () => (slug ? render() : renderList()).catch(fail("Could not load the course"));

    const sectionCard = (s: SectionInfo, files: FileEntry[], edit: boolean): HTMLElement => {
      const mine = files.filter((f) => f.path.startsWith(s.folder + "/") && f.kind === "file");
      const title = h("input.section-title-in", { value: s.title, "aria-label": "Title", disabled: !edit });
      const kind = h("input.section-kind-in", { value: s.kind, "aria-label": "Kind", list: "section-kinds", disabled: !edit });
      const published = h("input.section-published", { type: "checkbox", checked: s.published, disabled: !edit });
      const release = h("input.section-release", { type: "datetime-local", step: "1", value: toLocalInput(s.release_at_ms), disabled: !edit, "aria-label": "Release time" });
      const close = h("input.section-close", { type: "datetime-local", step: "1", value: toLocalInput(s.close_at_ms), disabled: !edit, "aria-label": "Close time" });
      const save = h("button.primary.section-save", { type: "button", hidden: !edit }, "Save");
      save.addEventListener("click", () => {
        api
          .saveSection(slug, {
            section: s.id,
            folder: s.folder,
            title: title.value,
            kind: kind.value,
            published: published.checked,
            release_at_ms: fromLocalInput(release.value),
            close_at_ms: fromLocalInput(close.value),
          })
          .then(() => {
            notices.show(`${s.title} saved.`);
            return refresh();
          }, fail("Could not save the section"));
      });
      const upload = h("input", { type: "file", multiple: true, hidden: true, "aria-label": `Upload into ${s.folder}` });
      const uploadBtn = h("button.tool", { type: "button", hidden: !edit, onclick: () => upload.click() }, "Upload");
      const newFile = h("button.tool", { type: "button", hidden: !edit }, "New file");
      const hiddenUpload = h("input.upload-hidden", { type: "checkbox" });
      const put = async (list: FileList | File[]) => {
        for (const f of Array.from(list)) {
          // Hidden first, then written: students never see it for an instant.
          if (hiddenUpload.checked) {
            const ok = await api.setRelease(slug, `${s.folder}/${f.name}`, false).then(
              () => true,
              (e) => (notices.error(`Could not hide ${f.name}; it was not uploaded`, e), false),
            );
            if (!ok) continue;
          }
          const res = await fetch(materialUrl(slug, `${s.folder}/${f.name}`), { method: "PUT", body: f, credentials: "same-origin" });
          if (!res.ok) {
            const body = await res.json().catch(() => ({}));
            notices.error(`Could not upload ${f.name}`, new CampusError(body?.error?.code ?? "internal", body?.error?.message ?? res.statusText));
          }
        }
        await refresh();
      };
      upload.addEventListener("change", () => void put(upload.files ?? []));
      newFile.addEventListener("click", async () => {
        const name = await askText(`New file in ${s.folder}`, "demo.py", "Create");
        if (name) openEditor(`${s.folder}/${name}`, "", null, edit);
      });
      const exceptions = h(
        "ul.exceptions",
        null,
        (s.exceptions ?? []).map((x) =>
          h(
            "li",
            null,
            `${x.username}: `,
            x.release_at_ms ? `opens ${localTime(x.release_at_ms)} ` : "",
            x.close_at_ms ? `closes ${localTime(x.close_at_ms)} ` : "",
            edit ? h("button.tool", { type: "button", onclick: () => api.removeException(slug, s.id, x.username).then(refresh, fail("Could not remove the exception")) }, "Remove") : null,
          ),
        ),
      );
      const exUser = h("input", { placeholder: "username", "aria-label": "Student" });
      const exRelease = h("input", { type: "datetime-local", step: "1", "aria-label": "Their release time" });
      const exClose = h("input", { type: "datetime-local", step: "1", "aria-label": "Their close time" });
      const exAdd = h("button.tool", { type: "button" }, "Add exception");
      exAdd.addEventListener("click", () =>
        api.setException(slug, s.id, exUser.value.trim(), fromLocalInput(exRelease.value), fromLocalInput(exClose.value)).then(refresh, fail("Could not set the exception")),
      );
      const rules = new Map((s.releases ?? []).map((r) => [r.path, r]));
      // One file's own visibility: a draft inside the section, or its own release and close.
      const releaseForm = (path: string): HTMLElement => {
        const r = rules.get(path);
        const pub = h("input.release-published", { type: "checkbox", checked: r ? r.published : true });
        const rel = h("input.release-at", { type: "datetime-local", step: "1", value: toLocalInput(r?.release_at_ms), "aria-label": `Release time of ${path}` });
        const clo = h("input.release-close", { type: "datetime-local", step: "1", value: toLocalInput(r?.close_at_ms), "aria-label": `Close time of ${path}` });
        const set = h("button.tool.release-save", { type: "button" }, "Save");
        set.addEventListener("click", () =>
          api.setRelease(slug, path, pub.checked, fromLocalInput(rel.value), fromLocalInput(clo.value)).then(() => {
            notices.show(`${path}: its own visibility is saved.`);
            return refresh();
          }, fail("Could not set the file's visibility")),
        );
        const clear = r ? h("button.tool.release-remove", { type: "button", onclick: () => api.removeRelease(slug, path).then(refresh, fail("Could not remove the file's visibility")) }, "Follow the section") : null;
        return h(
          "details.release-box",
          null,
          h("summary", null, "Visibility"),
          h("div.release-form", null, h("label.check", null, pub, " Published"), h("label", null, "opens ", rel), h("label", null, "closes ", clo), set, clear),
        );
      };
      const ruleBadge = (path: string) => {
        const r = rules.get(path);
        if (!r) return null;
        const when = [r.release_at_ms ? `opens ${localTime(r.release_at_ms)}` : "", r.close_at_ms ? `closes ${localTime(r.close_at_ms)}` : ""].filter(Boolean).join(", ");
        return h("span.badge.state.file-state", { dataset: { state: r.state }, title: when || "its own visibility" }, `own: ${r.state}`);
      };
      // Rules on folders (or on files gone since) are listed on their own.
      const others = [...rules.values()].filter((r) => !mine.some((f) => f.path === r.path));
      const card = h(
        "section.section-card",
        { dataset: { folder: s.folder, state: s.state } },
        h(
          "div.section-card-head",
          null,
          h("h3", null, s.title),
          h("code", null, `${s.folder}/`),
          h("span.badge.state", { dataset: { state: s.state } }, s.state),
          h("a.button.grading-link", { href: `#/assignment/${slug}/${s.folder}`, title: `Tests, grading and gradebook of ${s.title}` }, "Tests & grades"),
        ),
        h(
          "div.section-fields",
          null,
          h("label", null, "Title ", title),
          h("label", null, "Kind ", kind),
          h("label.check", null, published, " Published"),
          h("label", null, "Release ", release),
          h("label", null, "Close ", close),
          save,
          edit ? h("button.tool.danger", { type: "button", onclick: () => void deleteSection(s) }, "Delete section") : null,
        ),
        h(
          "ul.material.staff",
          null,
          mine.map((f) =>
            h(
              "li.material-item",
              { dataset: { path: f.path } },
              h("span", null, f.path.slice(s.folder.length + 1)),
              h("span.muted", null, ` ${f.size} B`),
              ruleBadge(f.path),
              fileKind(f.path, f.mime) === "text" ? h("button.tool", { type: "button", onclick: () => void editFile(f.path, edit) }, edit ? "Edit" : "View") : h("a.button.tool", { href: materialUrl(slug, f.path), target: "_blank" }, "Open"),
              edit ? h("button.tool", { type: "button", onclick: () => void deleteFile(f.path) }, "Delete") : null,
              edit ? releaseForm(f.path) : null,
            ),
          ),
          others.map((r) =>
            h(
              "li.material-item.rule-only",
              { dataset: { path: r.path } },
              h("span", null, `${r.path.slice(s.folder.length + 1)}/…`),
              ruleBadge(r.path),
              edit ? releaseForm(r.path) : null,
            ),
          ),
        ),
        edit ? h("div.material-tools", null, uploadBtn, newFile, upload, h("span.muted", null, " or drop files here"), h("label.check", null, hiddenUpload, " upload as drafts (hidden from students)")) : null,
        h("details.exceptions-box", null, h("summary", null, `Exceptions (${(s.exceptions ?? []).length})`), exceptions, edit ? h("div.exception-form", null, exUser, h("label", null, "opens ", exRelease), h("label", null, "closes ", exClose), exAdd) : null),
      );
      if (edit) {
        card.addEventListener("dragover", (e) => {
          e.preventDefault();
          card.classList.add("dragging");
        });
        card.addEventListener("dragleave", () => card.classList.remove("dragging"));
        card.addEventListener("drop", (e) => {
          e.preventDefault();
          card.classList.remove("dragging");
          if (e.dataTransfer?.files.length) void put(e.dataTransfer.files);
        });
      }
      return card;
    };

    const deleteSection = async (s: SectionInfo) => {
      if (!(await confirmDialog("Delete section", `Delete ${s.title}? Its folder ${s.folder}/ goes to the course's trash.`, "Delete"))) return;
      await api.deleteSection(slug, s.id).then(refresh, fail("Could not delete the section"));
    };
    const deleteFile = async (path: string) => {
      if (!(await confirmDialog("Delete file", `Delete ${path}? It goes to the course's trash.`, "Delete"))) return;
      await api.delete(slug, path).then(refresh, fail("Could not delete the file"));
    };
    const editFile = async (path: string, edit: boolean) => {
      try {
        const f = await api.read(slug, path);
        openEditor(path, f.encoding === "utf8" ? f.content : "", f.version, edit);
      } catch (e) {
        notices.error("Could not open the file", e);
      }
    };
    const openEditor = (path: string, text: string, version: string | null, edit: boolean) => {
      let current = text;
      let base = version;
      const save = async () => {
        try {
          const w = await api.write(slug, path, current, base);
          base = w.version ?? base;
          status.textContent = "Saved.";
          void refresh();
        } catch (e) {
          notices.error(`Could not save ${path}`, e);
        }
      };
      const status = h("span.muted", null, edit ? "Ctrl-S saves." : "Read-only.");
      const holder = h("div.material-editor");
      const view = new EditorView({
        parent: holder,
        state: EditorState.create({ doc: text, extensions: editorExtensions({ python: path.endsWith(".py"), onChange: (t) => (current = t), onSave: () => void save(), readOnly: !edit }) }),
      });
      const closeBtn = h("button", { type: "button" }, "Close");
      const saveBtn = edit ? h("button.primary", { type: "button", onclick: () => void save() }, "Save") : null;
      const dlg = h("dialog.material-viewer", { "aria-label": path }, h("div.viewer-head", null, h("h2", null, path), status), holder, h("div.dialog-buttons", null, saveBtn, closeBtn));
      const done = () => {
        view.destroy();
        dlg.close();
        dlg.remove();
      };
      closeBtn.addEventListener("click", done);
      dlg.addEventListener("cancel", done);
      document.body.appendChild(dlg);
      dlg.showModal();
      view.focus();
    };

    const newSectionForm = (): HTMLElement => {
      const folder = h("input#new-section-folder", { placeholder: "week1", "aria-label": "Folder", required: true });
      const title = h("input#new-section-title", { placeholder: "Week 1: variables", "aria-label": "Title", required: true });
      const kind = h("input#new-section-kind", { value: "notes", list: "section-kinds", "aria-label": "Kind" });
      const form = h(
        "form.section-new",
        null,
        h("h3", null, "Add a section"),
        h("label", null, "Folder ", folder),
        h("label", null, "Title ", title),
        h("label", null, "Kind ", kind),
        h("datalist#section-kinds", null, ["notes", "assignment", "test"].map((k) => h("option", { value: k }))),
        h("button.primary", { type: "submit" }, "Add section (draft)"),
      );
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        api.saveSection(slug, { folder: folder.value.trim(), title: title.value.trim(), kind: kind.value.trim() || "notes", published: false }).then(refresh, fail("Could not add the section"));
      });
      return form;
    };

    const rosterPanel = async (edit: boolean): Promise<HTMLElement> => {
      const members = await api.roster(slug);
      const table = h(
        "table.roster",
        null,
        h("thead", null, h("tr", null, h("th", null, "Username"), h("th", null, "Role"), h("th", null, "Added"), h("th", null, ""))),
        h(
          "tbody",
          null,
          members.map((m) =>
            h(
              "tr",
              { dataset: { username: m.username } },
              h("td", null, m.username),
              h("td", null, m.role),
              h("td", null, localTime(m.added_at_ms)),
              h("td", null, edit ? h("button.tool", { type: "button", onclick: () => api.unenroll(slug, m.username).then(refresh, fail("Could not remove")) }, "Remove") : null),
            ),
          ),
        ),
      );
      if (!edit) return h("section.roster-panel", null, h("h2", null, `Roster (${members.length})`), table);
      const csv = h("textarea#roster-csv", { rows: 6, placeholder: "username,role\nann\nbob,ta", "aria-label": "Roster CSV" });
      const file = h("input", { type: "file", accept: ".csv,text/csv", "aria-label": "Roster CSV file" });
      file.addEventListener("change", async () => {
        const f = file.files?.[0];
        if (f) csv.value = await f.text();
      });
      const create = h("input#roster-create", { type: "checkbox" });
      const result = h("div.roster-result");
      const importBtn = h("button.primary", { type: "button" }, "Import");
      importBtn.addEventListener("click", async () => {
        try {
          const r = await api.importRoster(slug, csv.value, create.checked);
          const rows = r.lines.map((l) =>
            h("tr", { dataset: { outcome: l.outcome } }, h("td", null, String(l.line)), h("td", null, l.username ?? ""), h("td", null, l.role ?? ""), h("td", null, l.outcome), h("td", null, l.error ?? "")),
          );
          let passwords: HTMLElement | null = null;
          if (r.accounts.length > 0) {
            const blob = new Blob(["username,password\n" + r.accounts.map((a) => `${a.username},${a.password}`).join("\n") + "\n"], { type: "text/csv" });
            passwords = h("p", null, `${r.accounts.length} accounts created. `, h("a.button", { href: URL.createObjectURL(blob), download: `${slug}-passwords.csv` }, "Download their initial passwords (CSV)"), " — shown only now.");
          }
          setChildren(
            result,
            h(`p.${r.applied ? "ok" : "error"}`, null, r.applied ? "Imported: every line was valid." : "Nothing was imported: fix the lines marked invalid and import again."),
            passwords,
            h("table.roster-lines", null, h("thead", null, h("tr", null, ["Line", "Username", "Role", "Outcome", "Problem"].map((c) => h("th", null, c)))), h("tbody", null, rows)),
          );
          if (r.applied) {
            const keep = result;
            await refresh();
            document.querySelector(".roster-result")?.replaceWith(keep);
          }
        } catch (e) {
          notices.error("Could not import the roster", e);
        }
      });
      const who = h("input", { placeholder: "username", "aria-label": "Username to enroll" });
      const role = h("select", { "aria-label": "Role" }, ["student", "ta", "professor"].map((r) => h("option", { value: r }, r)));
      const enroll = h("button.tool", { type: "button" }, "Enroll");
      enroll.addEventListener("click", () => api.enroll(slug, who.value.trim(), role.value as CourseRole).then(refresh, fail("Could not enroll")));
      return h(
        "section.roster-panel",
        null,
        h("h2", null, `Roster (${members.length})`),
        table,
        h("div.enroll-form", null, who, role, enroll),
        h("h3", null, "Import a roster"),
        h("p.muted", null, "One username[,role] per line (role: student, ta or professor). Nothing is applied unless every line is valid."),
        csv,
        h("div.import-tools", null, file, user.role === "admin" ? h("label.check", null, create, " Create accounts for unknown usernames") : h("span.muted", null, "Unknown usernames need an account first (an administrator creates them)."), importBtn),
        result,
      );
    };

    const studentsPanel = async (): Promise<HTMLElement> => {
      const members = (await api.roster(slug)).filter((m) => m.role === "student");
      const pick = h("select#student-pick", { "aria-label": "Student" }, h("option", { value: "" }, "Choose a student…"), members.map((m) => h("option", { value: m.username }, m.username)));
      const body = h("div.student-work");
      pick.addEventListener("change", async () => {
        const who = pick.value;
        if (!who) return body.replaceChildren();
        try {
          const [files, runs] = await Promise.all([api.studentFiles(slug, who), api.studentRuns(slug, who)]);
          const viewer = h("div.student-file");
          const show = async (path: string) => {
            const [f, versions] = await Promise.all([api.studentRead(slug, who, path), api.studentVersions(slug, who, path)]);
            const holder = h("div.material-editor.readonly");
            const text = (m: { encoding: string; content: string }) => (m.encoding === "utf8" ? m.content : "(not text)");
            const editor = new EditorView({ parent: holder, state: EditorState.create({ doc: text(f), extensions: [editorExtensions({ python: path.endsWith(".py"), onChange: () => undefined, onSave: () => undefined, readOnly: true }), EditorView.editable.of(false)] }) });
            const caption = h("p.student-version-caption", null, "Showing the current version.");
            // One read-only editor shows the current text or any kept version of it.
            const display = (label: string, content: string, pressed: HTMLElement) => {
              editor.dispatch({ changes: { from: 0, to: editor.state.doc.length, insert: content } });
              caption.textContent = label;
              history.querySelectorAll("button[aria-pressed]").forEach((b) => b.setAttribute("aria-pressed", String(b === pressed)));
            };
            const current: HTMLElement = h("button.linklike", { type: "button", "aria-pressed": "true", onclick: () => display("Showing the current version.", text(f), current) }, `Current · ${f.size} B`);
            const history: HTMLElement = h(
              "details.student-history",
              { open: versions.length > 0 },
              h("summary", null, `Earlier versions (${versions.length})`),
              h(
                "ul",
                null,
                h("li", null, current),
                versions.map((v) => {
                  const when = localTime(v.saved_at_ms);
                  const b: HTMLElement = h("button.linklike", {
                    type: "button",
                    "aria-pressed": "false",
                    onclick: () =>
                      void api
                        .studentReadVersion(slug, who, path, v.version)
                        .then((old) => display(`Showing the version replaced at ${when} (read-only).`, text(old), b))
                        .catch(fail("Could not read that version")),
                  }, `${when} · ${v.size} B`);
                  return h("li", null, b);
                }),
              ),
            );
            setChildren(viewer, h("p.readonly-banner", null, `Read-only: ${who}'s ${path}. Nothing here can be changed.`), caption, holder, history);
          };
          setChildren(
            body,
            h("p.readonly-banner", null, `${who}'s workspace, read-only.`),
            h("ul.student-files", null, files.filter((f) => f.kind === "file").map((f) => h("li", null, h("button.linklike", { type: "button", onclick: () => void show(f.path).catch(fail("Could not read")) }, f.path)))),
            viewer,
            h("h3", null, "Recent runs"),
            h(
              "table.student-runs",
              null,
              h("tbody", null, runs.slice(0, 10).map((r) => h("tr", null, h("td", null, localTime(r.started_at_ms)), h("td", null, r.path), h("td", null, r.mode), h("td", null, r.reason ?? "running"), h("td", null, r.exit_code === undefined ? "" : String(r.exit_code))))),
            ),
          );
        } catch (e) {
          notices.error("Could not read the student's work", e);
        }
      });
      return h("section.students-panel", null, h("h2", null, "Students' work"), pick, body);
    };

    conn.on("hello", () => void refresh());
    conn.on("message", (m) => {
      if (m.type === "course_changed" && m.course === slug) void refresh();
    });
    conn.start();
    window.campusCourse = { conn, info: () => info };
    return () => {
      conn.close("logged_out");
      delete window.campusCourse;
    };
  },
};
