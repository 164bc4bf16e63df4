// Grading end to end in Chromium against the real server and sandbox: a
// professor makes a section an assignment, uploads tests (one hidden with a
// secret name), sets points and limits; a student copies the starter folder,
// edits it in the editor, checks the public tests live, submits and watches
// it go to graded — full marks, the hidden test anonymous, and none of its
// details in any WebSocket frame the student's page received; a partial
// solution gets the right partial points; an infinite loop times out one
// test and the rest are graded; the professor sees the gradebook and the
// statistics, re-grades after fixing a test and exports the CSV.
// Screenshots go to docs/screenshots/.
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { addUser, baseUrl, launch, login, saveAndWait, screenshot } from "./helpers";

const PROF = { username: "prof-grace", password: "prof-password-e2e-2" };
const PARTIAL_STU = { username: "stu-partial", password: "stu-password-e2e-2" };
const LOOP_STU = { username: "stu-loop", password: "stu-password-e2e-3" };
const SLUG = "gr201";
const SECRET = "hidden-expected-77e1";

const TESTS = `from solution import add, mul, fib

def test_add():
    assert add(2, 3) == 5

def test_mul():
    assert mul(3, 4) == 12

def test_fib():
    assert fib(10) == 55

def test_hidden_edge():
    # ${SECRET}
    assert add(-1, 1) == 0, "${SECRET}"
`;
const STARTER = "def add(a, b):\n    pass\n\ndef mul(a, b):\n    pass\n\ndef fib(n):\n    pass\n";
const CORRECT = "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return a * b\n\ndef fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n";
const PARTIAL = "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return a + b\n\ndef fib(n):\n    return 0\n";
const LOOPING = "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    while True:\n        pass\n\ndef fib(n):\n    return 55\n";

type Ctx = { context: BrowserContext; close: () => Promise<void> };
const contexts: Ctx[] = [];
let prof: Page;
let stu: Page;

async function page(): Promise<Page> {
  const c = await launch();
  contexts.push(c);
  return c.context.newPage();
}

beforeAll(async () => {
  addUser(PROF, "professor");
  addUser(PARTIAL_STU, "student");
  addUser(LOOP_STU, "student");
  prof = await page();
  stu = await page();
});
afterAll(async () => {
  for (const c of contexts) await c.close();
});

async function assignmentReady(p: Page, what: string): Promise<void> {
  await p.waitForFunction(() => window.campusAssignment?.conn.isOpen === true, null, { timeout: 20_000 });
  await p.locator(what).first().waitFor({ timeout: 20_000 });
}

/** Submit on an open assignment page and wait for the grade. */
async function submit(p: Page): Promise<string> {
  await p.getByRole("button", { name: "Submit", exact: true }).click();
  await p.locator("dialog").getByRole("button", { name: "Submit" }).click();
  await p.locator('.submission-status[data-state="graded"]').waitFor({ timeout: 90_000 });
  return (await p.locator(".submission-status").textContent()) ?? "";
}

/** Open hw1/solution.py from the tree (expanding the folder when it is closed). */
async function openSolution(p: Page): Promise<void> {
  await p.locator('.tree-item[data-path="hw1"]').waitFor({ timeout: 20_000 });
  if (!(await p.locator('.tree-item[data-path="hw1/solution.py"]').isVisible())) await p.locator('.tree-item[data-path="hw1"]').click();
  await p.locator('.tree-item[data-path="hw1/solution.py"]').click();
  await p.locator('.tab[data-path="hw1/solution.py"][aria-selected="true"]').waitFor();
}

/** A student's solution written through their own session (HTTP PUT, as an upload would). */
async function putSolution(p: Page, code: string): Promise<void> {
  const status = await p.evaluate(async (body) => {
    const r = await fetch("/api/files/hw1/solution.py", { method: "PUT", body, credentials: "same-origin" });
    return r.status;
  }, code);
  expect(status).toBeLessThan(300);
}

