// A student's program prints the terminal escapes that reach into the browser: OSC 52
// (clipboard write and read request), OSC 0/2 (title), OSC 8 links (javascript:, file:,
// http), and the query sequences that make a terminal type an answer into the program's
// input (DECRQSS, XTGETTCAP, DA, DECRQM, colour and window reports). The browser's
// clipboard and title must not change, only the http link may open (after a confirm, with
// no opener), and the program must read no answer.
import type { BrowserContext, Dialog, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseUrl, createFile, launch, login, runAction, screenshot, waitEnding, waitTerminal } from "./helpers";

let context: BrowserContext;
let close: () => Promise<void>;
let page: Page;

beforeAll(async () => {
  ({ context, close } = await launch());
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: baseUrl() });
  page = await context.newPage();
  await login(page);
});
afterAll(async () => {
  await close();
});

/** The program: prints every sequence, then reads its input for 3 s and reports what came. */
function program(webLink: string): string {
  return String.raw`import base64, os, select, sys, termios, time, tty

fd = sys.stdin.fileno()
saved = termios.tcgetattr(fd)
tty.setcbreak(fd)  # an answer arrives without Enter

def w(s):
    sys.stdout.write(s)
    sys.stdout.flush()

w("\x1b]52;c;" + base64.b64encode(b"stolen-by-osc52").decode() + "\x07")
w("\x1b]52;c;?\x07")
w("\x1b]0;PWNED-TITLE-0\x07\x1b]2;PWNED-TITLE-2\x1b\\\x1b]1;PWNED-ICON\x07")
w("\x1b]8;;javascript:alert(document.cookie)\x07JSLINK\x1b]8;;\x07\r\n")
w("\x1b]8;;file:///etc/passwd\x07FILELINK\x1b]8;;\x07\r\n")
w("\x1b]8;;${webLink}\x07WEBLINK\x1b]8;;\x07\r\n")
w("\x1bP$qm\x1b\\\x1bP$qr\x1b\\\x1bP+q544e\x1b\\")
w("\x1b[c\x1b[0c\x1b[>c\x1b[=c\x1b[?2004$p\x1b[4$p")
w("\x1b]10;?\x07\x1b]11;?\x1b\\\x1b]4;1;?\x07\x1b]12;?\x07")
w("\x1b[18t\x1b[14t\x1b[>q")
w("QUERIES SENT\r\n")
got = b""
end = time.monotonic() + 3
while True:
    left = end - time.monotonic()
    if left <= 0:
        break
    ready, _, _ = select.select([fd], [], [], left)
    if not ready:
        break
    got += os.read(fd, 4096)
termios.tcsetattr(fd, termios.TCSADRAIN, saved)
print("ANSWERS:", repr(got) if got else "none")
`;
}

/** Move to the start of the terminal row showing `text` (where the link is) and click it. */
async function clickRow(p: Page, text: string): Promise<void> {
  const box = await p.locator(".terminal .xterm-rows > div", { hasText: text }).first().boundingBox();
  if (!box) throw new Error(`no terminal row shows ${text}`);
  // The screen layer above the rows takes the events, as for a student's mouse.
  const [x, y] = [box.x + 12, box.y + box.height / 2];
  await p.mouse.move(x - 4, y);
  await p.mouse.move(x, y, { steps: 3 });
  await p.mouse.down();
  await p.mouse.up();
}

describe("terminal escapes from program output", () => {
  it("leave the clipboard and title alone, answer nothing, and open only http links after a confirm", { timeout: 180_000 }, async () => {
    await page.bringToFront();
    await page.evaluate(() => navigator.clipboard.writeText("the student's own clipboard"));
    const title = await page.title();
    const origin = new URL(baseUrl()).origin;
    const webLink = `${origin}/?from=osc8`;
    await createFile(page, "escapes.py", program(webLink));
    await runAction(page, "run");
    await waitTerminal(page, /QUERIES SENT/);
    const shown = await waitTerminal(page, /ANSWERS: .*/, 30_000);
    // No answer-back sequence reached the program's input.
    expect(shown).toMatch(/ANSWERS: none/);
    await waitEnding(page, /Finished with exit code 0/);
    // Neither the clipboard nor the title changed; the sequences left no text behind.
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe("the student's own clipboard");
    expect(await page.title()).toBe(title);
    expect(shown).not.toMatch(/PWNED|stolen|c2xvbGVu|544e/);

    // Links: javascript: and file: do nothing; http asks first, then opens with no opener.
    // Every dialog is recorded and answered (`accept` decides how); a blocked page would hang.
    const dialogs: string[] = [];
    let accept = false;
    page.on("dialog", (d: Dialog) => {
      dialogs.push(`${d.type()}: ${d.message()}`);
      void (accept ? d.accept() : d.dismiss());
    });
    const popups: Page[] = [];
    context.on("page", (p: Page) => {
      popups.push(p);
    });
    await clickRow(page, "JSLINK");
    await clickRow(page, "FILELINK");
    // Dismissed: nothing opens. The clicks are handled in order, so once the http link's
    // confirm has come, the two clicks before it have done all they were going to.
    await clickRow(page, "WEBLINK");
    await expect.poll(() => dialogs.length).toBeGreaterThan(0);
    // Accepted: a new tab on that address, which cannot reach back into the IDE.
    accept = true;
    const opened = context.waitForEvent("page", { timeout: 15_000 });
    await clickRow(page, "WEBLINK");
    const popup = await opened;
    await popup.waitForLoadState("domcontentloaded");
    expect(popup.url()).toBe(webLink);
    expect(await popup.evaluate(() => window.opener)).toBeNull();
    await popup.close();
    // Exactly the two confirms for WEBLINK (none for the javascript: and file: links, which
    // would also have run an alert), and only the one tab.
    expect(dialogs).toHaveLength(2);
    for (const d of dialogs) {
      expect(d.startsWith("confirm: "), d).toBe(true);
      expect(d).toContain(webLink);
    }
    expect(popups).toHaveLength(1);
    expect(await page.title()).toBe(title);
    await screenshot(page, "terminal-escapes", { dir: "review" });
  });
});
