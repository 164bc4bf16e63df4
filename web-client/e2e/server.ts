// Starts a real `campus serve` (CAMPUS_BIN) on a free port with a fresh data
// dir and one student: the suite's shared server, and servers with their own
// limits for the tests that need them.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** A running server and the student it was created with. */
export interface Campus {
  baseUrl: string;
  username: string;
  password: string;
  dataDir: string;
  /** SIGTERM (SIGKILL after 15 s), then remove the data dir unless CAMPUS_E2E_KEEP is set. */
  stop: () => Promise<void>;
}

/** A port nobody listens on right now (bind :0, close, reuse). */
function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

async function waitReady(url: string, proc: ChildProcess, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    if (proc.exitCode !== null) throw new Error(`campus serve exited early with ${proc.exitCode}`);
    try {
      const r = await fetch(`${url}/readyz`);
      if (r.status === 200) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`campus serve at ${url} not ready within ${deadlineMs} ms`);
}

/** Start a server; `overrides` replace the suite's default environment (e.g. a low run limit). */
export async function startCampus(name: string, overrides: Record<string, string> = {}): Promise<Campus> {
  const bin = process.env.CAMPUS_BIN;
  if (!bin || !existsSync(bin)) throw new Error("set CAMPUS_BIN to the campus binary (target/debug/campus)");
  const webDir = resolve(dirname(fileURLToPath(import.meta.url)), "../dist");
  if (!existsSync(join(webDir, "index.html"))) throw new Error("web-client/dist is missing: run `npm run build` (scripts/e2e.sh does)");
  const dataDir = mkdtempSync(join(tmpdir(), `campus-e2e-${name}-`));
  const username = "alice";
  const password = "correct-horse-battery-e2e";
  const env = {
    ...process.env,
    CAMPUS_DATA_DIR: dataDir,
    CAMPUS_WEB_DIR: webDir,
    // The suite types into terminals and starts many runs in a few minutes.
    CAMPUS_RUNS_PER_MIN: "1000",
    CAMPUS_FILE_OPS_PER_MIN: "100000",
    CAMPUS_WS_MESSAGES_PER_MIN: "100000",
    CAMPUS_LOGIN_ATTEMPTS: "1000",
    // Servers sharing a host need their own cgroup.
    CAMPUS_CGROUP_GROUP: `campus-e2e-${name}-${process.pid}`,
    ...overrides,
  };
  const add = spawnSync(bin, ["user", "add", "--username", username, "--role", "student", "--password-stdin"], { env, input: password + "\n", encoding: "utf8" });
  if (add.status !== 0) throw new Error(`campus user add failed: ${add.stderr}`);
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const log = createWriteStream(join(dataDir, "serve.log"));
  const server = spawn(bin, ["serve"], { env: { ...env, CAMPUS_LISTEN: `127.0.0.1:${port}` }, stdio: ["ignore", "pipe", "pipe"] });
  server.stdout?.pipe(log);
  server.stderr?.pipe(log);
  const stop = async () => {
    if (server.exitCode === null && server.signalCode === null) {
      server.kill("SIGTERM");
      await new Promise<void>((r) => {
        const t = setTimeout(() => {
          server.kill("SIGKILL");
          r();
        }, 15_000);
        server.once("exit", () => {
          clearTimeout(t);
          r();
        });
      });
    }
    if (!process.env.CAMPUS_E2E_KEEP) rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await waitReady(baseUrl, server, 30_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return { baseUrl, username, password, dataDir, stop };
}
