// A student's progress in one course (#/progress/<course>): every assignment
// they can see, in the course's order, with its due date, attempts, the last
// submission's state and the best score as a bar, and the course total.
// Live: a submission of theirs that moves (pushed over the WebSocket) reloads
// the page's figures; nothing polls.
import { me } from "../api";
import { Connection } from "../connection";
import { localTime } from "../courses";
import { GradingApi, dueIn, percentOf, scoreText } from "../grading";
import type { ProgressLine, ServerMsgOf } from "../protocol";
import type { View } from "../router";
import { h, setChildren } from "../ui/dom";
import { Notices } from "../ui/notices";

const STATE_LABEL: Record<string, string> = {
  queued: "queued",
  running: "being graded",
  graded: "graded",
  failed: "could not be graded",
};

function scoreBar(score: number | undefined, max: number, label: string): HTMLElement {
  const pct = percentOf(score, max);
  return h(
    "div.score-bar",
    { role: "img", "aria-label": `${label}: ${scoreText(score, max)}` },
    h("div.score-fill", { style: { width: `${pct}%` } }),
    h("span.score-text", null, scoreText(score, max)),
  );
}

function line(course: string, l: ProgressLine, now: number): HTMLElement {
  const attempts = l.max_attempts ? `${l.attempts_used} of ${l.max_attempts}` : String(l.attempts_used);
  const due = l.due_at_ms
    ? h("span", null, localTime(l.due_at_ms), h("span.muted", null, ` (${dueIn(l.due_at_ms, now)})`))
    : h("span.muted", null, "no due date");
  const last = l.last_state
    ? h(
        "span",
        null,
        h("span.state", { dataset: { state: l.last_state } }, STATE_LABEL[l.last_state] ?? l.last_state),
        l.last_at_ms ? h("span.muted", null, ` · ${localTime(l.last_at_ms)}`) : null,
        l.late ? h("span.badge.late", null, "late") : null,
      )
    : h("span.muted", null, l.due_at_ms && l.due_at_ms < now ? "not submitted (past due)" : "not submitted yet");
  return h(
    "tr.progress-line",
    { dataset: { folder: l.folder, state: l.last_state ?? "none" } },
    h("td", null, h("a", { href: `#/assignment/${course}/${l.folder}` }, l.title)),
    h("td", null, due),
    h("td.num", null, attempts),
    h("td", null, last),
    h("td.best", null, scoreBar(l.best_score, l.max_score, `Best score in ${l.title}`)),
  );
}

export const progressView: View = {
  roles: ["student", "professor", "admin"],
  mount(ctx) {
    const user = ctx.user!;
    const course = ctx.param;
    const wsUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
    const conn = new Connection({ url: wsUrl, checkAuth: async () => (await me().catch(() => user)) !== null });
    const api = new GradingApi(conn);
    const notices = new Notices();
    const main = h("main.progress-page", { tabIndex: -1 }, h("p.muted", null, "Loading…"));
    const header = h(
      "header.topbar",
      null,
      h("span.brand", null, "Campus"),
      h("a.button", { href: "#/ide" }, "← My workspace"),
      h("span.spacer"),
      h("span.user", null, user.username),
    );
    ctx.root.append(h("div.progress-view", null, header, main, notices.el));

    const render = (p: ServerMsgOf<"progress">) => {
      const now = Date.now();
      const lines = p.assignments ?? [];
      document.title = `Progress — ${p.title} — Campus`;
      setChildren(
        main,
        h("h1", null, `My progress — ${p.title}`),
        lines.length === 0
          ? h("p.muted", null, "This course has no assignments for you yet.")
          : h(
              "div",
              null,
              h("div.progress-total", null, h("span", null, "Total of your best scores "), scoreBar(p.total_best, p.total_max, "Total")),
              h(
                "table.progress",
                { "aria-label": `Assignments of ${p.title}` },
                h("thead", null, h("tr", null, h("th", null, "Assignment"), h("th", null, "Due"), h("th", null, "Attempts"), h("th", null, "Last submission"), h("th", null, "Best score"))),
                h(
                  "tbody",
                  null,
                  lines.map((l) => line(course, l, now)),
                ),
              ),
            ),
      );
    };
    let loading = false;
    let again = false;
    let shown = false;
    // One request at a time; a push arriving meanwhile asks for one more.
    const reload = async () => {
      if (loading) {
        again = true;
        return;
      }
      loading = true;
      try {
        do {
          again = false;
          render(await api.progress(course));
          shown = true;
        } while (again);
      } catch (e) {
        notices.error("Could not load your progress", e);
        if (!shown) setChildren(main, h("p", null, "Your progress in this course is not available."));
      } finally {
        loading = false;
      }
    };
    // A submission's state (not its queue position) changes the figures; a
    // section released, published or hidden changes the list.
    const states = new Map<number, string>();
    conn.on("message", (m) => {
      if (m.type === "submission" && m.id === undefined && m.submission.course === course) {
        const s = m.submission;
        if (states.get(s.id) === s.state) return;
        states.set(s.id, s.state);
        void reload();
      } else if (m.type === "course_changed" && m.course === course) void reload();
    });
    conn.on("hello", () => void reload());
    conn.start();
    return () => conn.close("logged_out");
  },
};
