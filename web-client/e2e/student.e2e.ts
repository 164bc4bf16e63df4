// What a student reads: a traceback is shown as an error (not in the green of
// success), their own Ctrl-C as "Interrupted (Ctrl-C)", a hybrid script that
// raised as "raised …, REPL open"; and a network path that dies without a
// close (the browser offline) is noticed within about 10 s, then the IDE
// reconnects and replays what the still-running program printed meanwhile.
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFile, launch, login, runAction, screenshot, terminalText, waitConnected, waitEnding, waitTerminal } from "./helpers";

let context: BrowserContext;
let close: () => Promise<void>;
let page: Page;

beforeAll(async () => {
  ({ context, close } = await launch());
  page = await context.newPage();
  await login(page);
});
afterAll(async () => {
  await context?.setOffline(false).catch(() => undefined);
  await close?.();
});

/** The status line: its text, its outcome, and the colour it is drawn in. */
async function status(p: Page): Promise<{ text: string; outcome: string; color: string; ok: string; danger: string; fg: string }> {
  return p.evaluate(() => {
    const el = document.querySelector(".run-status") as HTMLElement;
    const text = el.querySelector(".status-text") as HTMLElement;
    // Resolve the theme's colours the same way the status text's colour is resolved.
    const probe = (v: string) => {
      const d = document.createElement("span");
      d.style.color = `var(${v})`;
      document.body.append(d);
      const c = getComputedStyle(d).color;
      d.remove();
      return c;
    };
    return {
      text: text.textContent ?? "",
      outcome: el.dataset.outcome ?? "",
      color: getComputedStyle(text).color,
      ok: probe("--ok"),
      danger: probe("--danger"),
      fg: probe("--fg"),
    };
  });
}

/**
 * The status once its outcome is `outcome`, read in one go with its colour: a
 * re-attach (after a reconnect on a loaded machine) renders it once more, so
 * waiting for the outcome and then reading could see the re-render between.
 */
async function settled(p: Page, outcome: string): Promise<Awaited<ReturnType<typeof status>>> {
  const until = Date.now() + 10_000;
  let s = await status(p);
  while (s.outcome !== outcome && Date.now() < until) {
    await p.waitForTimeout(50);
    s = await status(p);
  }
  return s;
}

describe("what a student reads", () => {
  it("a traceback is an error, success is green, and Ctrl-C is the student's own interruption", async () => {
    await createFile(page, "fine.py", 'print("all good")\n');
    await runAction(page, "run");
    await waitEnding(page, /Finished with exit code 0/);
    const good = await settled(page, "ok");
    expect(good.outcome).toBe("ok");
    expect(good.color).toBe(good.ok);

    await createFile(page, "crash.py", 'print("dividing")\nprint(1 / 0)\n');
    await runAction(page, "run");
    await waitTerminal(page, /ZeroDivisionError: division by zero/);
    await waitEnding(page, /^Ended with an error \(exit code 1\) after \d+\.\d s$/);
    const bad = await settled(page, "error");
    expect(bad.outcome).toBe("error");
    expect(bad.color).toBe(bad.danger);
    expect(bad.color).not.toBe(bad.ok);
    await screenshot(page, "traceback-ending", { dir: "review" });

    await createFile(page, "wait.py", 'import time\nprint("waiting", flush=True)\ntime.sleep(600)\n');
    await runAction(page, "run");
    await waitTerminal(page, /waiting/);
    await page.locator(".terminal .xterm").click();
    await page.keyboard.press("Control+c");
    await waitEnding(page, /^Interrupted \(Ctrl-C\) after \d+\.\d s$/);
    const interrupted = await settled(page, "neutral");
    expect(interrupted.outcome).toBe("neutral");
    expect(interrupted.color).toBe(interrupted.fg);
    expect(interrupted.text).not.toMatch(/signal/);
    await screenshot(page, "ctrl-c-ending", { dir: "review" });
  });

  it("after an exception in hybrid mode the status says the script raised and the REPL is open", async () => {
    await createFile(page, "oops.py", 'scores = [3, 4]\nprint("average", sum(scores) / (len(scores) - 2))\n');
    await runAction(page, "hybrid");
    await page.locator('.phase-badge[data-phase="repl"]:not([hidden])').waitFor({ timeout: 20_000 });
    await waitTerminal(page, />>> $/m);
    const s = await status(page);
    expect(s.text).toBe("oops.py raised ZeroDivisionError — REPL open with its variables");
    expect(s.outcome).toBe("error");
    expect(s.color).toBe(s.danger);
    // The REPL has the script's variables.
    await page.locator(".terminal .xterm").click();
    await page.keyboard.type("len(scores)");
    await page.keyboard.press("Enter");
    await waitTerminal(page, /^2$/m);
    await screenshot(page, "hybrid-raised");
    // A reloaded page (a fresh attach) says the same.
    await page.reload();
    await waitConnected(page);
    await page.waitForFunction(() => /raised ZeroDivisionError/.test(document.querySelector(".run-status .status-text")?.textContent ?? ""), null, { timeout: 20_000 });
    await runAction(page, "stop");
    await waitEnding(page, /Stopped by you/);
    // Leaving the REPL cleanly does not turn the script's failure green.
    await runAction(page, "hybrid");
    await page.locator('.phase-badge[data-phase="repl"]:not([hidden])').waitFor({ timeout: 20_000 });
    await waitTerminal(page, />>> $/m);
    await page.locator(".terminal .xterm").click();
    await page.keyboard.type("exit()");
    await page.keyboard.press("Enter");
    await waitEnding(page, /oops\.py raised ZeroDivisionError; REPL closed — Finished with exit code 0/);
    expect((await status(page)).outcome).toBe("error");
  });

  it("a dead network path is noticed without a close, and the output is replayed after reconnecting", async () => {
    await createFile(page, "beat.py", 'import time\nfor i in range(120):\n    print(f"beat {i}", flush=True)\n    time.sleep(0.25)\nprint("all beats done")\n');
    await runAction(page, "run");
    await waitTerminal(page, /^beat 3$/m);
    const banner = page.locator(".conn-banner:not([hidden])");
    expect(await banner.count()).toBe(0);

    const offlineAt = Date.now();
    await context.setOffline(true);
    // No close frame arrives; only the missing answers to our pings tell.
    await banner.waitFor({ timeout: 15_000 });
    const noticedAfterMs = Date.now() - offlineAt;
    console.log(`offline noticed after ${noticedAfterMs} ms`);
    expect(await page.evaluate(() => window.campus!.conn.state.kind)).not.toBe("open");
    await screenshot(page, "offline-banner", { dir: "review" });

    // Run while offline is refused in the status bar; the terminal keeps its output.
    const before = await terminalText(page);
    await runAction(page, "run");
    await page.locator('.run-status[data-outcome="refused"]').waitFor({ timeout: 10_000 });
    expect(await page.locator(".run-status .status-text").textContent()).toMatch(/^Not started: not connected to the server/);
    expect(await terminalText(page)).toBe(before);

    // Offline ~15 s in all, the program printing all along on the server.
    await page.waitForTimeout(Math.max(0, 15_000 - (Date.now() - offlineAt)));
    await context.setOffline(false);
    await waitConnected(page);
    const text = await waitTerminal(page, /all beats done/, 60_000);
    for (let i = 0; i < 120; i++) {
      expect(text.match(new RegExp(`^beat ${i}$`, "gm"))?.length, `beat ${i}`).toBe(1);
    }
    await waitEnding(page, /Finished with exit code 0/);
    expect(await banner.count()).toBe(0);
  });
});
