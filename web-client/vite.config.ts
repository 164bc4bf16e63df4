import { defineConfig } from "vitest/config";

// Built into web-client/dist and served by `campus serve` (CAMPUS_WEB_DIR).
// Hashed asset names let the server cache /assets/* for a long time while
// index.html stays no-cache.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 1200,
  },
  server: {
    // `npm run dev` against a local `campus serve` on :8080.
    proxy: {
      "/api": "http://127.0.0.1:8080",
      "/ws": { target: "ws://127.0.0.1:8080", ws: true },
    },
  },
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
  },
});
