import { describe, expect, it } from "vitest";
import { barHeights, dueIn, percentOf, scoreText } from "../src/grading";

describe("grading helpers", () => {
  it("words a countdown both ways", () => {
    const now = 1_000_000_000_000;
    expect(dueIn(now + 30_000, now)).toBe("due in less than a minute");
    expect(dueIn(now + 5 * 60_000, now)).toBe("due in 5 min");
    expect(dueIn(now + (3 * 60 + 7) * 60_000, now)).toBe("due in 3 h 7 min");
    expect(dueIn(now + 50 * 3_600_000, now)).toBe("due in 2 d 2 h");
    expect(dueIn(now - 3 * 3_600_000, now)).toBe("past due (3 h 0 min ago)");
  });
  it("shows scores and bars", () => {
    expect(scoreText(7, 10)).toBe("7 / 10");
    expect(scoreText(3.5, 10)).toBe("3.5 / 10");
    expect(scoreText(undefined, 10)).toBe("– / 10");
    expect(barHeights([0, 2, 4])).toEqual([0, 50, 100]);
    expect(barHeights([0, 0])).toEqual([0, 0]);
  });
  it("fills a progress bar by the share of the points", () => {
    expect(percentOf(6, 10)).toBe(60);
    expect(percentOf(undefined, 10)).toBe(0);
    expect(percentOf(3, 0)).toBe(0);
    expect(percentOf(12, 10)).toBe(100);
  });
});
