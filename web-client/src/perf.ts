// Performance marks read by the end-to-end suite (web-client/perf-results.json).

/** Mark that the IDE is interactive (socket open, editor and terminal ready). */
export function markInteractive(): void {
  if (performance.getEntriesByName("campus-interactive").length > 0) return;
  performance.mark("campus-interactive");
}

let pendingKeyAt: number | null = null;

/** A key was typed into the terminal. */
export function keySent(): void {
  if (pendingKeyAt === null) pendingKeyAt = performance.now();
}

/** Output arrived from the server (before xterm parses and paints it). */
export function outputArrived(): void {
  if (pendingKeyAt === null) return;
  performance.measure("campus-key-to-output", { start: pendingKeyAt, end: performance.now() });
}

/**
 * Output was written to the terminal; after the next frame is painted the
 * keystroke→screen latency is recorded as a `campus-key-to-screen` measure.
 */
export function outputRendered(): void {
  if (pendingKeyAt === null) return;
  const start = pendingKeyAt;
  pendingKeyAt = null;
  requestAnimationFrame(() => {
    performance.measure("campus-key-to-screen", { start, end: performance.now() });
  });
}
