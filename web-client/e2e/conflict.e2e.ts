// Two pages on the same file: conflict banner, both versions survive; a clean
// tab refreshes by itself.
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFile, launch, login, saveAndWait, screenshot, waitConnected } from "./helpers";

let context: BrowserContext;
let close: () => Promise<void>;
let a: Page;
let b: Page;

beforeAll(async () => {
  ({ context, close } = await launch());
  a = await context.newPage();
  b = await context.newPage();
});
afterAll(async () => {
  await close();
});

const read = (p: Page, path: string) =>
  p.evaluate(async (path) => {
    const r = await window.campus!.conn.request({ type: "read", path });
    return r.type === "file" ? r.content : `!${r.type}`;
  }, path);

describe("conflicts between two pages", () => {
  it("refreshes a clean tab, shows the banner for a dirty one, and keeps both versions", async () => {
    await login(a);
    await createFile(a, "shared.py", "print('base')\n");
    await login(b);
    await b.locator('.tree-item[data-path="shared.py"]').click();
    await b.locator('.tab[data-path="shared.py"][aria-selected="true"]').waitFor();

    // 1. No local edits in B: A's save shows up in B by itself.
    await a.locator(".cm-content").click();
    await a.keyboard.press("Control+End");
    await a.keyboard.insertText("print('from A, 1')\n");
    await saveAndWait(a);
    await expect.poll(() => b.evaluate(() => window.campus!.editorText())).toContain("from A, 1");

    // 2. B edits while its connection is down; A saves meanwhile; B reconnects
    //    and saves with its old base version → conflict, nothing overwritten.
    await b.evaluate(() => window.campus!.conn.dropForTest(60_000));
    await b.locator(".conn-banner:not([hidden])").waitFor();
    await b.locator(".cm-content").click();
    await b.keyboard.press("Control+End");
    await b.keyboard.insertText("print('from B, offline')\n");
    await a.keyboard.insertText("print('from A, 2')\n");
    await saveAndWait(a);
    await b.getByRole("button", { name: "Retry now" }).click();
    await waitConnected(b);
    const banner = b.locator(".conflict-banner");
    await banner.waitFor({ timeout: 15_000 });
    expect(await banner.locator(".mine pre").textContent()).toContain("from B, offline");
    expect(await banner.locator(".theirs pre").textContent()).toContain("from A, 2");
    expect(await read(b, "shared.py")).toContain("from A, 2");
    expect(await read(b, "shared.py")).not.toContain("from B");
    await screenshot(b, "conflict-banner");

    // 3. Keep both: B's text goes to a copy, the open file shows A's.
    await banner.getByRole("button", { name: "Keep both" }).click();
    await banner.waitFor({ state: "detached" });
    await expect.poll(() => read(b, "shared (my copy).py")).toContain("from B, offline");
    expect(await read(b, "shared.py")).toContain("from A, 2");
    expect(await b.evaluate(() => window.campus!.editorText())).toContain("from A, 2");
    await b.locator('.tree-item[data-path="shared (my copy).py"]').waitFor();
  });

  it("keeps edits made offline across a page reload and saves them once connected", async () => {
    await createFile(a, "draft.py", "print('saved')\n");
    await a.evaluate(() => window.campus!.conn.dropForTest(60_000));
    await a.locator(".conn-banner:not([hidden])").waitFor();
    await a.locator(".cm-content").click();
    await a.keyboard.press("Control+End");
    await a.keyboard.insertText("print('typed while offline')\n");
    await expect.poll(() => a.evaluate(() => localStorage.getItem(Object.keys(localStorage).find((k) => k.endsWith(".draft.py"))!))).toContain("typed while offline");
    await a.reload();
    await waitConnected(a);
    await a.locator('.tab[data-path="draft.py"]').waitFor();
    await expect.poll(() => read(a, "draft.py")).toBe("print('saved')\nprint('typed while offline')\n");
    await expect.poll(() => a.evaluate(() => Object.keys(localStorage).some((k) => k.endsWith(".draft.py")))).toBe(false);
  });
});
