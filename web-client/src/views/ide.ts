// The student IDE: file tree, tabs/editor, history, run toolbar, terminal,
// connection banner and notices, wired to one connection.
import { LOGIN_WARNING_KEY, SIGNED_OUT_KEY, logout, type LoginWarning } from "../api";
import { Connection } from "../connection";
import { markInteractive } from "../perf";
import type { View } from "../router";
import { currentTheme, setTheme } from "../theme";
import { CoursesApi } from "../courses";
import { ConnBanner } from "../ui/connbanner";
import { CoursePanel } from "../ui/coursepanel";
import { h } from "../ui/dom";
import { EditorPane } from "../ui/editor";
import { FileTree } from "../ui/filetree";
import { HistoryPanel } from "../ui/history";
import { Notices } from "../ui/notices";
import { RunBar } from "../ui/runbar";
import { TerminalPane } from "../ui/terminal";
import { WorkspaceApi } from "../workspace";
import { me } from "../api";

/** Debug/test hooks on `window.campus` (read-only views of the IDE's state). */
export interface CampusHooks {
  conn: Connection;
  terminalText(): string;
  /** Scroll the terminal by `lines` (negative = up); returns the new top line. */
  terminalScroll(lines: number): { viewportY: number; baseY: number };
  editorText(): string | null;
  activeVersion(): string | null;
  openFile(path: string): Promise<void>;
}

declare global {
  interface Window {
    campus?: CampusHooks;
  }
}

