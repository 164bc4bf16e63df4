// Courses end to end in Chromium against the real server: a professor creates
// a course, imports a roster with a bad line (nothing applied), fixes it,
// uploads a CSV and a script that reads it, publishes with a release time a
// few seconds ahead; the student sees nothing before the release and the
// material appears live after it; the student runs the course script (output
// correct), is refused writing into the material, copies the folder twice
// (the clash gets a new name), changes it; the professor opens the student's
// copy read-only, and the version before the change; a file uploaded as a
// draft into the open section stays hidden until published. Screenshots of both screens go to docs/screenshots/.
import { spawnSync } from "node:child_process";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { baseUrl, launch, login, saveAndWait, screenshot, waitEnding, waitTerminal } from "./helpers";

const PROF = { username: "prof-ada", password: "prof-password-e2e-1" };
const SLUG = "cs101";
const DEMO = `import os, pathlib
here = pathlib.Path(__file__).parent
rows = (here / "data.csv").read_text().split()
print("total", sum(int(r.split(",")[1]) for r in rows[1:]))
try:
    open(here / "hack.txt", "w")
except OSError as e:
    print("write refused", e.errno)
`;
const CSV = "name,score\nann,120\nbob,126\n";

let profCtx: { context: BrowserContext; close: () => Promise<void> };
let stuCtx: { context: BrowserContext; close: () => Promise<void> };
let prof: Page;
let stu: Page;

beforeAll(async () => {
  // The professor's account, made as an admin would: with the CLI, next to the running server.
  const add = spawnSync(process.env.CAMPUS_BIN!, ["user", "add", "--username", PROF.username, "--role", "professor", "--password-stdin"], {
    env: { ...process.env, CAMPUS_DATA_DIR: inject("dataDir") },
    input: PROF.password + "\n",
    encoding: "utf8",
  });
  if (add.status !== 0) throw new Error(`campus user add: ${add.stderr}`);
  profCtx = await launch();
  stuCtx = await launch();
  prof = await profCtx.context.newPage();
  stu = await stuCtx.context.newPage();
});
afterAll(async () => {
  await profCtx?.close();
  await stuCtx?.close();
});

/** The course page's socket is open and it shows the course. */
async function coursePageReady(page: Page): Promise<void> {
  await page.waitForFunction(() => window.campusCourse?.conn.isOpen === true && window.campusCourse.info() !== null, null, { timeout: 20_000 });
}

