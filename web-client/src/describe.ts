// Plain-words texts for run endings, phases and refusals.
import type { ErrorCode, Limits, RunEnded, RunMode, Phase } from "./protocol";

/** Bytes as MiB, whole when exact ("128 MiB"), else one decimal ("130.4 MiB"). */
export function mib(bytes: number): string {
  const v = bytes / (1024 * 1024);
  return `${Number.isInteger(v) ? v : v.toFixed(1)} MiB`;
}

/** Milliseconds as seconds with one decimal ("0.4 s"), or minutes past 2 minutes. */
export function duration(ms: number): string {
  if (ms >= 120_000) {
    const min = ms / 60_000;
    return `${Number.isInteger(min) ? min : min.toFixed(1)} min`;
  }
  return `${(ms / 1000).toFixed(1)} s`;
}

const SIGNALS: Record<number, string> = {
  1: "SIGHUP",
  2: "SIGINT",
  6: "SIGABRT",
  9: "SIGKILL",
  11: "SIGSEGV",
  13: "SIGPIPE",
  15: "SIGTERM",
  24: "SIGXCPU",
  25: "SIGXFSZ",
};

/** How a run ended, in one sentence a student understands. */
export function describeEnding(e: RunEnded, limits?: Limits | null): string {
  const took = duration(e.duration_ms);
  switch (e.reason) {
    case "exited": {
      const code = e.exit_code ?? 0;
      // Non-zero is a failure by convention (Python exits 1 after a traceback).
      return code === 0 ? `Finished with exit code 0 in ${took}` : `Ended with an error (exit code ${code}) after ${took}`;
    }
    case "interrupted":
      return `Interrupted (Ctrl-C) after ${took}`;
    case "signaled": {
      const sig = e.signal ?? 0;
      const name = SIGNALS[sig] ? ` (${SIGNALS[sig]})` : "";
      return `Ended by signal ${sig}${name} after ${took}`;
    }
    case "stopped":
      return `Stopped by you after ${took}`;
    case "timeout": {
      const limit = limits ? ` (limit ${duration(limits.script_max_age_secs * 1000)} for a script, ${duration(limits.repl_max_age_secs * 1000)} for the REPL)` : "";
      return `Stopped: your program ran longer than the time limit${limit}`;
    }
    case "cpu_limit":
      return `Stopped: your program used more than ${duration(e.cpu_limit_ms)} of CPU time (limit ${duration(e.cpu_limit_ms)})`;
    case "memory_limit":
      return `Stopped: your program used more than ${mib(e.memory_limit_bytes)} of memory (limit ${mib(e.memory_limit_bytes)})`;
    case "output_limit":
      return `Stopped: your program wrote too much output (${mib(e.output_bytes)})`;
    case "disk_quota": {
      const limit = limits ? ` (limit ${mib(limits.workspace_quota_bytes)}, ${limits.workspace_max_entries} files and folders)` : "";
      return `Stopped: your workspace is full${limit}, so your program could not write to it. Delete files you no longer need, then run it again.`;
    }
    case "killed_by_admin":
      return `Stopped by an administrator after ${took}`;
    case "revoked":
      return `Stopped after ${took}: you were signed out (logged out, your password or role changed, or your account was disabled)`;
    case "material_changed":
      return `Stopped after ${took}: your teacher changed hidden material of this course. Run it again to see the course as it is now.`;
    case "abandoned":
      return "Stopped: nobody was connected to it for too long";
    case "server_shutdown":
      return "Stopped: the server was shutting down";
    case "start_failed":
      return `Could not start your program${e.message ? `: ${e.message}` : ""}`;
  }
}

/** How an outcome is coloured: success, failure, or neither (the student's own Ctrl-C or Stop). */
export type Outcome = "ok" | "error" | "neutral";

/** The colour of an ending: only exit code 0 is a success; Ctrl-C and Stop are the student's choice. */
export function endingOutcome(e: RunEnded): Outcome {
  switch (e.reason) {
    case "exited":
      return (e.exit_code ?? 0) === 0 ? "ok" : "error";
    case "interrupted":
    case "stopped":
    case "killed_by_admin":
    case "revoked":
    case "material_changed":
    case "abandoned":
    case "server_shutdown":
      return "neutral";
    default:
      return "error";
  }
}

/** Usage figures shown under the ending ("peak memory 12.3 MiB of 128 MiB · CPU 0.1 s of 30.0 s"). */
export function describeUsage(e: RunEnded): string {
  const parts: string[] = [];
  if (e.memory_limit_bytes > 0) parts.push(`peak memory ${mib(e.peak_memory_bytes)} of ${mib(e.memory_limit_bytes)}`);
  if (e.cpu_limit_ms > 0) parts.push(`CPU ${duration(e.cpu_ms)} of ${duration(e.cpu_limit_ms)}`);
  return parts.join(" · ");
}

/** The status-line text of a live run; `scriptError` is the exception a hybrid script raised. */
export function describeRunning(mode: RunMode, path: string, phase: Phase | null, scriptError?: string | null): string {
  if (mode === "repl") return "Python REPL running";
  if (mode === "hybrid" && phase === "repl") {
    switch (scriptError ?? null) {
      case null:
        return `${path} finished — REPL with its variables`;
      case "KeyboardInterrupt":
        return `${path} was interrupted (Ctrl-C) — REPL open with its variables`;
      case "SystemExit":
        return `${path} called exit() — REPL open with its variables`;
      default:
        return `${path} raised ${scriptError} — REPL open with its variables`;
    }
  }
  return `Running ${path}${mode === "hybrid" ? " (then REPL)" : ""}…`;
}

/** The colour of a live run: a hybrid script that raised an error is shown as one. */
export function runningOutcome(scriptError?: string | null): Outcome {
  if (!scriptError || scriptError === "KeyboardInterrupt" || scriptError === "SystemExit") return "neutral";
  return "error";
}

/** A refusal, in plain words; `seconds` left to wait is appended by the countdown. */
export function describeRefusal(code: ErrorCode | string, message: string, limits?: Limits | null): string {
  switch (code) {
    case "rate_limited":
      return "Too many requests in a short time.";
    case "busy":
      return "The server is busy running other programs.";
    case "quota_exceeded":
      return `Your workspace is full${limits ? ` (limit ${mib(limits.workspace_quota_bytes)}, ${limits.workspace_max_entries} files)` : ""}. Delete something and try again.`;
    case "too_large":
      return `That is too large${limits ? ` (limit ${mib(limits.max_file_bytes)} per file)` : ""}.`;
    case "invalid_path":
      return `That name is not allowed: ${message}`;
    case "not_found":
      return `Not found: ${message}`;
    case "forbidden":
    case "read_only":
      return `Not allowed: ${message}`;
    case "unauthorized":
      return "Your session has ended. Please log in again.";
    case "insufficient_storage":
      return "The server's disk is full, so this was not saved (nothing was changed). Your edits are kept in this browser; please tell your teacher.";
    case "disconnected":
      return "Not connected to the server — your edits are kept and saved when it is back.";
    case "internal":
      return `Something went wrong on the server. ${message}`;
    default:
      return message;
  }
}

/** "Try again in 12 s" for a countdown. */
export function retryText(msLeft: number): string {
  return msLeft > 0 ? `Try again in ${Math.ceil(msLeft / 1000)} s.` : "You can try again now.";
}
