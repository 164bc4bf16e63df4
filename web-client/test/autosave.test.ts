import { describe, expect, it } from "vitest";
import { Autosave, DISK_FULL_RETRY_MS, readDraft, type SaveState } from "../src/autosave";
import { CampusError } from "../src/protocol";
import { ManualClock } from "./fakes";

class MemStore {
  m = new Map<string, string>();
  getItem(k: string) {
    return this.m.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    this.m.set(k, v);
  }
  removeItem(k: string) {
    this.m.delete(k);
  }
}

/** A fake server file with versions, refusing stale writes like the real one. */
class FakeFile {
  version = "v1";
  content = "old";
  n = 1;
  calls: { content: string; base: string | null }[] = [];
  failWith: CampusError | null = null;
  save = async (_path: string, content: string, base: string | null) => {
    this.calls.push({ content, base });
    if (this.failWith) {
      const e = this.failWith;
      this.failWith = null;
      throw e;
    }
    if (base !== this.version) throw new CampusError("conflict", "changed", undefined, this.version);
    this.content = content;
    this.version = `v${++this.n}`;
    return { version: this.version };
  };
}

const flush = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

function setup() {
  const clock = new ManualClock();
  const store = new MemStore();
  const file = new FakeFile();
  const states: SaveState[] = [];
  const conflicts: unknown[] = [];
  const a = new Autosave({
    path: "main.py",
    text: "old",
    baseVersion: "v1",
    save: file.save,
    store,
    storePrefix: "d.",
    timers: clock,
    onState: (s) => states.push(s),
    onConflict: (c) => conflicts.push(c),
  });
  return { a, clock, store, file, states, conflicts };
}

describe("Autosave", () => {
  it("debounces: saves once, 1 s after typing stops, with the base version", async () => {
    const { a, clock, file } = setup();
    a.edit("o");
    clock.advance(600);
    a.edit("ol");
    clock.advance(600);
    a.edit("old!");
    clock.advance(999);
    expect(file.calls).toEqual([]);
    clock.advance(1);
    await flush();
    expect(file.calls).toEqual([{ content: "old!", base: "v1" }]);
    expect(a.baseVersion).toBe("v2");
    expect(a.state).toBe("saved");
  });

  it("each save carries the version returned by the previous one", async () => {
    const { a, clock, file } = setup();
    a.edit("one");
    clock.advance(1000);
    await flush();
    a.edit("two");
    await a.saveNow();
    expect(file.calls.map((c) => c.base)).toEqual(["v1", "v2"]);
    expect(file.content).toBe("two");
  });

  it("Ctrl-S saves immediately and cancels the pending debounce", async () => {
    const { a, clock, file } = setup();
    a.edit("typed");
    await a.saveNow();
    expect(file.calls.length).toBe(1);
    clock.advance(5000);
    await flush();
    expect(file.calls.length).toBe(1);
  });

  it("keeps unsaved edits in the store until the server has them", async () => {
    const { a, store, file, clock } = setup();
    file.failWith = new CampusError("disconnected", "offline");
    a.edit("precious");
    expect(readDraft(store, "d.", "main.py")).toMatchObject({ text: "precious", baseVersion: "v1" });
    clock.advance(1000);
    await flush();
    expect(a.state).toBe("offline");
    expect(readDraft(store, "d.", "main.py")?.text).toBe("precious");
    a.connectionReady();
    clock.advance(0);
    await flush();
    expect(file.content).toBe("precious");
    expect(readDraft(store, "d.", "main.py")).toBeNull();
    expect(a.state).toBe("saved");
  });

  it("a draft from before a reload is saved with its own base version: a change elsewhere becomes a conflict", async () => {
    const { a, clock, file, conflicts } = setup();
    file.version = "v7"; // someone else saved meanwhile
    a.adoptDraft({ text: "from reload", baseVersion: "v1", savedAt: 0 });
    clock.advance(0);
    await flush();
    expect(file.calls).toEqual([{ content: "from reload", base: "v1" }]);
    expect(file.content).toBe("old"); // nothing overwritten
    expect(a.state).toBe("conflict");
    expect(conflicts).toEqual([{ path: "main.py", mine: "from reload", baseVersion: "v1", currentVersion: "v7" }]);
  });

  it("does not autosave during a conflict, and resumes after rebase", async () => {
    const { a, clock, file } = setup();
    file.version = "v9";
    a.edit("mine");
    clock.advance(1000);
    await flush();
    expect(a.state).toBe("conflict");
    a.edit("mine 2");
    clock.advance(5000);
    await flush();
    expect(file.calls.length).toBe(1);
    a.rebase("theirs", "v9", "mine 2");
    clock.advance(1000);
    await flush();
    expect(file.calls[1]).toEqual({ content: "mine 2", base: "v9" });
    expect(file.content).toBe("mine 2");
  });

  it("typing during a save saves again afterwards", async () => {
    const { a, clock, file } = setup();
    a.edit("first");
    const p = a.saveNow();
    a.edit("first and more");
    await p;
    expect(a.state).toBe("dirty");
    clock.advance(1000);
    await flush();
    expect(file.calls.map((c) => c.content)).toEqual(["first", "first and more"]);
    expect(file.calls[1].base).toBe("v2");
  });

  it("retries after retry_after_ms when rate limited", async () => {
    const { a, clock, file } = setup();
    file.failWith = new CampusError("rate_limited", "slow", 3000);
    a.edit("x");
    await a.saveNow();
    expect(a.state).toBe("error");
    clock.advance(2999);
    await flush();
    expect(file.calls.length).toBe(1);
    clock.advance(1);
    await flush();
    expect(file.calls.length).toBe(2);
    expect(file.content).toBe("x");
  });

  it("a full disk keeps the draft and tries again later", async () => {
    const { a, clock, file, store } = setup();
    file.failWith = new CampusError("insufficient_storage", "the server's disk is full");
    a.edit("precious");
    await a.saveNow();
    expect(a.state).toBe("error");
    expect(readDraft(store, "d.", "main.py")?.text).toBe("precious");
    clock.advance(DISK_FULL_RETRY_MS - 1);
    await flush();
    expect(file.calls.length).toBe(1);
    clock.advance(1);
    await flush();
    expect(file.calls.length).toBe(2);
    expect(file.content).toBe("precious");
    expect(a.state).toBe("saved");
  });

  it("typing back to the saved text is clean again", () => {
    const { a, store } = setup();
    a.edit("olx");
    expect(a.dirty).toBe(true);
    a.edit("old");
    expect(a.dirty).toBe(false);
    expect(a.state).toBe("saved");
    expect(readDraft(store, "d.", "main.py")).toBeNull();
  });
});
