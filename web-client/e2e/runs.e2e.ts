// Runs in the real sandbox: input(), hybrid → REPL, Stop, memory limit,
// reconnect with exact replay, plus keystroke latency and the output flood.
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFile, launch, login, recordPerf, runAction, screenshot, terminalText, waitEnding, waitRunning, waitTerminal } from "./helpers";

let context: BrowserContext;
let close: () => Promise<void>;
let page: Page;

beforeAll(async () => {
  ({ context, close } = await launch());
  page = await context.newPage();
  await login(page);
});
afterAll(async () => {
  await close();
});

/** Type into the terminal like a student (focus it, then real key events). */
async function typeInTerminal(p: Page, text: string): Promise<void> {
  await p.locator(".terminal .xterm").click();
  await p.keyboard.type(text);
}

describe("runs", () => {
  it("answers input() from the terminal", async () => {
    await createFile(page, "ask.py", 'name = input("Your name? ")\nprint(f"Hello, {name}!")\n');
    await runAction(page, "run");
    await waitTerminal(page, /Your name\? $/m);
    await typeInTerminal(page, "Ada");
    await page.keyboard.press("Enter");
    await waitTerminal(page, /Hello, Ada!/);
    await waitEnding(page, /Finished with exit code 0/);
  });

  it("hybrid: the REPL sees the script's variables", async () => {
    await createFile(page, "hybrid.py", 'x = 21\ndef double(n):\n    return n * 2\nprint("script done")\n');
    await runAction(page, "hybrid");
    await waitTerminal(page, /script done/);
    await page.locator('.phase-badge[data-phase="repl"]:not([hidden])').waitFor({ timeout: 20_000 });
    await waitTerminal(page, />>> $/m);
    await typeInTerminal(page, "double(x)");
    await page.keyboard.press("Enter");
    await waitTerminal(page, /^42$/m);
    await runAction(page, "stop");
    await waitEnding(page, /Stopped by you/);
  });

  it("Stop ends an infinite loop and says so", async () => {
    await createFile(page, "loop.py", 'print("looping", flush=True)\nwhile True:\n    pass\n');
    await runAction(page, "run");
    await waitTerminal(page, /looping/);
    await runAction(page, "stop");
    const ending = await waitEnding(page, /Stopped by you after \d+\.\d s/);
    expect(ending).toMatch(/^Stopped by you/);
  });

  it("Ctrl-C in the terminal interrupts the program", async () => {
    await createFile(page, "sleepy.py", 'import time\nprint("sleeping", flush=True)\ntime.sleep(600)\n');
    await runAction(page, "hybrid");
    await waitTerminal(page, /sleeping/);
    await page.locator(".terminal .xterm").click();
    await page.keyboard.press("Control+c");
    await waitTerminal(page, /KeyboardInterrupt/);
    await waitTerminal(page, />>> $/m);
    await runAction(page, "stop");
    await waitEnding(page, /Stopped by you/);
  });

  it("a memory bomb ends with the memory limit in plain words", async () => {
    await createFile(page, "bomb.py", 'hog = []\nwhile True:\n    hog.append(" " * 10_000_000)\n');
    await runAction(page, "run");
    const ending = await waitEnding(page, /memory/, 60_000);
    expect(ending).toMatch(/^Stopped: your program used more than \d+ MiB of memory \(limit \d+ MiB\)$/);
    await screenshot(page, "memory-ending");
  });

  it("closing the socket mid-run and reconnecting replays the missed output exactly once", async () => {
    await createFile(page, "ticks.py", 'import time\nfor i in range(80):\n    print(f"tick {i}", flush=True)\n    time.sleep(0.05)\nprint("all ticks done")\n');
    await runAction(page, "run");
    await waitTerminal(page, /tick 5\b/);
    const before = await page.evaluate(() => {
      const w = window as unknown as { __attached: unknown[] };
      w.__attached = [];
      window.campus!.conn.on("attached", (m) => w.__attached.push(m));
      const seq = window.campus!.conn.cursor.next;
      window.campus!.conn.dropForTest(1500);
      return seq;
    });
    await page.locator(".conn-banner:not([hidden])").waitFor();
    await page.waitForFunction(() => (window as unknown as { __attached: unknown[] }).__attached.length > 0, null, { timeout: 20_000 });
    const attached = (await page.evaluate(() => (window as unknown as { __attached: unknown[] }).__attached[0])) as { replay_from: number; next_seq: number; dropped_bytes: number };
    expect(attached.replay_from).toBe(before);
    expect(attached.next_seq).toBeGreaterThan(before); // output was produced while we were away
    expect(attached.dropped_bytes).toBe(0);
    const text = await waitTerminal(page, /all ticks done/);
    for (let i = 0; i < 80; i++) {
      expect(text.match(new RegExp(`^tick ${i}$`, "gm"))?.length, `tick ${i}`).toBe(1);
    }
    await waitEnding(page, /Finished with exit code 0/);
  });

  it("measures keystroke→screen latency in a running REPL", async () => {
    await runAction(page, "repl");
    await waitRunning(page);
    await waitTerminal(page, />>> $/m);
    await page.locator(".terminal .xterm").click();
    await page.evaluate(() => {
      performance.clearMeasures("campus-key-to-screen");
      performance.clearMeasures("campus-key-to-output");
    });
    for (let i = 0; i < 40; i++) {
      await page.keyboard.type(String.fromCharCode(97 + (i % 26)));
      await page.waitForFunction((n) => performance.getEntriesByName("campus-key-to-screen").length >= n, i + 1, { timeout: 5000 });
    }
    const read = (name: string) => page.evaluate((n) => performance.getEntriesByName(n).map((e) => e.duration).sort((x, y) => x - y), name);
    const samples = await read("campus-key-to-screen");
    const echo = await read("campus-key-to-output");
    const pct = (xs: number[], q: number) => Math.round(xs[Math.min(xs.length - 1, Math.floor(q * xs.length))] * 10) / 10;
    recordPerf("keystroke_to_screen_ms", {
      p50: pct(samples, 0.5),
      p95: pct(samples, 0.95),
      max: pct(samples, 1),
      samples: samples.length,
      note: "key event in xterm → echo painted (next animation frame after xterm parsed it)",
    });
    recordPerf("keystroke_to_echo_arrival_ms", { p50: pct(echo, 0.5), p95: pct(echo, 0.95), max: pct(echo, 1), samples: echo.length, note: "key event → echo bytes received over the WebSocket" });
    expect(samples.length).toBe(40);
    await runAction(page, "stop");
    await waitEnding(page, /Stopped by you/);
  });

  it("a 200,000-line flood streams while the page stays responsive", async () => {
    await createFile(page, "flood.py", "for i in range(200_000):\n    print(i)\n");
    await page.evaluate(() => {
      const w = window as unknown as { __long: number[]; __longAt: number[] };
      w.__long = [];
      w.__longAt = [];
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
          w.__long.push(e.duration);
          w.__longAt.push(e.startTime);
        }
      }).observe({ type: "longtask" });
    });
    const started = Date.now();
    const clickedAt = await page.evaluate(() => Math.round(performance.now()));
    await runAction(page, "run");
    await waitRunning(page).catch(() => undefined);
    // While it streams: the page answers and the terminal scrolls.
    const probes: number[] = [];
    let scrolled = false;
    while (Date.now() - started < 120_000) {
      const t0 = Date.now();
      const r = await page.evaluate(() => {
        const term = document.querySelector(".runbar")?.getAttribute("data-running");
        return { running: term === "true" };
      });
      probes.push(Date.now() - t0);
      if (!scrolled) {
        // Scroll with the mouse wheel while it streams.
        await page.mouse.move(900, 700);
        await page.mouse.wheel(0, -600);
        scrolled = true;
      }
      if (!r.running) break;
      await page.waitForTimeout(100);
    }
    await waitEnding(page, /Finished with exit code 0/, 120_000);
    const elapsed = Date.now() - started;
    const text = await terminalText(page);
    expect(text).toMatch(/^199999$/m);
    const long = await page.evaluate(() => [...(window as unknown as { __long: number[] }).__long]);
    const longAt = await page.evaluate(() => [...(window as unknown as { __longAt: number[] }).__longAt]);
    // The instrument works: a deliberate 150 ms block is seen as a long task.
    await page.evaluate(() => {
      setTimeout(() => {
        const t = performance.now();
        while (performance.now() - t < 150) {
          /* block the main thread in a task of its own */
        }
      }, 0);
    });
    await expect.poll(() => page.evaluate(() => (window as unknown as { __long: number[] }).__long.length)).toBeGreaterThan(long.length);
    // The terminal is still scrollable after the flood (up 500 lines, then back down).
    await page.evaluate(() => window.campus!.terminalScroll(1_000_000));
    const up = await page.evaluate(() => window.campus!.terminalScroll(-500));
    expect(up.viewportY).toBe(up.baseY - 500);
    const down = await page.evaluate(() => window.campus!.terminalScroll(500));
    expect(down.viewportY).toBe(down.baseY);
    recordPerf("flood_200k_lines", {
      run_to_finished_ms: elapsed,
      long_tasks: long.length,
      longest_task_ms: Math.round(Math.max(0, ...long)),
      tasks_over_100ms: long.filter((d) => d > 100).length,
      long_task_ms_after_click: longAt.map((t, i) => `${Math.round(t - clickedAt)}ms: ${Math.round(long[i])}ms`),
      page_probe_roundtrip_max_ms: Math.max(0, ...probes),
      page_probe_roundtrip_p50_ms: probes.sort((x, y) => x - y)[Math.floor(probes.length / 2)] ?? 0,
    });
  });
});
