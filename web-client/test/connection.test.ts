import { beforeEach, describe, expect, it } from "vitest";
import { Connection, backoffDelay, type ConnState } from "../src/connection";
import { CampusError } from "../src/protocol";
import { FakeSocket, ManualClock } from "./fakes";

function setup(random = () => 0.5, pingIntervalMs = 0) {
  FakeSocket.all = [];
  const clock = new ManualClock();
  const conn = new Connection({
    url: "ws://x/ws",
    createSocket: (u) => new FakeSocket(u),
    timers: clock,
    random,
    backoff: { baseMs: 500, maxMs: 8000 },
    ackEveryBytes: 10,
    ackDelayMs: 50,
    pingIntervalMs,
  });
  const states: ConnState[] = [];
  conn.on("state", (s) => states.push(s));
  const out: string[] = [];
  conn.on("output", (o) => out.push(new TextDecoder().decode(o.bytes)));
  conn.start();
  return { conn, clock, states, out, sock: () => FakeSocket.all[FakeSocket.all.length - 1] };
}

describe("backoffDelay", () => {
  it("grows exponentially, is capped, and jitters within [cap/2, cap]", () => {
    const o = { baseMs: 500, maxMs: 8000 };
    expect(backoffDelay(0, o, () => 0)).toBe(250);
    expect(backoffDelay(0, o, () => 1)).toBe(500);
    expect(backoffDelay(3, o, () => 0)).toBe(2000);
    expect(backoffDelay(3, o, () => 1)).toBe(4000);
    expect(backoffDelay(10, o, () => 1)).toBe(8000);
    expect(backoffDelay(100, o, () => 0)).toBe(4000);
  });
  it("spreads clients: different random draws give different delays", () => {
    const o = { baseMs: 500, maxMs: 8000 };
    const ds = new Set([0.1, 0.3, 0.6, 0.9].map((r) => backoffDelay(4, o, () => r)));
    expect(ds.size).toBe(4);
  });
});

