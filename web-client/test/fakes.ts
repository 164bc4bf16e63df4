// Test doubles: a manual clock and a scripted WebSocket.
import type { SocketLike, Timers } from "../src/connection";
import { encodeOutputFrame } from "../src/protocol";

/** A clock whose timers fire only when the test advances it. */
export class ManualClock implements Timers {
  t = 0;
  private seq = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers.delete(h as number);
  }
  now(): number {
    return this.t;
  }
  /** Advance time, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | null = null;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
  pending(): number {
    return this.timers.size;
  }
}

/** A WebSocket the test drives by hand. */
export class FakeSocket implements SocketLike {
  static all: FakeSocket[] = [];
  binaryType = "blob";
  readyState = 0;
  bufferedAmount = 0;
  sent: unknown[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  closedWith: number | null = null;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }
  close(code = 1000): void {
    this.closedWith = code;
    this.serverClose(code);
  }
  /** Server side: accept and greet. */
  open(connectionId = "c1"): void {
    this.readyState = 1;
    this.onopen?.({});
    this.json({
      type: "hello",
      protocol: 1,
      connection_id: connectionId,
      user: { id: 1, username: "alice", role: "student" },
      limits: {},
    });
  }
  json(v: unknown): void {
    this.onmessage?.({ data: JSON.stringify(v) });
  }
  output(seq: number, text: string): void {
    const f = encodeOutputFrame(seq, new TextEncoder().encode(text));
    this.onmessage?.({ data: f.buffer });
  }
  serverClose(code = 1006, reason = ""): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  /** Sent messages of a type. */
  sentOf(type: string): Record<string, unknown>[] {
    return this.sent.filter((m) => (m as { type: string }).type === type) as Record<string, unknown>[];
  }
}
