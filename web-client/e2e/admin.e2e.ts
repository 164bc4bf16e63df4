// The admin dashboard end to end in Chromium, against the real server and
// sandbox: a student runs a program that holds 64 MiB; an admin logs in,
// opens the dashboard from the IDE, sees the student's run live with about
// 64 MiB (the run's cgroup), filters and sorts the table, stops the run
// behind a confirmation, and the student's page says in words that an
// administrator stopped it. A student cannot open the dashboard (the router
// sends them to their IDE) and the server refuses their admin requests
// (`forbidden`). The admin disables the student (their tab is signed out at
// once) and enables them again from the disabled accounts list.
// Screenshots: docs/screenshots/admin-dashboard.png, admin-stopped-student.png.
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addUser, baseUrl, createFile, launch, login, runAction, screenshot, waitEnding, waitRunning, waitTerminal } from "./helpers";

const ADMIN = { username: "admin-ada", password: "admin-password-e2e-1" };
const STUDENT = { username: "stu-mem", password: "stu-password-e2e-mem" };
const HOLD = "b = bytearray(64 * 1024 * 1024)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\nprint('holding 64 MiB', flush=True)\nimport time\nwhile True:\n    time.sleep(0.2)\n";

type Ctx = { context: BrowserContext; close: () => Promise<void> };
const contexts: Ctx[] = [];
let admin: Page;
let stu: Page;

async function page(): Promise<Page> {
  const c = await launch();
  contexts.push(c);
  return c.context.newPage();
}

beforeAll(async () => {
  addUser(ADMIN, "admin");
  addUser(STUDENT, "student");
  admin = await page();
  stu = await page();
});
afterAll(async () => {
  for (const c of contexts) await c.close();
});

/** The dashboard's current line for `username`, from the last feed it rendered. */
function feedLine(p: Page, username: string) {
  return p.evaluate((u) => window.campusAdmin?.feed?.sessions.find((s) => s.username === u) ?? null, username);
}