describe("grading", () => {
  it("a professor makes a section an assignment with tests and settings", async () => {
    await login(prof, { baseUrl: baseUrl(), ...PROF });
    await prof.goto(`${baseUrl()}/#/course`);
    await prof.locator("#new-course-slug").fill(SLUG);
    await prof.locator("#new-course-title").fill("Algorithms");
    await prof.getByRole("button", { name: "Create course" }).click();
    await prof.waitForFunction(() => window.campusCourse?.conn.isOpen === true && window.campusCourse.info() !== null, null, { timeout: 20_000 });
    await prof.locator("#roster-csv").fill(`username,role\n${inject("username")}\n${PARTIAL_STU.username}\n${LOOP_STU.username}\n`);
    await prof.getByRole("button", { name: "Import" }).click();
    await expect.poll(() => prof.locator(".roster-result").textContent()).toMatch(/Imported/);
    // The page re-renders after the import (and again when the course_changed
    // it causes arrives): wait for the roster to show the students, and
    // refill the form if a re-render emptied it before the click.
    await prof.locator(`table.roster tr[data-username="${LOOP_STU.username}"]`).waitFor();
    const card = prof.locator('.section-card[data-folder="hw1"]');
    for (let attempt = 0; attempt < 5 && (await card.count()) === 0; attempt++) {
      await prof.locator("#new-section-folder").fill("hw1");
      await prof.locator("#new-section-title").fill("Homework 1: functions");
      await prof.locator("#new-section-kind").fill("assignment");
      await prof.getByRole("button", { name: "Add section (draft)" }).click();
      await card.waitFor({ timeout: 5_000 }).catch(() => undefined);
    }
    await card.waitFor();
    await card.locator('input[type="file"]').first().setInputFiles([{ name: "solution.py", mimeType: "text/x-python", buffer: Buffer.from(STARTER) }]);
    await card.locator('.material-item[data-path="hw1/solution.py"]').waitFor();
    // Publish; again if a re-render (the upload's course_changed) undid the tick.
    const state = () => prof.locator('.section-card[data-folder="hw1"] .badge.state').textContent();
    for (let attempt = 0; attempt < 5 && (await state()) !== "open"; attempt++) {
      await card.locator("input.section-published").check();
      await card.locator("button.section-save").click();
      await expect.poll(state, { timeout: 5_000 }).toBe("open").catch(() => undefined);
    }
    await expect.poll(state).toBe("open");

    await prof.locator('.section-card[data-folder="hw1"] a.grading-link').click();
    await assignmentReady(prof, ".test-files");
    await prof.locator("input.test-upload").setInputFiles([{ name: "test_solution.py", mimeType: "text/x-python", buffer: Buffer.from(TESTS) }]);
    await prof.locator('.test-file-list li[data-name="test_solution.py"]').waitFor();
    const settings = [
      ["test_add", "2", "visible", false],
      ["test_mul", "3", "visible", false],
      ["test_fib", "1", "visible", false],
      ["test_hidden_edge", "4", "hidden", true],
    ] as const;
    for (const [name, points, vis, secret] of settings) {
      await prof.getByRole("button", { name: "Add a test setting" }).click();
      const row = prof.locator("tr.test-setting").last();
      await row.locator(".test-name").fill(name);
      await row.locator(".test-points").fill(points);
      await row.locator(".test-visibility").selectOption(vis);
      if (secret) await row.locator(".test-secret").check();
    }
    await prof.locator("input.test-timeout").fill("3");
    await prof.locator("input.max-attempts").fill("3");
    await prof.getByRole("button", { name: "Save settings" }).click();
    await expect.poll(() => prof.locator("main").textContent()).toMatch(/worth 10 points/);
  });

  it("a student edits the starter, checks the public tests live, submits and gets full marks", async () => {
    await login(stu);
    const course = stu.locator(`.courses-panel .course-item[data-course="${SLUG}"]`);
    await course.waitFor();
    await course.click();
    const section = stu.locator('.courses-panel .course-section[data-folder="hw1"]');
    await section.waitFor();
    await section.locator("button.copy-folder").click();
    await openSolution(stu);
    await stu.locator(".cm-content").click();
    await stu.keyboard.press("Control+a");
    await stu.keyboard.insertText(PARTIAL);
    await saveAndWait(stu);

    await section.locator("a.assignment-link").click();
    await assignmentReady(stu, "button.submit");
    await stu.getByRole("button", { name: "Check", exact: true }).click();
    await stu.locator('.check-status[data-state="done"]').waitFor({ timeout: 60_000 });
    expect(await stu.locator(".check-status").textContent()).toMatch(/Public tests: 2 \/ 6/);
    expect(await stu.locator(".check-results tr.test-result").count()).toBe(3);
    expect(await stu.locator('.check-results tr[data-outcome="failed"]').count()).toBe(2);
    await screenshot(stu, "assignment-check-student");

    // Fix it in the editor and submit.
    await stu.goto(`${baseUrl()}/#/ide`);
    await stu.waitForFunction(() => window.campus?.conn.isOpen === true, null, { timeout: 20_000 });
    await openSolution(stu);
    await stu.locator(".cm-content").click();
    await stu.keyboard.press("Control+a");
    await stu.keyboard.insertText(CORRECT);
    await saveAndWait(stu);
    await stu.goto(`${baseUrl()}/#/assignment/${SLUG}/hw1`);
    await assignmentReady(stu, "button.submit");
    const status = await submit(stu);
    expect(status).toMatch(/Graded: 10 \/ 10/);
    const hidden = stu.locator('.live-submission tr.test-result[data-visibility="hidden"]');
    expect(await hidden.textContent()).toMatch(/Hidden test 1/);
    expect(await hidden.locator(".outcome").textContent()).toBe("passed");
    // Nothing of the hidden test reached this page, in any frame.
    const frames = await stu.evaluate(() => window.campusAssignment!.frames.join("\n"));
    expect(frames).toContain("test_progress");
    expect(frames).not.toContain(SECRET);
    expect(frames).not.toContain("test_hidden_edge");
    expect(await stu.content()).not.toContain("test_hidden_edge");
    await expect.poll(() => stu.locator(".best-score").textContent()).toBe("10 / 10");
    await screenshot(stu, "assignment-graded-student");

    // Her progress in the course: the assignment with its best score.
    await stu.locator("a.progress-link").click();
    const line = stu.locator('tr.progress-line[data-folder="hw1"]');
    await line.waitFor({ timeout: 20_000 });
    expect(await line.getAttribute("data-state")).toBe("graded");
    expect(await line.locator(".score-text").textContent()).toBe("10 / 10");
    expect(await stu.locator(".progress-total .score-text").textContent()).toBe("10 / 10");
  });

  it("a partial solution scores its points; an infinite loop times out one test and the rest are graded", async () => {
    const partial = await page();
    await login(partial, { baseUrl: baseUrl(), ...PARTIAL_STU });
    await putSolution(partial, PARTIAL);
    // Her progress page, open in a second tab, follows the submission live.
    const progress = await partial.context().newPage();
    await progress.goto(`${baseUrl()}/#/progress/${SLUG}`);
    const line = progress.locator('tr.progress-line[data-folder="hw1"]');
    await line.waitFor({ timeout: 20_000 });
    expect(await line.getAttribute("data-state")).toBe("none");
    await partial.goto(`${baseUrl()}/#/assignment/${SLUG}/hw1`);
    await assignmentReady(partial, "button.submit");
    expect(await submit(partial)).toMatch(/Graded: 6 \/ 10/);
    expect(await partial.locator('.live-submission tr[data-outcome="failed"]').count()).toBe(2);
    await expect.poll(() => line.getAttribute("data-state"), { timeout: 20_000 }).toBe("graded");
    expect(await line.locator(".score-text").textContent()).toBe("6 / 10");
    await screenshot(progress, "progress-student");
    await progress.close();

    const loop = await page();
    await login(loop, { baseUrl: baseUrl(), ...LOOP_STU });
    await putSolution(loop, LOOPING);
    await loop.goto(`${baseUrl()}/#/assignment/${SLUG}/hw1`);
    await assignmentReady(loop, "button.submit");
    expect(await submit(loop)).toMatch(/Graded: 7 \/ 10/);
    const mul = loop.locator(".live-submission tr.test-result", { hasText: "test_mul" });
    expect(await mul.getAttribute("data-outcome")).toBe("timeout");
  });

  it("the professor sees the gradebook and statistics, re-grades after a fix and exports the CSV", async () => {
    await prof.reload();
    await assignmentReady(prof, "table.gradebook");
    const row = (u: string) => prof.locator(`table.gradebook tr[data-student="${u}"]`);
    await expect.poll(() => row(inject("username")).locator("td").nth(1).textContent()).toBe("10 / 10");
    expect(await row(PARTIAL_STU.username).locator("td").nth(1).textContent()).toBe("6 / 10");
    expect(await row(LOOP_STU.username).locator("td").nth(1).textContent()).toBe("7 / 10");
    expect(await prof.locator(".bar-chart").count()).toBe(2);
    await screenshot(prof, "assignment-gradebook-professor");

    // The professor opens a submission: the hidden test by name.
    await row(LOOP_STU.username).locator("button.open-submission").click();
    const viewer = prof.locator("dialog.submission-viewer");
    await viewer.waitFor();
    expect(await viewer.textContent()).toContain("test_hidden_edge");
    await viewer.getByRole("button", { name: "Close" }).click();

    // Fix a test (mul(3, 4) may also be 7, as the partial solution says), re-grade.
    await prof.locator("input.test-upload").setInputFiles([{ name: "test_solution.py", mimeType: "text/x-python", buffer: Buffer.from(TESTS.replace("== 12", "in (7, 12)")) }]);
    await prof.getByRole("button", { name: "Re-grade all" }).click();
    await prof.locator("dialog").getByRole("button", { name: "Re-grade" }).click();
    await expect
      .poll(
        async () => {
          await prof.getByRole("button", { name: "Refresh" }).click();
          return row(PARTIAL_STU.username).locator("td").nth(1).textContent();
        },
        { timeout: 90_000, interval: 1_000 },
      )
      .toBe("9 / 10");

    const csv = await prof.evaluate(async (href) => (await fetch(href, { credentials: "same-origin" })).text(), (await prof.locator("a.export-csv").getAttribute("href"))!);
    expect(csv.split("\n")[0]).toBe("student,best_score,max_score,attempts,last_submission,last_submitted_at,late");
    expect(csv).toContain(`${PARTIAL_STU.username},9,10,1,`);
  });
});
