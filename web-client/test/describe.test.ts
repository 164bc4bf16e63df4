import { describe, expect, it } from "vitest";
import { describeEnding, describeRefusal, describeRunning, describeUsage, duration, endingOutcome, mib, retryText, runningOutcome } from "../src/describe";
import type { RunEnded } from "../src/protocol";

const base: RunEnded = {
  run_id: "r",
  reason: "exited",
  exit_code: 0,
  cpu_ms: 120,
  cpu_limit_ms: 30_000,
  peak_memory_bytes: 12 * 1024 * 1024,
  memory_limit_bytes: 128 * 1024 * 1024,
  duration_ms: 412,
  output_bytes: 10,
  message: "",
};

describe("endings in plain words", () => {
  it("exit code and duration", () => {
    expect(describeEnding(base)).toBe("Finished with exit code 0 in 0.4 s");
    expect(describeEnding({ ...base, exit_code: 3, duration_ms: 2500 })).toBe("Ended with an error (exit code 3) after 2.5 s");
  });
  it("only exit code 0 is a success; Ctrl-C and Stop are neither", () => {
    expect(endingOutcome(base)).toBe("ok");
    expect(endingOutcome({ ...base, exit_code: 1 })).toBe("error");
    expect(endingOutcome({ ...base, reason: "interrupted", exit_code: undefined, signal: 2 })).toBe("neutral");
    expect(describeEnding({ ...base, reason: "interrupted", exit_code: undefined, signal: 2 })).toBe("Interrupted (Ctrl-C) after 0.4 s");
    expect(endingOutcome({ ...base, reason: "stopped" })).toBe("neutral");
    expect(endingOutcome({ ...base, reason: "signaled", signal: 11 })).toBe("error");
    expect(endingOutcome({ ...base, reason: "memory_limit" })).toBe("error");
  });
  it("a hybrid script that raised says so while the REPL is open", () => {
    expect(describeRunning("hybrid", "main.py", "repl")).toBe("main.py finished — REPL with its variables");
    expect(describeRunning("hybrid", "main.py", "repl", "ZeroDivisionError")).toBe("main.py raised ZeroDivisionError — REPL open with its variables");
    expect(runningOutcome("ZeroDivisionError")).toBe("error");
    expect(describeRunning("hybrid", "main.py", "repl", "KeyboardInterrupt")).toBe("main.py was interrupted (Ctrl-C) — REPL open with its variables");
    expect(runningOutcome("KeyboardInterrupt")).toBe("neutral");
    expect(runningOutcome(null)).toBe("neutral");
    expect(describeRunning("hybrid", "main.py", "script", "ValueError")).toBe("Running main.py (then REPL)…");
  });
  it("memory limit names the limit", () => {
    expect(describeEnding({ ...base, reason: "memory_limit", exit_code: undefined })).toBe(
      "Stopped: your program used more than 128 MiB of memory (limit 128 MiB)",
    );
  });
  it("cpu, stop, signal, output, timeout", () => {
    expect(describeEnding({ ...base, reason: "cpu_limit" })).toBe("Stopped: your program used more than 30.0 s of CPU time (limit 30.0 s)");
    expect(describeEnding({ ...base, reason: "stopped", duration_ms: 3000 })).toBe("Stopped by you after 3.0 s");
    expect(describeEnding({ ...base, reason: "signaled", signal: 11 })).toBe("Ended by signal 11 (SIGSEGV) after 0.4 s");
    expect(describeEnding({ ...base, reason: "output_limit", output_bytes: 50 * 1024 * 1024 })).toBe(
      "Stopped: your program wrote too much output (50 MiB)",
    );
    expect(describeEnding({ ...base, reason: "timeout" })).toContain("longer than the time limit");
    expect(describeEnding({ ...base, reason: "disk_quota", exit_code: undefined })).toBe(
      "Stopped: your workspace is full, so your program could not write to it. Delete files you no longer need, then run it again.",
    );
    const limits = { workspace_quota_bytes: 150 * 1024 * 1024, workspace_max_entries: 5000 } as Parameters<typeof describeEnding>[1];
    expect(describeEnding({ ...base, reason: "disk_quota" }, limits)).toContain("(limit 150 MiB, 5000 files and folders)");
    expect(endingOutcome({ ...base, reason: "disk_quota" })).toBe("error");
    expect(describeEnding({ ...base, reason: "start_failed", message: "no sandbox" })).toBe("Could not start your program: no sandbox");
  });
  it("usage figures", () => {
    expect(describeUsage(base)).toBe("peak memory 12 MiB of 128 MiB · CPU 0.1 s of 30.0 s");
  });
  it("units", () => {
    expect(mib(1536 * 1024)).toBe("1.5 MiB");
    expect(duration(180_000)).toBe("3 min");
  });
});

describe("refusals", () => {
  it("explains and counts down", () => {
    expect(describeRefusal("rate_limited", "x")).toBe("Too many requests in a short time.");
    expect(describeRefusal("busy", "x")).toContain("busy");
    expect(retryText(1200)).toBe("Try again in 2 s.");
    expect(retryText(0)).toBe("You can try again now.");
    expect(describeRefusal("insufficient_storage", "x")).toMatch(/^The server's disk is full, so this was not saved/);
  });
});