describe("admin dashboard", () => {
  it("shows a student's running program with its memory, and stops it", async () => {
    await login(stu, { baseUrl: baseUrl(), ...STUDENT });
    await createFile(stu, "hold.py", HOLD);
    await runAction(stu, "run");
    await waitRunning(stu);
    await waitTerminal(stu, /holding 64 MiB/);

    await login(admin, { baseUrl: baseUrl(), ...ADMIN });
    await admin.getByRole("link", { name: "Admin" }).click();
    await admin.locator(".admin-view").waitFor();
    const row = admin.locator(`table.admin-sessions tr[data-user="${STUDENT.username}"]`);
    await row.locator('td .state[data-state="script"]').waitFor({ timeout: 20_000 });
    // The feed's figure comes from the run's cgroup: ~64 MiB (the bytearray,
    // plus the interpreter's few MiB).
    await admin.waitForFunction(
      (u) => (window.campusAdmin?.feed?.sessions.find((s) => s.username === u)?.memory_bytes ?? 0) >= 60 * 1024 * 1024,
      STUDENT.username,
      { timeout: 20_000 },
    );
    const line = await feedLine(admin, STUDENT.username);
    expect(line?.memory_bytes).toBeLessThan(100 * 1024 * 1024);
    expect(line?.path).toBe("hold.py");
    await admin.waitForFunction((u) => /6\d(\.\d)? MiB \//.test(document.querySelector(`tr[data-user="${u}"] td.mem`)?.textContent ?? ""), STUDENT.username);
    expect(await row.locator("td.path").textContent()).toBe("hold.py");
    expect(await admin.locator('.admin-card[data-label="Sandboxes"] .admin-card-value').textContent()).toMatch(/^[1-9]\d* \/ \d+$/);

    // Filter: the state filter keeps the running student, "idle" hides them.
    await admin.getByLabel("Filter sessions by state").selectOption("idle");
    await expect.poll(() => row.count()).toBe(0);
    await admin.getByLabel("Filter sessions by state").selectOption("running");
    await row.waitFor();
    await admin.getByLabel("Filter sessions by user or program").fill("hold");
    await row.waitFor();
    // Sort by memory: the column says so.
    await admin.getByRole("button", { name: /^Memory/ }).click();
    expect(await admin.locator("th[aria-sort='descending']").textContent()).toMatch(/Memory/);
    await admin.getByLabel("Filter sessions by user or program").fill("");
    await admin.getByLabel("Filter sessions by state").selectOption("all");
    await screenshot(admin, "admin-dashboard");

    // Stop, confirmed.
    await row.getByRole("button", { name: `Stop ${STUDENT.username}'s run` }).click();
    await admin.locator("dialog").getByRole("button", { name: "Stop run" }).click();
    await admin.locator(".notice", { hasText: `Stopped ${STUDENT.username}'s run.` }).waitFor();
    const ending = await waitEnding(stu, /administrator/i);
    await screenshot(stu, "admin-stopped-student");
    expect(ending).toMatch(/Stopped by an administrator/);
    await row.locator('td .state[data-state="idle"]').waitFor({ timeout: 20_000 });
    expect(await admin.locator('.admin-rates dd[data-what="ended"]').textContent()).toMatch(/killed by admin 1/);
  });

  it("a student cannot open the dashboard nor use admin requests", async () => {
    await stu.goto(`${baseUrl()}/#/admin`);
    await stu.locator(".ide").waitFor();
    expect(await stu.locator(".admin-view").count()).toBe(0);
    expect(await stu.getByRole("link", { name: "Admin" }).count()).toBe(0);
    // The server refuses the requests themselves (a hand-made socket with the student's cookie).
    const replies = await stu.evaluate(async () => {
      const ws = new WebSocket(`ws://${location.host}/ws`);
      const got: { type: string; code?: string; id?: number }[] = [];
      await new Promise<void>((resolve, reject) => {
        ws.onerror = () => reject(new Error("socket failed"));
        ws.onmessage = (ev) => {
          if (typeof ev.data !== "string") return;
          const m = JSON.parse(ev.data);
          got.push({ type: m.type, code: m.code, id: m.id });
          if (m.type === "hello") {
            ws.send(JSON.stringify({ type: "admin_watch", id: 1 }));
            ws.send(JSON.stringify({ type: "admin_stop_run", id: 2, user_id: 1 }));
          }
          if (got.filter((g) => g.id !== undefined).length >= 2) resolve();
        };
      });
      // A feed would have come within a second or two.
      await new Promise((r) => setTimeout(r, 2500));
      ws.close();
      return got;
    });
    expect(replies.filter((r) => r.id !== undefined)).toEqual([
      { type: "error", code: "forbidden", id: 1 },
      { type: "error", code: "forbidden", id: 2 },
    ]);
    expect(replies.some((r) => r.type === "admin_feed")).toBe(false);
  });

  it("disables a student (signed out at once) and enables them again", async () => {
    const row = admin.locator(`table.admin-sessions tr[data-user="${STUDENT.username}"]`);
    await row.getByRole("button", { name: `Disable ${STUDENT.username}` }).click();
    await admin.locator("dialog").getByRole("button", { name: "Disable account" }).click();
    await admin.locator(".notice", { hasText: `Disabled ${STUDENT.username}` }).waitFor();
    // The student's tab is signed out with the reason.
    const notice = stu.locator(".login-notice");
    await notice.waitFor({ timeout: 15_000 });
    expect(await notice.textContent()).toMatch(/disabled/);
    // Listed apart (no session any more), and enabled from there.
    const listed = admin.locator(`.admin-disabled li[data-user="${STUDENT.username}"]`);
    await listed.waitFor();
    await listed.getByRole("button", { name: `Enable ${STUDENT.username}` }).click();
    await admin.locator(".notice", { hasText: `Enabled ${STUDENT.username} again.` }).waitFor();
    await expect.poll(() => listed.count()).toBe(0);
    await login(stu, { baseUrl: baseUrl(), ...STUDENT });
  });
});
