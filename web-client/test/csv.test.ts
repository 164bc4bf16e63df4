import { describe, expect, it } from "vitest";
import { parseCsv } from "../src/csv";

describe("parseCsv", () => {
  it("handles quotes, doubled quotes, commas and CRLF", () => {
    const { rows } = parseCsv('name,note\r\n"Smith, J","said ""hi"""\r\nx,\n');
    expect(rows).toEqual([["name", "note"], ["Smith, J", 'said "hi"'], ["x", ""]]);
  });
  it("keeps newlines inside quotes and a last line without newline", () => {
    expect(parseCsv('a,"b\nc"\nd,e').rows).toEqual([["a", "b\nc"], ["d", "e"]]);
  });
  it("guesses semicolons", () => {
    expect(parseCsv("a;b;c\n1;2;3").rows).toEqual([["a", "b", "c"], ["1", "2", "3"]]);
  });
  it("truncates at maxRows", () => {
    const r = parseCsv("1\n2\n3\n4\n", 2);
    expect(r.rows).toEqual([["1"], ["2"]]);
    expect(r.truncated).toBe(true);
  });
});
