// The assignment page (#/assignment/<course>/<folder>).
// Students: due date with a countdown, attempts and best score, Check (the
// public tests, live, on their workspace folder), Submit (snapshot + hash),
// the submission's live status (queued with position → running test by test
// → graded), per-test results (hidden tests as passed/failed only) and the
// history. Staff: the settings (due date, late policy, attempts, limits,
// per-test points and visibility), the test files, the gradebook with
// re-grade, CSV export and a submission viewer, and the statistics as bar
// charts. Everything live over the WebSocket, no polling.
import { me } from "../api";
import { Connection } from "../connection";
import { CoursesApi, fromLocalInput, localTime, toLocalInput } from "../courses";
import { GradingApi, barHeights, dueIn, scoreText } from "../grading";
import type { AssignmentConfig, AssignmentInfo, ServerMsg, SubmissionInfo, TestResultInfo, TestSetting, TestVisibility } from "../protocol";
import type { View } from "../router";
import { confirmDialog } from "../ui/dialog";
import { h, setChildren } from "../ui/dom";
import { Notices } from "../ui/notices";

/** Hooks for tests (`window.campusAssignment`). */
declare global {
  interface Window {
    campusAssignment?: { conn: Connection; frames: string[] };
  }
}

const OUTCOME_LABEL: Record<string, string> = {
  passed: "passed",
  failed: "failed",
  error: "error",
  timeout: "timed out",
  skipped: "skipped",
  not_run: "not run",
};

function testName(t: { name: string }): string {
  return t.name.includes("::") ? t.name.slice(t.name.indexOf("::") + 2) : t.name;
}

function resultRow(t: TestResultInfo): HTMLElement {
  return h(
    "tr.test-result",
    { dataset: { outcome: t.outcome, visibility: t.visibility } },
    h("td", null, testName(t), t.visibility !== "visible" ? h("span.badge.muted", null, t.visibility === "hidden" ? "hidden" : "after due date") : null),
    h("td", null, h("span.outcome", { dataset: { outcome: t.outcome } }, OUTCOME_LABEL[t.outcome] ?? t.outcome)),
    h("td.num", null, scoreText(t.points, t.max_points)),
    h("td.message", null, t.message ? h("pre", null, t.message) : null),
  );
}

function resultsTable(tests: TestResultInfo[], label: string): HTMLElement {
  return h(
    "table.results",
    { "aria-label": label },
    h("thead", null, h("tr", null, h("th", null, "Test"), h("th", null, "Result"), h("th", null, "Points"), h("th", null, "Why"))),
    h("tbody", null, tests.map(resultRow)),
  );
}

function stateText(s: SubmissionInfo): string {
  switch (s.state) {
    case "queued":
      return s.position ? `Queued — position ${s.position}` : "Queued";
    case "running":
      return "Running the tests…";
    case "graded":
      return `Graded: ${scoreText(s.score, s.max_score)}${s.late ? " (late)" : ""}`;
    case "failed":
      return `Could not be graded${s.message ? `: ${s.message}` : ""} — this did not cost an attempt`;
  }
}