describe("courses", () => {
  it("a professor creates a course and imports a roster: a bad line applies nothing", async () => {
    await login(prof, { baseUrl: baseUrl(), ...PROF });
    await prof.getByRole("button", { name: "New course" }).click();
    await prof.locator("#new-course-slug").fill(SLUG);
    await prof.locator("#new-course-title").fill("Introduction to Programming");
    await prof.locator("#new-course-term").fill("2026 Fall");
    await prof.getByRole("button", { name: "Create course" }).click();
    await coursePageReady(prof);
    await prof.locator("#roster-csv").fill(`username,role\n${inject("username")}\nbo b\n`);
    await prof.getByRole("button", { name: "Import" }).click();
    await expect.poll(() => prof.locator(".roster-result").textContent()).toMatch(/Nothing was imported/);
    expect(await prof.locator('.roster-result tr[data-outcome="invalid"]').textContent()).toMatch(/bo b.*a username is/);
    expect(await prof.locator(`table.roster tr[data-username="${inject("username")}"]`).count()).toBe(0);
    await prof.locator("#roster-csv").fill(`username,role\n${inject("username")}\n`);
    await prof.getByRole("button", { name: "Import" }).click();
    await expect.poll(() => prof.locator(".roster-result").textContent()).toMatch(/Imported: every line was valid/);
    await prof.locator(`table.roster tr[data-username="${inject("username")}"]`).waitFor();
  });

  it("uploads a CSV and a script into a draft section; the student sees nothing", async () => {
    await prof.locator("#new-section-folder").fill("week1");
    await prof.locator("#new-section-title").fill("Week 1: files");
    await prof.getByRole("button", { name: "Add section (draft)" }).click();
    const card = prof.locator('.section-card[data-folder="week1"]');
    await card.waitFor();
    await card.locator('input[type="file"]').setInputFiles([
      { name: "data.csv", mimeType: "text/csv", buffer: Buffer.from(CSV) },
      { name: "demo.py", mimeType: "text/x-python", buffer: Buffer.from(DEMO) },
    ]);
    await card.locator('.material-item[data-path="week1/demo.py"]').waitFor();
    await card.locator('.material-item[data-path="week1/data.csv"]').waitFor();

    await login(stu);
    const course = stu.locator(`.courses-panel .course-item[data-course="${SLUG}"]`);
    await course.waitFor();
    await course.click();
    await expect.poll(() => stu.locator(".courses-panel .course-body").textContent()).toMatch(/Nothing released yet/);
  });

  it("publishes with a release a few seconds ahead: nothing before, live after", async () => {
    const card = prof.locator('.section-card[data-folder="week1"]');
    const release = new Date(Date.now() + 6_000);
    const pad = (n: number) => String(n).padStart(2, "0");
    const local = `${release.getFullYear()}-${pad(release.getMonth() + 1)}-${pad(release.getDate())}T${pad(release.getHours())}:${pad(release.getMinutes())}:${pad(release.getSeconds())}`;
    await card.locator("input.section-published").check();
    await card.locator("input.section-release").fill(local);
    await card.locator("button.section-save").click();
    await expect.poll(() => prof.locator('.section-card[data-folder="week1"] .badge.state').textContent()).toBe("scheduled");
    await screenshot(prof, "course-page-professor");

    // Before the release: the panel (told of the save) still shows nothing.
    await stu.waitForTimeout(1_000);
    expect(Date.now()).toBeLessThan(release.getTime());
    expect(await stu.locator('.courses-panel .course-section[data-folder="week1"]').count()).toBe(0);
    // After it: the section appears without a reload.
    await stu.locator('.courses-panel .course-section[data-folder="week1"]').waitFor({ timeout: 20_000 });
    expect(Date.now()).toBeGreaterThanOrEqual(release.getTime() - 1_000);
    await stu.locator('.material-item[data-path="week1/demo.py"]').waitFor();
  });

  it("the student views, runs the script, cannot write the material, copies it twice", async () => {
    await stu.locator('.material-item[data-path="week1/data.csv"] .linklike').click();
    const viewer = stu.locator("dialog.material-viewer");
    await viewer.locator('.viewer[data-kind="csv"] td', { hasText: "126" }).waitFor();
    expect(await viewer.locator(".badge.readonly").textContent()).toBe("read-only");
    await viewer.getByRole("button", { name: "Close" }).click();

    await stu.locator('.material-item[data-path="week1/demo.py"] .run-material').click();
    const out = await waitTerminal(stu, /write refused/);
    expect(out).toMatch(/total 246/);
    expect(out).toMatch(/write refused 30/);
    await waitEnding(stu, /Finished with exit code 0/);

    // No screen offers it; the socket is refused too.
    const refused = await stu.evaluate(async (slug) => {
      const r = await window.campus!.conn.request({ type: "course_write", course: slug, path: "week1/demo.py", content: "x", encoding: "utf8" }).catch((e) => e);
      return (r as { code?: string }).code ?? (r as { type: string }).type;
    }, SLUG);
    expect(refused).toBe("forbidden");

    const copy = stu.locator('.courses-panel .course-section[data-folder="week1"] .copy-folder');
    await copy.click();
    await expect.poll(() => stu.locator(".notices").textContent()).toMatch(/Copied to week1 in your workspace/);
    await copy.click();
    await expect.poll(() => stu.locator(".notices").textContent()).toMatch(/Copied to week1 \(2\): week1 already exists in your workspace, so nothing was overwritten/);
    await stu.locator('.tree-item[data-path="week1 (2)"]').waitFor();
    await screenshot(stu, "course-panel-student");
  });

  it("the professor opens the student's copy read-only, and its earlier version", async () => {
    // The student changes their copy in the IDE: the professor sees both versions.
    await stu.locator('.tree-item[data-path="week1"]').click();
    await stu.locator('.tree-item[data-path="week1/demo.py"]').click();
    await stu.locator('.tab[data-path="week1/demo.py"][aria-selected="true"]').waitFor();
    await stu.locator(".cm-content").click();
    await stu.keyboard.press("Control+End");
    await stu.keyboard.insertText("print('my change')\n");
    await saveAndWait(stu);

    await prof.locator("#student-pick").selectOption(inject("username"));
    await prof.locator(".student-files button", { hasText: "week1/demo.py" }).click();
    await prof.locator(".student-file .readonly-banner").waitFor();
    expect(await prof.locator(".student-file .readonly-banner").textContent()).toMatch(/Read-only: .*week1\/demo.py/);
    expect(await prof.locator(".student-file .cm-content").getAttribute("contenteditable")).toBe("false");
    expect(await prof.locator(".student-file .cm-content").textContent()).toContain("write refused");
    expect(await prof.locator(".student-file .cm-content").textContent()).toContain("my change");
    expect(await prof.locator(".student-file .student-history summary").textContent()).toBe("Earlier versions (1)");
    await prof.locator(".student-history li:nth-child(2) button").click();
    await expect.poll(() => prof.locator(".student-version-caption").textContent()).toMatch(/Showing the version replaced at/);
    expect(await prof.locator(".student-file .cm-content").textContent()).not.toContain("my change");
    expect(await prof.locator(".student-file .cm-content").textContent()).toContain("write refused");
    expect(await prof.locator(".student-file .cm-content").getAttribute("contenteditable")).toBe("false");
    await expect.poll(() => prof.locator("table.student-runs").textContent()).toMatch(/\/course\/cs101\/week1\/demo.py/);
    await screenshot(prof, "course-student-work", { dir: "review" });
  });
  it("a file uploaded as a draft stays hidden in the open section until the professor publishes it", async () => {
    const card = prof.locator('.section-card[data-folder="week1"]');
    await card.locator("input.upload-hidden").check();
    await card.locator('input[type="file"]').setInputFiles([{ name: "answers.py", mimeType: "text/x-python", buffer: Buffer.from("print('the answers')\n") }]);
    const item = card.locator('.material-item[data-path="week1/answers.py"]');
    await item.waitFor();
    await expect.poll(() => item.locator(".file-state").textContent()).toBe("own: draft");
    // The student's panel was told of the upload and still does not list it.
    await stu.locator('.courses-panel .material-item[data-path="week1/demo.py"]').waitFor();
    await stu.waitForTimeout(1_500);
    expect(await stu.locator('.courses-panel .material-item[data-path="week1/answers.py"]').count()).toBe(0);
    const hidden = await stu.evaluate(async (slug) => {
      const r = await window.campus!.conn.request({ type: "course_read", course: slug, path: "week1/answers.py" }).catch((e) => e);
      return (r as { code?: string }).code ?? (r as { type: string }).type;
    }, SLUG);
    expect(hidden).toBe("not_found");

    await item.locator(".release-box summary").click();
    await item.locator("input.release-published").check();
    await item.locator("button.release-save").click();
    await expect.poll(() => prof.locator('.material-item[data-path="week1/answers.py"] .file-state').textContent()).toBe("own: open");
    await prof.locator('.material-item[data-path="week1/answers.py"] .release-box summary').click();
    await prof.locator('.material-item[data-path="week1/answers.py"] .release-form').scrollIntoViewIfNeeded();
    await screenshot(prof, "course-file-visibility");
    await stu.locator('.courses-panel .material-item[data-path="week1/answers.py"]').waitFor({ timeout: 20_000 });
  });
});
