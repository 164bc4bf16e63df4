import { describe, expect, it } from "vitest";
import { fromLocalInput, materialUrl, toLocalInput } from "../src/courses";

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
});
