// The per-user WebSocket cap in the browser: a server of its own allowing one
// WebSocket per user, so opening the IDE in a second tab closes the first
// tab's connection (4012). The first tab says why, does not reconnect by
// itself (the two tabs would close each other in turn), and reconnects when
// asked, which closes the other tab's connection instead. An edit typed while
// it is disconnected is kept and saved once it reconnects.
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFile, launch, login, screenshot, waitConnected } from "./helpers";
import { startCampus, type Campus } from "./server";

let campus: Campus;
let context: BrowserContext;
let close: () => Promise<void>;

beforeAll(async () => {
  campus = await startCampus("replaced", { CAMPUS_WS_PER_USER: "1" });
  ({ context, close } = await launch());
});
afterAll(async () => {
  await close?.();
  await campus?.stop();
});

const BANNER = '.conn-banner[data-state="closed"]';

async function isOpen(p: Page): Promise<boolean> {
  return p.evaluate(() => window.campus?.conn.isOpen === true);
}

const read = (p: Page, path: string) =>
  p.evaluate(async (path) => {
    const r = await window.campus!.conn.request({ type: "read", path });
    return r.type === "file" ? r.content : `!${r.type}`;
  }, path);

describe("too many connections of one account", () => {
  it("a newer tab replaces the oldest; it says so and reconnects only when asked", async () => {
    const first = await context.newPage();
    await login(first, campus);
    await createFile(first, "notes.py", "print('one')\n");
    const second = await context.newPage();
    await login(second, campus);

    const banner = first.locator(BANNER);
    await banner.waitFor({ timeout: 10_000 });
    expect(await banner.textContent()).toMatch(/too many tabs or devices connected\. Your edits are kept on this device\./);
    expect(await first.locator(".ide").count()).toBe(1);
    await screenshot(first, "replaced-tab", { dir: "review" });
    // It stays closed: no reconnect loop between the two tabs.
    await first.waitForTimeout(3000);
    expect(await isOpen(first)).toBe(false);
    expect(await isOpen(second)).toBe(true);

    // Typing on while replaced: the edit waits in the browser, not lost.
    await first.locator(".cm-content").click();
    await first.keyboard.press("Control+End");
    await first.keyboard.insertText("print('two')\n");
    await expect
      .poll(() => first.evaluate(() => Object.keys(localStorage).some((k) => k.endsWith(".notes.py"))))
      .toBe(true);
    await screenshot(first, "replaced-tab-edited", { dir: "review" });

    await banner.locator("button", { hasText: "Reconnect here" }).click();
    await waitConnected(first);
    await second.locator(BANNER).waitFor({ timeout: 10_000 });
    expect(await isOpen(second)).toBe(false);
    expect(await first.locator(".conn-banner").isHidden()).toBe(true);
    await expect.poll(() => read(first, "notes.py")).toBe("print('one')\nprint('two')\n");
  });
});
