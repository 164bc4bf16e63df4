import { defineConfig } from "vitest/config";

// End-to-end suite: a real `campus serve` (CAMPUS_BIN) and headless Chromium
// driven by playwright-core. Files run one after another: they share one server.
export default defineConfig({
  test: {
    include: ["e2e/**/*.e2e.ts"],
    environment: "node",
    globalSetup: ["e2e/global-setup.ts"],
    fileParallelism: false,
    testTimeout: 90_000,
    // A login hashes with argon2 in a debug build: on a loaded 2-core machine
    // the default 1 s of `expect.poll` is not enough.
    expect: { poll: { timeout: 15_000 } },
    hookTimeout: 120_000,
    reporters: ["verbose"],
  },
});