/** The workspace IDE (students; other roles too until their views exist). */
export const ideView: View = {
  roles: ["student", "professor", "admin"],
  mount(ctx) {
    const user = ctx.user!;
    const wsUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
    const conn = new Connection({ url: wsUrl, checkAuth: async () => (await me().catch(() => user)) !== null });
    const ws = new WorkspaceApi(conn);
    const notices = new Notices();
    const terminal = new TerminalPane(conn);
    const tabsKey = `campus.tabs.${user.id}`;
    let tree: FileTree;
    let history: HistoryPanel;

    const editor = new EditorPane({
      ws,
      notices,
      store: localStorage,
      draftPrefix: `campus.draft.${user.id}.`,
      exists: (p) => tree.exists(p),
      connectionId: () => conn.hello?.connection_id,
      onTabsChanged: (paths, active) => {
        try {
          localStorage.setItem(tabsKey, JSON.stringify({ paths, active }));
        } catch {
          /* not remembered */
        }
        tree?.select(active);
        if (history?.current && active && history.current !== active) void history.show(active);
      },
      onFilesChanged: () => tree?.refreshSoon(),
    });
    tree = new FileTree({
      ws,
      notices,
      openFile: (p, mime) => void editor.open(p, mime),
      renamed: (from, to) => editor.renamed(from, to),
      deleting: (p) => editor.closeUnder(p),
      showHistory: (p) => void history.show(p),
    });
    history = new HistoryPanel(ws, notices, {
      beforeRestore: async () => editor.saveAll(),
      afterRestore: async (p) => editor.reload(p),
    });
    const runbar = new RunBar({ conn, terminal, notices, activePath: () => editor.activePath(), saveAll: () => editor.saveAll() });
    terminal.onIdleKey = () => {
      if (conn.isOpen) notices.show("Nothing is running. Press Run, Run + REPL or REPL first.");
    };
    const banner = new ConnBanner(conn);
    const courses = new CoursePanel({
      api: new CoursesApi(conn),
      notices,
      run: (course, path) => runbar.startCourse(course, path),
      copied: () => tree.refreshSoon(),
      manage: (course) => ctx.navigate(course ? `course/${course}` : "course"),
      canCreate: user.role !== "student",
    });

    const themeBtn = h("button.tool", { "aria-label": "Switch between light and dark theme", title: "Light/dark theme" }, currentTheme() === "dark" ? "☀ Light" : "☾ Dark");
    themeBtn.addEventListener("click", () => {
      const next = currentTheme() === "dark" ? "light" : "dark";
      setTheme(next);
      themeBtn.textContent = next === "dark" ? "☀ Light" : "☾ Dark";
    });
    const logoutBtn = h("button.tool", { title: "Log out" }, "Log out");
    logoutBtn.addEventListener("click", async () => {
      await editor.saveAll().catch(() => undefined);
      conn.close("logged_out");
      await logout().catch(() => undefined);
      ctx.refreshUser(null);
    });
    const historyBtn = h("button.tool", { title: "Version history of the open file" }, "History");
    historyBtn.addEventListener("click", () => {
      const p = editor.activePath();
      if (p) void history.show(p);
      else notices.show("Open a file to see its history.");
    });

    const header = h(
      "header.topbar",
      null,
      h("a.skip-link", { href: "#editor-main" }, "Skip to editor"),
      h("span.brand", null, "Campus"),
      h("span.spacer"),
      user.role === "admin" ? h("a.button.tool", { href: "#/admin", title: "Every session live, server health" }, "Admin") : null,
      historyBtn,
      themeBtn,
      h("span.user", { title: `Logged in as ${user.username} (${user.role})` }, user.username),
      logoutBtn,
    );
    const editorMain = h("main#editor-main.editor-column", { tabIndex: -1 }, editor.el);
    const layout = h(
      "div.ide",
      null,
      header,
      banner.el,
      h("div.workarea", null, h("div.leftcol", null, tree.el, courses.el), editorMain, history.el),
      h("section.bottom", { "aria-label": "Run and terminal" }, runbar.el, terminal.el),
      notices.el,
    );
    ctx.root.append(layout);
    terminal.open();

    // F5 runs, Shift-F5 stops (browser reload stays on Ctrl-R).
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "F5") {
        e.preventDefault();
        void (e.shiftKey ? runbar.stop() : runbar.start("script"));
      }
    };
    window.addEventListener("keydown", onKey);
    const onUnload = (e: BeforeUnloadEvent) => {
      // Drafts are in local storage anyway; warn only while a save is pending.
      if (editor.hasUnsaved()) e.preventDefault();
    };
    window.addEventListener("beforeunload", onUnload);
    // Back online: reconnect now rather than when the backoff timer says.
    const onOnline = () => conn.retryNow();
    window.addEventListener("online", onOnline);

    let first = true;
    conn.on("hello", (hello) => {
      notices.limits = hello.limits;
      void tree.refresh();
      void courses.refresh();
      if (first) {
        first = false;
        let saved: { paths?: string[]; active?: string | null } = {};
        try {
          saved = JSON.parse(localStorage.getItem(tabsKey) ?? "{}");
        } catch {
          /* ignore */
        }
        const opens = (saved.paths ?? []).map((p) => editor.open(p, null, false));
        void Promise.all(opens).then(() => {
          if (saved.active) void editor.open(saved.active, null, false);
          markInteractive();
        });
      } else {
        editor.reconnected();
      }
    });
    conn.on("output", ({ seq, bytes, gap }) => {
      if (gap > 0) terminal.note(`[${gap} bytes of output were dropped]`);
      terminal.output(bytes, seq + bytes.length);
    });
    conn.on("attached", (m) => runbar.handle(m));
    conn.on("message", (m) => {
      if (m.type === "file_changed") {
        tree.refreshSoon();
        editor.handleFileChanged(m);
      } else if (m.type === "course_changed") courses.handle(m);
      else runbar.handle(m);
    });
    conn.on("state", (s) => {
      // "replaced": still logged in; the banner offers to reconnect.
      if (s.kind === "closed" && s.reason !== "logged_out" && s.reason !== "replaced") {
        const text =
          s.reason === "kicked"
            ? "An administrator ended your session."
            : s.reason === "revoked"
              ? (s.detail ?? "You were signed out. Please log in again.")
              : "Your session has ended. Please log in again.";
        notices.show(text, "error");
        // The login view replaces this one at once: it shows the reason.
        try {
          sessionStorage.setItem(SIGNED_OUT_KEY, text);
        } catch {
          /* storage unavailable: the login form alone */
        }
        ctx.refreshUser(null);
      }
    });
    conn.start();
    // The login said the server cannot accept changes (its disk is full): say
    // it here until dismissed, before a save is refused.
    try {
      const raw = sessionStorage.getItem(LOGIN_WARNING_KEY);
      sessionStorage.removeItem(LOGIN_WARNING_KEY);
      if (raw) {
        const w = JSON.parse(raw) as LoginWarning;
        notices.show(w.message, "error", undefined, w.code);
      }
    } catch {
      /* no storage, or not ours: nothing to show */
    }

    window.campus = {
      conn,
      terminalText: () => terminal.text(),
      terminalScroll: (lines) => {
        terminal.term.scrollLines(lines);
        const b = terminal.term.buffer.active;
        return { viewportY: b.viewportY, baseY: b.baseY };
      },
      editorText: () => editor.activeText(),
      activeVersion: () => editor.activeVersion(),
      openFile: (p) => editor.open(p),
    };

    return () => {
      window.removeEventListener("keydown", onKey);
      window.removeEventListener("beforeunload", onUnload);
      window.removeEventListener("online", onOnline);
      conn.close("logged_out");
      terminal.dispose();
      delete window.campus;
    };
  },
};
