// Login/logout, files, viewers, history, and the basic run — in headless Chromium.
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseUrl, createFile, launch, login, recordPerf, runAction, saveAndWait, screenshot, waitConnected, waitEnding, waitTerminal } from "./helpers";
import { makePdf } from "./pdf";
import { makePng } from "./png";

let context: BrowserContext;
let close: () => Promise<void>;
let page: Page;

beforeAll(async () => {
  ({ context, close } = await launch());
  page = await context.newPage();
});
afterAll(async () => {
  await close();
});

async function readFile(p: Page, path: string): Promise<string> {
  return p.evaluate(async (path) => {
    const r = await window.campus!.conn.request({ type: "read", path });
    return r.type === "file" ? r.content : `!${r.type}`;
  }, path);
}

describe("student IDE: files", () => {
  it("logs in, keeps the session over a reload, logs out", async () => {
    await page.goto(baseUrl());
    await page.locator("#login-username").fill("alice");
    await page.locator("#login-password").fill("wrong password");
    await page.locator("#login-password").press("Enter");
    await expect.poll(() => page.locator(".login-error").textContent()).toMatch(/Wrong username or password/);
    await login(page);
    await page.reload();
    await waitConnected(page);
    expect(await page.locator("#login-username").count()).toBe(0);
    await page.getByRole("button", { name: "Log out" }).click();
    await page.locator("#login-username").waitFor();
    await page.reload();
    await page.locator("#login-username").waitFor();
    await login(page);
  });

  it("creates main.py, types code, runs it and shows the output and the ending", async () => {
    await createFile(page, "main.py", "");
    await page.locator(".cm-content").click();
    await page.keyboard.type('print("hello from campus")');
    await page.keyboard.press("Enter");
    await page.keyboard.insertText('for i in range(3):\n    print("line", i * i)\n');
    await saveAndWait(page);
    expect(await readFile(page, "main.py")).toContain('print("hello from campus")');
    await runAction(page, "run");
    await waitTerminal(page, /hello from campus[\s\S]*line 4/);
    const ending = await waitEnding(page, /Finished with exit code 0 in \d+\.\d s/);
    expect(ending).toMatch(/^Finished with exit code 0 in/);
    await screenshot(page, "editor-with-output");
  });

  it("uploads a PNG (button) and shows it in the image viewer", async () => {
    await page.locator('.sidebar input[type="file"]').setInputFiles({ name: "plot.png", mimeType: "image/png", buffer: makePng(96, 64) });
    const item = page.locator('.tree-item[data-path="plot.png"]');
    await item.waitFor();
    await item.click();
    const img = page.locator('.viewer[data-kind="image"] img');
    await img.waitFor();
    await expect.poll(() => img.evaluate((el: HTMLImageElement) => el.complete && el.naturalWidth)).toBe(96);
    await screenshot(page, "image-viewer");
  });

  it("uploads a PDF and shows it in Chromium's PDF viewer", async () => {
    const pdf = makePdf("Week 1 slides");
    await page.locator('.sidebar input[type="file"]').setInputFiles({ name: "slides.pdf", mimeType: "application/pdf", buffer: pdf });
    const item = page.locator('.tree-item[data-path="slides.pdf"]');
    await item.waitFor();
    await item.click();
    const frame = page.locator('.viewer[data-kind="pdf"] iframe.viewer-pdf');
    await frame.waitFor();
    // The frame gets exactly the uploaded bytes, as a PDF, under the files CSP.
    const served = await page.evaluate(async (src) => {
      const r = await fetch(src);
      return { type: r.headers.get("content-type"), csp: r.headers.get("content-security-policy"), size: (await r.arrayBuffer()).byteLength };
    }, (await frame.getAttribute("src"))!);
    expect(served.type).toBe("application/pdf");
    expect(served.csp).toContain("sandbox");
    expect(served.size).toBe(pdf.length);
    // Chromium hands a PDF it can show to its viewer (an extension frame inside
    // ours); a blocked or broken document never gets one.
    await expect.poll(() => page.frames().some((f) => f.url().startsWith("chrome-extension://") && f.parentFrame()?.url().includes("slides.pdf"))).toBe(true);
    expect(await page.locator('.viewer[data-kind="pdf"] a', { hasText: "Open in new tab" }).getAttribute("href")).toContain("slides.pdf");
    await page.waitForTimeout(500);
    await screenshot(page, "pdf-viewer");
  });

  it("uploads a CSV by drag-and-drop and shows it as a table", async () => {
    await page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(["name,score\nAda,10\n\"Smith, J\",7\n"], "grades.csv", { type: "text/csv" }));
      const target = document.querySelector(".tree-scroll")!;
      target.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
      target.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    const item = page.locator('.tree-item[data-path="grades.csv"]');
    await item.waitFor();
    await item.click();
    await page.locator('.viewer[data-kind="csv"] td', { hasText: "Smith, J" }).waitFor();
    expect(await page.locator('.viewer[data-kind="csv"] th').allTextContents()).toEqual(["name", "score"]);
  });

  it("renames, deletes to the trash and restores", async () => {
    await createFile(page, "scratch.py", "x = 1\n");
    await page.locator('.tree-item[data-path="scratch.py"]').click();
    await page.getByRole("button", { name: "Rename the selected file or folder" }).click();
    await page.locator("dialog input").fill("renamed.py");
    await page.locator("dialog input").press("Enter");
    await page.locator('.tree-item[data-path="renamed.py"]').waitFor();
    await page.locator('.tab[data-path="renamed.py"]').waitFor();
    await page.locator('.tree-item[data-path="renamed.py"]').click();
    await page.getByRole("button", { name: "Move the selected file or folder to the trash" }).click();
    await page.getByRole("button", { name: "Move to trash" }).click();
    await page.locator('.tree-item[data-path="renamed.py"]').waitFor({ state: "detached" });
    await page.getByRole("button", { name: "Deleted files (restorable for 7 days)" }).click();
    await page.locator(".trash-item", { hasText: "renamed.py" }).getByRole("button", { name: "Restore" }).click();
    await page.locator('.tree-item[data-path="renamed.py"]').waitFor();
    expect(await readFile(page, "renamed.py")).toBe("x = 1\n");
  });

  it("restores an older version from the history panel", async () => {
    await createFile(page, "notes.py", "version = 'first'\n");
    await page.locator(".cm-content").click();
    await page.keyboard.press("Control+a");
    await page.keyboard.insertText("version = 'second'\n");
    await saveAndWait(page);
    expect(await readFile(page, "notes.py")).toBe("version = 'second'\n");
    await page.getByRole("button", { name: "History", exact: true }).first().click();
    const first = page.locator(".history .version").first();
    await first.getByRole("button", { name: "Preview" }).click();
    await page.locator(".version-text", { hasText: "first" }).waitFor();
    await first.getByRole("button", { name: "Restore" }).click();
    await expect.poll(() => readFile(page, "notes.py")).toBe("version = 'first'\n");
    await expect.poll(() => page.evaluate(() => window.campus!.editorText())).toBe("version = 'first'\n");
    // the replaced content is in the history too
    await page.locator(".history .version").first().getByRole("button", { name: "Preview" }).click();
    await page.locator(".version-text", { hasText: "second" }).waitFor();
  });

  it("measures first load to interactive", async () => {
    const figures: number[] = [];
    for (let i = 0; i < 3; i++) {
      await page.goto(baseUrl());
      await page.waitForFunction(() => performance.getEntriesByName("campus-interactive").length > 0, null, { timeout: 20_000 });
      figures.push(await page.evaluate(() => performance.getEntriesByName("campus-interactive")[0].startTime));
    }
    figures.sort((a, b) => a - b);
    recordPerf("first_load_to_interactive_ms", { median: Math.round(figures[1]), samples: figures.map(Math.round) });
    expect(figures.length).toBe(3);
  });
});
