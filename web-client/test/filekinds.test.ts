import { describe, expect, it } from "vitest";
import { fileKind } from "../src/filekinds";

describe("fileKind", () => {
  it("routes files to viewers", () => {
    expect(fileKind("main.py", "text/x-python")).toBe("text");
    expect(fileKind("Makefile")).toBe("text");
    expect(fileKind("data/grades.csv", "text/csv")).toBe("csv");
    expect(fileKind("img/plot.PNG")).toBe("image");
    expect(fileKind("logo.svg", "image/svg+xml")).toBe("image");
    expect(fileKind("notes.pdf")).toBe("pdf");
    expect(fileKind("archive.zip", "application/zip")).toBe("binary");
    expect(fileKind("model.bin", "application/octet-stream")).toBe("binary");
  });
});
