import { describe, expect, it } from "vitest";
import { fromLocalInput, materialUrl, ruleFor, toLocalInput } from "../src/courses";
import type { SectionInfo } from "../src/protocol";

describe("course helpers", () => {
  it("round-trips a time through a datetime-local value, to the second", () => {
    const t = Date.UTC(2026, 11, 3, 9, 30, 15);
    expect(fromLocalInput(toLocalInput(t))).toBe(t);
    expect(toLocalInput(undefined)).toBe("");
    expect(fromLocalInput("")).toBeUndefined();
    expect(fromLocalInput("not a time")).toBeUndefined();
  });

  it("encodes each segment of a material path, keeping the slashes", () => {
    expect(materialUrl("cs101", "week 1/data #2.csv")).toBe("/api/courses/cs101/files/week%201/data%20%232.csv");
  });

  it("finds the rule that covers a file: its own or its folder's, not a name that only starts the same", () => {
    const s = {
      id: 1, folder: "w3", title: "W3", kind: "test", position: 1, published: true, state: "open",
      releases: [
        { path: "w3/test.py", published: true, close_at_ms: 5, state: "open" },
        { path: "w3/data", published: true, state: "open" },
      ],
    } as SectionInfo;
    expect(ruleFor(s, "w3/test.py")?.close_at_ms).toBe(5);
    expect(ruleFor(s, "w3/data/a.csv")?.path).toBe("w3/data");
    expect(ruleFor(s, "w3/data2/a.csv")).toBeUndefined();
    expect(ruleFor(s, "w3/test.pyc")).toBeUndefined();
  });
});
