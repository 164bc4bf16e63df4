// Revocation in the browser: a student's open IDE tab, then their password is
// changed on the command line (`campus user passwd`, another process sharing
// the database). Within about one account poll the server closes the socket
// with 4013 and the reason; the tab says why it was signed out and does not
// reconnect, and the old session is refused while the new password works.
import { spawnSync } from "node:child_process";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launch, login, screenshot } from "./helpers";
import { startCampus, type Campus } from "./server";

let campus: Campus;
let context: BrowserContext;
let close: () => Promise<void>;
let page: Page;

beforeAll(async () => {
  campus = await startCampus("revoked", { CAMPUS_ACCOUNT_POLL_MS: "500" });
  ({ context, close } = await launch());
  page = await context.newPage();
  await login(page, campus);
});
afterAll(async () => {
  await close?.();
  await campus?.stop();
});

describe("revoked session", () => {
  it("a password changed on the command line signs the open tab out with the reason", async () => {
    // Count reconnect attempts of the tab's connection, and remember how it
    // first closed (leaving the IDE closes it once more, as `logged_out`).
    await page.evaluate(() => {
      const w = window as unknown as { opens: number; connClosed: string };
      w.opens = 0;
      w.connClosed = "";
      window.campus!.conn.on("state", (s) => {
        if (s.kind === "connecting" || s.kind === "reconnecting") w.opens += 1;
        if (s.kind === "closed" && !w.connClosed) w.connClosed = s.reason;
      });
    });
    const newPassword = "a-new-password-after-the-leak";
    const passwd = spawnSync(process.env.CAMPUS_BIN!, ["user", "passwd", campus.username, "--password-stdin"], {
      env: { ...process.env, CAMPUS_DATA_DIR: campus.dataDir },
      input: newPassword + "\n",
      encoding: "utf8",
    });
    expect(passwd.status, passwd.stderr).toBe(0);
    expect(passwd.stdout).toMatch(/signed out/);

    const notice = page.locator(".login-notice");
    await notice.waitFor({ timeout: 15_000 });
    expect(await notice.textContent()).toBe("Signed out: the password of this account was changed. Log in again.");
    await screenshot(page, "signed-out-password-changed", { dir: "review" });
    // Back at the login form, and no reconnect was tried with the revoked token.
    expect(await page.locator("#login-username").count()).toBe(1);
    await page.waitForTimeout(1_500);
    const seen = await page.evaluate(() => {
      const w = window as unknown as { opens: number; connClosed: string };
      return { opens: w.opens, connClosed: w.connClosed };
    });
    expect(seen.connClosed).toBe("revoked");
    expect(seen.opens).toBe(0);

    // The old cookie is refused; the new password logs in again.
    const me = await page.evaluate(async () => (await fetch("/api/auth/me")).status);
    expect(me).toBe(401);
    await login(page, { ...campus, password: newPassword });
    expect(await page.locator(".login-notice").count()).toBe(0);
  });
});
