// Shared end-to-end helpers: headless Debian Chromium via playwright-core, login,
// file creation, terminal polling, screenshots and perf figures.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { inject } from "vitest";

const HERE = dirname(fileURLToPath(import.meta.url));

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A browser with a fresh profile; `close` removes the profile. */
export async function launch(): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), "campus-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1280, height: 800 },
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export const baseUrl = () => inject("baseUrl");

/** Who logs in where (default: the suite's shared server and student). */
export interface Account {
  baseUrl: string;
  username: string;
  password: string;
}

/** Log in through the form and wait until the IDE is connected. */
export async function login(page: Page, account?: Account): Promise<void> {
  const who = account ?? { baseUrl: baseUrl(), username: inject("username"), password: inject("password") };
  await page.goto(who.baseUrl);
  await page.locator("#login-username, .ide").first().waitFor();
  if ((await page.locator(".ide").count()) > 0) {
    // Already logged in (the session cookie is shared by the pages of a browser).
    await waitConnected(page);
    return;
  }
  await page.locator("#login-username").fill(who.username);
  await page.locator("#login-password").fill(who.password);
  await page.locator("#login-password").press("Enter");
  await waitConnected(page);
}

/** Wait until the IDE's socket is open. */
export async function waitConnected(page: Page): Promise<void> {
  await page.waitForFunction(() => window.campus?.conn.isOpen === true, null, { timeout: 20_000 });
}

/** Create a file through the tree and put `code` into it (typed as one input, like a paste). */
export async function createFile(page: Page, name: string, code: string): Promise<void> {
  await page.getByRole("button", { name: "New file", exact: true }).click();
  const input = page.locator("dialog input");
  await input.fill(name);
  await input.press("Enter");
  await page.locator(`.tab[data-path="${name}"][aria-selected="true"]`).waitFor();
  await page.locator(".cm-content").click();
  await page.keyboard.insertText(code);
  await saveAndWait(page);
}

/** Ctrl-S and wait until the active tab is saved. */
export async function saveAndWait(page: Page): Promise<void> {
  await page.keyboard.press("Control+s");
  await page.waitForFunction(() => document.querySelector('.tab[aria-selected="true"]')?.getAttribute("data-state") === "saved");
}

/** Terminal text (xterm buffer). */
export function terminalText(page: Page): Promise<string> {
  return page.evaluate(() => window.campus?.terminalText() ?? "");
}

/** Poll the terminal until it matches. */
export async function waitTerminal(page: Page, re: RegExp, timeout = 30_000): Promise<string> {
  const until = Date.now() + timeout;
  let last = "";
  while (Date.now() < until) {
    last = await terminalText(page);
    if (re.test(last)) return last;
    await page.waitForTimeout(50);
  }
  throw new Error(`terminal never matched ${re}; it shows:\n${last}`);
}

/** Wait for the status line to show an ending matching `re`. */
export async function waitEnding(page: Page, re: RegExp, timeout = 30_000): Promise<string> {
  const status = page.locator(".run-status .status-text");
  await page.waitForFunction(
    ([src, flags]) => new RegExp(src, flags).test(document.querySelector(".run-status .status-text")?.textContent ?? "") && document.querySelector(".runbar")?.getAttribute("data-running") === "false",
    [re.source, re.flags] as const,
    { timeout },
  );
  return (await status.textContent()) ?? "";
}

/**
 * Save a screenshot under docs/screenshots/ (the README's), or with
 * `{ dir: "review" }` under web-client/e2e-artifacts/screenshots/ (ignored by git: states
 * worth looking at after a run, without rewriting the docs each time).
 */
export async function screenshot(page: Page, name: string, opts: { dir?: "docs" | "review" } = {}): Promise<void> {
  const dir = opts.dir === "review" ? resolve(HERE, "../e2e-artifacts/screenshots") : resolve(HERE, "../../docs/screenshots");
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`) });
}

/** Merge figures into web-client/perf-results.json. */
export function recordPerf(key: string, value: unknown): void {
  const file = resolve(HERE, "../perf-results.json");
  let data: Record<string, unknown> = {};
  if (existsSync(file)) {
    try {
      data = JSON.parse(readFileSync(file, "utf8"));
    } catch {
      data = {};
    }
  }
  data[key] = value;
  data.measured_at = new Date().toISOString();
  writeFileSync(file, JSON.stringify(data, null, 2) + "\n");
}

/** Click a run-toolbar button by its action. */
export async function runAction(page: Page, action: "run" | "hybrid" | "repl" | "stop"): Promise<void> {
  await page.locator(`.runbar button[data-action="${action}"]`).click();
}

/** Wait until a run is live. */
export async function waitRunning(page: Page): Promise<void> {
  await page.waitForFunction(() => document.querySelector(".runbar")?.getAttribute("data-running") === "true", null, { timeout: 20_000 });
}

/** `campus user add` on the suite's shared server (its data dir), with `role`. */
export function addUser(u: { username: string; password: string }, role: string): void {
  const add = spawnSync(process.env.CAMPUS_BIN!, ["user", "add", "--username", u.username, "--role", role, "--password-stdin"], {
    env: { ...process.env, CAMPUS_DATA_DIR: inject("dataDir") },
    input: u.password + "\n",
    encoding: "utf8",
  });
  if (add.status !== 0) throw new Error(`campus user add: ${add.stderr}`);
}
