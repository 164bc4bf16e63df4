import { describe, expect, it } from "vitest";
import { bytesText, chartPoints, countsText, durationText, filterSessions, percent, sortSessions } from "../src/admin";
import type { AdminSessionInfo } from "../src/protocol";

function session(username: string, over: Partial<AdminSessionInfo> = {}): AdminSessionInfo {
  return {
    user_id: username.length,
    username,
    state: "idle",
    running: false,
    run_age_ms: 0,
    cpu_percent: 0,
    cpu_ms: 0,
    memory_bytes: 0,
    peak_memory_bytes: 0,
    idle_ms: 0,
    detached_ms: 0,
    output_bytes: 0,
    attached: 1,
    clients: 1,
    ...over,
  };
}

describe("admin helpers", () => {
  const list = [
    session("ann", { state: "script", running: true, path: "hold.py", memory_bytes: 64 << 20, cpu_percent: 97 }),
    session("bob", { idle_ms: 65_000 }),
    session("cat", { state: "detached", running: true, path: "loop.py", memory_bytes: 8 << 20 }),
    session("dan", { state: "repl", running: true, memory_bytes: 64 << 20 }),
  ];
  it("filters by text (user or program) and state; running includes detached runs", () => {
    expect(filterSessions(list, "", "all").length).toBe(4);
    expect(filterSessions(list, "", "running").map((s) => s.username)).toEqual(["ann", "cat", "dan"]);
    expect(filterSessions(list, "", "idle").map((s) => s.username)).toEqual(["bob"]);
    expect(filterSessions(list, "LOOP", "all").map((s) => s.username)).toEqual(["cat"]);
    expect(filterSessions(list, " an", "all").map((s) => s.username)).toEqual(["ann", "dan"]);
    expect(filterSessions(list, "ann", "idle")).toEqual([]);
  });
  it("sorts either way, ties by username", () => {
    expect(sortSessions(list, "memory_bytes", true).map((s) => s.username)).toEqual(["ann", "dan", "cat", "bob"]);
    expect(sortSessions(list, "memory_bytes", false).map((s) => s.username)).toEqual(["bob", "cat", "ann", "dan"]);
    expect(sortSessions(list, "path", false).map((s) => s.username)).toEqual(["bob", "dan", "ann", "cat"]);
    expect(sortSessions(list, "username", true).map((s) => s.username)).toEqual(["dan", "cat", "bob", "ann"]);
    expect(list.map((s) => s.username)).toEqual(["ann", "bob", "cat", "dan"]);
  });
  it("words sizes, durations and counts", () => {
    expect(bytesText(0)).toBe("0 B");
    expect(bytesText(812 * 1024)).toBe("812 KiB");
    expect(bytesText(64 * 1024 * 1024)).toBe("64.0 MiB");
    expect(bytesText(1.5 * 1024 ** 3)).toBe("1.5 GiB");
    expect(durationText(999)).toBe("0 s");
    expect(durationText(42_000)).toBe("42 s");
    expect(durationText(200_000)).toBe("3 min 20 s");
    expect(durationText(7_500_000)).toBe("2 h 5 min");
    expect(durationText(3_600_000)).toBe("1 h");
    expect(countsText({})).toBe("none");
    expect(countsText({ exited: 2, killed_by_admin: 3, timeout: 0 })).toBe("killed by admin 3, exited 2");
  });
  it("draws chart lines with 0 at the bottom", () => {
    expect(chartPoints([], 100, 20)).toBe("");
    expect(chartPoints([0, 5, 10], 100, 20)).toBe("0,20 50,12 100,4");
    expect(chartPoints([0, 0], 100, 20)).toBe("0,20 100,20");
    expect(chartPoints([3], 100, 20)).toBe("100,4");
    expect(percent(32, 128)).toBe(25);
    expect(percent(300, 128)).toBe(100);
    expect(percent(5, 0)).toBe(0);
  });
});
