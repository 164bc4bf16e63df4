// A real refusal in the browser: a server of its own with 2 runs per minute,
// so the third Run is refused `rate_limited` with retry_after_ms; the status
// bar says so and counts down to zero (the terminal keeps the last run's
// output), and then Run works again.
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFile, launch, login, runAction, screenshot, terminalText, waitEnding, waitTerminal } from "./helpers";
import { startCampus, type Campus } from "./server";

let campus: Campus;
let context: BrowserContext;
let close: () => Promise<void>;
let page: Page;

beforeAll(async () => {
  campus = await startCampus("refusals", { CAMPUS_RUNS_PER_MIN: "2" });
  ({ context, close } = await launch());
  page = await context.newPage();
  await login(page, campus);
});
afterAll(async () => {
  await close?.();
  await campus?.stop();
});

const REFUSED = '.run-status[data-outcome="refused"][data-code="rate_limited"] .status-text';

/** The seconds the status bar's countdown shows, or null once it says "try again now". */
async function secondsLeft(p: Page): Promise<number | null> {
  const text = (await p.locator(REFUSED).textContent()) ?? "";
  const m = /Try again in (\d+) s\.$/.exec(text);
  if (m) return Number(m[1]);
  expect(text).toMatch(/You can try again now\.$/);
  return null;
}

describe("refusals", () => {
  it("a run over the limit is refused with a live countdown, and works again when it ends", async () => {
    // Counts its runs in the workspace, so each run's output is told apart.
    await createFile(
      page,
      "count.py",
      'import pathlib\np = pathlib.Path("runs.txt")\nn = int(p.read_text()) + 1 if p.exists() else 1\np.write_text(str(n))\nprint(f"run number {n}", flush=True)\n',
    );
    for (let i = 1; i <= 2; i++) {
      await runAction(page, "run");
      await waitTerminal(page, new RegExp(`run number ${i}`));
      await waitEnding(page, /Finished with exit code 0/);
    }
    await runAction(page, "run");
    const refused = page.locator(REFUSED);
    await refused.waitFor({ timeout: 10_000 });
    expect(await refused.textContent()).toMatch(/^Not started: you started too many programs in a short time \(limit 2 a minute\)\. Try again in \d+ s\.$/);
    expect(await page.locator(".runbar").getAttribute("data-running")).toBe("false");
    // The refused Run cleared nothing: the last run's output is still there,
    // and the status bar no longer shows that run's result.
    expect(await terminalText(page)).toMatch(/run number 2/);
    expect(await page.locator(".run-status .status-text").textContent()).not.toMatch(/Finished/);
    await screenshot(page, "refused-run", { dir: "review" });

    // Two runs per minute: the next one is allowed within about 30 s.
    const first = await secondsLeft(page);
    expect(first).not.toBeNull();
    expect(first!).toBeGreaterThan(1);
    expect(first!).toBeLessThanOrEqual(30);
    await page.waitForTimeout(2_100);
    const later = await secondsLeft(page);
    expect(later).not.toBeNull();
    expect(later!).toBeLessThan(first!);

    // When the countdown ends it says so, and the server agrees.
    await page.waitForFunction((sel) => /You can try again now\.$/.test(document.querySelector(sel)?.textContent ?? ""), REFUSED, { timeout: 40_000 });
    expect(await terminalText(page)).not.toMatch(/run number 3/);
    await runAction(page, "run");
    await waitTerminal(page, /run number 3/);
    await waitEnding(page, /Finished with exit code 0/);
  });
});
