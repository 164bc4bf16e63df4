import { describe, expect, it } from "vitest";
import {
  CampusError,
  OutputCursor,
  decodeOutputFrame,
  encodeClientMsg,
  encodeOutputFrame,
  errorFromMsg,
  expectMsg,
  parseServerMsg,
  replyId,
  type ServerMsg,
} from "../src/protocol";

const enc = new TextEncoder();

describe("binary output frames", () => {
  it("decodes kind, big-endian seq and payload", () => {
    // seq = 0x0102030405 = 4328719365, built by hand to pin the byte order
    const raw = new Uint8Array([1, 0, 0, 0, 1, 2, 3, 4, 5, 104, 105]);
    const f = decodeOutputFrame(raw.buffer);
    expect(f).not.toBeNull();
    expect(f!.seq).toBe(4328719365);
    expect(new TextDecoder().decode(f!.bytes)).toBe("hi");
  });

  it("round-trips through encode", () => {
    const f = decodeOutputFrame(encodeOutputFrame(123_456_789, enc.encode("x\x1b[0m")));
    expect(f!.seq).toBe(123_456_789);
    expect(Array.from(f!.bytes)).toEqual(Array.from(enc.encode("x\x1b[0m")));
  });

  it("rejects other kinds and short frames", () => {
    expect(decodeOutputFrame(new Uint8Array([2, 0, 0, 0, 0, 0, 0, 0, 0]))).toBeNull();
    expect(decodeOutputFrame(new Uint8Array([1, 0]))).toBeNull();
  });

  it("decodes a frame that is a view into a larger buffer", () => {
    const big = new Uint8Array(20);
    big.set(encodeOutputFrame(7, enc.encode("ab")), 5);
    const f = decodeOutputFrame(big.subarray(5, 16));
    expect(f!.seq).toBe(7);
    expect(new TextDecoder().decode(f!.bytes)).toBe("ab");
  });
});

describe("JSON messages", () => {
  it("encodes tagged client messages with snake_case fields", () => {
    const s = encodeClientMsg({ type: "write", id: 7, path: "main.py", content: "print(1)\n", encoding: "utf8", base_version: "abc" });
    expect(JSON.parse(s)).toEqual({ type: "write", id: 7, path: "main.py", content: "print(1)\n", encoding: "utf8", base_version: "abc" });
    expect(JSON.parse(encodeClientMsg({ type: "attach", since_seq: 42 }))).toEqual({ type: "attach", since_seq: 42 });
    expect(JSON.parse(encodeClientMsg({ type: "ack", seq: 9 }))).toEqual({ type: "ack", seq: 9 });
  });

  it("parses server messages and their ids", () => {
    const m = parseServerMsg('{"type":"written","id":3,"path":"a.py","version":"v2","size":4,"created":false}')!;
    expect(m.type).toBe("written");
    expect(replyId(m)).toBe(3);
    expect(expectMsg(m, "written").version).toBe("v2");
    expect(() => expectMsg(m, "file")).toThrow(CampusError);
    expect(replyId(parseServerMsg('{"type":"phase","run_id":"r","phase":"repl"}')!)).toBeUndefined();
  });

  it("parses run_ended with the flattened record", () => {
    const m = parseServerMsg(
      '{"type":"run_ended","run_id":"r1","reason":"memory_limit","cpu_ms":50,"cpu_limit_ms":30000,"peak_memory_bytes":134217728,"memory_limit_bytes":134217728,"duration_ms":900,"output_bytes":0,"message":"m"}',
    )!;
    const e = expectMsg(m, "run_ended");
    expect(e.reason).toBe("memory_limit");
    expect(e.memory_limit_bytes).toBe(134217728);
  });

  it("ignores garbage", () => {
    expect(parseServerMsg("not json")).toBeNull();
    expect(parseServerMsg("[1,2]")).toBeNull();
    expect(parseServerMsg('{"no_type":1}')).toBeNull();
  });

  it("turns error replies into CampusError with retry and version hints", () => {
    const m = parseServerMsg('{"type":"error","id":1,"code":"conflict","message":"changed","current_version":"v9"}') as ServerMsg;
    const e = errorFromMsg(expectMsg(m, "error"));
    expect(e.code).toBe("conflict");
    expect(e.currentVersion).toBe("v9");
    const r = errorFromMsg(expectMsg(parseServerMsg('{"type":"error","code":"rate_limited","message":"slow down","retry_after_ms":1500}')!, "error"));
    expect(r.retryAfterMs).toBe(1500);
  });
});

describe("OutputCursor", () => {
  const f = (seq: number, s: string) => ({ seq, bytes: enc.encode(s) });
  const text = (b: Uint8Array) => new TextDecoder().decode(b);

  it("passes contiguous frames through", () => {
    const c = new OutputCursor();
    expect(text(c.accept(f(0, "abc")).bytes)).toBe("abc");
    expect(text(c.accept(f(3, "de")).bytes)).toBe("de");
    expect(c.next).toBe(5);
  });

  it("drops a replayed frame and trims an overlapping one (exactly once)", () => {
    const c = new OutputCursor();
    c.accept(f(0, "hello "));
    expect(c.accept(f(0, "hello ")).bytes.length).toBe(0);
    expect(text(c.accept(f(3, "lo world")).bytes)).toBe("world");
    expect(c.next).toBe(11);
  });

  it("reports a gap when the server no longer had the bytes", () => {
    const c = new OutputCursor();
    c.accept(f(0, "ab"));
    const r = c.accept(f(10, "xy"));
    expect(r.gap).toBe(8);
    expect(text(r.bytes)).toBe("xy");
    expect(c.next).toBe(12);
  });
});
