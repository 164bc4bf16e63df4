import { describe, expect, it } from "vitest";
import { copyPathFor, onFileChanged, resolveConflict, type Conflict } from "../src/conflict";
import { CampusError } from "../src/protocol";

/** A fake workspace with version history, like the server's. */
class FakeWs {
  files = new Map<string, { content: string; version: string; history: string[] }>();
  n = 0;
  put(path: string, content: string) {
    const v = `v${++this.n}`;
    this.files.set(path, { content, version: v, history: [] });
    return v;
  }
  write = async (path: string, content: string, base: string | null) => {
    const f = this.files.get(path);
    if (base === null) {
      if (f) throw new CampusError("conflict", "exists", undefined, f.version);
      return { version: this.put(path, content) };
    }
    if (!f || f.version !== base) throw new CampusError("conflict", "changed", undefined, f?.version);
    f.history.push(f.content);
    f.content = content;
    f.version = `v${++this.n}`;
    return { version: f.version };
  };
  exists = (p: string) => this.files.has(p);
  /** Every content the file ever had (current + history). */
  all(path: string) {
    const f = this.files.get(path)!;
    return [...f.history, f.content];
  }
}

function scenario() {
  const ws = new FakeWs();
  const theirsVersion = ws.put("dir/main.py", "theirs");
  const c: Conflict = { path: "dir/main.py", mine: "mine", theirs: "theirs", theirsVersion };
  return { ws, c };
}

describe("resolveConflict", () => {
  it("keep mine: mine is current, theirs is in the history", async () => {
    const { ws, c } = scenario();
    const r = await resolveConflict("mine", c, ws);
    expect(r.text).toBe("mine");
    expect(ws.files.get("dir/main.py")!.content).toBe("mine");
    expect(ws.all("dir/main.py")).toEqual(["theirs", "mine"]);
    expect(r.version).toBe(ws.files.get("dir/main.py")!.version);
  });

  it("take theirs: theirs is current, mine is kept in the history", async () => {
    const { ws, c } = scenario();
    const r = await resolveConflict("theirs", c, ws);
    expect(r.text).toBe("theirs");
    expect(ws.files.get("dir/main.py")!.content).toBe("theirs");
    expect(ws.all("dir/main.py")).toContain("mine");
    expect(r.version).toBe(ws.files.get("dir/main.py")!.version);
  });

  it("keep both: mine goes to a new file, theirs stays", async () => {
    const { ws, c } = scenario();
    ws.put("dir/main (my copy).py", "older copy");
    const r = await resolveConflict("both", c, ws);
    expect(r.copyPath).toBe("dir/main (my copy 2).py");
    expect(ws.files.get("dir/main (my copy 2).py")!.content).toBe("mine");
    expect(ws.files.get("dir/main.py")!.content).toBe("theirs");
    expect(r.text).toBe("theirs");
  });

  it("keep mine fails (nothing lost) if theirs moved again", async () => {
    const { ws, c } = scenario();
    await ws.write("dir/main.py", "theirs again", c.theirsVersion);
    await expect(resolveConflict("mine", c, ws)).rejects.toMatchObject({ code: "conflict" });
    expect(ws.files.get("dir/main.py")!.content).toBe("theirs again");
  });
});

describe("copyPathFor", () => {
  it("names copies next to the original", () => {
    expect(copyPathFor("a.py", () => false)).toBe("a (my copy).py");
    expect(copyPathFor("Makefile", () => false)).toBe("Makefile (my copy)");
    expect(copyPathFor(".env", () => false)).toBe(".env (my copy)");
  });
});

describe("onFileChanged", () => {
  const ev = (o: Partial<{ path: string; kind: string; version: string; from: string; by_connection: string }>) =>
    ({ type: "file_changed", path: "a.py", kind: "written", version: "v2", by_connection: "other", ...o }) as never;
  const tab = { path: "a.py", baseVersion: "v1", dirty: false };

  it("refreshes by itself without local edits", () => {
    expect(onFileChanged(tab, ev({}), "me")).toEqual({ kind: "reload" });
  });
  it("asks the user with local edits", () => {
    expect(onFileChanged({ ...tab, dirty: true }, ev({}), "me")).toEqual({ kind: "conflict" });
  });
  it("ignores own writes, known versions and other files", () => {
    expect(onFileChanged(tab, ev({ by_connection: "me" }), "me")).toEqual({ kind: "ignore" });
    expect(onFileChanged(tab, ev({ version: "v1" }), "me")).toEqual({ kind: "ignore" });
    expect(onFileChanged(tab, ev({ path: "b.py" }), "me")).toEqual({ kind: "ignore" });
  });
  it("follows renames and deletions", () => {
    expect(onFileChanged(tab, ev({ kind: "renamed", from: "a.py", path: "b.py" }), "me")).toEqual({ kind: "renamed", to: "b.py" });
    expect(onFileChanged(tab, ev({ kind: "deleted", version: undefined }), "me")).toEqual({ kind: "deleted" });
  });
  it("a restore elsewhere reloads", () => {
    expect(onFileChanged(tab, ev({ kind: "restored", version: "v5" }), "me")).toEqual({ kind: "reload" });
  });
});