describe("Connection", () => {
  beforeEach(() => {
    FakeSocket.all = [];
  });

  it("attaches from offset 0 after hello, and matches replies by id", async () => {
    const { conn, sock } = setup();
    sock().open();
    expect(conn.state.kind).toBe("open");
    expect(sock().sentOf("attach")).toEqual([{ type: "attach", since_seq: 0, id: 1 }]);
    const p = conn.request({ type: "read", path: "main.py" });
    const req = sock().sentOf("read")[0];
    expect(req.id).toBe(2);
    // an unrelated event in between is not a reply
    sock().json({ type: "file_changed", path: "x", kind: "written", by_connection: "c2" });
    sock().json({ type: "file", id: 2, path: "main.py", version: "v1", size: 1, mime: "text/x-python", encoding: "utf8", content: "x" });
    const reply = await p;
    expect(reply.type).toBe("file");
  });

  it("rejects an error reply as CampusError with its hints", async () => {
    const { conn, sock } = setup();
    sock().open();
    const p = conn.request({ type: "run", path: "a.py", mode: "script" });
    const id = sock().sentOf("run")[0].id;
    sock().json({ type: "error", id, code: "rate_limited", message: "slow", retry_after_ms: 3000 });
    await expect(p).rejects.toMatchObject({ code: "rate_limited", retryAfterMs: 3000 });
  });

  it("rejects pending requests when the socket drops, then reconnects with backoff", async () => {
    const { conn, sock, clock, states } = setup(() => 0);
    sock().open();
    const p = conn.request({ type: "list", path: "", recursive: true });
    sock().serverClose(1006);
    await expect(p).rejects.toBeInstanceOf(CampusError);
    await expect(p).rejects.toMatchObject({ code: "disconnected" });
    const s = states[states.length - 1];
    expect(s.kind).toBe("reconnecting");
    expect(FakeSocket.all.length).toBe(1);
    clock.advance(249);
    expect(FakeSocket.all.length).toBe(1);
    clock.advance(1);
    expect(FakeSocket.all.length).toBe(2);
    // a second failure waits longer (attempt 1: cap 1000, jitter 0 → 500)
    sock().serverClose(1006);
    clock.advance(499);
    expect(FakeSocket.all.length).toBe(2);
    clock.advance(1);
    expect(FakeSocket.all.length).toBe(3);
    // success resets the backoff
    sock().open();
    sock().serverClose(1006);
    clock.advance(250);
    expect(FakeSocket.all.length).toBe(4);
  });

  it("re-attaches with since_seq after a reconnect and writes replayed output exactly once", () => {
    const { sock, clock, out } = setup(() => 0);
    sock().open();
    sock().output(0, "line 1\n");
    sock().output(7, "line 2\n");
    sock().serverClose(1006);
    clock.advance(250);
    sock().open("c2");
    const attach = sock().sentOf("attach")[0];
    expect(attach.since_seq).toBe(14);
    sock().json({ type: "attached", id: attach.id, running: true, replay_from: 7, next_seq: 28, dropped_bytes: 0 });
    // a server that replays a little too much is trimmed
    sock().output(7, "line 2\nline 3\n");
    sock().output(21, "line 4\n");
    expect(out.join("")).toBe("line 1\nline 2\nline 3\nline 4\n");
  });

  it("batches acks by size and by delay, and re-acks on a new socket", () => {
    const { conn, sock, clock } = setup();
    sock().open();
    conn.consumed(4);
    expect(sock().sentOf("ack")).toEqual([]);
    clock.advance(50);
    expect(sock().sentOf("ack")).toEqual([{ type: "ack", seq: 4 }]);
    conn.consumed(20);
    expect(sock().sentOf("ack")).toEqual([{ type: "ack", seq: 4 }, { type: "ack", seq: 20 }]);
    conn.consumed(20); // not moving: nothing
    clock.advance(100);
    expect(sock().sentOf("ack").length).toBe(2);
  });

  it("closes for good on 4001 (unauthorized) instead of retrying", () => {
    const { conn, sock, clock } = setup();
    sock().open();
    sock().serverClose(4001);
    clock.advance(60_000);
    expect(conn.state).toEqual({ kind: "closed", reason: "unauthorized" });
    expect(FakeSocket.all.length).toBe(1);
  });

  it("closes for good on 4013 (signed out) and keeps the server's reason to show", () => {
    const { conn, sock, clock } = setup();
    sock().open();
    sock().serverClose(4013, "Signed out: the password of this account was changed. Log in again.");
    clock.advance(60_000);
    expect(conn.state).toEqual({
      kind: "closed",
      reason: "revoked",
      detail: "Signed out: the password of this account was changed. Log in again.",
    });
    expect(FakeSocket.all.length).toBe(1);
  });

  it("stops on 4012 (replaced by a newer connection of the account) and reconnects only when asked", () => {
    const { conn, sock, clock } = setup();
    sock().open();
    sock().serverClose(4012);
    clock.advance(60_000);
    expect(conn.state).toEqual({ kind: "closed", reason: "replaced" });
    expect(FakeSocket.all.length).toBe(1);
    conn.start();
    expect(FakeSocket.all.length).toBe(2);
    sock().open("c2");
    expect(conn.state).toEqual({ kind: "open" });
  });

  it("asks HTTP whether we are logged in when the upgrade fails before hello", async () => {
    FakeSocket.all = [];
    const clock = new ManualClock();
    const conn = new Connection({ url: "ws://x/ws", createSocket: (u) => new FakeSocket(u), timers: clock, checkAuth: async () => false });
    conn.start();
    FakeSocket.all[0].serverClose(1006);
    await Promise.resolve();
    await Promise.resolve();
    expect(conn.state).toEqual({ kind: "closed", reason: "unauthorized" });
  });

  it("honours the server's shutdown reconnect hint", () => {
    const { sock, clock } = setup(() => 0);
    sock().open();
    sock().json({ type: "shutdown", message: "bye", reconnect_after_ms: 5000 });
    clock.advance(4999);
    expect(FakeSocket.all.length).toBe(1);
    clock.advance(1);
    expect(FakeSocket.all.length).toBe(2);
  });

  it("a request times out if no reply comes", async () => {
    const { conn, sock, clock } = setup();
    sock().open();
    const p = conn.request({ type: "ping" });
    clock.advance(30_000);
    await expect(p).rejects.toMatchObject({ code: "timeout" });
  });

  it("refuses to send while disconnected", async () => {
    const { conn, sock } = setup();
    expect(conn.send({ type: "input", data: "x" })).toBe(false);
    await expect(conn.request({ type: "ping" })).rejects.toMatchObject({ code: "disconnected" });
    sock().open();
    expect(conn.send({ type: "input", data: "x" })).toBe(true);
  });

  it("notices a socket that went silent without a close, within two ping intervals, and reconnects", () => {
    const { conn, sock, clock, states, out } = setup(() => 0, 5000);
    sock().open();
    sock().output(0, "tick 1\n");
    const dead = sock();
    clock.advance(5000);
    expect(dead.sentOf("ping")).toEqual([{ type: "ping" }]);
    // The network path is gone: nothing arrives, nothing closes.
    clock.advance(4999);
    expect(conn.state.kind).toBe("open");
    clock.advance(1);
    expect(conn.state.kind).toBe("reconnecting");
    expect(states.some((s) => s.kind === "reconnecting")).toBe(true);
    expect(dead.closedWith).toBe(4000);
    // A late frame from the abandoned socket is ignored.
    dead.output(7, "stale\n");
    clock.advance(250);
    expect(FakeSocket.all.length).toBe(2);
    sock().open("c2");
    expect(sock().sentOf("attach")[0].since_seq).toBe(7);
    expect(out.join("")).toBe("tick 1\n");
  });

  it("stays open while pings are answered, and any frame counts as an answer", () => {
    const { conn, sock, clock } = setup(() => 0, 5000);
    sock().open();
    for (let i = 0; i < 24; i++) {
      clock.advance(5000);
      // Alternate a pong and program output: both prove the path is alive.
      if (i % 2 === 0) sock().json({ type: "pong" });
      else sock().output(i * 10, "0123456789");
    }
    expect(conn.state.kind).toBe("open");
    expect(sock().sentOf("ping").length).toBe(24);
    expect(FakeSocket.all.length).toBe(1);
  });

  it("a large message still draining to the server is not silence", () => {
    const { conn, sock, clock } = setup(() => 0, 5000);
    sock().open();
    const s = sock() as FakeSocket & { bufferedAmount: number };
    s.bufferedAmount = 900_000;
    clock.advance(5000); // ping queued behind the upload
    s.bufferedAmount = 500_000;
    clock.advance(5000);
    s.bufferedAmount = 100_000;
    clock.advance(5000);
    expect(conn.state.kind).toBe("open");
    // Stuck: no progress and no answer is dead.
    clock.advance(5000);
    expect(conn.state.kind).toBe("reconnecting");
  });

  it("stops pinging when closed for good", () => {
    const { conn, sock, clock } = setup(() => 0, 5000);
    sock().open();
    conn.close("logged_out");
    clock.advance(60_000);
    expect(sock().sentOf("ping")).toEqual([]);
    expect(clock.pending()).toBe(0);
  });
});
