// The per-user WebSocket cap in the browser: a server of its own allowing one
// WebSocket per user, so opening the IDE in a second tab closes the first
// tab's connection (4012). The first tab says why, does not reconnect by
// itself (the two tabs would close each other in turn), and reconnects when
// asked, which closes the other tab's connection instead.
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launch, login, screenshot, waitConnected } from "./helpers";
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

describe("too many connections of one account", () => {
  it("a newer tab replaces the oldest; it says so and reconnects only when asked", async () => {
    const first = await context.newPage();
    await login(first, campus);
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

    await banner.locator("button", { hasText: "Reconnect here" }).click();
    await waitConnected(first);
    await second.locator(BANNER).waitFor({ timeout: 10_000 });
    expect(await isOpen(second)).toBe(false);
    expect(await first.locator(".conn-banner").isHidden()).toBe(true);
  });
});