export const assignmentView: View = {
  roles: ["student", "professor", "admin"],
  mount(ctx) {
    const user = ctx.user!;
    const [course, folder] = ctx.param.split("/", 2);
    const wsUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
    const conn = new Connection({ url: wsUrl, checkAuth: async () => (await me().catch(() => user)) !== null });
    const api = new GradingApi(conn);
    const courses = new CoursesApi(conn);
    const notices = new Notices();
    const main = h("main.assignment-page", { tabIndex: -1 }, h("p.muted", null, "Loading…"));
    const back = h("a.button", { href: "#/ide" }, "← My workspace");
    const courseLink = h("a.button", { href: `#/course/${course}` }, "Course page");
    const header = h("header.topbar", null, h("span.brand", null, "Campus"), back, courseLink, h("span.spacer"), h("span.user", null, user.username));
    ctx.root.append(h("div.assignment-view", null, header, main, notices.el));
    const fail = (what: string) => (e: unknown) => notices.error(what, e);
    const frames: string[] = [];
    let info: AssignmentInfo | null = null;
    let staff = false;
    // Student live state.
    let live: SubmissionInfo | null = null;
    let liveTests: TestResultInfo[] = [];
    let liveRunning = "";
    let checkId: number | undefined;
    let checkTests: TestResultInfo[] = [];
    let checkRunning = "";
    let checkDone: ServerMsg | null = null;
    const liveBox = h("section.live-submission", { "aria-live": "polite" });
    const checkBox = h("section.check-results", { "aria-live": "polite" });
    const countdown = h("span.countdown");

    const renderLive = () => {
      if (!live) {
        setChildren(liveBox);
        return;
      }
      const tests = live.tests && live.tests.length > 0 ? live.tests : liveTests;
      setChildren(
        liveBox,
        h("h2", null, `Submission ${live.attempt}`),
        h("p.submission-status", { dataset: { state: live.state } }, stateText(live)),
        h("p.muted.hash", null, "Files: ", (live.files ?? []).join(", ") || "–", " · SHA-256 ", h("code", { title: live.files_hash }, live.files_hash.slice(0, 16)), "…"),
        live.state === "running" && liveRunning ? h("p.muted", null, `Running ${testName({ name: liveRunning })}…`) : null,
        tests.length > 0 ? resultsTable(tests, "Results of your submission") : null,
        live.output ? h("details", null, h("summary", null, "What your code printed"), h("pre.output", null, live.output)) : null,
      );
    };

    const renderCheck = () => {
      if (checkId === undefined && !checkDone) {
        setChildren(checkBox);
        return;
      }
      const done = checkDone?.type === "check_done" ? checkDone : null;
      setChildren(
        checkBox,
        h("h2", null, "Check (public tests)"),
        done
          ? h("p.check-status", { dataset: { state: "done" } }, done.message ?? `Public tests: ${scoreText(done.score, done.max_score)} — nothing was submitted`)
          : h("p.check-status", { dataset: { state: "running" } }, checkRunning ? `Running ${testName({ name: checkRunning })}…` : "Starting…"),
        resultsTable(done ? (done.tests ?? []) : checkTests, "Results of the check"),
        done?.output ? h("details", null, h("summary", null, "What your code printed"), h("pre.output", null, done.output)) : null,
      );
    };

    const historyTable = (subs: SubmissionInfo[]) =>
      h(
        "table.history",
        { "aria-label": "Your submissions" },
        h("thead", null, h("tr", null, h("th", null, "#"), h("th", null, "Submitted"), h("th", null, "Files (SHA-256)"), h("th", null, "State"), h("th", null, "Score"))),
        h(
          "tbody",
          null,
          subs.map((s) =>
            h(
              "tr",
              { dataset: { state: s.state } },
              h("td", null, String(s.attempt)),
              h("td", null, localTime(s.created_at_ms), s.late ? h("span.badge.late", null, "late") : null),
              h("td", null, h("code", { title: s.files_hash }, s.files_hash.slice(0, 12))),
              h("td", null, s.state),
              h("td.num", null, scoreText(s.score, s.max_score)),
            ),
          ),
        ),
      );

    const renderStudent = (a: AssignmentInfo) => {
      const c = a.config;
      const checkBtn = h("button.check", { type: "button" }, "Check");
      const submitBtn = h("button.primary.submit", { type: "button" }, "Submit");
      checkBtn.addEventListener("click", () => {
        checkTests = [];
        checkRunning = "";
        checkDone = null;
        api.check(course, folder).then((id) => {
          checkId = id;
          renderCheck();
        }, fail("Could not check"));
      });
      submitBtn.addEventListener("click", async () => {
        const ok = await confirmDialog("Submit?", `Hand in the folder ${folder}/ of your workspace as it is now? Later edits change nothing of what you submit.`, "Submit");
        if (!ok) return;
        api.submit(course, folder).then((s) => {
          live = s;
          liveTests = [];
          renderLive();
        }, fail("Could not submit"));
      });
      const attempts = c.max_attempts ? `${a.attempts_used} of ${c.max_attempts} attempts used` : `${a.attempts_used} attempts so far`;
      setChildren(
        main,
        h("h1", null, a.title),
        h(
          "p.assignment-meta",
          null,
          c.due_at_ms ? h("span.due", null, `Due ${localTime(c.due_at_ms)} · `, countdown) : h("span.due", null, "No due date"),
          c.due_at_ms && c.late_policy === "refuse" ? " · late submissions are refused" : c.due_at_ms && c.late_penalty_percent > 0 ? ` · late: −${c.late_penalty_percent} %` : "",
        ),
        h("p.assignment-meta", null, attempts, " · best score ", h("strong.best-score", null, scoreText(a.best_score, a.max_score)), " · ", h("a.progress-link", { href: `#/progress/${course}` }, "My progress in this course")),
        h("p.muted", null, `Check runs the public tests on the folder ${folder}/ of your workspace; Submit hands it in (later edits change nothing). Copy the assignment's folder from the Courses panel first.`),
        h("div.assignment-actions", null, checkBtn, submitBtn),
        checkBox,
        liveBox,
        a.submissions && a.submissions.length > 0 ? h("section", null, h("h2", null, "Your submissions"), historyTable(a.submissions)) : null,
      );
      tickCountdown();
      renderCheck();
      renderLive();
    };

    const tickCountdown = () => {
      const due = info?.config.due_at_ms;
      if (due && info) countdown.textContent = dueIn(due, Date.now() + (info.now_ms - loadedAt));
    };
    let loadedAt = Date.now();

    // ---- staff ----
    const settingsForm = (a: AssignmentInfo) => {
      const c = a.config;
      const due = h("input.due-in", { type: "datetime-local", step: "1", value: toLocalInput(c.due_at_ms), "aria-label": "Due date" });
      const policy = h("select.late-policy", { "aria-label": "Late submissions" }, h("option", { value: "accept", selected: c.late_policy === "accept" }, "accepted, flagged late"), h("option", { value: "refuse", selected: c.late_policy === "refuse" }, "refused"));
      const penalty = h("input.late-penalty", { type: "number", min: "0", max: "100", step: "1", value: String(c.late_penalty_percent), "aria-label": "Late penalty (%)" });
      const attempts = h("input.max-attempts", { type: "number", min: "1", value: c.max_attempts ? String(c.max_attempts) : "", placeholder: "unlimited", "aria-label": "Attempts" });
      const timeout = h("input.test-timeout", { type: "number", min: "0.1", max: "300", step: "0.1", value: String(c.test_timeout_ms / 1000), "aria-label": "Time per test (s)" });
      const memory = h("input.memory", { type: "number", min: "32", max: "2048", value: String(c.memory_mib), "aria-label": "Memory (MiB)" });
      const defPoints = h("input.default-points", { type: "number", min: "0", step: "0.5", value: String(c.default_points), "aria-label": "Points of an unlisted test" });
      const rows = h("tbody");
      const addRow = (t: TestSetting) => {
        const name = h("input.test-name", { value: t.name, placeholder: "test_add", "aria-label": "Test" });
        const points = h("input.test-points", { type: "number", min: "0", step: "0.5", value: String(t.points), "aria-label": "Points" });
        const vis = h(
          "select.test-visibility",
          { "aria-label": "Visibility" },
          (["visible", "hidden", "after_due_date"] as TestVisibility[]).map((v) => h("option", { value: v, selected: t.visibility === v }, v === "after_due_date" ? "after the due date" : v)),
        );
        const secret = h("input.test-secret", { type: "checkbox", checked: t.secret_name, "aria-label": "Hide its name" });
        const row = h("tr.test-setting", null, h("td", null, name), h("td", null, points), h("td", null, vis), h("td", null, h("label.check", null, secret, " secret name")), h("td", null, h("button.tool", { type: "button", onclick: () => row.remove() }, "Remove")));
        rows.append(row);
      };
      (c.tests ?? []).forEach(addRow);
      const add = h("button.tool", { type: "button", onclick: () => addRow({ name: "", points: 1, visibility: "visible", secret_name: false }) }, "Add a test setting");
      const save = h("button.primary.save-settings", { type: "submit" }, "Save settings");
      const form = h(
        "form.assignment-settings",
        null,
        h("h2", null, "Settings"),
        h("div.fields", null, h("label", null, "Due ", due), h("label", null, "Late ", policy), h("label", null, "Penalty % ", penalty), h("label", null, "Attempts ", attempts), h("label", null, "Seconds per test ", timeout), h("label", null, "Memory MiB ", memory), h("label", null, "Points of unlisted tests ", defPoints)),
        h("table.test-settings", null, h("thead", null, h("tr", null, h("th", null, "Test (function or file::function)"), h("th", null, "Points"), h("th", null, "Visibility"), h("th", null, ""), h("th", null, ""))), rows),
        h("div.form-buttons", null, add, save),
      );
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        const tests: TestSetting[] = [...rows.querySelectorAll("tr.test-setting")]
          .map((r) => ({
            name: (r.querySelector(".test-name") as HTMLInputElement).value.trim(),
            points: Number((r.querySelector(".test-points") as HTMLInputElement).value || 0),
            visibility: (r.querySelector(".test-visibility") as HTMLSelectElement).value as TestVisibility,
            secret_name: (r.querySelector(".test-secret") as HTMLInputElement).checked,
          }))
          .filter((t) => t.name);
        const config: AssignmentConfig = {
          due_at_ms: fromLocalInput(due.value),
          late_policy: policy.value as AssignmentConfig["late_policy"],
          late_penalty_percent: Number(penalty.value || 0),
          max_attempts: attempts.value ? Number(attempts.value) : undefined,
          per_day: c.per_day,
          test_timeout_ms: Math.round(Number(timeout.value || 10) * 1000),
          memory_mib: Number(memory.value || 128),
          default_points: Number(defPoints.value || 1),
          tests,
        };
        api.save(course, folder, config).then(() => {
          notices.show("Settings saved.");
          void reload();
        }, fail("Could not save the settings"));
      });
      return form;
    };

    const testFiles = (a: AssignmentInfo) => {
      const upload = h("input.test-upload", { type: "file", multiple: true, accept: ".py", "aria-label": "Upload test files" });
      upload.addEventListener("change", async () => {
        for (const f of Array.from(upload.files ?? [])) {
          await api.putTest(course, folder, f.name, await f.text()).then(
            () => notices.show(`${f.name} uploaded.`),
            fail(`Could not upload ${f.name}`),
          );
        }
        void reload();
      });
      const view = async (name: string) => {
        const text = await api.readTest(course, folder, name).catch((e) => (notices.error("Could not read the test file", e), null));
        if (text === null) return;
        const close = h("button", { type: "button" }, "Close");
        const dlg = h("dialog.material-viewer", { "aria-label": name }, h("div.viewer-head", null, h("h2", null, name), h("span.badge", null, "staff only")), h("pre.material-text", { tabIndex: 0 }, text), h("div.dialog-buttons", null, close));
        close.addEventListener("click", () => (dlg.close(), dlg.remove()));
        document.body.appendChild(dlg);
        dlg.showModal();
      };
      return h(
        "section.test-files",
        null,
        h("h2", null, "Test files"),
        h("p.muted", null, "pytest style: test_*.py files with def test_…(): assert …; unittest.TestCase works too. Import the student's code by module: from solution import add. Students never see these files."),
        h(
          "ul.test-file-list",
          null,
          (a.test_files ?? []).map((n) =>
            h(
              "li",
              { dataset: { name: n } },
              h("button.linklike", { type: "button", onclick: () => void view(n) }, n),
              " ",
              h(
                "button.tool.danger",
                {
                  type: "button",
                  onclick: async () => {
                    if (await confirmDialog("Delete the test file?", `${n} is removed from the assignment; grade again to apply.`, "Delete")) api.deleteTest(course, folder, n).then(() => void reload(), fail("Could not delete"));
                  },
                },
                "Delete",
              ),
            ),
          ),
        ),
        h("label.button", null, "Upload test files ", upload),
      );
    };

    const openSubmission = async (id: number) => {
      const s = await api.submission(id).catch((e) => (notices.error("Could not open the submission", e), null));
      if (!s) return;
      const close = h("button", { type: "button" }, "Close");
      const dlg = h(
        "dialog.submission-viewer",
        { "aria-label": `Submission ${s.id}` },
        h("div.viewer-head", null, h("h2", null, `${s.student ?? ""} — attempt ${s.attempt}`), h("span.badge", null, s.state)),
        h("p", null, `Submitted ${localTime(s.created_at_ms)}${s.late ? " (late)" : ""} · ${scoreText(s.score, s.max_score)} · SHA-256 `, h("code", null, s.files_hash)),
        h("p", null, "Files: ", (s.files ?? []).join(", ")),
        resultsTable(s.tests ?? [], "Results"),
        s.output ? h("details", { open: true }, h("summary", null, "Output"), h("pre.output", null, s.output)) : null,
        h("p", null, h("a", { href: `/api/submissions/${s.id}/results.json`, download: `submission-${s.id}-results.json` }, "results.json")),
        h("div.dialog-buttons", null, close),
      );
      close.addEventListener("click", () => (dlg.close(), dlg.remove()));
      dlg.addEventListener("cancel", () => dlg.remove());
      document.body.appendChild(dlg);
      dlg.showModal();
    };

    const bars = (label: string, items: { label: string; value: number; text: string }[]) => {
      const heights = barHeights(items.map((i) => i.value));
      return h(
        "figure.bar-chart",
        { "aria-label": label },
        h("figcaption", null, label),
        h(
          "div.bars",
          null,
          items.map((it, i) => h("div.bar", { title: `${it.label}: ${it.text}` }, h("span.bar-fill", { style: { height: `${heights[i]}%` } }, h("span.bar-value", null, it.text)), h("span.bar-label", null, it.label))),
        ),
      );
    };

    const gradebookPanel = async () => {
      const g = await api.gradebook(course, folder);
      const regrade = h("button.regrade", { type: "button" }, "Re-grade all");
      regrade.addEventListener("click", async () => {
        if (!(await confirmDialog("Re-grade all?", "Every submission is graded again with the current tests and settings; students are told as each is graded.", "Re-grade"))) return;
        api.regrade(course, folder).then((n) => notices.show(`${n} submissions queued for re-grading.`), fail("Could not re-grade"));
      });
      const exportCsv = h("a.button.export-csv", { href: `/api/courses/${encodeURIComponent(course)}/assignments/${encodeURIComponent(folder)}/grades.csv`, download: `${course}-${folder}-grades.csv` }, "Export CSV");
      const refreshBtn = h("button.tool", { type: "button", onclick: () => void reload() }, "Refresh");
      const table = h(
        "table.gradebook",
        { "aria-label": "Gradebook" },
        h("thead", null, h("tr", null, h("th", null, "Student"), h("th", null, "Best"), h("th", null, "Attempts"), h("th", null, "Last submission"), h("th", null, ""))),
        h(
          "tbody",
          null,
          g.lines.map((l) =>
            h(
              "tr",
              { dataset: { student: l.student } },
              h("td", null, l.student),
              h("td.num", null, scoreText(l.best, g.max_score)),
              h("td.num", null, String(l.attempts)),
              h("td", null, l.last_at_ms ? localTime(l.last_at_ms) : "–", l.late ? h("span.badge.late", null, "late") : null),
              h("td", null, l.last_submission ? h("button.tool.open-submission", { type: "button", onclick: () => void openSubmission(l.last_submission!) }, "Open") : null),
            ),
          ),
        ),
      );
      const dist = bars(
        "Best scores (students per 10 % of the maximum)",
        g.distribution.map((n, i) => ({ label: `${i * 10}–${i === 9 ? 100 : i * 10 + 9}%`, value: n, text: String(n) })),
      );
      const rates = bars(
        "Pass rate per test (over every graded submission)",
        g.tests.map((t) => ({ label: testName(t), value: t.runs ? t.passed / t.runs : 0, text: `${t.passed}/${t.runs}` })),
      );
      return h("section.gradebook-panel", null, h("h2", null, "Gradebook"), h("div.form-buttons", null, refreshBtn, regrade, exportCsv), table, h("div.charts", null, dist, rates));
    };

    const renderStaff = async (a: AssignmentInfo) => {
      const book = await gradebookPanel();
      setChildren(
        main,
        h("h1", null, a.title, " ", h("span.muted", null, `${course} · ${folder}/`)),
        h("p.muted", null, a.config.due_at_ms ? `Due ${localTime(a.config.due_at_ms)} (${dueIn(a.config.due_at_ms, a.now_ms)}) · ` : "No due date · ", `worth ${scoreText(null, a.max_score).replace("– / ", "")} points`),
        book,
        settingsForm(a),
        testFiles(a),
      );
    };

    const reload = async () => {
      try {
        info = await api.get(course, folder);
        loadedAt = Date.now();
      } catch (e) {
        // A section that is not an assignment yet: staff start by uploading tests.
        const code = (e as { code?: string }).code;
        if (code === "not_found" && user.role !== "student") {
          info = {
            course,
            folder,
            title: folder,
            config: { late_policy: "accept", late_penalty_percent: 0, test_timeout_ms: 10000, memory_mib: 128, default_points: 1, tests: [] },
            test_files: [],
            submissions: [],
            max_score: 0,
            attempts_used: 0,
            now_ms: Date.now(),
          };
          staff = true;
          const fresh = info;
          await renderStaff(fresh).catch(() => setChildren(main, h("h1", null, folder), testFiles(fresh)));
          return;
        }
        notices.error("Could not open the assignment", e);
        setChildren(main, h("p", null, "This assignment is not available."));
        return;
      }
      staff = (await courses.open(course)).can.includes("drafts");
      if (staff) await renderStaff(info);
      else {
        // The newest submission, with its results, until a newer one moves.
        if (!live || (info.submissions?.[0] && info.submissions[0].id >= live.id)) live = info.submissions?.[0] ?? live;
        renderStudent(info);
      }
    };

    conn.on("message", (m) => {
      frames.push(JSON.stringify(m));
      if (m.type === "test_progress") {
        if (m.check !== undefined && m.check === checkId) {
          if (m.result) {
            checkTests = [...checkTests.filter((t) => t.name !== m.result!.name), m.result];
            checkRunning = "";
          } else checkRunning = m.name;
          renderCheck();
        } else if (m.submission !== undefined && live && m.submission === live.id) {
          if (m.result) {
            liveTests = [...liveTests.filter((t) => t.name !== m.result!.name), m.result];
            liveRunning = "";
          } else liveRunning = m.name;
          renderLive();
        }
      } else if (m.type === "check_done" && m.check === checkId) {
        checkDone = m;
        renderCheck();
      } else if (m.type === "submission" && m.submission.course === course && m.submission.folder === folder) {
        if (!staff && (!live || m.submission.id >= live.id)) {
          if (m.submission.id !== live?.id) liveTests = [];
          live = m.submission;
          if (live.state === "graded" || live.state === "failed") void reload();
          else renderLive();
        }
      }
    });
    conn.on("hello", () => void reload().catch(fail("Could not load the assignment")));
    const timer = setInterval(tickCountdown, 30_000);
    conn.start();
    window.campusAssignment = { conn, frames };
    return () => {
      clearInterval(timer);
      conn.close("logged_out");
      delete window.campusAssignment;
    };
  },
};
